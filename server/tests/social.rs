//! Profiles, settings, search, friends and blocks through the SDK against a real server: the
//! friend flow with its notices (live and through sync), every add policy, blocks and what
//! they refuse, and the strangers rule.
#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

mod common;

use common::{code, wait_for, TestServer};
use parley_client::{Event, Events, Transport};
use parley_protocol::frames::{
    AddPolicy, ContentType, ConversationEvent, ConversationKind, FriendChange, Gender, PeerRef,
    ProfileChange, SettingsChange,
};
use parley_protocol::ids::UserId;
use parley_protocol::ErrorCode;

const T: Transport = Transport::Tls;

/// Waits for a friend event in the user's notices.
async fn notice(events: &mut Events, change: FriendChange, from: UserId, to: UserId) {
    wait_for(events, |e| match e {
        Event::Message(m) => match m.event.as_deref() {
            Some(ConversationEvent::Friend(f))
                if f.change == change && f.from == from && f.to == to =>
            {
                Some(())
            }
            _ => None,
        },
        _ => None,
    })
    .await
}

fn policy(p: AddPolicy) -> SettingsChange {
    SettingsChange {
        add_policy: Some(p),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_settings_and_search() {
    let s = TestServer::start().await;
    let (alice, _a) = s.register(T, "alice").await;
    let (bob, mut bob_ev) = s.register(T, "bob_the_builder").await;
    let (carol, _c) = s.register(T, "carol").await;

    // Friends hear about profile changes.
    bob.update_settings(policy(AddPolicy::Anyone))
        .await
        .unwrap();
    assert!(!alice.add_friend(bob.user_id(), "", "").await.unwrap());
    let change = ProfileChange {
        nickname: Some("Alice Wonder".into()),
        bio: Some("down the rabbit hole".into()),
        gender: Some(Gender::Female),
        birthday: Some("1990-05-17".into()),
        link: Some("https://example.org/alice".into()),
        ..Default::default()
    };
    alice.update_profile(change).await.unwrap();
    let pushed = wait_for(&mut bob_ev, |e| match e {
        Event::Profile(p) => Some(p.clone()),
        _ => None,
    })
    .await;
    assert_eq!(pushed.nickname, "Alice Wonder");
    let got = carol
        .get_profiles(vec![alice.user_id(), UserId::try_from(999_999).unwrap()])
        .await
        .unwrap();
    assert_eq!(got.len(), 1, "unknown ids are left out");
    assert_eq!(got[0].account, "alice");
    assert_eq!(got[0].bio, "down the rabbit hole");
    assert_eq!(got[0].gender, Gender::Female);

    // Bad input is refused with a clear code.
    for bad in [
        ProfileChange {
            birthday: Some("1990-13-01".into()),
            ..Default::default()
        },
        ProfileChange {
            link: Some("javascript:alert(1)".into()),
            ..Default::default()
        },
        ProfileChange {
            nickname: Some("x".repeat(65)),
            ..Default::default()
        },
    ] {
        assert_eq!(
            code(alice.update_profile(bad).await),
            ErrorCode::InvalidArgument
        );
    }

    // Settings round-trip.
    let settings = carol.settings().await.unwrap();
    assert_eq!(settings.add_policy, AddPolicy::Verify, "the default");
    assert!(settings.searchable_by_account && settings.searchable_by_name);
    let changed = carol
        .update_settings(SettingsChange {
            language: Some("de-CH".into()),
            notifications: Some(false),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(changed.language, "de-CH");
    assert!(!changed.notifications);
    assert_eq!(carol.settings().await.unwrap(), changed);

    // Search: account or nickname, case-insensitive, honouring "searchable", paginated.
    let found = carol.search_users("WONDER", 0, 0).await.unwrap();
    assert_eq!(found.users.len(), 1);
    assert_eq!(found.users[0].user, Some(alice.user_id()));
    let found = carol.search_users("BUILDER", 0, 0).await.unwrap();
    assert_eq!(found.users[0].user, Some(bob.user_id()));
    bob.update_settings(SettingsChange {
        searchable_by_account: Some(false),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(carol
        .search_users("builder", 0, 0)
        .await
        .unwrap()
        .users
        .is_empty());
    for name in ["sam1", "sam2", "sam3"] {
        s.register(T, name).await;
    }
    let page = carol.search_users("sam", 0, 2).await.unwrap();
    assert_eq!(page.users.len(), 2);
    assert!(page.has_more);
    let last = page.users[1].user.unwrap().get();
    let rest = carol.search_users("sam", last, 2).await.unwrap();
    assert_eq!(rest.users.len(), 1);
    assert!(!rest.has_more);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn friend_requests_by_policy_with_notices() {
    let s = TestServer::start().await;
    let (alice, mut alice_ev) = s.register(T, "alice").await;
    let (bob, mut bob_ev) = s.register(T, "bob").await;
    let (carol, _c) = s.register(T, "carol").await;
    let (dave, _d) = s.register(T, "dave").await;
    let (eve, mut eve_ev) = s.register(T, "eve").await;
    let (a, b) = (alice.user_id(), bob.user_id());

    // Verify (the default): a request the target answers; both sides are told in their notices.
    assert!(alice.add_friend(b, "hi bob", "Bobby").await.unwrap());
    assert!(
        alice.add_friend(b, "again", "").await.unwrap(),
        "still pending"
    );
    notice(&mut bob_ev, FriendChange::Requested, a, b).await;
    let incoming = bob.friend_requests(false).await.unwrap();
    assert_eq!(incoming.len(), 1);
    assert_eq!(incoming[0].message, "hi bob");
    assert_eq!(alice.friend_requests(true).await.unwrap().len(), 1);
    assert_eq!(
        code(carol.answer_friend_request(a, true, "").await),
        ErrorCode::NotFound
    );
    bob.answer_friend_request(a, true, "Al").await.unwrap();
    notice(&mut alice_ev, FriendChange::Accepted, a, b).await;
    let friends = alice.friends().await.unwrap();
    assert_eq!(friends.len(), 1);
    assert_eq!(friends[0].profile.user, Some(b));
    assert_eq!(friends[0].remark, "Bobby");
    assert_eq!(bob.friends().await.unwrap()[0].remark, "Al");
    alice.set_friend_remark(b, "Robert").await.unwrap();
    assert_eq!(alice.friends().await.unwrap()[0].remark, "Robert");
    assert!(alice.friend_requests(true).await.unwrap().is_empty());

    // Anyone: accepted at once. Nobody: refused.
    carol
        .update_settings(policy(AddPolicy::Anyone))
        .await
        .unwrap();
    assert!(!alice.add_friend(carol.user_id(), "", "").await.unwrap());
    assert!(carol
        .friends()
        .await
        .unwrap()
        .iter()
        .any(|f| f.profile.user == Some(a)));
    dave.update_settings(policy(AddPolicy::Nobody))
        .await
        .unwrap();
    assert_eq!(
        code(alice.add_friend(dave.user_id(), "", "").await),
        ErrorCode::NotAcceptingFriends
    );
    assert_eq!(
        code(alice.add_friend(a, "", "").await),
        ErrorCode::InvalidArgument
    );

    // A rejection reaches the one who asked.
    assert!(eve.add_friend(a, "me?", "").await.unwrap());
    alice
        .answer_friend_request(eve.user_id(), false, "")
        .await
        .unwrap();
    notice(&mut eve_ev, FriendChange::Rejected, eve.user_id(), a).await;
    assert!(eve.friend_requests(true).await.unwrap().is_empty());

    // Asking someone who already asked you accepts their request.
    assert!(eve.add_friend(a, "please", "").await.unwrap());
    assert!(!alice.add_friend(eve.user_id(), "", "").await.unwrap());
    assert!(eve
        .friends()
        .await
        .unwrap()
        .iter()
        .any(|f| f.profile.user == Some(a)));

    // Removing ends it for both; the other is told.
    alice.remove_friend(b).await.unwrap();
    notice(&mut bob_ev, FriendChange::Removed, a, b).await;
    assert!(bob.friends().await.unwrap().is_empty());
    assert_eq!(code(alice.remove_friend(b).await), ErrorCode::NotFound);

    // Notices are a conversation of their own: synced to a new device, read-only, and not in
    // the conversation list.
    let sync = match bob
        .request(parley_protocol::frames::Request::Sync(Default::default()))
        .await
        .unwrap()
    {
        parley_protocol::frames::Response::Sync(p) => p,
        other => panic!("{other:?}"),
    };
    let notices = sync
        .conversations
        .iter()
        .find(|c| c.kind == ConversationKind::Notices)
        .unwrap()
        .id;
    let list = bob.list_conversations().await.unwrap();
    assert!(list.iter().all(|c| c.id != notices));
    assert_eq!(
        code(bob.send(notices, ContentType::Text, "x".into()).await),
        ErrorCode::Forbidden
    );
    let (_bob2, mut bob2_ev) = s.login(T, "bob", "dev-2").await;
    notice(&mut bob2_ev, FriendChange::Requested, a, b).await;
    notice(&mut bob2_ev, FriendChange::Removed, a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_refuse_messages_requests_and_invites() {
    let s = TestServer::start().await;
    let (alice, _a) = s.register(T, "alice").await;
    let (bob, _b) = s.register(T, "bob").await;
    let (a, b) = (alice.user_id(), bob.user_id());
    let d = alice.open_direct(PeerRef::User(b)).await.unwrap().id;
    bob.send(d, ContentType::Text, "hello".into())
        .await
        .unwrap();

    alice.set_blocked(b, true).await.unwrap();
    alice.set_blocked(b, true).await.unwrap(); // no change, no error
    assert_eq!(alice.blocked().await.unwrap()[0].user, Some(b));
    assert_eq!(
        code(bob.send(d, ContentType::Text, "hello?".into()).await),
        ErrorCode::Blocked
    );
    assert_eq!(
        code(alice.send(d, ContentType::Text, "no".into()).await),
        ErrorCode::Blocked,
        "the blocker cannot write either until it unblocks"
    );
    assert_eq!(code(bob.add_friend(a, "", "").await), ErrorCode::Blocked);
    assert_eq!(
        code(bob.create_group("trap", vec![a]).await),
        ErrorCode::Blocked
    );
    let g = bob.create_group("g", vec![]).await.unwrap().id;
    assert_eq!(
        code(bob.change_members(g, vec![a], vec![]).await),
        ErrorCode::Blocked
    );
    assert!(
        bob.search_users("alice", 0, 0)
            .await
            .unwrap()
            .users
            .is_empty(),
        "a blocker is not found by the blocked"
    );

    alice.set_blocked(b, false).await.unwrap();
    assert!(alice.blocked().await.unwrap().is_empty());
    bob.send(d, ContentType::Text, "better".into())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_friends_chat_when_the_server_says_so() {
    let s = TestServer::start_with(|c| c.rules.strangers_may_chat = false).await;
    let (alice, _a) = s.register(T, "alice").await;
    let (bob, _b) = s.register(T, "bob").await;
    assert_eq!(
        code(alice.open_direct(PeerRef::User(bob.user_id())).await),
        ErrorCode::NotFriends
    );
    assert!(alice.add_friend(bob.user_id(), "", "").await.unwrap());
    bob.answer_friend_request(alice.user_id(), true, "")
        .await
        .unwrap();
    let d = alice
        .open_direct(PeerRef::User(bob.user_id()))
        .await
        .unwrap()
        .id;
    alice.send(d, ContentType::Text, "hi".into()).await.unwrap();
    alice.remove_friend(bob.user_id()).await.unwrap();
    assert_eq!(
        code(bob.send(d, ContentType::Text, "hey".into()).await),
        ErrorCode::NotFriends
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_reaches_friends_and_hides_from_the_blocked() {
    use parley_protocol::frames::PresenceStatus;
    let s = TestServer::start().await;
    let (alice, _a) = s.register(T, "alice").await;
    let (bob, mut bob_ev) = s.register(T, "bob").await;
    let (carol, _c) = s.register(T, "carol").await;
    let a = alice.user_id();
    bob.update_settings(policy(AddPolicy::Anyone))
        .await
        .unwrap();
    assert!(!alice.add_friend(bob.user_id(), "", "").await.unwrap());

    let presence_push = |status: PresenceStatus| {
        move |e: &Event| match e {
            Event::Presence(p) if p.user == a && p.status == status => Some((**p).clone()),
            _ => None,
        }
    };
    alice
        .set_presence(Some(PresenceStatus::Away), Some("lunch"))
        .await
        .unwrap();
    let p = wait_for(&mut bob_ev, presence_push(PresenceStatus::Away)).await;
    assert_eq!(p.text, "lunch");
    let seen = carol.presence(vec![a]).await.unwrap();
    assert_eq!(seen[0].status, PresenceStatus::Away);

    // Someone alice blocked sees her offline, with no last-seen time.
    alice.set_blocked(carol.user_id(), true).await.unwrap();
    let seen = carol.presence(vec![a]).await.unwrap();
    assert_eq!(seen[0].status, PresenceStatus::Offline);
    assert_eq!(seen[0].last_seen_ms, 0);

    // Her last device leaves: friends hear "offline" with the time; she comes back away.
    alice.close().await;
    let p = wait_for(&mut bob_ev, presence_push(PresenceStatus::Offline)).await;
    assert!(p.last_seen_ms > 0);
    assert_eq!(
        bob.presence(vec![a]).await.unwrap()[0].status,
        PresenceStatus::Offline
    );
    let (_alice, _a2) = s.login(T, "alice", "dev-2").await;
    wait_for(&mut bob_ev, presence_push(PresenceStatus::Away)).await;
}
