//! `/conversations/*`: the list, creating single and group chats, details, group updates,
//! history paged by `seqId`, sending (idempotent by `client_msg_id`), mark-read by seq, and the
//! members of a group.
//!
//! Single chats are our 1:1 conversations (made on first use), group chats our groups, and the
//! world chat our world room. Sends are answered once durable, like every send of ours.

use axum::extract::State;
use parley_protocol::frames::{
    ConversationInfo, CursorKind, GroupProfileChange, MemberRole, PeerRef, Request, Response,
    SendAck, SendRequest,
};
use parley_protocol::ids::{ClientMsgId, ConversationId, Seq, UserId};
use parley_protocol::session::Identity;
use parley_protocol::values::GroupName;
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::GoError;
use super::extract::{self, Body, Caller, Done, IdIn, MaybeBody, Path, Query};
use super::{views, GoChat};
use crate::compat::unexpected;

/// Which page of the list.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    page: Option<u32>,
    size: Option<u32>,
    #[serde(rename = "type")]
    kind: Option<u8>,
}

/// A new conversation.
#[derive(Debug, Deserialize)]
pub struct CreateBody {
    #[serde(rename = "type")]
    kind: u8,
    name: Option<String>,
    #[serde(default)]
    members: Vec<IdIn>,
    description: Option<String>,
}

/// A group's new profile (absent fields stay).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateBody {
    name: Option<String>,
    avatar_url: Option<String>,
    description: Option<String>,
}

/// Which page of history.
#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    /// Older than this seq (the previous page's `nextCursor`); absent: from the newest.
    cursor: Option<u64>,
    limit: Option<u32>,
}

/// A message to send (the REST body, and the WebSocket's `send-message` data).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendBody {
    /// Only in the WebSocket frame (the REST path names it).
    pub conversation_id: Option<IdIn>,
    pub message_type: Option<u8>,
    pub content: Option<String>,
    /// The idempotency key (snake_case, as GoChat spells it).
    #[serde(rename = "client_msg_id")]
    pub client_msg_id: Option<String>,
    /// The same, as the contract's `Message` spells it.
    #[serde(rename = "clientMsgId")]
    pub client_msg_id_alt: Option<String>,
    /// The web client's temporary id: echoed in the ack, and the key if no other is given.
    pub temp_message_id: Option<String>,
}

/// A read position.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadBody {
    pub seq_id: u64,
}

/// Which page of members.
#[derive(Debug, Deserialize)]
pub struct MembersQuery {
    page: Option<u32>,
    size: Option<u32>,
    role: Option<u8>,
}

/// Users to add.
#[derive(Debug, Deserialize)]
pub struct MembersBody {
    members: Vec<IdIn>,
}

/// A member's new role.
#[derive(Debug, Deserialize)]
pub struct RoleBody {
    role: u8,
}

/// Messages per history page at most.
const MAX_HISTORY: u32 = 100;
/// Empty pages (all entries hidden) skipped before answering an empty page.
const MAX_EMPTY_PAGES: usize = 8;
/// Members per page at most.
const MAX_MEMBERS: u32 = 100;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The conversation as `me` sees it; one `me` is not in is `404 CONVERSATION_NOT_FOUND`.
async fn find(
    go: &GoChat,
    me: &Identity,
    conv: ConversationId,
) -> Result<ConversationInfo, GoError> {
    let request = Request::ListConversations {
        limit: 0,
        offset: 0,
    };
    match go.call(me, request).await? {
        Response::ConversationList { conversations, .. } => conversations
            .into_iter()
            .find(|c| c.id == conv)
            .ok_or_else(GoError::no_conversation),
        other => Err(unexpected(&other).into()),
    }
}

/// A conversation error: `NOT_FOUND` is `CONVERSATION_NOT_FOUND`.
fn conv_err(e: impl Into<GoError>) -> GoError {
    e.into().not_found_as("CONVERSATION_NOT_FOUND")
}

fn users(ids: &[IdIn]) -> Result<Vec<UserId>, GoError> {
    ids.iter().map(extract::user_in_body).collect()
}

async fn render(go: &GoChat, me: &Identity, c: &ConversationInfo) -> Result<Value, GoError> {
    let world = go.world(me).await?;
    views::conversation(c, Some(world), me.user, now_ms()).ok_or_else(GoError::no_conversation)
}

/// `GET /conversations?page=&size=&type=`: newest activity first (pinned first).
pub async fn list(
    State(go): State<GoChat>,
    Caller(me): Caller,
    Query(q): Query<ListQuery>,
) -> Result<Done, GoError> {
    if q.kind.is_some_and(|k| !(1..=3).contains(&k)) {
        return Err(GoError::invalid("type must be 1, 2 or 3"));
    }
    let size = q.size.unwrap_or(20).clamp(1, 100) as usize;
    let page = q.page.unwrap_or(1).max(1) as usize;
    let world = go.world(&me).await?;
    let request = Request::ListConversations {
        limit: 0,
        offset: 0,
    };
    let all = match go.call(&me, request).await? {
        Response::ConversationList { conversations, .. } => conversations,
        other => return Err(unexpected(&other).into()),
    };
    let now = now_ms();
    let shown: Vec<&ConversationInfo> = all
        .iter()
        .filter(|c| match views::conversation_type(c, Some(world)) {
            Some(kind) => q.kind.is_none_or(|k| k == kind),
            None => false,
        })
        .collect();
    let start = (page - 1).saturating_mul(size);
    let conversations: Vec<Value> = shown
        .iter()
        .skip(start)
        .take(size)
        .filter_map(|c| views::conversation(c, Some(world), me.user, now))
        .collect();
    let has_more = start.saturating_add(size) < shown.len();
    Ok(Done::ok(
        "ok",
        json!({ "conversations": conversations, "hasMore": has_more }),
    ))
}

/// `POST /conversations`: type 1 opens the single chat with the one other member named, type
/// 2 creates a group (a `name` is required) owned by the caller. `201`; guests `403`.
pub async fn create(
    State(go): State<GoChat>,
    Caller(me): Caller,
    Body(b): Body<CreateBody>,
) -> Result<Done, GoError> {
    let members = users(&b.members)?;
    let info = match b.kind {
        1 => {
            let others: Vec<UserId> = members.into_iter().filter(|u| *u != me.user).collect();
            let [peer] = others[..] else {
                return Err(GoError::invalid(
                    "a single chat names exactly one other member",
                ));
            };
            match go.call(&me, Request::OpenDirect(PeerRef::User(peer))).await {
                Ok(Response::Conversation(c)) => c,
                Ok(other) => return Err(unexpected(&other).into()),
                Err(e) => return Err(e.not_found_as("USER_NOT_FOUND")),
            }
        }
        2 => {
            let name = b
                .name
                .ok_or_else(|| GoError::invalid("a group chat needs a name"))?;
            let request = Request::CreateGroup {
                name: GroupName::try_from(name).map_err(|e| GoError::invalid(e.message()))?,
                members,
            };
            let mut info = match go.call(&me, request).await {
                Ok(Response::Conversation(c)) => c,
                Ok(other) => return Err(unexpected(&other).into()),
                Err(e) => return Err(e.not_found_as("USER_NOT_FOUND")),
            };
            if let Some(description) = b.description.filter(|d| !d.is_empty()) {
                let change = GroupProfileChange {
                    description: Some(description.clone()),
                    ..GroupProfileChange::default()
                };
                update_group(&go, &me, info.id, change).await?;
                if let Some(g) = info.group.as_deref_mut() {
                    g.description = description;
                }
            }
            info
        }
        _ => return Err(GoError::invalid("type must be 1 (single) or 2 (group)")),
    };
    Ok(Done::created(
        "conversation created",
        render(&go, &me, &info).await?,
    ))
}

async fn update_group(
    go: &GoChat,
    me: &Identity,
    conv: ConversationId,
    change: GroupProfileChange,
) -> Result<(), GoError> {
    let request = Request::UpdateGroup {
        conversation: conv,
        change,
        request_key: None,
    };
    go.call(me, request).await.map_err(conv_err)?;
    Ok(())
}

/// All members of `conv` (for its details), at most `limit`, filtered by `role` (GoChat's).
async fn member_page(
    go: &GoChat,
    me: &Identity,
    conv: ConversationId,
    skip: usize,
    take: usize,
    role: Option<u8>,
) -> Result<(Vec<Value>, bool), GoError> {
    let now = now_ms();
    let mut after = 0;
    let mut seen = 0usize;
    let mut out = Vec::new();
    loop {
        let request = Request::ListMembers {
            conversation: conv,
            after,
            limit: MAX_MEMBERS,
        };
        let (members, has_more) = match go.call(me, request).await.map_err(conv_err)? {
            Response::MemberList {
                members, has_more, ..
            } => (members, has_more),
            other => return Err(unexpected(&other).into()),
        };
        for m in &members {
            if role.is_some_and(|r| r != views::role(m.role)) {
                continue;
            }
            if seen >= skip {
                if out.len() == take {
                    return Ok((out, true));
                }
                out.push(views::member(m, conv, now));
            }
            seen += 1;
        }
        match (has_more, members.last()) {
            (true, Some(last)) => after = last.user.get(),
            _ => return Ok((out, false)),
        }
    }
}

/// `GET /conversations/{conversationId}`: the conversation and its members.
pub async fn details(
    State(go): State<GoChat>,
    Caller(me): Caller,
    Path(id): Path<String>,
) -> Result<Done, GoError> {
    let conv = extract::conversation(&id)?;
    let info = find(&go, &me, conv).await?;
    let mut v = render(&go, &me, &info).await?;
    let members = match info.group {
        Some(_) => {
            member_page(&go, &me, conv, 0, MAX_MEMBERS as usize, None)
                .await?
                .0
        }
        None => {
            let now = now_ms();
            info.members
                .iter()
                .map(|u| {
                    let m = parley_protocol::frames::MemberInfo {
                        user: *u,
                        role: MemberRole::Member,
                        nickname: String::new(),
                        muted_until_ms: 0,
                        joined_seq: Seq(0),
                    };
                    views::member(&m, conv, now)
                })
                .collect()
        }
    };
    v["members"] = json!(members);
    Ok(Done::ok("ok", v))
}

/// `PUT /conversations/{conversationId}`: a group's name, avatar URL and description (its owner
/// and admins).
pub async fn update(
    State(go): State<GoChat>,
    Caller(me): Caller,
    Path(id): Path<String>,
    MaybeBody(b): MaybeBody<UpdateBody>,
) -> Result<Done, GoError> {
    let conv = extract::conversation(&id)?;
    if let Some(url) = &b.avatar_url {
        if views::avatar_url(url).is_none() {
            return Err(GoError::invalid("avatarUrl must be an http(s) URL"));
        }
    }
    let change = GroupProfileChange {
        name: b
            .name
            .map(GroupName::try_from)
            .transpose()
            .map_err(|e| GoError::invalid(e.message()))?,
        avatar_file_id: b.avatar_url,
        description: b.description,
        ..GroupProfileChange::default()
    };
    if !change.is_empty() {
        update_group(&go, &me, conv, change).await?;
    }
    let info = find(&go, &me, conv).await?;
    Ok(Done::ok(
        "conversation updated",
        render(&go, &me, &info).await?,
    ))
}

/// `GET /conversations/{conversationId}/messages?cursor=&limit=`: newest first, older than
/// `cursor`; `nextCursor` is the lowest `seqId` of the page (give it as the next `cursor`).
pub async fn history(
    State(go): State<GoChat>,
    Caller(me): Caller,
    Path(id): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<Done, GoError> {
    let conv = extract::conversation(&id)?;
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_HISTORY);
    let mut before = q.cursor.unwrap_or(0);
    let mut out = Vec::new();
    let mut has_more = false;
    for _ in 0..MAX_EMPTY_PAGES {
        let request = Request::GetHistory {
            conversation: conv,
            before: Seq(before),
            after: Seq(0),
            limit,
        };
        let (messages, more) = match go.call(&me, request).await.map_err(conv_err)? {
            Response::History { messages, has_more } => (messages, has_more),
            other => return Err(unexpected(&other).into()),
        };
        has_more = more;
        out.extend(messages.iter().filter_map(views::message));
        // The page covered `limit` seqs below `before`: go on below it, from the lowest seq
        // seen, or past its whole range after a page of hidden entries only.
        let lowest = messages.iter().map(|m| m.seq.get()).min();
        before = match (lowest, before) {
            (Some(low), _) => low,
            (None, 0) => break,
            (None, b) => b.saturating_sub(u64::from(limit)),
        };
        if !out.is_empty() || !has_more || before <= 1 {
            break;
        }
    }
    let next = out
        .iter()
        .filter_map(|m| m["seqId"].as_u64())
        .min()
        .unwrap_or(before);
    Ok(Done::ok(
        "ok",
        json!({ "messages": out, "nextCursor": next, "hasMore": has_more && next > 1 }),
    ))
}

/// A fresh idempotency key, for sends that give none.
fn fresh_key() -> String {
    let mut raw = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut raw);
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    format!("gochat-{hex}")
}

/// A send of `b` to `conv`, and the key it carries. GoChat's types: 1 text; 2 image and 3 file
/// carry our media JSON (`{"file_id": ...}`, from the files API), which the core checks.
pub fn send_request(conv: ConversationId, b: &SendBody) -> Result<(Request, String), GoError> {
    let content_type = match b.message_type.unwrap_or(1) {
        1 => parley_protocol::frames::ContentType::Text,
        2 => parley_protocol::frames::ContentType::Image,
        3 => parley_protocol::frames::ContentType::File,
        other => {
            return Err(GoError::invalid(format!(
                "messageType {other} cannot be sent (1 text, 2 image, 3 file)"
            )))
        }
    };
    let content = b
        .content
        .clone()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| GoError::invalid("content is required"))?;
    let key = b
        .client_msg_id
        .clone()
        .or_else(|| b.client_msg_id_alt.clone())
        .or_else(|| b.temp_message_id.clone())
        .unwrap_or_else(fresh_key);
    let client_msg_id =
        ClientMsgId::try_from(key.clone()).map_err(|e| GoError::invalid(e.message()))?;
    let request = Request::Send(SendRequest {
        conversation: conv,
        content_type,
        content: bytes::Bytes::from(content),
        client_msg_id,
        reply_to: Seq(0),
        mentions: Vec::new(),
        mention_all: false,
    });
    Ok((request, key))
}

/// The `Message` a durable send stored.
pub fn sent(me: &Identity, b: &SendBody, key: &str, ack: &SendAck) -> Value {
    let at = views::secs(ack.server_time_ms);
    json!({
        "id": ack.message_id.to_string(),
        "conversationId": ack.conversation.to_string(),
        "senderId": me.user.to_string(),
        "messageType": b.message_type.unwrap_or(1),
        "content": b.content.clone().unwrap_or_default(),
        "seqId": ack.seq.get(),
        "clientMsgId": key,
        "deleted": false,
        "createdAt": at,
        "updatedAt": at,
    })
}

/// `POST /conversations/{conversationId}/messages`: `201` once durable; a retry with the same
/// `client_msg_id` gets the stored message again (same id and `seqId`).
pub async fn send(
    State(go): State<GoChat>,
    Caller(me): Caller,
    Path(id): Path<String>,
    Body(b): Body<SendBody>,
) -> Result<Done, GoError> {
    let conv = extract::conversation(&id)?;
    let (request, key) = send_request(conv, &b)?;
    match go.call(&me, request).await.map_err(conv_err)? {
        Response::SendAck(ack) => Ok(Done::created("message sent", sent(&me, &b, &key, &ack))),
        other => Err(unexpected(&other).into()),
    }
}

/// Moves `me`'s read cursor in `conv` up to `seq`.
pub async fn read_up_to(
    go: &GoChat,
    me: &Identity,
    conv: ConversationId,
    seq: u64,
) -> Result<(), GoError> {
    let request = Request::CursorAck {
        conversation: conv,
        kind: CursorKind::Read,
        seq: Seq(seq),
    };
    go.call(me, request).await.map_err(conv_err)?;
    Ok(())
}

/// `PUT /conversations/{conversationId}/read`: read up to `seqId`; answers the unread count.
pub async fn mark_read(
    State(go): State<GoChat>,
    Caller(me): Caller,
    Path(id): Path<String>,
    Body(b): Body<ReadBody>,
) -> Result<Done, GoError> {
    let conv = extract::conversation(&id)?;
    read_up_to(&go, &me, conv, b.seq_id).await?;
    let info = find(&go, &me, conv).await?;
    Ok(Done::ok(
        "marked read",
        json!({ "unreadCount": info.unread }),
    ))
}

/// `GET /conversations/{conversationId}/members?page=&size=&role=`.
pub async fn members(
    State(go): State<GoChat>,
    Caller(me): Caller,
    Path(id): Path<String>,
    Query(q): Query<MembersQuery>,
) -> Result<Done, GoError> {
    let conv = extract::conversation(&id)?;
    let size = q.size.unwrap_or(20).clamp(1, MAX_MEMBERS) as usize;
    let page = q.page.unwrap_or(1).max(1) as usize;
    let (members, has_more) = member_page(
        &go,
        &me,
        conv,
        (page - 1).saturating_mul(size),
        size,
        q.role,
    )
    .await?;
    Ok(Done::ok(
        "ok",
        json!({ "members": members, "hasMore": has_more }),
    ))
}

async fn change_members(
    go: &GoChat,
    me: &Identity,
    conv: ConversationId,
    add: Vec<UserId>,
    remove: Vec<UserId>,
) -> Result<(), GoError> {
    let request = Request::ChangeMembers {
        conversation: conv,
        add,
        remove,
        request_key: None,
    };
    go.call(me, request).await.map_err(conv_err)?;
    Ok(())
}

/// `POST /conversations/{conversationId}/members`: `201`.
pub async fn add_members(
    State(go): State<GoChat>,
    Caller(me): Caller,
    Path(id): Path<String>,
    Body(b): Body<MembersBody>,
) -> Result<Done, GoError> {
    let conv = extract::conversation(&id)?;
    let add = users(&b.members)?;
    if add.is_empty() {
        return Err(GoError::invalid("members must name at least one user"));
    }
    change_members(&go, &me, conv, add, Vec::new()).await?;
    Ok(Done::created("members added", json!({})))
}

/// `DELETE /conversations/{conversationId}/members/{userId}`.
pub async fn remove_member(
    State(go): State<GoChat>,
    Caller(me): Caller,
    Path((id, user)): Path<(String, String)>,
) -> Result<Done, GoError> {
    let conv = extract::conversation(&id)?;
    let user = extract::user_in_path(&user)?;
    change_members(&go, &me, conv, Vec::new(), vec![user]).await?;
    Ok(Done::empty("member removed"))
}

/// `PUT /conversations/{conversationId}/members/{userId}`: role 1 member, 2 admin, 3 owner (a
/// transfer of ownership); the owner only.
pub async fn set_role(
    State(go): State<GoChat>,
    Caller(me): Caller,
    Path((id, user)): Path<(String, String)>,
    Body(b): Body<RoleBody>,
) -> Result<Done, GoError> {
    let conv = extract::conversation(&id)?;
    let user = extract::user_in_path(&user)?;
    let role = match b.role {
        1 => MemberRole::Member,
        2 => MemberRole::Manager,
        3 => MemberRole::Owner,
        _ => return Err(GoError::invalid("role must be 1, 2 or 3")),
    };
    let request = Request::SetMemberRole {
        conversation: conv,
        user,
        role,
        request_key: None,
    };
    go.call(&me, request).await.map_err(conv_err)?;
    Ok(Done::empty("role updated"))
}
