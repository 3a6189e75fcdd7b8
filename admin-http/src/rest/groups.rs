//! Groups: create, profile and settings, members (paged), roles, mutes, nicknames, joining and
//! join requests, leaving, disbanding. A group's id is its conversation id.
//!
//! Every change is an event in the group's log, answered once durable; each accepts an
//! `Idempotency-Key` header (the protocol's `client_request_id`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use parley_protocol::frames::{
    GroupInfo, GroupProfileChange, JoinRequest, MemberInfo, Request, Response,
};
use parley_protocol::ids::{ConversationId, UserId};
use parley_protocol::values::GroupName;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::extract::{Body, Caller, Id, IdempotencyKey, MaybeBody, Path, Query};
use super::views::{ConversationView, GroupProfileView, JoinPolicyV, RoleV};
use super::{answer, Rest};

/// A new group.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// 1–128 bytes, not blank.
    pub name: String,
    /// The first members besides the caller (its owner).
    #[serde(default)]
    pub member_ids: Vec<Id>,
}

/// A group as `GET /groups/{group_id}` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupView {
    pub group_id: Id,
    pub profile: GroupProfileView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<Id>,
    pub member_count: u32,
    /// Pending join requests (for its owner and managers; empty for others).
    pub join_requests: Vec<JoinRequestView>,
}

impl From<GroupInfo> for GroupView {
    fn from(g: GroupInfo) -> GroupView {
        GroupView {
            group_id: g.conversation.into(),
            profile: g.profile.into(),
            owner_id: g.owner.map(Id::from),
            member_count: g.member_count,
            join_requests: g.join_requests.into_iter().map(Into::into).collect(),
        }
    }
}

/// A request to join.
#[derive(Debug, Serialize, ToSchema)]
pub struct JoinRequestView {
    pub user_id: Id,
    pub message: String,
    pub requested_at_ms: u64,
}

impl From<JoinRequest> for JoinRequestView {
    fn from(r: JoinRequest) -> JoinRequestView {
        JoinRequestView {
            user_id: r.user.into(),
            message: r.message,
            requested_at_ms: r.requested_at_ms,
        }
    }
}

/// Pending join requests.
#[derive(Debug, Serialize, ToSchema)]
pub struct JoinRequestList {
    pub requests: Vec<JoinRequestView>,
}

/// Changes to a group's profile and settings (absent fields stay as they are).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    pub name: Option<String>,
    pub avatar_file_id: Option<String>,
    /// At most 4096 bytes.
    pub announcement: Option<String>,
    /// At most 1024 bytes.
    pub description: Option<String>,
    pub public: Option<bool>,
    pub join_policy: Option<JoinPolicyV>,
    pub max_members: Option<u32>,
}

/// A member.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    pub user_id: Id,
    pub role: RoleV,
    pub nickname: String,
    pub muted_until_ms: u64,
    /// The seq of the entry that made them a member (0: a founding member).
    pub joined_seq: u64,
}

impl From<MemberInfo> for MemberView {
    fn from(m: MemberInfo) -> MemberView {
        MemberView {
            user_id: m.user.into(),
            role: m.role.into(),
            nickname: m.nickname,
            muted_until_ms: m.muted_until_ms,
            joined_seq: m.joined_seq.get(),
        }
    }
}

/// A page of members, in user-id order.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberPage {
    pub members: Vec<MemberView>,
    /// More follow: ask again with `after` = the last member's id.
    pub has_more: bool,
    /// Members in all.
    pub total: u32,
}

/// Which members.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MembersQuery {
    /// After this user id.
    #[param(value_type = Option<String>)]
    pub after: Option<Id>,
    /// Page size (absent: the server's default).
    pub limit: Option<u32>,
}

/// Users to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMembersBody {
    pub user_ids: Vec<Id>,
}

/// A role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    /// `owner` (transfers ownership), `manager` or `member`.
    pub role: RoleV,
}

/// A mute.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MuteBody {
    /// How long from now; 0 unmutes.
    pub duration_ms: u64,
}

/// The caller's nickname in the group.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NicknameBody {
    /// At most 64 characters; empty clears it.
    pub nickname: String,
}

/// Asking to join.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinBody {
    /// For the managers, at most 256 bytes.
    #[serde(default)]
    pub message: String,
}

/// The outcome of a join.
#[derive(Debug, Serialize, ToSchema)]
pub struct JoinResult {
    /// `true`: waiting for a manager's approval; `false`: a member now.
    pub pending: bool,
}

fn group(id: u64) -> Result<ConversationId, ApiError> {
    Id(id).to("group id")
}

fn user(id: u64) -> Result<UserId, ApiError> {
    Id(id).to("user id")
}

fn users(ids: Vec<Id>) -> Result<Vec<UserId>, ApiError> {
    ids.into_iter().map(|id| id.to("user id")).collect()
}

async fn done(rest: &Rest, me: Caller, request: Request) -> Result<StatusCode, ApiError> {
    rest.call(Some(me.0), request).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Creates a group owned by the caller, with the members named.
#[utoipa::path(post, path = "/groups", tag = "groups", request_body = CreateBody,
    responses((status = 201, body = ConversationView)))]
pub async fn create(
    State(rest): State<Rest>,
    Caller(me): Caller,
    Body(b): Body<CreateBody>,
) -> Result<(StatusCode, Json<ConversationView>), ApiError> {
    let request = Request::CreateGroup {
        name: GroupName::try_from(b.name).map_err(|e| ApiError::invalid(e.message()))?,
        members: users(b.member_ids)?,
    };
    let response = rest.call(Some(me), request).await?;
    let info = answer!(response, Response::Conversation(c) => c)?;
    Ok((StatusCode::CREATED, Json(info.into())))
}

/// A group's profile, owner, size and (for managers) join requests.
#[utoipa::path(get, path = "/groups/{group_id}", tag = "groups",
    params(("group_id" = String, Path, description = "The group")),
    responses((status = 200, body = GroupView)))]
pub async fn get(
    State(rest): State<Rest>,
    Caller(me): Caller,
    Path(id): Path<u64>,
) -> Result<Json<GroupView>, ApiError> {
    let response = rest
        .call(
            Some(me),
            Request::GetGroup {
                conversation: group(id)?,
            },
        )
        .await?;
    answer!(response, Response::Group(g) => Json(GroupView::from(*g)))
}

/// Changes a group's profile and settings (owner and managers).
#[utoipa::path(patch, path = "/groups/{group_id}", tag = "groups",
    params(("group_id" = String, Path, description = "The group")), request_body = UpdateBody,
    responses((status = 204)))]
pub async fn update(
    State(rest): State<Rest>,
    me: Caller,
    Path(id): Path<u64>,
    IdempotencyKey(key): IdempotencyKey,
    Body(b): Body<UpdateBody>,
) -> Result<StatusCode, ApiError> {
    let change = GroupProfileChange {
        name: b
            .name
            .map(GroupName::try_from)
            .transpose()
            .map_err(|e| ApiError::invalid(e.message()))?,
        avatar_file_id: b.avatar_file_id,
        announcement: b.announcement,
        description: b.description,
        public: b.public,
        join_policy: b.join_policy.map(Into::into),
        max_members: b.max_members,
    };
    let request = Request::UpdateGroup {
        conversation: group(id)?,
        change,
        request_key: key,
    };
    done(&rest, me, request).await
}

/// Disbands a group (its owner): it takes no new entries.
#[utoipa::path(delete, path = "/groups/{group_id}", tag = "groups",
    params(("group_id" = String, Path, description = "The group")), responses((status = 204)))]
pub async fn disband(
    State(rest): State<Rest>,
    me: Caller,
    Path(id): Path<u64>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<StatusCode, ApiError> {
    let request = Request::DisbandGroup {
        conversation: group(id)?,
        request_key: key,
    };
    done(&rest, me, request).await
}

/// A page of a group's members.
#[utoipa::path(get, path = "/groups/{group_id}/members", tag = "groups",
    params(("group_id" = String, Path, description = "The group"), MembersQuery),
    responses((status = 200, body = MemberPage)))]
pub async fn members(
    State(rest): State<Rest>,
    Caller(me): Caller,
    Path(id): Path<u64>,
    Query(q): Query<MembersQuery>,
) -> Result<Json<MemberPage>, ApiError> {
    let request = Request::ListMembers {
        conversation: group(id)?,
        after: q.after.map_or(0, |a| a.0),
        limit: q.limit.unwrap_or(0),
    };
    let response = rest.call(Some(me), request).await?;
    answer!(response, Response::MemberList { members, has_more, total } => Json(MemberPage {
        members: members.into_iter().map(MemberView::from).collect(),
        has_more,
        total,
    }))
}

/// Adds members.
#[utoipa::path(post, path = "/groups/{group_id}/members", tag = "groups",
    params(("group_id" = String, Path, description = "The group")), request_body = AddMembersBody,
    responses((status = 204)))]
pub async fn add_members(
    State(rest): State<Rest>,
    me: Caller,
    Path(id): Path<u64>,
    IdempotencyKey(key): IdempotencyKey,
    Body(b): Body<AddMembersBody>,
) -> Result<StatusCode, ApiError> {
    let request = Request::ChangeMembers {
        conversation: group(id)?,
        add: users(b.user_ids)?,
        remove: Vec::new(),
        request_key: key,
    };
    done(&rest, me, request).await
}

/// Removes a member.
#[utoipa::path(delete, path = "/groups/{group_id}/members/{user_id}", tag = "groups",
    params(("group_id" = String, Path, description = "The group"),
        ("user_id" = String, Path, description = "The member")),
    responses((status = 204)))]
pub async fn remove_member(
    State(rest): State<Rest>,
    me: Caller,
    Path((id, member)): Path<(u64, u64)>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<StatusCode, ApiError> {
    let request = Request::ChangeMembers {
        conversation: group(id)?,
        add: Vec::new(),
        remove: vec![user(member)?],
        request_key: key,
    };
    done(&rest, me, request).await
}

/// Sets a member's role (the owner); `owner` transfers the ownership.
#[utoipa::path(put, path = "/groups/{group_id}/members/{user_id}/role", tag = "groups",
    params(("group_id" = String, Path, description = "The group"),
        ("user_id" = String, Path, description = "The member")),
    request_body = RoleBody, responses((status = 204)))]
pub async fn set_role(
    State(rest): State<Rest>,
    me: Caller,
    Path((id, member)): Path<(u64, u64)>,
    IdempotencyKey(key): IdempotencyKey,
    Body(b): Body<RoleBody>,
) -> Result<StatusCode, ApiError> {
    let request = Request::SetMemberRole {
        conversation: group(id)?,
        user: user(member)?,
        role: b.role.into(),
        request_key: key,
    };
    done(&rest, me, request).await
}

/// Mutes a member for a while (0 unmutes).
#[utoipa::path(put, path = "/groups/{group_id}/members/{user_id}/mute", tag = "groups",
    params(("group_id" = String, Path, description = "The group"),
        ("user_id" = String, Path, description = "The member")),
    request_body = MuteBody, responses((status = 204)))]
pub async fn mute_member(
    State(rest): State<Rest>,
    me: Caller,
    Path((id, member)): Path<(u64, u64)>,
    IdempotencyKey(key): IdempotencyKey,
    Body(b): Body<MuteBody>,
) -> Result<StatusCode, ApiError> {
    let request = Request::MuteMember {
        conversation: group(id)?,
        user: Some(user(member)?),
        duration_ms: b.duration_ms,
        request_key: key,
    };
    done(&rest, me, request).await
}

/// Mutes everyone but the owner and managers for a while (0 unmutes).
#[utoipa::path(put, path = "/groups/{group_id}/mute", tag = "groups",
    params(("group_id" = String, Path, description = "The group")), request_body = MuteBody,
    responses((status = 204)))]
pub async fn mute_all(
    State(rest): State<Rest>,
    me: Caller,
    Path(id): Path<u64>,
    IdempotencyKey(key): IdempotencyKey,
    Body(b): Body<MuteBody>,
) -> Result<StatusCode, ApiError> {
    let request = Request::MuteMember {
        conversation: group(id)?,
        user: None,
        duration_ms: b.duration_ms,
        request_key: key,
    };
    done(&rest, me, request).await
}

/// Sets the caller's nickname in the group.
#[utoipa::path(put, path = "/groups/{group_id}/nickname", tag = "groups",
    params(("group_id" = String, Path, description = "The group")), request_body = NicknameBody,
    responses((status = 204)))]
pub async fn set_nickname(
    State(rest): State<Rest>,
    me: Caller,
    Path(id): Path<u64>,
    IdempotencyKey(key): IdempotencyKey,
    Body(b): Body<NicknameBody>,
) -> Result<StatusCode, ApiError> {
    let request = Request::SetGroupNickname {
        conversation: group(id)?,
        nickname: b.nickname,
        request_key: key,
    };
    done(&rest, me, request).await
}

/// Joins a public group (`free` policy), or asks to (`approval`).
#[utoipa::path(post, path = "/groups/{group_id}/join", tag = "groups",
    params(("group_id" = String, Path, description = "The group")), request_body = JoinBody,
    responses((status = 200, body = JoinResult)))]
pub async fn join(
    State(rest): State<Rest>,
    Caller(me): Caller,
    Path(id): Path<u64>,
    IdempotencyKey(key): IdempotencyKey,
    MaybeBody(b): MaybeBody<JoinBody>,
) -> Result<Json<JoinResult>, ApiError> {
    let request = Request::JoinGroup {
        conversation: group(id)?,
        message: b.unwrap_or_default().message,
        request_key: key,
    };
    let response = rest.call(Some(me), request).await?;
    answer!(response, Response::JoinResult { pending } => Json(JoinResult { pending }))
}

/// Leaves a group (its owner must transfer the ownership first).
#[utoipa::path(post, path = "/groups/{group_id}/leave", tag = "groups",
    params(("group_id" = String, Path, description = "The group")), responses((status = 204)))]
pub async fn leave(
    State(rest): State<Rest>,
    me: Caller,
    Path(id): Path<u64>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<StatusCode, ApiError> {
    let request = Request::ChangeMembers {
        conversation: group(id)?,
        add: Vec::new(),
        remove: vec![me.0.user],
        request_key: key,
    };
    done(&rest, me, request).await
}

/// Pending join requests (owner and managers).
#[utoipa::path(get, path = "/groups/{group_id}/join-requests", tag = "groups",
    params(("group_id" = String, Path, description = "The group")),
    responses((status = 200, body = JoinRequestList)))]
pub async fn join_requests(
    State(rest): State<Rest>,
    Caller(me): Caller,
    Path(id): Path<u64>,
) -> Result<Json<JoinRequestList>, ApiError> {
    let response = rest
        .call(
            Some(me),
            Request::GetGroup {
                conversation: group(id)?,
            },
        )
        .await?;
    let info = answer!(response, Response::Group(g) => g)?;
    Ok(Json(JoinRequestList {
        requests: info.join_requests.into_iter().map(Into::into).collect(),
    }))
}

async fn answer(
    rest: &Rest,
    me: Caller,
    (id, member): (u64, u64),
    approve: bool,
    key: IdempotencyKey,
) -> Result<StatusCode, ApiError> {
    let request = Request::AnswerJoinRequest {
        conversation: group(id)?,
        user: user(member)?,
        approve,
        request_key: key.0,
    };
    done(rest, me, request).await
}

/// Approves a join request: the user becomes a member.
#[utoipa::path(post, path = "/groups/{group_id}/join-requests/{user_id}/approve", tag = "groups",
    params(("group_id" = String, Path, description = "The group"),
        ("user_id" = String, Path, description = "The requester")),
    responses((status = 204)))]
pub async fn approve(
    State(rest): State<Rest>,
    me: Caller,
    Path(ids): Path<(u64, u64)>,
    key: IdempotencyKey,
) -> Result<StatusCode, ApiError> {
    answer(&rest, me, ids, true, key).await
}

/// Rejects a join request.
#[utoipa::path(post, path = "/groups/{group_id}/join-requests/{user_id}/reject", tag = "groups",
    params(("group_id" = String, Path, description = "The group"),
        ("user_id" = String, Path, description = "The requester")),
    responses((status = 204)))]
pub async fn reject(
    State(rest): State<Rest>,
    me: Caller,
    Path(ids): Path<(u64, u64)>,
    key: IdempotencyKey,
) -> Result<StatusCode, ApiError> {
    answer(&rest, me, ids, false, key).await
}
