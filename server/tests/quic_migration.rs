//! QUIC connection migration: a client whose address changes mid-session (it rebinds its UDP
//! socket, as a phone switching networks does) keeps its session: no new login, every push
//! exactly once and in order, and it can still send.
#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

mod common;

use bytes::Bytes;
use common::{next_message, stat, wait_for, TestServer, WAIT};
use parley_client::{Event, Events, Transport};
use parley_protocol::frames::{ContentType, PeerRef};
use parley_protocol::ids::ConversationId;

/// The next event that is not a typing or presence notice; a reconnect (`Disconnected` or
/// `Connected`) fails the test, since migration must not need one.
async fn next_push(events: &mut Events) -> Event {
    loop {
        let ev = tokio::time::timeout(WAIT, events.next())
            .await
            .expect("an event in time")
            .expect("event stream open");
        match ev {
            Event::Typing { .. } | Event::Presence(_) | Event::Receipt(_) => continue,
            Event::Disconnected { .. } | Event::Connected(_) => {
                panic!("the client reconnected instead of migrating: {ev:?}")
            }
            other => return other,
        }
    }
}

async fn expect_text(events: &mut Events, conv: ConversationId, want: &str) {
    match next_push(events).await {
        Event::Message(m) => {
            assert_eq!(m.conversation, conv);
            assert_eq!(m.content, Bytes::from(want.to_owned()), "pushes in order");
        }
        other => panic!("expected message {want:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_changes_address_keeps_its_session() {
    let s = TestServer::start().await;
    let (bob, mut bob_ev) = s.register(Transport::Quic, "bob").await;
    // The first connection's own event; any later one would be a reconnect.
    wait_for(&mut bob_ev, |e| {
        matches!(e, Event::Connected(_)).then_some(())
    })
    .await;
    let (alice, mut alice_ev) = s.register(Transport::Tls, "alice").await;
    let conv = alice
        .open_direct(PeerRef::User(bob.user_id()))
        .await
        .unwrap()
        .id;
    let session = bob.login_result().session_id;
    assert_ne!(session, 0, "the server names the session");

    for i in 0..3 {
        alice
            .send(conv, ContentType::Text, Bytes::from(format!("before {i}")))
            .await
            .unwrap();
    }
    for i in 0..3 {
        expect_text(&mut bob_ev, conv, &format!("before {i}")).await;
    }
    let logins = stat(&s, "logins_total").await;
    let online = stat(&s, "sessions_online").await;

    let old_port = {
        // The address the server sees is the client's: rebind to a new port.
        let new = bob.rebind().unwrap();
        assert_ne!(new.port(), 0);
        new
    };
    // Sent while and after the client moves: each arrives exactly once, in order.
    for i in 0..5 {
        alice
            .send(conv, ContentType::Text, Bytes::from(format!("after {i}")))
            .await
            .unwrap();
    }
    for i in 0..5 {
        expect_text(&mut bob_ev, conv, &format!("after {i}")).await;
    }
    // And it can still send, from its new address.
    bob.send(conv, ContentType::Text, Bytes::from_static(b"moved"))
        .await
        .unwrap();
    let got = next_message(&mut alice_ev).await;
    assert_eq!(
        (got.sender, got.content),
        (bob.user_id(), Bytes::from_static(b"moved"))
    );

    assert_eq!(
        bob.login_result().session_id,
        session,
        "same session, no new login"
    );
    assert_eq!(stat(&s, "logins_total").await, logins, "no new login");
    assert_eq!(stat(&s, "sessions_online").await, online);
    // A second move works as well as the first.
    let again = bob.rebind().unwrap();
    assert_ne!(again.port(), old_port.port());
    alice
        .send(conv, ContentType::Text, Bytes::from_static(b"last"))
        .await
        .unwrap();
    expect_text(&mut bob_ev, conv, "last").await;
    assert_eq!(stat(&s, "logins_total").await, logins);

    bob.close().await;
    alice.close().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebind_is_refused_on_tcp_and_tls() {
    let s = TestServer::start().await;
    let (alice, _ev) = s.register(Transport::Tls, "alice").await;
    let e = alice.rebind().unwrap_err();
    assert!(e.to_string().contains("QUIC"), "{e}");
    alice.close().await;
    s.stop().await;
}
