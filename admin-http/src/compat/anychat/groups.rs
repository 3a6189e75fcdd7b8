//! AnyChat's groups (`/api/v1/groups...`): list, create, profile, update, disband, join (free or
//! by request), members (list, invite, remove, role), the caller's group nickname, quit, join
//! requests (list, answer) and ownership transfer. Each route is one or two core requests.
//!
//! Mapping (docs/dialect-anychat.md):
//! - a group is a group conversation of ours; `groupId` is its conversation id as a UUID
//!   (`views::conversation_id`), the same id its session has;
//! - members named at creation or invited go in directly only where the core allows it (friends
//!   of the adder, users accepting anyone); the others are invited and accept with
//!   `POST /groups/{id}/join`;
//! - roles: `owner`, `admin` (our manager), `member`;
//! - `joinVerify`: our join policy, `true` = approval (a join is a request the owner or a manager
//!   answers), `false` = free. Groups made through AnyChat are public (anyone with the id may see
//!   and join them, as in AnyChat); groups made elsewhere keep their own visibility;
//! - join requests: our pending join requests; a request's integer `id` is the requester's
//!   numeric user id (the core keeps one pending request per user and group, and no history, so
//!   `status=accepted|rejected` lists nothing);
//! - `isMuted` of a group: everyone muted (ours: mute-all in force); of a member: that member's
//!   mute in force.

use axum::routing::{delete, get, post, put, MethodRouter};
use parley_protocol::frames::{
    ConversationInfo, ConversationKind, GroupInfo, GroupProfile, GroupProfileChange, JoinPolicy,
    MemberInfo, MemberRole, Profile, Request, Response,
};
use parley_protocol::ids::{ConversationId, UserId};
use parley_protocol::session::Identity;
use parley_protocol::values::GroupName;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::AnyError;
use super::extract::{self, Body, IdIn, MaybeBody, Me, Path, Query};
use super::views::{self, ok, Reply};
use super::AnyChat;

/// The group operations, as (method, path below `/api/v1`, handler).
pub(super) fn table() -> Vec<(&'static str, &'static str, MethodRouter<AnyChat>)> {
    vec![
        ("GET", "/groups", get(list)),
        ("POST", "/groups", post(create)),
        ("GET", "/groups/{id}", get(info)),
        ("PUT", "/groups/{id}", put(update)),
        ("DELETE", "/groups/{id}", delete(disband)),
        ("POST", "/groups/{id}/join", post(join)),
        ("GET", "/groups/{id}/members", get(members)),
        ("POST", "/groups/{id}/members", post(invite)),
        (
            "DELETE",
            "/groups/{id}/members/{userId}",
            delete(remove_member),
        ),
        ("PUT", "/groups/{id}/members/{userId}/role", put(set_role)),
        ("PUT", "/groups/{id}/nickname", put(nickname)),
        ("POST", "/groups/{id}/quit", post(quit)),
        ("GET", "/groups/{id}/requests", get(requests)),
        (
            "PUT",
            "/groups/{id}/requests/{requestId}",
            put(answer_request),
        ),
        ("POST", "/groups/{id}/transfer", post(transfer)),
    ]
}

/// Members listed per page when `pageSize` is absent, and at most (the core pages up to 1,000).
const DEFAULT_MEMBER_PAGE: u32 = 20;
const MAX_MEMBER_PAGE: u32 = 100;
/// The core's largest member page: AnyChat's `page` is reached by skipping within it.
const CORE_MEMBER_PAGE: u32 = 1000;
/// Profiles per `GetProfiles` at most.
const PROFILES_PER_CALL: usize = parley_protocol::frames::MAX_PROFILES;

/// AnyChat's name of a role.
pub(super) fn role_name(role: MemberRole) -> &'static str {
    match role {
        MemberRole::Owner => "owner",
        MemberRole::Manager => "admin",
        MemberRole::Member | MemberRole::Unspecified => "member",
    }
}

/// A group id from a path.
fn group(id: &str) -> Result<ConversationId, AnyError> {
    extract::conversation(id).map_err(|_| AnyError::not_found("no such group"))
}

/// `GroupResponse` of a group as [`GroupInfo`] shows it (`my_role`: the caller's role, `None`
/// for a non-member).
pub(super) fn group_view(g: &GroupInfo, my_role: Option<MemberRole>) -> Value {
    let mut v = profile_view(g.conversation, &g.profile, g.owner, g.member_count, my_role);
    if g.created_at_ms != 0 {
        v["createdAt"] = json!(views::rfc3339(g.created_at_ms));
    }
    v
}

fn profile_view(
    id: ConversationId,
    p: &GroupProfile,
    owner: Option<UserId>,
    member_count: u32,
    my_role: Option<MemberRole>,
) -> Value {
    let now = views::now_ms();
    json!({
        "groupId": views::conversation_id(id),
        "name": p.name,
        "avatar": views::avatar(&p.avatar_file_id),
        "announcement": p.announcement,
        "ownerId": owner.map_or_else(String::new, views::user_id),
        "memberCount": member_count,
        "maxMembers": p.max_members,
        "joinVerify": p.join_policy == JoinPolicy::Approval,
        "isMuted": p.muted_all_until_ms > now,
        "myRole": my_role.map_or("", role_name),
        // The group's creation time where the core's answer carries it (`GetGroup`, not the
        // conversation list); the core keeps no change time of a profile.
        "createdAt": "",
        "updatedAt": "",
    })
}

/// `GroupResponse` of a conversation of the caller's list.
fn listed_view(c: &ConversationInfo) -> Option<Value> {
    let profile = c.group.as_deref()?;
    let members = u32::try_from(c.members.len()).unwrap_or(u32::MAX);
    Some(profile_view(
        c.id,
        profile,
        c.owner,
        members,
        Some(c.my_role),
    ))
}

/// The caller's member record in `conv` (`None`: not a member).
async fn my_membership(
    any: &AnyChat,
    me: &Identity,
    conv: ConversationId,
) -> Result<Option<MemberInfo>, AnyError> {
    let request = Request::ListMembers {
        conversation: conv,
        after: me.user.get() - 1,
        limit: 1,
    };
    match any.call(me, request).await {
        Ok(Response::MemberList { members, .. }) => {
            Ok(members.into_iter().find(|m| m.user == me.user))
        }
        Ok(other) => Err(super::super::unexpected(&other).into()),
        // Not a member (or no such group): the core does not tell them apart.
        Err(e) if e.code == 404 || e.code == 403 => Ok(None),
        Err(e) => Err(e),
    }
}

/// `GetGroup` as the caller.
async fn get_group(
    any: &AnyChat,
    me: &Identity,
    conv: ConversationId,
) -> Result<GroupInfo, AnyError> {
    match any
        .call(me, Request::GetGroup { conversation: conv })
        .await?
    {
        Response::Group(g) => Ok(*g),
        other => Err(super::super::unexpected(&other).into()),
    }
}

/// Runs a change whose answer carries nothing AnyChat shows.
async fn run(any: &AnyChat, me: &Identity, request: Request) -> Result<(), AnyError> {
    any.call(me, request).await.map(drop)
}

/// Profiles of `users`, by id (in calls of at most [`PROFILES_PER_CALL`]).
pub(super) async fn profiles(
    any: &AnyChat,
    me: &Identity,
    users: &[UserId],
) -> Result<std::collections::HashMap<UserId, Profile>, AnyError> {
    let mut out = std::collections::HashMap::new();
    for chunk in users.chunks(PROFILES_PER_CALL) {
        match any.call(me, Request::GetProfiles(chunk.to_vec())).await? {
            Response::Profiles(list) => {
                out.extend(list.into_iter().filter_map(|p| Some((p.user?, p))));
            }
            other => return Err(super::super::unexpected(&other).into()),
        }
    }
    Ok(out)
}

/// The group `UserInfo`: `userId, nickname, avatar, gender, bio`.
pub(super) fn user_info(user: UserId, p: Option<&Profile>) -> Value {
    json!({
        "userId": views::user_id(user),
        "nickname": p.map_or("", |p| p.nickname.as_str()),
        "avatar": p.map_or("", |p| views::avatar(&p.avatar_file_id)),
        "gender": p.map_or(0, |p| views::gender(p.gender)),
        "bio": p.map_or("", |p| p.bio.as_str()),
    })
}

// ---- list, create, profile ------------------------------------------------------------------

/// `GET /groups?lastUpdateTime=`: the caller's groups (disbanded ones left out). The core keeps
/// no change time per group, so `lastUpdateTime` is accepted and every group is listed.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    #[allow(dead_code)] // accepted, see above
    last_update_time: Option<String>,
}

async fn list(
    axum::extract::State(any): axum::extract::State<AnyChat>,
    Me(me): Me,
    Query(_q): Query<ListQuery>,
) -> Reply {
    let request = Request::ListConversations {
        limit: 0,
        offset: 0,
    };
    let conversations = match any.call(&me, request).await? {
        Response::ConversationList { conversations, .. } => conversations,
        other => return Err(super::super::unexpected(&other).into()),
    };
    let groups: Vec<Value> = conversations
        .iter()
        .filter(|c| c.kind == ConversationKind::Group)
        .filter(|c| c.group.as_deref().is_some_and(|g| !g.disbanded))
        .filter_map(listed_view)
        .collect();
    ok(json!({
        "total": groups.len(),
        "groups": groups,
        "updateTime": views::now_ms() / 1000,
    }))
}

/// `POST /groups` body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    name: String,
    #[serde(default)]
    member_ids: Vec<IdIn>,
    #[serde(default)]
    avatar: Option<String>,
    #[serde(default)]
    join_verify: Option<bool>,
}

/// `POST /groups`: a group of the caller (owner) and `memberIds`, public, joined freely unless
/// `joinVerify`.
async fn create(
    axum::extract::State(any): axum::extract::State<AnyChat>,
    Me(me): Me,
    Body(body): Body<CreateBody>,
) -> Reply {
    let name = GroupName::try_from(body.name.trim().to_owned())
        .map_err(|e| AnyError::invalid(e.to_string()))?;
    if body.member_ids.is_empty() {
        return Err(AnyError::invalid("memberIds must name at least one user"));
    }
    let members = body
        .member_ids
        .iter()
        .map(extract::user_in_body)
        .collect::<Result<Vec<_>, _>>()?;
    let avatar = avatar_in(body.avatar)?;
    let conv = match any
        .call(&me, Request::CreateGroup { name, members })
        .await?
    {
        Response::Conversation(c) => c.id,
        other => return Err(super::super::unexpected(&other).into()),
    };
    let change = GroupProfileChange {
        avatar_file_id: avatar,
        public: Some(true),
        join_policy: Some(policy(body.join_verify.unwrap_or(false))),
        ..GroupProfileChange::default()
    };
    let request = Request::UpdateGroup {
        conversation: conv,
        change,
        request_key: None,
    };
    run(&any, &me, request).await?;
    let g = get_group(&any, &me, conv).await?;
    ok(group_view(&g, Some(MemberRole::Owner)))
}

fn policy(verify: bool) -> JoinPolicy {
    match verify {
        true => JoinPolicy::Approval,
        false => JoinPolicy::Free,
    }
}

/// An avatar URL from a body: an http(s) URL or empty (clears it).
fn avatar_in(avatar: Option<String>) -> Result<Option<String>, AnyError> {
    match avatar {
        None => Ok(None),
        Some(a) if a.is_empty() || views::avatar(&a) == a => Ok(Some(a)),
        Some(_) => Err(AnyError::invalid("avatar must be an http(s) URL")),
    }
}

/// `GET /groups/{id}`: for members, and for anyone if the group is public.
async fn info(
    axum::extract::State(any): axum::extract::State<AnyChat>,
    Me(me): Me,
    Path(id): Path<String>,
) -> Reply {
    let conv = group(&id)?;
    let g = get_group(&any, &me, conv).await?;
    let mine = my_membership(&any, &me, conv).await?;
    ok(group_view(&g, mine.map(|m| m.role)))
}

/// `PUT /groups/{id}` body.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct UpdateBody {
    name: Option<String>,
    avatar: Option<String>,
    announcement: Option<String>,
    join_verify: Option<bool>,
}

/// `PUT /groups/{id}`: owner and admins.
async fn update(
    axum::extract::State(any): axum::extract::State<AnyChat>,
    Me(me): Me,
    Path(id): Path<String>,
    MaybeBody(body): MaybeBody<UpdateBody>,
) -> Reply {
    let conv = group(&id)?;
    let name = body
        .name
        .map(|n| GroupName::try_from(n.trim().to_owned()))
        .transpose()
        .map_err(|e| AnyError::invalid(e.to_string()))?;
    let change = GroupProfileChange {
        name,
        avatar_file_id: avatar_in(body.avatar)?,
        announcement: body.announcement,
        join_policy: body.join_verify.map(policy),
        ..GroupProfileChange::default()
    };
    let request = Request::UpdateGroup {
        conversation: conv,
        change,
        request_key: None,
    };
    run(&any, &me, request).await?;
    ok(Value::Null)
}

/// `DELETE /groups/{id}`: the owner disbands the group.
async fn disband(
    axum::extract::State(any): axum::extract::State<AnyChat>,
    Me(me): Me,
    Path(id): Path<String>,
) -> Reply {
    let conv = group(&id)?;
    let request = Request::DisbandGroup {
        conversation: conv,
        request_key: None,
    };
    run(&any, &me, request).await?;
    ok(Value::Null)
}

// ---- joining ----------------------------------------------------------------------------------

/// `POST /groups/{id}/join` body.
#[derive(Deserialize, Default)]
struct JoinBody {
    #[serde(default)]
    message: String,
}

/// `POST /groups/{id}/join`: joins a free group at once; in an approval group files a request
/// (`needVerify: true`, its `requestId`).
async fn join(
    axum::extract::State(any): axum::extract::State<AnyChat>,
    Me(me): Me,
    Path(id): Path<String>,
    MaybeBody(body): MaybeBody<JoinBody>,
) -> Reply {
    let conv = group(&id)?;
    let request = Request::JoinGroup {
        conversation: conv,
        message: body.message,
        request_key: None,
    };
    let pending = match any.call(&me, request).await? {
        Response::JoinResult { pending } => pending,
        other => return Err(super::super::unexpected(&other).into()),
    };
    ok(json!({
        "needVerify": pending,
        "requestId": if pending { me.user.get() } else { 0 },
        "message": if pending { "the request waits for the group's managers" } else { "joined" },
    }))
}

/// `GET /groups/{id}/requests?status=` query.
#[derive(Deserialize, Default)]
struct RequestsQuery {
    status: Option<String>,
}

/// `GET /groups/{id}/requests`: the pending join requests (owner and admins; others `403`).
async fn requests(
    axum::extract::State(any): axum::extract::State<AnyChat>,
    Me(me): Me,
    Path(id): Path<String>,
    Query(q): Query<RequestsQuery>,
) -> Reply {
    let conv = group(&id)?;
    let pending_wanted = match q.status.as_deref().map(str::trim) {
        None | Some("") | Some("pending") => true,
        Some("accepted") | Some("rejected") => false,
        Some(other) => {
            return Err(AnyError::invalid(format!(
                "status must be pending, accepted or rejected, not {other:?}"
            )))
        }
    };
    let g = get_group(&any, &me, conv).await?;
    match my_membership(&any, &me, conv).await? {
        Some(m) if matches!(m.role, MemberRole::Owner | MemberRole::Manager) => {}
        _ => {
            return Err(AnyError::forbidden(
                "only the owner and admins see join requests",
            ))
        }
    }
    // The core keeps pending requests only: answered ones are gone.
    let list = match pending_wanted {
        true => g.join_requests,
        false => Vec::new(),
    };
    let users: Vec<UserId> = list.iter().map(|r| r.user).collect();
    let profiles = profiles(&any, &me, &users).await?;
    let requests: Vec<Value> = list
        .iter()
        .map(|r| {
            json!({
                "id": r.user.get(),
                "groupId": views::conversation_id(conv),
                "userId": views::user_id(r.user),
                "userInfo": user_info(r.user, profiles.get(&r.user)),
                "message": r.message,
                "status": "pending",
                "inviterId": "",
                "createdAt": views::rfc3339(r.requested_at_ms),
            })
        })
        .collect();
    ok(json!({"total": requests.len(), "requests": requests}))
}

/// `PUT /groups/{id}/requests/{requestId}` body: `{accept: bool}` or `{action:
/// "accept"|"reject"}`.
#[derive(Deserialize, Default)]
struct AnswerBody {
    accept: Option<bool>,
    action: Option<String>,
}

/// `PUT /groups/{id}/requests/{requestId}`: approves or rejects (owner and admins).
async fn answer_request(
    axum::extract::State(any): axum::extract::State<AnyChat>,
    Me(me): Me,
    Path((id, request_id)): Path<(String, String)>,
    MaybeBody(body): MaybeBody<AnswerBody>,
) -> Reply {
    let conv = group(&id)?;
    let user = request_id
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| UserId::try_from(n).ok())
        .ok_or_else(|| AnyError::not_found("no such join request"))?;
    let approve = match (body.accept, body.action.as_deref()) {
        (Some(a), _) => a,
        (None, Some("accept")) | (None, Some("approve")) => true,
        (None, Some("reject")) => false,
        _ => {
            return Err(AnyError::invalid(
                "accept (true or false) or action (accept or reject) is required",
            ))
        }
    };
    let request = Request::AnswerJoinRequest {
        conversation: conv,
        user,
        approve,
        request_key: None,
    };
    run(&any, &me, request).await?;
    ok(Value::Null)
}

// ---- members ----------------------------------------------------------------------------------

/// `GET /groups/{id}/members` query.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MembersQuery {
    page: Option<u32>,
    page_size: Option<u32>,
}

/// `GET /groups/{id}/members?page=&pageSize=`: members in user-id order (members only).
async fn members(
    axum::extract::State(any): axum::extract::State<AnyChat>,
    Me(me): Me,
    Path(id): Path<String>,
    Query(q): Query<MembersQuery>,
) -> Reply {
    let conv = group(&id)?;
    let page = q.page.unwrap_or(1).max(1);
    let size = extract::limit(q.page_size, DEFAULT_MEMBER_PAGE, MAX_MEMBER_PAGE);
    let skip = u64::from(page - 1) * u64::from(size);
    // The core pages by user id: walk to the page, a core page at a time.
    let mut after = 0u64;
    let mut skipped = 0u64;
    let mut page_members: Vec<MemberInfo> = Vec::new();
    let mut total;
    loop {
        let request = Request::ListMembers {
            conversation: conv,
            after,
            limit: CORE_MEMBER_PAGE,
        };
        let (batch, has_more, all) = match any.call(&me, request).await? {
            Response::MemberList {
                members,
                has_more,
                total,
            } => (members, has_more, total),
            other => return Err(super::super::unexpected(&other).into()),
        };
        total = all;
        after = batch.last().map_or(after, |m| m.user.get());
        for m in batch {
            if skipped < skip {
                skipped += 1;
            } else if page_members.len() < size as usize {
                page_members.push(m);
            }
        }
        if !has_more || page_members.len() >= size as usize {
            break;
        }
    }
    let users: Vec<UserId> = page_members.iter().map(|m| m.user).collect();
    let profiles = profiles(&any, &me, &users).await?;
    let now = views::now_ms();
    let members: Vec<Value> = page_members
        .iter()
        .map(|m| {
            json!({
                "userId": views::user_id(m.user),
                "userInfo": user_info(m.user, profiles.get(&m.user)),
                "role": role_name(m.role),
                "groupNickname": m.nickname,
                "isMuted": m.muted_until_ms > now,
                // The core keeps the seq a member joined at, not the time.
                "joinedAt": "",
            })
        })
        .collect();
    ok(json!({"total": total, "page": page, "members": members}))
}

/// `POST /groups/{id}/members` body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InviteBody {
    user_ids: Vec<IdIn>,
}

/// `POST /groups/{id}/members`: the owner and admins add users (as the core allows).
async fn invite(
    axum::extract::State(any): axum::extract::State<AnyChat>,
    Me(me): Me,
    Path(id): Path<String>,
    Body(body): Body<InviteBody>,
) -> Reply {
    let conv = group(&id)?;
    if body.user_ids.is_empty() {
        return Err(AnyError::invalid("userIds must name at least one user"));
    }
    let add = body
        .user_ids
        .iter()
        .map(extract::user_in_body)
        .collect::<Result<Vec<_>, _>>()?;
    let request = Request::ChangeMembers {
        conversation: conv,
        add,
        remove: Vec::new(),
        request_key: None,
    };
    run(&any, &me, request).await?;
    ok(Value::Null)
}

/// `DELETE /groups/{id}/members/{userId}`: the owner and admins remove members.
async fn remove_member(
    axum::extract::State(any): axum::extract::State<AnyChat>,
    Me(me): Me,
    Path((id, user)): Path<(String, String)>,
) -> Reply {
    let conv = group(&id)?;
    let user = extract::user(&user)?;
    let request = Request::ChangeMembers {
        conversation: conv,
        add: Vec::new(),
        remove: vec![user],
        request_key: None,
    };
    run(&any, &me, request).await?;
    ok(Value::Null)
}

/// `PUT /groups/{id}/members/{userId}/role` body.
#[derive(Deserialize)]
struct RoleBody {
    role: String,
}

/// `PUT /groups/{id}/members/{userId}/role`: `admin` or `member` (owner only; the owner's role
/// moves by transfer).
async fn set_role(
    axum::extract::State(any): axum::extract::State<AnyChat>,
    Me(me): Me,
    Path((id, user)): Path<(String, String)>,
    Body(body): Body<RoleBody>,
) -> Reply {
    let conv = group(&id)?;
    let user = extract::user(&user)?;
    let role = match body.role.trim().to_ascii_lowercase().as_str() {
        "admin" | "manager" => MemberRole::Manager,
        "member" => MemberRole::Member,
        "owner" => {
            return Err(AnyError::invalid(
                "ownership moves with POST /groups/{id}/transfer",
            ))
        }
        other => {
            return Err(AnyError::invalid(format!(
                "role must be admin or member, not {other:?}"
            )))
        }
    };
    let request = Request::SetMemberRole {
        conversation: conv,
        user,
        role,
        request_key: None,
    };
    run(&any, &me, request).await?;
    ok(Value::Null)
}

/// `PUT /groups/{id}/nickname` body.
#[derive(Deserialize)]
struct NicknameBody {
    nickname: String,
}

/// `PUT /groups/{id}/nickname`: the caller's nickname in the group (empty clears it).
async fn nickname(
    axum::extract::State(any): axum::extract::State<AnyChat>,
    Me(me): Me,
    Path(id): Path<String>,
    Body(body): Body<NicknameBody>,
) -> Reply {
    let conv = group(&id)?;
    if body.nickname.chars().count() > 50 {
        return Err(AnyError::invalid("nickname is at most 50 characters"));
    }
    let request = Request::SetGroupNickname {
        conversation: conv,
        nickname: body.nickname,
        request_key: None,
    };
    run(&any, &me, request).await?;
    ok(Value::Null)
}

/// `POST /groups/{id}/quit`: the caller leaves (the owner transfers first, as the core requires).
async fn quit(
    axum::extract::State(any): axum::extract::State<AnyChat>,
    Me(me): Me,
    Path(id): Path<String>,
) -> Reply {
    let conv = group(&id)?;
    let request = Request::ChangeMembers {
        conversation: conv,
        add: Vec::new(),
        remove: vec![me.user],
        request_key: None,
    };
    run(&any, &me, request).await?;
    ok(Value::Null)
}

/// `POST /groups/{id}/transfer` body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransferBody {
    new_owner_id: IdIn,
}

/// `POST /groups/{id}/transfer`: the owner hands the group to a member.
async fn transfer(
    axum::extract::State(any): axum::extract::State<AnyChat>,
    Me(me): Me,
    Path(id): Path<String>,
    Body(body): Body<TransferBody>,
) -> Reply {
    let conv = group(&id)?;
    let user = extract::user_in_body(&body.new_owner_id)?;
    let request = Request::SetMemberRole {
        conversation: conv,
        user,
        role: MemberRole::Owner,
        request_key: None,
    };
    run(&any, &me, request).await?;
    ok(Value::Null)
}
