//! The data plane end to end: listeners created through the API really listen on their load
//! balancer's address, serve exactly the bound certificates (per SNI name) on the very next
//! handshake after each binding call, and proxy to real backends.

use serde_json::Value;
use std::net::SocketAddr;

use crate::support::{self, tls, Server};

struct Cert {
    id: String,
    fingerprint: String,
}

async fn upload(server: &Server, names: &[&str]) -> Cert {
    let (cert, key) = support::cert(names);
    let answer = server
        .ok(
            "CreateSSL",
            &[
                ("SSLName", names[0].trim_start_matches("*.")),
                ("UserCert", &cert),
                ("PrivateKey", &key),
            ],
        )
        .await;
    Cert {
        id: answer["SSLId"].as_str().unwrap().to_string(),
        fingerprint: tls::pem_fingerprint(&cert),
    }
}

fn addr(ip: &Value, port: u16) -> SocketAddr {
    SocketAddr::new(ip.as_str().expect("an address").parse().unwrap(), port)
}

/// A CLB with one HTTPS VServer on port 8443; returns (ULBId, VServerId, address).
async fn clb_https(server: &Server, port: u16) -> (String, String, SocketAddr) {
    let ulb = server.ok("CreateULB", &[("ULBName", "web")]).await["ULBId"]
        .as_str()
        .unwrap()
        .to_string();
    let vs = server
        .ok(
            "CreateVServer",
            &[
                ("ULBId", &ulb),
                ("Protocol", "HTTPS"),
                ("FrontendPort", &port.to_string()),
            ],
        )
        .await["VServerId"]
        .as_str()
        .unwrap()
        .to_string();
    let described = server.ok("DescribeULB", &[("ULBId", &ulb)]).await;
    (ulb, vs, addr(&described["DataSet"][0]["PrivateIP"], port))
}

#[tokio::test]
async fn clb_serves_the_bound_certificate_after_every_binding_call() {
    let server = support::spawn().await;
    let a = upload(&server, &["a.example.test"]).await;
    let b = upload(&server, &["b.example.test"]).await;
    let (ulb, vs, at) = clb_https(&server, 8443).await;

    // No certificate yet: the handshake is refused with an alert.
    assert!(tls::handshake(at, Some("a.example.test")).await.is_err());

    server
        .ok(
            "BindSSL",
            &[("ULBId", &ulb), ("VServerId", &vs), ("SSLId", &a.id)],
        )
        .await;
    assert_eq!(tls::leaf(at, Some("a.example.test")).await, a.fingerprint);
    // An open connection keeps its certificate across the swaps below.
    let (held_chain, held) = tls::handshake(at, None).await.unwrap();
    assert_eq!(held_chain[0], a.fingerprint);

    // Listener scope, LB scope, both, and project scope: each answer is served at once.
    type Scope<'a> = (&'a str, &'a Cert, &'a Cert, Vec<(&'a str, &'a str)>);
    let scopes: [Scope; 4] = [
        ("listener", &a, &b, vec![("ListenerId", vs.as_str())]),
        ("lb", &b, &a, vec![("LoadBalancerId", ulb.as_str())]),
        (
            "both",
            &a,
            &b,
            vec![
                ("LoadBalancerId", ulb.as_str()),
                ("ListenerId", vs.as_str()),
            ],
        ),
        ("project", &b, &a, vec![]),
    ];
    for (scope, old, new, extra) in scopes {
        let mut params = vec![("OldSSLId", old.id.as_str()), ("NewSSLId", new.id.as_str())];
        params.extend(extra);
        let answer = server.ok("UpdateSSLBinding", &params).await;
        assert_eq!(answer["ReplacedCount"], 1, "{scope}: {answer}");
        assert_eq!(
            tls::leaf(at, Some("a.example.test")).await,
            new.fingerprint,
            "{scope}"
        );
    }
    // Legacy names of the SDK regression scenario.
    server
        .ok(
            "UpdateSSLBinding",
            &[
                ("OldSSLId", &a.id),
                ("NewSSLId", &b.id),
                ("ULBId", &ulb),
                ("VServerId", &vs),
            ],
        )
        .await;
    assert_eq!(tls::leaf(at, None).await, b.fingerprint);

    // The connection opened before the swaps is still usable.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut held = held;
    held.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    held.read_to_string(&mut answer).await.unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 503"),
        "no backends yet: {answer}"
    );
    let still = tls::fingerprint(held.get_ref().1.peer_certificates().unwrap()[0].as_ref());
    assert_eq!(
        still, a.fingerprint,
        "the open connection kept its certificate"
    );

    server
        .ok(
            "UnbindSSL",
            &[("ULBId", &ulb), ("VServerId", &vs), ("SSLId", &b.id)],
        )
        .await;
    assert!(
        tls::handshake(at, None).await.is_err(),
        "unbound: handshakes are refused"
    );
}

#[tokio::test]
async fn alb_selects_certificates_by_sni() {
    let server = support::spawn().await;
    let default = upload(&server, &["www.example.test"]).await;
    let exact = upload(&server, &["api.example.test"]).await;
    let wildcard = upload(&server, &["*.example.test"]).await;
    let newer = upload(&server, &["api.example.test"]).await;
    let other_default = upload(&server, &["new.example.test"]).await;
    let replacement = upload(&server, &["api.example.test", "x.example.test"]).await;

    let alb = server
        .ok(
            "CreateLoadBalancer",
            &[("VPCId", "uvnet-1"), ("SubnetId", "subnet-1")],
        )
        .await["LoadBalancerId"]
        .as_str()
        .unwrap()
        .to_string();
    let listener = server
        .ok(
            "CreateListener",
            &[
                ("LoadBalancerId", &alb),
                ("ListenerProtocol", "HTTPS"),
                ("ListenerPort", "9443"),
                ("Certificates.0", &default.id),
            ],
        )
        .await["ListenerId"]
        .as_str()
        .unwrap()
        .to_string();
    let described = server
        .ok("DescribeLoadBalancers", &[("LoadBalancerIds.0", &alb)])
        .await;
    let at = addr(&described["LoadBalancers"][0]["IPInfos"][0]["IP"], 9443);
    let sni = [
        ("LoadBalancerId", alb.as_str()),
        ("ListenerId", listener.as_str()),
    ];

    assert_eq!(
        tls::leaf(at, Some("api.example.test")).await,
        default.fingerprint,
        "only the default so far"
    );
    // Several certificates may match a name (exact and wildcard alike): the most recently bound
    // wins, as the product documents. Bind the wildcard first so the exact one is newer.
    server
        .ok(
            "AddSSLBinding",
            &[sni[0], sni[1], ("SSLIds.0", &wildcard.id)],
        )
        .await;
    assert_eq!(
        tls::leaf(at, Some("api.example.test")).await,
        wildcard.fingerprint,
        "wildcard"
    );
    server
        .ok("AddSSLBinding", &[sni[0], sni[1], ("SSLIds.0", &exact.id)])
        .await;
    assert_eq!(
        tls::leaf(at, Some("api.example.test")).await,
        exact.fingerprint,
        "exact name"
    );
    assert_eq!(
        tls::leaf(at, Some("shop.example.test")).await,
        wildcard.fingerprint,
        "wildcard"
    );
    assert_eq!(
        tls::leaf(at, Some("a.b.example.test")).await,
        default.fingerprint,
        "a wildcard covers one label"
    );
    assert_eq!(
        tls::leaf(at, None).await,
        default.fingerprint,
        "no SNI: the default"
    );
    assert_eq!(
        tls::leaf(at, Some("unknown.test")).await,
        default.fingerprint,
        "no match: the default"
    );

    server
        .ok("AddSSLBinding", &[sni[0], sni[1], ("SSLIds.0", &newer.id)])
        .await;
    assert_eq!(
        tls::leaf(at, Some("api.example.test")).await,
        newer.fingerprint,
        "most recently bound wins"
    );
    server
        .ok(
            "DeleteSSLBinding",
            &[sni[0], sni[1], ("SSLIds.0", &newer.id)],
        )
        .await;
    assert_eq!(
        tls::leaf(at, Some("api.example.test")).await,
        exact.fingerprint
    );

    server
        .ok(
            "UpdateListenerAttribute",
            &[sni[0], sni[1], ("Certificates.0", &other_default.id)],
        )
        .await;
    assert_eq!(
        tls::leaf(at, None).await,
        other_default.fingerprint,
        "new default"
    );

    server
        .ok(
            "UpdateSSLBinding",
            &[
                ("OldSSLId", &exact.id),
                ("NewSSLId", &replacement.id),
                ("ListenerId", &listener),
            ],
        )
        .await;
    assert_eq!(
        tls::leaf(at, Some("api.example.test")).await,
        replacement.fingerprint,
        "SNI replaced in place"
    );
    assert_eq!(
        tls::leaf(at, Some("x.example.test")).await,
        replacement.fingerprint
    );
    server
        .ok(
            "UpdateSSLBinding",
            &[("OldSSLId", &other_default.id), ("NewSSLId", &default.id)],
        )
        .await;
    assert_eq!(
        tls::leaf(at, None).await,
        default.fingerprint,
        "default replaced project-wide, still default"
    );
}

// Multi-threaded: curl and openssl block a thread while the in-test backend must keep serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_chain_is_served_and_openssl_and_curl_agree() {
    let server = support::spawn().await;
    let root_key = rcgen::KeyPair::generate().unwrap();
    let mut root_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    root_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "certbind test root");
    root_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let root = root_params.self_signed(&root_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["chain.example.test".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &root, &root_key)
        .unwrap();
    let ssl = server
        .ok(
            "CreateSSL",
            &[
                ("SSLName", "chain"),
                ("UserCert", &leaf.pem()),
                ("PrivateKey", &leaf_key.serialize_pem()),
                ("CaCert", &root.pem()),
            ],
        )
        .await["SSLId"]
        .as_str()
        .unwrap()
        .to_string();
    let (ulb, vs, at) = clb_https(&server, 8443).await;
    let backend = support::backend("chain-backend").await;
    server
        .ok(
            "AllocateBackend",
            &[
                ("ULBId", &ulb),
                ("VServerId", &vs),
                ("ResourceIP", &backend.ip().to_string()),
                ("Port", &backend.port().to_string()),
            ],
        )
        .await;
    server
        .ok(
            "BindSSL",
            &[("ULBId", &ulb), ("VServerId", &vs), ("SSLId", &ssl)],
        )
        .await;

    let (chain, _) = tls::handshake(at, Some("chain.example.test"))
        .await
        .unwrap();
    assert_eq!(
        chain,
        vec![
            tls::pem_fingerprint(&leaf.pem()),
            tls::pem_fingerprint(&root.pem())
        ]
    );

    // openssl s_client sees the same leaf.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect {at} -servername chain.example.test </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"
        ))
        .output()
        .expect("openssl");
    let printed = String::from_utf8_lossy(&out.stdout)
        .to_lowercase()
        .replace(':', "");
    assert!(
        printed.contains(&tls::pem_fingerprint(&leaf.pem())),
        "openssl printed {printed}"
    );

    // curl --resolve through the listener to the backend, trusting our root.
    let ca = server.data_dir().join("root.pem");
    std::fs::write(&ca, root.pem()).unwrap();
    let out = std::process::Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&ca)
        .args([
            "--resolve",
            &format!("chain.example.test:{}:{}", at.port(), at.ip()),
        ])
        .arg(format!("https://chain.example.test:{}/hello", at.port()))
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "chain-backend GET /hello"
    );
}

#[tokio::test]
async fn requests_are_proxied_with_weights_and_failures_reported() {
    let server = support::spawn().await;
    let ulb = server.ok("CreateULB", &[("ULBName", "proxy")]).await["ULBId"]
        .as_str()
        .unwrap()
        .to_string();
    let vs = server
        .ok(
            "CreateVServer",
            &[
                ("ULBId", &ulb),
                ("Protocol", "HTTP"),
                ("FrontendPort", "8080"),
            ],
        )
        .await["VServerId"]
        .as_str()
        .unwrap()
        .to_string();
    let described = server.ok("DescribeULB", &[("ULBId", &ulb)]).await;
    let at = addr(&described["DataSet"][0]["PrivateIP"], 8080);

    assert_eq!(support::http_get(at, "/").await.0, 503, "no backends: 503");

    let heavy = support::backend("heavy").await;
    let light = support::backend("light").await;
    for (backend, weight) in [(heavy, "3"), (light, "1")] {
        server
            .ok(
                "AllocateBackend",
                &[
                    ("ULBId", &ulb),
                    ("VServerId", &vs),
                    ("ResourceIP", &backend.ip().to_string()),
                    ("Port", &backend.port().to_string()),
                    ("Weight", weight),
                ],
            )
            .await;
    }
    let mut heavy_count = 0;
    for _ in 0..8 {
        let (status, headers, body) = support::http_get(at, "/p").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(headers["x-seen-x-forwarded-proto"], "http");
        assert!(headers.contains_key("x-seen-x-forwarded-for"));
        assert!(headers.contains_key("x-seen-x-real-ip"));
        if body.starts_with("heavy") {
            heavy_count += 1;
        }
    }
    assert_eq!(heavy_count, 6, "weights 3:1 over 8 requests");

    // Disable both live backends and add a dead one: 502.
    let listed = server
        .ok("DescribeVServer", &[("ULBId", &ulb), ("VServerId", &vs)])
        .await;
    for backend in listed["DataSet"][0]["BackendSet"].as_array().unwrap() {
        let id = backend["BackendId"].as_str().unwrap();
        server
            .ok(
                "UpdateBackendAttribute",
                &[("ULBId", &ulb), ("BackendId", id), ("Enabled", "0")],
            )
            .await;
    }
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    server
        .ok(
            "AllocateBackend",
            &[
                ("ULBId", &ulb),
                ("VServerId", &vs),
                ("ResourceIP", "127.0.0.1"),
                ("Port", &dead.port().to_string()),
            ],
        )
        .await;
    assert_eq!(
        support::http_get(at, "/").await.0,
        502,
        "failed backend: 502"
    );
}

#[tokio::test]
async fn a_restart_rebuilds_every_listener_from_the_store() {
    let server = support::spawn().await;
    let a = upload(&server, &["r.example.test"]).await;
    let (ulb, vs, at) = clb_https(&server, 8443).await;
    server
        .ok(
            "BindSSL",
            &[("ULBId", &ulb), ("VServerId", &vs), ("SSLId", &a.id)],
        )
        .await;
    assert_eq!(tls::leaf(at, None).await, a.fingerprint);
    let server = server.restart().await;
    // The listener is open again before "listening on" is printed.
    assert_eq!(tls::leaf(at, None).await, a.fingerprint);

    let metrics = support::raw_text(&server.base_url, "/metrics").await;
    assert!(metrics.contains("handshake"), "{metrics}");
}

#[tokio::test]
async fn an_api_only_node_answers_but_opens_no_listener() {
    let server = support::spawn_with(&["--dataplane", "off"]).await;
    let a = upload(&server, &["off.example.test"]).await;
    let (ulb, vs, at) = clb_https(&server, 8443).await;
    server
        .ok(
            "BindSSL",
            &[("ULBId", &ulb), ("VServerId", &vs), ("SSLId", &a.id)],
        )
        .await;
    server
        .ok(
            "UpdateSSLBinding",
            &[("OldSSLId", &a.id), ("NewSSLId", &a.id)],
        )
        .await;
    assert!(
        tokio::net::TcpStream::connect(at).await.is_err(),
        "nothing listens on {at}"
    );
}
