//! `/friends/*`: friend requests (list, send, accept or reject) and the friend list.
//!
//! Our friend requests are pending requests between two users, not records with ids of their
//! own: a GoChat request id is `"<requesterId>-<targetId>"`, and answering accepts
//! `"<requesterId>"` alone too. Only pending requests are kept, so a `status` filter other than
//! 0 lists none.

use axum::extract::State;
use parley_protocol::frames::{FriendRequestInfo, Request, Response};
use parley_protocol::ids::UserId;
use parley_protocol::session::Identity;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::GoError;
use super::extract::{self, Body, Caller, Done, IdIn, Path, Query};
use super::{views, GoChat};
use crate::compat::unexpected;

/// Which requests.
#[derive(Debug, Deserialize)]
pub struct RequestsQuery {
    /// `received` (default) or `sent`.
    #[serde(rename = "type")]
    kind: Option<String>,
    status: Option<u8>,
}

/// A friend request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestBody {
    target_user_id: IdIn,
    #[serde(default)]
    message: String,
}

/// An answer.
#[derive(Debug, Deserialize)]
pub struct AnswerBody {
    action: String,
}

fn request_view(me: &Identity, r: &FriendRequestInfo, outgoing: bool) -> Value {
    let other = r.profile.user.map_or(0, UserId::get);
    let (requester, target) = match outgoing {
        true => (me.user.get(), other),
        false => (other, me.user.get()),
    };
    let mut v = json!({
        "id": format!("{requester}-{target}"),
        "requesterId": requester.to_string(),
        "targetId": target.to_string(),
        "status": 0,
        "message": r.message,
        "createdAt": views::secs(r.requested_at_ms),
        "updatedAt": views::secs(r.requested_at_ms),
    });
    let key = if outgoing { "target" } else { "requester" };
    v[key] = views::user(&r.profile);
    v
}

/// `GET /friends/requests?type=received|sent&status=`.
pub async fn requests(
    State(go): State<GoChat>,
    Caller(me): Caller,
    Query(q): Query<RequestsQuery>,
) -> Result<Done, GoError> {
    let outgoing = match q.kind.as_deref() {
        None | Some("received") => false,
        Some("sent") => true,
        Some(_) => return Err(GoError::invalid("type must be received or sent")),
    };
    if q.status.is_some_and(|s| s > 2) {
        return Err(GoError::invalid("status must be 0, 1 or 2"));
    }
    let found = match go
        .call(&me, Request::ListFriendRequests { outgoing })
        .await?
    {
        Response::FriendRequests(r) => r,
        other => return Err(unexpected(&other).into()),
    };
    let requests: Vec<Value> = match q.status.unwrap_or(0) {
        0 => found
            .iter()
            .map(|r| request_view(&me, r, outgoing))
            .collect(),
        _ => Vec::new(),
    };
    Ok(Done::ok("ok", json!({ "requests": requests })))
}

/// `POST /friends/requests`: `201` (also when the two are friends at once: they had asked
/// each other, or the target accepts anyone).
pub async fn request(
    State(go): State<GoChat>,
    Caller(me): Caller,
    Body(b): Body<RequestBody>,
) -> Result<Done, GoError> {
    let request = Request::AddFriend {
        user: extract::user_in_body(&b.target_user_id)?,
        message: b.message,
        remark: String::new(),
    };
    go.call(&me, request)
        .await
        .map_err(|e| e.not_found_as("USER_NOT_FOUND"))?;
    Ok(Done::created("friend request sent", json!({})))
}

/// `PUT /friends/requests/{requestId}` with `{action: accept|reject}`.
pub async fn answer(
    State(go): State<GoChat>,
    Caller(me): Caller,
    Path(id): Path<String>,
    Body(b): Body<AnswerBody>,
) -> Result<Done, GoError> {
    let accept = match b.action.as_str() {
        "accept" => true,
        "reject" => false,
        _ => return Err(GoError::invalid("action must be accept or reject")),
    };
    let not_found = || {
        GoError::new(
            axum::http::StatusCode::NOT_FOUND,
            "REQUEST_NOT_FOUND",
            "no such friend request",
        )
    };
    let (requester, target) = match id.split_once('-') {
        Some((r, t)) => (r, Some(t)),
        None => (id.as_str(), None),
    };
    if target.is_some_and(|t| t != me.user.to_string()) {
        return Err(not_found());
    }
    let requester = extract::user_in_path(requester).map_err(|_| not_found())?;
    let request = Request::AnswerFriendRequest {
        user: requester,
        accept,
        remark: String::new(),
    };
    go.call(&me, request)
        .await
        .map_err(|e| e.not_found_as("REQUEST_NOT_FOUND"))?;
    Ok(Done::empty(if accept {
        "friend request accepted"
    } else {
        "friend request rejected"
    }))
}

/// `GET /friends`.
pub async fn list(State(go): State<GoChat>, Caller(me): Caller) -> Result<Done, GoError> {
    let friends = match go.call(&me, Request::ListFriends).await? {
        Response::Friends(f) => f,
        other => return Err(unexpected(&other).into()),
    };
    let friends: Vec<Value> = friends
        .iter()
        .map(|f| {
            json!({
                "userId": me.user.to_string(),
                "friendId": f.profile.user.map_or_else(String::new, |u| u.to_string()),
                "status": 1,
                "remark": f.remark,
                "createdAt": views::secs(f.since_ms),
                "updatedAt": views::secs(f.since_ms),
                "friend": views::user(&f.profile),
            })
        })
        .collect();
    Ok(Done::ok("ok", json!({ "friends": friends })))
}
