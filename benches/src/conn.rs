//! Raw protocol connections over plain TCP, TLS and QUIC, speaking length-prefixed frames
//! directly (no SDK), so the generator spends as little CPU per frame as the protocol allows;
//! and over the server's WebSocket fallback (`GET /ws?encoding=binary` on its HTTP listener),
//! one binary WebSocket message per `Frame` without the length prefix (docs/websocket.md).
//!
//! The byte-stream transports and the WebSocket are separate branches of [`FrameReader`] and
//! [`FrameWriter`]: a TCP frame is read and queued exactly as before; the WebSocket's work
//! (message boundaries, masking) happens only on its own branch, once per read and per flush.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context as _};
use bytes::{Buf, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use parley_protocol::frames::{ClientFrame, Push, Request, Response, ServerFrame};
use parley_protocol::ids::RequestId;
use parley_protocol::{FrameCodec, LEN_PREFIX};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// Which transport to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Plain TCP (the server's opt-in `--plain-tcp` listener).
    Tcp,
    /// TLS over TCP.
    Tls,
    /// QUIC, one bidirectional stream.
    Quic,
    /// WebSocket (`ws://<http address>/ws?encoding=binary`): the HTTP side-service's fallback.
    Ws,
}

impl Transport {
    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Quic => "quic",
            Transport::Ws => "ws",
        }
    }
}

/// Frame limit the generator accepts from the server (the server announces 128 KiB).
const MAX_FRAME: usize = 1 << 20;

type BoxRead = Box<dyn AsyncRead + Unpin + Send>;
type BoxWrite = Box<dyn AsyncWrite + Unpin + Send>;

/// A client WebSocket over plain TCP.
type WsSocket = tokio_tungstenite::WebSocketStream<TcpStream>;
type WsRead = futures::stream::SplitStream<WsSocket>;
type WsWrite = futures::stream::SplitSink<WsSocket, Message>;

/// Bytes a client WebSocket reads from its socket at a time (and keeps allocated): the same
/// 8 KiB the byte-stream reader grows by, so an idle client holds about what a TCP one does.
const WS_READ_BUFFER: usize = 8 * 1024;
/// Frames queued for one flush are written to the socket together once they pass this size
/// (tungstenite's write buffer), so a batch of sends is one write, as on TCP.
const WS_WRITE_BUFFER: usize = 16 * 1024;
/// The WebSocket layer's own message limit; [`FrameReader`] applies the frame limit itself, so
/// [`FrameReader::set_max_frame`] works for WebSockets too.
const WS_MAX_MESSAGE: usize = 256 << 20;

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(WS_WRITE_BUFFER)
        .max_write_buffer_size(WS_MAX_MESSAGE)
        .max_message_size(Some(WS_MAX_MESSAGE))
        .max_frame_size(Some(WS_MAX_MESSAGE))
}

/// Receive buffer asked for on each client QUIC socket (the kernel caps it at
/// `net.core.rmem_max`, 4 MiB on the benchmark machine). One socket carries the pushes of
/// hundreds of connections: with the default 208 KiB it overflowed at saturation (113,864
/// datagrams dropped in 8 s, `drops` in /proc/net/udp), and QUIC's loss recovery then put the
/// pushes seconds behind: the generator's limit, not the server's.
const QUIC_CLIENT_RECV_BUFFER: usize = 8 << 20;

/// A client endpoint on `bind` whose socket has a large receive buffer (best effort).
fn client_endpoint(bind: SocketAddr) -> io::Result<quinn::Endpoint> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(bind), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = socket.set_recv_buffer_size(QUIC_CLIENT_RECV_BUFFER);
    socket.bind(&bind.into())?;
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        None,
        socket.into(),
        Arc::new(quinn::TokioRuntime),
    )
}

/// Password hashes the server runs or queues for one source address (its `login.hash_per_source`
/// default); more are refused with `RATE_LIMITED`.
pub const HASHES_PER_SOURCE: usize = 2;

/// Opens connections of one transport to one server, spreading them over source addresses.
pub struct Connector {
    transport: Transport,
    addr: SocketAddr,
    tls: Option<tokio_rustls::TlsConnector>,
    /// The TLS configuration (TLS and QUIC), for clients that keep sessions of their own.
    tls_config: Option<Arc<rustls::ClientConfig>>,
    quic: Vec<quinn::Endpoint>,
    quic_transport: Option<Arc<quinn::TransportConfig>>,
    sources: Vec<IpAddr>,
    next: AtomicUsize,
    /// Password requests (register, password login) in flight: the server hashes at most two
    /// per source address and refuses more, so this process keeps to that share.
    hashing: Arc<tokio::sync::Semaphore>,
}

/// One client's own TLS session cache. A client that reconnects with it resumes its session
/// from the ticket the server gave it (an abbreviated handshake: no certificate, no
/// signature), as a device that keeps its tickets does; [`Connector::connect`] shares one
/// cache, which holds tickets for a few connections only.
#[derive(Clone, Default)]
pub struct Resumable {
    tls: Option<tokio_rustls::TlsConnector>,
    quic: Option<quinn::ClientConfig>,
    /// Resumed connections send their first requests as early data (0-RTT), when the ticket
    /// allows it. Over QUIC, early data the server refuses fails the connection (no fallback).
    zero_rtt: bool,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("transport", &self.transport)
            .field("addr", &self.addr)
            .field("sources", &self.sources)
            .finish()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_tls(cert: &Path) -> anyhow::Result<rustls::ClientConfig> {
    let pem = std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(c.context("parsing the certificate")?)?;
    }
    if roots.is_empty() {
        bail!("{}: no certificate found", cert.display());
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![parley_protocol::ALPN.to_vec()];
    Ok(cfg)
}

fn quic_client(
    tls: &Arc<rustls::ClientConfig>,
    transport: &Arc<quinn::TransportConfig>,
) -> anyhow::Result<quinn::ClientConfig> {
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls.clone())
        .map_err(|e| anyhow!("QUIC TLS config: {e}"))?;
    let mut client = quinn::ClientConfig::new(Arc::new(crypto));
    client.transport_config(transport.clone());
    Ok(client)
}

impl Connector {
    /// A connector for `transport` to `addr`. TLS and QUIC need the server's certificate (PEM);
    /// `sources` are local addresses to bind before connecting, used round-robin (empty: let
    /// the kernel choose).
    pub fn new(
        transport: Transport,
        addr: SocketAddr,
        cert: Option<&Path>,
        sources: Vec<IpAddr>,
    ) -> anyhow::Result<Connector> {
        if !addr.ip().is_loopback() {
            bail!("{addr}: the load generator only targets loopback addresses");
        }
        let mut tls = None;
        let mut tls_config = None;
        let mut quic = Vec::new();
        let mut quic_transport = None;
        match transport {
            Transport::Tcp | Transport::Ws => {}
            Transport::Tls => {
                let cert = cert.ok_or_else(|| anyhow!("--cert is needed for TLS"))?;
                let config = Arc::new(client_tls(cert)?);
                tls = Some(tokio_rustls::TlsConnector::from(config.clone()));
                tls_config = Some(config);
            }
            Transport::Quic => {
                let cert = cert.ok_or_else(|| anyhow!("--cert is needed for QUIC"))?;
                let config = Arc::new(client_tls(cert)?);
                let mut transport = quinn::TransportConfig::default();
                // Idle connections must outlive the scenario; the server announces 90 s.
                transport.max_idle_timeout(Some(
                    quinn::IdleTimeout::try_from(std::time::Duration::from_secs(120))
                        .map_err(|e| anyhow!("{e}"))?,
                ));
                let transport = Arc::new(transport);
                let client = quic_client(&config, &transport)?;
                tls_config = Some(config);
                quic_transport = Some(transport);
                let binds: Vec<IpAddr> = if sources.is_empty() {
                    vec![IpAddr::from([127, 0, 0, 1])]
                } else {
                    sources.clone()
                };
                for ip in binds {
                    let mut ep = client_endpoint(SocketAddr::new(ip, 0))
                        .with_context(|| format!("binding a QUIC endpoint on {ip}"))?;
                    ep.set_default_client_config(client.clone());
                    quic.push(ep);
                }
            }
        }
        Ok(Connector {
            transport,
            addr,
            tls,
            tls_config,
            quic,
            quic_transport,
            hashing: Arc::new(tokio::sync::Semaphore::new(
                HASHES_PER_SOURCE * sources.len().max(1),
            )),
            sources,
            next: AtomicUsize::new(0),
        })
    }

    /// A turn for one password request (hold it until the answer): at most
    /// [`HASHES_PER_SOURCE`] per source address in flight, the server's share per address.
    pub async fn hashing_turn(&self) -> tokio::sync::OwnedSemaphorePermit {
        // The semaphore is never closed.
        self.hashing
            .clone()
            .acquire_owned()
            .await
            .expect("the hashing semaphore is never closed")
    }

    /// A fresh session cache for one client (see [`Resumable`]); with `zero_rtt`, resumed
    /// connections send their first requests as early data.
    pub fn resumable(&self, zero_rtt: bool) -> anyhow::Result<Resumable> {
        let own = |config: &Arc<rustls::ClientConfig>| {
            let mut config = (**config).clone();
            config.resumption = rustls::client::Resumption::store(Arc::new(
                rustls::client::ClientSessionMemoryCache::new(1),
            ));
            config.enable_early_data = zero_rtt;
            Arc::new(config)
        };
        let mut r = Resumable {
            zero_rtt,
            ..Resumable::default()
        };
        match (self.transport, &self.tls_config, &self.quic_transport) {
            (Transport::Tls, Some(config), _) => {
                r.tls = Some(tokio_rustls::TlsConnector::from(own(config)).early_data(zero_rtt));
            }
            (Transport::Quic, Some(config), Some(transport)) => {
                r.quic = Some(quic_client(&own(config), transport)?);
            }
            _ => {}
        }
        Ok(r)
    }

    /// The transport.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    async fn tcp(&self) -> io::Result<TcpStream> {
        let stream = if self.sources.is_empty() {
            TcpStream::connect(self.addr).await?
        } else {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % self.sources.len();
            let sock = match self.sources[i] {
                IpAddr::V4(_) => TcpSocket::new_v4()?,
                IpAddr::V6(_) => TcpSocket::new_v6()?,
            };
            sock.bind(SocketAddr::new(self.sources[i], 0))?;
            sock.connect(self.addr).await?
        };
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// Opens a connection and completes the transport handshake (TCP, TLS, QUIC, or the
    /// WebSocket upgrade).
    pub async fn connect(&self) -> anyhow::Result<Conn> {
        self.open(self.tls.as_ref(), None, false).await
    }

    /// Like [`Connector::connect`], with `client`'s own TLS sessions (resumed when it has one).
    pub async fn connect_as(&self, client: &Resumable) -> anyhow::Result<Conn> {
        self.open(
            client.tls.as_ref().or(self.tls.as_ref()),
            client.quic.as_ref(),
            client.zero_rtt,
        )
        .await
    }

    async fn open(
        &self,
        tls: Option<&tokio_rustls::TlsConnector>,
        quic: Option<&quinn::ClientConfig>,
        zero_rtt: bool,
    ) -> anyhow::Result<Conn> {
        match self.transport {
            Transport::Tcp => {
                let (r, w) = self.tcp().await?.into_split();
                Ok(Conn::new(Box::new(r), Box::new(w), None))
            }
            Transport::Tls => {
                let tcp = self.tcp().await?;
                let tls = tls.ok_or_else(|| anyhow!("no TLS config"))?;
                let name = rustls::pki_types::ServerName::try_from("localhost")?;
                let stream = tls.connect(name, tcp).await?;
                let (r, w) = tokio::io::split(stream);
                Ok(Conn::new(Box::new(r), Box::new(w), None))
            }
            Transport::Quic => {
                let i = self.next.fetch_add(1, Ordering::Relaxed) % self.quic.len().max(1);
                let ep = self
                    .quic
                    .get(i)
                    .ok_or_else(|| anyhow!("no QUIC endpoint"))?;
                let connecting = match quic {
                    Some(config) => ep.connect_with(config.clone(), self.addr, "localhost")?,
                    None => ep.connect(self.addr, "localhost")?,
                };
                // 0-RTT: the stream and what is written first leave before the handshake ends.
                let conn = if zero_rtt {
                    match connecting.into_0rtt() {
                        Ok((conn, _accepted)) => conn,
                        Err(connecting) => connecting.await?,
                    }
                } else {
                    connecting.await?
                };
                let (send, recv) = conn.open_bi().await?;
                Ok(Conn::new(Box::new(recv), Box::new(send), Some(conn)))
            }
            Transport::Ws => {
                let tcp = self.tcp().await?;
                let url = format!("ws://{}/ws?encoding=binary", self.addr);
                let (socket, _) =
                    tokio_tungstenite::client_async_with_config(url, tcp, Some(ws_config()))
                        .await
                        .context("WebSocket upgrade")?;
                let (w, r) = socket.split();
                Ok(Conn {
                    reader: FrameReader {
                        inner: Input::Ws(r),
                        buf: BytesMut::new(),
                        codec: FrameCodec::new(MAX_FRAME),
                        max: MAX_FRAME,
                    },
                    writer: FrameWriter {
                        inner: Output::Ws(w),
                        out: Vec::new(),
                        next_id: 0,
                    },
                    quic: None,
                })
            }
        }
    }

    /// Waits for QUIC endpoints to finish closing their connections (no-op for TCP).
    pub async fn shutdown(&self) {
        for ep in &self.quic {
            ep.close(0u32.into(), b"done");
        }
        for ep in &self.quic {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), ep.wait_idle()).await;
        }
    }
}

/// Where a [`FrameReader`] reads from.
enum Input {
    /// A byte stream of length-prefixed frames (TCP, TLS, QUIC).
    Bytes(BoxRead),
    /// A WebSocket: one binary message per frame.
    Ws(WsRead),
}

/// Reads whole frames off a byte stream or a WebSocket.
pub struct FrameReader {
    inner: Input,
    buf: BytesMut,
    codec: FrameCodec,
    /// The frame limit (the codec's, kept for WebSocket messages).
    max: usize,
}

impl FrameReader {
    fn new(inner: BoxRead) -> Self {
        Self {
            inner: Input::Bytes(inner),
            buf: BytesMut::new(),
            codec: FrameCodec::new(MAX_FRAME),
            max: MAX_FRAME,
        }
    }

    /// The next frame body; `None` at end of stream. Cancel-safe: the only await is a
    /// `read_buf` (or a WebSocket stream's `next`), which loses nothing when dropped.
    pub async fn next(&mut self) -> anyhow::Result<Option<Bytes>> {
        let inner = match &mut self.inner {
            Input::Bytes(inner) => inner,
            Input::Ws(ws) => return next_ws(ws, self.max).await,
        };
        loop {
            if let Some(frame) = self.codec.decode(&mut self.buf)? {
                return Ok(Some(frame));
            }
            if self.buf.capacity() - self.buf.len() < 1024 {
                self.buf.reserve(8 * 1024);
            }
            if inner.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(anyhow!("connection closed inside a frame"))
                };
            }
        }
    }

    /// Accepts frames up to `max` bytes from now on (a large answer, such as the conversation
    /// list of a user in thousands of conversations, which the server does not split).
    pub fn set_max_frame(&mut self, max: usize) {
        self.codec = FrameCodec::new(max);
        self.max = max;
    }

    /// The next decoded frame; `None` at end of stream.
    pub async fn next_frame(&mut self) -> anyhow::Result<Option<ServerFrame>> {
        match self.next().await? {
            Some(body) => Ok(Some(ServerFrame::decode(body)?)),
            None => Ok(None),
        }
    }
}

/// The next frame of a WebSocket: the body of its next binary message (pings and pongs are
/// the WebSocket layer's; it answers pings itself). `None` once the server closed.
async fn next_ws(ws: &mut WsRead, max: usize) -> anyhow::Result<Option<Bytes>> {
    loop {
        match ws.next().await {
            None | Some(Err(WsError::ConnectionClosed)) | Some(Ok(Message::Close(_))) => {
                return Ok(None)
            }
            Some(Err(e)) => return Err(anyhow!("WebSocket: {e}")),
            Some(Ok(Message::Binary(body))) => {
                if body.len() > max {
                    bail!(
                        "WebSocket message of {} bytes over the {max}-byte frame limit",
                        body.len()
                    );
                }
                return Ok(Some(body));
            }
            Some(Ok(Message::Text(_))) => {
                bail!("the server sent a text message on a binary WebSocket")
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
        }
    }
}

/// Where a [`FrameWriter`] writes to.
enum Output {
    /// A byte stream: the batch is written as it is.
    Bytes(BoxWrite),
    /// A WebSocket: each frame of the batch becomes one binary message, prefix removed.
    Ws(WsWrite),
}

/// The write half: frames are encoded into a batch and written with one call.
pub struct FrameWriter {
    inner: Output,
    out: Vec<u8>,
    next_id: u64,
}

impl FrameWriter {
    /// Appends a request to the batch and returns its id.
    pub fn queue(&mut self, request: Request) -> RequestId {
        self.next_id += 1;
        // Starts at 1 and only grows: never zero.
        let id = RequestId::try_from(self.next_id).unwrap_or_else(|_| unreachable!());
        let bytes = ClientFrame {
            request_id: id,
            request,
        }
        .encode();
        self.out.extend_from_slice(&bytes);
        id
    }

    /// Whether frames are waiting to be written.
    pub fn has_queued(&self) -> bool {
        !self.out.is_empty()
    }

    /// Writes the batch.
    pub async fn flush(&mut self) -> io::Result<()> {
        let inner = match &mut self.inner {
            Output::Bytes(inner) => inner,
            Output::Ws(ws) => return flush_ws(ws, &mut self.out).await,
        };
        if !self.out.is_empty() {
            inner.write_all(&self.out).await?;
            self.out.clear();
        }
        inner.flush().await
    }

    /// Closes the write side (TCP FIN, TLS close_notify, QUIC stream finish, WebSocket close).
    pub async fn shutdown(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Output::Bytes(inner) => inner.shutdown().await,
            Output::Ws(ws) => ws.close().await.map_err(ws_io),
        }
    }
}

fn ws_io(e: WsError) -> io::Error {
    match e {
        WsError::Io(e) => e,
        other => io::Error::other(other),
    }
}

/// Writes a batch of length-prefixed frames to a WebSocket, one binary message per frame
/// (slices of the batch: no copy before the WebSocket layer masks them into its buffer).
async fn flush_ws(ws: &mut WsWrite, out: &mut Vec<u8>) -> io::Result<()> {
    if !out.is_empty() {
        let mut batch = Bytes::from(std::mem::take(out));
        while !batch.is_empty() {
            if batch.len() < LEN_PREFIX {
                return Err(io::Error::other("a queued frame is cut short"));
            }
            let len = u32::from_be_bytes([batch[0], batch[1], batch[2], batch[3]]) as usize;
            batch.advance(LEN_PREFIX);
            if len > batch.len() {
                return Err(io::Error::other("a queued frame is cut short"));
            }
            ws.feed(Message::Binary(batch.split_to(len)))
                .await
                .map_err(ws_io)?;
        }
    }
    ws.flush().await.map_err(ws_io)
}

/// One connection: a reader, a writer, and for QUIC the connection handle that keeps it open.
pub struct Conn {
    /// Frames from the server.
    pub reader: FrameReader,
    /// Frames to the server.
    pub writer: FrameWriter,
    quic: Option<quinn::Connection>,
}

impl Conn {
    fn new(r: BoxRead, w: BoxWrite, quic: Option<quinn::Connection>) -> Conn {
        Conn {
            reader: FrameReader::new(r),
            writer: FrameWriter {
                inner: Output::Bytes(w),
                out: Vec::new(),
                next_id: 0,
            },
            quic,
        }
    }

    /// Sends one request and waits for its response, skipping pushes (setup only: pushes are
    /// dropped). An `Error` response is returned as an error.
    pub async fn call(&mut self, request: Request) -> anyhow::Result<Response> {
        let name = request.name();
        match self.call_answer(request).await? {
            Ok(r) => Ok(r),
            Err(e) => bail!("{name}: {e}"),
        }
    }

    /// [`Conn::call`] for password requests (register, password login): the server's hashing
    /// queue refuses what it cannot take at once (`RATE_LIMITED` with a retry time, at most two
    /// hashes per source address), and like a real client this waits and tries again, for at
    /// most two minutes.
    pub async fn call_hashing(&mut self, request: Request) -> anyhow::Result<Response> {
        let name = request.name();
        let give_up = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            match self.call_answer(request.clone()).await? {
                Ok(r) => return Ok(r),
                Err(e)
                    if e.code == parley_protocol::ErrorCode::RateLimited
                        && tokio::time::Instant::now() < give_up =>
                {
                    let wait = e
                        .retry_after
                        .unwrap_or(std::time::Duration::from_millis(50))
                        .min(std::time::Duration::from_secs(5));
                    tokio::time::sleep(wait).await;
                }
                Err(e) => bail!("{name}: {e}"),
            }
        }
    }

    /// The answer to `request`: a response, or the error the server gave for it.
    async fn call_answer(
        &mut self,
        request: Request,
    ) -> anyhow::Result<Result<Response, parley_protocol::frames::ErrorInfo>> {
        let name = request.name();
        let id = self.writer.queue(request);
        self.writer.flush().await?;
        loop {
            match self.reader.next_frame().await? {
                None => bail!("{name}: connection closed"),
                Some(ServerFrame::Response(rid, Response::Error(e))) if rid == id => {
                    return Ok(Err(e))
                }
                Some(ServerFrame::Response(rid, r)) if rid == id => return Ok(Ok(r)),
                Some(ServerFrame::Response(rid, _)) => bail!("{name}: unexpected response {rid}"),
                Some(ServerFrame::Push(Push::GoAway { reason, message })) => {
                    bail!("{name}: server sent GoAway {reason:?}: {message}")
                }
                Some(ServerFrame::Push(_)) => {}
            }
        }
    }

    /// Closes the connection politely.
    pub async fn close(mut self) {
        let _ = self.writer.shutdown().await;
        if let Some(c) = self.quic.take() {
            c.close(0u32.into(), b"bye");
        }
    }
}
