//! The bare baseline: an axum handler on 127.0.0.1:0 that decodes the form body and answers a fixed
//! envelope. It does what any HTTP API must do (accept, parse HTTP, read and decode the body,
//! write JSON) and nothing certbind adds (signature, key lookup, store, data plane), so
//! `certbind ÷ bare` is the cost of certbind's own work on this machine.
//!
//! It runs on its own multi-threaded runtime with one worker per core, like `certbind serve`, so
//! it does not share the load generator's workers; the only difference left is being in-process.

use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use axum::http::header::CONTENT_TYPE;
use tokio::sync::oneshot;

/// What the bare server answers to DescribeSSL-shaped load (the `api` scenario).
pub const DESCRIBE_SSL_REPLY: &str =
    r#"{"Action":"DescribeSSLResponse","RetCode":0,"TotalCount":0,"DataSet":[]}"#;

/// What it answers to flip load: the shape certbind answers, so the same `Expect` applies.
pub const UPDATE_SSL_BINDING_REPLY: &str =
    r#"{"Action":"UpdateSSLBindingResponse","RetCode":0,"ReplacedCount":1}"#;

pub struct BareServer {
    pub base_url: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl BareServer {
    pub fn start(reply: &'static str) -> anyhow::Result<BareServer> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr: SocketAddr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(crate::default_threads())
            .thread_name("bare-baseline")
            .enable_all()
            .build()
            .context("starting the baseline runtime")?;
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("bare-baseline".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(err) => {
                            eprintln!("bare baseline: {err}");
                            return;
                        }
                    };
                    let router = axum::Router::new().fallback(
                        move |axum::Form(pairs): axum::Form<Vec<(String, String)>>| async move {
                            // Decoded like any form API would; the pairs are then unused.
                            std::hint::black_box(pairs);
                            ([(CONTENT_TYPE, "application/json; charset=utf-8")], reply)
                        },
                    );
                    tokio::select! {
                        served = axum::serve(listener, router) => {
                            if let Err(err) = served {
                                eprintln!("bare baseline: {err}");
                            }
                        }
                        _ = stopped => {}
                    }
                });
                // Open keep-alive connections must not hold the thread.
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .context("spawning the baseline thread")?;
        Ok(BareServer {
            base_url: format!("http://{addr}"),
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for BareServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
