use super::*;

use bytes::Bytes;
use parley_protocol::frames::ContentType;
use parley_protocol::ids::{ClientMsgId, DeviceId, MessageId, UserId};

fn conv(n: u64) -> ConversationId {
    ConversationId::try_from(n).unwrap()
}

fn msg(c: u64, seq: u64) -> Message {
    Message {
        id: MessageId::try_from(c * 1000 + seq).unwrap(),
        conversation: conv(c),
        seq: Seq(seq),
        sender: UserId::try_from(9).unwrap(),
        sender_device: DeviceId::try_from("phone").unwrap(),
        content_type: ContentType::Text,
        content: Bytes::from(format!("m{seq}")),
        client_msg_id: ClientMsgId::try_from(format!("c{c}-{seq}")).unwrap(),
        server_time_ms: 0,
        reply_to: Seq::ZERO,
        mentions: vec![],
        event: None,
        amended: None,
        thread_root: Default::default(),
        forwarded_from: None,
        mention_all: false,
    }
}

fn seqs(out: &[Message]) -> Vec<u64> {
    out.iter().map(|m| m.seq.get()).collect()
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

#[test]
fn in_order_messages_pass_straight_through() {
    let mut p = Positions::default();
    let mut out = Vec::new();
    for s in 1..=3 {
        assert_eq!(p.offer(msg(1, s), now(), &mut out), Outcome::InOrder);
    }
    assert_eq!(seqs(&out), [1, 2, 3]);
    assert_eq!(p.position(conv(1)), Seq(3));
    assert_eq!(p.gap_deadline(Duration::from_secs(1)), None);
}

#[test]
fn duplicates_are_dropped() {
    let mut p = Positions::default();
    let mut out = Vec::new();
    p.offer(msg(1, 1), now(), &mut out);
    p.offer(msg(1, 2), now(), &mut out);
    assert_eq!(p.offer(msg(1, 1), now(), &mut out), Outcome::Duplicate);
    assert_eq!(p.offer(msg(1, 2), now(), &mut out), Outcome::Duplicate);
    assert_eq!(seqs(&out), [1, 2]);
    // A duplicate of a buffered message is not delivered twice either.
    p.offer(msg(1, 4), now(), &mut out);
    p.offer(msg(1, 4), now(), &mut out);
    p.offer(msg(1, 3), now(), &mut out);
    assert_eq!(seqs(&out), [1, 2, 3, 4]);
}

#[test]
fn gaps_are_buffered_until_filled() {
    let mut p = Positions::default();
    let mut out = Vec::new();
    let t0 = now();
    p.offer(msg(1, 1), t0, &mut out);
    assert_eq!(p.offer(msg(1, 3), t0, &mut out), Outcome::Gap);
    assert_eq!(p.offer(msg(1, 4), t0, &mut out), Outcome::Gap);
    assert_eq!(seqs(&out), [1]);
    assert_eq!(p.buffered(), 2);
    let timeout = Duration::from_secs(1);
    assert_eq!(p.gap_deadline(timeout), Some(t0 + timeout));
    // A later arrival does not move the gap's clock.
    p.offer(msg(1, 5), t0 + timeout / 2, &mut out);
    assert_eq!(p.gap_deadline(timeout), Some(t0 + timeout));
    assert_eq!(p.offer(msg(1, 2), t0, &mut out), Outcome::InOrder);
    assert_eq!(seqs(&out), [1, 2, 3, 4, 5]);
    assert_eq!(p.position(conv(1)), Seq(5));
    assert_eq!(p.gap_deadline(timeout), None);
    assert_eq!(p.buffered(), 0);
}

#[test]
fn conversations_are_independent() {
    let mut p = Positions::default();
    let mut out = Vec::new();
    p.offer(msg(1, 1), now(), &mut out);
    p.offer(msg(2, 2), now(), &mut out);
    p.offer(msg(2, 1), now(), &mut out);
    p.offer(msg(1, 2), now(), &mut out);
    let got: Vec<_> = out
        .iter()
        .map(|m| (m.conversation.get(), m.seq.get()))
        .collect();
    assert_eq!(got, [(1, 1), (2, 1), (2, 2), (1, 2)]);
    assert_eq!(p.snapshot(), vec![(conv(1), Seq(2)), (conv(2), Seq(2))]);
}

#[test]
fn own_acks_advance_without_events() {
    let mut p = Positions::default();
    let mut out = Vec::new();
    p.offer(msg(1, 1), now(), &mut out);
    // Own message 2 acked: position moves, nothing delivered.
    assert_eq!(
        p.mark_own(conv(1), Seq(2), now(), &mut out),
        Outcome::InOrder
    );
    assert_eq!(p.position(conv(1)), Seq(2));
    assert_eq!(seqs(&out), [1]);
    // Own ack ahead of a gap: 4 is ours, 3 is someone else's and arrives later.
    assert_eq!(p.mark_own(conv(1), Seq(4), now(), &mut out), Outcome::Gap);
    p.offer(msg(1, 5), now(), &mut out);
    assert_eq!(seqs(&out), [1]);
    // The push of our own 4 (e.g. from sync) must not surface as an event.
    p.offer(msg(1, 4), now(), &mut out);
    p.offer(msg(1, 3), now(), &mut out);
    assert_eq!(seqs(&out), [1, 3, 5]);
    assert_eq!(p.position(conv(1)), Seq(5));
    // An ack for something already passed is a no-op.
    assert_eq!(
        p.mark_own(conv(1), Seq(4), now(), &mut out),
        Outcome::Duplicate
    );
}

#[test]
fn floor_skips_invisible_history() {
    let mut p = Positions::default();
    let mut out = Vec::new();
    // Joined a group at seq 10: pushes start there.
    p.offer(msg(1, 10), now(), &mut out);
    p.offer(msg(1, 12), now(), &mut out);
    assert!(out.is_empty());
    p.raise_floor(conv(1), Seq(9), &mut out);
    assert_eq!(seqs(&out), [10]);
    assert!(p.gap_deadline(Duration::from_secs(1)).is_some());
    p.raise_floor(conv(1), Seq(11), &mut out);
    assert_eq!(seqs(&out), [10, 12]);
    assert_eq!(p.gap_deadline(Duration::from_secs(1)), None);
    // Lowering is ignored.
    p.raise_floor(conv(1), Seq(3), &mut out);
    assert_eq!(p.position(conv(1)), Seq(12));
}

#[test]
fn buffer_is_bounded() {
    let mut p = Positions::default();
    let mut out = Vec::new();
    for s in 0..MAX_BUFFERED as u64 {
        assert_eq!(p.offer(msg(1, s + 2), now(), &mut out), Outcome::Gap);
    }
    let over = MAX_BUFFERED as u64 + 2;
    assert_eq!(p.offer(msg(1, over), now(), &mut out), Outcome::Overflow);
    assert_eq!(p.buffered(), MAX_BUFFERED);
    p.offer(msg(1, 1), now(), &mut out);
    assert_eq!(out.len(), MAX_BUFFERED + 1);
    assert_eq!(p.position(conv(1)), Seq(over - 1));
    assert_eq!(p.offer(msg(1, over), now(), &mut out), Outcome::InOrder);
}

#[test]
fn clocks_restart_and_positions_resume() {
    let mut p = Positions::with_positions(&[(conv(1), Seq(7))]);
    let mut out = Vec::new();
    assert_eq!(p.offer(msg(1, 7), now(), &mut out), Outcome::Duplicate);
    let t0 = now();
    p.offer(msg(1, 9), t0, &mut out);
    let later = t0 + Duration::from_secs(5);
    p.restart_gap_clocks(later);
    assert_eq!(
        p.gap_deadline(Duration::from_secs(1)),
        Some(later + Duration::from_secs(1))
    );
    p.clear();
    assert_eq!(p.position(conv(1)), Seq::ZERO);
    assert!(p.snapshot().is_empty());
    assert_eq!(p.gap_deadline(Duration::from_secs(1)), None);
}
