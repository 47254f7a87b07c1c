//! A signed API client: what `certbind call`, the benchmark and the tests use to talk to a server.
//!
//! It signs with the same `auth::sign` the server verifies with, and posts form-urlencoded bodies
//! like the Python and Go SDKs.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client as HyperClient};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Credentials and endpoint of one API key.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub base_url: String,
    pub public_key: String,
    pub private_key: String,
    pub region: String,
    pub project_id: String,
}

impl Endpoint {
    /// Reads a `credentials.json` as written by `serve` or printed by `account create`.
    pub fn from_file(path: &Path) -> anyhow::Result<Endpoint> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let value: Value = serde_json::from_str(&text)?;
        let field = |name: &str| {
            value
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        Ok(Endpoint {
            base_url: field("BaseUrl"),
            public_key: field("PublicKey"),
            private_key: field("PrivateKey"),
            region: field("Region"),
            project_id: field("ProjectId"),
        })
    }

    /// The terraform provider's variables: UCLOUD_PUBLIC_KEY, UCLOUD_PRIVATE_KEY, UCLOUD_REGION,
    /// UCLOUD_PROJECT_ID, UCLOUD_BASE_URL.
    pub fn from_env() -> anyhow::Result<Endpoint> {
        let var = |name: &str| std::env::var(name).unwrap_or_default();
        let endpoint = Endpoint {
            base_url: var("UCLOUD_BASE_URL"),
            public_key: var("UCLOUD_PUBLIC_KEY"),
            private_key: var("UCLOUD_PRIVATE_KEY"),
            region: var("UCLOUD_REGION"),
            project_id: var("UCLOUD_PROJECT_ID"),
        };
        anyhow::ensure!(
            !endpoint.public_key.is_empty() && !endpoint.private_key.is_empty(),
            "set UCLOUD_PUBLIC_KEY and UCLOUD_PRIVATE_KEY, or pass --credentials FILE"
        );
        Ok(endpoint)
    }

    /// The signed form body of a call: the given params plus Action, Region, ProjectId (when not
    /// given) and PublicKey, then Signature.
    pub fn signed_body(&self, action: &str, params: &[(String, String)]) -> String {
        let mut pairs: Vec<(String, String)> = params.to_vec();
        let has = |pairs: &[(String, String)], key: &str| pairs.iter().any(|(k, _)| k == key);
        if !has(&pairs, "Action") {
            pairs.push(("Action".into(), action.into()));
        }
        if !has(&pairs, "Region") && !self.region.is_empty() {
            pairs.push(("Region".into(), self.region.clone()));
        }
        if !has(&pairs, "ProjectId") && !self.project_id.is_empty() {
            pairs.push(("ProjectId".into(), self.project_id.clone()));
        }
        pairs.push(("PublicKey".into(), self.public_key.clone()));
        let signature = crate::auth::sign(
            pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &self.private_key,
        );
        let mut form = form_urlencoded::Serializer::new(String::new());
        for (key, value) in &pairs {
            form.append_pair(key, value);
        }
        form.append_pair("Signature", &signature);
        form.finish()
    }
}

/// A pooled HTTP/1.1 client for one endpoint.
#[derive(Clone)]
pub struct ApiClient {
    pub endpoint: Endpoint,
    http: HyperClient<HttpConnector, Full<Bytes>>,
}

impl ApiClient {
    pub fn new(endpoint: Endpoint) -> ApiClient {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let http = HyperClient::builder(TokioExecutor::new()).build(connector);
        ApiClient { endpoint, http }
    }

    /// Posts one signed call and returns the parsed JSON envelope.
    pub async fn call(&self, action: &str, params: &[(String, String)]) -> anyhow::Result<Value> {
        let body = self.endpoint.signed_body(action, params);
        self.post(body).await
    }

    /// Posts a prepared form body (already signed) and returns the parsed JSON envelope.
    pub async fn post(&self, body: String) -> anyhow::Result<Value> {
        let url = self.endpoint.base_url.trim_end_matches('/').to_string() + "/";
        anyhow::ensure!(
            url.starts_with("http://"),
            "only http:// base URLs are supported: {url}"
        );
        let request = hyper::Request::post(url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))?;
        let response = self
            .http
            .request(request)
            .await
            .context("sending the request")?;
        anyhow::ensure!(
            response.status() == 200,
            "HTTP status {}",
            response.status()
        );
        let bytes = response.into_body().collect().await?.to_bytes();
        serde_json::from_slice(&bytes).context("the answer is not JSON")
    }
}

/// `certbind call`: prints the answer; exit code 1 when RetCode is not 0.
pub fn call_command(args: crate::cli::CallArgs) -> anyhow::Result<std::process::ExitCode> {
    let endpoint = match &args.credentials {
        Some(path) => Endpoint::from_file(path)?,
        None => Endpoint::from_env()?,
    };
    let mut params = Vec::with_capacity(args.params.len());
    for pair in &args.params {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("parameter {pair:?} is not Key=Value"))?;
        params.push((key.to_string(), value.to_string()));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answer = runtime.block_on(ApiClient::new(endpoint).call(&args.action, &params))?;
    // A closed pipe (`certbind call … | head`) is not an error worth a panic.
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{}", serde_json::to_string_pretty(&answer)?) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => return Err(err.into()),
        _ => {}
    }
    let ok = answer.get("RetCode").and_then(Value::as_i64) == Some(0);
    Ok(if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}
