//! The bridge from the control plane to the data plane: after a committed change, turn the
//! store's view of the touched listeners into data-plane specs and apply them.
//!
//! It reads the store and drives `dataplane`; it never writes the store.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::api::error::ApiError;
use crate::api::Ctx;
use crate::dataplane::{
    BackendSpec, CertRef, CertSource, DataPlane, DataPlaneError, HealthCheck, HealthSpec,
    ListenerSpec, LoadedCert, Protocol,
};
use crate::model::certificate::parse_bundle;
use crate::model::{Attrs, LbKind};
use crate::store::{BindingChange, ListenerView, Store, StoreError};

/// A listening socket bound before the store commits (see `Plane::reserve`); empty on an
/// API-only node.
pub struct Reservation(Option<crate::dataplane::Reservation>);

/// The control plane's handle on the local data plane.
pub struct Plane {
    store: Arc<dyn Store>,
    /// `None` on an API-only node (`serve --dataplane off`): another node serves the listeners.
    dataplane: Option<Arc<DataPlane>>,
    /// Held from the store read to the data-plane swap, so two calls that commit in one order
    /// cannot apply their snapshots in the other: whoever reads later reads the later commit.
    apply: tokio::sync::Mutex<()>,
    /// Committed changes waiting to be applied. Whoever holds `apply` takes them all and applies
    /// them with one store read, so concurrent calls share the work instead of queueing for it.
    waiting: std::sync::Mutex<Vec<PendingSync>>,
}

/// One caller's committed change, waiting for the data plane.
struct PendingSync {
    listener_ids: Vec<String>,
    done: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// Certificate material straight from the store: decrypted, parsed and checked once per
/// certificate, off the handshake path (the data plane caches the result).
struct StoreCerts {
    store: Arc<dyn Store>,
}

impl CertSource for StoreCerts {
    fn load(&self, ssl_id: &str) -> anyhow::Result<LoadedCert> {
        let material = self.store.certificate_material(ssl_id)?;
        let text = format!("{}\n{}", material.chain_pem, material.key_pem.as_str());
        let bundle = parse_bundle(&text)?;
        Ok(LoadedCert {
            key: bundle.certified_key()?,
            names: bundle.server_names(),
        })
    }
}

impl Plane {
    /// `serve_listeners` false makes an API-only node: every data-plane call is a no-op.
    pub fn new(store: Arc<dyn Store>, serve_listeners: bool) -> Arc<Plane> {
        let source = Arc::new(StoreCerts {
            store: store.clone(),
        });
        Arc::new(Plane {
            store,
            dataplane: serve_listeners.then(|| DataPlane::new(source)),
            apply: tokio::sync::Mutex::new(()),
            waiting: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Opens every listener in the store (startup). Listeners that cannot open are logged and
    /// skipped so one taken port does not keep the others down. Returns how many were opened.
    pub async fn start(&self) -> anyhow::Result<usize> {
        let Some(dataplane) = &self.dataplane else {
            return Ok(0);
        };
        let store = self.store.clone();
        let views = tokio::task::spawn_blocking(move || store.dataplane_listeners(None)).await??;
        let specs: Vec<ListenerSpec> = views.iter().filter_map(spec_of).collect();
        let count = specs.len();
        let failures = dataplane.sync_all(specs).await;
        // A store far larger than this node can open would log a line per listener: show a few.
        for (id, err) in failures.iter().take(10) {
            tracing::error!(listener = %id, error = %err, "listener could not be opened");
        }
        if failures.len() > 10 {
            tracing::error!(
                more = failures.len() - 10,
                "more listeners could not be opened"
            );
        }
        Ok(count - failures.len())
    }

    /// Binds `address:port` now; hand the reservation to `open` after the commit.
    pub fn reserve(&self, address: &str, port: u16) -> Result<Reservation, ApiError> {
        let Some(dataplane) = &self.dataplane else {
            return Ok(Reservation(None));
        };
        let ip: IpAddr = address.parse().map_err(|_| {
            ApiError::PortTaken(format!("address [{address}] is not an IP address"))
        })?;
        dataplane
            .reserve(SocketAddr::new(ip, port))
            .map(|socket| Reservation(Some(socket)))
            .map_err(|err| match err.get_ref().and_then(|e| e.downcast_ref()) {
                Some(DataPlaneError::TooManyListeners { limit }) => {
                    ApiError::Store(StoreError::Quota {
                        what: "listening sockets on this node",
                        limit: *limit,
                    })
                }
                _ => {
                    ApiError::PortTaken(format!("port {port} on {address} cannot be bound: {err}"))
                }
            })
    }

    /// Opens a newly created listener on its reserved socket; returns once it serves.
    pub async fn open(
        &self,
        ctx: &Ctx,
        listener_id: String,
        reservation: Reservation,
    ) -> Result<(), ApiError> {
        let Some(dataplane) = &self.dataplane else {
            return Ok(());
        };
        let _order = self.apply.lock().await;
        let views = self.load(ctx, vec![listener_id]).await?;
        if let Some(spec) = views.iter().find_map(spec_of) {
            dataplane
                .sync_listener(spec, reservation.0)
                .await
                .map_err(|err| ctx.internal(anyhow::Error::new(err)))?;
        }
        Ok(())
    }

    /// Applies the committed state of `listener_ids` to the data plane; returns once it is served.
    /// Listeners that no longer exist are closed.
    ///
    /// Call it after the commit. The first caller to get `apply` becomes the leader: it takes
    /// every waiting change (its own and those of calls that committed meanwhile), reads their
    /// listeners in one store read made after all those commits, applies them, and answers each
    /// caller. A caller whose change a previous leader already applied returns at once.
    pub async fn sync(&self, ctx: &Ctx, listener_ids: Vec<String>) -> Result<(), ApiError> {
        if self.dataplane.is_none() || listener_ids.is_empty() {
            return Ok(());
        }
        let (done, mut outcome) = tokio::sync::oneshot::channel();
        self.lock_waiting().push(PendingSync { listener_ids, done });
        let answer = tokio::select! {
            biased;
            answer = &mut outcome => answer,
            _leader = self.apply.lock() => {
                let batch = std::mem::take(&mut *self.lock_waiting());
                self.apply_batch(ctx, batch).await;
                (&mut outcome).await
            }
        };
        match answer {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(ctx.internal(anyhow::anyhow!(reason))),
            Err(_) => Err(ctx.internal(anyhow::anyhow!("the data-plane sync was dropped"))),
        }
    }

    /// Applies a committed `UpdateSSLBinding` without reading the store: every listener it
    /// touched swaps `old` for `new` in its current state, keeping the role. Taking `apply`
    /// first orders it after any batch that read the store before this commit, and any batch
    /// that reads after it sees the change, so nothing older can land on top of it.
    pub async fn replace(
        &self,
        ctx: &Ctx,
        change: &BindingChange,
        old: &str,
        new: &str,
    ) -> Result<(), ApiError> {
        let Some(dataplane) = &self.dataplane else {
            return Ok(());
        };
        if change.listener_ids.is_empty() {
            return Ok(());
        }
        let _order = self.apply.lock().await;
        let new = CertRef {
            ssl_id: new.to_string(),
            is_default: false,
            bound_seq: change.seq,
        };
        dataplane
            .replace_certificate(&change.listener_ids, old, new)
            .await
            .map(|_| ())
            .map_err(|err| ctx.internal(anyhow::Error::new(err)))
    }

    fn lock_waiting(&self) -> std::sync::MutexGuard<'_, Vec<PendingSync>> {
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies a batch of waiting changes under `apply` and answers every caller in it.
    async fn apply_batch(&self, ctx: &Ctx, batch: Vec<PendingSync>) {
        let Some(dataplane) = &self.dataplane else {
            return;
        };
        if batch.is_empty() {
            return;
        }
        let mut ids: Vec<String> = batch
            .iter()
            .flat_map(|p| p.listener_ids.iter().cloned())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let views = match self.load(ctx, ids.clone()).await {
            Ok(views) => views,
            Err(err) => {
                let reason = format!("reading listeners for the data plane: {err}");
                for pending in batch {
                    let _ = pending.done.send(Err(reason.clone()));
                }
                return;
            }
        };
        for id in &ids {
            if !views.iter().any(|v| &v.listener.id == id) {
                dataplane.remove_listener(id).await;
            }
        }
        let mut specs = Vec::with_capacity(views.len());
        for view in &views {
            match spec_of(view) {
                Some(spec) => specs.push(spec),
                None => dataplane.remove_listener(&view.listener.id).await,
            }
        }
        let failed: std::collections::HashMap<String, String> = dataplane
            .sync_listeners(specs)
            .await
            .into_iter()
            .map(|(id, err)| (id, err.to_string()))
            .collect();
        for pending in batch {
            let error = pending
                .listener_ids
                .iter()
                .find_map(|id| failed.get(id).map(|e| format!("listener {id}: {e}")));
            let _ = pending.done.send(error.map_or(Ok(()), Err));
        }
    }

    async fn load(&self, ctx: &Ctx, ids: Vec<String>) -> Result<Vec<ListenerView>, ApiError> {
        ctx.db(move |store| store.dataplane_listeners(Some(&ids)))
            .await
    }

    /// Closes deleted listeners.
    pub async fn remove(&self, listener_ids: Vec<String>) {
        let Some(dataplane) = &self.dataplane else {
            return;
        };
        let _order = self.apply.lock().await;
        for id in listener_ids {
            dataplane.remove_listener(&id).await;
        }
    }

    /// Drops a deleted certificate from the data plane's cache.
    pub fn forget_cert(&self, ssl_id: &str) {
        if let Some(dataplane) = &self.dataplane {
            dataplane.forget_cert(ssl_id);
        }
    }

    /// Health per backend id (true = healthy); backends not checked yet (or on an API-only
    /// node) count as healthy.
    pub fn backend_health(&self, listener_id: &str) -> Vec<(String, bool)> {
        self.dataplane
            .as_ref()
            .map(|d| d.backend_health(listener_id))
            .unwrap_or_default()
    }

    pub fn render_metrics(&self) -> String {
        self.dataplane
            .as_ref()
            .map(|d| d.render_metrics())
            .unwrap_or_default()
    }

    /// Stops accepting and lets open connections drain.
    pub async fn shutdown(&self) {
        if let Some(dataplane) = &self.dataplane {
            dataplane.shutdown().await;
        }
    }
}

/// The data-plane spec of one listener, or `None` for what the data plane does not serve (UDP).
fn spec_of(view: &ListenerView) -> Option<ListenerSpec> {
    let listener = &view.listener;
    let protocol = match listener.protocol.as_str() {
        "HTTP" => Protocol::Http,
        "HTTPS" => Protocol::Https,
        "TCP" => Protocol::Tcp,
        other => {
            tracing::debug!(listener = %listener.id, protocol = other, "not served by the data plane");
            return None;
        }
    };
    let ip: IpAddr = match view.lb.address.parse() {
        Ok(ip) => ip,
        Err(_) => {
            tracing::error!(lb = %view.lb.id, address = %view.lb.address, "load balancer address is not an IP");
            return None;
        }
    };
    let attrs = &listener.attrs;
    let (http2, idle, health) = match listener.kind {
        LbKind::Clb => (
            flag(attrs, "EnableHTTP2"),
            seconds(attrs, "ClientTimeout", 60),
            clb_health(attrs),
        ),
        LbKind::Alb => (
            flag(attrs, "HTTP2Enabled"),
            seconds(attrs, "IdleTimeout", 60),
            alb_health(attrs),
        ),
    };
    let certs = view
        .bindings
        .iter()
        .map(|b| CertRef {
            ssl_id: b.ssl_id.clone(),
            is_default: b.role.is_default(),
            bound_seq: b.seq,
        })
        .collect();
    let backends = view
        .backends
        .iter()
        .filter_map(|b| {
            let ip: IpAddr = b.ip.parse().ok()?;
            Some(BackendSpec {
                id: b.id.clone(),
                addr: SocketAddr::new(ip, b.port),
                weight: b.weight.clamp(0, u32::MAX as i64) as u32,
                enabled: b.enabled,
            })
        })
        .collect();
    Some(ListenerSpec {
        id: listener.id.clone(),
        addr: SocketAddr::new(ip, listener.port),
        protocol,
        http2,
        certs,
        backends,
        health,
        idle_timeout: idle,
    })
}

/// Boolean attributes arrive as `1`/`0` (CLB) or `true`/`false` (ALB).
fn flag(attrs: &Attrs, name: &str) -> bool {
    matches!(
        attrs.get(name).map(String::as_str),
        Some("1" | "true" | "True")
    )
}

fn seconds(attrs: &Attrs, name: &str, default: u64) -> Duration {
    Duration::from_secs(
        attrs
            .get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

/// CLB `MonitorType`: `Port` (TCP connect) or `Path` (HTTP GET of `Path` with `Domain` as Host).
fn clb_health(attrs: &Attrs) -> HealthSpec {
    let check = match attrs.get("MonitorType").map(String::as_str) {
        Some("Path") => HealthCheck::Http {
            path: attrs
                .get("Path")
                .cloned()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "/".into()),
            host: attrs.get("Domain").cloned().filter(|d| !d.is_empty()),
        },
        _ => HealthCheck::Tcp,
    };
    HealthSpec {
        check,
        ..HealthSpec::default()
    }
}

/// ALB `HealthCheckConfig`: `Enabled`, `Type` (`Port` / `HTTP`), `Path`, `Domain`, `Interval`,
/// `TimeOut`.
fn alb_health(attrs: &Attrs) -> HealthSpec {
    let get = |field: &str| attrs.get(&format!("HealthCheckConfig.{field}")).cloned();
    let defaults = HealthSpec::default();
    let check = if get("Enabled").as_deref() == Some("false") {
        HealthCheck::Disabled
    } else if get("Type").as_deref() == Some("HTTP") {
        HealthCheck::Http {
            path: get("Path")
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "/".into()),
            host: get("Domain").filter(|d| !d.is_empty()),
        }
    } else {
        HealthCheck::Tcp
    };
    let secs = |field: &str, default: Duration| {
        get(field)
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|v| *v > 0)
            .map(Duration::from_secs)
            .unwrap_or(default)
    };
    HealthSpec {
        check,
        interval: secs("Interval", defaults.interval),
        timeout: secs("TimeOut", defaults.timeout),
    }
}
