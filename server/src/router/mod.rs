//! Routing: "deliver this push to user U" (or to some of U's sessions), behind an interface.
//!
//! The fan-out, receipts and typing hand every push to a [`Router`] and never wait on it. The
//! in-process [`Hub`] is the implementation on one node; a router spanning several nodes (NATS,
//! later) implements the same trait, using the node id that every [`SessionId`] carries to
//! reach sessions elsewhere. Pushes travel as [`SharedPush`]: typed, encoded once per wire
//! format on first use, and shared by every recipient.

mod hub;

pub use hub::{Hub, HubStats, Link, LinkEvent, QueueLimits};

use std::sync::Arc;

use parley_protocol::frames::SharedPush;
use parley_protocol::ids::{DeviceId, SessionId, UserId};

/// Figures of a router.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouterStats {
    /// Sessions registered.
    pub sessions: u64,
    /// Users with at least one session.
    pub users: u64,
    /// Pushes queued to sessions since start.
    pub delivered: u64,
    /// Pushes dropped for lagging sessions (they catch up by sync).
    pub dropped: u64,
}

/// Where pushes go. Every method returns at once: delivery never waits on a session.
pub trait Router: Send + Sync + std::fmt::Debug + 'static {
    /// Adds a session of this node. A session of the same user and device it replaces is
    /// returned, already told that it was replaced.
    fn register(&self, link: Arc<Link>) -> Option<Arc<Link>>;

    /// Removes a session (no-op if it was already replaced or removed).
    fn unregister(&self, user: UserId, session: SessionId);

    /// Ends the sessions of `user` (of `device` only, if given), except `keep`: they close with
    /// "logged out" (their tokens were revoked).
    fn sign_out(&self, user: UserId, device: Option<&DeviceId>, keep: Option<SessionId>);

    /// How many sessions `user` has on this node.
    fn sessions_of(&self, user: UserId) -> usize;

    /// The devices of `user` with a session on this node.
    fn online_devices(&self, user: UserId) -> Vec<DeviceId>;

    /// Queues `push` to every session of `user` except `except` (the one it came from). True if
    /// the user has a session here at all (false: offline, as far as this router knows).
    fn deliver(&self, user: UserId, push: &SharedPush, except: Option<SessionId>) -> bool;

    /// Queues `push` to those of `user`'s sessions that are listed.
    fn deliver_to_sessions(&self, user: UserId, sessions: &[SessionId], push: &SharedPush);

    /// Current figures.
    fn stats(&self) -> RouterStats;
}
