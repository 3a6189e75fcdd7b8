//! One connection: framed reads, buffered writes, request ids and the heartbeat schedule (from
//! the protocol crate's `ClientSession`), and the login exchange.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use parley_protocol::frames::{
    ClientFrame, GoAwayReason, LoginResult, Push, Request, Response, SendAck, ServerFrame,
};
use parley_protocol::ids::RequestId;
use parley_protocol::session::{ClientEvent, ClientSession};
use parley_protocol::FrameCodec;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::sync::oneshot;
use tokio_util::codec::FramedRead;

use crate::error::ClientError;
use crate::transport::{BoxRead, BoxWrite, Stream};

/// Largest frame the client accepts from the server (sync pages can be large).
pub(crate) const MAX_FRAME: usize = 16 * 1024 * 1024;

/// The time now, from tokio's clock (pausable in tests).
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Who is waiting for the response to a request.
#[derive(Debug)]
pub(crate) enum Pending {
    /// A caller of a handle method.
    Caller(oneshot::Sender<Result<Response, ClientError>>),
    /// A caller of `logout`: on success the client stops for good.
    Logout(oneshot::Sender<Result<Response, ClientError>>),
    /// An entry of the outbox.
    Send(u64),
    /// A page of the running sync round.
    Sync,
    /// A heartbeat.
    Ping,
    /// The login exchange.
    Login,
}

/// The answer to a request made on behalf of a caller.
pub(crate) fn reply(tx: oneshot::Sender<Result<Response, ClientError>>, r: Response) {
    let result = match r {
        Response::Error(e) => Err(ClientError::Server(e)),
        other => Ok(other),
    };
    // The caller may have given up (timeout, dropped future); nothing to do then.
    let _ = tx.send(result);
}

/// What a received frame is, once matched.
pub(crate) enum Incoming {
    Response(Pending, Response),
    Push(Push),
    /// A frame that needs no action (a response to no outstanding request).
    Nothing,
}

pub(crate) struct Link {
    reader: FramedRead<BoxRead, FrameCodec>,
    writer: BufWriter<BoxWrite>,
    quic: Option<quinn::Connection>,
    pub(crate) session: ClientSession<Pending>,
    write_timeout: Duration,
    dirty: bool,
    /// The server announced it is closing (`GoAway`): start nothing new on this connection.
    pub(crate) going_away: Option<GoAwayReason>,
}

impl Link {
    pub(crate) fn new(stream: Stream, write_timeout: Duration) -> Self {
        Self {
            reader: FramedRead::new(stream.read, FrameCodec::new(MAX_FRAME)),
            writer: BufWriter::new(stream.write),
            quic: stream.quic,
            session: ClientSession::new(now()),
            write_timeout,
            dirty: false,
            going_away: None,
        }
    }

    /// Sends a request (buffered until [`Link::flush`]).
    pub(crate) async fn request(
        &mut self,
        request: Request,
        tag: Pending,
    ) -> Result<RequestId, ClientError> {
        let request_id = self.session.start_request(now(), tag);
        self.write(ClientFrame {
            request_id,
            request,
        })
        .await?;
        Ok(request_id)
    }

    async fn write(&mut self, frame: ClientFrame) -> Result<(), ClientError> {
        let bytes: Bytes = frame.encode();
        // Not cancel-safe, so never a select! arm; the timeout keeps a server that stopped
        // reading from wedging the connection task (the heartbeat could not fire meanwhile).
        tokio::time::timeout(self.write_timeout, self.writer.write_all(&bytes))
            .await
            .map_err(|_| ClientError::Timeout)?
            .map_err(|_| ClientError::Disconnected)?;
        self.dirty = true;
        Ok(())
    }

    /// Pushes buffered frames to the transport.
    pub(crate) async fn flush(&mut self) -> Result<(), ClientError> {
        if self.dirty {
            tokio::time::timeout(self.write_timeout, self.writer.flush())
                .await
                .map_err(|_| ClientError::Timeout)?
                .map_err(|_| ClientError::Disconnected)?;
            self.dirty = false;
        }
        Ok(())
    }

    /// The next frame from the server, matched to its request. `Err` means the connection is
    /// unusable (closed, broken, or the server sent bytes that are not a valid frame).
    ///
    /// Cancel-safe: `FramedRead` keeps partial frames in its buffer.
    pub(crate) async fn next(&mut self) -> Result<Incoming, String> {
        let body = match self.reader.next().await {
            Some(Ok(body)) => body,
            Some(Err(e)) => return Err(format!("read failed: {e}")),
            None => return Err("connection closed by the server".into()),
        };
        let frame =
            ServerFrame::decode(body).map_err(|e| format!("undecodable frame from server: {e}"))?;
        match self.session.handle_frame(now(), frame) {
            Ok(ClientEvent::Response(tag, r)) => Ok(Incoming::Response(tag, r)),
            Ok(ClientEvent::Push(p)) => Ok(Incoming::Push(p)),
            Err(e) => {
                tracing::warn!("ignoring frame from server: {e}");
                Ok(Incoming::Nothing)
            }
        }
    }

    /// Logs in with `request` (Register, Login or Refresh) and adopts the announced heartbeat.
    pub(crate) async fn login(
        &mut self,
        request: Request,
        timeout: Duration,
    ) -> Result<LoginResult, ClientError> {
        tokio::time::timeout(timeout, self.login_exchange(request))
            .await
            .map_err(|_| ClientError::Timeout)?
    }

    async fn login_exchange(&mut self, request: Request) -> Result<LoginResult, ClientError> {
        self.request(request, Pending::Login).await?;
        self.flush().await?;
        loop {
            match self.next().await.map_err(|e| {
                tracing::debug!("login failed: {e}");
                ClientError::Disconnected
            })? {
                Incoming::Response(Pending::Login, Response::Login(login)) => {
                    self.session.on_login(&login);
                    return Ok(login);
                }
                Incoming::Response(Pending::Login, Response::Error(e)) => {
                    return Err(ClientError::Server(e))
                }
                Incoming::Response(_, r) => {
                    return Err(ClientError::Protocol(format!(
                        "unexpected answer to login: {r:?}"
                    )))
                }
                Incoming::Push(Push::GoAway { message, .. }) => {
                    tracing::debug!("server going away during login: {message}");
                }
                Incoming::Push(_) | Incoming::Nothing => {}
            }
        }
    }

    /// Closes the connection gracefully (TLS close_notify, TCP FIN, QUIC close). Best effort.
    pub(crate) async fn close(mut self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, async {
            let _ = self.writer.flush().await;
            let _ = self.writer.shutdown().await;
        })
        .await;
        if let Some(conn) = self.quic.take() {
            conn.close(0u32.into(), b"client closed");
        }
    }
}

/// Checks that a response to a send is an ack.
pub(crate) fn expect_ack(r: Response) -> Result<SendAck, ClientError> {
    match r {
        Response::SendAck(ack) => Ok(ack),
        Response::Error(e) => Err(ClientError::Server(e)),
        other => Err(ClientError::Protocol(format!(
            "expected a send ack, got {other:?}"
        ))),
    }
}
