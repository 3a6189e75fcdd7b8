//! Conversations: 1:1 and groups, and membership. Creating a conversation writes its initial
//! state (its members as of seq 0); every later membership change is an event in the
//! conversation's log, committed, pushed and synced like a message.

use std::sync::Arc;

use bytes::Bytes;
use parley_protocol::frames::{
    ContentType, ConversationEvent, ConversationInfo, PeerRef, SendRequest,
};
use parley_protocol::ids::{ClientMsgId, ConversationId, Seq, SessionId, UserId};
use parley_protocol::session::Identity;
use parley_protocol::values::GroupName;
use parley_protocol::ErrorCode;

use super::{err, internal, Answer, Core, CoreResult, Pending};
use crate::clock::now_ms;
use crate::store::{CommitItem, MemberRecord, Members, Role};

impl Core {
    /// The conversation and its members; `NOT_FOUND` if it does not exist.
    pub(crate) fn members_of(&self, conv: ConversationId) -> CoreResult<Arc<Members>> {
        self.store
            .members_of(conv)
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

    /// Creates a group owned by the caller. The members given are its initial state: they see
    /// it from seq 1 and it needs no event (there is nothing before it to order against).
    pub async fn create_group(
        &self,
        me: &Identity,
        name: &GroupName,
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
        self.conversation_info(conv, me.user)
    }

    /// Adds and removes group members. Only the owner may change membership, except that any
    /// member may remove itself. The change is an event in the group's log: it takes the next
    /// seq, added members see the group from it on, and it is pushed to the members before and
    /// after it. Answered once durable (`None`: nothing to change, answered at once).
    pub async fn change_members(
        &self,
        me: &Identity,
        origin: Option<SessionId>,
        conv: ConversationId,
        add: &[UserId],
        remove: &[UserId],
        key: Option<ClientMsgId>,
    ) -> CoreResult<Option<Pending>> {
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
        let mut add: Vec<UserId> = add
            .iter()
            .copied()
            .filter(|u| members.get(*u).is_none())
            .collect();
        add.sort_unstable();
        add.dedup();
        let mut remove: Vec<UserId> = remove
            .iter()
            .copied()
            .filter(|u| members.get(*u).is_some())
            .collect();
        remove.sort_unstable();
        remove.dedup();
        if members.list.len() + add.len() > self.cfg.limits.max_group_members {
            return Err(err(ErrorCode::InvalidArgument, "too many members"));
        }
        self.check_users_exist(&add)?;
        if add.is_empty() && remove.is_empty() {
            return Ok(None); // nothing changes: no event
        }
        let key = match key {
            Some(k) => k,
            None => server_key()?,
        };
        let item = CommitItem {
            sender: me.user,
            sender_device: me.device.clone(),
            request: SendRequest {
                conversation: conv,
                content_type: ContentType::System,
                content: Bytes::new(),
                client_msg_id: key,
                reply_to: Seq::ZERO,
                mentions: Vec::new(),
            },
            event: Some(ConversationEvent::Membership {
                added: add,
                removed: remove,
            }),
        };
        self.commit(item, origin, Answer::Ok)?
            .queued()
            .await
            .map(Some)
    }

    fn check_users_exist(&self, users: &[UserId]) -> CoreResult<()> {
        for u in users {
            if self.store.user(*u).map_err(internal)?.is_none() {
                return Err(err(ErrorCode::NotFound, format!("no such user {u}")));
            }
        }
        Ok(())
    }
}

/// An idempotency key for a request that came without one: random, so it never matches an
/// earlier entry (the request is then not protected against retries).
fn server_key() -> CoreResult<ClientMsgId> {
    let raw: [u8; 16] = rand::random();
    ClientMsgId::try_from(format!("srv-{}", hex::encode(raw)))
        .map_err(|_| err(ErrorCode::Internal, "internal error"))
}
