//! Resources the scenarios create through the API (certificates, CLBs, HTTPS VServers, bindings,
//! backends), and the self-signed certificates they upload. Every call must answer RetCode 0, or
//! the scenario stops with the server's message.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;

use anyhow::Context;
use certbind::client::ApiClient;
use serde_json::Value;

use crate::scenario::CALL_TIMEOUT;
use crate::tls::{Fingerprint, SERVER_NAME};

/// The port of the first VServer of a fixture CLB; VServer `i` listens on `FIRST_PORT + i`.
pub const FIRST_PORT: u16 = 20_000;

/// A signed call that must succeed; returns the envelope.
pub async fn ok(
    client: &ApiClient,
    action: &str,
    params: &[(&str, &str)],
) -> anyhow::Result<Value> {
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let answer = tokio::time::timeout(CALL_TIMEOUT, client.call(action, &owned))
        .await
        .with_context(|| format!("{action}: no answer within {CALL_TIMEOUT:?}"))?
        .with_context(|| format!("calling {action}"))?;
    if answer.get("RetCode").and_then(Value::as_i64) != Some(0) {
        anyhow::bail!("{action} failed: {answer}");
    }
    Ok(answer)
}

fn field(answer: &Value, name: &str) -> anyhow::Result<String> {
    answer
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("no {name} in {answer}"))
}

/// A fresh ECDSA P-256 self-signed certificate for `name` (PEM certificate, PEM PKCS#8 key), made
/// by `openssl req` so the bench needs no certificate-building dependency.
pub fn self_signed(dir: &Path, name: &str) -> anyhow::Result<(String, String)> {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let output = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-sha256", "-days", "30", "-subj"])
        .arg(format!("/CN={name}"))
        .arg("-addext")
        .arg(format!("subjectAltName=DNS:{name}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .context("running openssl (needed to make the bench certificates)")?;
    anyhow::ensure!(
        output.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((
        std::fs::read_to_string(&cert)?,
        std::fs::read_to_string(&key)?,
    ))
}

/// Uploads a new self-signed certificate; returns its SSLId.
pub async fn create_ssl(client: &ApiClient, dir: &Path, name: &str) -> anyhow::Result<String> {
    let (cert, key) = self_signed(dir, name)?;
    upload_ssl(client, name, &cert, &key).await
}

/// Uploads a certificate and its key; returns its SSLId.
pub async fn upload_ssl(
    client: &ApiClient,
    name: &str,
    cert: &str,
    key: &str,
) -> anyhow::Result<String> {
    let answer = ok(
        client,
        "CreateSSL",
        &[("SSLName", name), ("UserCert", cert), ("PrivateKey", key)],
    )
    .await?;
    field(&answer, "SSLId")
}

/// The address a load balancer's listeners bind (`PrivateIP` of DescribeULB).
pub async fn private_ip(client: &ApiClient, ulb_id: &str) -> anyhow::Result<IpAddr> {
    let answer = ok(client, "DescribeULB", &[("ULBId", ulb_id)]).await?;
    let set = answer
        .get("DataSet")
        .and_then(|data| data.get(0))
        .with_context(|| format!("DescribeULB returned no {ulb_id}: {answer}"))?;
    let ip = field(set, "PrivateIP")?;
    ip.parse()
        .with_context(|| format!("PrivateIP {ip:?} is not an IP address"))
}

/// A port nothing listens on at `ip` right now (the kernel's choice for a throw-away socket).
pub fn free_port(ip: IpAddr) -> anyhow::Result<u16> {
    let socket = std::net::TcpListener::bind(SocketAddr::new(ip, 0))
        .with_context(|| format!("finding a free port on {ip}"))?;
    Ok(socket.local_addr()?.port())
}

/// A certificate for `tls::SERVER_NAME` as the data-plane scenarios use it: uploaded to certbind,
/// written into nginx's PEM file, and recognised by the client by its fingerprint.
#[derive(Clone)]
pub struct Material {
    pub cert_pem: String,
    pub key_pem: String,
    pub fingerprint: Fingerprint,
}

impl Material {
    /// A fresh ECDSA P-256 certificate; `tag` keeps the files of several apart under `dir`.
    pub fn make(dir: &Path, tag: &str) -> anyhow::Result<Material> {
        let own = dir.join(tag);
        std::fs::create_dir_all(&own).with_context(|| format!("creating {}", own.display()))?;
        let (cert_pem, key_pem) = self_signed(&own, SERVER_NAME)?;
        let fingerprint = Fingerprint::of_pem(&cert_pem)?;
        Ok(Material {
            cert_pem,
            key_pem,
            fingerprint,
        })
    }

    /// Certificate and key in one PEM text (nginx's `ssl_certificate` and `_key` file).
    pub fn combined(&self) -> String {
        format!("{}{}", self.cert_pem, self.key_pem)
    }
}

/// One CLB with one HTTPS VServer on a free port of its address, certificates A and B uploaded
/// and A bound; optionally one backend.
pub struct ListenerFixture {
    pub ssl_a: String,
    pub ssl_b: String,
    pub vserver_id: String,
    /// Where the VServer accepts TLS.
    pub addr: SocketAddr,
}

impl ListenerFixture {
    pub async fn create(
        client: &ApiClient,
        a: &Material,
        b: &Material,
        backend: Option<SocketAddr>,
    ) -> anyhow::Result<ListenerFixture> {
        let ssl_a = upload_ssl(client, "bench-a", &a.cert_pem, &a.key_pem).await?;
        let ssl_b = upload_ssl(client, "bench-b", &b.cert_pem, &b.key_pem).await?;
        let ulb_id = create_clb(client, "bench").await?;
        let ip = private_ip(client, &ulb_id).await?;
        let port = free_port(ip)?;
        let vserver_id = create_https_vserver(client, &ulb_id, "bench", port).await?;
        bind_ssl(client, &ssl_a, &ulb_id, &vserver_id).await?;
        if let Some(backend) = backend {
            let port = backend.port().to_string();
            let ip = backend.ip().to_string();
            ok(
                client,
                "AllocateBackend",
                &[
                    ("ULBId", &ulb_id),
                    ("VServerId", &vserver_id),
                    ("ResourceType", "UHost"),
                    ("ResourceIP", &ip),
                    ("Port", &port),
                ],
            )
            .await?;
        }
        Ok(ListenerFixture {
            ssl_a,
            ssl_b,
            vserver_id,
            addr: SocketAddr::new(ip, port),
        })
    }
}

/// A request-proxy CLB; returns its ULBId.
pub async fn create_clb(client: &ApiClient, name: &str) -> anyhow::Result<String> {
    let answer = ok(
        client,
        "CreateULB",
        &[
            ("ULBName", name),
            ("OuterMode", "Yes"),
            ("ListenType", "RequestProxy"),
        ],
    )
    .await?;
    field(&answer, "ULBId")
}

/// An HTTPS VServer on `port`; returns its VServerId.
pub async fn create_https_vserver(
    client: &ApiClient,
    ulb_id: &str,
    name: &str,
    port: u16,
) -> anyhow::Result<String> {
    let port = port.to_string();
    let answer = ok(
        client,
        "CreateVServer",
        &[
            ("ULBId", ulb_id),
            ("VServerName", name),
            ("Protocol", "HTTPS"),
            ("FrontendPort", &port),
            ("ListenType", "RequestProxy"),
        ],
    )
    .await?;
    field(&answer, "VServerId")
}

pub async fn bind_ssl(
    client: &ApiClient,
    ssl_id: &str,
    ulb_id: &str,
    vserver_id: &str,
) -> anyhow::Result<()> {
    ok(
        client,
        "BindSSL",
        &[
            ("SSLId", ssl_id),
            ("ULBId", ulb_id),
            ("VServerId", vserver_id),
        ],
    )
    .await?;
    Ok(())
}

/// One CLB with `count` HTTPS VServers, each bound to certificate A; B is uploaded but unbound.
pub struct FlipFixture {
    pub ssl_a: String,
    pub ssl_b: String,
    pub ulb_id: String,
    pub vserver_ids: Vec<String>,
}

impl FlipFixture {
    pub async fn create(
        client: &ApiClient,
        dir: &Path,
        count: usize,
    ) -> anyhow::Result<FlipFixture> {
        let ssl_a = create_ssl(client, dir, "bench-a.example").await?;
        let ssl_b = create_ssl(client, dir, "bench-b.example").await?;
        let ulb_id = create_clb(client, "bench").await?;
        let mut vserver_ids = Vec::with_capacity(count);
        for i in 0..count {
            let port =
                FIRST_PORT + u16::try_from(i).context("too many VServers for one load balancer")?;
            let vserver =
                create_https_vserver(client, &ulb_id, &format!("bench-{i}"), port).await?;
            bind_ssl(client, &ssl_a, &ulb_id, &vserver).await?;
            vserver_ids.push(vserver);
        }
        Ok(FlipFixture {
            ssl_a,
            ssl_b,
            ulb_id,
            vserver_ids,
        })
    }

    /// Deletes what `create` made (for servers the bench did not start); best effort.
    pub async fn remove(&self, client: &ApiClient) {
        for (what, result) in [
            (
                "DeleteULB",
                ok(client, "DeleteULB", &[("ULBId", &self.ulb_id)]).await,
            ),
            (
                "DeleteSSL A",
                ok(client, "DeleteSSL", &[("SSLId", &self.ssl_a)]).await,
            ),
            (
                "DeleteSSL B",
                ok(client, "DeleteSSL", &[("SSLId", &self.ssl_b)]).await,
            ),
        ] {
            if let Err(err) = result {
                eprintln!("cleanup: {what}: {err:#}");
            }
        }
    }
}
