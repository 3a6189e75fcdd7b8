//! The caller's conversation list and its preferences (pinned, muted, hidden).

use parley_protocol::frames::{ConversationEvent, ConversationInfo, ConversationPrefs};
use parley_protocol::ids::{ConversationId, Seq, SessionId};
use parley_protocol::session::Identity;

use super::conversations::info_with;
use super::{internal, Answer, Core, CoreResult, Pending};
use crate::clock::now_ms;

/// One page of the list, with the badge count over all of it.
pub struct ListPage {
    /// The page, in list order.
    pub conversations: Vec<ConversationInfo>,
    /// Unread over every listed conversation that is not muted.
    pub total_unread: u64,
    /// Conversations listed in all.
    pub total: u32,
}

impl Core {
    /// The caller's conversations (not its notices: they are in sync): pinned first, then by
    /// latest activity (the log position of the newest entry: positions grow with every commit
    /// and are in memory, so ordering reads no entry), conversations without entries last by
    /// id; hidden ones left out. The user's conversations and cursors come from memory
    /// ([`crate::store::UserIndex`]); only the page's conversations are read in full (with their
    /// last entry). A page holds at most `limit` conversations (0: no count) and at most
    /// `limits.max_sync_bytes` of encoded infos (at least one), so it always fits in a frame
    /// however many conversations the caller is in and however large their last entries.
    pub fn list_conversations(
        &self,
        me: &Identity,
        limit: u32,
        offset: u32,
    ) -> CoreResult<ListPage> {
        let notices = self.store.notices_of(me.user).map_err(internal)?;
        let prefs = self.store.user_prefs(me.user).map_err(internal)?;
        let mut total_unread = 0u64;
        let mut listed = Vec::new();
        let take = match limit {
            0 => usize::MAX,
            n => n as usize,
        };
        let mut total = 0u32;
        let chosen = self
            .store
            .with_user_index(me.user, |index| {
                let activity = self.store.activity(&index.convs);
                listed.reserve(index.convs.len());
                for (&conv, (head, pos)) in index.convs.iter().zip(activity) {
                    let p = prefs.get(&conv).copied().unwrap_or_default();
                    if p.hidden_at(head) || Some(conv) == notices {
                        continue;
                    }
                    if !p.muted && head != Seq::ZERO {
                        let Ok(members) = self.members_of(conv) else {
                            continue;
                        };
                        let Some(rec) = members.get(me.user) else {
                            continue; // left meanwhile
                        };
                        let read = index.cursors.get(&conv).map_or(Seq::ZERO, |c| c.read);
                        let floor = read.get().max(rec.from_seq.saturating_sub(1));
                        total_unread += head.get().saturating_sub(floor);
                    }
                    listed.push((p.pinned, pos, conv));
                }
                // Pinned first; then newest activity; no entries last, newest id first.
                listed.sort_unstable_by(|a, b| {
                    b.0.cmp(&a.0)
                        .then_with(|| match (a.1, b.1) {
                            (Some(x), Some(y)) => y.cmp(&x),
                            (Some(_), None) => std::cmp::Ordering::Less,
                            (None, Some(_)) => std::cmp::Ordering::Greater,
                            (None, None) => std::cmp::Ordering::Equal,
                        })
                        .then(b.2.cmp(&a.2))
                });
                total = u32::try_from(listed.len()).unwrap_or(u32::MAX);
                listed
                    .iter()
                    .skip(offset as usize)
                    .take(take)
                    .map(|(_, _, conv)| {
                        let c = index.cursors.get(conv).copied().unwrap_or_default();
                        (*conv, c)
                    })
                    .collect::<Vec<_>>()
            })
            .map_err(internal)?;
        let budget = self.cfg.limits.max_sync_bytes as usize;
        let mut used = 0usize;
        let mut page = Vec::with_capacity(chosen.len());
        for (conv, c) in chosen {
            let Ok((members, rec)) = self.membership(conv, me.user) else {
                continue;
            };
            let head = self.store.head(conv).map_err(internal)?;
            let p = prefs.get(&conv).copied().unwrap_or_default();
            let mut info = info_with(conv, &members, &rec, head, c, p);
            if head != Seq::ZERO && head.get() >= rec.from_seq {
                let mut last = self
                    .store
                    .messages(conv, Seq(head.get() - 1), head, 1, usize::MAX)
                    .map_err(internal)?;
                self.store.render(conv, &mut last).map_err(internal)?;
                info.last_message = last.pop().map(Box::new);
            }
            let len = info.encoded_len();
            if used + len > budget && !page.is_empty() {
                break;
            }
            used += len;
            page.push(info);
        }
        Ok(ListPage {
            conversations: page,
            total_unread,
            total,
        })
    }

    /// Pins, mutes or hides a conversation for the caller: an event in its notices, so every
    /// device of the caller hears it. `None`: nothing changes.
    pub async fn set_conversation_prefs(
        &self,
        me: &Identity,
        origin: Option<SessionId>,
        conv: ConversationId,
        prefs: ConversationPrefs,
    ) -> CoreResult<Option<Pending>> {
        self.membership(conv, me.user)?;
        let now = self.store.prefs(me.user, conv).map_err(internal)?;
        let head = self.store.head(conv).map_err(internal)?;
        let pinned = prefs.pinned.filter(|v| *v != now.pinned);
        let muted = prefs.muted.filter(|v| *v != now.muted);
        // Hiding a conversation without entries changes nothing: it is listed last and shows
        // again with its first entry anyway.
        let hidden_upto = match prefs.hidden {
            Some(true) if head != Seq::ZERO && head.get() != now.hidden_upto => Some(head),
            Some(false) if now.hidden_upto != 0 => Some(Seq::ZERO),
            _ => None,
        };
        if pinned.is_none() && muted.is_none() && hidden_upto.is_none() {
            return Ok(None);
        }
        let notices = self
            .store
            .notices_conversation(me.user, now_ms())
            .map_err(internal)?;
        let event = ConversationEvent::Prefs {
            conversation: conv,
            pinned,
            muted,
            hidden_upto,
        };
        self.commit_event(me, origin, notices, event, None, Answer::Ok)
            .await
            .map(Some)
    }
}
