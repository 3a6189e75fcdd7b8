//! What the connection task remembers across connections (positions, unacknowledged sends, the
//! sync round) and how it reacts to each frame, command and timer on a live connection.

use std::sync::Arc;

use parley_protocol::frames::{
    ConversationEvent, GoAwayReason, LoginResult, Message, Push, Request, Response,
};
use parley_protocol::ids::{DeviceId, UserId};
use parley_protocol::session::TimerAction;
use parley_protocol::ErrorCode;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::auth::Tokens;
use crate::config::{ClientConfig, Resume};
use crate::error::ClientError;
use crate::events::Event;
use crate::link::{expect_ack, now, reply, Incoming, Link, Pending};
use crate::outbox::{AckSender, Outbox};
use crate::positions::{Outcome, Positions};
use crate::sync::{SyncState, SyncWaiter};

mod catch_up;

/// Sends in flight when the server announces no limit.
const DEFAULT_MAX_IN_FLIGHT: usize = 256;

/// What a handle asks of the connection task.
pub(crate) enum Command {
    /// A request answered by one response.
    Request {
        request: Request,
        reply: oneshot::Sender<Result<Response, ClientError>>,
    },
    /// A message to send (kept until acknowledged, across reconnects).
    Send {
        request: parley_protocol::frames::SendRequest,
        reply: AckSender,
    },
    /// Run a sync round.
    Sync { reply: SyncWaiter },
    /// Report the positions, for the application to persist.
    Positions { reply: oneshot::Sender<Resume> },
}

/// Why a connection ended.
pub(crate) enum End {
    /// The application closed the client (or dropped every handle).
    Shutdown,
    /// Lost: reconnect if allowed.
    Lost(String),
    /// Ended for good (logged out, replaced by another login of this device).
    Final(String),
}

/// The sending side of the event channel.
pub(crate) struct Emitter {
    pub(crate) tx: mpsc::Sender<Event>,
    pub(crate) shutdown: CancellationToken,
}

impl Emitter {
    /// Waits for room in the channel (backpressure from the application), except once the
    /// client is shutting down: then events are dropped so `close` never waits on a reader.
    pub(crate) async fn emit(&self, event: Event) {
        tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => {}
            // A closed channel means the application dropped `Events`: nothing to do.
            _ = self.tx.send(event) => {}
        }
    }
}

pub(crate) struct State {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) emitter: Emitter,
    pub(crate) login_tx: watch::Sender<LoginResult>,
    positions: Positions,
    pub(crate) outbox: Outbox,
    pub(crate) sync: SyncState,
    epoch: u64,
    user: UserId,
    device: DeviceId,
    max_in_flight: usize,
    /// Unacknowledged sends wait for the first sync after a reconnect.
    sends_paused: bool,
    logged_out: bool,
    /// Tokens obtained through a raw request, for the next reconnect.
    pub(crate) new_tokens: Option<Tokens>,
}

fn lost(e: ClientError) -> End {
    End::Lost(format!("write failed: {e}"))
}

impl State {
    pub(crate) fn new(
        config: Arc<ClientConfig>,
        emitter: Emitter,
        login_tx: watch::Sender<LoginResult>,
        login: &LoginResult,
    ) -> Self {
        let resume = &config.resume;
        Self {
            positions: Positions::with_positions(&resume.positions),
            // Positions learnt on this connection refer to the login's epoch.
            epoch: if resume.epoch != 0 {
                resume.epoch
            } else {
                login.epoch
            },
            user: login.user,
            device: config.device.id.clone(),
            outbox: Outbox::default(),
            sync: SyncState::default(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            sends_paused: false,
            logged_out: false,
            new_tokens: None,
            login_tx,
            emitter,
            config,
        }
    }

    /// A connection is logged in: announce it, catch up, then resume sending.
    pub(crate) async fn on_connected(
        &mut self,
        link: &mut Link,
        login: LoginResult,
    ) -> Result<(), End> {
        self.max_in_flight = match login.limits.max_inflight_sends {
            0 => DEFAULT_MAX_IN_FLIGHT,
            n => n as usize,
        };
        self.login_tx.send_replace(login.clone());
        self.emitter.emit(Event::Connected(login)).await;
        self.sends_paused = self.outbox.len() > 0;
        self.start_sync(link, None).await?;
        self.pump_sends(link).await
    }

    /// The connection is gone: callers waiting on it hear so; sends wait for the next one.
    pub(crate) fn connection_lost(&mut self, link: &mut Link) {
        for tag in link.session.drain_pending() {
            if let Pending::Caller(tx) | Pending::Logout(tx) = tag {
                let _ = tx.send(Err(ClientError::Disconnected));
            }
        }
        self.outbox.requeue_all();
        self.sync.abort(&ClientError::Disconnected);
        self.sends_paused = false;
    }

    /// How the end of the byte stream is to be read.
    pub(crate) fn end_of(&self, link: &Link, reason: String) -> End {
        match link.going_away {
            _ if self.logged_out => End::Final("logged out".into()),
            Some(GoAwayReason::LoggedOut) => End::Final("logged out by the server".into()),
            Some(GoAwayReason::Replaced) => {
                End::Final("replaced by another login of this device".into())
            }
            Some(r) => End::Lost(format!("server going away ({r:?})")),
            None => End::Lost(reason),
        }
    }

    /// Positions for the application to persist.
    pub(crate) fn resume(&self) -> Resume {
        Resume {
            epoch: self.epoch,
            positions: self.positions.snapshot(),
        }
    }

    /// When the oldest gap needs a sync, unless a sync is already under way.
    pub(crate) fn gap_deadline(&self, link: &Link) -> Option<std::time::Instant> {
        if self.sync.is_running() || link.going_away.is_some() {
            return None;
        }
        self.positions.gap_deadline(self.config.gap_timeout)
    }

    /// A command while connected.
    pub(crate) async fn on_command(&mut self, link: &mut Link, cmd: Command) -> Result<(), End> {
        match cmd {
            Command::Request { request, reply } => {
                if link.going_away.is_some() {
                    let _ = reply.send(Err(ClientError::Disconnected));
                    return Ok(());
                }
                let tag = match request {
                    Request::Logout => Pending::Logout(reply),
                    _ => Pending::Caller(reply),
                };
                link.request(request, tag).await.map_err(lost)?;
                Ok(())
            }
            Command::Send { request, reply } => {
                self.outbox.push(request, reply);
                self.pump_sends(link).await
            }
            Command::Sync { reply } => self.start_sync(link, Some(reply)).await,
            Command::Positions { reply } => {
                let _ = reply.send(self.resume());
                Ok(())
            }
        }
    }

    /// A command while disconnected: sends wait, everything else fails fast.
    pub(crate) fn offline(&mut self, cmd: Command) {
        match cmd {
            Command::Request { reply, .. } => {
                let _ = reply.send(Err(ClientError::Disconnected));
            }
            Command::Send { request, reply } => {
                self.outbox.push(request, reply);
            }
            Command::Sync { reply } => {
                let _ = reply.send(Err(ClientError::Disconnected));
            }
            Command::Positions { reply } => {
                let _ = reply.send(self.resume());
            }
        }
    }

    /// A command after the client stopped.
    pub(crate) fn refuse(cmd: Command, error: &ClientError) {
        match cmd {
            Command::Request { reply, .. } => {
                let _ = reply.send(Err(error.clone()));
            }
            Command::Send { reply, .. } => {
                let _ = reply.send(Err(error.clone()));
            }
            Command::Sync { reply } => {
                let _ = reply.send(Err(error.clone()));
            }
            Command::Positions { .. } => {}
        }
    }

    /// The heartbeat or gap timer fired.
    pub(crate) async fn on_timer(&mut self, link: &mut Link) -> Result<(), End> {
        let now = now();
        match link.session.handle_timeout(now) {
            Some(TimerAction::Dead) => {
                return Err(End::Lost(
                    "no frame from the server within the heartbeat timeout".into(),
                ))
            }
            Some(TimerAction::SendPing) => {
                let client_time_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                link.request(Request::Ping { client_time_ms }, Pending::Ping)
                    .await
                    .map_err(lost)?;
            }
            None => {}
        }
        if self.gap_deadline(link).is_some_and(|d| d <= now) {
            tracing::debug!("gap outlived the gap timeout; syncing");
            self.start_sync(link, None).await?;
        }
        Ok(())
    }

    /// A frame from the server.
    pub(crate) async fn on_incoming(
        &mut self,
        link: &mut Link,
        incoming: Incoming,
    ) -> Result<(), End> {
        match incoming {
            Incoming::Nothing => Ok(()),
            Incoming::Push(p) => self.on_push(link, p).await,
            Incoming::Response(tag, r) => match tag {
                Pending::Caller(tx) => {
                    if let Response::Login(login) = &r {
                        // A raw `Refresh` revoked the tokens the reconnect logic holds.
                        self.login_tx.send_replace(login.clone());
                        self.new_tokens = Some(Tokens::from_login(login));
                    }
                    reply(tx, r);
                    Ok(())
                }
                Pending::Logout(tx) => {
                    let ok = matches!(r, Response::Ok);
                    reply(tx, r);
                    if ok {
                        self.logged_out = true;
                        return Err(End::Final("logged out".into()));
                    }
                    Ok(())
                }
                Pending::Send(key) => self.on_send_response(link, key, r).await,
                Pending::Sync => self.on_sync_page(link, r).await,
                Pending::Ping | Pending::Login => Ok(()),
            },
        }
    }

    async fn on_push(&mut self, link: &mut Link, push: Push) -> Result<(), End> {
        match push {
            Push::Message(m) => return self.deliver(link, vec![m]).await,
            Push::Receipt(r) => self.emitter.emit(Event::Receipt(r)).await,
            Push::Typing { conversation, user } => {
                self.emitter
                    .emit(Event::Typing { conversation, user })
                    .await
            }
            Push::Membership(m) => self.emitter.emit(Event::Membership(m)).await,
            Push::Profile(p) => self.emitter.emit(Event::Profile(p)).await,
            Push::Presence(p) => self.emitter.emit(Event::Presence(p)).await,
            Push::Call(c) => self.emitter.emit(Event::Call(c)).await,
            Push::SyncNeeded => {
                tracing::debug!("server dropped pushes for this session; syncing");
                return self.start_sync(link, None).await;
            }
            Push::GoAway { reason, message } => {
                tracing::info!(?reason, "server going away: {message}");
                link.going_away = Some(reason);
            }
            Push::Error(e) => self.emitter.emit(Event::ServerError(e)).await,
        }
        Ok(())
    }

    /// Feeds messages through the ordering and emits what becomes deliverable.
    async fn deliver(&mut self, link: &mut Link, messages: Vec<Message>) -> Result<(), End> {
        let now = now();
        let mut out = Vec::new();
        let mut overflow = false;
        for m in messages {
            // A group's answer to this user's join request reaches a non-member: it has no
            // place in an ordered conversation (sync does not list the group), so it goes out
            // as it comes.
            if about_outsider(&m, self.user) {
                out.push(m);
                continue;
            }
            // Our own message coming back (committed before its ack reached us, seen through
            // sync or a push to the new connection): the pending send's ack will report it.
            let own = m.sender == self.user
                && m.sender_device == self.device
                && self.outbox.contains(&m.client_msg_id);
            let outcome = if own {
                self.positions
                    .mark_own(m.conversation, m.seq, now, &mut out)
            } else {
                self.positions.offer(m, now, &mut out)
            };
            overflow |= outcome == Outcome::Overflow;
        }
        for m in out {
            self.emitter.emit(Event::Message(m)).await;
        }
        if overflow {
            self.start_sync(link, None).await?;
        }
        Ok(())
    }

    async fn on_send_response(
        &mut self,
        link: &mut Link,
        key: u64,
        r: Response,
    ) -> Result<(), End> {
        match r {
            Response::Error(e) if e.code == ErrorCode::ShuttingDown => {
                // Not stored: it goes again on the next connection.
                self.outbox.unsend(key);
                link.going_away.get_or_insert(GoAwayReason::Shutdown);
            }
            other => {
                let result = expect_ack(other);
                if let Ok(ack) = &result {
                    let mut out = Vec::new();
                    self.positions
                        .mark_own(ack.conversation, ack.seq, now(), &mut out);
                    for m in out {
                        self.emitter.emit(Event::Message(m)).await;
                    }
                }
                self.outbox.complete(key, result);
            }
        }
        self.pump_sends(link).await
    }

    /// Puts waiting sends on the wire, oldest first, within the server's in-flight limit.
    async fn pump_sends(&mut self, link: &mut Link) -> Result<(), End> {
        if self.sends_paused || link.going_away.is_some() {
            return Ok(());
        }
        while let Some((key, request)) = self.outbox.next_unsent(self.max_in_flight) {
            link.request(Request::Send(request), Pending::Send(key))
                .await
                .map_err(lost)?;
        }
        Ok(())
    }
}

/// A log entry pushed to `user` although not a member: its own join request, or its rejection.
fn about_outsider(m: &Message, user: UserId) -> bool {
    matches!(
        m.event.as_deref(),
        Some(ConversationEvent::JoinRequest(r)) if r.user == user
    ) || matches!(
        m.event.as_deref(),
        Some(ConversationEvent::JoinRejected(u)) if *u == user
    )
}
