//! Listener runtime: the per-listener cell (immutable snapshot behind an `ArcSwap`), the accept
//! loop, and the life of each client connection (TLS handshake, HTTP serving, idle timeout,
//! drain). It does not choose backends (`balancer`) or forward requests (`proxy`).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::crypto::CryptoProvider;
use rustls::server::{Acceptor as RustlsAcceptor, ServerSessionMemoryCache, StoresServerSessions};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio_rustls::LazyConfigAcceptor;

use super::balancer::Pool;
use super::metrics::{HandshakeFailure, ListenerMetrics, Metrics};
use super::proxy::{self, BackendClient, Scheme};
use super::resolver::{CertTable, ResolvedCert};
use super::{DataPlaneOptions, HealthSpec, ListenerSpec, Protocol};

/// The crypto provider of every TLS config the data plane builds, named explicitly so the choice
/// does not depend on which provider some other part of the process installed as default. Built
/// once: a provider is a handful of tables, shared by every config.
pub(crate) fn crypto_provider() -> &'static Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

/// What every listener shares: counters, the pooled backend client, options, and the count of
/// open connections that `shutdown` waits on.
pub(crate) struct Shared {
    pub metrics: Metrics,
    pub client: BackendClient,
    pub options: DataPlaneOptions,
    pub connections: ConnectionCount,
}

impl Shared {
    pub fn new(options: DataPlaneOptions) -> Arc<Shared> {
        Arc::new(Shared {
            metrics: Metrics::default(),
            client: proxy::backend_client(options.backend_connect_timeout),
            options,
            connections: ConnectionCount::default(),
        })
    }
}

/// Open client connections across all listeners, with a wake-up when the last one closes.
#[derive(Default)]
pub(crate) struct ConnectionCount {
    active: AtomicUsize,
    idle: Notify,
}

impl ConnectionCount {
    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            // Registering before the check means a close between the check and the await still
            // wakes us.
            notified.as_mut().enable();
            if self.active() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Held by each connection task; its drop is what `shutdown` waits for.
struct ConnectionGuard {
    shared: Arc<Shared>,
    cell: Arc<ListenerCell>,
}

impl ConnectionGuard {
    fn new(shared: Arc<Shared>, cell: Arc<ListenerCell>) -> ConnectionGuard {
        shared.connections.active.fetch_add(1, Ordering::SeqCst);
        cell.metrics.connection_opened();
        ConnectionGuard { shared, cell }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.cell.metrics.connection_closed();
        if self
            .shared
            .connections
            .active
            .fetch_sub(1, Ordering::SeqCst)
            == 1
        {
            self.shared.connections.idle.notify_waiters();
        }
    }
}

/// Where a listener's open connections are in their life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    Serving,
    /// Finish in-flight requests, take no new ones on this connection, then close.
    Draining,
    /// Close now: the drain timeout is over.
    Closing,
}

/// One listener as the connection tasks see it: stable for the listener's whole life, while the
/// state inside is replaced wholesale on every sync.
pub(crate) struct ListenerCell {
    pub id: String,
    state: ArcSwap<ListenerState>,
    phase: watch::Sender<Phase>,
    /// Wakes the health checker after a swap. `notify_one` keeps a permit, so a swap that lands
    /// while the checker is busy is not lost.
    pub changed: Notify,
    pub metrics: ListenerMetrics,
}

impl ListenerCell {
    pub fn new(id: String, state: ListenerState) -> Arc<ListenerCell> {
        Arc::new(ListenerCell {
            id,
            state: ArcSwap::from_pointee(state),
            phase: watch::Sender::new(Phase::Serving),
            changed: Notify::new(),
            metrics: ListenerMetrics::default(),
        })
    }

    /// A short-lived view for synchronous use; never held across an await.
    pub fn load(&self) -> arc_swap::Guard<Arc<ListenerState>> {
        self.state.load()
    }

    pub fn load_full(&self) -> Arc<ListenerState> {
        self.state.load_full()
    }

    pub fn store(&self, state: ListenerState) {
        self.state.store(Arc::new(state));
    }

    pub fn set_phase(&self, phase: Phase) {
        // Phases only move forward: a late drain must not reopen a closing listener.
        self.phase.send_if_modified(|current| {
            let advance = phase > *current;
            if advance {
                *current = phase;
            }
            advance
        });
    }
}

/// The TLS side of an HTTPS snapshot.
pub(crate) struct TlsState {
    pub table: Arc<CertTable>,
    /// Resolves from `table` and keeps its sessions to itself (see `TlsState::serving`).
    pub config: Arc<ServerConfig>,
    pub http2: bool,
    /// A listener without certificates logs once per snapshot, not once per refused handshake.
    warned_no_certificate: AtomicBool,
}

impl TlsState {
    /// The TLS side that serves `table`: a clone of the process-wide base config for its ALPN
    /// choice (see `base_config`), with this table as its resolver and a session store of its
    /// own, empty until the first session is issued. So a session issued under older certificates
    /// is never found after a swap: a resumed session cannot carry an old certificate past it,
    /// and no handshake can mix the certificates of one snapshot with the sessions of another.
    ///
    /// Why not one config for the listener's life, with a resolver reading the live state and a
    /// session store keyed by a certificate generation: rustls files a TLS 1.3 session after the
    /// client's Finished, a round trip after the certificate was chosen, so a swap in between
    /// would file a session of the old certificate under the new generation. A config per
    /// snapshot ties certificate and sessions together by construction, for the cost of a clone.
    pub fn serving(table: CertTable, http2: bool) -> TlsState {
        let table = Arc::new(table);
        let mut config = base_config(http2).clone();
        config.cert_resolver = table.clone();
        config.session_storage = Arc::new(LazySessions::default());
        TlsState {
            table,
            config: Arc::new(config),
            http2,
            warned_no_certificate: AtomicBool::new(false),
        }
    }

    /// The same certificates and config for the next snapshot: sessions keep resuming across a
    /// swap that did not touch the certificates (backends, health checks, timeouts).
    fn unchanged(&self) -> TlsState {
        TlsState {
            table: self.table.clone(),
            config: self.config.clone(),
            http2: self.http2,
            warned_no_certificate: AtomicBool::new(false),
        }
    }
}

/// Everything a new connection or request of one listener needs, immutable once published.
pub(crate) struct ListenerState {
    pub protocol: Protocol,
    pub idle_timeout: Duration,
    pub tls: Option<TlsState>,
    /// Shared with the previous snapshot while the backends are unchanged, which keeps the round
    /// robin position and tells the health checker there is nothing new to probe.
    pub pool: Arc<Pool>,
    pub health: Arc<HealthSpec>,
}

impl ListenerState {
    /// Builds the next snapshot, reusing every part of `previous` that the spec leaves unchanged:
    /// the TLS side when the bindings and ALPN are the same (so sessions keep resuming), the pool
    /// when the backends are, the health spec when it is.
    pub fn build(
        spec: &ListenerSpec,
        certs: Vec<ResolvedCert>,
        previous: Option<&ListenerState>,
    ) -> ListenerState {
        let tls = match spec.protocol {
            Protocol::Https => Some(
                match previous
                    .and_then(|p| p.tls.as_ref())
                    .filter(|old| old.http2 == spec.http2 && old.table.same_bindings(&certs))
                {
                    Some(old) => old.unchanged(),
                    None => TlsState::serving(CertTable::build(certs), spec.http2),
                },
            ),
            Protocol::Http | Protocol::Tcp => None,
        };
        let pool = match previous.filter(|p| p.pool.has_backends(&spec.backends)) {
            Some(p) => p.pool.clone(),
            None => Arc::new(Pool::build(&spec.backends, previous.map(|p| &*p.pool))),
        };
        let health = match previous.filter(|p| *p.health == spec.health) {
            Some(p) => p.health.clone(),
            None => Arc::new(spec.health.clone()),
        };
        ListenerState {
            protocol: spec.protocol,
            idle_timeout: spec.idle_timeout,
            tls,
            pool,
            health,
        }
    }

    /// This snapshot with other certificates and nothing else changed (`replace_certificate`).
    /// `None` for a listener that does not terminate TLS.
    pub fn with_certs(&self, certs: Vec<ResolvedCert>) -> Option<ListenerState> {
        let tls = self.tls.as_ref()?;
        Some(ListenerState {
            protocol: self.protocol,
            idle_timeout: self.idle_timeout,
            tls: Some(TlsState::serving(CertTable::build(certs), tls.http2)),
            pool: self.pool.clone(),
            health: self.health.clone(),
        })
    }

    pub fn refuses_handshakes(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.table.is_empty())
    }

    /// True when the health checker has nothing new to look at: same backends, same checks.
    pub fn same_checks(&self, other: &ListenerState) -> bool {
        Arc::ptr_eq(&self.pool, &other.pool) && Arc::ptr_eq(&self.health, &other.health)
    }
}

/// The rustls config every snapshot's config is cloned from, one per ALPN choice. Built once per
/// process, so that all listeners share its provider, verifier, ticketer and the like: cloning it
/// bumps about ten reference counts that stay in cache, where a config per listener would have
/// its own ten cold objects to bump (and a build from the provider costs twice a clone). Its own
/// resolver has no certificate; every clone replaces it.
fn base_config(http2: bool) -> &'static ServerConfig {
    static BASES: OnceLock<[ServerConfig; 2]> = OnceLock::new();
    let bases = BASES.get_or_init(|| {
        [false, true].map(|http2| {
            let mut config = ServerConfig::builder_with_provider(crypto_provider().clone())
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                // The aws-lc-rs provider supports both versions; failing here would be a build
                // defect.
                .expect("the crypto provider supports TLS 1.2 and 1.3")
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(CertTable::build(Vec::new())));
            config.alpn_protocols = if http2 {
                vec![b"h2".to_vec(), b"http/1.1".to_vec()]
            } else {
                vec![b"http/1.1".to_vec()]
            };
            config
        })
    });
    &bases[usize::from(http2)]
}

/// Sessions kept for resumption per snapshot, as many as rustls's default store holds.
const SESSIONS_PER_SNAPSHOT: usize = 256;

/// rustls's in-memory session store, allocated on the first session issued rather than with the
/// config: most snapshots of most listeners never issue one before the next swap, and the store
/// is about 30 KB.
#[derive(Debug, Default)]
struct LazySessions(OnceLock<Arc<ServerSessionMemoryCache>>);

impl StoresServerSessions for LazySessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.0
            .get_or_init(|| ServerSessionMemoryCache::new(SESSIONS_PER_SNAPSHOT))
            .put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.get()?.get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.get()?.take(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

/// Converts a bound std socket into a listening tokio one.
pub(crate) fn into_tokio(socket: std::net::TcpListener) -> io::Result<TcpListener> {
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket)
}

/// The accept loop of one socket of a listener.
pub(crate) struct Acceptor {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Acceptor {
    pub fn start(socket: TcpListener, cell: Arc<ListenerCell>, shared: Arc<Shared>) -> Acceptor {
        // local_addr of a freshly bound socket only fails on a closed descriptor; fall back to
        // the unspecified address rather than fail an otherwise working listener.
        let addr = socket
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let task = tokio::spawn(accept_loop(socket, cell, shared));
        Acceptor { addr, task }
    }

    /// Stops accepting and returns once the socket is closed; open connections are untouched.
    pub async fn stop(self) {
        self.task.abort();
        // The task owns the socket: once it has finished, the port is closed.
        let _ = self.task.await;
    }

    pub fn abort(&self) {
        self.task.abort();
    }
}

async fn accept_loop(socket: TcpListener, cell: Arc<ListenerCell>, shared: Arc<Shared>) {
    loop {
        match socket.accept().await {
            Ok((stream, peer)) => {
                // Small request/response exchanges should not wait on Nagle.
                let _ = stream.set_nodelay(true);
                let guard = ConnectionGuard::new(shared.clone(), cell.clone());
                tokio::spawn(serve_connection(stream, peer, guard));
            }
            Err(error) => {
                // Typically EMFILE: without a pause the loop would spin on the same error.
                tracing::warn!(listener = %cell.id, %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_connection(stream: TcpStream, peer: SocketAddr, guard: ConnectionGuard) {
    let cell = guard.cell.clone();
    let shared = guard.shared.clone();
    let activity = Arc::new(Activity::new());
    let stream = IdleIo {
        inner: stream,
        activity: activity.clone(),
    };
    // The protocol is fixed per connection when it is accepted; a later protocol change applies
    // to later connections.
    let protocol = cell.load().protocol;
    let life = ConnectionLife::new(&cell, activity);
    match protocol {
        Protocol::Tcp => proxy::relay(stream, cell, shared, life).await,
        Protocol::Http => serve_http(stream, peer, Scheme::Http, false, cell, shared, life).await,
        Protocol::Https => {
            let handshake = tls_handshake(stream, &cell);
            let tls = match tokio::time::timeout(shared.options.handshake_timeout, handshake).await
            {
                Ok(Some(tls)) => tls,
                Ok(None) => return,
                Err(_) => {
                    cell.metrics.handshake_failed(HandshakeFailure::Timeout);
                    return;
                }
            };
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            serve_http(tls, peer, Scheme::Https, h2, cell, shared, life).await
        }
    }
    drop(guard);
}

/// Reads the ClientHello, then takes the listener's current snapshot and finishes the handshake
/// with that snapshot's config: certificate and ALPN come from one consistent state, loaded at the
/// moment the client asks, so a swap that returned before the ClientHello arrived is always seen.
async fn tls_handshake(
    stream: IdleIo<TcpStream>,
    cell: &ListenerCell,
) -> Option<tokio_rustls::server::TlsStream<IdleIo<TcpStream>>> {
    let start = match LazyConfigAcceptor::new(RustlsAcceptor::default(), stream).await {
        Ok(start) => start,
        Err(error) => {
            let reason = classify(&error, HandshakeFailure::BadClientHello);
            tracing::debug!(listener = %cell.id, %error, reason = reason.label(), "no usable ClientHello");
            cell.metrics.handshake_failed(reason);
            return None;
        }
    };
    let state = cell.load_full();
    let Some(tls) = state.tls.as_ref() else {
        // The listener stopped being HTTPS between accept and ClientHello.
        cell.metrics.handshake_failed(HandshakeFailure::TlsError);
        return None;
    };
    let no_certificate = tls.table.is_empty();
    if no_certificate && !tls.warned_no_certificate.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            listener = %cell.id,
            "refusing TLS handshakes: no certificate is bound to this HTTPS listener"
        );
    }
    match start.into_stream(tls.config.clone()).await {
        Ok(stream) => {
            cell.metrics.handshake_ok();
            Some(stream)
        }
        Err(error) => {
            let reason = if no_certificate {
                HandshakeFailure::NoCertificate
            } else {
                classify(&error, HandshakeFailure::TlsError)
            };
            tracing::debug!(listener = %cell.id, %error, reason = reason.label(), "TLS handshake failed");
            cell.metrics.handshake_failed(reason);
            None
        }
    }
}

/// Sorts a handshake error into a metrics reason; tokio-rustls wraps rustls errors in io errors.
fn classify(error: &io::Error, tls_default: HandshakeFailure) -> HandshakeFailure {
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::AlertReceived(_)) => HandshakeFailure::PeerAlert,
        Some(_) => tls_default,
        None => HandshakeFailure::Io,
    }
}

/// What ends a client connection besides the client: idleness and the listener's phase. Two
/// receivers, so a connection can wait for "wind down" and "close now" in one `select!`.
pub(crate) struct ConnectionLife {
    pub drain: watch::Receiver<Phase>,
    pub close: watch::Receiver<Phase>,
    pub activity: Arc<Activity>,
}

impl ConnectionLife {
    fn new(cell: &ListenerCell, activity: Arc<Activity>) -> ConnectionLife {
        let drain = cell.phase.subscribe();
        let close = drain.clone();
        ConnectionLife {
            drain,
            close,
            activity,
        }
    }
}

/// Resolves when a connection should stop taking new work: idle for `timeout` (zero means never)
/// or its listener draining.
pub(crate) async fn wind_down(
    phase: &mut watch::Receiver<Phase>,
    activity: &Activity,
    timeout: Duration,
) {
    let draining = async {
        // An error means the cell is gone, which cannot happen while a connection holds it; treat
        // it as a drain all the same.
        let _ = phase.wait_for(|p| *p >= Phase::Draining).await;
    };
    tokio::select! {
        _ = draining => {}
        _ = activity.idle_for(timeout) => {}
    }
}

/// Resolves when the drain timeout is over and a connection must close now.
pub(crate) async fn closing(phase: &mut watch::Receiver<Phase>) {
    let _ = phase.wait_for(|p| *p == Phase::Closing).await;
}

async fn serve_http<I>(
    io: I,
    peer: SocketAddr,
    scheme: Scheme,
    h2: bool,
    cell: Arc<ListenerCell>,
    shared: Arc<Shared>,
    mut life: ConnectionLife,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let idle_timeout = cell.load().idle_timeout;
    let context = Arc::new(proxy::RequestContext {
        cell,
        shared,
        peer,
        scheme,
    });
    let service = hyper::service::service_fn(move |request| {
        let context = context.clone();
        async move { Ok::<_, std::convert::Infallible>(proxy::forward(&context, request).await) }
    });
    // The protocol comes from ALPN, so the connection never needs to sniff its first bytes.
    let builder = auto::Builder::new(TokioExecutor::new());
    let builder = if h2 {
        builder.http2_only()
    } else {
        builder.http1_only()
    };
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let mut winding_down = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "client connection ended with an error");
                }
                return;
            }
            _ = wind_down(&mut life.drain, &life.activity, idle_timeout), if !winding_down => {
                // Graceful: HTTP/1 finishes the request in flight, HTTP/2 sends GOAWAY and lets
                // open streams complete; an idle connection closes at once.
                connection.as_mut().graceful_shutdown();
                winding_down = true;
            }
            _ = closing(&mut life.close) => return,
        }
    }
}

/// The last time a connection moved a byte, for the idle timeout.
pub(crate) struct Activity {
    base: Instant,
    /// Nanoseconds after `base`.
    last: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            base: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let nanos = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last.store(nanos, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.base + Duration::from_nanos(self.last.load(Ordering::Relaxed))
    }

    /// Resolves once no byte has moved for `timeout`; never for a zero timeout.
    pub async fn idle_for(&self, timeout: Duration) {
        if timeout.is_zero() {
            std::future::pending::<()>().await;
        }
        loop {
            let deadline = self.last() + timeout;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// A transport that records activity on every read and write that moves bytes.
pub(crate) struct IdleIo<T> {
    pub inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
