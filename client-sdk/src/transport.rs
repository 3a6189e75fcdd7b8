//! Opening a byte stream to the server over TLS-TCP, QUIC (one bidirectional stream) or plain
//! TCP. Everything above this module sees only boxed read and write halves.
//!
//! Returning devices use 0-RTT when the server offers it (`tls.early_data_tickets` on the
//! server): the first thing written on a resumed connection, the token login, leaves in the
//! first flight. If the server refuses the early data (it restarted and lost its tickets), the
//! same bytes are sent again once the handshake completes, so the caller never sees the
//! difference: tokio-rustls does this for TLS, [`ZeroRttQuic`] for QUIC. The server runs only
//! replay-safe requests from early data (docs/protocol.md, "Early data (0-RTT)").

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::{ClientConfig, Transport};
use crate::error::ClientError;
use crate::tls;

/// The read half of a connection.
pub(crate) type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
/// The write half of a connection.
pub(crate) type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// QUIC keep-alive: well below quinn's default 30 s idle timeout, independently of the session
/// heartbeat (which the server may set longer).
const QUIC_KEEP_ALIVE: Duration = Duration::from_secs(10);

/// An open connection.
pub(crate) struct Stream {
    pub(crate) read: BoxRead,
    pub(crate) write: BoxWrite,
    /// The QUIC connection, kept to close it with a code instead of letting it time out.
    pub(crate) quic: Option<quinn::Connection>,
}

/// Dials the configured server; holds what can be prepared once (TLS config, QUIC endpoint).
pub(crate) struct Connector {
    addr: SocketAddr,
    server_name: ServerName<'static>,
    timeout: Duration,
    kind: Kind,
}

enum Kind {
    Tls(TlsConnector),
    Quic {
        endpoint: quinn::Endpoint,
        config: quinn::ClientConfig,
    },
    PlainTcp,
}

impl Connector {
    /// Validates the configuration and prepares the transport. Must run inside a tokio runtime
    /// (the QUIC endpoint spawns its driver).
    pub(crate) fn new(config: &ClientConfig) -> Result<Self, ClientError> {
        let server_name = ServerName::try_from(config.server_name.clone()).map_err(|e| {
            ClientError::Config(format!("bad server name {:?}: {e}", config.server_name))
        })?;
        let kind = match config.transport {
            Transport::Tls => Kind::Tls(
                TlsConnector::from(Arc::new(tls::client_config(&config.trust)?)).early_data(true),
            ),
            Transport::Quic => {
                let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls::client_config(
                    &config.trust,
                )?)
                .map_err(|e| ClientError::Config(format!("QUIC TLS setup: {e}")))?;
                let mut transport = quinn::TransportConfig::default();
                transport.keep_alive_interval(Some(QUIC_KEEP_ALIVE));
                let mut quic = quinn::ClientConfig::new(Arc::new(crypto));
                quic.transport_config(Arc::new(transport));
                let bind: SocketAddr = if config.addr.is_ipv6() {
                    (Ipv6Addr::UNSPECIFIED, 0).into()
                } else {
                    (Ipv4Addr::UNSPECIFIED, 0).into()
                };
                let endpoint = quinn::Endpoint::client(bind)
                    .map_err(|e| ClientError::connect(config.addr, e))?;
                Kind::Quic {
                    endpoint,
                    config: quic,
                }
            }
            Transport::PlainTcp => Kind::PlainTcp,
        };
        Ok(Self {
            addr: config.addr,
            server_name,
            timeout: config.request_timeout,
            kind,
        })
    }

    /// Opens one connection, handshakes included, within the request timeout.
    pub(crate) async fn connect(&self) -> Result<Stream, ClientError> {
        tokio::time::timeout(self.timeout, self.dial())
            .await
            .map_err(|_| ClientError::connect(self.addr, "timed out"))?
    }

    async fn dial(&self) -> Result<Stream, ClientError> {
        let addr = self.addr;
        match &self.kind {
            Kind::Tls(connector) => {
                let tcp = tcp(addr).await?;
                let tls = connector
                    .connect(self.server_name.clone(), tcp)
                    .await
                    .map_err(|e| ClientError::connect(addr, e))?;
                let (read, write) = tokio::io::split(tls);
                Ok(Stream {
                    read: Box::new(read),
                    write: Box::new(write),
                    quic: None,
                })
            }
            Kind::Quic { endpoint, config } => {
                let connecting = endpoint
                    .connect_with(config.clone(), addr, &self.server_name.to_str())
                    .map_err(|e| ClientError::connect(addr, e))?;
                // With a ticket that allows it, go on before the handshake completes: what the
                // caller writes first (the login) rides in 0-RTT.
                let (conn, accepted) = match connecting.into_0rtt() {
                    Ok((conn, accepted)) => (conn, Some(accepted)),
                    Err(connecting) => (
                        connecting
                            .await
                            .map_err(|e| ClientError::connect(addr, e))?,
                        None,
                    ),
                };
                // The server only learns of the stream when the first frame (the login) is
                // written on it, which the caller does next.
                let (send, recv) = conn
                    .open_bi()
                    .await
                    .map_err(|e| ClientError::connect(addr, e))?;
                let (read, write): (BoxRead, BoxWrite) = match accepted {
                    Some(accepted) => {
                        let (r, w) =
                            tokio::io::split(ZeroRttQuic::new(conn.clone(), send, recv, accepted));
                        (Box::new(r), Box::new(w))
                    }
                    None => (Box::new(recv), Box::new(send)),
                };
                Ok(Stream {
                    read,
                    write,
                    quic: Some(conn),
                })
            }
            Kind::PlainTcp => {
                let (read, write) = tcp(addr).await?.into_split();
                Ok(Stream {
                    read: Box::new(read),
                    write: Box::new(write),
                    quic: None,
                })
            }
        }
    }

    /// The QUIC endpoint, for [`Client::rebind`](crate::Client::rebind); `None` on TCP and TLS.
    pub(crate) fn quic_endpoint(&self) -> Option<quinn::Endpoint> {
        match &self.kind {
            Kind::Quic { endpoint, .. } => Some(endpoint.clone()),
            _ => None,
        }
    }

    /// Lets the QUIC endpoint tell the server goodbye before the process moves on.
    pub(crate) async fn shutdown(&self, timeout: Duration) {
        if let Kind::Quic { endpoint, .. } = &self.kind {
            endpoint.close(0u32.into(), b"client closed");
            let _ = tokio::time::timeout(timeout, endpoint.wait_idle()).await;
        }
    }
}

async fn tcp(addr: SocketAddr) -> Result<TcpStream, ClientError> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| ClientError::connect(addr, e))?;
    // Frames are small and latency matters more than packet count.
    tcp.set_nodelay(true)
        .map_err(|e| ClientError::connect(addr, e))?;
    Ok(tcp)
}

/// Moves a QUIC endpoint to a new UDP socket on an ephemeral port of the same address family,
/// as a phone does when it changes networks. Its connections migrate (RFC 9000 section 9): the
/// server sees packets from the new address and keeps the connection. Returns the new local
/// address.
pub(crate) fn rebind(endpoint: &quinn::Endpoint) -> io::Result<SocketAddr> {
    let bind: SocketAddr = if endpoint.local_addr()?.is_ipv6() {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    };
    endpoint.rebind(std::net::UdpSocket::bind(bind)?)?;
    endpoint.local_addr()
}

type OpenBi =
    Pin<Box<dyn Future<Output = Result<(quinn::SendStream, quinn::RecvStream), io::Error>> + Send>>;

/// A QUIC stream opened in 0-RTT. Until the handshake completes, what is written is kept; if
/// the server refused the early data (quinn then discards the stream), a new stream is opened
/// and the kept bytes are written on it first, as tokio-rustls does for TLS.
struct ZeroRttQuic {
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    /// `None` once the early data is settled.
    early: Option<Box<Early>>,
}

enum Early {
    /// Handshake in progress; what was written so far.
    Waiting {
        accepted: quinn::ZeroRttAccepted,
        written: Vec<u8>,
    },
    /// Refused: opening a stream to write `written` again.
    Reopening { open: OpenBi, written: Vec<u8> },
    /// Writing `written[at..]` on the new stream.
    Resending { written: Vec<u8>, at: usize },
}

impl ZeroRttQuic {
    fn new(
        conn: quinn::Connection,
        send: quinn::SendStream,
        recv: quinn::RecvStream,
        accepted: quinn::ZeroRttAccepted,
    ) -> Self {
        ZeroRttQuic {
            conn,
            send,
            recv,
            early: Some(Box::new(Early::Waiting {
                accepted,
                written: Vec::new(),
            })),
        }
    }

    /// The handshake completed (`accepted`: the server took the early data) or failed. Called
    /// once: `ZeroRttAccepted` must not be polled again.
    fn settled(&mut self, accepted: bool) {
        let Some(early) = self.early.as_mut() else {
            return;
        };
        let Early::Waiting { written, .. } = &mut **early else {
            return;
        };
        if accepted {
            self.early = None;
            return;
        }
        let written = std::mem::take(written);
        let conn = self.conn.clone();
        let open: OpenBi = Box::pin(async move { conn.open_bi().await.map_err(io::Error::from) });
        **early = Early::Reopening { open, written };
    }

    /// Drives the early data to settled: accepted, or refused and written again.
    fn poll_settle(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let Some(early) = self.early.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            match &mut **early {
                Early::Waiting { accepted, .. } => {
                    let ok = ready!(Pin::new(accepted).poll(cx));
                    self.settled(ok);
                }
                Early::Reopening { open, written } => {
                    let opened = ready!(open.as_mut().poll(cx));
                    let (send, recv) = match opened {
                        Ok(pair) => pair,
                        Err(e) => {
                            // The connection is gone: so are the streams, which say so from
                            // now on. (`open` must not be polled again.)
                            self.early = None;
                            return Poll::Ready(Err(e));
                        }
                    };
                    self.send = send;
                    self.recv = recv;
                    **early = Early::Resending {
                        written: std::mem::take(written),
                        at: 0,
                    };
                }
                Early::Resending { written, at } => {
                    while *at < written.len() {
                        let n = ready!(Pin::new(&mut self.send).poll_write(cx, &written[*at..]))?;
                        *at += n;
                    }
                    self.early = None;
                }
            }
        }
    }
}

impl AsyncRead for ZeroRttQuic {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Nothing can be read before the handshake completes anyway.
        ready!(this.poll_settle(cx))?;
        Pin::new(&mut this.recv).poll_read(cx, buf)
    }
}

impl AsyncWrite for ZeroRttQuic {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(early) = this.early.as_mut() {
            if let Early::Waiting { accepted, written } = &mut **early {
                match Pin::new(accepted).poll(cx) {
                    Poll::Pending => {
                        // Still in 0-RTT: send now, keep a copy in case it is refused. A write
                        // that fails here fails because the handshake just settled, which
                        // wakes this task through `accepted`.
                        return match Pin::new(&mut this.send).poll_write(cx, buf) {
                            Poll::Ready(Ok(n)) => {
                                written.extend_from_slice(&buf[..n]);
                                Poll::Ready(Ok(n))
                            }
                            _ => Poll::Pending,
                        };
                    }
                    Poll::Ready(ok) => this.settled(ok),
                }
            }
            ready!(this.poll_settle(cx))?;
        }
        Pin::new(&mut this.send)
            .poll_write(cx, buf)
            .map_err(io::Error::from)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_settle(cx))?;
        Pin::new(&mut this.send).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_settle(cx))?;
        Pin::new(&mut this.send).poll_shutdown(cx)
    }
}
