//! Gives the memory of closed connections back to the operating system.
//!
//! An allocator keeps what a process freed for later allocations: after
//! 19,000 connections close, glibc's malloc keeps the server's RSS at its
//! peak (measured in docs/benchmarks.md, "Leaks"). The binary runs
//! [`return_freed_memory`]: once the number of open connections has dropped
//! well below its peak and stayed there for a few seconds (so that sessions
//! outliving their connection, such as SockJS's, are gone too), it asks the
//! [`Allocator`] the binary runs on to hand its free pages back: glibc's
//! `malloc_trim(0)` (which walks the heap holding the allocator's locks:
//! rare, after a large drop only) or jemalloc's purge of every arena (whose
//! background thread returns unused pages within a second anyway; the purge
//! makes it immediate). Other allocators and platforms: nothing to do, the
//! task does not run.

use std::sync::OnceLock;
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

/// The global allocator of the binary that runs [`return_freed_memory`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocator {
    /// The platform's `malloc` (glibc's is trimmed; others are left alone).
    System,
    /// jemalloc through `tikv-jemallocator` (the `jemalloc` feature).
    #[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
    Jemalloc,
}

impl Allocator {
    /// Whether there is anything to do for this allocator here.
    fn can_release(self) -> bool {
        match self {
            Allocator::System => cfg!(all(target_os = "linux", target_env = "gnu")),
            #[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
            Allocator::Jemalloc => true,
        }
    }

    /// Hands free pages back; returns how much the resident size fell.
    fn release(self) -> u64 {
        let before = resident_bytes();
        match self {
            Allocator::System => malloc_trim(),
            #[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
            Allocator::Jemalloc => {
                jemalloc_purge();
            }
        }
        before.saturating_sub(resident_bytes())
    }

    /// What the allocator reports holding (zeros where it reports nothing).
    pub fn usage(self) -> HeapUsage {
        match self {
            Allocator::System => heap_usage(),
            #[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
            Allocator::Jemalloc => jemalloc_usage(),
        }
    }
}

/// The allocator [`heap_usage_reported`] reads.
static REPORTED: OnceLock<Allocator> = OnceLock::new();

/// Has `/metrics` and `/api/info` report `allocator`'s statistics
/// ([`HeapUsage`]): the binary names the allocator it runs on; an
/// application that mounts the router and knows its allocator may too.
/// The first call wins.
pub fn report_heap_of(allocator: Allocator) {
    let _ = REPORTED.set(allocator);
}

/// The reported allocator's statistics ([`report_heap_of`]); `None` when
/// none was named or it reports nothing here.
pub fn heap_usage_reported() -> Option<HeapUsage> {
    let usage = REPORTED.get()?.usage();
    (usage != HeapUsage::default()).then_some(usage)
}

/// Watches `registry`'s open connections and has `allocator` release freed
/// memory after a large drop (see the module docs). Runs until the registry
/// is shut down.
pub async fn return_freed_memory(registry: Registry, allocator: Allocator) {
    if !allocator.can_release() {
        return;
    }
    let heap = allocator.usage();
    tracing::debug!(
        heap_in_use_kib = heap.in_use / 1024,
        heap_free_kib = heap.free / 1024,
        heap_metadata_kib = heap.metadata / 1024,
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
            let released = allocator.release();
            let heap = allocator.usage();
            tracing::info!(
                peak,
                live,
                released_kib = released / 1024,
                heap_in_use_kib = heap.in_use / 1024,
                heap_free_kib = heap.free / 1024,
                heap_metadata_kib = heap.metadata / 1024,
                "connections closed: freed memory returned to the OS"
            );
        }
    }
}

/// glibc's `malloc_trim(0)`: every arena's free pages back to the OS.
fn malloc_trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers; it only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// jemalloc's `arena.<all>.purge`: the unused dirty pages of every arena
/// back to the OS now.
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
fn jemalloc_purge() -> bool {
    // MALLCTL_ARENAS_ALL is 4096.
    const NAME: &[u8] = b"arena.4096.purge\0";
    // SAFETY: a NUL-terminated name; the purge command reads and writes
    // nothing (null old/new pointers, zero lengths).
    let rc = unsafe {
        tikv_jemalloc_sys::mallctl(
            NAME.as_ptr().cast(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        tracing::debug!(rc, "jemalloc arena.4096.purge failed");
    }
    rc == 0
}

/// jemalloc's statistics (`stats.allocated`, `.resident`, `.metadata`),
/// refreshed first (`epoch`); zeros if they cannot be read.
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
fn jemalloc_usage() -> HeapUsage {
    /// Reads one `size_t` statistic.
    fn read(name: &std::ffi::CStr) -> Option<u64> {
        let mut value: libc::size_t = 0;
        let mut len = std::mem::size_of::<libc::size_t>();
        // SAFETY: a NUL-terminated name, and `value`/`len` describe a
        // writable size_t, which is what these statistics are.
        let rc = unsafe {
            tikv_jemalloc_sys::mallctl(
                name.as_ptr().cast(),
                (&mut value as *mut libc::size_t).cast(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        (rc == 0 && len == std::mem::size_of::<libc::size_t>()).then_some(value as u64)
    }
    // Statistics are a snapshot taken when the epoch advances.
    let mut epoch: u64 = 1;
    let mut len = std::mem::size_of::<u64>();
    // SAFETY: a NUL-terminated name; `epoch` is a u64 both read and
    // written, as the control expects.
    let rc = unsafe {
        tikv_jemalloc_sys::mallctl(
            c"epoch".as_ptr(),
            (&mut epoch as *mut u64).cast(),
            &mut len,
            (&mut epoch as *mut u64).cast(),
            std::mem::size_of::<u64>(),
        )
    };
    if rc != 0 {
        return HeapUsage::default();
    }
    let (Some(allocated), Some(resident), Some(metadata)) = (
        read(c"stats.allocated"),
        read(c"stats.resident"),
        read(c"stats.metadata"),
    ) else {
        return HeapUsage::default();
    };
    HeapUsage {
        in_use: allocated,
        // `resident` counts the metadata's resident pages too.
        free: resident.saturating_sub(allocated).saturating_sub(metadata),
        metadata,
    }
}

/// What the allocator holds, in bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HeapUsage {
    /// In live allocations.
    pub in_use: u64,
    /// Free but kept by the allocator, resident: what fragmentation costs
    /// after a trim (glibc: free chunks in the arenas; jemalloc: resident
    /// pages holding no allocation, dirty pages not yet purged included).
    pub free: u64,
    /// The allocator's own bookkeeping (jemalloc only: it grows with the
    /// peak and is never returned).
    pub metadata: u64,
}

fn heap_usage() -> HeapUsage {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 takes no arguments and returns a plain struct.
        let info = unsafe { libc::mallinfo2() };
        HeapUsage {
            in_use: (info.uordblks + info.hblkhd) as u64,
            free: info.fordblks as u64,
            metadata: 0,
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        HeapUsage::default()
    }
}

/// This process' resident set size, from /proc/self/statm (0 if unreadable).
#[cfg(not(unix))]
fn resident_bytes() -> u64 {
    0
}

/// This process' resident set size, from /proc/self/statm (0 if unreadable).
#[cfg(unix)]
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

    #[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
    #[test]
    fn jemalloc_knows_the_purge_command() {
        // Held by a live allocation so that there is an arena to purge.
        let keep = tikv_jemallocator::Jemalloc;
        let layout = std::alloc::Layout::from_size_align(1 << 20, 8).unwrap();
        // SAFETY: a non-zero layout; freed below with the same layout.
        let p = unsafe { std::alloc::GlobalAlloc::alloc(&keep, layout) };
        assert!(!p.is_null());
        // SAFETY: allocated above by the same allocator with this layout.
        unsafe { std::alloc::GlobalAlloc::dealloc(&keep, p, layout) };
        assert!(jemalloc_purge(), "mallctl arena.4096.purge");
        assert!(Allocator::Jemalloc.can_release());
    }

    /// Tests run on the system allocator (the binary's global allocator is
    /// set in main.rs only).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_reports_what_it_holds() {
        // black_box: optimized builds may elide an allocation never read.
        let block = std::hint::black_box(vec![1u8; 1 << 20]);
        let usage = Allocator::System.usage();
        assert!(usage.in_use >= 1 << 20, "{usage:?}");
        assert_eq!(usage.metadata, 0);
        drop(std::hint::black_box(block));
        assert!(Allocator::System.can_release());
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn the_named_allocator_is_reported() {
        // Tests run on the system allocator.
        report_heap_of(Allocator::System);
        let usage = heap_usage_reported().expect("glibc reports its heap");
        assert!(usage.in_use > 0, "{usage:?}");
    }

    #[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
    #[test]
    fn jemalloc_reports_what_it_holds() {
        let jem = tikv_jemallocator::Jemalloc;
        let layout = std::alloc::Layout::from_size_align(4 << 20, 8).unwrap();
        let before = jemalloc_usage();
        assert!(
            before.metadata > 0,
            "jemalloc statistics readable: {before:?}"
        );
        // SAFETY: a non-zero layout; freed below with the same layout.
        let p = unsafe { std::alloc::GlobalAlloc::alloc(&jem, layout) };
        assert!(!p.is_null());
        let held = jemalloc_usage();
        // The test harness allocates on the system allocator, not on this
        // one; the only other user is the purge test's 1 MiB block.
        assert!(
            held.in_use >= before.in_use + (3 << 20),
            "{before:?} -> {held:?}"
        );
        // SAFETY: allocated above by the same allocator with this layout.
        unsafe { std::alloc::GlobalAlloc::dealloc(&jem, p, layout) };
        let after = jemalloc_usage();
        assert!(
            after.in_use + (3 << 20) <= held.in_use,
            "{held:?} -> {after:?}"
        );
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
