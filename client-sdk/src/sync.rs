//! Bookkeeping of sync rounds. A round is a series of pages, each asking from the positions the
//! previous one reached, until `has_more` is false. At most one round runs at a time; asking for
//! a sync while one runs queues exactly one more round (which starts from fresher positions and
//! so also covers the request), and its callers are answered when that round ends.
//!
//! A user in many conversations gets them over several pages of a round: each page names where
//! the next one starts (`next_conversation_id`), and the round's conversations are the union of
//! its pages'.

use parley_protocol::frames::{ConversationInfo, SyncResponse};
use parley_protocol::ids::ConversationId;
use tokio::sync::oneshot;

use crate::error::ClientError;

/// The outcome of a completed sync round.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncSummary {
    /// Every conversation of the user, with head, cursors and unread count, in id order (each
    /// as of the last page of the round that listed it).
    pub conversations: Vec<ConversationInfo>,
    /// Messages fetched (before duplicates were dropped); new ones were delivered as events.
    pub messages: usize,
    /// Pages fetched.
    pub pages: usize,
    /// Whether the server's store had been reset (an [`Event::Reset`](crate::Event) was emitted).
    pub reset: bool,
    /// The store epoch the positions now refer to.
    pub epoch: u64,
}

pub(crate) type SyncWaiter = oneshot::Sender<Result<SyncSummary, ClientError>>;

struct Round {
    waiters: Vec<SyncWaiter>,
    summary: SyncSummary,
    /// Where the next page starts (`None`: at the first conversation).
    from: Option<ConversationId>,
}

/// Whether a round runs, who waits for it, and whether another is wanted.
#[derive(Default)]
pub(crate) struct SyncState {
    running: Option<Round>,
    again: bool,
    next_waiters: Vec<SyncWaiter>,
}

impl SyncState {
    /// Asks for a sync. Returns true if a round must start now (none was running).
    pub(crate) fn request(&mut self, waiter: Option<SyncWaiter>) -> bool {
        if self.running.is_some() {
            self.again = true;
            self.next_waiters.extend(waiter);
            false
        } else {
            self.running = Some(Round {
                waiters: waiter.into_iter().collect(),
                summary: SyncSummary::default(),
                from: None,
            });
            true
        }
    }

    /// Whether a round is running.
    pub(crate) fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Where the running round's next page starts.
    pub(crate) fn from(&self) -> Option<ConversationId> {
        self.running.as_ref().and_then(|r| r.from)
    }

    /// Accounts for one page of the running round. Returns whether the page moved the round's
    /// conversation cursor forward (a page may carry no message and still progress by listing
    /// conversations).
    pub(crate) fn page(&mut self, page: &SyncResponse) -> bool {
        let Some(round) = &mut self.running else {
            return false;
        };
        let next = ConversationId::try_from(page.next_conversation_id).ok();
        let advanced = match (next, round.from) {
            (Some(n), Some(f)) => n > f,
            (Some(_), None) => true,
            (None, _) => false,
        };
        // A cursor that does not advance keeps the round where it was (a page that stopped
        // inside a conversation's messages starts there again).
        if advanced {
            round.from = next;
        }
        {
            let s = &mut round.summary;
            if page.reset {
                s.conversations.clear();
            }
            for c in &page.conversations {
                match s.conversations.binary_search_by_key(&c.id, |x| x.id) {
                    Ok(i) => s.conversations[i] = c.clone(),
                    Err(i) => s.conversations.insert(i, c.clone()),
                }
            }
            s.messages += page.messages.len();
            s.pages += 1;
            s.reset |= page.reset;
            s.epoch = page.epoch;
        }
        advanced
    }

    /// Ends the running round: its waiters get the summary, or `error`. Returns true if another
    /// round must start now.
    pub(crate) fn finish(&mut self, error: Option<ClientError>) -> bool {
        if let Some(round) = self.running.take() {
            for w in round.waiters {
                let _ = w.send(match &error {
                    None => Ok(round.summary.clone()),
                    Some(e) => Err(e.clone()),
                });
            }
        }
        if std::mem::take(&mut self.again) {
            let waiters = std::mem::take(&mut self.next_waiters);
            self.running = Some(Round {
                waiters,
                summary: SyncSummary::default(),
                from: None,
            });
            true
        } else {
            false
        }
    }

    /// Whether the running round was asked for by a caller (who will hear of its failure).
    pub(crate) fn has_waiters(&self) -> bool {
        self.running.as_ref().is_some_and(|r| !r.waiters.is_empty())
    }

    /// Abandons everything (the connection is gone): every waiter gets `error`.
    pub(crate) fn abort(&mut self, error: &ClientError) {
        let current = self.running.take().map(|r| r.waiters).unwrap_or_default();
        for w in current.into_iter().chain(self.next_waiters.drain(..)) {
            let _ = w.send(Err(error.clone()));
        }
        self.again = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_during_a_round_queue_one_more() {
        let mut s = SyncState::default();
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        let (tx3, mut rx3) = oneshot::channel();
        assert!(s.request(Some(tx1)));
        assert!(!s.request(Some(tx2)));
        assert!(!s.request(Some(tx3)));
        s.page(&SyncResponse {
            epoch: 7,
            messages: vec![],
            ..Default::default()
        });
        // First round done; the queued one starts and carries both later callers.
        assert!(s.finish(None));
        let first = rx1.try_recv().unwrap().unwrap();
        assert_eq!((first.pages, first.epoch), (1, 7));
        assert!(rx2.try_recv().is_err());
        assert!(s.has_waiters());
        assert!(!s.finish(None));
        assert!(rx2.try_recv().unwrap().is_ok());
        assert!(rx3.try_recv().unwrap().is_ok());
        assert!(!s.is_running());
    }

    #[test]
    fn a_round_follows_the_conversation_cursor_and_lists_the_union() {
        let info = |id: u64| ConversationInfo {
            id: ConversationId::try_from(id).unwrap(),
            kind: parley_protocol::frames::ConversationKind::Group,
            name: String::new(),
            members: Vec::new(),
            head: parley_protocol::ids::Seq::ZERO,
            delivered: parley_protocol::ids::Seq::ZERO,
            read: parley_protocol::ids::Seq::ZERO,
            unread: 0,
            owner: None,
            visible_from: parley_protocol::ids::Seq(1),
            group: None,
            my_role: parley_protocol::frames::MemberRole::Member,
            my_muted_until_ms: 0,
            pinned: false,
            muted: false,
            hidden: false,
            last_message: None,
        };
        let mut s = SyncState::default();
        let (tx, mut rx) = oneshot::channel();
        assert!(s.request(Some(tx)));
        assert_eq!(s.from(), None);
        // A page that lists 1 and 2 and stops before 5.
        let moved = s.page(&SyncResponse {
            conversations: vec![info(2), info(1)],
            has_more: true,
            next_conversation_id: 5,
            ..Default::default()
        });
        assert!(moved);
        assert_eq!(s.from(), ConversationId::try_from(5).ok());
        // A page that stopped inside 5's entries: the cursor stays.
        let moved = s.page(&SyncResponse {
            conversations: vec![info(5)],
            has_more: true,
            next_conversation_id: 5,
            ..Default::default()
        });
        assert!(!moved);
        assert_eq!(s.from(), ConversationId::try_from(5).ok());
        s.page(&SyncResponse {
            conversations: vec![info(5), info(9)],
            ..Default::default()
        });
        assert!(!s.finish(None));
        let summary = rx.try_recv().unwrap().unwrap();
        let ids: Vec<u64> = summary.conversations.iter().map(|c| c.id.get()).collect();
        assert_eq!(ids, vec![1, 2, 5, 9]);
        assert_eq!(summary.pages, 3);
        // The next round starts at the first conversation again.
        assert!(s.request(None));
        assert_eq!(s.from(), None);
    }

    #[test]
    fn abort_fails_everyone() {
        let mut s = SyncState::default();
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        s.request(Some(tx1));
        s.request(Some(tx2));
        s.abort(&ClientError::Disconnected);
        assert!(matches!(rx1.try_recv(), Ok(Err(ClientError::Disconnected))));
        assert!(matches!(rx2.try_recv(), Ok(Err(ClientError::Disconnected))));
        assert!(!s.is_running());
        assert!(s.request(None));
    }
}
