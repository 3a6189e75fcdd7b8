//! A minimal raw-protocol client over plain TCP, TLS or QUIC, for tests that need to send exact
//! (including malformed) bytes and see exact frames.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use parley_client::Transport;
use parley_protocol::frames::{ClientFrame, Request, Response, ServerFrame};
use parley_protocol::ids::RequestId;
use parley_protocol::FrameCodec;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{TestServer, WAIT};

pub struct Raw {
    read: Box<dyn AsyncRead + Send + Unpin>,
    write: Box<dyn AsyncWrite + Send + Unpin>,
    buf: BytesMut,
    codec: FrameCodec,
    _quic: Option<(quinn::Endpoint, quinn::Connection)>,
}

fn roots(cert: &Path) -> rustls::RootCertStore {
    let pem = std::fs::read(cert).expect("read cert");
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(c.expect("pem")).expect("add root");
    }
    roots
}

fn tls_config(cert: &Path) -> rustls::ClientConfig {
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots(cert))
    .with_no_client_auth();
    cfg.alpn_protocols = vec![parley_protocol::ALPN.to_vec()];
    cfg
}

impl Raw {
    /// Plain TCP.
    pub async fn connect(addr: SocketAddr) -> Raw {
        let (r, w) = TcpStream::connect(addr)
            .await
            .expect("connect")
            .into_split();
        Self::from_parts(Box::new(r), Box::new(w), None)
    }

    /// The transport under test, trusting the server's certificate.
    pub async fn connect_to(server: &TestServer, transport: Transport) -> Raw {
        let addr = server.addr(transport);
        match transport {
            Transport::PlainTcp => Self::connect(addr).await,
            Transport::Tls => {
                let connector =
                    tokio_rustls::TlsConnector::from(Arc::new(tls_config(&server.cert)));
                let tcp = TcpStream::connect(addr).await.expect("connect");
                let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
                let tls = connector.connect(name, tcp).await.expect("TLS handshake");
                let (r, w) = tokio::io::split(tls);
                Self::from_parts(Box::new(r), Box::new(w), None)
            }
            Transport::Quic => {
                let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr"))
                    .expect("endpoint");
                let mut tls = tls_config(&server.cert);
                tls.alpn_protocols = vec![parley_protocol::ALPN.to_vec()];
                let crypto =
                    quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("quic tls");
                endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
                let conn = endpoint
                    .connect(addr, "localhost")
                    .expect("connect")
                    .await
                    .expect("QUIC handshake");
                let (send, recv) = conn.open_bi().await.expect("stream");
                Self::from_parts(Box::new(recv), Box::new(send), Some((endpoint, conn)))
            }
        }
    }

    fn from_parts(
        read: Box<dyn AsyncRead + Send + Unpin>,
        write: Box<dyn AsyncWrite + Send + Unpin>,
        quic: Option<(quinn::Endpoint, quinn::Connection)>,
    ) -> Raw {
        Raw {
            read,
            write,
            buf: BytesMut::new(),
            codec: FrameCodec::new(16 << 20),
            _quic: quic,
        }
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.write.write_all(bytes).await.expect("write");
        self.write.flush().await.expect("flush");
    }

    pub async fn send(&mut self, id: u64, request: Request) {
        let frame = ClientFrame {
            request_id: RequestId::try_from(id).expect("non-zero id"),
            request,
        };
        self.send_bytes(&frame.encode()).await;
    }

    /// The next frame, or `None` at EOF (or a reset connection).
    pub async fn recv(&mut self) -> Option<ServerFrame> {
        loop {
            if let Some(body) = self.codec.decode(&mut self.buf).expect("valid frame") {
                return Some(ServerFrame::decode(body).expect("valid server frame"));
            }
            let n = tokio::time::timeout(WAIT, self.read.read_buf(&mut self.buf))
                .await
                .expect("frame in time");
            match n {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The response to request `id`, skipping pushes.
    pub async fn response(&mut self, id: u64) -> Response {
        loop {
            match self.recv().await {
                Some(ServerFrame::Response(rid, r)) if rid.get() == id => return r,
                Some(_) => continue,
                None => panic!("connection closed before response {id}"),
            }
        }
    }
}
