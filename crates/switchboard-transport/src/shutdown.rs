//! Server-wide shutdown signal that every live connection watches.
//!
//! Each connection registers its task waker once (a slot in a sharded table, no
//! per-connection future); `trigger` wakes them all so they can send their
//! protocol's "going away" and finish. `wait_idle` lets the server wait for them.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::Duration;

const SHARDS: usize = 32;

#[derive(Default)]
struct Shard {
    slots: Vec<Option<Waker>>,
    free: Vec<usize>,
}

struct Inner {
    triggered: AtomicBool,
    live: AtomicUsize,
    next_shard: AtomicUsize,
    shards: [Mutex<Shard>; SHARDS],
    idle: tokio::sync::Notify,
}

/// Cloneable handle to the shutdown signal shared by a server's connections.
#[derive(Clone)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A signal that has not been triggered.
    pub fn new() -> Self {
        Shutdown {
            inner: Arc::new(Inner {
                triggered: AtomicBool::new(false),
                live: AtomicUsize::new(0),
                next_shard: AtomicUsize::new(0),
                shards: std::array::from_fn(|_| Mutex::new(Shard::default())),
                idle: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Registers a connection; the returned guard unregisters it on drop.
    pub fn register(&self) -> ShutdownGuard {
        self.inner.live.fetch_add(1, Ordering::AcqRel);
        let shard = self.inner.next_shard.fetch_add(1, Ordering::Relaxed) % SHARDS;
        let slot = {
            let mut s = self.inner.shards[shard].lock();
            match s.free.pop() {
                Some(i) => i,
                None => {
                    s.slots.push(None);
                    s.slots.len() - 1
                }
            }
        };
        ShutdownGuard {
            inner: self.inner.clone(),
            shard: shard as u32,
            slot: slot as u32,
        }
    }

    /// Asks every registered connection to shut down.
    pub fn trigger(&self) {
        self.inner.triggered.store(true, Ordering::Release);
        for shard in &self.inner.shards {
            let wakers: Vec<Waker> = shard.lock().slots.iter_mut().filter_map(|w| w.take()).collect();
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
        let deadline = tokio::time::Instant::now() + timeout;
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

/// A connection's registration with [`Shutdown`].
pub struct ShutdownGuard {
    inner: Arc<Inner>,
    shard: u32,
    slot: u32,
}

impl ShutdownGuard {
    /// True once shutdown has been triggered; otherwise remembers the task's
    /// waker so `trigger` wakes it.
    pub fn poll_triggered(&self, cx: &mut Context<'_>) -> bool {
        if self.inner.triggered.load(Ordering::Acquire) {
            return true;
        }
        {
            let mut s = self.inner.shards[self.shard as usize].lock();
            let w = &mut s.slots[self.slot as usize];
            match w {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *w = Some(cx.waker().clone()),
            }
        }
        // Re-check: trigger may have run between the first check and the store.
        self.inner.triggered.load(Ordering::Acquire)
    }
}

impl Drop for ShutdownGuard {
    fn drop(&mut self) {
        {
            let mut s = self.inner.shards[self.shard as usize].lock();
            s.slots[self.slot as usize] = None;
            s.free.push(self.slot as usize);
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

    #[test]
    fn trigger_wakes_registered_connections_once() {
        let sd = Shutdown::new();
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let guards: Vec<_> = (0..10).map(|_| sd.register()).collect();
        for g in &guards {
            assert!(!g.poll_triggered(&mut cx));
        }
        assert_eq!(sd.live(), 10);
        sd.trigger();
        assert_eq!(counter.0.load(Ordering::SeqCst), 10);
        assert!(guards[0].poll_triggered(&mut cx));
        drop(guards);
        assert_eq!(sd.live(), 0);
    }

    #[tokio::test]
    async fn wait_idle_returns_when_last_guard_drops() {
        let sd = Shutdown::new();
        let g = sd.register();
        let sd2 = sd.clone();
        let t = tokio::spawn(async move { sd2.wait_idle(Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(g);
        assert_eq!(t.await.unwrap(), 0);
    }
}
