//! Conversations: 1:1 and groups, and membership. Creating a conversation writes its initial
//! state (its members as of seq 0); every later membership change is an event in the
//! conversation's log, committed, pushed and synced like a message.

use std::sync::Arc;

use bytes::Bytes;
use parley_protocol::frames::{
    ContentType, ConversationEvent, ConversationInfo, GroupProfile, JoinPolicy, MemberRole,
    PeerRef, SendRequest,
};
use parley_protocol::ids::{ClientMsgId, ConversationId, Seq, SessionId, UserId};
use parley_protocol::session::Identity;
use parley_protocol::values::GroupName;
use parley_protocol::ErrorCode;

use super::{err, internal, Answer, Core, CoreResult, Pending};
use crate::clock::now_ms;
use crate::store::{
    CommitItem, ConversationRecord, Cursors, GroupSettings, MemberRecord, Members, Prefs, Role,
};

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
        // Without the nickname: every send checks membership, and cloning even an empty
        // String cost ~1 % of 1:1 chat (read `members.get(user)` where the nickname matters).
        let record = members
            .get(user)
            .ok_or_else(|| err(ErrorCode::NotFound, "no such conversation"))?
            .without_nickname();
        Ok((members, record))
    }

    /// The gate every entry a member writes passes, written once: a member (else `NOT_FOUND`,
    /// so ids cannot be probed), of a group that is not disbanded (`DISBANDED`), and not muted
    /// there (`MUTED`; a mute of everyone spares the owner and managers).
    pub(crate) fn gate_write(
        &self,
        conv: ConversationId,
        user: UserId,
    ) -> CoreResult<(Arc<Members>, MemberRecord)> {
        let (members, me) = self.membership(conv, user)?;
        if !members.record.group {
            if members.record.notices {
                return Err(err(
                    ErrorCode::Forbidden,
                    "notices are written by the server",
                ));
            }
            if let Some(peer) = members.ids().find(|u| *u != user) {
                self.check_direct(user, peer)?;
            }
            return Ok((members, me));
        }
        let settings = &members.record.settings;
        if settings.disbanded {
            return Err(err(ErrorCode::Disbanded, "the group was disbanded"));
        }
        if me.muted_until_ms != 0 || settings.muted_all_until_ms != 0 {
            let now = now_ms();
            if me.muted_until_ms > now {
                return Err(err(ErrorCode::Muted, "you are muted in this group"));
            }
            if settings.muted_all_until_ms > now && !me.role.manages() {
                return Err(err(ErrorCode::Muted, "everyone is muted in this group"));
            }
        }
        Ok((members, me))
    }

    /// Whether `me` and `peer` may talk 1:1: neither blocked the other (`BLOCKED`), and they
    /// are friends where the server wants that (`NOT_FRIENDS`).
    pub(crate) fn check_direct(&self, me: UserId, peer: UserId) -> CoreResult<()> {
        if self.store.blocked_either(me, peer) {
            return Err(err(ErrorCode::Blocked, "one of you blocked the other"));
        }
        if !self.cfg.rules.strangers_may_chat
            && me != peer
            && !self.store.are_friends(me, peer).map_err(internal)?
        {
            return Err(err(
                ErrorCode::NotFriends,
                "only friends can chat one to one on this server",
            ));
        }
        Ok(())
    }

    /// Refuses to put into a group anyone who blocked the one adding them.
    fn check_addable(&self, by: UserId, users: &[UserId]) -> CoreResult<()> {
        if users.iter().any(|u| self.store.blocked(*u, by)) {
            return Err(err(ErrorCode::Blocked, "a user you add has blocked you"));
        }
        Ok(())
    }

    /// The gate of a group's management requests: a member of a group that is not disbanded,
    /// with `FORBIDDEN` unless `allowed(role)`.
    pub(crate) fn gate_manage(
        &self,
        conv: ConversationId,
        user: UserId,
        allowed: impl FnOnce(Role) -> bool,
        what: &'static str,
    ) -> CoreResult<(Arc<Members>, MemberRecord)> {
        let (members, me) = self.membership(conv, user)?;
        if !members.record.group {
            return Err(err(
                ErrorCode::InvalidArgument,
                "1:1 conversations have no group settings",
            ));
        }
        if members.record.settings.disbanded {
            return Err(err(ErrorCode::Disbanded, "the group was disbanded"));
        }
        if !allowed(me.role) {
            return Err(err(ErrorCode::Forbidden, what));
        }
        Ok((members, me))
    }

    /// Commits a conversation event and waits until it is queued; the returned answer resolves
    /// once it is durable (and was applied).
    pub(crate) async fn commit_event(
        &self,
        me: &Identity,
        origin: Option<SessionId>,
        conv: ConversationId,
        event: ConversationEvent,
        key: Option<ClientMsgId>,
        answer: Answer,
    ) -> CoreResult<Pending> {
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
                mention_all: false,
            },
            event: Some(Box::new(event)),
            thread_root: Default::default(),
            forwarded_from: None,
        };
        self.commit(item, origin, answer)?.queued().await
    }

    /// The member limit of a group: its own, within the server's.
    pub(crate) fn member_limit(&self, members: &Members) -> usize {
        let server = self.cfg.limits.max_group_members;
        match members.record.settings.max_members {
            0 => server,
            own => (own as usize).min(server),
        }
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
        let prefs = self.store.prefs(user, conv).map_err(internal)?;
        Ok(info_with(conv, members, me, head, cursors, prefs))
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
        self.check_direct(me.user, peer)?;
        let conv = self
            .store
            .direct_conversation(me.user, peer, now_ms())
            .map_err(internal)?;
        self.durable().await?;
        self.conversation_info(conv, me.user)
    }

    /// Creates a group owned by the caller. The members given that it may add directly (friends,
    /// users accepting anyone) are its initial state: they see it from seq 1, and its first
    /// entry (seq 1) is a `Created` event naming them, so they hear of the group at once
    /// (pushed, synced); the others are invited.
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
        self.check_addable(me.user, &others)?;
        self.charge_group_ops(me.user, 1, others.len())?;
        // Friends (and users who accept anyone) go in; the others are invited (`invites.rs`).
        let (direct, invited) = self.split_adds(me.user, others)?;
        let settings = GroupSettings {
            join_policy: JoinPolicy::Approval.to_wire(),
            ..GroupSettings::default()
        };
        let conv = self
            .store
            .create_group(me.user, name, &direct, settings, now_ms())
            .map_err(internal)?;
        self.durable().await?;
        let mut initial = vec![me.user];
        initial.extend(&direct);
        let created = ConversationEvent::Created {
            name: name.as_str().to_owned(),
            members: initial,
        };
        let pending = self
            .commit_event(me, None, conv, created, None, Answer::Ok)
            .await?;
        if let parley_protocol::frames::Response::Error(e) = pending.await {
            return Err(e);
        }
        if !invited.is_empty() {
            self.invite_into_group(me, None, conv, name.as_str(), &invited)
                .await?;
        }
        self.conversation_info(conv, me.user)
    }

    /// Adds and removes group members. The owner and managers add members and remove plain
    /// ones (only the owner removes managers); any member may remove itself but the owner, who
    /// transfers ownership first. The change is an event in the group's log: it takes the next
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
        if add.is_empty() && remove.is_empty() {
            // Refused before anything is read or written (issue 15: it used to be an event
            // pushed to every member, with a disk sync).
            return Err(err(
                ErrorCode::InvalidArgument,
                "a membership change must add or remove someone",
            ));
        }
        let leaving_only = add.is_empty() && remove.iter().all(|u| *u == me.user);
        let (members, my) = self.gate_manage(
            conv,
            me.user,
            |role| role.manages() || leaving_only,
            "only the owner and managers can change members",
        )?;
        if remove.contains(&me.user) && my.role == Role::Owner {
            return Err(err(
                ErrorCode::InvalidArgument,
                "the owner cannot leave the group (transfer ownership first)",
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
        for u in remove.iter().filter(|u| **u != me.user) {
            let role = members.get(*u).map(|m| m.role);
            if my.role != Role::Owner && role != Some(Role::Member) {
                return Err(err(
                    ErrorCode::Forbidden,
                    "only the owner can remove the owner's managers",
                ));
            }
        }
        if members.list.len() + add.len() > self.member_limit(&members) {
            return Err(err(ErrorCode::InvalidArgument, "too many members"));
        }
        self.check_users_exist(&add)?;
        self.check_addable(me.user, &add)?;
        if add.is_empty() && remove.is_empty() {
            return Ok(None); // nothing changes: no event
        }
        self.charge_group_ops(me.user, 0, add.len())?;
        // Friends (and users who accept anyone) go in; the others are invited (`invites.rs`).
        let (add, invited) = self.split_adds(me.user, add)?;
        if !invited.is_empty() {
            self.invite_into_group(me, origin, conv, &members.record.name, &invited)
                .await?;
        }
        if add.is_empty() && remove.is_empty() {
            return Ok(None); // only invitations: answered once they are durable
        }
        let event = ConversationEvent::Membership {
            added: add,
            removed: remove,
        };
        self.commit_event(me, origin, conv, event, key, Answer::Ok)
            .await
            .map(Some)
    }

    pub(crate) fn check_users_exist(&self, users: &[UserId]) -> CoreResult<()> {
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

/// A group's profile as the protocol shows it.
pub(crate) fn group_profile(record: &ConversationRecord) -> GroupProfile {
    let s = &record.settings;
    GroupProfile {
        name: record.name.clone(),
        avatar_file_id: s.avatar_file_id.clone(),
        announcement: s.announcement.clone(),
        description: s.description.clone(),
        public: s.public,
        join_policy: match JoinPolicy::from_wire(s.join_policy) {
            JoinPolicy::Unspecified => JoinPolicy::InviteOnly,
            p => p,
        },
        max_members: s.max_members,
        muted_all_until_ms: s.muted_all_until_ms,
        disbanded: s.disbanded,
    }
}

/// A role as the protocol names it.
pub(crate) fn member_role(role: Role) -> MemberRole {
    match role {
        Role::Owner => MemberRole::Owner,
        Role::Manager => MemberRole::Manager,
        Role::Member => MemberRole::Member,
    }
}

/// The conversation as one member sees it, from what was read for it.
pub(crate) fn info_with(
    conv: ConversationId,
    members: &Members,
    me: &MemberRecord,
    head: Seq,
    cursors: Cursors,
    prefs: Prefs,
) -> ConversationInfo {
    let visible_from = Seq(me.from_seq.max(1));
    let read = cursors.read.max(Seq(visible_from.get() - 1));
    ConversationInfo {
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
        group: members
            .record
            .group
            .then(|| Box::new(group_profile(&members.record))),
        my_role: member_role(me.role),
        my_muted_until_ms: me.muted_until_ms,
        pinned: prefs.pinned,
        muted: prefs.muted,
        hidden: prefs.hidden_at(head),
        last_message: None,
    }
}
