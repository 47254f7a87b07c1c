//! Model-based test of the binding rules: random sequences of create, bind, replace, unbind and
//! delete run against the real server and a small reference model; after every step the
//! invariants hold and what `Describe*` shows equals the model.
//!
//! Sequences come from seeded RNGs so a failure names its seed and replays exactly.

use std::collections::{BTreeMap, BTreeSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::support::{self, Server};

/// The reference model: which certificates exist and what each listener has bound.
#[derive(Default, Debug)]
struct Model {
    certs: BTreeSet<String>,
    /// CLB VServer → its certificate.
    vservers: BTreeMap<String, Option<String>>,
    /// ALB listener → (default, SNI certificates in bind order).
    listeners: BTreeMap<String, (String, Vec<String>)>,
    /// Listener → its load balancer.
    lb_of: BTreeMap<String, String>,
}

impl Model {
    fn bound_anywhere(&self, cert: &str) -> bool {
        self.vservers.values().any(|c| c.as_deref() == Some(cert))
            || self
                .listeners
                .values()
                .any(|(d, sni)| d == cert || sni.iter().any(|s| s == cert))
    }

    /// Every (listener, certificate, is_default) binding.
    fn bindings(&self) -> BTreeSet<(String, String, bool)> {
        let mut out = BTreeSet::new();
        for (vs, cert) in &self.vservers {
            if let Some(cert) = cert {
                out.insert((vs.clone(), cert.clone(), true));
            }
        }
        for (l, (default, sni)) in &self.listeners {
            out.insert((l.clone(), default.clone(), true));
            for s in sni {
                out.insert((l.clone(), s.clone(), false));
            }
        }
        out
    }

    /// Applies `UpdateSSLBinding` to the model; `Err(code)` when the server must refuse.
    fn replace(
        &mut self,
        old: &str,
        new: &str,
        lb: Option<&str>,
        listener: Option<&str>,
    ) -> Result<(), i64> {
        if !self.certs.contains(old) || !self.certs.contains(new) {
            return Err(4079);
        }
        if let (Some(lb), Some(l)) = (lb, listener) {
            if self.lb_of.get(l).map(String::as_str) != Some(lb) {
                return Err(4143);
            }
        }
        if old == new {
            return Ok(());
        }
        let in_scope = |l: &str, lb_of: &BTreeMap<String, String>| {
            listener.is_none_or(|x| x == l)
                && lb.is_none_or(|x| lb_of.get(l).map(String::as_str) == Some(x))
        };
        // All or nothing: refuse when `new` is already on a listener that has `old`.
        for (l, (default, sni)) in &self.listeners {
            let has_old = default == old || sni.iter().any(|s| s == old);
            let has_new = default == new || sni.iter().any(|s| s == new);
            if in_scope(l, &self.lb_of) && has_old && has_new {
                return Err(4105);
            }
        }
        let lb_of = self.lb_of.clone();
        for (vs, cert) in self.vservers.iter_mut() {
            if in_scope(vs, &lb_of) && cert.as_deref() == Some(old) {
                *cert = Some(new.to_string());
            }
        }
        for (l, (default, sni)) in self.listeners.iter_mut() {
            if !in_scope(l, &lb_of) {
                continue;
            }
            if default == old {
                *default = new.to_string();
            }
            if let Some(pos) = sni.iter().position(|s| s == old) {
                // A replaced SNI certificate counts as freshly bound.
                sni.remove(pos);
                sni.push(new.to_string());
            }
        }
        Ok(())
    }
}

const CLBS: usize = 2;
const VSERVERS_PER_CLB: usize = 2;
const ALBS: usize = 2;
const LISTENERS_PER_ALB: usize = 2;
const STEPS: usize = 60;

async fn setup(server: &Server, model: &mut Model, pem: &[(String, String)]) -> Vec<String> {
    let mut lbs = Vec::new();
    for c in 0..CLBS {
        let ulb = server
            .ok("CreateULB", &[("ULBName", &format!("clb{c}"))])
            .await["ULBId"]
            .as_str()
            .unwrap()
            .to_string();
        for v in 0..VSERVERS_PER_CLB {
            let port = (8443 + v).to_string();
            let vs = server
                .ok(
                    "CreateVServer",
                    &[
                        ("ULBId", &ulb),
                        ("Protocol", "HTTPS"),
                        ("FrontendPort", &port),
                    ],
                )
                .await["VServerId"]
                .as_str()
                .unwrap()
                .to_string();
            model.vservers.insert(vs.clone(), None);
            model.lb_of.insert(vs, ulb.clone());
        }
        lbs.push(ulb);
    }
    // ALB listeners need a default certificate from the start.
    let first = create_cert(server, model, pem, 0).await;
    for a in 0..ALBS {
        let alb = server
            .ok(
                "CreateLoadBalancer",
                &[
                    ("Name", &format!("alb{a}")),
                    ("VPCId", "uvnet-1"),
                    ("SubnetId", "subnet-1"),
                ],
            )
            .await["LoadBalancerId"]
            .as_str()
            .unwrap()
            .to_string();
        for l in 0..LISTENERS_PER_ALB {
            let port = (9443 + l).to_string();
            let id = server
                .ok(
                    "CreateListener",
                    &[
                        ("LoadBalancerId", &alb),
                        ("ListenerProtocol", "HTTPS"),
                        ("ListenerPort", &port),
                        ("Certificates.0", &first),
                    ],
                )
                .await["ListenerId"]
                .as_str()
                .unwrap()
                .to_string();
            model
                .listeners
                .insert(id.clone(), (first.clone(), Vec::new()));
            model.lb_of.insert(id, alb.clone());
        }
        lbs.push(alb);
    }
    lbs
}

async fn create_cert(
    server: &Server,
    model: &mut Model,
    pem: &[(String, String)],
    i: usize,
) -> String {
    let (cert, key) = &pem[i % pem.len()];
    let id = server
        .ok(
            "CreateSSL",
            &[
                ("SSLName", &format!("c{i}")),
                ("UserCert", cert),
                ("PrivateKey", key),
            ],
        )
        .await["SSLId"]
        .as_str()
        .unwrap()
        .to_string();
    model.certs.insert(id.clone());
    id
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> Option<&'a T> {
    if items.is_empty() {
        None
    } else {
        Some(&items[rng.gen_range(0..items.len())])
    }
}

/// Runs one random step against the model and the server and checks the RetCode matches.
async fn step(
    server: &Server,
    model: &mut Model,
    rng: &mut StdRng,
    pem: &[(String, String)],
    n: usize,
) -> String {
    let certs: Vec<String> = model.certs.iter().cloned().collect();
    // A certificate id that may not exist, to exercise the not-found paths now and then.
    let any_cert = |rng: &mut StdRng| -> String {
        if rng.gen_ratio(1, 12) {
            "ssl-nosuch00".to_string()
        } else {
            pick(rng, &certs).cloned().unwrap_or_default()
        }
    };
    let vservers: Vec<String> = model.vservers.keys().cloned().collect();
    let listeners: Vec<String> = model.listeners.keys().cloned().collect();
    match rng.gen_range(0..8) {
        0 => {
            create_cert(server, model, pem, n).await;
            "CreateSSL".into()
        }
        1 => {
            let vs = pick(rng, &vservers).unwrap().clone();
            let cert = any_cert(rng);
            let expect = if !model.certs.contains(&cert) {
                4079
            } else if model.vservers[&vs].is_some() {
                63072
            } else {
                0
            };
            let lb = model.lb_of[&vs].clone();
            let got = server
                .call(
                    "BindSSL",
                    &[("ULBId", &lb), ("VServerId", &vs), ("SSLId", &cert)],
                )
                .await;
            assert_eq!(got["RetCode"], expect, "BindSSL {vs} {cert}: {got}");
            if expect == 0 {
                model.vservers.insert(vs, Some(cert));
            }
            "BindSSL".into()
        }
        2 => {
            let vs = pick(rng, &vservers).unwrap().clone();
            let cert = model.vservers[&vs].clone().unwrap_or_else(|| any_cert(rng));
            let expect = if !model.certs.contains(&cert) {
                4079
            } else if model.vservers[&vs].as_deref() == Some(cert.as_str()) {
                0
            } else {
                4106
            };
            let lb = model.lb_of[&vs].clone();
            let got = server
                .call(
                    "UnbindSSL",
                    &[("ULBId", &lb), ("VServerId", &vs), ("SSLId", &cert)],
                )
                .await;
            assert_eq!(got["RetCode"], expect, "UnbindSSL {vs} {cert}: {got}");
            if expect == 0 {
                model.vservers.insert(vs, None);
            }
            "UnbindSSL".into()
        }
        3 => {
            let l = pick(rng, &listeners).unwrap().clone();
            let cert = any_cert(rng);
            let (default, sni) = &model.listeners[&l];
            let expect = if !model.certs.contains(&cert) {
                4079
            } else if *default == cert || sni.contains(&cert) {
                4105
            } else if sni.len() >= 25 {
                4207
            } else {
                0
            };
            let lb = model.lb_of[&l].clone();
            let got = server
                .call(
                    "AddSSLBinding",
                    &[
                        ("LoadBalancerId", &lb),
                        ("ListenerId", &l),
                        ("SSLIds.0", &cert),
                    ],
                )
                .await;
            assert_eq!(got["RetCode"], expect, "AddSSLBinding {l} {cert}: {got}");
            if expect == 0 {
                model.listeners.get_mut(&l).unwrap().1.push(cert);
            }
            "AddSSLBinding".into()
        }
        4 => {
            let l = pick(rng, &listeners).unwrap().clone();
            let (default, sni) = model.listeners[&l].clone();
            let cert = if rng.gen_bool(0.7) {
                pick(rng, &sni).cloned().unwrap_or(default.clone())
            } else {
                default.clone()
            };
            let expect = if sni.contains(&cert) { 0 } else { 4106 };
            let lb = model.lb_of[&l].clone();
            let got = server
                .call(
                    "DeleteSSLBinding",
                    &[
                        ("LoadBalancerId", &lb),
                        ("ListenerId", &l),
                        ("SSLIds.0", &cert),
                    ],
                )
                .await;
            assert_eq!(got["RetCode"], expect, "DeleteSSLBinding {l} {cert}: {got}");
            if expect == 0 {
                model
                    .listeners
                    .get_mut(&l)
                    .unwrap()
                    .1
                    .retain(|s| *s != cert);
            }
            "DeleteSSLBinding".into()
        }
        5 | 6 => {
            // UpdateSSLBinding in one of the four scopes, from a bound certificate when possible.
            let bound: Vec<String> = model.bindings().into_iter().map(|(_, c, _)| c).collect();
            let old = if rng.gen_bool(0.8) {
                pick(rng, &bound).cloned().unwrap_or_else(|| any_cert(rng))
            } else {
                any_cert(rng)
            };
            let new = any_cert(rng);
            let all: Vec<String> = model.lb_of.keys().cloned().collect();
            let listener = pick(rng, &all).unwrap().clone();
            let (lb, listener) = match rng.gen_range(0..5) {
                0 => (None, None),
                1 => (Some(model.lb_of[&listener].clone()), None),
                2 => (None, Some(listener)),
                3 => (Some(model.lb_of[&listener].clone()), Some(listener)),
                _ => {
                    // Both given but not matching: must be refused, nothing changes.
                    let other = model
                        .lb_of
                        .values()
                        .find(|lb| **lb != model.lb_of[&listener])
                        .cloned();
                    (other, Some(listener))
                }
            };
            let mut params: Vec<(&str, &str)> = vec![("OldSSLId", &old), ("NewSSLId", &new)];
            if let Some(lb) = &lb {
                params.push(("LoadBalancerId", lb));
            }
            if let Some(l) = &listener {
                params.push(("ListenerId", l));
            }
            let before = model.bindings();
            let expect = match model.replace(&old, &new, lb.as_deref(), listener.as_deref()) {
                Ok(()) => 0,
                Err(code) => code,
            };
            let got = server.call("UpdateSSLBinding", &params).await;
            assert_eq!(got["RetCode"], expect, "UpdateSSLBinding {params:?}: {got}");
            if expect != 0 {
                assert_eq!(model.bindings(), before);
            }
            "UpdateSSLBinding".into()
        }
        _ => {
            let cert = any_cert(rng);
            let expect = if !model.certs.contains(&cert) {
                4079
            } else if model.bound_anywhere(&cert) {
                4108
            } else {
                0
            };
            let got = server.call("DeleteSSL", &[("SSLId", &cert)]).await;
            // Deleting an unknown certificate may also be a retried success; accept 0 there.
            if expect == 4079 {
                assert!(
                    got["RetCode"] == 4079 || got["RetCode"] == 0,
                    "DeleteSSL {cert}: {got}"
                );
            } else {
                assert_eq!(got["RetCode"], expect, "DeleteSSL {cert}: {got}");
            }
            if expect == 0 {
                model.certs.remove(&cert);
            }
            "DeleteSSL".into()
        }
    }
}

/// What the server shows, from both directions: per certificate (`DescribeSSLV2.Relations`) and
/// per listener (`DescribeVServer.SSLSet`, `DescribeListeners.Certificates`).
async fn observed(
    server: &Server,
    model: &Model,
) -> (
    BTreeSet<(String, String, bool)>,
    BTreeSet<(String, String, bool)>,
) {
    let mut by_cert = BTreeSet::new();
    let all = server.ok("DescribeSSLV2", &[("Limit", "1000")]).await;
    let data = all["DataSet"].as_array().unwrap();
    assert_eq!(
        all["TotalCount"].as_u64().unwrap() as usize,
        model.certs.len(),
        "certificate count"
    );
    for cert in data {
        for r in cert["Relations"].as_array().unwrap() {
            by_cert.insert((
                r["ListenerId"].as_str().unwrap().to_string(),
                cert["SSLId"].as_str().unwrap().to_string(),
                r["IsDefault"].as_bool().expect("IsDefault is a JSON bool"),
            ));
        }
    }
    let mut by_listener = BTreeSet::new();
    for (vs, lb) in model
        .lb_of
        .iter()
        .filter(|(l, _)| model.vservers.contains_key(*l))
    {
        let got = server
            .ok("DescribeVServer", &[("ULBId", lb), ("VServerId", vs)])
            .await;
        let set = got["DataSet"][0]["SSLSet"].as_array().unwrap();
        assert!(
            set.len() <= 1,
            "a VServer has at most one certificate: {got}"
        );
        for s in set {
            by_listener.insert((vs.clone(), s["SSLId"].as_str().unwrap().to_string(), true));
        }
    }
    for (l, lb) in model
        .lb_of
        .iter()
        .filter(|(l, _)| model.listeners.contains_key(*l))
    {
        let got = server
            .ok(
                "DescribeListeners",
                &[("LoadBalancerId", lb), ("ListenerId", l)],
            )
            .await;
        let certs = got["Listeners"][0]["Certificates"].as_array().unwrap();
        let defaults = certs
            .iter()
            .filter(|c| c["IsDefault"] == Value::Bool(true))
            .count();
        assert_eq!(
            defaults, 1,
            "an HTTPS ALB listener has exactly one default: {got}"
        );
        for c in certs {
            by_listener.insert((
                l.clone(),
                c["SSLId"].as_str().unwrap().to_string(),
                c["IsDefault"].as_bool().unwrap(),
            ));
        }
    }
    (by_cert, by_listener)
}

async fn run_seed(seed: u64) {
    let server = support::spawn().await;
    let pem: Vec<(String, String)> = (0..4)
        .map(|i| support::cert(&[&format!("m{i}.example.test")]))
        .collect();
    let mut model = Model::default();
    let mut rng = StdRng::seed_from_u64(seed);
    setup(&server, &mut model, &pem).await;
    let mut history = Vec::new();
    for n in 1..=STEPS {
        let what = step(&server, &mut model, &mut rng, &pem, n).await;
        history.push(what);
        let (by_cert, by_listener) = observed(&server, &model).await;
        let expected = model.bindings();
        assert_eq!(
            by_cert, expected,
            "seed {seed}, after {history:?}: DescribeSSLV2 differs from the model"
        );
        assert_eq!(
            by_listener, expected,
            "seed {seed}, after {history:?}: listener view differs from the model"
        );
    }
}

#[tokio::test]
async fn random_binding_sequences_match_the_model() {
    for seed in [1, 2, 3] {
        run_seed(seed).await;
    }
}
