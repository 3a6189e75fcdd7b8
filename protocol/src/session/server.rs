//! Server side of one connection: which requests are allowed in which state, and liveness.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::ErrorCode;
use crate::frames::{ErrorInfo, GoAwayReason, Request};
use crate::ids::{Account, DeviceId, UserId};

/// Liveness settings.
#[derive(Clone, Copy, Debug)]
pub struct HeartbeatConfig {
    /// How often clients should ping when idle (announced at login).
    pub interval: Duration,
    /// Silence after which the connection is closed (announced at login).
    pub timeout: Duration,
    /// Time a fresh connection has to log in.
    pub login_timeout: Duration,
    /// Malformed frames tolerated before the connection is closed.
    pub max_bad_frames: u32,
    /// Sustained requests per second (bursts of twice as many); 0 = unlimited.
    pub requests_per_second: u32,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(90),
            login_timeout: Duration::from_secs(10),
            max_bad_frames: 8,
            requests_per_second: 0,
        }
    }
}

/// Who a logged-in session is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The user.
    pub user: UserId,
    /// The user's login name.
    pub account: Account,
    /// The device of this connection.
    pub device: DeviceId,
}

#[derive(Debug)]
enum State {
    AwaitingLogin,
    Active(Identity),
    Closing,
}

/// Why a request was not admitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admission(pub ErrorInfo);

/// The server's view of one connection.
#[derive(Debug)]
pub struct ServerSession {
    state: State,
    /// Shared by every session of a server (it is part of each idle connection's memory).
    cfg: Arc<HeartbeatConfig>,
    deadline: Instant,
    bad_frames: u32,
    bucket: Bucket,
}

/// Token bucket: `rate` tokens per second up to `2 * rate`.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(now: Instant, rate: u32) -> Self {
        Self {
            tokens: 2.0 * f64::from(rate),
            last: now,
        }
    }

    fn take(&mut self, now: Instant, rate: u32) -> bool {
        if rate == 0 {
            return true;
        }
        let rate = f64::from(rate);
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate).min(2.0 * rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl ServerSession {
    /// A fresh connection that must log in before `now + login_timeout`.
    pub fn new(now: Instant, cfg: impl Into<Arc<HeartbeatConfig>>) -> Self {
        let cfg: Arc<HeartbeatConfig> = cfg.into();
        Self {
            state: State::AwaitingLogin,
            deadline: now + cfg.login_timeout,
            bad_frames: 0,
            bucket: Bucket::new(now, cfg.requests_per_second),
            cfg,
        }
    }

    /// Any frame from the peer proves liveness (after login; before it, only login does).
    pub fn on_frame_received(&mut self, now: Instant) {
        if let State::Active(_) = self.state {
            self.deadline = now + self.cfg.timeout;
        }
    }

    /// Spends one request from the rate budget; `Err` if the connection is over its rate.
    pub fn rate_limit(&mut self, now: Instant) -> Result<(), Admission> {
        if self.bucket.take(now, self.cfg.requests_per_second) {
            Ok(())
        } else {
            Err(Admission(ErrorInfo::new(
                ErrorCode::RateLimited,
                "too many requests; slow down",
            )))
        }
    }

    /// Records an undecodable frame; returns true if the connection should now be closed.
    pub fn on_bad_frame(&mut self) -> bool {
        self.bad_frames += 1;
        self.bad_frames >= self.cfg.max_bad_frames
    }

    /// Checks whether `request` may run in the current state.
    pub fn admit(&self, request: &Request) -> Result<(), Admission> {
        let reject = |code, msg: &str| Err(Admission(ErrorInfo::new(code, msg)));
        match (&self.state, request.allowed_before_login()) {
            (State::Closing, _) => reject(ErrorCode::ShuttingDown, "the session is closing"),
            (State::AwaitingLogin, false) => reject(ErrorCode::Unauthenticated, "log in first"),
            (State::Active(_), true)
                if !matches!(request, Request::Ping { .. } | Request::Refresh { .. }) =>
            {
                reject(
                    ErrorCode::AlreadyLoggedIn,
                    "this connection is already logged in",
                )
            }
            _ => Ok(()),
        }
    }

    /// The login succeeded.
    pub fn logged_in(&mut self, now: Instant, identity: Identity) {
        self.state = State::Active(identity);
        self.deadline = now + self.cfg.timeout;
    }

    /// Who is logged in, if anyone.
    pub fn identity(&self) -> Option<&Identity> {
        match &self.state {
            State::Active(id) => Some(id),
            _ => None,
        }
    }

    /// Stop admitting requests (shutdown, logout, replaced).
    pub fn close(&mut self) {
        self.state = State::Closing;
    }

    /// When `handle_timeout` must next be called.
    pub fn poll_timeout(&self) -> Instant {
        self.deadline
    }

    /// Returns the reason to close if the deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<GoAwayReason> {
        if now < self.deadline {
            return None;
        }
        self.state = State::Closing;
        Some(GoAwayReason::IdleTimeout)
    }

    /// The heartbeat settings (announced at login).
    pub fn heartbeat(&self) -> HeartbeatConfig {
        *self.cfg
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests may read the real clock: the code under test never does
mod tests {
    use super::*;
    use crate::frames::{Device, Platform};

    fn ping() -> Request {
        Request::Ping { client_time_ms: 0 }
    }

    fn login() -> Request {
        Request::Login {
            credential: crate::frames::Credential::AccessToken("t".into()),
            device: Device {
                id: DeviceId::try_from("d").unwrap(),
                platform: Platform::Cli,
            },
        }
    }

    fn identity() -> Identity {
        Identity {
            user: UserId::try_from(1).unwrap(),
            account: Account::try_from("alice").unwrap(),
            device: DeviceId::try_from("d").unwrap(),
        }
    }

    #[test]
    fn requests_need_login() {
        let now = Instant::now();
        let mut s = ServerSession::new(now, HeartbeatConfig::default());
        let sync = Request::Sync(Default::default());
        assert_eq!(
            s.admit(&sync).unwrap_err().0.code,
            ErrorCode::Unauthenticated
        );
        assert!(s.admit(&ping()).is_ok());
        assert!(s.admit(&login()).is_ok());
        s.logged_in(now, identity());
        assert!(s.admit(&sync).is_ok());
        assert_eq!(
            s.admit(&login()).unwrap_err().0.code,
            ErrorCode::AlreadyLoggedIn
        );
        s.close();
        assert_eq!(
            s.admit(&ping()).unwrap_err().0.code,
            ErrorCode::ShuttingDown
        );
    }

    #[test]
    fn login_timeout_then_idle_timeout() {
        let t0 = Instant::now();
        let cfg = HeartbeatConfig::default();
        let mut s = ServerSession::new(t0, cfg);
        // Pings before login do not extend the login deadline.
        s.on_frame_received(t0 + Duration::from_secs(5));
        assert_eq!(s.poll_timeout(), t0 + cfg.login_timeout);
        assert_eq!(s.handle_timeout(t0 + Duration::from_secs(9)), None);
        s.logged_in(t0 + Duration::from_secs(9), identity());
        let t1 = t0 + Duration::from_secs(60);
        s.on_frame_received(t1);
        assert_eq!(
            s.handle_timeout(t1 + cfg.timeout - Duration::from_millis(1)),
            None
        );
        assert_eq!(
            s.handle_timeout(t1 + cfg.timeout),
            Some(GoAwayReason::IdleTimeout)
        );
    }

    #[test]
    fn rate_limit_allows_bursts_then_refills() {
        let t0 = Instant::now();
        let cfg = HeartbeatConfig {
            requests_per_second: 10,
            ..HeartbeatConfig::default()
        };
        let mut s = ServerSession::new(t0, cfg);
        let allowed = (0..100).filter(|_| s.rate_limit(t0).is_ok()).count();
        assert_eq!(allowed, 20, "a burst of twice the rate");
        assert!(s.rate_limit(t0 + Duration::from_millis(50)).is_err());
        assert!(s.rate_limit(t0 + Duration::from_millis(150)).is_ok());
        let mut unlimited = ServerSession::new(t0, HeartbeatConfig::default());
        assert!((0..10_000).all(|_| unlimited.rate_limit(t0).is_ok()));
    }

    #[test]
    fn too_many_bad_frames_close() {
        let mut s = ServerSession::new(Instant::now(), HeartbeatConfig::default());
        let closes: Vec<bool> = (0..8).map(|_| s.on_bad_frame()).collect();
        assert_eq!(closes.iter().filter(|c| **c).count(), 1);
        assert!(closes[7]);
    }
}
