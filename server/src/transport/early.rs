//! Early data (0-RTT): which requests may run before the handshake is confirmed.
//!
//! A client resuming a TLS 1.3 or QUIC session may send requests in its first flight, before
//! the handshake completes. Those bytes can be replayed: anyone who recorded the flight can send
//! it again (within the ticket's lifetime, and for QUIC and TLS alike), and the server cannot
//! tell the copy from the original until the handshake completes, which only the real client
//! can do. So, until then, the transport hands the session only complete frames whose requests
//! are safe to run twice, and holds the rest (and everything after it) until the handshake is
//! confirmed. A connection that never confirms never runs them. The rule is in
//! docs/protocol.md, "Early data (0-RTT)".
//!
//! Safe here means: a replay changes nothing and tells the attacker nothing. A token login reads
//! only the token's record and writes nothing; a sync reads; a ping echoes. Their answers are
//! encrypted with keys derived from the client's key share, which a replaying attacker does not
//! hold, so it cannot read them. Every other request (a send, a password login, which costs a
//! hash and counts against the throttle, a refresh, which issues tokens) may change state and is
//! held.

use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use parley_protocol::frames::{ClientFrame, Credential, Request};
use parley_protocol::{DEFAULT_MAX_FRAME, LEN_PREFIX};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::stream::SessionStream;

/// Whether `request` may run from early data (see the module docs).
pub fn replay_safe(request: &Request) -> bool {
    matches!(
        request,
        Request::Login {
            credential: Credential::AccessToken(_),
            ..
        } | Request::Sync(_)
            | Request::Ping { .. }
    )
}

/// What [`scan`] found at the front of some bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Scan {
    /// Length of the complete, replay-safe frames at the front.
    pub safe: usize,
    /// A complete frame follows that is not safe (or not valid): hold it and what follows.
    pub held: bool,
}

/// Splits `bytes` into the replay-safe frames at its front and what must wait. An incomplete
/// frame at the end is neither: more bytes will tell.
pub fn scan(bytes: &[u8]) -> Scan {
    let mut at = 0;
    loop {
        let rest = &bytes[at..];
        if rest.len() < LEN_PREFIX {
            return Scan {
                safe: at,
                held: false,
            };
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len > DEFAULT_MAX_FRAME {
            // The session will refuse it; it does so after the handshake.
            return Scan {
                safe: at,
                held: true,
            };
        }
        let Some(body) = rest.get(LEN_PREFIX..LEN_PREFIX + len) else {
            return Scan {
                safe: at,
                held: false,
            };
        };
        match ClientFrame::decode(Bytes::copy_from_slice(body)) {
            Ok(frame) if replay_safe(&frame.request) => at += LEN_PREFIX + len,
            _ => {
                return Scan {
                    safe: at,
                    held: true,
                }
            }
        }
    }
}

/// A stream whose first bytes may be early data, until `confirmed` resolves (`true`: the
/// handshake completed; `false`: it failed). Used for QUIC, where one stream carries both early
/// and later bytes; TLS over TCP applies [`scan`] inside its own record layer.
pub struct Gated<S, C> {
    inner: S,
    /// Present until the handshake is confirmed and what was held has been read.
    early: Option<Box<Held<C>>>,
}

struct Held<C> {
    confirmed: C,
    /// Resolved: `Some(true)` once confirmed, `Some(false)` if the handshake failed.
    outcome: Option<bool>,
    /// Bytes read from the stream, not yet handed to the session, from `at` on.
    buf: Vec<u8>,
    at: usize,
    /// End of what may be handed on now.
    released: usize,
    /// A frame that must wait is complete in `buf`: read nothing more before confirmation.
    held: bool,
    /// The stream ended before confirmation.
    eof: bool,
}

/// Bytes read per call while gated.
const READ_CHUNK: usize = 4 * 1024;

impl<S, C> Gated<S, C> {
    /// Gates `inner` until `confirmed` resolves.
    pub fn new(inner: S, confirmed: C) -> Self {
        Gated {
            inner,
            early: Some(Box::new(Held {
                confirmed,
                outcome: None,
                buf: Vec::new(),
                at: 0,
                released: 0,
                held: false,
                eof: false,
            })),
        }
    }
}

impl<S: std::fmt::Debug, C> std::fmt::Debug for Gated<S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gated")
            .field("inner", &self.inner)
            .field("early", &self.early.is_some())
            .finish()
    }
}

impl<S, C> AsyncRead for Gated<S, C>
where
    S: AsyncRead + Unpin,
    C: Future<Output = bool> + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(h) = this.early.as_mut() else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        loop {
            if h.outcome.is_none() {
                if let Poll::Ready(ok) = Pin::new(&mut h.confirmed).poll(cx) {
                    h.outcome = Some(ok);
                    if ok {
                        h.released = h.buf.len();
                    }
                }
            }
            if h.at < h.released {
                let n = buf.remaining().min(h.released - h.at);
                buf.put_slice(&h.buf[h.at..h.at + n]);
                h.at += n;
                if h.at == h.buf.len() && h.outcome == Some(true) {
                    this.early = None;
                }
                return Poll::Ready(Ok(()));
            }
            match h.outcome {
                Some(true) => {
                    this.early = None;
                    return Pin::new(&mut this.inner).poll_read(cx, buf);
                }
                // Never confirmed: what was held never runs.
                Some(false) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "handshake not completed",
                    )))
                }
                None => {}
            }
            if h.held || h.eof {
                // `confirmed` was polled above: its completion wakes this task.
                return Poll::Pending;
            }
            let mut chunk = [0u8; READ_CHUNK];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                h.eof = true;
                continue;
            }
            h.buf.extend_from_slice(read.filled());
            let found = scan(&h.buf[h.released..]);
            h.released += found.safe;
            h.held = found.held;
        }
    }
}

impl<S: AsyncWrite + Unpin, C: Unpin> AsyncWrite for Gated<S, C> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S, C> SessionStream for Gated<S, C>
where
    S: SessionStream,
    C: Future<Output = bool> + Unpin + Send + 'static,
{
    fn detach(&mut self) -> Option<io::Result<RawFd>> {
        if self.early.is_some() {
            return None;
        }
        self.inner.detach()
    }

    fn attach(&mut self) -> io::Result<()> {
        self.inner.attach()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_protocol::frames::{ContentType, Device, Platform, SendRequest, SyncRequest};
    use parley_protocol::ids::{ClientMsgId, ConversationId, DeviceId, RequestId, Seq};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn frame(id: u64, request: Request) -> Bytes {
        ClientFrame {
            request_id: RequestId::try_from(id).unwrap(),
            request,
        }
        .encode()
    }

    fn device() -> Device {
        Device {
            id: DeviceId::try_from("phone").unwrap(),
            platform: Platform::Android,
        }
    }

    fn token_login() -> Request {
        Request::Login {
            credential: Credential::AccessToken("t".repeat(40)),
            device: device(),
        }
    }

    fn send() -> Request {
        Request::Send(SendRequest {
            conversation: ConversationId::try_from(1).unwrap(),
            content_type: ContentType::Text,
            content: Bytes::from_static(b"hi"),
            client_msg_id: ClientMsgId::try_from("m1").unwrap(),
            reply_to: Seq::ZERO,
            mentions: Vec::new(),
            mention_all: false,
        })
    }

    #[test]
    fn only_replay_safe_requests_pass() {
        assert!(replay_safe(&token_login()));
        assert!(replay_safe(&Request::Sync(SyncRequest::default())));
        assert!(replay_safe(&Request::Ping { client_time_ms: 1 }));
        assert!(!replay_safe(&send()));
        assert!(!replay_safe(&Request::Logout));
        let password = Request::Login {
            credential: Credential::Password {
                account: parley_protocol::ids::Account::try_from("alice").unwrap(),
                password: parley_protocol::values::Password::try_from("secret-123").unwrap(),
            },
            device: device(),
        };
        assert!(!replay_safe(&password), "a password login costs a hash");
    }

    #[test]
    fn scan_stops_at_the_first_frame_that_must_wait() {
        let login = frame(1, token_login());
        let ping = frame(2, Request::Ping { client_time_ms: 5 });
        let send = frame(3, send());
        let mut all = [login.clone(), ping.clone(), send.clone()].concat();
        all.extend_from_slice(&frame(4, Request::Ping { client_time_ms: 6 }));
        let safe = login.len() + ping.len();
        assert_eq!(
            scan(&all),
            Scan { safe, held: true },
            "the ping after the send waits too"
        );
        // Incomplete frames are neither safe nor held.
        assert_eq!(
            scan(&all[..login.len() + 3]),
            Scan {
                safe: login.len(),
                held: false
            }
        );
        assert_eq!(scan(&all[..safe + 5]), Scan { safe, held: false });
        // Garbage and oversized frames wait for the session to refuse them.
        assert!(scan(&[0, 0, 0, 2, 0xff, 0xff]).held);
        assert!(scan(&[0xff, 0, 0, 0]).held);
    }

    #[tokio::test]
    async fn held_bytes_wait_for_confirmation_and_then_arrive_in_order() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let (confirm, confirmed) = tokio::sync::oneshot::channel::<()>();
        let confirmed = Box::pin(async move { confirmed.await.is_ok() });
        let mut gated = Gated::new(server, confirmed);
        let login = frame(1, token_login());
        let send = frame(2, send());
        client
            .write_all(&[login.clone(), send.clone()].concat())
            .await
            .unwrap();

        let mut got = vec![0u8; login.len()];
        gated.read_exact(&mut got).await.unwrap();
        assert_eq!(got, login, "the login passes before confirmation");
        let mut one = [0u8; 1];
        let early = futures_poll_once(gated.read(&mut one)).await;
        assert!(early.is_none(), "the send is held before confirmation");

        confirm.send(()).unwrap();
        let mut got = vec![0u8; send.len()];
        gated.read_exact(&mut got).await.unwrap();
        assert_eq!(got, send);
        // Afterwards bytes flow straight through.
        client.write_all(b"later").await.unwrap();
        let mut later = [0u8; 5];
        gated.read_exact(&mut later).await.unwrap();
        assert_eq!(&later, b"later");
        assert!(gated.early.is_none(), "the gate is gone once confirmed");
    }

    #[tokio::test]
    async fn a_handshake_that_never_completes_never_releases_what_was_held() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let (fail, confirmed) = tokio::sync::oneshot::channel::<()>();
        let confirmed = Box::pin(async move { confirmed.await.is_ok() });
        let mut gated = Gated::new(server, confirmed);
        let login = frame(1, token_login());
        client
            .write_all(&[login.clone(), frame(2, send())].concat())
            .await
            .unwrap();
        drop(client);
        let mut got = vec![0u8; login.len()];
        gated.read_exact(&mut got).await.unwrap();
        drop(fail);
        let mut rest = Vec::new();
        let e = gated.read_to_end(&mut rest).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted);
        assert!(rest.is_empty(), "the send never reached the session");
    }

    /// Polls `f` once: `Some` if it was ready.
    async fn futures_poll_once<F: Future>(f: F) -> Option<F::Output> {
        let mut f = std::pin::pin!(f);
        std::future::poll_fn(|cx| match f.as_mut().poll(cx) {
            Poll::Ready(v) => Poll::Ready(Some(v)),
            Poll::Pending => Poll::Ready(None),
        })
        .await
    }
}
