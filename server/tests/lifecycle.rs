//! Connection lifecycle: idle connections are reaped, shutdown says GoAway, and a consumer too
//! slow for its push queue is told to sync and loses nothing. Each over TLS-TCP and QUIC.
//! Idle TCP and TLS sessions sleep without a task and wake for frames, pushes, their heartbeat
//! deadline and shutdown.
#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::raw::Raw;
use common::TestServer;
use parley_client::Transport;
use parley_protocol::frames::{
    ContentType, Device, GoAwayReason, PeerRef, Platform, Push, Request, Response, ServerFrame,
    SyncRequest,
};
use parley_protocol::ids::{Account, DeviceId, Seq};

async fn login(s: &TestServer, t: Transport, account: &str) -> Raw {
    let mut raw = Raw::connect_to(s, t).await;
    raw.send(
        1,
        Request::Register {
            account: Account::try_from(account).unwrap(),
            password: parley_protocol::values::NewPassword::try_from("password-123").unwrap(),
            device: Device {
                id: DeviceId::try_from("raw").unwrap(),
                platform: Platform::Cli,
            },
        },
    )
    .await;
    let Response::Login(login) = raw.response(1).await else {
        panic!("login failed");
    };
    assert_eq!(login.heartbeat_interval, INTERVAL);
    raw
}

const INTERVAL: Duration = Duration::from_millis(500);

/// The next frame is GoAway for `reason`, then the server closes the connection.
async fn expect_go_away(raw: &mut Raw, reason: GoAwayReason) {
    let frame = raw.recv().await;
    assert!(
        matches!(&frame, Some(ServerFrame::Push(Push::GoAway { reason: r, .. })) if *r == reason),
        "expected GoAway({reason:?}), got {frame:?}"
    );
    assert!(raw.recv().await.is_none());
}

async fn silent_connection_is_reaped(t: Transport) {
    let s = TestServer::start_with(|c| {
        c.heartbeat.interval = INTERVAL;
        c.heartbeat.timeout = Duration::from_millis(1500);
    })
    .await;
    let mut raw = login(&s, t, "sleepy").await;
    // Say nothing: the server gives up after the timeout with GoAway(IdleTimeout), then closes.
    expect_go_away(&mut raw, GoAwayReason::IdleTimeout).await;
    // The session left the router before the connection closed: nothing keeps queueing for it.
    assert_eq!(common::sessions_online(&s).await, 0);
    s.stop().await;
}
both_transports!(idle_reaped, silent_connection_is_reaped);

async fn shutdown_sends_go_away(t: Transport) {
    let s = TestServer::start_with(|c| c.heartbeat.interval = INTERVAL).await;
    let mut raw = login(&s, t, "stayer").await;
    let stopping = tokio::spawn(s.stop());
    expect_go_away(&mut raw, GoAwayReason::Shutdown).await;
    stopping.await.unwrap();
}
both_transports!(go_away_on_shutdown, shutdown_sends_go_away);

async fn slow_consumer_is_told_to_sync_and_loses_nothing(t: Transport) {
    let s = TestServer::start_with(|c| {
        c.heartbeat.interval = INTERVAL;
        c.limits.outbound_queue = 4;
    })
    .await;
    let (alice, _a) = s.register(t, "alice").await;
    // Bob logs in on a raw connection and then does not read at all.
    let mut bob = login(&s, t, "bob").await;
    let conv = alice
        .open_direct(PeerRef::Account(Account::try_from("bob").unwrap()))
        .await
        .unwrap();
    // Far more than the socket buffers and the 4-slot queue can hold.
    const N: u64 = 300;
    let payload = Bytes::from(vec![b'p'; 60 * 1024]);
    for _ in 0..N {
        alice
            .send(conv.id, ContentType::Text, payload.clone())
            .await
            .unwrap();
    }
    // Bob reads now: a prefix of the messages in order, then SyncNeeded.
    let mut last = Seq::ZERO;
    loop {
        match bob.recv().await.expect("connection stays open") {
            ServerFrame::Push(Push::Message(m)) => {
                assert_eq!(m.seq, last.next(), "pushes arrive in order without gaps");
                last = m.seq;
            }
            ServerFrame::Push(Push::SyncNeeded) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        last < Seq(N),
        "the queue overflowed, so not everything was pushed"
    );
    // Sync from where the pushes stopped returns the rest.
    let mut have = last;
    let mut id = 10;
    while have < Seq(N) {
        id += 1;
        bob.send(
            id,
            Request::Sync(SyncRequest {
                epoch: 0,
                positions: vec![(conv.id, have)],
                limit: 50,
                from_conversation: None,
            }),
        )
        .await;
        let Response::Sync(page) = bob.response(id).await else {
            panic!("sync failed");
        };
        for m in &page.messages {
            assert_eq!(m.seq, have.next());
            have = m.seq;
        }
        assert_eq!(page.has_more, have < Seq(N));
    }
    s.stop().await;
}
both_transports!(
    slow_consumer,
    slow_consumer_is_told_to_sync_and_loses_nothing
);

/// Waits until the server reports `n` sessions asleep.
async fn until_asleep(s: &TestServer, n: u64) {
    tokio::time::timeout(common::WAIT, async {
        while common::stat(s, "sessions_asleep").await != n {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{n} sessions asleep in time"));
}

async fn sleeping_sessions_wake_for_everything(t: Transport) {
    let s = TestServer::start_with(|c| {
        c.heartbeat.interval = INTERVAL;
        c.heartbeat.timeout = Duration::from_millis(1500);
        c.heartbeat.park_after = Duration::from_millis(20);
    })
    .await;
    let mut bob = login(&s, t, "bob").await;
    let mut carol = login(&s, t, "carol").await;
    // Carol opens the conversation while both are awake enough to answer.
    carol
        .send(
            2,
            Request::OpenDirect(PeerRef::Account(Account::try_from("bob").unwrap())),
        )
        .await;
    let Response::Conversation(conv) = carol.response(2).await else {
        panic!("open_direct failed");
    };
    until_asleep(&s, 2).await;
    let wakes = common::stat(&s, "session_wakes_total").await;

    // Bytes wake Carol; the commit's push wakes Bob, who gets the message.
    carol
        .send(
            3,
            Request::Send(parley_protocol::frames::SendRequest {
                conversation: conv.id,
                content_type: ContentType::Text,
                content: Bytes::from_static(b"wake up"),
                client_msg_id: parley_protocol::ids::ClientMsgId::try_from("m1").unwrap(),
                reply_to: Seq::ZERO,
                mentions: vec![],
                mention_all: false,
            }),
        )
        .await;
    assert!(matches!(carol.response(3).await, Response::SendAck(_)));
    match bob.recv().await {
        Some(ServerFrame::Push(Push::Message(m))) => assert_eq!(&m.content[..], b"wake up"),
        other => panic!("expected the message, got {other:?}"),
    }
    // Bob's own frame wakes him again.
    until_asleep(&s, 2).await;
    bob.send(4, Request::Ping { client_time_ms: 7 }).await;
    assert!(matches!(
        bob.response(4).await,
        Response::Pong {
            client_time_ms: 7,
            ..
        }
    ));
    until_asleep(&s, 2).await;
    assert!(common::stat(&s, "session_wakes_total").await >= wakes + 3);

    // Silence: the deadline wakes both to say GoAway(IdleTimeout).
    for raw in [&mut bob, &mut carol] {
        expect_go_away(raw, GoAwayReason::IdleTimeout).await;
    }
    assert_eq!(common::sessions_online(&s).await, 0);
    assert_eq!(common::stat(&s, "sessions_asleep").await, 0);

    // Shutdown wakes a sleeper to say GoAway(Shutdown).
    let mut dave = login(&s, t, "dave").await;
    until_asleep(&s, 1).await;
    let stopping = tokio::spawn(s.stop());
    expect_go_away(&mut dave, GoAwayReason::Shutdown).await;
    stopping.await.unwrap();
}

mod sleeping_sessions {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tls() {
        super::sleeping_sessions_wake_for_everything(parley_client::Transport::Tls).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn plain_tcp() {
        super::sleeping_sessions_wake_for_everything(parley_client::Transport::PlainTcp).await;
    }
}
