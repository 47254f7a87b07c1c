//! The store: the only code that knows SQL.
//!
//! `Store` is the façade every handler uses; `sqlite` is the embedded backend. Each method is one
//! transaction, so a failed call changes nothing. Secrets are sealed with the master key inside the
//! store, so no plaintext secret ever reaches SQL. Methods are synchronous: the API calls them on the
//! blocking pool, and a PostgreSQL backend (synchronous client) fits the same trait.

pub mod sqlite;

#[cfg(test)]
mod conformance;

use crate::model::{
    Attrs, Backend, Binding, Certificate, Credentials, LbKind, Listener, LoadBalancer, Scope,
};
use zeroize::Zeroizing;

/// What a store call can fail with. Domain variants are mapped to RetCodes by `api::error`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} [{id}] not found")]
    NotFound { kind: Resource, id: String },
    #[error("account [{0}] already exists")]
    AccountExists(String),
    #[error("listener [{listener_id}] is not on load balancer [{lb_id}]")]
    ListenerNotOnLb { listener_id: String, lb_id: String },
    #[error("port {port} is already used by listener [{listener_id}]")]
    PortInUse { port: u16, listener_id: String },
    #[error("certificate [{0}] is still bound")]
    CertificateInUse(String),
    #[error("listener [{0}] is not an HTTPS listener")]
    NotHttps(String),
    #[error("ulb vserver alredy bind ssl, bind ssl: [{existing}]")]
    VServerAlreadyBound { existing: String },
    #[error("ssl [{ssl_id}] already bound to listener [{listener_id}]")]
    AlreadyBound { ssl_id: String, listener_id: String },
    #[error("ssl [{ssl_id}] is not bound to listener [{listener_id}]")]
    NotBound { ssl_id: String, listener_id: String },
    #[error("ssl [{0}] is the default certificate of the listener and can only be replaced")]
    DefaultCertificate(String),
    #[error("at most {limit} {what}")]
    Quota { what: &'static str, limit: usize },
    #[error("no free address left in the load balancer address pool")]
    AddressPoolExhausted,
    #[error("store backend error")]
    Backend(#[source] anyhow::Error),
}

/// Resource kinds named in `StoreError::NotFound`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Account,
    Project,
    Certificate,
    LoadBalancer,
    Listener,
    Backend,
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Resource::Account => "account",
            Resource::Project => "project",
            Resource::Certificate => "ssl",
            Resource::LoadBalancer => "load balancer",
            Resource::Listener => "listener",
            Resource::Backend => "backend",
        })
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// An API key as the signature check needs it.
pub struct KeyRecord {
    pub account_id: i64,
    pub account_name: String,
    pub private_key: Zeroizing<String>,
    pub is_main: bool,
    pub default_project: String,
    /// Main keys: every project of the account. Sub keys: the granted projects.
    pub projects: Vec<String>,
}

/// A certificate to store. `content` and `key_pem` are sealed by the store.
pub struct NewCertificate {
    pub name: String,
    pub content: String,
    pub key_pem: Zeroizing<String>,
    pub chain_pem: String,
    pub hash_value: String,
    pub domains: String,
    pub dns_names: Vec<String>,
    pub not_before: i64,
    pub not_after: i64,
}

/// One certificate as `DescribeSSL[V2]` shows it.
pub struct CertificateView {
    pub certificate: Certificate,
    pub content: Zeroizing<String>,
    /// Every binding, CLB and ALB, in bind order.
    pub bindings: Vec<Binding>,
}

/// Certificate material for the data plane.
pub struct CertificateMaterial {
    pub chain_pem: String,
    pub key_pem: Zeroizing<String>,
}

/// A page of results and the total number of matches.
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: usize,
}

/// Offset and limit of a listing.
#[derive(Debug, Clone, Copy)]
pub struct Paging {
    pub offset: usize,
    pub limit: usize,
}

pub struct NewLoadBalancer {
    pub kind: LbKind,
    pub name: String,
    pub tag: String,
    pub remark: String,
    pub attrs: Attrs,
}

/// Fields to change; `None` keeps the value. `attrs` entries are merged (set), never removed.
#[derive(Default)]
pub struct LoadBalancerPatch {
    pub name: Option<String>,
    pub tag: Option<String>,
    pub remark: Option<String>,
    pub attrs: Attrs,
}

pub struct NewListener {
    pub name: String,
    pub protocol: String,
    pub port: u16,
    pub attrs: Attrs,
    /// ALB HTTPS listeners are created with their default certificate in the same transaction.
    pub default_certificate: Option<String>,
}

#[derive(Default)]
pub struct ListenerPatch {
    pub name: Option<String>,
    pub protocol: Option<String>,
    pub attrs: Attrs,
    /// ALB: replace the default certificate (the SNI set is untouched).
    pub default_certificate: Option<String>,
}

/// A listener with everything `Describe*` and the data plane show about it.
pub struct ListenerView {
    pub listener: Listener,
    pub lb: LoadBalancer,
    /// Default/CLB certificate first, then SNI certificates in bind order.
    pub bindings: Vec<Binding>,
    pub backends: Vec<Backend>,
}

pub struct NewBackend {
    pub ip: String,
    pub port: u16,
    pub weight: i64,
    pub enabled: bool,
    pub attrs: Attrs,
}

/// Fields to change on one backend; `None` keeps the value, `attrs` entries are merged.
pub struct BackendPatch {
    pub id: String,
    pub port: Option<u16>,
    pub weight: Option<i64>,
    pub enabled: Option<bool>,
    pub attrs: Attrs,
}

/// Where `UpdateSSLBinding` replaces: spec §4.4.
#[derive(Debug, Clone, Default)]
pub struct BindingScope {
    pub lb_id: Option<String>,
    pub listener_id: Option<String>,
}

/// What a binding change touched, so the data plane can resync exactly those listeners.
#[derive(Debug, Default)]
pub struct BindingChange {
    pub replaced: usize,
    pub listener_ids: Vec<String>,
    /// The bind sequence number the replaced bindings now carry (0 when nothing changed).
    pub seq: i64,
}

/// The store façade. Every method is one transaction.
pub trait Store: Send + Sync {
    // ---- accounts, projects, keys ----

    /// A new account with its default project and a main API key.
    fn create_account(&self, name: &str) -> StoreResult<Credentials>;
    /// A new main API key for an existing account (used when credentials.json was lost).
    fn create_main_key(&self, account_name: &str) -> StoreResult<Credentials>;
    fn account_exists(&self, name: &str) -> StoreResult<bool>;
    fn create_project(&self, account_name: &str, project_name: &str) -> StoreResult<String>;
    /// A sub-account key limited to `projects` (empty: the default project).
    fn create_sub_key(&self, account_name: &str, projects: &[String]) -> StoreResult<Credentials>;
    fn lookup_key(&self, public_key: &str) -> StoreResult<Option<KeyRecord>>;

    // ---- certificates ----

    fn create_certificate(&self, scope: &Scope, new: NewCertificate) -> StoreResult<Certificate>;
    /// One certificate (`ssl_id` given; unknown → empty page) or a page of all in the scope, in
    /// creation order.
    fn describe_certificates(
        &self,
        scope: &Scope,
        ssl_id: Option<&str>,
        paging: Paging,
    ) -> StoreResult<Page<CertificateView>>;
    fn rename_certificate(&self, scope: &Scope, ssl_id: &str, name: &str) -> StoreResult<()>;
    /// Refused with `CertificateInUse` while bound, checked in the same transaction.
    fn delete_certificate(&self, scope: &Scope, ssl_id: &str) -> StoreResult<()>;
    /// Decrypted chain and key of any certificate, for the data plane.
    fn certificate_material(&self, ssl_id: &str) -> StoreResult<CertificateMaterial>;

    // ---- load balancers ----

    /// Allocates the load balancer's address from the pool.
    fn create_load_balancer(
        &self,
        scope: &Scope,
        new: NewLoadBalancer,
    ) -> StoreResult<LoadBalancer>;
    /// `ids` empty: all of `kind` in the scope, in creation order.
    fn list_load_balancers(
        &self,
        scope: &Scope,
        kind: LbKind,
        ids: &[String],
        paging: Paging,
    ) -> StoreResult<Page<LoadBalancer>>;
    fn update_load_balancer(
        &self,
        scope: &Scope,
        kind: LbKind,
        lb_id: &str,
        patch: LoadBalancerPatch,
    ) -> StoreResult<()>;
    /// Deletes its listeners, backends and bindings too; returns the deleted listener ids.
    fn delete_load_balancer(
        &self,
        scope: &Scope,
        kind: LbKind,
        lb_id: &str,
    ) -> StoreResult<Vec<String>>;

    // ---- listeners ----

    fn create_listener(
        &self,
        scope: &Scope,
        kind: LbKind,
        lb_id: &str,
        new: NewListener,
    ) -> StoreResult<Listener>;
    /// `listener_id` given: that listener (`lb_id` ignored); else all listeners of `lb_id`; a
    /// listener or LB that does not exist gives `NotFound`.
    fn list_listeners(
        &self,
        scope: &Scope,
        kind: LbKind,
        lb_id: Option<&str>,
        listener_id: Option<&str>,
        paging: Paging,
    ) -> StoreResult<Page<ListenerView>>;
    fn update_listener(
        &self,
        scope: &Scope,
        kind: LbKind,
        lb_id: &str,
        listener_id: &str,
        patch: ListenerPatch,
    ) -> StoreResult<()>;
    fn delete_listener(
        &self,
        scope: &Scope,
        kind: LbKind,
        lb_id: &str,
        listener_id: &str,
    ) -> StoreResult<()>;

    // ---- backends / targets ----

    fn add_backends(
        &self,
        scope: &Scope,
        kind: LbKind,
        lb_id: &str,
        listener_id: &str,
        new: Vec<NewBackend>,
    ) -> StoreResult<Vec<Backend>>;
    fn remove_backends(
        &self,
        scope: &Scope,
        kind: LbKind,
        lb_id: &str,
        listener_id: &str,
        backend_ids: &[String],
    ) -> StoreResult<()>;
    fn update_backends(
        &self,
        scope: &Scope,
        kind: LbKind,
        lb_id: &str,
        listener_id: &str,
        patches: Vec<BackendPatch>,
    ) -> StoreResult<()>;

    // ---- bindings ----

    /// CLB `BindSSL`: HTTPS VServers only, one certificate each.
    fn bind_clb(
        &self,
        scope: &Scope,
        lb_id: &str,
        listener_id: &str,
        ssl_id: &str,
    ) -> StoreResult<()>;
    fn unbind_clb(
        &self,
        scope: &Scope,
        lb_id: &str,
        listener_id: &str,
        ssl_id: &str,
    ) -> StoreResult<()>;
    /// ALB `AddSSLBinding`: extension certificates, at most `limit` per listener, no duplicates.
    fn add_sni(
        &self,
        scope: &Scope,
        lb_id: &str,
        listener_id: &str,
        ssl_ids: &[String],
        limit: usize,
    ) -> StoreResult<()>;
    /// ALB `DeleteSSLBinding`: extension certificates only.
    fn delete_sni(
        &self,
        scope: &Scope,
        lb_id: &str,
        listener_id: &str,
        ssl_ids: &[String],
    ) -> StoreResult<()>;
    /// `UpdateSSLBinding`: every binding of `old` in `within` becomes `new`, keeping its role;
    /// all or nothing.
    fn replace_certificate(
        &self,
        scope: &Scope,
        old: &str,
        new: &str,
        within: &BindingScope,
    ) -> StoreResult<BindingChange>;

    // ---- data plane ----

    /// Listeners with their LB, bindings and backends: `ids` given → those (missing ones are
    /// skipped), else every listener in the store.
    fn dataplane_listeners(&self, ids: Option<&[String]>) -> StoreResult<Vec<ListenerView>>;
}

/// The loopback (or operator-chosen) IPv4 range load balancer addresses are allocated from.
#[derive(Debug, Clone, Copy)]
pub struct AddressPool {
    pub first: std::net::Ipv4Addr,
    pub count: u32,
}

impl Default for AddressPool {
    /// 127.1.0.1 and up: inside 127.0.0.0/8, so it works on any Linux host without privileges.
    fn default() -> Self {
        AddressPool {
            first: std::net::Ipv4Addr::new(127, 1, 0, 1),
            count: 65_000,
        }
    }
}
