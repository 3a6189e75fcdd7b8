//! The binary driver over in-memory pipes, on tokio's paused clock: heartbeats and reaping run
//! on virtual time, so minutes pass in no time and nothing depends on the machine's speed.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::Bytes;
use parley_protocol::frames::{
    ContentType, Credential, GoAwayReason, PeerRef, Push, Request, Response, SendRequest,
    ServerFrame,
};
use parley_protocol::ids::{Account, ClientMsgId, Seq};
use parley_protocol::values::{NewPassword, Password};
use parley_protocol::ErrorCode;

use crate::testing::{device, Conn, Harness};

fn register(account: &str) -> Request {
    Request::Register {
        account: Account::try_from(account).unwrap(),
        password: NewPassword::try_from("password-123").unwrap(),
        device: device("dev"),
    }
}

async fn logged_in(conn: &mut Conn, account: &str) -> parley_protocol::frames::LoginResult {
    match conn.call(register(account)).await {
        Response::Login(l) => l,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn requests_go_through_the_service_and_pushes_come_back_out() {
    let h = Harness::start(|_| {}).await;
    let mut alice = h.connect();
    let mut bob = h.connect();
    // Before login only login-like requests and pings are taken.
    let r = alice
        .call(Request::ListConversations {
            limit: 0,
            offset: 0,
        })
        .await;
    assert!(matches!(r, Response::Error(e) if e.code == ErrorCode::Unauthenticated));
    let a = logged_in(&mut alice, "alice").await;
    let b = logged_in(&mut bob, "bob").await;
    assert_ne!(a.session_id, b.session_id);
    let Response::Conversation(conv) = alice.call(Request::OpenDirect(PeerRef::User(b.user))).await
    else {
        panic!()
    };
    let send = Request::Send(SendRequest {
        conversation: conv.id,
        content_type: ContentType::Text,
        content: Bytes::from_static(b"hi bob"),
        client_msg_id: ClientMsgId::try_from("m1").unwrap(),
        reply_to: Seq::ZERO,
        mentions: vec![],
        mention_all: false,
    });
    let Response::SendAck(ack) = alice.call(send).await else {
        panic!()
    };
    assert_eq!(ack.seq, Seq(1));
    match bob.next().await {
        Some(ServerFrame::Push(Push::Message(m))) => {
            assert_eq!(
                (m.seq, m.sender, m.content),
                (Seq(1), a.user, Bytes::from_static(b"hi bob"))
            );
        }
        other => panic!("{other:?}"),
    }
    let Response::ConversationList {
        conversations: list,
        ..
    } = bob
        .call(Request::ListConversations {
            limit: 0,
            offset: 0,
        })
        .await
    else {
        panic!()
    };
    assert_eq!((list.len(), list[0].unread), (1, 1));
    // A second login on a logged-in connection is refused; the session goes on.
    let again = Request::Login {
        credential: Credential::Password {
            account: Account::try_from("bob").unwrap(),
            password: Password::try_from("password-123").unwrap(),
        },
        device: device("dev"),
    };
    let r = bob.call(again).await;
    assert!(matches!(r, Response::Error(e) if e.code == ErrorCode::AlreadyLoggedIn));
    // Logout answers Ok, then the session says GoAway and closes.
    assert_eq!(bob.call(Request::Logout).await, Response::Ok);
    assert!(matches!(
        bob.next().await,
        Some(ServerFrame::Push(Push::GoAway {
            reason: GoAwayReason::LoggedOut,
            ..
        }))
    ));
    assert!(bob.next().await.is_none());
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_idle_session_is_reaped_after_its_timeout_and_pings_keep_one_alive() {
    let h = Harness::start(|_| {}).await;
    let timeout = h.service.core().config().heartbeat.timeout;
    let interval = h.service.core().config().heartbeat.interval;
    let mut quiet = h.connect();
    let mut chatty = h.connect();
    logged_in(&mut quiet, "quiet").await;
    logged_in(&mut chatty, "chatty").await;
    // Twice the timeout of virtual time, a ping every interval from one of them.
    let mut passed = Duration::ZERO;
    while passed < timeout * 2 {
        tokio::time::advance(interval).await;
        passed += interval;
        let r = chatty.call(Request::Ping { client_time_ms: 1 }).await;
        assert!(matches!(r, Response::Pong { .. }), "{r:?}");
    }
    match quiet.next().await {
        Some(ServerFrame::Push(Push::GoAway { reason, .. })) => {
            assert_eq!(reason, GoAwayReason::IdleTimeout)
        }
        other => panic!("{other:?}"),
    }
    assert!(quiet.next().await.is_none(), "closed after the GoAway");
    assert_eq!(
        h.service.core().router().stats().sessions,
        1,
        "only chatty is left"
    );
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_malformed_frame_gets_an_error_and_the_session_goes_on() {
    let h = Harness::start(|_| {}).await;
    let mut conn = h.connect();
    logged_in(&mut conn, "alice").await;
    // A length prefix and bytes that are no protobuf Frame.
    conn.write(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).await;
    match conn.next().await {
        Some(ServerFrame::Push(Push::Error(e))) => assert_eq!(e.code, ErrorCode::BadFrame),
        other => panic!("{other:?}"),
    }
    let r = conn.call(Request::Ping { client_time_ms: 5 }).await;
    assert!(matches!(
        r,
        Response::Pong {
            client_time_ms: 5,
            ..
        }
    ));
    h.stop().await;
}
