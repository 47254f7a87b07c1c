//! CLB actions: ULB instances, their VServers and the VServers' backends (spec §5.2; the backend
//! actions from the SDK docstrings of AllocateBackend/ReleaseBackend/UpdateBackendAttribute).
//!
//! It owns the CLB wire shapes (`ULBSet`, `ULBSimpleSet`, `ULBVServerSet`, `ULBBackendSet`) and the
//! checks on CLB-only attributes. The store keeps those attributes as text in `attrs`, keyed by
//! their wire names; the field tables below say how each is typed and defaulted on the wire.
//! Certificates (`ssl`), bindings (`binding`) and sockets (`control`) live elsewhere.

use std::collections::HashMap;
use std::net::IpAddr;

use serde_json::{json, Map, Value};

use super::ssl;
use crate::api::args;
use crate::api::error::ApiError;
use crate::api::params::Params;
use crate::api::{Ctx, Reply};
use crate::model::{Attrs, Backend, LbKind, LoadBalancer, Scope};
use crate::store::{
    BackendPatch, ListenerPatch, ListenerView, LoadBalancerPatch, NewBackend, NewListener,
    NewLoadBalancer, Page, Paging, Resource, Store, StoreError, StoreResult,
};

/// Names longer than this get RetCode 4114 (ULB error table).
const MAX_NAME: usize = 50;

/// "Everything": listings inside one answer (a ULB's VServers, a filtered scan) are not paged.
const EVERYTHING: Paging = Paging {
    offset: 0,
    limit: u32::MAX as usize,
};
const ONE: Paging = Paging {
    offset: 0,
    limit: 1,
};

const REQUEST_PROXY: &str = "RequestProxy";
const PACKETS_TRANSMIT: &str = "PacketsTransmit";
const LISTEN_TYPES: &[&str] = &[REQUEST_PROXY, PACKETS_TRANSMIT];
const PROTOCOLS: &[&str] = &["HTTP", "HTTPS", "TCP", "UDP"];
const METHODS: &[&str] = &[
    "Roundrobin",
    "Source",
    "ConsistentHash",
    "SourcePort",
    "ConsistentHashPort",
    "WeightRoundrobin",
    "Leastconn",
    "Backup",
];
/// Methods the CreateVServer docstring allows only with packet forwarding.
const PACKETS_ONLY_METHODS: &[&str] = &["ConsistentHash", "SourcePort", "ConsistentHashPort"];
const PERSISTENCE_TYPES: &[&str] = &["None", "ServerInsert", "UserDefined"];
const MONITOR_TYPES: &[&str] = &["Port", "Path", "Ping", "Customize"];
/// The AllocateBackend enum plus the types DescribeULB documents for existing backends.
const RESOURCE_TYPES: &[&str] = &[
    "UHost", "UNI", "UPM", "UDHost", "UDocker", "UHybrid", "CUBE", "IP",
];

/// The JSON type a family attribute is emitted as (the Go SDK fails the whole call on a mismatch).
#[derive(Clone, Copy)]
enum Wire {
    Text,
    Int,
}

/// A family attribute kept in `attrs`: wire name (also its key in `attrs`), JSON type, and the
/// value shown when the record does not carry it.
struct Field {
    name: &'static str,
    wire: Wire,
    default: &'static str,
}

const fn text(name: &'static str, default: &'static str) -> Field {
    Field {
        name,
        wire: Wire::Text,
        default,
    }
}

const fn int(name: &'static str, default: &'static str) -> Field {
    Field {
        name,
        wire: Wire::Int,
        default,
    }
}

/// `ULBSet`/`ULBSimpleSet` fields kept in `attrs`. Also stored, never shown: `ChargeType`,
/// `FirewallId` (shown through `FirewallSet`).
const ULB_FIELDS: &[Field] = &[
    text("ULBType", "OuterMode"),
    text("ListenType", REQUEST_PROXY),
    text("IPVersion", "IPv4"),
    text("VPCId", ""),
    text("SubnetId", ""),
    text("BusinessId", ""),
];

/// `ULBVServerSet` fields kept in `attrs`.
const VSERVER_FIELDS: &[Field] = &[
    text("ListenType", REQUEST_PROXY),
    text("Method", "Roundrobin"),
    text("PersistenceType", "None"),
    text("PersistenceInfo", ""),
    int("ClientTimeout", "60"),
    text("MonitorType", "Port"),
    text("Domain", ""),
    text("Path", ""),
    text("RequestMsg", ""),
    text("ResponseMsg", ""),
    int("EnableHTTP2", "0"),
    int("EnableCompression", "0"),
    int("ForwardPort", "0"),
];

/// `ULBBackendSet` fields kept in `attrs` (the address, port, weight and switch are columns).
const BACKEND_FIELDS: &[Field] = &[
    text("ResourceType", "UHost"),
    text("ResourceId", ""),
    text("ResourceName", ""),
    int("IsBackup", "0"),
    text("SubnetId", ""),
    text("VPCId", ""),
    text("SubResourceId", ""),
    text("SubResourceName", ""),
    text("SubResourceType", ""),
];

fn attr<'a>(attrs: &'a Attrs, fields: &[Field], name: &str) -> &'a str {
    attrs.get(name).map(String::as_str).unwrap_or_else(|| {
        fields
            .iter()
            .find(|f| f.name == name)
            .map_or("", |f| f.default)
    })
}

fn render_fields(out: &mut Map<String, Value>, fields: &[Field], attrs: &Attrs) {
    for field in fields {
        let text = attrs.get(field.name).map_or(field.default, String::as_str);
        let value = match field.wire {
            Wire::Text => Value::String(text.to_string()),
            // Values are checked on the way in; a bad one (hand-edited store) shows the default.
            Wire::Int => Value::from(
                text.parse::<i64>()
                    .unwrap_or_else(|_| field.default.parse().unwrap_or(0)),
            ),
        };
        out.insert(field.name.to_string(), value);
    }
}

fn put(attrs: &mut Attrs, name: &str, value: impl Into<String>) {
    attrs.insert(name.to_string(), value.into());
}

/// An optional 0/1 switch sent as an integer (`Enabled`, `IsBackup`, `EnableHTTP2`, …).
fn switch(p: &Params, name: &str) -> Result<Option<i64>, ApiError> {
    args::opt_int_in(p, name, 0, 1)
}

fn lb_not_found(lb_id: &str) -> ApiError {
    ApiError::Store(StoreError::NotFound {
        kind: Resource::LoadBalancer,
        id: lb_id.to_string(),
    })
}

// ---- ULB instances ----

pub async fn create_ulb(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let name = args::name(p, "ULBName", MAX_NAME)?.unwrap_or_else(|| "ULB".to_string());
    let tag = args::opt(p, "Tag").unwrap_or("Default").to_string();
    let remark = args::opt(p, "Remark").unwrap_or("").to_string();
    let ulb_type = ulb_type(p)?;
    // Spec §5.2: outer CLBs default to request proxy, inner ones to packet forwarding.
    let listen_type = args::opt_enum(p, "ListenType", LISTEN_TYPES)?.unwrap_or(match ulb_type {
        "InnerMode" => PACKETS_TRANSMIT,
        _ => REQUEST_PROXY,
    });
    let charge_type = args::opt_enum(p, "ChargeType", &["Year", "Month", "Dynamic"])?;
    if args::opt(p, "IPVersion").is_some_and(|v| v != "IPv4") {
        return Err(ApiError::param_why("IPVersion", "only IPv4 is served"));
    }
    if args::opt(p, "PrivateIp").is_some() {
        return Err(ApiError::param_why(
            "PrivateIp",
            "certbind allocates load balancer addresses from its address pool",
        ));
    }
    let mut attrs = Attrs::new();
    put(&mut attrs, "ULBType", ulb_type);
    put(&mut attrs, "ListenType", listen_type);
    put(&mut attrs, "IPVersion", "IPv4");
    put(&mut attrs, "ChargeType", charge_type.unwrap_or("Dynamic"));
    for name in ["VPCId", "SubnetId", "BusinessId", "FirewallId"] {
        if let Some(value) = args::opt(p, name) {
            put(&mut attrs, name, value);
        }
    }
    let new = NewLoadBalancer {
        kind: LbKind::Clb,
        name,
        tag,
        remark,
        attrs,
    };
    let scope = ctx.scope.clone();
    let lb = ctx
        .db(move |store| store.create_load_balancer(&scope, new))
        .await?;
    let mut reply = Reply::new();
    reply.insert("ULBId".into(), Value::String(lb.id));
    reply.insert("IPv6AddressId".into(), Value::String(String::new()));
    Ok(reply)
}

/// `OuterMode`/`InnerMode` ("Yes"/"No") → `ULBType`. Outer is the default; "OuterMode=No" alone
/// asks for an inner CLB; contradictions are refused rather than guessed.
fn ulb_type(p: &Params) -> Result<&'static str, ApiError> {
    let outer = args::opt_enum(p, "OuterMode", &["Yes", "No"])?;
    let inner = args::opt_enum(p, "InnerMode", &["Yes", "No"])?;
    match (outer, inner) {
        (Some("Yes"), Some("Yes")) | (Some("No"), Some("No")) => Err(ApiError::param_why(
            "InnerMode",
            "give exactly one of OuterMode=Yes and InnerMode=Yes",
        )),
        (_, Some("Yes")) | (Some("No"), _) => Ok("InnerMode"),
        _ => Ok("OuterMode"),
    }
}

/// Which ULBs a DescribeULB[Simple] asks for.
struct UlbQuery {
    ids: Vec<String>,
    /// `VPCId`, `SubnetId`, `BusinessId` equality filters on `attrs`.
    filters: Vec<(&'static str, String)>,
    paging: Paging,
}

impl UlbQuery {
    fn parse(p: &Params, default_limit: usize) -> Result<UlbQuery, ApiError> {
        let filters = ["VPCId", "SubnetId", "BusinessId"]
            .into_iter()
            .filter_map(|name| args::opt(p, name).map(|value| (name, value.to_string())))
            .collect();
        Ok(UlbQuery {
            ids: args::opt(p, "ULBId")
                .map(str::to_owned)
                .into_iter()
                .collect(),
            filters,
            paging: args::paging(p, default_limit)?,
        })
    }

    /// The page of matching ULBs. Unknown ids match nothing (RetCode 0, empty DataSet: what
    /// terraform's delete-wait and read accept). The store cannot filter on attributes, so a
    /// filtered query scans the scope and pages here.
    fn run(&self, store: &dyn Store, scope: &Scope) -> StoreResult<Page<LoadBalancer>> {
        if self.filters.is_empty() {
            return store.list_load_balancers(scope, LbKind::Clb, &self.ids, self.paging);
        }
        let all = store.list_load_balancers(scope, LbKind::Clb, &self.ids, EVERYTHING)?;
        let matching: Vec<LoadBalancer> = all
            .items
            .into_iter()
            .filter(|lb| {
                self.filters
                    .iter()
                    .all(|(name, value)| attr(&lb.attrs, ULB_FIELDS, name) == value)
            })
            .collect();
        let total = matching.len();
        Ok(Page {
            items: matching
                .into_iter()
                .skip(self.paging.offset)
                .take(self.paging.limit)
                .collect(),
            total,
        })
    }
}

pub async fn describe_ulb(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let query = UlbQuery::parse(p, 20)?;
    let scope = ctx.scope.clone();
    let (found, total) = ctx
        .db(move |store| {
            let page = query.run(store, &scope)?;
            let mut found = Vec::with_capacity(page.items.len());
            for lb in page.items {
                match store.list_listeners(&scope, LbKind::Clb, Some(&lb.id), None, EVERYTHING) {
                    Ok(vservers) => found.push((lb, vservers.items)),
                    // Deleted between the two reads: as if it had not been listed.
                    Err(StoreError::NotFound { .. }) => continue,
                    Err(err) => return Err(err),
                }
            }
            Ok((found, page.total))
        })
        .await?;
    let views: Vec<&ListenerView> = found.iter().flat_map(|(_, vservers)| vservers).collect();
    let certificates = certificates_of(ctx, &views).await?;
    let data: Vec<Value> = found
        .iter()
        .map(|(lb, vservers)| {
            let mut set = ulb_common(lb);
            // Deprecated in the SDK models, still declared: the name again, no expiry, no resources.
            set.insert("ULBName".into(), Value::String(lb.name.clone()));
            set.insert("ExpireTime".into(), json!(0));
            set.insert("Resource".into(), json!([]));
            let vserver_sets = vservers
                .iter()
                .map(|view| vserver_set(ctx, view, &certificates))
                .collect();
            set.insert("VServerSet".into(), Value::Array(vserver_sets));
            Value::Object(set)
        })
        .collect();
    let mut reply = Reply::new();
    reply.insert("TotalCount".into(), json!(total));
    reply.insert("DataSet".into(), Value::Array(data));
    Ok(reply)
}

pub async fn describe_ulb_simple(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let query = UlbQuery::parse(p, 10_000)?;
    let scope = ctx.scope.clone();
    let (found, total) = ctx
        .db(move |store| {
            let page = query.run(store, &scope)?;
            let mut found = Vec::with_capacity(page.items.len());
            for lb in page.items {
                match store.list_listeners(&scope, LbKind::Clb, Some(&lb.id), None, ONE) {
                    Ok(vservers) => found.push((lb, vservers.total)),
                    Err(StoreError::NotFound { .. }) => continue,
                    Err(err) => return Err(err),
                }
            }
            Ok((found, page.total))
        })
        .await?;
    let data: Vec<Value> = found
        .iter()
        .map(|(lb, vserver_count)| {
            let mut set = ulb_common(lb);
            set.insert("VServerCount".into(), json!(vserver_count));
            set.insert("WAFMode".into(), json!("NoWAF"));
            Value::Object(set)
        })
        .collect();
    let mut reply = Reply::new();
    reply.insert("TotalCount".into(), json!(total));
    reply.insert("DataSet".into(), Value::Array(data));
    Ok(reply)
}

/// The fields `ULBSet` and `ULBSimpleSet` share.
///
/// certbind has no EIPs: the LB's `address` (from the store's pool) is where its VServers
/// listen, so it is both `PrivateIP` and the one `IPSet` entry, with an `EIPId` derived from the
/// ULB id so it is stable across calls and restarts. terraform (`ip_set`, `private_ip`) and the
/// CLI then show an address clients can actually reach, whatever the `ULBType`.
fn ulb_common(lb: &LoadBalancer) -> Map<String, Value> {
    let mut set = Map::new();
    set.insert("ULBId".into(), json!(lb.id));
    set.insert("Name".into(), json!(lb.name));
    set.insert("Tag".into(), json!(lb.tag));
    set.insert("Remark".into(), json!(lb.remark));
    set.insert("CreateTime".into(), json!(lb.created_at));
    set.insert("PrivateIP".into(), json!(lb.address));
    set.insert(
        "IPSet".into(),
        json!([{
            "EIP": lb.address,
            "EIPId": format!("eip-{}", lb.id.strip_prefix("ulb-").unwrap_or(&lb.id)),
            "OperatorName": "Bgp",
            "Bandwidth": 0,
            "BandwidthType": 0,
        }]),
    );
    set.insert("Bandwidth".into(), json!(0));
    set.insert("BandwidthType".into(), json!(0));
    set.insert("EnableLog".into(), json!(0));
    set.insert(
        "LogSet".into(),
        json!({"BucketName": "", "TokenID": "", "TokenName": ""}),
    );
    let firewalls: Vec<Value> = lb
        .attrs
        .get("FirewallId")
        .map(|id| json!({"FirewallId": id, "FirewallName": ""}))
        .into_iter()
        .collect();
    set.insert("FirewallSet".into(), Value::Array(firewalls));
    set.insert("SnatIps".into(), json!([]));
    render_fields(&mut set, ULB_FIELDS, &lb.attrs);
    set
}

pub async fn update_ulb_attribute(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let lb_id = args::required(p, "ULBId")?.to_string();
    let patch = LoadBalancerPatch {
        name: args::name(p, "Name", MAX_NAME)?,
        tag: args::opt(p, "Tag").map(str::to_owned),
        remark: args::opt(p, "Remark").map(str::to_owned),
        attrs: Attrs::new(),
    };
    // Turning off what certbind never has is fine; turning it on is refused, not ignored.
    if switch(p, "EnableLog")? == Some(1) {
        return Err(ApiError::param_why(
            "EnableLog",
            "log upload to a bucket is not supported",
        ));
    }
    if args::opt_enum(p, "IsWAFOn", &["Yes", "No"])? == Some("Yes") {
        return Err(ApiError::param_why("IsWAFOn", "WAF is not supported"));
    }
    let scope = ctx.scope.clone();
    ctx.db(move |store| store.update_load_balancer(&scope, LbKind::Clb, &lb_id, patch))
        .await?;
    Ok(Reply::new())
}

/// Deletes the ULB with its VServers, backends and certificate bindings (spec §4.2 [REC]), then
/// closes the VServers' sockets.
pub async fn delete_ulb(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let lb_id = args::required(p, "ULBId")?.to_string();
    // Accepted for the SDKs' sake; certbind has no EIP to release.
    args::opt_bool(p, "ReleaseEip")?;
    let scope = ctx.scope.clone();
    let closed = ctx
        .db(move |store| store.delete_load_balancer(&scope, LbKind::Clb, &lb_id))
        .await?;
    ctx.app.plane.remove(closed).await;
    Ok(Reply::new())
}

// ---- VServers ----

pub async fn create_vserver(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let lb_id = args::required(p, "ULBId")?.to_string();
    let protocol = protocol(p)?.unwrap_or("HTTP");
    let port = args::opt_port(p, "FrontendPort")?.unwrap_or(80);
    let name = args::name(p, "VServerName", MAX_NAME)?.unwrap_or_else(|| "VServer".to_string());
    let requested_listen_type = args::opt_enum(p, "ListenType", LISTEN_TYPES)?;

    let lb = load_balancer(ctx, &lb_id).await?;
    let listen_type = attr(&lb.attrs, ULB_FIELDS, "ListenType");
    // terraform reads the ULB's ListenType and sends it back; a different one is a client error.
    if let Some(requested) = requested_listen_type.filter(|r| *r != listen_type) {
        return Err(ApiError::param_why(
            "ListenType",
            format!("{requested} does not match the load balancer's {listen_type}"),
        ));
    }
    check_protocol(protocol, listen_type)?;
    let attrs = vserver_attrs(p, protocol, listen_type, &Attrs::new())?;

    // The port is taken on the host before the commit, so a clash with anything on the machine
    // is a clean 4107 and nothing is written.
    let reservation = ctx.app.plane.reserve(&lb.address, port)?;
    let new = NewListener {
        name,
        protocol: protocol.to_string(),
        port,
        attrs,
        default_certificate: None,
    };
    let scope = ctx.scope.clone();
    let listener = ctx
        .db(move |store| store.create_listener(&scope, LbKind::Clb, &lb_id, new))
        .await?;
    let vserver_id = listener.id;
    ctx.app
        .plane
        .open(ctx, vserver_id.clone(), reservation)
        .await?;
    let mut reply = Reply::new();
    reply.insert("VServerId".into(), Value::String(vserver_id));
    Ok(reply)
}

/// `Protocol`, upper-cased (the store keeps it so; clients send both cases).
fn protocol(p: &Params) -> Result<Option<&'static str>, ApiError> {
    match args::opt(p, "Protocol") {
        None => Ok(None),
        Some(value) => PROTOCOLS
            .iter()
            .find(|known| known.eq_ignore_ascii_case(value))
            .map(|known| Some(*known))
            .ok_or_else(|| {
                ApiError::param_why(
                    "Protocol",
                    format!("must be one of {}", PROTOCOLS.join(", ")),
                )
            }),
    }
}

/// HTTP/HTTPS need request proxying (4144, the ULB's own code for it); UDP needs packet forwarding.
fn check_protocol(protocol: &str, listen_type: &str) -> Result<(), ApiError> {
    match (protocol, listen_type) {
        ("HTTP" | "HTTPS", PACKETS_TRANSMIT) => Err(ApiError::ProtocolNotSupported(format!(
            "Protocol [{protocol}] needs ListenType {REQUEST_PROXY}: 报文转发模式不支持HTTP/HTTPS协议"
        ))),
        ("UDP", REQUEST_PROXY) => Err(ApiError::param_why(
            "Protocol",
            format!("UDP needs ListenType {PACKETS_TRANSMIT}"),
        )),
        _ => Ok(()),
    }
}

/// The VServer attributes after applying the request to `current` (empty on create, so every
/// field gets its default). Every value and combination is checked here, before any write.
fn vserver_attrs(
    p: &Params,
    protocol: &str,
    listen_type: &str,
    current: &Attrs,
) -> Result<Attrs, ApiError> {
    let proxy = listen_type == REQUEST_PROXY;
    let http = matches!(protocol, "HTTP" | "HTTPS");
    let kept = |name: &str| current.get(name).map(String::as_str);
    let mut attrs = Attrs::new();
    put(&mut attrs, "ListenType", listen_type);

    let method = args::opt_enum(p, "Method", METHODS)?
        .or(kept("Method"))
        .unwrap_or("Roundrobin");
    if proxy && PACKETS_ONLY_METHODS.contains(&method) {
        return Err(ApiError::param_why(
            "Method",
            format!("{method} needs ListenType {PACKETS_TRANSMIT}"),
        ));
    }
    if !proxy && method == "Leastconn" {
        return Err(ApiError::param_why(
            "Method",
            format!("Leastconn needs ListenType {REQUEST_PROXY}"),
        ));
    }
    put(&mut attrs, "Method", method);

    let persistence = args::opt_enum(p, "PersistenceType", PERSISTENCE_TYPES)?
        .or(kept("PersistenceType"))
        .unwrap_or("None");
    // The key only means something for UserDefined, and is required there.
    let info = match persistence {
        "UserDefined" => args::opt(p, "PersistenceInfo")
            .or(kept("PersistenceInfo").filter(|i| !i.is_empty()))
            .ok_or_else(|| {
                ApiError::param_why(
                    "PersistenceInfo",
                    "required with PersistenceType UserDefined",
                )
            })?,
        _ => "",
    };
    put(&mut attrs, "PersistenceType", persistence);
    put(&mut attrs, "PersistenceInfo", info);

    let timeout = match args::opt_int(p, "ClientTimeout")? {
        Some(t) if proxy && !(1..=86_400).contains(&t) => {
            return Err(ApiError::param_why(
                "ClientTimeout",
                "must be between 1 and 86400",
            ))
        }
        Some(t) if !proxy && t != 0 && !(60..=900).contains(&t) => {
            return Err(ApiError::param_why(
                "ClientTimeout",
                "must be 0 or between 60 and 900",
            ))
        }
        Some(t) => t.to_string(),
        None => kept("ClientTimeout").unwrap_or("60").to_string(),
    };
    put(&mut attrs, "ClientTimeout", timeout);

    // Which health checks fit which VServer (CreateVServer docstring).
    let monitors: &[&str] = match (proxy, protocol) {
        (_, "TCP") => &["Port"],
        (true, _) => &["Port", "Path"],
        (false, _) => &["Ping", "Port", "Customize"],
    };
    let monitor = args::opt_enum(p, "MonitorType", MONITOR_TYPES)?
        .or(kept("MonitorType"))
        .unwrap_or(monitors[0]);
    if !monitors.contains(&monitor) {
        return Err(ApiError::param_why(
            "MonitorType",
            format!(
                "{protocol} on {listen_type} takes one of {}",
                monitors.join(", ")
            ),
        ));
    }
    put(&mut attrs, "MonitorType", monitor);
    let path = args::opt(p, "Path").or(kept("Path").filter(|p| !p.is_empty()));
    if path.is_some_and(|path| !path.starts_with('/')) {
        return Err(ApiError::param_why("Path", "must start with /"));
    }
    let path = path.unwrap_or(if monitor == "Path" { "/" } else { "" });
    put(&mut attrs, "Path", path);
    for name in ["Domain", "RequestMsg", "ResponseMsg"] {
        put(
            &mut attrs,
            name,
            args::opt(p, name).or(kept(name)).unwrap_or(""),
        );
    }

    let http2 = switch(p, "EnableHTTP2")?;
    if http2 == Some(1) && protocol != "HTTPS" {
        return Err(ApiError::param_why(
            "EnableHTTP2",
            "HTTP/2 is offered on HTTPS VServers only",
        ));
    }
    let compression = switch(p, "EnableCompression")?;
    if compression == Some(1) && !http {
        return Err(ApiError::param_why(
            "EnableCompression",
            "needs an HTTP or HTTPS VServer",
        ));
    }
    let forward = args::opt_int_in(p, "ForwardPort", 0, 65_535)?;
    if forward.is_some_and(|port| port != 0) && protocol != "HTTP" {
        return Err(ApiError::param_why(
            "ForwardPort",
            "only HTTP VServers redirect",
        ));
    }
    for (name, value) in [
        ("EnableHTTP2", http2),
        ("EnableCompression", compression),
        ("ForwardPort", forward),
    ] {
        let value = value.map(|v| v.to_string());
        put(
            &mut attrs,
            name,
            value.as_deref().or(kept(name)).unwrap_or("0"),
        );
    }

    // One security policy exists: the default one, which DescribeVServer shows for HTTPS.
    if args::opt(p, "SecurityPolicyId").is_some_and(|id| id != "Default") {
        return Err(ApiError::param_why(
            "SecurityPolicyId",
            "only the Default policy exists",
        ));
    }
    Ok(attrs)
}

pub async fn describe_vserver(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let lb_id = args::opt(p, "ULBId").map(str::to_owned);
    let vserver_id = args::opt(p, "VServerId").map(str::to_owned);
    if lb_id.is_none() && vserver_id.is_none() {
        return Err(ApiError::param_why(
            "ULBId",
            "give ULBId, VServerId or both",
        ));
    }
    // Undocumented default: every VServer (the product quota is 50 per ULB), so a client that
    // does not page still sees them all.
    let paging = args::paging(p, 10_000)?;
    let scope = ctx.scope.clone();
    let page = ctx
        .db(move |store| {
            // An unknown ULB is 4103 (terraform's "not found"); an unknown VServer, or one of
            // another ULB, on a known ULB is RetCode 0 with an empty DataSet (also accepted).
            if let Some(lb_id) = &lb_id {
                let ids = [lb_id.clone()];
                if store
                    .list_load_balancers(&scope, LbKind::Clb, &ids, ONE)?
                    .items
                    .is_empty()
                {
                    return Err(StoreError::NotFound {
                        kind: Resource::LoadBalancer,
                        id: lb_id.clone(),
                    });
                }
            }
            let Some(vserver_id) = &vserver_id else {
                return store.list_listeners(&scope, LbKind::Clb, lb_id.as_deref(), None, paging);
            };
            // One VServer at most: find it, then page the zero-or-one result here.
            let found = match store.list_listeners(&scope, LbKind::Clb, None, Some(vserver_id), ONE)
            {
                Ok(page) => page.items,
                Err(StoreError::NotFound {
                    kind: Resource::Listener,
                    ..
                }) => Vec::new(),
                Err(err) => return Err(err),
            };
            let matching: Vec<ListenerView> = found
                .into_iter()
                .filter(|view| lb_id.as_ref().is_none_or(|lb| *lb == view.listener.lb_id))
                .collect();
            let total = matching.len();
            Ok(Page {
                items: matching
                    .into_iter()
                    .skip(paging.offset)
                    .take(paging.limit)
                    .collect(),
                total,
            })
        })
        .await?;
    let views: Vec<&ListenerView> = page.items.iter().collect();
    let certificates = certificates_of(ctx, &views).await?;
    let data: Vec<Value> = page
        .items
        .iter()
        .map(|view| vserver_set(ctx, view, &certificates))
        .collect();
    let mut reply = Reply::new();
    reply.insert("TotalCount".into(), json!(page.total));
    reply.insert("DataSet".into(), Value::Array(data));
    Ok(reply)
}

/// The `ULBSSLSet` of every certificate bound to `views`, by SSLId, fetched in one store call.
async fn certificates_of(
    ctx: &Ctx,
    views: &[&ListenerView],
) -> Result<HashMap<String, Value>, ApiError> {
    let mut ssl_ids: Vec<String> = Vec::new();
    for binding in views.iter().flat_map(|view| &view.bindings) {
        if !ssl_ids.contains(&binding.ssl_id) {
            ssl_ids.push(binding.ssl_id.clone());
        }
    }
    let sets = ssl::certificate_sets(ctx, ssl_ids).await?;
    Ok(sets
        .into_iter()
        .filter_map(|set| Some((set.get("SSLId")?.as_str()?.to_string(), set)))
        .collect())
}

/// One VServer as a `ULBVServerSet` (DescribeVServer and DescribeULB's `VServerSet`).
fn vserver_set(ctx: &Ctx, view: &ListenerView, certificates: &HashMap<String, Value>) -> Value {
    let listener = &view.listener;
    // Backends not checked yet count as healthy (Plane::backend_health).
    let health: HashMap<String, bool> = ctx
        .app
        .plane
        .backend_health(&listener.id)
        .into_iter()
        .collect();
    let healthy = |backend: &Backend| health.get(&backend.id).copied().unwrap_or(true);
    let failing = view.backends.iter().filter(|b| !healthy(b)).count();
    // SDK docstring (spec §8): 0 all healthy (or no backends), 1 all failing, 2 some failing.
    let status = match failing {
        0 => 0,
        n if n == view.backends.len() => 1,
        _ => 2,
    };
    let https = listener.protocol == "HTTPS";

    let mut set = Map::new();
    set.insert("VServerId".into(), json!(listener.id));
    set.insert("VServerName".into(), json!(listener.name));
    set.insert("ULBId".into(), json!(listener.lb_id));
    set.insert("Protocol".into(), json!(listener.protocol));
    set.insert("FrontendPort".into(), json!(listener.port));
    set.insert("Status".into(), json!(status));
    render_fields(&mut set, VSERVER_FIELDS, &listener.attrs);
    let ssl_set: Vec<Value> = view
        .bindings
        .iter()
        .filter_map(|binding| certificates.get(&binding.ssl_id).cloned())
        .collect();
    set.insert("SSLSet".into(), Value::Array(ssl_set));
    let backend_sets = view
        .backends
        .iter()
        .map(|backend| backend_set(backend, healthy(backend)))
        .collect();
    set.insert("BackendSet".into(), Value::Array(backend_sets));
    set.insert("PolicySet".into(), Value::Array(default_policy(view)));
    set.insert(
        "SecurityPolicy".into(),
        json!({
            "SecurityPolicyId": if https { "Default" } else { "" },
            "SecurityPolicyName": if https { "Default" } else { "" },
            "SecurityPolicyType": 0,
            // rustls serves TLS 1.2 and 1.3 only.
            "TLSVersion": if https { "TLSv1.2" } else { "" },
            "SSLCiphers": [],
        }),
    );
    Value::Object(set)
}

fn backend_set(backend: &Backend, healthy: bool) -> Value {
    let mut set = Map::new();
    set.insert("BackendId".into(), json!(backend.id));
    set.insert("PrivateIP".into(), json!(backend.ip));
    set.insert("Port".into(), json!(backend.port));
    set.insert("Weight".into(), json!(backend.weight));
    set.insert("Enabled".into(), json!(i64::from(backend.enabled)));
    set.insert("Status".into(), json!(if healthy { 0 } else { 1 }));
    render_fields(&mut set, BACKEND_FIELDS, &backend.attrs);
    Value::Object(set)
}

/// Content forwarding (L7 only): certbind has no custom policies, so an HTTP/HTTPS VServer shows
/// just the Default policy, which forwards to every backend, as the real service lists it.
fn default_policy(view: &ListenerView) -> Vec<Value> {
    if !matches!(view.listener.protocol.as_str(), "HTTP" | "HTTPS") {
        return Vec::new();
    }
    let backends: Vec<Value> = view
        .backends
        .iter()
        .map(|backend| {
            let attrs = &backend.attrs;
            json!({
                "BackendId": backend.id,
                "ObjectId": attr(attrs, BACKEND_FIELDS, "ResourceId"),
                "Port": backend.port,
                "PrivateIP": backend.ip,
                "ResourceName": attr(attrs, BACKEND_FIELDS, "ResourceName"),
                "ResourceType": attr(attrs, BACKEND_FIELDS, "ResourceType"),
                "SubResourceId": attr(attrs, BACKEND_FIELDS, "SubResourceId"),
                "SubResourceName": attr(attrs, BACKEND_FIELDS, "SubResourceName"),
                "SubResourceType": attr(attrs, BACKEND_FIELDS, "SubResourceType"),
            })
        })
        .collect();
    vec![json!({
        "PolicyId": "",
        "PolicyType": "Default",
        "Type": "",
        "Match": "",
        "DomainMatchMode": "",
        "PolicyPriority": 0,
        "TotalCount": backends.len(),
        "VServerId": view.listener.id,
        "BackendSet": backends,
    })]
}

pub async fn update_vserver_attribute(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let lb_id = args::required(p, "ULBId")?.to_string();
    let vserver_id = args::required(p, "VServerId")?.to_string();
    let name = args::name(p, "VServerName", MAX_NAME)?;
    let requested_protocol = protocol(p)?;

    let view = vserver(ctx, &lb_id, &vserver_id).await?;
    let listener = &view.listener;
    // A protocol change would change what the socket speaks and drop certificates; terraform
    // replaces the listener instead. Sending the current protocol is fine.
    if requested_protocol.is_some_and(|wanted| wanted != listener.protocol) {
        return Err(ApiError::param_why(
            "Protocol",
            "the protocol of a VServer cannot be changed; create a new VServer",
        ));
    }
    let listen_type = attr(&listener.attrs, VSERVER_FIELDS, "ListenType");
    let wanted = vserver_attrs(p, &listener.protocol, listen_type, &listener.attrs)?;
    // Only what changes is written: attrs merge in the store, so a concurrent update of other
    // fields survives.
    let attrs: Attrs = wanted
        .into_iter()
        .filter(|(key, value)| listener.attrs.get(key) != Some(value))
        .collect();
    let patch = ListenerPatch {
        name,
        protocol: None,
        attrs,
        default_certificate: None,
    };
    let scope = ctx.scope.clone();
    let synced = vserver_id.clone();
    ctx.db(move |store| store.update_listener(&scope, LbKind::Clb, &lb_id, &vserver_id, patch))
        .await?;
    ctx.app.plane.sync(ctx, vec![synced]).await?;
    Ok(Reply::new())
}

/// Deletes the VServer with its backends and certificate binding (spec §4.2 [REC]).
pub async fn delete_vserver(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let lb_id = args::required(p, "ULBId")?.to_string();
    let vserver_id = args::required(p, "VServerId")?.to_string();
    let scope = ctx.scope.clone();
    let closed = vserver_id.clone();
    ctx.db(move |store| store.delete_listener(&scope, LbKind::Clb, &lb_id, &vserver_id))
        .await?;
    ctx.app.plane.remove(vec![closed]).await;
    Ok(Reply::new())
}

async fn load_balancer(ctx: &Ctx, lb_id: &str) -> Result<LoadBalancer, ApiError> {
    let scope = ctx.scope.clone();
    let ids = [lb_id.to_string()];
    let page = ctx
        .db(move |store| store.list_load_balancers(&scope, LbKind::Clb, &ids, ONE))
        .await?;
    page.items
        .into_iter()
        .next()
        .ok_or_else(|| lb_not_found(lb_id))
}

/// The VServer `vserver_id` of ULB `lb_id`: 4103 for an unknown ULB, 4143 for a VServer that is
/// unknown or on another ULB.
async fn vserver(ctx: &Ctx, lb_id: &str, vserver_id: &str) -> Result<ListenerView, ApiError> {
    let scope = ctx.scope.clone();
    let (lb, id) = (lb_id.to_string(), vserver_id.to_string());
    ctx.db(move |store| {
        let ids = [lb.clone()];
        if store
            .list_load_balancers(&scope, LbKind::Clb, &ids, ONE)?
            .items
            .is_empty()
        {
            return Err(StoreError::NotFound {
                kind: Resource::LoadBalancer,
                id: lb,
            });
        }
        let view = store
            .list_listeners(&scope, LbKind::Clb, Some(&lb), Some(&id), ONE)?
            .items
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::NotFound {
                kind: Resource::Listener,
                id: id.clone(),
            })?;
        if view.listener.lb_id != lb {
            return Err(StoreError::ListenerNotOnLb {
                listener_id: id,
                lb_id: lb,
            });
        }
        Ok(view)
    })
    .await
}

// ---- backends ----

/// Adds one backend. certbind has no hosts to look a `ResourceId` up in: the data plane connects
/// to an IP address, taken from `ResourceIP` (the SDK's name, for ResourceType IP/UHybrid), else
/// `PrivateIP` (the name DescribeVServer shows it under), else `ResourceId` when it is itself an
/// IP address (terraform's `ucloud_lb_attachment` and the CLI only send `ResourceId`). Anything
/// else is RetCode 230 naming `ResourceIP`.
pub async fn allocate_backend(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let lb_id = args::required(p, "ULBId")?.to_string();
    let vserver_id = args::required(p, "VServerId")?.to_string();
    let resource_type = args::opt_enum(p, "ResourceType", RESOURCE_TYPES)?.unwrap_or("UHost");
    let resource_id = args::opt(p, "ResourceId");
    let ip = backend_ip(p, resource_id)?;
    let port = args::opt_port(p, "Port")?.unwrap_or(80);
    // The SDK docstring says [1, 100]; 0 is accepted too (ucloud-cli allows it, the balancer
    // treats it as "only when nothing else is left").
    let weight = args::opt_int_in(p, "Weight", 0, 100)?.unwrap_or(1);
    let enabled = switch(p, "Enabled")?.unwrap_or(1) == 1;
    let is_backup = switch(p, "IsBackup")?.unwrap_or(0);

    let mut attrs = Attrs::new();
    put(&mut attrs, "ResourceType", resource_type);
    put(&mut attrs, "ResourceId", resource_id.unwrap_or(""));
    put(&mut attrs, "IsBackup", is_backup.to_string());
    for name in ["SubnetId", "VPCId"] {
        if let Some(value) = args::opt(p, name) {
            put(&mut attrs, name, value);
        }
    }
    let new = NewBackend {
        ip,
        port,
        weight,
        enabled,
        attrs,
    };
    let scope = ctx.scope.clone();
    let synced = vserver_id.clone();
    let added = ctx
        .db(move |store| store.add_backends(&scope, LbKind::Clb, &lb_id, &vserver_id, vec![new]))
        .await?;
    ctx.app.plane.sync(ctx, vec![synced]).await?;
    let backend_id = added.into_iter().next().map(|b| b.id).unwrap_or_default();
    let mut reply = Reply::new();
    reply.insert("BackendId".into(), Value::String(backend_id));
    Ok(reply)
}

fn backend_ip(p: &Params, resource_id: Option<&str>) -> Result<String, ApiError> {
    for name in ["ResourceIP", "PrivateIP"] {
        if let Some(value) = args::opt(p, name) {
            return value
                .parse::<IpAddr>()
                .map(|ip| ip.to_string())
                .map_err(|_| ApiError::param_why(name, "must be an IP address"));
        }
    }
    match resource_id.and_then(|id| id.parse::<IpAddr>().ok()) {
        Some(ip) => Ok(ip.to_string()),
        None => Err(ApiError::param_why(
            "ResourceIP",
            "certbind has no host inventory: give the backend's IP address as ResourceIP \
             (or PrivateIP, or as the ResourceId)",
        )),
    }
}

pub async fn release_backend(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let lb_id = args::required(p, "ULBId")?.to_string();
    let backend_id = args::required(p, "BackendId")?.to_string();
    let vserver_id = backend_owner(ctx, &lb_id, &backend_id).await?;
    let scope = ctx.scope.clone();
    let synced = vserver_id.clone();
    ctx.db(move |store| {
        store.remove_backends(&scope, LbKind::Clb, &lb_id, &vserver_id, &[backend_id])
    })
    .await?;
    ctx.app.plane.sync(ctx, vec![synced]).await?;
    Ok(Reply::new())
}

pub async fn update_backend_attribute(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let lb_id = args::required(p, "ULBId")?.to_string();
    let backend_id = args::required(p, "BackendId")?.to_string();
    let mut attrs = Attrs::new();
    if let Some(is_backup) = switch(p, "IsBackup")? {
        put(&mut attrs, "IsBackup", is_backup.to_string());
    }
    let patch = BackendPatch {
        id: backend_id.clone(),
        port: args::opt_port(p, "Port")?,
        weight: args::opt_int_in(p, "Weight", 0, 100)?,
        enabled: switch(p, "Enabled")?.map(|e| e == 1),
        attrs,
    };
    let vserver_id = backend_owner(ctx, &lb_id, &backend_id).await?;
    let scope = ctx.scope.clone();
    let synced = vserver_id.clone();
    ctx.db(move |store| {
        store.update_backends(&scope, LbKind::Clb, &lb_id, &vserver_id, vec![patch])
    })
    .await?;
    ctx.app.plane.sync(ctx, vec![synced]).await?;
    Ok(Reply::new())
}

/// The VServer a backend belongs to. The backend actions name only the ULB and the backend,
/// while the store's backend methods take the listener: search the ULB's VServers.
async fn backend_owner(ctx: &Ctx, lb_id: &str, backend_id: &str) -> Result<String, ApiError> {
    let scope = ctx.scope.clone();
    let (lb, id) = (lb_id.to_string(), backend_id.to_string());
    let owner = ctx
        .db(move |store| {
            let vservers =
                store.list_listeners(&scope, LbKind::Clb, Some(&lb), None, EVERYTHING)?;
            Ok(vservers
                .items
                .into_iter()
                .find(|view| view.backends.iter().any(|b| b.id == id))
                .map(|view| view.listener.id))
        })
        .await?;
    owner.ok_or_else(|| {
        ApiError::param_why(
            "BackendId",
            format!("backend [{backend_id}] not found on load balancer [{lb_id}]"),
        )
    })
}
