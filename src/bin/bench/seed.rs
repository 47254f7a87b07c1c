//! Big stores for the scaling scenarios. A first `certbind serve` on a fresh data dir makes the
//! real rows through the API (two certificates — or, for `seed_many`, every certificate — the
//! load balancers, one template HTTPS VServer bound to A) and is stopped; then the bulk listeners
//! and bindings are inserted straight into the SQLite file, copying the template's columns, in
//! one transaction.
//!
//! Bulk SQL instead of a million API calls (or store calls: one transaction each) is a deliberate
//! shortcut for seeding only: it writes the same rows the store would (same columns as the
//! template, fresh sequence numbers from the `binding_seq` counter), but skips the store's checks.
//! Nothing measured goes through this path.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use rusqlite::{params, Connection, TransactionBehavior};

use crate::fixture;
use crate::serve::ServeProcess;

/// Bulk listeners per load balancer: ports 10000..59999, clear of the template's port.
const LISTENERS_PER_LB: usize = 50_000;
const FIRST_BULK_PORT: usize = 10_000;
const TEMPLATE_PORT: u16 = 8443;

/// Where a store file's database lives inside a data dir (the `serve` default).
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("certbind.db")
}

/// Opens a connection with the pragmas the store uses (WAL, synchronous=NORMAL, foreign keys).
pub fn connect(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    anyhow::ensure!(
        mode.eq_ignore_ascii_case("wal"),
        "journal_mode is {mode}, not WAL"
    );
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// A data dir whose store holds `bindings` CLB bindings of certificate A, one per HTTPS VServer.
pub struct Seeded {
    pub ssl_a: String,
    pub ssl_b: String,
    /// The VServer made through the API; scenarios flip this one.
    pub template_vserver: String,
    pub bindings: usize,
    /// Time of the bulk insert alone.
    pub bulk_time: Duration,
}

/// Makes the data dir `data_dir` (must not exist yet) with `bindings` bindings of A.
pub async fn seed(
    bin: &Path,
    data_dir: &Path,
    pool: &str,
    bindings: usize,
) -> anyhow::Result<Seeded> {
    anyhow::ensure!(bindings >= 1, "at least one binding");
    crate::serve::check_listener_capacity(bindings)?;
    println!(
        "seeding {}: {bindings} bindings of A ...",
        data_dir.display()
    );
    let bulk = bindings - 1;
    let lb_count = bulk.div_ceil(LISTENERS_PER_LB).max(1);
    let (ssl_a, ssl_b, lb_ids, template_vserver) = {
        let mut server = ServeProcess::start(bin, data_dir, pool)?;
        let client = server.client()?;
        let cert_dir = data_dir.parent().unwrap_or(data_dir);
        let ssl_a = fixture::create_ssl(&client, cert_dir, "seed-a.example").await?;
        let ssl_b = fixture::create_ssl(&client, cert_dir, "seed-b.example").await?;
        let mut lb_ids = Vec::with_capacity(lb_count);
        for i in 0..lb_count {
            lb_ids.push(fixture::create_clb(&client, &format!("seed-{i}")).await?);
        }
        let vserver =
            fixture::create_https_vserver(&client, &lb_ids[0], "template", TEMPLATE_PORT).await?;
        fixture::bind_ssl(&client, &ssl_a, &lb_ids[0], &vserver).await?;
        server.stop();
        (ssl_a, ssl_b, lb_ids, vserver)
    };
    let db = db_path(data_dir);
    let template = template_vserver.clone();
    let ids = lb_ids.clone();
    let bulk_time =
        tokio::task::spawn_blocking(move || bulk_insert(&db, &template, &ids, bulk, None))
            .await
            .context("the seeding thread panicked")??;
    Ok(Seeded {
        ssl_a,
        ssl_b,
        template_vserver,
        bindings,
        bulk_time,
    })
}

/// Inserts `count` listeners shaped like `template` over `lb_ids`, each bound like the template,
/// in one transaction; then checkpoints so the file stands alone (it may be copied next). With
/// `certs`, bulk listener `i` is bound to `certs[(i + 1) % certs.len()]` instead of the template's
/// certificate (the template itself being bound to `certs[0]`).
fn bulk_insert(
    db: &Path,
    template: &str,
    lb_ids: &[String],
    count: usize,
    certs: Option<&[String]>,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut conn = connect(db)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (template_pk, protocol, attrs, created_at): (i64, String, String, i64) = tx
        .query_row(
            "SELECT pk, protocol, attrs, created_at FROM listeners WHERE id = ?1",
            [template],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .context("reading the template VServer")?;
    let (ssl_pk, role): (i64, i64) = tx
        .query_row(
            "SELECT ssl_pk, role FROM bindings WHERE listener_pk = ?1",
            [template_pk],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .context("reading the template binding")?;
    tx.execute_batch("CREATE TEMP TABLE seed_lbs (idx INTEGER PRIMARY KEY, pk INTEGER NOT NULL)")?;
    for (idx, id) in lb_ids.iter().enumerate() {
        let inserted = tx.execute(
            "INSERT INTO seed_lbs (idx, pk) SELECT ?1, pk FROM load_balancers WHERE id = ?2",
            params![idx as i64, id],
        )?;
        anyhow::ensure!(inserted == 1, "load balancer {id} is not in the store");
    }
    let first_pk: i64 = tx.query_row(
        "SELECT COALESCE(MAX(pk), 0) + 1 FROM listeners",
        [],
        |row| row.get(0),
    )?;
    // Ids are `vserver-z` + 7 digits: the store's own ids are 8 random [0-9a-z], so a clash with
    // one made earlier is improbable, and UNIQUE would fail the seed loudly if it happened.
    tx.execute(
        "WITH RECURSIVE n(i) AS (SELECT 0 WHERE ?1 > 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1)
         INSERT INTO listeners (id, lb_pk, name, protocol, port, attrs, created_at)
         SELECT printf('vserver-z%07d', i), (SELECT pk FROM seed_lbs WHERE idx = i / ?2),
                printf('bulk-%d', i), ?3, ?4 + i % ?2, ?5, ?6
         FROM n",
        params![
            count as i64,
            LISTENERS_PER_LB as i64,
            protocol,
            FIRST_BULK_PORT as i64,
            attrs,
            created_at
        ],
    )?;
    // Rowids of a table without AUTOINCREMENT continue from MAX(pk), so the new listeners are
    // exactly pk >= first_pk; their sequence numbers come after everything bound so far.
    let seq_before: i64 = tx.query_row(
        "SELECT value FROM counters WHERE name = 'binding_seq'",
        [],
        |row| row.get(0),
    )?;
    let bound = match certs {
        None => tx.execute(
            "INSERT INTO bindings (ssl_pk, listener_pk, role, seq)
             SELECT ?1, pk, ?2, ?3 + 1 + pk - ?4 FROM listeners WHERE pk >= ?4 ORDER BY pk",
            params![ssl_pk, role, seq_before, first_pk],
        )?,
        Some(certs) => {
            anyhow::ensure!(!certs.is_empty(), "no certificates to bind");
            tx.execute_batch(
                "CREATE TEMP TABLE seed_certs (idx INTEGER PRIMARY KEY, pk INTEGER NOT NULL)",
            )?;
            for (idx, id) in certs.iter().enumerate() {
                let inserted = tx.execute(
                    "INSERT INTO seed_certs (idx, pk)
                     SELECT ?1, pk FROM certificates WHERE id = ?2",
                    params![idx as i64, id],
                )?;
                anyhow::ensure!(inserted == 1, "certificate {id} is not in the store");
            }
            let bound = tx.execute(
                "INSERT INTO bindings (ssl_pk, listener_pk, role, seq)
                 SELECT (SELECT c.pk FROM seed_certs AS c WHERE c.idx = (l.pk - ?3 + 1) % ?4),
                        l.pk, ?1, ?2 + 1 + l.pk - ?3
                 FROM listeners AS l WHERE l.pk >= ?3 ORDER BY l.pk",
                params![role, seq_before, first_pk, certs.len() as i64],
            )?;
            tx.execute_batch("DROP TABLE seed_certs")?;
            bound
        }
    };
    anyhow::ensure!(
        bound == count,
        "bound {bound} bulk listeners, expected {count}"
    );
    tx.execute(
        "UPDATE counters SET value = ?1 WHERE name = 'binding_seq'",
        [seq_before + count as i64],
    )?;
    tx.execute_batch("DROP TABLE seed_lbs")?;
    tx.commit()?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(started.elapsed())
}

/// A store of `listeners` HTTPS VServers and as many certificates as were given, VServer `j`
/// bound to certificate `j % certificates` (the `scale` scenario).
pub struct SeededMany {
    pub ssl_ids: Vec<String>,
    /// Every VServer's address and the index of its certificate, in `j` order.
    pub listeners: Vec<(SocketAddr, usize)>,
    /// Time of the CreateSSL calls, and of the bulk insert.
    pub upload_time: Duration,
    pub bulk_time: Duration,
}

/// Makes the data dir `data_dir` (must not exist yet): every certificate (PEM certificate, PEM
/// key) uploaded through the API with `CreateSSL`, `concurrency` calls at a time (their keys are
/// sealed with the server's master key, so they cannot be bulk-inserted); the VServers and
/// bindings beyond the template bulk-inserted as in `seed`.
pub async fn seed_many(
    bin: &Path,
    data_dir: &Path,
    pool: &str,
    listeners: usize,
    certs: &[(String, String)],
    concurrency: usize,
) -> anyhow::Result<SeededMany> {
    anyhow::ensure!(listeners >= 1, "at least one listener");
    anyhow::ensure!(!certs.is_empty(), "at least one certificate");
    crate::serve::check_listener_capacity(listeners)?;
    let bulk = listeners - 1;
    let lb_count = bulk.div_ceil(LISTENERS_PER_LB).max(1);
    let mut server = ServeProcess::start(bin, data_dir, pool)?;
    let client = server.client()?;
    let started = Instant::now();
    let mut ssl_ids = vec![String::new(); certs.len()];
    let mut calls = tokio::task::JoinSet::new();
    for (idx, (cert, key)) in certs.iter().enumerate() {
        if calls.len() >= concurrency.max(1) {
            let joined = calls.join_next().await.context("no upload running")?;
            let (done, id) = joined.context("an upload task panicked")??;
            ssl_ids[done] = id;
        }
        let (client, cert, key) = (client.clone(), cert.clone(), key.clone());
        calls.spawn(async move {
            let id = fixture::upload_ssl(&client, &format!("scale-{idx}"), &cert, &key).await?;
            anyhow::Ok((idx, id))
        });
    }
    while let Some(joined) = calls.join_next().await {
        let (done, id) = joined.context("an upload task panicked")??;
        ssl_ids[done] = id;
    }
    let upload_time = started.elapsed();
    let mut lb_ids = Vec::with_capacity(lb_count);
    let mut lb_ips = Vec::with_capacity(lb_count);
    for i in 0..lb_count {
        let id = fixture::create_clb(&client, &format!("scale-{i}")).await?;
        lb_ips.push(fixture::private_ip(&client, &id).await?);
        lb_ids.push(id);
    }
    let template =
        fixture::create_https_vserver(&client, &lb_ids[0], "template", TEMPLATE_PORT).await?;
    fixture::bind_ssl(&client, &ssl_ids[0], &lb_ids[0], &template).await?;
    server.stop();

    let db = db_path(data_dir);
    let ids = lb_ids.clone();
    let certs_bound = ssl_ids.clone();
    let bulk_time = tokio::task::spawn_blocking(move || {
        bulk_insert(&db, &template, &ids, bulk, Some(&certs_bound))
    })
    .await
    .context("the seeding thread panicked")??;
    let mut addrs = Vec::with_capacity(listeners);
    addrs.push((SocketAddr::new(lb_ips[0], TEMPLATE_PORT), 0));
    for i in 0..bulk {
        let port = u16::try_from(FIRST_BULK_PORT + i % LISTENERS_PER_LB)?;
        addrs.push((
            SocketAddr::new(lb_ips[i / LISTENERS_PER_LB], port),
            (i + 1) % certs.len(),
        ));
    }
    Ok(SeededMany {
        ssl_ids,
        listeners: addrs,
        upload_time,
        bulk_time,
    })
}

/// Copies a checkpointed, closed database file (no WAL content left) to `to`.
pub fn copy_db(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// The row key of a certificate id.
pub fn certificate_pk(conn: &Connection, ssl_id: &str) -> anyhow::Result<i64> {
    conn.query_row(
        "SELECT pk FROM certificates WHERE id = ?1",
        [ssl_id],
        |row| row.get(0),
    )
    .with_context(|| format!("certificate {ssl_id} is not in the store"))
}
