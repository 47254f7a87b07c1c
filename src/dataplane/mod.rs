//! The data plane: TLS listeners, certificate resolution and proxying to backends. It owns sockets,
//! handshakes, forwarding, health checks and their metrics; it never reads or writes the store. The
//! control plane describes each listener as a [`ListenerSpec`] and hands certificate material over
//! through a [`CertSource`].
//!
//! Shape: every listener is a [`listener::ListenerCell`] holding an immutable
//! [`listener::ListenerState`] behind an `ArcSwap`. A sync builds the whole new state (certificates
//! parsed and checked, SNI table, TLS config, backend pool) before one atomic store, so a handshake
//! or request sees either the old state or the new one, never a mix, and never waits. Whatever the
//! spec leaves unchanged is shared with the previous state rather than rebuilt: a certificate
//! change builds only the SNI table and a clone of the rustls config around it (with a session
//! store of its own, so no session outlives the certificates it was issued under), and leaves the
//! backend pool and the health checker alone. Sockets are separate from the state: an update on the
//! same address keeps the socket, a re-port binds the new socket before the old one is closed.
//!
//! Every operation that changes listeners runs under one fair lock, in call order, and returns
//! once its new state is served: `sync_listener` (one spec), `sync_listeners` (many specs under one
//! acquisition), `sync_all` (startup reconcile), `replace_certificate` (swap one certificate
//! reference in the current state of many listeners, without a spec), `remove_listener`,
//! `shutdown`. Listening sockets are counted against the process's descriptor limit
//! (`descriptors`), so listeners never take the descriptors that connections need.
//!
//! Submodules: `resolver` (certificate table and SNI selection), `balancer` (weighted round robin and
//! health cells), `listener` (sockets, accept loops, connection lifetimes, TLS handshakes), `proxy`
//! (HTTP forwarding and TCP relay), `health` (active checks), `metrics` (Prometheus text),
//! `descriptors` (the budget of listening sockets).

mod balancer;
mod descriptors;
mod health;
mod listener;
mod metrics;
mod proxy;
mod resolver;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use tokio::task::JoinHandle;

use descriptors::{SocketBudget, SocketSlot};
use listener::{Acceptor, ListenerCell, ListenerState, Phase, Shared};
use resolver::ResolvedCert;

/// What a listener speaks to its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Https,
    Tcp,
}

/// Everything the data plane needs to serve one listener (a CLB VServer or an ALB listener).
#[derive(Debug, Clone)]
pub struct ListenerSpec {
    /// "vserver-…" (CLB) or "als-…" (ALB).
    pub id: String,
    /// The load balancer's address and port; port 0 binds an ephemeral port (tests).
    pub addr: SocketAddr,
    pub protocol: Protocol,
    /// Offer ALPN `h2` (HTTPS only).
    pub http2: bool,
    /// HTTPS only; CLB: 0..1; ALB: one default plus SNI certificates.
    pub certs: Vec<CertRef>,
    pub backends: Vec<BackendSpec>,
    pub health: HealthSpec,
    /// A client connection with no traffic for this long is closed; zero means never.
    pub idle_timeout: Duration,
}

/// One certificate bound to a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRef {
    pub ssl_id: String,
    pub is_default: bool,
    /// Higher = bound more recently; decides between several certificates matching one name.
    pub bound_seq: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSpec {
    pub id: String,
    pub addr: SocketAddr,
    pub weight: u32,
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheck {
    /// A TCP connect within the timeout counts as healthy.
    Tcp,
    /// `GET path` answered with 2xx or 3xx within the timeout counts as healthy.
    Http { path: String, host: Option<String> },
    /// Every backend counts as healthy.
    Disabled,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSpec {
    pub check: HealthCheck,
    pub interval: Duration,
    pub timeout: Duration,
}

impl Default for HealthSpec {
    /// The ULB defaults: a port check every 5 s with a 2 s timeout.
    fn default() -> Self {
        HealthSpec {
            check: HealthCheck::Tcp,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
        }
    }
}

/// The control plane's way to hand certificate material to the data plane: called off the
/// handshake path, once per certificate (the result is cached by ssl_id; `forget_cert` evicts it).
/// It runs on a blocking thread, so it may read the store and decrypt.
pub trait CertSource: Send + Sync + 'static {
    fn load(&self, ssl_id: &str) -> anyhow::Result<LoadedCert>;
}

/// A certificate ready to serve: chain plus signing key, and the DNS names it answers for.
#[derive(Clone, Debug)]
pub struct LoadedCert {
    pub key: Arc<CertifiedKey>,
    /// Lower-case SAN DNS names; may contain wildcards such as "*.example.com".
    pub names: Vec<String>,
}

impl LoadedCert {
    /// Builds a `LoadedCert` from DER (leaf first, then the CA chain) with the data plane's crypto
    /// provider, refusing a key that does not match the leaf.
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        names: Vec<String>,
    ) -> anyhow::Result<LoadedCert> {
        if chain.is_empty() {
            anyhow::bail!("the certificate chain is empty");
        }
        let key = CertifiedKey::from_der(chain, key, listener::crypto_provider())?;
        Ok(LoadedCert {
            key: Arc::new(key),
            names,
        })
    }
}

/// A socket bound ahead of `sync_listener`, so a taken port is reported before the control plane
/// commits. Dropping it releases the port.
#[derive(Debug)]
pub struct Reservation {
    socket: std::net::TcpListener,
    addr: SocketAddr,
    /// The socket counts against the listeners' descriptor budget from the moment it is bound.
    slot: SocketSlot,
}

impl Reservation {
    /// The address actually bound (the ephemeral port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DataPlaneError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("certificate {ssl_id} cannot be served: {source}")]
    Certificate {
        ssl_id: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Opening one more listener would eat into the descriptors kept for client, backend and
    /// API connections (see `DataPlaneOptions::descriptor_limit`).
    #[error(
        "no file descriptor left for another listener: at most {limit} listeners may be open under \
         this process's descriptor limit (the rest is kept for connections); raise `ulimit -n`"
    )]
    TooManyListeners { limit: usize },
    #[error("the data plane is shut down")]
    ShutDown,
}

/// Timeouts that are the data plane's own rather than a listener's.
#[derive(Debug, Clone)]
pub struct DataPlaneOptions {
    /// From accept to the end of the TLS handshake.
    pub handshake_timeout: Duration,
    /// How long `shutdown` and `remove_listener` let open connections finish before closing them.
    pub drain_timeout: Duration,
    /// TCP connect to a backend (requests, TCP relay); health checks use their own timeout.
    pub backend_connect_timeout: Duration,
    /// The file-descriptor limit the listeners must stay under; `None` reads the process's soft
    /// `RLIMIT_NOFILE` when the data plane is built (no cap where it cannot be read). Listening
    /// sockets may take all of it but a reserve of max(1024, 10 %); a listener beyond that is
    /// refused with `TooManyListeners`.
    pub descriptor_limit: Option<u64>,
}

impl Default for DataPlaneOptions {
    fn default() -> Self {
        DataPlaneOptions {
            handshake_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(30),
            backend_connect_timeout: Duration::from_secs(5),
            descriptor_limit: None,
        }
    }
}

/// One open listener: its shared cell plus the tasks that serve it.
struct ListenerEntry {
    cell: Arc<ListenerCell>,
    /// The address the spec asked for (port 0 stays 0), to tell an update from a re-port.
    requested_addr: SocketAddr,
    acceptor: Acceptor,
    health_task: JoinHandle<()>,
    /// The listener's place in the descriptor budget, given back when the entry goes.
    _slot: SocketSlot,
}

/// A checked certificate as cached: two `Arc`s, so putting it into any number of listener
/// snapshots copies nothing.
#[derive(Clone)]
struct CachedCert {
    key: Arc<CertifiedKey>,
    names: Arc<[String]>,
}

/// What to do with a listener's socket in one sync.
enum SocketChange {
    /// Same address: keep the socket.
    Keep,
    /// An open listener moves to this socket; its budget slot stays the same.
    Move(std::net::TcpListener),
    /// A new listener, with its place in the budget.
    Open(std::net::TcpListener, SocketSlot),
}

/// Certificates already loaded, by ssl_id. `generation` lets a load that raced with `forget_cert`
/// skip caching what was just forgotten.
#[derive(Default)]
struct CertCache {
    entries: HashMap<String, CachedCert>,
    generation: u64,
}

pub struct DataPlane {
    shared: Arc<Shared>,
    source: Arc<dyn CertSource>,
    certs: Mutex<CertCache>,
    listeners: Mutex<HashMap<String, ListenerEntry>>,
    /// Serialises the operations that change listeners, so two updates of one listener (or a
    /// shutdown) cannot interleave between their socket and state steps.
    ops: tokio::sync::Mutex<()>,
    shut_down: AtomicBool,
    sockets: Arc<SocketBudget>,
}

impl DataPlane {
    pub fn new(source: Arc<dyn CertSource>) -> Arc<DataPlane> {
        DataPlane::with_options(source, DataPlaneOptions::default())
    }

    pub fn with_options(source: Arc<dyn CertSource>, options: DataPlaneOptions) -> Arc<DataPlane> {
        let descriptor_limit = options.descriptor_limit.or_else(descriptors::process_limit);
        let sockets = SocketBudget::new(descriptor_limit);
        match sockets.capacity() {
            Some(capacity) => tracing::debug!(
                descriptor_limit,
                listeners = capacity,
                "listening sockets capped by the descriptor limit"
            ),
            None => tracing::warn!(
                "the file-descriptor limit is unknown or unlimited; listeners are not capped"
            ),
        }
        Arc::new(DataPlane {
            sockets,
            shared: Shared::new(options),
            source,
            certs: Mutex::default(),
            listeners: Mutex::default(),
            ops: tokio::sync::Mutex::new(()),
            shut_down: AtomicBool::new(false),
        })
    }

    /// Bind the socket now (so a taken port is reported before the control plane commits).
    /// Meant for a new listener or a re-port: the port of a listener already open is in use.
    /// Refused (an `Other` error wrapping `DataPlaneError::TooManyListeners`) when one more
    /// listening socket would eat into the descriptors kept for connections.
    pub fn reserve(&self, addr: SocketAddr) -> std::io::Result<Reservation> {
        let slot = self.sockets.take().map_err(std::io::Error::other)?;
        // std sets SO_REUSEADDR on Unix, so a port whose old connections sit in TIME_WAIT can be
        // reused at once (a re-port back and forth).
        let socket = std::net::TcpListener::bind(addr)?;
        let addr = socket.local_addr()?;
        Ok(Reservation { socket, addr, slot })
    }

    /// Open, update or re-port one listener. Returns once new handshakes and requests see the new
    /// spec. On the same address the socket is kept and only the state is swapped; open
    /// connections keep going. On error nothing changes.
    pub async fn sync_listener(
        &self,
        spec: ListenerSpec,
        reservation: Option<Reservation>,
    ) -> Result<(), DataPlaneError> {
        if self.is_shut_down() {
            return Err(DataPlaneError::ShutDown);
        }
        // Everything below runs under the operation lock, certificate loading included: the lock
        // is fair, so syncs take effect in the order they were called, and a slow load of one
        // listener's certificate cannot let an older spec land after a newer one. Loads are cached,
        // so this costs little after the first.
        let _op = self.ops.lock().await;
        if self.is_shut_down() {
            return Err(DataPlaneError::ShutDown);
        }
        self.apply(&spec, reservation).await
    }

    /// `sync_listener` for many specs, in order, under one acquisition of the operation lock
    /// (nothing else interleaves). Each spec is applied on its own: one that fails changes nothing
    /// for its listener and does not stop the others; the failures are returned. Returns once
    /// every applied spec is served.
    pub async fn sync_listeners(&self, specs: Vec<ListenerSpec>) -> Vec<(String, DataPlaneError)> {
        let _op = self.ops.lock().await;
        self.apply_all(specs).await
    }

    /// Close one listener: the port is closed when this returns; its open connections are asked to
    /// finish and are cut after the drain timeout. Other listeners are untouched.
    pub async fn remove_listener(&self, id: &str) {
        let _op = self.ops.lock().await;
        self.close(id).await;
    }

    /// Startup / full reconcile: close listeners not in the list, then open or update all. A
    /// listener that fails is skipped (others still open); the failures are returned for the
    /// caller to report.
    pub async fn sync_all(&self, specs: Vec<ListenerSpec>) -> Vec<(String, DataPlaneError)> {
        let _op = self.ops.lock().await;
        let wanted: HashSet<&str> = specs.iter().map(|spec| spec.id.as_str()).collect();
        let stale: Vec<String> = self
            .lock_listeners()
            .keys()
            .filter(|id| !wanted.contains(id.as_str()))
            .cloned()
            .collect();
        // Stale listeners go first so their ports (and descriptors) are free for the listeners
        // that take them over.
        for id in stale {
            self.close(&id).await;
        }
        self.apply_all(specs).await
    }

    /// Replaces the certificate reference `old_ssl_id` by `new` in the current state of each
    /// listed listener that binds it (`UpdateSSLBinding` after its commit, without a re-read of
    /// the store). The binding keeps its role: a default stays the default and an SNI certificate
    /// stays SNI (`new.is_default` is not used); it takes `new.bound_seq`. `new` is loaded once,
    /// through the cache, before the first swap, so a load failure changes nothing. Listeners
    /// not open here, or not binding `old_ssl_id`, are skipped. Returns how many listeners were
    /// changed, once all of them serve `new`.
    pub async fn replace_certificate(
        &self,
        listener_ids: &[String],
        old_ssl_id: &str,
        new: CertRef,
    ) -> Result<usize, DataPlaneError> {
        if self.is_shut_down() {
            return Err(DataPlaneError::ShutDown);
        }
        let _op = self.ops.lock().await;
        if self.is_shut_down() {
            return Err(DataPlaneError::ShutDown);
        }
        let cells: Vec<Arc<ListenerCell>> = {
            let listeners = self.lock_listeners();
            listener_ids
                .iter()
                .filter_map(|id| listeners.get(id.as_str()))
                .map(|entry| entry.cell.clone())
                .collect()
        };
        let mut loaded: Option<CachedCert> = None;
        let new_ssl_id: Arc<str> = new.ssl_id.as_str().into();
        let mut replaced = 0;
        for cell in cells {
            let started = Instant::now();
            // Only operations holding the lock store states, so this one is still current when
            // the new one is stored.
            let current = cell.load_full();
            let Some(tls) = &current.tls else {
                continue;
            };
            if !tls.table.certs().iter().any(|c| &*c.ssl_id == old_ssl_id) {
                continue;
            }
            let cert = match loaded {
                Some(ref cert) => cert,
                None => loaded.insert(self.load_cert(&new.ssl_id).await?),
            };
            let certs = tls
                .table
                .certs()
                .iter()
                .map(|bound| match &*bound.ssl_id == old_ssl_id {
                    true => ResolvedCert {
                        ssl_id: new_ssl_id.clone(),
                        is_default: bound.is_default,
                        bound_seq: new.bound_seq,
                        key: cert.key.clone(),
                        names: cert.names.clone(),
                    },
                    false => bound.clone(),
                })
                .collect();
            let Some(state) = current.with_certs(certs) else {
                continue;
            };
            cell.store(state);
            self.shared.metrics.record_swap(started.elapsed());
            replaced += 1;
        }
        tracing::debug!(old = old_ssl_id, new = %new.ssl_id, listeners = replaced, "certificate replaced");
        Ok(replaced)
    }

    /// Drop a cached certificate (deleted or replaced material). Listeners already serving it keep
    /// it until their next sync.
    pub fn forget_cert(&self, ssl_id: &str) {
        let mut cache = self.lock_certs();
        cache.entries.remove(ssl_id);
        cache.generation += 1;
    }

    /// The bound address of a listener (the ephemeral port when 0 was asked for).
    pub fn local_addr(&self, listener_id: &str) -> Option<SocketAddr> {
        self.lock_listeners()
            .get(listener_id)
            .map(|entry| entry.acceptor.addr)
    }

    /// Health per backend id (true = healthy), in spec order; backends not checked yet count as
    /// healthy.
    pub fn backend_health(&self, listener_id: &str) -> Vec<(String, bool)> {
        let Some(cell) = self
            .lock_listeners()
            .get(listener_id)
            .map(|entry| entry.cell.clone())
        else {
            return Vec::new();
        };
        let state = cell.load();
        state
            .pool
            .backends()
            .iter()
            .map(|backend| (backend.id.clone(), backend.health.counts_as_healthy()))
            .collect()
    }

    /// Prometheus text exposition of every data-plane counter.
    pub fn render_metrics(&self) -> String {
        let mut cells: Vec<Arc<ListenerCell>> = self
            .lock_listeners()
            .values()
            .map(|entry| entry.cell.clone())
            .collect();
        cells.sort_by(|a, b| a.id.cmp(&b.id));
        metrics::render(&self.shared.metrics, &cells)
    }

    /// Stop accepting everywhere, let open connections finish within the drain timeout, then cut
    /// the rest. Later `sync_listener` calls fail with `ShutDown`.
    pub async fn shutdown(&self) {
        let _op = self.ops.lock().await;
        self.shut_down.store(true, Ordering::SeqCst);
        let entries: Vec<ListenerEntry> = self.lock_listeners().drain().map(|(_, e)| e).collect();
        // Sockets close first, so no connection is accepted only to be told to drain at once.
        let mut cells = Vec::with_capacity(entries.len());
        for entry in entries {
            entry.health_task.abort();
            entry.acceptor.stop().await;
            cells.push(entry.cell);
        }
        for cell in &cells {
            cell.set_phase(Phase::Draining);
        }
        let drain = self.shared.options.drain_timeout;
        if tokio::time::timeout(drain, self.shared.connections.wait_idle())
            .await
            .is_err()
        {
            tracing::warn!(
                open = self.shared.connections.active(),
                "drain timeout reached; closing the remaining connections"
            );
            for cell in &cells {
                cell.set_phase(Phase::Closing);
            }
            // Closing is immediate once each task is polled; the bound only guards a stuck task.
            let _ =
                tokio::time::timeout(Duration::from_secs(1), self.shared.connections.wait_idle())
                    .await;
        }
        tracing::info!("data plane shut down");
    }

    /// The specs one by one, under the operation lock the caller holds.
    async fn apply_all(&self, specs: Vec<ListenerSpec>) -> Vec<(String, DataPlaneError)> {
        let mut failures = Vec::new();
        for spec in specs {
            // Shutdown takes the operation lock, so this cannot change during the loop.
            let outcome = match self.is_shut_down() {
                true => Err(DataPlaneError::ShutDown),
                false => self.apply(&spec, None).await,
            };
            if let Err(error) = outcome {
                failures.push((spec.id, error));
            }
        }
        failures
    }

    /// One listener's sync, under the operation lock the caller holds.
    async fn apply(
        &self,
        spec: &ListenerSpec,
        reservation: Option<Reservation>,
    ) -> Result<(), DataPlaneError> {
        let started = Instant::now();
        let previous = self
            .lock_listeners()
            .get(&spec.id)
            .map(|entry| (entry.cell.clone(), entry.requested_addr));

        // The new socket (if any) is bound before anything is swapped, so a taken port, or no
        // descriptor to spare, leaves the listener as it was. It comes before the certificates:
        // a listener that cannot open (a store with more listeners than descriptors) is refused
        // without loading anything.
        let bind = |addr: SocketAddr| {
            std::net::TcpListener::bind(addr)
                .map_err(|source| DataPlaneError::Bind { addr, source })
        };
        let change = match (reservation, &previous) {
            // A re-port onto a reserved socket: the listener keeps its own slot.
            (Some(reservation), Some(_)) => SocketChange::Move(reservation.socket),
            (Some(reservation), None) => SocketChange::Open(reservation.socket, reservation.slot),
            (None, Some((_, requested))) if *requested == spec.addr => SocketChange::Keep,
            (None, Some(_)) => SocketChange::Move(bind(spec.addr)?),
            (None, None) => {
                let slot = self.sockets.take()?;
                SocketChange::Open(bind(spec.addr)?, slot)
            }
        };
        let to_tokio = |socket| {
            listener::into_tokio(socket).map_err(|source| DataPlaneError::Bind {
                addr: spec.addr,
                source,
            })
        };
        let (socket, slot) = match change {
            SocketChange::Keep => (None, None),
            SocketChange::Move(socket) => (Some(to_tokio(socket)?), None),
            SocketChange::Open(socket, slot) => (Some(to_tokio(socket)?), Some(slot)),
        };
        let certs = match spec.protocol {
            Protocol::Https => self.resolve_certs(&spec.certs).await?,
            Protocol::Http | Protocol::Tcp => Vec::new(),
        };

        let previous_state = previous.as_ref().map(|(cell, _)| cell.load_full());
        let state = ListenerState::build(spec, certs, previous_state.as_deref());
        if state.refuses_handshakes() {
            tracing::warn!(listener = %spec.id, "HTTPS listener has no certificate; handshakes will be refused");
        }
        // A new listener's checker starts with a round of its own.
        let checks_changed = previous_state
            .as_deref()
            .is_some_and(|old| !state.same_checks(old));
        drop(previous_state);
        let cell = match &previous {
            Some((cell, _)) => {
                cell.store(state);
                cell.clone()
            }
            None => ListenerCell::new(spec.id.clone(), state),
        };
        self.shared.metrics.record_swap(started.elapsed());
        if checks_changed {
            // Wakes the health checker so new backends are probed now rather than an interval
            // later; a swap that changed neither backends nor checks leaves it be.
            cell.changed.notify_one();
        }

        let Some(socket) = socket else {
            tracing::debug!(listener = %spec.id, "listener updated in place");
            return Ok(());
        };
        let acceptor = Acceptor::start(socket, cell.clone(), self.shared.clone());
        let bound = acceptor.addr;
        let replaced = {
            let mut listeners = self.lock_listeners();
            match (listeners.get_mut(&spec.id), slot) {
                (Some(entry), _) => {
                    entry.requested_addr = spec.addr;
                    Some(std::mem::replace(&mut entry.acceptor, acceptor))
                }
                (None, Some(slot)) => {
                    let health_task = tokio::spawn(health::run(cell.clone()));
                    listeners.insert(
                        spec.id.clone(),
                        ListenerEntry {
                            cell,
                            requested_addr: spec.addr,
                            acceptor,
                            health_task,
                            _slot: slot,
                        },
                    );
                    None
                }
                // A move of a listener that is gone: cannot happen, since only the holder of the
                // operation lock removes listeners. Were it to, the new socket is closed again.
                (None, None) => Some(acceptor),
            }
        };
        match replaced {
            Some(old) => {
                let old_addr = old.addr;
                old.stop().await;
                tracing::info!(listener = %spec.id, from = %old_addr, to = %bound, "listener re-ported");
            }
            None => tracing::info!(listener = %spec.id, addr = %bound, "listener opened"),
        }
        Ok(())
    }

    /// `remove_listener` under the operation lock the caller holds.
    async fn close(&self, id: &str) {
        let Some(entry) = self.lock_listeners().remove(id) else {
            return;
        };
        entry.health_task.abort();
        entry.acceptor.stop().await;
        entry.cell.set_phase(Phase::Draining);
        let cell = entry.cell;
        let drain = self.shared.options.drain_timeout;
        tokio::spawn(async move {
            tokio::time::sleep(drain).await;
            cell.set_phase(Phase::Closing);
        });
        tracing::info!(listener = %id, "listener closed");
    }

    fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::SeqCst)
    }

    fn lock_listeners(&self) -> MutexGuard<'_, HashMap<String, ListenerEntry>> {
        // A panic while holding this lock cannot leave the map half-updated (every change is one
        // insert, replace or remove), so a poisoned lock is still usable.
        self.listeners
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_certs(&self) -> MutexGuard<'_, CertCache> {
        self.certs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Loads (or takes from the cache) every certificate of a listener, checked and ready to serve.
    async fn resolve_certs(&self, refs: &[CertRef]) -> Result<Vec<ResolvedCert>, DataPlaneError> {
        let mut resolved = Vec::with_capacity(refs.len());
        for cert in refs {
            let loaded = self.load_cert(&cert.ssl_id).await?;
            resolved.push(ResolvedCert {
                ssl_id: cert.ssl_id.as_str().into(),
                is_default: cert.is_default,
                bound_seq: cert.bound_seq,
                key: loaded.key,
                names: loaded.names,
            });
        }
        Ok(resolved)
    }

    async fn load_cert(&self, ssl_id: &str) -> Result<CachedCert, DataPlaneError> {
        let generation = {
            let cache = self.lock_certs();
            if let Some(hit) = cache.entries.get(ssl_id) {
                return Ok(hit.clone());
            }
            cache.generation
        };
        let source = self.source.clone();
        let id = ssl_id.to_owned();
        let outcome = tokio::task::spawn_blocking(move || source.load(&id)).await;
        let failure = |source: Box<dyn std::error::Error + Send + Sync>| {
            self.shared.metrics.cert_load_failed();
            tracing::warn!(ssl_id, error = %source, "certificate not loaded");
            DataPlaneError::Certificate {
                ssl_id: ssl_id.to_owned(),
                source,
            }
        };
        let loaded = match outcome {
            Ok(Ok(loaded)) => resolver::check_loaded(loaded).map_err(|e| failure(e.into()))?,
            Ok(Err(error)) => return Err(failure(error.into())),
            Err(join) => return Err(failure(format!("certificate loader failed: {join}").into())),
        };
        self.shared.metrics.cert_loaded();
        let loaded = CachedCert {
            key: loaded.key,
            names: loaded.names.into(),
        };
        let mut cache = self.lock_certs();
        if cache.generation == generation {
            cache.entries.insert(ssl_id.to_owned(), loaded.clone());
        }
        Ok(loaded)
    }
}

impl Drop for DataPlane {
    /// Without an explicit `shutdown`, the tasks would outlive the data plane and keep ports open.
    fn drop(&mut self) {
        for entry in self.lock_listeners().values() {
            entry.health_task.abort();
            entry.acceptor.abort();
            entry.cell.set_phase(Phase::Closing);
        }
    }
}
