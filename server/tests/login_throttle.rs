//! Password logins under attack (issue 15, item 2), on a real server over real sockets: failed
//! attempts are throttled per source address and per (account, address) with a backoff the
//! error announces; the owner of an attacked account still logs in from elsewhere at once; a
//! flood of hash requests from one address is refused early instead of making everybody else
//! wait; the tracking tables stay bounded; and the peer address reaches the check from every
//! transport (TCP, TLS, QUIC, WebSocket, REST).
//!
//! Loopback has all of 127.0.0.0/8: each client binds its own 127.0.0.x to be a source of its
//! own.

#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use parley_protocol::frames::{
    ClientFrame, Credential, Device, ErrorInfo, Platform, Request, Response, ServerFrame,
};
use parley_protocol::ids::{Account, DeviceId, RequestId};
use parley_protocol::values::{NewPassword, Password};
use parley_protocol::{ErrorCode, FrameCodec};
use parley_server::Config;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpSocket;

use common::{stat, TestServer, WAIT};

const RIGHT: &str = "password-123";
const WRONG: &str = "not-the-password";

fn local(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

fn device(name: &str) -> Device {
    Device {
        id: DeviceId::try_from(name).unwrap(),
        platform: Platform::Unspecified,
    }
}

fn login(account: &str, password: &str) -> Request {
    Request::Login {
        credential: Credential::Password {
            account: Account::try_from(account).unwrap(),
            password: Password::try_from(password).unwrap(),
        },
        device: device("dev-t"),
    }
}

fn register(account: &str) -> Request {
    Request::Register {
        account: Account::try_from(account).unwrap(),
        password: NewPassword::try_from(RIGHT).unwrap(),
        device: device("dev-r"),
    }
}

/// A raw protocol connection over a byte stream (plain TCP, TLS or a QUIC stream).
struct Conn {
    read: Box<dyn AsyncRead + Send + Unpin>,
    write: Box<dyn AsyncWrite + Send + Unpin>,
    buf: BytesMut,
    codec: FrameCodec,
    next: u64,
    _quic: Option<(quinn::Endpoint, quinn::Connection)>,
}

async fn tcp_from(from: IpAddr, to: SocketAddr) -> tokio::net::TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    tokio::time::timeout(WAIT, socket.connect(to))
        .await
        .expect("connect in time")
        .expect("connect")
}

fn tls_config(cert: &std::path::Path) -> rustls::ClientConfig {
    let pem = std::fs::read(cert).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(c.unwrap()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![parley_protocol::ALPN.to_vec()];
    cfg
}

impl Conn {
    fn new(
        read: Box<dyn AsyncRead + Send + Unpin>,
        write: Box<dyn AsyncWrite + Send + Unpin>,
        quic: Option<(quinn::Endpoint, quinn::Connection)>,
    ) -> Conn {
        Conn {
            read,
            write,
            buf: BytesMut::new(),
            codec: FrameCodec::new(16 << 20),
            next: 0,
            _quic: quic,
        }
    }

    async fn tcp(from: IpAddr, s: &TestServer) -> Conn {
        let (r, w) = tcp_from(from, s.tcp).await.into_split();
        Conn::new(Box::new(r), Box::new(w), None)
    }

    async fn tls(from: IpAddr, s: &TestServer) -> Conn {
        let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_config(&s.cert)));
        let tcp = tcp_from(from, s.tls).await;
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = connector.connect(name, tcp).await.expect("TLS handshake");
        let (r, w) = tokio::io::split(tls);
        Conn::new(Box::new(r), Box::new(w), None)
    }

    async fn quic(from: IpAddr, s: &TestServer) -> Conn {
        let mut endpoint = quinn::Endpoint::client(SocketAddr::new(from, 0)).unwrap();
        let crypto =
            quinn::crypto::rustls::QuicClientConfig::try_from(tls_config(&s.cert)).unwrap();
        endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
        let conn = endpoint
            .connect(s.quic, "localhost")
            .unwrap()
            .await
            .expect("QUIC handshake");
        let (send, recv) = conn.open_bi().await.unwrap();
        Conn::new(Box::new(recv), Box::new(send), Some((endpoint, conn)))
    }

    /// Sends `request`; returns its id.
    async fn send(&mut self, request: Request) -> u64 {
        self.next += 1;
        let frame = ClientFrame {
            request_id: RequestId::try_from(self.next).unwrap(),
            request,
        };
        self.write.write_all(&frame.encode()).await.unwrap();
        self.write.flush().await.unwrap();
        self.next
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
            assert!(n > 0, "connection closed before response {id}");
        }
    }

    async fn call(&mut self, request: Request) -> Response {
        let id = self.send(request).await;
        self.response(id).await
    }
}

fn error(r: Response) -> ErrorInfo {
    match r {
        Response::Error(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// `RATE_LIMITED` with a retry advice.
fn assert_throttled(r: Response) -> Duration {
    let e = error(r);
    assert_eq!(e.code, ErrorCode::RateLimited, "{e:?}");
    e.retry_after.expect("a retry advice")
}

fn assert_logged_in(r: Response, what: &str) {
    assert!(matches!(r, Response::Login(_)), "{what}: {r:?}");
}

async fn server(tweak: impl FnOnce(&mut Config)) -> TestServer {
    let s = TestServer::start_with(|cfg| {
        // Source throttling far away unless a test wants it.
        cfg.login.source_failures = 1000;
        cfg.login.account_failures = 3;
        cfg.login.backoff_base = Duration::from_secs(60);
        cfg.login.backoff_max = Duration::from_secs(600);
        tweak(cfg)
    })
    .await;
    let mut c = Conn::tcp(local(1), &s).await;
    assert_logged_in(c.call(register("alice")).await, "register alice");
    let mut c = Conn::tcp(local(1), &s).await;
    assert_logged_in(c.call(register("bob")).await, "register bob");
    s
}

#[tokio::test]
async fn wrong_passwords_are_throttled_while_the_owner_logs_in_from_elsewhere() {
    let s = server(|_| {}).await;
    let mut attacker = Conn::tcp(local(2), &s).await;
    for _ in 0..2 {
        let e = error(attacker.call(login("alice", WRONG)).await);
        assert_eq!((e.code, e.retry_after), (ErrorCode::AuthFailed, None));
    }
    // The failure that starts the wait says how long it is.
    let e = error(attacker.call(login("alice", WRONG)).await);
    assert_eq!(e.code, ErrorCode::AuthFailed);
    assert_eq!(e.retry_after, Some(Duration::from_secs(60)));
    // From now on this address is refused on alice before any hashing, right password or not.
    for password in [WRONG, RIGHT] {
        let wait = assert_throttled(attacker.call(login("alice", password)).await);
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(60));
    }
    // The owner, from another address, logs in at once.
    let mut owner = Conn::tcp(local(3), &s).await;
    assert_logged_in(owner.call(login("alice", RIGHT)).await, "the owner");
    // The attacker's address is not throttled on another account.
    let e = error(attacker.call(login("bob", WRONG)).await);
    assert_eq!((e.code, e.retry_after), (ErrorCode::AuthFailed, None));
    assert!(stat(&s, "login_throttled_total").await >= 2);
}

#[tokio::test]
async fn a_success_after_the_wait_clears_the_address_failures_on_that_account() {
    let s = server(|cfg| {
        cfg.login.account_failures = 2;
        cfg.login.backoff_base = Duration::from_millis(300);
    })
    .await;
    let mut c = Conn::tcp(local(4), &s).await;
    error(c.call(login("alice", WRONG)).await);
    let wait = error(c.call(login("alice", WRONG)).await)
        .retry_after
        .expect("a wait starts");
    // Honour the advice (a wait, not a timing assertion), then log in.
    tokio::time::sleep(wait).await;
    assert_logged_in(c.call(login("alice", RIGHT)).await, "after the wait");
    // Cleared: the next failure is a first one again, with no wait.
    let mut c = Conn::tcp(local(4), &s).await;
    let e = error(c.call(login("alice", WRONG)).await);
    assert_eq!((e.code, e.retry_after), (ErrorCode::AuthFailed, None));
}

#[tokio::test]
async fn an_address_guessing_many_accounts_is_throttled_on_all_of_them() {
    let s = server(|cfg| {
        cfg.login.source_failures = 3;
    })
    .await;
    let mut c = Conn::tcp(local(5), &s).await;
    for name in ["nobody1", "nobody2"] {
        let e = error(c.call(login(name, WRONG)).await);
        assert_eq!((e.code, e.retry_after), (ErrorCode::AuthFailed, None));
    }
    assert!(error(c.call(login("nobody3", WRONG)).await)
        .retry_after
        .is_some());
    assert_throttled(c.call(login("bob", RIGHT)).await);
    // Registration is refused too: no switching to it to keep the hashers busy.
    assert_throttled(c.call(register("carol")).await);
    // Another address is unaffected.
    let mut other = Conn::tcp(local(6), &s).await;
    assert_logged_in(other.call(login("bob", RIGHT)).await, "bob elsewhere");
}

#[tokio::test]
async fn a_flood_from_one_address_cannot_make_another_address_wait_behind_it() {
    let s = server(|cfg| {
        cfg.login.account_failures = 1000;
        cfg.login.hash_workers = 1;
        cfg.login.hash_per_source = 1;
        cfg.login.hash_queue = 8;
    })
    .await;
    // Every answer takes a ticket as it arrives: the order of outcomes, not their timing.
    let tickets = Arc::new(AtomicUsize::new(0));
    let mut flood = Vec::new();
    for _ in 0..30 {
        flood.push(Conn::tcp(local(7), &s).await);
    }
    let mut sent = Vec::new();
    for mut c in flood {
        let id = c.send(login("alice", WRONG)).await;
        sent.push((c, id));
    }
    let mut user = Conn::tcp(local(8), &s).await;
    let user_id = user.send(login("alice", RIGHT)).await;
    let answers: Vec<_> = sent
        .into_iter()
        .map(|(mut c, id)| {
            let tickets = tickets.clone();
            tokio::spawn(async move {
                let r = c.response(id).await;
                (tickets.fetch_add(1, Ordering::SeqCst), r)
            })
        })
        .collect();
    let answer = user.response(user_id).await;
    let user_ticket = tickets.fetch_add(1, Ordering::SeqCst);
    assert_logged_in(answer, "the other address");
    let mut hashed_before = 0;
    let mut refused = 0;
    for a in answers {
        let (ticket, r) = a.await.unwrap();
        let e = error(r);
        match e.code {
            ErrorCode::AuthFailed => hashed_before += usize::from(ticket < user_ticket),
            ErrorCode::RateLimited => {
                assert!(
                    e.retry_after.is_some(),
                    "a refusal says when to retry: {e:?}"
                );
                refused += 1;
            }
            other => panic!("flood got {other:?}"),
        }
    }
    // The flood's address holds one place: the rest of it was refused at once, and the other
    // address's login waited behind at most that one hash (plus one racing it).
    assert!(refused > 0, "nothing of the flood was refused");
    assert!(
        hashed_before <= 2,
        "the login waited behind {hashed_before} of the flood's hashes"
    );
    assert!(stat(&s, "login_hash_refused_total").await > 0);
}

#[tokio::test]
async fn the_throttle_tables_stay_bounded() {
    let s = server(|cfg| {
        cfg.login.account_failures = 1000;
        cfg.login.max_tracked_sources = 4;
        cfg.login.max_tracked_pairs = 4;
    })
    .await;
    // One address sprays account names, and several addresses spray one each.
    let mut c = Conn::tcp(local(9), &s).await;
    for i in 0..10 {
        error(c.call(login(&format!("spray{i}"), WRONG)).await);
    }
    for last in 10..18 {
        let mut c = Conn::tcp(local(last), &s).await;
        error(c.call(login("alice", WRONG)).await);
    }
    let (sources, pairs) = (
        stat(&s, "login_throttle_sources").await,
        stat(&s, "login_throttle_pairs").await,
    );
    assert!(sources > 0 && sources <= 4, "{sources} sources tracked");
    assert!(pairs > 0 && pairs <= 4, "{pairs} pairs tracked");
}

/// WebSocket: binary frames (the frame without its length prefix) from a socket bound to
/// `from`.
async fn ws_login(from: IpAddr, s: &TestServer, request: Request) -> Response {
    let tcp = tcp_from(from, s.http).await;
    let url = format!("ws://{}/ws", s.http);
    let (mut ws, _) = tokio_tungstenite::client_async(url, tcp)
        .await
        .expect("WebSocket upgrade");
    let frame = ClientFrame {
        request_id: RequestId::try_from(1).unwrap(),
        request,
    }
    .encode();
    let body = frame.slice(parley_protocol::LEN_PREFIX..);
    ws.send(tokio_tungstenite::tungstenite::Message::Binary(body))
        .await
        .unwrap();
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .unwrap();
        if let tokio_tungstenite::tungstenite::Message::Binary(b) = msg {
            if let ServerFrame::Response(_, r) = ServerFrame::decode(b).unwrap() {
                return r;
            }
        }
    }
}

/// REST: `POST /im/v1/auth/login` from `from`; the status, the body and `Retry-After`.
async fn rest_login(from: IpAddr, s: &TestServer) -> (u16, serde_json::Value, Option<String>) {
    // reqwest's rustls needs a process-wide crypto provider (ring, as everywhere here).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .local_address(from)
        .timeout(WAIT)
        .build()
        .unwrap();
    let res = http
        .post(format!("http://{}/im/v1/auth/login", s.http))
        .json(&serde_json::json!({ "account": "alice", "password": RIGHT }))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, res.json().await.unwrap(), retry)
}

#[tokio::test]
async fn every_transport_throttles_by_the_peer_address() {
    let s = server(|cfg| cfg.login.account_failures = 1).await;
    // 127.0.0.20 fails once on alice over plain TCP: that starts a 60 s wait.
    let mut c = Conn::tcp(local(20), &s).await;
    assert!(error(c.call(login("alice", WRONG)).await)
        .retry_after
        .is_some());
    // The same address over every other transport is refused; another address is not.
    let (bad, good) = (local(20), local(21));
    assert_throttled(Conn::tls(bad, &s).await.call(login("alice", RIGHT)).await);
    assert_logged_in(
        Conn::tls(good, &s).await.call(login("alice", RIGHT)).await,
        "TLS",
    );
    assert_throttled(Conn::quic(bad, &s).await.call(login("alice", RIGHT)).await);
    assert_logged_in(
        Conn::quic(good, &s).await.call(login("alice", RIGHT)).await,
        "QUIC",
    );
    assert_throttled(ws_login(bad, &s, login("alice", RIGHT)).await);
    assert_logged_in(ws_login(good, &s, login("alice", RIGHT)).await, "WebSocket");
    let (status, body, retry) = rest_login(bad, &s).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    assert!(
        body["error"]["retry_after_ms"].as_u64().unwrap() > 0,
        "{body}"
    );
    assert!(retry.unwrap().parse::<u64>().unwrap() > 0);
    let (status, body, _) = rest_login(good, &s).await;
    assert_eq!(status, 200, "{body}");
}
