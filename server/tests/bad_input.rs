//! Bad input gets a clear error frame (and a close where the session cannot continue), never a
//! crash, and never disturbs other sessions. Each over TLS-TCP and QUIC.
#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

mod common;

use bytes::Bytes;
use common::raw::Raw;
use common::{next_message, TestServer};
use parley_client::Transport;
use parley_protocol::frames::{
    ContentType, Credential, Device, ErrorInfo, GoAwayReason, PeerRef, Platform, Push, Request,
    Response, SendRequest, ServerFrame, SyncRequest,
};
use parley_protocol::ids::{Account, ClientMsgId, ConversationId, DeviceId, Seq};
use parley_protocol::ErrorCode;

fn device(id: &str) -> Device {
    Device {
        id: DeviceId::try_from(id).unwrap(),
        platform: Platform::Cli,
    }
}

fn send(conv: ConversationId, cmid: &str) -> Request {
    Request::Send(SendRequest {
        conversation: conv,
        content_type: ContentType::Text,
        content: Bytes::from_static(b"x"),
        client_msg_id: ClientMsgId::try_from(cmid).unwrap(),
        reply_to: Seq::ZERO,
        mentions: vec![],
        mention_all: false,
    })
}

fn expect_error(r: Response, code: ErrorCode) -> ErrorInfo {
    match r {
        Response::Error(e) if e.code == code => e,
        other => panic!("expected {code:?}, got {other:?}"),
    }
}

/// Logs a raw connection in as a new account.
async fn raw_login(s: &TestServer, t: Transport, account: &str) -> Raw {
    let mut raw = Raw::connect_to(s, t).await;
    raw.send(
        1,
        Request::Register {
            account: Account::try_from(account).unwrap(),
            password: parley_protocol::values::NewPassword::try_from("password-123").unwrap(),
            device: device("raw"),
        },
    )
    .await;
    assert!(matches!(raw.response(1).await, Response::Login(_)));
    raw
}

async fn malformed_and_oversized_frames_do_not_disturb_a_chat(t: Transport) {
    let s = TestServer::start().await;
    let (alice, _a) = s.register(t, "alice").await;
    let (_bob, mut bob_ev) = s.register(t, "bob").await;
    let conv = alice
        .open_direct(PeerRef::Account(Account::try_from("bob").unwrap()))
        .await
        .unwrap();

    // A chat runs while the attacker misbehaves.
    const N: u64 = 50;
    let chat = tokio::spawn(async move {
        for i in 0..N {
            alice
                .send(conv.id, ContentType::Text, Bytes::from(format!("m{i}")))
                .await
                .unwrap();
        }
    });

    let mut evil = raw_login(&s, t, "mallory").await;
    // Not protobuf: an error, and the connection stays usable.
    evil.send_bytes(&[0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff]).await;
    let Some(ServerFrame::Push(Push::Error(e))) = evil.recv().await else {
        panic!("expected an error frame for a malformed frame");
    };
    assert_eq!(e.code, ErrorCode::BadFrame);
    assert!(!e.fatal);
    evil.send(2, Request::Ping { client_time_ms: 1 }).await;
    assert!(matches!(evil.response(2).await, Response::Pong { .. }));
    // Request id 0.
    // Frame { ping = Ping {} } with request_id absent (0): field 17, length 0.
    evil.send_bytes(&[0, 0, 0, 3, 0x8a, 0x01, 0x00]).await;
    let Some(ServerFrame::Push(Push::Error(e))) = evil.recv().await else {
        panic!("expected an error for request id 0");
    };
    assert_eq!(e.code, ErrorCode::BadRequestId);

    // Oversized: an error, then GoAway, then the server closes the connection.
    evil.send_bytes(&(64u32 << 20).to_be_bytes()).await;
    let Some(ServerFrame::Push(Push::Error(e))) = evil.recv().await else {
        panic!("expected an error frame for an oversized frame");
    };
    assert_eq!(e.code, ErrorCode::FrameTooLarge);
    assert!(e.fatal);
    let Some(ServerFrame::Push(Push::GoAway { reason, .. })) = evil.recv().await else {
        panic!("expected GoAway");
    };
    assert_eq!(reason, GoAwayReason::ProtocolError);
    assert!(evil.recv().await.is_none(), "connection closed");

    // The chat was unaffected: every message, in order.
    for i in 0..N {
        let m = next_message(&mut bob_ev).await;
        assert_eq!(
            (m.seq, m.content),
            (Seq(i + 1), Bytes::from(format!("m{i}")))
        );
    }
    chat.await.unwrap();
    s.stop().await;
}
both_transports!(frames, malformed_and_oversized_frames_do_not_disturb_a_chat);

async fn requests_need_login_and_membership(t: Transport) {
    let s = TestServer::start().await;
    let (alice, _a) = s.register(t, "alice").await;
    let (_bob, _b) = s.register(t, "bob").await;
    let conv = alice
        .open_direct(PeerRef::Account(Account::try_from("bob").unwrap()))
        .await
        .unwrap();

    // Before login: only login-type requests and ping.
    let mut anon = Raw::connect_to(&s, t).await;
    anon.send(1, send(conv.id, "c1")).await;
    expect_error(anon.response(1).await, ErrorCode::Unauthenticated);
    anon.send(2, Request::Sync(SyncRequest::default())).await;
    expect_error(anon.response(2).await, ErrorCode::Unauthenticated);
    // Wrong password and unknown token.
    anon.send(
        3,
        Request::Login {
            credential: Credential::Password {
                account: Account::try_from("alice").unwrap(),
                password: parley_protocol::values::Password::try_from("wrong-password").unwrap(),
            },
            device: device("x"),
        },
    )
    .await;
    expect_error(anon.response(3).await, ErrorCode::AuthFailed);
    anon.send(
        4,
        Request::Login {
            credential: Credential::AccessToken("0".repeat(64)),
            device: device("x"),
        },
    )
    .await;
    expect_error(anon.response(4).await, ErrorCode::AuthFailed);

    // Logged in, but not a member of alice and bob's conversation: it does not exist for her.
    let mut eve = raw_login(&s, t, "eve").await;
    eve.send(2, send(conv.id, "c1")).await;
    expect_error(eve.response(2).await, ErrorCode::NotFound);
    eve.send(
        3,
        Request::CursorAck {
            conversation: conv.id,
            kind: parley_protocol::frames::CursorKind::Read,
            seq: Seq(1),
        },
    )
    .await;
    expect_error(eve.response(3).await, ErrorCode::NotFound);
    eve.send(
        4,
        Request::Typing {
            conversation: conv.id,
        },
    )
    .await;
    expect_error(eve.response(4).await, ErrorCode::NotFound);
    // Unknown conversation.
    let nowhere = ConversationId::try_from(9_999_999).unwrap();
    eve.send(5, send(nowhere, "c2")).await;
    expect_error(eve.response(5).await, ErrorCode::NotFound);
    // Sync never shows conversations she is not in.
    eve.send(6, Request::Sync(SyncRequest::default())).await;
    let Response::Sync(page) = eve.response(6).await else {
        panic!("sync failed");
    };
    assert!(page.conversations.is_empty() && page.messages.is_empty());
    // A second login on a logged-in connection is refused.
    eve.send(
        7,
        Request::Login {
            credential: Credential::AccessToken("t".into()),
            device: device("raw"),
        },
    )
    .await;
    expect_error(eve.response(7).await, ErrorCode::AlreadyLoggedIn);
    // Oversized content is refused with a clear code, and the session goes on.
    let big = Request::Send(SendRequest {
        conversation: conv.id,
        content_type: ContentType::Text,
        content: Bytes::from(vec![0u8; 64 * 1024 + 1]),
        client_msg_id: ClientMsgId::try_from("big").unwrap(),
        reply_to: Seq::ZERO,
        mentions: vec![],
        mention_all: false,
    });
    eve.send(8, big).await;
    expect_error(eve.response(8).await, ErrorCode::MessageTooLarge);
    eve.send(9, Request::Ping { client_time_ms: 0 }).await;
    assert!(matches!(eve.response(9).await, Response::Pong { .. }));
    s.stop().await;
}
both_transports!(authorization, requests_need_login_and_membership);

async fn requests_beyond_the_rate_limit_are_refused(t: Transport) {
    let s = TestServer::start_with(|c| c.limits.requests_per_second = 5).await;
    let mut raw = raw_login(&s, t, "hasty").await;
    // The burst allowance is twice the rate; pipeline far more than that at once.
    for id in 2..=41 {
        raw.send(id, Request::Ping { client_time_ms: id }).await;
    }
    let mut pongs = 0;
    let mut limited = 0;
    for id in 2..=41 {
        match raw.response(id).await {
            Response::Pong { .. } => pongs += 1,
            Response::Error(e) if e.code == ErrorCode::RateLimited && !e.fatal => limited += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(limited > 0, "some requests were refused");
    assert!((9..40).contains(&pongs), "the burst went through: {pongs}");
    s.stop().await;
}
both_transports!(rate_limit, requests_beyond_the_rate_limit_are_refused);
