//! `tls-handshake`: full TLS 1.3 ECDSA P-256 handshakes per second through certbind vs nginx,
//! same certificate, same client, same run. N tasks each loop connect → handshake → close; no
//! request is sent. Goal: certbind ÷ nginx ≥ 1.2.

use std::time::Duration;

use clap::Args;

use crate::contenders::{self, Comparison, Contenders, DataPlaneArgs};
use crate::load::Timing;
use crate::tls::HandshakeWorker;

/// The goal for certbind ÷ nginx handshakes per second.
const GOAL: f64 = 1.2;

#[derive(Args, Debug)]
pub struct TlsHandshakeArgs {
    #[command(flatten)]
    pub plane: DataPlaneArgs,
    /// Concurrent handshake tasks.
    #[arg(long, default_value_t = 16)]
    pub tasks: usize,
    /// Measured time per run.
    #[arg(long, default_value = "10s", value_parser = crate::parse_duration)]
    pub duration: Duration,
    /// Load before measuring, not counted.
    #[arg(long, default_value = "1s", value_parser = crate::parse_duration)]
    pub warmup: Duration,
    /// Repetitions; each measures both servers (the order alternates).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
}

pub async fn run(args: TlsHandshakeArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.tasks >= 1 && args.repeat >= 1,
        "--tasks and --repeat must be ≥ 1"
    );
    let contenders = Contenders::start(&args.plane, None).await?;
    println!(
        "tls-handshake: full TLS 1.3 handshakes (X25519, ECDSA P-256, no resumption, signature \
         check {}), {} tasks, {:?} measured after {:?} warm-up, {} repetitions",
        if args.plane.verify_sig {
            "on"
        } else {
            "skipped"
        },
        args.tasks,
        args.duration,
        args.warmup,
        args.repeat
    );
    let comparison = Comparison {
        unit: "hs",
        goal: GOAL,
        timing: Timing {
            warmup: args.warmup,
            duration: args.duration,
        },
        repeat: args.repeat,
    };
    let tls = contenders.tls.clone();
    let tasks = args.tasks;
    let result = contenders::compare(&contenders, &comparison, |addr| {
        let tls = tls.clone();
        async move {
            Ok((0..tasks)
                .map(|_| HandshakeWorker::new(tls.clone(), addr))
                .collect::<Vec<_>>())
        }
    })
    .await;
    if result.is_err() {
        eprintln!("{}", contenders.log_tails());
    }
    result.map(|_| ())
}
