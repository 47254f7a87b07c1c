//! Forwarding: headers the backend sees, weighted round robin, 502/503, keep-alive on both sides,
//! health checks steering traffic, and the TCP relay.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::support::*;
use crate::dataplane::{DataPlane, HealthCheck, HealthSpec, Protocol};

fn plane() -> Arc<DataPlane> {
    DataPlane::new(Arc::new(MemorySource::default()))
}

#[tokio::test]
async fn the_backend_sees_forwarding_headers_and_the_client_host() {
    let backend_server = spawn_backend("rs-1").await;
    let plane = plane();
    let spec = listener(
        "vserver-http",
        Protocol::Http,
        vec![backend("rs-1", backend_server.addr, 1)],
    );
    plane.sync_listener(spec, None).await.unwrap();
    let addr = plane.local_addr("vserver-http").unwrap();
    let mut sender = http1(addr).await;

    let answer = get(&mut sender, "/path?q=1").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["x-seen-xff"], "127.0.0.1");
    assert_eq!(answer.headers["x-seen-real-ip"], "127.0.0.1");
    assert_eq!(answer.headers["x-seen-proto"], "http");
    assert_eq!(answer.headers["x-seen-host"], "app.example.com");
    assert_eq!(answer.headers["x-seen-path"], "/path");

    // An earlier proxy's X-Forwarded-For is kept and extended; spoofed X-Real-IP and
    // X-Forwarded-Proto are replaced.
    let answer = get_with(
        &mut sender,
        "/",
        &[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-real-ip", "198.51.100.1"),
            ("x-forwarded-proto", "https"),
        ],
    )
    .await;
    assert_eq!(answer.headers["x-seen-xff"], "203.0.113.7, 127.0.0.1");
    assert_eq!(answer.headers["x-seen-real-ip"], "127.0.0.1");
    assert_eq!(answer.headers["x-seen-proto"], "http");
}

#[tokio::test]
async fn weights_3_to_1_give_exactly_6_and_2_over_8_requests() {
    let heavy = spawn_backend("heavy").await;
    let light = spawn_backend("light").await;
    let plane = plane();
    let spec = listener(
        "vserver-wrr",
        Protocol::Http,
        vec![
            backend("heavy", heavy.addr, 3),
            backend("light", light.addr, 1),
        ],
    );
    plane.sync_listener(spec, None).await.unwrap();
    let mut sender = http1(plane.local_addr("vserver-wrr").unwrap()).await;
    let mut seen = Vec::new();
    for _ in 0..8 {
        seen.push(get(&mut sender, "/").await.body);
    }
    assert_eq!(seen.iter().filter(|b| *b == "heavy").count(), 6, "{seen:?}");
    assert_eq!(seen.iter().filter(|b| *b == "light").count(), 2, "{seen:?}");
    // Smooth: the light backend is not starved until the end of the cycle.
    assert_eq!(
        seen[..4].iter().filter(|b| *b == "light").count(),
        1,
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_disabled_backend_gets_no_traffic() {
    let on = spawn_backend("on").await;
    let off = spawn_backend("off").await;
    let plane = plane();
    let mut disabled = backend("off", off.addr, 5);
    disabled.enabled = false;
    let spec = listener(
        "vserver-disabled",
        Protocol::Http,
        vec![disabled, backend("on", on.addr, 1)],
    );
    plane.sync_listener(spec, None).await.unwrap();
    let mut sender = http1(plane.local_addr("vserver-disabled").unwrap()).await;
    for _ in 0..4 {
        assert_eq!(get(&mut sender, "/").await.body, "on");
    }
    assert_eq!(off.accepted.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn failing_backends_give_502_and_no_backend_gives_503() {
    let plane = plane();
    let spec = listener(
        "vserver-dead",
        Protocol::Http,
        vec![backend("rs-dead", dead_addr(), 1)],
    );
    plane.sync_listener(spec, None).await.unwrap();
    let addr = plane.local_addr("vserver-dead").unwrap();
    let mut sender = http1(addr).await;
    assert_eq!(get(&mut sender, "/").await.status, 502, "connect refused");

    let (hang_up, _task) = spawn_hang_up_backend().await;
    let spec = listener(
        "vserver-dead",
        Protocol::Http,
        vec![backend("rs-hangup", hang_up, 1)],
    );
    plane.sync_listener(spec, None).await.unwrap();
    assert_eq!(get(&mut sender, "/").await.status, 502, "no response read");

    let mut only_disabled = backend("rs-off", dead_addr(), 1);
    only_disabled.enabled = false;
    for backends in [Vec::new(), vec![only_disabled]] {
        let spec = listener("vserver-dead", Protocol::Http, backends);
        plane.sync_listener(spec, None).await.unwrap();
        // The client connection survives error answers: same sender throughout.
        assert_eq!(get(&mut sender, "/").await.status, 503);
    }

    let metrics = plane.render_metrics();
    assert!(
        metrics
            .contains("certbind_http_requests_total{listener=\"vserver-dead\",code=\"502\"} 2\n"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("certbind_http_requests_total{listener=\"vserver-dead\",code=\"503\"} 2\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_backend_that_does_not_answer_within_the_idle_timeout_gives_504() {
    let gate = Arc::new(tokio::sync::Notify::new());
    let (slow, _arrived) = spawn_gated_backend(gate).await;
    let plane = plane();
    let mut spec = listener(
        "vserver-slow",
        Protocol::Http,
        vec![backend("rs-slow", slow, 1)],
    );
    spec.idle_timeout = Duration::from_millis(100);
    plane.sync_listener(spec, None).await.unwrap();
    let answer = get_once(plane.local_addr("vserver-slow").unwrap(), "/").await;
    assert_eq!(answer.status, 504);
}

#[tokio::test]
async fn keep_alive_on_both_sides() {
    let backend_server = spawn_backend("rs-1").await;
    let plane = plane();
    let spec = listener(
        "vserver-ka",
        Protocol::Http,
        vec![backend("rs-1", backend_server.addr, 1)],
    );
    plane.sync_listener(spec, None).await.unwrap();
    let mut sender = http1(plane.local_addr("vserver-ka").unwrap()).await;
    for _ in 0..5 {
        assert_eq!(get(&mut sender, "/").await.status, 200);
    }
    let cell = plane.lock_listeners()["vserver-ka"].cell.clone();
    assert_eq!(
        cell.metrics.connections_total(),
        1,
        "one client connection carried all requests"
    );
    assert_eq!(
        backend_server.accepted.load(Ordering::SeqCst),
        1,
        "one pooled backend connection carried all requests"
    );
}

#[tokio::test]
async fn health_checks_mark_dead_backends_and_steer_traffic_away() {
    let live = spawn_backend("live").await;
    let dead = dead_addr();
    let plane = plane();
    let checks = [
        ("vserver-tcp-check", HealthCheck::Tcp),
        (
            "als-http-check",
            HealthCheck::Http {
                path: "/health".into(),
                host: Some("health.example.com".into()),
            },
        ),
    ];
    for (id, check) in checks {
        let mut spec = listener(
            id,
            Protocol::Http,
            vec![
                backend("rs-dead", dead, 1),
                backend("rs-live", live.addr, 1),
            ],
        );
        spec.health = HealthSpec {
            check,
            interval: Duration::from_millis(20),
            timeout: Duration::from_millis(500),
        };
        plane.sync_listener(spec, None).await.unwrap();
        let plane_ref = &plane;
        eventually("the dead backend is marked unhealthy", || async move {
            plane_ref.backend_health(id) == [("rs-dead".into(), false), ("rs-live".into(), true)]
        })
        .await;
        let mut sender = http1(plane.local_addr(id).unwrap()).await;
        for _ in 0..4 {
            assert_eq!(get(&mut sender, "/").await.body, "live");
        }
    }
    let metrics = plane.render_metrics();
    assert!(metrics
        .contains("certbind_backend_healthy{listener=\"als-http-check\",backend=\"rs-dead\"} 0\n"));
    assert!(metrics
        .contains("certbind_backend_healthy{listener=\"als-http-check\",backend=\"rs-live\"} 1\n"));
}

#[tokio::test]
async fn an_http_check_fails_on_an_error_status() {
    // The test backend answers 200 for any path, so the check goes to a bare TCP server that
    // answers every request with a 500 status line.
    let listener_500 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr_500 = listener_500.local_addr().unwrap();
    let _server = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener_500.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n")
                    .await;
            });
        }
    });
    let plane = plane();
    let mut spec = listener(
        "als-500",
        Protocol::Http,
        vec![backend("rs-500", addr_500, 1)],
    );
    spec.health = HealthSpec {
        check: HealthCheck::Http {
            path: "/health".into(),
            host: None,
        },
        interval: Duration::from_millis(20),
        timeout: Duration::from_millis(500),
    };
    plane.sync_listener(spec, None).await.unwrap();
    let plane_ref = &plane;
    eventually("the 500 backend is unhealthy", || async move {
        plane_ref.backend_health("als-500") == [("rs-500".into(), false)]
    })
    .await;
    // All enabled backends are unhealthy: traffic still goes to them rather than a 503.
    let answer = get_once(plane.local_addr("als-500").unwrap(), "/").await;
    assert_eq!(answer.status, 500);
}

#[tokio::test]
async fn backends_never_checked_count_as_healthy() {
    let plane = plane();
    let spec = listener(
        "vserver-unchecked",
        Protocol::Http,
        vec![backend("rs-1", dead_addr(), 1)],
    );
    plane.sync_listener(spec, None).await.unwrap();
    assert_eq!(
        plane.backend_health("vserver-unchecked"),
        [("rs-1".to_owned(), true)]
    );
    assert!(plane.backend_health("vserver-unknown").is_empty());
}

#[tokio::test]
async fn a_tcp_listener_relays_bytes() {
    let backend_server = spawn_backend("rs-tcp").await;
    let plane = plane();
    let spec = listener(
        "vserver-tcp",
        Protocol::Tcp,
        vec![backend("rs-tcp", backend_server.addr, 1)],
    );
    plane.sync_listener(spec, None).await.unwrap();
    let answer = get_once(plane.local_addr("vserver-tcp").unwrap(), "/raw").await;
    assert_eq!(answer.body, "rs-tcp");
    // Bytes are relayed untouched: no forwarding headers were added.
    assert!(answer.headers.get("x-seen-xff").is_none());
}

#[tokio::test]
async fn an_idle_client_connection_is_closed() {
    let backend_server = spawn_backend("rs-1").await;
    let plane = plane();
    let mut spec = listener(
        "vserver-idle",
        Protocol::Http,
        vec![backend("rs-1", backend_server.addr, 1)],
    );
    spec.idle_timeout = Duration::from_millis(100);
    plane.sync_listener(spec, None).await.unwrap();
    let mut stream = tokio::net::TcpStream::connect(plane.local_addr("vserver-idle").unwrap())
        .await
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    // Read the response, then keep reading: the server closes once the connection has idled.
    let mut received = Vec::new();
    let read_to_end =
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut received));
    read_to_end
        .await
        .expect("closed by the idle timeout")
        .unwrap();
    assert!(String::from_utf8_lossy(&received).starts_with("HTTP/1.1 200"));
}
