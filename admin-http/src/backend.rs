//! The interface the server hands the HTTP side: its request service, seen through protocol
//! types only. REST routes, the WebSocket fallback and the dialects are adapters over it: they
//! turn HTTP into [`Request`]s, run them with [`Backend::execute`], and render the
//! [`Response`]s and the pushes of sessions opened with [`Backend::open_session`].

use futures::future::BoxFuture;
use parley_protocol::frames::{Device, ErrorInfo, Request, Response, SharedPush};
use parley_protocol::ids::{SessionId, UserId};
use parley_protocol::session::Identity;

use crate::Stats;

/// What the HTTP side needs from the server.
pub trait Backend: Send + Sync + 'static {
    /// Current figures.
    fn stats(&self) -> Stats;

    /// Runs `request` for `caller` (`None`: anonymous, which may only register, log in, refresh
    /// or ping) and resolves with the answer once it is final: for a send or any other change
    /// to a conversation, once it is durable. A login answers `Response::Login` without opening
    /// a session (use [`Backend::open_session`] for pushes).
    fn execute(&self, caller: Option<Identity>, request: Request) -> BoxFuture<'static, Response>;

    /// Whose access token this is (for bearer authentication); the error is the one a login
    /// with it would get.
    fn authenticate(
        &self,
        access_token: String,
        device: Device,
    ) -> BoxFuture<'static, Result<Identity, ErrorInfo>>;

    /// Bans or unbans a user (admin API): a ban revokes its tokens and closes its sessions, and
    /// its logins are refused with `BANNED`.
    fn set_banned(&self, user: UserId, banned: bool) -> BoxFuture<'static, Result<(), ErrorInfo>>;

    /// Opens an in-process session for `identity`: it receives the pushes every other session of
    /// the user's device would, until it is dropped.
    fn open_session(&self, identity: Identity) -> Box<dyn PushSession>;
}

/// A session opened through [`Backend::open_session`]. Its push queue is bounded like every
/// session's: when it overflows, pushes are dropped and [`SessionEvent::SyncNeeded`] follows
/// once it has drained (the client then catches up by sync). Dropping it closes the session.
pub trait PushSession: Send + Sync {
    /// The session's id.
    fn id(&self) -> SessionId;

    /// The next thing for the session (cancel-safe).
    fn next(&self) -> BoxFuture<'_, SessionEvent>;
}

/// What a [`PushSession`] gets.
#[derive(Debug)]
pub enum SessionEvent {
    /// Pushes, oldest first.
    Pushes(Vec<SharedPush>),
    /// Pushes were dropped (the queue was full): sync to catch up.
    SyncNeeded,
    /// The same device opened another session; this one is over.
    Replaced,
    /// The device was signed out (password change, sign-out from another device); this
    /// session is over.
    SignedOut,
}
