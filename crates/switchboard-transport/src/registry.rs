//! The live-connection registry: one small slot per connection holding its
//! task waker and its next coarse deadline.
//!
//! It replaces two per-connection costs with shared ones: shutdown is one
//! `trigger` that wakes every slot, and heartbeat/close timers are one ticker
//! task per registry that wakes the slots whose deadline passed (one-second
//! resolution, ample for 30-second pings and 5-second close timeouts), instead
//! of a timer entry per connection.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Waker};
use std::time::Duration;
use tokio::time::Instant;

const SHARDS: usize = 32;
/// Slots a shard keeps allocated when it empties; a larger table is freed.
const KEEP_SLOTS: usize = 64;
/// How often the ticker looks for passed deadlines.
pub const TICK: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Slot {
    waker: Option<Waker>,
    /// Seconds since the registry's epoch; 0 means no deadline.
    deadline: u32,
}

#[derive(Default)]
struct Shard {
    slots: Vec<Slot>,
    free: Vec<u32>,
}

struct Inner {
    epoch: Instant,
    triggered: AtomicBool,
    live: AtomicUsize,
    next_shard: AtomicUsize,
    ticker_started: AtomicBool,
    shards: [Mutex<Shard>; SHARDS],
    idle: tokio::sync::Notify,
}

/// A session task's wait for its own timer (the registry's ticker is too
/// coarse for Engine.IO's and SockJS's timers), `None` being none armed: a
/// wake-up a day out then stands for "never" (the task only loops once
/// more), so that the wait is one bare `Sleep` in every session's task.
pub(crate) fn sleep_until(deadline: Option<std::time::Instant>) -> tokio::time::Sleep {
    const NO_TIMER: Duration = Duration::from_secs(24 * 3600);
    tokio::time::sleep_until(match deadline {
        Some(d) => Instant::from_std(d),
        None => Instant::now() + NO_TIMER,
    })
}

/// Cloneable handle to a server's registry of live connections.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

/// The name the shutdown role of the registry goes by in the server.
pub type Shutdown = Registry;

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// An empty registry, not shut down.
    pub fn new() -> Self {
        Registry {
            inner: Arc::new(Inner {
                epoch: Instant::now(),
                triggered: AtomicBool::new(false),
                live: AtomicUsize::new(0),
                next_shard: AtomicUsize::new(0),
                ticker_started: AtomicBool::new(false),
                shards: std::array::from_fn(|_| Mutex::new(Shard::default())),
                idle: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Registers a connection; the guard unregisters it on drop. Starts the
    /// ticker on first use (must be called inside a tokio runtime).
    pub fn register(&self) -> ConnectionGuard {
        if !self.inner.ticker_started.swap(true, Ordering::AcqRel) {
            tokio::spawn(ticker(Arc::downgrade(&self.inner)));
        }
        self.inner.live.fetch_add(1, Ordering::AcqRel);
        let shard = self.inner.next_shard.fetch_add(1, Ordering::Relaxed) % SHARDS;
        let slot = {
            let mut s = self.inner.shards[shard].lock();
            match s.free.pop() {
                Some(i) => i,
                None => {
                    s.slots.push(Slot::default());
                    (s.slots.len() - 1) as u32
                }
            }
        };
        // Slots per shard stay far below 2^27 (the open-files limit alone).
        let place = slot
            .checked_mul(SHARDS as u32)
            .expect("fewer than 2^27 connections per shard")
            + shard as u32;
        ConnectionGuard {
            inner: self.inner.clone(),
            place,
            armed: 0,
        }
    }

    /// Asks every registered connection to shut down.
    pub fn trigger(&self) {
        self.inner.triggered.store(true, Ordering::Release);
        for shard in &self.inner.shards {
            let wakers: Vec<Waker> = shard
                .lock()
                .slots
                .iter_mut()
                .filter_map(|s| s.waker.take())
                .collect();
            wakers.into_iter().for_each(Waker::wake);
        }
    }

    /// Whether `trigger` was called.
    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::Acquire)
    }

    /// Number of registered connections.
    pub fn live(&self) -> usize {
        self.inner.live.load(Ordering::Acquire)
    }

    /// Waits until every registered connection is gone or `timeout` passes.
    /// Returns the number still alive.
    pub async fn wait_idle(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.inner.idle.notified();
            if self.live() == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.live();
            }
        }
    }
}

impl Inner {
    fn now_secs(&self) -> u32 {
        self.epoch.elapsed().as_secs() as u32
    }

    /// Wakes every slot whose deadline passed (and clears the deadline).
    fn tick(&self) {
        let now = self.now_secs();
        for shard in &self.shards {
            let due: Vec<Waker> = {
                let mut s = shard.lock();
                s.slots
                    .iter_mut()
                    .filter(|slot| slot.deadline != 0 && slot.deadline <= now)
                    .filter_map(|slot| {
                        slot.deadline = 0;
                        slot.waker.clone()
                    })
                    .collect()
            };
            due.into_iter().for_each(Waker::wake);
        }
    }
}

async fn ticker(registry: Weak<Inner>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        match registry.upgrade() {
            Some(inner) => inner.tick(),
            None => return,
        }
    }
}

/// A connection's slot in the [`Registry`].
pub struct ConnectionGuard {
    inner: Arc<Inner>,
    /// The slot's index times [`SHARDS`] plus the shard's: one `u32`, so
    /// that the guard takes 16 bytes of every connection's task.
    place: u32,
    /// The deadline last written to the slot, to skip rewriting it.
    armed: u32,
}

impl ConnectionGuard {
    fn shard(&self) -> usize {
        self.place as usize % SHARDS
    }

    fn slot(&self) -> usize {
        self.place as usize / SHARDS
    }

    /// Stores the task's waker (so shutdown and deadlines can wake it) and
    /// tells whether shutdown was triggered. The waker is stored after the
    /// trigger too: [`Registry::trigger`] takes the wakers it wakes, and a
    /// connection still closing (waiting for its peer's close frame) needs
    /// the ticker to wake it at its deadline.
    pub fn poll_shutdown(&self, cx: &mut Context<'_>) -> bool {
        {
            let mut s = self.inner.shards[self.shard()].lock();
            let w = &mut s.slots[self.slot()].waker;
            match w {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *w = Some(cx.waker().clone()),
            }
        }
        // Re-check: trigger may have run between the first check and the store.
        self.inner.triggered.load(Ordering::Acquire)
    }

    /// `t` in milliseconds since the registry's epoch, wrapping after 49
    /// days: a 4-byte timestamp for spans known to be shorter than that
    /// (compare with `wrapping_sub`).
    pub fn millis(&self, t: Instant) -> u32 {
        t.saturating_duration_since(self.inner.epoch).as_millis() as u32
    }

    /// Asks for a wake-up at `deadline` (rounded up to the next tick); None
    /// cancels. Call [`poll_shutdown`](Self::poll_shutdown) in the same poll
    /// so the slot has the current waker.
    ///
    /// The slot is only written when the deadline changes; the ticker clears
    /// it when it fires, and a woken connection always finds its deadline
    /// passed (it is rounded up), so it arms a new one.
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        let secs = match deadline {
            // +1: a wake-up may come up to one tick late, never early.
            Some(d) => {
                (d.saturating_duration_since(self.inner.epoch).as_secs() as u32).saturating_add(1)
            }
            None => 0,
        };
        if secs != self.armed {
            self.armed = secs;
            self.inner.shards[self.shard()].lock().slots[self.slot()].deadline = secs;
        }
    }

    /// Whether the deadline last set has passed, as the ticker counts it
    /// (so a task the ticker woke for it finds it passed).
    pub(crate) fn deadline_passed(&self) -> bool {
        self.armed != 0 && self.armed <= self.inner.now_secs()
    }

    /// A one-off timeout on the registry's ticker (one-second resolution),
    /// such as a connection's wait for the peer's close frame: the first
    /// call arms it (`armed` remembers that), later calls tell whether it
    /// passed. Stores the task's waker so that the ticker wakes it then.
    pub fn timeout_passed(
        &mut self,
        armed: &mut bool,
        timeout: Duration,
        cx: &mut Context<'_>,
    ) -> bool {
        if !*armed {
            *armed = true;
            self.set_deadline(Some(Instant::now() + timeout));
        } else if self.deadline_passed() {
            return true;
        }
        // The waker is what matters here; shutdown is the caller's business.
        let _ = self.poll_shutdown(cx);
        false
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        {
            let mut s = self.inner.shards[self.shard()].lock();
            s.slots[self.slot()] = Slot::default();
            s.free.push(self.place / SHARDS as u32);
            if s.free.len() == s.slots.len() && s.slots.capacity() > KEEP_SLOTS {
                // The shard emptied after a crowd: give its tables back
                // (no guard holds an index into it any more).
                s.slots = Vec::new();
                s.free = Vec::new();
            }
        }
        if self.inner.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct Counter(AtomicUsize);
    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn trigger_wakes_registered_connections_once() {
        let reg = Registry::new();
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let guards: Vec<_> = (0..10).map(|_| reg.register()).collect();
        for g in &guards {
            assert!(!g.poll_shutdown(&mut cx));
        }
        assert_eq!(reg.live(), 10);
        reg.trigger();
        assert_eq!(counter.0.load(Ordering::SeqCst), 10);
        assert!(guards[0].poll_shutdown(&mut cx));
        drop(guards);
        assert_eq!(reg.live(), 0);
    }

    #[tokio::test]
    async fn a_guard_is_16_bytes_and_finds_its_slot() {
        assert_eq!(std::mem::size_of::<ConnectionGuard>(), 16);
        let registry = Registry::new();
        let guards: Vec<_> = (0..3 * SHARDS).map(|_| registry.register()).collect();
        let places: std::collections::HashSet<_> =
            guards.iter().map(|g| (g.shard(), g.slot())).collect();
        assert_eq!(places.len(), guards.len(), "every guard its own slot");
        assert!(guards.iter().all(|g| g.slot() < 3 && g.shard() < SHARDS));
        drop(guards);
        assert_eq!(registry.live(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_wake_only_when_due() {
        let reg = Registry::new();
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let mut soon = reg.register();
        let mut later = reg.register();
        let never = reg.register();
        for g in [&soon, &later, &never] {
            g.poll_shutdown(&mut cx);
        }
        soon.set_deadline(Some(Instant::now() + Duration::from_secs(2)));
        later.set_deadline(Some(Instant::now() + Duration::from_secs(10)));
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert_eq!(
            counter.0.load(Ordering::SeqCst),
            1,
            "only the 2 s deadline is due"
        );
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(counter.0.load(Ordering::SeqCst), 2, "a deadline fires once");
    }

    #[tokio::test]
    async fn wait_idle_returns_when_last_guard_drops() {
        let reg = Registry::new();
        let g = reg.register();
        let reg2 = reg.clone();
        let t = tokio::spawn(async move { reg2.wait_idle(Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(g);
        assert_eq!(t.await.unwrap(), 0);
    }

    #[tokio::test]
    async fn an_emptied_crowd_gives_its_slots_back() {
        let reg = Registry::new();
        let crowd: Vec<_> = (0..SHARDS * 200).map(|_| reg.register()).collect();
        let capacity = |reg: &Registry| -> usize {
            reg.inner
                .shards
                .iter()
                .map(|s| s.lock().slots.capacity())
                .sum()
        };
        assert!(capacity(&reg) >= SHARDS * 200);
        let mut crowd = crowd.into_iter();
        let kept: Vec<_> = crowd.by_ref().take(SHARDS).collect(); // one per shard
        drop(crowd);
        assert!(
            capacity(&reg) >= SHARDS * 200,
            "a shard in use keeps its table"
        );
        drop(kept);
        assert_eq!(capacity(&reg), 0);
        assert_eq!(reg.live(), 0);
        // Still usable: new guards get fresh slots and arm deadlines.
        let mut again: Vec<_> = (0..SHARDS * 3).map(|_| reg.register()).collect();
        for g in &mut again {
            g.set_deadline(Some(Instant::now() + Duration::from_secs(5)));
        }
        assert_eq!(reg.live(), SHARDS * 3);
    }
}
