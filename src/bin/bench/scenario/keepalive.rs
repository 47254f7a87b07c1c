//! `keepalive`: HTTPS requests per second through certbind to a loopback backend vs nginx
//! proxying to the same backend. N TLS keep-alive connections, each sending `GET /` back-to-back;
//! the backend is a bare hyper HTTP/1.1 server in this process (own runtime) answering `ok`.
//! Goal: certbind ÷ nginx ≥ 0.9.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

use crate::contenders::{self, Comparison, Contenders, DataPlaneArgs};
use crate::load::{Step, Timing, Worker};
use crate::tls::KeepAliveWorker;

/// The goal for certbind ÷ nginx requests per second.
const GOAL: f64 = 0.9;

#[derive(Args, Debug)]
pub struct KeepaliveArgs {
    #[command(flatten)]
    pub plane: DataPlaneArgs,
    /// Keep-alive connections, one task each.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Measured time per run.
    #[arg(long, default_value = "10s", value_parser = crate::parse_duration)]
    pub duration: Duration,
    /// Load before measuring, not counted.
    #[arg(long, default_value = "1s", value_parser = crate::parse_duration)]
    pub warmup: Duration,
    /// Repetitions; each measures both servers (the order alternates).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Worker threads of the in-process backend's runtime (default: one per core).
    #[arg(long)]
    pub backend_threads: Option<usize>,
}

pub async fn run(args: KeepaliveArgs) -> anyhow::Result<()> {
    let backend_threads = args.backend_threads.unwrap_or_else(crate::default_threads);
    anyhow::ensure!(
        args.connections >= 1 && args.repeat >= 1 && backend_threads >= 1,
        "--connections, --repeat and --backend-threads must be ≥ 1"
    );
    let backend = Backend::start(backend_threads)?;
    let contenders = Contenders::start(&args.plane, Some(backend.addr)).await?;
    println!(
        "keepalive: {} TLS 1.3 keep-alive connections sending GET / back-to-back, proxied to \
         the backend on {} ({} thread(s), answers `ok`), {:?} measured after {:?} warm-up, {} \
         repetitions",
        args.connections, backend.addr, backend_threads, args.duration, args.warmup, args.repeat
    );
    let result = measure(&contenders, &args).await;
    if result.is_err() {
        eprintln!("{}", contenders.log_tails());
    }
    drop(contenders);
    drop(backend);
    result
}

async fn measure(contenders: &Contenders, args: &KeepaliveArgs) -> anyhow::Result<()> {
    // One request through each before loading, so a server that cannot proxy fails here.
    for side in contenders.sides() {
        let mut worker = KeepAliveWorker::connect(contenders.tls.clone(), contenders.addr(side))
            .await
            .with_context(|| format!("connecting to {}", side.label()))?;
        match worker.step().await {
            Step::Ok => {}
            Step::Rejected(why) | Step::Failed(why) => {
                anyhow::bail!("{}: a first GET / failed: {why}", side.label())
            }
        }
    }
    let comparison = Comparison {
        unit: "req",
        goal: GOAL,
        timing: Timing {
            warmup: args.warmup,
            duration: args.duration,
        },
        repeat: args.repeat,
    };
    let tls = contenders.tls.clone();
    let connections = args.connections;
    contenders::compare(contenders, &comparison, |addr| {
        let tls = tls.clone();
        async move {
            let mut workers = Vec::with_capacity(connections);
            for _ in 0..connections {
                workers.push(KeepAliveWorker::connect(tls.clone(), addr).await?);
            }
            Ok(workers)
        }
    })
    .await?;
    Ok(())
}

/// The backend both servers proxy to: hyper's HTTP/1.1 server answering `200 ok`
/// (Content-Length 2) to everything, on 127.0.0.1:0, on its own runtime.
struct Backend {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Backend {
    fn start(threads: usize) -> anyhow::Result<Backend> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("backend")
            .enable_all()
            .build()
            .context("starting the backend runtime")?;
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("backend".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(err) => {
                            eprintln!("backend: {err}");
                            return;
                        }
                    };
                    tokio::select! {
                        () = accept_loop(listener) => {}
                        _ = stopped => {}
                    }
                });
                // Open keep-alive connections must not hold the thread.
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .context("spawning the backend thread")?;
        Ok(Backend {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

async fn accept_loop(listener: tokio::net::TcpListener) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of descriptors, say: keep serving the connections there are.
                eprintln!("backend: accept: {err}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(|_request| async {
                Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"ok"))))
            });
            // A proxy closing its pooled connection is not an error worth reporting.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
