//! Listener lifecycle: open, remove, re-port, taken ports, full reconcile, shutdown with drain,
//! and the metrics text.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::support::*;
use crate::dataplane::{DataPlane, DataPlaneError, Protocol};

#[tokio::test]
async fn removing_a_listener_closes_its_port_and_leaves_the_others_serving() {
    let backend_server = spawn_backend("rs-1").await;
    let plane = DataPlane::new(Arc::new(MemorySource::default()));
    for id in ["vserver-keep", "vserver-drop"] {
        let spec = listener(
            id,
            Protocol::Http,
            vec![backend("rs-1", backend_server.addr, 1)],
        );
        plane.sync_listener(spec, None).await.unwrap();
    }
    let keep = plane.local_addr("vserver-keep").unwrap();
    let drop_addr = plane.local_addr("vserver-drop").unwrap();
    let mut kept_connection = http1(keep).await;
    assert_eq!(get(&mut kept_connection, "/").await.status, 200);
    let mut dropped_connection = http1(drop_addr).await;
    assert_eq!(get(&mut dropped_connection, "/").await.status, 200);

    plane.remove_listener("vserver-drop").await;
    assert!(TcpStream::connect(drop_addr).await.is_err(), "port closed");
    // The removed listener's idle keep-alive connection is drained: closed, not left dangling.
    let dropped_ref = &dropped_connection;
    eventually(
        "the removed listener's idle connection closes",
        || async move { dropped_ref.is_closed() },
    )
    .await;
    assert_eq!(plane.local_addr("vserver-drop"), None);
    assert_eq!(get(&mut kept_connection, "/").await.status, 200);
    assert_eq!(get_once(keep, "/").await.status, 200);
    // Removing twice is harmless.
    plane.remove_listener("vserver-drop").await;
}

#[tokio::test]
async fn re_porting_opens_the_new_port_closes_the_old_and_keeps_open_connections() {
    let backend_server = spawn_backend("rs-1").await;
    let plane = DataPlane::new(Arc::new(MemorySource::default()));
    let first = plane.reserve("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut spec = listener(
        "vserver-move",
        Protocol::Http,
        vec![backend("rs-1", backend_server.addr, 1)],
    );
    spec.addr = first.local_addr();
    plane
        .sync_listener(spec.clone(), Some(first))
        .await
        .unwrap();
    let old_addr = spec.addr;
    assert_eq!(plane.local_addr("vserver-move"), Some(old_addr));
    let mut open = http1(old_addr).await;
    assert_eq!(get(&mut open, "/").await.status, 200);

    let second = plane.reserve("127.0.0.1:0".parse().unwrap()).unwrap();
    spec.addr = second.local_addr();
    plane
        .sync_listener(spec.clone(), Some(second))
        .await
        .unwrap();
    let new_addr = spec.addr;
    assert_eq!(plane.local_addr("vserver-move"), Some(new_addr));
    assert!(
        TcpStream::connect(old_addr).await.is_err(),
        "old port closed"
    );
    assert_eq!(get_once(new_addr, "/").await.body, "rs-1");
    assert_eq!(
        get(&mut open, "/").await.status,
        200,
        "open connection kept"
    );

    // Without a reservation, a changed address is bound by sync_listener itself.
    spec.addr = "127.0.0.1:0".parse().unwrap();
    plane.sync_listener(spec, None).await.unwrap();
    let third = plane.local_addr("vserver-move").unwrap();
    assert_ne!(third, new_addr);
    assert!(TcpStream::connect(new_addr).await.is_err());
    assert_eq!(get_once(third, "/").await.status, 200);
}

#[tokio::test]
async fn a_taken_port_is_reported_and_changes_nothing() {
    let backend_server = spawn_backend("rs-1").await;
    let plane = DataPlane::new(Arc::new(MemorySource::default()));
    let spec = listener(
        "vserver-a",
        Protocol::Http,
        vec![backend("rs-1", backend_server.addr, 1)],
    );
    plane.sync_listener(spec.clone(), None).await.unwrap();
    let taken = plane.local_addr("vserver-a").unwrap();

    let error = plane.reserve(taken).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse);

    let mut clash = spec.clone();
    clash.id = "vserver-b".into();
    clash.addr = taken;
    let error = plane.sync_listener(clash, None).await.unwrap_err();
    assert!(matches!(error, DataPlaneError::Bind { addr, .. } if addr == taken));
    assert_eq!(plane.local_addr("vserver-b"), None);
    assert_eq!(get_once(taken, "/").await.status, 200);
}

#[tokio::test]
async fn sync_all_reconciles_and_reports_what_failed() {
    let backend_server = spawn_backend("rs-1").await;
    let source = Arc::new(MemorySource::default());
    let cert = issue(&["www.example.com"]);
    source.insert("ssl-1", &cert);
    let plane = DataPlane::new(source.clone());
    let http = |id: &str| {
        listener(
            id,
            Protocol::Http,
            vec![backend("rs-1", backend_server.addr, 1)],
        )
    };
    plane
        .sync_listener(http("vserver-stale"), None)
        .await
        .unwrap();
    let stale_addr = plane.local_addr("vserver-stale").unwrap();

    let mut https = http("als-good");
    https.protocol = Protocol::Https;
    https.certs = vec![cert_ref("ssl-1", true, 1)];
    let mut broken = http("als-broken");
    broken.protocol = Protocol::Https;
    broken.certs = vec![cert_ref("ssl-gone", true, 1)];
    let failures = plane
        .sync_all(vec![http("vserver-plain"), broken, https])
        .await;

    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].0, "als-broken");
    assert!(matches!(failures[0].1, DataPlaneError::Certificate { .. }));
    assert!(
        TcpStream::connect(stale_addr).await.is_err(),
        "stale closed"
    );
    assert_eq!(plane.local_addr("vserver-stale"), None);
    assert_eq!(plane.local_addr("als-broken"), None);
    assert_eq!(
        get_once(plane.local_addr("vserver-plain").unwrap(), "/")
            .await
            .status,
        200
    );
    let good = plane.local_addr("als-good").unwrap();
    assert_eq!(
        served_leaf(good, &TlsClient::sni("www.example.com")).await,
        cert.leaf
    );
}

#[tokio::test]
async fn shutdown_stops_accepting_and_lets_in_flight_requests_finish() {
    let gate = Arc::new(Notify::new());
    let (slow, arrived) = spawn_gated_backend(gate.clone()).await;
    let plane = DataPlane::new(Arc::new(MemorySource::default()));
    let spec = listener(
        "vserver-drain",
        Protocol::Http,
        vec![backend("rs-slow", slow, 1)],
    );
    plane.sync_listener(spec.clone(), None).await.unwrap();
    let addr = plane.local_addr("vserver-drain").unwrap();

    let mut sender = http1(addr).await;
    let in_flight = tokio::spawn(async move { get(&mut sender, "/slow").await });
    let idle = http1(addr).await;
    let arrived_ref = &arrived;
    eventually("the request is in flight at the backend", || async move {
        arrived_ref.load(Ordering::SeqCst) == 1
    })
    .await;

    let stopping = {
        let plane = plane.clone();
        tokio::spawn(async move { plane.shutdown().await })
    };
    eventually("the port is closed", || async move {
        TcpStream::connect(addr).await.is_err()
    })
    .await;
    let idle_ref = &idle;
    eventually("the idle keep-alive connection is closed", || async move {
        idle_ref.is_closed()
    })
    .await;
    assert!(!stopping.is_finished(), "waits for the in-flight request");
    gate.notify_one();
    let answer = in_flight.await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "slow");
    stopping.await.unwrap();

    assert!(matches!(
        plane.sync_listener(spec, None).await,
        Err(DataPlaneError::ShutDown)
    ));
}

#[tokio::test]
async fn metrics_text_has_every_family() {
    let backend_server = spawn_backend("rs-1").await;
    let source = Arc::new(MemorySource::default());
    let cert = issue(&["www.example.com"]);
    source.insert("ssl-1", &cert);
    let plane = DataPlane::new(source.clone());
    let mut spec = listener(
        "als-metrics",
        Protocol::Https,
        vec![backend("rs-1", backend_server.addr, 1)],
    );
    spec.certs = vec![cert_ref("ssl-1", true, 1)];
    plane.sync_listener(spec.clone(), None).await.unwrap();
    let addr = plane.local_addr("als-metrics").unwrap();
    let connection = TlsClient::sni("www.example.com")
        .connect(addr)
        .await
        .unwrap();
    let mut sender = http1_over(connection.stream).await;
    assert_eq!(get(&mut sender, "/").await.status, 200);
    // Plain HTTP to the HTTPS port is a failed handshake.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut plain, b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    let mut sink = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut plain, &mut sink).await;
    spec.certs = Vec::new();
    plane.sync_listener(spec, None).await.unwrap();
    assert!(TlsClient::sni("www.example.com")
        .connect(addr)
        .await
        .is_err());

    let text = plane.render_metrics();
    for line in [
        "certbind_listeners 1\n",
        "certbind_tls_handshakes_total{listener=\"als-metrics\"} 1\n",
        "certbind_tls_handshake_failures_total{listener=\"als-metrics\",reason=\"no_certificate\"} 1\n",
        "certbind_tls_handshake_failures_total{listener=\"als-metrics\",reason=\"bad_client_hello\"} 1\n",
        "certbind_tls_handshake_failures_total{listener=\"als-metrics\",reason=\"timeout\"} 0\n",
        "certbind_http_requests_total{listener=\"als-metrics\",code=\"200\"} 1\n",
        "certbind_backend_healthy{listener=\"als-metrics\",backend=\"rs-1\"} 1\n",
        "certbind_snapshot_swaps_total 2\n",
        "certbind_snapshot_swap_seconds_count 2\n",
        "certbind_snapshot_swap_seconds_bucket{le=\"+Inf\"} 2\n",
        "certbind_certificate_loads_total{result=\"ok\"} 1\n",
        "# TYPE certbind_snapshot_swap_seconds histogram\n",
        "# TYPE certbind_tls_handshakes_total counter\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

#[tokio::test]
async fn listeners_never_take_the_descriptors_kept_for_connections() {
    use crate::dataplane::descriptors::MIN_RESERVE;
    use crate::dataplane::DataPlaneOptions;

    let backend_server = spawn_backend("rs-1").await;
    // A limit that leaves room for two listening sockets once the reserve is kept.
    let options = DataPlaneOptions {
        descriptor_limit: Some(MIN_RESERVE + 2),
        ..DataPlaneOptions::default()
    };
    let source = Arc::new(MemorySource::default());
    let plane = DataPlane::with_options(source.clone(), options);
    let http = |id: &str| {
        listener(
            id,
            Protocol::Http,
            vec![backend("rs-1", backend_server.addr, 1)],
        )
    };
    let too_many =
        |error: &DataPlaneError| matches!(error, DataPlaneError::TooManyListeners { limit: 2 });

    // Startup: the listeners beyond the budget are refused with a clear error, the rest serve.
    // A refused listener loads nothing: its certificate does not even exist.
    let mut https = http("vserver-3");
    https.protocol = Protocol::Https;
    https.certs = vec![cert_ref("ssl-never-loaded", true, 1)];
    let failures = plane
        .sync_all(vec![http("vserver-1"), http("vserver-2"), https])
        .await;
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].0, "vserver-3");
    assert!(too_many(&failures[0].1), "{}", failures[0].1);
    assert_eq!(source.loads(), 0);
    assert!(failures[0].1.to_string().contains("at most 2 listeners"));
    assert_eq!(plane.local_addr("vserver-3"), None);
    let first = plane.local_addr("vserver-1").unwrap();
    assert_eq!(get_once(first, "/").await.status, 200);

    // A new listener is refused too, before any port is bound: with or without a reservation.
    let error = plane
        .sync_listener(http("vserver-3"), None)
        .await
        .unwrap_err();
    assert!(too_many(&error), "{error}");
    let error = plane.reserve("127.0.0.1:0".parse().unwrap()).unwrap_err();
    let inner = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<DataPlaneError>())
        .unwrap_or_else(|| panic!("not a data-plane error: {error}"));
    assert!(too_many(inner), "{inner}");

    // Listeners already open can still be updated and re-ported at the limit.
    plane.sync_listener(http("vserver-1"), None).await.unwrap();
    assert_eq!(plane.local_addr("vserver-1"), Some(first));
    let mut moved = http("vserver-2");
    moved.addr = "127.0.0.2:0".parse().unwrap();
    plane.sync_listener(moved, None).await.unwrap();
    let moved = plane.local_addr("vserver-2").unwrap();
    assert_eq!(moved.ip().to_string(), "127.0.0.2");
    assert_eq!(get_once(moved, "/").await.status, 200);

    // Closing a listener gives its place back; so does dropping an unused reservation.
    plane.remove_listener("vserver-2").await;
    let reservation = plane.reserve("127.0.0.1:0".parse().unwrap()).unwrap();
    let error = plane
        .sync_listener(http("vserver-3"), None)
        .await
        .unwrap_err();
    assert!(too_many(&error), "the reservation holds the last place");
    drop(reservation);
    plane.sync_listener(http("vserver-3"), None).await.unwrap();
    assert_eq!(
        get_once(plane.local_addr("vserver-3").unwrap(), "/")
            .await
            .status,
        200
    );

    // A reservation handed to a new listener keeps its place; nothing is counted twice.
    plane.remove_listener("vserver-3").await;
    let reservation = plane.reserve("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut reserved = http("vserver-4");
    reserved.addr = reservation.local_addr();
    plane
        .sync_listener(reserved, Some(reservation))
        .await
        .unwrap();
    assert_eq!(plane.sockets.used(), 2);
    assert!(plane.reserve("127.0.0.1:0".parse().unwrap()).is_err());
}
