//! `certbind serve` as a child process on 127.0.0.1:0 with a temporary data dir, and the temporary
//! directories themselves. Children are stopped with SIGTERM (the server's graceful path) and
//! killed only if they do not exit in time; nothing else is ever signalled.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use certbind::client::{ApiClient, Endpoint};

use crate::ServeArgs;

/// Long enough for a first start (migrations, master key) or a start on a million-row store.
const START_TIMEOUT: Duration = Duration::from_secs(300);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The address pool the bench's servers allocate load balancer addresses from.
pub const ADDRESS_POOL: &str = "127.3.0.0/16";

/// File descriptors a server needs besides one per listener: the API socket, its connections,
/// the store, logs.
const FD_HEADROOM: u64 = 1_000;

/// `certbind serve` opens every HTTPS listener of its store at startup, one socket each, and a
/// process out of descriptors cannot accept API connections any more (it hangs rather than
/// fails). So a store with more listeners than this process's `ulimit -n` (which children
/// inherit) allows cannot be measured here; say so before seeding it.
/// An API-only node (`CERTBIND_DATAPLANE=off`, inherited by the child) opens no listener, so
/// any store size fits.
pub fn check_listener_capacity(listeners: usize) -> anyhow::Result<()> {
    if std::env::var("CERTBIND_DATAPLANE").as_deref() == Ok("off") {
        return Ok(());
    }
    let Some(limit) = open_files_limit() else {
        return Ok(());
    };
    let needed = listeners as u64 + FD_HEADROOM;
    anyhow::ensure!(
        needed <= limit,
        "a store with {listeners} HTTPS listeners needs about {needed} open files in \
         `certbind serve` (one socket per listener, opened at startup), but `ulimit -n` is \
         {limit}; raise it, or measure at most {} listeners here",
        limit.saturating_sub(FD_HEADROOM)
    );
    Ok(())
}

/// The soft RLIMIT_NOFILE of this process, from /proc (no unsafe code needed).
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// A directory under the system temp dir, removed on drop unless kept.
pub struct Workdir {
    pub path: PathBuf,
    keep: bool,
}

impl Workdir {
    pub fn new(keep: bool) -> anyhow::Result<Workdir> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path =
            std::env::temp_dir().join(format!("certbind-bench-{}-{nanos:08x}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        if keep {
            println!("data kept in {}", path.display());
        }
        Ok(Workdir { path, keep })
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The certbind binary to run: `--certbind-bin`, else `certbind` next to this executable.
pub fn certbind_bin(args: &ServeArgs) -> anyhow::Result<PathBuf> {
    if let Some(path) = &args.certbind_bin {
        return Ok(path.clone());
    }
    let me = std::env::current_exe().context("locating certbind-bench")?;
    let path = me.with_file_name("certbind");
    anyhow::ensure!(
        path.exists(),
        "{} does not exist: build it with `cargo build [--release] --bin certbind` or pass --certbind-bin",
        path.display()
    );
    Ok(path)
}

/// A running `certbind serve`.
pub struct ServeProcess {
    child: Option<Child>,
    pub base_url: String,
    pub data_dir: PathBuf,
    log: PathBuf,
}

impl ServeProcess {
    /// Starts `certbind serve` on `data_dir` and waits for its `listening on` line. The server's
    /// log goes to `<data_dir>.log`; its environment (e.g. CERTBIND_LOG) is inherited.
    pub fn start(bin: &Path, data_dir: &Path, pool: &str) -> anyhow::Result<ServeProcess> {
        let log = data_dir.with_extension("log");
        let log_file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = Command::new(bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--address-pool", pool])
            .arg("--data-dir")
            .arg(data_dir)
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("the child's stdout")?;
        let (found, listening) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if let Some(url) = line.split("listening on ").nth(1) {
                    let _ = found.send(url.trim().to_string());
                    break;
                }
            }
            // Keep draining so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let mut process = ServeProcess {
            child: Some(child),
            base_url: String::new(),
            data_dir: data_dir.to_path_buf(),
            log,
        };
        match listening.recv_timeout(START_TIMEOUT) {
            Ok(url) => process.base_url = url,
            Err(_) => {
                process.stop();
                anyhow::bail!(
                    "certbind serve did not report `listening on` within {START_TIMEOUT:?}; log:\n{}",
                    process.log_tail()
                );
            }
        }
        Ok(process)
    }

    /// The admin credentials `serve` wrote, pointed at this process.
    pub fn endpoint(&self) -> anyhow::Result<Endpoint> {
        let mut endpoint = Endpoint::from_file(&self.data_dir.join("credentials.json"))?;
        endpoint.base_url = self.base_url.clone();
        Ok(endpoint)
    }

    pub fn client(&self) -> anyhow::Result<ApiClient> {
        Ok(ApiClient::new(self.endpoint()?))
    }

    /// The child's process id while it runs (for CPU and memory figures from /proc).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The end of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    /// SIGTERM, then wait; SIGKILL only if it does not exit within `STOP_TIMEOUT`.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child);
        }
    }
}

/// The last 20 lines of a log file, for error messages.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// SIGTERM to a child process, then wait; SIGKILL only if it does not exit within
/// `STOP_TIMEOUT`.
pub fn terminate(mut child: std::process::Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            // Polling a child's exit status; there is nothing to await on a std Child.
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
