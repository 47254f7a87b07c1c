//! SQLite-only checks the backend-neutral conformance suite cannot express: query plans, the JSON
//! key lists, migration bookkeeping and concurrent opens, and printed (never asserted) timings of
//! `replace_certificate` against the bare UPDATE.

use super::bindings::{replace_sql, IN_PROJECT, ON_LISTENER, ON_LOAD_BALANCER};
use super::lookup::{CERTIFICATE_BY_ID, LISTENER_BY_ID};
use super::views::{json_ids, json_keys};
use super::{SqliteStore, MIGRATIONS};
use crate::model::{Attrs, LbKind, Scope};
use crate::secret::MasterKey;
use crate::store::{
    AddressPool, BindingScope, NewCertificate, NewListener, NewLoadBalancer, Store,
};
use rusqlite::{params, Connection, TransactionBehavior};
use std::path::Path;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, MasterKey::from_bytes([9; 32]), AddressPool::default()).unwrap()
}

/// The `detail` column of `EXPLAIN QUERY PLAN`.
fn plan(conn: &Connection, sql: &str) -> Vec<String> {
    let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    // Planned without values: `raw_query` skips the parameter-count check of `query`.
    let mut rows = statement.raw_query();
    let mut details = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        details.push(row.get::<_, String>(3).unwrap());
    }
    details
}

#[test]
fn hot_statements_search_indexes_never_scan_tables() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("plans.db"));
    // A connection of its own: the writer's runs on its thread, and these statements only read.
    let own = super::connect(&store.path).unwrap();
    let conn = &own;
    let views_listeners = "SELECT l.pk FROM listeners l JOIN load_balancers lb ON lb.pk = l.lb_pk
                           WHERE l.pk IN (SELECT value FROM json_each(?1))";
    let views_bindings = "SELECT b.listener_pk, c.id FROM bindings b
                          JOIN certificates c ON c.pk = b.ssl_pk
                          WHERE b.listener_pk IN (SELECT value FROM json_each(?1))";
    let views_backends =
        "SELECT pk FROM backends WHERE listener_pk IN (SELECT value FROM json_each(?1))";
    let listener_ids = "SELECT pk FROM listeners WHERE id IN (SELECT value FROM json_each(?1))";
    let statements = [
        (
            "replace, project",
            replace_sql(IN_PROJECT),
            "bindings_ssl (ssl_pk=?)",
        ),
        (
            "replace, load balancer",
            replace_sql(ON_LOAD_BALANCER),
            "(ssl_pk=? AND listener_pk=?)",
        ),
        ("replace, listener", replace_sql(ON_LISTENER), "ssl_pk=?"),
        ("certificate by id", CERTIFICATE_BY_ID.to_string(), "(id=?)"),
        ("listener by id", LISTENER_BY_ID.to_string(), "(id=?)"),
        ("views: listeners", views_listeners.to_string(), "(rowid=?)"),
        (
            "views: bindings",
            views_bindings.to_string(),
            "(listener_pk=?)",
        ),
        (
            "views: backends",
            views_backends.to_string(),
            "(listener_pk=?)",
        ),
        ("data plane ids", listener_ids.to_string(), "(id=?)"),
    ];
    for (name, sql, expected) in statements {
        let lines = plan(conn, &sql);
        println!("{name}:\n  {}", lines.join("\n  "));
        let joined = lines.join("\n");
        assert!(
            joined.contains(expected),
            "{name}: expected {expected} in\n{joined}"
        );
        for line in &lines {
            // Walking the JSON key list is the point; walking a table would grow with its size.
            assert!(
                !line.starts_with("SCAN") || line.contains("json_each"),
                "{name} scans a table: {line}"
            );
        }
    }
}

#[test]
fn json_key_lists_round_trip_through_json_each() {
    let conn = Connection::open_in_memory().unwrap();
    let ids = vec![
        "als-plain".to_string(),
        "quote\"back\\slash".to_string(),
        "control\u{1}\n\t".to_string(),
        "ünïcödé ✓".to_string(),
        String::new(),
    ];
    let back: Vec<String> = conn
        .prepare("SELECT value FROM json_each(?1)")
        .unwrap()
        .query_map([json_ids(&ids)], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(back, ids);
    let keys = vec![1, -5, i64::MAX, 0];
    let back: Vec<i64> = conn
        .prepare("SELECT value FROM json_each(?1)")
        .unwrap()
        .query_map([json_keys(&keys)], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(back, keys);
    assert_eq!(json_ids(&[]), "[]");
}

#[test]
fn migrations_apply_once_and_refuse_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("migrate.db");
    // Several "processes" opening a fresh file at once: each migration is applied exactly once.
    std::thread::scope(|threads| {
        for _ in 0..4 {
            threads.spawn(|| drop(open(&path)));
        }
    });
    let store = open(&path);
    {
        let own = super::connect(&store.path).unwrap();
        let conn = &own;
        let version: usize = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len());
        let counters: i64 = conn
            .query_row("SELECT COUNT(*) FROM counters", [], |row| row.get(0))
            .unwrap();
        assert_eq!(counters, 1);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let foreign_keys: bool = conn
            .query_row("PRAGMA foreign_keys", [], |row| row.get(0))
            .unwrap();
        assert!(foreign_keys);
        conn.pragma_update(None, "user_version", MIGRATIONS.len() + 1)
            .unwrap();
    }
    drop(store);
    let error = SqliteStore::open(
        &path,
        MasterKey::from_bytes([9; 32]),
        AddressPool::default(),
    )
    .unwrap_err();
    assert!(format!("{error:#}").contains("newer"), "{error:#}");
}

#[test]
fn a_wrong_master_key_fails_loudly_instead_of_returning_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let credentials = open(&path).create_account("alice").unwrap();
    let other = SqliteStore::open(
        &path,
        MasterKey::from_bytes([1; 32]),
        AddressPool::default(),
    )
    .unwrap();
    assert!(matches!(
        other.lookup_key(&credentials.public_key),
        Err(crate::store::StoreError::Backend(_))
    ));
}

// ---- timings (printed, never asserted: see STYLE "Performance lives in benchmarks") ----

struct Seeded {
    store: SqliteStore,
    scope: Scope,
    a: String,
    b: String,
    a_pk: i64,
    b_pk: i64,
    listener_ids: Vec<String>,
}

fn certificate(name: &str) -> NewCertificate {
    NewCertificate {
        name: name.to_string(),
        content: format!("content {name}"),
        key_pem: Zeroizing::new(format!("key {name}")),
        chain_pem: format!("chain {name}"),
        hash_value: String::new(),
        domains: String::new(),
        dns_names: Vec::new(),
        not_before: 0,
        not_after: 0,
    }
}

/// A store with `count` HTTPS VServers, each bound to certificate A: the first made through the
/// store, the rest inserted in bulk the way the benchmark's seeder does (ids `vserver-z…`).
fn seed(path: &Path, count: usize) -> Seeded {
    let store = open(path);
    let credentials = store.create_account("bench").unwrap();
    let account_id = store
        .lookup_key(&credentials.public_key)
        .unwrap()
        .unwrap()
        .account_id;
    let scope = Scope {
        account_id,
        project_id: credentials.project_id,
        region: "sg".to_string(),
    };
    let a = store
        .create_certificate(&scope, certificate("a"))
        .unwrap()
        .id;
    let b = store
        .create_certificate(&scope, certificate("b"))
        .unwrap()
        .id;
    // VServer ports are unique per load balancer: 50,000 per CLB.
    let per_lb = 50_000;
    let lbs: Vec<String> = (0..count.div_ceil(per_lb).max(1))
        .map(|i| {
            store
                .create_load_balancer(
                    &scope,
                    NewLoadBalancer {
                        kind: LbKind::Clb,
                        name: format!("lb{i}"),
                        tag: String::new(),
                        remark: String::new(),
                        attrs: Attrs::new(),
                    },
                )
                .unwrap()
                .id
        })
        .collect();
    let first = store
        .create_listener(
            &scope,
            LbKind::Clb,
            &lbs[0],
            NewListener {
                name: "first".to_string(),
                protocol: "HTTPS".to_string(),
                port: 1,
                attrs: Attrs::new(),
                default_certificate: None,
            },
        )
        .unwrap()
        .id;
    store.bind_clb(&scope, &lbs[0], &first, &a).unwrap();
    let (a_pk, b_pk) = {
        let mut own = super::connect(&store.path).unwrap();
        let conn = &mut own;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        let pk_of = |id: &str| -> i64 {
            tx.query_row("SELECT pk FROM certificates WHERE id = ?1", [id], |row| {
                row.get(0)
            })
            .unwrap()
        };
        let (a_pk, b_pk) = (pk_of(&a), pk_of(&b));
        let lb_pks: Vec<i64> = lbs
            .iter()
            .map(|id| {
                tx.query_row("SELECT pk FROM load_balancers WHERE id = ?1", [id], |row| {
                    row.get(0)
                })
                .unwrap()
            })
            .collect();
        let bulk = count - 1;
        let first_lb = lb_pks[0];
        tx.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 WHERE ?1 >= 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
             INSERT INTO listeners (id, lb_pk, name, protocol, port, attrs, created_at)
             SELECT printf('vserver-z%07d', i), ?2 + i / ?3, 'bulk', 'HTTPS', 1 + i % ?3, '', 0
             FROM n",
            params![bulk as i64, first_lb, per_lb as i64],
        )
        .unwrap();
        let bound = tx
            .execute(
                "INSERT INTO bindings (ssl_pk, listener_pk, role, seq)
                 SELECT ?1, pk, 0, pk FROM listeners WHERE name = 'bulk'",
                [a_pk],
            )
            .unwrap();
        assert_eq!(bound, bulk);
        tx.execute(
            "UPDATE counters SET value = value + ?1 WHERE name = 'binding_seq'",
            [count as i64 * 2],
        )
        .unwrap();
        tx.commit().unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        (a_pk, b_pk)
    };
    let mut listener_ids = vec![first];
    listener_ids.extend((1..count).map(|i| format!("vserver-z{i:07}")));
    Seeded {
        store,
        scope,
        a,
        b,
        a_pk,
        b_pk,
        listener_ids,
    }
}

fn raw_update(store: &SqliteStore, old_pk: i64, new_pk: i64) -> (usize, Duration) {
    let mut own = super::connect(&store.path).unwrap();
    let conn = &mut own;
    let started = Instant::now();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .unwrap();
    let changed = tx
        .execute(
            "UPDATE bindings SET ssl_pk = ?1 WHERE ssl_pk = ?2",
            [new_pk, old_pk],
        )
        .unwrap();
    tx.commit().unwrap();
    (changed, started.elapsed())
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Mean time of `rounds` one-listener replacements, alternating A→B and B→A, after a checkpoint
/// and a warm-up, so neither store pays for WAL left over from earlier bulk changes.
fn one_listener_replace(seeded: &Seeded, listener: &str, rounds: usize) -> Duration {
    let within = BindingScope {
        lb_id: None,
        listener_id: Some(listener.to_string()),
    };
    super::connect(&seeded.store.path)
        .unwrap()
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let mut started = Instant::now();
    for round in 0..rounds + 20 {
        if round == 20 {
            started = Instant::now();
        }
        let (old, new) = if round % 2 == 0 {
            (&seeded.a, &seeded.b)
        } else {
            (&seeded.b, &seeded.a)
        };
        let change = seeded
            .store
            .replace_certificate(&seeded.scope, old, new, &within)
            .unwrap();
        assert_eq!(change.replaced, 1);
    }
    started.elapsed() / u32::try_from(rounds).unwrap()
}

/// Debug-build figures only (release runs are for `certbind-bench`); the assertions check that
/// every call replaced what it should, never how long it took.
#[test]
fn replace_certificate_timing_figures() {
    const BIG: usize = 100_000;
    const SMALL: usize = 1_000;
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let big = seed(&dir.path().join("big.db"), BIG);
    let small = seed(&dir.path().join("small.db"), SMALL);
    println!(
        "seeded {BIG} and {SMALL} bindings in {:.0} ms",
        ms(started.elapsed())
    );

    println!("project-wide replace of {BIG} bindings (debug build):");
    println!(
        "{:>6} {:>12} {:>12} {:>7}",
        "run", "store ms", "raw ms", "ratio"
    );
    for run in 0..3 {
        let started = Instant::now();
        let change = big
            .store
            .replace_certificate(&big.scope, &big.a, &big.b, &BindingScope::default())
            .unwrap();
        let api = started.elapsed();
        assert_eq!(change.replaced, BIG);
        assert_eq!(change.listener_ids.len(), BIG);
        let (changed, raw) = raw_update(&big.store, big.b_pk, big.a_pk);
        assert_eq!(changed, BIG);
        println!(
            "{:>6} {:>12.1} {:>12.1} {:>7.2}",
            run + 1,
            ms(api),
            ms(raw),
            api.as_secs_f64() / raw.as_secs_f64()
        );
    }

    let started = Instant::now();
    let views = big
        .store
        .dataplane_listeners(Some(&big.listener_ids))
        .unwrap();
    assert_eq!(views.len(), BIG);
    println!(
        "dataplane_listeners for the {BIG} replaced listeners: {:.0} ms",
        ms(started.elapsed())
    );
    let started = Instant::now();
    assert_eq!(big.store.dataplane_listeners(None).unwrap().len(), BIG);
    println!("dataplane_listeners(None): {:.0} ms", ms(started.elapsed()));

    let rounds = 200;
    let on_big = one_listener_replace(&big, &big.listener_ids[BIG / 2], rounds);
    let on_small = one_listener_replace(&small, &small.listener_ids[SMALL / 2], rounds);
    println!(
        "one-listener replace, mean of {rounds}: {:.1} us with {BIG} bindings, {:.1} us with \
         {SMALL} (ratio {:.2})",
        on_big.as_secs_f64() * 1e6,
        on_small.as_secs_f64() * 1e6,
        on_big.as_secs_f64() / on_small.as_secs_f64()
    );
}

/// Concurrent writers share transactions (group commit), yet each call stays atomic on its own:
/// a failing call in the middle of a batch changes nothing and does not fail its neighbours.
#[test]
fn group_commit_keeps_every_call_atomic() {
    use crate::store::{Paging, StoreError};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir.path().join("group.db")));
    let credentials = store.create_account("group").unwrap();
    let key = store.lookup_key(&credentials.public_key).unwrap().unwrap();
    let scope = Scope {
        account_id: key.account_id,
        project_id: credentials.project_id.clone(),
        region: "cn-bj2".into(),
    };
    const THREADS: usize = 8;
    const CALLS: usize = 60;
    let ids: Vec<String> = (0..THREADS)
        .map(|t| {
            store
                .create_certificate(&scope, certificate(&format!("t{t}")))
                .unwrap()
                .id
        })
        .collect();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (store, scope, id) = (store.clone(), scope.clone(), ids[t].clone());
            std::thread::spawn(move || {
                for call in 0..CALLS {
                    if call % 7 == 3 {
                        let err = store
                            .rename_certificate(&scope, "ssl-nosuch", "x")
                            .unwrap_err();
                        assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
                    }
                    store
                        .rename_certificate(&scope, &id, &format!("t{t}-{call}"))
                        .unwrap();
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    let page = store
        .describe_certificates(
            &scope,
            None,
            Paging {
                offset: 0,
                limit: 100,
            },
        )
        .unwrap();
    for (t, view) in page.items.iter().enumerate() {
        assert_eq!(view.certificate.name, format!("t{t}-{}", CALLS - 1));
    }
}
