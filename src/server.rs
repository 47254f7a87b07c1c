//! `certbind serve`: first-start bootstrap, the API server, the data plane and graceful shutdown.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use serde_json::{json, Value};

use crate::api::{self, params::Limits, ApiConfig, App};
use crate::config::{ServeConfig, StoreLocation, DEFAULT_REGION};
use crate::control::Plane;
use crate::model::Credentials;
use crate::secret::{self, MasterKey};
use crate::store::{sqlite::SqliteStore, AddressPool, Store};

/// The account `serve` creates on first start.
pub const ADMIN_ACCOUNT: &str = "admin";

/// Opens the store, creating the data dir and the master key when needed.
pub fn open_store(
    data_dir: &Path,
    location: &StoreLocation,
    pool: Option<AddressPool>,
) -> anyhow::Result<Arc<dyn Store>> {
    create_private_dir(data_dir)?;
    let env_key = std::env::var("CERTBIND_MASTER_KEY").ok();
    let master = MasterKey::load_or_create(env_key.as_deref(), &data_dir.join("master.key"))
        .context("loading the master key")?;
    match location {
        StoreLocation::Sqlite(path) => {
            let store = SqliteStore::open(path, master, pool.unwrap_or_default())
                .with_context(|| format!("opening the store {}", path.display()))?;
            Ok(Arc::new(store))
        }
    }
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating the data dir {}", dir.display()))
}

/// Credentials as JSON, in the names the SDKs and terraform use.
pub fn credentials_json(creds: &Credentials, region: &str, base_url: Option<&str>) -> String {
    let mut value = json!({
        "PublicKey": creds.public_key,
        "PrivateKey": creds.private_key,
        "ProjectId": creds.project_id,
        "Region": region,
    });
    if let Some(url) = base_url {
        value["BaseUrl"] = Value::String(url.to_string());
    }
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

/// Runs the server until SIGINT or SIGTERM.
pub fn serve(config: ServeConfig) -> anyhow::Result<()> {
    init_logging();
    create_private_dir(&config.data_dir)?;
    // One server per data dir: a second one would fight over listener sockets and the store.
    let lock_path = config.data_dir.join("serve.lock");
    let lock =
        File::create(&lock_path).with_context(|| format!("creating {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        anyhow::bail!(
            "another certbind serve is already running on the data dir {}",
            config.data_dir.display()
        );
    }
    let store = open_store(&config.data_dir, &config.store, Some(config.address_pool))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let result = runtime.block_on(run(config, store));
    drop(lock);
    result
}

async fn run(config: ServeConfig, store: Arc<dyn Store>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding the API address {}", config.listen))?;
    let local = listener.local_addr()?;
    let base_url = format!("http://{local}");
    let region = config
        .regions
        .iter()
        .find(|r| r.as_str() == DEFAULT_REGION)
        .or(config.regions.first())
        .cloned()
        .unwrap_or_else(|| DEFAULT_REGION.to_string());
    let credentials_path = bootstrap(&config.data_dir, store.as_ref(), &region, &base_url)?;
    println!("certbind: credentials in {}", credentials_path.display());

    let plane = Plane::new(store.clone(), config.dataplane);
    let opened = plane.start().await.context("opening the listeners")?;
    tracing::info!(listeners = opened, "data plane ready");
    let app = App::new(
        store,
        plane.clone(),
        ApiConfig {
            regions: config.regions.iter().cloned().collect(),
            body_limit: config.body_limit,
            limits: Limits::default(),
        },
    );
    println!("certbind: listening on {base_url}");
    tracing::info!(%local, "API server ready");
    axum::serve(
        listener,
        api::router(app).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("serving the API")?;
    tracing::info!("stopped");
    Ok(())
}

/// First start creates the admin account and writes `credentials.json` (mode 0600); later starts
/// reuse both and only refresh `BaseUrl` (the port may have changed).
fn bootstrap(
    data_dir: &Path,
    store: &dyn Store,
    region: &str,
    base_url: &str,
) -> anyhow::Result<PathBuf> {
    let path = data_dir.join("credentials.json");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let mut value: Value =
            serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
        if value.get("BaseUrl").and_then(Value::as_str) != Some(base_url) {
            value["BaseUrl"] = Value::String(base_url.to_string());
            let text = serde_json::to_string_pretty(&value)?;
            secret::write_private_file(&path, text.as_bytes())?;
        }
        return Ok(path);
    }
    let creds = if store.account_exists(ADMIN_ACCOUNT)? {
        store.create_main_key(ADMIN_ACCOUNT)?
    } else {
        store.create_account(ADMIN_ACCOUNT)?
    };
    let text = credentials_json(&creds, region, Some(base_url));
    secret::write_private_file(&path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CERTBIND_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutdown requested");
}
