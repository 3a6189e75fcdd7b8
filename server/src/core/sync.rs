//! Sync: one page of everything a user lacks, bounded by its encoded size.
//!
//! A page walks the user's conversations in id order, from the request's
//! `from_conversation` on. Each conversation is listed (its `ConversationInfo`), and where the
//! client lacks entries, those come with it (oldest first) together with the other members'
//! read receipts. Everything counts against one budget, `limits.max_sync_bytes` of encoded
//! response (every field: conversations with their member lists and group profiles, messages,
//! receipts), so a page always fits the frame limit however many conversations the user is in
//! and however large their profiles are. Before this, only message content counted and every
//! page listed every conversation: a user put into thousands of groups with large profiles got
//! pages over the client's 16 MiB frame limit and could never sync again (issue 15).
//!
//! Where the budget runs out, the page ends with `has_more` and `next_conversation_id`: the
//! conversation to start the next page at (the conversations before it are complete). A
//! conversation is listed only together with the entries the page carries for it, so the next
//! page lists it again only if the page stopped inside its entries. Progress is guaranteed: the
//! first conversation of a page always goes in with its info, receipts and at least one entry
//! (the configuration is validated so that this unit fits the budget).
//!
//! Building a page reads the store (members, heads, cursors, the log) and can take
//! milliseconds for a large page: it runs on the blocking pool ([`Core::sync`]), never on a
//! runtime worker, so other sessions' requests are not held up behind it.

use std::collections::HashMap;
use std::sync::Arc;

use parley_protocol::frames::{CursorKind, Receipt, SyncRequest, SyncResponse};
use parley_protocol::ids::{ConversationId, Seq, UserId};
use parley_protocol::ErrorCode;

use super::{err, internal, Core, CoreResult};
use crate::store::Members;

impl Core {
    /// One page of sync for `user`, built on the blocking pool.
    pub async fn sync(
        self: &Arc<Self>,
        user: UserId,
        request: SyncRequest,
    ) -> CoreResult<SyncResponse> {
        let core = self.clone();
        tokio::task::spawn_blocking(move || core.sync_page(user, request))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "sync page builder failed");
                err(ErrorCode::Internal, "internal error")
            })?
    }

    /// One page of everything the user lacks, oldest first per conversation, at most
    /// `limits.max_sync_bytes` encoded. Blocking: call through [`Core::sync`] from async code.
    pub fn sync_page(&self, user: UserId, request: SyncRequest) -> CoreResult<SyncResponse> {
        #[cfg(test)]
        tests::BUILT_ON
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((self.epoch(), std::thread::current().id()));
        let limits = &self.cfg.limits;
        let reset = request.epoch != 0 && request.epoch != self.epoch();
        let positions: HashMap<ConversationId, Seq> = if reset {
            HashMap::new()
        } else {
            request.positions.into_iter().collect()
        };
        let mut remaining = match request.limit {
            0 => limits.default_sync_page,
            n => n.min(limits.max_sync_page),
        } as usize;
        let budget = limits.max_sync_bytes as usize;
        let mut used = SyncResponse::FIXED_LEN;
        let mut response = SyncResponse {
            epoch: self.epoch(),
            reset,
            ..Default::default()
        };
        let convs = self.store.user_conversations(user).map_err(internal)?;
        let first = match (request.from_conversation, reset) {
            (Some(from), false) => convs.partition_point(|c| *c < from),
            _ => 0,
        };
        for &conv in &convs[first..] {
            let Ok((members, me)) = self.membership(conv, user) else {
                continue; // left between the two reads
            };
            let empty = response.conversations.is_empty();
            let info = self.info_from(conv, &members, user, &me)?;
            let info_len = info.encoded_len();
            let have = positions.get(&conv).copied().unwrap_or(Seq::ZERO);
            let start = have.max(Seq(info.visible_from.get() - 1));
            if info.head <= start {
                // Nothing lacking: only the listing.
                if used + info_len > budget && !empty {
                    return Ok(stopped(response, conv));
                }
                used += info_len;
                response.conversations.push(info);
                continue;
            }
            if remaining == 0 {
                return Ok(stopped(response, conv));
            }
            let receipts = self.read_receipts(conv, &members, user)?;
            let receipts_len: usize = receipts.iter().map(Receipt::encoded_len).sum();
            let room = budget.saturating_sub(used + info_len + receipts_len);
            if room == 0 && !empty {
                return Ok(stopped(response, conv));
            }
            // The store's byte bound counts stored encodings, close to (and, before rendering,
            // no larger than) what a message adds here; the exact cut follows below.
            let mut page = self
                .store
                .messages(conv, start, info.head, remaining, room)
                .map_err(internal)?;
            // Recalled content is withheld here too; edits and reactions ride along; what the
            // user deleted for itself comes without content.
            self.store.render(conv, &mut page).map_err(internal)?;
            self.store
                .mark_deleted_for(user, conv, &mut page)
                .map_err(internal)?;
            let mut kept = 0;
            let mut kept_len = 0;
            for m in &page {
                let len = m.encoded_len();
                // The first entry of a page's first conversation always goes in (progress).
                if kept_len + len > room && !(empty && kept == 0) {
                    break;
                }
                kept_len += len;
                kept += 1;
            }
            if kept == 0 {
                return Ok(stopped(response, conv));
            }
            page.truncate(kept);
            let complete = kept as u64 == info.head.get() - start.get();
            used += info_len + receipts_len + kept_len;
            remaining -= kept;
            response.conversations.push(info);
            response.messages.extend(page);
            response.receipts.extend(receipts);
            if !complete {
                return Ok(stopped(response, conv));
            }
        }
        Ok(response)
    }

    /// The other members' read cursors in `conv` (those that read anything).
    fn read_receipts(
        &self,
        conv: ConversationId,
        members: &Members,
        user: UserId,
    ) -> CoreResult<Vec<Receipt>> {
        let mut out = Vec::new();
        for (other, _) in members.list.iter().filter(|(u, _)| *u != user) {
            let c = self.store.cursors(*other, conv).map_err(internal)?;
            if c.read > Seq::ZERO {
                out.push(Receipt {
                    conversation: conv,
                    user: *other,
                    kind: CursorKind::Read,
                    seq: c.read,
                    unread: 0,
                });
            }
        }
        Ok(out)
    }
}

/// A page that ends before `next`: the next page of the round starts there.
fn stopped(mut response: SyncResponse, next: ConversationId) -> SyncResponse {
    response.has_more = true;
    response.next_conversation_id = next.get();
    response
}

/// The most one conversation's unit of a sync page can take (its info with every member and a
/// full group profile, every member's receipt, and one message of the largest size with
/// mentions), so the configuration can make sure a page fits it: the first unit of a page goes
/// in whatever its size.
pub fn sync_unit_bound(limits: &crate::config::LimitsConfig) -> usize {
    // A member id in a packed list: at most a 10-byte varint; a receipt: at most 48 bytes.
    const PER_MEMBER: usize = 10 + 48 + 10;
    // A group profile's text fields, ids and scalars; a message's fields besides its content.
    const FIXED: usize = 24 * 1024;
    limits.max_group_members * PER_MEMBER + limits.max_message_bytes as usize + FIXED
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::thread::ThreadId;

    use parley_protocol::frames::{Request, Response, SyncRequest};

    use crate::testing::Harness;

    /// Where pages were built: (store epoch, thread).
    pub(super) static BUILT_ON: Mutex<Vec<(u64, ThreadId)>> = Mutex::new(Vec::new());

    /// On a current-thread runtime the test's thread is the only runtime worker: a page built
    /// inline (as before, in `Service::execute`) would be built on it, holding up every other
    /// session of that worker for as long as the page takes.
    #[tokio::test(flavor = "current_thread")]
    async fn pages_are_built_on_the_blocking_pool_not_a_runtime_worker() {
        let h = Harness::start(|_| {}).await;
        let alice = h.register("alice").await;
        let answer = h.call(&alice, Request::Sync(SyncRequest::default())).await;
        assert!(matches!(answer, Response::Sync(_)), "{answer:?}");
        let epoch = h.service.core().epoch();
        let worker = std::thread::current().id();
        let built: Vec<ThreadId> = BUILT_ON
            .lock()
            .unwrap()
            .iter()
            .filter(|(e, _)| *e == epoch)
            .map(|(_, t)| *t)
            .collect();
        assert!(!built.is_empty(), "the page was built");
        assert!(
            built.iter().all(|t| *t != worker),
            "built on the runtime worker"
        );
        h.stop().await;
    }
}
