//! The friends module: the document's apply, remove and block, and (ours) the lists and the
//! answer to a request that its flow needs.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::Json;
use parley_protocol::frames::{Request, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use super::users::{body, path};
use super::views::{self, IdIn};
use super::{Caller, Wetty, WtError};
use crate::compat::unexpected;

/// `{target_user_id, apply_msg?}`.
#[derive(Debug, Deserialize)]
pub struct Target {
    target_user_id: Option<IdIn>,
    #[serde(default)]
    apply_msg: String,
}

/// `POST /friend/apply`: `201 {target_user_id, pending}` (`pending` false when the other side
/// accepts anyone, or had asked first: then they are friends at once).
pub async fn apply(
    State(wt): State<Wetty>,
    Caller(me): Caller,
    b: Result<Json<Target>, JsonRejection>,
) -> Result<HttpResponse, WtError> {
    let b = body(b)?;
    let user = views::user_in(b.target_user_id.as_ref(), "target_user_id")?;
    let request = Request::AddFriend {
        user,
        message: b.apply_msg,
        remark: String::new(),
    };
    let pending = match wt.call(&me, request).await? {
        Response::FriendResult { pending } => pending,
        other => return Err(unexpected(&other).into()),
    };
    let out = json!({ "target_user_id": user.to_string(), "pending": pending });
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// `DELETE /friend/{user_id}`: `204`.
pub async fn remove(
    State(wt): State<Wetty>,
    Caller(me): Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, WtError> {
    let user = views::user_id(&path(id)?)?;
    wt.call(&me, Request::RemoveFriend(user)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_blocked(
    wt: &Wetty,
    me: &parley_protocol::session::Identity,
    user: parley_protocol::ids::UserId,
    blocked: bool,
) -> Result<StatusCode, WtError> {
    wt.call(me, Request::SetBlocked { user, blocked }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /friend/block`: `204`; the blocked user can no longer message the caller.
pub async fn block(
    State(wt): State<Wetty>,
    Caller(me): Caller,
    b: Result<Json<Target>, JsonRejection>,
) -> Result<StatusCode, WtError> {
    let user = views::user_in(body(b)?.target_user_id.as_ref(), "target_user_id")?;
    set_blocked(&wt, &me, user, true).await
}

/// `DELETE /friend/block/{user_id}` (ours): `204`.
pub async fn unblock(
    State(wt): State<Wetty>,
    Caller(me): Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, WtError> {
    let user = views::user_id(&path(id)?)?;
    set_blocked(&wt, &me, user, false).await
}

/// `GET /friend` (ours): `{friends: [user + remark, since]}`.
pub async fn list(State(wt): State<Wetty>, Caller(me): Caller) -> Result<Json<Value>, WtError> {
    let friends = match wt.call(&me, Request::ListFriends).await? {
        Response::Friends(f) => f,
        other => return Err(unexpected(&other).into()),
    };
    let friends: Vec<Value> = friends
        .iter()
        .map(|f| {
            let mut v = views::user(&f.profile);
            v["remark"] = json!(f.remark);
            v["since"] = json!(views::rfc3339(f.since_ms));
            v
        })
        .collect();
    Ok(Json(json!({ "friends": friends })))
}

/// `?direction=incoming|outgoing`.
#[derive(Debug, Default, Deserialize)]
pub struct RequestsQuery {
    #[serde(default)]
    direction: Option<String>,
}

/// `GET /friend/requests` (ours): `{requests: [user + apply_msg, created_at]}`, incoming by
/// default.
pub async fn requests(
    State(wt): State<Wetty>,
    Caller(me): Caller,
    q: Result<Query<RequestsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, WtError> {
    let Query(q) = q?;
    let outgoing = match q.direction.as_deref().unwrap_or("incoming") {
        "incoming" => false,
        "outgoing" => true,
        other => {
            return Err(WtError::invalid(format!(
                "direction {other:?} is not incoming or outgoing"
            )))
        }
    };
    let found = match wt
        .call(&me, Request::ListFriendRequests { outgoing })
        .await?
    {
        Response::FriendRequests(r) => r,
        other => return Err(unexpected(&other).into()),
    };
    let requests: Vec<Value> = found
        .iter()
        .map(|r| {
            let mut v = views::user(&r.profile);
            v["apply_msg"] = json!(r.message);
            v["created_at"] = json!(views::rfc3339(r.requested_at_ms));
            v
        })
        .collect();
    Ok(Json(json!({ "requests": requests })))
}

async fn answer(
    wt: &Wetty,
    me: &parley_protocol::session::Identity,
    b: Result<Json<Target>, JsonRejection>,
    accept: bool,
) -> Result<StatusCode, WtError> {
    let user = views::user_in(body(b)?.target_user_id.as_ref(), "target_user_id")?;
    let request = Request::AnswerFriendRequest {
        user,
        accept,
        remark: String::new(),
    };
    wt.call(me, request).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /friend/accept {target_user_id}` (ours): `204`.
pub async fn accept(
    State(wt): State<Wetty>,
    Caller(me): Caller,
    b: Result<Json<Target>, JsonRejection>,
) -> Result<StatusCode, WtError> {
    answer(&wt, &me, b, true).await
}

/// `POST /friend/reject {target_user_id}` (ours): `204`.
pub async fn reject(
    State(wt): State<Wetty>,
    Caller(me): Caller,
    b: Result<Json<Target>, JsonRejection>,
) -> Result<StatusCode, WtError> {
    answer(&wt, &me, b, false).await
}
