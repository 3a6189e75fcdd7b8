//! Consent to joining a group. Anyone used to be able to put anyone into groups: one
//! connection made 1,381 groups a second around a victim, whose sync then grew past the frame
//! limit (issue 15). Now a user goes into a group directly only by someone it agreed to:
//!
//! - itself, or a friend of the one adding it (friendship is consent: the user accepted it),
//! - or anyone, if its settings accept anyone (`add_policy = ANYONE`).
//!
//! Everyone else named by `CreateGroup` or `ChangeMembers` is **invited** instead: a
//! `group_invite` event in the invitee's notices (pushed and synced like every notice), and a
//! pending invitation in the store. Nothing of the group reaches the invitee until it accepts
//! with `JoinGroup` (which then works whatever the group's privacy and join policy); it declines
//! with `AnswerJoinRequest` naming itself. A user already invited into a group is not invited
//! again (no second notice), and invitations count against the inviter's rate of adds
//! (`group_rate.rs`) like direct adds.
//!
//! The rule is `rules.group_adds_need_consent` (on by default); off, anyone may put anyone in.

use parley_protocol::frames::{AddPolicy, ConversationEvent};
use parley_protocol::ids::{ConversationId, SessionId, UserId};
use parley_protocol::session::Identity;
use parley_protocol::ErrorCode;

use super::{err, internal, Answer, Core, CoreResult, Pending};
use crate::clock::now_ms;
use crate::store::Relation;

impl Core {
    /// Whether `by` may put `user` into a group without asking it.
    pub(crate) fn may_add_directly(&self, by: UserId, user: UserId) -> CoreResult<bool> {
        if by == user || !self.cfg.rules.group_adds_need_consent {
            return Ok(true);
        }
        if matches!(
            self.store.relation(by, user).map_err(internal)?,
            Some(Relation::Friend { .. })
        ) {
            return Ok(true);
        }
        let settings = self
            .store
            .profile_record(user)
            .map_err(internal)?
            .settings();
        Ok(settings.add_policy == AddPolicy::Anyone)
    }

    /// Splits `users` into those `by` adds directly and those it invites.
    pub(crate) fn split_adds(
        &self,
        by: UserId,
        users: Vec<UserId>,
    ) -> CoreResult<(Vec<UserId>, Vec<UserId>)> {
        let mut direct = Vec::new();
        let mut invited = Vec::new();
        for u in users {
            match self.may_add_directly(by, u)? {
                true => direct.push(u),
                false => invited.push(u),
            }
        }
        Ok((direct, invited))
    }

    /// Invites `users` into `group`: a `group_invite` event in each one's notices, except for
    /// those already invited. Resolves once every invitation is durable.
    pub(crate) async fn invite_into_group(
        &self,
        me: &Identity,
        origin: Option<SessionId>,
        group: ConversationId,
        name: &str,
        users: &[UserId],
    ) -> CoreResult<()> {
        let mut pending: Vec<Pending> = Vec::new();
        for user in users {
            if self.store.invite(group, *user).map_err(internal)?.is_some() {
                continue;
            }
            let notices = self
                .store
                .notices_conversation(*user, now_ms())
                .map_err(internal)?;
            let event = ConversationEvent::GroupInvite {
                conversation: group,
                name: name.to_owned(),
            };
            pending.push(
                self.commit_event(me, origin, notices, event, None, Answer::Ok)
                    .await?,
            );
        }
        for p in pending {
            if let parley_protocol::frames::Response::Error(e) = p.await {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Whether `user` holds a pending invitation into `group`.
    pub(crate) fn is_invited(&self, group: ConversationId, user: UserId) -> CoreResult<bool> {
        Ok(self.store.invite(group, user).map_err(internal)?.is_some())
    }

    /// Declines the caller's pending invitation into `group` (`NOT_FOUND` if none waits).
    pub async fn decline_invite(&self, me: &Identity, group: ConversationId) -> CoreResult<()> {
        if !self.is_invited(group, me.user)? {
            return Err(err(ErrorCode::NotFound, "no pending invitation"));
        }
        self.store.remove_invite(group, me.user).map_err(internal)?;
        self.durable().await
    }
}
