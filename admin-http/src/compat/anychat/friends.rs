//! `/friends/*`: friends, friend requests, remarks, the blacklist.
//!
//! Shapes follow the real friend service: `{friends, total}` of `{userId, remark, createdAt,
//! updatedAt, userInfo}`; `{requests, total}` of `{id, fromUserId, toUserId, message, source,
//! status: "pending", createdAt, fromUserInfo}`; `{items, total}` of `{id, userId,
//! blockedUserId, createdAt, blockedUserInfo}`. Those `createdAt`s are RFC 3339 strings, as the
//! real server's were.
//!
//! Our core keys a friend request by its two users (one pending request per pair), so AnyChat's
//! integer request id is the **other user's numeric id**: the requester's in the requests a
//! user received (what `PUT /friends/requests/{id}` answers), the target's in those it sent. A
//! blacklist item's `id` is likewise the blocked user's numeric id, and `DELETE
//! /friends/blacklist/{id}` takes it or the user's UUID. Sending takes the target as `userId`
//! or `toUserId`; answering takes `{action: "accept"|"reject"}` or `{accept: bool}`.

use axum::extract::State;
use parley_protocol::frames::{Friend, FriendRequestInfo, Profile, Request, Response};
use parley_protocol::ids::UserId;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::AnyError;
use super::extract::{self, Body, IdIn, MaybeBody, Me, Path, Query};
use super::views::{self, ok, Reply};
use super::AnyChat;
use crate::compat::unexpected;

/// The friend service's `UserInfo`: `userId, nickname, avatar, gender, bio`.
fn user_info(p: &Profile) -> Value {
    json!({
        "userId": p.user.map_or_else(String::new, views::user_id),
        "nickname": p.nickname,
        "avatar": views::avatar(&p.avatar_file_id),
        "gender": views::gender(p.gender),
        "bio": p.bio,
    })
}

/// The numeric id of a profile's user (0 if it has none, which listed profiles always have).
fn number(p: &Profile) -> u64 {
    p.user.map_or(0, UserId::get)
}

/// A `FriendResponse`.
pub(super) fn friend(f: &Friend) -> Value {
    let since = views::rfc3339(f.since_ms);
    json!({
        "userId": f.profile.user.map_or_else(String::new, views::user_id),
        "remark": f.remark,
        "createdAt": since,
        "updatedAt": since,
        "userInfo": user_info(&f.profile),
    })
}

/// A `FriendRequestResponse` of a request `me` received (`outgoing: false`) or sent.
pub(super) fn request_view(r: &FriendRequestInfo, me: UserId, outgoing: bool) -> Value {
    let other = r.profile.user.map_or_else(String::new, views::user_id);
    let me = views::user_id(me);
    let (from, to) = match outgoing {
        true => (me, other),
        false => (other, me),
    };
    let mut v = json!({
        "id": number(&r.profile),
        "fromUserId": from,
        "toUserId": to,
        "message": r.message,
        "source": "",
        "status": "pending",
        "createdAt": views::rfc3339(r.requested_at_ms),
    });
    match outgoing {
        true => v["toUserInfo"] = user_info(&r.profile),
        false => v["fromUserInfo"] = user_info(&r.profile),
    }
    v
}

/// `GET /friends`: `{friends, total}`.
pub async fn list(State(any): State<AnyChat>, Me(me): Me) -> Reply {
    match any.call(&me, Request::ListFriends).await? {
        Response::Friends(friends) => {
            let friends: Vec<Value> = friends.iter().map(friend).collect();
            ok(json!({"total": friends.len(), "friends": friends}))
        }
        other => Err(unexpected(&other).into()),
    }
}

/// `GET /friends/requests?type=received|sent`.
#[derive(Debug, Deserialize)]
pub struct RequestsQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// `GET /friends/requests`: `{requests, total}` (received by default).
pub async fn requests(
    State(any): State<AnyChat>,
    Me(me): Me,
    Query(q): Query<RequestsQuery>,
) -> Reply {
    let outgoing = match q.kind.as_deref() {
        None | Some("" | "received") => false,
        Some("sent") => true,
        Some(other) => {
            return Err(AnyError::invalid(format!(
                "type must be received or sent, not {other:?}"
            )))
        }
    };
    match any
        .call(&me, Request::ListFriendRequests { outgoing })
        .await?
    {
        Response::FriendRequests(rs) => {
            let requests: Vec<Value> = rs
                .iter()
                .map(|r| request_view(r, me.user, outgoing))
                .collect();
            ok(json!({"total": requests.len(), "requests": requests}))
        }
        other => Err(unexpected(&other).into()),
    }
}

/// `POST /friends/requests`: `userId` or `toUserId`, `message`, `source`, `remark`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendBody {
    user_id: Option<IdIn>,
    to_user_id: Option<IdIn>,
    #[serde(default)]
    message: String,
    #[serde(default)]
    remark: String,
}

/// `POST /friends/requests`: `{requestId, autoAccepted}` (accepted at once when the target
/// takes anyone, or had asked first).
pub async fn request(State(any): State<AnyChat>, Me(me): Me, Body(b): Body<SendBody>) -> Reply {
    let target = b
        .user_id
        .or(b.to_user_id)
        .ok_or_else(|| AnyError::invalid("userId is required"))?;
    let user = extract::user_in_body(&target)?;
    let request = Request::AddFriend {
        user,
        message: b.message,
        remark: b.remark,
    };
    match any.call(&me, request).await? {
        Response::FriendResult { pending } => {
            ok(json!({"requestId": user.get(), "autoAccepted": !pending}))
        }
        Response::Ok => ok(json!({"requestId": user.get(), "autoAccepted": true})),
        other => Err(unexpected(&other).into()),
    }
}

/// `PUT /friends/requests/{id}`: `{action}` or `{accept}`, and an optional `remark`.
#[derive(Debug, Default, Deserialize)]
pub struct AnswerBody {
    action: Option<String>,
    accept: Option<bool>,
    #[serde(default)]
    remark: String,
}

/// `PUT /friends/requests/{id}`: accepts or rejects the request of user `id`.
pub async fn answer(
    State(any): State<AnyChat>,
    Me(me): Me,
    Path(id): Path<String>,
    Body(b): Body<AnswerBody>,
) -> Reply {
    let user = views::parse_user(&id).ok_or_else(|| AnyError::not_found("no such request"))?;
    let accept = match (b.action.as_deref(), b.accept) {
        (Some("accept" | "accepted" | "agree"), _) => true,
        (Some("reject" | "rejected" | "refuse"), _) => false,
        (Some(other), _) => {
            return Err(AnyError::invalid(format!(
                "action must be accept or reject, not {other:?}"
            )))
        }
        (None, Some(accept)) => accept,
        (None, None) => return Err(AnyError::invalid("action is required")),
    };
    let request = Request::AnswerFriendRequest {
        user,
        accept,
        remark: b.remark,
    };
    any.call(&me, request).await?;
    ok(json!({}))
}

/// `DELETE /friends/{id}`.
pub async fn remove(State(any): State<AnyChat>, Me(me): Me, Path(id): Path<String>) -> Reply {
    let user = extract::user(&id)?;
    any.call(&me, Request::RemoveFriend(user)).await?;
    ok(json!({}))
}

/// `PUT /friends/{id}/remark`.
#[derive(Debug, Default, Deserialize)]
pub struct RemarkBody {
    #[serde(default)]
    remark: String,
}

/// `PUT /friends/{id}/remark`.
pub async fn remark(
    State(any): State<AnyChat>,
    Me(me): Me,
    Path(id): Path<String>,
    MaybeBody(b): MaybeBody<RemarkBody>,
) -> Reply {
    let user = extract::user(&id)?;
    let request = Request::SetFriendRemark {
        user,
        remark: b.remark,
    };
    any.call(&me, request).await?;
    ok(json!({}))
}

/// `GET /friends/blacklist`: `{items, total}`.
pub async fn blacklist(State(any): State<AnyChat>, Me(me): Me) -> Reply {
    match any.call(&me, Request::ListBlocked).await? {
        Response::Users { users, .. } => {
            let items: Vec<Value> = users
                .iter()
                .map(|p| {
                    json!({
                        "id": number(p),
                        "userId": views::user_id(me.user),
                        "blockedUserId": p.user.map_or_else(String::new, views::user_id),
                        "createdAt": views::rfc3339(0),
                        "blockedUserInfo": user_info(p),
                    })
                })
                .collect();
            ok(json!({"total": items.len(), "items": items}))
        }
        other => Err(unexpected(&other).into()),
    }
}

/// `POST /friends/blacklist`: `userId` (or `blockedUserId`, `targetUserId`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockBody {
    user_id: Option<IdIn>,
    blocked_user_id: Option<IdIn>,
    target_user_id: Option<IdIn>,
}

/// `POST /friends/blacklist`.
pub async fn block(State(any): State<AnyChat>, Me(me): Me, Body(b): Body<BlockBody>) -> Reply {
    let target = b
        .user_id
        .or(b.blocked_user_id)
        .or(b.target_user_id)
        .ok_or_else(|| AnyError::invalid("userId is required"))?;
    let user = extract::user_in_body(&target)?;
    let request = Request::SetBlocked {
        user,
        blocked: true,
    };
    any.call(&me, request).await?;
    ok(json!({}))
}

/// `DELETE /friends/blacklist/{id}`.
pub async fn unblock(State(any): State<AnyChat>, Me(me): Me, Path(id): Path<String>) -> Reply {
    let user = extract::user(&id)?;
    let request = Request::SetBlocked {
        user,
        blocked: false,
    };
    any.call(&me, request).await?;
    ok(json!({}))
}
