//! Per-conversation ordering of what the application is given.
//!
//! Each conversation has a *position*: the highest seq up to which the application has seen
//! every message (delivered as an event, or sent by this connection and acknowledged). Messages
//! come in from pushes, sync pages and own acks in any order; this module turns them into a
//! gapless, duplicate-free, seq-ordered stream per conversation:
//!
//! - `seq <= position`: a duplicate, dropped;
//! - `seq == position + 1`: released, together with whatever buffered run follows it;
//! - `seq > position + 1`: buffered until the gap fills. A gap that outlives the gap timeout is
//!   filled by sync (the store is the truth; pushes are an optimisation).
//!
//! Pure state: time comes in as `now`, nothing here does IO.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use parley_protocol::frames::Message;
use parley_protocol::ids::{ConversationId, Seq};

/// Most messages buffered ahead of a gap per conversation. Beyond it new arrivals are dropped
/// (sync fetches them again), so a server that never fills a gap cannot grow the client's memory.
pub(crate) const MAX_BUFFERED: usize = 4096;

/// What a buffered slot holds.
#[derive(Debug)]
enum Slot {
    /// A message to deliver when its turn comes.
    Message(Message),
    /// A seq this connection sent itself (known from its ack): advance over it silently.
    Own,
}

#[derive(Debug, Default)]
struct Conversation {
    position: Seq,
    ahead: BTreeMap<Seq, Slot>,
    /// Since when the conversation has had a gap, if it has one.
    gap_since: Option<Instant>,
}

impl Conversation {
    /// Moves the position over every contiguous buffered slot, releasing messages.
    fn release(&mut self, out: &mut Vec<Message>) {
        while let Some(entry) = self.ahead.first_entry() {
            if *entry.key() != self.position.next() {
                break;
            }
            self.position = self.position.next();
            if let Slot::Message(m) = entry.remove() {
                out.push(m);
            }
        }
    }

    fn insert(&mut self, seq: Seq, slot: Slot, now: Instant, out: &mut Vec<Message>) -> Outcome {
        if seq <= self.position {
            return Outcome::Duplicate;
        }
        if seq == self.position.next() {
            self.position = seq;
            if let Slot::Message(m) = slot {
                out.push(m);
            }
            self.release(out);
        } else {
            if self.ahead.len() >= MAX_BUFFERED && !self.ahead.contains_key(&seq) {
                return Outcome::Overflow;
            }
            // A later copy of the same seq adds nothing; keep the first (an `Own` marker in
            // particular must not be replaced by the pushed message).
            self.ahead.entry(seq).or_insert(slot);
        }
        if self.ahead.is_empty() {
            self.gap_since = None;
            Outcome::InOrder
        } else {
            self.gap_since.get_or_insert(now);
            Outcome::Gap
        }
    }
}

/// What happened to an offered message or seq.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Accepted; the conversation has no gap.
    InOrder,
    /// Accepted; the conversation has a gap to fill.
    Gap,
    /// Already covered by the position: ignored.
    Duplicate,
    /// Dropped because too much is buffered ahead of a gap: sync now.
    Overflow,
}

/// Positions of every conversation the client has heard of.
#[derive(Debug, Default)]
pub(crate) struct Positions {
    conversations: HashMap<ConversationId, Conversation>,
}

impl Positions {
    /// Starts from positions the application already holds.
    pub(crate) fn with_positions(positions: &[(ConversationId, Seq)]) -> Self {
        let mut p = Positions::default();
        for (c, seq) in positions {
            p.conversations.entry(*c).or_default().position = *seq;
        }
        p
    }

    /// The conversation's position (`Seq::ZERO` if unknown).
    #[cfg(test)]
    pub(crate) fn position(&self, c: ConversationId) -> Seq {
        self.conversations.get(&c).map_or(Seq::ZERO, |c| c.position)
    }

    /// Offers a message from a push or sync; what becomes deliverable is appended to `out`, in
    /// order.
    pub(crate) fn offer(&mut self, m: Message, now: Instant, out: &mut Vec<Message>) -> Outcome {
        let seq = m.seq;
        self.conversations
            .entry(m.conversation)
            .or_default()
            .insert(seq, Slot::Message(m), now, out)
    }

    /// Records a seq the application already knows (its own acknowledged send).
    pub(crate) fn mark_own(
        &mut self,
        c: ConversationId,
        seq: Seq,
        now: Instant,
        out: &mut Vec<Message>,
    ) -> Outcome {
        self.conversations
            .entry(c)
            .or_default()
            .insert(seq, Slot::Own, now, out)
    }

    /// Raises the position to at least `floor` (messages before a member joined are not
    /// visible, so nothing below it will ever arrive), releasing what the raise makes
    /// contiguous.
    pub(crate) fn raise_floor(&mut self, c: ConversationId, floor: Seq, out: &mut Vec<Message>) {
        let conv = self.conversations.entry(c).or_default();
        if floor > conv.position {
            conv.position = floor;
            conv.ahead = conv.ahead.split_off(&floor.next());
            conv.release(out);
            if conv.ahead.is_empty() {
                conv.gap_since = None;
            }
        }
    }

    /// Non-zero positions, as a sync request wants them.
    pub(crate) fn snapshot(&self) -> Vec<(ConversationId, Seq)> {
        let mut v: Vec<_> = self
            .conversations
            .iter()
            .filter(|(_, c)| c.position > Seq::ZERO)
            .map(|(id, c)| (*id, c.position))
            .collect();
        v.sort_unstable();
        v
    }

    /// Forgets everything (the server's store was reset).
    pub(crate) fn clear(&mut self) {
        self.conversations.clear();
    }

    /// When the oldest open gap is due for a sync.
    pub(crate) fn gap_deadline(&self, timeout: Duration) -> Option<Instant> {
        self.conversations
            .values()
            .filter_map(|c| c.gap_since)
            .min()
            .map(|since| since + timeout)
    }

    /// Gives every remaining gap a fresh timeout (after a sync that did not fill it, for
    /// example because the missing message was committed after the sync's snapshot).
    pub(crate) fn restart_gap_clocks(&mut self, now: Instant) {
        for c in self.conversations.values_mut() {
            if c.gap_since.is_some() {
                c.gap_since = Some(now);
            }
        }
    }

    /// Messages held back behind gaps, all conversations together.
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.conversations.values().map(|c| c.ahead.len()).sum()
    }
}

#[cfg(test)]
mod tests;
