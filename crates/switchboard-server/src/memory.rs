//! Gives the memory of closed connections back to the operating system.
//!
//! glibc's allocator keeps what a process freed for later allocations: after
//! 19,000 connections close, the server's RSS stays at its peak (measured in
//! docs/benchmarks.md, "Leaks"). The binary runs [`return_freed_memory`]: once
//! the number of open connections has dropped well below its peak and stayed
//! there for a few seconds (so that sessions outliving their connection, such
//! as SockJS's, are gone too), it calls `malloc_trim(0)`, which hands the free
//! pages of every arena back. It is rare (after a large drop only) because a
//! trim walks the heap while holding the allocator's locks. Other allocators
//! and platforms: nothing to do, the task does not run.

use std::time::Duration;

use switchboard_transport::Registry;

/// How often the connection count is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// When to trim: the connection count fell by at least a quarter of its peak
/// (and by at least [`MIN_DROP`]) and has not risen for [`QUIET_CHECKS`]
/// checks.
#[derive(Debug, Default)]
struct TrimPolicy {
    /// Most connections seen since the last trim.
    peak: usize,
    /// Consecutive checks the drop has held without the count rising.
    quiet: u32,
    last: usize,
}

const MIN_DROP: usize = 512;
/// Longer than SockJS's default disconnect delay (5 s): its sessions
/// outlive their connections that long.
const QUIET_CHECKS: u32 = 7;

impl TrimPolicy {
    /// Takes the current connection count; `true`: trim now.
    fn check(&mut self, live: usize) -> bool {
        self.peak = self.peak.max(live);
        let drop = self.peak - live;
        let dropped = drop >= MIN_DROP && drop >= self.peak / 4;
        self.quiet = if dropped && live <= self.last {
            self.quiet + 1
        } else {
            0
        };
        self.last = live;
        if self.quiet >= QUIET_CHECKS {
            *self = TrimPolicy {
                peak: live,
                quiet: 0,
                last: live,
            };
            return true;
        }
        false
    }
}

/// Watches `registry`'s open connections and trims the heap after a large
/// drop (see the module docs). Runs until the registry is shut down.
pub async fn return_freed_memory(registry: Registry) {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return;
    }
    let heap = heap_usage();
    tracing::debug!(
        heap_in_use_kib = heap.in_use / 1024,
        heap_free_kib = heap.free / 1024,
        "heap at start"
    );
    let mut policy = TrimPolicy::default();
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !registry.is_triggered() {
        tick.tick().await;
        let live = registry.live();
        let peak = policy.peak;
        if policy.check(live) {
            let released = trim();
            let heap = heap_usage();
            tracing::info!(
                peak,
                live,
                released_kib = released / 1024,
                heap_in_use_kib = heap.in_use / 1024,
                heap_free_kib = heap.free / 1024,
                "connections closed: freed memory returned to the OS"
            );
        }
    }
}

/// `malloc_trim(0)`; returns how much the resident size fell (bytes).
fn trim() -> u64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let before = resident_bytes();
        // SAFETY: malloc_trim takes no pointers; it only releases free memory.
        unsafe {
            libc::malloc_trim(0);
        }
        before.saturating_sub(resident_bytes())
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        0
    }
}

/// What the allocator holds: bytes in live allocations, and free bytes it
/// keeps in its arenas (what fragmentation costs after a trim).
#[derive(Debug, Default, Clone, Copy)]
struct HeapUsage {
    in_use: u64,
    free: u64,
}

fn heap_usage() -> HeapUsage {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 takes no arguments and returns a plain struct.
        let info = unsafe { libc::mallinfo2() };
        HeapUsage {
            in_use: (info.uordblks + info.hblkhd) as u64,
            free: info.fordblks as u64,
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        HeapUsage::default()
    }
}

/// This process' resident set size, from /proc/self/statm (0 if unreadable).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64;
    pages * page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_after_a_large_drop_has_settled() {
        let mut p = TrimPolicy::default();
        for live in [0, 5_000, 19_000, 19_000] {
            assert!(!p.check(live));
        }
        // The connections close; the count settles.
        assert!(!p.check(2_000));
        for _ in 1..QUIET_CHECKS - 1 {
            assert!(!p.check(100));
        }
        assert!(p.check(100), "QUIET_CHECKS checks after the drop");
        // Once: the new peak is the current count.
        for _ in 0..10 {
            assert!(!p.check(100));
        }
    }

    #[test]
    fn small_or_rising_counts_do_not_trim() {
        let mut p = TrimPolicy::default();
        // Below MIN_DROP.
        assert!(!p.check(400));
        for _ in 0..20 {
            assert!(!p.check(0));
        }
        // A quarter of the peak is more than the drop.
        let mut p = TrimPolicy::default();
        assert!(!p.check(10_000));
        for _ in 0..20 {
            assert!(!p.check(8_000));
        }
        // Rising again resets the wait.
        let mut p = TrimPolicy::default();
        assert!(!p.check(10_000));
        for _ in 0..QUIET_CHECKS - 1 {
            assert!(!p.check(1_000));
        }
        assert!(!p.check(2_000));
        for _ in 0..QUIET_CHECKS - 1 {
            assert!(!p.check(1_000));
        }
        assert!(p.check(1_000));
    }
}
