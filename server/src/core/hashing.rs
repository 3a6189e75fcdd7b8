//! Password hashing off the runtime, on a fixed number of workers behind a small, fair,
//! bounded queue.
//!
//! Each argon2id hash takes ~19 MiB and tens of milliseconds of a core, and anyone may ask for
//! one (every password login and registration, before any authentication). So:
//! - at most `workers` hashes run at once (on tokio's blocking pool);
//! - at most `queue` more wait for a worker; one more is refused at once with a retry advice
//!   (`RATE_LIMITED` with `retry_after_ms`), never left waiting behind an unbounded line;
//! - one source holds at most `per_source` of the running and waiting places, so one address
//!   with a thousand connections still has only that many hashes in the house;
//! - a freed worker goes to the sources round-robin (the next waiting job of the next source
//!   in line), so a source with one login waits behind at most one job of each other source,
//!   not behind everything queued before it.
//!
//! A waiting job whose caller gives up (the connection closed) leaves the queue at once. A
//! running hash holds its worker until the hash is done, even if its caller is gone, so the
//! count of running hashes is the count of busy cores.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;

use super::throttle::Source;

/// Why a job was not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashRefused {
    /// The queue is full: try again after this long.
    Full(Duration),
    /// The source already holds its share of places: try again after this long.
    SourceBusy(Duration),
    /// The job itself failed (panicked on the blocking pool).
    Failed,
}

/// The queue's settings (from `[login]` in the configuration).
#[derive(Clone, Copy, Debug)]
pub struct HashSettings {
    /// Hashes running at once.
    pub workers: usize,
    /// Jobs waiting for a worker.
    pub queue: usize,
    /// Running and waiting jobs of one source.
    pub per_source: usize,
}

#[derive(Debug, Default)]
struct Lane {
    /// Running plus waiting jobs of this source.
    held: usize,
    /// Waiting jobs, oldest first: a ticket and the way to wake it.
    waiting: VecDeque<(u64, oneshot::Sender<()>)>,
}

#[derive(Debug)]
struct Sched {
    idle: usize,
    queued: usize,
    lanes: HashMap<Source, Lane>,
    /// Sources with waiting jobs, in the order they are served (each appears once).
    ring: VecDeque<Source>,
    next_ticket: u64,
}

impl Sched {
    /// A job of `source` ended (or gave up its worker): its place is freed and the worker
    /// goes to the next source in line, or becomes idle.
    fn release(&mut self, source: Source) {
        self.drop_place(source);
        while let Some(next) = self.ring.pop_front() {
            let Some(lane) = self.lanes.get_mut(&next) else {
                continue;
            };
            let Some((_, wake)) = lane.waiting.pop_front() else {
                continue;
            };
            self.queued -= 1;
            if !lane.waiting.is_empty() {
                self.ring.push_back(next);
            }
            if wake.send(()).is_ok() {
                return;
            }
            // A waiter always leaves through its guard, under this lock, so its receiver is
            // alive while it is queued; should one be gone anyway, its place is freed here.
            self.drop_place(next);
        }
        self.idle += 1;
    }

    fn drop_place(&mut self, source: Source) {
        if let Some(lane) = self.lanes.get_mut(&source) {
            lane.held = lane.held.saturating_sub(1);
            if lane.held == 0 {
                self.lanes.remove(&source);
            }
        }
    }
}

/// The password-hashing queue.
#[derive(Debug)]
pub struct HashQueue {
    sched: Mutex<Sched>,
    settings: HashSettings,
    /// Recent time of a hash (moving average), in microseconds: the base of retry advice.
    avg_us: AtomicU64,
    /// Jobs refused because the queue or the source's share was full.
    pub refused: AtomicU64,
}

/// What a hash is assumed to take before one has been measured.
const FIRST_GUESS_US: u64 = 50_000;

impl HashQueue {
    /// A queue with `settings` (each bound at least 1).
    pub fn new(settings: HashSettings) -> Arc<HashQueue> {
        let settings = HashSettings {
            workers: settings.workers.max(1),
            queue: settings.queue,
            per_source: settings.per_source.max(1),
        };
        Arc::new(HashQueue {
            sched: Mutex::new(Sched {
                idle: settings.workers,
                queued: 0,
                lanes: HashMap::new(),
                ring: VecDeque::new(),
                next_ticket: 0,
            }),
            settings,
            avg_us: AtomicU64::new(FIRST_GUESS_US),
            refused: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Sched> {
        // The lock guards plain counters; a panic while holding it leaves them usable.
        self.sched.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Jobs waiting for a worker now.
    #[cfg(test)]
    pub fn queued(&self) -> usize {
        self.lock().queued
    }

    /// Runs `job` on a worker for `source`, or refuses at once if there is no room for it.
    pub async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        source: Source,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashRefused> {
        let slot = self.acquire(source).await?;
        let started = tokio::time::Instant::now();
        // The slot travels with the job: the worker is busy until the hash is done, even if
        // this future is dropped meanwhile.
        let out = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            job()
        })
        .await;
        self.measured(started.elapsed());
        out.map_err(|_| HashRefused::Failed)
    }

    fn measured(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let old = self.avg_us.load(Ordering::Relaxed);
        self.avg_us.store(old - old / 8 + us / 8, Ordering::Relaxed);
    }

    /// About how long `jobs` hashes ahead of a caller take to clear.
    fn advice(&self, jobs: usize) -> Duration {
        let avg = Duration::from_micros(self.avg_us.load(Ordering::Relaxed));
        let rounds = jobs.div_ceil(self.settings.workers).max(1);
        (avg * rounds as u32).clamp(Duration::from_millis(100), Duration::from_secs(30))
    }

    async fn acquire(self: &Arc<Self>, source: Source) -> Result<Slot, HashRefused> {
        let (ticket, wake) = {
            let mut guard = self.lock();
            let s = &mut *guard;
            let held = s.lanes.get(&source).map_or(0, |l| l.held);
            if held >= self.settings.per_source {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return Err(HashRefused::SourceBusy(self.advice(held)));
            }
            if s.idle > 0 && s.ring.is_empty() {
                s.idle -= 1;
                s.lanes.entry(source).or_default().held += 1;
                return Ok(Slot {
                    queue: self.clone(),
                    source,
                });
            }
            if s.queued >= self.settings.queue {
                self.refused.fetch_add(1, Ordering::Relaxed);
                let ahead = s.queued + self.settings.workers;
                return Err(HashRefused::Full(self.advice(ahead)));
            }
            let (tx, rx) = oneshot::channel();
            let ticket = s.next_ticket;
            s.next_ticket += 1;
            let lane = s.lanes.entry(source).or_default();
            lane.held += 1;
            lane.waiting.push_back((ticket, tx));
            if lane.waiting.len() == 1 {
                s.ring.push_back(source);
            }
            s.queued += 1;
            (ticket, rx)
        };
        let mut waiter = Waiter {
            queue: self.clone(),
            source,
            ticket,
            wake: Some(wake),
        };
        let woken = match waiter.wake.as_mut() {
            Some(rx) => rx.await,
            None => return Err(HashRefused::Failed),
        };
        // Granted (or the queue is gone): the guard has nothing left to undo.
        waiter.wake = None;
        match woken {
            Ok(()) => Ok(Slot {
                queue: self.clone(),
                source,
            }),
            Err(_) => Err(HashRefused::Failed),
        }
    }
}

/// A worker held by one job of `source`; dropping it passes the worker on.
struct Slot {
    queue: Arc<HashQueue>,
    source: Source,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.queue.lock().release(self.source);
    }
}

/// A job waiting for a worker; if it is dropped before it gets one, it leaves the queue.
struct Waiter {
    queue: Arc<HashQueue>,
    source: Source,
    ticket: u64,
    wake: Option<oneshot::Receiver<()>>,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let Some(mut wake) = self.wake.take() else {
            return;
        };
        let mut s = self.queue.lock();
        if wake.try_recv().is_ok() {
            // A worker was handed over just as the caller gave up: pass it on.
            s.release(self.source);
            return;
        }
        let Some(lane) = s.lanes.get_mut(&self.source) else {
            return;
        };
        let Some(at) = lane.waiting.iter().position(|(t, _)| *t == self.ticket) else {
            return;
        };
        lane.waiting.remove(at);
        let now_empty = lane.waiting.is_empty();
        s.queued -= 1;
        if now_empty {
            let source = self.source;
            s.ring.retain(|x| *x != source);
        }
        s.drop_place(self.source);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::mpsc;

    fn src(n: u8) -> Source {
        Source::from_ip(IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)))
    }

    fn queue(workers: usize, queue: usize, per_source: usize) -> Arc<HashQueue> {
        HashQueue::new(HashSettings {
            workers,
            queue,
            per_source,
        })
    }

    /// A job that blocks its worker until the test lets it go, and says when it started.
    fn gated(
        q: &Arc<HashQueue>,
        source: Source,
        name: &'static str,
        started: tokio::sync::mpsc::UnboundedSender<&'static str>,
    ) -> (
        mpsc::Sender<()>,
        tokio::task::JoinHandle<Result<&'static str, HashRefused>>,
    ) {
        let (go, gate) = mpsc::channel::<()>();
        let q = q.clone();
        let task = tokio::spawn(async move {
            q.run(source, move || {
                let _ = started.send(name);
                let _ = gate.recv();
                name
            })
            .await
        });
        (go, task)
    }

    async fn settle(q: &Arc<HashQueue>, queued: usize) {
        while q.queued() != queued {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn one_source_cannot_take_more_than_its_share() {
        let q = queue(2, 8, 1);
        let (tx, mut started) = tokio::sync::mpsc::unbounded_channel();
        let (go_a, a) = gated(&q, src(1), "a1", tx.clone());
        assert_eq!(started.recv().await, Some("a1"));
        // The flood's next jobs are refused at once, with advice; the queue is untouched.
        for _ in 0..50 {
            let r = q.run(src(1), || "a-more").await;
            assert!(matches!(r, Err(HashRefused::SourceBusy(d)) if d > Duration::ZERO));
        }
        // Another source runs at once on the second worker.
        assert_eq!(q.run(src(2), || "b").await, Ok("b"));
        go_a.send(()).unwrap();
        assert_eq!(a.await.unwrap(), Ok("a1"));
        // Its place is free again.
        assert_eq!(q.run(src(1), || "a2").await, Ok("a2"));
    }

    #[tokio::test]
    async fn a_full_queue_refuses_early() {
        let q = queue(1, 1, 4);
        let (tx, mut started) = tokio::sync::mpsc::unbounded_channel();
        let (go1, first) = gated(&q, src(1), "running", tx.clone());
        assert_eq!(started.recv().await, Some("running"));
        let (go2, second) = gated(&q, src(2), "queued", tx.clone());
        settle(&q, 1).await;
        let r = q.run(src(3), || "refused").await;
        assert!(
            matches!(r, Err(HashRefused::Full(d)) if d > Duration::ZERO),
            "{r:?}"
        );
        go1.send(()).unwrap();
        go2.send(()).unwrap();
        assert_eq!(first.await.unwrap(), Ok("running"));
        assert_eq!(second.await.unwrap(), Ok("queued"));
    }

    #[tokio::test]
    async fn workers_go_to_sources_round_robin() {
        let q = queue(1, 16, 4);
        let (tx, mut started) = tokio::sync::mpsc::unbounded_channel();
        let (go0, t0) = gated(&q, src(9), "blocker", tx.clone());
        assert_eq!(started.recv().await, Some("blocker"));
        // Source 1 queues three jobs before source 2 queues one.
        let mut gates = Vec::new();
        let mut tasks = Vec::new();
        for (n, name) in [(1, "a1"), (1, "a2"), (1, "a3"), (2, "b1")] {
            let (go, t) = gated(&q, src(n), name, tx.clone());
            settle(&q, gates.len() + 1).await;
            gates.push(go);
            tasks.push(t);
        }
        go0.send(()).unwrap();
        t0.await.unwrap().unwrap();
        let mut order = Vec::new();
        // One worker: each job starts only after the one before it was let go.
        for _ in 0..gates.len() {
            let name = started.recv().await.unwrap();
            order.push(name);
            let i = ["a1", "a2", "a3", "b1"]
                .iter()
                .position(|n| *n == name)
                .unwrap();
            gates[i].send(()).unwrap();
        }
        // b1 is served right after a1, not after all of source 1's jobs.
        assert_eq!(order, ["a1", "b1", "a2", "a3"]);
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_leaves_the_queue() {
        let q = queue(1, 1, 1);
        let (tx, mut started) = tokio::sync::mpsc::unbounded_channel();
        let (go, first) = gated(&q, src(1), "running", tx.clone());
        assert_eq!(started.recv().await, Some("running"));
        let (_never, waiting) = gated(&q, src(2), "gave up", tx.clone());
        settle(&q, 1).await;
        waiting.abort();
        let _ = waiting.await;
        // Its place in the queue and its source's share are free again.
        assert_eq!(q.queued(), 0);
        let (go3, third) = gated(&q, src(2), "third", tx.clone());
        settle(&q, 1).await;
        go.send(()).unwrap();
        assert_eq!(first.await.unwrap(), Ok("running"));
        assert_eq!(started.recv().await, Some("third"));
        go3.send(()).unwrap();
        assert_eq!(third.await.unwrap(), Ok("third"));
    }
}
