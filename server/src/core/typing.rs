//! Typing notices, coalesced: at most one per sender and conversation is relayed per
//! `limits.typing_interval_ms`. A notice is pushed to every other member, so without a bound
//! one client typing into a 201-member group raised 1.9 M pushes a second (issue 15). The
//! notices in between are answered `Ok` like the relayed one and dropped: a typing indicator
//! only needs to be refreshed now and then, and clients repeat it while the user types.
//!
//! Memory is bounded: at most [`MAX_TRACKED`] (sender, conversation) pairs are remembered; a full
//! table first forgets the pairs whose interval has passed, and if every pair is still fresh,
//! notices of new pairs are dropped until some interval passes (the table then cannot be used
//! to amplify either).
//!
//! Sans-IO: time comes in as `now`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parley_protocol::ids::{ConversationId, UserId};

/// Most (sender, conversation) pairs remembered at once.
const MAX_TRACKED: usize = 65_536;

/// When each sender last had a notice relayed in each conversation.
#[derive(Debug)]
pub struct TypingGate {
    interval: Duration,
    last: HashMap<(UserId, ConversationId), Instant>,
}

impl TypingGate {
    /// Relays at most one notice per pair per `interval` (zero: every notice).
    pub fn new(interval: Duration) -> TypingGate {
        TypingGate {
            interval,
            last: HashMap::new(),
        }
    }

    /// True if `user`'s notice in `conv` at `now` is to be relayed (and counts as the last one).
    pub fn admit(&mut self, user: UserId, conv: ConversationId, now: Instant) -> bool {
        if self.interval.is_zero() {
            return true;
        }
        let interval = self.interval;
        let fresh = |at: &Instant| now.saturating_duration_since(*at) < interval;
        if let Some(at) = self.last.get_mut(&(user, conv)) {
            if fresh(at) {
                return false;
            }
            *at = now;
            return true;
        }
        if self.last.len() >= MAX_TRACKED {
            self.last.retain(|_, at| fresh(at));
            if self.last.len() >= MAX_TRACKED {
                return false;
            }
        }
        self.last.insert((user, conv), now);
        true
    }
}

impl super::Core {
    /// Whether `user`'s typing notice in `conv` is relayed now (see the module docs).
    pub(crate) fn typing_admitted(&self, user: UserId, conv: ConversationId) -> bool {
        let now = tokio::time::Instant::now().into_std();
        let mut gate = self.typing_gate.lock().unwrap_or_else(|e| e.into_inner());
        gate.admit(user, conv, now)
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a fixed start instant; time then moves by hand
mod tests {
    use super::*;

    fn u(n: u64) -> UserId {
        UserId::try_from(n).unwrap()
    }

    fn c(n: u64) -> ConversationId {
        ConversationId::try_from(n).unwrap()
    }

    #[test]
    fn one_notice_per_sender_and_conversation_per_interval() {
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        let mut gate = TypingGate::new(second);
        assert!(gate.admit(u(1), c(1), t0));
        assert!(!gate.admit(u(1), c(1), t0 + second / 2));
        // Other senders and other conversations have their own interval.
        assert!(gate.admit(u(2), c(1), t0));
        assert!(gate.admit(u(1), c(2), t0));
        assert!(gate.admit(u(1), c(1), t0 + second));
        assert!(!gate.admit(u(1), c(1), t0 + second + second / 2));
        let mut open = TypingGate::new(Duration::ZERO);
        assert!(open.admit(u(1), c(1), t0) && open.admit(u(1), c(1), t0));
    }

    #[test]
    fn a_full_table_forgets_old_pairs_and_refuses_while_all_are_fresh() {
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        let mut gate = TypingGate::new(second);
        for n in 1..=MAX_TRACKED as u64 {
            assert!(gate.admit(u(n), c(1), t0));
        }
        assert!(!gate.admit(u(1), c(2), t0), "full of fresh pairs");
        assert!(gate.admit(u(1), c(2), t0 + second), "old pairs forgotten");
        assert_eq!(gate.last.len(), 1);
    }
}
