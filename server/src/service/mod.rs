//! The request service: the one entry point to every operation, under every transport.
//!
//! [`Service::execute`] runs any [`Request`] for a [`Caller`] and gives the [`Reply`]: at once,
//! or (for a send and every other change to a conversation's log) a [`Pending`] answer that
//! resolves once the change is durable; requests that must wait before they are even queued
//! (password hashing, barriers) come back as one boxed [`Reply::Deferred`]. [`Service::open_session`] turns an identity into a
//! session: a handle plus a bounded queue of pushes, registered with the router. The binary
//! driver (TCP, TLS, QUIC) is a thin adapter over these two, and so are the HTTP side-service
//! (through [`parley_admin_http::Backend`], implemented in `backend.rs`), the tests, and later
//! the WebSocket fallback, REST and the dialects.
//!
//! Adding an operation: a message in `proto/` (and its `Request`/`Response` variants in
//! `protocol`), one file in `core/` that implements it, and one arm in `dispatch.rs`.

mod backend;
mod dispatch;
mod files;
mod session;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use parley_protocol::frames::{ErrorInfo, Response};
use parley_protocol::ids::SessionId;
use parley_protocol::session::Identity;

pub use crate::core::{LoginOutcome, Pending};
pub use backend::HttpBackend;
pub use files::FileBlobs;
pub use session::{Session, SessionEvent};

use crate::core::Core;
use crate::router::Link;

/// Who makes a request.
#[derive(Clone, Debug)]
pub enum Caller {
    /// Not logged in: may register, log in, refresh a token, or ping. Its password attempts
    /// count against one shared "unknown" source (in-process callers and tests); a network
    /// adapter says where the caller is with [`Caller::AnonymousFrom`].
    Anonymous,
    /// Not logged in, connected from this address: password attempts are hashed and throttled
    /// per source address (docs/security.md). Every transport passes its peer's address.
    AnonymousFrom(std::net::IpAddr),
    /// A logged-in user, on a session (binary and WebSocket connections) or without one (a
    /// REST request).
    User {
        /// Who.
        identity: Identity,
        /// The session the request came on, whose own push of the result is skipped.
        session: Option<SessionId>,
    },
}

/// The outcome of a request.
pub enum Reply {
    /// The answer, ready now (possibly an error).
    Now(Response),
    /// The answer once the change is durable (a send's `SendAck`, a membership change's `Ok`).
    Later(Pending),
    /// An anonymous caller authenticated: the adapter opens a session for
    /// `outcome.identity` if it has one to open, fills in `session_id`, and answers
    /// `Response::Login(outcome.result)`.
    LoggedIn(LoginOutcome),
    /// The caller's tokens are revoked: answer `Ok` and end the session.
    LoggedOut,
    /// Not known yet (the request waits for password hashing, a barrier, or room in the
    /// committer's queue): await it for one of the replies above. The adapter takes no further
    /// request from that caller meanwhile.
    Deferred(std::pin::Pin<Box<dyn std::future::Future<Output = Reply> + Send>>),
}

impl Reply {
    /// The reply itself, once a deferred one has resolved.
    pub async fn resolved(self) -> Reply {
        match self {
            Reply::Deferred(work) => work.await,
            other => other,
        }
    }
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Now(r) => f.debug_tuple("Now").field(r).finish(),
            Reply::Later(p) => f.debug_tuple("Later").field(p).finish(),
            Reply::LoggedIn(o) => f.debug_tuple("LoggedIn").field(o).finish(),
            Reply::LoggedOut => f.write_str("LoggedOut"),
            Reply::Deferred(_) => f.write_str("Deferred"),
        }
    }
}

impl From<ErrorInfo> for Reply {
    fn from(e: ErrorInfo) -> Reply {
        Reply::Now(Response::Error(e))
    }
}

/// The request service. Cheap to clone (one shared core).
#[derive(Clone, Debug)]
pub struct Service {
    core: Arc<Core>,
}

impl Service {
    /// The service over `core`.
    pub fn new(core: Arc<Core>) -> Service {
        Service { core }
    }

    /// The core (configuration, figures, the fan-out runner).
    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// A fresh session id on this node.
    pub fn next_session_id(&self) -> SessionId {
        self.core.next_session_id()
    }

    /// Registers a session `id` of `identity` with the router and returns its push queue (for
    /// adapters that manage the registration themselves, like the binary driver, whose memory
    /// per connection is counted in bytes). Pair with [`Service::close_link`].
    pub fn open_link(&self, id: SessionId, identity: &Identity) -> Arc<Link> {
        let link = Link::new(id, identity.user, identity.device.clone());
        let router = self.core.router();
        let first = router.sessions_of(identity.user) == 0;
        let replaced = router.register(link.clone());
        if first {
            self.core.connected_changed(identity.user, true);
        }
        if let Some(old) = replaced {
            tracing::info!(
                id = %id,
                user = identity.user.get(),
                replaced = %old.session_id,
                "same device logged in again"
            );
        }
        link
    }

    /// Removes a session opened with [`Service::open_link`].
    pub fn close_link(&self, link: &Link) {
        let router = self.core.router();
        router.unregister(link.user, link.session_id);
        if router.sessions_of(link.user) == 0 {
            self.core.connected_changed(link.user, false);
        }
    }

    /// Opens a session for `identity`: registered with the router until the returned handle is
    /// dropped.
    pub fn open_session(&self, identity: Identity) -> Session {
        let id = self.next_session_id();
        let link = self.open_link(id, &identity);
        Session::new(self.clone(), identity, link)
    }
}
