//! `scale`: startup of `certbind serve` on a store with many certificates and HTTPS listeners,
//! each listener bound to its own certificate. Reports the time from spawning the process to its
//! `listening on` line (printed after every listener is open) and its resident memory then, next
//! to the same figures for an empty store measured in the same run, and proves the big store
//! serves with one handshake to a random listener per start, which must present that listener's
//! certificate.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use rand::Rng;

use crate::fixture;
use crate::procfs;
use crate::report::{as_nanos, ms, Spread};
use crate::seed;
use crate::serve::{self, ServeProcess, Workdir};
use crate::tls::{Fingerprint, TlsClient, ATTEMPT_TIMEOUT, SERVER_NAME};
use crate::ServeArgs;

#[derive(Args, Debug)]
pub struct ScaleArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// HTTPS VServers in the store (one listening socket each; `ulimit -n` must allow them).
    #[arg(long, default_value_t = 10_000)]
    pub listeners: usize,
    /// Certificates in the store; VServer j is bound to certificate j mod this.
    #[arg(long, default_value_t = 10_000)]
    pub certificates: usize,
    /// Distinct ECDSA P-256 key pairs to make with openssl (default: one per certificate; fewer
    /// is faster to seed, and certificate k then reuses pair k mod this, still as its own row).
    #[arg(long)]
    pub key_pairs: Option<usize>,
    /// CreateSSL calls in flight while seeding.
    #[arg(long, default_value_t = 4)]
    pub upload_concurrency: usize,
    /// Starts measured per store (empty and big, alternating).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
}

/// One measured start.
struct Start {
    ready: Duration,
    rss: Option<u64>,
    peak: Option<u64>,
}

pub async fn run(args: ScaleArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.listeners >= 1 && args.certificates >= 1 && args.repeat >= 1,
        "--listeners, --certificates and --repeat must be ≥ 1"
    );
    let pairs = args
        .key_pairs
        .unwrap_or(args.certificates)
        .clamp(1, args.certificates);
    // Before minutes of seeding: a store that cannot open its listeners here is no figure.
    serve::check_listener_capacity(args.listeners)?;
    let bin = serve::certbind_bin(&args.serve)?;
    let workdir = Workdir::new(args.serve.keep_data)?;

    let threads = crate::default_threads();
    println!("making {pairs} ECDSA P-256 certificates with openssl, {threads} at a time ...");
    let started = Instant::now();
    let material = make_pairs(&workdir.path.join("keys"), pairs, threads).await?;
    println!("  took {:.1} s", started.elapsed().as_secs_f64());
    let certs: Vec<(String, String)> = (0..args.certificates)
        .map(|k| material[k % pairs].clone())
        .collect();
    let fingerprints: Vec<Fingerprint> = certs
        .iter()
        .map(|(cert, _)| Fingerprint::of_pem(cert))
        .collect::<anyhow::Result<_>>()?;

    let big_dir = workdir.path.join("big");
    println!(
        "seeding {}: {} certificates through CreateSSL, {} HTTPS VServers ...",
        big_dir.display(),
        args.certificates,
        args.listeners
    );
    let seeded = seed::seed_many(
        &bin,
        &big_dir,
        serve::ADDRESS_POOL,
        args.listeners,
        &certs,
        args.upload_concurrency,
    )
    .await?;
    println!(
        "  CreateSSL × {} took {:.1} s ({} at a time); bulk insert of {} VServers and bindings \
         {} ms",
        seeded.ssl_ids.len(),
        seeded.upload_time.as_secs_f64(),
        args.upload_concurrency,
        args.listeners - 1,
        ms(as_nanos(seeded.bulk_time))
    );
    // The baseline: the same binary on a store with nothing in it (bootstrapped once, so its
    // measured starts do not include making the master key and credentials).
    let empty_dir = workdir.path.join("empty");
    ServeProcess::start(&bin, &empty_dir, serve::ADDRESS_POOL)?.stop();

    let client = TlsClient::new(false)?;
    let (mut empty, mut big) = (Vec::new(), Vec::new());
    for _ in 0..args.repeat {
        empty.push(start(&bin, &empty_dir)?.0);
        let (measured, mut server) = start(&bin, &big_dir)?;
        let j = rand::thread_rng().gen_range(0..seeded.listeners.len());
        let (addr, cert) = seeded.listeners[j];
        let checked = tokio::time::timeout(ATTEMPT_TIMEOUT, client.connect(addr))
            .await
            .context("no handshake within the timeout")
            .and_then(|result| result);
        match checked {
            Ok((_, leaf)) if leaf == fingerprints[cert] => println!(
                "  handshake to VServer {j} on {addr} (SNI {SERVER_NAME}): certificate {cert} \
                 ({}) presented, as bound",
                leaf.short()
            ),
            Ok((_, leaf)) => {
                anyhow::bail!(
                    "VServer {j} on {addr} presented {} instead of certificate {cert} ({})",
                    leaf.short(),
                    fingerprints[cert].short()
                )
            }
            Err(err) => {
                eprintln!("certbind log (last lines):\n{}", server.log_tail());
                return Err(err.context(format!("handshake to VServer {j} on {addr}")));
            }
        }
        server.stop();
        big.push(measured);
    }
    print(&args, pairs, &empty, &big);
    Ok(())
}

/// Spawns `certbind serve` on `data_dir` and times it to its `listening on` line; reads its
/// memory right then. Returns the still running server.
fn start(
    bin: &std::path::Path,
    data_dir: &std::path::Path,
) -> anyhow::Result<(Start, ServeProcess)> {
    let spawned = Instant::now();
    let server = ServeProcess::start(bin, data_dir, serve::ADDRESS_POOL)?;
    let ready = spawned.elapsed();
    let pid = server.pid().context("the server has no pid")?;
    let measured = Start {
        ready,
        rss: procfs::status_bytes(pid, "VmRSS"),
        peak: procfs::status_bytes(pid, "VmHWM"),
    };
    Ok((measured, server))
}

/// `count` self-signed certificates (PEM certificate, PEM key), `threads` openssl processes at a
/// time.
async fn make_pairs(
    dir: &std::path::Path,
    count: usize,
    threads: usize,
) -> anyhow::Result<Vec<(String, String)>> {
    let threads = threads.clamp(1, count);
    let mut tasks = tokio::task::JoinSet::new();
    for part in 0..threads {
        let dir = dir.to_path_buf();
        tasks.spawn_blocking(move || {
            let mut made = Vec::new();
            for k in (part..count).step_by(threads) {
                let own = dir.join(k.to_string());
                std::fs::create_dir_all(&own)
                    .with_context(|| format!("creating {}", own.display()))?;
                made.push((k, fixture::self_signed(&own, SERVER_NAME)?));
            }
            anyhow::Ok(made)
        });
    }
    let mut pairs = vec![(String::new(), String::new()); count];
    while let Some(joined) = tasks.join_next().await {
        for (k, pair) in joined.context("a certificate thread panicked")?? {
            pairs[k] = pair;
        }
    }
    Ok(pairs)
}

fn print(args: &ScaleArgs, pairs: usize, empty: &[Start], big: &[Start]) {
    println!(
        "scale: {} HTTPS VServers, {} certificates ({pairs} distinct key pairs), VServer j bound \
         to certificate j mod {}; {} starts per store, alternating",
        args.listeners, args.certificates, args.certificates, args.repeat
    );
    let mb = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    let summary = |starts: &[Start]| {
        let ready: Vec<f64> = starts.iter().map(|s| s.ready.as_secs_f64() * 1e3).collect();
        let rss: Vec<f64> = starts.iter().filter_map(|s| s.rss).map(mb).collect();
        let peak: Vec<f64> = starts.iter().filter_map(|s| s.peak).map(mb).collect();
        (Spread::of(&ready), Spread::of(&rss), Spread::of(&peak))
    };
    let show = |spread: Option<Spread>, decimals: usize| {
        spread.map_or_else(|| "-".to_string(), |s| s.show(decimals))
    };
    println!(
        "{:<22} {:>28} {:>24} {:>24}",
        "median [min–max]", "spawn → ready ms", "VmRSS at ready MB", "VmHWM at ready MB"
    );
    let (empty_ready, empty_rss, empty_peak) = summary(empty);
    let (big_ready, big_rss, big_peak) = summary(big);
    println!(
        "{:<22} {:>28} {:>24} {:>24}",
        "empty store",
        show(empty_ready, 1),
        show(empty_rss, 1),
        show(empty_peak, 1)
    );
    println!(
        "{:<22} {:>28} {:>24} {:>24}",
        format!("{} VServers", args.listeners),
        show(big_ready, 1),
        show(big_rss, 1),
        show(big_peak, 1)
    );
    if let (Some(empty_ready), Some(big_ready), Some(empty_rss), Some(big_rss)) =
        (empty_ready, big_ready, empty_rss, big_rss)
    {
        let per = args.listeners as f64;
        println!(
            "per VServer (medians, big minus empty store): startup {:.1} µs, resident memory \
             {:.1} KB",
            (big_ready.median - empty_ready.median) * 1e3 / per,
            (big_rss.median - empty_rss.median) * 1024.0 / per
        );
    }
}
