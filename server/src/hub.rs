//! Routing: which sessions are online for which user, and delivery to them.
//!
//! This is the "deliver to user U" interface of the design; a NATS-backed router for several
//! nodes can replace it. Delivery never waits: a session whose queue is full is marked lagging
//! and told to sync once it has drained, so a slow consumer can never stall the fan-out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use parley_protocol::ids::{DeviceId, UserId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// One online session, as the router sees it.
#[derive(Debug)]
pub struct Link {
    /// Connection id.
    pub session_id: u64,
    /// The user logged in on it.
    pub user: UserId,
    /// The device logged in on it.
    pub device: DeviceId,
    tx: mpsc::Sender<Bytes>,
    lagging: AtomicBool,
    /// Cancelled when the same device logs in elsewhere.
    pub replaced: CancellationToken,
}

impl Link {
    /// A link and the receiving end of its bounded push queue.
    pub fn new(
        session_id: u64,
        user: UserId,
        device: DeviceId,
        capacity: usize,
    ) -> (Arc<Link>, mpsc::Receiver<Bytes>) {
        let (tx, rx) = mpsc::channel(capacity);
        let link = Link {
            session_id,
            user,
            device,
            tx,
            lagging: AtomicBool::new(false),
            replaced: CancellationToken::new(),
        };
        (Arc::new(link), rx)
    }

    /// Queues a frame without waiting; on a full queue marks the session lagging.
    fn push(&self, frame: &Bytes) -> bool {
        if self.lagging.load(Ordering::Acquire) {
            return false;
        }
        match self.tx.try_send(frame.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.lagging.store(true, Ordering::Release);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
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

/// The in-process router.
#[derive(Debug, Default)]
pub struct Hub {
    users: RwLock<HashMap<UserId, Vec<Arc<Link>>>>,
    /// Counters.
    pub stats: HubStats,
}

impl Hub {
    /// Adds a session. A previous session of the same device is returned (and signalled), so
    /// the caller can log that it was replaced.
    pub fn register(&self, user: UserId, link: Arc<Link>) -> Option<Arc<Link>> {
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        let links = users.entry(user).or_default();
        let old = links
            .iter()
            .position(|l| l.device == link.device)
            .map(|i| links.swap_remove(i));
        if let Some(old) = &old {
            old.replaced.cancel();
        }
        links.push(link);
        old
    }

    /// Removes a session (no-op if it was already replaced).
    pub fn unregister(&self, user: UserId, session_id: u64) {
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        if let Some(links) = users.get_mut(&user) {
            links.retain(|l| l.session_id != session_id);
            if links.is_empty() {
                users.remove(&user);
            }
        }
    }

    /// Queues `frame` to every session of `user` except `except` (the originating session).
    pub fn deliver(&self, user: UserId, frame: &Bytes, except: Option<u64>) {
        let users = self.users.read().unwrap_or_else(|e| e.into_inner());
        let Some(links) = users.get(&user) else {
            return;
        };
        for link in links.iter().filter(|l| Some(l.session_id) != except) {
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
        users.values().map(Vec::len).sum()
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

    #[test]
    fn full_queue_marks_lagging_and_never_blocks() {
        let hub = Hub::default();
        let (link, mut rx) = Link::new(1, user(1), DeviceId::try_from("a").unwrap(), 2);
        hub.register(user(1), link.clone());
        for _ in 0..5 {
            hub.deliver(user(1), &Bytes::from_static(b"x"), None);
        }
        assert_eq!(hub.stats.delivered.load(Ordering::Relaxed), 2);
        assert_eq!(hub.stats.dropped.load(Ordering::Relaxed), 3);
        assert!(rx.try_recv().is_ok() && rx.try_recv().is_ok());
        assert!(link.take_lagging());
        assert!(!link.take_lagging());
        hub.deliver(user(1), &Bytes::from_static(b"y"), None);
        assert_eq!(rx.try_recv().unwrap(), Bytes::from_static(b"y"));
    }

    #[test]
    fn same_device_replaces_and_except_skips_origin() {
        let hub = Hub::default();
        let dev = DeviceId::try_from("a").unwrap();
        let (l1, _r1) = Link::new(1, user(1), dev.clone(), 4);
        let (l2, mut r2) = Link::new(2, user(1), dev, 4);
        let (l3, mut r3) = Link::new(3, user(1), DeviceId::try_from("b").unwrap(), 4);
        assert!(hub.register(user(1), l1.clone()).is_none());
        assert_eq!(hub.register(user(1), l2).unwrap().session_id, 1);
        assert!(l1.replaced.is_cancelled());
        hub.register(user(1), l3);
        hub.deliver(user(1), &Bytes::from_static(b"m"), Some(3));
        assert!(r2.try_recv().is_ok());
        assert!(r3.try_recv().is_err());
        hub.unregister(user(1), 1); // already replaced: no effect
        assert_eq!(hub.session_count(), 2);
        hub.unregister(user(1), 2);
        hub.unregister(user(1), 3);
        assert_eq!(hub.user_count(), 0);
    }
}
