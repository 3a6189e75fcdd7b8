//! The byte streams sessions run on, one object per connection for reads and writes, and how a
//! sleeping session's socket leaves the runtime's reactor (see `session::park`).

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub use crate::session::SessionStream;

/// A TCP socket that can sleep outside the reactor.
#[derive(Debug)]
pub enum Socket {
    /// Registered with the runtime.
    Live(tokio::net::TcpStream),
    /// Out of the reactor while its session sleeps (still non-blocking).
    Asleep(std::net::TcpStream),
    /// A failed transition left no socket.
    Gone,
}

fn not_live() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "socket is not registered")
}

impl SessionStream for Socket {
    fn detach(&mut self) -> Option<io::Result<RawFd>> {
        Some(match std::mem::replace(self, Socket::Gone) {
            Socket::Live(s) => s.into_std().map(|s| {
                let fd = s.as_raw_fd();
                *self = Socket::Asleep(s);
                fd
            }),
            other => {
                *self = other;
                Err(not_live())
            }
        })
    }

    fn attach(&mut self) -> io::Result<()> {
        match std::mem::replace(self, Socket::Gone) {
            Socket::Asleep(s) => {
                *self = Socket::Live(tokio::net::TcpStream::from_std(s)?);
                Ok(())
            }
            Socket::Live(s) => {
                *self = Socket::Live(s);
                Ok(())
            }
            Socket::Gone => Err(not_live()),
        }
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Live(s) => Pin::new(s).poll_read(cx, buf),
            _ => Poll::Ready(Err(not_live())),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Socket::Live(s) => Pin::new(s).poll_write(cx, buf),
            _ => Poll::Ready(Err(not_live())),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Socket::Live(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            _ => Poll::Ready(Err(not_live())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        matches!(self, Socket::Live(s) if s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Live(s) => Pin::new(s).poll_flush(cx),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Live(s) => Pin::new(s).poll_shutdown(cx),
            _ => Poll::Ready(Ok(())),
        }
    }
}

/// A QUIC stream pair as one object. It never sleeps: the connection's state and timers live
/// in quinn's endpoint and its driver task, whatever the session does.
#[derive(Debug)]
pub struct Duplex {
    /// Receiving half.
    pub recv: quinn::RecvStream,
    /// Sending half.
    pub send: quinn::SendStream,
}

impl SessionStream for Duplex {
    fn detach(&mut self) -> Option<io::Result<RawFd>> {
        None
    }

    fn attach(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsyncRead for Duplex {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().recv).poll_read(cx, buf)
    }
}

impl AsyncWrite for Duplex {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        AsyncWrite::poll_write(Pin::new(&mut self.get_mut().send), cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_flush(Pin::new(&mut self.get_mut().send), cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_shutdown(Pin::new(&mut self.get_mut().send), cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_socket_sleeps_and_wakes_without_losing_bytes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(tokio::net::TcpStream::connect(addr), async {
            listener.accept().await.unwrap().0
        });
        let mut client = client.unwrap();
        let mut socket = Socket::Live(accepted);
        let fd = socket.detach().unwrap().unwrap();
        assert!(fd >= 0);
        assert!(matches!(socket, Socket::Asleep(_)));
        // Reads and writes on a sleeping socket fail instead of blocking or panicking.
        let mut buf = [0u8; 4];
        assert!(socket.read(&mut buf).await.is_err());
        // Bytes sent while it sleeps wait in the kernel.
        client.write_all(b"ping").await.unwrap();
        socket.attach().unwrap();
        socket.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        socket.write_all(b"pong").await.unwrap();
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
        // Attaching a live socket is a no-op.
        socket.attach().unwrap();
        assert!(matches!(socket, Socket::Live(_)));
    }
}
