//! Full-text search over the caller's messages ([`crate::search`] holds the index).

use parley_protocol::frames::Message;
use parley_protocol::ids::ConversationId;
use parley_protocol::session::Identity;
use parley_protocol::ErrorCode;

use super::{err, internal, Core, CoreResult};

/// Results per page when the client asks for 0, and at most.
const DEFAULT_PAGE: u32 = 20;
const MAX_PAGE: u32 = 100;

impl Core {
    /// Text messages matching `query` in the caller's conversations (or `conv` only), newest
    /// first, older than message id `before` (0: from the newest). Blocking (the index is read
    /// from disk): run it off the runtime's workers.
    pub fn search_messages(
        &self,
        me: &Identity,
        query: &str,
        conv: Option<ConversationId>,
        before: u64,
        limit: u32,
    ) -> CoreResult<(Vec<Message>, bool)> {
        let Some(search) = &self.search else {
            return Err(err(ErrorCode::Forbidden, "search is off on this server"));
        };
        let limit = match limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        } as usize;
        let convs = match conv {
            Some(c) => {
                self.membership(c, me.user)?;
                vec![c]
            }
            None => self
                .store
                .with_user_index(me.user, |i| i.convs.clone())
                .map_err(internal)?,
        };
        let hits = search
            .search(query, &convs, before, limit + 1)
            .map_err(|e| {
                tracing::error!(error = %e, "search failed");
                err(ErrorCode::Internal, "internal error")
            })?;
        let has_more = hits.len() > limit;
        let mut out = Vec::with_capacity(limit);
        for hit in hits.into_iter().take(limit) {
            // Visible to the caller (not from before it joined), and still as the index saw it.
            let Ok((_, rec)) = self.membership(hit.conversation, me.user) else {
                continue;
            };
            if hit.seq.get() < rec.from_seq {
                continue;
            }
            let mut page = self
                .store
                .messages(
                    hit.conversation,
                    parley_protocol::ids::Seq(hit.seq.get() - 1),
                    hit.seq,
                    1,
                    usize::MAX,
                )
                .map_err(internal)?;
            self.store
                .render(hit.conversation, &mut page)
                .map_err(internal)?;
            self.store
                .mark_deleted_for(me.user, hit.conversation, &mut page)
                .map_err(internal)?;
            if let Some(m) = page.pop() {
                let gone = m
                    .amended
                    .as_ref()
                    .is_some_and(|a| a.recalled || a.deleted_for_me);
                if !gone {
                    out.push(m);
                }
            }
        }
        Ok((out, has_more))
    }

    /// Waits until what the indexer committed is visible to searches (tests).
    pub fn refresh_search(&self) {
        if let Some(s) = &self.search {
            let _ = s.refresh();
        }
    }
}
