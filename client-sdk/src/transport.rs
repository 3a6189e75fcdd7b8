//! Opening a byte stream to the server over TLS-TCP, QUIC (one bidirectional stream) or plain
//! TCP. Everything above this module sees only boxed read and write halves.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
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
            Transport::Tls => Kind::Tls(TlsConnector::from(Arc::new(tls::client_config(
                &config.trust,
            )?))),
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
                let conn = endpoint
                    .connect_with(config.clone(), addr, &self.server_name.to_str())
                    .map_err(|e| ClientError::connect(addr, e))?
                    .await
                    .map_err(|e| ClientError::connect(addr, e))?;
                // The server only learns of the stream when the first frame (the login) is
                // written on it, which the caller does next.
                let (send, recv) = conn
                    .open_bi()
                    .await
                    .map_err(|e| ClientError::connect(addr, e))?;
                Ok(Stream {
                    read: Box::new(recv),
                    write: Box::new(send),
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
