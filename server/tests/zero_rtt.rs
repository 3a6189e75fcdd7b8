//! 0-RTT for returning devices, over TLS and QUIC: a client holding a resumption ticket sends
//! its token login in its first flight and the server answers it; a send in early data runs
//! only once the handshake is confirmed (docs/protocol.md, "Early data (0-RTT)").
#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::{next_message, stat, wait_for, TestServer, WAIT};
use parley_client::{Client, Credentials, Event, Transport};
use parley_protocol::frames::{
    ClientFrame, ContentType, Credential, Device, PeerRef, Platform, Request, Response,
    SendRequest, ServerFrame,
};
use parley_protocol::ids::{ClientMsgId, ConversationId, DeviceId, RequestId, Seq};
use parley_protocol::FrameCodec;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const DEVICE: &str = "phone";

async fn server() -> TestServer {
    TestServer::start_with(|c| c.tls.early_data_tickets = 64).await
}

fn frame(id: u64, request: Request) -> Bytes {
    ClientFrame {
        request_id: RequestId::try_from(id).unwrap(),
        request,
    }
    .encode()
}

fn token_login(token: &str) -> Bytes {
    frame(
        1,
        Request::Login {
            credential: Credential::AccessToken(token.to_owned()),
            device: Device {
                id: DeviceId::try_from(DEVICE).unwrap(),
                platform: Platform::Android,
            },
        },
    )
}

fn send(conv: ConversationId, text: &'static str) -> Bytes {
    frame(
        2,
        Request::Send(SendRequest {
            conversation: conv,
            content_type: ContentType::Text,
            content: Bytes::from_static(text.as_bytes()),
            client_msg_id: ClientMsgId::try_from(text).unwrap(),
            reply_to: Seq::ZERO,
            mentions: Vec::new(),
            mention_all: false,
        }),
    )
}

/// Alice (the returning device, whose access token is returned), Bob (online, over the SDK)
/// and their conversation.
struct Setup {
    token: String,
    conv: ConversationId,
    bob: Client,
    bob_ev: parley_client::Events,
}

async fn setup(s: &TestServer) -> Setup {
    let (alice, _ev) = s.register(Transport::Tls, "alice").await;
    let (bob, bob_ev) = s.register(Transport::Tls, "bob").await;
    let conv = alice
        .open_direct(PeerRef::User(bob.user_id()))
        .await
        .unwrap()
        .id;
    alice.close().await;
    // A token for the device the raw client plays.
    let (phone, _ev) = Client::connect(
        s.config(Transport::Tls, DEVICE),
        Credentials::Password {
            account: parley_protocol::ids::Account::try_from("alice").unwrap(),
            password: "password-123".into(),
        },
    )
    .await
    .unwrap();
    let token = phone.login_result().access_token;
    phone.close().await;
    Setup {
        token,
        conv,
        bob,
        bob_ev,
    }
}

/// Reads frames off a byte stream.
struct Frames<R> {
    read: R,
    buf: BytesMut,
    codec: FrameCodec,
}

impl<R: AsyncRead + Unpin> Frames<R> {
    fn new(read: R) -> Self {
        Frames {
            read,
            buf: BytesMut::new(),
            codec: FrameCodec::new(16 << 20),
        }
    }

    async fn response(&mut self, id: u64) -> Response {
        loop {
            if let Some(body) = self.codec.decode(&mut self.buf).unwrap() {
                match ServerFrame::decode(body).unwrap() {
                    ServerFrame::Response(rid, r) if rid.get() == id => return r,
                    _ => continue,
                }
            }
            let n = tokio::time::timeout(WAIT, self.read.read_buf(&mut self.buf))
                .await
                .expect("a frame in time")
                .unwrap();
            assert_ne!(n, 0, "connection closed before response {id}");
        }
    }
}

/// The first visit's flight, after a full handshake: the token login, then a ping, by whose
/// answer the resumption ticket is in.
fn first_visit(token: &str) -> Bytes {
    [
        token_login(token),
        frame(3, Request::Ping { client_time_ms: 1 }),
    ]
    .concat()
    .into()
}

/// Reads the answers to [`first_visit`]: the login, then the ping's.
async fn first_visit_answered(read: impl AsyncRead + Unpin) {
    let mut frames = Frames::new(read);
    logged_in(frames.response(1).await);
    frames.response(3).await;
}

/// The returning device's flight, written before the handshake completes: the token login
/// and a send of `text`.
fn early_flight(token: &str, conv: ConversationId, text: &'static str) -> Bytes {
    [token_login(token), send(conv, text)].concat().into()
}

/// Reads the answers to an accepted [`early_flight`] of "early-hello": the login, and the send
/// acknowledged as the conversation's first message, which Bob receives.
async fn early_flight_answered(read: impl AsyncRead + Unpin, bob_ev: &mut parley_client::Events) {
    let mut frames = Frames::new(read);
    logged_in(frames.response(1).await);
    let ack = match frames.response(2).await {
        Response::SendAck(a) => a,
        other => panic!("send acknowledged: {other:?}"),
    };
    assert_eq!(ack.seq, Seq(1));
    let got = next_message(bob_ev).await;
    assert_eq!(got.content, Bytes::from_static(b"early-hello"));
}

fn logged_in(r: Response) {
    assert!(matches!(r, Response::Login(_)), "login answered: {r:?}");
}

/// The client TLS configuration of both transports: TLS 1.3 only, the server's certificate
/// trusted, Parley's ALPN, early data enabled.
fn client_tls(s: &TestServer) -> rustls::ClientConfig {
    let pem = std::fs::read(&s.cert).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(c.unwrap()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![parley_protocol::ALPN.to_vec()];
    cfg.enable_early_data = true;
    cfg
}

fn tls_client(s: &TestServer) -> tokio_rustls::TlsConnector {
    tokio_rustls::TlsConnector::from(Arc::new(client_tls(s))).early_data(true)
}

/// A TLS connection to `addr` (the server, or a proxy in front of it), offering 0-RTT when
/// `connector` holds a ticket for it.
async fn tls_connect(
    connector: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let localhost = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(localhost, tcp).await.unwrap()
}

/// The TLS tests' start: the [`Setup`], and a connector that holds a ticket from a first
/// visit (a full handshake, the token login and a ping).
async fn tls_returning(s: &TestServer) -> (Setup, tokio_rustls::TlsConnector) {
    let setup = setup(s).await;
    let connector = tls_client(s);
    let mut tls = tls_connect(&connector, s.tls).await;
    tls.write_all(&first_visit(&setup.token)).await.unwrap();
    tls.flush().await.unwrap();
    first_visit_answered(&mut tls).await;
    assert!(!tls.get_ref().1.is_early_data_accepted());
    tls.shutdown().await.unwrap();
    (setup, connector)
}

/// Waits until the server's stat `name` satisfies `done` (`what` names the wait).
async fn until_stat(s: &TestServer, name: &str, done: impl Fn(u64) -> bool, what: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done(stat(s, name).await) {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_a_returning_device_logs_in_with_0rtt() {
    let s = server().await;
    let (mut setup, connector) = tls_returning(&s).await;

    // The return: login and a send written before the handshake completes.
    let mut tls = tls_connect(&connector, s.tls).await;
    assert!(tls.get_mut().1.early_data().is_some(), "0-RTT offered");
    tls.write_all(&early_flight(&setup.token, setup.conv, "early-hello"))
        .await
        .unwrap();
    tls.flush().await.unwrap();
    assert!(
        tls.get_ref().1.is_early_data_accepted(),
        "the server took the early data"
    );
    early_flight_answered(&mut tls, &mut setup.bob_ev).await;
    setup.bob.close().await;
    s.stop().await;
}

/// The server's half of the handshake never reaches the client: the client cannot finish it,
/// exactly as for an attacker replaying a recorded first flight. The token login in the early
/// data runs; the send after it must not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_a_send_in_early_data_waits_for_the_handshake() {
    let s = server().await;
    let (mut setup, connector) = tls_returning(&s).await;

    // A proxy that passes the client's bytes and swallows the server's.
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = proxy.local_addr().unwrap();
    let upstream: SocketAddr = s.tls;
    let pass = tokio::spawn(async move {
        let (mut client, _) = proxy.accept().await.unwrap();
        let mut server = TcpStream::connect(upstream).await.unwrap();
        let (mut cr, _cw) = client.split();
        let (mut sr, mut sw) = server.split();
        let up = tokio::io::copy(&mut cr, &mut sw);
        let mut sink = tokio::io::sink();
        let down = tokio::io::copy(&mut sr, &mut sink);
        // Ends when the test drops this task.
        let _ = tokio::join!(up, down);
    });
    let logins = stat(&s, "logins_total").await;
    let online = stat(&s, "sessions_online").await;
    let mut tls = tls_connect(&connector, proxy_addr).await;
    assert!(tls.get_mut().1.early_data().is_some(), "0-RTT offered");
    tls.write_all(&early_flight(&setup.token, setup.conv, "replayed"))
        .await
        .unwrap();
    // Flushing puts the early data on the wire, then waits for a handshake that never comes.
    let stuck = tokio::spawn(async move {
        let _ = tls.flush().await;
        tls
    });
    // The early login runs (the server counts it) ...
    until_stat(&s, "logins_total", |n| n != logins, "early login ran").await;
    // ... and then the connection is gone before the handshake could complete.
    stuck.abort();
    pass.abort();
    until_stat(&s, "sessions_online", |n| n <= online, "session ended").await;
    // Nothing was stored: the next message in the conversation is the first.
    let (alice, _ev) = s.login(Transport::Tls, "alice", "laptop").await;
    let ack = alice
        .send(setup.conv, ContentType::Text, Bytes::from_static(b"after"))
        .await
        .unwrap();
    assert_eq!(ack.seq, Seq(1), "the early send never ran");
    let got = next_message(&mut setup.bob_ev).await;
    assert_eq!(got.content, Bytes::from_static(b"after"));
    alice.close().await;
    setup.bob.close().await;
    s.stop().await;
}

fn quic_endpoint(s: &TestServer) -> quinn::Endpoint {
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(client_tls(s)).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    endpoint
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_a_returning_device_logs_in_with_0rtt() {
    let s = server().await;
    let mut setup = setup(&s).await;
    let endpoint = quic_endpoint(&s);

    // First visit: a full handshake; the ticket arrives after it.
    let connecting = endpoint.connect(s.quic, "localhost").unwrap();
    let connecting = match connecting.into_0rtt() {
        Ok(_) => panic!("no ticket yet, so no 0-RTT"),
        Err(c) => c,
    };
    let conn = connecting.await.unwrap();
    let (mut send_half, recv) = conn.open_bi().await.unwrap();
    send_half
        .write_all(&first_visit(&setup.token))
        .await
        .unwrap();
    first_visit_answered(recv).await;
    conn.close(0u32.into(), b"bye");

    // The return: the stream, the login and a send, all before the handshake completes.
    let connecting = endpoint.connect(s.quic, "localhost").unwrap();
    let (conn, accepted) = connecting
        .into_0rtt()
        .unwrap_or_else(|_| panic!("a resumption ticket allows 0-RTT"));
    let (mut send_half, recv) = conn.open_bi().await.unwrap();
    send_half
        .write_all(&early_flight(&setup.token, setup.conv, "early-hello"))
        .await
        .unwrap();
    assert!(accepted.await, "the server took the 0-RTT data");
    early_flight_answered(recv, &mut setup.bob_ev).await;
    conn.close(0u32.into(), b"bye");
    setup.bob.close().await;
    s.stop().await;
}

/// The SDK tries 0-RTT on its reconnects without the caller doing anything. After a restart
/// the server no longer holds the client's ticket and refuses its early data: the login is sent
/// again once the handshake completes, and the client carries on.
async fn sdk_falls_back_when_the_server_lost_its_tickets(t: Transport) {
    let s = server().await;
    let (alice, mut alice_ev) = s.register(t, "alice").await;
    wait_for(&mut alice_ev, |e| {
        matches!(e, Event::Connected(_)).then_some(())
    })
    .await;
    // A round trip after the handshake: the ticket is in.
    alice.sync().await.unwrap();
    let s = s.restart().await;
    wait_for(&mut alice_ev, |e| {
        matches!(e, Event::Connected(_)).then_some(())
    })
    .await;
    let (bob, _ev) = s.register(Transport::Tls, "bob").await;
    let conv = bob
        .open_direct(PeerRef::User(alice.user_id()))
        .await
        .unwrap()
        .id;
    bob.send(
        conv,
        ContentType::Text,
        Bytes::from_static(b"after restart"),
    )
    .await
    .unwrap();
    let got = next_message(&mut alice_ev).await;
    assert_eq!(got.content, Bytes::from_static(b"after restart"));
    alice.close().await;
    bob.close().await;
    s.stop().await;
}
both_transports!(
    sdk_fallback,
    sdk_falls_back_when_the_server_lost_its_tickets
);
