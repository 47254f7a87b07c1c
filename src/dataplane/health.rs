//! Active health checks of one listener's backends (TCP connect or an HTTP GET), writing the
//! health cells the balancer reads and `DataPlane::backend_health` reports. One task per listener;
//! it re-reads the snapshot every round, so a sync changes what it checks without a restart.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use super::balancer::HealthCell;
use super::listener::ListenerCell;
use super::HealthCheck;

/// Floors that keep a misconfigured spec from turning the checker into a busy loop.
const MIN_INTERVAL: Duration = Duration::from_millis(10);
const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// Runs until aborted by `remove_listener` or `shutdown`.
pub(crate) async fn run(cell: Arc<ListenerCell>) {
    loop {
        let state = cell.load_full();
        let interval = state.health.interval.max(MIN_INTERVAL);
        let timeout = state.health.timeout.max(MIN_TIMEOUT);
        if state.health.check == HealthCheck::Disabled {
            for backend in state.pool.backends() {
                backend.health.reset();
            }
            // Nothing to do until the next sync.
            cell.changed.notified().await;
            continue;
        }
        let mut round = JoinSet::new();
        for backend in state.pool.backends() {
            let check = state.health.check.clone();
            let addr = backend.addr;
            let id = backend.id.clone();
            let health: Arc<HealthCell> = backend.health.clone();
            round.spawn(async move {
                let healthy = tokio::time::timeout(timeout, probe(&check, addr))
                    .await
                    .unwrap_or(false);
                (id, addr, health, healthy)
            });
        }
        drop(state);
        while let Some(joined) = round.join_next().await {
            let Ok((id, addr, health, healthy)) = joined else {
                continue;
            };
            cell.metrics.health_check(healthy);
            if health.record(healthy) {
                if healthy {
                    tracing::info!(listener = %cell.id, backend = %id, %addr, "backend is healthy again");
                } else {
                    tracing::warn!(listener = %cell.id, backend = %id, %addr, "backend failed its health check");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = cell.changed.notified() => {}
        }
    }
}

/// One check of one backend; the caller bounds it with the spec's timeout.
async fn probe(check: &HealthCheck, addr: SocketAddr) -> bool {
    match check {
        HealthCheck::Disabled => true,
        HealthCheck::Tcp => TcpStream::connect(addr).await.is_ok(),
        HealthCheck::Http { path, host } => http_probe(addr, path, host.as_deref()).await,
    }
}

/// `GET path` with `Connection: close`; healthy on a 2xx or 3xx status line. Hand-written rather
/// than through the pooled client: a check must open its own connection to mean anything.
async fn http_probe(addr: SocketAddr, path: &str, host: Option<&str>) -> bool {
    let path = if path.is_empty() { "/" } else { path };
    let host = host.map_or_else(|| addr.to_string(), str::to_owned);
    // The control plane validates these, but a CR or LF here would let a field smuggle headers.
    if !path.starts_with('/')
        || [path, host.as_str()]
            .iter()
            .any(|s| s.chars().any(char::is_control))
    {
        return false;
    }
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return false;
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: certbind-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    // "HTTP/1.1 200" is all that is needed.
    let mut head = [0u8; 12];
    let mut filled = 0;
    while filled < head.len() {
        match stream.read(&mut head[filled..]).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => filled += n,
        }
    }
    status_is_healthy(&head)
}

fn status_is_healthy(head: &[u8; 12]) -> bool {
    if !head.starts_with(b"HTTP/1.") || head[8] != b' ' {
        return false;
    }
    matches!(head[9], b'2' | b'3') && head[10].is_ascii_digit() && head[11].is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert!(status_is_healthy(b"HTTP/1.1 200"));
        assert!(status_is_healthy(b"HTTP/1.0 302"));
        assert!(!status_is_healthy(b"HTTP/1.1 404"));
        assert!(!status_is_healthy(b"HTTP/1.1 500"));
        assert!(!status_is_healthy(b"SSH-2.0-Open"));
    }
}
