//! The SDK against a scripted server on a real socket (plain TCP, port 0): each test plays the
//! server's side frame by frame, so reconnects, resends, gaps and token refresh can be driven
//! exactly. Tests against the real server live in `server/tests`.

// Test helpers outside #[test] functions: clippy's allow-unwrap-in-tests does not reach them.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use parley_client::protocol::frames::{
    ClientFrame, ContentType, Credential, ErrorInfo, GoAwayReason, Limits, LoginResult, Message,
    Push, Request, Response, SendAck, ServerFrame, SyncResponse,
};
use parley_client::protocol::ids::{
    Account, ClientMsgId, ConversationId, DeviceId, MessageId, RequestId, Seq, UserId,
};
use parley_client::protocol::{ErrorCode, FrameCodec};
use parley_client::{
    Client, ClientConfig, ClientError, Credentials, Event, Events, Transport, Trust,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bound on every wait; a healthy run never comes close.
const WAIT: Duration = Duration::from_secs(10);
const EPOCH: u64 = 42;
const ALICE: u64 = 1;
const BOB: u64 = 2;

struct MockServer {
    listener: TcpListener,
}

impl MockServer {
    async fn start() -> (MockServer, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (MockServer { listener }, addr)
    }

    async fn accept(&self) -> Conn {
        let (stream, _) = tokio::time::timeout(WAIT, self.listener.accept())
            .await
            .expect("client connects in time")
            .unwrap();
        Conn {
            stream,
            buf: BytesMut::new(),
        }
    }
}

struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

impl Conn {
    async fn recv(&mut self) -> ClientFrame {
        let codec = FrameCodec::new(1 << 20);
        loop {
            if let Some(body) = codec.decode(&mut self.buf).unwrap() {
                return ClientFrame::decode(body).unwrap();
            }
            let n = tokio::time::timeout(WAIT, self.stream.read_buf(&mut self.buf))
                .await
                .expect("frame in time")
                .unwrap();
            assert!(n > 0, "client closed the connection");
        }
    }

    /// The next request, skipping pings.
    async fn request(&mut self) -> (RequestId, Request) {
        loop {
            let f = self.recv().await;
            if let Request::Ping { .. } = f.request {
                continue;
            }
            return (f.request_id, f.request);
        }
    }

    async fn send(&mut self, frame: ServerFrame) {
        self.stream.write_all(&frame.encode()).await.unwrap();
    }

    async fn respond(&mut self, id: RequestId, r: Response) {
        self.send(ServerFrame::Response(id, r)).await;
    }

    async fn push(&mut self, p: Push) {
        self.send(ServerFrame::Push(p)).await;
    }

    /// Answers the login with tokens `n`, then the post-login sync with nothing.
    async fn accept_login(&mut self, n: u32) -> Request {
        let (id, login) = self.request().await;
        self.respond(id, Response::Login(login_result(n))).await;
        self.expect_empty_sync().await;
        login
    }

    async fn expect_empty_sync(&mut self) {
        let (id, req) = self.request().await;
        assert!(
            matches!(req, Request::Sync(_)),
            "expected sync, got {req:?}"
        );
        self.respond(id, Response::Sync(sync_page(vec![], false)))
            .await;
    }
}

fn login_result(n: u32) -> LoginResult {
    LoginResult {
        user: UserId::try_from(ALICE).unwrap(),
        account: "alice".into(),
        device: DeviceId::try_from("dev1").unwrap(),
        access_token: format!("access-{n}"),
        access_expires_at_ms: 0,
        refresh_token: format!("refresh-{n}"),
        refresh_expires_at_ms: 0,
        heartbeat_interval: Duration::from_secs(30),
        heartbeat_timeout: Duration::from_secs(90),
        limits: Limits {
            max_frame_bytes: 1 << 20,
            max_message_bytes: 1 << 16,
            max_inflight_sends: 16,
            max_sync_page: 100,
            max_requests_per_second: 0,
            recall_window_ms: 120_000,
        },
        server_time_ms: 0,
        epoch: EPOCH,
        session_id: u64::from(n),
    }
}

fn sync_page(messages: Vec<Message>, has_more: bool) -> SyncResponse {
    SyncResponse {
        epoch: EPOCH,
        reset: false,
        conversations: vec![],
        messages,
        receipts: vec![],
        has_more,
        next_conversation_id: 0,
    }
}

fn conv(n: u64) -> ConversationId {
    ConversationId::try_from(n).unwrap()
}

fn msg(c: u64, seq: u64) -> Message {
    Message {
        id: MessageId::try_from(c * 1000 + seq).unwrap(),
        conversation: conv(c),
        seq: Seq(seq),
        sender: UserId::try_from(BOB).unwrap(),
        sender_device: DeviceId::try_from("phone").unwrap(),
        content_type: ContentType::Text,
        content: Bytes::from(format!("m{seq}")),
        client_msg_id: ClientMsgId::try_from(format!("bob-{c}-{seq}")).unwrap(),
        server_time_ms: 0,
        reply_to: Seq::ZERO,
        mentions: vec![],
        event: None,
        amended: None,
        thread_root: Default::default(),
        forwarded_from: None,
        mention_all: false,
    }
}

fn ack(c: u64, seq: u64, duplicate: bool) -> Response {
    Response::SendAck(SendAck {
        message_id: MessageId::try_from(c * 1000 + seq).unwrap(),
        conversation: conv(c),
        seq: Seq(seq),
        server_time_ms: 0,
        duplicate,
    })
}

fn config(addr: SocketAddr) -> ClientConfig {
    let mut c = ClientConfig::new(
        addr,
        Transport::PlainTcp,
        Trust::Fingerprint([0; 32]),
        DeviceId::try_from("dev1").unwrap(),
    );
    c.backoff_base = Duration::from_millis(10);
    c.backoff_max = Duration::from_millis(50);
    c.gap_timeout = Duration::from_millis(100);
    c
}

fn password() -> Credentials {
    Credentials::Password {
        account: Account::try_from("alice").unwrap(),
        password: "secret123".into(),
    }
}

/// Connects a client, playing the server's login and first sync.
async fn connected(server: &MockServer, addr: SocketAddr) -> (Client, Events, Conn) {
    let connect = tokio::spawn(Client::connect(config(addr), password()));
    let mut conn = server.accept().await;
    let (id, login) = conn.request().await;
    assert!(matches!(
        login,
        Request::Login {
            credential: Credential::Password { .. },
            ..
        }
    ));
    conn.respond(id, Response::Login(login_result(1))).await;
    let (client, mut events) = connect.await.unwrap().unwrap();
    assert!(matches!(next(&mut events).await, Event::Connected(_)));
    conn.expect_empty_sync().await;
    (client, events, conn)
}

async fn next(events: &mut Events) -> Event {
    tokio::time::timeout(WAIT, events.next())
        .await
        .expect("event in time")
        .expect("event stream open")
}

async fn next_message(events: &mut Events) -> (u64, u64) {
    loop {
        if let Event::Message(m) = next(events).await {
            return (m.conversation.get(), m.seq.get());
        }
    }
}

#[tokio::test]
async fn unacked_send_is_resent_with_its_id_after_reconnect() {
    let (server, addr) = MockServer::start().await;
    let (client, mut events, mut conn) = connected(&server, addr).await;

    let sender = client.clone();
    let send = tokio::spawn(async move {
        sender
            .send(conv(5), ContentType::Text, Bytes::from_static(b"hi"))
            .await
    });
    let (_, first) = conn.request().await;
    let Request::Send(first) = first else {
        panic!("expected send, got {first:?}")
    };
    drop(conn); // the ack is lost with the connection

    assert!(matches!(
        next(&mut events).await,
        Event::Disconnected { .. }
    ));
    let mut conn = server.accept().await;
    let (id, login) = conn.request().await;
    assert!(matches!(
        &login,
        Request::Login { credential: Credential::AccessToken(t), .. } if t == "access-1"
    ));
    conn.respond(id, Response::Login(login_result(2))).await;
    assert!(matches!(next(&mut events).await, Event::Connected(l) if l.session_id == 2));
    // Sync first, then the resend.
    conn.expect_empty_sync().await;
    let (id, again) = conn.request().await;
    let Request::Send(again) = again else {
        panic!("expected the resend, got {again:?}")
    };
    assert_eq!(again.client_msg_id, first.client_msg_id);
    assert_eq!(again.content, first.content);
    conn.respond(id, ack(5, 1, true)).await;
    let acked = send.await.unwrap().unwrap();
    assert_eq!((acked.seq, acked.duplicate), (Seq(1), true));
    assert_eq!(client.login_result().access_token, "access-2");
    client.close().await;
}

#[tokio::test]
async fn messages_are_delivered_in_order_without_gaps_or_duplicates() {
    let (server, addr) = MockServer::start().await;
    let (client, mut events, mut conn) = connected(&server, addr).await;

    // Out of order pushes are reordered; duplicates dropped.
    conn.push(Push::Message(msg(7, 2))).await;
    conn.push(Push::Message(msg(7, 1))).await;
    conn.push(Push::Message(msg(7, 2))).await;
    assert_eq!(next_message(&mut events).await, (7, 1));
    assert_eq!(next_message(&mut events).await, (7, 2));

    // Our own send takes seq 3: no event for it.
    let sender = client.clone();
    let send = tokio::spawn(async move {
        sender
            .send(conv(7), ContentType::Text, Bytes::from_static(b"mine"))
            .await
    });
    let (id, _) = conn.request().await;
    conn.respond(id, ack(7, 3, false)).await;
    assert_eq!(send.await.unwrap().unwrap().seq, Seq(3));

    // Seq 5 arrives, 4 never does: after the gap timeout the client syncs from 3.
    conn.push(Push::Message(msg(7, 5))).await;
    let (id, req) = conn.request().await;
    let Request::Sync(sync) = req else {
        panic!("expected sync, got {req:?}")
    };
    assert_eq!(sync.epoch, EPOCH);
    assert_eq!(sync.positions, vec![(conv(7), Seq(3))]);
    conn.respond(id, Response::Sync(sync_page(vec![msg(7, 4)], true)))
        .await;
    let (id, req) = conn.request().await;
    let Request::Sync(sync) = req else {
        panic!("expected the next page, got {req:?}")
    };
    assert_eq!(sync.positions, vec![(conv(7), Seq(5))]);
    conn.respond(id, Response::Sync(sync_page(vec![msg(7, 5)], false)))
        .await;
    assert_eq!(next_message(&mut events).await, (7, 4));
    assert_eq!(next_message(&mut events).await, (7, 5));

    // A sync the application asks for reports the round.
    let syncer = client.clone();
    let sync = tokio::spawn(async move { syncer.sync().await });
    let (id, _) = conn.request().await;
    conn.respond(id, Response::Sync(sync_page(vec![msg(9, 1)], false)))
        .await;
    let summary = sync.await.unwrap().unwrap();
    assert_eq!((summary.messages, summary.pages), (1, 1));
    assert_eq!(next_message(&mut events).await, (9, 1));
    assert_eq!(
        client.positions().await.unwrap().positions,
        vec![(conv(7), Seq(5)), (conv(9), Seq(1))]
    );
    client.close().await;
}

#[tokio::test]
async fn sync_needed_push_triggers_sync() {
    let (server, addr) = MockServer::start().await;
    let (client, mut events, mut conn) = connected(&server, addr).await;
    conn.push(Push::SyncNeeded).await;
    let (id, req) = conn.request().await;
    assert!(matches!(req, Request::Sync(_)));
    conn.respond(id, Response::Sync(sync_page(vec![msg(3, 1)], false)))
        .await;
    assert_eq!(next_message(&mut events).await, (3, 1));
    client.close().await;
}

#[tokio::test]
async fn expired_access_token_is_refreshed() {
    let (server, addr) = MockServer::start().await;
    let (client, mut events, conn) = connected(&server, addr).await;
    drop(conn);
    assert!(matches!(
        next(&mut events).await,
        Event::Disconnected { .. }
    ));

    let mut conn = server.accept().await;
    let (id, _) = conn.request().await;
    conn.respond(
        id,
        Response::Error(ErrorInfo::new(ErrorCode::TokenExpired, "token expired")),
    )
    .await;
    let (id, req) = conn.request().await;
    assert!(matches!(
        &req,
        Request::Refresh { refresh_token, .. } if refresh_token == "refresh-1"
    ));
    conn.respond(id, Response::Login(login_result(2))).await;
    assert!(matches!(next(&mut events).await, Event::Connected(l) if l.access_token == "access-2"));
    conn.expect_empty_sync().await;
    client.close().await;
}

/// A token `Login` answers with an empty refresh token (docs/protocol.md, section 4): the
/// client keeps the one it has, and refreshes with it when the access token expires later.
#[tokio::test]
async fn a_token_login_keeps_the_refresh_token_held() {
    let (server, addr) = MockServer::start().await;
    let (client, mut events, conn) = connected(&server, addr).await;
    drop(conn);
    assert!(matches!(
        next(&mut events).await,
        Event::Disconnected { .. }
    ));
    // Reconnect with the access token: the server answers as it does, without a refresh token.
    let mut conn = server.accept().await;
    let (id, req) = conn.request().await;
    assert!(matches!(
        &req,
        Request::Login { credential: Credential::AccessToken(t), .. } if t == "access-1"
    ));
    let mut token_login = login_result(1);
    token_login.refresh_token = String::new();
    conn.respond(id, Response::Login(token_login)).await;
    assert!(matches!(next(&mut events).await, Event::Connected(_)));
    conn.expect_empty_sync().await;
    drop(conn);
    assert!(matches!(
        next(&mut events).await,
        Event::Disconnected { .. }
    ));
    // Later the access token has expired: the refresh token from the first login is used.
    let mut conn = server.accept().await;
    let (id, _) = conn.request().await;
    conn.respond(
        id,
        Response::Error(ErrorInfo::new(ErrorCode::TokenExpired, "token expired")),
    )
    .await;
    let (id, req) = conn.request().await;
    assert!(
        matches!(
            &req,
            Request::Refresh { refresh_token, .. } if refresh_token == "refresh-1"
        ),
        "refreshed with the held token: {req:?}"
    );
    conn.respond(id, Response::Login(login_result(2))).await;
    assert!(matches!(next(&mut events).await, Event::Connected(l) if l.access_token == "access-2"));
    conn.expect_empty_sync().await;
    client.close().await;
}

#[tokio::test]
async fn refused_refresh_stops_the_client() {
    let (server, addr) = MockServer::start().await;
    let (client, mut events, conn) = connected(&server, addr).await;
    drop(conn);
    assert!(matches!(
        next(&mut events).await,
        Event::Disconnected { .. }
    ));
    let mut conn = server.accept().await;
    let (id, _) = conn.request().await;
    let expired = ErrorInfo::new(ErrorCode::TokenExpired, "token expired");
    conn.respond(id, Response::Error(expired)).await;
    let (id, _) = conn.request().await;
    let revoked = ErrorInfo::new(ErrorCode::AuthFailed, "unknown or revoked token");
    conn.respond(id, Response::Error(revoked.clone())).await;
    assert_eq!(next(&mut events).await, Event::ServerError(revoked));
    assert_eq!(next(&mut events).await, Event::Closed);
    assert!(events.next().await.is_none());
    assert!(matches!(client.sync().await, Err(ClientError::Closed)));
}

#[tokio::test]
async fn replaced_session_does_not_reconnect() {
    let (server, addr) = MockServer::start().await;
    let (client, mut events, mut conn) = connected(&server, addr).await;
    conn.push(Push::GoAway {
        reason: GoAwayReason::Replaced,
        message: "logged in elsewhere".into(),
    })
    .await;
    drop(conn);
    assert!(matches!(
        next(&mut events).await,
        Event::Disconnected { .. }
    ));
    assert_eq!(next(&mut events).await, Event::Closed);
    client.close().await;
    assert!(client.is_closed());
    // No reconnect attempt reached the listener.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), server.listener.accept())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn requests_fail_fast_when_the_connection_drops_and_sends_fail_on_close() {
    let (server, addr) = MockServer::start().await;
    let (client, mut events, mut conn) = connected(&server, addr).await;
    let asker = client.clone();
    let open = tokio::spawn(async move {
        asker
            .open_direct(parley_client::protocol::frames::PeerRef::Account(
                Account::try_from("bob").unwrap(),
            ))
            .await
    });
    let (_, req) = conn.request().await;
    assert!(matches!(req, Request::OpenDirect(_)));
    drop(conn);
    assert!(matches!(
        open.await.unwrap(),
        Err(ClientError::Disconnected)
    ));
    assert!(matches!(
        next(&mut events).await,
        Event::Disconnected { .. }
    ));

    // Reconnected, a send is in flight when the application closes the client.
    let mut conn = server.accept().await;
    conn.accept_login(2).await;
    let sender = client.clone();
    let send = tokio::spawn(async move {
        sender
            .send(conv(1), ContentType::Text, Bytes::from_static(b"late"))
            .await
    });
    let (_, req) = conn.request().await;
    assert!(matches!(req, Request::Send(_)));
    client.close().await;
    assert!(matches!(send.await.unwrap(), Err(ClientError::Closed)));
}

#[tokio::test]
async fn first_login_failure_is_returned_without_retrying() {
    let (server, addr) = MockServer::start().await;
    let connect = tokio::spawn(Client::connect(config(addr), password()));
    let mut conn = server.accept().await;
    let (id, _) = conn.request().await;
    let refused = ErrorInfo::new(ErrorCode::AuthFailed, "wrong account or password");
    conn.respond(id, Response::Error(refused)).await;
    let err = connect.await.unwrap().unwrap_err();
    assert_eq!(err.server_code(), Some(ErrorCode::AuthFailed));

    // Nothing listening: a connect error, not a retry loop.
    drop(server);
    let err = Client::connect(config(addr), password()).await.unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
}

#[tokio::test]
async fn silent_server_is_detected_by_heartbeat_and_pinged_meanwhile() {
    let (server, addr) = MockServer::start().await;
    let connect = tokio::spawn(Client::connect(config(addr), password()));
    let mut conn = server.accept().await;
    let (id, _) = conn.request().await;
    let mut login = login_result(1);
    login.heartbeat_interval = Duration::from_millis(50);
    login.heartbeat_timeout = Duration::from_millis(300);
    conn.respond(id, Response::Login(login)).await;
    let (client, mut events) = connect.await.unwrap().unwrap();
    assert!(matches!(next(&mut events).await, Event::Connected(_)));
    conn.expect_empty_sync().await;
    // Idle: the client pings on the announced interval.
    let ping = conn.recv().await;
    assert!(matches!(ping.request, Request::Ping { .. }));
    // The server stays silent: the connection is declared dead and replaced.
    assert!(matches!(
        next(&mut events).await,
        Event::Disconnected { reason } if reason.contains("heartbeat")
    ));
    let mut conn = server.accept().await;
    conn.accept_login(2).await;
    assert!(matches!(next(&mut events).await, Event::Connected(_)));
    client.close().await;
    assert_eq!(next(&mut events).await, Event::Closed);
}
