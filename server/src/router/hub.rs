//! The in-process router: which sessions of this node are online for which user, and delivery
//! to them. Delivery never waits: a session whose queue is full is marked lagging and told to
//! sync once it has drained, so a slow consumer can never stall the fan-out.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    capacity: u32,
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
    /// A link whose push queue holds at most `capacity` frames.
    pub fn new(
        session_id: SessionId,
        user: UserId,
        device: DeviceId,
        capacity: usize,
    ) -> Arc<Link> {
        Arc::new(Link {
            session_id,
            user,
            device,
            capacity: u32::try_from(capacity).unwrap_or(u32::MAX),
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

    /// Queues a frame without waiting; on a full queue marks the session lagging.
    fn push(&self, frame: &SharedPush) -> bool {
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
    /// encoding of at most `max` queued pushes to `out`. Cancel-safe: pushes leave the queue
    /// only in the poll that returns them.
    pub async fn next_event(&self, out: &mut Vec<u8>, max: usize) -> LinkEvent {
        self.next_pushes(max, |push| out.extend_from_slice(push.binary()))
            .await
    }

    /// Waits until the session is replaced or pushes are queued; then hands at most `max`
    /// queued pushes to `each`, oldest first (adapters that render pushes their own way).
    /// Cancel-safe like [`Link::next_event`].
    pub async fn next_pushes(&self, max: usize, mut each: impl FnMut(SharedPush)) -> LinkEvent {
        std::future::poll_fn(|cx| {
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
            let n = queue.len().min(max);
            for push in queue.drain(..n) {
                each(push);
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
            self.count(link.push(push));
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
        let link = Link::new(sid(1), user(1), DeviceId::try_from("a").unwrap(), 2);
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
    fn same_device_replaces_and_except_skips_origin() {
        let hub = Hub::default();
        let dev = DeviceId::try_from("a").unwrap();
        let l1 = Link::new(sid(1), user(1), dev.clone(), 4);
        let l2 = Link::new(sid(2), user(1), dev, 4);
        let l3 = Link::new(sid(3), user(1), DeviceId::try_from("b").unwrap(), 4);
        assert!(hub.register(l1.clone()).is_none());
        assert_eq!(hub.register(l2.clone()).unwrap().session_id, sid(1));
        assert!(l1.is_replaced());
        let mut out = Vec::new();
        assert_eq!(
            futures::FutureExt::now_or_never(l1.next_event(&mut out, 8)),
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
