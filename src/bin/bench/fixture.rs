//! Resources the scenarios create through the API (certificates, CLBs, HTTPS VServers, bindings),
//! and the self-signed certificates they upload. Every call must answer RetCode 0, or the scenario
//! stops with the server's message.

use std::path::Path;
use std::process::Command;

use anyhow::Context;
use certbind::client::ApiClient;
use serde_json::Value;

use crate::scenario::CALL_TIMEOUT;

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
    let answer = ok(
        client,
        "CreateSSL",
        &[("SSLName", name), ("UserCert", &cert), ("PrivateKey", &key)],
    )
    .await?;
    field(&answer, "SSLId")
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
