//! The HTTP API: the only code that knows HTTP and JSON.
//!
//! Pipeline, in this fixed order (spec §3.2): read the body under a size limit → build the
//! parameter map → `Action` present → `Signature` present → key lookup → signature check →
//! `Action` known → `Region` served → `ProjectId` allowed → the action's handler → envelope.
//! Every answer is HTTP 200 with `{"Action","RetCode",["Message"],…}` and a request id header.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Map, Value};

use super::action;
use super::error::ApiError;
use super::params::{self, Limits, Params, ParamsError};
use crate::control::Plane;
use crate::model::{Principal, Scope};
use crate::store::{KeyRecord, Store, StoreError};

/// The extra top-level fields of a successful answer.
pub type Reply = Map<String, Value>;

pub const REQUEST_ID_HEADER: &str = "X-UCLOUD-REQUEST-UUID";

/// What the API needs to know about its deployment.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub regions: HashSet<String>,
    pub body_limit: usize,
    pub limits: Limits,
}

/// Shared state of the API server.
pub struct App {
    pub store: Arc<dyn Store>,
    pub plane: Arc<Plane>,
    pub config: ApiConfig,
    keys: KeyCache,
}

impl App {
    pub fn new(store: Arc<dyn Store>, plane: Arc<Plane>, config: ApiConfig) -> Arc<App> {
        Arc::new(App {
            store,
            plane,
            config,
            keys: KeyCache::default(),
        })
    }
}

/// Everything a handler gets: who calls, in which scope, and the shared state.
pub struct Ctx {
    pub app: Arc<App>,
    pub principal: Principal,
    pub scope: Scope,
    pub request_id: String,
}

impl Ctx {
    /// Runs a store call on the blocking pool (SQLite calls block).
    pub async fn db<T, F>(&self, call: F) -> Result<T, ApiError>
    where
        F: FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let store = self.app.store.clone();
        match tokio::task::spawn_blocking(move || call(store.as_ref())).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(self.store_error(err)),
            Err(join) => Err(self.internal(anyhow::Error::new(join))),
        }
    }

    pub fn store_error(&self, err: StoreError) -> ApiError {
        match err {
            StoreError::Backend(source) => self.internal(source),
            other => ApiError::Store(other),
        }
    }

    pub fn internal(&self, source: anyhow::Error) -> ApiError {
        ApiError::Internal {
            request_id: self.request_id.clone(),
            source,
        }
    }
}

/// API keys seen so far. Keys are never deleted, so a hit stays valid; a project list may grow
/// (a new project of the account), so a project miss re-reads the key once.
#[derive(Default)]
struct KeyCache {
    keys: RwLock<HashMap<String, Arc<KeyRecord>>>,
}

impl KeyCache {
    fn get(&self, public_key: &str) -> Option<Arc<KeyRecord>> {
        self.keys.read().ok()?.get(public_key).cloned()
    }

    fn put(&self, public_key: &str, record: Arc<KeyRecord>) {
        if let Ok(mut keys) = self.keys.write() {
            keys.insert(public_key.to_string(), record);
        }
    }
}

/// Builds the router: every path and method goes to the API, except `GET /metrics`.
pub fn router(app: Arc<App>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(app)
}

async fn handle(
    axum::extract::State(app): axum::extract::State<Arc<App>>,
    request: Request<Body>,
) -> Response<Body> {
    if request.uri().path() == "/metrics" && request.uri().query().is_none() {
        return metrics_response(&app);
    }
    let started = Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let (action, result) = process(&app, request, &request_id).await;
    let action_name = action.as_deref().unwrap_or("");
    let body = envelope(action_name, &result);
    let ret_code = match &result {
        Ok(_) => 0,
        Err(err) => err.ret_code(),
    };
    match &result {
        Err(ApiError::Internal { source, .. }) => tracing::error!(
            request_id = %request_id, action = action_name, ret_code,
            latency_us = started.elapsed().as_micros() as u64, error = ?source, "request failed"
        ),
        _ => tracing::info!(
            request_id = %request_id, action = action_name, ret_code,
            latency_us = started.elapsed().as_micros() as u64, "request"
        ),
    }
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert(REQUEST_ID_HEADER, value);
    }
    response
}

fn metrics_response(app: &App) -> Response<Body> {
    let mut response = Response::new(Body::from(app.plane.render_metrics()));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

/// Serialises the envelope: `Action` and `RetCode` first, `Message` on errors, then the reply.
fn envelope(action: &str, result: &Result<Reply, ApiError>) -> Vec<u8> {
    let mut out = Map::new();
    out.insert("Action".into(), Value::String(format!("{action}Response")));
    match result {
        Ok(reply) => {
            out.insert("RetCode".into(), Value::from(0));
            for (key, value) in reply {
                out.insert(key.clone(), value.clone());
            }
        }
        Err(err) => {
            out.insert("RetCode".into(), Value::from(err.ret_code()));
            out.insert("Message".into(), Value::String(err.to_string()));
        }
    }
    serde_json::to_vec(&Value::Object(out)).unwrap_or_else(|_| b"{}".to_vec())
}

/// Runs the pipeline; returns the action name as received (for the envelope) and the result.
async fn process(
    app: &Arc<App>,
    request: Request<Body>,
    request_id: &str,
) -> (Option<String>, Result<Reply, ApiError>) {
    let (parts, body) = request.into_parts();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let query = parts.uri.query().map(str::to_owned);
    // The action name from the query lets even a rejected body answer with the right envelope.
    let query_action = query.as_deref().and_then(action_from_query);

    let body = match http_body_util::Limited::new(body, app.config.body_limit)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return (
                query_action,
                Err(ApiError::TooLarge {
                    name: "Body".into(),
                    why: format!("the body is over {} bytes", app.config.body_limit),
                }),
            )
        }
    };
    let params = match params::parse(
        query.as_deref(),
        content_type.as_deref(),
        &body,
        &app.config.limits,
    ) {
        Ok(params) => params,
        Err(err) => return (query_action, Err(params_error(err))),
    };
    let action = params
        .get("Action")
        .filter(|a| !a.is_empty())
        .map(str::to_owned);
    // The rest runs as its own task: a client that hangs up must not cancel a handler between
    // its commit and the data-plane sync that serves it.
    let task = {
        let (app, action, request_id) = (app.clone(), action.clone(), request_id.to_string());
        tokio::spawn(async move {
            authorize_and_run(&app, &params, action.as_deref(), &request_id).await
        })
    };
    let result = task.await.unwrap_or_else(|join| {
        Err(ApiError::Internal {
            request_id: request_id.to_string(),
            source: anyhow::Error::new(join),
        })
    });
    (action, result)
}

fn action_from_query(query: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "Action")
        .map(|(_, value)| value.into_owned())
}

fn params_error(err: ParamsError) -> ApiError {
    let name = err.param_name().unwrap_or("Body").to_string();
    match err {
        ParamsError::TooManyParams { .. } | ParamsError::ValueTooLong { .. } => {
            ApiError::TooLarge {
                name,
                why: err.to_string(),
            }
        }
        other => ApiError::InvalidParam {
            name,
            why: other.to_string(),
        },
    }
}

async fn authorize_and_run(
    app: &Arc<App>,
    params: &Params,
    action: Option<&str>,
    request_id: &str,
) -> Result<Reply, ApiError> {
    let action_name = action.ok_or(ApiError::MissingAction)?;
    let signature = params
        .get("Signature")
        .filter(|s| !s.is_empty())
        .ok_or(ApiError::MissingSignature)?;
    let public_key = params
        .get("PublicKey")
        .filter(|k| !k.is_empty())
        .ok_or(ApiError::UnknownUser)?;
    let mut key = lookup_key(app, public_key, false, request_id).await?;
    if !crate::auth::verify(params, &key.private_key, signature) {
        return Err(ApiError::BadSignature);
    }
    let action = action::Action::parse(action_name)
        .ok_or_else(|| ApiError::UnknownAction(action_name.to_string()))?;

    let region = params
        .get("Region")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::param("Region"))?;
    if !app.config.regions.contains(region) {
        return Err(ApiError::param_why(
            "Region",
            format!("region [{region}] is not served here"),
        ));
    }
    let project_id = match params.get("ProjectId").filter(|p| !p.is_empty()) {
        Some(project) => project.to_string(),
        None if key.is_main => key.default_project.clone(),
        None => {
            return Err(ApiError::param_why(
                "ProjectId",
                "required for sub-account keys",
            ))
        }
    };
    if !key.projects.contains(&project_id) {
        // The project may be newer than the cached key: look once more before refusing.
        key = lookup_key(app, public_key, true, request_id).await?;
        if !key.projects.contains(&project_id) {
            return Err(ApiError::ProjectNotFound(project_id));
        }
    }

    let ctx = Ctx {
        app: app.clone(),
        principal: Principal {
            account_id: key.account_id,
            account_name: key.account_name.clone(),
            public_key: public_key.to_string(),
            is_main: key.is_main,
            default_project: key.default_project.clone(),
            projects: key.projects.clone(),
        },
        scope: Scope {
            account_id: key.account_id,
            project_id,
            region: region.to_string(),
        },
        request_id: request_id.to_string(),
    };
    action.run(&ctx, params).await
}

async fn lookup_key(
    app: &Arc<App>,
    public_key: &str,
    refresh: bool,
    request_id: &str,
) -> Result<Arc<KeyRecord>, ApiError> {
    if !refresh {
        if let Some(key) = app.keys.get(public_key) {
            return Ok(key);
        }
    }
    let store = app.store.clone();
    let owned = public_key.to_string();
    let found = tokio::task::spawn_blocking(move || store.lookup_key(&owned))
        .await
        .map_err(|join| ApiError::Internal {
            request_id: request_id.to_string(),
            source: anyhow::Error::new(join),
        })?
        .map_err(|err| ApiError::Internal {
            request_id: request_id.to_string(),
            source: anyhow::Error::new(err),
        })?;
    let key = Arc::new(found.ok_or(ApiError::UnknownUser)?);
    app.keys.put(public_key, key.clone());
    Ok(key)
}
