//! `project-wide`: one UpdateSSLBinding without LoadBalancerId/ListenerId over N bindings of A,
//! timed through the API, against the bare SQL `UPDATE bindings SET ssl_pk = ? WHERE ssl_pk = ?`
//! of the same rows on a copy of the same database file with the same pragmas. Repeated, flipping
//! direction each time (A→B, B→A, …); the medians are compared.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use rusqlite::{Connection, TransactionBehavior};

use crate::report::{self, as_nanos, median, ms};
use crate::seed::{self, Seeded};
use crate::serve::{self, ServeProcess, Workdir};
use crate::ServeArgs;

use super::{post_ok, replaced, signed};

/// The goal of the issue: the API may cost at most twice the bare UPDATE.
const GOAL: f64 = 2.0;

#[derive(Args, Debug)]
pub struct ProjectWideArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Store sizes to measure, comma-separated: N bindings of A, one per HTTPS VServer.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    pub bindings: Vec<usize>,
    /// Timed updates per size (each direction flips back the previous one).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
}

pub async fn run(args: ProjectWideArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.repeat >= 1, "--repeat must be at least 1");
    let bin = serve::certbind_bin(&args.serve)?;
    let workdir = Workdir::new(args.serve.keep_data)?;
    let mut unmeasured = Vec::new();
    for &count in &args.bindings {
        // One size that cannot be measured here must not hide the others.
        if let Err(err) = run_size(&bin, &workdir, count, args.repeat).await {
            println!("project-wide: {count} bindings NOT MEASURED: {err:#}");
            unmeasured.push(count);
        }
    }
    anyhow::ensure!(unmeasured.is_empty(), "sizes not measured: {unmeasured:?}");
    Ok(())
}

async fn run_size(
    bin: &Path,
    workdir: &Workdir,
    count: usize,
    repeat: usize,
) -> anyhow::Result<()> {
    let data_dir = workdir.path.join(format!("project-wide-{count}"));
    let seeded = seed::seed(bin, &data_dir, serve::ADDRESS_POOL, count).await?;
    println!("  bulk insert took {} ms", ms(as_nanos(seeded.bulk_time)));
    let raw_path = workdir.path.join(format!("project-wide-{count}-raw.db"));
    seed::copy_db(&seed::db_path(&data_dir), &raw_path)?;
    let mut raw = seed::connect(&raw_path)?;
    let server = ServeProcess::start(bin, &data_dir, serve::ADDRESS_POOL)?;
    let result = measure(&server, &mut raw, &seeded, repeat).await;
    if result.is_err() {
        eprintln!("certbind log (last lines):\n{}", server.log_tail());
    }
    result
}

async fn measure(
    server: &ServeProcess,
    raw: &mut Connection,
    seeded: &Seeded,
    repeat: usize,
) -> anyhow::Result<()> {
    let endpoint = server.endpoint()?;
    let client = server.client()?;
    let count = i64::try_from(seeded.bindings)?;
    let (a, b) = (seeded.ssl_a.as_str(), seeded.ssl_b.as_str());
    let a_pk = seed::certificate_pk(raw, a)?;
    let b_pk = seed::certificate_pk(raw, b)?;
    let forward = signed(
        &endpoint,
        "UpdateSSLBinding",
        &[("OldSSLId", a), ("NewSSLId", b)],
    );
    let back = signed(
        &endpoint,
        "UpdateSSLBinding",
        &[("OldSSLId", b), ("NewSSLId", a)],
    );
    // Opens the keep-alive connection so the timed calls do not include a connect. The id is
    // well-formed but unknown: DescribeSSL answers an empty page without touching the bindings.
    let warm = signed(&endpoint, "DescribeSSL", &[("SSLId", "ssl-00000000")]);
    post_ok(&client, &warm).await?;

    println!(
        "project-wide: {} bindings of A, UpdateSSLBinding without LoadBalancerId/ListenerId \
         vs raw UPDATE on a copy (WAL, synchronous=NORMAL, foreign_keys=ON)",
        seeded.bindings
    );
    println!(
        "{:<8} {:>12} {:>12} {:>8}",
        "run", "api ms", "raw SQL ms", "ratio"
    );
    let (mut api_times, mut raw_times) = (Vec::new(), Vec::new());
    for run in 0..repeat {
        let (body, old_pk, new_pk, label) = if run % 2 == 0 {
            (&forward, a_pk, b_pk, "A→B")
        } else {
            (&back, b_pk, a_pk, "B→A")
        };
        let started = Instant::now();
        let answer = post_ok(&client, body).await?;
        let api = started.elapsed();
        anyhow::ensure!(
            replaced(&answer) == Some(count),
            "expected ReplacedCount {count}: {answer}"
        );
        let sql = raw_update(raw, old_pk, new_pk, seeded.bindings)?;
        println!(
            "{:<8} {:>12} {:>12} {:>8.2}",
            format!("{} {label}", run + 1),
            ms(as_nanos(api)),
            ms(as_nanos(sql)),
            api.as_secs_f64() / sql.as_secs_f64()
        );
        api_times.push(api);
        raw_times.push(sql);
    }
    let (api, sql) = (median(&api_times), median(&raw_times));
    println!(
        "median of {repeat}: api {} ms, raw SQL {} ms",
        ms(as_nanos(api)),
        ms(as_nanos(sql))
    );
    report::print_ratio(
        &format!("ratio ({} bindings) = api ÷ raw SQL", seeded.bindings),
        api,
        sql,
        GOAL,
    );
    Ok(())
}

/// The bare statement in its own write transaction, timed from BEGIN to COMMIT.
fn raw_update(
    conn: &mut Connection,
    old_pk: i64,
    new_pk: i64,
    expected: usize,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let changed = tx
        .execute(
            "UPDATE bindings SET ssl_pk = ?1 WHERE ssl_pk = ?2",
            [new_pk, old_pk],
        )
        .context("raw UPDATE")?;
    tx.commit()?;
    let elapsed = started.elapsed();
    anyhow::ensure!(
        changed == expected,
        "raw UPDATE changed {changed} rows, expected {expected}"
    );
    Ok(elapsed)
}
