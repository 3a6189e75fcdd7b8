//! AnyChat's RTC routes (`/api/v1/rtc/...`): 1:1 calls over the core's call signalling, and
//! meetings.
//!
//! AnyChat handed out LiveKit room tokens; we have no media server. A call answers a room name
//! (`call-<callId>`) and a token of our own (signed, naming the call and the user, valid
//! [`TOKEN_TTL_SECS`]) so clients that expect them find them, and its state is the core's:
//! - `POST /rtc/calls {calleeId, callType}` opens the 1:1 conversation with the callee and sends
//!   an invite (the callee's devices ring): `status: "ringing"`;
//! - `POST /rtc/calls/{id}/join` accepts (`"accepted"`), `.../reject` rejects;
//! - `POST /rtc/calls/{id}/end` hangs up whatever the state: ends an accepted call, cancels a
//!   ringing one (the caller), or rejects it (the callee);
//! - `GET /rtc/calls` lists the caller's ended calls (newest first) with their outcome
//!   (`ended`, `rejected`, `cancelled`, `missed`) and `duration` in seconds, from the record the
//!   core commits to the conversation's log when a call ends; `GET /rtc/calls/{id}` shows one,
//!   ended or in progress (`ringing`, `accepted`; the core's `GetCall`).
//!
//! Call ids are the core's call ids in decimal strings, as the WebSocket's `livekit.*`
//! notifications show them.
//!
//! Meetings are the core's (`CreateMeeting`, `JoinMeeting`, `EndMeeting`, `GetMeeting`,
//! `ListMeetings`; docs/protocol.md section 25) and answer the same way: a room name
//! (`meeting-<roomId>`) and a token of ours (`meeting`-signed, naming the room and the user,
//! valid [`TOKEN_TTL_SECS`]):
//! - `POST /rtc/meetings {title, password?, maxParticipants?}` opens one, the caller its creator
//!   and first participant, and answers it with the creator's token;
//! - `POST /rtc/meetings/{roomId}/join {password?}` joins an open one with its password, if it
//!   has one (a wrong one: `code: 403`; an ended or full one: `409`), answering the token;
//! - `POST /rtc/meetings/{roomId}/end`: the creator only (`403` for anyone else);
//! - `GET /rtc/meetings/{roomId}`: any meeting whose id the caller has, open or ended (its
//!   participants are shown to its participants only);
//! - `GET /rtc/meetings?page=&pageSize=`: the open meetings the caller created or joined, newest
//!   first. AnyChat listed every active room of the server; we list the caller's own, since a
//!   room's id is what lets one in.
//!
//! Room ids are the core's meeting ids (random, 63 bits) in decimal strings; an id that is not
//! one is `404`. Meetings not ended a day after they opened end by themselves (the core's rule).

use axum::extract::State;
use axum::routing::{get, post, MethodRouter};
use parley_protocol::frames::{
    CallAction, CallMedia, CallOutcome, CallRecord, CallSignal, MeetingInfo, PeerRef, Request,
    Response,
};
use parley_protocol::ids::{ConversationId, UserId};
use parley_protocol::session::Identity;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::AnyError;
use super::extract::{self, Body, IdIn, MaybeBody, Me, Path, Query};
use super::files::{now_secs, sign};
use super::views::{self, ok, Kind, Reply};
use super::AnyChat;

/// The RTC operations of the contract, as (method, path below `/api/v1`, handler).
pub(super) fn table() -> Vec<(&'static str, &'static str, MethodRouter<AnyChat>)> {
    vec![
        ("GET", "/rtc/calls", get(list_calls)),
        ("POST", "/rtc/calls", post(start_call)),
        ("GET", "/rtc/calls/{callId}", get(call)),
        ("POST", "/rtc/calls/{callId}/join", post(join_call)),
        ("POST", "/rtc/calls/{callId}/reject", post(reject_call)),
        ("POST", "/rtc/calls/{callId}/end", post(end_call)),
        ("GET", "/rtc/meetings", get(list_meetings)),
        ("POST", "/rtc/meetings", post(create_meeting)),
        ("GET", "/rtc/meetings/{roomId}", get(meeting)),
        ("POST", "/rtc/meetings/{roomId}/join", post(join_meeting)),
        ("POST", "/rtc/meetings/{roomId}/end", post(end_meeting)),
    ]
}

/// How long a call token is valid, in seconds.
pub const TOKEN_TTL_SECS: u64 = 2 * 3600;
/// Calls listed per page when `pageSize` is absent, and at most.
const DEFAULT_CALL_PAGE: u32 = 20;
const MAX_CALL_PAGE: u32 = 100;
/// The core's largest call page.
const CORE_CALL_PAGE: u32 = 200;
/// How far past the page `GET /rtc/calls` reads records at most.
const MAX_CALL_LOOKBACK: usize = 2000;

/// A call id as AnyChat shows it: the core's call id in decimal, as the WebSocket's call
/// notifications show it (a UUID of kind `Call` is accepted too).
fn call_id(call: u64) -> String {
    call.to_string()
}

fn parse_call(raw: &str) -> Result<u64, AnyError> {
    views::number_of(Kind::Call, raw).ok_or_else(|| AnyError::not_found("no such call"))
}

fn room(call: u64) -> String {
    format!("call-{}", call_id(call))
}

/// A token of ours for `user` in `call`: `<callId>.<userId>.<expiry>.<signature>` (there is no
/// media server to present it to; it proves to us who was let into which call, until when).
fn token(call: u64, user: UserId) -> String {
    let (c, u) = (call_id(call), views::user_id(user));
    let e = (now_secs() + TOKEN_TTL_SECS).to_string();
    let s = sign(&["call", &c, &u, &e]);
    format!("{c}.{u}.{e}.{s}")
}

fn media_name(m: CallMedia) -> &'static str {
    match m {
        CallMedia::Video => "video",
        CallMedia::Audio | CallMedia::Unspecified => "audio",
    }
}

fn outcome_name(o: CallOutcome) -> &'static str {
    match o {
        CallOutcome::Completed => "ended",
        CallOutcome::Rejected => "rejected",
        CallOutcome::Cancelled => "cancelled",
        CallOutcome::Missed => "missed",
        CallOutcome::Unspecified => "ringing",
    }
}

/// An ended call as AnyChat lists it.
fn record_view(conv: ConversationId, r: &CallRecord) -> Value {
    let callees: Vec<String> = r
        .participants
        .iter()
        .filter(|u| **u != r.caller)
        .map(|u| views::user_id(*u))
        .collect();
    json!({
        "callId": call_id(r.call),
        "roomName": room(r.call),
        "conversationId": views::conversation_id(conv),
        "callerId": views::user_id(r.caller),
        "calleeId": callees.first().cloned().unwrap_or_default(),
        "participants": callees,
        "callType": media_name(r.media),
        "status": outcome_name(r.outcome),
        "startedAt": views::secs(r.started_at_ms),
        "duration": r.duration_ms / 1000,
        "durationMs": r.duration_ms,
    })
}

/// Sends `action` for `call` as `me`.
async fn signal(
    any: &AnyChat,
    me: &Identity,
    call: u64,
    action: CallAction,
) -> Result<(), AnyError> {
    let signal = CallSignal {
        call,
        action,
        conversation: None,
        media: CallMedia::Unspecified,
        payload: String::new(),
    };
    any.call(me, Request::CallSignal(signal)).await.map(drop)
}

/// `POST /rtc/calls` body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartBody {
    #[serde(alias = "callee_id", alias = "userId")]
    callee_id: IdIn,
    #[serde(default, alias = "call_type")]
    call_type: Option<String>,
}

/// `POST /rtc/calls`: rings the callee.
async fn start_call(State(any): State<AnyChat>, Me(me): Me, Body(body): Body<StartBody>) -> Reply {
    let callee = extract::user_in_body(&body.callee_id)?;
    if callee == me.user {
        return Err(AnyError::invalid("you cannot call yourself"));
    }
    let media = match body.call_type.as_deref().map(str::trim) {
        None | Some("") | Some("audio") => CallMedia::Audio,
        Some("video") => CallMedia::Video,
        Some(other) => {
            return Err(AnyError::invalid(format!(
                "callType must be audio or video, not {other:?}"
            )))
        }
    };
    let conv = match any
        .call(&me, Request::OpenDirect(PeerRef::User(callee)))
        .await?
    {
        Response::Conversation(c) => c.id,
        other => return Err(super::super::unexpected(&other).into()),
    };
    let invite = CallSignal {
        call: 0,
        action: CallAction::Invite,
        conversation: Some(conv),
        media,
        payload: String::new(),
    };
    let call = match any.call(&me, Request::CallSignal(invite)).await? {
        Response::CallAnswer { call } => call,
        other => return Err(super::super::unexpected(&other).into()),
    };
    ok(json!({
        "callId": call_id(call),
        "roomName": room(call),
        "token": token(call, me.user),
        "conversationId": views::conversation_id(conv),
        "callerId": views::user_id(me.user),
        "calleeId": views::user_id(callee),
        "callType": media_name(media),
        "status": "ringing",
        "startedAt": now_secs(),
        "expiresIn": TOKEN_TTL_SECS,
    }))
}

/// `POST /rtc/calls/{callId}/join`: the callee accepts.
async fn join_call(State(any): State<AnyChat>, Me(me): Me, Path(id): Path<String>) -> Reply {
    let call = parse_call(&id)?;
    signal(&any, &me, call, CallAction::Accept).await?;
    ok(json!({
        "callId": call_id(call),
        "roomName": room(call),
        "token": token(call, me.user),
        "status": "accepted",
        "expiresIn": TOKEN_TTL_SECS,
    }))
}

/// `POST /rtc/calls/{callId}/reject`: the callee declines.
async fn reject_call(State(any): State<AnyChat>, Me(me): Me, Path(id): Path<String>) -> Reply {
    let call = parse_call(&id)?;
    signal(&any, &me, call, CallAction::Reject).await?;
    ok(json!({"callId": call_id(call), "status": "rejected"}))
}

/// `POST /rtc/calls/{callId}/end`: hangs up: ends an accepted call (either side), else cancels
/// it (the caller) or rejects it (the callee). The core refuses each action that does not fit
/// the call's state or the caller's part (`409`), so the first that fits is the one done.
async fn end_call(State(any): State<AnyChat>, Me(me): Me, Path(id): Path<String>) -> Reply {
    let call = parse_call(&id)?;
    let steps = [
        (CallAction::End, "ended"),
        (CallAction::Cancel, "cancelled"),
        (CallAction::Reject, "rejected"),
    ];
    let mut last = AnyError::conflict("the call cannot be ended");
    for (action, status) in steps {
        match signal(&any, &me, call, action).await {
            Ok(()) => return ok(json!({"callId": call_id(call), "status": status})),
            Err(e) if e.code == 409 => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// `GET /rtc/calls` query.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PageQuery {
    page: Option<u32>,
    #[serde(alias = "page_size")]
    page_size: Option<u32>,
}

/// The caller's call records, newest first: `skip` of them skipped, then up to `want`; with
/// whether more follow.
async fn records(
    any: &AnyChat,
    me: &Identity,
    skip: usize,
    want: usize,
) -> Result<(Vec<(ConversationId, CallRecord)>, bool), AnyError> {
    let mut before = 0u64;
    let mut seen = 0usize;
    let mut out = Vec::new();
    loop {
        let request = Request::ListCalls {
            before,
            limit: CORE_CALL_PAGE,
        };
        let (calls, has_more) = match any.call(me, request).await? {
            Response::Calls { calls, has_more } => (calls, has_more),
            other => return Err(super::super::unexpected(&other).into()),
        };
        before = calls.last().map_or(before, |(_, r)| r.call);
        for (conv, r) in calls {
            seen += 1;
            if seen <= skip {
                continue;
            }
            if out.len() == want {
                return Ok((out, true));
            }
            out.push((conv, r));
        }
        if !has_more || seen >= skip + MAX_CALL_LOOKBACK {
            return Ok((out, has_more));
        }
    }
}

/// `GET /rtc/calls?page=&pageSize=`: ended calls, newest first.
async fn list_calls(State(any): State<AnyChat>, Me(me): Me, Query(q): Query<PageQuery>) -> Reply {
    let page = q.page.unwrap_or(1).max(1);
    let size = extract::limit(q.page_size, DEFAULT_CALL_PAGE, MAX_CALL_PAGE);
    let skip = (page as usize - 1) * size as usize;
    let (calls, more) = records(&any, &me, skip, size as usize).await?;
    let list: Vec<Value> = calls.iter().map(|(c, r)| record_view(*c, r)).collect();
    // The core does not count a user's calls: `total` counts those up to this page, plus one
    // when more follow (`hasMore`).
    let total = skip + list.len() + usize::from(more);
    ok(json!({
        "calls": list,
        "total": total,
        "page": page,
        "pageSize": size,
        "hasMore": more,
    }))
}

/// `GET /rtc/calls/{callId}`: a call of the caller's (`GetCall`): in progress (`ringing` until
/// the callee accepts, then `accepted`, `duration` counting from the accept), or ended.
async fn call(State(any): State<AnyChat>, Me(me): Me, Path(id): Path<String>) -> Reply {
    let call = parse_call(&id)?;
    let (conv, record) = match any.call(&me, Request::GetCall { call }).await? {
        Response::Calls { calls, .. } => calls
            .into_iter()
            .next()
            .ok_or_else(|| AnyError::not_found("no such call"))?,
        other => return Err(super::super::unexpected(&other).into()),
    };
    let mut view = record_view(conv, &record);
    if record.outcome == CallOutcome::Unspecified {
        // In progress: the participants so far are the caller and whoever accepted.
        let accepted: Vec<String> = record
            .participants
            .iter()
            .filter(|u| **u != record.caller)
            .map(|u| views::user_id(*u))
            .collect();
        let status = match accepted.is_empty() {
            true => "ringing",
            false => "accepted",
        };
        view["status"] = json!(status);
        view["participants"] = json!(accepted);
        if accepted.is_empty() {
            // Ringing: the callee is the conversation's other member.
            let request = Request::ListMembers {
                conversation: conv,
                after: 0,
                limit: 2,
            };
            if let Response::MemberList { members, .. } = any.call(&me, request).await? {
                if let Some(m) = members.iter().find(|m| m.user != record.caller) {
                    view["calleeId"] = json!(views::user_id(m.user));
                }
            }
        }
    }
    ok(view)
}

/// A room id as AnyChat shows it: the core's meeting id in decimal.
fn room_id(meeting: u64) -> String {
    meeting.to_string()
}

fn parse_room(raw: &str) -> Result<u64, AnyError> {
    match raw.trim().parse::<u64>() {
        Ok(v) if v != 0 => Ok(v),
        _ => Err(AnyError::not_found("no such meeting")),
    }
}

fn meeting_room(meeting: u64) -> String {
    format!("meeting-{}", room_id(meeting))
}

/// A token of ours for `user` in `meeting`: `<roomId>.<userId>.<expiry>.<signature>`, signed
/// apart from call tokens (the first signed field says which).
fn meeting_token(meeting: u64, user: UserId) -> String {
    let (m, u) = (room_id(meeting), views::user_id(user));
    let e = (now_secs() + TOKEN_TTL_SECS).to_string();
    let s = sign(&["meeting", &m, &u, &e]);
    format!("{m}.{u}.{e}.{s}")
}

/// A meeting as AnyChat shows it.
fn meeting_view(m: &MeetingInfo) -> Value {
    let participants: Vec<String> = m.participants.iter().map(|u| views::user_id(*u)).collect();
    json!({
        "roomId": room_id(m.id),
        "roomName": meeting_room(m.id),
        "title": m.title,
        "creatorId": views::user_id(m.creator),
        "hasPassword": m.has_password,
        "maxParticipants": m.max_participants,
        "participants": participants,
        "participantCount": m.participant_count,
        "status": if m.ended_at_ms == 0 { "active" } else { "ended" },
        "createdAt": views::secs(m.created_at_ms),
        "endedAt": views::secs(m.ended_at_ms),
    })
}

/// The meeting in a core answer.
fn meeting_of(response: Response) -> Result<MeetingInfo, AnyError> {
    match response {
        Response::Meeting(m) => Ok(*m),
        other => Err(super::super::unexpected(&other).into()),
    }
}

/// `m` with `me`'s room token.
fn with_token(m: &MeetingInfo, me: UserId) -> Value {
    let mut view = meeting_view(m);
    view["token"] = json!(meeting_token(m.id, me));
    view["expiresIn"] = json!(TOKEN_TTL_SECS);
    view
}

/// `POST /rtc/meetings` body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateMeetingBody {
    title: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, alias = "max_participants")]
    max_participants: Option<u32>,
}

/// `POST /rtc/meetings`: opens a meeting; the creator's token.
async fn create_meeting(
    State(any): State<AnyChat>,
    Me(me): Me,
    Body(body): Body<CreateMeetingBody>,
) -> Reply {
    let request = Request::CreateMeeting {
        title: body.title,
        password: body.password.unwrap_or_default(),
        max_participants: body.max_participants.unwrap_or(0),
    };
    let m = meeting_of(any.call(&me, request).await?)?;
    ok(with_token(&m, me.user))
}

/// `POST /rtc/meetings/{roomId}/join` body (optional).
#[derive(Deserialize, Default)]
struct JoinMeetingBody {
    #[serde(default)]
    password: Option<String>,
}

/// `POST /rtc/meetings/{roomId}/join`: joins with the password, if the meeting has one.
async fn join_meeting(
    State(any): State<AnyChat>,
    Me(me): Me,
    Path(id): Path<String>,
    MaybeBody(body): MaybeBody<JoinMeetingBody>,
) -> Reply {
    let request = Request::JoinMeeting {
        meeting: parse_room(&id)?,
        password: body.password.unwrap_or_default(),
    };
    let m = meeting_of(any.call(&me, request).await?)?;
    ok(with_token(&m, me.user))
}

/// `POST /rtc/meetings/{roomId}/end`: the creator ends it.
async fn end_meeting(State(any): State<AnyChat>, Me(me): Me, Path(id): Path<String>) -> Reply {
    let request = Request::EndMeeting {
        meeting: parse_room(&id)?,
    };
    let m = meeting_of(any.call(&me, request).await?)?;
    ok(json!({"roomId": room_id(m.id), "status": "ended", "endedAt": views::secs(m.ended_at_ms)}))
}

/// `GET /rtc/meetings/{roomId}`.
async fn meeting(State(any): State<AnyChat>, Me(me): Me, Path(id): Path<String>) -> Reply {
    let request = Request::GetMeeting {
        meeting: parse_room(&id)?,
    };
    ok(meeting_view(&meeting_of(any.call(&me, request).await?)?))
}

/// `GET /rtc/meetings?page=&pageSize=`: the caller's open meetings, newest first.
async fn list_meetings(
    State(any): State<AnyChat>,
    Me(me): Me,
    Query(q): Query<PageQuery>,
) -> Reply {
    let page = q.page.unwrap_or(1).max(1);
    let size = extract::limit(q.page_size, DEFAULT_CALL_PAGE, MAX_CALL_PAGE);
    let offset = (page - 1).saturating_mul(size);
    let request = Request::ListMeetings {
        offset,
        limit: size,
    };
    let (meetings, more, total) = match any.call(&me, request).await? {
        Response::Meetings {
            meetings,
            has_more,
            total,
        } => (meetings, has_more, total),
        other => return Err(super::super::unexpected(&other).into()),
    };
    let list: Vec<Value> = meetings.iter().map(meeting_view).collect();
    ok(json!({
        "meetings": list,
        "total": total,
        "page": page,
        "pageSize": size,
        "hasMore": more,
    }))
}
