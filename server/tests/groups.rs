//! Groups with roles, mutes, join policies and disbanding; edits, recalls, reactions and
//! history: through the SDK against a real server, including every refusal.
#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

mod common;

use common::{code, wait_for, TestServer};
use parley_client::{Client, ClientError, Event, Page, Transport};
use parley_protocol::frames::{
    ContentType, ConversationEvent, GroupProfileChange, JoinPolicy, MemberRole, Message, Request,
    Response, SyncRequest,
};
use parley_protocol::ids::{ConversationId, Seq, UserId};
use parley_protocol::ErrorCode;

const T: Transport = Transport::Tls;

async fn say(c: &Client, conv: ConversationId, text: &str) -> Result<Seq, ClientError> {
    c.send(conv, ContentType::Text, bytes::Bytes::from(text.to_owned()))
        .await
        .map(|a| a.seq)
}

/// Waits for the entry of `conv` carrying an event that `pred` accepts.
async fn event_in(
    events: &mut parley_client::Events,
    conv: ConversationId,
    pred: impl Fn(&ConversationEvent) -> bool,
) -> Message {
    wait_for(events, |e| match e {
        Event::Message(m) if m.conversation == conv && m.event.as_deref().is_some_and(&pred) => {
            Some(m.clone())
        }
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_mutes_transfer_and_disband() {
    let s = TestServer::start().await;
    let (alice, _a) = s.register(T, "alice").await;
    let (bob, _b) = s.register(T, "bob").await;
    let (carol, mut carol_ev) = s.register(T, "carol").await;
    let (dave, _d) = s.register(T, "dave").await;
    let ids = [bob.user_id(), carol.user_id(), dave.user_id()];
    let g = alice.create_group("team", ids.to_vec()).await.unwrap().id;

    // A plain member manages nothing.
    let announce = GroupProfileChange {
        announcement: Some("standup at 10".into()),
        ..Default::default()
    };
    assert_eq!(
        code(bob.update_group(g, announce.clone()).await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(carol.change_members(g, vec![], vec![dave.user_id()]).await),
        ErrorCode::Forbidden,
        "a member cannot remove someone else"
    );
    assert_eq!(
        code(
            bob.set_member_role(g, carol.user_id(), MemberRole::Manager)
                .await
        ),
        ErrorCode::Forbidden
    );

    // The owner appoints a manager; every member hears it.
    alice
        .set_member_role(g, bob.user_id(), MemberRole::Manager)
        .await
        .unwrap();
    let bob_id = bob.user_id();
    event_in(&mut carol_ev, g, |e| {
        matches!(e, ConversationEvent::Role { user, role: MemberRole::Manager, .. } if *user == bob_id)
    })
    .await;
    bob.update_group(g, announce).await.unwrap();
    let info = carol.get_group(g).await.unwrap();
    assert_eq!(info.profile.announcement, "standup at 10");
    assert_eq!(info.member_count, 4);

    // A manager mutes a plain member, never the owner.
    bob.mute(g, Some(carol.user_id()), 60_000).await.unwrap();
    assert_eq!(code(say(&carol, g, "hello?").await), ErrorCode::Muted);
    say(&dave, g, "dave speaks").await.unwrap();
    assert_eq!(
        code(bob.mute(g, Some(alice.user_id()), 60_000).await),
        ErrorCode::Forbidden
    );
    let info = carol.list_conversations().await.unwrap();
    let mine = info.iter().find(|c| c.id == g).unwrap();
    assert!(mine.my_muted_until_ms > 0);
    assert_eq!(mine.my_role, MemberRole::Member);
    bob.mute(g, Some(carol.user_id()), 0).await.unwrap();
    say(&carol, g, "back").await.unwrap();

    // Muting everyone spares the owner and managers.
    alice.mute(g, None, 60_000).await.unwrap();
    assert_eq!(code(say(&dave, g, "x").await), ErrorCode::Muted);
    say(&bob, g, "managers still talk").await.unwrap();
    say(&alice, g, "so does the owner").await.unwrap();
    alice.mute(g, None, 0).await.unwrap();
    say(&dave, g, "free again").await.unwrap();

    // Nicknames and the member list with roles and mutes, paginated.
    carol.set_group_nickname(g, "Caz").await.unwrap();
    bob.mute(g, Some(dave.user_id()), 60_000).await.unwrap();
    let first = alice.list_members(g, 0, 2).await.unwrap();
    assert_eq!(
        (first.members.len(), first.has_more, first.total),
        (2, true, 4)
    );
    let after = first.members.last().unwrap().user.get();
    let rest = alice.list_members(g, after, 10).await.unwrap();
    assert!(!rest.has_more);
    let all: Vec<_> = first.members.into_iter().chain(rest.members).collect();
    assert_eq!(all.len(), 4);
    let by = |u: UserId| all.iter().find(|m| m.user == u).unwrap();
    assert_eq!(by(alice.user_id()).role, MemberRole::Owner);
    assert_eq!(by(bob.user_id()).role, MemberRole::Manager);
    assert_eq!(by(carol.user_id()).nickname, "Caz");
    assert!(by(dave.user_id()).muted_until_ms > 0);

    // Ownership moves; the old owner is a member and cannot disband any more.
    alice
        .set_member_role(g, bob.user_id(), MemberRole::Owner)
        .await
        .unwrap();
    assert_eq!(code(alice.disband_group(g).await), ErrorCode::Forbidden);
    assert_eq!(
        code(alice.change_members(g, vec![], vec![bob.user_id()]).await),
        ErrorCode::Forbidden
    );
    let info = carol.get_group(g).await.unwrap();
    assert_eq!(info.owner, Some(bob.user_id()));

    // Disbanding freezes the group; its history stays readable.
    bob.disband_group(g).await.unwrap();
    event_in(&mut carol_ev, g, |e| {
        matches!(e, ConversationEvent::Disband)
    })
    .await;
    assert_eq!(code(say(&carol, g, "anyone?").await), ErrorCode::Disbanded);
    assert_eq!(
        code(bob.change_members(g, vec![], vec![carol.user_id()]).await),
        ErrorCode::Disbanded
    );
    let page = carol.history(g, Page::Latest, 100).await.unwrap();
    assert!(page.messages.iter().any(|m| m.content == "dave speaks"));
    assert!(carol.get_group(g).await.unwrap().profile.disbanded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_by_policy() {
    let s = TestServer::start().await;
    let (alice, _a) = s.register(T, "alice").await;
    let (eve, _e) = s.register(T, "eve").await;
    let (frank, mut frank_ev) = s.register(T, "frank").await;
    let (grace, mut grace_ev) = s.register(T, "grace").await;
    let g = alice.create_group("club", vec![]).await.unwrap().id;

    // Private groups cannot be seen or joined: the same answer as for no group at all.
    assert_eq!(code(eve.join_group(g, "hi").await), ErrorCode::NotFound);
    assert_eq!(code(eve.get_group(g).await), ErrorCode::NotFound);
    let nowhere = ConversationId::try_from(g.get() + 1000).unwrap();
    assert_eq!(
        code(eve.join_group(nowhere, "hi").await),
        ErrorCode::NotFound
    );

    // Public and free: joining makes a member at once.
    let open = GroupProfileChange {
        public: Some(true),
        join_policy: Some(JoinPolicy::Free),
        ..Default::default()
    };
    alice.update_group(g, open).await.unwrap();
    assert_eq!(eve.get_group(g).await.unwrap().member_count, 1);
    assert!(!eve.join_group(g, "").await.unwrap());
    say(&eve, g, "eve is in").await.unwrap();

    // Approval: a request the managers see and answer; the requester is no member until then.
    let approval = GroupProfileChange {
        join_policy: Some(JoinPolicy::Approval),
        ..Default::default()
    };
    alice.update_group(g, approval).await.unwrap();
    assert!(frank.join_group(g, "let me in").await.unwrap());
    assert!(frank.join_group(g, "again").await.unwrap(), "still pending");
    assert_eq!(code(say(&frank, g, "hi").await), ErrorCode::NotFound);
    let info = alice.get_group(g).await.unwrap();
    assert_eq!(info.join_requests.len(), 1);
    assert_eq!(info.join_requests[0].message, "let me in");
    assert!(
        eve.get_group(g).await.unwrap().join_requests.is_empty(),
        "members do not see them"
    );
    assert_eq!(
        code(eve.answer_join_request(g, frank.user_id(), true).await),
        ErrorCode::Forbidden
    );
    alice
        .answer_join_request(g, frank.user_id(), true)
        .await
        .unwrap();
    let frank_id = frank.user_id();
    event_in(
        &mut frank_ev,
        g,
        |e| matches!(e, ConversationEvent::Membership { added, .. } if added.contains(&frank_id)),
    )
    .await;
    say(&frank, g, "frank is in").await.unwrap();
    assert_eq!(
        code(alice.answer_join_request(g, frank.user_id(), true).await),
        ErrorCode::NotFound,
        "nothing pending any more"
    );

    // A rejection reaches the requester, who may ask again.
    assert!(grace.join_group(g, "me too").await.unwrap());
    alice
        .answer_join_request(g, grace.user_id(), false)
        .await
        .unwrap();
    let grace_id = grace.user_id();
    event_in(
        &mut grace_ev,
        g,
        |e| matches!(e, ConversationEvent::JoinRejected(u) if *u == grace_id),
    )
    .await;
    assert_eq!(code(say(&grace, g, "hi").await), ErrorCode::NotFound);
    assert!(grace.join_group(g, "please").await.unwrap());

    // Invite only: joining is refused, the owner still adds.
    let invite = GroupProfileChange {
        join_policy: Some(JoinPolicy::InviteOnly),
        ..Default::default()
    };
    alice.update_group(g, invite).await.unwrap();
    let (henry, _h) = s.register(T, "henry").await;
    assert_eq!(code(henry.join_group(g, "").await), ErrorCode::Forbidden);
    alice
        .change_members(g, vec![henry.user_id()], vec![])
        .await
        .unwrap();
    say(&henry, g, "invited").await.unwrap();

    // A group's own limit is enforced, and cannot go below its member count.
    let too_small = GroupProfileChange {
        max_members: Some(2),
        ..Default::default()
    };
    assert_eq!(
        code(alice.update_group(g, too_small).await),
        ErrorCode::InvalidArgument
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_recalls_reactions_and_history() {
    let s = TestServer::start().await;
    let (alice, _a) = s.register(T, "alice").await;
    let (bob, mut bob_ev) = s.register(T, "bob").await;
    let d = alice
        .open_direct(parley_protocol::frames::PeerRef::User(bob.user_id()))
        .await
        .unwrap()
        .id;
    let mut seqs = Vec::new();
    for i in 1..=5 {
        seqs.push(say(&alice, d, &format!("m{i}")).await.unwrap());
    }

    // Edit: the sender only; everyone hears it.
    alice.edit_message(d, seqs[1], "m2 (edited)").await.unwrap();
    assert_eq!(
        code(bob.edit_message(d, seqs[0], "not mine").await),
        ErrorCode::Forbidden
    );
    let edited = event_in(&mut bob_ev, d, |e| {
        matches!(e, ConversationEvent::Edit { .. })
    })
    .await;
    assert_eq!(edited.sender, alice.user_id());

    // Reactions: add, add by another, take back; repeats change nothing.
    bob.react(d, seqs[2], "👍", false).await.unwrap();
    bob.react(d, seqs[2], "👍", false).await.unwrap();
    alice.react(d, seqs[2], "👍", false).await.unwrap();
    alice.react(d, seqs[2], "🎉", false).await.unwrap();
    alice.react(d, seqs[2], "🎉", true).await.unwrap();
    assert_eq!(
        code(bob.react(d, seqs[2], "", false).await),
        ErrorCode::InvalidArgument
    );

    // Recall: the sender within the window; not someone else's message in a 1:1.
    alice.recall_message(d, seqs[3]).await.unwrap();
    assert_eq!(
        code(bob.recall_message(d, seqs[0]).await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(alice.edit_message(d, seqs[3], "too late").await),
        ErrorCode::Conflict
    );
    event_in(&mut bob_ev, d, |e| {
        matches!(e, ConversationEvent::Recall(_))
    })
    .await;

    // History reads as it is now, without the amending events; pages both ways.
    let latest = bob.history(d, Page::Latest, 0).await.unwrap();
    assert!(!latest.has_more);
    let texts: Vec<_> = latest
        .messages
        .iter()
        .map(|m| String::from_utf8_lossy(&m.content).into_owned())
        .collect();
    assert_eq!(texts, ["m5", "", "m3", "m2 (edited)", "m1"], "newest first");
    let m2 = &latest.messages[3];
    assert!(m2.amended.as_ref().unwrap().edited_at_ms > 0);
    let m3 = &latest.messages[2];
    let reactions = &m3.amended.as_ref().unwrap().reactions;
    assert_eq!(reactions.len(), 1);
    assert_eq!(reactions[0].emoji, "👍");
    let mut who = vec![alice.user_id(), bob.user_id()];
    who.sort();
    assert_eq!(reactions[0].users, who);
    assert!(latest.messages[1].amended.as_ref().unwrap().recalled);

    let older = bob.history(d, Page::Before(seqs[2]), 1).await.unwrap();
    assert_eq!(older.messages.len(), 1);
    assert_eq!(older.messages[0].content, "m2 (edited)");
    assert!(older.has_more);
    let newer = bob.history(d, Page::After(seqs[3]), 50).await.unwrap();
    assert_eq!(
        newer.messages.len(),
        1,
        "only m5 after m4; the events are left out"
    );
    assert_eq!(newer.messages[0].content, "m5");

    // Sync withholds the recalled content too (a device that was offline never gets it).
    let page = match bob
        .request(Request::Sync(SyncRequest::default()))
        .await
        .unwrap()
    {
        Response::Sync(p) => p,
        other => panic!("{other:?}"),
    };
    let recalled = page
        .messages
        .iter()
        .find(|m| m.conversation == d && m.seq == seqs[3])
        .unwrap();
    assert!(recalled.content.is_empty());
    assert!(recalled.amended.as_ref().unwrap().recalled);
    assert!(page.messages.iter().any(
        |m| matches!(m.event.as_deref(), Some(ConversationEvent::Recall(s)) if *s == seqs[3])
    ));

    // An edit of a message recalled later does not keep its text either.
    alice.edit_message(d, seqs[0], "m1 secret").await.unwrap();
    alice.recall_message(d, seqs[0]).await.unwrap();
    let page = match bob
        .request(Request::Sync(SyncRequest::default()))
        .await
        .unwrap()
    {
        Response::Sync(p) => p,
        other => panic!("{other:?}"),
    };
    let edits: Vec<_> = page
        .messages
        .iter()
        .filter_map(|m| match m.event.as_deref() {
            Some(ConversationEvent::Edit { seq, content }) if *seq == seqs[0] => Some(content),
            _ => None,
        })
        .collect();
    assert_eq!(edits.len(), 1);
    assert!(
        edits[0].is_empty(),
        "the edit's text is withheld with its message"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recall_window_and_managers() {
    let s = TestServer::start_with(|c| c.limits.recall_window_ms = 0).await;
    let (alice, _a) = s.register(T, "alice").await;
    let (bob, _b) = s.register(T, "bob").await;
    let g = alice
        .create_group("g", vec![bob.user_id()])
        .await
        .unwrap()
        .id;
    let seq = say(&bob, g, "oops").await.unwrap();
    // The window is 0 ms: once the clock has moved on, the sender is too late...
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(
        code(bob.recall_message(g, seq).await),
        ErrorCode::RecallExpired
    );
    // ... but the owner may recall any time.
    alice.recall_message(g, seq).await.unwrap();
    let page = bob.history(g, Page::Latest, 10).await.unwrap();
    assert!(page.messages.iter().any(|m| m.seq == seq
        && m.content.is_empty()
        && m.amended.as_ref().is_some_and(|a| a.recalled)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_forwards_mentions_deletes_and_read_state() {
    use parley_protocol::frames::SendRequest;
    use parley_protocol::ids::ClientMsgId;
    let s = TestServer::start().await;
    let (alice, _a) = s.register(T, "alice").await;
    let (bob, mut bob_ev) = s.register(T, "bob").await;
    let (carol, _c) = s.register(T, "carol").await;
    let g = alice
        .create_group("g", vec![bob.user_id(), carol.user_id()])
        .await
        .unwrap()
        .id;
    let send = |reply_to: Seq, text: &str, mention_all: bool| SendRequest {
        conversation: g,
        content_type: ContentType::Text,
        content: bytes::Bytes::from(text.to_owned()),
        client_msg_id: ClientMsgId::try_from(format!("k-{text}")).unwrap(),
        reply_to,
        mentions: vec![],
        mention_all,
    };
    // Replies carry their thread's first message.
    let root = alice
        .send_request(send(Seq::ZERO, "root", false))
        .await
        .unwrap()
        .seq;
    let r1 = bob
        .send_request(send(root, "reply", false))
        .await
        .unwrap()
        .seq;
    let r2 = carol
        .send_request(send(r1, "reply to reply", false))
        .await
        .unwrap()
        .seq;
    let page = alice.history(g, Page::Latest, 10).await.unwrap();
    let by_seq = |s: Seq| page.messages.iter().find(|m| m.seq == s).unwrap().clone();
    assert_eq!(by_seq(r1).thread_root, root);
    assert_eq!(
        by_seq(r2).thread_root,
        root,
        "the thread's root, not the parent"
    );
    assert_eq!(by_seq(root).thread_root, Seq::ZERO);
    assert_eq!(
        code(bob.send_request(send(Seq(999), "nowhere", false)).await),
        ErrorCode::InvalidArgument
    );

    // @all: managers only; members hear it flagged.
    assert_eq!(
        code(bob.send_request(send(Seq::ZERO, "hey all", true)).await),
        ErrorCode::Forbidden
    );
    alice
        .send_request(send(Seq::ZERO, "listen all", true))
        .await
        .unwrap();
    let m = wait_for(&mut bob_ev, |e| match e {
        Event::Message(m) if m.content == "listen all" => Some(m.clone()),
        _ => None,
    })
    .await;
    assert!(m.mention_all);

    // Forward into a 1:1 conversation: same content, the original author named.
    let d = bob
        .open_direct(parley_protocol::frames::PeerRef::User(carol.user_id()))
        .await
        .unwrap()
        .id;
    let ack = bob.forward_message(g, root, d).await.unwrap();
    let fwd = carol.history(d, Page::Latest, 1).await.unwrap().messages[0].clone();
    assert_eq!((fwd.seq, fwd.content.as_ref()), (ack.seq, &b"root"[..]));
    assert_eq!(fwd.forwarded_from, Some(alice.user_id()));
    let (dave, _d) = s.register(T, "dave").await;
    assert_eq!(
        code(dave.forward_message(g, root, d).await),
        ErrorCode::NotFound,
        "only what one can read"
    );

    // Delete for me: gone from my history, kept for the others, withheld in my sync.
    bob.delete_for_me(g, vec![r2]).await.unwrap();
    let mine = bob.history(g, Page::Latest, 10).await.unwrap();
    assert!(mine.messages.iter().all(|m| m.seq != r2));
    let theirs = alice.history(g, Page::Latest, 10).await.unwrap();
    assert!(theirs.messages.iter().any(|m| m.seq == r2));
    let sync = match bob
        .request(Request::Sync(SyncRequest::default()))
        .await
        .unwrap()
    {
        Response::Sync(p) => p,
        other => panic!("{other:?}"),
    };
    let gone = sync
        .messages
        .iter()
        .find(|m| m.conversation == g && m.seq == r2)
        .unwrap();
    assert!(gone.content.is_empty() && gone.amended.as_ref().unwrap().deleted_for_me);

    // Who read up to where (sending counts as having read what came before).
    bob.ack(g, parley_protocol::frames::CursorKind::Read, r2)
        .await
        .unwrap();
    let (state, more) = alice.read_state(g, 0, 0).await.unwrap();
    assert!(!more);
    assert_eq!(state.len(), 3);
    let read = |u| state.iter().find(|r| r.user == u).unwrap().seq;
    assert_eq!(read(bob.user_id()), r2);
    assert_eq!(read(carol.user_id()), r2, "her own reply");
    let (first, more) = alice.read_state(g, 0, 1).await.unwrap();
    assert!(more && first.len() == 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_types_carry_what_their_type_says() {
    let s = TestServer::start().await;
    let (alice, _a) = s.register(T, "alice").await;
    let (bob, _b) = s.register(T, "bob").await;
    let d = alice
        .open_direct(parley_protocol::frames::PeerRef::User(bob.user_id()))
        .await
        .unwrap()
        .id;
    let send = |kind, body: &'static [u8]| alice.send(d, kind, bytes::Bytes::from_static(body));
    for (kind, body) in [
        (
            ContentType::Image,
            &br#"{"file_id":"f1","width":640,"height":480}"#[..],
        ),
        (ContentType::File, br#"{"file_id":"f2","name":"a.pdf"}"#),
        (
            ContentType::Audio,
            br#"{"file_id":"f3","duration_ms":1200}"#,
        ),
        (ContentType::Video, br#"{"file_id":"f4"}"#),
        (ContentType::Sticker, br#"{"file_id":"s1"}"#),
        (
            ContentType::Location,
            br#"{"latitude":48.85,"longitude":2.35,"name":"Paris"}"#,
        ),
        (
            ContentType::Custom,
            b"\x00\x01 anything the clients agree on",
        ),
        (ContentType::Text, "plain text, 中文".as_bytes()),
    ] {
        send(kind, body).await.unwrap();
    }
    for (kind, body) in [
        (ContentType::Image, &b"not json"[..]),
        (ContentType::File, br#"{"name":"no file id"}"#),
        (ContentType::Location, br#"{"latitude":91,"longitude":0}"#),
        (ContentType::Text, b"\xff\xfe not utf-8"),
    ] {
        assert_eq!(
            code(send(kind, body).await),
            ErrorCode::InvalidArgument,
            "{kind:?}"
        );
    }
    let page = bob.history(d, Page::Latest, 20).await.unwrap();
    assert_eq!(page.messages.len(), 8);
    assert_eq!(page.messages[2].content_type, ContentType::Location);
}
