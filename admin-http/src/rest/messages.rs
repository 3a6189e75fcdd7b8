//! Messages: send (answered once durable, like the binary ack), history paged both ways, edit,
//! recall, reactions, forward, delete for me, and full-text search.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use parley_protocol::frames::{Request, Response, SendAck, SendRequest};
use parley_protocol::ids::{ClientMsgId, Seq, UserId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::conversations::conversation;
use super::error::ApiError;
use super::extract::{Body, Caller, Id, IdempotencyKey, Path, Query};
use super::views::{content_in, ContentTypeV, MessagePage};
use super::{answer, Rest};

/// A message to send.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    /// The sender's idempotency key (1–64 bytes; a UUID): a retry with the same key gets the
    /// first answer (`duplicate: true`) and stores nothing new.
    pub client_msg_id: String,
    /// Absent: `text`.
    pub content_type: Option<ContentTypeV>,
    /// UTF-8 content (text, or the JSON object of a media type). Exactly one of `content` and
    /// `content_base64`.
    pub content: Option<String>,
    /// Binary content, base64-encoded.
    pub content_base64: Option<String>,
    /// The message replied to.
    pub reply_to_seq: Option<u64>,
    /// Members mentioned.
    #[serde(default)]
    pub mention_ids: Vec<Id>,
    /// "@all" (owner and managers of a group).
    #[serde(default)]
    pub mention_all: bool,
}

/// A durable send: the message is on disk.
#[derive(Debug, Serialize, ToSchema)]
pub struct SendAckView {
    pub message_id: Id,
    pub conversation_id: Id,
    pub seq: u64,
    pub server_time_ms: u64,
    /// A retry of an earlier send with the same `client_msg_id`: nothing new was stored.
    pub duplicate: bool,
}

fn acked(ack: SendAck) -> (StatusCode, Json<SendAckView>) {
    let status = match ack.duplicate {
        true => StatusCode::OK,
        false => StatusCode::CREATED,
    };
    let view = SendAckView {
        message_id: ack.message_id.into(),
        conversation_id: ack.conversation.into(),
        seq: ack.seq.get(),
        server_time_ms: ack.server_time_ms,
        duplicate: ack.duplicate,
    };
    (status, Json(view))
}

/// Which page of history.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Older than this seq, newest first (with `after` absent too: from the head).
    pub before: Option<u64>,
    /// Newer than this seq, oldest first (not with `before`).
    pub after: Option<u64>,
    /// Page size (absent: the server's default).
    pub limit: Option<u32>,
}

/// New content for a message.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditBody {
    /// Exactly one of `content` and `content_base64`.
    pub content: Option<String>,
    pub content_base64: Option<String>,
}

/// Where to forward a message.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardBody {
    /// The target conversation.
    pub to_conversation_id: Id,
    /// The idempotency key of the new message.
    pub client_msg_id: String,
}

/// Messages to hide from the caller's own history.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteForMeBody {
    /// 1–100 seqs.
    pub seqs: Vec<u64>,
}

/// A message search.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Words to find (1–256 bytes).
    pub q: String,
    /// Only in this conversation.
    #[param(value_type = Option<String>)]
    pub conversation_id: Option<Id>,
    /// Older than this message id (the last of the previous page).
    #[param(value_type = Option<String>)]
    pub before: Option<Id>,
    /// Page size (absent: the server's default).
    pub limit: Option<u32>,
}

fn key(s: String) -> Result<ClientMsgId, ApiError> {
    ClientMsgId::try_from(s).map_err(|e| ApiError::invalid(e.message()))
}

fn seq(s: u64) -> Seq {
    // 0 is refused by the field rules ("seq must be non-zero").
    Seq(s)
}

async fn done(rest: &Rest, me: Caller, request: Request) -> Result<StatusCode, ApiError> {
    rest.call(Some(me.0), request).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends a message. The answer comes once the message is durable (fsync'd), with its seq;
/// `201` for a new message, `200` for a retry of one already stored.
#[utoipa::path(post, path = "/conversations/{conversation_id}/messages", tag = "messages",
    params(("conversation_id" = String, Path, description = "The conversation")),
    request_body = SendBody,
    responses((status = 201, body = SendAckView, description = "Stored"),
        (status = 200, body = SendAckView, description = "A retry: stored before")))]
pub async fn send(
    State(rest): State<Rest>,
    Caller(me): Caller,
    Path(id): Path<u64>,
    Body(b): Body<SendBody>,
) -> Result<(StatusCode, Json<SendAckView>), ApiError> {
    let request = Request::Send(SendRequest {
        conversation: conversation(id)?,
        content_type: b.content_type.unwrap_or(ContentTypeV::Text).into(),
        content: content_in(b.content, b.content_base64)?,
        client_msg_id: key(b.client_msg_id)?,
        reply_to: Seq(b.reply_to_seq.unwrap_or(0)),
        mentions: b
            .mention_ids
            .into_iter()
            .map(|id| id.to::<UserId>("mention id"))
            .collect::<Result<_, _>>()?,
        mention_all: b.mention_all,
    });
    let response = rest.call(Some(me), request).await?;
    answer!(response, Response::SendAck(ack) => acked(ack))
}

/// A page of history as it reads now (edits applied, recalled messages without content): older
/// than `before`, newest first, or newer than `after`, oldest first; from the head without
/// either. A page covers `limit` seqs and leaves out the amendment events among them, so it may
/// hold fewer messages, even none, while `has_more` is true: continue from the lowest (or
/// highest) seq returned, or past the page's range after an empty page.
#[utoipa::path(get, path = "/conversations/{conversation_id}/messages", tag = "messages",
    params(("conversation_id" = String, Path, description = "The conversation"), HistoryQuery),
    responses((status = 200, body = MessagePage)))]
pub async fn history(
    State(rest): State<Rest>,
    Caller(me): Caller,
    Path(id): Path<u64>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<MessagePage>, ApiError> {
    let request = Request::GetHistory {
        conversation: conversation(id)?,
        before: Seq(q.before.unwrap_or(0)),
        after: Seq(q.after.unwrap_or(0)),
        limit: q.limit.unwrap_or(0),
    };
    let response = rest.call(Some(me), request).await?;
    answer!(response, Response::History { messages, has_more } => Json(MessagePage {
        messages: messages.into_iter().map(Into::into).collect(),
        has_more,
    }))
}

/// Edits a message the caller sent.
#[utoipa::path(patch, path = "/conversations/{conversation_id}/messages/{seq}", tag = "messages",
    params(("conversation_id" = String, Path, description = "The conversation"),
        ("seq" = u64, Path, description = "The message")),
    request_body = EditBody, responses((status = 204)))]
pub async fn edit(
    State(rest): State<Rest>,
    me: Caller,
    Path((id, s)): Path<(u64, u64)>,
    IdempotencyKey(key): IdempotencyKey,
    Body(b): Body<EditBody>,
) -> Result<StatusCode, ApiError> {
    let request = Request::EditMessage {
        conversation: conversation(id)?,
        seq: seq(s),
        content: content_in(b.content, b.content_base64)?,
        request_key: key,
    };
    done(&rest, me, request).await
}

/// Recalls a message (its sender within the recall window, or a group's managers).
#[utoipa::path(post, path = "/conversations/{conversation_id}/messages/{seq}/recall",
    tag = "messages",
    params(("conversation_id" = String, Path, description = "The conversation"),
        ("seq" = u64, Path, description = "The message")),
    responses((status = 204)))]
pub async fn recall(
    State(rest): State<Rest>,
    me: Caller,
    Path((id, s)): Path<(u64, u64)>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<StatusCode, ApiError> {
    let request = Request::RecallMessage {
        conversation: conversation(id)?,
        seq: seq(s),
        request_key: key,
    };
    done(&rest, me, request).await
}

async fn reaction(
    rest: &Rest,
    me: Caller,
    (id, s, emoji): (u64, u64, String),
    remove: bool,
    key: IdempotencyKey,
) -> Result<StatusCode, ApiError> {
    let request = Request::React {
        conversation: conversation(id)?,
        seq: seq(s),
        emoji,
        remove,
        request_key: key.0,
    };
    done(rest, me, request).await
}

/// Adds the caller's reaction to a message.
#[utoipa::path(put,
    path = "/conversations/{conversation_id}/messages/{seq}/reactions/{emoji}", tag = "messages",
    params(("conversation_id" = String, Path, description = "The conversation"),
        ("seq" = u64, Path, description = "The message"),
        ("emoji" = String, Path, description = "The reaction, URL-encoded (1–32 bytes)")),
    responses((status = 204)))]
pub async fn react(
    State(rest): State<Rest>,
    me: Caller,
    Path(p): Path<(u64, u64, String)>,
    key: IdempotencyKey,
) -> Result<StatusCode, ApiError> {
    reaction(&rest, me, p, false, key).await
}

/// Removes the caller's reaction.
#[utoipa::path(delete,
    path = "/conversations/{conversation_id}/messages/{seq}/reactions/{emoji}", tag = "messages",
    params(("conversation_id" = String, Path, description = "The conversation"),
        ("seq" = u64, Path, description = "The message"),
        ("emoji" = String, Path, description = "The reaction, URL-encoded")),
    responses((status = 204)))]
pub async fn unreact(
    State(rest): State<Rest>,
    me: Caller,
    Path(p): Path<(u64, u64, String)>,
    key: IdempotencyKey,
) -> Result<StatusCode, ApiError> {
    reaction(&rest, me, p, true, key).await
}

/// Forwards a message to another conversation; answered like a send.
#[utoipa::path(post, path = "/conversations/{conversation_id}/messages/{seq}/forward",
    tag = "messages",
    params(("conversation_id" = String, Path, description = "The source conversation"),
        ("seq" = u64, Path, description = "The message")),
    request_body = ForwardBody,
    responses((status = 201, body = SendAckView), (status = 200, body = SendAckView)))]
pub async fn forward(
    State(rest): State<Rest>,
    Caller(me): Caller,
    Path((id, s)): Path<(u64, u64)>,
    Body(b): Body<ForwardBody>,
) -> Result<(StatusCode, Json<SendAckView>), ApiError> {
    let request = Request::ForwardMessage {
        from: conversation(id)?,
        seq: seq(s),
        to: b.to_conversation_id.to("to_conversation_id")?,
        client_msg_id: key(b.client_msg_id)?,
    };
    let response = rest.call(Some(me), request).await?;
    answer!(response, Response::SendAck(ack) => acked(ack))
}

/// Hides messages from the caller's own history, search and sync (every device of theirs).
#[utoipa::path(post, path = "/conversations/{conversation_id}/messages/delete-for-me",
    tag = "messages",
    params(("conversation_id" = String, Path, description = "The conversation")),
    request_body = DeleteForMeBody, responses((status = 204)))]
pub async fn delete_for_me(
    State(rest): State<Rest>,
    me: Caller,
    Path(id): Path<u64>,
    Body(b): Body<DeleteForMeBody>,
) -> Result<StatusCode, ApiError> {
    let request = Request::DeleteForMe {
        conversation: conversation(id)?,
        seqs: b.seqs.into_iter().map(seq).collect(),
    };
    done(&rest, me, request).await
}

/// Full-text search over the caller's conversations (or one), newest first.
#[utoipa::path(get, path = "/search/messages", tag = "search", params(SearchQuery),
    responses((status = 200, body = MessagePage)))]
pub async fn search(
    State(rest): State<Rest>,
    Caller(me): Caller,
    Query(q): Query<SearchQuery>,
) -> Result<Json<MessagePage>, ApiError> {
    let request = Request::SearchMessages {
        query: q.q,
        conversation: q
            .conversation_id
            .map(|c| c.to("conversation_id"))
            .transpose()?,
        before: q.before.map_or(0, |b| b.0),
        limit: q.limit.unwrap_or(0),
    };
    let response = rest.call(Some(me), request).await?;
    answer!(response, Response::SearchResult { messages, has_more } => Json(MessagePage {
        messages: messages.into_iter().map(Into::into).collect(),
        has_more,
    }))
}
