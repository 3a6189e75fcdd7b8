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
use super::{from_json, get_json, json, Result, Role, Store};

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

/// A call's record as listed for one participant.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CallEntry {
    /// Where the call was.
    pub conversation: u64,
    /// Who called.
    pub caller: u64,
    /// `parley.v1.CallMedia` number.
    pub media: i32,
    /// `parley.v1.CallOutcome` number.
    pub outcome: i32,
    /// Started, Unix ms.
    pub started_at_ms: u64,
    /// Accepted to end, ms.
    pub duration_ms: u64,
    /// Caller and invitees.
    pub participants: Vec<u64>,
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
                    self.remove_invite(conv, *user)?;
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
            ConversationEvent::Friend(e) => self.apply_friend_event(e, entry.server_time_ms),
            ConversationEvent::DeletedForMe { conversation, seqs } => {
                for seq in seqs {
                    self.deleted
                        .insert(triple(entry.sender, *conversation, *seq), &[][..])?;
                }
                Ok(())
            }
            ConversationEvent::Call(c) => {
                let record = CallEntry {
                    conversation: conv.get(),
                    caller: c.caller.get(),
                    media: c.media.to_wire(),
                    outcome: c.outcome.to_wire(),
                    started_at_ms: c.started_at_ms,
                    duration_ms: c.duration_ms,
                    participants: c.participants.iter().map(|u| u.get()).collect(),
                };
                for user in &c.participants {
                    self.calls.insert(pair(user.get(), c.call), json(&record))?;
                }
                Ok(())
            }
            ConversationEvent::Prefs {
                conversation,
                pinned,
                muted,
                hidden_upto,
            } => self.apply_prefs(entry.sender, *conversation, *pinned, *muted, *hidden_upto),
            // In the invitee's notices, whose only member is the invitee.
            ConversationEvent::GroupInvite { conversation, .. } => {
                match self.members_of(conv)?.and_then(|m| m.ids().next()) {
                    Some(invitee) => self.apply_invite(*conversation, invitee, entry),
                    None => Ok(()),
                }
            }
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
            // The group exists before its first entry: nothing to apply.
            ConversationEvent::Created { .. } => Ok(()),
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
        // An edit's content goes the way of its message: withheld once that is recalled.
        for m in page.iter_mut() {
            if let Some(ConversationEvent::Edit { seq, .. }) = m.event.as_deref() {
                let target = self.amends.get(pair(conv.get(), seq.get()))?;
                let recalled = target
                    .map(|v| from_json::<Amendment>(&v, "amends"))
                    .transpose()?
                    .is_some_and(|a| a.recalled);
                if recalled {
                    m.event = Some(Box::new(ConversationEvent::Edit {
                        seq: *seq,
                        content: bytes::Bytes::new(),
                    }));
                }
            }
        }
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
                deleted_for_me: false,
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

    /// `user`'s call records older than `before` (0: all), newest first, at most `limit`.
    pub fn calls_of(
        &self,
        user: UserId,
        before: u64,
        limit: usize,
    ) -> Result<Vec<(u64, CallEntry)>> {
        let end = match before {
            0 => pair(user.get(), u64::MAX),
            b => pair(user.get(), b - 1),
        };
        self.calls
            .range(pair(user.get(), 0)..=end)
            .rev()
            .take(limit)
            .map(|kv| {
                let (k, v) = kv?;
                let (_, call) = keys::decode_pair(&k, "calls")?;
                Ok((call, from_json(&v, "calls")?))
            })
            .collect()
    }

    /// Marks the messages of `page` (one conversation's, in seq order) that `user` deleted for
    /// itself: content withheld, `deleted_for_me` set. Returns how many.
    pub fn mark_deleted_for(
        &self,
        user: UserId,
        conv: ConversationId,
        page: &mut [Message],
    ) -> Result<usize> {
        let (Some(first), Some(last)) = (page.first(), page.last()) else {
            return Ok(0);
        };
        let mut n = 0;
        for k in self
            .deleted
            .range(triple(user, conv, first.seq)..=triple(user, conv, last.seq))
            .keys()
        {
            let k = k?;
            let seq = Seq(keys::decode_u64(&k[16..], "deleted")?);
            if let Some(m) = page.iter_mut().find(|m| m.seq == seq) {
                m.content = bytes::Bytes::new();
                m.mentions.clear();
                m.amended
                    .get_or_insert_with(Default::default)
                    .deleted_for_me = true;
                n += 1;
            }
        }
        Ok(n)
    }

    /// A pending join request of `user` to `conv`.
    pub fn join_request(
        &self,
        conv: ConversationId,
        user: UserId,
    ) -> Result<Option<JoinRequestRecord>> {
        get_json(&self.join_reqs, pair(conv.get(), user.get()), "join_reqs")
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

fn triple(user: UserId, conv: ConversationId, seq: Seq) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..8].copy_from_slice(&user.get().to_be_bytes());
    k[8..16].copy_from_slice(&conv.get().to_be_bytes());
    k[16..].copy_from_slice(&seq.get().to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use parley_protocol::frames::{
        ContentType, ConversationEvent, GroupProfileChange, JoinPolicy, JoinRequest, MemberRole,
        SendRequest,
    };
    use parley_protocol::ids::{ClientMsgId, ConversationId, DeviceId, Seq, UserId};

    use super::super::test_util::{reopen, temp_store};
    use super::super::{CommitItem, Role, Store};

    fn u(n: u64) -> UserId {
        UserId::try_from(n).unwrap()
    }

    fn entry(
        sender: u64,
        conv: ConversationId,
        key: &str,
        event: Option<ConversationEvent>,
    ) -> CommitItem {
        CommitItem {
            sender: u(sender),
            sender_device: DeviceId::try_from("d").unwrap(),
            request: SendRequest {
                conversation: conv,
                content_type: if event.is_some() {
                    ContentType::System
                } else {
                    ContentType::Text
                },
                content: if event.is_some() {
                    Bytes::new()
                } else {
                    Bytes::from_static(b"hello")
                },
                client_msg_id: ClientMsgId::try_from(key).unwrap(),
                reply_to: Seq::ZERO,
                mentions: vec![],
                mention_all: false,
            },
            event: event.map(Box::new),
            thread_root: Seq::ZERO,
            forwarded_from: None,
        }
    }

    /// Everything the events of this test leave behind, to compare.
    fn state(store: &Store, g: ConversationId) -> String {
        let m = store.members_of(g).unwrap().unwrap();
        let amends = store.amendments(g, Seq(1), Seq(100)).unwrap();
        let reqs = store.join_requests(g, 10).unwrap();
        format!("{:?} {:?} {:?} {:?}", m.record, m.list, amends, reqs)
    }

    #[test]
    fn group_and_amendment_events_apply_idempotently_and_replay_after_a_crash() {
        let (dir, store) = temp_store();
        let name = parley_protocol::values::GroupName::try_from("g").unwrap();
        let g = store
            .create_group(u(1), &name, &[u(2), u(3)], Default::default(), 0)
            .unwrap();
        let profile = GroupProfileChange {
            announcement: Some("hello".into()),
            public: Some(true),
            join_policy: Some(JoinPolicy::Approval),
            ..Default::default()
        };
        let batch = vec![
            entry(2, g, "m1", None),
            entry(3, g, "m2", None),
            entry(1, g, "e1", Some(ConversationEvent::GroupProfile(profile))),
            entry(
                1,
                g,
                "e2",
                Some(ConversationEvent::Role {
                    user: u(2),
                    role: MemberRole::Manager,
                    previous_owner: None,
                }),
            ),
            entry(
                2,
                g,
                "e3",
                Some(ConversationEvent::Mute {
                    user: Some(u(3)),
                    until_ms: 99,
                }),
            ),
            entry(
                3,
                g,
                "e4",
                Some(ConversationEvent::Nickname("three".into())),
            ),
            entry(
                2,
                g,
                "e5",
                Some(ConversationEvent::Edit {
                    seq: Seq(1),
                    content: Bytes::from_static(b"edited"),
                }),
            ),
            entry(
                3,
                g,
                "e6",
                Some(ConversationEvent::Reaction {
                    seq: Seq(1),
                    emoji: "+1".into(),
                    removed: false,
                }),
            ),
            entry(
                2,
                g,
                "e7",
                Some(ConversationEvent::Reaction {
                    seq: Seq(1),
                    emoji: "+1".into(),
                    removed: false,
                }),
            ),
            entry(
                3,
                g,
                "e8",
                Some(ConversationEvent::Reaction {
                    seq: Seq(1),
                    emoji: "+1".into(),
                    removed: true,
                }),
            ),
            entry(3, g, "e9", Some(ConversationEvent::Recall(Seq(2)))),
            entry(
                3,
                g,
                "e10",
                Some(ConversationEvent::Edit {
                    seq: Seq(2),
                    content: Bytes::from_static(b"after recall"),
                }),
            ),
            entry(
                4,
                g,
                "e11",
                Some(ConversationEvent::JoinRequest(JoinRequest {
                    user: u(4),
                    message: "hi".into(),
                    requested_at_ms: 5,
                })),
            ),
            entry(
                5,
                g,
                "e12",
                Some(ConversationEvent::JoinRequest(JoinRequest {
                    user: u(5),
                    message: "me".into(),
                    requested_at_ms: 6,
                })),
            ),
            entry(
                1,
                g,
                "e13",
                Some(ConversationEvent::Membership {
                    added: vec![u(4)],
                    removed: vec![],
                }),
            ),
            entry(
                1,
                g,
                "e14",
                Some(ConversationEvent::Role {
                    user: u(2),
                    role: MemberRole::Owner,
                    previous_owner: Some(u(1)),
                }),
            ),
        ];
        let (out, pending) = store.commit_batch(&batch, 1000).unwrap();
        assert!(out.iter().all(|o| o.is_ok()));
        store.make_durable(pending).unwrap();

        let m = store.members_of(g).unwrap().unwrap();
        let role = |n| m.get(u(n)).unwrap().role;
        assert_eq!(
            (role(1), role(2), role(3), role(4)),
            (Role::Member, Role::Owner, Role::Member, Role::Member)
        );
        assert_eq!(m.record.owner, Some(2));
        assert_eq!(m.record.settings.announcement, "hello");
        assert_eq!(m.get(u(3)).unwrap().muted_until_ms, 99);
        assert_eq!(m.get(u(3)).unwrap().nickname, "three");
        assert_eq!(
            m.get(u(4)).unwrap().from_seq,
            15,
            "joined at its event's seq"
        );
        let reqs = store.join_requests(g, 10).unwrap();
        assert_eq!(
            reqs.len(),
            1,
            "the approved request is gone, the other waits"
        );
        assert_eq!(reqs[0].0, u(5));

        let mut page = store.messages(g, Seq(0), Seq(2), 10, usize::MAX).unwrap();
        store.render(g, &mut page).unwrap();
        assert_eq!(page[0].content, "edited");
        let a = page[0].amended.as_ref().unwrap();
        assert_eq!(a.edited_at_ms, 1000);
        assert_eq!(a.reactions.len(), 1);
        assert_eq!(a.reactions[0].users, vec![u(2)]);
        assert!(
            page[1].content.is_empty(),
            "recalled; the later edit changes nothing"
        );
        assert!(page[1].amended.as_ref().unwrap().recalled);

        // Applying again changes nothing.
        let before = state(&store, g);
        let entries = store.messages(g, Seq(0), Seq(16), 100, usize::MAX).unwrap();
        for e in &entries {
            store.apply_event(e).unwrap();
        }
        assert_eq!(state(&store, g), before);

        // A crash after the log was durable but before sled kept the changes: the replay at
        // open applies them again, in log order.
        store.amends.clear().unwrap();
        store.join_reqs.clear().unwrap();
        store
            .update_member(g, u(2), |m| m.role = Role::Member)
            .unwrap();
        store
            .update_conversation(g, |r| r.settings = Default::default())
            .unwrap();
        store.db.flush().unwrap();
        drop(store);
        let store = reopen(dir.path()).unwrap();
        assert_eq!(state(&store, g), before, "replayed from the log");
    }
}
