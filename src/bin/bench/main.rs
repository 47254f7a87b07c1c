//! `certbind-bench`: benchmarks that print figures and a ratio against a baseline measured in the
//! same run on the same machine. It owns load generation, seeding and reporting; it asserts no
//! timings and changes nothing in a server it did not start except the resources it creates.
//!
//! Shared pieces: `load` (the load loop), `report` (percentiles and tables), `bare` (the
//! in-process baseline server), `serve` (a `certbind serve` child process), `fixture` (resources
//! created through the API), `seed` (bulk rows written straight into SQLite); for the data-plane
//! scenarios `tls` (the TLS load client), `nginx` (the nginx baseline as a child process),
//! `contenders` (certbind and nginx set up side by side, the interleaved comparison) and
//! `procfs` (server CPU and memory from /proc).
//! Each subcommand is one file under `scenario/`; a new scenario is one more file and one more
//! variant of `Command`.

mod bare;
mod contenders;
mod fixture;
mod load;
mod nginx;
mod procfs;
mod report;
mod scenario;
mod seed;
mod serve;
mod tls;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "certbind-bench",
    about = "Benchmarks of certbind with a baseline measured in the same run"
)]
struct Cli {
    /// Worker threads of the load generator's runtime (default: one per core).
    #[arg(long, global = true)]
    client_threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Signed load against certbind vs the same load against a bare axum handler.
    Api(scenario::api::ApiArgs),
    /// Listener-scope UpdateSSLBinding flips under load vs the bare handler.
    UpdateBinding(scenario::update_binding::UpdateBindingArgs),
    /// One project-wide UpdateSSLBinding over N bindings vs the raw SQL UPDATE of the same rows.
    ProjectWide(scenario::project_wide::ProjectWideArgs),
    /// One-listener UpdateSSLBinding latency with a small vs a large bindings table.
    TableSize(scenario::table_size::TableSizeArgs),
    /// Full TLS 1.3 handshakes per second through certbind vs nginx.
    TlsHandshake(scenario::tls_handshake::TlsHandshakeArgs),
    /// Certificate flips under handshake load: failed and stale handshakes, swap-to-served delay,
    /// certbind (UpdateSSLBinding) vs nginx (`-s reload`).
    Rotation(scenario::rotation::RotationArgs),
    /// HTTPS keep-alive requests per second proxied to a loopback backend, certbind vs nginx.
    Keepalive(scenario::keepalive::KeepaliveArgs),
    /// Startup time and memory of `certbind serve` with many certificates and listeners.
    Scale(scenario::scale::ScaleArgs),
}

/// Which certbind to measure: an already running one (`--credentials`), or a fresh child process.
#[derive(Args, Debug, Clone)]
pub struct TargetArgs {
    /// A credentials.json written by `certbind serve` into its data dir; without it the bench
    /// starts its own `certbind serve` on a temporary data dir.
    #[arg(long)]
    pub credentials: Option<PathBuf>,
    /// Overrides the BaseUrl of the credentials file.
    #[arg(long)]
    pub base_url: Option<String>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// How to start `certbind serve` children.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// The certbind binary (default: `certbind` next to this binary, i.e. the same profile).
    #[arg(long)]
    pub certbind_bin: Option<PathBuf>,
    /// Keep the temporary data dirs (and server logs) instead of deleting them.
    #[arg(long)]
    pub keep_data: bool,
}

/// Shape of a load run.
#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// Connections, one task each, each sending back-to-back on one keep-alive HTTP/1.1 connection.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Measured time per run (e.g. 10s, 500ms, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Load before measuring starts, not counted.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
}

impl LoadArgs {
    pub fn timing(&self) -> load::Timing {
        load::Timing {
            warmup: self.warmup,
            duration: self.duration,
        }
    }
}

/// `10s`, `250ms`, `2m` or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 10s or 500ms"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("{text:?}: unit must be ms, s or m")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|err| format!("{text:?}: {err}"))
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let threads = cli.client_threads.unwrap_or_else(default_threads);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("certbind-bench: starting the runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Api(args) => scenario::api::run(args).await,
            Command::UpdateBinding(args) => scenario::update_binding::run(args).await,
            Command::ProjectWide(args) => scenario::project_wide::run(args).await,
            Command::TableSize(args) => scenario::table_size::run(args).await,
            Command::TlsHandshake(args) => scenario::tls_handshake::run(args).await,
            Command::Rotation(args) => scenario::rotation::run(args).await,
            Command::Keepalive(args) => scenario::keepalive::run(args).await,
            Command::Scale(args) => scenario::scale::run(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("certbind-bench: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// One per core, as `certbind serve`'s own runtime does.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5h").is_err());
    }
}
