//! Data-plane counters and their Prometheus text exposition. It owns the metric names and the
//! lock-free counters the hot paths bump; it does not serve HTTP (the API layer mounts
//! `DataPlane::render_metrics` wherever it wants `/metrics`).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::listener::ListenerCell;

/// Why a TLS handshake did not complete. The label values are part of the metrics contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandshakeFailure {
    /// An HTTPS listener with no certificate bound: refused with an alert.
    NoCertificate,
    /// No ClientHello within the handshake timeout, or the handshake did not finish in time.
    Timeout,
    /// The first bytes were not a TLS ClientHello (plain HTTP to an HTTPS port, scanners).
    BadClientHello,
    /// The client aborted with an alert (typically it did not trust the certificate).
    PeerAlert,
    /// Any other TLS failure: no common version, cipher suite or signature scheme.
    TlsError,
    /// The connection was reset or closed mid-handshake.
    Io,
}

impl HandshakeFailure {
    const ALL: [HandshakeFailure; 6] = [
        HandshakeFailure::NoCertificate,
        HandshakeFailure::Timeout,
        HandshakeFailure::BadClientHello,
        HandshakeFailure::PeerAlert,
        HandshakeFailure::TlsError,
        HandshakeFailure::Io,
    ];

    pub fn label(self) -> &'static str {
        match self {
            HandshakeFailure::NoCertificate => "no_certificate",
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::BadClientHello => "bad_client_hello",
            HandshakeFailure::PeerAlert => "peer_alert",
            HandshakeFailure::TlsError => "tls_error",
            HandshakeFailure::Io => "io",
        }
    }
}

/// Upper bounds of the swap-latency histogram, in seconds: a swap is normally well under a
/// millisecond, a cold certificate load takes a few.
const SWAP_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

/// Process-wide data-plane counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    swaps: AtomicU64,
    swap_buckets: [AtomicU64; SWAP_BUCKETS.len()],
    swap_nanos: AtomicU64,
    cert_loads: AtomicU64,
    cert_load_failures: AtomicU64,
}

impl Metrics {
    pub fn record_swap(&self, latency: Duration) {
        self.swaps.fetch_add(1, Ordering::Relaxed);
        let seconds = latency.as_secs_f64();
        // Cumulative buckets are summed at render time; each observation lands in one slot.
        if let Some(slot) = SWAP_BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.swap_buckets[slot].fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.swap_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn cert_loaded(&self) {
        self.cert_loads.fetch_add(1, Ordering::Relaxed);
    }

    pub fn cert_load_failed(&self) {
        self.cert_load_failures.fetch_add(1, Ordering::Relaxed);
    }
}

/// Status codes are counted in a flat array indexed by code, so the request path never locks.
const STATUS_MIN: u16 = 100;
const STATUS_SLOTS: usize = 500;

/// Counters of one listener; they live as long as the listener, across snapshot swaps.
#[derive(Debug)]
pub(crate) struct ListenerMetrics {
    handshakes: AtomicU64,
    handshake_failures: [AtomicU64; HandshakeFailure::ALL.len()],
    requests: Box<[AtomicU64]>,
    connections: AtomicU64,
    connections_open: AtomicI64,
    health_checks_ok: AtomicU64,
    health_checks_failed: AtomicU64,
    /// TCP listeners: connections that could not be relayed (no backend, or connect failed).
    relay_failures: AtomicU64,
}

impl Default for ListenerMetrics {
    fn default() -> Self {
        ListenerMetrics {
            handshakes: AtomicU64::new(0),
            handshake_failures: Default::default(),
            requests: (0..STATUS_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            connections: AtomicU64::new(0),
            connections_open: AtomicI64::new(0),
            health_checks_ok: AtomicU64::new(0),
            health_checks_failed: AtomicU64::new(0),
            relay_failures: AtomicU64::new(0),
        }
    }
}

impl ListenerMetrics {
    pub fn handshake_ok(&self) {
        self.handshakes.fetch_add(1, Ordering::Relaxed);
    }

    pub fn handshake_failed(&self, reason: HandshakeFailure) {
        let slot = HandshakeFailure::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.handshake_failures[slot].fetch_add(1, Ordering::Relaxed);
    }

    pub fn request(&self, status: u16) {
        let slot = usize::from(status.saturating_sub(STATUS_MIN));
        if let Some(counter) = self.requests.get(slot) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.connections_open.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn health_check(&self, healthy: bool) {
        let counter = if healthy {
            &self.health_checks_ok
        } else {
            &self.health_checks_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn relay_failed(&self) {
        self.relay_failures.fetch_add(1, Ordering::Relaxed);
    }

    #[cfg(test)]
    pub fn connections_total(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    pub fn requests_with(&self, status: u16) -> u64 {
        self.requests[usize::from(status - STATUS_MIN)].load(Ordering::Relaxed)
    }

    #[cfg(test)]
    pub fn failures_for(&self, reason: HandshakeFailure) -> u64 {
        let slot = HandshakeFailure::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.handshake_failures[slot].load(Ordering::Relaxed)
    }
}

/// Renders every family with its HELP and TYPE lines; listeners come sorted by id so the output is
/// stable between scrapes.
pub(crate) fn render(metrics: &Metrics, cells: &[Arc<ListenerCell>]) -> String {
    let mut out = String::with_capacity(4096);
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);

    family(
        &mut out,
        "certbind_listeners",
        "gauge",
        "Listeners open in the data plane.",
    );
    let _ = writeln!(out, "certbind_listeners {}", cells.len());

    family(
        &mut out,
        "certbind_tls_handshakes_total",
        "counter",
        "TLS handshakes completed, by listener.",
    );
    for cell in cells {
        let id = escape(&cell.id);
        let _ = writeln!(
            out,
            "certbind_tls_handshakes_total{{listener=\"{id}\"}} {}",
            load(&cell.metrics.handshakes)
        );
    }

    family(
        &mut out,
        "certbind_tls_handshake_failures_total",
        "counter",
        "TLS handshakes that failed, by listener and reason.",
    );
    for cell in cells {
        let id = escape(&cell.id);
        for (reason, counter) in HandshakeFailure::ALL
            .iter()
            .zip(&cell.metrics.handshake_failures)
        {
            let _ = writeln!(
                out,
                "certbind_tls_handshake_failures_total{{listener=\"{id}\",reason=\"{}\"}} {}",
                reason.label(),
                load(counter)
            );
        }
    }

    family(
        &mut out,
        "certbind_http_requests_total",
        "counter",
        "HTTP requests answered, by listener and status code.",
    );
    for cell in cells {
        let id = escape(&cell.id);
        for (slot, counter) in cell.metrics.requests.iter().enumerate() {
            let count = load(counter);
            if count > 0 {
                let status = usize::from(STATUS_MIN) + slot;
                let _ = writeln!(
                    out,
                    "certbind_http_requests_total{{listener=\"{id}\",code=\"{status}\"}} {count}"
                );
            }
        }
    }

    family(
        &mut out,
        "certbind_connections_total",
        "counter",
        "Client connections accepted, by listener.",
    );
    for cell in cells {
        let _ = writeln!(
            out,
            "certbind_connections_total{{listener=\"{}\"}} {}",
            escape(&cell.id),
            load(&cell.metrics.connections)
        );
    }

    family(
        &mut out,
        "certbind_connections_open",
        "gauge",
        "Client connections open now, by listener.",
    );
    for cell in cells {
        let _ = writeln!(
            out,
            "certbind_connections_open{{listener=\"{}\"}} {}",
            escape(&cell.id),
            cell.metrics.connections_open.load(Ordering::Relaxed)
        );
    }

    family(
        &mut out,
        "certbind_tcp_relay_failures_total",
        "counter",
        "TCP connections closed because no backend could be reached, by listener.",
    );
    for cell in cells {
        let _ = writeln!(
            out,
            "certbind_tcp_relay_failures_total{{listener=\"{}\"}} {}",
            escape(&cell.id),
            load(&cell.metrics.relay_failures)
        );
    }

    family(
        &mut out,
        "certbind_health_checks_total",
        "counter",
        "Active health checks run, by listener and result.",
    );
    for cell in cells {
        let id = escape(&cell.id);
        let _ = writeln!(
            out,
            "certbind_health_checks_total{{listener=\"{id}\",result=\"healthy\"}} {}",
            load(&cell.metrics.health_checks_ok)
        );
        let _ = writeln!(
            out,
            "certbind_health_checks_total{{listener=\"{id}\",result=\"unhealthy\"}} {}",
            load(&cell.metrics.health_checks_failed)
        );
    }

    family(
        &mut out,
        "certbind_backend_healthy",
        "gauge",
        "1 when the backend passes its health check (or is not checked yet), else 0.",
    );
    for cell in cells {
        let id = escape(&cell.id);
        let state = cell.load();
        for backend in state.pool.backends() {
            let _ = writeln!(
                out,
                "certbind_backend_healthy{{listener=\"{id}\",backend=\"{}\"}} {}",
                escape(&backend.id),
                u8::from(backend.health.counts_as_healthy())
            );
        }
    }

    family(
        &mut out,
        "certbind_snapshot_swaps_total",
        "counter",
        "Listener snapshots published (opens, updates, re-ports, certificate replacements).",
    );
    let _ = writeln!(
        out,
        "certbind_snapshot_swaps_total {}",
        load(&metrics.swaps)
    );

    family(
        &mut out,
        "certbind_snapshot_swap_seconds",
        "histogram",
        "Time to build and publish one listener snapshot, certificate loading included.",
    );
    let mut cumulative = 0;
    for (bound, counter) in SWAP_BUCKETS.iter().zip(&metrics.swap_buckets) {
        cumulative += load(counter);
        let _ = writeln!(
            out,
            "certbind_snapshot_swap_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
        );
    }
    let swaps = load(&metrics.swaps);
    let _ = writeln!(
        out,
        "certbind_snapshot_swap_seconds_bucket{{le=\"+Inf\"}} {swaps}"
    );
    let _ = writeln!(
        out,
        "certbind_snapshot_swap_seconds_sum {}",
        load(&metrics.swap_nanos) as f64 / 1e9
    );
    let _ = writeln!(out, "certbind_snapshot_swap_seconds_count {swaps}");

    family(
        &mut out,
        "certbind_certificate_loads_total",
        "counter",
        "Certificates loaded from the control plane, by result.",
    );
    let _ = writeln!(
        out,
        "certbind_certificate_loads_total{{result=\"ok\"}} {}",
        load(&metrics.cert_loads)
    );
    let _ = writeln!(
        out,
        "certbind_certificate_loads_total{{result=\"error\"}} {}",
        load(&metrics.cert_load_failures)
    );
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Label values escape backslash, double quote and newline (text exposition format).
fn escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_histogram_is_cumulative() {
        let metrics = Metrics::default();
        metrics.record_swap(Duration::from_micros(50));
        metrics.record_swap(Duration::from_millis(3));
        metrics.record_swap(Duration::from_secs(10));
        let text = render(&metrics, &[]);
        assert!(text.contains("certbind_snapshot_swap_seconds_bucket{le=\"0.0001\"} 1\n"));
        assert!(text.contains("certbind_snapshot_swap_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(text.contains("certbind_snapshot_swap_seconds_bucket{le=\"2.5\"} 2\n"));
        assert!(text.contains("certbind_snapshot_swap_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("certbind_snapshot_swap_seconds_count 3\n"));
        assert!(text.contains("certbind_snapshot_swaps_total 3\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
