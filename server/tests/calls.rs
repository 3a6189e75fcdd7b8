//! Call signalling through the SDK against a real server: invite with an SDP offer, ringing,
//! ICE relayed both ways, accept with an SDP answer, end; rejected and cancelled calls; the
//! records in the conversation's log and in each participant's list; and the refusals.
#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

mod common;

use common::{code, wait_for, TestServer};
use parley_client::{Client, ClientError, Event, Events, Transport};
use parley_protocol::frames::{
    CallAction, CallMedia, CallOutcome, CallPush, CallSignal, ConversationEvent, PeerRef,
};
use parley_protocol::ids::ConversationId;
use parley_protocol::ErrorCode;

const T: Transport = Transport::Tls;

fn signal(call: u64, action: CallAction, payload: &str) -> CallSignal {
    CallSignal {
        call,
        action,
        conversation: None,
        media: CallMedia::Unspecified,
        payload: payload.into(),
    }
}

async fn invite(c: &Client, conv: ConversationId, media: CallMedia) -> Result<u64, ClientError> {
    c.call_signal(CallSignal {
        call: 0,
        action: CallAction::Invite,
        conversation: Some(conv),
        media,
        payload: "v=0 offer".into(),
    })
    .await
}

async fn heard(events: &mut Events, action: CallAction) -> CallPush {
    wait_for(events, |e| match e {
        Event::Call(c) if c.action == action => Some((**c).clone()),
        _ => None,
    })
    .await
}

async fn record(events: &mut Events, call: u64) -> parley_protocol::frames::CallRecord {
    wait_for(events, |e| match e {
        Event::Message(m) => match m.event.as_deref() {
            Some(ConversationEvent::Call(r)) if r.call == call => Some(r.clone()),
            _ => None,
        },
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_from_invite_to_end_and_its_record() {
    let s = TestServer::start().await;
    let (alice, mut alice_ev) = s.register(T, "alice").await;
    let (bob, mut bob_ev) = s.register(T, "bob").await;
    let (carol, _c) = s.register(T, "carol").await;
    let d = alice
        .open_direct(PeerRef::User(bob.user_id()))
        .await
        .unwrap()
        .id;

    let call = invite(&alice, d, CallMedia::Video).await.unwrap();
    let inv = heard(&mut bob_ev, CallAction::Invite).await;
    assert_eq!(
        (inv.call, inv.conversation, inv.from),
        (call, d, alice.user_id())
    );
    assert_eq!(
        (inv.media, inv.payload.as_str()),
        (CallMedia::Video, "v=0 offer")
    );
    assert_eq!(
        code(invite(&alice, d, CallMedia::Audio).await),
        ErrorCode::Conflict,
        "one call at a time per conversation"
    );

    // Someone outside the call, or the wrong party, is refused.
    assert_eq!(
        code(
            carol
                .call_signal(signal(call, CallAction::Accept, ""))
                .await
        ),
        ErrorCode::NotFound
    );
    assert_eq!(
        code(bob.call_signal(signal(call, CallAction::Cancel, "")).await),
        ErrorCode::Conflict
    );
    assert_eq!(
        code(alice.call_signal(signal(call, CallAction::End, "")).await),
        ErrorCode::Conflict,
        "not answered yet"
    );

    bob.call_signal(signal(call, CallAction::Ringing, ""))
        .await
        .unwrap();
    heard(&mut alice_ev, CallAction::Ringing).await;
    bob.call_signal(signal(call, CallAction::Ice, "candidate:bob"))
        .await
        .unwrap();
    assert_eq!(
        heard(&mut alice_ev, CallAction::Ice).await.payload,
        "candidate:bob"
    );
    bob.call_signal(signal(call, CallAction::Accept, "v=0 answer"))
        .await
        .unwrap();
    assert_eq!(
        heard(&mut alice_ev, CallAction::Accept).await.payload,
        "v=0 answer"
    );
    alice
        .call_signal(signal(call, CallAction::Ice, "candidate:alice"))
        .await
        .unwrap();
    assert_eq!(
        heard(&mut bob_ev, CallAction::Ice).await.payload,
        "candidate:alice"
    );
    alice
        .call_signal(signal(call, CallAction::End, ""))
        .await
        .unwrap();
    heard(&mut bob_ev, CallAction::End).await;

    // The record: in the conversation's log for both, and in each one's list.
    let r = record(&mut bob_ev, call).await;
    assert_eq!(r.outcome, CallOutcome::Completed);
    assert_eq!(r.caller, alice.user_id());
    assert_eq!(r.participants.len(), 2);
    for c in [&alice, &bob] {
        let (calls, more) = c.list_calls(0, 0).await.unwrap();
        assert!(!more);
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].0, d);
        assert_eq!(calls[0].1.call, call);
    }
    assert!(carol.list_calls(0, 0).await.unwrap().0.is_empty());
    assert_eq!(
        code(bob.call_signal(signal(call, CallAction::Ice, "late")).await),
        ErrorCode::NotFound,
        "the call is over"
    );

    // Rejected, then cancelled: each its own record, newest first in the list.
    let rejected = invite(&bob, d, CallMedia::Audio).await.unwrap();
    alice
        .call_signal(signal(rejected, CallAction::Reject, ""))
        .await
        .unwrap();
    assert_eq!(
        record(&mut alice_ev, rejected).await.outcome,
        CallOutcome::Rejected
    );
    let cancelled = invite(&alice, d, CallMedia::Audio).await.unwrap();
    heard(&mut bob_ev, CallAction::Invite).await;
    alice
        .call_signal(signal(cancelled, CallAction::Cancel, ""))
        .await
        .unwrap();
    heard(&mut bob_ev, CallAction::Cancel).await;
    let (calls, _) = bob.list_calls(0, 0).await.unwrap();
    let ids: Vec<u64> = calls.iter().map(|(_, r)| r.call).collect();
    assert_eq!(ids, [cancelled, rejected, call]);
    assert_eq!(calls[0].1.outcome, CallOutcome::Cancelled);
    let (older, _) = bob.list_calls(cancelled, 1).await.unwrap();
    assert_eq!(older[0].1.call, rejected);

    // Non-members cannot call into a conversation.
    assert_eq!(
        code(invite(&carol, d, CallMedia::Audio).await),
        ErrorCode::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_call_ends_missed() {
    let s = TestServer::start_with(|c| c.limits.call_ring_ms = 200).await;
    let (alice, mut alice_ev) = s.register(T, "alice").await;
    let (bob, mut bob_ev) = s.register(T, "bob").await;
    let d = alice
        .open_direct(PeerRef::User(bob.user_id()))
        .await
        .unwrap()
        .id;
    let call = invite(&alice, d, CallMedia::Audio).await.unwrap();
    heard(&mut bob_ev, CallAction::Invite).await;
    // Nobody answers: both hear it end, and the record says missed.
    heard(&mut bob_ev, CallAction::Cancel).await;
    let r = record(&mut alice_ev, call).await;
    assert_eq!((r.outcome, r.duration_ms), (CallOutcome::Missed, 0));
    assert_eq!(
        code(
            bob.call_signal(signal(call, CallAction::Accept, "late"))
                .await
        ),
        ErrorCode::NotFound
    );
}
