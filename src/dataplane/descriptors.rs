//! File-descriptor headroom: how many listening sockets the data plane may hold at once, so that
//! listeners can never take the descriptors the API, client connections, backend connections and
//! health checks need. It owns the budget and the slots handed out against it; it does not open
//! sockets (`DataPlane` does) nor count the descriptors of the rest of the process.
//!
//! The budget is the process's soft `RLIMIT_NOFILE` minus a reserve of max(1024, 10 %), fixed
//! when the data plane is built. It counts the data plane's own listening sockets (open listeners
//! and outstanding reservations) rather than every open descriptor: checking a listener is then
//! one atomic operation instead of a scan of `/proc/self/fd`, and whether a listener can be created
//! does not depend on how many clients happen to be connected at that moment; those connections
//! are what the reserve is for.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::DataPlaneError;

/// Descriptors kept out of the listeners' reach, whatever the limit.
pub const MIN_RESERVE: u64 = 1024;

/// The reserve for a descriptor limit: max(1024, 10 %).
pub fn reserve_for(limit: u64) -> u64 {
    MIN_RESERVE.max(limit / 10)
}

/// How many listening sockets a descriptor limit leaves room for.
pub fn listener_capacity(limit: u64) -> usize {
    usize::try_from(limit.saturating_sub(reserve_for(limit))).unwrap_or(usize::MAX)
}

/// The soft `RLIMIT_NOFILE` of this process; `None` when unlimited or unknown (not Linux).
///
/// The crate forbids `unsafe`, which rules out calling `getrlimit` through `libc`; the kernel
/// publishes the same numbers in `/proc/self/limits`.
pub fn process_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_files(&limits)
}

/// The soft limit from the "Max open files" row: `Max open files  20000  20000  files`.
fn parse_open_files(limits: &str) -> Option<u64> {
    limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|soft| soft.parse().ok())
}

/// The listening sockets the data plane may hold, and how many it holds.
#[derive(Debug)]
pub(crate) struct SocketBudget {
    /// `None`: no known limit, so no cap.
    capacity: Option<usize>,
    used: AtomicUsize,
}

impl SocketBudget {
    pub fn new(descriptor_limit: Option<u64>) -> Arc<SocketBudget> {
        Arc::new(SocketBudget {
            capacity: descriptor_limit.map(listener_capacity),
            used: AtomicUsize::new(0),
        })
    }

    pub fn capacity(&self) -> Option<usize> {
        self.capacity
    }

    /// One more listening socket, or `TooManyListeners` when that would eat into the reserve.
    pub fn take(self: &Arc<Self>) -> Result<SocketSlot, DataPlaneError> {
        let taken = match self.capacity {
            None => {
                self.used.fetch_add(1, Ordering::Relaxed);
                true
            }
            Some(capacity) => self
                .used
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                    (used < capacity).then_some(used + 1)
                })
                .is_ok(),
        };
        match (taken, self.capacity) {
            (true, _) => Ok(SocketSlot(self.clone())),
            (false, capacity) => Err(DataPlaneError::TooManyListeners {
                limit: capacity.unwrap_or(usize::MAX),
            }),
        }
    }

    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// One listening socket counted against the budget; dropping it gives the place back. It lives
/// exactly as long as the socket it stands for (in a `Reservation` or a listener's entry).
#[derive(Debug)]
pub(crate) struct SocketSlot(Arc<SocketBudget>);

impl Drop for SocketSlot {
    fn drop(&mut self) {
        self.0.used.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_read_from_proc_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             95432                95432                processes \n\
                      Max open files            20000                524288               files     \n";
        assert_eq!(parse_open_files(limits), Some(20000));
        assert_eq!(
            parse_open_files(
                "Max open files            unlimited            unlimited            files\n"
            ),
            None
        );
        assert_eq!(parse_open_files(""), None);
        // The live file parses on Linux; elsewhere there is none and no cap applies.
        if std::path::Path::new("/proc/self/limits").exists() {
            assert!(process_limit().is_some_and(|limit| limit > 0));
        }
    }

    #[test]
    fn the_reserve_is_at_least_1024_or_a_tenth() {
        assert_eq!(listener_capacity(20_000), 18_000);
        assert_eq!(listener_capacity(1_000_000), 900_000);
        assert_eq!(listener_capacity(4096), 3072);
        assert_eq!(listener_capacity(1024), 0);
        assert_eq!(listener_capacity(100), 0);
    }

    #[test]
    fn slots_are_refused_at_capacity_and_come_back_when_dropped() {
        let budget = SocketBudget::new(Some(MIN_RESERVE + 2));
        let first = budget.take().unwrap();
        let second = budget.take().unwrap();
        assert!(matches!(
            budget.take(),
            Err(DataPlaneError::TooManyListeners { limit: 2 })
        ));
        drop(first);
        let third = budget.take().unwrap();
        assert_eq!(budget.used(), 2);
        drop((second, third));
        assert_eq!(budget.used(), 0);

        let unlimited = SocketBudget::new(None);
        let slots: Vec<_> = (0..10).map(|_| unlimited.take().unwrap()).collect();
        assert_eq!(unlimited.used(), slots.len());
    }
}
