//! A data directory written by the server before conversation events existed (commit 6366c2c:
//! membership changed in sled only, messages without an `event` field) opens unchanged, reads
//! back, and carries on with events. The fixture was made with that commit's store code (users
//! with password `password-123`, a 1:1 conversation of 3 messages, a group "old team" of alice
//! and bob with 2 messages, carol added from seq 3 the old way, then 1 more message).
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::{next_message, wait_for, TestServer};
use parley_client::{Event, Transport};
use parley_protocol::frames::{ContentType, ConversationEvent, ConversationKind};
use parley_protocol::ids::Seq;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/store-6366c2c.tar.gz"
);

fn unpack() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("tar")
        .args(["-xzf", FIXTURE, "-C"])
        .arg(dir.path())
        .status()
        .expect("tar runs");
    assert!(status.success(), "unpacking {FIXTURE}");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_from_before_conversation_events_opens_and_carries_on() {
    let s = TestServer::start_in(unpack()).await;
    let t = Transport::Tls;
    let (alice, mut alice_ev) = s.login(t, "alice", "new-phone").await;
    let (carol, mut carol_ev) = s.login(t, "carol", "new-phone").await;

    // Everything written by the old server reads back.
    let mut list = alice.list_conversations().await.unwrap();
    list.sort_by_key(|c| c.id);
    let heads: Vec<_> = list.iter().map(|c| (c.kind, c.head)).collect();
    assert_eq!(
        heads,
        vec![
            (ConversationKind::Direct, Seq(3)),
            (ConversationKind::Group, Seq(3))
        ]
    );
    let (direct, group) = (list[0].id, list[1].id);
    let mut texts = Vec::new();
    for _ in 0..6 {
        let m = next_message(&mut alice_ev).await;
        texts.push((m.conversation, m.seq.get(), m.content));
    }
    texts.sort();
    let text = |s: &'static str| Bytes::from_static(s.as_bytes());
    assert_eq!(
        texts,
        vec![
            (direct, 1, text("old 1")),
            (direct, 2, text("old 2")),
            (direct, 3, text("old 3")),
            (group, 1, text("before carol")),
            (group, 2, text("still before")),
            (group, 3, text("welcome carol")),
        ]
    );
    let info = carol.list_conversations().await.unwrap();
    assert_eq!(
        (info.len(), info[0].id, info[0].visible_from),
        (1, group, Seq(3))
    );

    // Sends continue the old seqs.
    let ack = alice
        .send(direct, ContentType::Text, Bytes::from_static(b"new 4"))
        .await
        .unwrap();
    assert_eq!(ack.seq, Seq(4));

    // A membership change on the old group is now an event at the next seq.
    let (bob_id, carol_id) = (list[1].members[1], carol.user_id());
    alice
        .change_members(group, vec![], vec![bob_id])
        .await
        .unwrap();
    let m = wait_for(&mut carol_ev, |e| match e {
        Event::Message(m) if m.event.is_some() => Some(m.clone()),
        _ => None,
    })
    .await;
    assert_eq!(m.seq, Seq(4));
    assert_eq!(
        m.event.as_deref(),
        Some(&ConversationEvent::Membership {
            added: vec![],
            removed: vec![bob_id]
        })
    );
    let group_now = carol.list_conversations().await.unwrap();
    assert_eq!(group_now[0].members, vec![alice.user_id(), carol_id]);

    // And all of it survives a restart.
    let s = s.restart().await;
    let (again, _e) = s.login(t, "alice", "tablet").await;
    let mut list = again.list_conversations().await.unwrap();
    list.sort_by_key(|c| c.id);
    assert_eq!((list[0].head, list[1].head), (Seq(4), Seq(4)));
    assert_eq!(list[1].members.len(), 2);
    s.stop().await;
}
