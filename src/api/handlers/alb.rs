//! ALB actions: load balancers, listeners and targets (spec §5.3).

use crate::api::error::ApiError;
use crate::api::params::Params;
use crate::api::{Ctx, Reply};

fn unfinished(name: &str) -> Result<Reply, ApiError> {
    Err(ApiError::UnknownAction(name.to_string()))
}

pub async fn create_load_balancer(_ctx: &Ctx, _p: &Params) -> Result<Reply, ApiError> { unfinished("CreateLoadBalancer") }
pub async fn describe_load_balancers(_ctx: &Ctx, _p: &Params) -> Result<Reply, ApiError> { unfinished("DescribeLoadBalancers") }
pub async fn update_load_balancer_attribute(_ctx: &Ctx, _p: &Params) -> Result<Reply, ApiError> { unfinished("UpdateLoadBalancerAttribute") }
pub async fn delete_load_balancer(_ctx: &Ctx, _p: &Params) -> Result<Reply, ApiError> { unfinished("DeleteLoadBalancer") }
pub async fn create_listener(_ctx: &Ctx, _p: &Params) -> Result<Reply, ApiError> { unfinished("CreateListener") }
pub async fn describe_listeners(_ctx: &Ctx, _p: &Params) -> Result<Reply, ApiError> { unfinished("DescribeListeners") }
pub async fn update_listener_attribute(_ctx: &Ctx, _p: &Params) -> Result<Reply, ApiError> { unfinished("UpdateListenerAttribute") }
pub async fn delete_listener(_ctx: &Ctx, _p: &Params) -> Result<Reply, ApiError> { unfinished("DeleteListener") }
pub async fn add_targets(_ctx: &Ctx, _p: &Params) -> Result<Reply, ApiError> { unfinished("AddTargets") }
pub async fn remove_targets(_ctx: &Ctx, _p: &Params) -> Result<Reply, ApiError> { unfinished("RemoveTargets") }
pub async fn update_targets_attribute(_ctx: &Ctx, _p: &Params) -> Result<Reply, ApiError> { unfinished("UpdateTargetsAttribute") }
