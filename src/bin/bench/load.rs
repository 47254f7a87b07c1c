//! The load loop. `drive` runs N workers concurrently, each doing one operation after another for a
//! warm-up and then a measured window, and collects counts and latencies; a `Worker` says what one
//! operation is. `FormPoster` is the worker for API load: one keep-alive HTTP/1.1 connection
//! (hyper's connection API, no pool) sending pre-built form bodies back-to-back in a cycle.
//! Baseline and certbind runs go through exactly this code so their figures compare; later
//! scenarios (TLS handshakes, rotation under load) add workers, not loops.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

const FORM: &str = "application/x-www-form-urlencoded";

/// After a failed connect, wait this long before the next attempt so a dead server does not turn
/// the loop into a busy spin; it only ever delays a worker that is already failing.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(10);

/// A request without an answer after this long counts as failed and its connection is replaced,
/// so a stuck server ends the run instead of hanging it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// When a run measures: `warmup` of unrecorded load, then `duration` recorded.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub warmup: Duration,
    pub duration: Duration,
}

/// How one operation ended.
pub enum Step {
    /// Answered as expected.
    Ok,
    /// Answered, but not as expected (a RetCode, a wrong count, an HTTP status).
    Rejected(String),
    /// No answer (connect or transport failure).
    Failed(String),
}

/// One simulated client.
pub trait Worker: Send + 'static {
    /// One timed operation.
    fn step(&mut self) -> impl Future<Output = Step> + Send;
}

/// Everything one run measured. Only operations started inside the measured window count.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Operations that got an answer.
    pub answered: u64,
    /// Answers that were not as expected.
    pub rejected: u64,
    /// Operations that got no answer.
    pub transport_errors: u64,
    /// From the start of the window to the last recorded answer.
    pub elapsed: Duration,
    /// Latency of every answered operation, nanoseconds, unsorted.
    pub latencies: Vec<u64>,
    pub first_error: Option<String>,
}

impl Outcome {
    /// Errors of both kinds, as the report counts them.
    pub fn errors(&self) -> u64 {
        self.rejected + self.transport_errors
    }

    /// Successful answers per second.
    pub fn rate(&self) -> f64 {
        let ok = self.answered - self.rejected;
        if self.elapsed.is_zero() {
            0.0
        } else {
            ok as f64 / self.elapsed.as_secs_f64()
        }
    }
}

/// Runs every worker on its own task until the window closes. Workers should be ready (connected)
/// before this is called, so set-up is not measured.
pub async fn drive<W: Worker>(workers: Vec<W>, timing: Timing) -> anyhow::Result<Outcome> {
    let start = Instant::now();
    let window = Window {
        from: start + timing.warmup,
        until: start + timing.warmup + timing.duration,
        stop: None,
    };
    collect(workers, window, timing.duration).await
}

/// Like `drive`, but the measured window closes when `stop` is set instead of after a fixed
/// duration: for load that must last exactly as long as something else (a rotation) does.
pub async fn drive_until<W: Worker>(
    workers: Vec<W>,
    warmup: Duration,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Outcome> {
    let start = Instant::now();
    let window = Window {
        from: start + warmup,
        // Far enough never to matter, near enough not to overflow an Instant.
        until: start + Duration::from_secs(365 * 24 * 3600),
        stop: Some(stop),
    };
    collect(workers, window, Duration::ZERO).await
}

async fn collect<W: Worker>(
    workers: Vec<W>,
    window: Window,
    nominal: Duration,
) -> anyhow::Result<Outcome> {
    anyhow::ensure!(!workers.is_empty(), "no workers to run");
    let mut tasks = JoinSet::new();
    for worker in workers {
        tasks.spawn(work(worker, window.clone()));
    }
    let mut total = Outcome::default();
    let mut last_done = window.from;
    while let Some(joined) = tasks.join_next().await {
        let (part, done) = joined.context("a load task panicked")?;
        total.answered += part.answered;
        total.rejected += part.rejected;
        total.transport_errors += part.transport_errors;
        total.latencies.extend(part.latencies);
        if total.first_error.is_none() {
            total.first_error = part.first_error;
        }
        if let Some(done) = done {
            last_done = last_done.max(done);
        }
    }
    total.elapsed = if last_done > window.from {
        last_done - window.from
    } else {
        nominal
    };
    Ok(total)
}

#[derive(Debug, Clone)]
struct Window {
    from: Instant,
    until: Instant,
    /// Set: stop before the next operation (`drive_until`).
    stop: Option<Arc<AtomicBool>>,
}

impl Window {
    fn closed(&self, now: Instant) -> bool {
        now >= self.until
            || self
                .stop
                .as_ref()
                .is_some_and(|stop| stop.load(Ordering::Relaxed))
    }
}

/// One worker's loop; returns its counts and when its last recorded answer arrived.
async fn work<W: Worker>(mut worker: W, window: Window) -> (Outcome, Option<Instant>) {
    let mut outcome = Outcome::default();
    let mut last_done = None;
    loop {
        let started = Instant::now();
        if window.closed(started) {
            break;
        }
        let step = worker.step().await;
        if started < window.from {
            continue;
        }
        let done = Instant::now();
        let answered = |outcome: &mut Outcome| {
            outcome.answered += 1;
            let nanos = u64::try_from((done - started).as_nanos()).unwrap_or(u64::MAX);
            outcome.latencies.push(nanos);
        };
        match step {
            Step::Ok => {
                answered(&mut outcome);
                last_done = Some(done);
            }
            Step::Rejected(why) => {
                answered(&mut outcome);
                last_done = Some(done);
                outcome.rejected += 1;
                outcome.first_error.get_or_insert(why);
            }
            Step::Failed(why) => {
                outcome.transport_errors += 1;
                outcome.first_error.get_or_insert(why);
            }
        }
    }
    (outcome, last_done)
}

// === API load: signed form POSTs over one keep-alive connection ===

/// What an answer must say to count as a success.
#[derive(Debug, Clone, Copy)]
pub enum Expect {
    /// HTTP 200 and `RetCode` 0.
    RetCodeZero,
    /// HTTP 200, `RetCode` 0 and `ReplacedCount` equal to this.
    Replaced(i64),
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "RetCode")]
    ret_code: i64,
    #[serde(rename = "Message", default)]
    message: String,
    #[serde(rename = "ReplacedCount")]
    replaced_count: Option<i64>,
}

impl Expect {
    /// `Err` carries a short description for the report's first-error line.
    pub fn check(self, status: u16, body: &[u8]) -> Result<(), String> {
        if status != 200 {
            return Err(format!("HTTP status {status}"));
        }
        let envelope: Envelope = serde_json::from_slice(body)
            .map_err(|err| format!("answer is not an envelope: {err}"))?;
        if envelope.ret_code != 0 {
            return Err(format!(
                "RetCode {}: {}",
                envelope.ret_code, envelope.message
            ));
        }
        match self {
            Expect::RetCodeZero => Ok(()),
            Expect::Replaced(want) if envelope.replaced_count == Some(want) => Ok(()),
            Expect::Replaced(want) => Err(format!(
                "ReplacedCount {:?}, expected {want}",
                envelope.replaced_count
            )),
        }
    }
}

/// The bodies one connection sends, in order, over and over: one body repeats the same call, two
/// bodies alternate (a flip and its reverse).
pub type Script = Vec<Bytes>;

/// A worker posting its script to one server over one keep-alive connection; a broken connection
/// is replaced by a new one on the next step.
pub struct FormPoster {
    addr: SocketAddr,
    host: HeaderValue,
    sender: Option<SendRequest<Full<Bytes>>>,
    script: Script,
    next: usize,
    expect: Expect,
}

impl FormPoster {
    /// One connected poster per script, all to `base_url` (`http://host:port`).
    pub async fn connect_all(
        base_url: &str,
        scripts: Vec<Script>,
        expect: Expect,
    ) -> anyhow::Result<Vec<FormPoster>> {
        anyhow::ensure!(
            scripts.iter().all(|script| !script.is_empty()),
            "every connection needs at least one body"
        );
        let authority = base_url
            .strip_prefix("http://")
            .with_context(|| format!("only http:// base URLs are supported: {base_url}"))?
            .trim_end_matches('/');
        let addr = tokio::net::lookup_host(authority)
            .await
            .with_context(|| format!("resolving {authority}"))?
            .next()
            .with_context(|| format!("{authority} resolves to no address"))?;
        let host = HeaderValue::from_str(authority)?;
        let mut posters = Vec::with_capacity(scripts.len());
        for script in scripts {
            let sender = connect(addr)
                .await
                .with_context(|| format!("connecting to {addr}"))?;
            posters.push(FormPoster {
                addr,
                host: host.clone(),
                sender: Some(sender),
                script,
                next: 0,
                expect,
            });
        }
        Ok(posters)
    }
}

impl Worker for FormPoster {
    async fn step(&mut self) -> Step {
        let sender = match &mut self.sender {
            Some(sender) => sender,
            None => match connect(self.addr).await {
                Ok(fresh) => self.sender.insert(fresh),
                Err(err) => {
                    tokio::time::sleep(RECONNECT_BACKOFF).await;
                    return Step::Failed(format!("connect: {err:#}"));
                }
            },
        };
        let body = self.script[self.next % self.script.len()].clone();
        self.next += 1;
        match tokio::time::timeout(REQUEST_TIMEOUT, send(sender, &self.host, body)).await {
            Ok(Ok((status, answer))) => match self.expect.check(status, &answer) {
                Ok(()) => Step::Ok,
                Err(why) => Step::Rejected(why),
            },
            Ok(Err(err)) => {
                self.sender = None;
                Step::Failed(format!("transport: {err:#}"))
            }
            Err(_) => {
                self.sender = None;
                Step::Failed(format!("no answer within {REQUEST_TIMEOUT:?}"))
            }
        }
    }
}

/// Drives `base_url` with one `FormPoster` per script.
pub async fn run(
    base_url: &str,
    scripts: Vec<Script>,
    expect: Expect,
    timing: Timing,
) -> anyhow::Result<Outcome> {
    let posters = FormPoster::connect_all(base_url, scripts, expect).await?;
    drive(posters, timing).await
}

async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the peer closes; errors show up on the sender.
        let _ = connection.await;
    });
    Ok(sender)
}

async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    host: &HeaderValue,
    body: Bytes,
) -> anyhow::Result<(u16, Bytes)> {
    sender.ready().await?;
    let request = hyper::Request::post("/")
        .header(HOST, host)
        .header(CONTENT_TYPE, FORM)
        .body(Full::new(body))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let answer = response.into_body().collect().await?.to_bytes();
    Ok((status, answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations() {
        let ok = br#"{"Action":"XResponse","RetCode":0,"ReplacedCount":1}"#;
        assert!(Expect::RetCodeZero.check(200, ok).is_ok());
        assert!(Expect::Replaced(1).check(200, ok).is_ok());
        assert!(Expect::Replaced(2).check(200, ok).is_err());
        assert!(Expect::RetCodeZero.check(500, ok).is_err());
        let failed = br#"{"Action":"XResponse","RetCode":4079,"Message":"ssl [x] not found"}"#;
        let why = Expect::RetCodeZero.check(200, failed).unwrap_err();
        assert!(why.contains("4079") && why.contains("not found"), "{why}");
        assert!(Expect::RetCodeZero.check(200, b"<html>").is_err());
    }

    /// A worker that answers after a fixed pause, wrongly every third time.
    struct Fake {
        calls: u64,
    }

    impl Worker for Fake {
        async fn step(&mut self) -> Step {
            self.calls += 1;
            tokio::time::sleep(Duration::from_millis(1)).await;
            if self.calls.is_multiple_of(3) {
                Step::Rejected("third".into())
            } else {
                Step::Ok
            }
        }
    }

    #[tokio::test]
    async fn drive_counts_only_the_window() {
        let timing = Timing {
            warmup: Duration::from_millis(20),
            duration: Duration::from_millis(60),
        };
        let outcome = drive(vec![Fake { calls: 0 }, Fake { calls: 0 }], timing)
            .await
            .unwrap();
        assert!(outcome.answered > 0);
        assert_eq!(outcome.latencies.len() as u64, outcome.answered);
        assert!(outcome.rejected > 0 && outcome.rejected < outcome.answered);
        assert_eq!(outcome.transport_errors, 0);
        assert_eq!(outcome.first_error.as_deref(), Some("third"));
        // Every recorded step took at least the fake's 1 ms pause.
        assert!(outcome.latencies.iter().all(|&nanos| nanos >= 1_000_000));
        assert!(outcome.elapsed >= Duration::from_millis(50));
    }

    /// A worker that raises the stop flag in its fifth step.
    struct Stopper {
        calls: u64,
        stop: Arc<AtomicBool>,
    }

    impl Worker for Stopper {
        async fn step(&mut self) -> Step {
            self.calls += 1;
            if self.calls == 5 {
                self.stop.store(true, Ordering::Relaxed);
            }
            Step::Ok
        }
    }

    #[tokio::test]
    async fn drive_until_stops_when_told() {
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Stopper {
            calls: 0,
            stop: stop.clone(),
        };
        let outcome = drive_until(vec![worker], Duration::ZERO, stop)
            .await
            .unwrap();
        // Steps 1..=5 ran and counted; the flag raised in step 5 ends the loop before step 6.
        assert_eq!(outcome.answered, 5);
        assert_eq!(outcome.errors(), 0);
    }
}
