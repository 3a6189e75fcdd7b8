//! The Flutter/Rust WebSocket, `GET /ws?token=<access token>`: JSON frames `{type, data}` both
//! ways, built on the dialects' shared socket loop ([`crate::compat::socket`]).
//!
//! - The token (or an `Authorization: Bearer` header) is checked before the upgrade: missing or
//!   bad is `401 {code, message, details}`.
//! - in: `ping {timestamp}` (answered `pong {timestamp}`, the client's timestamp echoed, plus
//!   `server_time`, both Unix ms); `message_read {conversation_id, message_id}` (moves the
//!   caller's read position up to that message); `status_update {status: online|away|busy,
//!   custom_message}` (the caller's presence; `busy` is shown as `away`); `ice_candidate
//!   {call_id, candidate, sdpMid?, sdpMLineIndex?}` (relayed to the call's other participants).
//!   These have no answer when they succeed; a failure is answered `error {code, message,
//!   details, type}` (the `type` of the failed frame), as is a frame that is not one.
//! - out: `new_message` for every message of the caller's conversations (the caller's own too,
//!   for its other devices, with the `temp_id` of the send); `message_status {message_id,
//!   conversation_id, status: delivered|read, user_id, updated_at}` when another member's
//!   position moves, and `status: recalled` (or `edited`, with the new `content`) when a message
//!   changes; `contact_status` when a contact's (or co-member's) presence changes;
//!   `group_update {group_id, update_type, user_id, user_name, user_ids, updated_at}` with
//!   `update_type` `new_member`, `member_left`, `info_updated`, `role_changed` or `disbanded`;
//!   `typing {conversation_id, user_id}`; and for calls `incoming_call {call_id, caller_id,
//!   conversation_id, type, offer_sdp}`, `call_ringing`, `call_accepted {call_id, user_id,
//!   answer_sdp}`, `call_rejected`, `call_ended {call_id, user_id}` and `ice_candidate`. The
//!   call frames other than `ice_candidate`, and `typing`, are not in the document (its callee
//!   could not learn of a call otherwise): see docs/dialect-flutter.md.
//!
//! A socket whose session fell behind is closed with 1013: the client reconnects and reloads
//! its conversations and their history. Without any frame for [`LIMITS`]' idle time the socket
//! is closed.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{Message as WsMessage, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use parley_protocol::frames::MAX_TOKEN_BYTES;
use parley_protocol::frames::{
    CallAction, CallMedia, CallPush, CallSignal, ConversationEvent, ConversationKind, CursorKind,
    ErrorInfo, Message, PresenceStatus, Push, Request, Response as CoreResponse,
};
use parley_protocol::ids::UserId;
use parley_protocol::session::Identity;
use serde::Deserialize;
use serde_json::{json, Value};

use super::calls::media_name;
use super::{views, FlError, Flutter};
use crate::compat::socket::{self, Action, Limits};

/// The socket's limits: 64 KiB frames, 16 requests in flight, closed after 120 s of silence.
pub const LIMITS: Limits = Limits {
    max_frame: 64 * 1024,
    max_inflight: 16,
    idle: Duration::from_secs(120),
};

/// Senders' names kept per socket.
const NAME_CACHE: usize = 1024;

/// `?token=`.
#[derive(Debug, Deserialize)]
pub struct WsQuery {
    #[serde(default)]
    token: Option<String>,
}

/// The upgrade: a missing or bad token is refused before it.
pub async fn upgrade(
    State(fl): State<Flutter>,
    query: Result<Query<WsQuery>, QueryRejection>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let token = query
        .ok()
        .and_then(|Query(q)| q.token)
        .or_else(|| match crate::bearer(&headers) {
            crate::Bearer::Token(t) => Some(t.to_owned()),
            _ => None,
        })
        .filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN_BYTES);
    let Some(token) = token else {
        return FlError::unauthorized("the token parameter is required").into_response();
    };
    let me = match fl.backend.authenticate_bearer(token).await {
        Ok(me) => me,
        Err(e) => return FlError::from(e).into_response(),
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(r) => return FlError::invalid(r.body_text()).into_response(),
    };
    LIMITS.apply(ws).on_upgrade(move |ws| {
        let backend = fl.backend.clone();
        let conn = Conn {
            fl,
            me: me.clone(),
            names: HashMap::new(),
        };
        socket::serve(ws, backend, me, conn, None)
    })
}

/// A frame: `{type, data}`.
fn frame(kind: &str, data: Value) -> WsMessage {
    WsMessage::Text(json!({ "type": kind, "data": data }).to_string().into())
}

/// The `error` frame of a failure (of a frame of type `kind`, if known).
fn error(e: &FlError, kind: Option<&str>) -> WsMessage {
    let mut data = e.body();
    if let Some(kind) = kind {
        data["type"] = json!(kind);
    }
    frame("error", data)
}

#[derive(Deserialize)]
struct Incoming {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: Value,
}

#[derive(Deserialize)]
struct ReadData {
    conversation_id: String,
    message_id: String,
}

#[derive(Deserialize)]
struct StatusData {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    custom_message: Option<String>,
}

#[derive(Deserialize)]
struct IceData {
    call_id: String,
    candidate: String,
    #[serde(rename = "sdpMid", default)]
    sdp_mid: Option<String>,
    #[serde(rename = "sdpMLineIndex", default)]
    sdp_m_line_index: Option<u32>,
}

/// One socket's state.
pub struct Conn {
    fl: Flutter,
    me: Identity,
    names: HashMap<UserId, String>,
}

impl Conn {
    /// Parses a client frame into what to do.
    fn parse(&mut self, text: &str) -> Result<Action<&'static str>, (FlError, Option<String>)> {
        let incoming: Incoming = serde_json::from_str(text)
            .map_err(|e| (FlError::invalid(format!("not a frame: {e}")), None))?;
        let kind = incoming.kind;
        let bad = |e: serde_json::Error| {
            (
                FlError::invalid(format!("bad {kind}: {e}")),
                Some(kind.clone()),
            )
        };
        let failed = |e: FlError| (e, Some(kind.clone()));
        match kind.as_str() {
            "ping" => {
                let client = incoming
                    .data
                    .get("timestamp")
                    .cloned()
                    .unwrap_or(Value::Null);
                let data = json!({ "timestamp": client, "server_time": views::now_ms() });
                Ok(Action::Reply(frame("pong", data)))
            }
            "message_read" => {
                let d: ReadData = serde_json::from_value(incoming.data).map_err(bad)?;
                let conv = views::parse_conversation(&d.conversation_id).map_err(failed)?;
                let (of, seq) = views::parse_message(&d.message_id).map_err(failed)?;
                if of != conv {
                    return Err(failed(FlError::invalid(
                        "message_id is not of conversation_id",
                    )));
                }
                let request = Request::CursorAck {
                    conversation: conv,
                    kind: CursorKind::Read,
                    seq,
                };
                Ok(Action::Run(request, "message_read"))
            }
            "status_update" => {
                let d: StatusData = serde_json::from_value(incoming.data).map_err(bad)?;
                let status = match d.status.as_deref() {
                    None => None,
                    Some("online") => Some(PresenceStatus::Online),
                    Some("away" | "busy") => Some(PresenceStatus::Away),
                    Some(other) => {
                        return Err(failed(FlError::invalid(format!(
                            "status {other:?} is not online, away or busy"
                        ))))
                    }
                };
                let request = Request::SetPresence {
                    status,
                    text: d.custom_message,
                };
                Ok(Action::Run(request, "status_update"))
            }
            "ice_candidate" => {
                let d: IceData = serde_json::from_value(incoming.data).map_err(bad)?;
                let call = views::parse_call(&d.call_id).map_err(failed)?;
                // A bare candidate string stays one (what native clients relay); with the
                // WebRTC fields, they travel together as JSON.
                let payload = if d.sdp_mid.is_none() && d.sdp_m_line_index.is_none() {
                    d.candidate
                } else {
                    json!({
                        "candidate": d.candidate,
                        "sdpMid": d.sdp_mid,
                        "sdpMLineIndex": d.sdp_m_line_index,
                    })
                    .to_string()
                };
                let request = Request::CallSignal(CallSignal {
                    call,
                    action: CallAction::Ice,
                    conversation: None,
                    media: CallMedia::Unspecified,
                    payload,
                });
                Ok(Action::Run(request, "ice_candidate"))
            }
            other => Err((
                FlError::invalid(format!("unknown message type {other:?}")),
                Some(other.to_owned()),
            )),
        }
    }

    /// The name shown for `user` (cached per socket).
    async fn name(&mut self, user: UserId) -> String {
        if let Some(n) = self.names.get(&user) {
            return n.clone();
        }
        let name = match self.fl.names(&self.me, [user]).await {
            Ok(mut names) => names.remove(&user).unwrap_or_else(|| user.to_string()),
            Err(_) => return user.to_string(),
        };
        if self.names.len() == NAME_CACHE {
            self.names.clear();
        }
        self.names.insert(user, name.clone());
        name
    }

    /// A message push as `new_message`.
    async fn new_message(&mut self, m: &Message) -> WsMessage {
        let name = self.name(m.sender).await;
        let names = HashMap::from([(m.sender, name)]);
        let mut v = views::message(m, &names, "sent");
        if let Some(o) = v.as_object_mut() {
            o.remove("status");
            if m.sender == self.me.user {
                o.insert("temp_id".into(), json!(m.client_msg_id.as_str()));
            }
        }
        frame("new_message", v)
    }

    /// A conversation event as a frame, if the document shows it.
    async fn event(&mut self, m: &Message, e: &ConversationEvent) -> Option<WsMessage> {
        let at = views::iso(m.server_time_ms);
        let group = |update: &str, users: &[UserId]| {
            json!({
                "group_id": views::group_id(m.conversation),
                "update_type": update,
                "user_id": users.first().map_or_else(|| m.sender.to_string(), UserId::to_string),
                "user_ids": users.iter().map(UserId::to_string).collect::<Vec<_>>(),
                "by": m.sender.to_string(),
                "updated_at": at,
            })
        };
        let mut out = match e {
            ConversationEvent::Recall(seq) => {
                return Some(frame(
                    "message_status",
                    json!({
                        "message_id": views::message_id(m.conversation, *seq),
                        "conversation_id": views::conversation_id(m.conversation),
                        "status": "recalled",
                        "user_id": m.sender.to_string(),
                        "updated_at": at,
                    }),
                ))
            }
            ConversationEvent::Edit { seq, content } => {
                return Some(frame(
                    "message_status",
                    json!({
                        "message_id": views::message_id(m.conversation, *seq),
                        "conversation_id": views::conversation_id(m.conversation),
                        "status": "edited",
                        "content": String::from_utf8_lossy(content),
                        "user_id": m.sender.to_string(),
                        "updated_at": at,
                    }),
                ))
            }
            ConversationEvent::Membership { added, removed } => {
                if added.contains(&self.me.user) || removed.contains(&self.me.user) {
                    // About the caller: rendered from its `Membership` push instead.
                    return None;
                }
                if added.is_empty() {
                    group("member_left", removed)
                } else {
                    group("new_member", added)
                }
            }
            ConversationEvent::GroupProfile(_) => group("info_updated", &[m.sender]),
            ConversationEvent::Role { user, .. } => group("role_changed", &[*user]),
            ConversationEvent::Disband => group("disbanded", &[m.sender]),
            _ => return None,
        };
        let user = out["user_id"]
            .as_str()
            .and_then(views::user_id)
            .unwrap_or(m.sender);
        out["user_name"] = json!(self.name(user).await);
        Some(frame("group_update", out))
    }

    /// A call signal as a frame.
    fn call(p: &CallPush) -> WsMessage {
        let id = views::call_id(p.call);
        let from = p.from.to_string();
        match p.action {
            CallAction::Invite => frame(
                "incoming_call",
                json!({
                    "call_id": id,
                    "caller_id": from,
                    "conversation_id": views::conversation_id(p.conversation),
                    "type": media_name(p.media),
                    "offer_sdp": p.payload,
                    "created_at": views::iso(views::now_ms()),
                }),
            ),
            CallAction::Accept => frame(
                "call_accepted",
                json!({ "call_id": id, "user_id": from, "answer_sdp": p.payload }),
            ),
            CallAction::Ringing => frame("call_ringing", json!({ "call_id": id, "user_id": from })),
            CallAction::Reject => frame("call_rejected", json!({ "call_id": id, "user_id": from })),
            CallAction::Ice => {
                let mut data = match serde_json::from_str::<Value>(&p.payload) {
                    Ok(v @ Value::Object(_)) if v.get("candidate").is_some() => v,
                    _ => json!({ "candidate": p.payload }),
                };
                data["call_id"] = json!(id);
                data["user_id"] = json!(from);
                frame("ice_candidate", data)
            }
            _ => frame(
                "call_ended",
                json!({ "call_id": id, "user_id": from, "status": "ended" }),
            ),
        }
    }
}

impl socket::Dialect for Conn {
    type Pending = &'static str;
    const LIMITS: Limits = LIMITS;
    const FELL_BEHIND: &'static str = "fell behind: reconnect and reload the conversations";

    async fn frame(&mut self, text: &str) -> Action<&'static str> {
        match self.parse(text) {
            Ok(action) => action,
            Err((e, kind)) => Action::Reply(error(&e, kind.as_deref())),
        }
    }

    fn binary(&mut self) -> Option<WsMessage> {
        Some(error(&FlError::invalid("frames are JSON text"), None))
    }

    fn answer(
        &mut self,
        kind: &'static str,
        result: Result<CoreResponse, ErrorInfo>,
    ) -> Option<WsMessage> {
        match result {
            Ok(_) => None,
            Err(e) => Some(error(&FlError::from(e), Some(kind))),
        }
    }

    async fn push(&mut self, push: Push) -> Option<WsMessage> {
        match push {
            Push::Message(m) => match m.event.as_deref() {
                None => Some(self.new_message(&m).await),
                Some(e) => {
                    let e = e.clone();
                    self.event(&m, &e).await
                }
            },
            Push::Receipt(r) if r.user != self.me.user => {
                let status = match r.kind {
                    CursorKind::Read => "read",
                    _ => "delivered",
                };
                Some(frame(
                    "message_status",
                    json!({
                        "message_id": views::message_id(r.conversation, r.seq),
                        "conversation_id": views::conversation_id(r.conversation),
                        "status": status,
                        "user_id": r.user.to_string(),
                        "updated_at": views::iso(views::now_ms()),
                    }),
                ))
            }
            Push::Presence(p) => Some(frame(
                "contact_status",
                json!({
                    "user_id": p.user.to_string(),
                    "status": views::status_name(p.status),
                    "last_online": super::social::last_online(Some(&p)),
                    "custom_message": p.text,
                }),
            )),
            Push::Membership(c) if c.conversation.kind == ConversationKind::Group => {
                let me = self.me.user;
                let update = if c.added.contains(&me) {
                    "new_member"
                } else if c.removed.contains(&me) {
                    "member_left"
                } else {
                    return None;
                };
                let name = self.name(me).await;
                Some(frame(
                    "group_update",
                    json!({
                        "group_id": views::group_id(c.conversation.id),
                        "update_type": update,
                        "user_id": me.to_string(),
                        "user_ids": [me.to_string()],
                        "user_name": name,
                        "by": c.by.to_string(),
                        "updated_at": views::iso(views::now_ms()),
                    }),
                ))
            }
            Push::Typing { conversation, user } if user != self.me.user => Some(frame(
                "typing",
                json!({
                    "conversation_id": views::conversation_id(conversation),
                    "user_id": user.to_string(),
                }),
            )),
            // This device's own signals (relayed to its other sessions) are not echoed back.
            Push::Call(p) if p.from == self.me.user && p.from_device == self.me.device => None,
            Push::Call(p) => Some(Conn::call(&p)),
            Push::Error(e) => Some(error(&FlError::from(e), None)),
            _ => None,
        }
    }
}
