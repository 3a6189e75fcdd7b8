//! The session driver: one task per connection, the same for every binary transport (TCP, TLS,
//! QUIC). It reads frames, admits them through the sans-IO `ServerSession`, hands requests to
//! the request service ([`crate::service`]), writes responses and queued pushes, and enforces
//! heartbeat, backpressure and graceful close. Transports implement [`SessionStream`] and call
//! [`run`]; this module knows nothing of them.
//!
//! Backpressure: at most `max_inflight_sends` sends may await their durable ack; beyond that the
//! driver stops reading, so a client can only slow itself down. Pushes arrive on the bounded
//! queue of the session's [`Link`] (bounded by pushes and by bytes); when the fan-out found it
//! full, the session is told to sync once the queue has drained. At most `PUSH_BURST` pushes
//! and `PUSH_BURST_BYTES` of them move to the write buffer per turn.
//!
//! A request whose id is still outstanding (a send awaiting its durable ack) is refused with
//! `BAD_REQUEST_ID` and not run (`acks.rs`). The login deadline counts from the connection's
//! accept ([`run_accepted`]), across the TLS or QUIC handshake.
//!
//! A logged-in session with nothing to do for `heartbeat.park_after` goes to sleep: the driver
//! leaves its task and waits in the [`ParkingLot`] until there is work again ([`park`]).

mod acks;
mod handler;
pub mod park;
mod reader;
mod stream;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parley_protocol::frames::{ClientFrame, ErrorInfo, GoAwayReason, Push, Response, ServerFrame};
use parley_protocol::ids::{RequestId, SessionId};
use parley_protocol::session::ServerSession;
use parley_protocol::{DecodeError, FrameCodec, DEFAULT_MAX_FRAME};
use tokio::io::AsyncWriteExt;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::router::{Link, LinkEvent};
use crate::service::Service;
use acks::Acks;
pub use park::ParkingLot;
/// The frame reader, for the fuzz targets (server/fuzz); not an API.
#[doc(hidden)]
pub use reader::FrameReader;
pub use stream::SessionStream;

/// Which transport a connection came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    /// Plain TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
    /// QUIC.
    Quic,
    /// The WebSocket fallback (through the HTTP side-service).
    WebSocket,
}

impl TransportKind {
    /// "tcp", "tls", "quic" or "ws".
    pub fn name(self) -> &'static str {
        match self {
            TransportKind::Tcp => "tcp",
            TransportKind::Tls => "tls",
            TransportKind::Quic => "quic",
            TransportKind::WebSocket => "ws",
        }
    }
}

/// Where a connection comes from, for logs.
#[derive(Clone, Copy, Debug)]
pub struct ConnInfo {
    /// The transport.
    pub transport: TransportKind,
    /// Remote address.
    pub peer: SocketAddr,
}

/// What ties a session to the server around it.
#[derive(Debug)]
pub struct Env {
    /// Cancelled on shutdown.
    pub shutdown: CancellationToken,
    /// Where the session sleeps when idle.
    pub lot: ParkingLot,
    /// The connection's place under `limits.max_connections`, held until the session ends
    /// (asleep or not).
    pub permit: OwnedSemaphorePermit,
}

/// How long a final flush (GoAway, close_notify) may take before the connection is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Pushes written per wake-up before other work gets a turn.
const PUSH_BURST: usize = 64;
/// Bytes of pushes taken from the queue per wake-up (at least one push): what a receiver that
/// does not read holds in the write buffer, besides its queue.
const PUSH_BURST_BYTES: usize = 64 * 1024;

/// Runs one connection to its end. Errors stay here and are logged in the connection's span.
///
/// The driver lives on the heap for the whole session, so sleeping and waking move a pointer,
/// and the task's future holds only the loop's own state.
pub fn run<S: SessionStream>(
    service: Service,
    stream: S,
    info: ConnInfo,
    env: Env,
) -> impl std::future::Future<Output = ()> + Send {
    run_accepted(service, stream, info, env, Instant::now())
}

/// [`run`] for a connection accepted at `accepted` (before its TLS or QUIC handshake): the
/// login deadline (`heartbeat.login_timeout`) counts from then, so a slow handshake does not
/// extend it.
pub fn run_accepted<S: SessionStream>(
    service: Service,
    stream: S,
    info: ConnInfo,
    env: Env,
    accepted: Instant,
) -> impl std::future::Future<Output = ()> + Send {
    let session_id = service.next_session_id();
    service.core().stats.transports[info.transport as usize]
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let now = Instant::now();
    let driver = Box::new(Driver {
        sm: ServerSession::new(accepted.into_std(), service.core().heartbeat().clone()),
        framed: FrameReader::new(stream, FrameCodec::new(DEFAULT_MAX_FRAME)),
        out: Vec::new(),
        session_id,
        link: None,
        acks: None,
        closing: None,
        info,
        env,
        active_at: now,
        service,
    });
    let span = driver.span();
    driver.run().instrument(span)
}

struct Driver<S> {
    service: Service,
    sm: ServerSession,
    /// Reads frames; writes go to its stream directly.
    framed: FrameReader<S>,
    /// Bytes to write at the end of this turn (allocated only while there is output).
    out: Vec<u8>,
    session_id: SessionId,
    link: Option<Arc<Link>>,
    /// Sends awaiting their durable ack (allocated with the first, dropped when asleep).
    acks: Option<Box<Acks>>,
    closing: Option<(GoAwayReason, &'static str)>,
    info: ConnInfo,
    env: Env,
    /// When the session last had something to do (it sleeps `park_after` later).
    active_at: Instant,
}

/// Pushes for this session (appended to `out`), or news that it was replaced.
async fn link_event(link: &Option<Arc<Link>>, out: &mut Vec<u8>) -> LinkEvent {
    match link {
        Some(l) => l.next_event(out, PUSH_BURST, PUSH_BURST_BYTES).await,
        None => std::future::pending().await,
    }
}

/// The next durable ack, if any send is waiting for one.
async fn next_ack(acks: &mut Option<Box<Acks>>) -> Option<(RequestId, Response)> {
    match acks {
        Some(a) if !a.is_empty() => std::future::poll_fn(|cx| a.poll_next(cx)).await,
        _ => std::future::pending().await,
    }
}

/// How an attempt to sleep ended.
enum Sleep<S> {
    /// The driver is in the lot; its task ends.
    Asleep,
    /// It cannot sleep now and runs on.
    Awake(Box<Driver<S>>),
    /// The socket was lost on the way; the session must finish.
    Lost(Box<Driver<S>>, std::io::Error),
}

impl<S: SessionStream> Driver<S> {
    fn span(&self) -> tracing::Span {
        // Debug level: with the default `info` filter the span is disabled and costs nothing
        // (an enabled span keeps a few hundred bytes per connection in the subscriber).
        // Info-level events of a connection carry its id themselves.
        tracing::debug_span!(
            "conn",
            id = %self.session_id,
            peer = %self.info.peer,
            transport = self.info.transport.name(),
            user = self.link.as_ref().map(|l| l.user.get()),
        )
    }

    fn inflight(&self) -> usize {
        self.acks.as_ref().map_or(0, |a| a.len())
    }

    /// When the session may go to sleep, if it may at all: logged in, open, nothing in flight.
    /// (Whether the reader has drained the stream is checked when the time comes: it is
    /// polled after this.)
    fn sleep_at(&self) -> Option<Instant> {
        let after = self.service.core().config().heartbeat.park_after;
        let may = !after.is_zero()
            && self.link.is_some()
            && self.closing.is_none()
            && self.inflight() == 0;
        may.then(|| self.active_at + after)
    }

    async fn run(mut self: Box<Self>) {
        let max_inflight = self.service.core().config().limits.max_inflight_sends as usize;
        let write_timeout = self.service.core().config().heartbeat.timeout;
        // The shutdown wait and the timer live across turns: making them anew each turn
        // registered and removed a waiter on the one shutdown token every session shares, and
        // an entry in the timer wheel, for every frame.
        let shutdown = self.env.shutdown.clone();
        let mut shutdown_wait = std::pin::pin!(shutdown.cancelled());
        let mut timer = std::pin::pin!(tokio::time::sleep_until(Instant::from_std(
            self.sm.poll_timeout()
        )));
        loop {
            let heartbeat = Instant::from_std(self.sm.poll_timeout());
            let sleep_at = self.sleep_at();
            let deadline = sleep_at.map_or(heartbeat, |at| at.min(heartbeat));
            // Moved only when it must fire earlier (or has fired): activity pushes both
            // deadlines later, and a timer that fires early is simply armed again here.
            if deadline < timer.deadline() || timer.is_elapsed() {
                timer.as_mut().reset(deadline);
            }
            let open = self.closing.is_none();
            let can_read = open && self.inflight() < max_inflight;
            let mut busy = true;
            let mut sleep = false;
            // Every arm is cancel-safe: `FrameReader::next`, `Link::next_event`,
            // `Acks::next` and the timers lose nothing when another arm wins.
            tokio::select! {
                _ = &mut shutdown_wait, if open => {
                    self.begin_close(GoAwayReason::Shutdown, "server shutting down");
                }
                Some((id, response)) = next_ack(&mut self.acks), if self.inflight() > 0 => {
                    self.respond(id, response);
                    // A commit batch completes many acks at once: write them all in one flush.
                    while let Some((id, response)) = self.acks.as_mut().and_then(|a| a.ready()) {
                        self.respond(id, response);
                    }
                }
                event = link_event(&self.link, &mut self.out), if open => match event {
                    LinkEvent::Replaced => {
                        self.begin_close(GoAwayReason::Replaced, "logged in on another connection");
                    }
                    LinkEvent::SignedOut => {
                        self.begin_close(GoAwayReason::LoggedOut, "this device was signed out");
                    }
                    LinkEvent::Frames { drained } => self.after_pushes(drained),
                },
                item = self.framed.next(), if can_read => match item {
                    None => break,
                    // Boxed: a request's future is large and would otherwise be part of
                    // every idle connection's task.
                    Some(Ok(body)) => Box::pin(self.on_frame(body)).await,
                    Some(Err(e)) => {
                        self.on_stream_error(e);
                    }
                },
                _ = &mut timer, if open => {
                    busy = false;
                    let now = Instant::now();
                    if let Some(reason) = self.sm.handle_timeout(now.into_std()) {
                        self.begin_close(reason, "no frame within the heartbeat timeout");
                    } else {
                        sleep = sleep_at.is_some_and(|at| now >= at);
                    }
                }
            }
            if busy {
                self.active_at = Instant::now();
            }
            if sleep {
                match self.sleep() {
                    Sleep::Asleep => return,
                    Sleep::Awake(awake) => {
                        self = awake;
                        self.active_at = Instant::now();
                        continue;
                    }
                    Sleep::Lost(lost, e) => {
                        self = lost;
                        tracing::debug!(error = %e, "socket lost on the way to sleep");
                        break;
                    }
                }
            }
            let finished = self.closing.is_some() && self.inflight() == 0;
            if finished {
                if let Some((reason, message)) = self.closing.take() {
                    self.push(Push::GoAway {
                        reason,
                        message: message.to_owned(),
                    });
                }
            }
            // Boxed (allocated only when there is output): the write future would otherwise
            // be part of every idle connection's task.
            let written = if self.out.is_empty() {
                Ok(Ok(()))
            } else {
                Box::pin(tokio::time::timeout(write_timeout, self.flush())).await
            };
            match written {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "write failed");
                    break;
                }
                Err(_) => {
                    tracing::info!(id = %self.session_id, "peer not reading; closing");
                    break;
                }
            }
            if finished {
                break;
            }
        }
        self.finish().await;
    }

    /// Puts the session to sleep in the lot, if it can sleep now.
    fn sleep(mut self: Box<Self>) -> Sleep<S> {
        let Some(link) = self.link.clone() else {
            return Sleep::Awake(self);
        };
        if !self.out.is_empty() || !self.framed.is_drained() {
            return Sleep::Awake(self);
        }
        let fd = match self.framed.get_mut().detach() {
            None => return Sleep::Awake(self),
            Some(Ok(fd)) => fd,
            Some(Err(e)) => return Sleep::Lost(self, e),
        };
        self.acks = None;
        let deadline = Instant::from_std(self.sm.poll_timeout());
        let lot = self.env.lot.clone();
        match lot.park(self, fd, &link, deadline) {
            Ok(()) => Sleep::Asleep,
            Err(mut awake) => match awake.framed.get_mut().attach() {
                Ok(()) => Sleep::Awake(awake),
                Err(e) => Sleep::Lost(awake, e),
            },
        }
    }

    /// Runs a woken session again: its socket rejoins this runtime's reactor first.
    async fn resume(mut self: Box<Self>) {
        if let Err(e) = self.framed.get_mut().attach() {
            tracing::debug!(error = %e, "socket lost while asleep");
            self.finish().await;
            return;
        }
        self.active_at = Instant::now();
        self.run().await;
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let stream = self.framed.get_mut();
        stream.write_all(&self.out).await?;
        stream.flush().await?;
        // Nothing is kept for an idle connection; the next turn allocates what it needs.
        self.out = Vec::new();
        Ok(())
    }

    async fn finish(mut self: Box<Self>) {
        // Not `self.sm.identity()`: a closing session no longer has one, and every GoAway path
        // closes first. The link remembers whose it is.
        if let Some(link) = &self.link {
            self.service.close_link(link);
        }
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            let _ = self.flush().await;
            let _ = self.framed.get_mut().shutdown().await;
        })
        .await;
        tracing::debug!("connection closed");
    }

    fn begin_close(&mut self, reason: GoAwayReason, message: &'static str) {
        if self.closing.is_none() {
            tracing::debug!(?reason, "closing");
            self.sm.close();
            self.closing = Some((reason, message));
        }
    }

    fn write_frame(&mut self, frame: &[u8]) {
        self.out.extend_from_slice(frame);
    }

    fn respond(&mut self, id: RequestId, response: Response) {
        let bytes = ServerFrame::Response(id, response).encode();
        self.write_frame(&bytes);
    }

    fn push(&mut self, push: Push) {
        let bytes = ServerFrame::Push(push).encode();
        self.write_frame(&bytes);
    }

    fn error(&mut self, request_id: u64, error: ErrorInfo) {
        let bytes = ServerFrame::error(request_id, error).encode();
        self.write_frame(&bytes);
    }

    /// After queued pushes were moved to `out`: once the queue is empty, a session that
    /// overflowed it is told to sync (only then does the sync cover everything dropped).
    fn after_pushes(&mut self, drained: bool) {
        if drained && self.link.as_ref().is_some_and(|l| l.take_lagging()) {
            tracing::debug!("push queue overflowed; asking the client to sync");
            self.push(Push::SyncNeeded);
        }
    }

    fn on_stream_error(&mut self, e: DecodeError) {
        if let DecodeError::Io(e) = &e {
            tracing::debug!(error = %e, "read failed");
        } else {
            tracing::info!(id = %self.session_id, error = %e, "fatal frame error");
            let mut info = ErrorInfo::new(e.code(), e.to_string());
            info.fatal = true;
            self.error(0, info);
        }
        // The byte stream cannot be resynchronised: finish pending acks, then close.
        self.begin_close(GoAwayReason::ProtocolError, "fatal frame error");
    }

    async fn on_frame(&mut self, body: Bytes) {
        let now = Instant::now().into_std();
        self.sm.on_frame_received(now);
        match ClientFrame::decode(body) {
            Ok(frame) => {
                let admitted = self
                    .sm
                    .rate_limit(now)
                    .and_then(|()| self.sm.admit(&frame.request));
                if let Err(rejection) = admitted {
                    self.respond(frame.request_id, Response::Error(rejection.0));
                    return;
                }
                if self
                    .acks
                    .as_ref()
                    .is_some_and(|a| a.holds(frame.request_id))
                {
                    // Answered under id 0 (docs/protocol.md, section 3): the outstanding request
                    // keeps its id and gets its own answer; this one is not run.
                    tracing::debug!(id = frame.request_id.get(), "request id reused");
                    self.error(
                        0,
                        ErrorInfo::new(
                            parley_protocol::ErrorCode::BadRequestId,
                            format!(
                                "request id {} is still outstanding; the request was not run",
                                frame.request_id.get()
                            ),
                        ),
                    );
                    return;
                }
                self.handle(frame.request_id, frame.request).await;
            }
            Err(rejected) => {
                tracing::debug!(error = %rejected, "bad frame");
                let close = self.sm.on_bad_frame();
                let mut info = ErrorInfo::new(rejected.error.code(), rejected.error.to_string());
                info.fatal = close;
                self.error(rejected.request_id, info);
                if close {
                    self.begin_close(GoAwayReason::ProtocolError, "too many bad frames");
                }
            }
        }
    }
}

impl<S: SessionStream> park::Sleeper for Driver<S> {
    fn wake(
        self: Box<Self>,
        tracker: &tokio_util::task::TaskTracker,
        runtime: &tokio::runtime::Handle,
    ) {
        let span = self.span();
        tracker.spawn_on(self.resume().instrument(span), runtime);
    }
}

/// Size of the task future of a session on `S` (its memory while awake), for the transports'
/// size tests.
#[doc(hidden)]
pub fn session_future_size<S: SessionStream>() -> usize {
    fn size<A, B, C, D, Fut>(_f: fn(A, B, C, D) -> Fut) -> usize {
        std::mem::size_of::<Fut>()
    }
    size::<Service, S, ConnInfo, Env, _>(run::<S>)
}

/// Size of the driver of a session on `S` (its memory while asleep), for the transports' size
/// tests.
#[doc(hidden)]
pub fn sleeping_driver_size<S: SessionStream>() -> usize {
    std::mem::size_of::<Driver<S>>()
}
