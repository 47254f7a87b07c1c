//! The TLS load client of the data-plane scenarios, as in `dataplane-anchors.md` ("Client
//! hsload"): TLS 1.3 only, X25519 only, no resumption (every connection is a full handshake), SNI
//! `example.test`, a verifier that accepts any chain and by default skips the CertificateVerify
//! signature (the client's own CPU is the bottleneck on a shared 2-core machine), and the SHA-256
//! of the leaf the server presented. It owns the two workers that run on `load::drive`:
//! `HandshakeWorker` (connect, handshake, close) and `KeepAliveWorker` (sequential HTTPS `GET /`
//! on one connection). It knows nothing of certbind or nginx.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use certbind::probe::AnyCertificate;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, HOST};
use hyper_util::rt::TokioIo;
use rustls::client::Resumption;
use rustls::crypto::aws_lc_rs;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::load::{Step, Worker};

/// The name every bench certificate is issued for, and the SNI the client sends.
pub const SERVER_NAME: &str = "example.test";

/// A connect plus handshake (or one keep-alive request) that takes longer counts as failed.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// After a failure, wait this long so a dead server does not turn a worker into a busy spin.
const FAILURE_BACKOFF: Duration = Duration::from_millis(10);

/// SHA-256 of a certificate's DER.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of_der(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }

    /// The fingerprint of the first certificate of a PEM text.
    pub fn of_pem(pem: &str) -> anyhow::Result<Fingerprint> {
        let der = rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .context("no certificate in the PEM text")?
            .context("reading the PEM certificate")?;
        Ok(Fingerprint::of_der(&der))
    }

    /// The first 6 bytes in hex, enough to tell certificates apart in a report.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..6])
    }
}

/// One client configuration shared by all workers of a run.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl TlsClient {
    /// `verify_signature`: check the server's CertificateVerify signature (real clients do; it
    /// costs the client about as much as the server's signing).
    pub fn new(verify_signature: bool) -> anyhow::Result<TlsClient> {
        let mut provider = aws_lc_rs::default_provider();
        // X25519 only, so no server can pick the (costlier) X25519MLKEM768 hybrid.
        provider.kx_groups = vec![aws_lc_rs::kx_group::X25519];
        let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .context("configuring TLS 1.3")?
            .dangerous()
            .with_custom_certificate_verifier(AnyCertificate::new(verify_signature))
            .with_no_client_auth();
        // Every connection is a full handshake: the servers' tickets are never used.
        config.resumption = Resumption::disabled();
        Ok(TlsClient {
            connector: TlsConnector::from(Arc::new(config)),
            name: ServerName::try_from(SERVER_NAME)?,
        })
    }

    /// TCP connect (nodelay) and a full handshake; returns the stream and the leaf's fingerprint.
    pub async fn connect(
        &self,
        addr: SocketAddr,
    ) -> anyhow::Result<(TlsStream<TcpStream>, Fingerprint)> {
        let tcp = TcpStream::connect(addr).await.context("connect")?;
        tcp.set_nodelay(true)?;
        let tls = self
            .connector
            .connect(self.name.clone(), tcp)
            .await
            .context("handshake")?;
        let leaf = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .context("the server presented no certificate")?;
        let fingerprint = Fingerprint::of_der(leaf);
        Ok((tls, fingerprint))
    }
}

/// One handshake as the client saw it; times are nanoseconds since the run's shared origin.
#[derive(Debug, Clone, Copy)]
pub struct HandshakeEvent {
    /// Before the TCP connect.
    pub start: u64,
    /// When the handshake completed or failed (before the close).
    pub end: u64,
    /// `None`: the attempt failed (error or more than `ATTEMPT_TIMEOUT`).
    pub leaf: Option<Fingerprint>,
}

/// Where a `HandshakeWorker` writes its events; one per worker, so the lock is never contended.
pub type EventLog = Arc<Mutex<Vec<HandshakeEvent>>>;

/// A worker looping connect → full handshake → close_notify and close.
pub struct HandshakeWorker {
    client: TlsClient,
    addr: SocketAddr,
    /// Only a rotation run wants every handshake's times and certificate.
    log: Option<(Instant, EventLog)>,
}

impl HandshakeWorker {
    pub fn new(client: TlsClient, addr: SocketAddr) -> HandshakeWorker {
        HandshakeWorker {
            client,
            addr,
            log: None,
        }
    }

    /// A worker that also records every handshake, timed from `origin`.
    pub fn logged(
        client: TlsClient,
        addr: SocketAddr,
        origin: Instant,
        log: EventLog,
    ) -> HandshakeWorker {
        HandshakeWorker {
            client,
            addr,
            log: Some((origin, log)),
        }
    }
}

pub fn nanos_since(origin: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(origin).as_nanos()).unwrap_or(u64::MAX)
}

impl Worker for HandshakeWorker {
    async fn step(&mut self) -> Step {
        let start = Instant::now();
        let attempt = tokio::time::timeout(ATTEMPT_TIMEOUT, self.client.connect(self.addr)).await;
        let end = Instant::now();
        let (result, leaf) = match attempt {
            Ok(Ok((mut stream, leaf))) => {
                // close_notify, then the socket closes on drop. A server that already went away
                // does not make the handshake a failure.
                let _ = stream.shutdown().await;
                (Step::Ok, Some(leaf))
            }
            Ok(Err(err)) => (Step::Failed(format!("{err:#}")), None),
            Err(_) => (
                Step::Failed(format!("no handshake within {ATTEMPT_TIMEOUT:?}")),
                None,
            ),
        };
        if let Some((origin, log)) = &self.log {
            let event = HandshakeEvent {
                start: nanos_since(*origin, start),
                end: nanos_since(*origin, end),
                leaf,
            };
            log.lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(event);
        }
        if leaf.is_none() {
            tokio::time::sleep(FAILURE_BACKOFF).await;
        }
        result
    }
}

/// A worker sending `GET /` back-to-back on one HTTPS keep-alive connection and expecting
/// `200 ok`; a broken connection is replaced on the next step.
pub struct KeepAliveWorker {
    client: TlsClient,
    addr: SocketAddr,
    sender: Option<SendRequest<Empty<Bytes>>>,
}

impl KeepAliveWorker {
    /// Connects now, so the set-up is not measured.
    pub async fn connect(client: TlsClient, addr: SocketAddr) -> anyhow::Result<KeepAliveWorker> {
        let sender = http_over_tls(&client, addr).await?;
        Ok(KeepAliveWorker {
            client,
            addr,
            sender: Some(sender),
        })
    }
}

async fn http_over_tls(
    client: &TlsClient,
    addr: SocketAddr,
) -> anyhow::Result<SendRequest<Empty<Bytes>>> {
    let (tls, _) = client.connect(addr).await?;
    let (sender, connection) = http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the peer closes; errors show up on the sender.
        let _ = connection.await;
    });
    Ok(sender)
}

async fn get_ok(sender: &mut SendRequest<Empty<Bytes>>) -> anyhow::Result<Result<(), String>> {
    sender.ready().await?;
    let request = hyper::Request::get("/")
        .header(HOST, HeaderValue::from_static(SERVER_NAME))
        .body(Empty::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok(if status != 200 {
        Err(format!("HTTP status {status}"))
    } else if &body[..] != b"ok" {
        Err(format!(
            "body {:?} instead of \"ok\"",
            String::from_utf8_lossy(&body)
        ))
    } else {
        Ok(())
    })
}

impl Worker for KeepAliveWorker {
    async fn step(&mut self) -> Step {
        let sender = match &mut self.sender {
            Some(sender) => sender,
            None => match http_over_tls(&self.client, self.addr).await {
                Ok(fresh) => self.sender.insert(fresh),
                Err(err) => {
                    tokio::time::sleep(FAILURE_BACKOFF).await;
                    return Step::Failed(format!("reconnect: {err:#}"));
                }
            },
        };
        match tokio::time::timeout(ATTEMPT_TIMEOUT, get_ok(sender)).await {
            Ok(Ok(Ok(()))) => Step::Ok,
            Ok(Ok(Err(why))) => Step::Rejected(why),
            Ok(Err(err)) => {
                self.sender = None;
                Step::Failed(format!("transport: {err:#}"))
            }
            Err(_) => {
                self.sender = None;
                Step::Failed(format!("no answer within {ATTEMPT_TIMEOUT:?}"))
            }
        }
    }
}
