//! The chats module, HTTP side: the chat list, history paged by cursor, sends (durable before
//! the answer, idempotent by `client_generated_id`), read position and recall. A chat's id is
//! its conversation id (a group's chat is the group); a message's id is `chat_id << 32 | seq`
//! ([`views::encode_message`]), so a message id alone names its chat: recall, read, replies and
//! cursors decode it, and one of another chat is a `400`.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::Json;
use parley_protocol::frames::{CursorKind, Message, PeerRef, Request, Response, SendRequest};
use parley_protocol::ids::{ClientMsgId, ConversationId, Seq};
use parley_protocol::session::Identity;
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};

use super::groups::membership;
use super::users::{body, path};
use super::views::{self, IdIn};
use super::{Caller, Wetty, WtError};
use crate::compat::unexpected;

/// Messages per page by default, and at most.
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 100;

/// Runs a request on chat `conv` (`403` for a visible group the caller is not in).
async fn in_chat(
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

/// `GET /chats`: `{chats, next_cursor: null}`, every chat of the caller, latest activity first.
pub async fn list(State(wt): State<Wetty>, Caller(me): Caller) -> Result<Json<Value>, WtError> {
    let request = Request::ListConversations {
        limit: 0,
        offset: 0,
    };
    let chats = match wt.call(&me, request).await? {
        Response::ConversationList { conversations, .. } => conversations,
        other => return Err(unexpected(&other).into()),
    };
    Ok(Json(json!({
        "chats": chats.iter().map(views::chat).collect::<Vec<_>>(),
        "next_cursor": Value::Null,
    })))
}

/// `{target_user_id}`.
#[derive(Debug, Deserialize)]
pub struct OpenBody {
    target_user_id: Option<IdIn>,
}

/// `POST /chats` (ours): `201` with the 1:1 chat with `target_user_id`, made on first use.
pub async fn open(
    State(wt): State<Wetty>,
    Caller(me): Caller,
    b: Result<Json<OpenBody>, JsonRejection>,
) -> Result<HttpResponse, WtError> {
    let user = views::user_in(body(b)?.target_user_id.as_ref(), "target_user_id")?;
    let chat = match wt
        .call(&me, Request::OpenDirect(PeerRef::User(user)))
        .await?
    {
        Response::Conversation(c) => c,
        other => return Err(unexpected(&other).into()),
    };
    Ok((StatusCode::CREATED, Json(views::chat(&chat))).into_response())
}

/// `?before=<message id>&after=<message id>&max=`.
#[derive(Debug, Default, Deserialize)]
pub struct Page {
    #[serde(default)]
    before: Option<String>,
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    max: Option<u32>,
}

/// A cursor of chat `conv` (`Seq::ZERO` for none): a message id of that chat.
fn cursor(conv: ConversationId, raw: Option<&str>, what: &str) -> Result<Seq, WtError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => views::seq_in(conv, views::message_id(s, what)?, what),
        None => Ok(Seq::ZERO),
    }
}

/// `GET /chats/{chat_id}/messages?before=&after=&max=`: `{messages, next_cursor}`, oldest
/// first. Without a cursor: the newest page. `before` pages back (`next_cursor` is then the
/// page's oldest id), `after` forwards (its newest id); `next_cursor` is `null` at the end. A
/// cursor must be a message id of this chat (`400` otherwise).
pub async fn history(
    State(wt): State<Wetty>,
    Caller(me): Caller,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<Page>, QueryRejection>,
) -> Result<Json<Value>, WtError> {
    let conv = views::chat_id(&path(id)?)?;
    let Query(q) = q?;
    let before = cursor(conv, q.before.as_deref(), "before")?;
    let after = cursor(conv, q.after.as_deref(), "after")?;
    if before != Seq::ZERO && after != Seq::ZERO {
        return Err(WtError::invalid("before and after cannot both be given"));
    }
    let limit = q.max.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let request = Request::GetHistory {
        conversation: conv,
        before,
        after,
        limit,
    };
    let (mut messages, has_more) = match in_chat(&wt, &me, conv, request).await? {
        Response::History { messages, has_more } => (messages, has_more),
        other => return Err(unexpected(&other).into()),
    };
    messages.sort_by_key(|m| m.seq);
    let edge = if after == Seq::ZERO {
        messages.first()
    } else {
        messages.last()
    };
    let next = match (has_more, edge) {
        (true, Some(m)) => views::message_id_json(conv, m.seq),
        _ => Value::Null,
    };
    let shown: Vec<Value> = messages
        .iter()
        .filter(|m| views::shown(m))
        .map(views::message)
        .collect();
    Ok(Json(json!({ "messages": shown, "next_cursor": next })))
}

/// A send's body.
#[derive(Debug, Deserialize)]
pub struct SendBody {
    message: Option<String>,
    #[serde(default)]
    message_type: Option<String>,
    #[serde(default)]
    client_generated_id: Option<String>,
    #[serde(default)]
    reply_to_id: Option<IdIn>,
    /// Checked (a message id of this chat) and not used further: the server derives a reply's
    /// thread from `reply_to_id` (and renders it as `reply_root_id`).
    #[serde(default)]
    reply_root_id: Option<IdIn>,
}

/// A fresh idempotency key, for sends without one.
fn fresh_key() -> String {
    let mut raw = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut raw);
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    format!("wetty-{hex}")
}

/// The entry at `seq` of `conv`, if the caller can see it.
async fn entry(
    wt: &Wetty,
    me: &Identity,
    conv: ConversationId,
    seq: Seq,
) -> Result<Option<Message>, WtError> {
    // Backwards from just after it (`after` zero with `before` zero would mean the head).
    let request = Request::GetHistory {
        conversation: conv,
        before: Seq(seq.get().saturating_add(1)),
        after: Seq::ZERO,
        limit: 1,
    };
    match wt.call(me, request).await? {
        Response::History { messages, .. } => Ok(messages.into_iter().find(|m| m.seq == seq)),
        other => Err(unexpected(&other).into()),
    }
}

/// `POST /chats/{chat_id}/messages`: `201` with the stored message, once durable. A
/// `client_generated_id` the caller used before is answered with the original message (same
/// id, same content), not sent twice.
pub async fn send(
    State(wt): State<Wetty>,
    Caller(me): Caller,
    id: Result<Path<String>, PathRejection>,
    b: Result<Json<SendBody>, JsonRejection>,
) -> Result<HttpResponse, WtError> {
    let conv = views::chat_id(&path(id)?)?;
    let b = body(b)?;
    let content_type = views::content_type(b.message_type.as_deref().unwrap_or("text"))?;
    let text = b
        .message
        .filter(|m| !m.is_empty())
        .ok_or_else(|| WtError::invalid("message is required"))?;
    let content = if views::carries_file(content_type) {
        json!({ "file_id": text }).to_string()
    } else {
        text
    };
    let key = b
        .client_generated_id
        .filter(|k| !k.is_empty())
        .unwrap_or_else(fresh_key);
    let client_msg_id = ClientMsgId::try_from(key).map_err(|e| WtError::invalid(e.message()))?;
    let reply_to = match &b.reply_to_id {
        Some(r) => views::seq_in(conv, views::message_in(r, "reply_to_id")?, "reply_to_id")?,
        None => Seq::ZERO,
    };
    if let Some(r) = &b.reply_root_id {
        views::seq_in(
            conv,
            views::message_in(r, "reply_root_id")?,
            "reply_root_id",
        )?;
    }
    let request = Request::Send(SendRequest {
        conversation: conv,
        content_type,
        content: bytes::Bytes::from(content.clone()),
        client_msg_id: client_msg_id.clone(),
        reply_to,
        mentions: Vec::new(),
        mention_all: false,
    });
    let ack = match in_chat(&wt, &me, conv, request).await? {
        Response::SendAck(ack) => ack,
        other => return Err(unexpected(&other).into()),
    };
    let stored = entry(&wt, &me, ack.conversation, ack.seq).await?;
    let message = match stored {
        Some(m) => views::message(&m),
        // Not readable back (it cannot be: the caller just wrote it): what was sent.
        None => views::message(&Message {
            id: ack.message_id,
            conversation: ack.conversation,
            seq: ack.seq,
            sender: me.user,
            sender_device: me.device.clone(),
            content_type,
            content: bytes::Bytes::from(content),
            client_msg_id,
            server_time_ms: ack.server_time_ms,
            reply_to,
            mentions: Vec::new(),
            event: None,
            amended: None,
            thread_root: Seq::ZERO,
            forwarded_from: None,
            mention_all: false,
        }),
    };
    Ok((StatusCode::CREATED, Json(message)).into_response())
}

/// `{message_id}`.
#[derive(Debug, Deserialize)]
pub struct ReadBody {
    message_id: IdIn,
}

/// `POST /chats/{chat_id}/read` (ours) with `{message_id}`: `204`; the caller has read up to
/// it (the others of the chat are told). The id must be a message id of this chat.
pub async fn read(
    State(wt): State<Wetty>,
    Caller(me): Caller,
    id: Result<Path<String>, PathRejection>,
    b: Result<Json<ReadBody>, JsonRejection>,
) -> Result<StatusCode, WtError> {
    let conv = views::chat_id(&path(id)?)?;
    let id = views::message_in(&body(b)?.message_id, "message_id")?;
    let seq = views::seq_in(conv, id, "message_id")?;
    let request = Request::CursorAck {
        conversation: conv,
        kind: CursorKind::Read,
        seq,
    };
    in_chat(&wt, &me, conv, request).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `{msg_id, chat_id}`.
#[derive(Debug, Deserialize)]
pub struct RecallBody {
    msg_id: Option<IdIn>,
    chat_id: Option<IdIn>,
}

/// `POST /chats/message/recall` with `{msg_id}` (the document's) or `{msg_id, chat_id}`: `204`.
/// The message id names its chat; a `chat_id` given must be that chat (`400` otherwise). The
/// sender may recall within the server's recall window, the group's owner and managers any
/// message.
pub async fn recall(
    State(wt): State<Wetty>,
    Caller(me): Caller,
    b: Result<Json<RecallBody>, JsonRejection>,
) -> Result<StatusCode, WtError> {
    let b = body(b)?;
    let id = b
        .msg_id
        .as_ref()
        .ok_or_else(|| WtError::invalid("msg_id is required (a message id)"))?;
    let (conv, seq) = views::message_in(id, "msg_id")?;
    if let Some(chat) = &b.chat_id {
        let chat = chat
            .value()
            .ok_or_else(|| WtError::invalid("chat_id must be a chat id"))?;
        let chat = ConversationId::try_from(chat).map_err(|e| WtError::invalid(e.message()))?;
        views::seq_in(chat, (conv, seq), "msg_id")?;
    }
    let request = Request::RecallMessage {
        conversation: conv,
        seq,
        request_key: None,
    };
    in_chat(&wt, &me, conv, request).await?;
    Ok(StatusCode::NO_CONTENT)
}
