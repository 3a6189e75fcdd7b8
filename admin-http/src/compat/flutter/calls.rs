//! `/v1/calls...`: audio and video calls over the core's call signalling (docs/protocol.md
//! section 23). The SDP offer rides on the `INVITE`, the SDP answer on the `ACCEPT`; ICE
//! candidates go over the WebSocket (`ice_candidate`, both ways), and the callee learns of the
//! call there too (see [`super::ws`]). A call with a user is a call in the 1:1 conversation with
//! them; `target_id` may also name a group (`g<id>`), whose other members are all invited.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Json, Path, State};
use axum::http::StatusCode;
use parley_protocol::frames::{CallAction, CallMedia, CallSignal, PeerRef, Request, Response};
use parley_protocol::ids::ConversationId;
use parley_protocol::session::Identity;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::body;
use super::{views, Caller, FlError, Flutter};
use crate::compat::unexpected;

/// A new call.
#[derive(Debug, Deserialize)]
pub struct StartBody {
    target_id: String,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    offer_sdp: String,
}

/// An answer.
#[derive(Debug, Default, Deserialize)]
pub struct AcceptBody {
    #[serde(default)]
    answer_sdp: String,
}

/// `audio` or `video`.
pub fn media_name(m: CallMedia) -> &'static str {
    match m {
        CallMedia::Video => "video",
        _ => "audio",
    }
}

/// Sends one call signal; answers the call's id.
async fn signal(fl: &Flutter, me: &Identity, s: CallSignal) -> Result<u64, FlError> {
    match fl.call(me, Request::CallSignal(s)).await? {
        Response::CallAnswer { call } => Ok(call),
        other => Err(unexpected(&other).into()),
    }
}

/// `POST /v1/calls {target_id, type, offer_sdp}`: `201 {call_id, target_id, type, status:
/// "ringing", created_at}`; the callee's WebSocket gets `incoming_call` with the offer. A call
/// already in progress in that conversation is `409`.
pub async fn start(
    State(fl): State<Flutter>,
    Caller(me): Caller,
    b: Result<Json<StartBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), FlError> {
    let b = body(b)?;
    let media = match b.kind.as_deref().unwrap_or("audio") {
        "audio" => CallMedia::Audio,
        "video" => CallMedia::Video,
        other => {
            return Err(FlError::invalid(format!(
                "type {other:?} is not audio or video"
            )))
        }
    };
    let target = b.target_id.trim();
    let conv: ConversationId = if target.starts_with('g') {
        views::parse_conversation(target)?
    } else {
        let peer = views::parse_user(target)?;
        match fl
            .call(&me, Request::OpenDirect(PeerRef::User(peer)))
            .await?
        {
            Response::Conversation(c) => c.id,
            other => return Err(unexpected(&other).into()),
        }
    };
    let call = signal(
        &fl,
        &me,
        CallSignal {
            call: 0,
            action: CallAction::Invite,
            conversation: Some(conv),
            media,
            payload: b.offer_sdp,
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "call_id": views::call_id(call),
            "target_id": target,
            "type": media_name(media),
            "status": "ringing",
            "created_at": views::iso(views::now_ms()),
        })),
    ))
}

/// `POST /v1/calls/{call_id}/accept {answer_sdp}`: `{call_id, status: "connected",
/// updated_at}`; the caller's WebSocket gets `call_accepted` with the answer. Not a call of
/// the caller's (or over): `404`; not an invitee, or accepted already: `409`.
pub async fn accept(
    State(fl): State<Flutter>,
    Caller(me): Caller,
    id: Result<Path<String>, PathRejection>,
    b: Result<Json<AcceptBody>, JsonRejection>,
) -> Result<Json<Value>, FlError> {
    let Path(id) = id?;
    let call = views::parse_call(&id)?;
    let b = body(b)?;
    signal(
        &fl,
        &me,
        CallSignal {
            call,
            action: CallAction::Accept,
            conversation: None,
            media: CallMedia::Unspecified,
            payload: b.answer_sdp,
        },
    )
    .await?;
    Ok(Json(json!({
        "call_id": views::call_id(call),
        "status": "connected",
        "updated_at": views::iso(views::now_ms()),
    })))
}

/// `POST /v1/calls/{call_id}/end`: `{call_id, status: "ended", duration, updated_at}`, once
/// the call's record is durable; `duration` is in seconds from the first accept (0 if nobody
/// accepted). Whoever ends it: an accepted call ends for everyone; the caller before an accept
/// cancels it; an invitee before accepting declines it. The other participants' WebSockets get
/// `call_ended`.
pub async fn end(
    State(fl): State<Flutter>,
    Caller(me): Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, FlError> {
    let Path(id) = id?;
    let call = views::parse_call(&id)?;
    // The core names who may do what in which state; the document has one "end" for all of
    // them, so the three endings are tried in turn (a wrong one is `CONFLICT`, nothing else).
    let mut last = None;
    for action in [CallAction::End, CallAction::Cancel, CallAction::Reject] {
        let s = CallSignal {
            call,
            action,
            conversation: None,
            media: CallMedia::Unspecified,
            payload: String::new(),
        };
        match signal(&fl, &me, s).await {
            Ok(_) => {
                last = None;
                break;
            }
            Err(e) if e.status == StatusCode::CONFLICT => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    if let Some(e) = last {
        return Err(e);
    }
    // The record is durable once the ending signal is answered (a reject leaves the call in
    // progress while other invitees may still answer: no record yet, duration 0).
    let request = Request::ListCalls {
        before: call.saturating_add(1),
        limit: 1,
    };
    let duration_ms = match fl.call(&me, request).await? {
        Response::Calls { calls, .. } => calls
            .iter()
            .find(|(_, r)| r.call == call)
            .map_or(0, |(_, r)| r.duration_ms),
        other => return Err(unexpected(&other).into()),
    };
    Ok(Json(json!({
        "call_id": views::call_id(call),
        "status": "ended",
        "duration": duration_ms / 1000,
        "updated_at": views::iso(views::now_ms()),
    })))
}
