//! Domain types: ids, accounts, certificates, load balancers, listeners, backends and bindings.
//!
//! No serde and no SQL here: the wire shapes live in `api`, the tables in `store`.

pub mod certificate;

use rand::Rng;

/// Lower-case alphanumerics used in resource ids (`ssl-1lh218my`), as the real service prints them.
const ID_ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// A fresh resource id: the documented prefix, a dash and 8 random `[0-9a-z]` characters.
pub fn new_id(prefix: &str) -> String {
    let mut rng = rand::thread_rng();
    let mut id = String::with_capacity(prefix.len() + 9);
    id.push_str(prefix);
    id.push('-');
    for _ in 0..8 {
        id.push(ID_ALPHABET[rng.gen_range(0..ID_ALPHABET.len())] as char);
    }
    id
}

/// Who is calling: the account behind the API key and the projects the key may use.
#[derive(Debug, Clone)]
pub struct Principal {
    pub account_id: i64,
    pub account_name: String,
    pub public_key: String,
    /// Main-account keys may use every project of the account; sub-account keys only `projects`.
    pub is_main: bool,
    pub default_project: String,
    pub projects: Vec<String>,
}

/// The scope every resource lives in: one account's project in one region.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    pub account_id: i64,
    pub project_id: String,
    pub region: String,
}

/// Credentials of an API key, as printed by the CLI and written to `credentials.json`.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub account_name: String,
    pub public_key: String,
    pub private_key: String,
    pub project_id: String,
}

/// A stored certificate without its secret parts.
#[derive(Debug, Clone)]
pub struct Certificate {
    pub id: String,
    pub name: String,
    pub hash_value: String,
    pub domains: String,
    pub dns_names: Vec<String>,
    pub not_before: i64,
    pub not_after: i64,
    pub created_at: i64,
}

/// A certificate's secret parts, decrypted on demand.
pub struct CertificateSecret {
    /// The SSLContent as stored (it contains the private key, so it is sealed at rest).
    pub content: zeroize::Zeroizing<String>,
}

/// The two load balancer families the API knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbKind {
    /// Traditional load balancer (`ulb-…`), listeners are VServers.
    Clb,
    /// Application load balancer (`alb-…`), listeners are Listeners.
    Alb,
}

impl LbKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LbKind::Clb => "clb",
            LbKind::Alb => "alb",
        }
    }
    pub fn parse(text: &str) -> Option<LbKind> {
        match text {
            "clb" => Some(LbKind::Clb),
            "alb" => Some(LbKind::Alb),
            _ => None,
        }
    }
}

/// How a certificate is bound to a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingRole {
    /// The one certificate of a CLB HTTPS VServer.
    Clb = 0,
    /// The default certificate of an ALB HTTPS listener.
    AlbDefault = 1,
    /// An extension (SNI) certificate of an ALB HTTPS listener.
    AlbSni = 2,
}

impl BindingRole {
    pub fn from_i64(value: i64) -> Option<BindingRole> {
        match value {
            0 => Some(BindingRole::Clb),
            1 => Some(BindingRole::AlbDefault),
            2 => Some(BindingRole::AlbSni),
            _ => None,
        }
    }
    /// CLB bindings count as default for `DescribeSSLV2.Relations.IsDefault` (spec §4.1 [REC]).
    pub fn is_default(self) -> bool {
        !matches!(self, BindingRole::AlbSni)
    }
}

/// One certificate bound to one listener.
#[derive(Debug, Clone)]
pub struct Binding {
    pub ssl_id: String,
    pub listener_id: String,
    pub listener_name: String,
    pub lb_id: String,
    pub lb_name: String,
    pub lb_kind: LbKind,
    pub role: BindingRole,
    /// Bind order; higher is more recent (SNI tie-break: the most recently bound wins).
    pub seq: i64,
}

/// A load balancer of either family. Family-specific attributes sit in `attrs` as name/value text,
/// so the store needs no column per wire field and adding a field touches only the handler.
#[derive(Debug, Clone)]
pub struct LoadBalancer {
    pub id: String,
    pub kind: LbKind,
    pub name: String,
    pub tag: String,
    pub remark: String,
    /// The address its listeners bind (a loopback address from the pool by default).
    pub address: String,
    pub created_at: i64,
    pub attrs: Attrs,
}

/// A listener: a CLB VServer or an ALB Listener.
#[derive(Debug, Clone)]
pub struct Listener {
    pub id: String,
    pub lb_id: String,
    pub kind: LbKind,
    pub name: String,
    /// `HTTP`, `HTTPS`, `TCP` or `UDP`, upper case.
    pub protocol: String,
    pub port: u16,
    pub created_at: i64,
    pub attrs: Attrs,
}

/// A backend (CLB) or target (ALB) of a listener.
#[derive(Debug, Clone)]
pub struct Backend {
    pub id: String,
    pub listener_id: String,
    pub ip: String,
    pub port: u16,
    pub weight: i64,
    pub enabled: bool,
    pub created_at: i64,
    pub attrs: Attrs,
}

/// Family-specific attributes, kept as ordered name/value text (e.g. `Method` → `Roundrobin`).
pub type Attrs = std::collections::BTreeMap<String, String>;
