//! What the bench reads about server processes from `/proc`: CPU time (all threads), resident
//! memory and child processes (nginx workers). Read-only; Linux only (elsewhere the figures are
//! absent, not wrong).

use std::time::Duration;

/// `/proc/<pid>/stat` counts CPU in clock ticks of USER_HZ, which Linux fixes at 100 for every
/// userspace interface regardless of the kernel's own HZ.
const TICKS_PER_SECOND: u64 = 100;

/// The fields of `/proc/<pid>/stat` after the command name (which may contain spaces).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &text[text.rfind(')')? + 1..];
    Some(after_name.split_whitespace().map(str::to_owned).collect())
}

/// User plus system CPU of a process, all its threads, plus that of children it has reaped
/// (nginx workers that exited after a reload).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let fields = stat_fields(pid)?;
    // After the name: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14).
    let ticks: u64 = fields[11..=14]
        .iter()
        .map(|field| field.parse::<u64>().unwrap_or(0))
        .sum();
    Some(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}

/// The summed CPU time of some processes; processes that are gone count 0.
pub fn total_cpu(pids: &[u32]) -> Duration {
    pids.iter().filter_map(|&pid| cpu_time(pid)).sum()
}

/// The live children of `parent` (a scan of `/proc`).
pub fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            stat_fields(pid).and_then(|fields| fields.get(1)?.parse::<u32>().ok()) == Some(parent)
        })
        .collect()
}

/// A `kB` line of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in bytes.
pub fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text
        .lines()
        .find(|line| line.split(':').next() == Some(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(cpu_time(me).is_some());
            assert!(status_bytes(me, "VmRSS").unwrap() > 0);
            assert!(!children(me).contains(&me));
        }
    }
}
