//! `table-size`: does a one-listener UpdateSSLBinding stay cheap as the bindings table grows? Two
//! stores, small and large, every binding of certificate A (the hard case for an index: the old
//! certificate is bound everywhere); one VServer is flipped A→B, B→A on each. Both servers run at
//! once and the flips alternate between them, so machine drift hits both series alike.

use std::time::{Duration, Instant};

use clap::Args;

use crate::report::{self, as_nanos, ms, Latency};
use crate::seed::{self, Seeded};
use crate::serve::{self, ServeProcess, Workdir};
use crate::ServeArgs;

use super::{post_ok, replaced, signed};

/// The goal of the issue: the large store may be at most 1.5× slower per flip.
const GOAL: f64 = 1.5;

/// Each server gets its own half of the bench's address pool, so their load balancers never
/// share an address.
const SMALL_POOL: &str = "127.3.0.0/17";
const LARGE_POOL: &str = "127.3.128.0/17";

#[derive(Args, Debug)]
pub struct TableSizeArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Bindings in the small store.
    #[arg(long, default_value_t = 1_000)]
    pub small: usize,
    /// Bindings in the large store.
    #[arg(long, default_value_t = 1_000_000)]
    pub large: usize,
    /// Timed flips per store.
    #[arg(long, default_value_t = 200)]
    pub flips: usize,
    /// Untimed flips per store before timing.
    #[arg(long, default_value_t = 20)]
    pub warmup_flips: usize,
}

/// One seeded server and its two pre-signed flips.
struct Side {
    name: String,
    seeded: Seeded,
    server: ServeProcess,
    client: certbind::client::ApiClient,
    flips: [bytes::Bytes; 2],
    next: usize,
}

impl Side {
    async fn start(
        bin: &std::path::Path,
        workdir: &Workdir,
        name: &str,
        pool: &str,
        bindings: usize,
    ) -> anyhow::Result<Side> {
        let data_dir = workdir.path.join(format!("table-size-{name}"));
        let seeded = seed::seed(bin, &data_dir, pool, bindings).await?;
        println!("  bulk insert took {} ms", ms(as_nanos(seeded.bulk_time)));
        let server = ServeProcess::start(bin, &data_dir, pool)?;
        let endpoint = server.endpoint()?;
        let client = server.client()?;
        let (a, b, vserver) = (&seeded.ssl_a, &seeded.ssl_b, &seeded.template_vserver);
        let flips = [
            signed(
                &endpoint,
                "UpdateSSLBinding",
                &[("OldSSLId", a), ("NewSSLId", b), ("ListenerId", vserver)],
            ),
            signed(
                &endpoint,
                "UpdateSSLBinding",
                &[("OldSSLId", b), ("NewSSLId", a), ("ListenerId", vserver)],
            ),
        ];
        Ok(Side {
            name: name.to_string(),
            seeded,
            server,
            client,
            flips,
            next: 0,
        })
    }

    /// One flip over the kept-alive connection; must replace exactly one binding.
    async fn flip(&mut self) -> anyhow::Result<Duration> {
        let body = &self.flips[self.next % 2];
        self.next += 1;
        let started = Instant::now();
        let answer = post_ok(&self.client, body).await?;
        let elapsed = started.elapsed();
        anyhow::ensure!(
            replaced(&answer) == Some(1),
            "{} store: expected ReplacedCount 1: {answer}",
            self.name
        );
        Ok(elapsed)
    }
}

pub async fn run(args: TableSizeArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.flips >= 1, "--flips must be at least 1");
    // Checked before seeding anything: seeding the large store alone takes a while.
    serve::check_listener_capacity(args.small.max(args.large))?;
    let bin = serve::certbind_bin(&args.serve)?;
    let workdir = Workdir::new(args.serve.keep_data)?;
    let mut small = Side::start(&bin, &workdir, "small", SMALL_POOL, args.small).await?;
    let mut large = Side::start(&bin, &workdir, "large", LARGE_POOL, args.large).await?;
    let result = measure(&mut small, &mut large, &args).await;
    if result.is_err() {
        for side in [&small, &large] {
            eprintln!(
                "{} server log (last lines):\n{}",
                side.name,
                side.server.log_tail()
            );
        }
    }
    result
}

async fn measure(small: &mut Side, large: &mut Side, args: &TableSizeArgs) -> anyhow::Result<()> {
    for _ in 0..args.warmup_flips {
        small.flip().await?;
        large.flip().await?;
    }
    let (mut small_times, mut large_times) = (Vec::new(), Vec::new());
    for _ in 0..args.flips {
        small_times.push(as_nanos(small.flip().await?));
        large_times.push(as_nanos(large.flip().await?));
    }
    println!(
        "table-size: UpdateSSLBinding with ListenerId on one VServer, {} timed flips per store \
         after {} untimed, alternating between the stores",
        args.flips, args.warmup_flips
    );
    println!(
        "{:<24} {:>9} {:>9} {:>9} {:>9}",
        "", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    for (side, times) in [(&*small, &small_times), (&*large, &large_times)] {
        let latency = Latency::of(times);
        println!(
            "{:<24} {:>9} {:>9} {:>9} {:>9}",
            format!("{} bindings", side.seeded.bindings),
            ms(latency.p50),
            ms(latency.p90),
            ms(latency.p99),
            ms(latency.max)
        );
    }
    report::print_ratio(
        "ratio = large median ÷ small median",
        Duration::from_nanos(Latency::of(&large_times).p50),
        Duration::from_nanos(Latency::of(&small_times).p50),
        GOAL,
    );
    Ok(())
}
