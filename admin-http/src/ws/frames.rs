//! [`WsFrames`]: a WebSocket seen as the binary protocol's byte stream.
//!
//! Reading: each WebSocket message becomes one length-prefixed frame (its protobuf bytes as
//! they are, or its JSON converted to protobuf). Writing: the session driver's output is cut at
//! frame boundaries and each frame goes out as one WebSocket message, in the connection's
//! encoding. Nothing is buffered between messages: a message being read is held until the
//! driver has taken it, a frame being written until it is queued on the socket.
//!
//! What the driver cannot see (text that is not a JSON frame, a message of the other encoding,
//! a message over the WebSocket layer's size limit, invalid UTF-8) is fatal: the adapter queues
//! an `Error` frame (`fatal: true`) to go out before anything else, fails the read so the driver
//! closes the session (its `GoAway`), and closes the WebSocket with a code that names the
//! problem. Everything else (a binary message that is not a valid `Frame`, a request the
//! session refuses) is the driver's to answer, exactly as on TCP.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use futures::{Sink, Stream};
use parley_protocol::frames::{ErrorInfo, ServerFrame};
use parley_protocol::{json, ErrorCode, LEN_PREFIX};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::FRAGMENT;

/// How a connection's frames are encoded in its WebSocket messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Binary messages holding the protobuf `Frame`.
    Binary,
    /// Text messages holding the `Frame` in the canonical proto3 JSON mapping.
    Json,
}

/// A frame on its way to the socket, possibly in several WebSocket frames.
#[derive(Debug)]
struct Outgoing {
    payload: Bytes,
    /// Bytes of `payload` already queued.
    sent: usize,
    opcode: Data,
}

/// A WebSocket as a byte stream in the binary protocol's framing.
#[derive(Debug)]
pub struct WsFrames<S> {
    ws: WebSocketStream<S>,
    encoding: Option<Encoding>,
    /// Largest binary message accepted (the frame limit).
    max_binary: usize,
    /// Length prefix of the frame being read, and how much of it was handed out.
    head: [u8; LEN_PREFIX],
    head_at: usize,
    /// The rest of the frame being read.
    body: Bytes,
    /// No more reads: the peer closed, or a fatal error ended the session.
    read_done: bool,
    /// Driver output that does not make a whole frame yet (unallocated between frames).
    partial: BytesMut,
    outgoing: Option<Outgoing>,
    /// A fatal error frame (protobuf body) to send before anything else.
    error: Option<Bytes>,
    /// The close code for the end of the connection.
    close: CloseCode,
    closing: bool,
}

impl<S> WsFrames<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Wraps an accepted WebSocket. `encoding: None` lets the first message decide.
    pub fn new(ws: WebSocketStream<S>, encoding: Option<Encoding>, max_frame: usize) -> Self {
        WsFrames {
            ws,
            encoding,
            max_binary: max_frame,
            head: [0; LEN_PREFIX],
            head_at: LEN_PREFIX,
            body: Bytes::new(),
            read_done: false,
            partial: BytesMut::new(),
            outgoing: None,
            error: None,
            close: CloseCode::Normal,
            closing: false,
        }
    }

    /// The encoding in force (`None` until the first message if none was asked for).
    pub fn encoding(&self) -> Option<Encoding> {
        self.encoding
    }

    /// Takes one incoming message; `Err` if it ends the session.
    fn accept(&mut self, message: Message) -> io::Result<()> {
        let encoding = match &message {
            Message::Binary(_) => Encoding::Binary,
            Message::Text(_) => Encoding::Json,
            // Pings are answered by the WebSocket layer; they carry no `Frame` for the driver.
            _ => return Ok(()),
        };
        match self.encoding {
            None => self.encoding = Some(encoding),
            Some(e) if e != encoding => {
                let msg = format!("this connection speaks {e:?}; send every frame that way");
                return Err(self.fail(0, ErrorCode::BadFrame, msg, CloseCode::Unsupported));
            }
            Some(_) => {}
        }
        let body = match message {
            Message::Text(t) => match json::json_to_frame(t.as_str()) {
                Ok(body) => body,
                Err(e) => {
                    let id = json::request_id_hint(t.as_str());
                    let msg = e.to_string();
                    return Err(self.fail(id, ErrorCode::BadFrame, msg, CloseCode::Invalid));
                }
            },
            Message::Binary(b) if b.len() > self.max_binary => {
                let msg = format!(
                    "message of {} bytes exceeds the frame limit of {} bytes",
                    b.len(),
                    self.max_binary
                );
                return Err(self.fail(0, ErrorCode::FrameTooLarge, msg, CloseCode::Size));
            }
            Message::Binary(b) => b,
            _ => return Ok(()),
        };
        self.head = (body.len() as u32).to_be_bytes();
        self.head_at = 0;
        self.body = body;
        Ok(())
    }

    /// Ends the session for a fatal error: the error frame is queued to go out first, and the
    /// read fails so the driver closes.
    fn fail(
        &mut self,
        request_id: u64,
        code: ErrorCode,
        message: String,
        close: CloseCode,
    ) -> io::Error {
        tracing::debug!(?code, %message, "fatal WebSocket message");
        let mut info = ErrorInfo::new(code, message.clone());
        info.fatal = true;
        let frame = ServerFrame::error(request_id, info).encode();
        self.error = Some(frame.slice(LEN_PREFIX..));
        self.close = close;
        self.read_done = true;
        io::Error::new(io::ErrorKind::InvalidData, message)
    }

    /// Maps an error of the WebSocket layer on the read side.
    fn read_error(&mut self, e: WsError) -> io::Result<()> {
        match e {
            WsError::ConnectionClosed | WsError::AlreadyClosed => {
                self.read_done = true;
                Ok(())
            }
            WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
                let msg = format!("message of {size} bytes exceeds the limit of {max_size} bytes");
                Err(self.fail(0, ErrorCode::FrameTooLarge, msg, CloseCode::Size))
            }
            WsError::Utf8(_) => {
                let msg = "text message is not valid UTF-8".to_owned();
                Err(self.fail(0, ErrorCode::BadFrame, msg, CloseCode::Invalid))
            }
            WsError::Protocol(p) => {
                let msg = format!("WebSocket protocol violation: {p}");
                Err(self.fail(0, ErrorCode::BadFrame, msg, CloseCode::Protocol))
            }
            WsError::Io(e) => {
                self.read_done = true;
                Err(e)
            }
            other => {
                self.read_done = true;
                Err(io::Error::other(other))
            }
        }
    }

    /// Renders one frame body (protobuf) as a message payload in the connection's encoding.
    fn render(&self, body: Bytes) -> io::Result<(Bytes, Data)> {
        match self.encoding.unwrap_or(Encoding::Binary) {
            Encoding::Binary => Ok((body, Data::Binary)),
            Encoding::Json => {
                let text = json::frame_to_json(&body).map_err(io::Error::other)?;
                Ok((Bytes::from(text), Data::Text))
            }
        }
    }

    /// Queues what is waiting to go out (the error frame first), one WebSocket frame of at
    /// most [`FRAGMENT`] bytes per call to the sink.
    fn poll_send_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.outgoing.is_none() {
                let Some(error) = self.error.take() else {
                    return Poll::Ready(Ok(()));
                };
                let (payload, opcode) = self.render(error)?;
                self.outgoing = Some(Outgoing {
                    payload,
                    sent: 0,
                    opcode,
                });
            }
            ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(ws_io)?;
            let Some(out) = self.outgoing.as_mut() else {
                continue;
            };
            let end = (out.sent + FRAGMENT).min(out.payload.len());
            let opcode = if out.sent == 0 {
                out.opcode
            } else {
                Data::Continue
            };
            let last = end == out.payload.len();
            let frame =
                Frame::message(out.payload.slice(out.sent..end), OpCode::Data(opcode), last);
            out.sent = end;
            if last {
                self.outgoing = None;
            }
            Pin::new(&mut self.ws)
                .start_send(Message::Frame(frame))
                .map_err(ws_io)?;
        }
    }
}

fn ws_io(e: WsError) -> io::Error {
    match e {
        WsError::Io(e) => e,
        WsError::ConnectionClosed | WsError::AlreadyClosed => {
            io::Error::new(io::ErrorKind::BrokenPipe, "WebSocket closed")
        }
        other => io::Error::other(other),
    }
}

impl<S> AsyncRead for WsFrames<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.head_at < LEN_PREFIX {
                let n = (LEN_PREFIX - this.head_at).min(buf.remaining());
                buf.put_slice(&this.head[this.head_at..this.head_at + n]);
                this.head_at += n;
                return Poll::Ready(Ok(()));
            }
            if !this.body.is_empty() {
                let n = this.body.len().min(buf.remaining());
                buf.put_slice(&this.body[..n]);
                this.body.advance(n);
                if this.body.is_empty() {
                    this.body = Bytes::new();
                }
                return Poll::Ready(Ok(()));
            }
            if this.read_done {
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.ws).poll_next(cx)) {
                None => this.read_done = true,
                Some(Ok(Message::Close(_))) => this.read_done = true,
                Some(Ok(message)) => this.accept(message)?,
                Some(Err(e)) => this.read_error(e)?,
            }
        }
    }
}

impl<S> AsyncWrite for WsFrames<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_send_pending(cx))?;
        // Take bytes up to the end of the frame they belong to (the prefix first).
        let want = if this.partial.len() < LEN_PREFIX {
            LEN_PREFIX - this.partial.len()
        } else {
            let len = u32::from_be_bytes([
                this.partial[0],
                this.partial[1],
                this.partial[2],
                this.partial[3],
            ]) as usize;
            LEN_PREFIX + len - this.partial.len()
        };
        let n = want.min(buf.len());
        this.partial.extend_from_slice(&buf[..n]);
        if this.partial.len() >= LEN_PREFIX {
            let len = u32::from_be_bytes([
                this.partial[0],
                this.partial[1],
                this.partial[2],
                this.partial[3],
            ]) as usize;
            if this.partial.len() == LEN_PREFIX + len {
                let frame = std::mem::take(&mut this.partial).freeze();
                let (payload, opcode) = this.render(frame.slice(LEN_PREFIX..))?;
                this.outgoing = Some(Outgoing {
                    payload,
                    sent: 0,
                    opcode,
                });
                // Accepted either way; a full socket is waited for on the next call.
                if let Poll::Ready(Err(e)) = this.poll_send_pending(cx) {
                    return Poll::Ready(Err(e));
                }
            }
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_pending(cx))?;
        Pin::new(&mut this.ws).poll_flush(cx).map_err(ws_io)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_pending(cx))?;
        if !this.closing {
            ready!(Pin::new(&mut this.ws).poll_ready(cx)).map_err(ws_io)?;
            let reason = match this.close {
                CloseCode::Normal => "session ended",
                CloseCode::Size => "message too large",
                CloseCode::Invalid => "invalid message",
                CloseCode::Unsupported => "wrong encoding",
                _ => "protocol error",
            };
            this.closing = true;
            let close = CloseFrame {
                code: this.close,
                reason: reason.into(),
            };
            // Already closed by the peer: nothing more to say.
            if let Err(e) = Pin::new(&mut this.ws).start_send(Message::Close(Some(close))) {
                return Poll::Ready(match e {
                    WsError::ConnectionClosed | WsError::AlreadyClosed => Ok(()),
                    other => Err(ws_io(other)),
                });
            }
        }
        Pin::new(&mut this.ws).poll_close(cx).map_err(ws_io)
    }
}
