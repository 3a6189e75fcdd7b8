//! Wetty's push WebSocket, `GET /ws` and `GET /ws/chats` (the document's endpoint), on the
//! dialects' adapter ([`crate::compat::socket`]). Receiving only, as in the document: sends go
//! over HTTP for durability.
//!
//! - Authentication before the upgrade, like every route ([`super::Caller`]): `?uid=` (an
//!   access token of ours, or with `[compat] trust_user_header` on a user id), `?token=`, an
//!   `X-User-Id` header or `Authorization: Bearer`. Missing or bad: a plain-text `401` and no
//!   upgrade.
//! - in: `ping` (the text, or `{"type":"ping"}`), answered `pong` in the same form. Anything
//!   else is answered `{"type":"error","payload":{"message"}}`.
//! - out: `{"type":"message","payload":<message>}` for every message of the user's chats (its
//!   own from any client included: Wetty shows a chat from the pushes); `{"type":"recall",
//!   "payload":{chat_id, message_id}}` when one is recalled (the document's `on_recall`);
//!   `{"type":"notify","payload":{kind, chat_id, ...}}` for the rest (`on_notify`: members
//!   added or removed, roles, mutes, group profile changes, a disband, join requests, friend
//!   requests and answers).
//! - A socket without any frame for 300 s is closed (clients ping every 30 s); one whose
//!   session fell behind is closed with 1013 (the client re-reads its chats' history). A user
//!   may have many sockets (one per tab or device).

use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response as HttpResponse};
use parley_protocol::frames::{
    ConversationEvent, ErrorInfo, FriendChange, Message, Push, Response,
};
use serde_json::{json, Value};

use super::views;
use super::{Caller, Wetty, WtError};
use crate::compat::socket::{self, Action, Limits};

/// Largest inbound frame (clients only ping).
pub const MAX_FRAME: usize = 4 * 1024;
/// Silence after which a socket is pruned.
pub const IDLE: Duration = Duration::from_secs(300);

/// The upgrade (authenticated first: a plain-text `401` otherwise).
pub async fn upgrade(
    State(wt): State<Wetty>,
    caller: Result<Caller, WtError>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> HttpResponse {
    let me = match caller {
        Ok(Caller(me)) => me,
        Err(e) => return e.into_response(),
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(r) => return WtError::invalid(r.body_text()).into_response(),
    };
    <Pushes as socket::Dialect>::LIMITS
        .apply(ws)
        .on_upgrade(move |ws| socket::serve(ws, wt.backend.clone(), me, Pushes, None))
}

/// A frame `{type, payload}`.
fn frame(kind: &str, payload: Value) -> WsMessage {
    WsMessage::Text(
        json!({ "type": kind, "payload": payload })
            .to_string()
            .into(),
    )
}

/// Wetty's side of the adapter (no per-socket state: every push renders alone).
struct Pushes;

impl socket::Dialect for Pushes {
    type Pending = std::convert::Infallible;
    const LIMITS: Limits = Limits {
        max_frame: MAX_FRAME,
        max_inflight: 1,
        idle: IDLE,
    };
    const FELL_BEHIND: &'static str = "fell behind: reconnect and reload the chats";

    async fn frame(&mut self, text: &str) -> Action<Self::Pending> {
        let text = text.trim();
        if text == "ping" {
            return Action::Reply(WsMessage::Text("pong".into()));
        }
        let kind = serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|v| v["type"].as_str().map(str::to_owned));
        Action::Reply(match kind.as_deref() {
            Some("ping") => WsMessage::Text(json!({ "type": "pong" }).to_string().into()),
            Some(other) => frame(
                "error",
                json!({ "message": format!("unknown frame type {other:?}: only ping is read") }),
            ),
            None => frame(
                "error",
                json!({ "message": "frames are ping, or JSON {\"type\":\"ping\"}" }),
            ),
        })
    }

    fn binary(&mut self) -> Option<WsMessage> {
        Some(frame("error", json!({ "message": "frames are text" })))
    }

    fn answer(
        &mut self,
        pending: Self::Pending,
        _: Result<Response, ErrorInfo>,
    ) -> Option<WsMessage> {
        match pending {}
    }

    async fn push(&mut self, push: Push) -> Option<WsMessage> {
        render(push)
    }
}

/// A push as Wetty's frame (`None`: nothing Wetty shows: receipts, typing, presence, calls).
fn render(push: Push) -> Option<WsMessage> {
    match push {
        Push::Message(m) => match m.event.as_deref() {
            None => Some(frame("message", views::message(&m))),
            Some(event) => event_frame(&m, event),
        },
        Push::Membership(c) => Some(frame(
            "notify",
            json!({
                "kind": "members",
                "chat_id": c.conversation.id.to_string(),
                "added": ids(&c.added),
                "removed": ids(&c.removed),
                "by": c.by.to_string(),
            }),
        )),
        _ => None,
    }
}

fn ids(users: &[parley_protocol::ids::UserId]) -> Vec<String> {
    users.iter().map(ToString::to_string).collect()
}

/// A conversation event as `recall` or `notify` (`None` for the ones a Wetty client has no
/// use for: edits, nicknames, a reader's own deletions and preferences, call records).
fn event_frame(m: &Message, event: &ConversationEvent) -> Option<WsMessage> {
    let chat = m.conversation.to_string();
    let by = m.sender.to_string();
    let payload = match event {
        ConversationEvent::Recall(seq) => {
            return Some(frame(
                "recall",
                json!({
                    "chat_id": chat,
                    "message_id": views::message_id_json(m.conversation, *seq),
                    "by": by,
                }),
            ))
        }
        // The membership push says it (with the chat), for members old and new alike.
        ConversationEvent::Membership { .. } => return None,
        ConversationEvent::GroupProfile(_) => json!({ "kind": "group_profile" }),
        ConversationEvent::Role { user, role, .. } => json!({
            "kind": "role",
            "uid": user.to_string(),
            "role": views::role_name(*role),
        }),
        ConversationEvent::Mute { user, until_ms } => json!({
            "kind": "mute",
            "uid": user.map(|u| u.to_string()),
            "muted": *until_ms > 0,
            "until": (*until_ms > 0).then(|| views::rfc3339(*until_ms)),
        }),
        ConversationEvent::Disband => json!({ "kind": "disband" }),
        ConversationEvent::JoinRequest(r) => json!({
            "kind": "join_request",
            "uid": r.user.to_string(),
            "apply_msg": r.message,
        }),
        ConversationEvent::JoinRejected(user) => {
            json!({ "kind": "join_rejected", "uid": user.to_string() })
        }
        ConversationEvent::Friend(f) => {
            let change = match f.change {
                FriendChange::Requested => "requested",
                FriendChange::Accepted => "accepted",
                FriendChange::Rejected => "rejected",
                FriendChange::Removed => "removed",
                _ => return None,
            };
            json!({
                "kind": "friend",
                "change": change,
                "from_uid": f.from.to_string(),
                "to_uid": f.to.to_string(),
                "apply_msg": f.message,
            })
        }
        _ => return None,
    };
    let mut payload = payload;
    payload["chat_id"] = json!(chat);
    payload["by"] = json!(by);
    payload["created_at"] = json!(views::rfc3339(m.server_time_ms));
    Some(frame("notify", payload))
}
