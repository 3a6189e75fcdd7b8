//! Conversations: the caller's list (unread counts, pinned, muted), opening a 1:1 conversation,
//! preferences, cursors (read and delivered), who read up to where, typing.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use parley_protocol::frames::{ConversationPrefs, PeerRef, Receipt, Request, Response};
use parley_protocol::ids::{Account, ConversationId, Seq};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::extract::{Body, Caller, Id, Path, Query};
use super::views::{ConversationView, CursorKindV};
use super::{answer, Rest};

/// A page of the caller's conversations: pinned first, then by latest activity.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationList {
    pub conversations: Vec<ConversationView>,
    /// Unread entries over all the caller's conversations (muted ones included).
    pub total_unread: u64,
    /// Conversations in all.
    pub total: u32,
}

/// Which page.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size (absent or 0: all).
    pub limit: Option<u32>,
    /// Conversations to skip.
    pub offset: Option<u32>,
}

/// The other side of a 1:1 conversation: exactly one of `user_id` and `account`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DirectBody {
    pub user_id: Option<Id>,
    pub account: Option<String>,
}

/// The caller's preferences for a conversation (absent fields stay as they are).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrefsBody {
    pub pinned: Option<bool>,
    /// No offline notifications (unless mentioned).
    pub muted: Option<bool>,
    /// Out of the list until its next entry.
    pub hidden: Option<bool>,
}

/// A cursor position.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CursorBody {
    /// Up to and including this seq (cursors never move back; clamped to the head).
    pub seq: u64,
}

/// Where a member's cursor is.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiptView {
    pub user_id: Id,
    pub kind: CursorKindV,
    pub seq: u64,
}

impl From<Receipt> for ReceiptView {
    fn from(r: Receipt) -> ReceiptView {
        ReceiptView {
            user_id: r.user.into(),
            kind: r.kind.into(),
            seq: r.seq.get(),
        }
    }
}

/// Who read up to where, in user-id order.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadStatePage {
    pub receipts: Vec<ReceiptView>,
    /// More follow: ask again with `after` = the last user's id.
    pub has_more: bool,
}

/// Which members.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadStateQuery {
    /// After this user id.
    #[param(value_type = Option<String>)]
    pub after: Option<Id>,
    /// Page size (absent: the server's default).
    pub limit: Option<u32>,
}

/// The conversation id of a path.
pub fn conversation(id: u64) -> Result<ConversationId, ApiError> {
    Id(id).to("conversation id")
}

/// The caller's conversations with unread counts, preferences and last messages.
#[utoipa::path(get, path = "/conversations", tag = "conversations", params(ListQuery),
    responses((status = 200, body = ConversationList)))]
pub async fn list(
    State(rest): State<Rest>,
    Caller(me): Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<ConversationList>, ApiError> {
    let request = Request::ListConversations {
        limit: q.limit.unwrap_or(0),
        offset: q.offset.unwrap_or(0),
    };
    let response = rest.call(Some(me), request).await?;
    answer!(response, Response::ConversationList { conversations, total_unread, total } => {
        Json(ConversationList {
            conversations: conversations.into_iter().map(ConversationView::from).collect(),
            total_unread,
            total,
        })
    })
}

/// The 1:1 conversation with a user, made on first use (`BLOCKED`, `NOT_FRIENDS`).
#[utoipa::path(post, path = "/conversations/direct", tag = "conversations",
    request_body = DirectBody, responses((status = 200, body = ConversationView)))]
pub async fn open_direct(
    State(rest): State<Rest>,
    Caller(me): Caller,
    Body(b): Body<DirectBody>,
) -> Result<Json<ConversationView>, ApiError> {
    let peer = match (b.user_id, b.account) {
        (Some(id), None) => PeerRef::User(id.to("user_id")?),
        (None, Some(a)) => {
            PeerRef::Account(Account::try_from(a).map_err(|e| ApiError::invalid(e.message()))?)
        }
        _ => return Err(ApiError::invalid("give exactly one of user_id and account")),
    };
    let response = rest.call(Some(me), Request::OpenDirect(peer)).await?;
    answer!(response, Response::Conversation(c) => Json(ConversationView::from(c)))
}

/// Pins, mutes or hides a conversation for the caller (every device of theirs follows).
#[utoipa::path(patch, path = "/conversations/{conversation_id}/prefs", tag = "conversations",
    params(("conversation_id" = String, Path, description = "The conversation")),
    request_body = PrefsBody, responses((status = 204)))]
pub async fn set_prefs(
    State(rest): State<Rest>,
    Caller(me): Caller,
    Path(id): Path<u64>,
    Body(b): Body<PrefsBody>,
) -> Result<StatusCode, ApiError> {
    let request = Request::SetConversationPrefs {
        conversation: conversation(id)?,
        prefs: ConversationPrefs {
            pinned: b.pinned,
            muted: b.muted,
            hidden: b.hidden,
        },
    };
    rest.call(Some(me), request).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Moves the caller's `read` or `delivered` cursor; the other members get a receipt.
#[utoipa::path(put, path = "/conversations/{conversation_id}/cursors/{kind}",
    tag = "conversations",
    params(("conversation_id" = String, Path, description = "The conversation"),
        ("kind" = CursorKindV, Path, description = "`read` or `delivered`")),
    request_body = CursorBody, responses((status = 204)))]
pub async fn move_cursor(
    State(rest): State<Rest>,
    Caller(me): Caller,
    Path((id, kind)): Path<(u64, CursorKindV)>,
    Body(b): Body<CursorBody>,
) -> Result<StatusCode, ApiError> {
    let request = Request::CursorAck {
        conversation: conversation(id)?,
        kind: kind.into(),
        seq: Seq(b.seq),
    };
    rest.call(Some(me), request).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How far each member has read.
#[utoipa::path(get, path = "/conversations/{conversation_id}/read-state", tag = "conversations",
    params(("conversation_id" = String, Path, description = "The conversation"), ReadStateQuery),
    responses((status = 200, body = ReadStatePage)))]
pub async fn read_state(
    State(rest): State<Rest>,
    Caller(me): Caller,
    Path(id): Path<u64>,
    Query(q): Query<ReadStateQuery>,
) -> Result<Json<ReadStatePage>, ApiError> {
    let request = Request::GetReadState {
        conversation: conversation(id)?,
        after: q.after.map_or(0, |a| a.0),
        limit: q.limit.unwrap_or(0),
    };
    let response = rest.call(Some(me), request).await?;
    answer!(response, Response::ReadState { receipts, has_more } => Json(ReadStatePage {
        receipts: receipts.into_iter().map(ReceiptView::from).collect(),
        has_more,
    }))
}

/// Tells the other members the caller is typing (not stored).
#[utoipa::path(post, path = "/conversations/{conversation_id}/typing", tag = "conversations",
    params(("conversation_id" = String, Path, description = "The conversation")),
    responses((status = 204)))]
pub async fn typing(
    State(rest): State<Rest>,
    Caller(me): Caller,
    Path(id): Path<u64>,
) -> Result<StatusCode, ApiError> {
    let request = Request::Typing {
        conversation: conversation(id)?,
    };
    rest.call(Some(me), request).await?;
    Ok(StatusCode::NO_CONTENT)
}
