//! CLB actions: ULB instances, VServers and backends (spec §5.2).

use crate::api::error::ApiError;
use crate::api::params::Params;
use crate::api::{Ctx, Reply};

fn unfinished(name: &str) -> Result<Reply, ApiError> {
    Err(ApiError::UnknownAction(name.to_string()))
}

pub async fn create_ulb(_ctx: &Ctx, _p: &Params) -> Result<Reply, ApiError> { unfinished("CreateULB") }
pub async fn describe_ulb(_ctx: &Ctx, _p: &Params) -> Result<Reply, ApiError> { unfinished("DescribeULB") }
pub async fn describe_ulb_simple(_ctx: &Ctx, _p: &Params) -> Result<Reply, ApiError> { unfinished("DescribeULBSimple") }
pub async fn update_ulb_attribute(_ctx: &Ctx, _p: &Params) -> Result<Reply, ApiError> { unfinished("UpdateULBAttribute") }
pub async fn delete_ulb(_ctx: &Ctx, _p: &Params) -> Result<Reply, ApiError> { unfinished("DeleteULB") }
pub async fn create_vserver(_ctx: &Ctx, _p: &Params) -> Result<Reply, ApiError> { unfinished("CreateVServer") }
pub async fn describe_vserver(_ctx: &Ctx, _p: &Params) -> Result<Reply, ApiError> { unfinished("DescribeVServer") }
pub async fn update_vserver_attribute(_ctx: &Ctx, _p: &Params) -> Result<Reply, ApiError> { unfinished("UpdateVServerAttribute") }
pub async fn delete_vserver(_ctx: &Ctx, _p: &Params) -> Result<Reply, ApiError> { unfinished("DeleteVServer") }
pub async fn allocate_backend(_ctx: &Ctx, _p: &Params) -> Result<Reply, ApiError> { unfinished("AllocateBackend") }
pub async fn release_backend(_ctx: &Ctx, _p: &Params) -> Result<Reply, ApiError> { unfinished("ReleaseBackend") }
pub async fn update_backend_attribute(_ctx: &Ctx, _p: &Params) -> Result<Reply, ApiError> { unfinished("UpdateBackendAttribute") }
