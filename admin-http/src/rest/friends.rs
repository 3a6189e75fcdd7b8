//! Friends and blocks: requests with a message, accepting and rejecting them, the list with
//! remarks, remarks, removal; blocking and unblocking, and the block list.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use parley_protocol::frames::{Friend, FriendRequestInfo, Request, Response};
use parley_protocol::ids::UserId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::extract::{Body, Caller, Id, MaybeBody, Path, Query};
use super::views::{ProfileView, UserPage};
use super::{answer, Rest};

/// A friend.
#[derive(Debug, Serialize, ToSchema)]
pub struct FriendView {
    pub profile: ProfileView,
    /// The caller's own name for them.
    pub remark: String,
    pub since_ms: u64,
}

impl From<Friend> for FriendView {
    fn from(f: Friend) -> FriendView {
        FriendView {
            profile: f.profile.into(),
            remark: f.remark,
            since_ms: f.since_ms,
        }
    }
}

/// The caller's friends.
#[derive(Debug, Serialize, ToSchema)]
pub struct FriendList {
    pub friends: Vec<FriendView>,
}

/// A pending friend request.
#[derive(Debug, Serialize, ToSchema)]
pub struct FriendRequestView {
    /// The other user (the requester for incoming requests, the one asked for outgoing ones).
    pub profile: ProfileView,
    pub message: String,
    pub requested_at_ms: u64,
}

impl From<FriendRequestInfo> for FriendRequestView {
    fn from(r: FriendRequestInfo) -> FriendRequestView {
        FriendRequestView {
            profile: r.profile.into(),
            message: r.message,
            requested_at_ms: r.requested_at_ms,
        }
    }
}

/// Pending friend requests.
#[derive(Debug, Serialize, ToSchema)]
pub struct FriendRequestList {
    pub requests: Vec<FriendRequestView>,
}

/// Which requests.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RequestsQuery {
    /// `incoming` (default) or `outgoing`.
    #[param(inline)]
    pub direction: Option<Direction>,
}

/// Requests made to the caller, or by the caller.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Made to the caller.
    Incoming,
    /// Made by the caller.
    Outgoing,
}

/// A friend request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FriendRequestBody {
    pub user_id: Id,
    /// At most 256 bytes.
    #[serde(default)]
    pub message: String,
    /// The caller's name for them once friends (at most 64 characters).
    #[serde(default)]
    pub remark: String,
}

/// The outcome of a friend request.
#[derive(Debug, Serialize, ToSchema)]
pub struct FriendResult {
    /// `true`: waiting for their answer; `false`: friends now (they had asked too, or accept
    /// anyone).
    pub pending: bool,
}

/// Accepting a request.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptBody {
    /// The caller's name for the new friend.
    #[serde(default)]
    pub remark: String,
}

/// A remark.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemarkBody {
    /// At most 64 characters; empty clears it.
    pub remark: String,
}

fn user(id: u64) -> Result<UserId, ApiError> {
    Id(id).to("user id")
}

async fn done(rest: &Rest, me: Caller, request: Request) -> Result<StatusCode, ApiError> {
    rest.call(Some(me.0), request).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's friends, with remarks.
#[utoipa::path(get, path = "/friends", tag = "friends",
    responses((status = 200, body = FriendList)))]
pub async fn list(
    State(rest): State<Rest>,
    Caller(me): Caller,
) -> Result<Json<FriendList>, ApiError> {
    let response = rest.call(Some(me), Request::ListFriends).await?;
    let friends = answer!(response, Response::Friends(f) => f)?;
    Ok(Json(FriendList {
        friends: friends.into_iter().map(FriendView::from).collect(),
    }))
}

/// Ends a friendship (`NOT_FOUND` if not friends).
#[utoipa::path(delete, path = "/friends/{user_id}", tag = "friends",
    params(("user_id" = String, Path, description = "The other user")), responses((status = 204)))]
pub async fn remove(
    State(rest): State<Rest>,
    me: Caller,
    Path(id): Path<u64>,
) -> Result<StatusCode, ApiError> {
    done(&rest, me, Request::RemoveFriend(user(id)?)).await
}

/// Sets the caller's remark for a friend.
#[utoipa::path(put, path = "/friends/{user_id}/remark", tag = "friends",
    params(("user_id" = String, Path, description = "The other user")), request_body = RemarkBody,
    responses((status = 204)))]
pub async fn set_remark(
    State(rest): State<Rest>,
    me: Caller,
    Path(id): Path<u64>,
    Body(b): Body<RemarkBody>,
) -> Result<StatusCode, ApiError> {
    let request = Request::SetFriendRemark {
        user: user(id)?,
        remark: b.remark,
    };
    done(&rest, me, request).await
}

/// Pending friend requests, made to the caller or by the caller.
#[utoipa::path(get, path = "/friends/requests", tag = "friends", params(RequestsQuery),
    responses((status = 200, body = FriendRequestList)))]
pub async fn requests(
    State(rest): State<Rest>,
    Caller(me): Caller,
    Query(q): Query<RequestsQuery>,
) -> Result<Json<FriendRequestList>, ApiError> {
    let outgoing = matches!(q.direction, Some(Direction::Outgoing));
    let response = rest
        .call(Some(me), Request::ListFriendRequests { outgoing })
        .await?;
    let requests = answer!(response, Response::FriendRequests(r) => r)?;
    Ok(Json(FriendRequestList {
        requests: requests.into_iter().map(FriendRequestView::from).collect(),
    }))
}

/// Asks a user to be friends, with a message (`BLOCKED`, `NOT_ACCEPTING_FRIENDS`).
#[utoipa::path(post, path = "/friends/requests", tag = "friends",
    request_body = FriendRequestBody, responses((status = 200, body = FriendResult)))]
pub async fn request(
    State(rest): State<Rest>,
    Caller(me): Caller,
    Body(b): Body<FriendRequestBody>,
) -> Result<Json<FriendResult>, ApiError> {
    let request = Request::AddFriend {
        user: b.user_id.to("user_id")?,
        message: b.message,
        remark: b.remark,
    };
    let response = rest.call(Some(me), request).await?;
    answer!(response, Response::FriendResult { pending } => Json(FriendResult { pending }))
}

/// Accepts a user's friend request (`NOT_FOUND` if there is none).
#[utoipa::path(post, path = "/friends/requests/{user_id}/accept", tag = "friends",
    params(("user_id" = String, Path, description = "The requester")), request_body = AcceptBody,
    responses((status = 204)))]
pub async fn accept(
    State(rest): State<Rest>,
    me: Caller,
    Path(id): Path<u64>,
    MaybeBody(body): MaybeBody<AcceptBody>,
) -> Result<StatusCode, ApiError> {
    let request = Request::AnswerFriendRequest {
        user: user(id)?,
        accept: true,
        remark: body.map(|b| b.remark).unwrap_or_default(),
    };
    done(&rest, me, request).await
}

/// Rejects a user's friend request.
#[utoipa::path(post, path = "/friends/requests/{user_id}/reject", tag = "friends",
    params(("user_id" = String, Path, description = "The requester")),
    responses((status = 204)))]
pub async fn reject(
    State(rest): State<Rest>,
    me: Caller,
    Path(id): Path<u64>,
) -> Result<StatusCode, ApiError> {
    let request = Request::AnswerFriendRequest {
        user: user(id)?,
        accept: false,
        remark: String::new(),
    };
    done(&rest, me, request).await
}

/// The users the caller blocked.
#[utoipa::path(get, path = "/blocks", tag = "blocks",
    responses((status = 200, body = UserPage)))]
pub async fn blocked(
    State(rest): State<Rest>,
    Caller(me): Caller,
) -> Result<Json<UserPage>, ApiError> {
    let response = rest.call(Some(me), Request::ListBlocked).await?;
    answer!(response, Response::Users { users, has_more } => Json(UserPage {
        users: users.into_iter().map(ProfileView::from).collect(),
        has_more,
    }))
}

/// Blocks a user: they can no longer message the caller, ask to be friends or see its presence.
#[utoipa::path(put, path = "/blocks/{user_id}", tag = "blocks",
    params(("user_id" = String, Path, description = "The other user")), responses((status = 204)))]
pub async fn block(
    State(rest): State<Rest>,
    me: Caller,
    Path(id): Path<u64>,
) -> Result<StatusCode, ApiError> {
    let request = Request::SetBlocked {
        user: user(id)?,
        blocked: true,
    };
    done(&rest, me, request).await
}

/// Unblocks a user.
#[utoipa::path(delete, path = "/blocks/{user_id}", tag = "blocks",
    params(("user_id" = String, Path, description = "The other user")), responses((status = 204)))]
pub async fn unblock(
    State(rest): State<Rest>,
    me: Caller,
    Path(id): Path<u64>,
) -> Result<StatusCode, ApiError> {
    let request = Request::SetBlocked {
        user: user(id)?,
        blocked: false,
    };
    done(&rest, me, request).await
}
