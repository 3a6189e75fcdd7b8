//! Profiles, settings, user search, friends and blocks. Friend and block changes arrive on
//! every device as messages in the user's notices conversation (`ConversationKind::Notices`)
//! whose `event` is a `FriendEvent`, live and through sync.

use parley_protocol::frames::{
    CallRecord, CallSignal, Friend, FriendRequestInfo, Presence, PresenceStatus, Profile,
    ProfileChange, Request, Response, Settings, SettingsChange,
};
use parley_protocol::ids::{ConversationId, UserId};

use crate::client::{expect_ok, unexpected};
use crate::{Client, ClientError};

/// A page of users found.
#[derive(Clone, Debug)]
pub struct UserPage {
    /// Users in id order.
    pub users: Vec<Profile>,
    /// More may match: search again after the last one's id.
    pub has_more: bool,
}

impl Client {
    /// Public profiles of up to 100 users (unknown ids are left out).
    pub async fn get_profiles(&self, users: Vec<UserId>) -> Result<Vec<Profile>, ClientError> {
        match self.call(Request::GetProfiles(users)).await? {
            Response::Profiles(p) => Ok(p),
            other => Err(unexpected(other)),
        }
    }

    /// Changes this user's profile; friends' devices get it pushed.
    pub async fn update_profile(&self, change: ProfileChange) -> Result<(), ClientError> {
        expect_ok(self.call(Request::UpdateProfile(change)).await?)
    }

    /// This user's settings.
    pub async fn settings(&self) -> Result<Settings, ClientError> {
        match self.call(Request::GetSettings).await? {
            Response::Settings(s) => Ok(*s),
            other => Err(unexpected(other)),
        }
    }

    /// Changes this user's settings; returns them.
    pub async fn update_settings(&self, change: SettingsChange) -> Result<Settings, ClientError> {
        match self.call(Request::UpdateSettings(change)).await? {
            Response::Settings(s) => Ok(*s),
            other => Err(unexpected(other)),
        }
    }

    /// Users whose account or nickname contains `query` (case-insensitive), after `after`.
    pub async fn search_users(
        &self,
        query: &str,
        after: u64,
        limit: u32,
    ) -> Result<UserPage, ClientError> {
        let request = Request::SearchUsers {
            query: query.to_owned(),
            after,
            limit,
        };
        match self.call(request).await? {
            Response::Users { users, has_more } => Ok(UserPage { users, has_more }),
            other => Err(unexpected(other)),
        }
    }

    /// Asks `user` to be friends. Returns true if a request now waits for its answer, false if
    /// the two are friends.
    pub async fn add_friend(
        &self,
        user: UserId,
        message: &str,
        remark: &str,
    ) -> Result<bool, ClientError> {
        let request = Request::AddFriend {
            user,
            message: message.to_owned(),
            remark: remark.to_owned(),
        };
        match self.call(request).await? {
            Response::FriendResult { pending } => Ok(pending),
            other => Err(unexpected(other)),
        }
    }

    /// Accepts or declines the request `user` sent.
    pub async fn answer_friend_request(
        &self,
        user: UserId,
        accept: bool,
        remark: &str,
    ) -> Result<(), ClientError> {
        let request = Request::AnswerFriendRequest {
            user,
            accept,
            remark: remark.to_owned(),
        };
        expect_ok(self.call(request).await?)
    }

    /// Ends a friendship.
    pub async fn remove_friend(&self, user: UserId) -> Result<(), ClientError> {
        expect_ok(self.call(Request::RemoveFriend(user)).await?)
    }

    /// Sets this user's private remark for a friend.
    pub async fn set_friend_remark(&self, user: UserId, remark: &str) -> Result<(), ClientError> {
        let request = Request::SetFriendRemark {
            user,
            remark: remark.to_owned(),
        };
        expect_ok(self.call(request).await?)
    }

    /// This user's friends.
    pub async fn friends(&self) -> Result<Vec<Friend>, ClientError> {
        match self.call(Request::ListFriends).await? {
            Response::Friends(f) => Ok(f),
            other => Err(unexpected(other)),
        }
    }

    /// Pending friend requests to this user, or (`outgoing`) from it.
    pub async fn friend_requests(
        &self,
        outgoing: bool,
    ) -> Result<Vec<FriendRequestInfo>, ClientError> {
        match self.call(Request::ListFriendRequests { outgoing }).await? {
            Response::FriendRequests(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// Blocks or unblocks a user.
    pub async fn set_blocked(&self, user: UserId, blocked: bool) -> Result<(), ClientError> {
        expect_ok(self.call(Request::SetBlocked { user, blocked }).await?)
    }

    /// Sets this user's presence status (online or away; `None`: unchanged) and text.
    pub async fn set_presence(
        &self,
        status: Option<PresenceStatus>,
        text: Option<&str>,
    ) -> Result<(), ClientError> {
        let request = Request::SetPresence {
            status,
            text: text.map(str::to_owned),
        };
        expect_ok(self.call(request).await?)
    }

    /// Presence of up to 100 users.
    pub async fn presence(&self, users: Vec<UserId>) -> Result<Vec<Presence>, ClientError> {
        match self.call(Request::GetPresence(users)).await? {
            Response::Presences(p) => Ok(p),
            other => Err(unexpected(other)),
        }
    }

    /// Sends a call signal; returns the call's id (a new one for an invite). A signal that ends
    /// the call resolves once its record is durable.
    pub async fn call_signal(&self, signal: CallSignal) -> Result<u64, ClientError> {
        match self.call(Request::CallSignal(signal)).await? {
            Response::CallAnswer { call } => Ok(call),
            other => Err(unexpected(other)),
        }
    }

    /// This user's call records, newest first, older than `before` (0: from the newest).
    pub async fn list_calls(
        &self,
        before: u64,
        limit: u32,
    ) -> Result<(Vec<(ConversationId, CallRecord)>, bool), ClientError> {
        match self.call(Request::ListCalls { before, limit }).await? {
            Response::Calls { calls, has_more } => Ok((calls, has_more)),
            other => Err(unexpected(other)),
        }
    }

    /// Users this user blocked.
    pub async fn blocked(&self) -> Result<Vec<Profile>, ClientError> {
        match self.call(Request::ListBlocked).await? {
            Response::Users { users, .. } => Ok(users),
            other => Err(unexpected(other)),
        }
    }
}
