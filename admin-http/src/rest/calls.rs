//! Calls (signalling only): invite, the other signals (ringing, accept, reject, cancel, end,
//! ICE), and the caller's call records. Signals reach the participants' connected sessions as
//! pushes (binary, WebSocket); a REST client acts on a call but gets no pushes itself.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use parley_protocol::frames::{CallAction, CallSignal, Request, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::extract::{Body, Caller, Id, Path, Query};
use super::views::{CallMediaV, CallView};
use super::{answer, Rest};

/// A call to start.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteBody {
    /// Where: everyone else in it is called.
    pub conversation_id: Id,
    pub media: CallMediaV,
    /// The SDP offer (at most 16 KiB).
    #[serde(default)]
    pub payload: String,
}

/// A signal on a call.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalBody {
    pub action: SignalAction,
    /// The SDP answer (`accept`) or ICE candidate (`ice`), at most 16 KiB.
    #[serde(default)]
    pub payload: String,
}

/// What a signal does (`invite` is `POST /calls`).
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)] // docs/protocol.md section 23
pub enum SignalAction {
    Ringing,
    Accept,
    Reject,
    Cancel,
    End,
    Ice,
}

impl From<SignalAction> for CallAction {
    fn from(a: SignalAction) -> CallAction {
        match a {
            SignalAction::Ringing => CallAction::Ringing,
            SignalAction::Accept => CallAction::Accept,
            SignalAction::Reject => CallAction::Reject,
            SignalAction::Cancel => CallAction::Cancel,
            SignalAction::End => CallAction::End,
            SignalAction::Ice => CallAction::Ice,
        }
    }
}

/// The call a signal was about.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallAnswer {
    pub call_id: Id,
}

/// The caller's calls, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallPage {
    pub calls: Vec<CallView>,
    /// More follow: ask again with `before` = the last call's id.
    pub has_more: bool,
}

/// Which calls.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallsQuery {
    /// Older than this call id.
    #[param(value_type = Option<String>)]
    pub before: Option<Id>,
    /// Page size (absent: the server's default).
    pub limit: Option<u32>,
}

async fn signalled(rest: &Rest, me: Caller, signal: CallSignal) -> Result<CallAnswer, ApiError> {
    let response = rest.call(Some(me.0), Request::CallSignal(signal)).await?;
    answer!(response, Response::CallAnswer { call } => CallAnswer { call_id: Id(call) })
}

/// Starts a call in a conversation: the other members' devices ring.
#[utoipa::path(post, path = "/calls", tag = "calls", request_body = InviteBody,
    responses((status = 201, body = CallAnswer)))]
pub async fn invite(
    State(rest): State<Rest>,
    me: Caller,
    Body(b): Body<InviteBody>,
) -> Result<(StatusCode, Json<CallAnswer>), ApiError> {
    let signal = CallSignal {
        call: 0,
        action: CallAction::Invite,
        conversation: Some(b.conversation_id.to("conversation_id")?),
        media: b.media.into(),
        payload: b.payload,
    };
    Ok((
        StatusCode::CREATED,
        Json(signalled(&rest, me, signal).await?),
    ))
}

/// Sends a signal on a call; one that ends it is answered once its record is durable.
#[utoipa::path(post, path = "/calls/{call_id}/signal", tag = "calls",
    params(("call_id" = String, Path, description = "The call")), request_body = SignalBody,
    responses((status = 200, body = CallAnswer)))]
pub async fn signal(
    State(rest): State<Rest>,
    me: Caller,
    Path(call): Path<u64>,
    Body(b): Body<SignalBody>,
) -> Result<Json<CallAnswer>, ApiError> {
    if call == 0 {
        return Err(ApiError::invalid("call id must be non-zero"));
    }
    let signal = CallSignal {
        call,
        action: b.action.into(),
        conversation: None,
        media: parley_protocol::frames::CallMedia::Unspecified,
        payload: b.payload,
    };
    Ok(Json(signalled(&rest, me, signal).await?))
}

/// The calls the caller took part in.
#[utoipa::path(get, path = "/calls", tag = "calls", params(CallsQuery),
    responses((status = 200, body = CallPage)))]
pub async fn list(
    State(rest): State<Rest>,
    Caller(me): Caller,
    Query(q): Query<CallsQuery>,
) -> Result<Json<CallPage>, ApiError> {
    let request = Request::ListCalls {
        before: q.before.map_or(0, |b| b.0),
        limit: q.limit.unwrap_or(0),
    };
    let response = rest.call(Some(me), request).await?;
    answer!(response, Response::Calls { calls, has_more } => Json(CallPage {
        calls: calls
            .into_iter()
            .map(|(conversation, record)| CallView::new(Some(conversation), record))
            .collect(),
        has_more,
    }))
}
