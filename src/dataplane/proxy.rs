//! Forwarding to backends: one HTTP request to the backend the balancer picks (with the
//! X-Forwarded-* headers, over a pooled keep-alive client), or a plain TCP relay. It owns the
//! header rewriting and the 502/503/504 answers; it does not accept connections or terminate TLS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::net::TcpStream;

use super::listener::{closing, ConnectionLife, IdleIo, ListenerCell, Shared};

pub(crate) type BackendClient = Client<HttpConnector, Incoming>;
pub(crate) type ProxyBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// How long an unused backend connection stays in the pool.
const BACKEND_IDLE: Duration = Duration::from_secs(60);

/// The client side of the load balancer: one pool for all listeners, keyed by backend address,
/// so requests reuse keep-alive connections to each backend.
pub(crate) fn backend_client(connect_timeout: Duration) -> BackendClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(BACKEND_IDLE)
        .build(connector)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        })
    }
}

/// What every request of one client connection shares.
pub(crate) struct RequestContext {
    pub cell: Arc<ListenerCell>,
    pub shared: Arc<Shared>,
    pub peer: SocketAddr,
    pub scheme: Scheme,
}

/// Answers one client request, from a backend or with 502/503/504, and counts its status.
pub(crate) async fn forward(
    context: &RequestContext,
    request: Request<Incoming>,
) -> Response<ProxyBody> {
    let response = forward_to_backend(context, request).await;
    context.cell.metrics.request(response.status().as_u16());
    response
}

async fn forward_to_backend(
    context: &RequestContext,
    request: Request<Incoming>,
) -> Response<ProxyBody> {
    // The snapshot is loaded per request: a swap that returned before this request arrived is
    // always seen, even on a connection opened long before.
    let state = context.cell.load_full();
    let Some(backend) = state.pool.pick() else {
        return error_response(StatusCode::SERVICE_UNAVAILABLE);
    };
    let upstream = match upstream_request(context, request, backend.addr) {
        Ok(upstream) => upstream,
        Err(error) => {
            tracing::debug!(listener = %context.cell.id, %error, "request cannot be forwarded");
            return error_response(StatusCode::BAD_REQUEST);
        }
    };
    // The listener's idle timeout also bounds the wait for the backend's response head, so a
    // hung backend cannot hold a client forever; zero means no bound.
    let timeout = state.idle_timeout;
    let exchange = context.shared.client.request(upstream);
    let outcome = if timeout.is_zero() {
        Ok(exchange.await)
    } else {
        tokio::time::timeout(timeout, exchange).await
    };
    let Ok(outcome) = outcome else {
        tracing::warn!(
            listener = %context.cell.id,
            backend = %backend.id,
            addr = %backend.addr,
            "backend did not answer within the idle timeout"
        );
        return error_response(StatusCode::GATEWAY_TIMEOUT);
    };
    match outcome {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, body.boxed_unsync())
        }
        Err(error) => {
            tracing::warn!(
                listener = %context.cell.id,
                backend = %backend.id,
                addr = %backend.addr,
                error = %ErrorChain(&error),
                "backend request failed"
            );
            error_response(StatusCode::BAD_GATEWAY)
        }
    }
}

/// Rewrites a client request for the backend: absolute URI to the backend, HTTP/1.1, hop-by-hop
/// headers dropped, the client's Host kept, and the X-Forwarded-* / X-Real-IP headers set.
fn upstream_request(
    context: &RequestContext,
    request: Request<Incoming>,
    backend: SocketAddr,
) -> Result<Request<Incoming>, hyper::http::Error> {
    let (mut parts, body) = request.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    // HTTP/2 clients carry the host in :authority; the HTTP/1.1 backend needs it as Host.
    if !parts.headers.contains_key(header::HOST) {
        if let Some(authority) = parts.uri.authority() {
            if let Ok(value) = HeaderValue::from_str(authority.as_str()) {
                parts.headers.insert(header::HOST, value);
            }
        }
    }
    // A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d; backends expect a.b.c.d.
    let client_ip = context.peer.ip().to_canonical().to_string();
    // X-Forwarded-For grows by one hop: earlier proxies' entries stay, the client we saw is
    // appended. X-Real-IP and X-Forwarded-Proto describe only the hop into this load balancer,
    // so whatever the client sent is replaced.
    let forwarded_for = {
        let prior: Vec<&str> = parts
            .headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect();
        if prior.is_empty() {
            HeaderValue::from_str(&client_ip)?
        } else {
            HeaderValue::from_str(&format!("{}, {client_ip}", prior.join(", ")))?
        }
    };
    parts.headers.insert(X_FORWARDED_FOR, forwarded_for);
    parts
        .headers
        .insert(X_REAL_IP, HeaderValue::from_str(&client_ip)?);
    parts
        .headers
        .insert(X_FORWARDED_PROTO, context.scheme.header_value());
    let path = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    parts.uri = Uri::builder()
        .scheme("http")
        .authority(backend.to_string())
        .path_and_query(path)
        .build()?;
    // Backends speak HTTP/1.1 whatever the client negotiated.
    parts.version = Version::HTTP_11;
    Ok(Request::from_parts(parts, body))
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Removes the headers that describe one connection rather than the message (RFC 9110 §7.6.1),
/// including any named in Connection; hyper frames each side's messages itself.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        let listed: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        for name in listed {
            headers.remove(name);
        }
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

fn error_response(status: StatusCode) -> Response<ProxyBody> {
    let text = format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let body = Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Displays an error with its sources, since hyper's top-level client errors ("client error
/// (Connect)") hide the cause an operator needs.
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

/// A TCP listener's connection: relayed byte for byte to one backend until either side closes,
/// the connection idles out, or the listener's drain time is over.
pub(crate) async fn relay(
    mut client: IdleIo<TcpStream>,
    cell: Arc<ListenerCell>,
    shared: Arc<Shared>,
    mut life: ConnectionLife,
) {
    let (backend, idle_timeout) = {
        let state = cell.load();
        (
            state.pool.pick().map(|b| (b.id.clone(), b.addr)),
            state.idle_timeout,
        )
    };
    let Some((backend_id, addr)) = backend else {
        tracing::debug!(listener = %cell.id, "no enabled backend; closing the TCP connection");
        cell.metrics.relay_failed();
        return;
    };
    let connect = TcpStream::connect(addr);
    let mut upstream = match tokio::time::timeout(shared.options.backend_connect_timeout, connect)
        .await
    {
        Ok(Ok(upstream)) => upstream,
        Ok(Err(error)) => {
            tracing::warn!(listener = %cell.id, backend = %backend_id, %addr, %error, "backend connect failed");
            cell.metrics.relay_failed();
            return;
        }
        Err(_) => {
            tracing::warn!(listener = %cell.id, backend = %backend_id, %addr, "backend connect timed out");
            cell.metrics.relay_failed();
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    tokio::select! {
        result = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
            if let Err(error) = result {
                tracing::debug!(listener = %cell.id, %error, "TCP relay ended with an error");
            }
        }
        _ = life.activity.idle_for(idle_timeout) => {}
        _ = closing(&mut life.close) => {}
    }
}
