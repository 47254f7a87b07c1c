//! Starting real servers and talking to them: signed calls, raw HTTP, CLI runs.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use certbind::client::{ApiClient, Endpoint};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_certbind");

/// Each server gets its own /24 of loopback addresses, so parallel tests never share a port.
fn next_pool() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let seed = std::process::id() % 50;
    format!("127.{}.{}.0/24", 100 + seed, n % 250)
}

/// A running `certbind serve` and a signed client for its admin credentials.
pub struct Server {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub pool: String,
    pub base_url: String,
    pub endpoint: Endpoint,
    pub client: ApiClient,
}

pub async fn spawn() -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    start_in(dir, next_pool(), &[]).await
}

/// Starts a server with extra `serve` arguments.
pub async fn spawn_with(args: &[&str]) -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    start_in(dir, next_pool(), args).await
}

async fn start_in(dir: tempfile::TempDir, pool: String, extra: &[&str]) -> Server {
    let (child, base_url) = start_process(dir.path(), &pool, extra).await;
    let mut endpoint =
        Endpoint::from_file(&dir.path().join("credentials.json")).expect("credentials");
    assert_eq!(endpoint.base_url, base_url);
    endpoint.base_url = base_url.clone();
    Server {
        child: Some(child),
        client: ApiClient::new(endpoint.clone()),
        endpoint,
        dir,
        pool,
        base_url,
    }
}

/// Spawns `certbind serve` and waits for its "listening on" line.
pub async fn start_process(dir: &Path, pool: &str, extra: &[&str]) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--address-pool", pool])
        .arg("--data-dir")
        .arg(dir)
        .args(extra)
        .env("CERTBIND_LOG", "error")
        .env_remove("CERTBIND_MASTER_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn certbind serve");
    let stdout = child.stdout.take().expect("stdout");
    let url = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        while let Some(Ok(line)) = lines.next() {
            if let Some(url) = line.split("listening on ").nth(1) {
                let url = url.trim().to_string();
                // Keep draining stdout so the server never blocks on a full pipe.
                std::thread::spawn(move || for _ in lines {});
                return Some(url);
            }
        }
        None
    });
    let url = tokio::time::timeout(Duration::from_secs(60), url)
        .await
        .expect("server did not start within 60 s")
        .expect("join")
        .expect("server exited before listening");
    (child, url)
}

impl Server {
    /// A signed call with the admin credentials.
    pub async fn call(&self, action: &str, params: &[(&str, &str)]) -> Value {
        call_with(&self.client, action, params).await
    }

    /// A signed call that must succeed; returns the envelope.
    pub async fn ok(&self, action: &str, params: &[(&str, &str)]) -> Value {
        let answer = self.call(action, params).await;
        assert_eq!(answer["RetCode"], 0, "{action} {params:?} -> {answer}");
        answer
    }

    /// A signed call that must fail with `code`; returns the envelope.
    pub async fn fails(&self, action: &str, params: &[(&str, &str)], code: i64) -> Value {
        let answer = self.call(action, params).await;
        assert_eq!(answer["RetCode"], code, "{action} {params:?} -> {answer}");
        assert!(answer["Message"].is_string(), "{answer}");
        answer
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs a CLI command against this server's data dir; returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new(BIN)
            .args(args)
            .arg("--data-dir")
            .arg(self.dir.path())
            .env_remove("CERTBIND_MASTER_KEY")
            .output()
            .expect("run certbind");
        assert!(
            output.status.success(),
            "certbind {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8")
    }

    /// A client for other credentials (JSON as printed by `account create` / `key create`).
    pub fn client_for(&self, credentials_json: &str) -> ApiClient {
        let value: Value = serde_json::from_str(credentials_json).expect("credentials JSON");
        let field = |name: &str| value[name].as_str().unwrap_or("").to_string();
        ApiClient::new(Endpoint {
            base_url: self.base_url.clone(),
            public_key: field("PublicKey"),
            private_key: field("PrivateKey"),
            region: field("Region"),
            project_id: field("ProjectId"),
        })
    }

    /// Stops the server with SIGTERM and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Stops and starts again on the same data dir (and address pool).
    pub async fn restart(mut self) -> Server {
        self.stop();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        start_in(dir, self.pool.clone(), &[]).await
    }

    pub async fn raw_post(&self, content_type: Option<&str>, body: impl Into<Bytes>) -> Value {
        raw(&self.base_url, "POST", "/", content_type, body.into()).await
    }

    pub async fn raw_get(&self, path_and_query: &str) -> Value {
        raw(&self.base_url, "GET", path_and_query, None, Bytes::new()).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

pub async fn call_with(client: &ApiClient, action: &str, params: &[(&str, &str)]) -> Value {
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    client.call(action, &owned).await.expect("API call")
}

/// One raw HTTP request; asserts the HTTP 200 + request id contract and returns the JSON body.
pub async fn raw(
    base: &str,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Bytes,
) -> Value {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"));
    if let Some(ct) = content_type {
        request = request.header("Content-Type", ct);
    }
    let response = client
        .request(request.body(Full::new(body)).unwrap())
        .await
        .expect("HTTP");
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-ucloud-request-uuid"));
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
}

/// The signature of `pairs` with `private_key` (the shared signer).
pub fn sign(pairs: &[(&str, &str)], private_key: &str) -> String {
    certbind::auth::sign(pairs.iter().copied(), private_key)
}

/// Self-signed ECDSA P-256 certificate and key PEM for `names`.
pub fn cert(names: &[&str]) -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("params");
    let cert = params.self_signed(&key).expect("self-signed");
    (cert.pem(), key.serialize_pem())
}

/// A TLS client that accepts any certificate and reports the chain the server presented.
pub mod tls {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use rustls::pki_types::ServerName;
    use sha2::Digest;
    use tokio::net::TcpStream;
    use tokio_rustls::client::TlsStream;

    /// SHA-256 of a DER certificate, hex.
    pub fn fingerprint(der: &[u8]) -> String {
        hex::encode(sha2::Sha256::digest(der))
    }

    /// SHA-256 of the first certificate in a PEM text, hex.
    pub fn pem_fingerprint(pem: &str) -> String {
        let der = rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .expect("a certificate")
            .expect("PEM");
        fingerprint(&der)
    }

    /// One handshake; `sni` None sends no server name. Returns the presented chain's fingerprints
    /// (leaf first) and the open connection.
    pub async fn handshake(
        addr: SocketAddr,
        sni: Option<&str>,
    ) -> std::io::Result<(Vec<String>, TlsStream<TcpStream>)> {
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(certbind::probe::AnyCertificate::new(true))
        .with_no_client_auth();
        config.enable_sni = sni.is_some();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = ServerName::try_from(sni.unwrap_or("no-sni.invalid").to_string()).unwrap();
        let tcp = TcpStream::connect(addr).await?;
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await?;
        // A fresh config per handshake has no session to resume: this is always a full handshake,
        // so the peer certificates are what the server presented just now.
        let chain = stream
            .get_ref()
            .1
            .peer_certificates()
            .unwrap_or_default()
            .iter()
            .map(|c| fingerprint(c))
            .collect();
        Ok((chain, stream))
    }

    /// The leaf fingerprint a fresh handshake sees.
    pub async fn leaf(addr: SocketAddr, sni: Option<&str>) -> String {
        handshake(addr, sni)
            .await
            .expect("TLS handshake")
            .0
            .remove(0)
    }
}

/// A real HTTP backend on 127.0.0.1:0 that answers `<name> <method> <path>` and echoes the
/// forwarding headers it received as `x-seen-*` response headers.
pub async fn backend(name: &'static str) -> std::net::SocketAddr {
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind backend");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| async move {
                        let mut response = hyper::Response::new(Full::new(Bytes::from(format!(
                            "{name} {} {}",
                            request.method(),
                            request.uri().path()
                        ))));
                        for header in ["x-forwarded-for", "x-forwarded-proto", "x-real-ip"] {
                            if let Some(value) = request.headers().get(header) {
                                let key = format!("x-seen-{header}");
                                response.headers_mut().insert(
                                    hyper::header::HeaderName::from_bytes(key.as_bytes()).unwrap(),
                                    value.clone(),
                                );
                            }
                        }
                        Ok::<_, std::convert::Infallible>(response)
                    },
                );
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A plain HTTP GET to `addr` with `host`; returns (status, headers, body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, hyper::HeaderMap, String) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let response = client
        .request(
            hyper::Request::get(format!("http://{addr}{path}"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .expect("HTTP request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// A plain GET returning the body as text (for `/metrics`).
pub async fn raw_text(base: &str, path: &str) -> String {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let response = client
        .request(
            hyper::Request::get(format!("{base}{path}"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .expect("HTTP");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}
