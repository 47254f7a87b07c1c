//! Many clients race conflicting binding operations; afterwards the invariants hold: no binding
//! to a deleted certificate, no VServer with two certificates, no ALB listener with zero or two
//! defaults.

use std::collections::BTreeSet;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::support;

const CLIENTS: usize = 8;
const OPS_PER_CLIENT: usize = 40;

#[tokio::test]
async fn racing_clients_keep_the_invariants() {
    let server = Arc::new(support::spawn().await);
    let mut certs = Vec::new();
    for i in 0..6 {
        let (cert, key) = support::cert(&[&format!("race{i}.example.test")]);
        let id = server
            .ok(
                "CreateSSL",
                &[
                    ("SSLName", &format!("r{i}")),
                    ("UserCert", &cert),
                    ("PrivateKey", &key),
                ],
            )
            .await;
        certs.push(id["SSLId"].as_str().unwrap().to_string());
    }
    let ulb = server.ok("CreateULB", &[("ULBName", "race")]).await["ULBId"]
        .as_str()
        .unwrap()
        .to_string();
    let mut vservers = Vec::new();
    for p in 0..4 {
        let port = (7443 + p).to_string();
        let vs = server
            .ok(
                "CreateVServer",
                &[
                    ("ULBId", &ulb),
                    ("Protocol", "HTTPS"),
                    ("FrontendPort", &port),
                ],
            )
            .await;
        vservers.push(vs["VServerId"].as_str().unwrap().to_string());
    }
    let alb = server
        .ok(
            "CreateLoadBalancer",
            &[("VPCId", "uvnet-1"), ("SubnetId", "subnet-1")],
        )
        .await["LoadBalancerId"]
        .as_str()
        .unwrap()
        .to_string();
    let mut listeners = Vec::new();
    for p in 0..4 {
        let port = (8443 + p).to_string();
        let l = server
            .ok(
                "CreateListener",
                &[
                    ("LoadBalancerId", &alb),
                    ("ListenerProtocol", "HTTPS"),
                    ("ListenerPort", &port),
                    ("Certificates.0", &certs[0]),
                ],
            )
            .await;
        listeners.push(l["ListenerId"].as_str().unwrap().to_string());
    }

    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let (server, certs, vservers, listeners, ulb, alb) = (
            server.clone(),
            certs.clone(),
            vservers.clone(),
            listeners.clone(),
            ulb.clone(),
            alb.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(client as u64);
            for _ in 0..OPS_PER_CLIENT {
                let cert = &certs[rng.gen_range(0..certs.len())];
                let other = &certs[rng.gen_range(0..certs.len())];
                let vs = &vservers[rng.gen_range(0..vservers.len())];
                let l = &listeners[rng.gen_range(0..listeners.len())];
                let answer = match rng.gen_range(0..9) {
                    0 => {
                        server
                            .call(
                                "BindSSL",
                                &[("ULBId", &ulb), ("VServerId", vs), ("SSLId", cert)],
                            )
                            .await
                    }
                    1 => {
                        server
                            .call(
                                "UnbindSSL",
                                &[("ULBId", &ulb), ("VServerId", vs), ("SSLId", cert)],
                            )
                            .await
                    }
                    2 => {
                        server
                            .call(
                                "UpdateSSLBinding",
                                &[("OldSSLId", cert), ("NewSSLId", other)],
                            )
                            .await
                    }
                    3 => {
                        server
                            .call(
                                "UpdateSSLBinding",
                                &[("OldSSLId", cert), ("NewSSLId", other), ("ListenerId", l)],
                            )
                            .await
                    }
                    4 => {
                        server
                            .call(
                                "AddSSLBinding",
                                &[
                                    ("LoadBalancerId", &alb),
                                    ("ListenerId", l),
                                    ("SSLIds.0", cert),
                                ],
                            )
                            .await
                    }
                    5 => {
                        server
                            .call(
                                "DeleteSSLBinding",
                                &[
                                    ("LoadBalancerId", &alb),
                                    ("ListenerId", l),
                                    ("SSLIds.0", cert),
                                ],
                            )
                            .await
                    }
                    6 => {
                        server
                            .call(
                                "UpdateListenerAttribute",
                                &[
                                    ("LoadBalancerId", &alb),
                                    ("ListenerId", l),
                                    ("Certificates.0", cert),
                                ],
                            )
                            .await
                    }
                    7 => server.call("DeleteSSL", &[("SSLId", cert)]).await,
                    _ => {
                        server
                            .call("DeleteVServer", &[("ULBId", &ulb), ("VServerId", vs)])
                            .await
                    }
                };
                // Every answer is a well-formed envelope; conflicts are RetCodes, never 5xx or 4999.
                let code = answer["RetCode"].as_i64().expect("RetCode is an integer");
                assert_ne!(code, 4999, "internal error under contention: {answer}");
            }
        }));
    }
    for task in tasks {
        task.await.expect("client task");
    }

    let all = server.ok("DescribeSSLV2", &[("Limit", "100")]).await;
    let existing: BTreeSet<String> = all["DataSet"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["SSLId"].as_str().unwrap().to_string())
        .collect();
    let described = server.ok("DescribeVServer", &[("ULBId", &ulb)]).await;
    for vs in described["DataSet"].as_array().unwrap() {
        let set = vs["SSLSet"].as_array().unwrap();
        assert!(set.len() <= 1, "VServer with two certificates: {vs}");
        for s in set {
            assert!(
                existing.contains(s["SSLId"].as_str().unwrap()),
                "binding to a deleted certificate: {vs}"
            );
        }
    }
    let described = server
        .ok("DescribeListeners", &[("LoadBalancerId", &alb)])
        .await;
    for l in described["Listeners"].as_array().unwrap() {
        let certs = l["Certificates"].as_array().unwrap();
        let defaults = certs
            .iter()
            .filter(|c| c["IsDefault"] == Value::Bool(true))
            .count();
        assert_eq!(defaults, 1, "ALB listener without exactly one default: {l}");
        let ids: BTreeSet<&str> = certs.iter().map(|c| c["SSLId"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), certs.len(), "a certificate bound twice: {l}");
        for id in ids {
            assert!(
                existing.contains(id),
                "binding to a deleted certificate: {l}"
            );
        }
    }
}
