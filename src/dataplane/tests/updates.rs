//! Updates of many listeners at once: `sync_listeners` (many specs under one lock) and
//! `replace_certificate` (one certificate reference swapped in the current state of many
//! listeners), with read-your-writes, call order and what a certificate-only change leaves alone.

use std::net::SocketAddr;
use std::sync::Arc;

use super::support::*;
use crate::dataplane::{CertRef, DataPlane, DataPlaneError, ListenerSpec, Protocol};

/// An HTTPS listener spec on an ephemeral port with one backend.
fn https(id: &str, backend_addr: SocketAddr, certs: Vec<CertRef>) -> ListenerSpec {
    let mut spec = listener(id, Protocol::Https, vec![backend("rs-1", backend_addr, 1)]);
    spec.certs = certs;
    spec
}

/// A source with a certificate per ssl_id, all for `www.example.com` unless named otherwise.
fn source_with(certs: &[(&str, &TestCert)]) -> Arc<MemorySource> {
    let source = Arc::new(MemorySource::default());
    for (ssl_id, cert) in certs {
        source.insert(ssl_id, cert);
    }
    source
}

#[tokio::test]
async fn sync_listeners_applies_every_spec_in_order_and_reports_only_the_failures() {
    let backend_server = spawn_backend("rs-1").await;
    let (a, b, c) = (
        issue(&["www.example.com"]),
        issue(&["www.example.com"]),
        issue(&["www.example.com"]),
    );
    let source = source_with(&[("ssl-a", &a), ("ssl-b", &b), ("ssl-c", &c)]);
    let plane = DataPlane::new(source.clone());
    let failures = plane
        .sync_listeners(vec![
            https(
                "als-1",
                backend_server.addr,
                vec![cert_ref("ssl-a", true, 1)],
            ),
            https(
                "als-2",
                backend_server.addr,
                vec![cert_ref("ssl-a", true, 1)],
            ),
        ])
        .await;
    assert!(failures.is_empty(), "{failures:?}");
    let first = plane.local_addr("als-1").unwrap();
    let second = plane.local_addr("als-2").unwrap();

    // One batch: a spec whose certificate cannot load, then the same listener twice (the later
    // spec wins), then another listener; none of them moves, since the addresses are unchanged.
    let one = |ssl_id: &str, seq| {
        https(
            "als-1",
            backend_server.addr,
            vec![cert_ref(ssl_id, true, seq)],
        )
    };
    let failures = plane
        .sync_listeners(vec![
            one("ssl-missing", 2),
            one("ssl-b", 3),
            one("ssl-c", 4),
            https(
                "als-2",
                backend_server.addr,
                vec![cert_ref("ssl-b", true, 2)],
            ),
        ])
        .await;
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].0, "als-1");
    assert!(
        matches!(&failures[0].1, DataPlaneError::Certificate { ssl_id, .. } if ssl_id == "ssl-missing")
    );
    // Read-your-writes: no wait of any kind.
    let client = TlsClient::sni("www.example.com");
    assert_eq!(served_leaf(first, &client).await, c.leaf);
    assert_eq!(served_leaf(second, &client).await, b.leaf);
    assert_eq!(plane.local_addr("als-1"), Some(first), "not re-ported");
    assert_eq!(plane.local_addr("als-2"), Some(second), "not re-ported");

    // Two batches in sequence: the later wins.
    plane.sync_listeners(vec![one("ssl-a", 5)]).await;
    plane.sync_listeners(vec![one("ssl-b", 6)]).await;
    assert_eq!(served_leaf(first, &client).await, b.leaf);
    assert_eq!(source.loads(), 4, "a, b, c and the failed load, once each");
}

#[tokio::test]
async fn replace_certificate_keeps_each_binding_role_and_skips_what_it_does_not_serve() {
    let backend_server = spawn_backend("rs-1").await;
    let default = issue(&["default.test"]);
    let shop = issue(&["shop.example.com"]);
    let renewed_shop = issue(&["shop.example.com"]);
    let renewed_default = issue(&["default.test"]);
    let source = source_with(&[
        ("ssl-default", &default),
        ("ssl-shop", &shop),
        ("ssl-shop-2", &renewed_shop),
        ("ssl-default-2", &renewed_default),
    ]);
    let plane = DataPlane::new(source.clone());
    let bindings = vec![
        cert_ref("ssl-default", true, 1),
        cert_ref("ssl-shop", false, 2),
    ];
    let failures = plane
        .sync_listeners(vec![
            https("als-1", backend_server.addr, bindings.clone()),
            https("als-2", backend_server.addr, bindings),
            // Open, but does not bind the certificate being replaced.
            https(
                "als-other",
                backend_server.addr,
                vec![cert_ref("ssl-default", true, 1)],
            ),
            listener(
                "vserver-http",
                Protocol::Http,
                vec![backend("rs-1", backend_server.addr, 1)],
            ),
        ])
        .await;
    assert!(failures.is_empty(), "{failures:?}");
    let loads_before = source.loads();
    let ids: Vec<String> = ["als-1", "als-2", "als-missing", "als-other", "vserver-http"]
        .map(String::from)
        .to_vec();

    // The SNI certificate is renewed: it stays SNI even though the new reference says default.
    let replaced = plane
        .replace_certificate(&ids, "ssl-shop", cert_ref("ssl-shop-2", true, 3))
        .await
        .unwrap();
    assert_eq!(
        replaced, 2,
        "als-missing is not open; als-other and vserver-http do not bind it"
    );
    assert_eq!(
        source.loads(),
        loads_before + 1,
        "loaded once for both listeners"
    );
    let shop_client = TlsClient::sni("shop.example.com");
    let no_sni = TlsClient::default();
    for id in ["als-1", "als-2"] {
        let addr = plane.local_addr(id).unwrap();
        assert_eq!(served_leaf(addr, &shop_client).await, renewed_shop.leaf);
        assert_eq!(
            served_leaf(addr, &no_sni).await,
            default.leaf,
            "default unchanged"
        );
    }
    let other = plane.local_addr("als-other").unwrap();
    assert_eq!(served_leaf(other, &no_sni).await, default.leaf);

    // The default is renewed: it stays the default even though the new reference says SNI.
    plane
        .replace_certificate(&ids, "ssl-default", cert_ref("ssl-default-2", false, 4))
        .await
        .unwrap();
    let first = plane.local_addr("als-1").unwrap();
    assert_eq!(served_leaf(first, &no_sni).await, renewed_default.leaf);
    assert_eq!(
        served_leaf(first, &TlsClient::sni("unknown.test")).await,
        renewed_default.leaf
    );
    assert_eq!(served_leaf(first, &shop_client).await, renewed_shop.leaf);
    assert_eq!(served_leaf(other, &no_sni).await, renewed_default.leaf);

    // The SNI certificate, now the most recently bound, still does not become the default (it
    // would stand in for a default that had lost its role).
    plane
        .replace_certificate(&ids, "ssl-shop-2", cert_ref("ssl-shop", true, 5))
        .await
        .unwrap();
    assert_eq!(served_leaf(first, &no_sni).await, renewed_default.leaf);
    assert_eq!(served_leaf(first, &shop_client).await, shop.leaf);

    // Nothing to replace anywhere: nothing is loaded, nothing changes.
    let loads_before = source.loads();
    let replaced = plane
        .replace_certificate(&ids, "ssl-gone", cert_ref("ssl-never-loaded", true, 6))
        .await
        .unwrap();
    assert_eq!(replaced, 0);
    assert_eq!(source.loads(), loads_before);
}

#[tokio::test]
async fn replace_certificate_calls_take_effect_in_call_order() {
    let backend_server = spawn_backend("rs-1").await;
    let (a, b, c) = (
        issue(&["www.example.com"]),
        issue(&["www.example.com"]),
        issue(&["www.example.com"]),
    );
    let source = source_with(&[("ssl-a", &a), ("ssl-b", &b), ("ssl-c", &c)]);
    let plane = DataPlane::new(source);
    plane
        .sync_listener(
            https(
                "als-1",
                backend_server.addr,
                vec![cert_ref("ssl-a", true, 1)],
            ),
            None,
        )
        .await
        .unwrap();
    let addr = plane.local_addr("als-1").unwrap();
    let ids = vec!["als-1".to_owned()];
    let client = TlsClient::sni("www.example.com");

    // In sequence: each call sees the state the previous one left, so the later wins.
    plane
        .replace_certificate(&ids, "ssl-a", cert_ref("ssl-b", true, 2))
        .await
        .unwrap();
    assert_eq!(served_leaf(addr, &client).await, b.leaf);
    plane
        .replace_certificate(&ids, "ssl-b", cert_ref("ssl-c", true, 3))
        .await
        .unwrap();
    assert_eq!(served_leaf(addr, &client).await, c.leaf);
    // The first replacement no longer finds what it replaces.
    assert_eq!(
        plane
            .replace_certificate(&ids, "ssl-a", cert_ref("ssl-b", true, 4))
            .await
            .unwrap(),
        0
    );
    assert_eq!(served_leaf(addr, &client).await, c.leaf);

    // Called one after the other without awaiting in between: the lock is fair, so they still
    // apply in call order (c → a, then a → b).
    let first = plane.replace_certificate(&ids, "ssl-c", cert_ref("ssl-a", true, 5));
    let second = plane.replace_certificate(&ids, "ssl-a", cert_ref("ssl-b", true, 6));
    let (first, second) = tokio::join!(first, second);
    assert_eq!((first.unwrap(), second.unwrap()), (1, 1));
    assert_eq!(served_leaf(addr, &client).await, b.leaf);

    // A full sync after a replacement wins over it, and the other way round.
    plane
        .sync_listener(
            https(
                "als-1",
                backend_server.addr,
                vec![cert_ref("ssl-c", true, 7)],
            ),
            None,
        )
        .await
        .unwrap();
    assert_eq!(served_leaf(addr, &client).await, c.leaf);
    plane
        .replace_certificate(&ids, "ssl-c", cert_ref("ssl-a", true, 8))
        .await
        .unwrap();
    assert_eq!(served_leaf(addr, &client).await, a.leaf);
}

#[tokio::test]
async fn a_replacement_that_fails_to_load_changes_nothing() {
    let backend_server = spawn_backend("rs-1").await;
    let a = issue(&["www.example.com"]);
    let plane = DataPlane::new(source_with(&[("ssl-a", &a)]));
    plane
        .sync_listener(
            https(
                "als-1",
                backend_server.addr,
                vec![cert_ref("ssl-a", true, 1)],
            ),
            None,
        )
        .await
        .unwrap();
    let error = plane
        .replace_certificate(
            &["als-1".to_owned()],
            "ssl-a",
            cert_ref("ssl-gone", true, 2),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DataPlaneError::Certificate { ssl_id, .. } if ssl_id == "ssl-gone"),
        "{error}"
    );
    let addr = plane.local_addr("als-1").unwrap();
    assert_eq!(
        served_leaf(addr, &TlsClient::sni("www.example.com")).await,
        a.leaf
    );
}

/// A certificate-only change leaves the backend pool (round-robin position, health cells) and
/// the health spec shared with the previous state, which is what keeps the health checker from
/// being woken; a backend change does not.
#[tokio::test]
async fn certificate_changes_leave_backends_and_health_checks_alone() {
    let backend_server = spawn_backend("rs-1").await;
    let other_backend = spawn_backend("rs-2").await;
    let (a, b) = (issue(&["www.example.com"]), issue(&["www.example.com"]));
    let plane = DataPlane::new(source_with(&[("ssl-a", &a), ("ssl-b", &b)]));
    let spec = https(
        "als-1",
        backend_server.addr,
        vec![cert_ref("ssl-a", true, 1)],
    );
    plane.sync_listener(spec.clone(), None).await.unwrap();
    let cell = plane.lock_listeners()["als-1"].cell.clone();
    let before = cell.load_full();

    let mut swapped = spec.clone();
    swapped.certs = vec![cert_ref("ssl-b", true, 2)];
    plane.sync_listener(swapped, None).await.unwrap();
    plane
        .replace_certificate(&["als-1".to_owned()], "ssl-b", cert_ref("ssl-a", true, 3))
        .await
        .unwrap();
    let after = cell.load_full();
    assert!(!Arc::ptr_eq(&before, &after), "the state was swapped");
    assert!(after.same_checks(&before));
    assert!(Arc::ptr_eq(&after.pool, &before.pool));

    let mut moved = spec;
    moved.backends = vec![backend("rs-2", other_backend.addr, 1)];
    plane.sync_listener(moved, None).await.unwrap();
    assert!(!cell.load().same_checks(&after));
}
