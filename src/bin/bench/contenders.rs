//! certbind and nginx side by side, as the data-plane scenarios compare them: one `certbind serve`
//! child with one HTTPS VServer (certificate A bound, B uploaded), one nginx child serving the
//! same A, one TLS client for both, and the interleaved throughput comparison the anchors' method
//! asks for (repetitions outermost, the order of the two servers alternating). When nginx is
//! missing the scenarios still measure certbind and say why the baseline is absent.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use certbind::client::{ApiClient, Endpoint};
use clap::Args;

use crate::fixture::{ListenerFixture, Material};
use crate::load::{self, Outcome, Timing, Worker};
use crate::nginx::{self, Nginx, NginxArgs, Site};
use crate::report::{self, RateRow, Spread};
use crate::serve::{self, ServeProcess, Workdir};
use crate::tls::{Fingerprint, TlsClient};
use crate::{procfs, ServeArgs};

/// What every data-plane scenario takes: the certbind to start, the nginx baseline, the client.
#[derive(Args, Debug, Clone)]
pub struct DataPlaneArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(flatten)]
    pub nginx: NginxArgs,
    /// Check the server's CertificateVerify signature in the client (skipped by default, as in
    /// the anchors: it costs the client about what signing costs the server).
    #[arg(long)]
    pub verify_sig: bool,
}

/// Which server a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Certbind,
    Nginx,
}

impl Side {
    pub fn label(self) -> &'static str {
        match self {
            Side::Certbind => "certbind",
            Side::Nginx => "nginx",
        }
    }
}

/// Both servers, running. Fields drop in order: the servers stop before their directory goes.
pub struct Contenders {
    pub certbind: ServeProcess,
    pub endpoint: Endpoint,
    pub api: ApiClient,
    pub fixture: ListenerFixture,
    pub nginx: Option<Nginx>,
    pub a: Material,
    pub b: Material,
    pub tls: TlsClient,
    _workdir: Workdir,
}

impl Contenders {
    /// Starts both servers on certificate A. With `backend`, certbind's VServer gets it as its
    /// one backend and nginx proxies to it; without, nginx answers `200 ok` itself.
    pub async fn start(
        args: &DataPlaneArgs,
        backend: Option<SocketAddr>,
    ) -> anyhow::Result<Contenders> {
        let nginx_bin = match nginx::locate(&args.nginx) {
            Ok(bin) => Some(bin),
            Err(why) => {
                println!("nginx baseline skipped: {why}; measuring certbind alone");
                None
            }
        };
        let bin = serve::certbind_bin(&args.serve)?;
        let workdir = Workdir::new(args.serve.keep_data)?;
        let a = Material::make(&workdir.path, "a")?;
        let b = Material::make(&workdir.path, "b")?;
        let data_dir = workdir.path.join("data");
        let certbind = ServeProcess::start(&bin, &data_dir, serve::ADDRESS_POOL)?;
        let endpoint = certbind.endpoint()?;
        let api = certbind.client()?;
        let fixture = ListenerFixture::create(&api, &a, &b, backend).await?;
        println!(
            "certbind: {} serve, HTTPS VServer {} on {} (ECDSA P-256 A {} bound, B {})",
            bin.display(),
            fixture.vserver_id,
            fixture.addr,
            a.fingerprint.short(),
            b.fingerprint.short()
        );
        let nginx = match nginx_bin {
            Some(nginx_bin) => {
                let site = backend.map_or(Site::Ok, Site::Proxy);
                let nginx = Nginx::start(
                    &nginx_bin,
                    &workdir.path.join("nginx"),
                    args.nginx.nginx_workers,
                    &a.combined(),
                    site,
                )?;
                println!(
                    "nginx: {} ({}), worker_processes {}, on {}",
                    nginx_bin.display(),
                    nginx::version(&nginx_bin),
                    args.nginx.nginx_workers,
                    nginx.addr
                );
                Some(nginx)
            }
            None => None,
        };
        let tls = TlsClient::new(args.verify_sig)?;
        let contenders = Contenders {
            certbind,
            endpoint,
            api,
            fixture,
            nginx,
            a,
            b,
            tls,
            _workdir: workdir,
        };
        for side in contenders.sides() {
            contenders
                .probe(side, contenders.a.fingerprint)
                .await
                .with_context(|| format!("probing {}", side.label()))?;
        }
        Ok(contenders)
    }

    /// The servers there are: certbind, and nginx when it runs.
    pub fn sides(&self) -> Vec<Side> {
        let mut sides = vec![Side::Certbind];
        if self.nginx.is_some() {
            sides.push(Side::Nginx);
        }
        sides
    }

    pub fn addr(&self, side: Side) -> SocketAddr {
        match (side, &self.nginx) {
            (Side::Nginx, Some(nginx)) => nginx.addr,
            _ => self.fixture.addr,
        }
    }

    /// The processes whose CPU a run charges to the server (nginx: master and workers).
    pub fn pids(&self, side: Side) -> Vec<u32> {
        match (side, &self.nginx) {
            (Side::Nginx, Some(nginx)) => nginx.pids(),
            _ => self.certbind.pid().into_iter().collect(),
        }
    }

    /// One handshake that must present `expected`.
    pub async fn probe(&self, side: Side, expected: Fingerprint) -> anyhow::Result<()> {
        let (_, leaf) = tokio::time::timeout(
            crate::tls::ATTEMPT_TIMEOUT,
            self.tls.connect(self.addr(side)),
        )
        .await
        .context("no handshake within the timeout")??;
        anyhow::ensure!(
            leaf == expected,
            "{} presented {} instead of {}",
            side.label(),
            leaf.short(),
            expected.short()
        );
        Ok(())
    }

    /// The last lines of each server's log, for a failed run.
    pub fn log_tails(&self) -> String {
        let mut text = format!("certbind log:\n{}", self.certbind.log_tail());
        if let Some(nginx) = &self.nginx {
            text.push_str(&format!("\nnginx error log:\n{}", nginx.log_tail()));
        }
        text
    }
}

/// One measured run of one server.
pub struct Run {
    pub side: Side,
    pub rep: usize,
    pub outcome: Outcome,
    pub cpu_per_op: Option<Duration>,
}

/// What an interleaved comparison measures and how its ratio is judged.
pub struct Comparison<'a> {
    /// "hs" or "req".
    pub unit: &'a str,
    /// certbind ÷ nginx must be at least this.
    pub goal: f64,
    pub timing: Timing,
    pub repeat: usize,
}

/// Runs `repeat` repetitions; in each, both servers get the same workers from `make` (certbind
/// first in odd repetitions, nginx first in even ones), then prints every run, the ratio of each
/// repetition and the medians.
pub async fn compare<W, F, Fut>(
    contenders: &Contenders,
    comparison: &Comparison<'_>,
    make: F,
) -> anyhow::Result<Vec<Run>>
where
    W: Worker,
    F: Fn(SocketAddr) -> Fut,
    Fut: Future<Output = anyhow::Result<Vec<W>>>,
{
    let mut runs = Vec::new();
    for rep in 1..=comparison.repeat {
        let mut order = contenders.sides();
        if rep % 2 == 0 {
            order.reverse();
        }
        for side in order {
            let workers = make(contenders.addr(side)).await?;
            let pids = contenders.pids(side);
            let timing = comparison.timing;
            // Samples the server's CPU over the measured window only, not the warm-up.
            let sampler = tokio::spawn(async move {
                tokio::time::sleep(timing.warmup).await;
                let (before, from) = (procfs::total_cpu(&pids), Instant::now());
                tokio::time::sleep(timing.duration).await;
                (
                    procfs::total_cpu(&pids).saturating_sub(before),
                    from.elapsed(),
                )
            });
            let outcome = load::drive(workers, timing).await?;
            let (cpu, window) = sampler.await.context("the CPU sampler panicked")?;
            let ops = outcome.rate() * window.as_secs_f64();
            let cpu_per_op = (ops >= 1.0 && !cpu.is_zero()).then(|| cpu.div_f64(ops));
            runs.push(Run {
                side,
                rep,
                outcome,
                cpu_per_op,
            });
        }
    }
    print_comparison(contenders, comparison, &runs);
    Ok(runs)
}

fn print_comparison(contenders: &Contenders, comparison: &Comparison<'_>, runs: &[Run]) {
    let rows: Vec<RateRow> = runs
        .iter()
        .map(|run| RateRow {
            label: format!("{} #{}", run.side.label(), run.rep),
            outcome: &run.outcome,
            cpu_per_op: run.cpu_per_op,
        })
        .collect();
    report::print_rate_table(comparison.unit, &rows);
    let unit = comparison.unit;
    let rates = |side: Side| -> Vec<f64> {
        runs.iter()
            .filter(|run| run.side == side)
            .map(|run| run.outcome.rate())
            .collect()
    };
    let cpus = |side: Side| -> Vec<f64> {
        runs.iter()
            .filter(|run| run.side == side)
            .filter_map(|run| run.cpu_per_op.map(|cpu| cpu.as_secs_f64() * 1e6))
            .collect()
    };
    for side in contenders.sides() {
        if let Some(rate) = Spread::of(&rates(side)) {
            let cpu = Spread::of(&cpus(side))
                .map(|cpu| format!(", server CPU µs/{unit} {}", cpu.show(1)))
                .unwrap_or_default();
            println!(
                "{:<9} {unit}/s median [min–max] of {}: {}{cpu}",
                side.label(),
                comparison.repeat,
                rate.show(0)
            );
        }
    }
    if contenders.nginx.is_none() {
        println!("no nginx baseline: no ratio");
        return;
    }
    let mut ratios = Vec::new();
    for rep in 1..=comparison.repeat {
        let rate = |side: Side| {
            runs.iter()
                .find(|run| run.side == side && run.rep == rep)
                .map_or(0.0, |run| run.outcome.rate())
        };
        let (certbind, nginx) = (rate(Side::Certbind), rate(Side::Nginx));
        if nginx > 0.0 {
            ratios.push(certbind / nginx);
        }
        println!(
            "  repetition {rep}: certbind ÷ nginx = {certbind:.0} ÷ {nginx:.0} = {:.2}",
            if nginx > 0.0 { certbind / nginx } else { 0.0 }
        );
    }
    if let Some(spread) = Spread::of(&ratios) {
        let verdict = if spread.median >= comparison.goal {
            "met"
        } else {
            "NOT met"
        };
        println!(
            "ratio = certbind {unit}/s ÷ nginx {unit}/s, median of the repetitions' ratios = {} \
             (goal ≥ {}: {verdict})",
            spread.show(2),
            comparison.goal
        );
    }
    if runs.iter().any(|run| run.outcome.errors() > 0) {
        println!("WARNING: some runs had failures; rates count successes only");
    }
}
