//! `rotation`: certificate rotation under full-handshake load. N tasks do full TLS 1.3 handshakes
//! continuously while a rotator flips the listener's certificate A→B, B→A, … one flip at a time,
//! logging when each flip was issued and when it returned: certbind through `UpdateSSLBinding`
//! with `ListenerId`, nginx by rewriting its PEM file atomically and `nginx -s reload` (waiting
//! for the command to exit). Every handshake's start, end and leaf fingerprint is logged against
//! the same clock, and the report says, per server:
//!
//! - failed handshakes (goal 0) and failed flips;
//! - stale (literal): handshakes *completed* after flip i returned and before flip i+1 was issued
//!   that presented the old certificate (handshakes in flight at the return count); stale
//!   (strict): those of them that also *started* after the return (goal 0). A handshake still
//!   running when flip i+1 is issued counts in neither: it could rightly present either;
//! - delay: flip issued → first completed handshake presenting the new certificate, among those
//!   started after the previous flip returned (so a straggler of the flip before cannot count);
//! - old certificate served until: the last old-certificate completion after the return.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Args;

use crate::contenders::{Contenders, DataPlaneArgs, Side};
use crate::load;
use crate::report::{ms, Latency};
use crate::scenario::{replaced, CALL_TIMEOUT};
use crate::tls::{nanos_since, EventLog, Fingerprint, HandshakeEvent, HandshakeWorker};

use super::signed;

#[derive(Args, Debug)]
pub struct RotationArgs {
    #[command(flatten)]
    pub plane: DataPlaneArgs,
    /// Concurrent handshake tasks.
    #[arg(long, default_value_t = 16)]
    pub tasks: usize,
    /// Load before the first flip.
    #[arg(long, default_value = "1s", value_parser = crate::parse_duration)]
    pub warmup: Duration,
    /// Load after the last flip returned, so its handshakes complete.
    #[arg(long, default_value = "500ms", value_parser = crate::parse_duration)]
    pub tail: Duration,
    /// certbind flips (UpdateSSLBinding calls).
    #[arg(long, default_value_t = 1000)]
    pub flips: usize,
    /// Pause between a certbind flip's answer and the next flip, so every flip has a window in
    /// which new handshakes show whether the new certificate is served.
    #[arg(long, default_value = "5ms", value_parser = crate::parse_duration)]
    pub gap: Duration,
    /// nginx flips (rename + `nginx -s reload`); each reload has a mixed-certificate window of
    /// about 100 ms, so fewer and slower than certbind's.
    #[arg(long, default_value_t = 50)]
    pub nginx_flips: usize,
    /// Pause between an nginx reload command's exit and the next flip.
    #[arg(long, default_value = "200ms", value_parser = crate::parse_duration)]
    pub nginx_gap: Duration,
}

/// One flip as the rotator saw it; times in nanoseconds since the run's origin.
#[derive(Debug, Clone, Copy)]
struct Flip {
    issued: u64,
    returned: u64,
    old: Fingerprint,
    new: Fingerprint,
    ok: bool,
}

pub async fn run(args: RotationArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.tasks >= 1, "--tasks must be ≥ 1");
    let contenders = Contenders::start(&args.plane, None).await?;
    let nginx = if contenders.nginx.is_some() {
        format!(
            "; nginx: {} flips by rename + `nginx -s reload`, {:?} between exit and next flip",
            args.nginx_flips, args.nginx_gap
        )
    } else {
        String::new()
    };
    println!(
        "rotation: {} full-handshake tasks; {:?} load before the first flip, {:?} after the last; \
         certbind: {} flips by UpdateSSLBinding (ListenerId), {:?} between answer and next \
         flip{nginx}",
        args.tasks, args.warmup, args.tail, args.flips, args.gap
    );
    let mut results = Vec::new();
    for side in contenders.sides() {
        match rotate(&contenders, &args, side).await {
            Ok(stats) => results.push((side, stats)),
            Err(err) => {
                eprintln!("{}", contenders.log_tails());
                return Err(err.context(format!("rotating on {}", side.label())));
            }
        }
    }
    print(&results);
    Ok(())
}

/// One rotation run against one server; the server is on A before and after (even flip counts
/// end on A; an odd count is rounded up).
async fn rotate(contenders: &Contenders, args: &RotationArgs, side: Side) -> anyhow::Result<Stats> {
    let (a, b) = (&contenders.a, &contenders.b);
    let flips = match side {
        Side::Certbind => args.flips,
        Side::Nginx => args.nginx_flips,
    };
    let flips = flips + flips % 2;
    let gap = match side {
        Side::Certbind => args.gap,
        Side::Nginx => args.nginx_gap,
    };
    let bodies = match side {
        Side::Certbind => {
            let fixture = &contenders.fixture;
            let flip = |old: &str, new: &str| -> Bytes {
                signed(
                    &contenders.endpoint,
                    "UpdateSSLBinding",
                    &[
                        ("OldSSLId", old),
                        ("NewSSLId", new),
                        ("ListenerId", &fixture.vserver_id),
                    ],
                )
            };
            vec![
                flip(&fixture.ssl_a, &fixture.ssl_b),
                flip(&fixture.ssl_b, &fixture.ssl_a),
            ]
        }
        Side::Nginx => Vec::new(),
    };

    let origin = Instant::now();
    let logs: Vec<EventLog> = (0..args.tasks)
        .map(|_| Arc::new(Mutex::new(Vec::with_capacity(1 << 14))))
        .collect();
    let workers: Vec<HandshakeWorker> = logs
        .iter()
        .map(|log| {
            HandshakeWorker::logged(
                contenders.tls.clone(),
                contenders.addr(side),
                origin,
                log.clone(),
            )
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(load::drive_until(workers, args.warmup, stop.clone()));

    tokio::time::sleep(args.warmup).await;
    let mut records = Vec::with_capacity(flips);
    let mut first_error = None;
    for i in 0..flips {
        let (old, new) = if i % 2 == 0 { (a, b) } else { (b, a) };
        let issued = Instant::now();
        let result = match side {
            Side::Certbind => certbind_flip(contenders, &bodies[i % 2]).await,
            Side::Nginx => nginx_flip(contenders, &new.combined()).await,
        };
        let returned = Instant::now();
        if let Err(err) = &result {
            first_error.get_or_insert_with(|| format!("flip {}: {err:#}", i + 1));
        }
        records.push(Flip {
            issued: nanos_since(origin, issued),
            returned: nanos_since(origin, returned),
            old: old.fingerprint,
            new: new.fingerprint,
            ok: result.is_ok(),
        });
        tokio::time::sleep(gap).await;
    }
    tokio::time::sleep(args.tail.saturating_sub(gap)).await;
    let load_end = nanos_since(origin, Instant::now());
    stop.store(true, Ordering::Relaxed);
    load.await.context("the load task panicked")??;

    let mut events: Vec<HandshakeEvent> = Vec::new();
    for log in &logs {
        let mut log = log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        events.append(&mut log);
    }
    let mut stats = analyse(&events, &records, load_end);
    stats.first_error = first_error;
    stats.gap = gap;
    Ok(stats)
}

/// One UpdateSSLBinding; an answer other than RetCode 0 with ReplacedCount 1 is a failed flip.
async fn certbind_flip(contenders: &Contenders, body: &Bytes) -> anyhow::Result<()> {
    let text = String::from_utf8(body.to_vec())?;
    let answer = tokio::time::timeout(CALL_TIMEOUT, contenders.api.post(text))
        .await
        .context("no answer")??;
    anyhow::ensure!(
        answer.get("RetCode").and_then(serde_json::Value::as_i64) == Some(0)
            && replaced(&answer) == Some(1),
        "expected RetCode 0 and ReplacedCount 1: {answer}"
    );
    Ok(())
}

async fn nginx_flip(contenders: &Contenders, pem: &str) -> anyhow::Result<()> {
    let nginx = contenders.nginx.as_ref().context("nginx is not running")?;
    nginx.install(pem)?;
    nginx.reload().await
}

/// What one rotation run showed.
#[derive(Debug, Default)]
struct Stats {
    flips: usize,
    failed_flips: usize,
    first_error: Option<String>,
    gap: Duration,
    /// Flip issue → return, nanoseconds.
    commands: Vec<u64>,
    handshakes: usize,
    failed_handshakes: usize,
    /// Completed handshakes per second before the first flip and between the first issue and
    /// the last return.
    rate_before: f64,
    rate_during: f64,
    /// Handshakes started and completed inside the windows, and those of them with the old
    /// certificate.
    in_windows: usize,
    stale_strict: usize,
    /// Completed inside the windows with the old certificate.
    stale_literal: usize,
    /// Issue → first new-certificate completion, nanoseconds.
    delays: Vec<u64>,
    /// Flips whose new certificate no handshake showed before the next flip.
    not_seen: usize,
    /// Return → last old-certificate completion (0 when none came after the return).
    old_until: Vec<u64>,
    /// Handshakes that presented neither A nor B.
    foreign: usize,
}

/// Counts over handshake events and flips on one clock. `load_end` closes the last flip's window.
fn analyse(events: &[HandshakeEvent], flips: &[Flip], load_end: u64) -> Stats {
    let mut by_start: Vec<&HandshakeEvent> = events.iter().collect();
    by_start.sort_by_key(|event| event.start);
    let mut by_end: Vec<&HandshakeEvent> = events.iter().collect();
    by_end.sort_by_key(|event| event.end);
    // Events whose key lies in [from, to).
    let range =
        |sorted: &[&HandshakeEvent], key: fn(&HandshakeEvent) -> u64, from: u64, to: u64| {
            let lo = sorted.partition_point(|event| key(event) < from);
            let hi = sorted.partition_point(|event| key(event) < to).max(lo);
            (lo, hi)
        };
    let known: Vec<Fingerprint> = flips.iter().flat_map(|f| [f.old, f.new]).collect();

    let mut stats = Stats {
        flips: flips.len(),
        failed_flips: flips.iter().filter(|flip| !flip.ok).count(),
        commands: flips.iter().map(|f| f.returned - f.issued).collect(),
        handshakes: events.iter().filter(|e| e.leaf.is_some()).count(),
        failed_handshakes: events.iter().filter(|e| e.leaf.is_none()).count(),
        foreign: events
            .iter()
            .filter(|e| e.leaf.is_some_and(|leaf| !known.contains(&leaf)))
            .count(),
        ..Stats::default()
    };
    if let (Some(first), Some(last)) = (flips.first(), flips.last()) {
        let completed = |from: u64, to: u64| {
            let (lo, hi) = range(&by_end, |e| e.end, from, to);
            by_end[lo..hi].iter().filter(|e| e.leaf.is_some()).count()
        };
        let per_second = |count: usize, from: u64, to: u64| {
            count as f64 / (to.saturating_sub(from).max(1) as f64 / 1e9)
        };
        stats.rate_before = per_second(completed(0, first.issued), 0, first.issued);
        stats.rate_during = per_second(
            completed(first.issued, last.returned),
            first.issued,
            last.returned,
        );
    }
    for (i, flip) in flips.iter().enumerate() {
        if !flip.ok {
            continue;
        }
        let next_issue = flips.get(i + 1).map_or(load_end, |next| next.issued);
        let previous_return = if i == 0 { 0 } else { flips[i - 1].returned };

        // Started and completed inside the window: a handshake still running when the next flip
        // is issued could rightly present either certificate.
        let (lo, hi) = range(&by_start, |e| e.start, flip.returned, next_issue);
        for event in &by_start[lo..hi] {
            if let (Some(leaf), true) = (event.leaf, event.end < next_issue) {
                stats.in_windows += 1;
                if leaf == flip.old {
                    stats.stale_strict += 1;
                }
            }
        }

        let (lo, hi) = range(&by_end, |e| e.end, flip.returned, next_issue);
        let old_ends = by_end[lo..hi]
            .iter()
            .filter(|e| e.leaf == Some(flip.old))
            .map(|e| e.end);
        stats.stale_literal += old_ends.clone().count();
        stats.old_until.push(
            old_ends
                .max()
                .map_or(0, |last| last.saturating_sub(flip.returned)),
        );

        let (lo, hi) = range(&by_end, |e| e.end, flip.issued, next_issue);
        let first_new = by_end[lo..hi]
            .iter()
            .find(|e| e.leaf == Some(flip.new) && e.start >= previous_return);
        match first_new {
            Some(event) => stats.delays.push(event.end - flip.issued),
            None => stats.not_seen += 1,
        }
    }
    stats
}

fn print(results: &[(Side, Stats)]) {
    let header: Vec<&str> = results.iter().map(|(side, _)| side.label()).collect();
    let width = 30;
    print!("{:<40}", "");
    for label in &header {
        print!("{label:>width$}");
    }
    println!();
    let row = |name: &str, cell: &dyn Fn(&Stats) -> String| {
        print!("{name:<40}");
        for (_, stats) in results {
            print!("{:>width$}", cell(stats));
        }
        println!();
    };
    let triple = |values: &[u64]| {
        let latency = Latency::of(values);
        format!(
            "{} / {} / {}",
            ms(latency.p50),
            ms(latency.p99),
            ms(latency.max)
        )
    };
    let share = |part: usize, whole: usize| {
        if whole == 0 {
            format!("{part} / 0")
        } else {
            format!(
                "{part} / {whole} ({:.1}%)",
                100.0 * part as f64 / whole as f64
            )
        }
    };
    row("flips (failed)", &|s| {
        format!("{} ({})", s.flips, s.failed_flips)
    });
    row("pause after each flip", &|s| format!("{:?}", s.gap));
    row("flip command ms p50 / p99 / max", &|s| triple(&s.commands));
    row("handshakes (failed; goal 0 failed)", &|s| {
        format!("{} ({})", s.handshakes, s.failed_handshakes)
    });
    row("hs/s before rotation / during", &|s| {
        format!("{:.0} / {:.0}", s.rate_before, s.rate_during)
    });
    row("STALE strict / hs wholly in windows", &|s| {
        share(s.stale_strict, s.in_windows)
    });
    row("stale literal (in flight at return)", &|s| {
        s.stale_literal.to_string()
    });
    row("SWAP→SERVED delay ms p50 / p99 / max", &|s| {
        triple(&s.delays)
    });
    row("new cert not seen before next flip", &|s| {
        s.not_seen.to_string()
    });
    row("old cert served after return ms p50/p99/max", &|s| {
        triple(&s.old_until)
    });
    if results.iter().any(|(_, s)| s.foreign > 0) {
        row("handshakes with neither A nor B", &|s| {
            s.foreign.to_string()
        });
    }
    for (side, stats) in results {
        if let Some(why) = &stats.first_error {
            println!("  {}: first failed flip: {why}", side.label());
        }
    }
    println!(
        "goals: failed handshakes 0, stale (strict) 0; delay = flip issued → first completed \
         handshake with the new certificate (includes the flip command and one handshake)"
    );
    for (side, stats) in results {
        let verdict = if stats.failed_handshakes == 0 && stats.stale_strict == 0 {
            "met"
        } else {
            "NOT met"
        };
        println!(
            "  {}: {} failed, {} stale (strict): {verdict}",
            side.label(),
            stats.failed_handshakes,
            stats.stale_strict
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(byte: u8) -> Fingerprint {
        Fingerprint([byte; 32])
    }

    fn hs(start: u64, end: u64, leaf: Option<u8>) -> HandshakeEvent {
        HandshakeEvent {
            start,
            end,
            leaf: leaf.map(fp),
        }
    }

    #[test]
    fn windows_delays_and_stale_handshakes() {
        let (a, b) = (1, 2);
        let flips = [
            Flip {
                issued: 100,
                returned: 110,
                old: fp(a),
                new: fp(b),
                ok: true,
            },
            Flip {
                issued: 200,
                returned: 210,
                old: fp(b),
                new: fp(a),
                ok: true,
            },
        ];
        let events = [
            hs(10, 50, Some(a)),   // before any flip
            hs(90, 112, Some(a)),  // in flight at flip 1's return: literal only
            hs(105, 115, Some(b)), // first B: delay 15
            hs(120, 130, Some(a)), // started after the return with A: strict
            hs(150, 160, None),    // failed
            hs(212, 230, Some(a)), // first A after flip 2: delay 30
            hs(190, 240, Some(b)), // started before flip 2's return: literal, not strict
        ];
        let stats = analyse(&events, &flips, 300);
        assert_eq!(stats.flips, 2);
        assert_eq!(stats.failed_handshakes, 1);
        assert_eq!(stats.handshakes, 6);
        assert_eq!(stats.delays, vec![15, 30]);
        assert_eq!(stats.not_seen, 0);
        assert_eq!(stats.stale_strict, 1);
        // (190, 240) ends after flip 2 was issued: in no window.
        assert_eq!(stats.in_windows, 2);
        assert_eq!(stats.stale_literal, 3);
        assert_eq!(stats.old_until, vec![20, 30]);
        assert_eq!(stats.foreign, 0);
    }

    #[test]
    fn a_straggler_of_the_flip_before_is_not_a_new_cert_sighting() {
        let (a, b) = (1, 2);
        let flips = [
            Flip {
                issued: 100,
                returned: 110,
                old: fp(a),
                new: fp(b),
                ok: true,
            },
            Flip {
                issued: 200,
                returned: 210,
                old: fp(b),
                new: fp(a),
                ok: true,
            },
        ];
        // Started before flip 1 returned, got A, completed after flip 2 was issued.
        let events = [hs(105, 205, Some(a)), hs(150, 160, Some(b))];
        let stats = analyse(&events, &flips, 300);
        assert_eq!(stats.delays, vec![60]);
        assert_eq!(stats.not_seen, 1);
    }
}
