//! The REST routes: `/health`, `/api/v1/messages...`, `/api/v1/groups...`, `/api/v1/stats`,
//! and the operations the WebSocket shares with them (send, ack, offline sync, join, leave).

use std::collections::HashMap;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Json, Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use parley_protocol::frames::{
    ConversationInfo, CursorKind, GroupProfileChange, JoinPolicy, MemberRole, Message, PeerRef,
    Request, Response, SendRequest,
};
use parley_protocol::ids::{Account, ClientMsgId, ConversationId, Seq, UserId};
use parley_protocol::session::Identity;
use parley_protocol::values::GroupName;
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};

use super::views::{self, Place};
use super::{Caller, ImError, ImSys};
use crate::compat::unexpected;

/// Messages per offline page by default, and at most.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 100;
/// Members listed at most.
const MAX_MEMBERS: usize = 1000;

/// A message to send (the REST body and the WebSocket's `send_message` data).
#[derive(Debug, Default, Deserialize)]
pub struct SendBody {
    #[serde(default)]
    pub receiver_id: Option<String>,
    #[serde(default)]
    pub group_id: Option<String>,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub content: Option<String>,
}

/// An acknowledgement's status.
#[derive(Debug, Deserialize)]
pub struct AckBody {
    pub status: String,
}

/// Offline sync's parameters.
#[derive(Debug, Default, Deserialize)]
pub struct OfflineQuery {
    #[serde(default)]
    pub last_message_id: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
}

/// A new group.
#[derive(Debug, Deserialize)]
pub struct GroupBody {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    members: Vec<String>,
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ImError> {
    b.map(|Json(v)| v).map_err(ImError::from)
}

fn path<T>(p: Result<Path<T>, PathRejection>) -> Result<T, ImError> {
    p.map(|Path(v)| v).map_err(ImError::from)
}

/// A fresh idempotency key for a send.
pub fn fresh_key() -> String {
    let mut raw = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut raw);
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    format!("imsys-{hex}")
}

/// `GET /health`.
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok", "timestamp": views::now_ms() }))
}

/// `GET /api/v1/stats`: live connection counts (signed-in callers only; the full figures are
/// on the private operational surface).
pub async fn stats(State(im): State<ImSys>, Caller(_me): Caller) -> Json<Value> {
    let s = im.backend.stats();
    Json(json!({
        "connections": s.sessions_online,
        "online_users": s.users_online,
        "timestamp": views::now_ms(),
    }))
}

/// `POST /api/v1/messages`.
pub async fn send(
    State(im): State<ImSys>,
    Caller(me): Caller,
    b: Result<Json<SendBody>, JsonRejection>,
) -> Result<Json<Value>, ImError> {
    let (message, _) = send_message(&im, &me, body(b)?, fresh_key()).await?;
    let id = message["id"].clone();
    Ok(Json(
        json!({ "success": true, "message": message, "message_id": id }),
    ))
}

/// Sends `b` as `me` with idempotency key `key`; answers the stored message (once durable)
/// and its conversation.
pub async fn send_message(
    im: &ImSys,
    me: &Identity,
    b: SendBody,
    key: String,
) -> Result<(Value, ConversationId), ImError> {
    let content_type = views::content_type(b.kind.as_deref().unwrap_or("text"))?;
    let content = b
        .content
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ImError::invalid("content is required"))?;
    let group = b.group_id.filter(|g| !g.trim().is_empty());
    let (conv, place) = match group {
        Some(g) => (views::parse_group_id(&g)?, Place::Group),
        None => {
            let receiver = b
                .receiver_id
                .filter(|r| !r.trim().is_empty())
                .ok_or_else(|| ImError::invalid("receiver_id or group_id is required"))?;
            let info = direct(im, me, &receiver).await?;
            (info.id, Place::of(&info))
        }
    };
    let client_msg_id =
        ClientMsgId::try_from(key.clone()).map_err(|e| ImError::invalid(e.message()))?;
    let request = Request::Send(SendRequest {
        conversation: conv,
        content_type,
        content: bytes::Bytes::from(content.clone()),
        client_msg_id,
        reply_to: Seq::ZERO,
        mentions: Vec::new(),
        mention_all: false,
    });
    let ack = match im.call(me, request).await? {
        Response::SendAck(ack) => ack,
        other => return Err(unexpected(&other).into()),
    };
    let mut m = json!({
        "id": views::message_id(ack.conversation, ack.seq),
        "sender_id": me.user.to_string(),
        "type": views::kind_name(content_type),
        "content": content,
        "status": "sent",
        "timestamp": ack.server_time_ms,
    });
    match place {
        Place::Group => m["group_id"] = json!(conv.to_string()),
        Place::Direct(members) => {
            let peer = members.iter().find(|u| **u != me.user).unwrap_or(&me.user);
            m["receiver_id"] = json!(peer.to_string());
        }
    }
    Ok((m, ack.conversation))
}

/// The 1:1 conversation of `me` with `receiver` (a user id or an account name), made on first
/// use. An unknown user is `404`.
async fn direct(im: &ImSys, me: &Identity, receiver: &str) -> Result<ConversationInfo, ImError> {
    let peer = match views::user_id(receiver) {
        Some(u) => PeerRef::User(u),
        None => PeerRef::Account(
            Account::try_from(receiver.trim())
                .map_err(|_| ImError::not_found(format!("no such user: {receiver:?}")))?,
        ),
    };
    match im.call(me, Request::OpenDirect(peer)).await? {
        Response::Conversation(c) => Ok(c),
        other => Err(unexpected(&other).into()),
    }
}

/// Every conversation of `me`.
pub async fn conversations(
    im: &ImSys,
    me: &Identity,
) -> Result<HashMap<ConversationId, ConversationInfo>, ImError> {
    let request = Request::ListConversations {
        limit: 0,
        offset: 0,
    };
    match im.call(me, request).await? {
        Response::ConversationList { conversations, .. } => {
            Ok(conversations.into_iter().map(|c| (c.id, c)).collect())
        }
        other => Err(unexpected(&other).into()),
    }
}

/// One page of history of `conv` after `after` (oldest first).
async fn after(
    im: &ImSys,
    me: &Identity,
    conv: ConversationId,
    after: Seq,
    limit: u32,
) -> Result<(Vec<Message>, bool), ImError> {
    let request = Request::GetHistory {
        conversation: conv,
        before: Seq::ZERO,
        after,
        limit,
    };
    match im.call(me, request).await? {
        Response::History { messages, has_more } => Ok((messages, has_more)),
        other => Err(unexpected(&other).into()),
    }
}

/// The entry at `seq` of `conv`, if `me` can see it.
async fn entry(
    im: &ImSys,
    me: &Identity,
    conv: ConversationId,
    seq: Seq,
) -> Result<Option<Message>, ImError> {
    // Backwards from just after it (`after` zero with `before` zero would mean the head).
    let request = Request::GetHistory {
        conversation: conv,
        before: Seq(seq.get().saturating_add(1)),
        after: Seq::ZERO,
        limit: 1,
    };
    match im.call(me, request).await? {
        Response::History { messages, .. } => Ok(messages.into_iter().find(|m| m.seq == seq)),
        other => Err(unexpected(&other).into()),
    }
}

/// `status` of `m` as `me` knows it: for someone else's message, how far `me` got; for `me`'s
/// own, `read` once every other member read it (the conversation's read state lists read
/// cursors only: others' delivered positions are pushed as they move, not kept for queries).
async fn status(
    im: &ImSys,
    me: &Identity,
    info: &ConversationInfo,
    m: &Message,
) -> Result<&'static str, ImError> {
    if m.sender != me.user {
        return Ok(if info.read >= m.seq {
            "read"
        } else if info.delivered >= m.seq {
            "delivered"
        } else {
            "sent"
        });
    }
    let request = Request::GetReadState {
        conversation: info.id,
        after: 0,
        limit: 100,
    };
    let receipts = match im.call(me, request).await? {
        Response::ReadState { receipts, .. } => receipts,
        other => return Err(unexpected(&other).into()),
    };
    let others: Vec<UserId> = info
        .members
        .iter()
        .copied()
        .filter(|u| *u != me.user)
        .collect();
    let read = !others.is_empty()
        && others.iter().all(|u| {
            receipts
                .iter()
                .any(|r| r.user == *u && r.kind == CursorKind::Read && r.seq >= m.seq)
        });
    Ok(if read { "read" } else { "sent" })
}

/// `GET /api/v1/messages/{message_id}`: a message of a conversation the caller is in.
pub async fn message(
    State(im): State<ImSys>,
    Caller(me): Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ImError> {
    let id = path(id)?;
    let (conv, seq) = views::parse_message_id(&id)?;
    let missing = || ImError::not_found(format!("no such message: {id:?}"));
    let info = conversations(&im, &me)
        .await?
        .remove(&conv)
        .ok_or_else(missing)?;
    let m = entry(&im, &me, conv, seq)
        .await?
        .filter(views::shown)
        .ok_or_else(missing)?;
    let status = status(&im, &me, &info, &m).await?;
    Ok(Json(
        json!({ "message": views::message(&m, &Place::of(&info), status) }),
    ))
}

/// `POST /api/v1/messages/{message_id}/ack` with `{status: delivered|read}`.
pub async fn ack(
    State(im): State<ImSys>,
    Caller(me): Caller,
    id: Result<Path<String>, PathRejection>,
    b: Result<Json<AckBody>, JsonRejection>,
) -> Result<Json<Value>, ImError> {
    let id = path(id)?;
    let b = body(b)?;
    ack_message(&im, &me, &id, &b.status).await?;
    Ok(Json(json!({ "success": true })))
}

/// Moves `me`'s `status` cursor (`delivered` or `read`) of the message's conversation up to it.
pub async fn ack_message(im: &ImSys, me: &Identity, id: &str, status: &str) -> Result<(), ImError> {
    let kind = match status {
        "delivered" => CursorKind::Delivered,
        "read" => CursorKind::Read,
        other => {
            return Err(ImError::invalid(format!(
                "status {other:?} is not delivered or read"
            )))
        }
    };
    let (conv, seq) = views::parse_message_id(id)?;
    let request = Request::CursorAck {
        conversation: conv,
        kind,
        seq,
    };
    match im.call(me, request).await? {
        Response::Ok => Ok(()),
        other => Err(unexpected(&other).into()),
    }
}

/// `GET /api/v1/messages/offline?last_message_id=&limit=`.
pub async fn offline(
    State(im): State<ImSys>,
    Caller(me): Caller,
    q: Result<Query<OfflineQuery>, QueryRejection>,
) -> Result<Json<Value>, ImError> {
    let q = q.map(|Query(q)| q).map_err(ImError::from)?;
    Ok(Json(offline_messages(&im, &me, q).await?))
}

/// Offline sync: with `last_message_id`, the messages after it in its conversation; without,
/// the messages after the caller's delivered position in every conversation, oldest first.
/// `{messages, has_more}`.
pub async fn offline_messages(
    im: &ImSys,
    me: &Identity,
    q: OfflineQuery,
) -> Result<Value, ImError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ImError::invalid(format!("limit must be 1..={MAX_LIMIT}")));
    }
    let all = conversations(im, me).await?;
    let starts: Vec<(ConversationId, Seq)> = match q.last_message_id.filter(|s| !s.is_empty()) {
        Some(id) => {
            let (conv, seq) = views::parse_message_id(&id)?;
            if !all.contains_key(&conv) {
                return Err(ImError::not_found(format!("no such message: {id:?}")));
            }
            vec![(conv, seq)]
        }
        None => all
            .values()
            .filter(|c| c.delivered < c.head)
            .map(|c| {
                (
                    c.id,
                    c.delivered.max(Seq(c.visible_from.get().saturating_sub(1))),
                )
            })
            .collect(),
    };
    let mut out = Vec::new();
    let mut has_more = false;
    for (conv, from) in starts {
        let Some(info) = all.get(&conv) else { continue };
        let (page, more) = if from == Seq::ZERO {
            // From the very start: `after` zero would mean the head, so page backwards from
            // just past the first `limit` entries instead.
            let request = Request::GetHistory {
                conversation: conv,
                before: Seq(u64::from(limit) + 1),
                after: Seq::ZERO,
                limit,
            };
            match im.call(me, request).await? {
                Response::History { messages, .. } => {
                    (messages, info.head.get() > u64::from(limit))
                }
                other => return Err(unexpected(&other).into()),
            }
        } else {
            after(im, me, conv, from, limit).await?
        };
        has_more |= more;
        let place = Place::of(info);
        for m in page.iter().filter(|m| views::shown(m)) {
            let status = if m.sender == me.user {
                "sent"
            } else if info.read >= m.seq {
                "read"
            } else if info.delivered >= m.seq {
                "delivered"
            } else {
                "sent"
            };
            out.push((
                m.server_time_ms,
                conv,
                m.seq,
                views::message(m, &place, status),
            ));
        }
    }
    out.sort_by_key(|(at, conv, seq, _)| (*at, *conv, *seq));
    if out.len() > limit as usize {
        out.truncate(limit as usize);
        has_more = true;
    }
    let messages: Vec<Value> = out.into_iter().map(|(_, _, _, v)| v).collect();
    Ok(json!({ "messages": messages, "has_more": has_more }))
}

/// A user named by a user id or an account name (an exact account match of a search).
async fn user(im: &ImSys, me: &Identity, name: &str) -> Result<UserId, ImError> {
    if let Some(u) = views::user_id(name) {
        return Ok(u);
    }
    let request = Request::SearchUsers {
        query: name.trim().to_owned(),
        after: 0,
        limit: 20,
    };
    let found = match im.call(me, request).await {
        Ok(Response::Users { users, .. }) => users
            .into_iter()
            .find(|p| p.account == name.trim())
            .and_then(|p| p.user),
        Ok(other) => return Err(unexpected(&other).into()),
        Err(e) if e.status == StatusCode::BAD_REQUEST => None,
        Err(e) => return Err(e),
    };
    found.ok_or_else(|| ImError::not_found(format!("no such user: {name:?}")))
}

/// `POST /api/v1/groups`: a group owned by the caller with `members`. IM系统 groups are open
/// (its join route has no approval step), so the group is made public with free joining.
pub async fn create_group(
    State(im): State<ImSys>,
    Caller(me): Caller,
    b: Result<Json<GroupBody>, JsonRejection>,
) -> Result<Json<Value>, ImError> {
    let b = body(b)?;
    let name = GroupName::try_from(b.name.trim()).map_err(|e| ImError::invalid(e.message()))?;
    let mut members = Vec::with_capacity(b.members.len());
    for m in &b.members {
        let u = user(&im, &me, m).await?;
        if u != me.user && !members.contains(&u) {
            members.push(u);
        }
    }
    let info = match im.call(&me, Request::CreateGroup { name, members }).await? {
        Response::Conversation(c) => c,
        other => return Err(unexpected(&other).into()),
    };
    let change = GroupProfileChange {
        description: b.description.filter(|d| !d.is_empty()),
        public: Some(true),
        join_policy: Some(JoinPolicy::Free),
        ..GroupProfileChange::default()
    };
    let request = Request::UpdateGroup {
        conversation: info.id,
        change,
        request_key: None,
    };
    match im.call(&me, request).await? {
        Response::Ok | Response::Group(_) | Response::Conversation(_) => {}
        other => return Err(unexpected(&other).into()),
    }
    Ok(Json(
        json!({ "group": group_view(&im, &me, info.id).await? }),
    ))
}

/// `GET /api/v1/groups/{group_id}`.
pub async fn group(
    State(im): State<ImSys>,
    Caller(me): Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ImError> {
    let conv = views::parse_group_id(&path(id)?)?;
    Ok(Json(json!({ "group": group_view(&im, &me, conv).await? })))
}

/// The members of a group, as `me` may list them.
async fn member_list(
    im: &ImSys,
    me: &Identity,
    conv: ConversationId,
) -> Result<Vec<parley_protocol::frames::MemberInfo>, ImError> {
    let mut out = Vec::new();
    let mut cursor = 0;
    loop {
        let request = Request::ListMembers {
            conversation: conv,
            after: cursor,
            limit: 100,
        };
        match im.call(me, request).await? {
            Response::MemberList {
                members, has_more, ..
            } => {
                cursor = members.last().map_or(cursor, |m| m.user.get());
                let empty = members.is_empty();
                out.extend(members);
                if !has_more || empty || out.len() >= MAX_MEMBERS {
                    return Ok(out);
                }
            }
            other => return Err(unexpected(&other).into()),
        }
    }
}

/// When the entry at `seq` of `conv` was written, as ISO 8601, if `me` can see it.
async fn time_of(im: &ImSys, me: &Identity, conv: ConversationId, seq: Seq) -> Value {
    if seq == Seq::ZERO {
        return Value::Null;
    }
    match entry(im, me, conv, seq).await {
        Ok(Some(m)) => json!(views::iso(m.server_time_ms)),
        _ => Value::Null,
    }
}

/// IM系统's `Group`: `{id, name, description, owner_id, members (everyone but the owner, as
/// the document's example), created_at, updated_at}`; the times are those of the group's first
/// entry and its latest one (`null` where the caller cannot see it).
async fn group_view(im: &ImSys, me: &Identity, conv: ConversationId) -> Result<Value, ImError> {
    let info = match im
        .call(me, Request::GetGroup { conversation: conv })
        .await?
    {
        Response::Group(g) => g,
        other => return Err(unexpected(&other).into()),
    };
    let members = member_list(im, me, conv).await?;
    let owner = info.owner;
    let ids: Vec<String> = members
        .iter()
        .filter(|m| Some(m.user) != owner)
        .map(|m| m.user.to_string())
        .collect();
    let head = conversations(im, me)
        .await?
        .get(&conv)
        .map_or(Seq::ZERO, |c| c.head);
    Ok(json!({
        "id": conv.to_string(),
        "name": info.profile.name,
        "description": info.profile.description,
        "owner_id": owner.map(|o| o.to_string()),
        "members": ids,
        "created_at": time_of(im, me, conv, Seq(1)).await,
        "updated_at": time_of(im, me, conv, head).await,
    }))
}

/// `GET /api/v1/groups/{group_id}/members`: `{members: [{id, group_id, user_id, role, joined_at}]}`
/// (`id` is `member_<group>_<user>`; roles `owner`, `admin`, `member`).
pub async fn members(
    State(im): State<ImSys>,
    Caller(me): Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ImError> {
    let conv = views::parse_group_id(&path(id)?)?;
    let members = member_list(&im, &me, conv).await?;
    let mut out = Vec::with_capacity(members.len());
    for m in members {
        let role = match m.role {
            MemberRole::Owner => "owner",
            MemberRole::Manager => "admin",
            _ => "member",
        };
        out.push(json!({
            "id": format!("member_{conv}_{}", m.user),
            "group_id": conv.to_string(),
            "user_id": m.user.to_string(),
            "role": role,
            // The founding members joined with the group's first entry.
            "joined_at": time_of(&im, &me, conv, m.joined_seq.max(Seq(1))).await,
        }));
    }
    Ok(Json(json!({ "members": out })))
}

/// `POST /api/v1/groups/{group_id}/join`: `{success:true}`; a group whose managers approve
/// joins answers `202 {success:true, pending:true}`.
pub async fn join(
    State(im): State<ImSys>,
    Caller(me): Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<axum::response::Response, ImError> {
    let conv = views::parse_group_id(&path(id)?)?;
    Ok(if join_group(&im, &me, conv).await? {
        (
            StatusCode::ACCEPTED,
            Json(json!({ "success": true, "pending": true })),
        )
            .into_response()
    } else {
        Json(json!({ "success": true })).into_response()
    })
}

/// Joins `conv`; `true` if the join awaits approval.
pub async fn join_group(im: &ImSys, me: &Identity, conv: ConversationId) -> Result<bool, ImError> {
    let request = Request::JoinGroup {
        conversation: conv,
        message: String::new(),
        request_key: None,
    };
    match im.call(me, request).await? {
        Response::JoinResult { pending } => Ok(pending),
        Response::Ok => Ok(false),
        other => Err(unexpected(&other).into()),
    }
}

/// `POST /api/v1/groups/{group_id}/leave`.
pub async fn leave(
    State(im): State<ImSys>,
    Caller(me): Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ImError> {
    let conv = views::parse_group_id(&path(id)?)?;
    leave_group(&im, &me, conv).await?;
    Ok(Json(json!({ "success": true })))
}

/// Leaves `conv`.
pub async fn leave_group(im: &ImSys, me: &Identity, conv: ConversationId) -> Result<(), ImError> {
    let request = Request::ChangeMembers {
        conversation: conv,
        add: Vec::new(),
        remove: vec![me.user],
        request_key: None,
    };
    match im.call(me, request).await? {
        Response::Ok | Response::Conversation(_) => Ok(()),
        other => Err(unexpected(&other).into()),
    }
}
