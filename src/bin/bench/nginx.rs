//! nginx as the data-plane baseline: a child process with its own config, PEM file, pid file,
//! logs and temp paths in a directory of the bench, on a free loopback port, configured as in
//! `dataplane-anchors.md` (TLS 1.3 only, `access_log off`, long keep-alive). It answers `200 ok`
//! itself or proxies to one backend over pooled keep-alive connections. Certificate rotation is
//! what nginx offers: rewrite the PEM file atomically and `nginx -s reload`. Only the master this
//! module started is ever signalled.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

use crate::fixture::free_port;
use crate::procfs;

const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Where Debian's `nginx-light` puts it; `/usr/sbin` is often not on a non-root PATH.
const DEBIAN_PATH: &str = "/usr/sbin/nginx";

/// How to find and size the nginx baseline.
#[derive(Args, Debug, Clone)]
pub struct NginxArgs {
    /// The nginx binary (default: `nginx` on the PATH, else /usr/sbin/nginx).
    #[arg(long)]
    pub nginx_bin: Option<PathBuf>,
    /// Measure certbind alone, without the nginx baseline.
    #[arg(long)]
    pub no_nginx: bool,
    /// nginx `worker_processes` (the anchors compare against 2 on a 2-core machine).
    #[arg(long, default_value_t = 2)]
    pub nginx_workers: usize,
}

/// The nginx to run, or why there is none (the scenario then measures certbind alone).
pub fn locate(args: &NginxArgs) -> Result<PathBuf, String> {
    if args.no_nginx {
        return Err("--no-nginx was given".into());
    }
    let candidate = match &args.nginx_bin {
        Some(path) => path.clone(),
        None => std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|dir| dir.join("nginx"))
            .find(|path| path.is_file())
            .unwrap_or_else(|| PathBuf::from(DEBIAN_PATH)),
    };
    match Command::new(&candidate).arg("-v").output() {
        Ok(output) if output.status.success() => Ok(candidate),
        Ok(output) => Err(format!(
            "{} -v failed: {}",
            candidate.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Err(err) => Err(format!(
            "no nginx at {} ({err}); install it with `apt-get install nginx-light` or pass \
             --nginx-bin",
            candidate.display()
        )),
    }
}

/// `nginx version: nginx/1.22.1` (nginx prints it on stderr).
pub fn version(bin: &Path) -> String {
    Command::new(bin)
        .arg("-v")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stderr).trim().to_string())
        .unwrap_or_default()
}

/// What the one server block does with a request.
#[derive(Debug, Clone, Copy)]
pub enum Site {
    /// `return 200 "ok"`.
    Ok,
    /// `proxy_pass` to this backend over an upstream keep-alive pool.
    Proxy(SocketAddr),
}

/// A running nginx master (daemon off, so it is this process's child) and its workers.
pub struct Nginx {
    child: Option<Child>,
    bin: PathBuf,
    dir: PathBuf,
    conf: PathBuf,
    live_pem: PathBuf,
    /// Where it accepts TLS.
    pub addr: SocketAddr,
}

impl Nginx {
    /// Writes the config and `pem` (certificate and key) under `dir` and starts nginx; returns
    /// once its port accepts connections.
    pub fn start(
        bin: &Path,
        dir: &Path,
        workers: usize,
        pem: &str,
        site: Site,
    ) -> anyhow::Result<Nginx> {
        for sub in ["live", "temp"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path)
                .with_context(|| format!("creating {}", path.display()))?;
        }
        let live_pem = dir.join("live").join("nginx.pem");
        std::fs::write(&live_pem, pem)
            .with_context(|| format!("writing {}", live_pem.display()))?;
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let addr = SocketAddr::new(ip, free_port(ip)?);
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config(dir, &live_pem, addr, workers, site))
            .with_context(|| format!("writing {}", conf.display()))?;
        let child = Command::new(bin)
            .args(Self::base_args(dir, &conf))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut nginx = Nginx {
            child: Some(child),
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
            conf,
            live_pem,
            addr,
        };
        nginx.wait_listening()?;
        Ok(nginx)
    }

    /// `-p` and `-e` keep nginx away from /var/log/nginx and its compiled-in prefix.
    fn base_args(dir: &Path, conf: &Path) -> Vec<std::ffi::OsString> {
        vec![
            "-p".into(),
            dir.into(),
            "-e".into(),
            dir.join("error.log").into(),
            "-c".into(),
            conf.into(),
        ]
    }

    fn wait_listening(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            let exited = match &mut self.child {
                Some(child) => child.try_wait()?.is_some(),
                None => true,
            };
            if exited || Instant::now() > deadline {
                self.stop();
                anyhow::bail!(
                    "nginx did not start listening on {}; error log:\n{}",
                    self.addr,
                    self.log_tail()
                );
            }
            // Polling a port another process is opening; there is nothing to await.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Replaces the live PEM file atomically (write a temp file, rename it over the old one), so
    /// a reload never reads half a file.
    pub fn install(&self, pem: &str) -> anyhow::Result<()> {
        let temp = self.live_pem.with_extension("pem.new");
        std::fs::write(&temp, pem).with_context(|| format!("writing {}", temp.display()))?;
        std::fs::rename(&temp, &self.live_pem)
            .with_context(|| format!("renaming over {}", self.live_pem.display()))?;
        Ok(())
    }

    /// `nginx -s reload`, waiting for that command to exit. It only signals the master: new
    /// workers start, and old ones finish their connections, after it returns.
    pub async fn reload(&self) -> anyhow::Result<()> {
        let output = tokio::process::Command::new(&self.bin)
            .args(Self::base_args(&self.dir, &self.conf))
            .args(["-s", "reload"])
            .stdin(Stdio::null())
            .output()
            .await
            .context("running nginx -s reload")?;
        anyhow::ensure!(
            output.status.success(),
            "nginx -s reload failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Ok(())
    }

    /// The master and its live workers.
    pub fn pids(&self) -> Vec<u32> {
        let Some(master) = self.child.as_ref().map(Child::id) else {
            return Vec::new();
        };
        let mut pids = vec![master];
        pids.extend(procfs::children(master));
        pids
    }

    pub fn log_tail(&self) -> String {
        crate::serve::log_tail(&self.dir.join("error.log"))
    }

    /// SIGTERM (nginx's fast shutdown) to the master, then wait; SIGKILL if it hangs.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            crate::serve::terminate(child);
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The config of `dataplane-anchors.md`, plus the temp paths a private prefix needs and, for
/// `Site::Proxy`, the upstream pool.
fn config(dir: &Path, pem: &Path, addr: SocketAddr, workers: usize, site: Site) -> String {
    let dir = dir.display();
    let pem = pem.display();
    let mut text = String::new();
    let _ = writeln!(text, "worker_processes {workers};");
    let _ = writeln!(text, "daemon off;");
    let _ = writeln!(text, "pid {dir}/nginx.pid;");
    let _ = writeln!(text, "error_log {dir}/error.log warn;");
    let _ = writeln!(text, "events {{ worker_connections 8192; }}");
    let _ = writeln!(text, "http {{");
    let _ = writeln!(text, "  access_log off;");
    let _ = writeln!(text, "  keepalive_requests 10000000;");
    let _ = writeln!(text, "  keepalive_timeout 60s;");
    for (directive, sub) in [
        ("client_body_temp_path", "body"),
        ("proxy_temp_path", "proxy"),
        ("fastcgi_temp_path", "fastcgi"),
        ("uwsgi_temp_path", "uwsgi"),
        ("scgi_temp_path", "scgi"),
    ] {
        let _ = writeln!(text, "  {directive} {dir}/temp/{sub};");
    }
    if let Site::Proxy(backend) = site {
        let _ = writeln!(
            text,
            "  upstream backend {{ server {backend}; keepalive 64; keepalive_requests 10000000; }}"
        );
    }
    let _ = writeln!(text, "  server {{");
    let _ = writeln!(text, "    listen {addr} ssl;");
    let _ = writeln!(text, "    server_name {};", crate::tls::SERVER_NAME);
    let _ = writeln!(text, "    ssl_certificate {pem};");
    let _ = writeln!(text, "    ssl_certificate_key {pem};");
    let _ = writeln!(text, "    ssl_protocols TLSv1.3;");
    match site {
        Site::Ok => {
            let _ = writeln!(text, "    location / {{ return 200 \"ok\"; }}");
        }
        Site::Proxy(_) => {
            let _ = writeln!(
                text,
                "    location / {{ proxy_pass http://backend; proxy_http_version 1.1; \
                 proxy_set_header Connection \"\"; }}"
            );
        }
    }
    let _ = writeln!(text, "  }}");
    let _ = writeln!(text, "}}");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_config_pools_upstream_connections() {
        let backend: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        let listen: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        let text = config(
            Path::new("/tmp/x"),
            Path::new("/tmp/x/live/nginx.pem"),
            listen,
            2,
            Site::Proxy(backend),
        );
        assert!(text.contains("worker_processes 2;"));
        assert!(text.contains("listen 127.0.0.1:8443 ssl;"));
        assert!(text.contains("ssl_protocols TLSv1.3;"));
        assert!(text.contains("access_log off;"));
        assert!(text.contains("server 127.0.0.1:9000; keepalive 64;"));
        assert!(text.contains("proxy_http_version 1.1; proxy_set_header Connection \"\";"));
        let plain = config(
            Path::new("/tmp/x"),
            Path::new("/tmp/x/live/nginx.pem"),
            listen,
            1,
            Site::Ok,
        );
        assert!(plain.contains("return 200 \"ok\";") && !plain.contains("upstream"));
    }
}
