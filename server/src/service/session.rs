//! An in-process session: an identity, its registration with the router, and its bounded push
//! queue, for adapters that are not the binary driver (the HTTP side, tests).

use std::sync::Arc;

use parley_protocol::ids::SessionId;
use parley_protocol::session::Identity;

use super::{Caller, Service};
use crate::router::{Link, LinkEvent};

/// Pushes taken from the queue at a time.
const BATCH: usize = 64;

/// A session opened by [`Service::open_session`]; dropping it closes the session.
#[derive(Debug)]
pub struct Session {
    service: Service,
    identity: Identity,
    link: Arc<Link>,
}

pub use parley_admin_http::SessionEvent;

impl Session {
    pub(super) fn new(service: Service, identity: Identity, link: Arc<Link>) -> Session {
        Session {
            service,
            identity,
            link,
        }
    }

    /// The session's id.
    pub fn id(&self) -> SessionId {
        self.link.session_id
    }

    /// Who is logged in on it.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The caller to execute requests as (its own pushes of their results are skipped).
    pub fn caller(&self) -> Caller {
        Caller::User {
            identity: self.identity.clone(),
            session: Some(self.id()),
        }
    }

    /// The next event (cancel-safe). A full queue drops pushes and marks the session lagging;
    /// once the queue is drained the session gets [`SessionEvent::SyncNeeded`].
    pub async fn next(&self) -> SessionEvent {
        if self.link.take_lagging_if_drained() {
            return SessionEvent::SyncNeeded;
        }
        let mut pushes = Vec::new();
        match self.link.next_pushes(BATCH, |p| pushes.push(p)).await {
            LinkEvent::Replaced => SessionEvent::Replaced,
            LinkEvent::SignedOut => SessionEvent::SignedOut,
            LinkEvent::Frames { .. } => SessionEvent::Pushes(pushes),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.service.close_link(&self.link);
    }
}
