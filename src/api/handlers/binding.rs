//! Binding actions: BindSSL/UnbindSSL (CLB), AddSSLBinding/DeleteSSLBinding (ALB SNI) and
//! UpdateSSLBinding (both families, four scopes; spec §4.4).
//!
//! Each returns only after the data plane serves the new state (read-your-writes).

use serde_json::json;

use crate::api::args;
use crate::api::error::ApiError;
use crate::api::params::Params;
use crate::api::{Ctx, Reply};
use crate::store::BindingScope;

/// At most this many extension certificates per ALB listener (product limits, spec §4.3).
pub const MAX_SNI: usize = 25;

pub async fn bind_ssl(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let (ssl_id, lb_id, listener_id) = clb_triple(p)?;
    let scope = ctx.scope.clone();
    let synced = listener_id.clone();
    ctx.db(move |store| store.bind_clb(&scope, &lb_id, &listener_id, &ssl_id))
        .await?;
    ctx.app.plane.sync(ctx, vec![synced]).await?;
    Ok(Reply::new())
}

pub async fn unbind_ssl(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let (ssl_id, lb_id, listener_id) = clb_triple(p)?;
    let scope = ctx.scope.clone();
    let synced = listener_id.clone();
    ctx.db(move |store| store.unbind_clb(&scope, &lb_id, &listener_id, &ssl_id))
        .await?;
    ctx.app.plane.sync(ctx, vec![synced]).await?;
    Ok(Reply::new())
}

fn clb_triple(p: &Params) -> Result<(String, String, String), ApiError> {
    Ok((
        args::required(p, "SSLId")?.to_string(),
        args::required(p, "ULBId")?.to_string(),
        args::required(p, "VServerId")?.to_string(),
    ))
}

pub async fn update_ssl_binding(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let old = args::required(p, "OldSSLId")?.to_string();
    let new = args::required(p, "NewSSLId")?.to_string();
    // Legacy names from the first SDK generation; the new names win when both are sent.
    let within = BindingScope {
        lb_id: args::opt_alias(p, &["LoadBalancerId", "ULBId"]).map(str::to_owned),
        listener_id: args::opt_alias(p, &["ListenerId", "VServerId"]).map(str::to_owned),
    };
    let scope = ctx.scope.clone();
    let (old_id, new_id) = (old.clone(), new.clone());
    let change = ctx
        .db(move |store| store.replace_certificate(&scope, &old_id, &new_id, &within))
        .await?;
    ctx.app.plane.replace(ctx, &change, &old, &new).await?;
    let mut reply = Reply::new();
    // Not in the SDK models (they ignore extra fields): how many bindings were replaced.
    reply.insert("ReplacedCount".into(), json!(change.replaced));
    Ok(reply)
}

pub async fn add_ssl_binding(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let (lb_id, listener_id, ssl_ids) = alb_triple(p)?;
    let scope = ctx.scope.clone();
    let synced = listener_id.clone();
    ctx.db(move |store| store.add_sni(&scope, &lb_id, &listener_id, &ssl_ids, MAX_SNI))
        .await?;
    ctx.app.plane.sync(ctx, vec![synced]).await?;
    Ok(Reply::new())
}

pub async fn delete_ssl_binding(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let (lb_id, listener_id, ssl_ids) = alb_triple(p)?;
    let scope = ctx.scope.clone();
    let synced = listener_id.clone();
    ctx.db(move |store| store.delete_sni(&scope, &lb_id, &listener_id, &ssl_ids))
        .await?;
    ctx.app.plane.sync(ctx, vec![synced]).await?;
    Ok(Reply::new())
}

fn alb_triple(p: &Params) -> Result<(String, String, Vec<String>), ApiError> {
    let lb_id = args::required(p, "LoadBalancerId")?.to_string();
    let listener_id = args::required(p, "ListenerId")?.to_string();
    let ssl_ids = args::list(p, "SSLIds");
    if ssl_ids.is_empty() {
        return Err(ApiError::param("SSLIds"));
    }
    Ok((lb_id, listener_id, ssl_ids))
}
