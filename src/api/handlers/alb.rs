//! ALB actions: load balancers, listeners and targets (spec §5.3).
//!
//! It owns the ALB wire shapes: which request fields exist, how each is validated and defaulted,
//! and how the stored text renders with the SDKs' JSON types. It does not own the binding rules
//! (the store enforces them; extension certificates are `binding.rs`'s actions) nor serving (the
//! data plane, driven through `Plane` after every commit).
//!
//! Family attributes live in `attrs` under their flattened wire names (`IdleTimeout`,
//! `HealthCheckConfig.Type`) as text. The field tables below are the one place that knows each
//! attribute's type, range and default. A listener stores every attribute with its default filled
//! in at creation, so changing a default later never changes an existing listener.
//!
//! Choices where the spec is silent:
//! * The load balancer's address (allocated by the store, bound by the data plane) is shown as
//!   its only `IPInfos` entry: an `Intranet` IPv4 address whose `Id` is `vip-` plus the LB id's
//!   suffix. There are no SNAT addresses, firewalls, security groups or access logs.
//! * Every listener shows one default rule (`rule-` plus the listener id's suffix) forwarding to
//!   all of its targets, because that is what the data plane does; there are no other rules.
//! * certbind has no hosts: a target is reached at `ResourceIP`, or at `ResourceId` when that is an
//!   IP address; `ResourceType`, `ResourceId`, `VPCId` and `SubnetId` are kept as given.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use serde_json::{json, Map, Value};

use crate::api::args;
use crate::api::error::ApiError;
use crate::api::params::Params;
use crate::api::{Ctx, Reply};
use crate::model::{Attrs, Backend, Binding, BindingRole, LbKind, LoadBalancer, Scope};
use crate::store::{
    BackendPatch, ListenerPatch, ListenerView, LoadBalancerPatch, NewBackend, NewListener,
    NewLoadBalancer, Page, Paging, Resource, Store, StoreError, StoreResult,
};

/// Names and remarks: "1-255 characters" / "0-255 characters" in the SDK docstrings.
const MAX_TEXT: usize = 255;
/// `DescribeLoadBalancers` and `DescribeListeners` page size when `Limit` is absent.
const DEFAULT_PAGE: usize = 100;
/// `RemoveTargets.Ids` and `UpdateTargetsAttribute.Targets`: "不超过20个" (SDK docstrings).
const MAX_TARGETS_PER_CALL: usize = 20;
/// Everything, for reads the handler filters or searches itself.
const EVERYTHING: Paging = Paging {
    offset: 0,
    limit: usize::MAX,
};
const ONE: Paging = Paging {
    offset: 0,
    limit: 1,
};

const LB_TYPES: &[&str] = &["Application", "Network"];
const LISTENER_PROTOCOLS: &[&str] = &["HTTP", "HTTPS"];
const RESOURCE_TYPES: &[&str] = &["UHost", "UNI", "UPM", "IP"];

// ---- field tables -------------------------------------------------------------------------------

/// How an attribute is read from a request and rendered in a response.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// JSON bool, stored as `true`/`false`.
    Flag,
    /// JSON integer in `min..=max`, stored in decimal.
    Int(i64, i64),
    /// JSON string, one of these exactly.
    Choice(&'static [&'static str]),
    /// JSON string of at most this many characters; an empty value is a value (it clears).
    Text(usize),
    /// JSON string of 1 to this many characters; an empty value counts as absent.
    Word(usize),
}

/// One family attribute: wire name (also its key in `attrs`), kind and default.
#[derive(Debug)]
struct Field {
    wire: &'static str,
    kind: Kind,
    default: &'static str,
}

const fn field(wire: &'static str, kind: Kind, default: &'static str) -> Field {
    Field {
        wire,
        kind,
        default,
    }
}

/// Load balancer attributes beyond name, tag and remark (`LoadBalancer` in §5.3).
const LB_FIELDS: &[Field] = &[
    field("VPCId", Kind::Word(MAX_TEXT), ""),
    field("SubnetId", Kind::Word(MAX_TEXT), ""),
    field(
        "ChargeType",
        Kind::Choice(&["Year", "Month", "Day", "Dynamic"]),
        "Month",
    ),
    field(
        "IPVersion",
        Kind::Choice(&["IPv4", "IPv6", "DualStack"]),
        "IPv4",
    ),
];

/// Listener attributes beyond name, protocol and port (`Listener` in §5.3). Health-check
/// defaults are the data plane's (a check every 5 s, 2 s timeout, one result flips the state);
/// `HealthCheckConfig.Port` 0 means "the target's own port".
const LISTENER_FIELDS: &[Field] = &[
    field("Remark", Kind::Text(MAX_TEXT), ""),
    field("IdleTimeout", Kind::Int(1, 86_400), "60"),
    field(
        "Scheduler",
        Kind::Choice(&[
            "Roundrobin",
            "Source",
            "WeightRoundrobin",
            "Leastconn",
            "Backup",
        ]),
        "Roundrobin",
    ),
    field("HTTP2Enabled", Kind::Flag, "false"),
    field("CompressionEnabled", Kind::Flag, "false"),
    field("RedirectEnabled", Kind::Flag, "false"),
    field("RedirectPort", Kind::Int(1, 65_535), "443"),
    field("SecurityPolicyId", Kind::Word(MAX_TEXT), "Default"),
    field(
        "TargetProtocol",
        Kind::Choice(&["HTTP", "HTTPS", "GRPC"]),
        "HTTP",
    ),
    field("HealthCheckConfig.Enabled", Kind::Flag, "true"),
    field(
        "HealthCheckConfig.Type",
        Kind::Choice(&["Port", "HTTP", "GRPC"]),
        "Port",
    ),
    field("HealthCheckConfig.Domain", Kind::Text(MAX_TEXT), ""),
    field("HealthCheckConfig.Path", Kind::Word(MAX_TEXT), "/"),
    field(
        "HealthCheckConfig.Method",
        Kind::Choice(&["GET", "HEAD"]),
        "GET",
    ),
    field("HealthCheckConfig.ResponseCode", Kind::Word(64), "2xx,3xx"),
    field("HealthCheckConfig.HTTPVersion", Kind::Word(32), "HTTP1.1"),
    field("HealthCheckConfig.Port", Kind::Int(0, 65_535), "0"),
    field("HealthCheckConfig.Interval", Kind::Int(1, 3_600), "5"),
    field("HealthCheckConfig.TimeOut", Kind::Int(1, 3_600), "2"),
    field("HealthCheckConfig.UpCounts", Kind::Int(1, 10), "1"),
    field("HealthCheckConfig.DownCounts", Kind::Int(1, 10), "1"),
    field("StickinessConfig.Enabled", Kind::Flag, "false"),
    field(
        "StickinessConfig.Type",
        Kind::Choice(&["ServerInsert", "UserDefined"]),
        "ServerInsert",
    ),
    field("StickinessConfig.CookieName", Kind::Text(MAX_TEXT), ""),
];

/// Target attributes beyond address, port, weight and enabled (`Target` in §5.3).
const TARGET_FIELDS: &[Field] = &[
    field("ResourceType", Kind::Choice(RESOURCE_TYPES), "UHost"),
    field("ResourceId", Kind::Word(MAX_TEXT), ""),
    field("IsBackup", Kind::Flag, "false"),
    field("VPCId", Kind::Word(MAX_TEXT), ""),
    field("SubnetId", Kind::Word(MAX_TEXT), ""),
];

impl Field {
    /// The request's value as stored text; `None` when the request does not set it.
    fn read(&self, p: &Params) -> Result<Option<String>, ApiError> {
        Ok(match self.kind {
            Kind::Flag => args::opt_bool(p, self.wire)?.map(|value| value.to_string()),
            Kind::Int(min, max) => {
                args::opt_int_in(p, self.wire, min, max)?.map(|value| value.to_string())
            }
            Kind::Choice(allowed) => args::opt_enum(p, self.wire, allowed)?.map(str::to_owned),
            Kind::Text(max) => text(p, self.wire, max)?,
            Kind::Word(max) => word(p, self.wire, max)?,
        })
    }

    /// The stored value (or the default) with the JSON type the SDKs expect.
    fn render(&self, attrs: &Attrs) -> Value {
        let stored = attrs.get(self.wire).map(String::as_str);
        match self.kind {
            Kind::Flag => Value::Bool(stored.unwrap_or(self.default) == "true"),
            Kind::Int(..) => {
                let number = stored
                    .and_then(|text| text.parse::<i64>().ok())
                    .or_else(|| self.default.parse().ok())
                    .unwrap_or(0);
                Value::from(number)
            }
            Kind::Choice(_) | Kind::Text(_) | Kind::Word(_) => {
                Value::String(stored.unwrap_or(self.default).to_string())
            }
        }
    }
}

/// The attributes a request sets, validated; nothing else.
fn read_fields(p: &Params, fields: &[Field]) -> Result<Attrs, ApiError> {
    let mut attrs = Attrs::new();
    for field in fields {
        if let Some(value) = field.read(p)? {
            attrs.insert(field.wire.to_string(), value);
        }
    }
    Ok(attrs)
}

fn fill_defaults(attrs: &mut Attrs, fields: &[Field]) {
    for field in fields {
        attrs
            .entry(field.wire.to_string())
            .or_insert_with(|| field.default.to_string());
    }
}

/// Adds every field to `out`; `Parent.Field` names become nested objects (`HealthCheckConfig`).
fn render_fields(fields: &[Field], attrs: &Attrs, out: &mut Map<String, Value>) {
    for field in fields {
        let value = field.render(attrs);
        match field.wire.split_once('.') {
            None => {
                out.insert(field.wire.to_string(), value);
            }
            Some((parent, name)) => {
                let entry = out
                    .entry(parent.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(object) = entry {
                    object.insert(name.to_string(), value);
                }
            }
        }
    }
}

/// An optional text parameter of at most `max` characters; empty is a value (Python sends it to
/// clear a remark; Go never sends empty strings).
fn text(p: &Params, name: &str, max: usize) -> Result<Option<String>, ApiError> {
    match p.get(name) {
        None => Ok(None),
        Some(value) => within_length(name, value, max).map(Some),
    }
}

/// An optional text parameter of 1 to `max` characters; empty counts as absent.
fn word(p: &Params, name: &str, max: usize) -> Result<Option<String>, ApiError> {
    match args::opt(p, name) {
        None => Ok(None),
        Some(value) => within_length(name, value, max).map(Some),
    }
}

fn within_length(name: &str, value: &str, max: usize) -> Result<String, ApiError> {
    if value.chars().count() > max {
        return Err(ApiError::param_why(
            name,
            format!("at most {max} characters"),
        ));
    }
    Ok(value.to_string())
}

/// A value of a filled attribute map (every field present).
fn flag(attrs: &Attrs, wire: &str) -> bool {
    attrs.get(wire).is_some_and(|value| value == "true")
}

fn int(attrs: &Attrs, wire: &str) -> i64 {
    attrs
        .get(wire)
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

fn attr<'a>(attrs: &'a Attrs, wire: &str) -> &'a str {
    attrs.get(wire).map_or("", String::as_str)
}

/// The `suffix` of `prefix-suffix`, for ids derived from another id.
fn id_suffix(id: &str) -> &str {
    id.split_once('-').map_or(id, |(_, suffix)| suffix)
}

fn not_found(kind: Resource, id: &str) -> StoreError {
    StoreError::NotFound {
        kind,
        id: id.to_string(),
    }
}

// ---- load balancers -----------------------------------------------------------------------------

pub async fn create_load_balancer(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    if args::opt_enum(p, "Type", LB_TYPES)? == Some("Network") {
        return Err(ApiError::param_why(
            "Type",
            "certbind serves Application load balancers only",
        ));
    }
    let mut attrs = read_fields(p, LB_FIELDS)?;
    // Required by the SDK schema; certbind has no VPCs, so any id is taken as given.
    for required in ["VPCId", "SubnetId"] {
        if !attrs.contains_key(required) {
            return Err(ApiError::param(required));
        }
    }
    if attrs
        .get("IPVersion")
        .is_some_and(|version| version != "IPv4")
    {
        return Err(ApiError::param_why(
            "IPVersion",
            "certbind allocates IPv4 addresses only",
        ));
    }
    fill_defaults(&mut attrs, LB_FIELDS);
    // Billing parameters: validated so a typo is reported, otherwise meaningless here.
    args::opt_int_in(p, "Quantity", 0, i64::from(i32::MAX))?;
    let new = NewLoadBalancer {
        kind: LbKind::Alb,
        name: word(p, "Name", MAX_TEXT)?.unwrap_or_else(|| "lb".into()),
        // "empty means Default" (SDK docstring).
        tag: word(p, "Tag", MAX_TEXT)?.unwrap_or_else(|| "Default".into()),
        remark: text(p, "Remark", MAX_TEXT)?.unwrap_or_default(),
        attrs,
    };
    let scope = ctx.scope.clone();
    let lb = ctx
        .db(move |store| store.create_load_balancer(&scope, new))
        .await?;
    let mut reply = Reply::new();
    reply.insert("LoadBalancerId".into(), Value::String(lb.id));
    Ok(reply)
}

pub async fn describe_load_balancers(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let paging = args::paging(p, DEFAULT_PAGE)?;
    let kind = args::opt_enum(p, "Type", LB_TYPES)?.unwrap_or("Application");
    let show_detail = args::opt_bool(p, "ShowDetail")?.unwrap_or(false);
    let ids = args::list(p, "LoadBalancerIds");
    // "when given, every filter except Type is ignored" (SDK docstring).
    let filter = if ids.is_empty() {
        LbFilter {
            vpc_id: args::opt(p, "VPCId").map(str::to_owned),
            subnet_id: args::opt(p, "SubnetId").map(str::to_owned),
        }
    } else {
        LbFilter::default()
    };
    if kind == "Network" {
        // certbind has no network load balancers: nothing matches.
        return Ok(load_balancer_reply(0, Vec::new()));
    }
    let scope = ctx.scope.clone();
    let (page, details) = ctx
        .db(move |store| {
            let page = if filter.is_empty() {
                store.list_load_balancers(&scope, LbKind::Alb, &ids, paging)?
            } else {
                // The store filters by id only; ALBs are few per scope (quota 200 per region).
                let all = store.list_load_balancers(&scope, LbKind::Alb, &[], EVERYTHING)?;
                let matching: Vec<LoadBalancer> = all
                    .items
                    .into_iter()
                    .filter(|lb| filter.matches(lb))
                    .collect();
                Page {
                    total: matching.len(),
                    items: matching
                        .into_iter()
                        .skip(paging.offset)
                        .take(paging.limit)
                        .collect(),
                }
            };
            let mut details = Vec::new();
            if show_detail {
                for lb in &page.items {
                    match store.list_listeners(&scope, LbKind::Alb, Some(&lb.id), None, EVERYTHING)
                    {
                        Ok(listeners) => details.push(listeners.items),
                        // Deleted between the two reads: shown as it was, without listeners.
                        Err(StoreError::NotFound { .. }) => details.push(Vec::new()),
                        Err(err) => return Err(err),
                    }
                }
            }
            Ok((page, details))
        })
        .await?;
    let mut details = details.into_iter();
    let lbs = page
        .items
        .iter()
        .map(|lb| {
            let listeners = details
                .next()
                .unwrap_or_default()
                .iter()
                .map(|view| listener_json(ctx, view))
                .collect();
            load_balancer_json(lb, listeners)
        })
        .collect();
    Ok(load_balancer_reply(page.total, lbs))
}

#[derive(Default)]
struct LbFilter {
    vpc_id: Option<String>,
    subnet_id: Option<String>,
}

impl LbFilter {
    fn is_empty(&self) -> bool {
        self.vpc_id.is_none() && self.subnet_id.is_none()
    }

    fn matches(&self, lb: &LoadBalancer) -> bool {
        let same = |wanted: &Option<String>, wire: &str| {
            wanted
                .as_deref()
                .is_none_or(|wanted| attr(&lb.attrs, wire) == wanted)
        };
        same(&self.vpc_id, "VPCId") && same(&self.subnet_id, "SubnetId")
    }
}

fn load_balancer_reply(total: usize, lbs: Vec<Value>) -> Reply {
    let mut reply = Reply::new();
    reply.insert("TotalCount".into(), json!(total));
    reply.insert("LoadBalancers".into(), Value::Array(lbs));
    reply
}

/// One `LoadBalancer` (§5.3), every declared field present.
fn load_balancer_json(lb: &LoadBalancer, listeners: Vec<Value>) -> Value {
    let mut out = Map::new();
    out.insert("LoadBalancerId".into(), json!(lb.id));
    out.insert("Name".into(), json!(lb.name));
    out.insert("Type".into(), json!("Application"));
    out.insert("Tag".into(), json!(lb.tag));
    out.insert("Remark".into(), json!(lb.remark));
    out.insert("CreateTime".into(), json!(lb.created_at));
    out.insert("Status".into(), json!("Normal"));
    render_fields(LB_FIELDS, &lb.attrs, &mut out);
    out.insert(
        "IPInfos".into(),
        json!([{
            "Id": format!("vip-{}", id_suffix(&lb.id)),
            "IP": lb.address,
            "AddressType": "Intranet",
            "IPVersion": "IPv4",
            "OperatorName": "",
            "Bandwidth": 0,
            "BandwidthType": 0,
        }]),
    );
    out.insert("SnatIPs".into(), json!([]));
    out.insert("Listeners".into(), Value::Array(listeners));
    out.insert(
        "AccessLogConfig".into(),
        json!({"Enabled": false, "US3BucketName": "", "US3TokenId": ""}),
    );
    out.insert("AutoRenewEnabled".into(), json!(false));
    out.insert("PurchaseValue".into(), json!(0));
    out.insert(
        "Firewall".into(),
        json!({"FirewallId": "", "FirewallName": ""}),
    );
    out.insert("SecGroup".into(), json!([]));
    Value::Object(out)
}

pub async fn update_load_balancer_attribute(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let lb_id = args::required(p, "LoadBalancerId")?.to_string();
    if args::opt_bool(p, "AccessLogConfig.Enabled")? == Some(true) {
        return Err(ApiError::param_why(
            "AccessLogConfig.Enabled",
            "certbind writes no access logs to US3",
        ));
    }
    let patch = LoadBalancerPatch {
        name: word(p, "Name", MAX_TEXT)?,
        tag: word(p, "Tag", MAX_TEXT)?,
        remark: text(p, "Remark", MAX_TEXT)?,
        attrs: Attrs::new(),
    };
    let scope = ctx.scope.clone();
    // Called even with nothing to change: an unknown id must still answer 4103.
    ctx.db(move |store| store.update_load_balancer(&scope, LbKind::Alb, &lb_id, patch))
        .await?;
    Ok(Reply::new())
}

pub async fn delete_load_balancer(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let lb_id = args::required(p, "LoadBalancerId")?.to_string();
    let scope = ctx.scope.clone();
    let removed = ctx
        .db(move |store| store.delete_load_balancer(&scope, LbKind::Alb, &lb_id))
        .await?;
    ctx.app.plane.remove(removed).await;
    Ok(Reply::new())
}

// ---- listeners ----------------------------------------------------------------------------------

pub async fn create_listener(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let lb_id = args::required(p, "LoadBalancerId")?.to_string();
    let protocol = args::opt_enum(p, "ListenerProtocol", LISTENER_PROTOCOLS)?
        .unwrap_or("HTTP")
        .to_string();
    let port = args::opt_port(p, "ListenerPort")?.unwrap_or(80);
    let name = word(p, "Name", MAX_TEXT)?.unwrap_or_else(|| "listener".into());
    let certificates = args::list(p, "Certificates");
    let default_certificate = match (protocol.as_str(), certificates.len()) {
        ("HTTPS", 1) => certificates.into_iter().next(),
        ("HTTPS", _) => {
            return Err(ApiError::param_why(
                "Certificates",
                "an HTTPS listener takes exactly one default certificate",
            ))
        }
        (_, 0) => None,
        (_, _) => {
            return Err(ApiError::param_why(
                "Certificates",
                "only HTTPS listeners take certificates",
            ))
        }
    };
    let mut attrs = read_fields(p, LISTENER_FIELDS)?;
    fill_defaults(&mut attrs, LISTENER_FIELDS);
    check_listener(&attrs, &protocol, port)?;

    let scope = ctx.scope.clone();
    let wanted = lb_id.clone();
    let lb = ctx
        .db(move |store| {
            let mut page = store.list_load_balancers(
                &scope,
                LbKind::Alb,
                std::slice::from_ref(&wanted),
                ONE,
            )?;
            page.items
                .pop()
                .ok_or_else(|| not_found(Resource::LoadBalancer, &wanted))
        })
        .await?;
    // Bound before the commit, so a port taken on the host fails the call with nothing written.
    let reservation = ctx.app.plane.reserve(&lb.address, port)?;
    let new = NewListener {
        name,
        protocol,
        port,
        attrs,
        default_certificate,
    };
    let scope = ctx.scope.clone();
    let listener = ctx
        .db(move |store| store.create_listener(&scope, LbKind::Alb, &lb_id, new))
        .await?;
    ctx.app
        .plane
        .open(ctx, listener.id.clone(), reservation)
        .await?;
    let mut reply = Reply::new();
    reply.insert("ListenerId".into(), Value::String(listener.id));
    Ok(reply)
}

/// Rules between attributes, checked on the whole (filled) attribute set of a listener, so
/// `UpdateListenerAttribute` checks a change against what it does not change.
fn check_listener(attrs: &Attrs, protocol: &str, port: u16) -> Result<(), ApiError> {
    if flag(attrs, "HTTP2Enabled") && protocol != "HTTPS" {
        return Err(ApiError::param_why(
            "HTTP2Enabled",
            "HTTP/2 is for HTTPS listeners only",
        ));
    }
    if flag(attrs, "RedirectEnabled") {
        if protocol != "HTTP" {
            return Err(ApiError::param_why(
                "RedirectEnabled",
                "only HTTP listeners redirect",
            ));
        }
        if int(attrs, "RedirectPort") == i64::from(port) {
            return Err(ApiError::param_why(
                "RedirectPort",
                "a listener cannot redirect to its own port",
            ));
        }
    }
    if int(attrs, "HealthCheckConfig.TimeOut") >= int(attrs, "HealthCheckConfig.Interval") {
        return Err(ApiError::param_why(
            "HealthCheckConfig.TimeOut",
            "must be less than HealthCheckConfig.Interval",
        ));
    }
    // The data plane writes these into a request line and a Host header.
    let path = attr(attrs, "HealthCheckConfig.Path");
    if !path.starts_with('/') || has_space_or_control(path) {
        return Err(ApiError::param_why(
            "HealthCheckConfig.Path",
            "must start with / and hold no spaces or control characters",
        ));
    }
    if has_space_or_control(attr(attrs, "HealthCheckConfig.Domain")) {
        return Err(ApiError::param_why(
            "HealthCheckConfig.Domain",
            "must hold no spaces or control characters",
        ));
    }
    let codes = attr(attrs, "HealthCheckConfig.ResponseCode");
    let code_ok = |code: &str| {
        !code.is_empty()
            && code
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'x' || b == b'X' || b == b'-')
    };
    if !codes.split(',').all(code_ok) {
        return Err(ApiError::param_why(
            "HealthCheckConfig.ResponseCode",
            "comma-separated status codes such as 2xx,3xx",
        ));
    }
    let cookie = attr(attrs, "StickinessConfig.CookieName");
    if cookie
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, ';' | ',' | '='))
    {
        return Err(ApiError::param_why(
            "StickinessConfig.CookieName",
            "not a cookie name",
        ));
    }
    if flag(attrs, "StickinessConfig.Enabled")
        && attr(attrs, "StickinessConfig.Type") == "UserDefined"
        && cookie.is_empty()
    {
        return Err(ApiError::param_why(
            "StickinessConfig.CookieName",
            "required when StickinessConfig.Type is UserDefined",
        ));
    }
    Ok(())
}

fn has_space_or_control(text: &str) -> bool {
    text.chars().any(|c| c.is_whitespace() || c.is_control())
}

pub async fn describe_listeners(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let paging = args::paging(p, DEFAULT_PAGE)?;
    // With ListenerId the LoadBalancerId is ignored (SDK docstring); one of them is required.
    let listener_id = args::opt(p, "ListenerId").map(str::to_owned);
    let lb_id = match listener_id {
        Some(_) => None,
        None => Some(
            args::opt(p, "LoadBalancerId")
                .ok_or_else(|| {
                    ApiError::param_why("LoadBalancerId", "give LoadBalancerId or ListenerId")
                })?
                .to_string(),
        ),
    };
    let scope = ctx.scope.clone();
    let page = ctx
        .db(move |store| {
            store.list_listeners(
                &scope,
                LbKind::Alb,
                lb_id.as_deref(),
                listener_id.as_deref(),
                paging,
            )
        })
        .await?;
    let listeners = page
        .items
        .iter()
        .map(|view| listener_json(ctx, view))
        .collect();
    let mut reply = Reply::new();
    reply.insert("TotalCount".into(), json!(page.total));
    reply.insert("Listeners".into(), Value::Array(listeners));
    Ok(reply)
}

/// One `Listener` (§5.3), every declared field present; target health from the data plane.
fn listener_json(ctx: &Ctx, view: &ListenerView) -> Value {
    let listener = &view.listener;
    let health: HashMap<String, bool> = ctx
        .app
        .plane
        .backend_health(&listener.id)
        .into_iter()
        .collect();
    // Not checked yet (or checks disabled) counts as healthy, as in the data plane.
    let healthy = |backend: &Backend| health.get(&backend.id).copied().unwrap_or(true);
    let healthy_count = view.backends.iter().filter(|b| healthy(b)).count();
    let state = match (view.backends.len(), healthy_count) {
        (0, _) => "None",
        (all, up) if up == all => "Healthy",
        (_, 0) => "Unhealthy",
        _ => "PartialHealth",
    };

    let mut out = Map::new();
    out.insert("ListenerId".into(), json!(listener.id));
    out.insert("Name".into(), json!(listener.name));
    out.insert("ListenerProtocol".into(), json!(listener.protocol));
    out.insert("ListenerPort".into(), json!(listener.port));
    out.insert("Certificates".into(), certificates_json(&view.bindings));
    render_fields(LISTENER_FIELDS, &listener.attrs, &mut out);
    out.insert(
        "Targets".into(),
        Value::Array(
            view.backends
                .iter()
                .map(|b| target_json(b, healthy(b)))
                .collect(),
        ),
    );
    out.insert(
        "Rules".into(),
        json!([default_rule(&listener.id, &view.backends)]),
    );
    out.insert("State".into(), json!(state));
    Value::Object(out)
}

/// `[{SSLId, IsDefault}]`: the default certificate first, then extension certificates in bind
/// order (certimate reads `IsDefault` to choose between replacing and adding).
fn certificates_json(bindings: &[Binding]) -> Value {
    let mut ordered: Vec<&Binding> = bindings.iter().collect();
    ordered.sort_by_key(|b| (b.role != BindingRole::AlbDefault, b.seq));
    Value::Array(
        ordered
            .iter()
            .map(|b| json!({"SSLId": b.ssl_id, "IsDefault": b.role == BindingRole::AlbDefault}))
            .collect(),
    )
}

/// The one rule certbind has: forward to every target. Every `Rule`/`RuleAction` field is
/// present, the unused configurations empty.
fn default_rule(listener_id: &str, backends: &[Backend]) -> Value {
    let targets: Vec<Value> = backends
        .iter()
        .map(|b| json!({"Id": b.id, "Weight": b.weight}))
        .collect();
    json!({
        "RuleId": format!("rule-{}", id_suffix(listener_id)),
        "IsDefault": true,
        "Pass": false,
        "RuleConditions": [],
        "RuleActions": [{
            "Type": "Forward",
            "Order": 0,
            "ForwardConfig": {"Targets": targets},
            // The data plane keeps pooled keep-alive connections to targets.
            "BackendConnectionConfig": {"EnablePersistentConnection": true},
            "ProxyBufferingConfig": {"CloseProxyBuffering": false},
            "CorsConfig": {
                "AllowCredentials": "", "AllowHeaders": [], "AllowMethods": [],
                "AllowOrigin": [], "ExposeHeaders": [], "MaxAge": 0,
            },
            "FixedResponseConfig": {"Content": "", "HttpCode": 0},
            "InsertHeaderConfig": {"Key": "", "Value": "", "ValueType": ""},
            "RemoveHeaderConfig": {"Key": ""},
        }],
    })
}

pub async fn update_listener_attribute(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let lb_id = args::required(p, "LoadBalancerId")?.to_string();
    let listener_id = args::required(p, "ListenerId")?.to_string();
    let name = word(p, "Name", MAX_TEXT)?;
    let attrs = read_fields(p, LISTENER_FIELDS)?;
    let mut certificates = args::list(p, "Certificates");
    if certificates.len() > 1 {
        return Err(ApiError::param_why(
            "Certificates",
            "a listener has one default certificate; add others with AddSSLBinding",
        ));
    }
    let default_certificate = certificates.pop();

    // The protocol and the attributes this call leaves alone decide what the change may be.
    let scope = ctx.scope.clone();
    let (lb, listener) = (lb_id.clone(), listener_id.clone());
    let current = ctx
        .db(move |store| listener_on(store, &scope, &lb, &listener))
        .await?;
    let protocol = current.listener.protocol.as_str();
    if default_certificate.is_some() && protocol != "HTTPS" {
        return Err(ApiError::param_why(
            "Certificates",
            "only HTTPS listeners take certificates",
        ));
    }
    let mut merged = current.listener.attrs.clone();
    fill_defaults(&mut merged, LISTENER_FIELDS);
    merged.extend(attrs.clone());
    check_listener(&merged, protocol, current.listener.port)?;

    let patch = ListenerPatch {
        name,
        protocol: None,
        attrs,
        default_certificate,
    };
    let scope = ctx.scope.clone();
    let synced = listener_id.clone();
    ctx.db(move |store| store.update_listener(&scope, LbKind::Alb, &lb_id, &listener_id, patch))
        .await?;
    ctx.app.plane.sync(ctx, vec![synced]).await?;
    Ok(Reply::new())
}

/// `listener_id` on ALB `lb_id` in scope, with the store's error order: unknown LB (4103), then
/// unknown listener or a listener of another LB (4143).
fn listener_on(
    store: &dyn Store,
    scope: &Scope,
    lb_id: &str,
    listener_id: &str,
) -> StoreResult<ListenerView> {
    let lbs = store.list_load_balancers(scope, LbKind::Alb, &[lb_id.to_string()], ONE)?;
    if lbs.items.is_empty() {
        return Err(not_found(Resource::LoadBalancer, lb_id));
    }
    let view = store
        .list_listeners(scope, LbKind::Alb, None, Some(listener_id), ONE)?
        .items
        .pop()
        .ok_or_else(|| not_found(Resource::Listener, listener_id))?;
    if view.lb.id != lb_id {
        return Err(StoreError::ListenerNotOnLb {
            listener_id: listener_id.to_string(),
            lb_id: lb_id.to_string(),
        });
    }
    Ok(view)
}

pub async fn delete_listener(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let lb_id = args::required(p, "LoadBalancerId")?.to_string();
    let listener_id = args::required(p, "ListenerId")?.to_string();
    // Required by the SDK schema, documented as "default false".
    let disable_redirects = args::opt_bool(p, "RelatedRedirectDisabled")?.unwrap_or(false);

    let scope = ctx.scope.clone();
    let (lb, listener) = (lb_id.clone(), listener_id.clone());
    let redirecting = ctx
        .db(move |store| {
            let all = store.list_listeners(&scope, LbKind::Alb, Some(&lb), None, EVERYTHING)?;
            let port = all
                .items
                .iter()
                .find(|view| view.listener.id == listener)
                .map(|view| i64::from(view.listener.port))
                .ok_or_else(|| not_found(Resource::Listener, &listener))?;
            Ok(all
                .items
                .iter()
                .filter(|view| {
                    let attrs = &view.listener.attrs;
                    view.listener.id != listener
                        && flag(attrs, "RedirectEnabled")
                        && int(attrs, "RedirectPort") == port
                })
                .map(|view| view.listener.id.clone())
                .collect::<Vec<String>>())
        })
        .await?;
    if !redirecting.is_empty() && !disable_redirects {
        return Err(ApiError::param_why(
            "RelatedRedirectDisabled",
            format!(
                "listener(s) [{}] redirect to this listener; set RelatedRedirectDisabled=true \
                 to turn those redirects off",
                redirecting.join(", ")
            ),
        ));
    }

    let scope = ctx.scope.clone();
    let (lb, listener, turned_off) = (lb_id.clone(), listener_id.clone(), redirecting.clone());
    ctx.db(move |store| {
        // Redirects first: should the delete then fail, the listener is still there and only
        // redirects the caller asked to drop are gone. (Not one transaction; see the report.)
        for other in &turned_off {
            let mut attrs = Attrs::new();
            attrs.insert("RedirectEnabled".into(), "false".into());
            let patch = ListenerPatch {
                attrs,
                ..ListenerPatch::default()
            };
            store.update_listener(&scope, LbKind::Alb, &lb, other, patch)?;
        }
        store.delete_listener(&scope, LbKind::Alb, &lb, &listener)
    })
    .await?;
    if !redirecting.is_empty() {
        ctx.app.plane.sync(ctx, redirecting).await?;
    }
    ctx.app.plane.remove(vec![listener_id]).await;
    Ok(Reply::new())
}

// ---- targets ------------------------------------------------------------------------------------

pub async fn add_targets(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let lb_id = args::required(p, "LoadBalancerId")?.to_string();
    let listener_id = args::required(p, "ListenerId")?.to_string();
    let items = p.struct_list("Targets");
    if items.is_empty() {
        return Err(ApiError::param("Targets"));
    }
    let mut new = Vec::with_capacity(items.len());
    let mut seen = HashSet::new();
    for (index, item) in items.iter().enumerate() {
        let item = Params::from_pairs(item.iter().map(|(k, v)| (*k, *v)));
        let target = read_target(&item).map_err(|err| within("Targets", index, err))?;
        if !seen.insert((target.ip.clone(), target.port)) {
            return Err(ApiError::param_why(
                format!("Targets.{index}"),
                format!("{}:{} is given twice", target.ip, target.port),
            ));
        }
        new.push(target);
    }
    let scope = ctx.scope.clone();
    let (lb, listener) = (lb_id.clone(), listener_id.clone());
    let added = ctx
        .db(move |store| store.add_backends(&scope, LbKind::Alb, &lb, &listener, new))
        .await?;
    ctx.app.plane.sync(ctx, vec![listener_id.clone()]).await?;
    let health: HashMap<String, bool> = ctx
        .app
        .plane
        .backend_health(&listener_id)
        .into_iter()
        .collect();
    let targets = added
        .iter()
        .map(|b| target_json(b, health.get(&b.id).copied().unwrap_or(true)))
        .collect();
    let mut reply = Reply::new();
    reply.insert("Targets".into(), Value::Array(targets));
    Ok(reply)
}

/// One `AddTargetsParamTargets` item (its fields without the `Targets.N.` prefix).
fn read_target(item: &Params) -> Result<NewBackend, ApiError> {
    let mut attrs = read_fields(item, TARGET_FIELDS)?;
    fill_defaults(&mut attrs, TARGET_FIELDS);
    // certbind has no hosts to look a resource up in: the data plane connects to an address.
    let by_id = args::opt(item, "ResourceId").and_then(|id| id.parse::<IpAddr>().ok());
    let ip = match (args::opt(item, "ResourceIP"), by_id) {
        (Some(text), _) => text
            .parse::<IpAddr>()
            .map_err(|_| ApiError::param_why("ResourceIP", "must be an IP address"))?,
        (None, Some(ip)) => ip,
        (None, None) => return Err(ApiError::param_why(
            "ResourceIP",
            "required: certbind reaches targets by address (or give an IP address as ResourceId)",
        )),
    };
    if ip.is_unspecified() || ip.is_multicast() {
        return Err(ApiError::param_why(
            "ResourceIP",
            "must be a unicast address",
        ));
    }
    Ok(NewBackend {
        ip: ip.to_string(),
        port: args::opt_port(item, "Port")?.unwrap_or(80),
        weight: args::opt_int_in(item, "Weight", 1, 100)?.unwrap_or(1),
        enabled: args::opt_bool(item, "Enabled")?.unwrap_or(true),
        attrs,
    })
}

/// Names a parameter error inside item `index` of the list `list` (`Targets.2.Port`).
fn within(list: &str, index: usize, err: ApiError) -> ApiError {
    match err {
        ApiError::InvalidParam { name, why } => ApiError::InvalidParam {
            name: format!("{list}.{index}.{name}"),
            why,
        },
        other => other,
    }
}

/// One `Target` (§5.3; also `TargetSet` in the AddTargets answer), every field present.
fn target_json(backend: &Backend, healthy: bool) -> Value {
    let mut out = Map::new();
    out.insert("Id".into(), json!(backend.id));
    out.insert("ResourceIP".into(), json!(backend.ip));
    out.insert("Port".into(), json!(backend.port));
    out.insert("Weight".into(), json!(backend.weight));
    out.insert("Enabled".into(), json!(backend.enabled));
    render_fields(TARGET_FIELDS, &backend.attrs, &mut out);
    out.insert("ResourceName".into(), json!(""));
    out.insert(
        "State".into(),
        json!(if healthy { "Healthy" } else { "Unhealthy" }),
    );
    Value::Object(out)
}

pub async fn remove_targets(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let lb_id = args::required(p, "LoadBalancerId")?.to_string();
    let listener_id = args::required(p, "ListenerId")?.to_string();
    let mut ids = args::list(p, "Ids");
    if ids.is_empty() {
        return Err(ApiError::param("Ids"));
    }
    let mut seen = HashSet::new();
    ids.retain(|id| seen.insert(id.clone()));
    if ids.len() > MAX_TARGETS_PER_CALL {
        return Err(ApiError::param_why(
            "Ids",
            format!("at most {MAX_TARGETS_PER_CALL} per call"),
        ));
    }
    let scope = ctx.scope.clone();
    let (lb, listener) = (lb_id, listener_id.clone());
    ctx.db(move |store| store.remove_backends(&scope, LbKind::Alb, &lb, &listener, &ids))
        .await?;
    ctx.app.plane.sync(ctx, vec![listener_id]).await?;
    Ok(Reply::new())
}

pub async fn update_targets_attribute(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let lb_id = args::required(p, "LoadBalancerId")?.to_string();
    let listener_id = args::required(p, "ListenerId")?.to_string();
    let items = p.struct_list("Targets");
    if items.is_empty() {
        return Err(ApiError::param("Targets"));
    }
    if items.len() > MAX_TARGETS_PER_CALL {
        return Err(ApiError::param_why(
            "Targets",
            format!("at most {MAX_TARGETS_PER_CALL} per call"),
        ));
    }
    let mut patches = Vec::with_capacity(items.len());
    let mut seen = HashSet::new();
    for (index, item) in items.iter().enumerate() {
        let item = Params::from_pairs(item.iter().map(|(k, v)| (*k, *v)));
        let patch = read_target_patch(&item).map_err(|err| within("Targets", index, err))?;
        if !seen.insert(patch.id.clone()) {
            return Err(ApiError::param_why(
                format!("Targets.{index}.Id"),
                format!("[{}] is given twice", patch.id),
            ));
        }
        patches.push(patch);
    }
    let scope = ctx.scope.clone();
    let (lb, listener) = (lb_id, listener_id.clone());
    ctx.db(move |store| store.update_backends(&scope, LbKind::Alb, &lb, &listener, patches))
        .await?;
    ctx.app.plane.sync(ctx, vec![listener_id]).await?;
    Ok(Reply::new())
}

/// One `UpdateTargetsAttributeParamTargets` item: `Id` plus only the fields it sets.
fn read_target_patch(item: &Params) -> Result<BackendPatch, ApiError> {
    let mut attrs = Attrs::new();
    if let Some(backup) = args::opt_bool(item, "IsBackup")? {
        attrs.insert("IsBackup".into(), backup.to_string());
    }
    Ok(BackendPatch {
        id: args::required(item, "Id")?.to_string(),
        port: None,
        weight: args::opt_int_in(item, "Weight", 1, 100)?,
        enabled: args::opt_bool(item, "Enabled")?,
        attrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Request pairs, then the protocol and the parameter the error must name.
    type RuleCase<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(pairs.iter().copied())
    }

    fn filled(pairs: &[(&str, &str)]) -> Attrs {
        let mut attrs = read_fields(&params(pairs), LISTENER_FIELDS).expect("valid");
        fill_defaults(&mut attrs, LISTENER_FIELDS);
        attrs
    }

    #[test]
    fn defaults_are_valid_values_of_their_own_kind() {
        for table in [LB_FIELDS, LISTENER_FIELDS, TARGET_FIELDS] {
            for field in table {
                let set = params(&[(field.wire, field.default)]);
                match field.kind {
                    // Text defaults may be empty; an empty Word counts as absent.
                    Kind::Word(_) | Kind::Text(_) if field.default.is_empty() => continue,
                    _ => {}
                }
                let read = field
                    .read(&set)
                    .unwrap_or_else(|err| panic!("{}: {err}", field.wire));
                assert_eq!(read.as_deref(), Some(field.default), "{}", field.wire);
            }
        }
        check_listener(&filled(&[]), "HTTP", 80).expect("defaults pass the listener rules");
        check_listener(&filled(&[]), "HTTPS", 443).expect("defaults pass the listener rules");
    }

    #[test]
    fn values_render_with_the_sdk_types() {
        let attrs = filled(&[
            ("IdleTimeout", "120"),
            ("HTTP2Enabled", "true"),
            ("HealthCheckConfig.Enabled", "false"),
            ("HealthCheckConfig.Type", "HTTP"),
        ]);
        let mut out = Map::new();
        render_fields(LISTENER_FIELDS, &attrs, &mut out);
        assert_eq!(out["IdleTimeout"], json!(120));
        assert_eq!(out["HTTP2Enabled"], json!(true));
        assert_eq!(out["Scheduler"], json!("Roundrobin"));
        let health = out["HealthCheckConfig"].as_object().expect("an object");
        assert_eq!(health["Enabled"], json!(false));
        assert_eq!(health["Type"], json!("HTTP"));
        assert_eq!(health["Interval"], json!(5));
        assert_eq!(health.len(), 12, "every HealthCheckConfigSet field");
        assert_eq!(out["StickinessConfig"].as_object().map(Map::len), Some(3));
        // Absent attributes render as their defaults, with the same types.
        let mut defaults = Map::new();
        render_fields(LISTENER_FIELDS, &Attrs::new(), &mut defaults);
        let mut expected = Map::new();
        render_fields(LISTENER_FIELDS, &filled(&[]), &mut expected);
        assert_eq!(defaults, expected);
    }

    #[test]
    fn bad_values_name_their_parameter() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("Scheduler", "Random")], "Scheduler"),
            (&[("IdleTimeout", "0")], "IdleTimeout"),
            (&[("IdleTimeout", "86401")], "IdleTimeout"),
            (&[("IdleTimeout", "1m")], "IdleTimeout"),
            (&[("HTTP2Enabled", "yes")], "HTTP2Enabled"),
            (
                &[("HealthCheckConfig.Type", "TCP")],
                "HealthCheckConfig.Type",
            ),
            (
                &[("StickinessConfig.Type", "Cookie")],
                "StickinessConfig.Type",
            ),
            (&[("RedirectPort", "70000")], "RedirectPort"),
        ];
        for (pairs, name) in cases {
            match read_fields(&params(pairs), LISTENER_FIELDS) {
                Err(ApiError::InvalidParam { name: got, .. }) => assert_eq!(got, *name),
                other => panic!("{pairs:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn listener_rules_hold_across_fields() {
        let cases: &[RuleCase] = &[
            (&[("HTTP2Enabled", "true")], "HTTP", "HTTP2Enabled"),
            (&[("RedirectEnabled", "true")], "HTTPS", "RedirectEnabled"),
            (
                &[("RedirectEnabled", "true"), ("RedirectPort", "80")],
                "HTTP",
                "RedirectPort",
            ),
            (
                &[("HealthCheckConfig.TimeOut", "5")],
                "HTTP",
                "HealthCheckConfig.TimeOut",
            ),
            (
                &[("HealthCheckConfig.Path", "health")],
                "HTTP",
                "HealthCheckConfig.Path",
            ),
            (
                &[("HealthCheckConfig.Path", "/a\r\nX: y")],
                "HTTP",
                "HealthCheckConfig.Path",
            ),
            (
                &[("HealthCheckConfig.Domain", "a b")],
                "HTTP",
                "HealthCheckConfig.Domain",
            ),
            (
                &[("HealthCheckConfig.ResponseCode", "ok")],
                "HTTP",
                "HealthCheckConfig.ResponseCode",
            ),
            (
                &[
                    ("StickinessConfig.Enabled", "true"),
                    ("StickinessConfig.Type", "UserDefined"),
                ],
                "HTTP",
                "StickinessConfig.CookieName",
            ),
        ];
        for (pairs, protocol, name) in cases {
            match check_listener(&filled(pairs), protocol, 80) {
                Err(ApiError::InvalidParam { name: got, .. }) => assert_eq!(got, *name),
                other => panic!("{pairs:?}: {other:?}"),
            }
        }
        let fine = filled(&[
            ("HTTP2Enabled", "false"),
            ("RedirectEnabled", "true"),
            ("HealthCheckConfig.ResponseCode", "2xx,3xx,404"),
            ("StickinessConfig.Enabled", "true"),
            ("StickinessConfig.Type", "UserDefined"),
            ("StickinessConfig.CookieName", "session"),
        ]);
        check_listener(&fine, "HTTP", 80).expect("valid");
    }

    #[test]
    fn targets_are_reached_by_address() {
        let read = |pairs: &[(&str, &str)]| read_target(&params(pairs));
        let target = read(&[("ResourceId", "uhost-1"), ("ResourceIP", "10.0.0.7")]).expect("valid");
        assert_eq!(
            (
                target.ip.as_str(),
                target.port,
                target.weight,
                target.enabled
            ),
            ("10.0.0.7", 80, 1, true)
        );
        assert_eq!(attr(&target.attrs, "ResourceType"), "UHost");
        assert_eq!(attr(&target.attrs, "IsBackup"), "false");
        let by_id = read(&[
            ("ResourceType", "IP"),
            ("ResourceId", "::1"),
            ("Port", "8080"),
        ])
        .expect("valid");
        assert_eq!((by_id.ip.as_str(), by_id.port), ("::1", 8080));
        for (pairs, name) in [
            (&[("ResourceId", "uhost-1")][..], "ResourceIP"),
            (&[("ResourceIP", "host.example")][..], "ResourceIP"),
            (&[("ResourceIP", "0.0.0.0")][..], "ResourceIP"),
            (
                &[("ResourceIP", "10.0.0.1"), ("Weight", "101")][..],
                "Weight",
            ),
            (&[("ResourceIP", "10.0.0.1"), ("Port", "0")][..], "Port"),
            (
                &[("ResourceIP", "10.0.0.1"), ("ResourceType", "ECS")][..],
                "ResourceType",
            ),
        ] {
            match read(pairs).map_err(|err| within("Targets", 3, err)) {
                Err(ApiError::InvalidParam { name: got, .. }) => {
                    assert_eq!(got, format!("Targets.3.{name}"))
                }
                other => panic!("{pairs:?}: {:?}", other.map(|t| t.ip)),
            }
        }
    }
}
