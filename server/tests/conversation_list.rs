//! The conversation list: ordering by activity, pins, mutes, hiding, the unread badge, last
//! entries and paging, identical on every device of the user.
#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

mod common;

use common::{wait_for, TestServer};
use parley_client::{Event, Transport};
use parley_protocol::frames::{ContentType, ConversationEvent, ConversationPrefs, PeerRef};

const T: Transport = Transport::Tls;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_pins_mutes_hiding_badge_and_paging() {
    let s = TestServer::start().await;
    let (alice, _a) = s.register(T, "alice").await;
    let (bob, _b) = s.register(T, "bob").await;
    let (carol, _c) = s.register(T, "carol").await;
    let with_bob = alice
        .open_direct(PeerRef::User(bob.user_id()))
        .await
        .unwrap()
        .id;
    let with_carol = alice
        .open_direct(PeerRef::User(carol.user_id()))
        .await
        .unwrap()
        .id;
    let group = bob
        .create_group("g", vec![alice.user_id(), carol.user_id()])
        .await
        .unwrap()
        .id;
    let text = |t: &str| bytes::Bytes::from(t.to_owned());
    bob.send(with_bob, ContentType::Text, text("b1"))
        .await
        .unwrap();
    bob.send(with_bob, ContentType::Text, text("b2"))
        .await
        .unwrap();
    carol
        .send(with_carol, ContentType::Text, text("c1"))
        .await
        .unwrap();
    carol
        .send(group, ContentType::Text, text("g1"))
        .await
        .unwrap();

    let ids = |page: &parley_client::ConversationPage| -> Vec<_> {
        page.conversations.iter().map(|c| c.id).collect()
    };
    let page = alice.conversation_page(0, 0).await.unwrap();
    assert_eq!(
        ids(&page),
        [group, with_carol, with_bob],
        "newest activity first"
    );
    // b1, b2, c1, g1 and the group's `Created` event.
    assert_eq!(page.total_unread, 5);
    assert_eq!(page.total, 3);
    let last = page.conversations[2].last_message.as_ref().unwrap();
    assert_eq!(last.content, "b2");

    // Paging.
    let second = alice.conversation_page(1, 1).await.unwrap();
    assert_eq!(ids(&second), [with_carol]);
    assert_eq!(second.total, 3);

    // Pin the oldest: it comes first. Mute one: the badge leaves it out.
    let (alice2, mut alice2_ev) = s.login(T, "alice", "dev-2").await;
    let pin = ConversationPrefs {
        pinned: Some(true),
        ..Default::default()
    };
    alice.set_conversation_prefs(with_bob, pin).await.unwrap();
    let mute = ConversationPrefs {
        muted: Some(true),
        ..Default::default()
    };
    alice.set_conversation_prefs(group, mute).await.unwrap();
    let page = alice.conversation_page(0, 0).await.unwrap();
    assert_eq!(ids(&page), [with_bob, group, with_carol]);
    assert!(page.conversations[0].pinned);
    assert!(page.conversations[1].muted);
    assert_eq!(page.total_unread, 3);

    // The other device hears it and lists the same.
    wait_for(&mut alice2_ev, |e| match e {
        Event::Message(m) => matches!(
            m.event.as_deref(),
            Some(ConversationEvent::Prefs { conversation, muted: Some(true), .. }) if *conversation == group
        )
        .then_some(()),
        _ => None,
    })
    .await;
    assert_eq!(
        ids(&alice2.conversation_page(0, 0).await.unwrap()),
        ids(&page)
    );

    // Hide: gone until its next entry.
    let hide = ConversationPrefs {
        hidden: Some(true),
        ..Default::default()
    };
    alice
        .set_conversation_prefs(with_carol, hide)
        .await
        .unwrap();
    let page = alice.conversation_page(0, 0).await.unwrap();
    assert_eq!(ids(&page), [with_bob, group]);
    carol
        .send(with_carol, ContentType::Text, text("c2"))
        .await
        .unwrap();
    let page = alice.conversation_page(0, 0).await.unwrap();
    assert_eq!(ids(&page), [with_bob, with_carol, group]);
    assert!(!page.conversations[1].hidden);

    // Reading clears the badge.
    alice
        .ack(
            with_carol,
            parley_protocol::frames::CursorKind::Read,
            parley_protocol::ids::Seq(2),
        )
        .await
        .unwrap();
    alice
        .ack(
            with_bob,
            parley_protocol::frames::CursorKind::Read,
            parley_protocol::ids::Seq(2),
        )
        .await
        .unwrap();
    assert_eq!(alice.conversation_page(0, 0).await.unwrap().total_unread, 0);
}

/// However many conversations and however large their last entries, a page fits in
/// `limits.max_sync_bytes` of encoded infos; `limit` 0 means "as many as fit", and paging by
/// `offset` reaches every conversation once (issue 15: pages bounded by their encoded size).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_bounded_by_their_encoded_size() {
    let s = TestServer::start().await;
    let budget = parley_server::config::Config::for_tests(std::path::Path::new("."))
        .limits
        .max_sync_bytes as usize;
    let (alice, _a) = s.register(T, "alice").await;
    let big = bytes::Bytes::from(vec![b'x'; 60_000]);
    let mut convs = Vec::new();
    // 20 conversations whose last entries are 60 kB each: 1.2 MB, over the 1 MiB budget.
    for i in 0..20 {
        let (peer, _e) = s.register(T, &format!("peer{i}")).await;
        let conv = peer
            .open_direct(PeerRef::User(alice.user_id()))
            .await
            .unwrap()
            .id;
        peer.send(conv, ContentType::Text, big.clone())
            .await
            .unwrap();
        convs.push(conv);
        peer.close().await;
    }
    let mut seen = Vec::new();
    let mut pages = 0;
    while seen.len() < convs.len() {
        let page = alice.conversation_page(0, seen.len() as u32).await.unwrap();
        assert_eq!(page.total, 20);
        assert!(!page.conversations.is_empty(), "a page holds at least one");
        let infos: usize = page
            .conversations
            .iter()
            .map(|c| c.last_message.as_ref().map_or(0, |m| m.content.len()))
            .sum();
        assert!(
            infos <= budget,
            "page {pages}: {infos} bytes of last entries, over the {budget}-byte budget"
        );
        seen.extend(page.conversations.iter().map(|c| c.id));
        pages += 1;
        assert!(pages <= 20, "paging does not end");
    }
    assert!(pages >= 2, "1.2 MB of last entries cannot fit in one page");
    seen.sort();
    convs.sort();
    assert_eq!(seen, convs, "every conversation once");
    alice.close().await;
    s.stop().await;
}
