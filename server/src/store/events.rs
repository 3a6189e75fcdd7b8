//! The state conversation events change, and the one place it is changed
//! ([`Store::apply_event`]): membership, group profile and settings, roles, mutes, nicknames,
//! join requests, and the amendments of messages (edits, recalls, reactions).
//!
//! Every apply is idempotent and deterministic in the entry alone, so applying a conversation's
//! events in log order over any later state gives that later state: the replay after a crash
//! relies on it. Request-time checks are advisory; the order of the log decides (an edit that
//! lands after a recall of the same message changes nothing, for example).

use std::collections::{BTreeMap, BTreeSet};

use parley_protocol::frames::{Amendments, ConversationEvent, Message, Reaction};
use parley_protocol::ids::{ConversationId, Seq, UserId};
use serde::{Deserialize, Serialize};

use super::keys::{self, pair, u64_key};
use super::{from_json, json, Result, Role, Store};

/// A pending request to join a group.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JoinRequestRecord {
    /// What the requester wrote.
    pub message: String,
    /// When, Unix ms.
    pub at_ms: u64,
    /// Seq of the request's event.
    pub seq: u64,
}

/// What later events did to a message.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Amendment {
    /// Seq of the newest edit event (its content is the message's content); 0 = not edited.
    #[serde(default)]
    pub edit_seq: u64,
    /// When it was last edited, Unix ms.
    #[serde(default)]
    pub edited_at_ms: u64,
    /// Recalled: its content is withheld.
    #[serde(default)]
    pub recalled: bool,
    /// Reactions: who, per reaction.
    #[serde(default)]
    pub reactions: BTreeMap<String, BTreeSet<u64>>,
}

impl Store {
    /// Applies the state change an event of a conversation's log carries, as of its seq.
    /// Idempotent, and applying a conversation's events in log order over any later state gives
    /// that later state: the replay after a crash relies on both.
    pub fn apply_event(&self, entry: &Message) -> Result<()> {
        let Some(event) = entry.event.as_deref() else {
            return Ok(());
        };
        let conv = entry.conversation;
        let cache = &self.member_cache;
        match event {
            ConversationEvent::Membership { added, removed } => cache.change(conv, || {
                self.change_members(conv, added, removed, entry.seq)?;
                for user in added {
                    self.join_reqs.remove(pair(conv.get(), user.get()))?;
                }
                Ok(())
            }),
            ConversationEvent::GroupProfile(change) => cache.change(conv, || {
                self.update_conversation(conv, |r| {
                    if let Some(name) = &change.name {
                        r.name = name.to_string();
                    }
                    let s = &mut r.settings;
                    if let Some(v) = &change.avatar_file_id {
                        s.avatar_file_id.clone_from(v);
                    }
                    if let Some(v) = &change.announcement {
                        s.announcement.clone_from(v);
                    }
                    if let Some(v) = &change.description {
                        s.description.clone_from(v);
                    }
                    if let Some(v) = change.public {
                        s.public = v;
                    }
                    if let Some(v) = change.join_policy {
                        s.join_policy = v.to_wire();
                    }
                    if let Some(v) = change.max_members {
                        s.max_members = v;
                    }
                })
            }),
            ConversationEvent::Role {
                user,
                role,
                previous_owner,
            } => cache.change(conv, || {
                let role = match role {
                    parley_protocol::frames::MemberRole::Owner => Role::Owner,
                    parley_protocol::frames::MemberRole::Manager => Role::Manager,
                    _ => Role::Member,
                };
                if let Some(old) = previous_owner {
                    self.update_member(conv, *old, |m| m.role = Role::Member)?;
                }
                self.update_member(conv, *user, |m| m.role = role)?;
                if role == Role::Owner {
                    self.update_conversation(conv, |r| r.owner = Some(user.get()))?;
                }
                Ok(())
            }),
            ConversationEvent::Mute { user, until_ms } => cache.change(conv, || match user {
                Some(u) => self.update_member(conv, *u, |m| m.muted_until_ms = *until_ms),
                None => {
                    self.update_conversation(conv, |r| r.settings.muted_all_until_ms = *until_ms)
                }
            }),
            ConversationEvent::Disband => cache.change(conv, || {
                self.update_conversation(conv, |r| r.settings.disbanded = true)
            }),
            ConversationEvent::Nickname(nickname) => cache.change(conv, || {
                self.update_member(conv, entry.sender, |m| m.nickname.clone_from(nickname))
            }),
            ConversationEvent::JoinRequest(r) => {
                if self.member(conv, r.user)?.is_none() {
                    let record = JoinRequestRecord {
                        message: r.message.clone(),
                        at_ms: r.requested_at_ms,
                        seq: entry.seq.get(),
                    };
                    self.join_reqs
                        .insert(pair(conv.get(), r.user.get()), json(&record))?;
                }
                Ok(())
            }
            ConversationEvent::JoinRejected(user) => {
                self.join_reqs.remove(pair(conv.get(), user.get()))?;
                Ok(())
            }
            ConversationEvent::Edit { seq, .. } => self.amend(conv, *seq, |a| {
                if !a.recalled && a.edit_seq < entry.seq.get() {
                    a.edit_seq = entry.seq.get();
                    a.edited_at_ms = entry.server_time_ms;
                }
            }),
            ConversationEvent::Recall(seq) => self.amend(conv, *seq, |a| {
                a.recalled = true;
                a.reactions.clear();
            }),
            ConversationEvent::Reaction {
                seq,
                emoji,
                removed,
            } => self.amend(conv, *seq, |a| {
                if a.recalled {
                    return;
                }
                let who = entry.sender.get();
                if *removed {
                    if let Some(users) = a.reactions.get_mut(emoji) {
                        users.remove(&who);
                        if users.is_empty() {
                            a.reactions.remove(emoji);
                        }
                    }
                } else {
                    a.reactions.entry(emoji.clone()).or_default().insert(who);
                }
            }),
        }
    }

    fn amend(&self, conv: ConversationId, seq: Seq, f: impl FnOnce(&mut Amendment)) -> Result<()> {
        let key = pair(conv.get(), seq.get());
        let mut a = match self.amends.get(key)? {
            Some(v) => from_json(&v, "amends")?,
            None => Amendment::default(),
        };
        f(&mut a);
        self.amends.insert(key, json(&a))?;
        Ok(())
    }

    /// The amendments of `conv`'s messages with `from <= seq <= to`, in seq order.
    pub fn amendments(
        &self,
        conv: ConversationId,
        from: Seq,
        to: Seq,
    ) -> Result<Vec<(Seq, Amendment)>> {
        self.amends
            .range(pair(conv.get(), from.get())..=pair(conv.get(), to.get()))
            .map(|kv| {
                let (k, v) = kv?;
                let (_, seq) = keys::decode_pair(&k, "amends")?;
                Ok((Seq(seq), from_json(&v, "amends")?))
            })
            .collect()
    }

    /// Renders a page of one conversation's entries as they read now: recalled messages lose
    /// their content, edited ones read their newest edit, reactions are attached. `page` is in
    /// seq order.
    pub fn render(&self, conv: ConversationId, page: &mut [Message]) -> Result<()> {
        let (Some(first), Some(last)) = (page.first(), page.last()) else {
            return Ok(());
        };
        let (from, to) = (first.seq, last.seq);
        for (seq, a) in self.amendments(conv, from, to)? {
            let Some(msg) = page.iter_mut().find(|m| m.seq == seq) else {
                continue;
            };
            if a.recalled {
                msg.content = bytes::Bytes::new();
                msg.mentions.clear();
            } else if a.edit_seq != 0 {
                let edit =
                    self.messages(conv, Seq(a.edit_seq - 1), Seq(a.edit_seq), 1, usize::MAX)?;
                if let Some(ConversationEvent::Edit { content, .. }) =
                    edit.first().and_then(|e| e.event.as_deref())
                {
                    msg.content = content.clone();
                }
            }
            msg.amended = Some(Box::new(Amendments {
                edited_at_ms: if a.recalled { 0 } else { a.edited_at_ms },
                recalled: a.recalled,
                reactions: a
                    .reactions
                    .into_iter()
                    .map(|(emoji, users)| Reaction {
                        emoji,
                        users: users
                            .into_iter()
                            .filter_map(|u| UserId::try_from(u).ok())
                            .collect(),
                    })
                    .collect(),
            }));
        }
        Ok(())
    }

    /// A pending join request of `user` to `conv`.
    pub fn join_request(
        &self,
        conv: ConversationId,
        user: UserId,
    ) -> Result<Option<JoinRequestRecord>> {
        self.join_reqs
            .get(pair(conv.get(), user.get()))?
            .map(|v| from_json(&v, "join_reqs"))
            .transpose()
    }

    /// Pending join requests of `conv`, oldest user id first, at most `limit`.
    pub fn join_requests(
        &self,
        conv: ConversationId,
        limit: usize,
    ) -> Result<Vec<(UserId, JoinRequestRecord)>> {
        self.join_reqs
            .scan_prefix(u64_key(conv.get()))
            .take(limit)
            .map(|kv| {
                let (k, v) = kv?;
                let (_, user) = keys::decode_pair(&k, "join_reqs")?;
                Ok((
                    keys::user(&u64_key(user), "join_reqs")?,
                    from_json(&v, "join_reqs")?,
                ))
            })
            .collect()
    }
}
