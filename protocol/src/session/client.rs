//! Client side of one connection: request ids, matching responses to requests, and the
//! heartbeat schedule.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::frames::{LoginResult, Push, Response, ServerFrame};
use crate::ids::RequestId;

/// Heartbeat used until the server announces its own at login.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(90);

/// What a received frame means to the caller.
#[derive(Debug, PartialEq)]
pub enum ClientEvent<T> {
    /// The response to a request, with the tag given when it was started.
    Response(T, Response),
    /// A push.
    Push(Push),
}

/// What the caller must do when the timer fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerAction {
    /// Send a `Ping` (nothing was sent for a heartbeat interval).
    SendPing,
    /// Nothing was received within the timeout: the connection is dead.
    Dead,
}

/// A protocol violation by the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientSessionError {
    /// A response to a request that is not outstanding.
    #[error("response to unknown request id {0}")]
    UnknownRequest(RequestId),
}

/// The client's view of one connection. `T` tags each outstanding request (for example with a
/// channel to complete).
#[derive(Debug)]
pub struct ClientSession<T> {
    next_id: u64,
    pending: HashMap<RequestId, T>,
    interval: Duration,
    timeout: Duration,
    last_tx: Instant,
    last_rx: Instant,
}

impl<T> ClientSession<T> {
    /// A session on a connection opened at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            next_id: 1,
            pending: HashMap::new(),
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            last_tx: now,
            last_rx: now,
        }
    }

    /// Allocates the id for a request about to be sent and remembers its tag.
    pub fn start_request(&mut self, now: Instant, tag: T) -> RequestId {
        let id = loop {
            let candidate = self.next_id;
            self.next_id = self.next_id.checked_add(1).unwrap_or(1);
            if let Ok(id) = RequestId::try_from(candidate) {
                if !self.pending.contains_key(&id) {
                    break id;
                }
            }
        };
        self.pending.insert(id, tag);
        self.last_tx = now;
        id
    }

    /// Records that some frame was sent (e.g. a ping).
    pub fn on_sent(&mut self, now: Instant) {
        self.last_tx = now;
    }

    /// Adopts the heartbeat the server announced.
    pub fn on_login(&mut self, login: &LoginResult) {
        if !login.heartbeat_interval.is_zero() {
            self.interval = login.heartbeat_interval;
        }
        if !login.heartbeat_timeout.is_zero() {
            self.timeout = login.heartbeat_timeout;
        }
    }

    /// Matches a received frame to its request.
    pub fn handle_frame(
        &mut self,
        now: Instant,
        frame: ServerFrame,
    ) -> Result<ClientEvent<T>, ClientSessionError> {
        self.last_rx = now;
        match frame {
            ServerFrame::Push(p) => Ok(ClientEvent::Push(p)),
            ServerFrame::Response(id, r) => match self.pending.remove(&id) {
                Some(tag) => Ok(ClientEvent::Response(tag, r)),
                None => Err(ClientSessionError::UnknownRequest(id)),
            },
        }
    }

    /// Number of requests awaiting a response.
    pub fn outstanding(&self) -> usize {
        self.pending.len()
    }

    /// Takes every outstanding request's tag (the connection is gone).
    pub fn drain_pending(&mut self) -> impl Iterator<Item = T> + '_ {
        self.pending.drain().map(|(_, t)| t)
    }

    /// When `handle_timeout` must next be called.
    pub fn poll_timeout(&self) -> Instant {
        (self.last_tx + self.interval).min(self.last_rx + self.timeout)
    }

    /// What to do at `now`, if anything.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<TimerAction> {
        if now >= self.last_rx + self.timeout {
            Some(TimerAction::Dead)
        } else if now >= self.last_tx + self.interval {
            Some(TimerAction::SendPing)
        } else {
            None
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests may read the real clock: the code under test never does
mod tests {
    use super::*;

    #[test]
    fn responses_match_requests_once() {
        let now = Instant::now();
        let mut s = ClientSession::new(now);
        let a = s.start_request(now, "a");
        let b = s.start_request(now, "b");
        assert_ne!(a, b);
        let ev = s
            .handle_frame(now, ServerFrame::Response(b, Response::Ok))
            .unwrap();
        assert_eq!(ev, ClientEvent::Response("b", Response::Ok));
        assert!(s
            .handle_frame(now, ServerFrame::Response(b, Response::Ok))
            .is_err());
        assert_eq!(s.outstanding(), 1);
    }

    #[test]
    fn pings_when_idle_and_dies_when_silent() {
        let t0 = Instant::now();
        let mut s: ClientSession<()> = ClientSession::new(t0);
        assert_eq!(s.poll_timeout(), t0 + DEFAULT_INTERVAL);
        assert_eq!(
            s.handle_timeout(t0 + DEFAULT_INTERVAL),
            Some(TimerAction::SendPing)
        );
        s.on_sent(t0 + DEFAULT_INTERVAL);
        assert_eq!(s.handle_timeout(t0 + DEFAULT_INTERVAL), None);
        assert_eq!(
            s.handle_timeout(t0 + DEFAULT_TIMEOUT),
            Some(TimerAction::Dead)
        );
    }
}
