//! The session driver: one task per connection, the same for every transport. It reads frames,
//! admits them through the sans-IO `ServerSession`, runs requests against the core, writes
//! responses and queued pushes, and enforces heartbeat, backpressure and graceful close.
//!
//! Backpressure: at most `max_inflight_sends` sends may await their durable ack; beyond that the
//! driver stops reading, so a client can only slow itself down. Pushes arrive on the bounded
//! queue of the session's [`Link`]; when the fan-out found it full, the session is told to sync
//! once the queue has drained.

mod handler;
mod reader;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use parley_protocol::frames::{ClientFrame, ErrorInfo, GoAwayReason, Push, Response, ServerFrame};
use parley_protocol::ids::RequestId;
use parley_protocol::session::{HeartbeatConfig, ServerSession};
use parley_protocol::{DecodeError, FrameCodec, DEFAULT_MAX_FRAME};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::core::Core;
use crate::hub::{Link, LinkEvent};
use reader::FrameReader;

/// Where a connection comes from, for logs.
#[derive(Clone, Copy, Debug)]
pub struct ConnInfo {
    /// "tls", "tcp" or "quic".
    pub transport: &'static str,
    /// Remote address.
    pub peer: SocketAddr,
}

type AckFuture = Pin<Box<dyn Future<Output = (RequestId, Response)> + Send>>;

/// How long a final flush (GoAway, close_notify) may take before the connection is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Pushes written per wake-up before other work gets a turn.
const PUSH_BURST: usize = 64;

/// Runs one connection to its end. Errors stay here and are logged in the connection's span.
pub async fn run<R, W>(
    core: Arc<Core>,
    reader: R,
    writer: W,
    info: ConnInfo,
    shutdown: CancellationToken,
) where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let session_id = core.next_session_id();
    // Debug level: with the default `info` filter the span is disabled and costs nothing (an
    // enabled span keeps a few hundred bytes per connection in the subscriber). Info-level
    // events of a connection carry its id themselves.
    let span = tracing::debug_span!(
        "conn",
        id = session_id,
        peer = %info.peer,
        transport = info.transport,
        user = tracing::field::Empty,
    );
    let cfg = &core.config().heartbeat;
    let heartbeat = HeartbeatConfig {
        interval: cfg.interval,
        timeout: cfg.timeout,
        login_timeout: cfg.login_timeout,
        requests_per_second: core.config().limits.requests_per_second,
        ..HeartbeatConfig::default()
    };
    let driver = Driver {
        sm: ServerSession::new(Instant::now().into_std(), heartbeat),
        framed: FrameReader::new(reader, FrameCodec::new(DEFAULT_MAX_FRAME)),
        writer,
        out: Vec::new(),
        session_id,
        link: None,
        acks: FuturesUnordered::new(),
        closing: None,
        core,
    };
    driver.run(shutdown).instrument(span).await;
}

struct Driver<R, W> {
    core: Arc<Core>,
    sm: ServerSession,
    framed: FrameReader<R>,
    writer: W,
    /// Bytes to write at the end of this turn (allocated only while there is output).
    out: Vec<u8>,
    session_id: u64,
    link: Option<Arc<Link>>,
    acks: FuturesUnordered<AckFuture>,
    closing: Option<(GoAwayReason, String)>,
}

/// Pushes for this session (appended to `out`), or news that it was replaced.
async fn link_event(link: &Option<Arc<Link>>, out: &mut Vec<u8>) -> LinkEvent {
    match link {
        Some(l) => l.next_event(out, PUSH_BURST).await,
        None => std::future::pending().await,
    }
}

impl<R, W> Driver<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    async fn run(mut self, shutdown: CancellationToken) {
        let max_inflight = self.core.config().limits.max_inflight_sends as usize;
        let write_timeout = self.core.config().heartbeat.timeout;
        loop {
            let deadline = Instant::from_std(self.sm.poll_timeout());
            let open = self.closing.is_none();
            let can_read = open && self.acks.len() < max_inflight;
            // Every arm is cancel-safe: `FrameReader::next`, `Link::next_event`,
            // `FuturesUnordered::next` and the timers lose nothing when another arm wins.
            tokio::select! {
                _ = shutdown.cancelled(), if open => {
                    self.begin_close(GoAwayReason::Shutdown, "server shutting down");
                }
                Some((id, response)) = self.acks.next(), if !self.acks.is_empty() => {
                    self.respond(id, response);
                    // A commit batch completes many acks at once: write them all in one flush.
                    while let Some(Some((id, response))) = self.acks.next().now_or_never() {
                        self.respond(id, response);
                    }
                }
                event = link_event(&self.link, &mut self.out), if open => match event {
                    LinkEvent::Replaced => {
                        self.begin_close(GoAwayReason::Replaced, "logged in on another connection");
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
                _ = tokio::time::sleep_until(deadline), if open => {
                    if let Some(reason) = self.sm.handle_timeout(Instant::now().into_std()) {
                        self.begin_close(reason, "no frame within the heartbeat timeout");
                    }
                }
            }
            let finished = self.closing.is_some() && self.acks.is_empty();
            if finished {
                if let Some((reason, message)) = self.closing.take() {
                    self.push(Push::GoAway { reason, message });
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
                    tracing::info!(id = self.session_id, "peer not reading; closing");
                    break;
                }
            }
            if finished {
                break;
            }
        }
        Box::pin(self.finish()).await;
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.writer.write_all(&self.out).await?;
        self.writer.flush().await?;
        // Nothing is kept for an idle connection; the next turn allocates what it needs.
        self.out = Vec::new();
        Ok(())
    }

    async fn finish(mut self) {
        // Not `self.sm.identity()`: a closing session no longer has one, and every GoAway path
        // closes first. The link remembers whose it is.
        if let Some(link) = &self.link {
            self.core.hub().unregister(link.user, link.session_id);
        }
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            let _ = self.flush().await;
            let _ = self.writer.shutdown().await;
        })
        .await;
        tracing::debug!("connection closed");
    }

    fn begin_close(&mut self, reason: GoAwayReason, message: &str) {
        if self.closing.is_none() {
            tracing::debug!(?reason, "closing");
            self.sm.close();
            self.closing = Some((reason, message.to_owned()));
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
            tracing::info!(id = self.session_id, error = %e, "fatal frame error");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn future_size<A, B, C, D, E, Fut>(_f: fn(A, B, C, D, E) -> Fut) -> usize {
        std::mem::size_of::<Fut>()
    }

    /// Every idle connection's task holds this future, so its size is part of the idle
    /// memory figure (1,464 bytes on rustc 1.95 for plain TCP). Request handling, writes and
    /// the close are boxed to keep it small; this fails if something large lands inline again.
    #[test]
    fn idle_session_future_stays_small() {
        type R = tokio::net::tcp::OwnedReadHalf;
        type W = tokio::net::tcp::OwnedWriteHalf;
        let n = future_size::<Arc<Core>, R, W, ConnInfo, CancellationToken, _>(run);
        assert!(n <= 1600, "session future is {n} bytes");
    }
}
