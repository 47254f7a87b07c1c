//! Certificate actions: CreateSSL, DescribeSSL, DescribeSSLV2, UpdateSSLAttribute, DeleteSSL.

use serde_json::{json, Value};

use crate::api::args;
use crate::api::error::ApiError;
use crate::api::params::Params;
use crate::api::{Ctx, Reply};
use crate::model::certificate::{content_hash, join_content, parse_bundle};
use crate::model::{Binding, LbKind};
use crate::store::{CertificateView, NewCertificate, Paging};

/// Names longer than this get RetCode 4114 (ULB error table).
const MAX_NAME: usize = 50;

pub async fn create_ssl(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let name = args::name(p, "SSLName", MAX_NAME)?.ok_or_else(|| ApiError::param("SSLName"))?;
    args::opt_enum(p, "SSLType", &["Pem"])?;
    if args::opt(p, "USSLId").is_some() {
        return Err(ApiError::param_why(
            "USSLId",
            "importing from USSL is not supported; upload the PEM content",
        ));
    }
    let content = match (args::opt(p, "SSLContent"), args::opt(p, "UserCert")) {
        (Some(content), _) => content.to_string(),
        (None, Some(user_cert)) => join_content(
            user_cert,
            args::opt(p, "PrivateKey").unwrap_or(""),
            args::opt(p, "CaCert").unwrap_or(""),
        ),
        (None, None) => {
            return Err(ApiError::param_why(
                "SSLContent",
                "give SSLContent, or UserCert and PrivateKey",
            ))
        }
    };
    let bundle =
        parse_bundle(&content).map_err(|err| ApiError::CertificateInvalid(err.to_string()))?;
    let new = NewCertificate {
        name,
        hash_value: content_hash(&content),
        chain_pem: bundle.chain_pem(),
        key_pem: bundle.key_pem(),
        domains: bundle.domains.clone(),
        dns_names: bundle.dns_names.clone(),
        not_before: bundle.not_before,
        not_after: bundle.not_after,
        content,
    };
    let scope = ctx.scope.clone();
    let certificate = ctx
        .db(move |store| store.create_certificate(&scope, new))
        .await?;
    let mut reply = Reply::new();
    reply.insert("SSLId".into(), Value::String(certificate.id));
    Ok(reply)
}

pub async fn describe_ssl(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    describe(ctx, p, ulb_ssl_set).await
}

pub async fn describe_ssl_v2(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    describe(ctx, p, ssl_info).await
}

async fn describe(
    ctx: &Ctx,
    p: &Params,
    render: fn(&CertificateView) -> Value,
) -> Result<Reply, ApiError> {
    let paging = args::paging(p, 20)?;
    let ssl_id = args::opt(p, "SSLId").map(str::to_owned);
    let scope = ctx.scope.clone();
    let page = ctx
        .db(move |store| store.describe_certificates(&scope, ssl_id.as_deref(), paging))
        .await?;
    let mut reply = Reply::new();
    reply.insert("TotalCount".into(), json!(page.total));
    reply.insert(
        "DataSet".into(),
        Value::Array(page.items.iter().map(render).collect()),
    );
    Ok(reply)
}

/// One certificate as a `ULBSSLSet` (DescribeSSL, and VServer `SSLSet`): CLB bindings only.
pub fn ulb_ssl_set(view: &CertificateView) -> Value {
    let targets: Vec<Value> = view
        .bindings
        .iter()
        .filter(|b| b.lb_kind == LbKind::Clb)
        .map(|b| {
            json!({
                "ULBId": b.lb_id, "ULBName": b.lb_name,
                "VServerId": b.listener_id, "VServerName": b.listener_name,
            })
        })
        .collect();
    let mut set = common_fields(view);
    set.insert("BindedTargetSet".into(), Value::Array(targets));
    Value::Object(set)
}

/// One certificate as an `SSLInfo` (DescribeSSLV2): CLB and ALB bindings in `Relations`.
fn ssl_info(view: &CertificateView) -> Value {
    let mut info = common_fields(view);
    // Not documented; comma-separated, spec §4.1 [REC].
    info.insert(
        "DNSNames".into(),
        Value::String(view.certificate.dns_names.join(",")),
    );
    info.insert(
        "Relations".into(),
        Value::Array(view.bindings.iter().map(relation).collect()),
    );
    Value::Object(info)
}

/// The fields `ULBSSLSet` and `SSLInfo` share, with their exact JSON types.
fn common_fields(view: &CertificateView) -> serde_json::Map<String, Value> {
    let cert = &view.certificate;
    [
        ("SSLId", json!(cert.id)),
        ("SSLName", json!(cert.name)),
        ("SSLType", json!("Pem")),
        ("SSLContent", json!(view.content.as_str())),
        ("SSLSource", json!(0)),
        ("USSLId", json!("")),
        ("HashValue", json!(cert.hash_value)),
        ("Domains", json!(cert.domains)),
        ("NotBefore", json!(cert.not_before)),
        ("NotAfter", json!(cert.not_after)),
        ("CreateTime", json!(cert.created_at)),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), value))
    .collect()
}

fn relation(binding: &Binding) -> Value {
    json!({
        "LoadBalancerId": binding.lb_id,
        "LoadBalancerName": binding.lb_name,
        "ListenerId": binding.listener_id,
        "ListenerName": binding.listener_name,
        "IsDefault": binding.role.is_default(),
    })
}

pub async fn update_ssl_attribute(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let ssl_id = args::required(p, "SSLId")?.to_string();
    let name = args::name(p, "SSLName", MAX_NAME)?.ok_or_else(|| ApiError::param("SSLName"))?;
    let scope = ctx.scope.clone();
    ctx.db(move |store| store.rename_certificate(&scope, &ssl_id, &name))
        .await?;
    Ok(Reply::new())
}

pub async fn delete_ssl(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let ssl_id = args::required(p, "SSLId")?.to_string();
    let scope = ctx.scope.clone();
    let deleted = ssl_id.clone();
    ctx.db(move |store| store.delete_certificate(&scope, &deleted))
        .await?;
    ctx.app.plane.forget_cert(&ssl_id);
    Ok(Reply::new())
}

/// The certificates of a listener as `ULBSSLSet`s (VServer `SSLSet`), in binding order.
pub async fn certificate_sets(ctx: &Ctx, ssl_ids: Vec<String>) -> Result<Vec<Value>, ApiError> {
    if ssl_ids.is_empty() {
        return Ok(Vec::new());
    }
    let scope = ctx.scope.clone();
    let views = ctx
        .db(move |store| {
            let mut views = Vec::with_capacity(ssl_ids.len());
            for ssl_id in &ssl_ids {
                let page = store.describe_certificates(
                    &scope,
                    Some(ssl_id),
                    Paging {
                        offset: 0,
                        limit: 1,
                    },
                )?;
                views.extend(page.items);
            }
            Ok(views)
        })
        .await?;
    Ok(views.iter().map(ulb_ssl_set).collect())
}
