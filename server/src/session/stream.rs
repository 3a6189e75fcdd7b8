//! What the driver needs of a connection's byte stream. Transports implement it.

use std::io;
use std::os::fd::RawFd;

use tokio::io::{AsyncRead, AsyncWrite};

/// A connection's byte stream as the session driver sees it.
pub trait SessionStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Takes the socket out of the runtime's reactor and returns the descriptor to watch.
    /// `None` if the stream cannot sleep: it still holds bytes of its own to send, or its
    /// transport keeps the connection elsewhere (QUIC's lives in quinn's endpoint). Call only
    /// after a read returned `Pending`, so nothing readable is buffered above the socket.
    fn detach(&mut self) -> Option<io::Result<RawFd>>;

    /// Registers the socket with the current runtime's reactor again.
    fn attach(&mut self) -> io::Result<()>;
}
