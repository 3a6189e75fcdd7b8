//! The session driver: one task per connection, the same for every transport. It reads frames,
//! admits them through the sans-IO `ServerSession`, runs requests against the core, writes
//! responses and queued pushes, and enforces heartbeat, backpressure and graceful close.
//!
//! Backpressure: at most `max_inflight_sends` sends may await their durable ack; beyond that the
//! driver stops reading, so a client can only slow itself down. Pushes arrive on the bounded
//! queue of the session's [`Link`]; when the fan-out found it full, the session is told to sync
//! once the queue has drained.

mod handler;

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
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::core::Core;
use crate::hub::Link;

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
    let span = tracing::info_span!(
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
        framed: FramedRead::with_capacity(reader, FrameCodec::new(DEFAULT_MAX_FRAME), 0),
        writer,
        out: Vec::new(),
        session_id,
        link: None,
        pushes: None,
        acks: FuturesUnordered::new(),
        closing: None,
        core,
    };
    driver.run(shutdown).instrument(span).await;
}

struct Driver<R, W> {
    core: Arc<Core>,
    sm: ServerSession,
    framed: FramedRead<R, FrameCodec>,
    writer: W,
    /// Bytes to write at the end of this turn (allocated only while there is output).
    out: Vec<u8>,
    session_id: u64,
    link: Option<Arc<Link>>,
    pushes: Option<mpsc::Receiver<Bytes>>,
    acks: FuturesUnordered<AckFuture>,
    closing: Option<(GoAwayReason, String)>,
}

async fn next_push(rx: &mut Option<mpsc::Receiver<Bytes>>) -> Option<Bytes> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn replaced(link: &Option<Arc<Link>>) {
    match link {
        Some(l) => l.replaced.cancelled().await,
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
            // Every arm is cancel-safe: `FramedRead::next`, `mpsc::recv`, `FuturesUnordered::next`
            // and the timers lose nothing when another arm wins.
            tokio::select! {
                _ = shutdown.cancelled(), if open => {
                    self.begin_close(GoAwayReason::Shutdown, "server shutting down");
                }
                _ = replaced(&self.link), if open => {
                    self.begin_close(GoAwayReason::Replaced, "logged in on another connection");
                }
                Some((id, response)) = self.acks.next(), if !self.acks.is_empty() => {
                    self.respond(id, response);
                    // A commit batch completes many acks at once: write them all in one flush.
                    while let Some(Some((id, response))) = self.acks.next().now_or_never() {
                        self.respond(id, response);
                    }
                }
                Some(frame) = next_push(&mut self.pushes), if open => {
                    self.write_pushes(frame);
                }
                item = self.framed.next(), if can_read => match item {
                    None => break,
                    Some(Ok(body)) => self.on_frame(body).await,
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
            match tokio::time::timeout(write_timeout, self.flush()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "write failed");
                    break;
                }
                Err(_) => {
                    tracing::info!("peer not reading; closing");
                    break;
                }
            }
            if finished {
                break;
            }
        }
        self.finish().await;
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.writer.write_all(&self.out).await?;
        self.writer.flush().await?;
        self.out.clear();
        if self.out.capacity() > 64 * 1024 {
            self.out = Vec::new();
        }
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

    fn write_pushes(&mut self, first: Bytes) {
        self.write_frame(&first);
        let mut drained = false;
        if let Some(rx) = &mut self.pushes {
            for _ in 1..PUSH_BURST {
                match rx.try_recv() {
                    Ok(frame) => self.out.extend_from_slice(&frame),
                    Err(_) => break,
                }
            }
            drained = rx.is_empty();
        }
        // Only once the queue is empty does a sync cover everything the fan-out dropped.
        if drained && self.link.as_ref().is_some_and(|l| l.take_lagging()) {
            tracing::debug!("push queue overflowed; asking the client to sync");
            self.push(Push::SyncNeeded);
        }
    }

    fn on_stream_error(&mut self, e: DecodeError) {
        if let DecodeError::Io(e) = &e {
            tracing::debug!(error = %e, "read failed");
        } else {
            tracing::info!(error = %e, "fatal frame error");
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
