//! Users and their relations: profiles, settings, search, friends and blocks. A friend or
//! block change is an event in a user's notices (a conversation whose only member is that
//! user), so it is durable before it is answered, pushed, and part of sync:
//!
//! | change    | written to the notices of     |
//! |-----------|-------------------------------|
//! | requested | the one asked                 |
//! | accepted  | the one who did not act       |
//! | rejected  | the one who asked             |
//! | removed   | the one removed               |
//! | (un)block | the one who blocks (only)     |

use parley_protocol::frames::ConversationEvent;
use parley_protocol::frames::{
    AddPolicy, Friend, FriendChange, FriendEvent, FriendRequestInfo, Profile, ProfileChange, Push,
    Settings, SettingsChange, SharedPush,
};
use parley_protocol::ids::{SessionId, UserId};
use parley_protocol::session::Identity;
use parley_protocol::ErrorCode;

use super::{err, internal, Answer, Core, CoreResult, Pending};
use crate::clock::now_ms;
use crate::store::Relation;

/// Search results per page when the client asks for 0, and at most.
const DEFAULT_SEARCH_PAGE: u32 = 20;
const MAX_SEARCH_PAGE: u32 = 100;
/// Most users a search looks at per request (it resumes from `after_user_id`).
const SEARCH_SCAN: usize = 100_000;

/// What `AddFriend` did without waiting.
pub enum Befriend {
    /// Nothing to commit: already friends (`false`) or a request already waits (`true`).
    Already {
        /// A request waits.
        pending: bool,
    },
    /// The request or the friendship is being committed.
    Committing(Pending),
}

impl Core {
    fn account_name(&self, user: UserId) -> CoreResult<String> {
        Ok(self
            .store
            .user(user)
            .map_err(internal)?
            .ok_or_else(|| err(ErrorCode::NotFound, "no such user"))?
            .account)
    }

    /// A user's public profile; `NOT_FOUND` if there is no such user.
    pub fn profile(&self, user: UserId) -> CoreResult<Profile> {
        let account = self
            .store
            .user(user)
            .map_err(internal)?
            .ok_or_else(|| err(ErrorCode::NotFound, "no such user"))?;
        let record = self.store.profile_record(user).map_err(internal)?;
        Ok(Profile {
            guest: account.guest,
            created_at_ms: account.created_ms,
            ..record.profile(user, account.account)
        })
    }

    /// Profiles of the users that exist among `users`.
    pub fn get_profiles(&self, users: &[UserId]) -> CoreResult<Vec<Profile>> {
        let mut out = Vec::with_capacity(users.len());
        for u in users {
            match self.profile(*u) {
                Ok(p) => out.push(p),
                Err(e) if e.code == ErrorCode::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Changes the caller's profile; friends' online devices and the caller's own hear it.
    pub async fn update_profile(&self, me: &Identity, change: ProfileChange) -> CoreResult<()> {
        let mut record = self.store.profile_record(me.user).map_err(internal)?;
        record.apply(&change);
        self.store
            .put_profile_record(me.user, &record)
            .map_err(internal)?;
        self.durable().await?;
        let profile = self.profile(me.user)?;
        let push = SharedPush::new(Push::Profile(Box::new(profile)));
        self.router.deliver(me.user, &push, None);
        for (other, relation) in self.store.relations(me.user).map_err(internal)? {
            if matches!(relation, Relation::Friend { .. }) {
                self.router.deliver(other, &push, None);
            }
        }
        Ok(())
    }

    /// The caller's settings.
    pub fn get_settings(&self, me: &Identity) -> CoreResult<Settings> {
        Ok(self
            .store
            .profile_record(me.user)
            .map_err(internal)?
            .settings())
    }

    /// Changes the caller's settings; returns them.
    pub async fn update_settings(
        &self,
        me: &Identity,
        change: SettingsChange,
    ) -> CoreResult<Settings> {
        let mut record = self.store.profile_record(me.user).map_err(internal)?;
        let mut settings = record.settings();
        change.apply_to(&mut settings);
        record.set_settings(settings.clone());
        self.store
            .put_profile_record(me.user, &record)
            .map_err(internal)?;
        self.durable().await?;
        Ok(settings)
    }

    /// Users whose account or nickname contains `query` (case-insensitive), among those
    /// searchable that way and not blocking the caller, in id order after `after`. Scans the
    /// users (at most [`SEARCH_SCAN`] per call; `has_more` then says to go on): run it off the
    /// runtime's workers.
    pub fn search_users(
        &self,
        me: &Identity,
        query: &str,
        after: u64,
        limit: u32,
    ) -> CoreResult<(Vec<Profile>, bool)> {
        let limit = match limit {
            0 => DEFAULT_SEARCH_PAGE,
            n => n.min(MAX_SEARCH_PAGE),
        } as usize;
        let needle = query.to_lowercase();
        let mut out = Vec::new();
        for (scanned, row) in self.store.users_after(after).enumerate() {
            let (user, account) = row.map_err(internal)?;
            if out.len() == limit || scanned == SEARCH_SCAN {
                return Ok((out, true));
            }
            if user == me.user || self.store.blocked(user, me.user) {
                continue;
            }
            let record = self.store.profile_record(user).map_err(internal)?;
            let by_account =
                record.searchable_by_account && account.to_lowercase().contains(&needle);
            let by_name = record.searchable_by_name
                && !record.nickname.is_empty()
                && record.nickname.to_lowercase().contains(&needle);
            if by_account || by_name {
                let made = self.store.user(user).map_err(internal)?;
                out.push(Profile {
                    guest: made.as_ref().is_some_and(|r| r.guest),
                    created_at_ms: made.map_or(0, |r| r.created_ms),
                    ..record.profile(user, account)
                });
            }
        }
        Ok((out, false))
    }

    /// Commits a friend event into `owner`'s notices.
    async fn friend_event(
        &self,
        me: &Identity,
        origin: Option<SessionId>,
        owner: UserId,
        event: FriendEvent,
        answer: Answer,
    ) -> CoreResult<Pending> {
        let conv = self
            .store
            .notices_conversation(owner, now_ms())
            .map_err(internal)?;
        let event = ConversationEvent::Friend(event);
        self.commit_event(me, origin, conv, event, None, answer)
            .await
    }

    fn check_peer(&self, me: &Identity, other: UserId) -> CoreResult<()> {
        if other == me.user {
            return Err(err(ErrorCode::InvalidArgument, "that is you"));
        }
        self.account_name(other)?;
        if self.store.blocked_either(me.user, other) {
            return Err(err(ErrorCode::Blocked, "one of you blocked the other"));
        }
        Ok(())
    }

    /// Asks `other` to be friends; by its settings accepted at once, a request it answers, or
    /// refused. A request `other` already made is accepted instead.
    pub async fn add_friend(
        &self,
        me: &Identity,
        origin: Option<SessionId>,
        other: UserId,
        message: String,
        remark: String,
    ) -> CoreResult<Befriend> {
        self.check_peer(me, other)?;
        if !remark.is_empty() {
            self.store
                .set_remark(me.user, other, &remark)
                .map_err(internal)?;
        }
        let (change, pair, owner) = match self.store.relation(me.user, other).map_err(internal)? {
            Some(Relation::Friend { .. }) => {
                self.durable().await?; // the remark
                return Ok(Befriend::Already { pending: false });
            }
            Some(Relation::Outgoing { .. }) => {
                self.durable().await?;
                return Ok(Befriend::Already { pending: true });
            }
            Some(Relation::Incoming { .. }) => (FriendChange::Accepted, (other, me.user), other),
            None => {
                let settings = self
                    .store
                    .profile_record(other)
                    .map_err(internal)?
                    .settings();
                match settings.add_policy {
                    AddPolicy::Nobody => {
                        return Err(err(
                            ErrorCode::NotAcceptingFriends,
                            "this user does not accept friend requests",
                        ))
                    }
                    AddPolicy::Anyone => (FriendChange::Accepted, (me.user, other), other),
                    _ => (FriendChange::Requested, (me.user, other), other),
                }
            }
        };
        let answer = Answer::Befriended {
            pending: change == FriendChange::Requested,
        };
        let event = friend(change, pair, message);
        let pending = self.friend_event(me, origin, owner, event, answer).await?;
        Ok(Befriend::Committing(pending))
    }

    /// Accepts or declines the request `requester` sent the caller.
    pub async fn answer_friend_request(
        &self,
        me: &Identity,
        origin: Option<SessionId>,
        requester: UserId,
        accept: bool,
        remark: String,
    ) -> CoreResult<Pending> {
        let relation = self.store.relation(me.user, requester).map_err(internal)?;
        if !matches!(relation, Some(Relation::Incoming { .. })) {
            return Err(err(
                ErrorCode::NotFound,
                "no pending request from this user",
            ));
        }
        if accept && self.store.blocked_either(me.user, requester) {
            return Err(err(ErrorCode::Blocked, "one of you blocked the other"));
        }
        if accept && !remark.is_empty() {
            self.store
                .set_remark(me.user, requester, &remark)
                .map_err(internal)?;
        }
        let change = match accept {
            true => FriendChange::Accepted,
            false => FriendChange::Rejected,
        };
        let event = friend(change, (requester, me.user), String::new());
        self.friend_event(me, origin, requester, event, Answer::Ok)
            .await
    }

    /// Ends a friendship, for both.
    pub async fn remove_friend(
        &self,
        me: &Identity,
        origin: Option<SessionId>,
        other: UserId,
    ) -> CoreResult<Pending> {
        if !self.store.are_friends(me.user, other).map_err(internal)? {
            return Err(err(ErrorCode::NotFound, "not a friend"));
        }
        let event = friend(FriendChange::Removed, (me.user, other), String::new());
        self.friend_event(me, origin, other, event, Answer::Ok)
            .await
    }

    /// Sets the caller's private remark for a friend.
    pub async fn set_friend_remark(
        &self,
        me: &Identity,
        other: UserId,
        remark: &str,
    ) -> CoreResult<()> {
        if !self.store.are_friends(me.user, other).map_err(internal)? {
            return Err(err(ErrorCode::NotFound, "not a friend"));
        }
        self.store
            .set_remark(me.user, other, remark)
            .map_err(internal)?;
        self.durable().await
    }

    /// The caller's friends, in user-id order.
    pub fn list_friends(&self, me: &Identity) -> CoreResult<Vec<Friend>> {
        let mut out = Vec::new();
        for (other, relation) in self.store.relations(me.user).map_err(internal)? {
            if let Relation::Friend { since_ms } = relation {
                out.push(Friend {
                    profile: self.profile(other)?,
                    remark: self.store.remark(me.user, other).map_err(internal)?,
                    since_ms,
                });
            }
        }
        Ok(out)
    }

    /// Pending requests to the caller, or from it.
    pub fn list_friend_requests(
        &self,
        me: &Identity,
        outgoing: bool,
    ) -> CoreResult<Vec<FriendRequestInfo>> {
        let mut out = Vec::new();
        for (other, relation) in self.store.relations(me.user).map_err(internal)? {
            let (message, at_ms) = match (relation, outgoing) {
                (Relation::Incoming { message, at_ms }, false)
                | (Relation::Outgoing { message, at_ms }, true) => (message, at_ms),
                _ => continue,
            };
            out.push(FriendRequestInfo {
                profile: self.profile(other)?,
                message,
                requested_at_ms: at_ms,
            });
        }
        Ok(out)
    }

    /// Blocks or unblocks a user (`None`: already so, nothing to commit).
    pub async fn set_blocked(
        &self,
        me: &Identity,
        origin: Option<SessionId>,
        other: UserId,
        blocked: bool,
    ) -> CoreResult<Option<Pending>> {
        if other == me.user {
            return Err(err(ErrorCode::InvalidArgument, "that is you"));
        }
        self.account_name(other)?;
        if self.store.blocked(me.user, other) == blocked {
            return Ok(None);
        }
        let change = match blocked {
            true => FriendChange::Blocked,
            false => FriendChange::Unblocked,
        };
        let event = friend(change, (me.user, other), String::new());
        self.friend_event(me, origin, me.user, event, Answer::Ok)
            .await
            .map(Some)
    }

    /// Users the caller blocked.
    pub fn list_blocked(&self, me: &Identity) -> CoreResult<Vec<Profile>> {
        let blocked = self.store.blocked_by(me.user).map_err(internal)?;
        self.get_profiles(&blocked)
    }
}

fn friend(change: FriendChange, (from, to): (UserId, UserId), message: String) -> FriendEvent {
    FriendEvent {
        change,
        from,
        to,
        message,
    }
}
