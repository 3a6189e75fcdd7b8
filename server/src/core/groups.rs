//! Groups beyond membership: profile and settings, roles, mutes, disbanding, nicknames, the
//! member list, and joining (free, or by a request a manager answers). Every change is an event
//! in the group's log ([`Core::commit_event`]); the store applies it once durable.

use parley_protocol::frames::{
    ConversationEvent, GroupInfo, GroupProfileChange, JoinPolicy, JoinRequest, MemberInfo,
    MemberRole,
};
use parley_protocol::ids::{ClientMsgId, ConversationId, Seq, SessionId, UserId};
use parley_protocol::session::Identity;
use parley_protocol::ErrorCode;

use super::conversations::{group_profile, member_role};
use super::{err, internal, Answer, Core, CoreResult, Pending};
use crate::clock::now_ms;
use crate::store::Role;

/// Members listed per page when the client asks for 0, and at most.
const DEFAULT_MEMBER_PAGE: u32 = 100;
const MAX_MEMBER_PAGE: u32 = 1000;
/// Pending join requests shown by `GetGroup`.
const MAX_JOIN_REQUESTS_SHOWN: usize = 100;

/// What `JoinGroup` did, when it did not need to wait.
pub enum Join {
    /// Already a member, or a request is already pending: nothing new to commit.
    Already {
        /// A request waits for a manager.
        pending: bool,
    },
    /// The membership or the request is being committed.
    Committing(Pending),
}

impl Core {
    /// Changes a group's profile and settings (owner or managers).
    pub async fn update_group(
        &self,
        me: &Identity,
        origin: Option<SessionId>,
        conv: ConversationId,
        change: GroupProfileChange,
        key: Option<ClientMsgId>,
    ) -> CoreResult<Option<Pending>> {
        let (members, _) = self.gate_manage(
            conv,
            me.user,
            Role::manages,
            "only the owner and managers can change the group",
        )?;
        if let Some(max) = change.max_members {
            let max = max as usize;
            if max < members.list.len() || max > self.cfg.limits.max_group_members {
                return Err(err(
                    ErrorCode::InvalidArgument,
                    format!(
                        "max_members must be between the member count ({}) and {}",
                        members.list.len(),
                        self.cfg.limits.max_group_members
                    ),
                ));
            }
        }
        if change.is_empty() {
            return Ok(None);
        }
        let event = ConversationEvent::GroupProfile(change);
        self.commit_event(me, origin, conv, event, key, Answer::Ok)
            .await
            .map(Some)
    }

    /// Appoints or demotes a manager, or transfers ownership (owner only).
    pub async fn set_member_role(
        &self,
        me: &Identity,
        origin: Option<SessionId>,
        conv: ConversationId,
        user: UserId,
        role: MemberRole,
        key: Option<ClientMsgId>,
    ) -> CoreResult<Option<Pending>> {
        let (members, _) = self.gate_manage(
            conv,
            me.user,
            |r| r == Role::Owner,
            "only the owner can change roles",
        )?;
        if user == me.user {
            return Err(err(
                ErrorCode::InvalidArgument,
                "the owner's role changes by transferring ownership",
            ));
        }
        let target = members
            .get(user)
            .ok_or_else(|| err(ErrorCode::NotFound, "not a member of this group"))?;
        if member_role(target.role) == role {
            return Ok(None);
        }
        let event = ConversationEvent::Role {
            user,
            role,
            previous_owner: (role == MemberRole::Owner).then_some(me.user),
        };
        self.commit_event(me, origin, conv, event, key, Answer::Ok)
            .await
            .map(Some)
    }

    /// Mutes a member (`None`: everyone but the owner and managers) for `duration_ms` from now;
    /// 0 unmutes. The owner mutes anyone but itself, a manager only plain members.
    pub async fn mute_member(
        &self,
        me: &Identity,
        origin: Option<SessionId>,
        conv: ConversationId,
        user: Option<UserId>,
        duration_ms: u64,
        key: Option<ClientMsgId>,
    ) -> CoreResult<Pending> {
        let (members, my) = self.gate_manage(
            conv,
            me.user,
            Role::manages,
            "only the owner and managers can mute",
        )?;
        if let Some(u) = user {
            let target = members
                .get(u)
                .ok_or_else(|| err(ErrorCode::NotFound, "not a member of this group"))?;
            let allowed = match target.role {
                Role::Owner => false,
                Role::Manager => my.role == Role::Owner,
                Role::Member => true,
            };
            if !allowed {
                return Err(err(
                    ErrorCode::Forbidden,
                    "managers mute plain members; nobody mutes the owner",
                ));
            }
        }
        let until_ms = match duration_ms {
            0 => 0,
            d => now_ms().saturating_add(d),
        };
        let event = ConversationEvent::Mute { user, until_ms };
        self.commit_event(me, origin, conv, event, key, Answer::Ok)
            .await
    }

    /// Disbands a group (owner only): it takes no new entries; its history stays readable to
    /// its members.
    pub async fn disband_group(
        &self,
        me: &Identity,
        origin: Option<SessionId>,
        conv: ConversationId,
        key: Option<ClientMsgId>,
    ) -> CoreResult<Pending> {
        self.gate_manage(
            conv,
            me.user,
            |r| r == Role::Owner,
            "only the owner can disband the group",
        )?;
        self.commit_event(
            me,
            origin,
            conv,
            ConversationEvent::Disband,
            key,
            Answer::Ok,
        )
        .await
    }

    /// Sets the caller's nickname in a group.
    pub async fn set_group_nickname(
        &self,
        me: &Identity,
        origin: Option<SessionId>,
        conv: ConversationId,
        nickname: String,
        key: Option<ClientMsgId>,
    ) -> CoreResult<Option<Pending>> {
        let (members, _) = self.gate_manage(conv, me.user, |_| true, "")?;
        if members.get(me.user).is_some_and(|m| m.nickname == nickname) {
            return Ok(None);
        }
        let event = ConversationEvent::Nickname(nickname);
        self.commit_event(me, origin, conv, event, key, Answer::Ok)
            .await
            .map(Some)
    }

    /// A page of a conversation's members in user-id order after `after`, with the total.
    pub fn list_members(
        &self,
        me: &Identity,
        conv: ConversationId,
        after: u64,
        limit: u32,
    ) -> CoreResult<(Vec<MemberInfo>, bool, u32)> {
        let (members, _) = self.membership(conv, me.user)?;
        let limit = match limit {
            0 => DEFAULT_MEMBER_PAGE,
            n => n.min(MAX_MEMBER_PAGE),
        } as usize;
        let start = members.list.partition_point(|(u, _)| u.get() <= after);
        let page: Vec<MemberInfo> = members.list[start..]
            .iter()
            .take(limit)
            .map(|(u, m)| MemberInfo {
                user: *u,
                role: member_role(m.role),
                nickname: m.nickname.clone(),
                muted_until_ms: m.muted_until_ms,
                joined_seq: Seq(m.from_seq),
            })
            .collect();
        let has_more = start + page.len() < members.list.len();
        let total = u32::try_from(members.list.len()).unwrap_or(u32::MAX);
        Ok((page, has_more, total))
    }

    /// Joins a public group: at once if it is free to join, by a request the managers answer
    /// if it needs approval. Private and unknown groups are `NOT_FOUND` alike.
    pub async fn join_group(
        &self,
        me: &Identity,
        origin: Option<SessionId>,
        conv: ConversationId,
        message: String,
        key: Option<ClientMsgId>,
    ) -> CoreResult<Join> {
        let members = self.members_of(conv)?;
        // A 1:1 conversation or the notices are no group to join, even for their members.
        if !members.record.group {
            return Err(err(ErrorCode::NotFound, "no such conversation"));
        }
        let settings = &members.record.settings;
        let member = members.get(me.user).is_some();
        // An invitation admits whatever the group's privacy and policy (`invites.rs`).
        let invited = !member && self.is_invited(conv, me.user)?;
        // A private group stays hidden from everyone else, disbanded or not.
        if !(member || invited || settings.public) {
            return Err(err(ErrorCode::NotFound, "no such conversation"));
        }
        // Whoever may see it learns that it is gone, members included (protocol.md, 17).
        if settings.disbanded {
            return Err(err(ErrorCode::Disbanded, "the group was disbanded"));
        }
        if member {
            return Ok(Join::Already { pending: false });
        }
        let policy = if invited {
            JoinPolicy::Free
        } else {
            JoinPolicy::from_wire(settings.join_policy)
        };
        let event = match policy {
            JoinPolicy::Free => {
                if members.list.len() >= self.member_limit(&members) {
                    return Err(err(ErrorCode::InvalidArgument, "the group is full"));
                }
                ConversationEvent::Membership {
                    added: vec![me.user],
                    removed: Vec::new(),
                }
            }
            JoinPolicy::Approval => {
                let pending = self.store.join_request(conv, me.user).map_err(internal)?;
                if pending.is_some() {
                    return Ok(Join::Already { pending: true });
                }
                ConversationEvent::JoinRequest(JoinRequest {
                    user: me.user,
                    message,
                    requested_at_ms: now_ms(),
                })
            }
            JoinPolicy::InviteOnly | JoinPolicy::Unspecified => {
                return Err(err(
                    ErrorCode::Forbidden,
                    "this group takes members by invitation only",
                ))
            }
        };
        let answer = Answer::Joined {
            pending: matches!(event, ConversationEvent::JoinRequest(_)),
        };
        let pending = self
            .commit_event(me, origin, conv, event, key, answer)
            .await?;
        Ok(Join::Committing(pending))
    }

    /// Approves (the requester becomes a member) or rejects a pending join request (owner or
    /// managers). An invitee naming itself answers its invitation instead: declining ends it
    /// (`None`, answered once durable), accepting joins as `JoinGroup` does.
    pub async fn answer_join_request(
        &self,
        me: &Identity,
        origin: Option<SessionId>,
        conv: ConversationId,
        user: UserId,
        approve: bool,
        key: Option<ClientMsgId>,
    ) -> CoreResult<Option<Pending>> {
        if user == me.user && self.is_invited(conv, me.user)? {
            let members = self.members_of(conv)?;
            if members.get(me.user).is_none() {
                if !approve {
                    self.decline_invite(me, conv).await?;
                    return Ok(None);
                }
                return match self
                    .join_group(me, origin, conv, String::new(), key)
                    .await?
                {
                    Join::Committing(p) => Ok(Some(p)),
                    Join::Already { .. } => Ok(None),
                };
            }
        }
        let (members, _) = self.gate_manage(
            conv,
            me.user,
            Role::manages,
            "only the owner and managers answer join requests",
        )?;
        if self
            .store
            .join_request(conv, user)
            .map_err(internal)?
            .is_none()
        {
            return Err(err(ErrorCode::NotFound, "no pending join request"));
        }
        let event = if approve {
            if members.list.len() >= self.member_limit(&members) {
                return Err(err(ErrorCode::InvalidArgument, "the group is full"));
            }
            ConversationEvent::Membership {
                added: vec![user],
                removed: Vec::new(),
            }
        } else {
            ConversationEvent::JoinRejected(user)
        };
        self.commit_event(me, origin, conv, event, key, Answer::Ok)
            .await
            .map(Some)
    }

    /// A group's profile: for members, and for anyone if it is public. Owner and managers also
    /// see the pending join requests.
    pub fn get_group(&self, me: &Identity, conv: ConversationId) -> CoreResult<GroupInfo> {
        let members = self.members_of(conv)?;
        let my = members.get(me.user);
        if !members.record.group || (my.is_none() && !members.record.settings.public) {
            return Err(err(ErrorCode::NotFound, "no such conversation"));
        }
        let join_requests = match my {
            Some(m) if m.role.manages() => self
                .store
                .join_requests(conv, MAX_JOIN_REQUESTS_SHOWN)
                .map_err(internal)?
                .into_iter()
                .map(|(user, r)| JoinRequest {
                    user,
                    message: r.message,
                    requested_at_ms: r.at_ms,
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok(GroupInfo {
            conversation: conv,
            profile: group_profile(&members.record),
            owner: members.record.owner.and_then(|o| UserId::try_from(o).ok()),
            member_count: u32::try_from(members.list.len()).unwrap_or(u32::MAX),
            join_requests,
            created_at_ms: members.record.created_ms,
        })
    }
}
