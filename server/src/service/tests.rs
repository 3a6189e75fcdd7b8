//! The request service without sockets, on tokio's paused clock: every rule here holds for
//! every adapter (binary driver, HTTP, dialects), because they all go through it.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use parley_protocol::frames::{
    ContentType, ConversationEvent, Credential, PeerRef, Push, Request, Response, SendRequest,
    SharedPush,
};
use parley_protocol::ids::{ClientMsgId, ConversationId, Seq};
use parley_protocol::session::Identity;
use parley_protocol::values::Password;
use parley_protocol::ErrorCode;

use super::{Caller, Reply, SessionEvent};
use crate::testing::{device, Harness};

fn send(conv: ConversationId, text: &'static str, key: &str) -> Request {
    Request::Send(SendRequest {
        conversation: conv,
        content_type: ContentType::Text,
        content: Bytes::from_static(text.as_bytes()),
        client_msg_id: ClientMsgId::try_from(key).unwrap(),
        reply_to: Seq::ZERO,
        mentions: vec![],
        mention_all: false,
    })
}

async fn direct(h: &Harness, a: &Identity, b: &Identity) -> ConversationId {
    match h.call(a, Request::OpenDirect(PeerRef::User(b.user))).await {
        Response::Conversation(c) => c.id,
        other => panic!("{other:?}"),
    }
}

async fn group(
    h: &Harness,
    owner: &Identity,
    members: Vec<parley_protocol::ids::UserId>,
) -> ConversationId {
    let request = Request::CreateGroup {
        name: "g".try_into().unwrap(),
        members,
    };
    match h.call(owner, request).await {
        Response::Conversation(c) => c.id,
        other => panic!("{other:?}"),
    }
}

/// `who`, calling without a session.
fn as_user(who: &Identity) -> Caller {
    Caller::User {
        identity: who.clone(),
        session: None,
    }
}

fn error_code(r: &Response) -> Option<ErrorCode> {
    match r {
        Response::Error(e) => Some(e.code),
        _ => None,
    }
}

/// Waits (by yielding, on the virtual clock) until `done`; the fan-out runs on other threads.
async fn until(mut done: impl FnMut() -> bool) {
    for _ in 0..1_000_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("never happened");
}

/// The pushes a session has now (none if nothing is queued).
async fn pushes(session: &super::Session) -> Vec<SharedPush> {
    let next = futures::FutureExt::now_or_never(session.next());
    match next {
        Some(SessionEvent::Pushes(p)) => p,
        None => Vec::new(),
        Some(other) => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn anonymous_callers_may_only_register_log_in_refresh_or_ping() {
    let h = Harness::start(|_| {}).await;
    let alice = h.register("alice").await;
    let conv = ConversationId::try_from(1).unwrap();
    for request in [
        send(conv, "x", "k"),
        Request::ListConversations {
            limit: 0,
            offset: 0,
        },
        Request::Logout,
        Request::Typing { conversation: conv },
    ] {
        let r = h.service.answer(&Caller::Anonymous, request).await;
        assert_eq!(error_code(&r), Some(ErrorCode::Unauthenticated));
    }
    let r = h
        .service
        .answer(&Caller::Anonymous, Request::Ping { client_time_ms: 7 })
        .await;
    assert!(matches!(
        r,
        Response::Pong {
            client_time_ms: 7,
            ..
        }
    ));
    // A logged-in caller cannot log in again.
    let login = Request::Login {
        credential: Credential::Password {
            account: alice.account.clone(),
            password: Password::try_from("password-123").unwrap(),
        },
        device: device("dev"),
    };
    assert_eq!(
        error_code(&h.call(&alice, login.clone()).await),
        Some(ErrorCode::AlreadyLoggedIn)
    );
    match h
        .service
        .execute(&Caller::Anonymous, login)
        .resolved()
        .await
    {
        Reply::LoggedIn(outcome) => assert_eq!(outcome.identity.user, alice.user),
        other => panic!("{other:?}"),
    }
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_send_is_answered_once_durable_and_pushed_once_encoded_to_every_other_session() {
    let h = Harness::start(|_| {}).await;
    let alice = h.register("alice").await;
    let bob = h.register("bob").await;
    let conv = direct(&h, &alice, &bob).await;
    let alice_here = h.service.open_session(alice.clone());
    let mut other = alice.clone();
    other.device = device("tablet").id;
    let alice_there = h.service.open_session(other);
    let bob_phone = h.service.open_session(bob.clone());

    let reply = h
        .service
        .execute(&alice_here.caller(), send(conv, "hello", "m1"));
    let Reply::Later(pending) = reply else {
        panic!("a send is queued at once and answered when durable");
    };
    let Response::SendAck(ack) = pending.await else {
        panic!("no ack")
    };
    assert_eq!((ack.seq, ack.duplicate), (Seq(1), false));
    // Durable: the store has it.
    let page = h
        .service
        .core()
        .store
        .messages(conv, Seq(0), Seq(1), 10, 1 << 20);
    assert_eq!(page.unwrap()[0].content, Bytes::from_static(b"hello"));

    // Pushed to bob and to alice's other device, not back to the session it came from; the
    // fan-out runs after the ack, so wait for it on the virtual clock's terms (a yield).
    let mut got = Vec::new();
    for _ in 0..1_000_000 {
        if got.len() >= 2 {
            break;
        }
        tokio::task::yield_now().await;
        got.extend(pushes(&bob_phone).await);
        got.extend(pushes(&alice_there).await);
    }
    assert_eq!(got.len(), 2);
    assert!(pushes(&alice_here).await.is_empty());
    assert!(
        SharedPush::ptr_eq(&got[0], &got[1]),
        "one push shared by both"
    );
    assert!(matches!(got[0].push().unwrap(), Push::Message(m) if m.seq == Seq(1)));

    // A retry with the same key is the same message.
    let Response::SendAck(again) = h.call(&alice, send(conv, "hello", "m1")).await else {
        panic!()
    };
    assert_eq!((again.seq, again.duplicate), (Seq(1), true));
    drop((alice_here, alice_there, bob_phone));
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn membership_changes_are_ordered_events_heard_by_members_before_and_after() {
    let h = Harness::start(|_| {}).await;
    let owner = h.register("owner").await;
    let bob = h.register("bob").await;
    let carol = h.register("carol").await;
    let group = group(&h, &owner, vec![bob.user]).await;
    let bob_s = h.service.open_session(bob.clone());
    let carol_s = h.service.open_session(carol.clone());
    let change = |add, remove, key: &str| Request::ChangeMembers {
        conversation: group,
        add,
        remove,
        request_key: Some(ClientMsgId::try_from(key).unwrap()),
    };
    // Only the owner adds; a member may remove only itself.
    let r = h.call(&bob, change(vec![carol.user], vec![], "b1")).await;
    assert_eq!(error_code(&r), Some(ErrorCode::Forbidden));

    let owner_s = h.service.open_session(owner.clone());
    let r = h
        .service
        .answer(
            &owner_s.caller(),
            change(vec![carol.user], vec![bob.user], "o1"),
        )
        .await;
    assert_eq!(r, Response::Ok);
    // Repeated once applied: nothing is left to change, so it is answered without a second
    // entry (retries before the first is durable are the keyed test's business, below).
    let r = h
        .call(&owner, change(vec![carol.user], vec![bob.user], "o1"))
        .await;
    assert_eq!(r, Response::Ok);
    // Seq 1 is the group's `Created` event.
    let head = h.service.core().store.head(group).unwrap();
    assert_eq!(head, Seq(2), "one event, one seq");

    let expected = ConversationEvent::Membership {
        added: vec![carol.user],
        removed: vec![bob.user],
    };
    // Everyone hears it: the member added, the member removed, and the session that made the
    // change (its `Ok` has no seq; the push moves its position).
    for session in [&carol_s, &bob_s, &owner_s] {
        let mut got = Vec::new();
        for _ in 0..1_000_000 {
            if !got.is_empty() {
                break;
            }
            tokio::task::yield_now().await;
            // Presence pushes (members of a small group share it) are not the point here.
            got = pushes(session).await;
            // The group's `Created` event may reach a session opened right after it.
            got.retain(|p| {
                matches!(p.push(), Ok(Push::Message(m))
                    if matches!(m.event.as_deref(), Some(ConversationEvent::Membership { .. })))
            });
        }
        assert!(!got.is_empty(), "no push");
        match got[0].push().unwrap() {
            Push::Message(m) => {
                assert_eq!((m.seq, m.content_type), (Seq(2), ContentType::System));
                assert_eq!(m.event.as_deref(), Some(&expected));
            }
            other => panic!("{other:?}"),
        }
    }
    // Bob is out, carol in and sees the group from the event on.
    let r = h.call(&bob, send(group, "still here?", "x")).await;
    assert_eq!(error_code(&r), Some(ErrorCode::NotFound));
    let Response::ConversationList {
        conversations: list,
        ..
    } = h
        .call(
            &carol,
            Request::ListConversations {
                limit: 0,
                offset: 0,
            },
        )
        .await
    else {
        panic!()
    };
    assert_eq!((list[0].id, list[0].visible_from), (group, Seq(2)));
    // Clients cannot forge server entries.
    let mut forged = send(group, "", "f");
    if let Request::Send(s) = &mut forged {
        s.content_type = ContentType::System;
    }
    let r = h.call(&carol, forged).await;
    assert_eq!(error_code(&r), Some(ErrorCode::InvalidArgument));
    drop((bob_s, carol_s, owner_s));
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_full_push_queue_marks_the_session_lagging_and_fan_out_never_waits() {
    let h = Harness::start(|cfg| cfg.limits.outbound_queue = 2).await;
    let alice = h.register("alice").await;
    let bob = h.register("bob").await;
    let conv = direct(&h, &alice, &bob).await;
    let bob_s = h.service.open_session(bob.clone());
    for i in 0..5 {
        let key = format!("k{i}");
        let r = h.call(&alice, send(conv, "x", &key)).await;
        assert!(matches!(r, Response::SendAck(_)), "{r:?}");
    }
    // Let the fan-out finish (it never waits on bob).
    let stats = || h.service.core().router().stats();
    until(|| stats().delivered + stats().dropped >= 5).await;
    assert_eq!((stats().delivered, stats().dropped), (2, 3));
    assert_eq!(pushes(&bob_s).await.len(), 2, "what fitted is delivered");
    let next = futures::FutureExt::now_or_never(bob_s.next());
    assert!(
        matches!(next, Some(SessionEvent::SyncNeeded)),
        "then the session is told to sync: {next:?}"
    );
    assert!(futures::FutureExt::now_or_never(bob_s.next()).is_none());
    drop(bob_s);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_second_session_of_the_same_device_replaces_the_first() {
    let h = Harness::start(|_| {}).await;
    let alice = h.register("alice").await;
    let first = h.service.open_session(alice.clone());
    let second = h.service.open_session(alice.clone());
    assert_ne!(first.id(), second.id());
    let next = futures::FutureExt::now_or_never(first.next());
    assert!(matches!(next, Some(SessionEvent::Replaced)), "{next:?}");
    assert_eq!(h.service.core().router().stats().sessions, 1);
    drop(first); // closing the replaced session leaves the new one registered
    assert_eq!(h.service.core().router().stats().sessions, 1);
    drop(second);
    assert_eq!(h.service.core().router().stats().sessions, 0);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_http_side_reaches_the_same_service_through_its_backend_interface() {
    use parley_admin_http::Backend;
    let h = Harness::start(|_| {}).await;
    let backend: std::sync::Arc<dyn Backend> = std::sync::Arc::new(super::HttpBackend::new(
        h.service.clone(),
        None,
        tokio::time::Instant::now(),
    ));
    let register = |account: &str| Request::Register {
        account: account.try_into().unwrap(),
        password: "password-123".try_into().unwrap(),
        device: device("web"),
    };
    let Response::Login(alice) = backend.execute(None, register("alice")).await else {
        panic!()
    };
    let Response::Login(bob) = backend.execute(None, register("bob")).await else {
        panic!()
    };
    // Bearer tokens: whose is this one?
    let alice_id = backend
        .authenticate(alice.access_token.clone(), device("web"))
        .await
        .unwrap();
    assert_eq!(alice_id.user, alice.user);
    let wrong = backend.authenticate("nope".into(), device("web")).await;
    assert_eq!(wrong.unwrap_err().code, ErrorCode::AuthFailed);
    let bob_id = backend
        .authenticate(bob.access_token.clone(), device("web"))
        .await
        .unwrap();
    let bob_session = backend.open_session(bob_id);

    let Response::Conversation(conv) = backend
        .execute(
            Some(alice_id.clone()),
            Request::OpenDirect(PeerRef::User(bob.user)),
        )
        .await
    else {
        panic!()
    };
    let Response::SendAck(ack) = backend
        .execute(Some(alice_id), send(conv.id, "from the web", "w1"))
        .await
    else {
        panic!("a send through the backend resolves with its durable ack")
    };
    let mut got = None;
    for _ in 0..1_000_000 {
        if let Some(event) = futures::FutureExt::now_or_never(bob_session.next()) {
            got = Some(event);
            break;
        }
        tokio::task::yield_now().await;
    }
    match got {
        Some(SessionEvent::Pushes(p)) => {
            assert!(matches!(p[0].push().unwrap(), Push::Message(m) if m.seq == ack.seq))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(backend.stats().sessions_online, 1);
    drop(bob_session);
    assert_eq!(backend.stats().sessions_online, 0);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn keyed_membership_changes_are_idempotent_and_keys_cannot_be_reused_for_other_entries() {
    let h = Harness::start(|_| {}).await;
    let owner = h.register("owner").await;
    let bob = h.register("bob").await;
    let carol = h.register("carol").await;
    let group = group(&h, &owner, vec![]).await;
    let add = |who: &Identity, key: &str| Request::ChangeMembers {
        conversation: group,
        add: vec![who.user],
        remove: vec![],
        request_key: Some(ClientMsgId::try_from(key).unwrap()),
    };
    // A retry sent right after the first: one entry, two `Ok`s. Usually the retry comes before
    // the first is durable (both pass the checks and wait for the commit); on a busy machine
    // the committer's thread may have made the first durable already, and the retry then finds
    // bob a member and is answered at once. Either way: `Ok`, and one entry.
    let caller = as_user(&owner);
    let first = h.service.execute(&caller, add(&bob, "k1")).resolved().await;
    let second = h.service.execute(&caller, add(&bob, "k1")).resolved().await;
    let Reply::Later(pending) = first else {
        panic!("{first:?}")
    };
    assert_eq!(pending.await, Response::Ok);
    match second {
        Reply::Later(pending) => assert_eq!(pending.await, Response::Ok),
        Reply::Now(r) => assert_eq!(r, Response::Ok),
        other => panic!("{other:?}"),
    }
    // Seq 1 is the group's `Created` event.
    assert_eq!(h.service.core().store.head(group).unwrap(), Seq(2));
    // The same key for another change, or for a message, is a conflict, not a silent `Ok`.
    let r = h.call(&owner, add(&carol, "k1")).await;
    assert_eq!(error_code(&r), Some(ErrorCode::Conflict), "{r:?}");
    let r = h.call(&owner, send(group, "hello", "m1")).await;
    assert!(matches!(r, Response::SendAck(_)), "{r:?}");
    let r = h.call(&owner, add(&carol, "m1")).await;
    assert_eq!(error_code(&r), Some(ErrorCode::Conflict), "{r:?}");
    assert_eq!(h.service.core().store.head(group).unwrap(), Seq(3));
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_member_added_right_after_a_message_is_not_pushed_that_message() {
    let h = Harness::start(|_| {}).await;
    let owner = h.register("owner").await;
    let carol = h.register("carol").await;
    let group = group(&h, &owner, vec![]).await;
    let carol_s = h.service.open_session(carol.clone());
    let caller = as_user(&owner);
    // Queued back to back, so the committer usually takes both in one batch and applies the
    // change before the fan-out of the message runs.
    let Reply::Later(message) = h.service.execute(&caller, send(group, "private", "m1")) else {
        panic!()
    };
    let change = Request::ChangeMembers {
        conversation: group,
        add: vec![carol.user],
        remove: vec![],
        request_key: None,
    };
    let Reply::Later(added) = h.service.execute(&caller, change).resolved().await else {
        panic!()
    };
    // Seq 1 is the group's `Created` event.
    assert!(matches!(message.await, Response::SendAck(a) if a.seq == Seq(2)));
    assert_eq!(added.await, Response::Ok);
    let stats = || h.service.core().router().stats();
    until(|| stats().delivered >= 1).await;
    // The fan-out of both entries is done once the change's push is queued (it comes second).
    let mut seqs = Vec::new();
    for _ in 0..1_000_000 {
        for p in pushes(&carol_s).await {
            if let Push::Message(m) = p.push().unwrap() {
                seqs.push(m.seq);
            }
        }
        if seqs.contains(&Seq(3)) {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(seqs, vec![Seq(3)], "only what carol may read");
    drop(carol_s);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_banned_user_is_signed_out_and_cannot_log_in() {
    use parley_admin_http::Backend;
    let h = Harness::start(|_| {}).await;
    let alice = h.register("alice").await;
    let session = h.service.open_session(alice.clone());
    let backend = super::HttpBackend::new(h.service.clone(), None, tokio::time::Instant::now());
    backend.set_banned(alice.user, true).await.unwrap();
    assert!(matches!(session.next().await, SessionEvent::SignedOut));
    let login = |password: &'static str| Request::Login {
        credential: Credential::Password {
            account: "alice".try_into().unwrap(),
            password: Password::try_from(password).unwrap(),
        },
        device: device("d2"),
    };
    let r = h
        .service
        .answer(&Caller::Anonymous, login("password-123"))
        .await;
    assert_eq!(error_code(&r), Some(ErrorCode::Banned));
    backend.set_banned(alice.user, false).await.unwrap();
    let r = h
        .service
        .answer(&Caller::Anonymous, login("password-123"))
        .await;
    assert!(matches!(r, Response::Login(_)), "{r:?}");
    let nobody = parley_protocol::ids::UserId::try_from(999_999).unwrap();
    assert_eq!(
        backend.set_banned(nobody, true).await.unwrap_err().code,
        ErrorCode::NotFound
    );
}
