//! IM系统's WebSocket, `GET /ws`: JSON frames `{type, data, timestamp(ms), message_id?}` both
//! ways.
//!
//! - The first frame must be `login {user_id, token, platform}`: `token` (or, as the
//!   document's JavaScript client sends its user id there, `user_id`) must be one of our access
//!   tokens; with `[compat] trust_user_header` on, a bare `user_id` (user id or account name)
//!   is trusted instead. Answered `login {success:true, message, user_id}` (our user id), or
//!   `login {success:false, message, error}` and the socket is closed (1008).
//! - in: `heartbeat` (answered `heartbeat {timestamp}`), `send_message {receiver_id |
//!   group_id, type, content}` (answered `send_message {success, message_id, message}` once
//!   durable), `ack {message_id, status: delivered|read}` (answered `ack {success, message_id,
//!   status}`), `sync_offline {last_message_id?, limit?}` (answered `sync_offline {messages,
//!   has_more}`), `join_group` / `leave_group {group_id}` (answered `{success, group_id}`). A
//!   request that fails is answered with its own type and `{success:false, error}`; a frame
//!   that is not one, `error {error}`.
//! - out: `new_message` / `new_group_message` (with `message_id`) for every message of the
//!   user's conversations except this socket's own sends, and `ack {message_id, status,
//!   user_id}` when another member's delivered or read position moves (the receipts the
//!   document's status flow implies).
//!
//! After the login the socket runs on the dialects' adapter ([`crate::compat::socket`]): pushes
//! from an in-process session ([`crate::Backend::open_session`]), the same fan-out every
//! transport gets. A socket whose session fell behind is closed with 1013: the
//! client reconnects and syncs with `sync_offline`. Without any frame for [`IDLE`] the socket is
//! closed. Requests on one socket are answered in order.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use parley_protocol::frames::{CursorKind, ErrorInfo, Push, Response as Answer};
use parley_protocol::ids::ConversationId;
use parley_protocol::session::Identity;
use serde::Deserialize;
use serde_json::{json, Value};

use super::rest::{self, OfflineQuery, SendBody};
use super::views::{self, Place};
use super::{ImError, ImSys};
use crate::compat::socket::{self, Action, Limits};

/// Largest inbound frame.
pub const MAX_FRAME: usize = 64 * 1024;
/// Silence after which a socket is closed.
pub const IDLE: Duration = Duration::from_secs(90);
/// Time to send `login` after the upgrade.
pub const LOGIN_WITHIN: Duration = Duration::from_secs(30);
/// Keys of this socket's recent sends (their pushes are not echoed back).
const RECENT_SENDS: usize = 256;

/// The upgrade (authentication is the first frame).
pub async fn upgrade(
    State(im): State<ImSys>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    match ws {
        Ok(ws) => <Conn as socket::Dialect>::LIMITS
            .apply(ws)
            .on_upgrade(move |socket| run(im, socket)),
        Err(r) => ImError::invalid(r.body_text()).into_response(),
    }
}

/// A frame: `{type, data, timestamp}`, and `message_id` if given.
fn frame(kind: &str, data: Value, message_id: Option<&str>) -> Message {
    let mut v = json!({ "type": kind, "data": data, "timestamp": views::now_ms() });
    if let Some(id) = message_id {
        v["message_id"] = json!(id);
    }
    Message::Text(v.to_string().into())
}

/// The answer to a failed request of type `kind`.
fn failed(kind: &str, e: &ImError) -> Message {
    frame(kind, json!({ "success": false, "error": e.message }), None)
}

#[derive(Deserialize)]
struct Incoming {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: Value,
}

#[derive(Deserialize)]
struct Login {
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    platform: Option<String>,
}

#[derive(Deserialize)]
struct AckData {
    message_id: String,
    status: String,
}

#[derive(Deserialize)]
struct GroupData {
    group_id: String,
}

async fn run(im: ImSys, mut ws: WebSocket) {
    let me = match tokio::time::timeout(LOGIN_WITHIN, login(&im, &mut ws)).await {
        Ok(Ok(me)) => me,
        Ok(Err(Some(e))) => {
            let data = json!({ "success": false, "message": e.message, "error": e.message });
            let _ = ws.send(frame("login", data, None)).await;
            close(&mut ws, 1008, "login failed").await;
            return;
        }
        Ok(Err(None)) => return,
        Err(_) => {
            close(&mut ws, 1008, "no login").await;
            return;
        }
    };
    let data = json!({
        "success": true,
        "message": "Login successful",
        "user_id": me.user.to_string(),
    });
    if ws.send(frame("login", data, None)).await.is_err() {
        return;
    }
    let backend = im.backend.clone();
    let conn = Conn {
        im,
        me: me.clone(),
        places: HashMap::new(),
        recent: VecDeque::new(),
    };
    socket::serve(ws, backend, me, conn, None).await;
}

async fn close(ws: &mut WebSocket, code: u16, reason: &'static str) {
    let close = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = ws.send(Message::Close(Some(close))).await;
}

/// Reads the `login` frame and authenticates it (`Err(None)`: the peer left).
async fn login(im: &ImSys, ws: &mut WebSocket) -> Result<Identity, Option<ImError>> {
    let text = loop {
        match ws.recv().await {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Err(None),
            Some(Ok(Message::Text(t))) => break t,
            Some(Ok(Message::Binary(_))) => {
                return Err(Some(ImError::invalid("frames are JSON text")))
            }
            Some(Ok(_)) => {}
        }
    };
    let incoming: Incoming = serde_json::from_str(text.as_str())
        .map_err(|e| Some(ImError::invalid(format!("not a frame: {e}"))))?;
    if incoming.kind != "login" {
        return Err(Some(ImError::unauthorized("the first frame must be login")));
    }
    let l: Login = serde_json::from_value(incoming.data)
        .map_err(|e| Some(ImError::invalid(format!("bad login: {e}"))))?;
    let platform: String = l
        .platform
        .as_deref()
        .unwrap_or("web")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(32)
        .collect();
    let device = format!("imsys-{platform}");
    let user_id = l
        .user_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let token = l.token.as_deref().map(str::trim).filter(|s| !s.is_empty());
    if let Some(token) = token.filter(|t| t.len() <= parley_protocol::frames::MAX_TOKEN_BYTES) {
        if let Ok(me) = im.backend.authenticate_bearer(token.to_owned()).await {
            return match user_id {
                Some(u) if u != token && !super::names(&me, u) => Err(Some(ImError::unauthorized(
                    "user_id does not name the token's user",
                ))),
                _ => Ok(me),
            };
        }
    }
    im.identify(user_id, None, &device).await.map_err(Some)
}

/// One logged-in socket's state.
struct Conn {
    im: ImSys,
    me: Identity,
    places: HashMap<ConversationId, Place>,
    recent: VecDeque<String>,
}

impl socket::Dialect for Conn {
    /// Requests are run inline, answered in order: nothing is pending.
    type Pending = std::convert::Infallible;
    const LIMITS: Limits = Limits {
        max_frame: MAX_FRAME,
        max_inflight: 1,
        idle: IDLE,
    };
    const FELL_BEHIND: &'static str = "fell behind: reconnect and sync_offline";

    async fn frame(&mut self, text: &str) -> Action<Self::Pending> {
        Action::Reply(self.handle(text).await)
    }

    fn binary(&mut self) -> Option<Message> {
        Some(frame(
            "error",
            json!({ "error": "frames are JSON text" }),
            None,
        ))
    }

    fn answer(&mut self, pending: Self::Pending, _: Result<Answer, ErrorInfo>) -> Option<Message> {
        match pending {}
    }

    async fn push(&mut self, push: Push) -> Option<Message> {
        self.render(push).await
    }
}

impl Conn {
    /// Answers one client frame.
    async fn handle(&mut self, text: &str) -> Message {
        let incoming: Incoming = match serde_json::from_str(text) {
            Ok(i) => i,
            Err(e) => {
                return frame(
                    "error",
                    json!({ "error": format!("not a frame: {e}") }),
                    None,
                )
            }
        };
        let kind = incoming.kind.clone();
        let answer = match kind.as_str() {
            "heartbeat" => Ok(json!({ "timestamp": views::now_ms() })),
            "login" => Err(ImError::invalid("already logged in")),
            "send_message" => self.send(incoming.data).await,
            "ack" => self.ack(incoming.data).await,
            "sync_offline" => self.sync(incoming.data).await,
            "join_group" | "leave_group" => self.group(&kind, incoming.data).await,
            other => {
                return frame(
                    "error",
                    json!({ "error": format!("unknown message type {other:?}") }),
                    None,
                )
            }
        };
        match answer {
            Ok(data) => frame(&kind, data, None),
            Err(e) => failed(&kind, &e),
        }
    }

    async fn send(&mut self, data: Value) -> Result<Value, ImError> {
        let body: SendBody = serde_json::from_value(data)
            .map_err(|e| ImError::invalid(format!("bad send_message: {e}")))?;
        let key = rest::fresh_key();
        if self.recent.len() == RECENT_SENDS {
            self.recent.pop_front();
        }
        self.recent.push_back(key.clone());
        let (message, _) = rest::send_message(&self.im, &self.me, body, key).await?;
        let id = message["id"].clone();
        Ok(json!({ "success": true, "message_id": id, "message": message }))
    }

    async fn ack(&mut self, data: Value) -> Result<Value, ImError> {
        let a: AckData =
            serde_json::from_value(data).map_err(|e| ImError::invalid(format!("bad ack: {e}")))?;
        rest::ack_message(&self.im, &self.me, &a.message_id, &a.status).await?;
        Ok(json!({ "success": true, "message_id": a.message_id, "status": a.status }))
    }

    async fn sync(&mut self, data: Value) -> Result<Value, ImError> {
        let q: OfflineQuery = if data.is_null() {
            OfflineQuery::default()
        } else {
            serde_json::from_value(data)
                .map_err(|e| ImError::invalid(format!("bad sync_offline: {e}")))?
        };
        rest::offline_messages(&self.im, &self.me, q).await
    }

    async fn group(&mut self, kind: &str, data: Value) -> Result<Value, ImError> {
        let g: GroupData = serde_json::from_value(data)
            .map_err(|e| ImError::invalid(format!("bad {kind}: {e}")))?;
        let conv = views::parse_group_id(&g.group_id)?;
        self.places.remove(&conv);
        if kind == "join_group" {
            let pending = rest::join_group(&self.im, &self.me, conv).await?;
            Ok(json!({ "success": true, "group_id": g.group_id, "pending": pending }))
        } else {
            rest::leave_group(&self.im, &self.me, conv).await?;
            Ok(json!({ "success": true, "group_id": g.group_id }))
        }
    }

    /// Where `conv` is, from the caller's conversation list (cached per socket).
    async fn place(&mut self, conv: ConversationId) -> Option<Place> {
        if let Some(p) = self.places.get(&conv) {
            return Some(p.clone());
        }
        let all = rest::conversations(&self.im, &self.me).await.ok()?;
        self.places = all.values().map(|c| (c.id, Place::of(c))).collect();
        self.places.get(&conv).cloned()
    }

    /// A push as a frame (`None`: nothing IM系统 shows).
    async fn render(&mut self, push: Push) -> Option<Message> {
        match push {
            Push::Message(m) => {
                if m.event.is_some() {
                    // Membership and profile changes: the cached place may be stale.
                    self.places.remove(&m.conversation);
                    return None;
                }
                if m.sender == self.me.user {
                    let key = m.client_msg_id.as_str();
                    if let Some(at) = self.recent.iter().position(|k| k == key) {
                        self.recent.remove(at);
                        return None;
                    }
                }
                let place = self.place(m.conversation).await?;
                let kind = match place {
                    Place::Group => "new_group_message",
                    Place::Direct(_) => "new_message",
                };
                let id = views::message_id(m.conversation, m.seq);
                Some(frame(kind, views::message(&m, &place, "sent"), Some(&id)))
            }
            Push::Receipt(r) if r.user != self.me.user => {
                let status = match r.kind {
                    CursorKind::Read => "read",
                    _ => "delivered",
                };
                let id = views::message_id(r.conversation, r.seq);
                Some(frame(
                    "ack",
                    json!({ "message_id": id, "status": status, "user_id": r.user.to_string() }),
                    Some(&id),
                ))
            }
            Push::Membership(c) => {
                self.places.remove(&c.conversation.id);
                None
            }
            _ => None,
        }
    }
}
