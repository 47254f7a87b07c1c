//! One module per subcommand. Each prints its own report; shared mechanics live in the modules
//! next to `main.rs`.

pub mod api;
pub mod keepalive;
pub mod project_wide;
pub mod rotation;
pub mod scale;
pub mod table_size;
pub mod tls_handshake;
pub mod update_binding;

use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use certbind::client::{ApiClient, Endpoint};
use serde_json::Value;

use crate::serve::{self, ServeProcess, Workdir};
use crate::TargetArgs;

/// The certbind under test: one named by `--credentials`, or a child the bench started (stopped
/// and deleted when this is dropped).
pub struct Target {
    pub endpoint: Endpoint,
    pub client: ApiClient,
    /// True when the bench started the server, so what it creates needs no cleanup.
    pub owned: bool,
    // Dropped in this order: the server stops before its data dir is removed.
    _process: Option<ServeProcess>,
    pub workdir: Workdir,
}

impl Target {
    pub async fn open(args: &TargetArgs) -> anyhow::Result<Target> {
        let workdir = Workdir::new(args.serve.keep_data)?;
        let (endpoint, process) = match &args.credentials {
            Some(path) => {
                let mut endpoint = Endpoint::from_file(path)?;
                if let Some(url) = &args.base_url {
                    endpoint.base_url = url.clone();
                }
                anyhow::ensure!(
                    !endpoint.base_url.is_empty(),
                    "{} has no BaseUrl; pass --base-url",
                    path.display()
                );
                (endpoint, None)
            }
            None => {
                let bin = serve::certbind_bin(&args.serve)?;
                let data_dir = workdir.path.join("data");
                let process = ServeProcess::start(&bin, &data_dir, serve::ADDRESS_POOL)?;
                println!(
                    "started {} serve on {} (data dir {})",
                    bin.display(),
                    process.base_url,
                    data_dir.display()
                );
                (process.endpoint()?, Some(process))
            }
        };
        Ok(Target {
            client: ApiClient::new(endpoint.clone()),
            endpoint,
            owned: process.is_some(),
            _process: process,
            workdir,
        })
    }
}

/// A pre-signed form body for `action` with `params`.
pub fn signed(endpoint: &Endpoint, action: &str, params: &[(&str, &str)]) -> Bytes {
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Bytes::from(endpoint.signed_body(action, &owned))
}

/// How long one set-up or timed call may take before the scenario gives up on the server.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Posts a pre-signed body once and returns the envelope, failing unless RetCode is 0.
pub async fn post_ok(client: &ApiClient, body: &Bytes) -> anyhow::Result<Value> {
    let text = String::from_utf8(body.to_vec()).context("the body is not UTF-8")?;
    let answer = tokio::time::timeout(CALL_TIMEOUT, client.post(text))
        .await
        .with_context(|| format!("no answer within {CALL_TIMEOUT:?}"))??;
    if answer.get("RetCode").and_then(Value::as_i64) != Some(0) {
        anyhow::bail!("the call failed: {answer}");
    }
    Ok(answer)
}

/// `ReplacedCount` of an UpdateSSLBinding answer.
pub fn replaced(answer: &Value) -> Option<i64> {
    answer.get("ReplacedCount").and_then(Value::as_i64)
}
