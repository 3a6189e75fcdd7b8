//! AnyChat's WebSocket (`asyncapi.yaml`): `GET /api/v1/ws?token=<access token>`, frames
//! `{type, payload}`, on the dialects' shared socket adapter ([`crate::compat::socket`]: one
//! socket per user, a new one closes the old with 1000; the push session; at most
//! [`MAX_INFLIGHT`] sends awaiting their durable ack; 64 KB inbound frames; closed after
//! [`IDLE`] without a frame — AnyChat clients ping every 30 s).
//!
//! A missing or bad token is refused before the upgrade with HTTP 401 (in the envelope, `code:
//! 401`), as the real gateway did.
//!
//! Client frames:
//! - `ping` → `pong`.
//! - `message.send {conversationId, conversationType, contentType, content, replyTo?, atUsers?,
//!   localId?}` → `message.sent {messageId, sequence, timestamp, localId}` once the message is
//!   durable. `localId` is the send's idempotency key (a retry with it gets the same ack); a
//!   private `conversationId` may be the peer's user id ([`super::sessions::resolve`]);
//!   `atUsers` may hold `"all"`; `replyTo` is a message id of the same conversation. A send that
//!   fails answers `message.error {code, message, localId}`, the real gateway's frame (not in
//!   the asyncapi document), with AnyChat's numeric code.
//! - `message.typing {conversationId, typing}` (the real gateway's): tells the other members.
//!
//! Pushes are `notification {notificationType, timestamp, data}` ([`notification`] has the
//! mapping of every push of the core to the asyncapi's types). The socket's own sends are not
//! echoed back to it as `message.new` (its other devices get them).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{Message as WsMessage, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response as HttpResponse};
use bytes::Bytes;
use parley_protocol::frames::{
    CallAction, CallMedia, ConversationEvent, ConversationKind, CursorKind, ErrorInfo,
    FriendChange, MemberRole, Message, PresenceStatus, Push, Request, Response, SendRequest,
    MAX_TOKEN_BYTES,
};
use parley_protocol::ids::{ClientMsgId, ConversationId, Seq, UserId};
use parley_protocol::session::Identity;
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::AnyError;
use super::extract::IdIn;
use super::views;
use super::AnyChat;
use crate::compat::socket::{self, Action, Dialect, Limits};

/// Largest inbound frame.
pub const MAX_FRAME: usize = 64 * 1024;
/// Sends awaiting their durable ack per socket at most.
pub const MAX_INFLIGHT: usize = 64;
/// Silence after which a socket is closed (the real gateway's read deadline was 60 s with its
/// own pings every 54 s; we send none, so clients' 30 s pings keep the socket).
pub const IDLE: Duration = Duration::from_secs(90);
/// Keys of this socket's recent sends (their pushes are not echoed back).
const RECENT_SENDS: usize = 256;
/// Client-named conversation ids remembered per socket.
const NAMED_CACHE: usize = 1024;
/// Conversation kinds and names remembered per socket.
const KIND_CACHE: usize = 4096;

/// `?token=`.
#[derive(Debug, Deserialize)]
pub struct WsQuery {
    token: Option<String>,
}

/// The upgrade: a missing or bad token is HTTP 401 before it.
pub async fn upgrade(
    State(any): State<AnyChat>,
    query: Result<Query<WsQuery>, QueryRejection>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> HttpResponse {
    let refuse = |e: AnyError| {
        let body = json!({"code": 401, "message": e.message, "data": null});
        (axum::http::StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
    };
    let token = query
        .ok()
        .and_then(|Query(q)| q.token)
        .filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN_BYTES);
    let Some(token) = token else {
        return refuse(AnyError::unauthorized("token is required"));
    };
    let me = match any.backend.authenticate_bearer(token).await {
        Ok(me) => me,
        Err(e) => return refuse(AnyError::from(e)),
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(r) => return AnyError::invalid(r.body_text()).into_response(),
    };
    let backend = any.backend.clone();
    let sockets = any.sockets.clone();
    let dialect = AnySocket {
        any,
        me: me.clone(),
        recent: VecDeque::new(),
        kinds: HashMap::new(),
        named: HashMap::new(),
    };
    AnySocket::LIMITS
        .apply(ws)
        .on_upgrade(move |ws| socket::serve(ws, backend, me, dialect, Some(sockets)))
}

/// Now, Unix seconds.
fn now() -> u64 {
    views::now_ms() / 1000
}

/// A frame `{type, payload}`.
fn frame(kind: &str, payload: Value) -> WsMessage {
    WsMessage::Text(json!({"type": kind, "payload": payload}).to_string().into())
}

/// A `notification` frame.
pub fn notification(kind: &str, data: Value) -> WsMessage {
    frame(
        "notification",
        json!({"notificationType": kind, "timestamp": now(), "data": data}),
    )
}

/// A `message.error` frame.
fn send_error(e: &AnyError, local_id: &str) -> WsMessage {
    frame(
        "message.error",
        json!({"code": e.code, "message": e.message, "localId": local_id}),
    )
}

/// One socket's state.
struct AnySocket {
    any: AnyChat,
    me: Identity,
    /// `localId`s of this socket's recent sends.
    recent: VecDeque<String>,
    /// Conversation kinds and names, for `conversationType` and `groupName`.
    kinds: HashMap<ConversationId, (ConversationKind, String)>,
    /// Conversations by the id the client named them with (a peer's user id needs a lookup:
    /// not repeated for every send).
    named: HashMap<String, ConversationId>,
}

/// A `message.send` payload.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendPayload {
    conversation_id: IdIn,
    #[serde(default)]
    conversation_type: Option<String>,
    content_type: String,
    content: String,
    #[serde(default)]
    reply_to: Option<String>,
    #[serde(default)]
    at_users: Vec<String>,
    #[serde(default)]
    local_id: Option<String>,
}

/// A `message.typing` payload.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypingPayload {
    conversation_id: IdIn,
    #[serde(default = "yes")]
    typing: bool,
}

fn yes() -> bool {
    true
}

impl Dialect for AnySocket {
    type Pending = String;
    const LIMITS: Limits = Limits {
        max_frame: MAX_FRAME,
        max_inflight: MAX_INFLIGHT,
        idle: IDLE,
    };
    const FELL_BEHIND: &'static str = "fell behind: reconnect and POST /api/v1/sync";

    async fn frame(&mut self, text: &str) -> Action<String> {
        #[derive(Deserialize)]
        struct Incoming {
            #[serde(rename = "type")]
            kind: String,
            #[serde(default)]
            payload: Value,
        }
        let incoming: Incoming = match serde_json::from_str(text) {
            Ok(i) => i,
            Err(e) => {
                let e = AnyError::invalid(format!("not a frame: {e}"));
                return Action::Reply(send_error(&e, ""));
            }
        };
        match incoming.kind.as_str() {
            "ping" => Action::Reply(frame("pong", Value::Null)),
            "message.send" => match self.send(incoming.payload).await {
                Ok((request, local_id)) => Action::Run(request, local_id),
                Err((e, local_id)) => Action::Reply(send_error(&e, &local_id)),
            },
            "message.typing" => {
                let Ok(t) = serde_json::from_value::<TypingPayload>(incoming.payload) else {
                    return Action::Nothing;
                };
                if !t.typing {
                    return Action::Nothing;
                }
                let any = self.any.clone();
                match super::sessions::resolve(&any, &self.me, &t.conversation_id.text()).await {
                    Ok(conversation) => {
                        Action::Run(Request::Typing { conversation }, String::new())
                    }
                    Err(e) => Action::Reply(send_error(&e, "")),
                }
            }
            other => {
                let e = AnyError::invalid(format!("unknown frame type {other:?}"));
                Action::Reply(send_error(&e, ""))
            }
        }
    }

    fn binary(&mut self) -> Option<WsMessage> {
        Some(send_error(&AnyError::invalid("frames are JSON text"), ""))
    }

    fn answer(
        &mut self,
        local_id: String,
        result: Result<Response, ErrorInfo>,
    ) -> Option<WsMessage> {
        match result {
            Ok(Response::SendAck(ack)) => Some(frame(
                "message.sent",
                json!({
                    "messageId": views::message_id(ack.conversation, ack.seq),
                    "sequence": ack.seq.get(),
                    "timestamp": views::secs(ack.server_time_ms),
                    "localId": local_id,
                }),
            )),
            // A typing notice, answered silently.
            Ok(_) => None,
            Err(e) => Some(send_error(&AnyError::from(e), &local_id)),
        }
    }

    async fn push(&mut self, push: Push) -> Option<WsMessage> {
        match push {
            Push::Message(m) => self.message(m).await,
            other => render_other(other, self.me.user),
        }
    }
}

impl AnySocket {
    /// The request of a `message.send`, and its `localId` (the error carries it too).
    async fn send(&mut self, payload: Value) -> Result<(Request, String), (AnyError, String)> {
        let local_id = payload
            .get("localId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let fail = |e: AnyError| (e, local_id.clone());
        let p: SendPayload = serde_json::from_value(payload)
            .map_err(|e| fail(AnyError::invalid(format!("bad message.send: {e}"))))?;
        let conv_text = p.conversation_id.text();
        let conversation = match p.conversation_type.as_deref() {
            Some("group") => views::parse_conversation(&conv_text)
                .ok_or_else(|| fail(AnyError::not_found("no such conversation")))?,
            _ => match self.named.get(&conv_text) {
                Some(conv) => *conv,
                None => {
                    let conv = super::sessions::resolve(&self.any, &self.me, &conv_text)
                        .await
                        .map_err(fail)?;
                    if self.named.len() == NAMED_CACHE {
                        self.named.clear();
                    }
                    self.named.insert(conv_text.clone(), conv);
                    conv
                }
            },
        };
        let content_type = views::parse_content_type(&p.content_type).ok_or_else(|| {
            fail(AnyError::invalid(format!(
                "contentType {:?} is not one of text, image, audio, video, file, location, custom",
                p.content_type
            )))
        })?;
        let reply_to = match p.reply_to.as_deref().filter(|s| !s.is_empty()) {
            None => Seq::ZERO,
            Some(id) => match views::parse_message(id) {
                Some((conv, seq)) if conv == conversation => seq,
                _ => {
                    return Err(fail(AnyError::invalid(
                        "replyTo is not a message of this conversation",
                    )))
                }
            },
        };
        let mut mentions = Vec::new();
        let mut mention_all = false;
        for u in &p.at_users {
            match u.as_str() {
                "all" | "@all" | "-1" => mention_all = true,
                id => mentions.push(views::parse_user(id).ok_or_else(|| {
                    fail(AnyError::invalid(format!("atUsers: {id} is not a user id")))
                })?),
            }
        }
        let key = match p.local_id.filter(|s| !s.is_empty()) {
            Some(k) => k,
            None => {
                let mut raw = [0u8; 8];
                rand::thread_rng().fill_bytes(&mut raw);
                raw.iter().map(|b| format!("{b:02x}")).collect()
            }
        };
        let client_msg_id =
            ClientMsgId::try_from(key.clone()).map_err(|e| fail(AnyError::invalid(e.message())))?;
        if self.recent.len() == RECENT_SENDS {
            self.recent.pop_front();
        }
        self.recent.push_back(key.clone());
        let request = Request::Send(SendRequest {
            conversation,
            content_type,
            content: Bytes::from(p.content.into_bytes()),
            client_msg_id,
            reply_to,
            mentions,
            mention_all,
        });
        Ok((request, key))
    }

    /// The kind of `conv` (looked up in the caller's list once per socket and conversation).
    async fn kind(&mut self, conv: ConversationId) -> Option<(ConversationKind, String)> {
        if let Some(k) = self.kinds.get(&conv) {
            return Some(k.clone());
        }
        if let Ok((convs, _)) = super::sessions::all(&self.any, &self.me).await {
            if self.kinds.len() + convs.len() > KIND_CACHE {
                self.kinds.clear();
            }
            self.kinds
                .extend(convs.into_iter().map(|c| (c.id, (c.kind, c.name))));
        }
        self.kinds.get(&conv).cloned()
    }

    /// A log entry as a notification.
    async fn message(&mut self, m: Message) -> Option<WsMessage> {
        if m.sender == self.me.user && m.event.is_none() {
            let key = m.client_msg_id.to_string();
            if let Some(at) = self.recent.iter().position(|k| *k == key) {
                self.recent.remove(at);
                return None;
            }
        }
        match m.event.as_deref() {
            None => {
                let kind = self.kind(m.conversation).await.map(|(k, _)| k);
                let data = views::message(&m, kind)?;
                Some(notification("message.new", data))
            }
            Some(event) => {
                // The group's name, for `group.invited` (the invited member's first news of it).
                let invited = matches!(event, ConversationEvent::Membership { added, .. }
                    if added.contains(&self.me.user) && m.sender != self.me.user);
                let name = match invited {
                    true => self.kind(m.conversation).await.map(|(_, n)| n),
                    false => None,
                };
                render_event(&m, event, self.me.user, name.unwrap_or_default())
            }
        }
    }
}

/// `"owner"`, `"admin"` or `"member"`.
fn role_name(role: MemberRole) -> &'static str {
    match role {
        MemberRole::Owner => "owner",
        MemberRole::Manager => "admin",
        MemberRole::Member | MemberRole::Unspecified => "member",
    }
}

fn users(v: &[UserId]) -> Vec<String> {
    v.iter().map(|u| views::user_id(*u)).collect()
}

/// A conversation event as a notification (`None`: none of the asyncapi's types fits it).
fn render_event(
    m: &Message,
    event: &ConversationEvent,
    me: UserId,
    group_name: String,
) -> Option<WsMessage> {
    let group = views::conversation_id(m.conversation);
    let operator = views::user_id(m.sender);
    Some(match event {
        ConversationEvent::Membership { added, removed } => {
            if added.contains(&me) && m.sender != me {
                notification(
                    "group.invited",
                    json!({"groupId": group, "inviterId": operator, "groupName": group_name}),
                )
            } else if !added.is_empty() {
                notification(
                    "group.member_joined",
                    json!({"groupId": group, "userIds": users(added), "operatorId": operator}),
                )
            } else {
                notification(
                    "group.member_left",
                    json!({"groupId": group, "userIds": users(removed), "operatorId": operator}),
                )
            }
        }
        // A new group's first entry: its members other than the creator were put in it by the
        // creator (`group.invited`, as for members added later); the creator's other devices
        // see who it started with.
        ConversationEvent::Created { name, members } => {
            if m.sender != me {
                notification(
                    "group.invited",
                    json!({"groupId": group, "inviterId": operator, "groupName": name,
                           "memberIds": users(members), "created": true}),
                )
            } else {
                notification(
                    "group.member_joined",
                    json!({"groupId": group, "userIds": users(members), "operatorId": operator,
                           "groupName": name, "created": true}),
                )
            }
        }
        ConversationEvent::GroupProfile(c) => {
            let mut data = json!({"groupId": group, "operatorId": operator});
            if let Some(name) = &c.name {
                data["name"] = json!(name.to_string());
            }
            if let Some(a) = &c.announcement {
                data["announcement"] = json!(a);
            }
            if let Some(d) = &c.description {
                data["description"] = json!(d);
            }
            if let Some(a) = &c.avatar_file_id {
                data["avatar"] = json!(views::avatar(a));
            }
            notification("group.info_updated", data)
        }
        ConversationEvent::Role { user, role, .. } => notification(
            "group.role_changed",
            json!({"groupId": group, "userId": views::user_id(*user),
                   "role": role_name(*role), "operatorId": operator}),
        ),
        ConversationEvent::Mute { user, until_ms } => notification(
            "group.muted",
            json!({"groupId": group,
                   "userId": user.map_or_else(String::new, views::user_id),
                   "all": user.is_none(), "muted": *until_ms != 0,
                   "mutedUntil": views::secs(*until_ms), "operatorId": operator}),
        ),
        ConversationEvent::Disband => notification(
            "group.disbanded",
            json!({"groupId": group, "operatorId": operator}),
        ),
        ConversationEvent::Recall(seq) => notification(
            "message.recalled",
            json!({"messageId": views::message_id(m.conversation, *seq),
                   "conversationId": group, "sequence": seq.get(), "operatorId": operator}),
        ),
        ConversationEvent::Friend(f) => {
            let (from, to) = (views::user_id(f.from), views::user_id(f.to));
            let other = if f.from == me { f.to } else { f.from };
            match f.change {
                // The request id is the other user's, as `/friends/requests` lists it.
                FriendChange::Requested => notification(
                    "friend.request",
                    json!({"requestId": other.get(), "fromUserId": from, "toUserId": to,
                           "message": f.message}),
                ),
                FriendChange::Accepted | FriendChange::Rejected => {
                    let accepted = f.change == FriendChange::Accepted;
                    notification(
                        "friend.request_handled",
                        json!({"requestId": other.get(), "fromUserId": from, "toUserId": to,
                               "accepted": accepted,
                               "action": if accepted { "accept" } else { "reject" }}),
                    )
                }
                FriendChange::Removed => notification(
                    "friend.deleted",
                    json!({"userId": views::user_id(other), "operatorId": from}),
                ),
                FriendChange::Blocked | FriendChange::Unblocked => notification(
                    "friend.blacklist_changed",
                    json!({"userId": views::user_id(other),
                           "blocked": f.change == FriendChange::Blocked}),
                ),
                FriendChange::Unspecified => return None,
            }
        }
        ConversationEvent::Prefs {
            conversation,
            pinned,
            muted,
            hidden_upto,
        } => {
            let session = views::conversation_id(*conversation);
            if let Some(pinned) = pinned {
                notification(
                    "session.pin_updated",
                    json!({"sessionId": session, "isPinned": pinned}),
                )
            } else if let Some(muted) = muted {
                notification(
                    "session.mute_updated",
                    json!({"sessionId": session, "isMuted": muted}),
                )
            } else if hidden_upto.is_some_and(|s| s.get() != 0) {
                notification("session.deleted", json!({"sessionId": session}))
            } else {
                return None;
            }
        }
        ConversationEvent::Call(record) => notification(
            "livekit.call_status",
            json!({"callId": record.call.to_string(), "conversationId": group,
                   "callerId": views::user_id(record.caller), "status": "ended",
                   "duration": record.duration_ms / 1000}),
        ),
        // Edits, reactions, nicknames, join requests and rejections, deletions for oneself:
        // the asyncapi document has no notification for them (history and sync show them).
        _ => return None,
    })
}

/// The pushes other than log entries, as notifications.
fn render_other(push: Push, me: UserId) -> Option<WsMessage> {
    Some(match push {
        Push::Receipt(r) if r.kind == CursorKind::Read && r.user == me => notification(
            "session.unread_updated",
            json!({"sessionId": views::conversation_id(r.conversation),
                   "unreadCount": r.unread, "readSequence": r.seq.get()}),
        ),
        Push::Receipt(r) if r.kind == CursorKind::Read => notification(
            "message.read_receipt",
            json!({"conversationId": views::conversation_id(r.conversation),
                   "userId": views::user_id(r.user), "lastReadSeq": r.seq.get(),
                   "readAt": now()}),
        ),
        Push::Typing { conversation, user } => notification(
            "message.typing",
            json!({"conversationId": views::conversation_id(conversation),
                   "fromUserId": views::user_id(user), "typing": true}),
        ),
        Push::Profile(p) => {
            let kind = match p.user == Some(me) {
                true => "user.profile_updated",
                false => "user.friend_profile_changed",
            };
            notification(kind, views::user_profile(&p))
        }
        Push::Presence(p) => {
            let status = match p.status {
                PresenceStatus::Offline => "offline",
                PresenceStatus::Away => "away",
                _ => "online",
            };
            notification(
                "user.status_changed",
                json!({"userId": views::user_id(p.user), "status": status,
                       "lastSeen": views::secs(p.last_seen_ms)}),
            )
        }
        Push::Call(c) => {
            let call_type = match c.media {
                CallMedia::Video => "video",
                _ => "audio",
            };
            let base = json!({"callId": c.call.to_string(),
                              "conversationId": views::conversation_id(c.conversation),
                              "callerId": views::user_id(c.from), "callType": call_type});
            let (kind, status) = match c.action {
                CallAction::Invite => ("livekit.call_invite", "ringing"),
                CallAction::Reject => ("livekit.call_rejected", "rejected"),
                CallAction::Ringing => ("livekit.call_status", "ringing"),
                CallAction::Accept => ("livekit.call_status", "accepted"),
                CallAction::Cancel => ("livekit.call_status", "cancelled"),
                CallAction::End => ("livekit.call_status", "ended"),
                CallAction::Ice | CallAction::Unspecified => return None,
            };
            let mut data = base;
            data["status"] = json!(status);
            notification(kind, data)
        }
        Push::SyncNeeded => notification("sync.request", json!({})),
        // Membership changes also arrive as the group's log entries, rendered there; receipts
        // of delivery are not shown; errors not tied to a frame are logged by the core.
        _ => return None,
    })
}
