//! End-to-end chat through the SDK against a real server, each over TLS-TCP and QUIC.
#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

mod common;

use bytes::Bytes;
use common::{next_message, wait_for, TestServer};
use parley_client::{new_client_msg_id, Event, Transport};
use parley_protocol::frames::{ContentType, CursorKind, PeerRef, SendRequest};
use parley_protocol::ids::{Account, ClientMsgId, Seq};

fn account(name: &str) -> PeerRef {
    PeerRef::Account(Account::try_from(name).expect("account"))
}

fn text(s: String) -> Bytes {
    Bytes::from(s)
}

async fn two_users_chat_both_ways(t: Transport) {
    let s = TestServer::start().await;
    let (alice, mut alice_ev) = s.register(t, "alice").await;
    let (bob, mut bob_ev) = s.register(t, "bob").await;
    let conv = alice.open_direct(account("bob")).await.unwrap();
    let same = bob
        .open_direct(PeerRef::User(alice.user_id()))
        .await
        .unwrap();
    assert_eq!(
        conv.id, same.id,
        "both users derive the same 1:1 conversation"
    );

    for i in 0..5u64 {
        let ack = alice
            .send(conv.id, ContentType::Text, text(format!("hi {i}")))
            .await
            .unwrap();
        assert_eq!(ack.seq, Seq(2 * i + 1));
        let got = next_message(&mut bob_ev).await;
        assert_eq!(
            (got.seq, got.id, got.sender),
            (ack.seq, ack.message_id, alice.user_id())
        );
        assert_eq!(got.content, text(format!("hi {i}")));

        let ack = bob
            .send(conv.id, ContentType::Text, text(format!("yo {i}")))
            .await
            .unwrap();
        assert_eq!(ack.seq, Seq(2 * i + 2));
        let got = next_message(&mut alice_ev).await;
        assert_eq!((got.seq, got.sender), (ack.seq, bob.user_id()));
        assert_eq!(got.content, text(format!("yo {i}")));
    }
    alice.close().await;
    bob.close().await;
    s.stop().await;
}
both_transports!(two_users_chat, two_users_chat_both_ways);

async fn group_of_three_same_order(t: Transport) {
    let s = TestServer::start().await;
    let (alice, mut a_ev) = s.register(t, "alice").await;
    let (bob, mut b_ev) = s.register(t, "bob").await;
    let (carol, mut c_ev) = s.register(t, "carol").await;
    let group = alice
        .create_group("trio", vec![bob.user_id(), carol.user_id()])
        .await
        .unwrap();
    assert_eq!(group.members.len(), 3);

    // All three send at once; the server orders everything into one sequence.
    const EACH: usize = 20;
    let send_all = |client: parley_client::Client, who: &'static str| async move {
        let mut acks = Vec::new();
        for i in 0..EACH {
            let ack = client
                .send(group.id, ContentType::Text, text(format!("{who} {i}")))
                .await
                .unwrap();
            acks.push(ack.seq);
        }
        acks
    };
    let (a_acks, b_acks, c_acks) = tokio::join!(
        send_all(alice.clone(), "alice"),
        send_all(bob.clone(), "bob"),
        send_all(carol.clone(), "carol")
    );
    // Each member receives the group's `Created` event (seq 1), then everyone else's messages,
    // in increasing seq order; together with its own acks that is exactly 2..=61.
    for (own, events) in [
        (&a_acks, &mut a_ev),
        (&b_acks, &mut b_ev),
        (&c_acks, &mut c_ev),
    ] {
        let created = next_message(events).await;
        assert_eq!(
            (created.seq, created.content_type),
            (Seq(1), ContentType::System)
        );
        let mut seen = Vec::new();
        for _ in 0..2 * EACH {
            let m = next_message(events).await;
            assert_eq!(m.conversation, group.id);
            seen.push(m.seq);
        }
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "pushes out of order: {seen:?}"
        );
        let mut all: Vec<Seq> = seen.iter().chain(own.iter()).copied().collect();
        all.sort();
        assert_eq!(all, (2..=3 * EACH as u64 + 1).map(Seq).collect::<Vec<_>>());
    }
    s.stop().await;
}
both_transports!(group_of_three, group_of_three_same_order);

async fn offline_user_catches_up_by_sync(t: Transport) {
    let s = TestServer::start().await;
    let (alice, _a_ev) = s.register(t, "alice").await;
    let (bob, bob_ev) = s.register(t, "bob").await;
    let conv = alice.open_direct(account("bob")).await.unwrap();
    bob.close().await;
    drop(bob_ev);

    for i in 0..100 {
        alice
            .send(conv.id, ContentType::Text, text(format!("m{i}")))
            .await
            .unwrap();
    }
    // Every send went through a group commit, and the commit counters say so.
    assert_eq!(common::stat(&s, "commit_items_total").await, 100);
    let batches = common::stat(&s, "commit_batches_total").await;
    assert!(batches >= 100, "{batches} batches for 100 sequential sends");
    assert!(common::stat(&s, "commit_batch_max").await >= 1);
    assert!(common::stat(&s, "commit_sync_us_total").await > 0);
    // Bob comes back: the SDK syncs after login; all 100 arrive, gapless and in order.
    let (_bob, mut bob_ev) = s.login(t, "bob", "dev-1").await;
    for i in 0..100u64 {
        let m = next_message(&mut bob_ev).await;
        assert_eq!(m.seq, Seq(i + 1));
        assert_eq!(m.content, text(format!("m{i}")));
    }
    s.stop().await;
}
both_transports!(offline_catch_up, offline_user_catches_up_by_sync);

async fn second_device_gets_pushes_and_read_cursor(t: Transport) {
    let s = TestServer::start().await;
    let (phone, mut phone_ev) = s.register(t, "alice").await;
    let (laptop, mut laptop_ev) = s.login(t, "alice", "laptop").await;
    let (bob, mut bob_ev) = s.register(t, "bob").await;
    let conv = bob.open_direct(account("alice")).await.unwrap();

    // A message from bob reaches both of alice's devices.
    let ack = bob
        .send(conv.id, ContentType::Text, text("hello".into()))
        .await
        .unwrap();
    assert_eq!(next_message(&mut phone_ev).await.seq, ack.seq);
    assert_eq!(next_message(&mut laptop_ev).await.seq, ack.seq);

    // A message alice sends from her phone reaches her laptop and bob, not the phone itself.
    let mine = phone
        .send(conv.id, ContentType::Text, text("from phone".into()))
        .await
        .unwrap();
    let on_laptop = next_message(&mut laptop_ev).await;
    assert_eq!(
        (on_laptop.seq, on_laptop.sender_device.as_str()),
        (mine.seq, "dev-1")
    );
    assert_eq!(next_message(&mut bob_ev).await.seq, mine.seq);

    // Bob sends two more; alice reads them on the phone: the laptop learns the read cursor (and
    // the unread count), bob gets a read receipt.
    bob.send(conv.id, ContentType::Text, text("one".into()))
        .await
        .unwrap();
    let last = bob
        .send(conv.id, ContentType::Text, text("two".into()))
        .await
        .unwrap();
    phone
        .ack(conv.id, CursorKind::Read, last.seq)
        .await
        .unwrap();
    let (seq, unread) = wait_for(&mut laptop_ev, |e| match e {
        Event::Receipt(r) if r.kind == CursorKind::Read && r.user == phone.user_id() => {
            Some((r.seq, r.unread))
        }
        _ => None,
    })
    .await;
    assert_eq!((seq, unread), (last.seq, 0));
    let seq = wait_for(&mut bob_ev, |e| match e {
        Event::Receipt(r) if r.kind == CursorKind::Read && r.user == phone.user_id() => Some(r.seq),
        _ => None,
    })
    .await;
    assert_eq!(seq, last.seq);
    // The cursor is the same on every device: a sync from the laptop shows it.
    let summary = laptop.sync().await.unwrap();
    let info = summary
        .conversations
        .iter()
        .find(|c| c.id == conv.id)
        .unwrap();
    assert_eq!((info.read, info.unread, info.head), (last.seq, 0, last.seq));
    s.stop().await;
}
both_transports!(second_device, second_device_gets_pushes_and_read_cursor);

async fn resent_client_msg_id_is_not_duplicated(t: Transport) {
    let s = TestServer::start().await;
    let (alice, _a) = s.register(t, "alice").await;
    let (bob, mut bob_ev) = s.register(t, "bob").await;
    let conv = alice.open_direct(account("bob")).await.unwrap();
    let request = SendRequest {
        conversation: conv.id,
        content_type: ContentType::Text,
        content: text("once".into()),
        client_msg_id: ClientMsgId::try_from("retry-me").unwrap(),
        reply_to: Seq::ZERO,
        mentions: vec![],
        mention_all: false,
    };
    let first = alice.send_request(request.clone()).await.unwrap();
    let again = alice.send_request(request.clone()).await.unwrap();
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!((again.message_id, again.seq), (first.message_id, first.seq));
    let next = alice
        .send_request(SendRequest {
            client_msg_id: new_client_msg_id(),
            content: text("next".into()),
            ..request
        })
        .await
        .unwrap();
    assert_eq!(next.seq, first.seq.next(), "the duplicate consumed no seq");
    // Bob sees exactly two messages.
    assert_eq!(next_message(&mut bob_ev).await.content, text("once".into()));
    assert_eq!(next_message(&mut bob_ev).await.content, text("next".into()));
    let summary = bob.sync().await.unwrap();
    let info = summary
        .conversations
        .iter()
        .find(|c| c.id == conv.id)
        .unwrap();
    assert_eq!(info.head, Seq(2));
    s.stop().await;
}
both_transports!(idempotent_resend, resent_client_msg_id_is_not_duplicated);
