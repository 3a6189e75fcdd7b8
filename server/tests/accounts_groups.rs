//! Accounts (tokens, refresh, logout), group membership, typing and the store epoch, through the
//! SDK and raw frames against a real server, over TLS-TCP and QUIC.
#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

mod common;

use bytes::Bytes;
use common::raw::Raw;
use common::{next_message, wait_for, TestServer};
use parley_client::{Credentials, Event, Transport};
use parley_protocol::frames::{
    ContentType, ConversationEvent, ConversationKind, Credential, Device, PeerRef, Platform,
    Request, Response, SyncRequest,
};
use parley_protocol::ids::{DeviceId, Seq};
use parley_protocol::ErrorCode;

fn device(id: &str) -> Device {
    Device {
        id: DeviceId::try_from(id).unwrap(),
        platform: Platform::Desktop,
    }
}

async fn tokens_refresh_and_logout(t: Transport) {
    let s = TestServer::start().await;
    let (alice, _ev) = s.register(t, "alice").await;
    let login = alice.login_result();
    assert!(!login.access_token.is_empty() && !login.refresh_token.is_empty());
    assert!(login.access_expires_at_ms < login.refresh_expires_at_ms);
    alice.close().await;

    // The access token logs a new connection of the same device in, cheaply.
    let (again, _ev) = tokio::time::timeout(
        common::WAIT,
        parley_client::Client::connect(
            s.config(t, "dev-1"),
            Credentials::Token(login.access_token.clone()),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(again.user_id(), login.user);
    again.close().await;

    // A token is bound to its device.
    let mut raw = Raw::connect_to(&s, t).await;
    raw.send(
        1,
        Request::Login {
            credential: Credential::AccessToken(login.access_token.clone()),
            device: device("other-device"),
        },
    )
    .await;
    assert!(matches!(raw.response(1).await, Response::Error(e) if e.code == ErrorCode::AuthFailed));

    // Refresh trades the refresh token for a new pair and revokes the old one.
    raw.send(
        2,
        Request::Refresh {
            refresh_token: login.refresh_token.clone(),
            device: device("dev-1"),
        },
    )
    .await;
    let Response::Login(fresh) = raw.response(2).await else {
        panic!("refresh failed");
    };
    assert_ne!(fresh.access_token, login.access_token);
    let mut raw2 = Raw::connect_to(&s, t).await;
    raw2.send(
        1,
        Request::Login {
            credential: Credential::AccessToken(login.access_token.clone()),
            device: device("dev-1"),
        },
    )
    .await;
    assert!(
        matches!(raw2.response(1).await, Response::Error(e) if e.code == ErrorCode::AuthFailed)
    );

    // Logout revokes the device's tokens and closes the connection.
    raw.send(3, Request::Logout).await;
    assert!(matches!(raw.response(3).await, Response::Ok));
    let mut raw3 = Raw::connect_to(&s, t).await;
    raw3.send(
        1,
        Request::Login {
            credential: Credential::AccessToken(fresh.access_token.clone()),
            device: device("dev-1"),
        },
    )
    .await;
    assert!(
        matches!(raw3.response(1).await, Response::Error(e) if e.code == ErrorCode::AuthFailed)
    );
    s.stop().await;
}
both_transports!(tokens, tokens_refresh_and_logout);

async fn group_membership_changes(t: Transport) {
    let s = TestServer::start().await;
    let (alice, _a) = s.register(t, "alice").await;
    let (bob, mut bob_ev) = s.register(t, "bob").await;
    let (carol, mut carol_ev) = s.register(t, "carol").await;
    let group = alice
        .create_group("team", vec![bob.user_id()])
        .await
        .unwrap();
    alice
        .send(
            group.id,
            ContentType::Text,
            Bytes::from_static(b"before carol"),
        )
        .await
        .unwrap();
    // Seq 1 is the group's `Created` event (naming its first members), seq 2 the message.
    let created = next_message(&mut bob_ev).await;
    assert_eq!(
        (created.seq, created.event.as_deref()),
        (
            Seq(1),
            Some(&ConversationEvent::Created {
                name: "team".into(),
                members: vec![alice.user_id(), bob.user_id()],
            })
        )
    );
    assert_eq!(next_message(&mut bob_ev).await.seq, Seq(2));

    // Only the owner adds members; carol sees the group from her join on, not the history.
    let err = bob
        .change_members(group.id, vec![carol.user_id()], vec![])
        .await
        .unwrap_err();
    assert_eq!(err.server_code(), Some(ErrorCode::Forbidden));
    alice
        .change_members(group.id, vec![carol.user_id()], vec![])
        .await
        .unwrap();
    // The change is an entry of the group's log (seq 3), pushed to every member.
    let joined = ConversationEvent::Membership {
        added: vec![carol.user_id()],
        removed: vec![],
    };
    for events in [&mut carol_ev, &mut bob_ev] {
        let m = next_message(events).await;
        assert_eq!(
            (m.seq, m.sender, m.content_type),
            (Seq(3), alice.user_id(), ContentType::System)
        );
        assert_eq!(m.event.as_deref(), Some(&joined));
    }
    let ack = alice
        .send(group.id, ContentType::Text, Bytes::from_static(b"welcome"))
        .await
        .unwrap();
    let m = next_message(&mut carol_ev).await;
    assert_eq!(
        (m.seq, m.content),
        (ack.seq, Bytes::from_static(b"welcome"))
    );
    let summary = carol.sync().await.unwrap();
    let info = summary
        .conversations
        .iter()
        .find(|c| c.id == group.id)
        .unwrap();
    assert_eq!(
        (info.visible_from, info.head, info.members.len()),
        (Seq(3), Seq(4), 3)
    );

    // Typing is relayed, not stored.
    bob.typing(group.id).await.unwrap();
    let who = wait_for(&mut carol_ev, |e| match e {
        Event::Typing { conversation, user } if *conversation == group.id => Some(*user),
        _ => None,
    })
    .await;
    assert_eq!(who, bob.user_id());

    // A member may leave; then the group is gone for them. Everyone, the one who left
    // included, gets the event.
    bob.change_members(group.id, vec![], vec![bob.user_id()])
        .await
        .unwrap();
    let left = ConversationEvent::Membership {
        added: vec![],
        removed: vec![bob.user_id()],
    };
    let m = wait_for(&mut carol_ev, |e| match e {
        Event::Message(m) if m.event.is_some() => Some(m.clone()),
        _ => None,
    })
    .await;
    assert_eq!((m.seq, m.event.as_deref()), (Seq(5), Some(&left)));
    let m = wait_for(&mut bob_ev, |e| match e {
        Event::Message(m) if m.event.is_some() && m.seq == Seq(5) => Some(m.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        m.event.as_deref(),
        Some(&left),
        "the one who left hears it too"
    );
    let err = bob
        .send(
            group.id,
            ContentType::Text,
            Bytes::from_static(b"still here?"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.server_code(), Some(ErrorCode::NotFound));
    s.stop().await;
}
both_transports!(groups, group_membership_changes);

/// "Get my conversation list", the operation added through the request service: conversations
/// with entries first (newest activity first), each with the caller's own cursors.
async fn conversation_list(t: Transport) {
    let s = TestServer::start().await;
    let (alice, _a) = s.register(t, "alice").await;
    let (bob, mut bob_ev) = s.register(t, "bob").await;
    let group = alice
        .create_group("quiet", vec![bob.user_id()])
        .await
        .unwrap();
    let direct = alice
        .open_direct(PeerRef::User(bob.user_id()))
        .await
        .unwrap();
    alice
        .send(direct.id, ContentType::Text, Bytes::from_static(b"hi"))
        .await
        .unwrap();
    next_message(&mut bob_ev).await;

    let list = bob.list_conversations().await.unwrap();
    let seen: Vec<_> = list
        .iter()
        .map(|c| (c.id, c.kind, c.head, c.unread))
        .collect();
    assert_eq!(
        seen,
        vec![
            (direct.id, ConversationKind::Direct, Seq(1), 1),
            // Its only entry: the `Created` event.
            (group.id, ConversationKind::Group, Seq(1), 1),
        ]
    );
    let mine = alice.list_conversations().await.unwrap();
    let ids: Vec<_> = mine.iter().map(|c| c.id).collect();
    assert_eq!(ids, vec![direct.id, group.id]);
    s.stop().await;
}
both_transports!(conversations, conversation_list);

async fn foreign_epoch_resets_sync(t: Transport) {
    let s = TestServer::start().await;
    let (alice, _a) = s.register(t, "alice").await;
    let epoch = alice.login_result().epoch;
    assert_ne!(epoch, 0);
    let group = alice.create_group("solo", vec![]).await.unwrap();
    alice
        .send(group.id, ContentType::Text, Bytes::from_static(b"x"))
        .await
        .unwrap();
    let page = |epoch| {
        Request::Sync(SyncRequest {
            epoch,
            // Seq 1 is the group's `Created` event, seq 2 the message.
            positions: vec![(group.id, Seq(2))],
            limit: 0,
            from_conversation: None,
        })
    };
    // Positions from this store are trusted...
    let Response::Sync(same) = alice.request(page(epoch)).await.unwrap() else {
        panic!("sync failed");
    };
    assert!(!same.reset && same.messages.is_empty());
    // ...positions from another store are not: everything comes back, flagged as a reset.
    let Response::Sync(other) = alice.request(page(epoch ^ 0xdead)).await.unwrap() else {
        panic!("sync failed");
    };
    assert!(other.reset);
    assert_eq!(other.epoch, epoch);
    assert_eq!(other.messages.len(), 2);
    s.stop().await;
}
both_transports!(epoch, foreign_epoch_resets_sync);

async fn client_reconnects_and_resends_across_a_restart(t: Transport) {
    let s = TestServer::start().await;
    let (alice, mut alice_ev) = s.register(t, "alice").await;
    let (bob, mut bob_ev) = s.register(t, "bob").await;
    let conv = alice
        .open_direct(parley_protocol::frames::PeerRef::User(bob.user_id()))
        .await
        .unwrap();
    for i in 0..5 {
        alice
            .send(conv.id, ContentType::Text, Bytes::from(format!("m{i}")))
            .await
            .unwrap();
    }
    // Sends made while the server is down are queued by the SDK, re-sent after it reconnects,
    // and resolve with their durable acks; nothing is lost or doubled.
    let sender = alice.clone();
    let mut pending = None;
    let s = s
        .restart_after(async {
            wait_for(&mut alice_ev, |e| {
                matches!(e, Event::Disconnected { .. }).then_some(())
            })
            .await;
            pending = Some(tokio::spawn(async move {
                let mut acks = Vec::new();
                for i in 5..10 {
                    let content = Bytes::from(format!("m{i}"));
                    acks.push(
                        sender
                            .send(conv.id, ContentType::Text, content)
                            .await
                            .unwrap(),
                    );
                }
                acks
            }));
        })
        .await;
    let acks = tokio::time::timeout(common::WAIT, pending.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        acks.iter().map(|a| a.seq.get()).collect::<Vec<_>>(),
        vec![6, 7, 8, 9, 10]
    );
    for i in 0..10u64 {
        let m = next_message(&mut bob_ev).await;
        assert_eq!(
            (m.seq, m.content),
            (Seq(i + 1), Bytes::from(format!("m{i}")))
        );
    }
    s.stop().await;
}
both_transports!(reconnect, client_reconnects_and_resends_across_a_restart);
