//! What happens to a message after it is sent: edits, recalls and reactions (events in the
//! conversation's log that amend an earlier entry), and history as it reads now.

use bytes::Bytes;
use parley_protocol::frames::{ConversationEvent, Message};
use parley_protocol::ids::{ClientMsgId, ConversationId, Seq, SessionId};
use parley_protocol::session::Identity;
use parley_protocol::ErrorCode;

use super::{err, internal, Answer, Core, CoreResult, Pending};
use crate::clock::now_ms;
use crate::store::MemberRecord;

/// History page when the client asks for 0.
const DEFAULT_HISTORY_PAGE: u32 = 50;

impl Core {
    /// The message at `seq` as `me` may see it: it exists, is at or after the member's join, and
    /// is a message (not an event). Its amendments come with it.
    fn target(
        &self,
        conv: ConversationId,
        seq: Seq,
        me: &MemberRecord,
    ) -> CoreResult<(Message, crate::store::Amendment)> {
        let missing = || err(ErrorCode::NotFound, "no such message");
        if seq.get() < me.from_seq {
            return Err(missing());
        }
        let msg = self
            .store
            .messages(conv, Seq(seq.get() - 1), seq, 1, usize::MAX)
            .map_err(internal)?
            .pop()
            .ok_or_else(missing)?;
        if msg.event.is_some() {
            return Err(err(
                ErrorCode::InvalidArgument,
                "conversation events cannot be edited, recalled or reacted to",
            ));
        }
        let amendment = self
            .store
            .amendments(conv, seq, seq)
            .map_err(internal)?
            .pop()
            .map(|(_, a)| a)
            .unwrap_or_default();
        Ok((msg, amendment))
    }

    /// Edits the caller's own message.
    pub async fn edit_message(
        &self,
        me: &Identity,
        origin: Option<SessionId>,
        conv: ConversationId,
        seq: Seq,
        content: Bytes,
        key: Option<ClientMsgId>,
    ) -> CoreResult<Pending> {
        self.check_size(&content)?;
        let (_, my) = self.gate_write(conv, me.user)?;
        let (msg, amendment) = self.target(conv, seq, &my)?;
        if msg.sender != me.user {
            return Err(err(
                ErrorCode::Forbidden,
                "only its sender can edit a message",
            ));
        }
        if amendment.recalled {
            return Err(err(ErrorCode::Conflict, "the message was recalled"));
        }
        let event = ConversationEvent::Edit { seq, content };
        self.commit_event(me, origin, conv, event, key, Answer::Ok)
            .await
    }

    /// Recalls a message: its sender within the recall window, a group's owner or managers at
    /// any time. Recalling a recalled message changes nothing.
    pub async fn recall_message(
        &self,
        me: &Identity,
        origin: Option<SessionId>,
        conv: ConversationId,
        seq: Seq,
        key: Option<ClientMsgId>,
    ) -> CoreResult<Option<Pending>> {
        let (members, my) = self.membership(conv, me.user)?;
        if members.record.settings.disbanded {
            return Err(err(ErrorCode::Disbanded, "the group was disbanded"));
        }
        let (msg, amendment) = self.target(conv, seq, &my)?;
        if amendment.recalled {
            return Ok(None);
        }
        let manager = members.record.group && my.role.manages();
        if !manager {
            if msg.sender != me.user {
                return Err(err(
                    ErrorCode::Forbidden,
                    "only its sender or a group manager can recall a message",
                ));
            }
            let window = self.settings.recall_window_ms();
            if now_ms().saturating_sub(msg.server_time_ms) > window {
                return Err(err(
                    ErrorCode::RecallExpired,
                    format!("messages can be recalled within {window} ms of sending"),
                ));
            }
        }
        let event = ConversationEvent::Recall(seq);
        self.commit_event(me, origin, conv, event, key, Answer::Ok)
            .await
            .map(Some)
    }

    /// Adds or removes the caller's reaction on a message (no change: answered at once).
    #[allow(clippy::too_many_arguments)]
    pub async fn react(
        &self,
        me: &Identity,
        origin: Option<SessionId>,
        conv: ConversationId,
        seq: Seq,
        emoji: String,
        remove: bool,
        key: Option<ClientMsgId>,
    ) -> CoreResult<Option<Pending>> {
        let (_, my) = self.gate_write(conv, me.user)?;
        let (_, amendment) = self.target(conv, seq, &my)?;
        if amendment.recalled {
            return Err(err(ErrorCode::Conflict, "the message was recalled"));
        }
        let has = amendment
            .reactions
            .get(&emoji)
            .is_some_and(|users| users.contains(&me.user.get()));
        if has != remove {
            return Ok(None);
        }
        let event = ConversationEvent::Reaction {
            seq,
            emoji,
            removed: remove,
        };
        self.commit_event(me, origin, conv, event, key, Answer::Ok)
            .await
            .map(Some)
    }

    /// A page of history as it reads now (edits applied, recalled content withheld, reactions
    /// attached; the amending events themselves left out). Backwards from before `before`
    /// (newest first; zero with `after` zero: from the head) or forwards from after `after`
    /// (oldest first). A page covers at most `limit` seqs.
    pub fn history(
        &self,
        me: &Identity,
        conv: ConversationId,
        before: Seq,
        after: Seq,
        limit: u32,
    ) -> CoreResult<(Vec<Message>, bool)> {
        let (_, my) = self.membership(conv, me.user)?;
        let limit = u64::from(match limit {
            0 => DEFAULT_HISTORY_PAGE,
            n => n.min(self.cfg.limits.max_sync_page),
        });
        let head = self.store.head(conv).map_err(internal)?.get();
        let floor = my.from_seq.max(1); // first readable seq
        let forward = after != Seq::ZERO;
        let (lo, hi) = if forward {
            let lo = after.get().saturating_add(1).max(floor);
            (lo, lo.saturating_add(limit - 1).min(head))
        } else {
            let hi = match before.get() {
                0 => head,
                b => (b - 1).min(head),
            };
            (hi.saturating_sub(limit - 1).max(floor), hi)
        };
        if hi < lo {
            return Ok((Vec::new(), false));
        }
        let mut page = self
            .store
            .messages(
                conv,
                Seq(lo - 1),
                Seq(hi),
                (hi - lo + 1) as usize,
                usize::MAX,
            )
            .map_err(internal)?;
        self.store.render(conv, &mut page).map_err(internal)?;
        self.store
            .mark_deleted_for(me.user, conv, &mut page)
            .map_err(internal)?;
        page.retain(|m| {
            m.event.as_ref().is_none_or(|e| e.amends().is_none())
                && !m.amended.as_ref().is_some_and(|a| a.deleted_for_me)
        });
        // Bounded by encoded size like a sync page (docs/security.md): up to 1,000 messages of
        // up to 64 KiB each would not fit a frame. The messages nearest the cursor are kept.
        let budget = self.cfg.limits.max_sync_bytes as usize;
        let mut used = 0;
        let mut fits = |m: &Message| {
            used += m.encoded_len();
            used <= budget
        };
        let keep = match forward {
            true => page.iter().take_while(|m| fits(m)).count(),
            false => page.iter().rev().take_while(|m| fits(m)).count(),
        }
        .max(1);
        let truncated = keep < page.len();
        if truncated {
            match forward {
                true => page.truncate(keep),
                false => drop(page.drain(..page.len() - keep)),
            }
        }
        let has_more = truncated || if forward { hi < head } else { lo > floor };
        if !forward {
            page.reverse();
        }
        Ok((page, has_more))
    }
}
