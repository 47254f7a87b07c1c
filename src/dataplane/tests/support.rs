//! Test fixtures for the data plane: certificates made with rcgen, an in-memory `CertSource`, a
//! TLS client whose verifier records the served chain, real hyper backends on 127.0.0.1:0, and
//! spec builders. No fixed ports, no sleeps: waits poll with a deadline.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{HeaderMap, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::dataplane::{
    BackendSpec, CertRef, CertSource, HealthCheck, HealthSpec, ListenerSpec, LoadedCert, Protocol,
};

/// A leaf signed by its own throwaway CA (ECDSA P-256), as the data plane receives it.
pub struct TestCert {
    pub leaf: CertificateDer<'static>,
    pub ca: CertificateDer<'static>,
    pub loaded: LoadedCert,
}

pub fn issue(names: &[&str]) -> TestCert {
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "certbind test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();

    let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut leaf_params = CertificateParams::new(names.clone()).unwrap();
    leaf_params.distinguished_name.push(
        DnType::CommonName,
        names.first().cloned().unwrap_or_default(),
    );
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let chain = vec![leaf.der().clone(), ca.der().clone()];
    let loaded = LoadedCert::from_der(chain, key, names).unwrap();
    TestCert {
        leaf: leaf.der().clone(),
        ca: ca.der().clone(),
        loaded,
    }
}

pub fn cert_with_names(names: &[&str]) -> LoadedCert {
    issue(names).loaded
}

/// The control plane stand-in: certificates by ssl_id, with a count of loads to see the cache.
#[derive(Default)]
pub struct MemorySource {
    certs: Mutex<HashMap<String, LoadedCert>>,
    pub loads: AtomicUsize,
}

impl MemorySource {
    pub fn insert(&self, ssl_id: &str, cert: &TestCert) {
        self.certs
            .lock()
            .unwrap()
            .insert(ssl_id.to_owned(), cert.loaded.clone());
    }

    pub fn loads(&self) -> usize {
        self.loads.load(Ordering::SeqCst)
    }
}

impl CertSource for MemorySource {
    fn load(&self, ssl_id: &str) -> anyhow::Result<LoadedCert> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.certs
            .lock()
            .unwrap()
            .get(ssl_id)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no certificate {ssl_id}"))
    }
}

/// Accepts any chain (after checking the handshake signature for real) and records what the
/// server presented.
#[derive(Debug)]
struct RecordingVerifier {
    provider: Arc<CryptoProvider>,
    served: Mutex<Vec<CertificateDer<'static>>>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut served = self.served.lock().unwrap();
        served.clear();
        served.push(end_entity.clone().into_owned());
        served.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// How a test client connects.
#[derive(Default, Clone)]
pub struct TlsClient {
    pub sni: Option<String>,
    pub alpn: Vec<Vec<u8>>,
    pub tls12_only: bool,
}

pub struct TlsConnection {
    pub stream: TlsStream<TcpStream>,
    /// Leaf first, then the chain, as the server sent it.
    pub served: Vec<CertificateDer<'static>>,
}

impl TlsClient {
    pub fn sni(name: &str) -> TlsClient {
        TlsClient {
            sni: Some(name.to_owned()),
            ..TlsClient::default()
        }
    }

    pub async fn connect(&self, addr: SocketAddr) -> std::io::Result<TlsConnection> {
        self.handshake(TcpStream::connect(addr).await?).await
    }

    /// The handshake on an already open TCP connection.
    pub async fn handshake(&self, tcp: TcpStream) -> std::io::Result<TlsConnection> {
        let addr = tcp.peer_addr()?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = Arc::new(RecordingVerifier {
            provider: provider.clone(),
            served: Mutex::new(Vec::new()),
        });
        let versions: &[&rustls::SupportedProtocolVersion] = if self.tls12_only {
            &[&rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        };
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        // Every handshake in these tests must be a full one, or a swap could hide behind
        // resumption.
        config.resumption = rustls::client::Resumption::disabled();
        config.alpn_protocols = self.alpn.clone();
        // An IP address as server name makes rustls send no SNI at all.
        let server_name = match &self.sni {
            Some(name) => ServerName::try_from(name.clone()).unwrap(),
            None => ServerName::IpAddress(addr.ip().into()),
        };
        let stream = TlsConnector::from(Arc::new(config))
            .connect(server_name, tcp)
            .await?;
        let served = verifier.served.lock().unwrap().clone();
        Ok(TlsConnection { stream, served })
    }
}

/// A client that keeps one config, and with it rustls's session cache, across connections: the
/// way a browser resumes sessions.
pub struct ResumingClient {
    config: Arc<ClientConfig>,
    verifier: Arc<RecordingVerifier>,
    sni: String,
}

impl ResumingClient {
    pub fn new(sni: &str) -> ResumingClient {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = Arc::new(RecordingVerifier {
            provider: provider.clone(),
            served: Mutex::new(Vec::new()),
        });
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        ResumingClient {
            config: Arc::new(config),
            verifier,
            sni: sni.to_owned(),
        }
    }

    /// Connects, sends one request (which also reads the server's session tickets) and reports
    /// the handshake kind and the leaf presented, None when the session was resumed.
    pub async fn round_trip(
        &self,
        addr: SocketAddr,
    ) -> (rustls::HandshakeKind, Option<CertificateDer<'static>>) {
        self.verifier.served.lock().unwrap().clear();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let stream = TlsConnector::from(self.config.clone())
            .connect(ServerName::try_from(self.sni.clone()).unwrap(), tcp)
            .await
            .unwrap();
        let kind = stream.get_ref().1.handshake_kind().unwrap();
        let leaf = self.verifier.served.lock().unwrap().first().cloned();
        let mut sender = http1_over(stream).await;
        assert_eq!(get(&mut sender, "/").await.status, StatusCode::OK);
        (kind, leaf)
    }
}

/// The leaf the server presented for one fresh handshake.
pub async fn served_leaf(addr: SocketAddr, client: &TlsClient) -> CertificateDer<'static> {
    client.connect(addr).await.unwrap().served[0].clone()
}

/// A test HTTP backend: answers every request with its name and echoes what the proxy added.
pub struct TestBackend {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn spawn_backend(name: &'static str) -> TestBackend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<_>| async move {
                    Ok::<_, Infallible>(echo(name, &request))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    TestBackend {
        addr,
        accepted,
        task,
    }
}

fn echo<B>(name: &str, request: &Request<B>) -> Response<http_body_util::Full<Bytes>> {
    let mut response = Response::new(http_body_util::Full::new(Bytes::from(name.to_owned())));
    let headers = response.headers_mut();
    for (from, to) in [
        ("x-forwarded-for", "x-seen-xff"),
        ("x-forwarded-proto", "x-seen-proto"),
        ("x-real-ip", "x-seen-real-ip"),
        ("host", "x-seen-host"),
    ] {
        if let Some(value) = request.headers().get(from) {
            headers.insert(to, value.clone());
        }
    }
    headers.insert("x-seen-path", request.uri().path().parse().unwrap());
    response
}

/// A backend whose answers wait until the test opens the gate; counts the requests that arrived.
pub async fn spawn_gated_backend(gate: Arc<Notify>) -> (SocketAddr, Arc<AtomicUsize>) {
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let arrived = Arc::new(AtomicUsize::new(0));
    let counter = arrived.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = socket.accept().await {
            let gate = gate.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_request| {
                    let gate = gate.clone();
                    counter.fetch_add(1, Ordering::SeqCst);
                    async move {
                        gate.notified().await;
                        Ok::<_, Infallible>(hyper::Response::new(http_body_util::Full::new(
                            Bytes::from_static(b"slow"),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, arrived)
}

/// A backend that accepts and hangs up at once: connecting works, reading the response fails.
pub async fn spawn_hang_up_backend() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    (addr, task)
}

/// An address nothing listens on (bound, then released).
pub fn dead_addr() -> SocketAddr {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap()
}

pub fn backend(id: &str, addr: SocketAddr, weight: u32) -> BackendSpec {
    BackendSpec {
        id: id.to_owned(),
        addr,
        weight,
        enabled: true,
    }
}

pub fn cert_ref(ssl_id: &str, is_default: bool, bound_seq: i64) -> CertRef {
    CertRef {
        ssl_id: ssl_id.to_owned(),
        is_default,
        bound_seq,
    }
}

/// A listener on an ephemeral loopback port with health checks off.
pub fn listener(id: &str, protocol: Protocol, backends: Vec<BackendSpec>) -> ListenerSpec {
    ListenerSpec {
        id: id.to_owned(),
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        protocol,
        http2: false,
        certs: Vec::new(),
        backends,
        health: HealthSpec {
            check: HealthCheck::Disabled,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
        },
        idle_timeout: Duration::from_secs(60),
    }
}

pub type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// One HTTP/1.1 client connection over any transport.
pub async fn http1_over<T>(io: T) -> Sender
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

pub async fn http1(addr: SocketAddr) -> Sender {
    http1_over(TcpStream::connect(addr).await.unwrap()).await
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

pub async fn get(sender: &mut Sender, path: &str) -> Answer {
    get_with(sender, path, &[]).await
}

pub async fn get_with(sender: &mut Sender, path: &str, headers: &[(&str, &str)]) -> Answer {
    sender.ready().await.unwrap();
    let mut request = Request::get(path).header("host", "app.example.com");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = sender
        .send_request(request.body(Empty::new()).unwrap())
        .await
        .unwrap();
    read(response).await
}

pub async fn read(response: Response<hyper::body::Incoming>) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// One request on a fresh connection.
pub async fn get_once(addr: SocketAddr, path: &str) -> Answer {
    get(&mut http1(addr).await, path).await
}

/// HTTP/2 over an established TLS connection.
pub async fn http2_get(stream: TlsStream<TcpStream>, path: &str) -> Answer {
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = Request::get(format!("https://app.example.com{path}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    read(sender.send_request(request).await.unwrap()).await
}

/// Polls `condition` until it holds or five seconds pass; for states reached by background work
/// (health checks, idle timeouts), never for ordering that an API call already guarantees.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if condition().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
