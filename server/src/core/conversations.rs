//! Conversations: 1:1 and groups, membership and the member cache used by every
//! authorization check and by the fan-out.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use parley_protocol::frames::{ConversationInfo, MembershipChange, PeerRef, Push, ServerFrame};
use parley_protocol::ids::{ConversationId, Seq, UserId};
use parley_protocol::session::Identity;
use parley_protocol::ErrorCode;

use super::{err, internal, Core, CoreResult};
use crate::clock::now_ms;
use crate::store::{ConversationRecord, MemberRecord, Role, Store, StoreError};

/// A conversation with its members, as cached.
#[derive(Debug)]
pub struct Members {
    /// The conversation's record.
    pub record: ConversationRecord,
    /// Members in user-id order.
    pub list: Vec<(UserId, MemberRecord)>,
}

impl Members {
    /// The record of `user`, if a member.
    pub fn get(&self, user: UserId) -> Option<&MemberRecord> {
        self.list
            .binary_search_by_key(&user, |(u, _)| *u)
            .ok()
            .map(|i| &self.list[i].1)
    }

    /// Member ids.
    pub fn ids(&self) -> impl Iterator<Item = UserId> + '_ {
        self.list.iter().map(|(u, _)| *u)
    }
}

/// Cache of conversation membership. Fills and invalidations happen under the write lock, so a
/// fill can never re-insert membership that a concurrent change just replaced.
#[derive(Debug, Default)]
pub struct MemberCache {
    map: RwLock<HashMap<ConversationId, Arc<Members>>>,
}

impl MemberCache {
    fn get(&self, store: &Store, conv: ConversationId) -> Result<Option<Arc<Members>>, StoreError> {
        if let Some(m) = self
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&conv)
        {
            return Ok(Some(m.clone()));
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = map.get(&conv) {
            return Ok(Some(m.clone()));
        }
        let Some(record) = store.conversation(conv)? else {
            return Ok(None);
        };
        let members = Arc::new(Members {
            record,
            list: store.members(conv)?,
        });
        map.insert(conv, members.clone());
        Ok(Some(members))
    }

    /// Runs a membership change and drops the cached entry, atomically for cache readers.
    fn change<T>(&self, conv: ConversationId, f: impl FnOnce() -> T) -> T {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        let out = f();
        map.remove(&conv);
        out
    }
}

impl Core {
    /// The conversation and its members; `NOT_FOUND` if it does not exist.
    pub(crate) fn members_of(&self, conv: ConversationId) -> CoreResult<Arc<Members>> {
        self.members
            .get(&self.store, conv)
            .map_err(internal)?
            .ok_or_else(|| err(ErrorCode::NotFound, "no such conversation"))
    }

    /// The conversation if `user` is a member. Non-members get `NOT_FOUND` as well, so ids
    /// cannot be probed.
    pub(crate) fn membership(
        &self,
        conv: ConversationId,
        user: UserId,
    ) -> CoreResult<(Arc<Members>, MemberRecord)> {
        let members = self.members_of(conv)?;
        let record = *members
            .get(user)
            .ok_or_else(|| err(ErrorCode::NotFound, "no such conversation"))?;
        Ok((members, record))
    }

    /// The conversation as `user` sees it.
    pub(crate) fn conversation_info(
        &self,
        conv: ConversationId,
        user: UserId,
    ) -> CoreResult<ConversationInfo> {
        let (members, me) = self.membership(conv, user)?;
        self.info_from(conv, &members, user, &me)
    }

    pub(crate) fn info_from(
        &self,
        conv: ConversationId,
        members: &Members,
        user: UserId,
        me: &MemberRecord,
    ) -> CoreResult<ConversationInfo> {
        let head = self.store.head(conv).map_err(internal)?;
        let cursors = self.store.cursors(user, conv).map_err(internal)?;
        let visible_from = Seq(me.from_seq.max(1));
        let read = cursors.read.max(Seq(visible_from.get() - 1));
        Ok(ConversationInfo {
            id: conv,
            kind: members.record.kind(),
            name: members.record.name.clone(),
            members: members.ids().collect(),
            head,
            delivered: cursors.delivered,
            read: cursors.read,
            unread: head.get().saturating_sub(read.get()),
            owner: members.record.owner.and_then(|o| UserId::try_from(o).ok()),
            visible_from,
        })
    }

    /// The 1:1 conversation with a peer (created on first use).
    pub async fn open_direct(&self, me: &Identity, peer: PeerRef) -> CoreResult<ConversationInfo> {
        let peer = match peer {
            PeerRef::User(u) => {
                self.store
                    .user(u)
                    .map_err(internal)?
                    .ok_or_else(|| err(ErrorCode::NotFound, "no such user"))?;
                u
            }
            PeerRef::Account(a) => {
                self.store
                    .user_by_account(a.as_str())
                    .map_err(internal)?
                    .ok_or_else(|| err(ErrorCode::NotFound, "no such user"))?
                    .0
            }
        };
        let conv = self
            .store
            .direct_conversation(me.user, peer, now_ms())
            .map_err(internal)?;
        self.durable().await?;
        self.conversation_info(conv, me.user)
    }

    /// Creates a group owned by the caller.
    pub async fn create_group(
        &self,
        me: &Identity,
        name: &str,
        members: &[UserId],
    ) -> CoreResult<ConversationInfo> {
        let mut others: Vec<UserId> = members.iter().copied().filter(|u| *u != me.user).collect();
        others.sort_unstable();
        others.dedup();
        if others.len() + 1 > self.cfg.limits.max_group_members {
            return Err(err(ErrorCode::InvalidArgument, "too many members"));
        }
        self.check_users_exist(&others)?;
        let conv = self
            .store
            .create_group(me.user, name, &others, now_ms())
            .map_err(internal)?;
        self.durable().await?;
        let info = self.conversation_info(conv, me.user)?;
        let members = self.members_of(conv)?;
        self.push_membership(&members, conv, me.user, &others, &[])?;
        Ok(info)
    }

    /// Adds and removes group members. Only the owner may change membership, except that any
    /// member may remove itself. New members see messages from the next seq on.
    pub async fn change_members(
        &self,
        me: &Identity,
        conv: ConversationId,
        add: &[UserId],
        remove: &[UserId],
    ) -> CoreResult<()> {
        let (members, my) = self.membership(conv, me.user)?;
        if !members.record.group {
            return Err(err(
                ErrorCode::InvalidArgument,
                "1:1 conversations have fixed members",
            ));
        }
        let leaving_only = add.is_empty() && remove.iter().all(|u| *u == me.user);
        if my.role != Role::Owner && !leaving_only {
            return Err(err(
                ErrorCode::Forbidden,
                "only the owner can change members",
            ));
        }
        if remove.contains(&me.user) && my.role == Role::Owner {
            return Err(err(
                ErrorCode::InvalidArgument,
                "the owner cannot leave the group",
            ));
        }
        let add: Vec<UserId> = add
            .iter()
            .copied()
            .filter(|u| members.get(*u).is_none())
            .collect();
        let remove: Vec<UserId> = remove
            .iter()
            .copied()
            .filter(|u| members.get(*u).is_some())
            .collect();
        if members.list.len() + add.len() > self.cfg.limits.max_group_members {
            return Err(err(ErrorCode::InvalidArgument, "too many members"));
        }
        self.check_users_exist(&add)?;
        let from = self.store.head(conv).map_err(internal)?.next();
        self.members
            .change(conv, || {
                self.store.change_members(conv, &add, &remove, from)
            })
            .map_err(internal)?;
        self.durable().await?;
        // Everyone before and after the change hears about it.
        let after = self.members_of(conv)?;
        self.push_membership(&after, conv, me.user, &add, &remove)?;
        if !remove.is_empty() {
            self.push_membership_to(&members, &remove, conv, me.user, &add, &remove)?;
        }
        Ok(())
    }

    fn check_users_exist(&self, users: &[UserId]) -> CoreResult<()> {
        for u in users {
            if self.store.user(*u).map_err(internal)?.is_none() {
                return Err(err(ErrorCode::NotFound, format!("no such user {u}")));
            }
        }
        Ok(())
    }

    fn push_membership(
        &self,
        members: &Members,
        conv: ConversationId,
        by: UserId,
        added: &[UserId],
        removed: &[UserId],
    ) -> CoreResult<()> {
        let all: Vec<UserId> = members.ids().collect();
        self.push_membership_to(members, &all, conv, by, added, removed)
    }

    fn push_membership_to(
        &self,
        members: &Members,
        to: &[UserId],
        conv: ConversationId,
        by: UserId,
        added: &[UserId],
        removed: &[UserId],
    ) -> CoreResult<()> {
        for &user in to {
            // Each member sees its own cursors; removed users get the last view they had.
            let me = members.get(user).copied().unwrap_or(MemberRecord {
                role: Role::Member,
                from_seq: 1,
            });
            let info = self.info_from(conv, members, user, &me)?;
            let frame = ServerFrame::Push(Push::Membership(MembershipChange {
                conversation: info,
                added: added.to_vec(),
                removed: removed.to_vec(),
                by,
            }))
            .encode();
            self.hub.deliver(user, &frame, None);
        }
        Ok(())
    }
}
