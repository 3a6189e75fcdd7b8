//! The WebSocket fallback as a transport: the HTTP side-service does the upgrade and hands over
//! a byte stream in the binary protocol's framing (`parley_admin_http::ws::WsFrames`, through
//! `Backend::serve_stream`); here it becomes a session like any TCP connection's, under the same
//! connection limit, shutdown and task tracker.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use parley_admin_http::FrameStream;
use parley_protocol::frames::{ErrorInfo, ServerFrame};
use parley_protocol::ErrorCode;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::Shared;
use crate::session::{self, ConnInfo, SessionStream, TransportKind};

/// A WebSocket's frame stream. It never sleeps in the parking lot: the upgraded socket lives
/// behind hyper's type-erased I/O, so there is no descriptor to watch, and the WebSocket layer
/// may hold bytes of its own (a queued pong, a partial frame).
pub struct WsStream(Box<dyn FrameStream>);

impl std::fmt::Debug for WsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WsStream")
    }
}

impl SessionStream for WsStream {
    fn detach(&mut self) -> Option<io::Result<RawFd>> {
        None
    }

    fn attach(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsyncRead for WsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for WsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_shutdown(cx)
    }
}

/// Runs a WebSocket's session in a tracked task. Refused (closed at once) when the server is
/// shutting down or at `limits.max_connections`: unlike a TCP listener, the HTTP side has
/// already accepted the connection, so it cannot wait for a permit.
pub fn serve_ws(shared: &Shared, stream: Box<dyn FrameStream>, peer: SocketAddr) {
    let mut stream = WsStream(stream);
    let permit = if shared.shutdown.is_cancelled() {
        None
    } else {
        shared.permits.clone().try_acquire_owned().ok()
    };
    let Some(permit) = permit else {
        tracing::debug!(%peer, "WebSocket refused: shutting down or at the connection limit");
        let (code, message) = if shared.shutdown.is_cancelled() {
            (ErrorCode::ShuttingDown, "server shutting down")
        } else {
            (
                ErrorCode::RateLimited,
                "too many connections; try again later",
            )
        };
        let mut info = ErrorInfo::new(code, message);
        info.fatal = true;
        let frame = ServerFrame::error(0, info).encode();
        shared.tracker.spawn(async move {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
                stream.write_all(&frame).await?;
                stream.shutdown().await
            })
            .await;
        });
        return;
    };
    let info = ConnInfo {
        transport: TransportKind::WebSocket,
        peer,
    };
    let env = shared.env(permit);
    shared
        .tracker
        .spawn(session::run(shared.service.clone(), stream, info, env));
}
