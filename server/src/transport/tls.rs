//! TLS over a [`Socket`] with rustls' unbuffered API.
//!
//! rustls' buffered connection (what tokio-rustls wraps) keeps a 4 KiB receive buffer for the
//! whole life of a connection, plus buffered plaintext and ciphertext queues: for an idle TLS
//! session that was more than half of its memory. Here the buffers belong to the stream and are
//! allocated only while bytes are in them: received ciphertext until its records are complete,
//! decrypted plaintext until the session has read it, encrypted output until it is written. An
//! idle connection keeps rustls' state and keys, nothing else.
//!
//! The state machine is rustls' own (`process_tls_records`); this module only moves bytes
//! between it, the socket and the session.
//!
//! Early data (0-RTT, only with `tls.early_data_tickets > 0`): the server then answers from
//! the end of its handshake flight (0.5-RTT), so [`TlsSocket::accept`] returns before the
//! client's Finished arrives. Until it does, the session may read only the replay-safe frames
//! at the front of the early data (`early::scan`); the rest waits for the handshake to
//! complete, and is never read if it does not.

use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::early;
use super::stream::{SessionStream, Socket};

/// Bytes read from the socket per call (on the stack, then appended to `incoming`).
const READ_CHUNK: usize = 16 * 1024;
/// Encrypted output kept before a write waits for the socket.
const OUT_HIGH_WATER: usize = 64 * 1024;

/// A server-side TLS connection over a TCP socket.
pub struct TlsSocket {
    socket: Socket,
    conn: UnbufferedServerConnection,
    /// Received bytes whose records are not complete yet (empty and unallocated otherwise).
    incoming: Vec<u8>,
    /// Decrypted bytes not yet read by the session, from `plain_at` on.
    plain: Vec<u8>,
    /// Encrypted bytes not yet written to the socket, from `out_at` on.
    outgoing: Vec<u8>,
    // Offsets as u32 (buffers stay far below 4 GiB): this struct is most of a sleeping TLS
    // session's memory, and every 8 bytes can cross an allocation size class.
    plain_at: u32,
    out_at: u32,
    /// While the handshake is not complete: end of the plaintext the session may read (the
    /// replay-safe early frames). Unused afterwards.
    released: u32,
    /// The peer sent close_notify: reads see the end of the stream.
    peer_closed: bool,
    /// The socket reached end of stream.
    eof: bool,
    /// close_notify is queued or sent.
    closing: bool,
}

impl std::fmt::Debug for TlsSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSocket")
            .field("socket", &self.socket)
            .field("incoming", &self.incoming.len())
            .field("plain", &self.unread().len())
            .field("outgoing", &self.unsent().len())
            .finish_non_exhaustive()
    }
}

/// What the connection needs next, after processing what it has.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// More bytes from the peer (the handshake is not done).
    Read,
    /// Application data can flow.
    Traffic,
    /// Both sides have closed.
    Closed,
}

/// Something to encrypt once application data may flow.
enum Emit<'a> {
    Nothing,
    Data(&'a [u8]),
    CloseNotify,
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Runs `f` on a buffer grown until what it writes fits, then keeps what it wrote.
fn append<E>(
    out: &mut Vec<u8>,
    mut f: impl FnMut(&mut [u8]) -> Result<usize, E>,
    required: impl Fn(&E) -> Option<usize>,
) -> Result<(), E> {
    let start = out.len();
    loop {
        match f(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(e) => match required(&e) {
                Some(size) if size > out.len() - start => out.resize(start + size, 0),
                _ => {
                    out.truncate(start);
                    return Err(e);
                }
            },
        }
    }
}

impl TlsSocket {
    /// A connection on `socket` before its handshake.
    fn new(socket: Socket, config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        Ok(TlsSocket {
            socket,
            conn: UnbufferedServerConnection::new(config).map_err(tls_error)?,
            incoming: Vec::new(),
            plain: Vec::new(),
            plain_at: 0,
            released: 0,
            outgoing: Vec::new(),
            out_at: 0,
            peer_closed: false,
            eof: false,
            closing: false,
        })
    }

    /// Completes the server side of a handshake on `socket`.
    pub async fn accept(socket: Socket, config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let mut tls = TlsSocket::new(socket, config)?;
        loop {
            let next = tls.advance(Emit::Nothing)?;
            std::future::poll_fn(|cx| tls.poll_write_out(cx)).await?;
            match next {
                Next::Traffic => return Ok(tls),
                Next::Closed => return Err(io::ErrorKind::ConnectionAborted.into()),
                Next::Read => {
                    if std::future::poll_fn(|cx| tls.poll_fill(cx)).await? == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                }
            }
        }
    }

    /// Feeds what has been received to rustls until it needs more or application data may
    /// flow; plaintext goes to `plain`, records to send to `outgoing`, and `emit` is encrypted
    /// as soon as that is allowed.
    fn advance(&mut self, mut emit: Emit<'_>) -> io::Result<Next> {
        let TlsSocket {
            conn,
            incoming,
            plain,
            outgoing,
            peer_closed,
            ..
        } = self;
        loop {
            let UnbufferedStatus { mut discard, state } = conn.process_tls_records(incoming);
            let next = match state.map_err(tls_error)? {
                ConnectionState::ReadTraffic(mut records) => {
                    while let Some(record) = records.next_record() {
                        let record = record.map_err(tls_error)?;
                        discard += record.discard;
                        plain.extend_from_slice(record.payload);
                    }
                    None
                }
                // rustls offers it only when the configuration accepts early data; what the
                // session may read of it is decided in `readable`.
                ConnectionState::ReadEarlyData(mut records) => {
                    while let Some(record) = records.next_record() {
                        plain.extend_from_slice(record.map_err(tls_error)?.payload);
                    }
                    None
                }
                ConnectionState::EncodeTlsData(mut record) => {
                    append(
                        outgoing,
                        |buf| record.encode(buf),
                        |e| match e {
                            EncodeError::InsufficientSize(s) => Some(s.required_size),
                            _ => None,
                        },
                    )
                    .map_err(io::Error::other)?;
                    None
                }
                // Queued in `outgoing` in order, and written before anything after it.
                ConnectionState::TransmitTlsData(sent) => {
                    sent.done();
                    None
                }
                ConnectionState::BlockedHandshake => Some(Next::Read),
                ConnectionState::PeerClosed => {
                    *peer_closed = true;
                    None
                }
                ConnectionState::Closed => {
                    *peer_closed = true;
                    Some(Next::Closed)
                }
                ConnectionState::WriteTraffic(mut traffic) => {
                    let sizing = |e: &EncryptError| match e {
                        EncryptError::InsufficientSize(s) => Some(s.required_size),
                        _ => None,
                    };
                    match std::mem::replace(&mut emit, Emit::Nothing) {
                        Emit::Nothing => {}
                        Emit::Data(data) => {
                            append(outgoing, |buf| traffic.encrypt(data, buf), sizing)
                                .map_err(io::Error::other)?;
                        }
                        Emit::CloseNotify => {
                            append(outgoing, |buf| traffic.queue_close_notify(buf), sizing)
                                .map_err(io::Error::other)?;
                        }
                    }
                    Some(Next::Traffic)
                }
                _ => {
                    return Err(io::Error::other("unknown TLS connection state"));
                }
            };
            incoming.drain(..discard);
            if incoming.is_empty() {
                *incoming = Vec::new();
            }
            if let Some(next) = next {
                return Ok(next);
            }
        }
    }

    /// Reads what the socket has into `incoming`; the count, 0 at end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut chunk = [std::mem::MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut buf = ReadBuf::uninit(&mut chunk);
        ready!(Pin::new(&mut self.socket).poll_read(cx, &mut buf))?;
        let filled = buf.filled();
        if filled.is_empty() {
            self.eof = true;
        }
        self.incoming.extend_from_slice(filled);
        Poll::Ready(Ok(filled.len()))
    }

    /// Writes `outgoing` to the socket.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.unsent().is_empty() {
            let at = self.out_at as usize;
            let n = ready!(Pin::new(&mut self.socket).poll_write(cx, &self.outgoing[at..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_at = u32::try_from(at + n).map_err(io::Error::other)?;
        }
        self.outgoing = Vec::new();
        self.out_at = 0;
        Poll::Ready(Ok(()))
    }

    /// Decrypted bytes the session has not read yet.
    fn unread(&self) -> &[u8] {
        &self.plain[self.plain_at as usize..]
    }

    /// The part of `unread` the session may read now: all of it once the handshake is
    /// complete, before that only the replay-safe early frames (`early::scan`).
    fn readable(&mut self) -> &[u8] {
        if !self.conn.is_handshaking() {
            return self.unread();
        }
        let from = (self.released as usize).max(self.plain_at as usize);
        let found = early::scan(&self.plain[from..]);
        // Early data is bounded by `tls::TLS_EARLY_DATA_BYTES`: it fits a u32.
        self.released = (from + found.safe) as u32;
        &self.plain[self.plain_at as usize..self.released as usize]
    }

    /// Encrypted bytes not yet written to the socket.
    fn unsent(&self) -> &[u8] {
        &self.outgoing[self.out_at as usize..]
    }

    fn take_plain(&mut self, buf: &mut ReadBuf<'_>) {
        let readable = self.readable();
        let n = buf.remaining().min(readable.len());
        buf.put_slice(&readable[..n]);
        self.plain_at += n as u32;
        if self.unread().is_empty() {
            self.plain = Vec::new();
            self.plain_at = 0;
            self.released = 0;
        }
    }
}

impl AsyncRead for TlsSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.readable().is_empty() {
                this.take_plain(buf);
                return Poll::Ready(Ok(()));
            }
            // Early data still held when the peer leaves is dropped: the handshake never
            // completed, so it may be a replay.
            if this.peer_closed || this.eof {
                return Poll::Ready(Ok(()));
            }
            this.advance(Emit::Nothing)?;
            // Records rustls wants sent in reply (a key update, tickets) go out when the socket
            // takes them; if it does not now, the next write or flush sends them.
            if let Poll::Ready(Err(e)) = this.poll_write_out(cx) {
                return Poll::Ready(Err(e));
            }
            if !this.readable().is_empty() || this.peer_closed {
                continue;
            }
            ready!(this.poll_fill(cx))?;
        }
    }
}

impl AsyncWrite for TlsSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.unsent().len() >= OUT_HIGH_WATER {
            ready!(this.poll_write_out(cx))?;
        }
        match this.advance(Emit::Data(buf))? {
            Next::Traffic => Poll::Ready(Ok(buf.len())),
            Next::Read | Next::Closed => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.socket).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.closing {
            this.closing = true;
            // A connection that failed or already closed has nothing more to say.
            let _ = this.advance(Emit::CloseNotify);
        }
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.socket).poll_shutdown(cx)
    }
}

/// Runs received bytes through a connection's record handling ([`TlsSocket::advance`] and the
/// early-data gate of [`TlsSocket::readable`]) with no socket: each of `reads` is one read from
/// the peer; what the connection sends is dropped as if written; once application data may flow,
/// `reply` is encrypted after each read, and the connection is closed at the end. Returns the
/// plaintext a session would have read. For the fuzz targets (`transport::fuzzing`).
pub(super) fn fuzz_reads<'a>(
    config: Arc<rustls::ServerConfig>,
    reads: impl IntoIterator<Item = &'a [u8]>,
    reply: &[u8],
) -> io::Result<Vec<u8>> {
    let mut tls = TlsSocket::new(Socket::Gone, config)?;
    let mut read = Vec::new();
    let mut chunk = [0u8; 4096];
    for bytes in reads {
        tls.incoming.extend_from_slice(bytes);
        let next = tls.advance(Emit::Nothing)?;
        tls.outgoing = Vec::new();
        tls.out_at = 0;
        while !tls.readable().is_empty() {
            let mut buf = ReadBuf::new(&mut chunk);
            tls.take_plain(&mut buf);
            read.extend_from_slice(buf.filled());
        }
        match next {
            Next::Traffic if !reply.is_empty() => {
                tls.advance(Emit::Data(reply))?;
            }
            Next::Closed => break,
            _ => {}
        }
        if tls.peer_closed {
            break;
        }
    }
    let _ = tls.advance(Emit::CloseNotify);
    Ok(read)
}

/// TLS sleeps with rustls' state and keys; the socket leaves the reactor.
impl SessionStream for TlsSocket {
    fn detach(&mut self) -> Option<io::Result<RawFd>> {
        if !self.unsent().is_empty() || !self.unread().is_empty() || self.conn.is_handshaking() {
            return None;
        }
        self.socket.detach()
    }

    fn attach(&mut self) -> io::Result<()> {
        self.socket.attach()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    fn configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let der = CertificateDer::from(cert.cert.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], key)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    }

    async fn pair() -> (TlsSocket, tokio_rustls::client::TlsStream<TcpStream>) {
        let (server_cfg, client_cfg) = configs();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            tokio_rustls::TlsConnector::from(client_cfg)
                .connect(name, tcp)
                .await
                .unwrap()
        };
        let server = async move {
            let (tcp, _) = listener.accept().await.unwrap();
            TlsSocket::accept(Socket::Live(tcp), server_cfg)
                .await
                .unwrap()
        };
        let (client, server) = tokio::join!(client, server);
        (server, client)
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[tokio::test]
    async fn bytes_cross_both_ways_in_any_split_and_keep_no_buffers() {
        let (mut server, mut client) = pair().await;
        // Larger than a record and than a read: several records, partial ones in between.
        let big = pattern(100_000);
        let sent = big.clone();
        let writer = tokio::spawn(async move {
            for piece in sent.chunks(777) {
                client.write_all(piece).await.unwrap();
            }
            client.flush().await.unwrap();
            client
        });
        let mut got = vec![0u8; big.len()];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(got, big);
        let mut client = writer.await.unwrap();
        server.write_all(&big).await.unwrap();
        server.flush().await.unwrap();
        let mut back = vec![0u8; big.len()];
        client.read_exact(&mut back).await.unwrap();
        assert_eq!(back, big);
        assert_eq!(
            (
                server.incoming.capacity(),
                server.plain.capacity(),
                server.outgoing.capacity()
            ),
            (0, 0, 0),
            "an idle connection holds no buffers"
        );
        // The client's close_notify ends the server's stream; the server's reaches the client.
        client.shutdown().await.unwrap();
        assert_eq!(server.read(&mut [0u8; 16]).await.unwrap(), 0);
        server.shutdown().await.unwrap();
        assert_eq!(client.read(&mut [0u8; 16]).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_key_update_from_the_peer_is_handled() {
        let (mut server, mut client) = pair().await;
        client.write_all(b"before").await.unwrap();
        client.get_mut().1.refresh_traffic_keys().unwrap();
        client.write_all(b" after").await.unwrap();
        client.flush().await.unwrap();
        let mut got = [0u8; 12];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"before after");
        // The server answers the update with its own; the client can still read it.
        server.write_all(b"still here").await.unwrap();
        server.flush().await.unwrap();
        let mut back = [0u8; 10];
        client.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"still here");
    }

    #[tokio::test]
    async fn a_detached_connection_resumes_with_what_arrived_meanwhile() {
        let (mut server, mut client) = pair().await;
        server.write_all(b"hi").await.unwrap();
        server.flush().await.unwrap();
        let mut hi = [0u8; 2];
        client.read_exact(&mut hi).await.unwrap();
        // Nothing is left to send or to read: it may sleep.
        assert!(server.detach().unwrap().is_ok());
        assert!(
            server.read(&mut [0u8; 1]).await.is_err(),
            "asleep: no reads"
        );
        client.write_all(b"while asleep").await.unwrap();
        client.flush().await.unwrap();
        server.attach().unwrap();
        let mut got = [0u8; 12];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"while asleep");
    }

    #[tokio::test]
    async fn garbage_instead_of_a_handshake_is_an_error() {
        let (server_cfg, _) = configs();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        tcp.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
            .await
            .unwrap();
        let e = TlsSocket::accept(Socket::Live(accepted), server_cfg)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        // A peer that hangs up mid-handshake is an error too.
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        tcp.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
        drop(tcp);
        let (server_cfg, _) = configs();
        assert!(TlsSocket::accept(Socket::Live(accepted), server_cfg)
            .await
            .is_err());
    }

    /// With the server's real configuration: a client that reconnects with the ticket it was
    /// given resumes (an abbreviated handshake), as reconnecting devices do.
    #[tokio::test]
    async fn a_reconnecting_client_resumes_its_session() {
        use rustls::HandshakeKind;
        let dir = tempfile::tempdir().unwrap();
        let material =
            crate::tls::load_or_create(&crate::config::Config::for_tests(dir.path())).unwrap();
        let server_cfg = crate::tls::server_config(&material, 0).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(material.certs[0].clone()).unwrap();
        let mut client_cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        client_cfg.alpn_protocols = vec![parley_protocol::ALPN.to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_cfg));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        for want in [HandshakeKind::Full, HandshakeKind::Resumed] {
            let client = async {
                let tcp = TcpStream::connect(addr).await.unwrap();
                let name = ServerName::try_from("localhost").unwrap();
                let mut tls = connector.connect(name, tcp).await.unwrap();
                tls.write_all(b"x").await.unwrap();
                tls.flush().await.unwrap();
                // The ticket comes after the handshake; reading the answer takes it in.
                let mut y = [0u8; 1];
                tls.read_exact(&mut y).await.unwrap();
                tls.get_ref().1.handshake_kind()
            };
            let server = async {
                let (tcp, _) = listener.accept().await.unwrap();
                let mut tls = TlsSocket::accept(Socket::Live(tcp), server_cfg.clone())
                    .await
                    .unwrap();
                let mut x = [0u8; 1];
                tls.read_exact(&mut x).await.unwrap();
                tls.write_all(b"y").await.unwrap();
                tls.flush().await.unwrap();
                tls
            };
            let (kind, _server) = tokio::join!(client, server);
            assert_eq!(kind, Some(want));
        }
    }
}
