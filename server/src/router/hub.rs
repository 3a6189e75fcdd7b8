//! The in-process router: which sessions of this node are online for which user, and delivery
//! to them. Delivery never waits: a session whose queue is full is marked lagging and told to
//! sync once it has drained, so a slow consumer can never stall the fan-out.
//!
//! A queue is full at [`QueueLimits::frames`] pushes or [`QueueLimits::bytes`] of their binary
//! encoding, whichever comes first (`limits.outbound_queue` and `limits.outbound_queue_bytes`):
//! a receiver that does not read holds at most that much, however large the pushes. Nothing is
//! lost: the messages are in the log, and the lagging session syncs (docs/security.md,
//! "Smaller limits").

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::Poll;

use futures::task::AtomicWaker;
use parley_protocol::frames::SharedPush;
use parley_protocol::ids::{DeviceId, SessionId, UserId};

use super::{Router, RouterStats};

/// One online session, as the router sees it.
///
/// Its push queue is a plain deque under a mutex plus one waker: unlike a channel it owns no
/// memory while empty, which matters because most sessions are idle most of the time.
#[derive(Debug)]
pub struct Link {
    /// Session id.
    pub session_id: SessionId,
    /// The user logged in on it.
    pub user: UserId,
    /// The device logged in on it.
    pub device: DeviceId,
    queue: Mutex<VecDeque<SharedPush>>,
    waker: AtomicWaker,
    // Packed after the rest: a link is part of every idle connection's memory (128 bytes).
    /// Encoded bytes of the queued pushes (changed only under the queue's lock). The limits
    /// live in the [`Hub`], the same for every link, so a link keeps only this count.
    bytes: AtomicU32,
    lagging: AtomicBool,
    replaced: AtomicBool,
    signed_out: AtomicBool,
}

/// What a session's link has for it.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// The same device logged in on another connection.
    Replaced,
    /// The device was signed out (its tokens revoked): the session ends.
    SignedOut,
    /// Queued frames were moved to the caller's buffer; `drained` if none are left.
    Frames {
        /// The queue was empty afterwards.
        drained: bool,
    },
}

impl Link {
    /// A link with an empty push queue (bounded by the limits of the hub it joins).
    pub fn new(session_id: SessionId, user: UserId, device: DeviceId) -> Arc<Link> {
        Arc::new(Link {
            session_id,
            user,
            device,
            bytes: AtomicU32::new(0),
            queue: Mutex::new(VecDeque::new()),
            waker: AtomicWaker::new(),
            lagging: AtomicBool::new(false),
            replaced: AtomicBool::new(false),
            signed_out: AtomicBool::new(false),
        })
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<SharedPush>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a frame without waiting; on a full queue (by frames or bytes) marks the session
    /// lagging. One push is always taken into an empty queue, however large.
    fn push(&self, frame: &SharedPush, limits: QueueLimits) -> bool {
        if self.lagging.load(Ordering::Acquire) {
            return false;
        }
        {
            let mut queue = self.queue();
            let bytes = self.bytes.load(Ordering::Relaxed);
            let after = bytes.saturating_add(frame.size());
            if queue.len() >= limits.frames || (!queue.is_empty() && after > limits.bytes) {
                self.lagging.store(true, Ordering::Release);
                return false;
            }
            queue.push_back(frame.clone());
            self.bytes.store(after, Ordering::Relaxed);
        }
        self.waker.wake();
        true
    }

    fn replace(&self) {
        self.replaced.store(true, Ordering::Release);
        self.waker.wake();
    }

    fn sign_out(&self) {
        self.signed_out.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// True once the session's device was signed out.
    pub fn is_signed_out(&self) -> bool {
        self.signed_out.load(Ordering::Acquire)
    }

    /// True once the same device has logged in elsewhere.
    pub fn is_replaced(&self) -> bool {
        self.replaced.load(Ordering::Acquire)
    }

    /// Makes `waker` the one that pushes and replacement wake (a sleeping session's); true if
    /// something is already waiting, which would have woken the previous waker instead.
    pub fn watch(&self, waker: &std::task::Waker) -> bool {
        self.waker.register(waker);
        self.is_replaced() || self.is_signed_out() || !self.queue().is_empty()
    }

    /// Waits until the session is replaced or frames are queued; then appends the binary
    /// encoding of at most `max` queued pushes, and no more once `out` holds `max_bytes`, to
    /// `out` (at least one push). Cancel-safe: pushes leave the queue only in the poll that
    /// returns them.
    ///
    /// A plain future, not an `async fn` around one: it is part of every awake session's task.
    pub fn next_event<'a>(
        &'a self,
        out: &'a mut Vec<u8>,
        max: usize,
        max_bytes: usize,
    ) -> impl std::future::Future<Output = LinkEvent> + 'a {
        self.next_pushes_while(max, move |push| {
            out.extend_from_slice(push.binary());
            out.len() < max_bytes
        })
    }

    /// Waits until the session is replaced or pushes are queued; then hands at most `max`
    /// queued pushes to `each`, oldest first (adapters that render pushes their own way).
    /// Cancel-safe like [`Link::next_event`].
    pub async fn next_pushes(&self, max: usize, mut each: impl FnMut(SharedPush)) -> LinkEvent {
        self.next_pushes_while(max, |push| {
            each(push);
            true
        })
        .await
    }

    /// [`Link::next_pushes`], stopping early once `each` returns false.
    fn next_pushes_while<'a>(
        &'a self,
        max: usize,
        mut each: impl FnMut(SharedPush) -> bool + 'a,
    ) -> impl std::future::Future<Output = LinkEvent> + 'a {
        std::future::poll_fn(move |cx| {
            self.waker.register(cx.waker());
            if self.is_replaced() {
                return Poll::Ready(LinkEvent::Replaced);
            }
            if self.is_signed_out() {
                return Poll::Ready(LinkEvent::SignedOut);
            }
            let mut queue = self.queue();
            if queue.is_empty() {
                return Poll::Pending;
            }
            let mut taken: u32 = 0;
            for _ in 0..max {
                let Some(push) = queue.pop_front() else {
                    break;
                };
                taken = taken.saturating_add(push.size());
                if !each(push) {
                    break;
                }
            }
            let left = self.bytes.load(Ordering::Relaxed).saturating_sub(taken);
            self.bytes.store(left, Ordering::Relaxed);
            let drained = queue.is_empty();
            if drained && queue.capacity() > 0 {
                // Drained: give the memory back instead of keeping it for an idle session.
                *queue = VecDeque::new();
            }
            Poll::Ready(LinkEvent::Frames { drained })
        })
    }

    /// Clears the lagging mark if the queue is empty; true if it was set (the session must then
    /// send `SyncNeeded`). While lagging the queue takes nothing new, so it only drains.
    pub fn take_lagging_if_drained(&self) -> bool {
        let queue = self.queue();
        queue.is_empty() && self.take_lagging()
    }

    /// Clears the lagging mark; true if it was set (the session must then send `SyncNeeded`).
    /// Call only once the queue has been drained, so the sync covers everything dropped.
    pub fn take_lagging(&self) -> bool {
        self.lagging.swap(false, Ordering::AcqRel)
    }
}

/// How much a session's push queue holds before the session is marked lagging.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLimits {
    /// Pushes (`limits.outbound_queue`).
    pub frames: usize,
    /// Bytes of their binary encoding (`limits.outbound_queue_bytes`).
    pub bytes: u32,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            frames: 1024,
            bytes: 2 * 1024 * 1024,
        }
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
    fn remove(&mut self, session_id: SessionId) -> bool {
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
    limits: QueueLimits,
    /// Counters.
    pub stats: HubStats,
}

impl Router for Hub {
    fn register(&self, link: Arc<Link>) -> Option<Arc<Link>> {
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        let old = match users.entry(link.user) {
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

    fn unregister(&self, user: UserId, session: SessionId) {
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        if users.get_mut(&user).is_some_and(|l| l.remove(session)) {
            users.remove(&user);
        }
    }

    fn sign_out(&self, user: UserId, device: Option<&DeviceId>, keep: Option<SessionId>) {
        let users = self.users.read().unwrap_or_else(|e| e.into_inner());
        if let Some(links) = users.get(&user) {
            for l in links.as_slice() {
                if device.is_none_or(|d| *d == l.device) && Some(l.session_id) != keep {
                    l.sign_out();
                }
            }
        }
    }

    fn sessions_of(&self, user: UserId) -> usize {
        let users = self.users.read().unwrap_or_else(|e| e.into_inner());
        users.get(&user).map_or(0, |l| l.as_slice().len())
    }

    fn online_devices(&self, user: UserId) -> Vec<DeviceId> {
        let users = self.users.read().unwrap_or_else(|e| e.into_inner());
        users.get(&user).map_or_else(Vec::new, |links| {
            links.as_slice().iter().map(|l| l.device.clone()).collect()
        })
    }

    fn deliver(&self, user: UserId, push: &SharedPush, except: Option<SessionId>) -> bool {
        self.deliver_where(user, push, |l| Some(l.session_id) != except)
    }

    fn deliver_to_sessions(&self, user: UserId, sessions: &[SessionId], push: &SharedPush) {
        self.deliver_where(user, push, |l| sessions.contains(&l.session_id));
    }

    fn stats(&self) -> RouterStats {
        let users = self.users.read().unwrap_or_else(|e| e.into_inner());
        RouterStats {
            sessions: users.values().map(|l| l.as_slice().len() as u64).sum(),
            users: users.len() as u64,
            delivered: self.stats.delivered.load(Ordering::Relaxed),
            dropped: self.stats.dropped.load(Ordering::Relaxed),
        }
    }
}

impl Hub {
    /// A hub whose sessions' push queues are bounded by `limits`.
    pub fn new(limits: QueueLimits) -> Hub {
        Hub {
            limits,
            ..Hub::default()
        }
    }

    /// Queues `push` to those sessions of `user` that `wanted` picks.
    fn deliver_where(
        &self,
        user: UserId,
        push: &SharedPush,
        wanted: impl Fn(&Link) -> bool,
    ) -> bool {
        let users = self.users.read().unwrap_or_else(|e| e.into_inner());
        let Some(links) = users.get(&user) else {
            return false;
        };
        for link in links.as_slice().iter().filter(|l| wanted(l)) {
            self.count(link.push(push, self.limits));
        }
        true
    }

    fn count(&self, queued: bool) {
        let counter = if queued {
            &self.stats.delivered
        } else {
            &self.stats.dropped
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: u64) -> UserId {
        UserId::try_from(n).unwrap()
    }

    fn sid(n: u64) -> SessionId {
        SessionId::new(parley_protocol::ids::NodeId(0), n)
    }

    fn frame(text: &'static [u8]) -> SharedPush {
        SharedPush::new(parley_protocol::frames::Push::Error(
            parley_protocol::frames::ErrorInfo::new(
                parley_protocol::ErrorCode::Internal,
                String::from_utf8_lossy(text),
            ),
        ))
    }

    fn frames(n: usize, text: &'static [u8]) -> Vec<u8> {
        let one = frame(text).binary().clone();
        one.iter().copied().cycle().take(one.len() * n).collect()
    }

    fn drain(link: &Link) -> Vec<u8> {
        let mut out = Vec::new();
        let event =
            futures::FutureExt::now_or_never(link.next_event(&mut out, usize::MAX, usize::MAX));
        assert!(matches!(
            event,
            None | Some(LinkEvent::Frames { drained: true })
        ));
        out
    }

    #[test]
    fn full_queue_marks_lagging_and_never_blocks() {
        let hub = Hub::new(QueueLimits {
            frames: 2,
            bytes: u32::MAX,
        });
        let link = Link::new(sid(1), user(1), DeviceId::try_from("a").unwrap());
        hub.register(link.clone());
        let x = frame(b"x");
        for _ in 0..5 {
            hub.deliver(user(1), &x, None);
        }
        assert_eq!(hub.stats.delivered.load(Ordering::Relaxed), 2);
        assert_eq!(hub.stats.dropped.load(Ordering::Relaxed), 3);
        assert_eq!(drain(&link), frames(2, b"x"));
        assert!(link.queue().is_empty());
        assert!(link.take_lagging());
        assert!(!link.take_lagging());
        hub.deliver(user(1), &frame(b"y"), None);
        assert_eq!(drain(&link), frames(1, b"y"));
        assert_eq!(
            link.queue().capacity(),
            0,
            "a drained queue keeps no memory"
        );
    }

    #[test]
    fn a_queue_is_full_at_its_byte_limit_too() {
        let big = frame(&[b'x'; 1000]);
        let size = big.size();
        let hub = Hub::new(QueueLimits {
            frames: 1000,
            bytes: 3 * size,
        });
        let link = Link::new(sid(1), user(1), DeviceId::try_from("a").unwrap());
        hub.register(link.clone());
        for _ in 0..10 {
            hub.deliver(user(1), &big, None);
        }
        assert_eq!(hub.stats.delivered.load(Ordering::Relaxed), 3);
        assert_eq!(hub.stats.dropped.load(Ordering::Relaxed), 7);
        assert_eq!(link.bytes.load(Ordering::Relaxed), 3 * size);
        // Drained in turns of at most `max_bytes` (at least one push each): the count follows.
        let mut out = Vec::new();
        let event = futures::FutureExt::now_or_never(link.next_event(&mut out, 64, 1));
        assert_eq!(event, Some(LinkEvent::Frames { drained: false }));
        assert_eq!(out.len(), size as usize);
        assert_eq!(link.bytes.load(Ordering::Relaxed), 2 * size);
        assert_eq!(drain(&link).len(), 2 * size as usize);
        assert_eq!(link.bytes.load(Ordering::Relaxed), 0);
        assert!(link.take_lagging());
        // One push larger than the whole limit still goes into an empty queue.
        let hub = Hub::new(QueueLimits {
            frames: 1000,
            bytes: 10,
        });
        let link = Link::new(sid(2), user(2), DeviceId::try_from("a").unwrap());
        hub.register(link.clone());
        hub.deliver(user(2), &big, None);
        hub.deliver(user(2), &big, None);
        assert_eq!(hub.stats.delivered.load(Ordering::Relaxed), 1);
        assert!(link.take_lagging());
    }

    #[test]
    fn same_device_replaces_and_except_skips_origin() {
        let hub = Hub::default();
        let dev = DeviceId::try_from("a").unwrap();
        let l1 = Link::new(sid(1), user(1), dev.clone());
        let l2 = Link::new(sid(2), user(1), dev);
        let l3 = Link::new(sid(3), user(1), DeviceId::try_from("b").unwrap());
        assert!(hub.register(l1.clone()).is_none());
        assert_eq!(hub.register(l2.clone()).unwrap().session_id, sid(1));
        assert!(l1.is_replaced());
        let mut out = Vec::new();
        assert_eq!(
            futures::FutureExt::now_or_never(l1.next_event(&mut out, 8, usize::MAX)),
            Some(LinkEvent::Replaced)
        );
        hub.register(l3.clone());
        hub.deliver(user(1), &frame(b"m"), Some(sid(3)));
        assert_eq!(drain(&l2), frames(1, b"m"));
        assert!(drain(&l3).is_empty());
        hub.deliver_to_sessions(user(1), &[sid(3)], &frame(b"n"));
        assert_eq!(drain(&l3), frames(1, b"n"));
        assert!(drain(&l2).is_empty());
        hub.unregister(user(1), sid(1)); // already replaced: no effect
        assert_eq!(hub.stats().sessions, 2);
        hub.unregister(user(1), sid(2));
        hub.unregister(user(1), sid(3));
        assert_eq!(hub.stats().users, 0);
    }
}
