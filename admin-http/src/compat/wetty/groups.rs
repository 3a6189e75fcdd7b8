//! The groups module: create, profile, disband, members (list, add, apply, leave or kick),
//! managers and mutes.
//!
//! Non-members: the core answers "not found" for a group the caller is not in, so ids cannot
//! be probed. Where the caller may see the group anyway (a public group: `GetGroup` answers for
//! it), a route that needs membership answers `403` instead, as Wetty did; a private group the
//! caller is not in stays `404`, like an unknown id. Adding an existing member, or applying to
//! a group one is in, is `409`.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::Json;
use parley_protocol::frames::{GroupInfo, GroupProfileChange, MemberRole, Request, Response};
use parley_protocol::ids::{ConversationId, UserId};
use parley_protocol::session::Identity;
use parley_protocol::values::GroupName;
use serde::Deserialize;
use serde_json::{json, Value};

use super::users::{body, path};
use super::views::{self, IdIn};
use super::{Caller, Wetty, WtError};
use crate::compat::unexpected;

/// Members listed per page by default, and at most.
const DEFAULT_MEMBERS: u32 = 100;
const MAX_MEMBERS: u32 = 1000;

/// `e`, or `403` if it hides the caller's non-membership of a group the caller may see.
pub async fn membership(wt: &Wetty, me: &Identity, conv: ConversationId, e: WtError) -> WtError {
    if !e.is_not_found() {
        return e;
    }
    match wt.call(me, Request::GetGroup { conversation: conv }).await {
        Ok(Response::Group(_)) => WtError::forbidden("not a member of this group"),
        _ => e,
    }
}

/// Runs a request that needs membership of `conv` (see [`membership`]).
async fn as_member(
    wt: &Wetty,
    me: &Identity,
    conv: ConversationId,
    request: Request,
) -> Result<Response, WtError> {
    match wt.call(me, request).await {
        Ok(r) => Ok(r),
        Err(e) => Err(membership(wt, me, conv, e).await),
    }
}

async fn group_info(wt: &Wetty, me: &Identity, conv: ConversationId) -> Result<GroupInfo, WtError> {
    match wt
        .call(me, Request::GetGroup { conversation: conv })
        .await?
    {
        Response::Group(g) => Ok(*g),
        other => Err(unexpected(&other).into()),
    }
}

async fn view(wt: &Wetty, me: &Identity, conv: ConversationId) -> Result<Value, WtError> {
    let g = group_info(wt, me, conv).await?;
    Ok(views::group(&g))
}

/// Whether `user` is a member of `conv` (members are listed in user-id order).
async fn is_member(
    wt: &Wetty,
    me: &Identity,
    conv: ConversationId,
    user: UserId,
) -> Result<bool, WtError> {
    let request = Request::ListMembers {
        conversation: conv,
        after: user.get() - 1,
        limit: 1,
    };
    match as_member(wt, me, conv, request).await? {
        Response::MemberList { members, .. } => Ok(members.first().is_some_and(|m| m.user == user)),
        other => Err(unexpected(&other).into()),
    }
}

/// `POST /group`'s body.
#[derive(Debug, Deserialize)]
pub struct NewGroup {
    name: String,
    #[serde(default)]
    members: Vec<IdIn>,
}

fn users(ids: &[IdIn], what: &str) -> Result<Vec<UserId>, WtError> {
    ids.iter().map(|i| views::user_in(Some(i), what)).collect()
}

/// `POST /group`: `201 {id, name, created_at, ...}`; the caller owns it.
pub async fn create(
    State(wt): State<Wetty>,
    Caller(me): Caller,
    b: Result<Json<NewGroup>, JsonRejection>,
) -> Result<HttpResponse, WtError> {
    let b = body(b)?;
    let name = GroupName::try_from(b.name).map_err(|e| WtError::invalid(e.message()))?;
    let members = users(&b.members, "members")?;
    let conv = match wt.call(&me, Request::CreateGroup { name, members }).await? {
        Response::Conversation(c) => c.id,
        other => return Err(unexpected(&other).into()),
    };
    let out = view(&wt, &me, conv).await?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

fn group_id(id: Result<Path<String>, PathRejection>) -> Result<ConversationId, WtError> {
    views::chat_id(&path(id)?)
}

/// `GET /group/{group_id}`: members, and anyone for a public group.
pub async fn get(
    State(wt): State<Wetty>,
    Caller(me): Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, WtError> {
    let conv = group_id(id)?;
    Ok(Json(view(&wt, &me, conv).await?))
}

/// `DELETE /group/{group_id}`: `204` (owner only).
pub async fn disband(
    State(wt): State<Wetty>,
    Caller(me): Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, WtError> {
    let conv = group_id(id)?;
    let request = Request::DisbandGroup {
        conversation: conv,
        request_key: None,
    };
    as_member(&wt, &me, conv, request).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /group/{group_id}/profile`'s body: any of the fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileBody {
    name: Option<String>,
    avatar_fid: Option<String>,
    description: Option<String>,
    announcement: Option<String>,
    /// `public` or `private`.
    visibility: Option<String>,
    /// `free`, `approval` or `invite_only`.
    verification: Option<String>,
    max_members: Option<u32>,
}

/// `PUT /group/{group_id}/profile`: the group as it now is (owner and managers).
pub async fn update(
    State(wt): State<Wetty>,
    Caller(me): Caller,
    id: Result<Path<String>, PathRejection>,
    b: Result<Json<ProfileBody>, JsonRejection>,
) -> Result<Json<Value>, WtError> {
    let conv = group_id(id)?;
    let b = body(b)?;
    let public = match b.visibility.as_deref() {
        None => None,
        Some("public") => Some(true),
        Some("private") => Some(false),
        Some(other) => {
            return Err(WtError::invalid(format!(
                "visibility {other:?} is not public or private"
            )))
        }
    };
    let change = GroupProfileChange {
        name: b
            .name
            .map(GroupName::try_from)
            .transpose()
            .map_err(|e| WtError::invalid(e.message()))?,
        avatar_file_id: b.avatar_fid,
        announcement: b.announcement,
        description: b.description,
        public,
        join_policy: b.verification.as_deref().map(views::policy).transpose()?,
        max_members: b.max_members,
    };
    if change.is_empty() {
        return Err(WtError::invalid("nothing to change"));
    }
    let request = Request::UpdateGroup {
        conversation: conv,
        change,
        request_key: None,
    };
    as_member(&wt, &me, conv, request).await?;
    Ok(Json(view(&wt, &me, conv).await?))
}

/// `?after=<uid>&max=`.
#[derive(Debug, Default, Deserialize)]
pub struct Page {
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    max: Option<u32>,
}

/// `GET /group/{group_id}/members?after=&max=`: `{members, next_cursor}` in user-id order;
/// `next_cursor` (the last user id) is `null` at the end.
pub async fn members(
    State(wt): State<Wetty>,
    Caller(me): Caller,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<Page>, QueryRejection>,
) -> Result<Json<Value>, WtError> {
    let conv = group_id(id)?;
    let Query(q) = q?;
    let after = match q.after.as_deref().filter(|a| !a.is_empty()) {
        Some(a) => views::parse_u64(a, "after")?,
        None => 0,
    };
    let limit = q.max.unwrap_or(DEFAULT_MEMBERS).clamp(1, MAX_MEMBERS);
    let request = Request::ListMembers {
        conversation: conv,
        after,
        limit,
    };
    let (members, has_more, total) = match as_member(&wt, &me, conv, request).await? {
        Response::MemberList {
            members,
            has_more,
            total,
        } => (members, has_more, total),
        other => return Err(unexpected(&other).into()),
    };
    let next = match (has_more, members.last()) {
        (true, Some(m)) => json!(m.user.to_string()),
        _ => Value::Null,
    };
    Ok(Json(json!({
        "members": members.iter().map(views::member).collect::<Vec<_>>(),
        "total": total,
        "next_cursor": next,
    })))
}

/// `POST /group/{group_id}/members`'s body: `user_ids`, or one `user_id`.
#[derive(Debug, Deserialize)]
pub struct AddBody {
    #[serde(default)]
    user_ids: Vec<IdIn>,
    #[serde(default)]
    user_id: Option<IdIn>,
}

/// `POST /group/{group_id}/members`: `201 {added}`; `409` if one of them is a member already.
pub async fn add_members(
    State(wt): State<Wetty>,
    Caller(me): Caller,
    id: Result<Path<String>, PathRejection>,
    b: Result<Json<AddBody>, JsonRejection>,
) -> Result<HttpResponse, WtError> {
    let conv = group_id(id)?;
    let b = body(b)?;
    let mut add = users(&b.user_ids, "user_ids")?;
    if let Some(one) = &b.user_id {
        add.push(views::user_in(Some(one), "user_id")?);
    }
    if add.is_empty() {
        return Err(WtError::invalid("user_ids is required"));
    }
    for user in &add {
        if is_member(&wt, &me, conv, *user).await? {
            return Err(WtError::conflict(format!(
                "user {user} is already a member"
            )));
        }
    }
    let request = Request::ChangeMembers {
        conversation: conv,
        add: add.clone(),
        remove: Vec::new(),
        request_key: None,
    };
    as_member(&wt, &me, conv, request).await?;
    let added: Vec<String> = add.iter().map(ToString::to_string).collect();
    Ok((StatusCode::CREATED, Json(json!({ "added": added }))).into_response())
}

/// `POST /group/{group_id}/members/apply`'s body.
#[derive(Debug, Default, Deserialize)]
pub struct ApplyBody {
    #[serde(default)]
    apply_msg: String,
}

/// `POST /group/{group_id}/members/apply`: `201 {pending}` (`pending`: a manager must
/// approve); `409` for a member; `404` for a private group or an unknown id.
pub async fn apply(
    State(wt): State<Wetty>,
    Caller(me): Caller,
    id: Result<Path<String>, PathRejection>,
    b: Option<Json<ApplyBody>>,
) -> Result<HttpResponse, WtError> {
    let conv = group_id(id)?;
    let message = b.map(|Json(b)| b.apply_msg).unwrap_or_default();
    match is_member(&wt, &me, conv, me.user).await {
        Ok(true) => return Err(WtError::conflict("already a member of this group")),
        Ok(false) => {}
        // Not a member: the listing is refused (`403` for a public group), which is expected.
        Err(e) if e.status == StatusCode::FORBIDDEN => {}
        Err(e) => return Err(e),
    }
    let request = Request::JoinGroup {
        conversation: conv,
        message,
        request_key: None,
    };
    let pending = match wt.call(&me, request).await? {
        Response::JoinResult { pending } => pending,
        other => return Err(unexpected(&other).into()),
    };
    Ok((StatusCode::CREATED, Json(json!({ "pending": pending }))).into_response())
}

/// `{approve}`.
#[derive(Debug, Deserialize)]
pub struct AnswerBody {
    approve: bool,
}

/// `POST /group/{group_id}/members/apply/{user_id}` (ours) with `{approve}`: `204`.
pub async fn answer_apply(
    State(wt): State<Wetty>,
    Caller(me): Caller,
    ids: Result<Path<(String, String)>, PathRejection>,
    b: Result<Json<AnswerBody>, JsonRejection>,
) -> Result<StatusCode, WtError> {
    let (group, user) = path(ids)?;
    let conv = views::chat_id(&group)?;
    let user = views::user_id(&user)?;
    let request = Request::AnswerJoinRequest {
        conversation: conv,
        user,
        approve: body(b)?.approve,
        request_key: None,
    };
    as_member(&wt, &me, conv, request).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /group/{group_id}/members/{user_id}`: `204`; the caller's own id leaves, another's
/// kicks (owner only).
pub async fn remove_member(
    State(wt): State<Wetty>,
    Caller(me): Caller,
    ids: Result<Path<(String, String)>, PathRejection>,
) -> Result<StatusCode, WtError> {
    let (group, user) = path(ids)?;
    let conv = views::chat_id(&group)?;
    let user = views::user_id(&user)?;
    if !is_member(&wt, &me, conv, user).await? {
        return Err(WtError::not_found(format!("user {user} is not a member")));
    }
    let request = Request::ChangeMembers {
        conversation: conv,
        add: Vec::new(),
        remove: vec![user],
        request_key: None,
    };
    as_member(&wt, &me, conv, request).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /group/{group_id}/managers`'s body.
#[derive(Debug, Deserialize)]
pub struct ManagerBody {
    target_user_id: Option<IdIn>,
    /// Assign (`true`) or revoke (`false`).
    is_manager: bool,
}

/// `PUT /group/{group_id}/managers` with `{target_user_id, is_manager}`: `204` (owner only).
pub async fn managers(
    State(wt): State<Wetty>,
    Caller(me): Caller,
    id: Result<Path<String>, PathRejection>,
    b: Result<Json<ManagerBody>, JsonRejection>,
) -> Result<StatusCode, WtError> {
    let conv = group_id(id)?;
    let b = body(b)?;
    let user = views::user_in(b.target_user_id.as_ref(), "target_user_id")?;
    let role = if b.is_manager {
        MemberRole::Manager
    } else {
        MemberRole::Member
    };
    let request = Request::SetMemberRole {
        conversation: conv,
        user,
        role,
        request_key: None,
    };
    as_member(&wt, &me, conv, request).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /group/{group_id}/mute`'s body (no `target_user_id`: everyone).
#[derive(Debug, Deserialize)]
pub struct MuteBody {
    target_user_id: Option<IdIn>,
    mute_status: bool,
    #[serde(default)]
    duration_seconds: Option<u64>,
}

/// Longest mute: a year (longer ones are a ban, not a mute).
const MAX_MUTE_SECONDS: u64 = 366 * 86_400;

/// `POST /group/{group_id}/mute`: `204`. `mute_status` false unmutes; true mutes for
/// `duration_seconds` (required, 1 s to a year).
pub async fn mute(
    State(wt): State<Wetty>,
    Caller(me): Caller,
    id: Result<Path<String>, PathRejection>,
    b: Result<Json<MuteBody>, JsonRejection>,
) -> Result<StatusCode, WtError> {
    let conv = group_id(id)?;
    let b = body(b)?;
    let user = match &b.target_user_id {
        Some(t) => Some(views::user_in(Some(t), "target_user_id")?),
        None => None,
    };
    let duration_ms = if b.mute_status {
        let secs = b
            .duration_seconds
            .filter(|s| (1..=MAX_MUTE_SECONDS).contains(s))
            .ok_or_else(|| WtError::invalid("duration_seconds must be 1 to 31622400 to mute"))?;
        secs * 1000
    } else {
        0
    };
    let request = Request::MuteMember {
        conversation: conv,
        user,
        duration_ms,
        request_key: None,
    };
    as_member(&wt, &me, conv, request).await?;
    Ok(StatusCode::NO_CONTENT)
}
