//! `/v1/contacts`: the caller's contacts are its friends. Adding one is a friend request of
//! ours: friends at once when the other user accepts anyone or had asked the caller already,
//! else pending until the other user adds the caller back (or accepts in another client).

use std::collections::HashMap;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Json, Path, Query, State};
use axum::http::StatusCode;
use parley_protocol::frames::{Presence, Request, Response};
use parley_protocol::ids::UserId;
use parley_protocol::session::Identity;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{body, query};
use super::{views, Caller, FlError, Flutter};
use crate::compat::unexpected;

/// Paging of a list.
#[derive(Debug, Default, Deserialize)]
pub struct Page {
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub offset: Option<u32>,
}

/// A contact to add.
#[derive(Debug, Deserialize)]
pub struct AddBody {
    user_id: String,
    #[serde(default)]
    remark: Option<String>,
}

/// A contact's new remark.
#[derive(Debug, Deserialize)]
pub struct RemarkBody {
    remark: String,
}

/// Most contacts per page.
const MAX_PAGE: u32 = 200;

/// `limit` (default `default`, 1..=`max`) and `offset` of a page.
pub fn page(p: &Page, default: u32, max: u32) -> Result<(usize, usize), FlError> {
    let limit = p.limit.unwrap_or(default);
    if limit == 0 || limit > max {
        return Err(FlError::invalid(format!("limit must be 1..={max}")));
    }
    Ok((limit as usize, p.offset.unwrap_or(0) as usize))
}

/// The presence of `users`.
pub async fn presences(
    fl: &Flutter,
    me: &Identity,
    users: &[UserId],
) -> Result<HashMap<UserId, Presence>, FlError> {
    let mut out = HashMap::new();
    for chunk in users.chunks(100) {
        match fl.call(me, Request::GetPresence(chunk.to_vec())).await? {
            Response::Presences(p) => out.extend(p.into_iter().map(|p| (p.user, p))),
            other => return Err(unexpected(&other).into()),
        }
    }
    Ok(out)
}

/// `last_online` of a presence: when its last device left (null while online or not known).
pub fn last_online(p: Option<&Presence>) -> Value {
    match p {
        Some(p) if p.last_seen_ms > 0 => json!(views::iso(p.last_seen_ms)),
        _ => Value::Null,
    }
}

/// `GET /v1/contacts?limit=&offset=`: `{total, contacts}`.
pub async fn contacts(
    State(fl): State<Flutter>,
    Caller(me): Caller,
    q: Result<Query<Page>, QueryRejection>,
) -> Result<Json<Value>, FlError> {
    let (limit, offset) = page(&query(q)?, 50, MAX_PAGE)?;
    let friends = match fl.call(&me, Request::ListFriends).await? {
        Response::Friends(f) => f,
        other => return Err(unexpected(&other).into()),
    };
    let shown: Vec<_> = friends.iter().skip(offset).take(limit).collect();
    let ids: Vec<UserId> = shown.iter().filter_map(|f| f.profile.user).collect();
    let presence = presences(&fl, &me, &ids).await?;
    let contacts: Vec<Value> = shown
        .iter()
        .filter_map(|f| {
            let user = f.profile.user?;
            let p = presence.get(&user);
            Some(json!({
                "user_id": user.to_string(),
                "username": f.profile.account,
                "nickname": views::display_name(&f.profile),
                "remark": f.remark,
                "avatar": views::avatar(&f.profile.avatar_file_id),
                "status": views::status_name(p.map_or(Default::default(), |p| p.status)),
                "last_online": last_online(p),
            }))
        })
        .collect();
    Ok(Json(
        json!({ "total": friends.len(), "contacts": contacts }),
    ))
}

/// `POST /v1/contacts {user_id, remark}`: `201` with the contact; `pending: true` while the
/// other user has not accepted. Oneself is `400`, an unknown user `404`, a user who blocked
/// the caller (or one the caller blocked) `403`.
pub async fn add_contact(
    State(fl): State<Flutter>,
    Caller(me): Caller,
    b: Result<Json<AddBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), FlError> {
    let b = body(b)?;
    let user = views::parse_user(&b.user_id)?;
    let remark = b.remark.unwrap_or_default();
    let request = Request::AddFriend {
        user,
        message: String::new(),
        remark: remark.clone(),
    };
    let pending = match fl.call(&me, request).await? {
        Response::FriendResult { pending } => pending,
        other => return Err(unexpected(&other).into()),
    };
    let p = fl.profile(&me, user).await?;
    let presence = presences(&fl, &me, &[user]).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "user_id": user.to_string(),
            "username": p.account,
            "nickname": views::display_name(&p),
            "remark": remark,
            "avatar": views::avatar(&p.avatar_file_id),
            "status": views::status_name(presence.get(&user).map_or(Default::default(), |p| p.status)),
            "pending": pending,
        })),
    ))
}

/// `PATCH /v1/contacts/{user_id} {remark}`: `{user_id, remark}`; not a contact: `404`.
pub async fn update_contact(
    State(fl): State<Flutter>,
    Caller(me): Caller,
    id: Result<Path<String>, PathRejection>,
    b: Result<Json<RemarkBody>, JsonRejection>,
) -> Result<Json<Value>, FlError> {
    let Path(id) = id?;
    let user = views::parse_user(&id)?;
    let b = body(b)?;
    let request = Request::SetFriendRemark {
        user,
        remark: b.remark.clone(),
    };
    fl.call(&me, request).await?;
    Ok(Json(
        json!({ "user_id": user.to_string(), "remark": b.remark }),
    ))
}

/// `DELETE /v1/contacts/{user_id}`: `204`; ends the friendship for both. Not a contact: `404`.
pub async fn remove_contact(
    State(fl): State<Flutter>,
    Caller(me): Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, FlError> {
    let Path(id) = id?;
    let user = views::parse_user(&id)?;
    fl.call(&me, Request::RemoveFriend(user)).await?;
    Ok(StatusCode::NO_CONTENT)
}
