//! Sleeping sessions.
//!
//! A logged-in session with nothing to do for `heartbeat.park_after` gives up its task, its
//! timer and its socket's registration with the runtime's reactor: for an idle plain-TCP
//! connection those were most of its memory (a task cell holding the session future, and the
//! reactor's cache-padded per-socket record). It waits here as one boxed driver until its
//! socket turns readable or closes, its link has pushes for it (or it was replaced), its
//! heartbeat deadline passes, or the server stops. Nothing is lost meanwhile: bytes wait in the
//! kernel's socket buffer and pushes in the link's bounded queue.
//!
//! One thread watches every sleeping socket with an epoll set of its own (mio). Waking a
//! session deregisters its socket there and spawns its driver again, which registers the
//! socket with the runtime and carries on where it stopped.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Wake, Waker};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use tokio::runtime::Handle;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use crate::router::Link;

/// How often sleeping sessions' heartbeat deadlines are checked (a sleeping session is reaped
/// up to this much after its deadline).
const SCAN: Duration = Duration::from_millis(250);
/// The token of the lot's own waker.
const WAKE: Token = Token(usize::MAX);

/// A session that can sleep in the lot.
pub(crate) trait Sleeper: Send + 'static {
    /// Spawns the session's driver again.
    fn wake(self: Box<Self>, tracker: &TaskTracker, runtime: &Handle);
}

/// Where sleeping sessions wait. Clones share one lot.
#[derive(Clone)]
pub struct ParkingLot {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ParkingLot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParkingLot")
            .field("asleep", &self.asleep())
            .finish()
    }
}

struct Inner {
    registry: mio::Registry,
    waker: mio::Waker,
    beds: Mutex<Beds>,
    /// Beds whose link woke them, for the watcher to take.
    woken: Mutex<Vec<Token>>,
    asleep: AtomicUsize,
    wakes: AtomicU64,
}

#[derive(Default)]
struct Beds {
    slab: Slab<Bed>,
    /// Told apart from an earlier bed with the same slot: a stale token wakes nobody.
    generation: u32,
    /// Set once, under this lock, so no session can lie down after the last sweep.
    stopping: bool,
}

struct Bed {
    sleeper: Box<dyn Sleeper>,
    fd: RawFd,
    generation: u32,
    deadline: Instant,
}

fn token(key: usize, generation: u32) -> Token {
    Token((u64::from(generation) << 32 | key as u64) as usize)
}

impl Beds {
    fn take(&mut self, t: Token) -> Option<Bed> {
        let key = t.0 & 0xffff_ffff;
        let generation = (t.0 as u64 >> 32) as u32;
        match self.slab.get(key) {
            Some(bed) if bed.generation == generation => Some(self.slab.remove(key)),
            _ => None,
        }
    }
}

/// Wakes one bed when its link gets a push (or is replaced).
struct BedWaker {
    token: Token,
    inner: Arc<Inner>,
}

impl Wake for BedWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let first = {
            let mut woken = self.inner.lock_woken();
            woken.push(self.token);
            woken.len() == 1
        };
        // The watcher drains the whole list per wake-up: only the first entry needs a signal.
        if first {
            if let Err(e) = self.inner.waker.wake() {
                tracing::error!(error = %e, "cannot signal the sleepers' watcher");
            }
        }
    }
}

impl Inner {
    fn lock_beds(&self) -> MutexGuard<'_, Beds> {
        self.beds.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_woken(&self) -> MutexGuard<'_, Vec<Token>> {
        self.woken.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ParkingLot {
    /// Starts the watcher thread. Woken sessions are spawned on `runtime` and tracked by
    /// `tracker`, which also counts the watcher itself until [`ParkingLot::stop`] has woken
    /// every sleeper: a shutdown that waits for the tracker waits for their GoAways too.
    pub fn start(tracker: TaskTracker, runtime: Handle) -> io::Result<ParkingLot> {
        let poll = Poll::new()?;
        let inner = Arc::new(Inner {
            registry: poll.registry().try_clone()?,
            waker: mio::Waker::new(poll.registry(), WAKE)?,
            beds: Mutex::new(Beds::default()),
            woken: Mutex::new(Vec::new()),
            asleep: AtomicUsize::new(0),
            wakes: AtomicU64::new(0),
        });
        let watcher = inner.clone();
        let running = tracker.token();
        std::thread::Builder::new()
            .name("sleepers".into())
            .spawn(move || {
                watch(&watcher, poll, &tracker, &runtime);
                drop(running);
            })?;
        Ok(ParkingLot { inner })
    }

    /// Puts a session to sleep until `fd` is readable, `link` has something for it, or
    /// `deadline` passes. Gives the session back if the lot is stopping or cannot watch `fd`;
    /// the caller then keeps running it.
    pub(crate) fn park<T: Sleeper>(
        &self,
        sleeper: Box<T>,
        fd: RawFd,
        link: &Link,
        deadline: Instant,
    ) -> Result<(), Box<T>> {
        let (waker, pending) = {
            let mut beds = self.inner.lock_beds();
            if beds.stopping {
                return Err(sleeper);
            }
            beds.generation = beds.generation.wrapping_add(1);
            let generation = beds.generation;
            let entry = beds.slab.vacant_entry();
            let token = token(entry.key(), generation);
            // The link's waker is ours before the watcher can see the bed: once the bed is
            // woken, the respawned driver registers its own, and nothing of ours replaces it.
            let waker = Waker::from(Arc::new(BedWaker {
                token,
                inner: self.inner.clone(),
            }));
            let pending = link.watch(&waker);
            if let Err(e) =
                self.inner
                    .registry
                    .register(&mut SourceFd(&fd), token, Interest::READABLE)
            {
                tracing::debug!(error = %e, "cannot watch a sleeping socket; staying awake");
                return Err(sleeper);
            }
            // Counted before the watcher can take it (and count it out).
            self.inner.asleep.fetch_add(1, Ordering::Relaxed);
            entry.insert(Bed {
                sleeper,
                fd,
                generation,
                deadline,
            });
            (waker, pending)
        };
        // A push queued before our waker was in place woke the old task instead.
        if pending {
            waker.wake();
        }
        Ok(())
    }

    /// Wakes every sleeping session (they see the shutdown and say GoAway) and refuses new
    /// sleepers; the watcher thread then exits.
    pub fn stop(&self) {
        self.inner.lock_beds().stopping = true;
        if let Err(e) = self.inner.waker.wake() {
            tracing::error!(error = %e, "cannot signal the sleepers' watcher");
        }
    }

    /// Sessions asleep now.
    pub fn asleep(&self) -> usize {
        self.inner.asleep.load(Ordering::Relaxed)
    }

    /// Sessions woken so far.
    pub fn wakes(&self) -> u64 {
        self.inner.wakes.load(Ordering::Relaxed)
    }
}

/// The watcher: waits for sockets, link wake-ups and deadlines, and wakes their sessions.
fn watch(inner: &Arc<Inner>, mut poll: Poll, tracker: &TaskTracker, runtime: &Handle) {
    let mut events = Events::with_capacity(1024);
    let mut due: Vec<Token> = Vec::new();
    let mut waking: Vec<Bed> = Vec::new();
    let mut next_scan = Instant::now() + SCAN;
    loop {
        let timeout = next_scan.saturating_duration_since(Instant::now());
        let mut failed = false;
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                // Without the epoll set nobody could wake: wake everyone and stop taking more.
                tracing::error!(error = %e, "sleepers' watcher failed; waking every session");
                failed = true;
            }
        }
        due.extend(events.iter().map(|e| e.token()).filter(|t| *t != WAKE));
        due.append(&mut inner.lock_woken());
        let now = Instant::now();
        let stopping = {
            let mut beds = inner.lock_beds();
            beds.stopping |= failed;
            waking.extend(due.drain(..).filter_map(|t| beds.take(t)));
            if now >= next_scan {
                next_scan = now + SCAN;
                let expired: Vec<Token> = beds
                    .slab
                    .iter()
                    .filter(|(_, bed)| bed.deadline <= now)
                    .map(|(key, bed)| token(key, bed.generation))
                    .collect();
                waking.extend(expired.into_iter().filter_map(|t| beds.take(t)));
            }
            if beds.stopping {
                waking.extend(beds.slab.drain());
            }
            beds.stopping
        };
        for bed in waking.drain(..) {
            // Out of this epoll set before the runtime's takes the socket: a closed socket's
            // number may be reused, and a stale registration would wake the wrong bed.
            let _ = inner.registry.deregister(&mut SourceFd(&bed.fd));
            inner.asleep.fetch_sub(1, Ordering::Relaxed);
            inner.wakes.fetch_add(1, Ordering::Relaxed);
            bed.sleeper.wake(tracker, runtime);
        }
        // Stop when told to, or when no handle is left (a server dropped without `stop`).
        if stopping || Arc::strong_count(inner) == 1 {
            break;
        }
    }
    tracing::debug!("sleepers' watcher stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_protocol::ids::{DeviceId, UserId};
    use tokio::sync::mpsc;

    /// A sleeper that reports its wake-up with a name.
    struct Note(&'static str, mpsc::UnboundedSender<&'static str>);

    impl Sleeper for Note {
        fn wake(self: Box<Self>, tracker: &TaskTracker, runtime: &Handle) {
            let Note(name, tx) = *self;
            tracker.spawn_on(async move { tx.send(name).unwrap() }, runtime);
        }
    }

    fn link() -> Arc<Link> {
        Link::new(
            parley_protocol::ids::SessionId::new(parley_protocol::ids::NodeId(0), 1),
            UserId::try_from(1).unwrap(),
            DeviceId::try_from("d").unwrap(),
        )
    }

    async fn socket_pair() -> (tokio::net::TcpStream, std::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(tokio::net::TcpStream::connect(addr), async {
            listener.accept().await.unwrap().0
        });
        (client.unwrap(), server.into_std().unwrap())
    }

    fn lie_down(
        lot: &ParkingLot,
        note: Note,
        socket: &std::net::TcpStream,
        link: &Link,
        at: Instant,
    ) {
        use std::os::fd::AsRawFd;
        assert!(lot
            .park(Box::new(note), socket.as_raw_fd(), link, at)
            .is_ok());
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    #[tokio::test]
    async fn sleepers_wake_on_bytes_pushes_deadlines_and_stop() {
        use std::os::fd::AsRawFd;
        use tokio::io::AsyncWriteExt;

        let tracker = TaskTracker::new();
        let lot = ParkingLot::start(tracker.clone(), Handle::current()).unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();

        // Bytes on the socket.
        let (mut client, server) = socket_pair().await;
        let l = link();
        lie_down(&lot, Note("bytes", tx.clone()), &server, &l, far());
        assert_eq!(lot.asleep(), 1);
        client.write_all(b"x").await.unwrap();
        assert_eq!(rx.recv().await, Some("bytes"));

        // A push on the link (through the hub, as the fan-out does).
        let (_client2, server2) = socket_pair().await;
        let hub = crate::router::Hub::default();
        use crate::router::Router;
        let frame = |text: &str| {
            parley_protocol::frames::SharedPush::new(parley_protocol::frames::Push::Error(
                parley_protocol::frames::ErrorInfo::new(parley_protocol::ErrorCode::Internal, text),
            ))
        };
        let l2 = link();
        hub.register(l2.clone());
        lie_down(&lot, Note("push", tx.clone()), &server2, &l2, far());
        hub.deliver(l2.user, &frame("frame"), None);
        assert_eq!(rx.recv().await, Some("push"));

        // A push that was queued before the session lay down wakes it at once.
        let (_client3, server3) = socket_pair().await;
        let l3 = link();
        hub.register(l3.clone());
        hub.deliver(l3.user, &frame("early"), None);
        lie_down(&lot, Note("early", tx.clone()), &server3, &l3, far());
        assert_eq!(rx.recv().await, Some("early"));

        // The heartbeat deadline.
        let (_client4, server4) = socket_pair().await;
        let l4 = link();
        let soon = Instant::now() + Duration::from_millis(10);
        lie_down(&lot, Note("deadline", tx.clone()), &server4, &l4, soon);
        assert_eq!(rx.recv().await, Some("deadline"));

        // Stop wakes whoever is left and refuses new sleepers.
        let (_client5, server5) = socket_pair().await;
        let l5 = link();
        lie_down(&lot, Note("stop", tx.clone()), &server5, &l5, far());
        lot.stop();
        assert_eq!(rx.recv().await, Some("stop"));
        assert!(lot
            .park(
                Box::new(Note("late", tx.clone())),
                server5.as_raw_fd(),
                &l5,
                far()
            )
            .is_err());
        tracker.close();
        tracker.wait().await;
        assert_eq!(lot.asleep(), 0);
        assert_eq!(lot.wakes(), 5);
        assert!(rx.try_recv().is_err(), "every sleeper woke exactly once");
    }
}
