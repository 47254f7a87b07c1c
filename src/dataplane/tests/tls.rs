//! TLS termination: which certificate each handshake gets, refusal without one, hot swap with
//! open connections, ALPN and protocol versions.

use std::sync::Arc;

use rustls::ProtocolVersion;

use super::support::*;
use crate::dataplane::metrics::HandshakeFailure;
use crate::dataplane::{DataPlane, DataPlaneError, Protocol};

async fn https_listener_with(
    source: &Arc<MemorySource>,
    certs: Vec<crate::dataplane::CertRef>,
    backend_addr: std::net::SocketAddr,
) -> (Arc<DataPlane>, std::net::SocketAddr) {
    let plane = DataPlane::new(source.clone());
    let mut spec = listener(
        "als-tls",
        Protocol::Https,
        vec![backend("rs-1", backend_addr, 1)],
    );
    spec.certs = certs;
    plane.sync_listener(spec, None).await.unwrap();
    let addr = plane.local_addr("als-tls").unwrap();
    (plane, addr)
}

#[tokio::test]
async fn clb_listener_serves_its_certificate_with_the_full_chain() {
    let backend_server = spawn_backend("rs-1").await;
    let source = Arc::new(MemorySource::default());
    let cert = issue(&["www.example.com"]);
    source.insert("ssl-clb", &cert);
    // A CLB VServer's one certificate need not be marked default.
    let (plane, addr) = https_listener_with(
        &source,
        vec![cert_ref("ssl-clb", false, 1)],
        backend_server.addr,
    )
    .await;

    for client in [TlsClient::sni("www.example.com"), TlsClient::default()] {
        let connection = client.connect(addr).await.unwrap();
        assert_eq!(connection.served, vec![cert.leaf.clone(), cert.ca.clone()]);
        let mut sender = http1_over(connection.stream).await;
        let answer = get(&mut sender, "/hello").await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, "rs-1");
        assert_eq!(answer.headers["x-seen-proto"], "https");
    }
    let cell = plane.lock_listeners()["als-tls"].cell.clone();
    assert_eq!(cell.metrics.requests_with(200), 2);
}

#[tokio::test]
async fn alb_sni_picks_exact_wildcard_newest_or_default() {
    let backend_server = spawn_backend("rs-1").await;
    let source = Arc::new(MemorySource::default());
    let default = issue(&["default.test"]);
    let shop = issue(&["shop.example.com"]);
    let wildcard = issue(&["*.example.com"]);
    let api = issue(&["api.example.com"]);
    for (id, cert) in [
        ("ssl-default", &default),
        ("ssl-shop", &shop),
        ("ssl-wild", &wildcard),
        ("ssl-api", &api),
    ] {
        source.insert(id, cert);
    }
    let certs = vec![
        cert_ref("ssl-default", true, 1),
        cert_ref("ssl-shop", false, 2),
        cert_ref("ssl-wild", false, 3),
        cert_ref("ssl-api", false, 4),
    ];
    let (plane, addr) = https_listener_with(&source, certs, backend_server.addr).await;

    let cases = [
        (
            Some("api.example.com"),
            &api.leaf,
            "exact name, newer than the wildcard",
        ),
        (Some("www.example.com"), &wildcard.leaf, "wildcard"),
        (
            Some("SHOP.example.com"),
            &wildcard.leaf,
            "both match: the newer wildcard wins",
        ),
        (
            Some("example.com"),
            &default.leaf,
            "a wildcard covers one label only",
        ),
        (Some("unknown.test"), &default.leaf, "no match: default"),
        (None, &default.leaf, "no SNI: default"),
    ];
    for (sni, expected, why) in cases {
        let client = TlsClient {
            sni: sni.map(str::to_owned),
            ..TlsClient::default()
        };
        assert_eq!(&served_leaf(addr, &client).await, expected, "{why}");
    }

    // Rebinding shop makes it the most recent: it now beats the wildcard for its name.
    let mut spec = listener(
        "als-tls",
        Protocol::Https,
        vec![backend("rs-1", backend_server.addr, 1)],
    );
    spec.certs = vec![
        cert_ref("ssl-default", true, 1),
        cert_ref("ssl-wild", false, 3),
        cert_ref("ssl-api", false, 4),
        cert_ref("ssl-shop", false, 5),
    ];
    plane.sync_listener(spec, None).await.unwrap();
    assert_eq!(
        served_leaf(addr, &TlsClient::sni("shop.example.com")).await,
        shop.leaf
    );
    assert_eq!(plane.local_addr("als-tls"), Some(addr), "same socket kept");
}

#[tokio::test]
async fn https_without_certificate_refuses_with_an_alert_until_one_is_bound() {
    let backend_server = spawn_backend("rs-1").await;
    let source = Arc::new(MemorySource::default());
    let (plane, addr) = https_listener_with(&source, Vec::new(), backend_server.addr).await;

    let error = TlsClient::sni("www.example.com")
        .connect(addr)
        .await
        .err()
        .expect("handshake must fail");
    let tls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .unwrap_or_else(|| panic!("not a TLS error: {error}"));
    assert!(
        matches!(tls_error, rustls::Error::AlertReceived(_)),
        "expected an alert, got {tls_error:?}"
    );
    let cell = plane.lock_listeners()["als-tls"].cell.clone();
    assert_eq!(
        cell.metrics.failures_for(HandshakeFailure::NoCertificate),
        1
    );

    let cert = issue(&["www.example.com"]);
    source.insert("ssl-1", &cert);
    let mut spec = listener(
        "als-tls",
        Protocol::Https,
        vec![backend("rs-1", backend_server.addr, 1)],
    );
    spec.certs = vec![cert_ref("ssl-1", true, 1)];
    plane.sync_listener(spec, None).await.unwrap();
    assert_eq!(
        served_leaf(addr, &TlsClient::sni("www.example.com")).await,
        cert.leaf
    );
}

#[tokio::test]
async fn a_swap_reaches_the_very_next_handshake_while_open_connections_keep_working() {
    let backend_server = spawn_backend("rs-1").await;
    let source = Arc::new(MemorySource::default());
    let old = issue(&["www.example.com"]);
    let new = issue(&["www.example.com"]);
    source.insert("ssl-old", &old);
    source.insert("ssl-new", &new);
    let (plane, addr) = https_listener_with(
        &source,
        vec![cert_ref("ssl-old", true, 1)],
        backend_server.addr,
    )
    .await;
    let client = TlsClient::sni("www.example.com");

    let open = client.connect(addr).await.unwrap();
    assert_eq!(open.served[0], old.leaf);
    let mut open_sender = http1_over(open.stream).await;
    assert_eq!(get(&mut open_sender, "/before").await.status, 200);
    // A connection accepted before the swap whose ClientHello has not been sent yet: the
    // certificate is chosen when the ClientHello arrives, so it too gets the new one.
    let accepted_early = tokio::net::TcpStream::connect(addr).await.unwrap();
    let cell = plane.lock_listeners()["als-tls"].cell.clone();
    let cell_ref = &cell;
    eventually("the early connection is accepted", || async move {
        cell_ref.metrics.connections_total() == 2
    })
    .await;
    // Let its task start waiting for the ClientHello before the first swap.
    tokio::task::yield_now().await;

    for round in 0..3 {
        let (ssl_id, expected) = if round % 2 == 0 {
            ("ssl-new", &new)
        } else {
            ("ssl-old", &old)
        };
        let mut spec = listener(
            "als-tls",
            Protocol::Https,
            vec![backend("rs-1", backend_server.addr, 1)],
        );
        spec.certs = vec![cert_ref(ssl_id, true, round + 2)];
        plane.sync_listener(spec, None).await.unwrap();
        // No wait of any kind: read-your-writes.
        assert_eq!(served_leaf(addr, &client).await, expected.leaf);
        // The connection opened before the first swap still serves requests.
        let answer = get(&mut open_sender, "/after").await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, "rs-1");
    }

    let late = client.handshake(accepted_early).await.unwrap();
    assert_eq!(late.served[0], new.leaf);
}

/// The acceptance check of `spec/dataplane-anchors.md`: under concurrent handshakes, once
/// `sync_listener` has returned no new handshake shows an older certificate, and none fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaps_under_handshake_load_never_serve_a_stale_certificate_or_fail() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    const SWAPS: usize = 8;
    let backend_server = spawn_backend("rs-1").await;
    let source = Arc::new(MemorySource::default());
    let certs: Vec<TestCert> = (0..=SWAPS).map(|_| issue(&["www.example.com"])).collect();
    for (index, cert) in certs.iter().enumerate() {
        source.insert(&format!("ssl-{index}"), cert);
    }
    let (plane, addr) = https_listener_with(
        &source,
        vec![cert_ref("ssl-0", true, 0)],
        backend_server.addr,
    )
    .await;
    let leaves: Arc<Vec<_>> = Arc::new(certs.iter().map(|c| c.leaf.clone()).collect());
    let published = Arc::new(AtomicUsize::new(0));
    let handshakes = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    let clients: Vec<_> = (0..3)
        .map(|_| {
            let (leaves, published, handshakes, stop) = (
                leaves.clone(),
                published.clone(),
                handshakes.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let client = TlsClient::sni("www.example.com");
                while !stop.load(Ordering::SeqCst) {
                    // Certificates are published in increasing index order, so the one served
                    // can never be older than the last swap that returned before the connect.
                    let floor = published.load(Ordering::SeqCst);
                    let connection = client.connect(addr).await.expect("no handshake fails");
                    let served = leaves
                        .iter()
                        .position(|leaf| *leaf == connection.served[0])
                        .expect("a known certificate");
                    assert!(
                        served >= floor,
                        "served ssl-{served} after ssl-{floor} was published"
                    );
                    handshakes.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();

    for index in 1..=SWAPS {
        let mut spec = listener(
            "als-tls",
            Protocol::Https,
            vec![backend("rs-1", backend_server.addr, 1)],
        );
        spec.certs = vec![cert_ref(&format!("ssl-{index}"), true, index as i64)];
        plane.sync_listener(spec, None).await.unwrap();
        published.store(index, Ordering::SeqCst);
        // Let some handshakes run against each certificate before the next swap.
        let target = handshakes.load(Ordering::SeqCst) + 6;
        let handshakes = &handshakes;
        eventually("handshakes after the swap", || async move {
            handshakes.load(Ordering::SeqCst) >= target
        })
        .await;
    }
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }
}

#[tokio::test]
async fn session_resumption_survives_backend_changes_but_never_hides_a_certificate_swap() {
    use rustls::HandshakeKind;

    let first_backend = spawn_backend("rs-1").await;
    let second_backend = spawn_backend("rs-2").await;
    let source = Arc::new(MemorySource::default());
    let old = issue(&["www.example.com"]);
    let new = issue(&["www.example.com"]);
    source.insert("ssl-old", &old);
    source.insert("ssl-new", &new);
    let (plane, addr) = https_listener_with(
        &source,
        vec![cert_ref("ssl-old", true, 1)],
        first_backend.addr,
    )
    .await;
    let client = ResumingClient::new("www.example.com");
    assert_eq!(
        client.round_trip(addr).await,
        (HandshakeKind::Full, Some(old.leaf.clone()))
    );

    // Same certificates, other backends: the TLS config is kept, so sessions still resume.
    let mut spec = listener(
        "als-tls",
        Protocol::Https,
        vec![backend("rs-2", second_backend.addr, 1)],
    );
    spec.certs = vec![cert_ref("ssl-old", true, 1)];
    plane.sync_listener(spec.clone(), None).await.unwrap();
    assert_eq!(
        client.round_trip(addr).await,
        (HandshakeKind::Resumed, None)
    );

    // A resumed session would silently keep the old certificate: after a swap the session cache
    // is new, so the next handshake is a full one with the new certificate.
    spec.certs = vec![cert_ref("ssl-new", true, 2)];
    plane.sync_listener(spec, None).await.unwrap();
    assert_eq!(
        client.round_trip(addr).await,
        (HandshakeKind::Full, Some(new.leaf.clone()))
    );

    // The same holds for a replacement without a spec.
    assert_eq!(
        client.round_trip(addr).await,
        (HandshakeKind::Resumed, None)
    );
    plane
        .replace_certificate(
            &["als-tls".to_owned()],
            "ssl-new",
            cert_ref("ssl-old", true, 3),
        )
        .await
        .unwrap();
    assert_eq!(
        client.round_trip(addr).await,
        (HandshakeKind::Full, Some(old.leaf.clone()))
    );
}

#[tokio::test]
async fn a_certificate_that_fails_to_load_leaves_the_listener_as_it_was() {
    let backend_server = spawn_backend("rs-1").await;
    let source = Arc::new(MemorySource::default());
    let cert = issue(&["www.example.com"]);
    source.insert("ssl-1", &cert);
    let (plane, addr) = https_listener_with(
        &source,
        vec![cert_ref("ssl-1", true, 1)],
        backend_server.addr,
    )
    .await;

    let mut spec = listener("als-tls", Protocol::Https, Vec::new());
    spec.certs = vec![
        cert_ref("ssl-1", true, 1),
        cert_ref("ssl-missing", false, 2),
    ];
    let error = plane.sync_listener(spec, None).await.unwrap_err();
    assert!(
        matches!(&error, DataPlaneError::Certificate { ssl_id, .. } if ssl_id == "ssl-missing"),
        "{error}"
    );
    // Old certificate and old backends still in place.
    let connection = TlsClient::sni("www.example.com")
        .connect(addr)
        .await
        .unwrap();
    assert_eq!(connection.served[0], cert.leaf);
    let mut sender = http1_over(connection.stream).await;
    assert_eq!(get(&mut sender, "/").await.status, 200);

    // A mismatched key is refused too.
    let other = issue(&["www.example.com"]);
    let mismatched = TestCert {
        leaf: cert.leaf.clone(),
        ca: cert.ca.clone(),
        loaded: crate::dataplane::LoadedCert {
            key: Arc::new(rustls::sign::CertifiedKey::new(
                cert.loaded.key.cert.clone(),
                other.loaded.key.key.clone(),
            )),
            names: cert.loaded.names.clone(),
        },
    };
    source.insert("ssl-mismatch", &mismatched);
    let mut spec = listener("als-tls", Protocol::Https, Vec::new());
    spec.certs = vec![cert_ref("ssl-mismatch", true, 3)];
    assert!(matches!(
        plane.sync_listener(spec, None).await,
        Err(DataPlaneError::Certificate { .. })
    ));
    assert_eq!(
        served_leaf(addr, &TlsClient::sni("www.example.com")).await,
        cert.leaf
    );
}

#[tokio::test]
async fn certificates_load_once_and_forget_cert_reloads() {
    let source = Arc::new(MemorySource::default());
    let first = issue(&["www.example.com"]);
    source.insert("ssl-1", &first);
    let plane = DataPlane::new(source.clone());
    for id in ["als-a", "als-b"] {
        let mut spec = listener(id, Protocol::Https, Vec::new());
        spec.certs = vec![cert_ref("ssl-1", true, 1)];
        plane.sync_listener(spec, None).await.unwrap();
    }
    assert_eq!(source.loads(), 1, "the second listener used the cache");

    // New material under the same id (re-upload): visible only after forget_cert and a sync.
    let second = issue(&["www.example.com"]);
    source.insert("ssl-1", &second);
    plane.forget_cert("ssl-1");
    let mut spec = listener("als-a", Protocol::Https, Vec::new());
    spec.certs = vec![cert_ref("ssl-1", true, 2)];
    plane.sync_listener(spec, None).await.unwrap();
    assert_eq!(source.loads(), 2);
    let client = TlsClient::sni("www.example.com");
    assert_eq!(
        served_leaf(plane.local_addr("als-a").unwrap(), &client).await,
        second.leaf
    );
    assert_eq!(
        served_leaf(plane.local_addr("als-b").unwrap(), &client).await,
        first.leaf,
        "listeners not synced keep what they serve"
    );
}

#[tokio::test]
async fn http2_enabled_negotiates_h2_and_proxies() {
    let backend_server = spawn_backend("rs-1").await;
    let source = Arc::new(MemorySource::default());
    let cert = issue(&["www.example.com"]);
    source.insert("ssl-1", &cert);
    let plane = DataPlane::new(source.clone());
    let mut spec = listener(
        "als-h2",
        Protocol::Https,
        vec![backend("rs-1", backend_server.addr, 1)],
    );
    spec.certs = vec![cert_ref("ssl-1", true, 1)];
    let offering_h2 = TlsClient {
        sni: Some("www.example.com".into()),
        alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        ..TlsClient::default()
    };

    // Off: the same client gets HTTP/1.1.
    plane.sync_listener(spec.clone(), None).await.unwrap();
    let addr = plane.local_addr("als-h2").unwrap();
    let connection = offering_h2.connect(addr).await.unwrap();
    assert_eq!(
        connection.stream.get_ref().1.alpn_protocol(),
        Some(&b"http/1.1"[..])
    );

    spec.http2 = true;
    plane.sync_listener(spec, None).await.unwrap();
    let connection = offering_h2.connect(addr).await.unwrap();
    assert_eq!(
        connection.stream.get_ref().1.alpn_protocol(),
        Some(&b"h2"[..])
    );
    let answer = http2_get(connection.stream, "/over-h2").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "rs-1");
    assert_eq!(answer.headers["x-seen-host"], "app.example.com");
    assert_eq!(answer.headers["x-seen-path"], "/over-h2");
}

#[tokio::test]
async fn tls_1_2_and_1_3_are_both_served() {
    let backend_server = spawn_backend("rs-1").await;
    let source = Arc::new(MemorySource::default());
    let cert = issue(&["www.example.com"]);
    source.insert("ssl-1", &cert);
    let (_plane, addr) = https_listener_with(
        &source,
        vec![cert_ref("ssl-1", true, 1)],
        backend_server.addr,
    )
    .await;

    let tls13 = TlsClient::sni("www.example.com")
        .connect(addr)
        .await
        .unwrap();
    assert_eq!(
        tls13.stream.get_ref().1.protocol_version(),
        Some(ProtocolVersion::TLSv1_3)
    );
    let tls12 = TlsClient {
        tls12_only: true,
        ..TlsClient::sni("www.example.com")
    }
    .connect(addr)
    .await
    .unwrap();
    assert_eq!(
        tls12.stream.get_ref().1.protocol_version(),
        Some(ProtocolVersion::TLSv1_2)
    );
    assert_eq!(tls12.served[0], cert.leaf);
    let mut sender = http1_over(tls12.stream).await;
    assert_eq!(get(&mut sender, "/").await.body, "rs-1");
}
