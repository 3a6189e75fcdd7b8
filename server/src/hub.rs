//! Routing: which sessions are online for which user, and delivery to them.
//!
//! This is the "deliver to user U" interface of the design; a NATS-backed router for several
//! nodes can replace it. Delivery never waits: a session whose queue is full is marked lagging
//! and told to sync once it has drained, so a slow consumer can never stall the fan-out.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::Poll;

use bytes::Bytes;
use futures::task::AtomicWaker;
use parley_protocol::ids::{DeviceId, UserId};

/// One online session, as the router sees it.
///
/// Its push queue is a plain deque under a mutex plus one waker: unlike a channel it owns no
/// memory while empty, which matters because most sessions are idle most of the time.
#[derive(Debug)]
pub struct Link {
    /// Connection id.
    pub session_id: u64,
    /// The user logged in on it.
    pub user: UserId,
    /// The device logged in on it.
    pub device: DeviceId,
    queue: Mutex<VecDeque<Bytes>>,
    waker: AtomicWaker,
    // Packed after the rest: a link is part of every idle connection's memory (128 bytes).
    capacity: u32,
    lagging: AtomicBool,
    replaced: AtomicBool,
}

/// What a session's link has for it.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// The same device logged in on another connection.
    Replaced,
    /// Queued frames were moved to the caller's buffer; `drained` if none are left.
    Frames {
        /// The queue was empty afterwards.
        drained: bool,
    },
}

impl Link {
    /// A link whose push queue holds at most `capacity` frames.
    pub fn new(session_id: u64, user: UserId, device: DeviceId, capacity: usize) -> Arc<Link> {
        Arc::new(Link {
            session_id,
            user,
            device,
            capacity: u32::try_from(capacity).unwrap_or(u32::MAX),
            queue: Mutex::new(VecDeque::new()),
            waker: AtomicWaker::new(),
            lagging: AtomicBool::new(false),
            replaced: AtomicBool::new(false),
        })
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Bytes>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a frame without waiting; on a full queue marks the session lagging.
    fn push(&self, frame: &Bytes) -> bool {
        if self.lagging.load(Ordering::Acquire) {
            return false;
        }
        {
            let mut queue = self.queue();
            if queue.len() >= self.capacity as usize {
                self.lagging.store(true, Ordering::Release);
                return false;
            }
            queue.push_back(frame.clone());
        }
        self.waker.wake();
        true
    }

    fn replace(&self) {
        self.replaced.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// True once the same device has logged in elsewhere.
    pub fn is_replaced(&self) -> bool {
        self.replaced.load(Ordering::Acquire)
    }

    /// Makes `waker` the one that pushes and replacement wake (a sleeping session's); true if
    /// something is already waiting, which would have woken the previous waker instead.
    pub fn watch(&self, waker: &std::task::Waker) -> bool {
        self.waker.register(waker);
        self.is_replaced() || !self.queue().is_empty()
    }

    /// Waits until the session is replaced or frames are queued; then appends at most `max`
    /// queued frames to `out`. Cancel-safe: frames leave the queue only in the poll that
    /// returns them.
    pub async fn next_event(&self, out: &mut Vec<u8>, max: usize) -> LinkEvent {
        std::future::poll_fn(|cx| {
            self.waker.register(cx.waker());
            if self.is_replaced() {
                return Poll::Ready(LinkEvent::Replaced);
            }
            let mut queue = self.queue();
            if queue.is_empty() {
                return Poll::Pending;
            }
            let n = queue.len().min(max);
            for frame in queue.drain(..n) {
                out.extend_from_slice(&frame);
            }
            let drained = queue.is_empty();
            if drained && queue.capacity() > 0 {
                // Drained: give the memory back instead of keeping it for an idle session.
                *queue = VecDeque::new();
            }
            Poll::Ready(LinkEvent::Frames { drained })
        })
        .await
    }

    /// Clears the lagging mark; true if it was set (the session must then send `SyncNeeded`).
    /// Call only once the queue has been drained, so the sync covers everything dropped.
    pub fn take_lagging(&self) -> bool {
        self.lagging.swap(false, Ordering::AcqRel)
    }
}

/// Delivery counters.
#[derive(Debug, Default)]
pub struct HubStats {
    /// Frames queued to sessions.
    pub delivered: AtomicU64,
    /// Frames dropped because a session was lagging (it catches up by sync).
    pub dropped: AtomicU64,
}

/// The sessions of one user: almost always one, held without an allocation of its own.
#[derive(Debug)]
enum Links {
    One(Arc<Link>),
    Many(Vec<Arc<Link>>),
}

impl Links {
    fn as_slice(&self) -> &[Arc<Link>] {
        match self {
            Links::One(l) => std::slice::from_ref(l),
            Links::Many(v) => v,
        }
    }

    /// Adds `link`; returns the session of the same device it replaces.
    fn insert(&mut self, link: Arc<Link>) -> Option<Arc<Link>> {
        match self {
            Links::One(l) if l.device == link.device => Some(std::mem::replace(l, link)),
            Links::One(l) => {
                *self = Links::Many(vec![l.clone(), link]);
                None
            }
            Links::Many(v) => {
                let old = v
                    .iter()
                    .position(|l| l.device == link.device)
                    .map(|i| v.swap_remove(i));
                v.push(link);
                old
            }
        }
    }

    /// Removes session `session_id`; true if none is left.
    fn remove(&mut self, session_id: u64) -> bool {
        match self {
            Links::One(l) => l.session_id == session_id,
            Links::Many(v) => {
                v.retain(|l| l.session_id != session_id);
                if v.len() == 1 {
                    if let Some(only) = v.pop() {
                        *self = Links::One(only);
                    }
                    return false;
                }
                v.is_empty()
            }
        }
    }
}

/// The in-process router.
#[derive(Debug, Default)]
pub struct Hub {
    users: RwLock<HashMap<UserId, Links>>,
    /// Counters.
    pub stats: HubStats,
}

impl Hub {
    /// Adds a session. A previous session of the same device is returned (and signalled), so
    /// the caller can log that it was replaced.
    pub fn register(&self, user: UserId, link: Arc<Link>) -> Option<Arc<Link>> {
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        let old = match users.entry(user) {
            std::collections::hash_map::Entry::Occupied(mut e) => e.get_mut().insert(link),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(Links::One(link));
                None
            }
        };
        if let Some(old) = &old {
            old.replace();
        }
        old
    }

    /// Removes a session (no-op if it was already replaced).
    pub fn unregister(&self, user: UserId, session_id: u64) {
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        if users.get_mut(&user).is_some_and(|l| l.remove(session_id)) {
            users.remove(&user);
        }
    }

    /// Queues `frame` to every session of `user` except `except` (the originating session).
    pub fn deliver(&self, user: UserId, frame: &Bytes, except: Option<u64>) {
        let users = self.users.read().unwrap_or_else(|e| e.into_inner());
        let Some(links) = users.get(&user) else {
            return;
        };
        for link in links
            .as_slice()
            .iter()
            .filter(|l| Some(l.session_id) != except)
        {
            let counter = if link.push(frame) {
                &self.stats.delivered
            } else {
                &self.stats.dropped
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Online sessions.
    pub fn session_count(&self) -> usize {
        let users = self.users.read().unwrap_or_else(|e| e.into_inner());
        users.values().map(|l| l.as_slice().len()).sum()
    }

    /// Users with at least one online session.
    pub fn user_count(&self) -> usize {
        self.users.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: u64) -> UserId {
        UserId::try_from(n).unwrap()
    }

    fn drain(link: &Link) -> Vec<u8> {
        let mut out = Vec::new();
        let event = futures::FutureExt::now_or_never(link.next_event(&mut out, usize::MAX));
        assert!(matches!(
            event,
            None | Some(LinkEvent::Frames { drained: true })
        ));
        out
    }

    #[test]
    fn full_queue_marks_lagging_and_never_blocks() {
        let hub = Hub::default();
        let link = Link::new(1, user(1), DeviceId::try_from("a").unwrap(), 2);
        hub.register(user(1), link.clone());
        for _ in 0..5 {
            hub.deliver(user(1), &Bytes::from_static(b"x"), None);
        }
        assert_eq!(hub.stats.delivered.load(Ordering::Relaxed), 2);
        assert_eq!(hub.stats.dropped.load(Ordering::Relaxed), 3);
        assert_eq!(drain(&link), b"xx");
        assert!(link.queue().is_empty());
        assert!(link.take_lagging());
        assert!(!link.take_lagging());
        hub.deliver(user(1), &Bytes::from_static(b"y"), None);
        assert_eq!(drain(&link), b"y");
        assert_eq!(
            link.queue().capacity(),
            0,
            "a drained queue keeps no memory"
        );
    }

    #[test]
    fn same_device_replaces_and_except_skips_origin() {
        let hub = Hub::default();
        let dev = DeviceId::try_from("a").unwrap();
        let l1 = Link::new(1, user(1), dev.clone(), 4);
        let l2 = Link::new(2, user(1), dev, 4);
        let l3 = Link::new(3, user(1), DeviceId::try_from("b").unwrap(), 4);
        assert!(hub.register(user(1), l1.clone()).is_none());
        assert_eq!(hub.register(user(1), l2.clone()).unwrap().session_id, 1);
        assert!(l1.is_replaced());
        let mut out = Vec::new();
        assert_eq!(
            futures::FutureExt::now_or_never(l1.next_event(&mut out, 8)),
            Some(LinkEvent::Replaced)
        );
        hub.register(user(1), l3.clone());
        hub.deliver(user(1), &Bytes::from_static(b"m"), Some(3));
        assert_eq!(drain(&l2), b"m");
        assert!(drain(&l3).is_empty());
        hub.unregister(user(1), 1); // already replaced: no effect
        assert_eq!(hub.session_count(), 2);
        hub.unregister(user(1), 2);
        hub.unregister(user(1), 3);
        assert_eq!(hub.user_count(), 0);
    }
}
