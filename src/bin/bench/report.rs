//! Turning measurements into the printed report: percentiles, the load table, latency lines and
//! ratio lines. Pure formatting and arithmetic; it measures nothing itself.

use std::time::Duration;

use crate::load::Outcome;

/// Nearest-rank percentile (`q` in 0..=100) of sorted values; 0 for no values.
pub fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of some durations (the lower middle for an even count).
pub fn median(values: &[Duration]) -> Duration {
    let mut nanos: Vec<u64> = values.iter().map(|d| as_nanos(*d)).collect();
    nanos.sort_unstable();
    Duration::from_nanos(percentile(&nanos, 50.0))
}

pub fn as_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Milliseconds with three decimals: sub-millisecond latencies stay readable.
pub fn ms(nanos: u64) -> String {
    format!("{:.3}", nanos as f64 / 1e6)
}

/// Latency distribution of one series of samples.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

impl Latency {
    pub fn of(samples: &[u64]) -> Latency {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        Latency {
            p50: percentile(&sorted, 50.0),
            p90: percentile(&sorted, 90.0),
            p99: percentile(&sorted, 99.0),
            max: sorted.last().copied().unwrap_or(0),
        }
    }
}

/// One line of a load table.
pub struct LoadRow<'a> {
    pub label: &'a str,
    pub outcome: &'a Outcome,
}

impl<'a> LoadRow<'a> {
    pub fn new(label: &'a str, outcome: &'a Outcome) -> LoadRow<'a> {
        LoadRow { label, outcome }
    }
}

/// Prints the table every load scenario shares, then the first error of each run that had any.
pub fn print_load_table(rows: &[LoadRow]) {
    println!(
        "{:<22} {:>10} {:>8} {:>11} {:>9} {:>9} {:>9} {:>9}",
        "", "requests", "errors", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    for row in rows {
        let o = row.outcome;
        let latency = Latency::of(&o.latencies);
        println!(
            "{:<22} {:>10} {:>8} {:>11.0} {:>9} {:>9} {:>9} {:>9}",
            row.label,
            o.answered,
            o.errors(),
            o.rate(),
            ms(latency.p50),
            ms(latency.p90),
            ms(latency.p99),
            ms(latency.max)
        );
    }
    for row in rows {
        if let Some(why) = &row.outcome.first_error {
            println!(
                "  {}: {} errors ({} rejected answers, {} transport); first: {why}",
                row.label,
                row.outcome.errors(),
                row.outcome.rejected,
                row.outcome.transport_errors
            );
        }
    }
}

/// `certbind req/s ÷ bare req/s` for a baseline, certbind, baseline run.
pub fn print_throughput_ratio(before: &Outcome, certbind: &Outcome, after: &Outcome) {
    let bare = (before.rate() + after.rate()) / 2.0;
    let ratio = if bare > 0.0 {
        certbind.rate() / bare
    } else {
        0.0
    };
    println!(
        "ratio = certbind req/s ÷ bare req/s = {:.0} ÷ {:.0} (mean of both baselines) = {ratio:.3}",
        certbind.rate(),
        bare
    );
    let drift = if before.rate() > 0.0 {
        after.rate() / before.rate()
    } else {
        0.0
    };
    println!("baseline drift (second ÷ first) = {drift:.3}");
    if certbind.errors() > 0 {
        println!("WARNING: certbind answered with errors; its req/s counts successes only");
    }
}

/// `name = a ÷ b = ratio (goal ≤ goal)`.
pub fn print_ratio(name: &str, numerator: Duration, denominator: Duration, goal: f64) {
    let ratio = numerator.as_secs_f64() / denominator.as_secs_f64().max(f64::MIN_POSITIVE);
    let verdict = if ratio <= goal { "met" } else { "NOT met" };
    println!(
        "{name} = {} ms ÷ {} ms = {ratio:.2}  (goal ≤ {goal}: {verdict})",
        ms(as_nanos(numerator)),
        ms(as_nanos(denominator))
    );
}

/// One line of a rate table (`print_rate_table`): a run, and the server CPU it cost per operation
/// when that was measured.
pub struct RateRow<'a> {
    pub label: String,
    pub outcome: &'a Outcome,
    pub cpu_per_op: Option<Duration>,
}

/// A table like `print_load_table` for operations that are not requests (`unit` = "hs"), with
/// the server's CPU per operation; then the first error of each run that had any.
pub fn print_rate_table(unit: &str, rows: &[RateRow]) {
    println!(
        "{:<22} {:>10} {:>8} {:>11} {:>9} {:>9} {:>9} {:>14}",
        "",
        unit,
        "failed",
        format!("{unit}/s"),
        "p50 ms",
        "p99 ms",
        "max ms",
        format!("srv CPU µs/{unit}")
    );
    for row in rows {
        let o = row.outcome;
        let latency = Latency::of(&o.latencies);
        let cpu = row
            .cpu_per_op
            .map_or_else(|| "-".to_string(), |cpu| format!("{:.1}", micros(cpu)));
        println!(
            "{:<22} {:>10} {:>8} {:>11.0} {:>9} {:>9} {:>9} {:>14}",
            row.label,
            o.answered,
            o.errors(),
            o.rate(),
            ms(latency.p50),
            ms(latency.p99),
            ms(latency.max),
            cpu
        );
    }
    for row in rows {
        if let Some(why) = &row.outcome.first_error {
            println!(
                "  {}: {} failed ({} wrong answers, {} transport/TLS); first: {why}",
                row.label,
                row.outcome.errors(),
                row.outcome.rejected,
                row.outcome.transport_errors
            );
        }
    }
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// Median, minimum and maximum of some figures (the anchors' "median [min–max]").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// `None` for no values. The median of an even count is the lower middle, as in `median`.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut sorted: Vec<f64> = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = ((sorted.len() as f64) / 2.0).ceil() as usize;
        Some(Spread {
            median: *sorted.get(rank.max(1) - 1)?,
            min: *sorted.first()?,
            max: *sorted.last()?,
        })
    }

    /// `1,234 [1,100–1,300]` with `decimals` digits after the point.
    pub fn show(&self, decimals: usize) -> String {
        format!(
            "{:.decimals$} [{:.decimals$}–{:.decimals$}]",
            self.median, self.min, self.max
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 50.0), 50);
        assert_eq!(percentile(&values, 90.0), 90);
        assert_eq!(percentile(&values, 99.0), 99);
        assert_eq!(percentile(&values, 100.0), 100);
        assert_eq!(percentile(&values, 0.0), 1);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn medians() {
        let d = Duration::from_millis;
        assert_eq!(median(&[d(30), d(10), d(20)]), d(20));
        assert_eq!(median(&[d(4), d(1), d(3), d(2)]), d(2));
    }

    #[test]
    fn spreads() {
        let spread = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((spread.median, spread.min, spread.max), (2.0, 1.0, 3.0));
        assert_eq!(Spread::of(&[4.0, 1.0]).unwrap().median, 1.0);
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(spread.show(1), "2.0 [1.0–3.0]");
    }

    #[test]
    fn rates_count_successes_only() {
        let outcome = Outcome {
            answered: 100,
            rejected: 10,
            transport_errors: 5,
            elapsed: Duration::from_secs(2),
            latencies: Vec::new(),
            first_error: None,
        };
        assert_eq!(outcome.errors(), 15);
        assert!((outcome.rate() - 45.0).abs() < 1e-9);
    }
}
