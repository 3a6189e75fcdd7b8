//! GoChat's WebSocket, `GET /ws?token=<access token>`: JSON frames `{type, data, timestamp}`
//! (Unix seconds) both ways.
//!
//! - in: `send-message {conversationId, content, messageType, client_msg_id}` (answered by
//!   `message-ack {client_msg_id, messageId, status:"success", seqId}` once durable, or by
//!   `error`), `mark-read {conversationId, seqId}` (silent unless it fails), `ping` (`pong`).
//! - out: `new-message` for every message of the user's conversations (not the ones this
//!   socket sent: those get their ack), `online-status {userId, status}` when a friend or
//!   co-member comes or goes, `error {code, message, details}`.
//!
//! The socket runs on the dialects' adapter ([`crate::compat::socket`]): pushes from an
//! in-process session of the token's device, the same fan-out every transport gets. One socket
//! per user: a new one closes the old (close code 1000). A socket whose session fell behind (its
//! bounded push queue overflowed) is closed with 1013: GoChat clients reconnect and fetch what
//! is unread, as their document says, and the store has it all. Without any frame for
//! [`IDLE`] the socket is closed (clients ping every 30 s).
//!
//! Sends run concurrently (at most [`MAX_INFLIGHT`] per socket, then the socket is not read
//! until one is answered), so a burst shares group commits instead of waiting for one fsync
//! each.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use parley_protocol::frames::Response as Answer;
use parley_protocol::frames::{ErrorInfo, PresenceStatus, Push, Request, MAX_TOKEN_BYTES};
use parley_protocol::ids::UserId;
use parley_protocol::session::Identity;
use serde::Deserialize;
use serde_json::{json, Value};

use super::conversations::{read_up_to, send_request, ReadBody, SendBody};
use super::error::GoError;
use super::extract::{conversation, IdIn};
use super::{views, GoChat};
use crate::compat::call;
use crate::compat::socket::{self, Action, Limits};

/// Largest inbound frame.
pub const MAX_FRAME: usize = 64 * 1024;
/// Sends awaiting their durable ack per socket at most.
pub const MAX_INFLIGHT: usize = 64;
/// Silence after which a socket is closed.
pub const IDLE: Duration = Duration::from_secs(90);
/// Senders' profiles kept per socket (for `new-message`'s `sender`).
const PROFILE_CACHE: usize = 1024;
/// Keys of this socket's recent sends (their pushes are not echoed back).
const RECENT_SENDS: usize = 256;

/// `?token=`.
#[derive(Debug, Deserialize)]
pub struct WsQuery {
    token: Option<String>,
}

/// The upgrade: a missing or bad token is refused before it (`401` in the error envelope).
pub async fn upgrade(
    State(go): State<GoChat>,
    query: Result<Query<WsQuery>, QueryRejection>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let token = query
        .ok()
        .and_then(|Query(q)| q.token)
        .filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN_BYTES);
    let Some(token) = token else {
        return GoError::unauthorized("the token parameter is required").into_response();
    };
    let me = match go.backend.authenticate_bearer(token).await {
        Ok(me) => me,
        Err(e) => return GoError::from(e).into_response(),
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(r) => {
            return GoError::new(StatusCode::BAD_REQUEST, "INVALID_PARAMS", r.body_text())
                .into_response()
        }
    };
    <Conn as socket::Dialect>::LIMITS
        .apply(ws)
        .on_upgrade(move |ws| {
            let backend = go.backend.clone();
            let sockets = go.sockets.clone();
            let conn = Conn {
                go,
                me: me.clone(),
                profiles: HashMap::new(),
                recent: VecDeque::new(),
            };
            socket::serve(ws, backend, me, conn, Some(sockets))
        })
}

/// A frame: `{type, data, timestamp}` (`data` left out when `None`).
fn frame(kind: &str, data: Option<Value>) -> Message {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut v = json!({ "type": kind, "timestamp": now });
    if let Some(data) = data {
        v["data"] = data;
    }
    Message::Text(v.to_string().into())
}

/// An `error` frame.
fn error(code: &str, message: &str, details: Value) -> Message {
    frame(
        "error",
        Some(json!({ "code": code, "message": message, "details": details })),
    )
}

/// The `error` frame of a failed request: bad input is `INVALID_MESSAGE`, as the document
/// names it.
fn failure(e: &GoError, details: Value) -> Message {
    let code = match e.code {
        "INVALID_PARAMS" => "INVALID_MESSAGE",
        "UNAUTHORIZED" => "AUTH_FAILED",
        code => code,
    };
    error(code, &e.message, details)
}

/// One socket's state: GoChat's side of the adapter.
struct Conn {
    go: GoChat,
    me: Identity,
    profiles: HashMap<UserId, Value>,
    recent: VecDeque<String>,
}

impl socket::Dialect for Conn {
    /// A send's `details` (its keys, echoed in the ack).
    type Pending = Value;
    const LIMITS: Limits = Limits {
        max_frame: MAX_FRAME,
        max_inflight: MAX_INFLIGHT,
        idle: IDLE,
    };
    const FELL_BEHIND: &'static str = "fell behind: reconnect and fetch what is unread";

    async fn frame(&mut self, text: &str) -> Action<Value> {
        self.handle(text).await
    }

    fn binary(&mut self) -> Option<Message> {
        Some(error("INVALID_MESSAGE", "frames are JSON text", json!({})))
    }

    fn answer(&mut self, details: Value, result: Result<Answer, ErrorInfo>) -> Option<Message> {
        Some(acked(details, result))
    }

    async fn push(&mut self, push: Push) -> Option<Message> {
        self.render(push).await
    }
}

impl Conn {
    /// Answers one client frame (sends are answered later, by [`acked`]).
    async fn handle(&mut self, text: &str) -> Action<Value> {
        #[derive(Deserialize)]
        struct Incoming {
            #[serde(rename = "type")]
            kind: String,
            #[serde(default)]
            data: Value,
        }
        let incoming: Incoming = match serde_json::from_str(text) {
            Ok(i) => i,
            Err(e) => {
                return Action::Reply(error(
                    "INVALID_MESSAGE",
                    &format!("not a frame: {e}"),
                    json!({}),
                ))
            }
        };
        let reply = match incoming.kind.as_str() {
            "ping" => Some(frame("pong", None)),
            "send-message" => return self.send(incoming.data),
            "mark-read" => self.mark_read(incoming.data).await,
            other => Some(error(
                "INVALID_MESSAGE",
                &format!("unknown frame type {other:?}"),
                json!({ "type": other }),
            )),
        };
        reply.map_or(Action::Nothing, Action::Reply)
    }

    fn send(&mut self, data: Value) -> Action<Value> {
        let body: SendBody = match serde_json::from_value(data) {
            Ok(b) => b,
            Err(e) => {
                return Action::Reply(error(
                    "INVALID_MESSAGE",
                    &format!("bad send-message: {e}"),
                    json!({}),
                ))
            }
        };
        let mut details = json!({});
        for (key, value) in [
            ("client_msg_id", &body.client_msg_id),
            ("tempMessageId", &body.temp_message_id),
        ] {
            if let Some(v) = value {
                details[key] = json!(v);
            }
        }
        let conv = match body.conversation_id.as_ref().and_then(IdIn::value) {
            Some(id) => conversation(&id.to_string()),
            None => Err(GoError::invalid("conversationId is required")),
        };
        let (request, key) = match conv.and_then(|c| send_request(c, &body)) {
            Ok(r) => r,
            Err(e) => return Action::Reply(failure(&e, details)),
        };
        details["client_msg_id"] = json!(key);
        if self.recent.len() == RECENT_SENDS {
            self.recent.pop_front();
        }
        self.recent.push_back(key);
        Action::Run(request, details)
    }
    async fn mark_read(&mut self, data: Value) -> Option<Message> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct MarkRead {
            conversation_id: IdIn,
            #[serde(flatten)]
            read: ReadBody,
        }
        let m: MarkRead = match serde_json::from_value(data) {
            Ok(m) => m,
            Err(e) => {
                return Some(error(
                    "INVALID_MESSAGE",
                    &format!("bad mark-read: {e}"),
                    json!({}),
                ))
            }
        };
        let details = json!({ "conversationId": m.conversation_id.value().map(|v| v.to_string()) });
        let conv = match m.conversation_id.value() {
            Some(id) => conversation(&id.to_string()),
            None => Err(GoError::no_conversation()),
        };
        let done = match conv {
            Ok(conv) => read_up_to(&self.go, &self.me, conv, m.read.seq_id).await,
            Err(e) => Err(e),
        };
        done.err().map(|e| failure(&e, details))
    }

    /// A push as a frame (`None`: nothing GoChat shows).
    async fn render(&mut self, push: Push) -> Option<Message> {
        match push {
            Push::Message(m) => {
                let own = m.sender == self.me.user;
                let key = m.client_msg_id.to_string();
                if own {
                    if let Some(at) = self.recent.iter().position(|k| *k == key) {
                        self.recent.remove(at);
                        return None;
                    }
                }
                let mut data = views::message(&m)?;
                data["sender"] = self.sender(m.sender).await;
                Some(frame("new-message", Some(data)))
            }
            Push::Presence(p) => {
                let status = match p.status {
                    PresenceStatus::Offline => "offline",
                    _ => "online",
                };
                Some(frame(
                    "online-status",
                    Some(json!({ "userId": p.user.to_string(), "status": status })),
                ))
            }
            Push::Error(e) => {
                let e = GoError::from(e);
                Some(error(e.code, &e.message, json!({})))
            }
            _ => None,
        }
    }

    /// `{id, username, avatarUrl}` of a sender (cached per socket).
    async fn sender(&mut self, user: UserId) -> Value {
        if let Some(v) = self.profiles.get(&user) {
            return v.clone();
        }
        let found = call(
            &*self.go.backend,
            Some(self.me.clone()),
            Request::GetProfiles(vec![user]),
        )
        .await;
        let v = match found {
            Ok(Answer::Profiles(p)) if !p.is_empty() => views::sender(&p[0]),
            _ => json!({ "id": user.to_string(), "username": "", "avatarUrl": "" }),
        };
        if self.profiles.len() == PROFILE_CACHE {
            self.profiles.clear();
        }
        self.profiles.insert(user, v.clone());
        v
    }
}

/// The answer to a send: `message-ack` once durable, else `error`.
fn acked(details: Value, result: Result<Answer, ErrorInfo>) -> Message {
    match result {
        Ok(Answer::SendAck(ack)) => {
            let mut data = details;
            data["messageId"] = json!(ack.message_id.to_string());
            data["conversationId"] = json!(ack.conversation.to_string());
            data["seqId"] = json!(ack.seq.get());
            data["status"] = json!("success");
            frame("message-ack", Some(data))
        }
        Ok(other) => failure(&crate::compat::unexpected(&other).into(), details),
        Err(e) => failure(
            &GoError::from(e).not_found_as("CONVERSATION_NOT_FOUND"),
            details,
        ),
    }
}
