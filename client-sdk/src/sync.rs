//! Bookkeeping of sync rounds. A round is a series of pages, each asking from the positions the
//! previous one reached, until `has_more` is false. At most one round runs at a time; asking for
//! a sync while one runs queues exactly one more round (which starts from fresher positions and
//! so also covers the request), and its callers are answered when that round ends.

use parley_protocol::frames::{ConversationInfo, SyncResponse};
use tokio::sync::oneshot;

use crate::error::ClientError;

/// The outcome of a completed sync round.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncSummary {
    /// Every conversation of the user, with head, cursors and unread count (as of the last page).
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
            });
            true
        }
    }

    /// Whether a round is running.
    pub(crate) fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Accounts for one page of the running round.
    pub(crate) fn page(&mut self, page: &SyncResponse) {
        if let Some(round) = &mut self.running {
            let s = &mut round.summary;
            s.conversations = page.conversations.clone();
            s.messages += page.messages.len();
            s.pages += 1;
            s.reset |= page.reset;
            s.epoch = page.epoch;
        }
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
