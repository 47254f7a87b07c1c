//! The load loop: N tasks, each owning one keep-alive HTTP/1.1 connection (hyper's connection API,
//! no pool), each sending its pre-built form bodies back-to-back in a cycle and timing every
//! answer. It knows nothing of signing or of what the server is; baseline and certbind runs go
//! through exactly this code so their figures compare.

use std::net::SocketAddr;
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
/// the loop into a busy spin; it only ever delays a task that is already failing.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(10);

/// When a run measures: `warmup` of unrecorded load, then `duration` recorded.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub warmup: Duration,
    pub duration: Duration,
}

/// What an answer must say to count as a success (anything else is an error).
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

/// Everything one run measured. Only requests started inside the measured window count.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Requests that got an HTTP answer.
    pub answered: u64,
    /// Answers that failed `Expect`.
    pub rejected: u64,
    /// Requests or connects that failed without an answer.
    pub transport_errors: u64,
    /// From the start of the window to the last recorded answer.
    pub elapsed: Duration,
    /// Latency of every answered request, nanoseconds, unsorted.
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

/// Drives `base_url` (`http://host:port`) with one connection per script.
pub async fn run(
    base_url: &str,
    scripts: Vec<Script>,
    expect: Expect,
    timing: Timing,
) -> anyhow::Result<Outcome> {
    anyhow::ensure!(!scripts.is_empty(), "no connections to run");
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

    // Every connection is up before the clock starts, so connects are not measured.
    let mut senders = Vec::with_capacity(scripts.len());
    for _ in &scripts {
        senders.push(
            connect(addr)
                .await
                .with_context(|| format!("connecting to {addr}"))?,
        );
    }
    let start = Instant::now();
    let window = Window {
        from: start + timing.warmup,
        until: start + timing.warmup + timing.duration,
    };
    let mut tasks = JoinSet::new();
    for (script, sender) in scripts.into_iter().zip(senders) {
        let host = host.clone();
        tasks.spawn(connection_task(addr, host, sender, script, expect, window));
    }
    let mut total = Outcome::default();
    let mut last_done = window.from;
    while let Some(joined) = tasks.join_next().await {
        let part = joined.context("a load task panicked")?;
        total.answered += part.outcome.answered;
        total.rejected += part.outcome.rejected;
        total.transport_errors += part.outcome.transport_errors;
        total.latencies.extend(part.outcome.latencies);
        if total.first_error.is_none() {
            total.first_error = part.outcome.first_error;
        }
        if let Some(done) = part.last_done {
            last_done = last_done.max(done);
        }
    }
    total.elapsed = if last_done > window.from {
        last_done - window.from
    } else {
        timing.duration
    };
    Ok(total)
}

#[derive(Debug, Clone, Copy)]
struct Window {
    from: Instant,
    until: Instant,
}

struct TaskOutcome {
    outcome: Outcome,
    last_done: Option<Instant>,
}

async fn connection_task(
    addr: SocketAddr,
    host: HeaderValue,
    sender: SendRequest<Full<Bytes>>,
    script: Script,
    expect: Expect,
    window: Window,
) -> TaskOutcome {
    let mut sender = Some(sender);
    let mut outcome = Outcome::default();
    let mut last_done = None;
    let mut next = 0;
    loop {
        let started = Instant::now();
        if started >= window.until {
            break;
        }
        let measured = started >= window.from;
        let Some(live) = sender.as_mut() else {
            match connect(addr).await {
                Ok(fresh) => sender = Some(fresh),
                Err(err) => {
                    if measured {
                        outcome.transport_errors += 1;
                        outcome
                            .first_error
                            .get_or_insert(format!("connect: {err:#}"));
                    }
                    tokio::time::sleep(RECONNECT_BACKOFF).await;
                }
            }
            continue;
        };
        let body = script[next % script.len()].clone();
        next += 1;
        match send(live, &host, body).await {
            Ok((status, answer)) => {
                let done = Instant::now();
                if measured {
                    outcome.answered += 1;
                    outcome
                        .latencies
                        .push(u64::try_from((done - started).as_nanos()).unwrap_or(u64::MAX));
                    last_done = Some(done);
                    if let Err(why) = expect.check(status, &answer) {
                        outcome.rejected += 1;
                        outcome.first_error.get_or_insert(why);
                    }
                }
            }
            Err(err) => {
                if measured {
                    outcome.transport_errors += 1;
                    outcome
                        .first_error
                        .get_or_insert(format!("transport: {err:#}"));
                }
                sender = None;
            }
        }
    }
    TaskOutcome { outcome, last_done }
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
}
