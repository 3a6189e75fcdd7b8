//! Issue 15, item 1: sync could be made unusable for someone else. Anyone could put anyone into
//! groups (1,381 a second from one connection), every sync page listed every conversation, and
//! only message content counted against a page's budget: a victim's page grew past the client's
//! 16 MiB frame limit and that user could never sync again.
//!
//! These tests reproduce the attack against a real server and check the fix: every page is
//! bounded by its encoded size and the victim still gets everything over several pages (raw
//! pages and the SDK's rounds); a stranger's add is an invitation that shows nothing of the
//! group until accepted; and group creation and adds are rate-limited per account.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use common::{wait_for, TestServer};
use parley_client::{ClientError, Event, Page, Transport};
use parley_protocol::frames::{
    AddPolicy, ContentType, ConversationEvent, ConversationKind, GroupProfileChange, Request,
    Response, ServerFrame, SettingsChange, SyncRequest, FRAME_OVERHEAD,
};
use parley_protocol::ids::{ConversationId, RequestId, Seq};
use parley_protocol::ErrorCode;

const T: Transport = Transport::PlainTcp;

/// A page budget small enough that the attack needs only dozens of groups, not thousands.
const PAGE_BYTES: u32 = 128 * 1024;
const GROUPS: usize = 60;

#[tokio::test]
async fn a_victim_in_many_large_groups_syncs_everything_in_bounded_pages() {
    let server = TestServer::start_with(|c| {
        c.limits.max_sync_bytes = PAGE_BYTES;
        c.limits.max_group_members = 100;
        // The setup creates many groups from one account.
        c.limits.groups_burst = 1000;
        c.limits.group_adds_burst = 1000;
        c.rules.group_adds_need_consent = true;
    })
    .await;
    let (victim, _victim_events) = server.register(T, "victim").await;
    let (attacker, _events) = server.register(T, "attacker").await;
    // The victim's settings let anyone put it into groups: the rule the attacker passes.
    victim
        .update_settings(SettingsChange {
            add_policy: Some(AddPolicy::Anyone),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut groups = BTreeSet::new();
    for i in 0..GROUPS {
        let g = attacker
            .create_group(
                &format!("group {i} {}", "n".repeat(100)),
                vec![victim.user_id()],
            )
            .await
            .unwrap();
        attacker
            .update_group(
                g.id,
                GroupProfileChange {
                    announcement: Some("a".repeat(4000)),
                    description: Some("d".repeat(1000)),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        attacker
            .send(g.id, ContentType::Text, Bytes::from("m".repeat(1000)))
            .await
            .unwrap();
        groups.insert(g.id);
    }
    // Everything listed at once would be ~60 x 5 KiB of profiles alone: over the budget.

    // Raw pages: each within the budget, the round following `next_conversation_id`.
    let mut positions: BTreeMap<ConversationId, Seq> = BTreeMap::new();
    let mut listed: BTreeMap<ConversationId, Seq> = BTreeMap::new();
    let mut from = None;
    let mut epoch = 0;
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages <= 200, "the round does not end");
        let request = Request::Sync(SyncRequest {
            epoch,
            positions: positions.iter().map(|(c, s)| (*c, *s)).collect(),
            limit: 0,
            from_conversation: from,
        });
        let page = match victim.request(request).await.unwrap() {
            Response::Sync(p) => p,
            other => panic!("expected a sync page, got {other:?}"),
        };
        let id = RequestId::try_from(u64::MAX).unwrap();
        let frame = ServerFrame::Response(id, Response::Sync(page.clone())).encode();
        assert!(
            frame.len() <= PAGE_BYTES as usize + FRAME_OVERHEAD,
            "page {pages} is {} bytes",
            frame.len()
        );
        assert!(page.encoded_len() <= PAGE_BYTES as usize);
        epoch = page.epoch;
        for c in &page.conversations {
            listed.insert(c.id, c.head);
        }
        for m in &page.messages {
            let p = positions.entry(m.conversation).or_default();
            assert_eq!(m.seq.get(), p.get() + 1, "gapless per conversation");
            *p = m.seq;
        }
        if !page.has_more {
            break;
        }
        from = ConversationId::try_from(page.next_conversation_id).ok();
    }
    assert!(pages > 1, "the conversations took several pages");
    for g in &groups {
        let head = listed
            .get(g)
            .copied()
            .expect("every group listed in the round");
        assert_eq!(
            positions.get(g).copied(),
            Some(head),
            "all of group {g} synced"
        );
    }

    // The SDK follows the continuation by itself.
    let (again, mut events) = server.login(T, "victim", "dev-2").await;
    let summary = again.sync().await.unwrap();
    assert!(summary.pages > 1, "{} pages", summary.pages);
    let seen: BTreeSet<ConversationId> = summary.conversations.iter().map(|c| c.id).collect();
    assert!(groups.is_subset(&seen), "the SDK's round lists every group");
    // Every group's entries reached the application (its profile event and its message).
    let mut complete = BTreeSet::new();
    while complete.len() < groups.len() {
        let (conv, seq) = wait_for(&mut events, |e| match e {
            Event::Message(m) => Some((m.conversation, m.seq)),
            _ => None,
        })
        .await;
        if groups.contains(&conv) && Some(seq) == listed.get(&conv).copied() {
            complete.insert(conv);
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn a_strangers_add_is_an_invitation_the_victim_must_accept() {
    // The server's default (the test configuration turns it off for older tests).
    let server = TestServer::start_with(|c| c.rules.group_adds_need_consent = true).await;
    let (victim, mut victim_events) = server.register(T, "victim").await;
    let (mallory, _m) = server.register(T, "mallory").await;
    let (friend, _f) = server.register(T, "friend").await;

    // A stranger creating a group with the victim: the victim is invited, not a member.
    let g = mallory
        .create_group("spam", vec![victim.user_id()])
        .await
        .unwrap();
    assert_eq!(g.members, vec![mallory.user_id()]);
    let invite = wait_for(&mut victim_events, |e| match e {
        Event::Message(m) => match m.event.as_deref() {
            Some(ConversationEvent::GroupInvite { conversation, name }) => {
                Some((m.sender, *conversation, name.clone()))
            }
            _ => None,
        },
        _ => None,
    })
    .await;
    assert_eq!(invite, (mallory.user_id(), g.id, "spam".to_owned()));
    // Adding to an existing group: an invitation too.
    let h = mallory.create_group("more spam", vec![]).await.unwrap();
    mallory
        .change_members(h.id, vec![victim.user_id()], vec![])
        .await
        .unwrap();
    let members = mallory.list_members(h.id, 0, 0).await.unwrap();
    assert_eq!(members.total, 1, "only mallory is in");
    // Nothing of either group reaches the victim's sync.
    let summary = victim.sync().await.unwrap();
    let kinds: Vec<_> = summary
        .conversations
        .iter()
        .map(|c| (c.id, c.kind))
        .collect();
    assert!(
        kinds
            .iter()
            .all(|(id, k)| *id != g.id && *id != h.id && *k != ConversationKind::Group),
        "{kinds:?}"
    );
    // Mallory's messages there are not the victim's to read.
    let err = victim.history(g.id, Page::Latest, 10).await.unwrap_err();
    assert!(matches!(err, ClientError::Server(e) if e.code == ErrorCode::NotFound));

    // Declining ends the invitation: the private group is then closed to the victim.
    victim
        .answer_join_request(h.id, victim.user_id(), false)
        .await
        .unwrap();
    let err = victim.join_group(h.id, "").await.unwrap_err();
    assert!(matches!(err, ClientError::Server(e) if e.code == ErrorCode::NotFound));
    // Accepting (JoinGroup) makes the victim a member, from then on.
    assert!(!victim.join_group(g.id, "").await.unwrap());
    let summary = victim.sync().await.unwrap();
    assert!(summary.conversations.iter().any(|c| c.id == g.id));

    // A friend's add goes in directly.
    friend.add_friend(victim.user_id(), "hi", "").await.unwrap();
    victim
        .answer_friend_request(friend.user_id(), true, "")
        .await
        .unwrap();
    let f = friend
        .create_group("friends", vec![victim.user_id()])
        .await
        .unwrap();
    assert!(f.members.contains(&victim.user_id()));
    server.stop().await;
}

#[tokio::test]
async fn group_creation_and_adds_are_rate_limited_per_account() {
    let server = TestServer::start_with(|c| {
        c.limits.groups_per_minute = 1;
        c.limits.groups_burst = 3;
        c.limits.group_adds_per_minute = 1;
        c.limits.group_adds_burst = 4;
    })
    .await;
    let (alice, _a) = server.register(T, "alice").await;
    let (bob, _b) = server.register(T, "bob").await;
    let mut others = Vec::new();
    for i in 0..6 {
        let (c, _e) = server.register(T, &format!("user{i}")).await;
        others.push(c.user_id());
    }
    for i in 0..3 {
        alice.create_group(&format!("g{i}"), vec![]).await.unwrap();
    }
    let err = alice
        .create_group("one too many", vec![])
        .await
        .unwrap_err();
    let ClientError::Server(e) = err else {
        panic!("expected a server error, got {err:?}")
    };
    assert_eq!(e.code, ErrorCode::RateLimited);
    assert!(e.retry_after.is_some_and(|d| !d.is_zero()), "{e:?}");
    // Another account is not affected.
    let g = bob.create_group("bob's", vec![]).await.unwrap();
    // Adds (invitations count too): one large request passes, then the account waits it off.
    bob.change_members(g.id, others.clone(), vec![])
        .await
        .unwrap();
    let h = bob.create_group("bob's second", vec![]).await.unwrap();
    let err = bob
        .change_members(h.id, vec![alice.user_id()], vec![])
        .await
        .unwrap_err();
    let ClientError::Server(e) = err else {
        panic!("expected a server error, got {err:?}")
    };
    assert_eq!(e.code, ErrorCode::RateLimited);
    assert!(e.retry_after.is_some_and(|d| !d.is_zero()), "{e:?}");
    server.stop().await;
}

#[tokio::test]
async fn history_pages_are_bounded_by_encoded_size_too() {
    let server = TestServer::start_with(|c| {
        c.limits.max_sync_bytes = PAGE_BYTES;
        c.limits.max_group_members = 100;
    })
    .await;
    let (alice, _a) = server.register(T, "alice").await;
    let g = alice.create_group("big messages", vec![]).await.unwrap();
    for _ in 0..10 {
        alice
            .send(g.id, ContentType::Text, Bytes::from("h".repeat(60_000)))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut page = Page::Latest;
    for _ in 0..20 {
        let h = alice.history(g.id, page, 100).await.unwrap();
        let size: usize = h.messages.iter().map(|m| m.encoded_len()).sum();
        assert!(
            size <= PAGE_BYTES as usize,
            "a history page of {size} bytes"
        );
        seen.extend(h.messages.iter().map(|m| m.seq.get()));
        let Some(oldest) = h.messages.last() else {
            break;
        };
        if !h.has_more {
            break;
        }
        page = Page::Before(oldest.seq);
    }
    seen.sort_unstable();
    // Seq 1 is the group's `Created` event; the messages are 2..=11.
    assert_eq!(
        seen,
        (1..=11).collect::<Vec<u64>>(),
        "every entry, page by page"
    );
    server.stop().await;
}
