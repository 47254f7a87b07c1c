//! Backend choice for one listener snapshot: smooth weighted round robin over the enabled backends,
//! skipping the unhealthy ones. It owns the pick order and the per-backend health cells; the checks
//! that write those cells live in `health`, and connecting is `proxy`'s job.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use super::BackendSpec;

/// The health of one backend as last observed, shared across snapshots while the backend keeps
/// its id and address, so a config swap does not forget what the checker learnt.
#[derive(Debug, Default)]
pub(crate) struct HealthCell(AtomicU8);

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

impl HealthCell {
    /// Not checked yet, or checks disabled: counts as healthy.
    pub fn counts_as_healthy(&self) -> bool {
        self.0.load(Ordering::Relaxed) != DOWN
    }

    /// Records a check result; returns true when the healthy/unhealthy verdict changed.
    pub fn record(&self, healthy: bool) -> bool {
        let new = if healthy { UP } else { DOWN };
        let old = self.0.swap(new, Ordering::Relaxed);
        (old == DOWN) != (new == DOWN)
    }

    pub fn reset(&self) {
        self.0.store(UNKNOWN, Ordering::Relaxed);
    }
}

#[derive(Debug)]
pub(crate) struct Backend {
    pub id: String,
    pub addr: SocketAddr,
    pub weight: u32,
    pub enabled: bool,
    pub health: Arc<HealthCell>,
}

/// The backends of one snapshot plus the round-robin position. The position is the only mutable
/// part of a snapshot; it starts afresh with each swap, which only shifts where a cycle begins.
#[derive(Debug)]
pub(crate) struct Pool {
    backends: Vec<Backend>,
    /// Smooth WRR "current weight" per backend, same indexes as `backends`.
    current: Mutex<Vec<i64>>,
}

/// Which backends a pick may use, from strictest to loosest; the first tier with a member wins.
#[derive(Clone, Copy)]
enum Tier {
    Healthy,
    /// All enabled backends failed their checks: trying one beats a certain 503.
    Enabled,
    /// Every enabled backend has weight 0: they share equally rather than serve nothing.
    ZeroWeight,
}

impl Pool {
    /// Builds the pool for a new snapshot, keeping the health cells of backends that are unchanged.
    pub fn build(specs: &[BackendSpec], previous: Option<&Pool>) -> Pool {
        let backends: Vec<Backend> = specs
            .iter()
            .map(|spec| {
                let health = previous
                    .and_then(|pool| {
                        pool.backends
                            .iter()
                            .find(|old| old.id == spec.id && old.addr == spec.addr)
                    })
                    .map(|old| old.health.clone())
                    .unwrap_or_default();
                Backend {
                    id: spec.id.clone(),
                    addr: spec.addr,
                    weight: spec.weight,
                    enabled: spec.enabled,
                    health,
                }
            })
            .collect();
        let current = Mutex::new(vec![0; backends.len()]);
        Pool { backends, current }
    }

    /// True when the pool was built from exactly these backends, in this order, so the next
    /// snapshot can share it.
    pub fn has_backends(&self, specs: &[BackendSpec]) -> bool {
        self.backends.len() == specs.len()
            && self.backends.iter().zip(specs).all(|(backend, spec)| {
                backend.id == spec.id
                    && backend.addr == spec.addr
                    && backend.weight == spec.weight
                    && backend.enabled == spec.enabled
            })
    }

    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// The next backend, or None when no backend is enabled (the caller answers 503).
    ///
    /// Smooth weighted round robin (as in nginx): every eligible backend gains its weight, the
    /// largest current weight is picked and loses the eligible total. Over a cycle of `total` picks
    /// each backend is chosen exactly `weight` times, interleaved rather than in bursts.
    pub fn pick(&self) -> Option<&Backend> {
        // The lock guards a handful of integer additions; poisoning cannot leave them inconsistent
        // in a way that matters beyond one uneven pick.
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for tier in [Tier::Healthy, Tier::Enabled, Tier::ZeroWeight] {
            let mut total = 0i64;
            let mut best: Option<usize> = None;
            for (index, backend) in self.backends.iter().enumerate() {
                let weight = match tier {
                    Tier::Healthy if backend.health.counts_as_healthy() => backend.weight,
                    Tier::Healthy => 0,
                    Tier::Enabled => backend.weight,
                    Tier::ZeroWeight => 1,
                };
                if !backend.enabled || weight == 0 {
                    continue;
                }
                let weight = i64::from(weight);
                current[index] += weight;
                total += weight;
                if best.is_none_or(|b| current[index] > current[b]) {
                    best = Some(index);
                }
            }
            if let Some(index) = best {
                current[index] -= total;
                return Some(&self.backends[index]);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str, port: u16, weight: u32, enabled: bool) -> BackendSpec {
        BackendSpec {
            id: id.to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            weight,
            enabled,
        }
    }

    fn picks(pool: &Pool, n: usize) -> Vec<String> {
        (0..n).map(|_| pool.pick().unwrap().id.clone()).collect()
    }

    #[test]
    fn weights_are_exact_over_a_cycle_and_interleaved() {
        let pool = Pool::build(&[spec("a", 1, 3, true), spec("b", 2, 1, true)], None);
        assert_eq!(picks(&pool, 8), ["a", "a", "b", "a", "a", "a", "b", "a"]);
        let pool = Pool::build(
            &[
                spec("a", 1, 5, true),
                spec("b", 2, 2, true),
                spec("c", 3, 3, true),
            ],
            None,
        );
        let cycle = picks(&pool, 10);
        for (id, weight) in [("a", 5), ("b", 2), ("c", 3)] {
            assert_eq!(
                cycle.iter().filter(|p| *p == id).count(),
                weight,
                "{cycle:?}"
            );
        }
    }

    #[test]
    fn disabled_and_unhealthy_are_skipped_unless_nothing_else_is_left() {
        let pool = Pool::build(
            &[
                spec("a", 1, 1, false),
                spec("b", 2, 1, true),
                spec("c", 3, 1, true),
            ],
            None,
        );
        pool.backends[1].health.record(false);
        assert_eq!(picks(&pool, 3), ["c", "c", "c"]);
        pool.backends[2].health.record(false);
        // All enabled backends are down: keep trying them rather than answer 503.
        assert_eq!(picks(&pool, 4), ["b", "c", "b", "c"]);
    }

    #[test]
    fn no_enabled_backend_means_no_pick() {
        assert!(Pool::build(&[], None).pick().is_none());
        assert!(Pool::build(&[spec("a", 1, 1, false)], None)
            .pick()
            .is_none());
    }

    #[test]
    fn zero_weights_share_when_nothing_else_is_left() {
        let pool = Pool::build(&[spec("a", 1, 0, true), spec("b", 2, 0, true)], None);
        assert_eq!(picks(&pool, 2), ["a", "b"]);
        let pool = Pool::build(&[spec("a", 1, 0, true), spec("b", 2, 2, true)], None);
        assert_eq!(picks(&pool, 2), ["b", "b"]);
    }

    #[test]
    fn health_survives_a_rebuild_only_for_the_same_backend() {
        let first = Pool::build(&[spec("a", 1, 1, true), spec("b", 2, 1, true)], None);
        first.backends[0].health.record(false);
        first.backends[1].health.record(false);
        let second = Pool::build(
            &[spec("a", 1, 2, true), spec("b", 9, 1, true)],
            Some(&first),
        );
        assert!(!second.backends[0].health.counts_as_healthy());
        assert!(second.backends[1].health.counts_as_healthy());
    }
}
