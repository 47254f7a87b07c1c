//! The store conformance suite: every check is written against `&dyn Store` through a small
//! `Harness`, so each backend (SQLite now, PostgreSQL later) runs the same suite unchanged.
//!
//! A backend adds a `Harness` impl and one `conformance_tests!` invocation (see the bottom).

use super::{
    AddressPool, BackendPatch, BindingChange, BindingScope, ListenerPatch, ListenerView,
    LoadBalancerPatch, NewBackend, NewCertificate, NewListener, NewLoadBalancer, Paging, Resource,
    Store, StoreError, StoreResult,
};
use crate::model::{Attrs, Binding, BindingRole, LbKind, Scope};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::slice::from_ref;
use zeroize::Zeroizing;

/// What a backend provides to the suite.
pub(crate) trait Harness {
    /// Opens the backend's database; every call opens the same database, so a second call after
    /// dropping the first store tests persistence, and two live stores model two processes.
    fn open(&self, pool: AddressPool) -> Box<dyn Store>;
    /// Every byte the backend has persisted, for the "no plaintext secret at rest" check.
    fn persisted_bytes(&self) -> Vec<u8>;
}

/// `Err(pattern)` or a panic naming what came instead (results hold types without `Debug`).
macro_rules! assert_err {
    ($result:expr, $pattern:pat $(if $guard:expr)?) => {
        match $result {
            Err($pattern) $(if $guard)? => {}
            Err(other) => panic!("expected {}, got {other:?}", stringify!($pattern)),
            Ok(_) => panic!("expected {}, got Ok", stringify!($pattern)),
        }
    };
}

const EVERYTHING: Paging = Paging {
    offset: 0,
    limit: 100_000,
};

fn pool() -> AddressPool {
    AddressPool::default()
}

/// One account's project in one region, with helpers that create resources there.
struct Env<'a> {
    store: &'a dyn Store,
    scope: Scope,
}

fn new_certificate(name: &str) -> NewCertificate {
    NewCertificate {
        name: name.to_string(),
        content: format!(
            "-----BEGIN CERTIFICATE-----\nLEAF-{name}\n-----END CERTIFICATE-----\n\
             -----BEGIN PRIVATE KEY-----\nBUNDLEKEY-{name}\n-----END PRIVATE KEY-----\n"
        ),
        key_pem: Zeroizing::new(format!(
            "-----BEGIN PRIVATE KEY-----\nKEYPEM-{name}\n-----END PRIVATE KEY-----\n"
        )),
        chain_pem: format!("-----BEGIN CERTIFICATE-----\nLEAF-{name}\n-----END CERTIFICATE-----\n"),
        hash_value: format!("{:0>32}", name.len()),
        domains: format!("{name}.example"),
        dns_names: vec![format!("{name}.example"), format!("www.{name}.example")],
        not_before: 1_700_000_000,
        not_after: 1_800_000_000,
    }
}

fn new_lb(kind: LbKind, name: &str) -> NewLoadBalancer {
    NewLoadBalancer {
        kind,
        name: name.to_string(),
        tag: "Default".to_string(),
        remark: String::new(),
        attrs: Attrs::new(),
    }
}

fn new_listener(protocol: &str, port: u16, default_certificate: Option<&str>) -> NewListener {
    NewListener {
        name: format!("{protocol}-{port}"),
        protocol: protocol.to_string(),
        port,
        attrs: Attrs::new(),
        default_certificate: default_certificate.map(str::to_string),
    }
}

impl<'a> Env<'a> {
    /// A fresh account (named `account`) and its default project in `region`.
    fn account(store: &'a dyn Store, account: &str, region: &str) -> Env<'a> {
        let credentials = store.create_account(account).unwrap();
        let key = store.lookup_key(&credentials.public_key).unwrap().unwrap();
        Env {
            store,
            scope: Scope {
                account_id: key.account_id,
                project_id: credentials.project_id,
                region: region.to_string(),
            },
        }
    }

    /// The same account in another project or region.
    fn elsewhere(&self, project_id: &str, region: &str) -> Env<'a> {
        Env {
            store: self.store,
            scope: Scope {
                account_id: self.scope.account_id,
                project_id: project_id.to_string(),
                region: region.to_string(),
            },
        }
    }

    fn cert(&self, name: &str) -> String {
        self.store
            .create_certificate(&self.scope, new_certificate(name))
            .unwrap()
            .id
    }

    fn lb(&self, kind: LbKind) -> String {
        self.store
            .create_load_balancer(&self.scope, new_lb(kind, "lb"))
            .unwrap()
            .id
    }

    fn listener(
        &self,
        kind: LbKind,
        lb: &str,
        protocol: &str,
        port: u16,
        default: Option<&str>,
    ) -> String {
        self.store
            .create_listener(&self.scope, kind, lb, new_listener(protocol, port, default))
            .unwrap()
            .id
    }

    /// A CLB with one HTTPS VServer.
    fn vserver(&self) -> (String, String) {
        let lb = self.lb(LbKind::Clb);
        let vserver = self.listener(LbKind::Clb, &lb, "HTTPS", 443, None);
        (lb, vserver)
    }

    /// An ALB with one HTTPS listener whose default certificate is `default`.
    fn alb_listener(&self, default: &str) -> (String, String) {
        let lb = self.lb(LbKind::Alb);
        let listener = self.listener(LbKind::Alb, &lb, "HTTPS", 443, Some(default));
        (lb, listener)
    }

    fn view(&self, kind: LbKind, listener: &str) -> ListenerView {
        let mut page = self
            .store
            .list_listeners(&self.scope, kind, None, Some(listener), EVERYTHING)
            .unwrap();
        assert_eq!(page.total, 1);
        page.items.pop().unwrap()
    }

    /// A listener's certificates as (ssl id, role), default/CLB first then SNI in bind order.
    fn certs_on(&self, kind: LbKind, listener: &str) -> Vec<(String, BindingRole)> {
        self.view(kind, listener)
            .bindings
            .into_iter()
            .map(|b| (b.ssl_id, b.role))
            .collect()
    }

    fn bindings_of(&self, ssl_id: &str) -> Vec<Binding> {
        let mut page = self
            .store
            .describe_certificates(&self.scope, Some(ssl_id), EVERYTHING)
            .unwrap();
        assert_eq!(page.total, 1, "certificate {ssl_id} should exist");
        page.items.pop().unwrap().bindings
    }

    fn cert_exists(&self, ssl_id: &str) -> bool {
        self.store
            .describe_certificates(&self.scope, Some(ssl_id), EVERYTHING)
            .unwrap()
            .total
            == 1
    }

    fn replace(
        &self,
        old: &str,
        new: &str,
        lb: Option<&str>,
        listener: Option<&str>,
    ) -> StoreResult<BindingChange> {
        self.store.replace_certificate(
            &self.scope,
            old,
            new,
            &BindingScope {
                lb_id: lb.map(str::to_string),
                listener_id: listener.map(str::to_string),
            },
        )
    }
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

// ---- accounts, projects, keys ----

pub(crate) fn accounts_projects_and_keys(h: &dyn Harness) {
    let store = h.open(pool());
    let main = store.create_account("alice").unwrap();
    assert_eq!(main.account_name, "alice");
    assert!(main.project_id.starts_with("org-"));
    assert!(main.public_key.len() >= 32);
    assert!(main
        .public_key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(main.private_key.len(), 40);
    assert!(main.private_key.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_err!(store.create_account("alice"), StoreError::AccountExists(name) if name == "alice");
    assert!(store.account_exists("alice").unwrap());
    assert!(!store.account_exists("bob").unwrap());

    let key = store.lookup_key(&main.public_key).unwrap().unwrap();
    assert_eq!(key.account_name, "alice");
    assert_eq!(key.private_key.as_str(), main.private_key);
    assert!(key.is_main);
    assert_eq!(key.default_project, main.project_id);
    assert_eq!(key.projects, vec![main.project_id.clone()]);
    assert!(store.lookup_key("no-such-key").unwrap().is_none());

    let second = store.create_project("alice", "staging").unwrap();
    assert!(second.starts_with("org-") && second != main.project_id);
    assert_err!(
        store.create_project("nobody", "x"),
        StoreError::NotFound {
            kind: Resource::Account,
            ..
        }
    );
    let key = store.lookup_key(&main.public_key).unwrap().unwrap();
    assert_eq!(key.projects, vec![main.project_id.clone(), second.clone()]);

    // Sub keys see only their projects and default to one they may use.
    let sub = store.create_sub_key("alice", from_ref(&second)).unwrap();
    assert_eq!(sub.project_id, second);
    let sub_key = store.lookup_key(&sub.public_key).unwrap().unwrap();
    assert!(!sub_key.is_main);
    assert_eq!(sub_key.account_id, key.account_id);
    assert_eq!(sub_key.projects, vec![second.clone()]);
    assert_eq!(sub_key.default_project, second);
    assert_eq!(sub_key.private_key.as_str(), sub.private_key);

    let plain_sub = store.create_sub_key("alice", &[]).unwrap();
    let plain_key = store.lookup_key(&plain_sub.public_key).unwrap().unwrap();
    assert_eq!(plain_key.projects, vec![main.project_id.clone()]);

    let both = store
        .create_sub_key(
            "alice",
            &[second.clone(), main.project_id.clone(), second.clone()],
        )
        .unwrap();
    let both_key = store.lookup_key(&both.public_key).unwrap().unwrap();
    assert_eq!(
        both_key.projects,
        vec![main.project_id.clone(), second.clone()]
    );
    assert_eq!(both_key.default_project, main.project_id);

    // Another account's project cannot be granted; nothing is created by the failed call.
    let bob = store.create_account("bob").unwrap();
    assert_err!(
        store.create_sub_key("alice", &[second.clone(), bob.project_id.clone()]),
        StoreError::NotFound { kind: Resource::Project, id } if id == bob.project_id
    );
    assert_err!(
        store.create_sub_key("nobody", &[]),
        StoreError::NotFound {
            kind: Resource::Account,
            ..
        }
    );

    let again = store.create_main_key("alice").unwrap();
    assert_ne!(again.public_key, main.public_key);
    assert_eq!(again.project_id, main.project_id);
    let again_key = store.lookup_key(&again.public_key).unwrap().unwrap();
    assert!(again_key.is_main);
    assert_eq!(again_key.private_key.as_str(), again.private_key);
    assert_err!(
        store.create_main_key("nobody"),
        StoreError::NotFound {
            kind: Resource::Account,
            ..
        }
    );
    // The old key keeps working.
    assert!(store.lookup_key(&main.public_key).unwrap().is_some());
}

// ---- isolation ----

pub(crate) fn other_accounts_projects_and_regions_see_nothing(h: &dyn Harness) {
    let store = h.open(pool());
    let alice = Env::account(&*store, "alice", "sg");
    let bob = Env::account(&*store, "bob", "sg");
    let alice_staging_id = store.create_project("alice", "staging").unwrap();
    let alice_staging = alice.elsewhere(&alice_staging_id, "sg");
    let alice_hk = alice.elsewhere(&alice.scope.project_id, "hk");
    // Alice's account id with Bob's project: a forged scope must not reach Bob's resources.
    let forged = alice.elsewhere(&bob.scope.project_id, "sg");

    let cert = alice.cert("site");
    let (clb, vserver) = alice.vserver();
    alice
        .store
        .bind_clb(&alice.scope, &clb, &vserver, &cert)
        .unwrap();
    let alb = alice.lb(LbKind::Alb);
    let als = alice.listener(LbKind::Alb, &alb, "HTTPS", 443, Some(&cert));
    let bob_cert = bob.cert("bob");

    for outsider in [&bob, &alice_staging, &alice_hk] {
        let page = store
            .describe_certificates(&outsider.scope, Some(&cert), EVERYTHING)
            .unwrap();
        assert_eq!((page.total, page.items.len()), (0, 0));
        assert!(store
            .describe_certificates(&outsider.scope, None, EVERYTHING)
            .unwrap()
            .items
            .iter()
            .all(|view| view.certificate.id != cert));
        assert_err!(
            store.rename_certificate(&outsider.scope, &cert, "x"),
            StoreError::NotFound {
                kind: Resource::Certificate,
                ..
            }
        );
        assert_err!(
            store.delete_certificate(&outsider.scope, &cert),
            StoreError::NotFound {
                kind: Resource::Certificate,
                ..
            }
        );
        let lbs = store
            .list_load_balancers(&outsider.scope, LbKind::Clb, from_ref(&clb), EVERYTHING)
            .unwrap();
        assert_eq!((lbs.total, lbs.items.len()), (0, 0));
        assert_err!(
            store.update_load_balancer(
                &outsider.scope,
                LbKind::Clb,
                &clb,
                LoadBalancerPatch::default()
            ),
            StoreError::NotFound {
                kind: Resource::LoadBalancer,
                ..
            }
        );
        assert_err!(
            store.delete_load_balancer(&outsider.scope, LbKind::Alb, &alb),
            StoreError::NotFound {
                kind: Resource::LoadBalancer,
                ..
            }
        );
        assert_err!(
            store.list_listeners(
                &outsider.scope,
                LbKind::Clb,
                None,
                Some(&vserver),
                EVERYTHING
            ),
            StoreError::NotFound {
                kind: Resource::Listener,
                ..
            }
        );
        assert_err!(
            store.list_listeners(&outsider.scope, LbKind::Alb, Some(&alb), None, EVERYTHING),
            StoreError::NotFound {
                kind: Resource::LoadBalancer,
                ..
            }
        );
        assert_err!(
            store.create_listener(
                &outsider.scope,
                LbKind::Clb,
                &clb,
                new_listener("HTTP", 80, None)
            ),
            StoreError::NotFound {
                kind: Resource::LoadBalancer,
                ..
            }
        );
        assert_err!(
            store.unbind_clb(&outsider.scope, &clb, &vserver, &cert),
            StoreError::NotFound {
                kind: Resource::LoadBalancer,
                ..
            }
        );
        assert_err!(
            store.add_sni(&outsider.scope, &alb, &als, &[], 25),
            StoreError::NotFound {
                kind: Resource::LoadBalancer,
                ..
            }
        );
        assert_err!(
            outsider.replace(&cert, &cert, None, None),
            StoreError::NotFound {
                kind: Resource::Certificate,
                ..
            }
        );
    }
    // Resources of the outsider cannot be pulled into Alice's scope either.
    let (clb2, vserver2) = alice.vserver();
    assert_err!(
        store.bind_clb(&alice.scope, &clb2, &vserver2, &bob_cert),
        StoreError::NotFound { kind: Resource::Certificate, id } if id == bob_cert
    );
    assert_err!(
        alice.replace(&cert, &bob_cert, None, None),
        StoreError::NotFound { kind: Resource::Certificate, id } if id == bob_cert
    );
    assert_err!(
        store.create_certificate(
            &alice.elsewhere("org-doesnotexist", "sg").scope,
            new_certificate("x")
        ),
        StoreError::NotFound {
            kind: Resource::Project,
            ..
        }
    );
    assert_eq!(
        store
            .describe_certificates(&forged.scope, Some(&bob_cert), EVERYTHING)
            .unwrap()
            .total,
        0
    );
    assert_err!(
        store.create_load_balancer(&forged.scope, new_lb(LbKind::Clb, "x")),
        StoreError::NotFound {
            kind: Resource::Project,
            ..
        }
    );
    assert_err!(
        store.create_certificate(&forged.scope, new_certificate("x")),
        StoreError::NotFound {
            kind: Resource::Project,
            ..
        }
    );
    assert_eq!(
        store
            .describe_certificates(&forged.scope, None, EVERYTHING)
            .unwrap()
            .total,
        0
    );
    assert_eq!(
        store
            .describe_certificates(&bob.scope, None, EVERYTHING)
            .unwrap()
            .total,
        1
    );
    // Nothing above changed Alice's view.
    assert_eq!(alice.bindings_of(&cert).len(), 2);
}

pub(crate) fn kind_mismatch_is_absent(h: &dyn Harness) {
    let store = h.open(pool());
    let env = Env::account(&*store, "alice", "sg");
    let cert = env.cert("site");
    let (clb, vserver) = env.vserver();
    let (alb, als) = env.alb_listener(&cert);
    let s = &env.scope;

    assert_err!(
        store.update_load_balancer(s, LbKind::Alb, &clb, LoadBalancerPatch::default()),
        StoreError::NotFound {
            kind: Resource::LoadBalancer,
            ..
        }
    );
    assert_err!(
        store.delete_load_balancer(s, LbKind::Clb, &alb),
        StoreError::NotFound {
            kind: Resource::LoadBalancer,
            ..
        }
    );
    assert_eq!(
        store
            .list_load_balancers(s, LbKind::Alb, from_ref(&clb), EVERYTHING)
            .unwrap()
            .total,
        0
    );
    assert_err!(
        store.list_listeners(s, LbKind::Alb, None, Some(&vserver), EVERYTHING),
        StoreError::NotFound {
            kind: Resource::Listener,
            ..
        }
    );
    assert_err!(
        store.create_listener(s, LbKind::Alb, &clb, new_listener("HTTP", 80, None)),
        StoreError::NotFound {
            kind: Resource::LoadBalancer,
            ..
        }
    );
    assert_err!(
        store.bind_clb(s, &alb, &als, &cert),
        StoreError::NotFound {
            kind: Resource::LoadBalancer,
            ..
        }
    );
    assert_err!(
        store.add_sni(s, &clb, &vserver, from_ref(&cert), 25),
        StoreError::NotFound {
            kind: Resource::LoadBalancer,
            ..
        }
    );
    assert_err!(
        store.delete_sni(s, &clb, &vserver, from_ref(&cert)),
        StoreError::NotFound {
            kind: Resource::LoadBalancer,
            ..
        }
    );
    assert_err!(
        store.delete_listener(s, LbKind::Alb, &clb, &vserver),
        StoreError::NotFound {
            kind: Resource::LoadBalancer,
            ..
        }
    );
    // Ids are looked up, never parsed: an id that merely looks right is still absent.
    assert_err!(
        store.bind_clb(s, "ulb-00000000", &vserver, &cert),
        StoreError::NotFound {
            kind: Resource::LoadBalancer,
            ..
        }
    );
}

// ---- certificates ----

pub(crate) fn certificate_crud_and_paging(h: &dyn Harness) {
    let store = h.open(pool());
    let env = Env::account(&*store, "alice", "sg");
    let s = &env.scope;
    let created: Vec<_> = (0..5)
        .map(|i| {
            store
                .create_certificate(s, new_certificate(&format!("c{i}")))
                .unwrap()
        })
        .collect();
    let ids: Vec<String> = created.iter().map(|c| c.id.clone()).collect();
    assert!(ids.iter().all(|id| id.starts_with("ssl-")));
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 5);
    // Another region's certificates do not count.
    env.elsewhere(&s.project_id, "hk").cert("other-region");

    let page = store
        .describe_certificates(
            s,
            None,
            Paging {
                offset: 0,
                limit: 2,
            },
        )
        .unwrap();
    assert_eq!(page.total, 5);
    assert_eq!(
        page.items
            .iter()
            .map(|v| v.certificate.id.clone())
            .collect::<Vec<_>>(),
        ids[..2]
    );
    let page = store
        .describe_certificates(
            s,
            None,
            Paging {
                offset: 2,
                limit: 2,
            },
        )
        .unwrap();
    assert_eq!(
        page.items
            .iter()
            .map(|v| v.certificate.id.clone())
            .collect::<Vec<_>>(),
        ids[2..4]
    );
    let page = store
        .describe_certificates(
            s,
            None,
            Paging {
                offset: 4,
                limit: 100,
            },
        )
        .unwrap();
    assert_eq!((page.total, page.items.len()), (5, 1));
    let page = store
        .describe_certificates(
            s,
            None,
            Paging {
                offset: 10,
                limit: 100,
            },
        )
        .unwrap();
    assert_eq!((page.total, page.items.len()), (5, 0));

    let one = store
        .describe_certificates(s, Some(&ids[1]), EVERYTHING)
        .unwrap();
    assert_eq!(one.total, 1);
    let view = &one.items[0];
    let expected = new_certificate("c1");
    assert_eq!(view.certificate.name, "c1");
    assert_eq!(view.content.as_str(), expected.content);
    assert_eq!(view.certificate.domains, expected.domains);
    assert_eq!(view.certificate.dns_names, expected.dns_names);
    assert_eq!(view.certificate.hash_value, expected.hash_value);
    assert_eq!(
        (view.certificate.not_before, view.certificate.not_after),
        (expected.not_before, expected.not_after)
    );
    assert_eq!(view.certificate.created_at, created[1].created_at);
    assert!(view.bindings.is_empty());
    let unknown = store
        .describe_certificates(s, Some("ssl-unknown1"), EVERYTHING)
        .unwrap();
    assert_eq!((unknown.total, unknown.items.len()), (0, 0));

    store.rename_certificate(s, &ids[1], "renamed").unwrap();
    let renamed = store
        .describe_certificates(s, Some(&ids[1]), EVERYTHING)
        .unwrap();
    assert_eq!(renamed.items[0].certificate.name, "renamed");
    assert_err!(
        store.rename_certificate(s, "ssl-unknown1", "x"),
        StoreError::NotFound {
            kind: Resource::Certificate,
            ..
        }
    );

    let material = store.certificate_material(&ids[2]).unwrap();
    assert_eq!(
        material.key_pem.as_str(),
        new_certificate("c2").key_pem.as_str()
    );
    assert_eq!(material.chain_pem, new_certificate("c2").chain_pem);
    assert_err!(
        store.certificate_material("ssl-unknown1"),
        StoreError::NotFound {
            kind: Resource::Certificate,
            ..
        }
    );

    store.delete_certificate(s, &ids[0]).unwrap();
    assert!(!env.cert_exists(&ids[0]));
    assert_err!(
        store.delete_certificate(s, &ids[0]),
        StoreError::NotFound {
            kind: Resource::Certificate,
            ..
        }
    );
    let page = store.describe_certificates(s, None, EVERYTHING).unwrap();
    assert_eq!(page.total, 4);
    assert_eq!(page.items[0].certificate.id, ids[1]);
}

// ---- CLB bindings ----

pub(crate) fn clb_binding_rules(h: &dyn Harness) {
    let store = h.open(pool());
    let env = Env::account(&*store, "alice", "sg");
    let s = &env.scope;
    let cert = env.cert("site");
    let other = env.cert("other");
    let (clb, vserver) = env.vserver();
    let http = env.listener(LbKind::Clb, &clb, "HTTP", 80, None);
    let (clb2, vserver2) = env.vserver();
    let (_alb, als) = env.alb_listener(&other);

    assert_err!(
        store.bind_clb(s, &clb, &http, &cert),
        StoreError::NotHttps(id) if id == http
    );
    assert_err!(
        store.bind_clb(s, &clb, &vserver2, &cert),
        StoreError::ListenerNotOnLb { listener_id, lb_id } if listener_id == vserver2 && lb_id == clb
    );
    assert_err!(
        store.bind_clb(s, &clb, &als, &cert),
        StoreError::ListenerNotOnLb { .. }
    );
    assert_err!(
        store.bind_clb(s, &clb, "vserver-nothere1", &cert),
        StoreError::NotFound { kind: Resource::Listener, id } if id == "vserver-nothere1"
    );
    assert_err!(
        store.bind_clb(s, &clb, &vserver, "ssl-nothere1"),
        StoreError::NotFound { kind: Resource::Certificate, id } if id == "ssl-nothere1"
    );
    assert_err!(
        store.bind_clb(s, "ulb-nothere1", &vserver, &cert),
        StoreError::NotFound { kind: Resource::LoadBalancer, id } if id == "ulb-nothere1"
    );

    store.bind_clb(s, &clb, &vserver, &cert).unwrap();
    assert_eq!(
        env.certs_on(LbKind::Clb, &vserver),
        vec![(cert.clone(), BindingRole::Clb)]
    );
    let bindings = env.bindings_of(&cert);
    assert_eq!(bindings.len(), 1);
    let binding = &bindings[0];
    assert_eq!(
        (
            binding.lb_id.as_str(),
            binding.listener_id.as_str(),
            binding.lb_kind,
            binding.role
        ),
        (
            clb.as_str(),
            vserver.as_str(),
            LbKind::Clb,
            BindingRole::Clb
        )
    );
    assert_eq!(binding.lb_name, "lb");
    assert_eq!(binding.listener_name, "HTTPS-443");

    // A VServer holds one certificate, even a second bind of the same one is refused.
    assert_err!(
        store.bind_clb(s, &clb, &vserver, &cert),
        StoreError::VServerAlreadyBound { existing } if existing == cert
    );
    assert_err!(
        store.bind_clb(s, &clb, &vserver, &other),
        StoreError::VServerAlreadyBound { existing } if existing == cert
    );
    // The same certificate may sit on many VServers.
    store.bind_clb(s, &clb2, &vserver2, &cert).unwrap();
    assert_eq!(env.bindings_of(&cert).len(), 2);

    assert_err!(
        store.unbind_clb(s, &clb, &vserver, &other),
        StoreError::NotBound { ssl_id, listener_id } if ssl_id == other && listener_id == vserver
    );
    assert_err!(
        store.unbind_clb(s, &clb, &vserver2, &cert),
        StoreError::ListenerNotOnLb { .. }
    );
    store.unbind_clb(s, &clb, &vserver, &cert).unwrap();
    assert!(env.certs_on(LbKind::Clb, &vserver).is_empty());
    assert_err!(
        store.unbind_clb(s, &clb, &vserver, &cert),
        StoreError::NotBound { .. }
    );
    store.bind_clb(s, &clb, &vserver, &other).unwrap();
    assert_eq!(
        env.certs_on(LbKind::Clb, &vserver),
        vec![(other.clone(), BindingRole::Clb)]
    );
}

// ---- ALB bindings ----

pub(crate) fn alb_default_and_sni_rules(h: &dyn Harness) {
    let store = h.open(pool());
    let env = Env::account(&*store, "alice", "sg");
    let s = &env.scope;
    let [c1, c2, c3, c4, c5] = ["c1", "c2", "c3", "c4", "c5"].map(|name| env.cert(name));
    let alb = env.lb(LbKind::Alb);

    // A default certificate needs an HTTPS listener; the failed create leaves nothing behind.
    assert_err!(
        store.create_listener(s, LbKind::Alb, &alb, new_listener("HTTP", 80, Some(&c1))),
        StoreError::NotHttps(_)
    );
    assert_err!(
        store.create_listener(
            s,
            LbKind::Alb,
            &alb,
            new_listener("HTTPS", 443, Some("ssl-nothere1"))
        ),
        StoreError::NotFound {
            kind: Resource::Certificate,
            ..
        }
    );
    assert_eq!(
        store
            .list_listeners(s, LbKind::Alb, Some(&alb), None, EVERYTHING)
            .unwrap()
            .total,
        0
    );

    let als = env.listener(LbKind::Alb, &alb, "https", 443, Some(&c1));
    let view = env.view(LbKind::Alb, &als);
    assert_eq!(view.listener.protocol, "HTTPS");
    assert_eq!(view.listener.lb_id, alb);
    assert_eq!(view.bindings.len(), 1);
    assert_eq!(
        (view.bindings[0].ssl_id.as_str(), view.bindings[0].role),
        (c1.as_str(), BindingRole::AlbDefault)
    );
    let http = env.listener(LbKind::Alb, &alb, "HTTP", 80, None);

    store
        .add_sni(s, &alb, &als, &[c2.clone(), c3.clone()], 3)
        .unwrap();
    assert_eq!(
        env.certs_on(LbKind::Alb, &als),
        vec![
            (c1.clone(), BindingRole::AlbDefault),
            (c2.clone(), BindingRole::AlbSni),
            (c3.clone(), BindingRole::AlbSni),
        ]
    );
    let seqs: Vec<i64> = env
        .view(LbKind::Alb, &als)
        .bindings
        .iter()
        .map(|b| b.seq)
        .collect();
    assert!(
        seqs[0] < seqs[1] && seqs[1] < seqs[2],
        "bind order is seq order: {seqs:?}"
    );

    assert_err!(
        store.add_sni(s, &alb, &als, &[c4.clone(), c4.clone()], 25),
        StoreError::AlreadyBound { ssl_id, listener_id } if ssl_id == c4 && listener_id == als
    );
    assert_err!(
        store.add_sni(s, &alb, &als, &[c4.clone(), c1.clone()], 25),
        StoreError::AlreadyBound { ssl_id, .. } if ssl_id == c1
    );
    assert_err!(
        store.add_sni(s, &alb, &als, from_ref(&c2), 25),
        StoreError::AlreadyBound { ssl_id, .. } if ssl_id == c2
    );
    assert_err!(
        store.add_sni(s, &alb, &als, &[c4.clone(), c5.clone()], 3),
        StoreError::Quota {
            what: "extension certificates per listener",
            limit: 3
        }
    );
    assert_err!(
        store.add_sni(s, &alb, &als, &[c4.clone(), "ssl-nothere1".to_string()], 25),
        StoreError::NotFound { kind: Resource::Certificate, id } if id == "ssl-nothere1"
    );
    assert_err!(
        store.add_sni(s, &alb, &http, from_ref(&c4), 25),
        StoreError::NotHttps(id) if id == http
    );
    // None of the failed calls bound c4.
    assert!(env.bindings_of(&c4).is_empty());
    store.add_sni(s, &alb, &als, from_ref(&c4), 3).unwrap();
    assert_err!(
        store.add_sni(s, &alb, &als, from_ref(&c5), 3),
        StoreError::Quota { limit: 3, .. }
    );
    store.add_sni(s, &alb, &als, &[], 3).unwrap();

    assert_err!(
        store.delete_sni(s, &alb, &als, from_ref(&c1)),
        StoreError::DefaultCertificate(id) if id == c1
    );
    assert_err!(
        store.delete_sni(s, &alb, &als, &[c2.clone(), c5.clone()]),
        StoreError::NotBound { ssl_id, listener_id } if ssl_id == c5 && listener_id == als
    );
    assert_eq!(
        env.certs_on(LbKind::Alb, &als).len(),
        4,
        "a failed delete removes nothing"
    );
    store
        .delete_sni(s, &alb, &als, &[c2.clone(), c2.clone()])
        .unwrap();
    assert_eq!(
        env.certs_on(LbKind::Alb, &als),
        vec![
            (c1.clone(), BindingRole::AlbDefault),
            (c3.clone(), BindingRole::AlbSni),
            (c4.clone(), BindingRole::AlbSni),
        ]
    );

    // Replacing the default keeps it the default and leaves SNI alone.
    let patch = |ssl: &str| ListenerPatch {
        default_certificate: Some(ssl.to_string()),
        ..ListenerPatch::default()
    };
    store
        .update_listener(s, LbKind::Alb, &alb, &als, patch(&c5))
        .unwrap();
    assert_eq!(
        env.certs_on(LbKind::Alb, &als),
        vec![
            (c5.clone(), BindingRole::AlbDefault),
            (c3.clone(), BindingRole::AlbSni),
            (c4.clone(), BindingRole::AlbSni),
        ]
    );
    assert!(env.bindings_of(&c1).is_empty());
    store
        .update_listener(s, LbKind::Alb, &alb, &als, patch(&c5))
        .unwrap();
    // An SNI certificate cannot also become the default (documented choice: refuse).
    assert_err!(
        store.update_listener(s, LbKind::Alb, &alb, &als, patch(&c3)),
        StoreError::AlreadyBound { ssl_id, .. } if ssl_id == c3
    );
    assert_err!(
        store.update_listener(s, LbKind::Alb, &alb, &http, patch(&c1)),
        StoreError::NotHttps(_)
    );
    assert_err!(
        store.update_listener(s, LbKind::Alb, &alb, &als, patch("ssl-nothere1")),
        StoreError::NotFound {
            kind: Resource::Certificate,
            ..
        }
    );
    assert_eq!(
        env.certs_on(LbKind::Alb, &als)[0],
        (c5.clone(), BindingRole::AlbDefault)
    );
}

// ---- UpdateSSLBinding ----

/// CLB `ulb` with VServers v1 (old), v2 (old), v3 (keep); ALB `a1` with x1 (default old, SNI s)
/// and x2 (default d, SNI old); ALB `a2` with y1 (default old).
struct ReplaceWorld {
    old: String,
    new: String,
    keep: String,
    sni: String,
    default: String,
    ulb: String,
    v1: String,
    v2: String,
    v3: String,
    a1: String,
    x1: String,
    x2: String,
    a2: String,
    y1: String,
}

fn replace_world(env: &Env<'_>) -> ReplaceWorld {
    let s = &env.scope;
    let store = env.store;
    let [old, new, keep, sni, default] =
        ["old", "new", "keep", "sni", "default"].map(|n| env.cert(n));
    let ulb = env.lb(LbKind::Clb);
    let v1 = env.listener(LbKind::Clb, &ulb, "HTTPS", 443, None);
    let v2 = env.listener(LbKind::Clb, &ulb, "HTTPS", 8443, None);
    let v3 = env.listener(LbKind::Clb, &ulb, "HTTPS", 9443, None);
    store.bind_clb(s, &ulb, &v1, &old).unwrap();
    store.bind_clb(s, &ulb, &v2, &old).unwrap();
    store.bind_clb(s, &ulb, &v3, &keep).unwrap();
    let a1 = env.lb(LbKind::Alb);
    let x1 = env.listener(LbKind::Alb, &a1, "HTTPS", 443, Some(&old));
    store.add_sni(s, &a1, &x1, from_ref(&sni), 25).unwrap();
    let x2 = env.listener(LbKind::Alb, &a1, "HTTPS", 8443, Some(&default));
    store.add_sni(s, &a1, &x2, from_ref(&old), 25).unwrap();
    let a2 = env.lb(LbKind::Alb);
    let y1 = env.listener(LbKind::Alb, &a2, "HTTPS", 443, Some(&old));
    ReplaceWorld {
        old,
        new,
        keep,
        sni,
        default,
        ulb,
        v1,
        v2,
        v3,
        a1,
        x1,
        x2,
        a2,
        y1,
    }
}

fn max_seq(env: &Env<'_>) -> i64 {
    env.store
        .dataplane_listeners(None)
        .unwrap()
        .iter()
        .flat_map(|v| v.bindings.iter().map(|b| b.seq))
        .max()
        .unwrap_or(0)
}

pub(crate) fn replace_certificate_in_every_scope(h: &dyn Harness) {
    let store = h.open(pool());
    let env = Env::account(&*store, "alice", "sg");
    let w = replace_world(&env);
    assert_eq!(env.bindings_of(&w.old).len(), 5);

    // Listener only (a CLB VServer, found by lookup).
    let before = max_seq(&env);
    let change = env.replace(&w.old, &w.new, None, Some(&w.v1)).unwrap();
    assert_eq!(
        (change.replaced, change.listener_ids.clone()),
        (1, vec![w.v1.clone()])
    );
    assert_eq!(
        env.certs_on(LbKind::Clb, &w.v1),
        vec![(w.new.clone(), BindingRole::Clb)]
    );
    assert!(
        env.view(LbKind::Clb, &w.v1).bindings[0].seq > before,
        "a replaced binding gets a fresh seq"
    );

    // Load balancer only: both ALB listeners, each keeping its role.
    let change = env.replace(&w.old, &w.new, Some(&w.a1), None).unwrap();
    assert_eq!(change.replaced, 2);
    assert_eq!(
        sorted(change.listener_ids),
        sorted(vec![w.x1.clone(), w.x2.clone()])
    );
    assert_eq!(
        env.certs_on(LbKind::Alb, &w.x1),
        vec![
            (w.new.clone(), BindingRole::AlbDefault),
            (w.sni.clone(), BindingRole::AlbSni)
        ]
    );
    assert_eq!(
        env.certs_on(LbKind::Alb, &w.x2),
        vec![
            (w.default.clone(), BindingRole::AlbDefault),
            (w.new.clone(), BindingRole::AlbSni)
        ]
    );

    // Both: the listener on that load balancer.
    let change = env
        .replace(&w.old, &w.new, Some(&w.a2), Some(&w.y1))
        .unwrap();
    assert_eq!(
        (change.replaced, change.listener_ids),
        (1, vec![w.y1.clone()])
    );
    assert_eq!(
        env.certs_on(LbKind::Alb, &w.y1),
        vec![(w.new.clone(), BindingRole::AlbDefault)]
    );

    // Neither: whatever is left in the project and region.
    let change = env.replace(&w.old, &w.new, None, None).unwrap();
    assert_eq!(
        (change.replaced, change.listener_ids),
        (1, vec![w.v2.clone()])
    );
    assert!(env.bindings_of(&w.old).is_empty());
    let mut roles: Vec<(String, BindingRole)> = env
        .bindings_of(&w.new)
        .into_iter()
        .map(|b| (b.listener_id, b.role))
        .collect();
    roles.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected = vec![
        (w.v1.clone(), BindingRole::Clb),
        (w.v2.clone(), BindingRole::Clb),
        (w.x1.clone(), BindingRole::AlbDefault),
        (w.x2.clone(), BindingRole::AlbSni),
        (w.y1.clone(), BindingRole::AlbDefault),
    ];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(roles, expected);
    assert_eq!(
        env.certs_on(LbKind::Clb, &w.v3),
        vec![(w.keep.clone(), BindingRole::Clb)]
    );

    // A retried call (the SDKs retry UpdateSSLBinding) and old == new both succeed unchanged.
    let change = env.replace(&w.old, &w.new, None, None).unwrap();
    assert_eq!((change.replaced, change.listener_ids.len()), (0, 0));
    let change = env.replace(&w.new, &w.new, None, None).unwrap();
    assert_eq!(change.replaced, 0);
    assert_eq!(env.bindings_of(&w.new).len(), 5);
    // Zero matching bindings in a narrower scope: success, nothing replaced.
    let change = env.replace(&w.keep, &w.old, Some(&w.a1), None).unwrap();
    assert_eq!(change.replaced, 0);
    assert_eq!(
        env.certs_on(LbKind::Clb, &w.v3),
        vec![(w.keep.clone(), BindingRole::Clb)]
    );
}

pub(crate) fn replace_certificate_validation(h: &dyn Harness) {
    let store = h.open(pool());
    let env = Env::account(&*store, "alice", "sg");
    let w = replace_world(&env);
    assert_err!(
        env.replace("ssl-nothere1", &w.new, None, None),
        StoreError::NotFound { kind: Resource::Certificate, id } if id == "ssl-nothere1"
    );
    assert_err!(
        env.replace(&w.old, "ssl-nothere2", None, None),
        StoreError::NotFound { kind: Resource::Certificate, id } if id == "ssl-nothere2"
    );
    assert_err!(
        env.replace(&w.old, &w.new, Some("alb-nothere1"), None),
        StoreError::NotFound {
            kind: Resource::LoadBalancer,
            ..
        }
    );
    assert_err!(
        env.replace(&w.old, &w.new, None, Some("als-nothere1")),
        StoreError::NotFound {
            kind: Resource::Listener,
            ..
        }
    );
    assert_err!(
        env.replace(&w.old, &w.new, Some(&w.a2), Some(&w.x1)),
        StoreError::ListenerNotOnLb { listener_id, lb_id } if listener_id == w.x1 && lb_id == w.a2
    );
    assert_err!(
        env.replace(&w.old, &w.new, Some(&w.ulb), Some(&w.y1)),
        StoreError::ListenerNotOnLb { .. }
    );
    // old == new still validates what it is given.
    assert_err!(
        env.replace(&w.old, &w.old, Some("ulb-nothere1"), None),
        StoreError::NotFound {
            kind: Resource::LoadBalancer,
            ..
        }
    );
    assert_eq!(env.bindings_of(&w.old).len(), 5);
    assert!(env.bindings_of(&w.new).is_empty());
}

pub(crate) fn replace_certificate_is_all_or_nothing(h: &dyn Harness) {
    let store = h.open(pool());
    let env = Env::account(&*store, "alice", "sg");
    let s = &env.scope;
    let w = replace_world(&env);
    // `sni` is an SNI certificate of x1, whose default is `old`: replacing old by sni anywhere x1
    // is affected must fail and leave every binding as it was.
    let before: Vec<(String, Vec<(String, BindingRole)>)> = [&w.v1, &w.v2, &w.v3]
        .iter()
        .map(|id| ((*id).clone(), env.certs_on(LbKind::Clb, id)))
        .chain(
            [&w.x1, &w.x2, &w.y1]
                .iter()
                .map(|id| ((*id).clone(), env.certs_on(LbKind::Alb, id))),
        )
        .collect();
    for (lb, listener) in [
        (None, None),
        (Some(&w.a1), None),
        (None, Some(&w.x1)),
        (Some(&w.a1), Some(&w.x1)),
    ] {
        assert_err!(
            env.replace(&w.old, &w.sni, lb.map(String::as_str), listener.map(String::as_str)),
            StoreError::AlreadyBound { ssl_id, listener_id } if ssl_id == w.sni && listener_id == w.x1
        );
    }
    // `default` is the default of x2 where `old` is SNI: the same conflict the other way round.
    assert_err!(
        env.replace(&w.old, &w.default, None, None),
        StoreError::AlreadyBound { ssl_id, listener_id } if ssl_id == w.default && listener_id == w.x2
    );
    let after: Vec<(String, Vec<(String, BindingRole)>)> = before
        .iter()
        .map(|(id, _)| {
            let kind = if id.starts_with("vserver-") {
                LbKind::Clb
            } else {
                LbKind::Alb
            };
            (id.clone(), env.certs_on(kind, id))
        })
        .collect();
    assert_eq!(before, after);
    // Outside the conflict the same replacement is fine.
    let change = env.replace(&w.old, &w.sni, Some(&w.ulb), None).unwrap();
    assert_eq!(change.replaced, 2);
    let change = env
        .replace(&w.old, &w.sni, Some(&w.a2), Some(&w.y1))
        .unwrap();
    assert_eq!(change.replaced, 1);
    store.delete_sni(s, &w.a1, &w.x1, from_ref(&w.sni)).unwrap();
    let change = env.replace(&w.old, &w.sni, None, None).unwrap();
    assert_eq!(change.replaced, 2);
    assert_eq!(
        env.certs_on(LbKind::Alb, &w.x1),
        vec![(w.sni.clone(), BindingRole::AlbDefault)]
    );
}

// ---- deletes and cascades ----

pub(crate) fn deletes_refuse_in_use_and_cascade(h: &dyn Harness) {
    let store = h.open(pool());
    let env = Env::account(&*store, "alice", "sg");
    let s = &env.scope;
    let [c1, c2, c3] = ["c1", "c2", "c3"].map(|n| env.cert(n));
    let (clb, vserver) = env.vserver();
    store.bind_clb(s, &clb, &vserver, &c1).unwrap();
    let backends = store
        .add_backends(
            s,
            LbKind::Clb,
            &clb,
            &vserver,
            vec![NewBackend {
                ip: "10.0.0.1".into(),
                port: 80,
                weight: 1,
                enabled: true,
                attrs: Attrs::new(),
            }],
        )
        .unwrap();
    let (alb, als) = env.alb_listener(&c2);
    store.add_sni(s, &alb, &als, from_ref(&c3), 25).unwrap();
    let als2 = env.listener(LbKind::Alb, &alb, "HTTPS", 8443, Some(&c3));

    for cert in [&c1, &c2, &c3] {
        assert_err!(store.delete_certificate(s, cert), StoreError::CertificateInUse(id) if id == *cert);
        assert!(env.cert_exists(cert));
    }

    store
        .delete_listener(s, LbKind::Clb, &clb, &vserver)
        .unwrap();
    assert_err!(
        store.list_listeners(s, LbKind::Clb, None, Some(&vserver), EVERYTHING),
        StoreError::NotFound {
            kind: Resource::Listener,
            ..
        }
    );
    assert_err!(
        store.delete_listener(s, LbKind::Clb, &clb, &vserver),
        StoreError::NotFound {
            kind: Resource::Listener,
            ..
        }
    );
    assert_err!(
        store.remove_backends(s, LbKind::Clb, &clb, &vserver, &[backends[0].id.clone()]),
        StoreError::NotFound { .. }
    );
    store.delete_certificate(s, &c1).unwrap();

    let deleted = store.delete_load_balancer(s, LbKind::Alb, &alb).unwrap();
    assert_eq!(deleted, vec![als.clone(), als2.clone()]);
    assert!(store
        .dataplane_listeners(Some(&[als.clone(), als2.clone()]))
        .unwrap()
        .is_empty());
    store.delete_certificate(s, &c2).unwrap();
    store.delete_certificate(s, &c3).unwrap();
    assert_err!(
        store.delete_load_balancer(s, LbKind::Alb, &alb),
        StoreError::NotFound {
            kind: Resource::LoadBalancer,
            ..
        }
    );
    // The CLB itself is still there, with no listeners.
    assert_eq!(
        store
            .list_listeners(s, LbKind::Clb, Some(&clb), None, EVERYTHING)
            .unwrap()
            .total,
        0
    );
}

pub(crate) fn listener_that_stops_being_https_drops_its_certificate(h: &dyn Harness) {
    let store = h.open(pool());
    let env = Env::account(&*store, "alice", "sg");
    let s = &env.scope;
    let cert = env.cert("c");
    let (clb, vserver) = env.vserver();
    store.bind_clb(s, &clb, &vserver, &cert).unwrap();
    let patch = ListenerPatch {
        protocol: Some("HTTP".into()),
        name: Some("plain".into()),
        ..ListenerPatch::default()
    };
    store
        .update_listener(s, LbKind::Clb, &clb, &vserver, patch)
        .unwrap();
    let view = env.view(LbKind::Clb, &vserver);
    assert_eq!(
        (view.listener.protocol.as_str(), view.listener.name.as_str()),
        ("HTTP", "plain")
    );
    assert!(view.bindings.is_empty());
    store.delete_certificate(s, &cert).unwrap();
}

// ---- listeners, ports, backends, load balancers ----

pub(crate) fn listener_ports_are_unique_per_load_balancer(h: &dyn Harness) {
    let store = h.open(pool());
    let env = Env::account(&*store, "alice", "sg");
    let s = &env.scope;
    let clb = env.lb(LbKind::Clb);
    let first = env.listener(LbKind::Clb, &clb, "HTTP", 80, None);
    assert!(first.starts_with("vserver-"));
    assert_err!(
        store.create_listener(s, LbKind::Clb, &clb, new_listener("TCP", 80, None)),
        StoreError::PortInUse { port: 80, listener_id } if listener_id == first
    );
    let other = env.lb(LbKind::Clb);
    env.listener(LbKind::Clb, &other, "HTTP", 80, None);
    let alb = env.lb(LbKind::Alb);
    let als = env.listener(LbKind::Alb, &alb, "HTTP", 80, None);
    assert!(als.starts_with("als-"));
    store.delete_listener(s, LbKind::Clb, &clb, &first).unwrap();
    env.listener(LbKind::Clb, &clb, "HTTP", 80, None);
}

pub(crate) fn load_balancer_crud_and_listing(h: &dyn Harness) {
    let store = h.open(pool());
    let env = Env::account(&*store, "alice", "sg");
    let s = &env.scope;
    let mut attrs = Attrs::new();
    attrs.insert("ListenType".into(), "RequestProxy".into());
    attrs.insert("Odd&Key=".into(), "value with spaces+plus".into());
    let created = store
        .create_load_balancer(
            s,
            NewLoadBalancer {
                kind: LbKind::Clb,
                name: "web".into(),
                tag: "t".into(),
                remark: "r".into(),
                attrs: attrs.clone(),
            },
        )
        .unwrap();
    assert!(created.id.starts_with("ulb-"));
    assert_eq!(created.kind, LbKind::Clb);
    let clbs: Vec<String> = std::iter::once(created.id.clone())
        .chain((0..4).map(|_| env.lb(LbKind::Clb)))
        .collect();
    let albs: Vec<String> = (0..2).map(|_| env.lb(LbKind::Alb)).collect();
    assert!(albs.iter().all(|id| id.starts_with("alb-")));

    let page = store
        .list_load_balancers(
            s,
            LbKind::Clb,
            &[],
            Paging {
                offset: 1,
                limit: 2,
            },
        )
        .unwrap();
    assert_eq!(page.total, 5);
    assert_eq!(
        page.items
            .iter()
            .map(|lb| lb.id.clone())
            .collect::<Vec<_>>(),
        clbs[1..3]
    );
    let page = store
        .list_load_balancers(s, LbKind::Alb, &[], EVERYTHING)
        .unwrap();
    assert_eq!(
        page.items
            .iter()
            .map(|lb| lb.id.clone())
            .collect::<Vec<_>>(),
        albs
    );
    let wanted = vec![
        clbs[3].clone(),
        "ulb-nothere1".into(),
        clbs[0].clone(),
        clbs[3].clone(),
    ];
    let page = store
        .list_load_balancers(s, LbKind::Clb, &wanted, EVERYTHING)
        .unwrap();
    assert_eq!(page.total, 2);
    assert_eq!(
        page.items
            .iter()
            .map(|lb| lb.id.clone())
            .collect::<Vec<_>>(),
        vec![clbs[0].clone(), clbs[3].clone()]
    );
    let first = &page.items[0];
    assert_eq!(
        (
            first.name.as_str(),
            first.tag.as_str(),
            first.remark.as_str()
        ),
        ("web", "t", "r")
    );
    assert_eq!(first.attrs, attrs);
    assert_eq!(first.address, created.address);

    let mut more = Attrs::new();
    more.insert("ListenType".into(), "PacketsTransmit".into());
    more.insert("New".into(), "1".into());
    store
        .update_load_balancer(
            s,
            LbKind::Clb,
            &clbs[0],
            LoadBalancerPatch {
                name: Some("renamed".into()),
                tag: None,
                remark: None,
                attrs: more,
            },
        )
        .unwrap();
    let lb = store
        .list_load_balancers(s, LbKind::Clb, &[clbs[0].clone()], EVERYTHING)
        .unwrap()
        .items
        .remove(0);
    assert_eq!(
        (lb.name.as_str(), lb.tag.as_str(), lb.remark.as_str()),
        ("renamed", "t", "r")
    );
    assert_eq!(
        lb.attrs.get("ListenType").map(String::as_str),
        Some("PacketsTransmit")
    );
    assert_eq!(lb.attrs.get("New").map(String::as_str), Some("1"));
    assert_eq!(
        lb.attrs.get("Odd&Key=").map(String::as_str),
        Some("value with spaces+plus")
    );

    assert_eq!(
        store
            .delete_load_balancer(s, LbKind::Clb, &clbs[1])
            .unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        store
            .list_load_balancers(s, LbKind::Clb, &[], EVERYTHING)
            .unwrap()
            .total,
        4
    );
}

pub(crate) fn listener_views_and_backends(h: &dyn Harness) {
    let store = h.open(pool());
    let env = Env::account(&*store, "alice", "sg");
    let s = &env.scope;
    let [d, s1, s2, d2] = ["d", "s1", "s2", "d2"].map(|n| env.cert(n));
    let alb = env.lb(LbKind::Alb);
    let mut attrs = Attrs::new();
    attrs.insert("IdleTimeout".into(), "60".into());
    let als = store
        .create_listener(
            s,
            LbKind::Alb,
            &alb,
            NewListener {
                attrs: attrs.clone(),
                ..new_listener("HTTPS", 443, Some(&d))
            },
        )
        .unwrap();
    assert_eq!(
        (als.kind, als.port, als.attrs.clone()),
        (LbKind::Alb, 443, attrs)
    );
    store.add_sni(s, &alb, &als.id, from_ref(&s2), 25).unwrap();
    store.add_sni(s, &alb, &als.id, from_ref(&s1), 25).unwrap();
    // Replacing the default later gives it the highest seq, yet it is still listed first.
    store
        .update_listener(
            s,
            LbKind::Alb,
            &alb,
            &als.id,
            ListenerPatch {
                default_certificate: Some(d2.clone()),
                ..ListenerPatch::default()
            },
        )
        .unwrap();
    let new_target = |ip: &str, port| NewBackend {
        ip: ip.into(),
        port,
        weight: 10,
        enabled: true,
        attrs: Attrs::new(),
    };
    let added = store
        .add_backends(
            s,
            LbKind::Alb,
            &alb,
            &als.id,
            vec![
                new_target("10.0.0.2", 80),
                new_target("10.0.0.1", 81),
                new_target("10.0.0.3", 82),
            ],
        )
        .unwrap();
    assert!(added
        .iter()
        .all(|b| b.id.starts_with("rs-") && b.listener_id == als.id));
    let http = env.listener(LbKind::Alb, &alb, "HTTP", 80, None);

    let view = env.view(LbKind::Alb, &als.id);
    assert_eq!(
        view.bindings
            .iter()
            .map(|b| (b.ssl_id.clone(), b.role))
            .collect::<Vec<_>>(),
        vec![
            (d2.clone(), BindingRole::AlbDefault),
            (s2.clone(), BindingRole::AlbSni),
            (s1.clone(), BindingRole::AlbSni)
        ]
    );
    assert!(view
        .bindings
        .iter()
        .all(|b| b.listener_id == als.id && b.lb_id == alb && b.lb_kind == LbKind::Alb));
    assert_eq!(
        view.backends
            .iter()
            .map(|b| b.id.clone())
            .collect::<Vec<_>>(),
        added.iter().map(|b| b.id.clone()).collect::<Vec<_>>()
    );
    assert_eq!(view.lb.id, alb);

    let page = store
        .list_listeners(
            s,
            LbKind::Alb,
            Some(&alb),
            None,
            Paging {
                offset: 0,
                limit: 1,
            },
        )
        .unwrap();
    assert_eq!((page.total, page.items.len()), (2, 1));
    assert_eq!(page.items[0].listener.id, als.id);
    let page = store
        .list_listeners(
            s,
            LbKind::Alb,
            Some(&alb),
            None,
            Paging {
                offset: 1,
                limit: 1,
            },
        )
        .unwrap();
    assert_eq!(page.items[0].listener.id, http);
    // listener_id wins over lb_id.
    let page = store
        .list_listeners(
            s,
            LbKind::Alb,
            Some("alb-nothere1"),
            Some(&http),
            EVERYTHING,
        )
        .unwrap();
    assert_eq!(page.items[0].listener.id, http);
    let page = store
        .list_listeners(s, LbKind::Alb, None, None, EVERYTHING)
        .unwrap();
    assert_eq!(page.total, 2);
    assert_err!(
        store.list_listeners(s, LbKind::Alb, Some("alb-nothere1"), None, EVERYTHING),
        StoreError::NotFound {
            kind: Resource::LoadBalancer,
            ..
        }
    );

    // Backends: patch, remove all-or-nothing, unknown ids are NotFound.
    let mut backend_attrs = Attrs::new();
    backend_attrs.insert("IsBackup".into(), "1".into());
    store
        .update_backends(
            s,
            LbKind::Alb,
            &alb,
            &als.id,
            vec![BackendPatch {
                id: added[1].id.clone(),
                port: Some(8081),
                weight: None,
                enabled: Some(false),
                attrs: backend_attrs.clone(),
            }],
        )
        .unwrap();
    let patched = env.view(LbKind::Alb, &als.id).backends.remove(1);
    assert_eq!(
        (patched.port, patched.weight, patched.enabled, patched.attrs),
        (8081, 10, false, backend_attrs)
    );
    assert_err!(
        store.update_backends(
            s,
            LbKind::Alb,
            &alb,
            &als.id,
            vec![BackendPatch {
                id: "rs-nothere1".into(),
                port: None,
                weight: None,
                enabled: None,
                attrs: Attrs::new()
            }]
        ),
        StoreError::NotFound {
            kind: Resource::Backend,
            ..
        }
    );
    assert_err!(
        store.update_backends(
            s,
            LbKind::Alb,
            &alb,
            &http,
            vec![BackendPatch {
                id: added[0].id.clone(),
                port: None,
                weight: None,
                enabled: None,
                attrs: Attrs::new()
            }]
        ),
        StoreError::NotFound {
            kind: Resource::Backend,
            ..
        }
    );
    assert_err!(
        store.remove_backends(s, LbKind::Alb, &alb, &als.id, &[added[0].id.clone(), "rs-nothere1".into()]),
        StoreError::NotFound { kind: Resource::Backend, id } if id == "rs-nothere1"
    );
    assert_eq!(env.view(LbKind::Alb, &als.id).backends.len(), 3);
    store
        .remove_backends(
            s,
            LbKind::Alb,
            &alb,
            &als.id,
            &[added[0].id.clone(), added[2].id.clone()],
        )
        .unwrap();
    assert_eq!(
        env.view(LbKind::Alb, &als.id)
            .backends
            .iter()
            .map(|b| b.id.clone())
            .collect::<Vec<_>>(),
        vec![added[1].id.clone()]
    );

    // The data plane sees every listener, or just the ones asked for.
    let (clb, vserver) = env.vserver();
    store.bind_clb(s, &clb, &vserver, &s1).unwrap();
    let all = store.dataplane_listeners(None).unwrap();
    assert_eq!(
        all.iter()
            .map(|v| v.listener.id.clone())
            .collect::<Vec<_>>(),
        vec![als.id.clone(), http.clone(), vserver.clone()]
    );
    let some = store
        .dataplane_listeners(Some(&[
            vserver.clone(),
            "als-nothere1".into(),
            als.id.clone(),
        ]))
        .unwrap();
    assert_eq!(
        some.iter()
            .map(|v| v.listener.id.clone())
            .collect::<Vec<_>>(),
        vec![als.id.clone(), vserver.clone()]
    );
    assert_eq!(some[0].bindings.len(), 3);
    assert_eq!(some[1].bindings[0].ssl_id, s1);
    assert_eq!(some[1].lb.kind, LbKind::Clb);
}

pub(crate) fn addresses_are_unique_and_reused(h: &dyn Harness) {
    let small = AddressPool {
        first: Ipv4Addr::new(127, 9, 0, 1),
        count: 3,
    };
    let store = h.open(small);
    let scope = Env::account(&*store, "alice", "sg").scope;
    let s = &scope;
    let lbs: Vec<_> = (0..3)
        .map(|i| {
            let kind = if i % 2 == 0 { LbKind::Clb } else { LbKind::Alb };
            store.create_load_balancer(s, new_lb(kind, "lb")).unwrap()
        })
        .collect();
    let addresses: Vec<&str> = lbs.iter().map(|lb| lb.address.as_str()).collect();
    assert_eq!(addresses, vec!["127.9.0.1", "127.9.0.2", "127.9.0.3"]);
    assert_err!(
        store.create_load_balancer(s, new_lb(LbKind::Clb, "lb")),
        StoreError::AddressPoolExhausted
    );
    // The failed create left no load balancer behind.
    assert_eq!(
        store
            .list_load_balancers(s, LbKind::Clb, &[], EVERYTHING)
            .unwrap()
            .total,
        2
    );

    store
        .delete_load_balancer(s, LbKind::Alb, &lbs[1].id)
        .unwrap();
    let reused = store
        .create_load_balancer(s, new_lb(LbKind::Alb, "lb"))
        .unwrap();
    assert_eq!(reused.address, "127.9.0.2");
    assert_err!(
        store.create_load_balancer(s, new_lb(LbKind::Clb, "lb")),
        StoreError::AddressPoolExhausted
    );
    store
        .delete_load_balancer(s, LbKind::Clb, &lbs[2].id)
        .unwrap();
    store
        .delete_load_balancer(s, LbKind::Clb, &lbs[0].id)
        .unwrap();
    let first = store
        .create_load_balancer(s, new_lb(LbKind::Clb, "lb"))
        .unwrap();
    let second = store
        .create_load_balancer(s, new_lb(LbKind::Clb, "lb"))
        .unwrap();
    assert_eq!(
        (first.address.as_str(), second.address.as_str()),
        ("127.9.0.1", "127.9.0.3")
    );
    drop(store);

    // A larger pool on reopen extends the range; addresses stay unique across it.
    let store = h.open(AddressPool {
        first: Ipv4Addr::new(127, 9, 0, 1),
        count: 1000,
    });
    let more: BTreeSet<String> = (0..50)
        .map(|_| {
            store
                .create_load_balancer(s, new_lb(LbKind::Alb, "lb"))
                .unwrap()
                .address
        })
        .collect();
    assert_eq!(more.len(), 50);
    assert!(
        !more.contains("127.9.0.1") && !more.contains("127.9.0.2") && !more.contains("127.9.0.3")
    );
}

// ---- persistence and secrets ----

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

pub(crate) fn secrets_are_sealed_at_rest(h: &dyn Harness) {
    let store = h.open(pool());
    let credentials = store.create_account("alice").unwrap();
    let sub = store.create_sub_key("alice", &[]).unwrap();
    let key = store.lookup_key(&credentials.public_key).unwrap().unwrap();
    let scope = Scope {
        account_id: key.account_id,
        project_id: credentials.project_id.clone(),
        region: "sg".into(),
    };
    let marker = format!("{:x}", rand::random::<u128>());
    let cert = store
        .create_certificate(&scope, new_certificate(&format!("m{marker}")))
        .unwrap();
    drop(store);
    let bytes = h.persisted_bytes();
    // Sanity: public data is found, so an absent secret is meaningful.
    assert!(
        contains(&bytes, &credentials.public_key),
        "public key should be stored in the clear"
    );
    assert!(
        contains(&bytes, &format!("LEAF-m{marker}")),
        "the chain should be stored in the clear"
    );
    assert!(contains(&bytes, &cert.id));
    for secret in [
        credentials.private_key.as_str(),
        sub.private_key.as_str(),
        &format!("BUNDLEKEY-m{marker}"),
        &format!("KEYPEM-m{marker}"),
    ] {
        assert!(!contains(&bytes, secret), "{secret} is stored in plaintext");
    }
}

pub(crate) fn state_survives_reopen(h: &dyn Harness) {
    let store = h.open(pool());
    let env = Env::account(&*store, "alice", "sg");
    let credentials_key = store.create_main_key("alice").unwrap();
    let cert = env.cert("c");
    let sni = env.cert("s");
    let (alb, als) = env.alb_listener(&cert);
    store
        .add_sni(&env.scope, &alb, &als, from_ref(&sni), 25)
        .unwrap();
    let (clb, vserver) = env.vserver();
    store.bind_clb(&env.scope, &clb, &vserver, &sni).unwrap();
    let before = max_seq(&env);
    let scope = env.scope.clone();
    drop(env);
    drop(store);

    let store = h.open(pool());
    let env = Env {
        store: &*store,
        scope,
    };
    let key = store
        .lookup_key(&credentials_key.public_key)
        .unwrap()
        .unwrap();
    assert_eq!(key.private_key.as_str(), credentials_key.private_key);
    let page = store
        .describe_certificates(&env.scope, Some(&cert), EVERYTHING)
        .unwrap();
    assert_eq!(page.items[0].content.as_str(), new_certificate("c").content);
    assert_eq!(
        env.certs_on(LbKind::Alb, &als),
        vec![
            (cert.clone(), BindingRole::AlbDefault),
            (sni.clone(), BindingRole::AlbSni)
        ]
    );
    assert_eq!(env.bindings_of(&sni).len(), 2);
    // Bind order keeps growing across restarts.
    let newer = env.cert("n");
    store
        .add_sni(&env.scope, &alb, &als, from_ref(&newer), 25)
        .unwrap();
    assert!(max_seq(&env) > before);
    assert!(store.create_account("alice").is_err());
}

// ---- binding rules against a reference model ----

const MODEL_CERTS: usize = 5;
/// Listeners 0..4 are CLB VServers (3 HTTPS, 1 HTTP), 4..8 ALB listeners (3 HTTPS, 1 HTTP).
const MODEL_LISTENERS: usize = 8;
const MODEL_SNI_LIMIT: usize = 3;

/// One store call on the model world. Indices may point at the wrong family (→ not on that load
/// balancer) or at `MODEL_CERTS`, a certificate that never exists.
#[derive(Debug, Clone)]
enum Op {
    BindClb {
        listener: usize,
        cert: usize,
    },
    UnbindClb {
        listener: usize,
        cert: usize,
    },
    AddSni {
        listener: usize,
        certs: Vec<usize>,
    },
    DeleteSni {
        listener: usize,
        certs: Vec<usize>,
    },
    SetDefault {
        listener: usize,
        cert: usize,
    },
    Replace {
        old: usize,
        new: usize,
        lb: Option<bool>,
        listener: Option<usize>,
    },
    DeleteCertificate {
        cert: usize,
    },
    DeleteListener {
        listener: usize,
    },
}

fn op_strategy() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    // Mostly the family an operation is meant for, sometimes any listener (wrong family, HTTP),
    // so that most calls succeed and build up state while every error path is still reached.
    let any_listener = 0..MODEL_LISTENERS;
    let vserver = prop_oneof![4 => 0..3usize, 1 => 0..MODEL_LISTENERS];
    let alb_listener = prop_oneof![4 => 4..7usize, 1 => 0..MODEL_LISTENERS];
    let cert = prop_oneof![6 => 0..MODEL_CERTS, 1 => Just(MODEL_CERTS)];
    let certs = proptest::collection::vec(cert.clone(), 0..3);
    prop_oneof![
        3 => (vserver.clone(), cert.clone()).prop_map(|(listener, cert)| Op::BindClb { listener, cert }),
        2 => (vserver, cert.clone()).prop_map(|(listener, cert)| Op::UnbindClb { listener, cert }),
        4 => (alb_listener.clone(), certs.clone()).prop_map(|(listener, certs)| Op::AddSni { listener, certs }),
        2 => (alb_listener.clone(), certs).prop_map(|(listener, certs)| Op::DeleteSni { listener, certs }),
        2 => (alb_listener, cert.clone()).prop_map(|(listener, cert)| Op::SetDefault { listener, cert }),
        6 => (
            cert.clone(),
            cert.clone(),
            proptest::option::of(any::<bool>()),
            proptest::option::weighted(0.3, any_listener.clone()),
        )
            .prop_map(|(old, new, lb, listener)| Op::Replace { old, new, lb, listener }),
        1 => cert.prop_map(|cert| Op::DeleteCertificate { cert }),
        1 => any_listener.prop_map(|listener| Op::DeleteListener { listener }),
    ]
}

/// The error classes the model predicts (which one a store reports first when several apply is
/// its own business, so the model accepts any that applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    NotFound,
    ListenerNotOnLb,
    NotHttps,
    VServerAlreadyBound,
    AlreadyBound,
    NotBound,
    DefaultCertificate,
    Quota,
    CertificateInUse,
}

fn rule_of(error: &StoreError) -> Option<Rule> {
    Some(match error {
        StoreError::NotFound { .. } => Rule::NotFound,
        StoreError::ListenerNotOnLb { .. } => Rule::ListenerNotOnLb,
        StoreError::NotHttps(_) => Rule::NotHttps,
        StoreError::VServerAlreadyBound { .. } => Rule::VServerAlreadyBound,
        StoreError::AlreadyBound { .. } => Rule::AlreadyBound,
        StoreError::NotBound { .. } => Rule::NotBound,
        StoreError::DefaultCertificate(_) => Rule::DefaultCertificate,
        StoreError::Quota { .. } => Rule::Quota,
        StoreError::CertificateInUse(_) => Rule::CertificateInUse,
        _ => return None,
    })
}

#[derive(Debug, Clone)]
struct ModelListener {
    exists: bool,
    alb: bool,
    https: bool,
    /// The CLB certificate or the ALB default.
    primary: Option<usize>,
    /// ALB extension certificates in bind order.
    sni: Vec<usize>,
}

impl ModelListener {
    fn has(&self, cert: usize) -> bool {
        self.primary == Some(cert) || self.sni.contains(&cert)
    }

    fn listing(&self) -> Vec<(usize, BindingRole)> {
        let primary_role = if self.alb {
            BindingRole::AlbDefault
        } else {
            BindingRole::Clb
        };
        self.primary
            .map(|cert| (cert, primary_role))
            .into_iter()
            .chain(self.sni.iter().map(|&cert| (cert, BindingRole::AlbSni)))
            .collect()
    }
}

#[derive(Debug, Clone)]
struct Model {
    certs: [bool; MODEL_CERTS + 1],
    listeners: Vec<ModelListener>,
}

/// What the model expects of one call: `Ok` with the listeners a replacement touches, or the
/// errors that apply.
type Expected = Result<Vec<usize>, Vec<Rule>>;

impl Model {
    fn new() -> Model {
        let listener = |alb: bool, https: bool, primary: Option<usize>| ModelListener {
            exists: true,
            alb,
            https,
            primary,
            sni: Vec::new(),
        };
        let mut certs = [true; MODEL_CERTS + 1];
        certs[MODEL_CERTS] = false;
        Model {
            certs,
            listeners: vec![
                listener(false, true, None),
                listener(false, true, None),
                listener(false, true, None),
                listener(false, false, None),
                listener(true, true, Some(0)),
                listener(true, true, Some(1)),
                listener(true, true, Some(0)),
                listener(true, false, None),
            ],
        }
    }

    /// The rule a listener addressed on a load balancer of family `alb` breaks, if any.
    fn locate(&self, listener: usize, alb: bool) -> Option<Rule> {
        let found = &self.listeners[listener];
        if !found.exists {
            Some(Rule::NotFound)
        } else if found.alb != alb {
            Some(Rule::ListenerNotOnLb)
        } else {
            None
        }
    }

    fn apply(&mut self, op: &Op) -> Expected {
        let mut errors = Vec::new();
        match op {
            Op::BindClb { listener, cert } => {
                let located = self.locate(*listener, false);
                errors.extend(located);
                if !self.certs[*cert] {
                    errors.push(Rule::NotFound);
                }
                let target = &mut self.listeners[*listener];
                if located.is_none() {
                    if !target.https {
                        errors.push(Rule::NotHttps);
                    } else if target.primary.is_some() {
                        errors.push(Rule::VServerAlreadyBound);
                    }
                }
                if errors.is_empty() {
                    target.primary = Some(*cert);
                }
            }
            Op::UnbindClb { listener, cert } => {
                let located = self.locate(*listener, false);
                errors.extend(located);
                if !self.certs[*cert] {
                    errors.push(Rule::NotFound);
                }
                let target = &mut self.listeners[*listener];
                if located.is_none() && target.primary != Some(*cert) {
                    errors.push(Rule::NotBound);
                }
                if errors.is_empty() {
                    target.primary = None;
                }
            }
            Op::AddSni { listener, certs } => {
                let located = self.locate(*listener, true);
                errors.extend(located);
                let target = &self.listeners[*listener];
                if located.is_none() && !target.https {
                    errors.push(Rule::NotHttps);
                }
                for (at, cert) in certs.iter().enumerate() {
                    if !self.certs[*cert] {
                        errors.push(Rule::NotFound);
                    } else if located.is_none() && (certs[..at].contains(cert) || target.has(*cert))
                    {
                        errors.push(Rule::AlreadyBound);
                    }
                }
                if located.is_none() && target.sni.len() + certs.len() > MODEL_SNI_LIMIT {
                    errors.push(Rule::Quota);
                }
                if errors.is_empty() {
                    self.listeners[*listener].sni.extend(certs.iter().copied());
                }
            }
            Op::DeleteSni { listener, certs } => {
                let located = self.locate(*listener, true);
                errors.extend(located);
                let target = &mut self.listeners[*listener];
                for cert in certs {
                    if !self.certs[*cert] {
                        errors.push(Rule::NotFound);
                    } else if located.is_none() && target.primary == Some(*cert) {
                        errors.push(Rule::DefaultCertificate);
                    } else if located.is_none() && !target.sni.contains(cert) {
                        errors.push(Rule::NotBound);
                    }
                }
                if errors.is_empty() {
                    target.sni.retain(|cert| !certs.contains(cert));
                }
            }
            Op::SetDefault { listener, cert } => {
                let located = self.locate(*listener, true);
                errors.extend(located);
                if !self.certs[*cert] {
                    errors.push(Rule::NotFound);
                }
                let target = &mut self.listeners[*listener];
                if located.is_none() {
                    if !target.https {
                        errors.push(Rule::NotHttps);
                    } else if target.sni.contains(cert) {
                        errors.push(Rule::AlreadyBound);
                    }
                }
                if errors.is_empty() {
                    target.primary = Some(*cert);
                }
            }
            Op::Replace {
                old,
                new,
                lb,
                listener,
            } => {
                if !self.certs[*old] || !self.certs[*new] {
                    errors.push(Rule::NotFound);
                }
                if let Some(listener) = listener {
                    let found = &self.listeners[*listener];
                    if !found.exists {
                        errors.push(Rule::NotFound);
                    } else if lb.is_some_and(|alb| alb != found.alb) {
                        errors.push(Rule::ListenerNotOnLb);
                    }
                }
                if !errors.is_empty() {
                    return Err(errors);
                }
                if old == new {
                    return Ok(Vec::new());
                }
                let affected: Vec<usize> = (0..MODEL_LISTENERS)
                    .filter(|&at| {
                        let candidate = &self.listeners[at];
                        candidate.exists
                            && candidate.has(*old)
                            && listener.is_none_or(|only| only == at)
                            && lb.is_none_or(|alb| alb == candidate.alb)
                    })
                    .collect();
                if affected.iter().any(|&at| self.listeners[at].has(*new)) {
                    return Err(vec![Rule::AlreadyBound]);
                }
                for &at in &affected {
                    let target = &mut self.listeners[at];
                    if target.primary == Some(*old) {
                        target.primary = Some(*new);
                    } else {
                        // A replaced SNI binding gets a fresh seq: it is now the most recent.
                        target.sni.retain(|cert| cert != old);
                        target.sni.push(*new);
                    }
                }
                return Ok(affected);
            }
            Op::DeleteCertificate { cert } => {
                if !self.certs[*cert] {
                    errors.push(Rule::NotFound);
                } else if self.listeners.iter().any(|l| l.exists && l.has(*cert)) {
                    errors.push(Rule::CertificateInUse);
                } else {
                    self.certs[*cert] = false;
                }
            }
            Op::DeleteListener { listener } => {
                let target = &mut self.listeners[*listener];
                if !target.exists {
                    errors.push(Rule::NotFound);
                } else {
                    target.exists = false;
                    target.primary = None;
                    target.sni.clear();
                }
            }
        }
        if errors.is_empty() {
            Ok(Vec::new())
        } else {
            Err(errors)
        }
    }
}

/// The model world in a store: its own account, so cases never see each other.
struct ModelWorld<'a> {
    env: Env<'a>,
    certs: Vec<String>,
    clb: String,
    alb: String,
    listeners: Vec<String>,
}

impl<'a> ModelWorld<'a> {
    fn create(store: &'a dyn Store, case: usize) -> ModelWorld<'a> {
        let env = Env::account(store, &format!("model-{case}"), "sg");
        let mut certs: Vec<String> = (0..MODEL_CERTS)
            .map(|i| env.cert(&format!("m{i}")))
            .collect();
        certs.push("ssl-missing0".to_string());
        let clb = env.lb(LbKind::Clb);
        let alb = env.lb(LbKind::Alb);
        let mut listeners: Vec<String> = (0..3)
            .map(|i| env.listener(LbKind::Clb, &clb, "HTTPS", 443 + i, None))
            .collect();
        listeners.push(env.listener(LbKind::Clb, &clb, "HTTP", 80, None));
        for (i, default) in [0, 1, 0].into_iter().enumerate() {
            listeners.push(env.listener(
                LbKind::Alb,
                &alb,
                "HTTPS",
                443 + i as u16,
                Some(&certs[default]),
            ));
        }
        listeners.push(env.listener(LbKind::Alb, &alb, "HTTP", 80, None));
        ModelWorld {
            env,
            certs,
            clb,
            alb,
            listeners,
        }
    }

    /// Runs `op` on the store; `Ok` carries the listeners a replacement reported.
    fn run(&self, op: &Op) -> StoreResult<Vec<String>> {
        let (store, s) = (self.env.store, &self.env.scope);
        let ids = |certs: &[usize]| {
            certs
                .iter()
                .map(|&c| self.certs[c].clone())
                .collect::<Vec<_>>()
        };
        match op {
            Op::BindClb { listener, cert } => store
                .bind_clb(s, &self.clb, &self.listeners[*listener], &self.certs[*cert])
                .map(|()| Vec::new()),
            Op::UnbindClb { listener, cert } => store
                .unbind_clb(s, &self.clb, &self.listeners[*listener], &self.certs[*cert])
                .map(|()| Vec::new()),
            Op::AddSni { listener, certs } => store
                .add_sni(
                    s,
                    &self.alb,
                    &self.listeners[*listener],
                    &ids(certs),
                    MODEL_SNI_LIMIT,
                )
                .map(|()| Vec::new()),
            Op::DeleteSni { listener, certs } => store
                .delete_sni(s, &self.alb, &self.listeners[*listener], &ids(certs))
                .map(|()| Vec::new()),
            Op::SetDefault { listener, cert } => store
                .update_listener(
                    s,
                    LbKind::Alb,
                    &self.alb,
                    &self.listeners[*listener],
                    ListenerPatch {
                        default_certificate: Some(self.certs[*cert].clone()),
                        ..ListenerPatch::default()
                    },
                )
                .map(|()| Vec::new()),
            Op::Replace {
                old,
                new,
                lb,
                listener,
            } => {
                let lb = lb.map(|alb| {
                    if alb {
                        self.alb.as_str()
                    } else {
                        self.clb.as_str()
                    }
                });
                let listener = listener.map(|at| self.listeners[at].as_str());
                self.env
                    .replace(&self.certs[*old], &self.certs[*new], lb, listener)
                    .map(|change| {
                        assert_eq!(change.replaced, change.listener_ids.len());
                        sorted(change.listener_ids)
                    })
            }
            Op::DeleteCertificate { cert } => store
                .delete_certificate(s, &self.certs[*cert])
                .map(|()| Vec::new()),
            Op::DeleteListener { listener } => {
                let (kind, lb) = if *listener < 4 {
                    (LbKind::Clb, &self.clb)
                } else {
                    (LbKind::Alb, &self.alb)
                };
                store
                    .delete_listener(s, kind, lb, &self.listeners[*listener])
                    .map(|()| Vec::new())
            }
        }
    }

    /// The store's bindings in the model's terms: per listener index, (cert index, role) in
    /// listing order, for the listeners that exist.
    fn observe(&self) -> Vec<Option<Vec<(usize, BindingRole)>>> {
        let views = self
            .env
            .store
            .dataplane_listeners(Some(&self.listeners))
            .unwrap();
        self.listeners
            .iter()
            .map(|id| {
                views.iter().find(|v| &v.listener.id == id).map(|view| {
                    view.bindings
                        .iter()
                        .map(|b| {
                            (
                                self.certs.iter().position(|c| *c == b.ssl_id).unwrap(),
                                b.role,
                            )
                        })
                        .collect()
                })
            })
            .collect()
    }

    fn existing_certs(&self) -> Vec<bool> {
        let page = self
            .env
            .store
            .describe_certificates(&self.env.scope, None, EVERYTHING)
            .unwrap();
        self.certs
            .iter()
            .map(|id| page.items.iter().any(|v| &v.certificate.id == id))
            .collect()
    }
}

pub(crate) fn binding_rules_match_a_reference_model(h: &dyn Harness) {
    use proptest::test_runner::{Config, TestCaseError, TestRunner};
    let store = h.open(pool());
    let cases = std::sync::atomic::AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 96,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&proptest::collection::vec(op_strategy(), 1..50), |ops| {
        let case = cases.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let world = ModelWorld::create(&*store, case);
        let mut model = Model::new();
        for (step, op) in ops.iter().enumerate() {
            let expected = model.apply(op);
            let actual = world.run(op);
            match (&expected, &actual) {
                (Ok(affected), Ok(reported)) => {
                    let affected: Vec<String> = sorted(
                        affected
                            .iter()
                            .map(|&at| world.listeners[at].clone())
                            .collect(),
                    );
                    proptest::prop_assert_eq!(
                        reported,
                        &affected,
                        "step {} {:?}: replaced listeners",
                        step,
                        op
                    );
                }
                (Err(rules), Err(error)) => proptest::prop_assert!(
                    rule_of(error).is_some_and(|rule| rules.contains(&rule)),
                    "step {step} {op:?}: store said {error:?}, model expected one of {rules:?}"
                ),
                (Ok(_), Err(error)) => {
                    return Err(TestCaseError::fail(format!(
                        "step {step} {op:?}: store refused with {error:?}, model accepted"
                    )))
                }
                (Err(rules), Ok(_)) => {
                    return Err(TestCaseError::fail(format!(
                        "step {step} {op:?}: store accepted, model expected {rules:?}"
                    )))
                }
            }
            let expected_state: Vec<Option<Vec<(usize, BindingRole)>>> = model
                .listeners
                .iter()
                .map(|l| l.exists.then(|| l.listing()))
                .collect();
            proptest::prop_assert_eq!(
                world.observe(),
                expected_state,
                "after step {} {:?}",
                step,
                op
            );
            proptest::prop_assert_eq!(
                world.existing_certs(),
                model.certs.to_vec(),
                "after step {} {:?}",
                step,
                op
            );
        }
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    check_invariants(&*store, true);
}

// ---- concurrency ----

/// Checks the binding invariants over the whole store: every bound certificate exists, a CLB
/// listener has at most one certificate, an HTTPS ALB listener exactly one default, and only HTTPS
/// listeners carry certificates. Existence is checked with separate calls, so only when no writer
/// runs (`quiescent`); the rest holds within the one snapshot `dataplane_listeners` reads.
fn check_invariants(store: &dyn Store, quiescent: bool) {
    for view in store.dataplane_listeners(None).unwrap() {
        for binding in view.bindings.iter().filter(|_| quiescent) {
            assert!(
                store.certificate_material(&binding.ssl_id).is_ok(),
                "{} is bound to {} but does not exist",
                binding.ssl_id,
                view.listener.id
            );
        }
        if view.listener.protocol != "HTTPS" {
            assert!(
                view.bindings.is_empty(),
                "{} is not HTTPS but has certificates",
                view.listener.id
            );
        }
        match view.listener.kind {
            LbKind::Clb => {
                assert!(
                    view.bindings.len() <= 1,
                    "VServer {} has {} certificates",
                    view.listener.id,
                    view.bindings.len()
                );
                assert!(view.bindings.iter().all(|b| b.role == BindingRole::Clb));
            }
            LbKind::Alb if view.listener.protocol == "HTTPS" => {
                let defaults = view
                    .bindings
                    .iter()
                    .filter(|b| b.role == BindingRole::AlbDefault)
                    .count();
                assert_eq!(
                    defaults, 1,
                    "ALB listener {} has {defaults} defaults",
                    view.listener.id
                );
                assert_eq!(view.bindings[0].role, BindingRole::AlbDefault);
                let distinct: BTreeSet<&str> =
                    view.bindings.iter().map(|b| b.ssl_id.as_str()).collect();
                assert_eq!(distinct.len(), view.bindings.len());
            }
            LbKind::Alb => {}
        }
    }
}

pub(crate) fn concurrent_binding_changes_keep_invariants(h: &dyn Harness) {
    // Two stores on one database: the second stands for another process (the CLI).
    let first = h.open(pool());
    let second = h.open(pool());
    let env = Env::account(&*first, "alice", "sg");
    let scope = env.scope.clone();
    let certs: Vec<String> = (0..6).map(|i| env.cert(&format!("c{i}"))).collect();
    let clb = env.lb(LbKind::Clb);
    let vservers: Vec<String> = (0..4)
        .map(|i| env.listener(LbKind::Clb, &clb, "HTTPS", 1000 + i, None))
        .collect();
    let alb = env.lb(LbKind::Alb);
    let listeners: Vec<String> = (0..4)
        .map(|i| {
            env.listener(
                LbKind::Alb,
                &alb,
                "HTTPS",
                2000 + i,
                Some(&certs[i as usize % 2]),
            )
        })
        .collect();
    drop(env);

    let stores: [&dyn Store; 2] = [&*first, &*second];
    let succeeded = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|threads| {
        for worker in 0..4usize {
            let store = stores[worker % 2];
            let (scope, certs, vservers, listeners, clb, alb, succeeded) = (
                &scope, &certs, &vservers, &listeners, &clb, &alb, &succeeded,
            );
            threads.spawn(move || {
                // A small deterministic generator per thread: the interleaving is what varies.
                let mut state = 0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(worker as u64 + 1);
                let mut next = |n: usize| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state % n as u64) as usize
                };
                for round in 0..120 {
                    let cert = &certs[next(certs.len())];
                    let other = &certs[next(certs.len())];
                    // Each call may fail by the rules (already bound, in use, gone): what matters
                    // is that no sequence of outcomes breaks an invariant. A backend error (a
                    // lock timeout, a constraint the rules should have caught) is a bug.
                    let outcome = match next(7) {
                        0 => store.bind_clb(scope, clb, &vservers[next(vservers.len())], cert),
                        1 => store.unbind_clb(scope, clb, &vservers[next(vservers.len())], cert),
                        2 => store.add_sni(
                            scope,
                            alb,
                            &listeners[next(listeners.len())],
                            &[cert.clone(), other.clone()],
                            3,
                        ),
                        3 => store.delete_sni(
                            scope,
                            alb,
                            &listeners[next(listeners.len())],
                            from_ref(cert),
                        ),
                        4 => {
                            let listener_id =
                                (next(2) == 0).then(|| listeners[next(listeners.len())].clone());
                            store
                                .replace_certificate(
                                    scope,
                                    cert,
                                    other,
                                    &BindingScope {
                                        lb_id: None,
                                        listener_id,
                                    },
                                )
                                .map(drop)
                        }
                        5 => store.delete_certificate(scope, cert),
                        _ => {
                            if round % 40 == 39 {
                                let victim = &listeners[next(listeners.len())];
                                store.delete_listener(scope, LbKind::Alb, alb, victim)
                            } else {
                                store.update_listener(
                                    scope,
                                    LbKind::Alb,
                                    alb,
                                    &listeners[next(listeners.len())],
                                    ListenerPatch {
                                        default_certificate: Some(cert.clone()),
                                        ..ListenerPatch::default()
                                    },
                                )
                            }
                        }
                    };
                    match outcome {
                        Ok(()) => {
                            succeeded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Err(StoreError::Backend(e)) => {
                            panic!("backend error under concurrency: {e:#}")
                        }
                        Err(_) => {}
                    }
                }
            });
        }
        // A reader racing the writers must always see a consistent snapshot.
        let reader = &*second;
        threads.spawn(move || {
            for _ in 0..30 {
                check_invariants(reader, false);
            }
        });
    });
    check_invariants(&*first, true);
    check_invariants(&*second, true);
    assert!(
        succeeded.into_inner() > 0,
        "no operation succeeded: the race exercised nothing"
    );
}

/// Instantiates the suite for one backend: `conformance_tests!(harness_constructor)`.
macro_rules! conformance_tests {
    ($harness:expr) => {
        conformance_tests!(@each $harness;
            accounts_projects_and_keys,
            other_accounts_projects_and_regions_see_nothing,
            kind_mismatch_is_absent,
            certificate_crud_and_paging,
            clb_binding_rules,
            alb_default_and_sni_rules,
            replace_certificate_in_every_scope,
            replace_certificate_validation,
            replace_certificate_is_all_or_nothing,
            deletes_refuse_in_use_and_cascade,
            listener_that_stops_being_https_drops_its_certificate,
            listener_ports_are_unique_per_load_balancer,
            load_balancer_crud_and_listing,
            listener_views_and_backends,
            addresses_are_unique_and_reused,
            secrets_are_sealed_at_rest,
            state_survives_reopen,
            concurrent_binding_changes_keep_invariants,
            binding_rules_match_a_reference_model,
        );
    };
    (@each $harness:expr; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                let harness = $harness;
                super::$check(&harness);
            }
        )*
    };
}

mod sqlite {
    use super::Harness;
    use crate::secret::MasterKey;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{AddressPool, Store};

    /// A database file in its own temporary directory, removed when the test ends.
    struct SqliteHarness {
        dir: tempfile::TempDir,
    }

    impl SqliteHarness {
        fn new() -> SqliteHarness {
            SqliteHarness {
                dir: tempfile::tempdir().unwrap(),
            }
        }
    }

    impl Harness for SqliteHarness {
        fn open(&self, pool: AddressPool) -> Box<dyn Store> {
            let store = SqliteStore::open(
                &self.dir.path().join("certbind.db"),
                MasterKey::from_bytes([7; 32]),
                pool,
            )
            .unwrap();
            Box::new(store)
        }

        /// The database file, its WAL and shared-memory index: whatever SQLite wrote.
        fn persisted_bytes(&self) -> Vec<u8> {
            let mut bytes = Vec::new();
            for entry in std::fs::read_dir(self.dir.path()).unwrap() {
                bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
            }
            bytes
        }
    }

    conformance_tests!(SqliteHarness::new());
}
