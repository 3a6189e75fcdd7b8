//! `/v1/conversations...` and `/v1/groups...`: the conversation list, new conversations,
//! message history and sends; a group's profile, members and invitations.
//!
//! A group is a conversation of ours: `g<id>` and `c<id>` name the same one, and every route
//! takes either form (or the bare number).

use std::collections::HashMap;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Json, Path, Query, State};
use axum::http::StatusCode;
use parley_protocol::frames::{
    ConversationInfo, ConversationKind, CursorKind, GroupProfileChange, MemberInfo, MemberRole,
    Message, PeerRef, Request, Response, SendRequest,
};
use parley_protocol::ids::{ClientMsgId, ConversationId, Seq, UserId};
use parley_protocol::session::Identity;
use parley_protocol::values::GroupName;
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{body, query};
use super::social::{page, Page};
use super::{media, views, Caller, FlError, Flutter};
use crate::compat::unexpected;

/// The conversation list's query.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    offset: Option<u32>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

/// A history page's query.
#[derive(Debug, Default, Deserialize)]
pub struct HistoryQuery {
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    before: Option<String>,
    #[serde(default)]
    after: Option<String>,
}

/// A message to send.
#[derive(Debug, Deserialize)]
pub struct SendBody {
    #[serde(default)]
    content: Option<String>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    temp_id: Option<String>,
    #[serde(default)]
    caption: Option<String>,
}

/// A new conversation.
#[derive(Debug, Deserialize)]
pub struct CreateBody {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    target_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    members: Vec<String>,
}

/// A group profile update.
#[derive(Debug, Deserialize)]
pub struct GroupBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    announcement: Option<String>,
    #[serde(default)]
    avatar: Option<String>,
}

/// An invitation.
#[derive(Debug, Deserialize)]
pub struct InviteBody {
    user_ids: Vec<String>,
}

/// Messages per history page by default, and at most.
const DEFAULT_HISTORY: u32 = 50;
const MAX_HISTORY: u32 = 100;
/// Conversations per page at most.
const MAX_CONVERSATIONS: u32 = 200;
/// Members per page by default, and at most.
const DEFAULT_MEMBERS: u32 = 100;
const MAX_MEMBERS: u32 = 500;

/// A fresh idempotency key for a send without `temp_id`.
pub fn fresh_key() -> String {
    let mut raw = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut raw);
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    format!("flutter-{hex}")
}

/// Every conversation of `me` (1:1 and groups; the notices conversation is not shown).
pub async fn all_conversations(
    fl: &Flutter,
    me: &Identity,
) -> Result<Vec<ConversationInfo>, FlError> {
    let request = Request::ListConversations {
        limit: 0,
        offset: 0,
    };
    match fl.call(me, request).await? {
        Response::ConversationList { conversations, .. } => Ok(conversations
            .into_iter()
            .filter(|c| matches!(c.kind, ConversationKind::Direct | ConversationKind::Group))
            .collect()),
        other => Err(unexpected(&other).into()),
    }
}

/// `conv` as `me` sees it; one `me` is not in is `404`.
pub async fn conversation(
    fl: &Flutter,
    me: &Identity,
    conv: ConversationId,
) -> Result<ConversationInfo, FlError> {
    all_conversations(fl, me)
        .await?
        .into_iter()
        .find(|c| c.id == conv)
        .ok_or_else(|| {
            FlError::not_found(format!(
                "no such conversation: {}",
                views::conversation_id(conv)
            ))
        })
}

/// The other member of a 1:1 conversation (`me` for a conversation with oneself).
fn peer_of(c: &ConversationInfo, me: UserId) -> UserId {
    c.members.iter().copied().find(|u| *u != me).unwrap_or(me)
}

/// `private` or `group`.
fn kind_of(c: &ConversationInfo) -> &'static str {
    match c.kind {
        ConversationKind::Group => "group",
        _ => "private",
    }
}

/// The entry at `seq` of `conv`, if `me` can see it.
async fn entry(
    fl: &Flutter,
    me: &Identity,
    conv: ConversationId,
    seq: Seq,
) -> Result<Option<Message>, FlError> {
    if seq == Seq::ZERO {
        return Ok(None);
    }
    // Backwards from just after it (`before` zero with `after` zero would mean the head).
    let request = Request::GetHistory {
        conversation: conv,
        before: Seq(seq.get().saturating_add(1)),
        after: Seq::ZERO,
        limit: 1,
    };
    match fl.call(me, request).await? {
        Response::History { messages, .. } => Ok(messages.into_iter().find(|m| m.seq == seq)),
        other => Err(unexpected(&other).into()),
    }
}

/// When the entry at `seq` was written, as ISO 8601 (null where `me` cannot see it).
async fn time_of(fl: &Flutter, me: &Identity, conv: ConversationId, seq: Seq) -> Value {
    match entry(fl, me, conv, seq).await {
        Ok(Some(m)) => json!(views::iso(m.server_time_ms)),
        _ => Value::Null,
    }
}

/// `GET /v1/conversations?limit=&offset=&type=private|group|all`: `{total, conversations}`,
/// each with its target (the other user, or the group `g<id>`), its last message and unread
/// count.
pub async fn conversations(
    State(fl): State<Flutter>,
    Caller(me): Caller,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, FlError> {
    let q = query(q)?;
    let (limit, offset) = page(
        &Page {
            limit: q.limit,
            offset: q.offset,
        },
        20,
        MAX_CONVERSATIONS,
    )?;
    let wanted = match q.kind.as_deref().unwrap_or("all") {
        "all" | "" => None,
        "private" => Some(ConversationKind::Direct),
        "group" => Some(ConversationKind::Group),
        other => {
            return Err(FlError::invalid(format!(
                "type {other:?} is not private, group or all"
            )))
        }
    };
    let all: Vec<ConversationInfo> = all_conversations(&fl, &me)
        .await?
        .into_iter()
        .filter(|c| wanted.is_none_or(|k| c.kind == k))
        .collect();
    let shown: Vec<&ConversationInfo> = all.iter().skip(offset).take(limit).collect();
    let mut users: Vec<UserId> = Vec::new();
    for c in &shown {
        if c.kind == ConversationKind::Direct {
            users.push(peer_of(c, me.user));
        }
        if let Some(m) = &c.last_message {
            users.push(m.sender);
        }
    }
    let profiles: HashMap<UserId, _> = {
        users.sort_unstable();
        users.dedup();
        fl.profiles(&me, &users)
            .await?
            .into_iter()
            .filter_map(|p| Some((p.user?, p)))
            .collect()
    };
    let names: HashMap<UserId, String> = profiles
        .iter()
        .map(|(u, p)| (*u, views::display_name(p)))
        .collect();
    let list: Vec<Value> = shown
        .iter()
        .map(|c| {
            let (target_id, target_name, avatar) = match c.kind {
                ConversationKind::Group => {
                    let g = c.group.as_deref();
                    (
                        views::group_id(c.id),
                        g.map_or_else(|| c.name.clone(), |g| g.name.clone()),
                        g.map_or(Value::Null, |g| views::avatar(&g.avatar_file_id)),
                    )
                }
                _ => {
                    let peer = peer_of(c, me.user);
                    let p = profiles.get(&peer);
                    (
                        peer.to_string(),
                        p.map_or_else(|| peer.to_string(), views::display_name),
                        p.map_or(Value::Null, |p| views::avatar(&p.avatar_file_id)),
                    )
                }
            };
            let last = c
                .last_message
                .as_deref()
                .filter(|m| m.event.is_none())
                .map_or(Value::Null, |m| {
                    let mut v = views::message(m, &names, "sent");
                    if let Some(o) = v.as_object_mut() {
                        o.remove("conversation_id");
                        o.remove("status");
                    }
                    v
                });
            json!({
                "conversation_id": views::conversation_id(c.id),
                "type": kind_of(c),
                "target_id": target_id,
                "target_name": target_name,
                "avatar": avatar,
                "last_message": last,
                "unread_count": c.unread,
            })
        })
        .collect();
    Ok(Json(json!({ "total": all.len(), "conversations": list })))
}

/// `POST /v1/conversations`: `{type: private, target_id}` opens the 1:1 conversation with that
/// user (the same one every time); `{type: group, name, members}` creates a group owned by the
/// caller. `201 {conversation_id, type, target_id, created_at}` (and `name` for a group).
pub async fn create_conversation(
    State(fl): State<Flutter>,
    Caller(me): Caller,
    b: Result<Json<CreateBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), FlError> {
    let b = body(b)?;
    let answer = match b.kind.as_str() {
        "private" => {
            let target = b
                .target_id
                .as_deref()
                .ok_or_else(|| FlError::invalid("target_id is required"))?;
            let peer = views::parse_user(target)?;
            let c = match fl
                .call(&me, Request::OpenDirect(PeerRef::User(peer)))
                .await?
            {
                Response::Conversation(c) => c,
                other => return Err(unexpected(&other).into()),
            };
            let created = match time_of(&fl, &me, c.id, c.visible_from.max(Seq(1))).await {
                Value::Null => json!(views::iso(views::now_ms())),
                at => at,
            };
            json!({
                "conversation_id": views::conversation_id(c.id),
                "type": "private",
                "target_id": peer.to_string(),
                "created_at": created,
            })
        }
        "group" => {
            let name = b
                .name
                .as_deref()
                .ok_or_else(|| FlError::invalid("name is required"))?;
            let name =
                GroupName::try_from(name.trim()).map_err(|e| FlError::invalid(e.message()))?;
            let mut members = Vec::with_capacity(b.members.len());
            for m in &b.members {
                let u = views::parse_user(m)?;
                if u != me.user && !members.contains(&u) {
                    members.push(u);
                }
            }
            let c = match fl.call(&me, Request::CreateGroup { name, members }).await? {
                Response::Conversation(c) => c,
                other => return Err(unexpected(&other).into()),
            };
            json!({
                "conversation_id": views::conversation_id(c.id),
                "type": "group",
                "target_id": views::group_id(c.id),
                "name": c.name,
                "created_at": views::iso(views::now_ms()),
            })
        }
        other => {
            return Err(FlError::invalid(format!(
                "type {other:?} is not private or group"
            )))
        }
    };
    Ok((StatusCode::CREATED, Json(answer)))
}

/// A message-id cursor of `conv`; one of another conversation is `400`.
fn cursor(id: Option<&str>, conv: ConversationId) -> Result<Seq, FlError> {
    let Some(id) = id.filter(|s| !s.is_empty()) else {
        return Ok(Seq::ZERO);
    };
    let (c, seq) = views::parse_message(id)?;
    if c != conv {
        return Err(FlError::invalid(format!(
            "message {id:?} is not of conversation {}",
            views::conversation_id(conv)
        )));
    }
    Ok(seq)
}

/// The status of each of `me`'s messages: `read` once every other member's read position is
/// past it, else `sent` (others' delivered positions are pushed as they move, not kept for
/// queries); of others' messages: how far `me` got.
pub async fn statuses(
    fl: &Flutter,
    me: &Identity,
    info: &ConversationInfo,
) -> Result<impl Fn(&Message) -> &'static str, FlError> {
    let request = Request::GetReadState {
        conversation: info.id,
        after: 0,
        limit: 100,
    };
    let receipts = match fl.call(me, request).await? {
        Response::ReadState { receipts, .. } => receipts,
        other => return Err(unexpected(&other).into()),
    };
    let others: Vec<UserId> = info
        .members
        .iter()
        .copied()
        .filter(|u| *u != me.user)
        .collect();
    // The lowest read position among the others (zero if one has none, or there are none).
    let read_by_all = others
        .iter()
        .map(|u| {
            receipts
                .iter()
                .filter(|r| r.user == *u && r.kind == CursorKind::Read)
                .map(|r| r.seq)
                .max()
                .unwrap_or(Seq::ZERO)
        })
        .min()
        .unwrap_or(Seq::ZERO);
    let (mine, read, delivered) = (me.user, info.read, info.delivered);
    Ok(move |m: &Message| {
        if m.sender == mine {
            if read_by_all >= m.seq {
                "read"
            } else {
                "sent"
            }
        } else if read >= m.seq {
            "read"
        } else if delivered >= m.seq {
            "delivered"
        } else {
            "sent"
        }
    })
}

/// `GET /v1/conversations/{conversation_id}/messages?limit=&before=&after=`: `{conversation_id,
/// messages, has_more}`, newest first: without a cursor the newest page, with `before` the
/// page just older than that message, with `after` the page just newer. Conversation events
/// (membership, profile changes, call records) are not messages here and are left out.
pub async fn messages(
    State(fl): State<Flutter>,
    Caller(me): Caller,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<Value>, FlError> {
    let Path(id) = id?;
    let conv = views::parse_conversation(&id)?;
    let q = query(q)?;
    let limit = q.limit.unwrap_or(DEFAULT_HISTORY);
    if limit == 0 || limit > MAX_HISTORY {
        return Err(FlError::invalid(format!("limit must be 1..={MAX_HISTORY}")));
    }
    let before = cursor(q.before.as_deref(), conv)?;
    let after = cursor(q.after.as_deref(), conv)?;
    if before != Seq::ZERO && after != Seq::ZERO {
        return Err(FlError::invalid("give before or after, not both"));
    }
    let info = conversation(&fl, &me, conv).await?;
    let request = Request::GetHistory {
        conversation: conv,
        before,
        after,
        limit,
    };
    let (mut page, has_more) = match fl.call(&me, request).await? {
        Response::History { messages, has_more } => (messages, has_more),
        other => return Err(unexpected(&other).into()),
    };
    page.retain(|m| m.event.is_none());
    page.sort_by_key(|m| std::cmp::Reverse(m.seq));
    let names = fl.names(&me, page.iter().map(|m| m.sender)).await?;
    let status = statuses(&fl, &me, &info).await?;
    let list: Vec<Value> = page
        .iter()
        .map(|m| views::message(m, &names, status(m)))
        .collect();
    Ok(Json(json!({
        "conversation_id": views::conversation_id(conv),
        "messages": list,
        "has_more": has_more,
    })))
}

/// `POST /v1/conversations/{conversation_id}/messages {content, type, temp_id, caption}`:
/// `201` with the message once it is durable, echoing `temp_id`. `temp_id` is the send's
/// idempotency key: a retry with the same one answers the stored message again (same id).
/// Media types carry the media id of an upload in `content`.
pub async fn send(
    State(fl): State<Flutter>,
    Caller(me): Caller,
    id: Result<Path<String>, PathRejection>,
    b: Result<Json<SendBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), FlError> {
    let Path(id) = id?;
    let conv = views::parse_conversation(&id)?;
    let b = body(b)?;
    let content_type = views::content_type(b.kind.as_deref().unwrap_or("text"))?;
    let content = b
        .content
        .filter(|c| !c.is_empty())
        .ok_or_else(|| FlError::invalid("content is required"))?;
    let key = b
        .temp_id
        .clone()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(fresh_key);
    let client_msg_id = ClientMsgId::try_from(key)
        .map_err(|e| FlError::invalid(format!("temp_id: {}", e.message())))?;
    let stored = views::stored_content(content_type, &content, b.caption.as_deref());
    let request = Request::Send(SendRequest {
        conversation: conv,
        content_type,
        content: bytes::Bytes::from(stored),
        client_msg_id,
        reply_to: Seq::ZERO,
        mentions: Vec::new(),
        mention_all: false,
    });
    let ack = match fl.call(&me, request).await? {
        Response::SendAck(ack) => ack,
        other => return Err(unexpected(&other).into()),
    };
    let mut v = json!({
        "message_id": views::message_id(ack.conversation, ack.seq),
        "conversation_id": views::conversation_id(ack.conversation),
        "sender_id": me.user.to_string(),
        "content": content,
        "type": views::kind_name(content_type),
        "status": "sent",
        "created_at": views::iso(ack.server_time_ms),
        "temp_id": b.temp_id,
    });
    if let Some(c) = b
        .caption
        .filter(|c| !c.is_empty() && views::bears_media(content_type))
    {
        v["caption"] = json!(c);
    }
    Ok((StatusCode::CREATED, Json(v)))
}

/// The group `{group_id, name, avatar, owner_id, member_count, announcement, description,
/// created_at}`.
async fn group_view(fl: &Flutter, me: &Identity, conv: ConversationId) -> Result<Value, FlError> {
    let g = match fl
        .call(me, Request::GetGroup { conversation: conv })
        .await?
    {
        Response::Group(g) => g,
        other => return Err(unexpected(&other).into()),
    };
    Ok(json!({
        "group_id": views::group_id(conv),
        "conversation_id": views::conversation_id(conv),
        "name": g.profile.name,
        "avatar": views::avatar(&g.profile.avatar_file_id),
        "owner_id": g.owner.map(|o| o.to_string()),
        "member_count": g.member_count,
        "announcement": g.profile.announcement,
        "description": g.profile.description,
        "created_at": views::iso(g.created_at_ms),
    }))
}

/// `GET /v1/groups/{group_id}`.
pub async fn group(
    State(fl): State<Flutter>,
    Caller(me): Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, FlError> {
    let Path(id) = id?;
    let conv = views::parse_conversation(&id)?;
    Ok(Json(group_view(&fl, &me, conv).await?))
}

/// `PATCH /v1/groups/{group_id} {name, announcement, avatar}`: owner and managers only
/// (`403` otherwise); answers `{group_id, name, announcement, avatar}`.
pub async fn update_group(
    State(fl): State<Flutter>,
    Caller(me): Caller,
    id: Result<Path<String>, PathRejection>,
    b: Result<Json<GroupBody>, JsonRejection>,
) -> Result<Json<Value>, FlError> {
    let Path(id) = id?;
    let conv = views::parse_conversation(&id)?;
    let b = body(b)?;
    let name = match b.name.as_deref() {
        Some(n) => Some(GroupName::try_from(n.trim()).map_err(|e| FlError::invalid(e.message()))?),
        None => None,
    };
    let avatar = match b.avatar.as_deref() {
        Some(a) => Some(media::avatar(&fl, &me, a).await?),
        None => None,
    };
    let change = GroupProfileChange {
        name,
        avatar_file_id: avatar,
        announcement: b.announcement,
        ..GroupProfileChange::default()
    };
    if !change.is_empty() {
        let request = Request::UpdateGroup {
            conversation: conv,
            change,
            request_key: None,
        };
        fl.call(&me, request).await?;
    }
    let v = group_view(&fl, &me, conv).await?;
    Ok(Json(json!({
        "group_id": v["group_id"],
        "name": v["name"],
        "announcement": v["announcement"],
        "avatar": v["avatar"],
    })))
}

/// The role's name.
fn role_name(r: MemberRole) -> &'static str {
    match r {
        MemberRole::Owner => "owner",
        MemberRole::Manager => "admin",
        _ => "member",
    }
}

/// `GET /v1/groups/{group_id}/members?limit=&offset=`: `{total, members}`, each `{user_id,
/// username, nickname, avatar, role (owner, admin, member), joined_at}`.
pub async fn members(
    State(fl): State<Flutter>,
    Caller(me): Caller,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<Page>, QueryRejection>,
) -> Result<Json<Value>, FlError> {
    let Path(id) = id?;
    let conv = views::parse_conversation(&id)?;
    let (limit, offset) = page(&query(q)?, DEFAULT_MEMBERS, MAX_MEMBERS)?;
    let mut listed: Vec<MemberInfo> = Vec::new();
    let mut after = 0;
    let total = loop {
        let request = Request::ListMembers {
            conversation: conv,
            after,
            limit: 100,
        };
        match fl.call(&me, request).await? {
            Response::MemberList {
                members,
                has_more,
                total: t,
            } => {
                after = members.last().map_or(after, |m| m.user.get());
                let empty = members.is_empty();
                listed.extend(members);
                if !has_more || empty || listed.len() >= offset + limit {
                    break t;
                }
            }
            other => return Err(unexpected(&other).into()),
        }
    };
    let shown: Vec<MemberInfo> = listed.into_iter().skip(offset).take(limit).collect();
    let users: Vec<UserId> = shown.iter().map(|m| m.user).collect();
    let profiles: HashMap<UserId, _> = fl
        .profiles(&me, &users)
        .await?
        .into_iter()
        .filter_map(|p| Some((p.user?, p)))
        .collect();
    // The founding members joined when the group was made; the others with the membership
    // entry that added them.
    let created = match fl
        .call(&me, Request::GetGroup { conversation: conv })
        .await?
    {
        Response::Group(g) => json!(views::iso(g.created_at_ms)),
        other => return Err(unexpected(&other).into()),
    };
    let mut joined: HashMap<Seq, Value> = HashMap::new();
    let mut out = Vec::with_capacity(shown.len());
    for m in shown {
        let seq = m.joined_seq;
        let at = match joined.get(&seq) {
            Some(at) => at.clone(),
            None if seq <= Seq(1) => created.clone(),
            None => {
                let at = match time_of(&fl, &me, conv, seq).await {
                    Value::Null => created.clone(),
                    at => at,
                };
                joined.insert(seq, at.clone());
                at
            }
        };
        let p = profiles.get(&m.user);
        out.push(json!({
            "user_id": m.user.to_string(),
            "username": p.map(|p| p.account.clone()),
            "nickname": if m.nickname.is_empty() {
                p.map_or_else(|| m.user.to_string(), views::display_name)
            } else {
                m.nickname.clone()
            },
            "avatar": p.map_or(Value::Null, |p| views::avatar(&p.avatar_file_id)),
            "role": role_name(m.role),
            "joined_at": at,
        }));
    }
    Ok(Json(json!({ "total": total, "members": out })))
}

/// `POST /v1/groups/{group_id}/members {user_ids}`: adds the users (owner and managers only,
/// `403` otherwise; an unknown user `404`); `{success: true, invited_users}`.
pub async fn invite(
    State(fl): State<Flutter>,
    Caller(me): Caller,
    id: Result<Path<String>, PathRejection>,
    b: Result<Json<InviteBody>, JsonRejection>,
) -> Result<Json<Value>, FlError> {
    let Path(id) = id?;
    let conv = views::parse_conversation(&id)?;
    let b = body(b)?;
    if b.user_ids.is_empty() {
        return Err(FlError::invalid("user_ids is empty"));
    }
    let mut add = Vec::with_capacity(b.user_ids.len());
    for u in &b.user_ids {
        let u = views::parse_user(u)?;
        if !add.contains(&u) {
            add.push(u);
        }
    }
    let request = Request::ChangeMembers {
        conversation: conv,
        add: add.clone(),
        remove: Vec::new(),
        request_key: None,
    };
    fl.call(&me, request).await?;
    let invited: Vec<String> = add.iter().map(UserId::to_string).collect();
    Ok(Json(json!({ "success": true, "invited_users": invited })))
}
