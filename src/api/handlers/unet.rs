//! UNet: only `DescribeFirewall`, answered empty, because terraform's `ucloud_lb` read calls it
//! (spec §6.1). certbind has no firewalls.

use crate::api::error::ApiError;
use crate::api::params::Params;
use crate::api::{Ctx, Reply};
use serde_json::{json, Value};

pub async fn describe_firewall(_ctx: &Ctx, _p: &Params) -> Result<Reply, ApiError> {
    let mut reply = Reply::new();
    reply.insert("TotalCount".into(), json!(0));
    reply.insert("DataSet".into(), Value::Array(Vec::new()));
    Ok(reply)
}
