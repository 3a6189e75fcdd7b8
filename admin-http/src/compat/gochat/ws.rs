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
//! The pushes come from an in-process session of the token's device
//! ([`crate::Backend::open_session`]), the same fan-out every transport gets. One socket per
//! user: a new one closes the old (close code 1000). A socket whose session fell behind (its
//! bounded push queue overflowed) is closed with 1013: GoChat clients reconnect and fetch what
//! is unread, as their document says, and the store has it all. Without any frame for
//! [`IDLE`] the socket is closed (clients ping every 30 s).
//!
//! Sends run concurrently (at most [`MAX_INFLIGHT`] per socket, then the socket is not read
//! until one is answered), so a burst shares group commits instead of waiting for one fsync
//! each.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::stream::FuturesUnordered;
use futures::{Future, SinkExt, StreamExt};
use parley_protocol::frames::Response as Answer;
use parley_protocol::frames::{ErrorInfo, PresenceStatus, Push, Request, MAX_TOKEN_BYTES};
use parley_protocol::ids::UserId;
use parley_protocol::session::Identity;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::conversations::{read_up_to, send_request, ReadBody, SendBody};
use super::error::GoError;
use super::extract::{conversation, IdIn};
use super::{views, GoChat};
use crate::compat::call;
use crate::SessionEvent;

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

static NEXT_SOCKET: AtomicU64 = AtomicU64::new(1);

/// A user's current socket, and how to close it.
pub struct Slot {
    id: u64,
    close: oneshot::Sender<()>,
}

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
    ws.max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .on_upgrade(move |socket| run(go, me, socket))
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

type Sending = Pin<Box<dyn Future<Output = (Value, Result<Answer, ErrorInfo>)> + Send>>;

/// One socket's state.
struct Conn {
    go: GoChat,
    me: Identity,
    profiles: HashMap<UserId, Value>,
    recent: VecDeque<String>,
    inflight: FuturesUnordered<Sending>,
}

/// What ends a socket: a close frame to send, or nothing (the peer is gone).
type End = Option<(u16, &'static str)>;

async fn run(go: GoChat, me: Identity, socket: WebSocket) {
    let id = NEXT_SOCKET.fetch_add(1, Ordering::Relaxed);
    let (close, closed) = oneshot::channel();
    let old = lock(&go).insert(me.user, Slot { id, close });
    if let Some(old) = old {
        let _ = old.close.send(());
    }
    let session = go.backend.open_session(me.clone());
    let (mut tx, mut rx) = socket.split();
    let mut conn = Conn {
        go: go.clone(),
        me: me.clone(),
        profiles: HashMap::new(),
        recent: VecDeque::new(),
        inflight: FuturesUnordered::new(),
    };
    let end = conn.serve(&mut tx, &mut rx, &*session, closed).await;
    if let Some((code, reason)) = end {
        let close = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = tx.send(Message::Close(Some(close))).await;
    }
    drop(session);
    let mut sockets = lock(&go);
    if sockets.get(&me.user).is_some_and(|s| s.id == id) {
        sockets.remove(&me.user);
    }
}

fn lock(go: &GoChat) -> std::sync::MutexGuard<'_, HashMap<UserId, Slot>> {
    go.sockets.lock().unwrap_or_else(|e| e.into_inner())
}

type Tx = futures::stream::SplitSink<WebSocket, Message>;
type Rx = futures::stream::SplitStream<WebSocket>;

impl Conn {
    async fn serve(
        &mut self,
        tx: &mut Tx,
        rx: &mut Rx,
        session: &dyn crate::PushSession,
        mut replaced: oneshot::Receiver<()>,
    ) -> End {
        let idle = tokio::time::sleep(IDLE);
        tokio::pin!(idle);
        loop {
            // Every arm is cancel-safe: the session's `next`, the stream's and the futures
            // set's `next`, the oneshot and the timer lose nothing when another arm wins.
            tokio::select! {
                _ = &mut replaced => return Some((1000, "replaced by a newer connection")),
                event = session.next() => match event {
                    SessionEvent::Pushes(pushes) => {
                        for push in pushes {
                            let Ok(push) = push.push() else { continue };
                            match self.render(push).await {
                                Ok(Some(out)) => {
                                    if tx.send(out).await.is_err() {
                                        return None;
                                    }
                                }
                                Ok(None) => {}
                                Err(end) => return end,
                            }
                        }
                    }
                    SessionEvent::SyncNeeded => {
                        return Some((1013, "fell behind: reconnect and fetch what is unread"))
                    }
                    SessionEvent::Replaced => return Some((1000, "replaced by a newer connection")),
                    SessionEvent::SignedOut => return Some((1008, "signed out")),
                },
                Some((details, result)) = self.inflight.next(), if !self.inflight.is_empty() => {
                    let out = acked(details, result);
                    if tx.send(out).await.is_err() {
                        return None;
                    }
                }
                message = rx.next(), if self.inflight.len() < MAX_INFLIGHT => {
                    idle.as_mut().reset(tokio::time::Instant::now() + IDLE);
                    let out = match message {
                        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
                        Some(Ok(Message::Text(text))) => self.handle(text.as_str()).await,
                        Some(Ok(Message::Binary(_))) => Some(error(
                            "INVALID_MESSAGE",
                            "frames are JSON text",
                            json!({}),
                        )),
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => None,
                    };
                    if let Some(out) = out {
                        if tx.send(out).await.is_err() {
                            return None;
                        }
                    }
                }
                () = &mut idle => return Some((1000, "no frame for 90 seconds")),
            }
        }
    }

    /// Answers one client frame (sends are answered later, by [`acked`]).
    async fn handle(&mut self, text: &str) -> Option<Message> {
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
                return Some(error(
                    "INVALID_MESSAGE",
                    &format!("not a frame: {e}"),
                    json!({}),
                ))
            }
        };
        match incoming.kind.as_str() {
            "ping" => Some(frame("pong", None)),
            "send-message" => self.send(incoming.data),
            "mark-read" => self.mark_read(incoming.data).await,
            other => Some(error(
                "INVALID_MESSAGE",
                &format!("unknown frame type {other:?}"),
                json!({ "type": other }),
            )),
        }
    }

    fn send(&mut self, data: Value) -> Option<Message> {
        let body: SendBody = match serde_json::from_value(data) {
            Ok(b) => b,
            Err(e) => {
                return Some(error(
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
            Err(e) => return Some(failure(&e, details)),
        };
        details["client_msg_id"] = json!(key);
        if self.recent.len() == RECENT_SENDS {
            self.recent.pop_front();
        }
        self.recent.push_back(key);
        let backend = self.go.backend.clone();
        let me = self.me.clone();
        self.inflight.push(Box::pin(async move {
            let result = call(&*backend, Some(me), request).await;
            (details, result)
        }));
        None
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

    /// A push as a frame (`Ok(None)`: nothing GoChat shows; `Err`: the socket ends).
    async fn render(&mut self, push: Push) -> Result<Option<Message>, End> {
        Ok(match push {
            Push::Message(m) => {
                let own = m.sender == self.me.user;
                let key = m.client_msg_id.to_string();
                if own {
                    if let Some(at) = self.recent.iter().position(|k| *k == key) {
                        self.recent.remove(at);
                        return Ok(None);
                    }
                }
                let Some(mut data) = views::message(&m) else {
                    return Ok(None);
                };
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
            Push::GoAway { .. } => return Err(Some((1001, "the server is going away"))),
            _ => None,
        })
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
