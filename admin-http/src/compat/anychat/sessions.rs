//! `/sessions/*`: the caller's conversation list ("sessions"), unread totals, one session,
//! hiding, muting, pinning, marking read, and `GET /sessions/{id}/messages` (beyond the
//! contract: real clients page history with it).
//!
//! A session is one of our conversations as one member sees it: `{sessionId, sessionType:
//! "single"|"group", targetId, conversationId, conversationType: "private"|"group", name,
//! avatar, lastMessage, lastMessageTime, unreadCount, isPinned, isMuted, updatedAt}` (times in
//! seconds). `sessionId` and `conversationId` are the conversation's UUID (for a group, also its
//! `groupId`); `targetId` is the peer's user id in a 1:1 session, the group's id in a group.
//!
//! Where a session or conversation is named ([`resolve`]), AnyChat clients may send what they
//! built themselves for 1:1 chats: the peer's user id, or the two users' ids joined by `_` or
//! `:`. Those open (or find) the direct conversation with that peer, so every client-made id
//! for a pair lands in the same conversation.

use std::collections::HashMap;

use axum::extract::State;
use parley_protocol::frames::{
    ConversationInfo, ConversationKind, ConversationPrefs, CursorKind, PeerRef, Request, Response,
};
use parley_protocol::ids::{ConversationId, Seq, UserId};
use parley_protocol::session::Identity;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::AnyError;
use super::extract::{self, IdIn, MaybeBody, Me, Path, Query};
use super::views::{self, ok, Reply};
use super::AnyChat;
use crate::compat::unexpected;

/// The conversation `id` names for `me`: a conversation id (UUID or decimal), or a 1:1 id a
/// client built from user ids (see the module docs). `404` when it names none.
pub(super) async fn resolve(
    any: &AnyChat,
    me: &Identity,
    id: &str,
) -> Result<ConversationId, AnyError> {
    if let Some(conv) = views::parse_conversation(id) {
        return Ok(conv);
    }
    let peer = match views::from_uuid(views::Kind::User, id.trim()) {
        Some(_) => views::parse_user(id),
        None => {
            let users: Vec<UserId> = id
                .split(['_', ':'])
                .filter_map(|part| {
                    views::from_uuid(views::Kind::User, part).and(views::parse_user(part))
                })
                .collect();
            match users.as_slice() {
                [a, b] if *a == me.user => Some(*b),
                [a, b] if *b == me.user => Some(*a),
                _ => None,
            }
        }
    };
    let peer = peer.ok_or_else(|| AnyError::not_found("no such conversation"))?;
    match any.call(me, Request::OpenDirect(PeerRef::User(peer))).await {
        Ok(Response::Conversation(c)) => Ok(c.id),
        Ok(other) => Err(unexpected(&other).into()),
        Err(e) if e.code == 400 => Err(AnyError::not_found("no such conversation")),
        Err(e) => Err(e),
    }
}

/// Every conversation of `me`'s list (hidden ones and the notices left out), newest first.
pub(super) async fn all(
    any: &AnyChat,
    me: &Identity,
) -> Result<(Vec<ConversationInfo>, u64), AnyError> {
    let request = Request::ListConversations {
        limit: 0,
        offset: 0,
    };
    match any.call(me, request).await? {
        Response::ConversationList {
            conversations,
            total_unread,
            ..
        } => Ok((conversations, total_unread)),
        other => Err(unexpected(&other).into()),
    }
}

/// The nicknames and avatars of the peers of `convs`' 1:1 conversations.
async fn peers(
    any: &AnyChat,
    me: &Identity,
    convs: &[ConversationInfo],
) -> Result<HashMap<UserId, (String, String)>, AnyError> {
    let ids: Vec<UserId> = convs
        .iter()
        .filter_map(|c| views::peer(c, me.user))
        .collect();
    let mut out = HashMap::new();
    for chunk in ids.chunks(parley_protocol::frames::MAX_PROFILES) {
        if let Response::Profiles(ps) = any.call(me, Request::GetProfiles(chunk.to_vec())).await? {
            for p in ps {
                if let Some(u) = p.user {
                    let avatar = views::avatar(&p.avatar_file_id).to_owned();
                    out.insert(u, (p.nickname, avatar));
                }
            }
        }
    }
    Ok(out)
}

/// A session as `me` sees it.
pub(super) fn session(
    c: &ConversationInfo,
    me: UserId,
    peers: &HashMap<UserId, (String, String)>,
) -> Value {
    let id = views::conversation_id(c.id);
    let (kind, target, name, avatar) = match views::peer(c, me) {
        Some(peer) => {
            let (name, avatar) = peers.get(&peer).cloned().unwrap_or_default();
            ("single", views::user_id(peer), name, avatar)
        }
        None => {
            let avatar = c
                .group
                .as_deref()
                .map(|g| views::avatar(&g.avatar_file_id).to_owned())
                .unwrap_or_default();
            let kind = match c.kind {
                ConversationKind::Group => "group",
                _ => "single",
            };
            (kind, id.clone(), c.name.clone(), avatar)
        }
    };
    let last = c
        .last_message
        .as_deref()
        .and_then(|m| views::message(m, Some(c.kind)));
    let last_time = c
        .last_message
        .as_deref()
        .map_or(0, |m| views::secs(m.server_time_ms));
    json!({
        "sessionId": id,
        "conversationId": id,
        "sessionType": kind,
        "conversationType": views::conversation_type(c.kind),
        "targetId": target,
        "name": name,
        "avatar": avatar,
        "lastMessage": last,
        "lastMessageTime": last_time,
        "lastSequence": c.head.get(),
        "readSequence": c.read.get(),
        "unreadCount": c.unread,
        "isPinned": c.pinned,
        "isMuted": c.muted,
        "updatedAt": last_time,
    })
}

/// `GET /sessions?limit=&updatedBefore=`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    limit: Option<u32>,
    updated_before: Option<u64>,
}

/// `GET /sessions`: `{sessions, total}`, newest first (pinned ones first), at most `limit`
/// (20 by default, 100 at most) updated before `updatedBefore` (seconds) if given.
pub async fn list(State(any): State<AnyChat>, Me(me): Me, Query(q): Query<ListQuery>) -> Reply {
    let limit = extract::limit(q.limit, 20, 100) as usize;
    let (mut convs, _) = all(&any, &me).await?;
    if let Some(before) = q.updated_before.filter(|b| *b != 0) {
        convs.retain(|c| {
            c.last_message
                .as_deref()
                .is_some_and(|m| views::secs(m.server_time_ms) < before)
        });
    }
    let total = convs.len();
    convs.truncate(limit);
    let peers = peers(&any, &me, &convs).await?;
    let sessions: Vec<Value> = convs.iter().map(|c| session(c, me.user, &peers)).collect();
    ok(json!({"total": total, "sessions": sessions}))
}

/// `GET /sessions/unread/total`: `{totalUnread}` (muted conversations do not count).
pub async fn unread_total(State(any): State<AnyChat>, Me(me): Me) -> Reply {
    let (_, total) = all(&any, &me).await?;
    ok(json!({"totalUnread": total}))
}

/// The session `id` names, from `me`'s list (`404` when it is not there).
async fn one(any: &AnyChat, me: &Identity, id: &str) -> Result<ConversationInfo, AnyError> {
    let conv = resolve(any, me, id).await?;
    let (convs, _) = all(any, me).await?;
    convs
        .into_iter()
        .find(|c| c.id == conv)
        .ok_or_else(|| AnyError::not_found("no such session"))
}

/// `GET /sessions/{sessionId}`.
pub async fn get(State(any): State<AnyChat>, Me(me): Me, Path(id): Path<String>) -> Reply {
    let c = one(&any, &me, &id).await?;
    let peers = peers(&any, &me, std::slice::from_ref(&c)).await?;
    ok(session(&c, me.user, &peers))
}

async fn set_prefs(any: &AnyChat, me: &Identity, id: &str, prefs: ConversationPrefs) -> Reply {
    let conversation = resolve(any, me, id).await?;
    let request = Request::SetConversationPrefs {
        conversation,
        prefs,
    };
    any.call(me, request).await?;
    ok(json!({}))
}

/// `DELETE /sessions/{sessionId}`: hides the session until its next message (history stays).
pub async fn delete(State(any): State<AnyChat>, Me(me): Me, Path(id): Path<String>) -> Reply {
    let prefs = ConversationPrefs {
        hidden: Some(true),
        ..ConversationPrefs::default()
    };
    set_prefs(&any, &me, &id, prefs).await
}

/// `PUT /sessions/{sessionId}/mute`: `{muted}`.
#[derive(Debug, Default, Deserialize)]
pub struct MutedBody {
    muted: Option<bool>,
}

/// `PUT /sessions/{sessionId}/mute`.
pub async fn mute(
    State(any): State<AnyChat>,
    Me(me): Me,
    Path(id): Path<String>,
    MaybeBody(b): MaybeBody<MutedBody>,
) -> Reply {
    let muted = b
        .muted
        .ok_or_else(|| AnyError::invalid("muted is required"))?;
    let prefs = ConversationPrefs {
        muted: Some(muted),
        ..ConversationPrefs::default()
    };
    set_prefs(&any, &me, &id, prefs).await
}

/// `PUT /sessions/{sessionId}/pin`: `{pinned}`.
#[derive(Debug, Default, Deserialize)]
pub struct PinnedBody {
    pinned: Option<bool>,
}

/// `PUT /sessions/{sessionId}/pin`.
pub async fn pin(
    State(any): State<AnyChat>,
    Me(me): Me,
    Path(id): Path<String>,
    MaybeBody(b): MaybeBody<PinnedBody>,
) -> Reply {
    let pinned = b
        .pinned
        .ok_or_else(|| AnyError::invalid("pinned is required"))?;
    let prefs = ConversationPrefs {
        pinned: Some(pinned),
        ..ConversationPrefs::default()
    };
    set_prefs(&any, &me, &id, prefs).await
}

/// `POST /sessions/{sessionId}/read`: an optional `sequence` (or `messageId`) to read up to;
/// without one, everything.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadBody {
    sequence: Option<u64>,
    message_id: Option<IdIn>,
}

/// `POST /sessions/{sessionId}/read`: moves the read cursor (the core clamps it to the head and
/// tells the other members).
pub async fn read(
    State(any): State<AnyChat>,
    Me(me): Me,
    Path(id): Path<String>,
    MaybeBody(b): MaybeBody<ReadBody>,
) -> Reply {
    let conversation = resolve(&any, &me, &id).await?;
    let seq = match (b.sequence, b.message_id) {
        (Some(s), _) if s != 0 => Seq(s),
        (_, Some(m)) => {
            let (conv, seq) = extract::message(&m.text())?;
            if conv != conversation {
                return Err(AnyError::invalid("the message is not in this session"));
            }
            seq
        }
        _ => Seq(i64::MAX as u64),
    };
    let request = Request::CursorAck {
        conversation,
        kind: CursorKind::Read,
        seq,
    };
    any.call(&me, request).await?;
    ok(json!({}))
}

/// `GET /sessions/{sessionId}/messages?limit=&before=`.
#[derive(Debug, Deserialize)]
pub struct MessagesQuery {
    limit: Option<u32>,
    /// A sequence number, or a message id: older messages than it.
    before: Option<String>,
}

/// `GET /sessions/{sessionId}/messages`: `{list, hasMore}`, newest first, at most `limit` (20
/// by default, 100 at most) older than `before`.
pub async fn messages(
    State(any): State<AnyChat>,
    Me(me): Me,
    Path(id): Path<String>,
    Query(q): Query<MessagesQuery>,
) -> Reply {
    let conversation = resolve(&any, &me, &id).await?;
    let before = match q.before.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Seq::ZERO,
        Some(s) => match s.parse::<u64>() {
            Ok(n) => Seq(n),
            Err(_) => {
                let (conv, seq) = extract::message(s)?;
                if conv != conversation {
                    return Err(AnyError::invalid("the message is not in this session"));
                }
                seq
            }
        },
    };
    let request = Request::GetHistory {
        conversation,
        before,
        after: Seq::ZERO,
        limit: extract::limit(q.limit, 20, 100),
    };
    match any.call(&me, request).await? {
        Response::History { messages, has_more } => {
            let mut list: Vec<Value> = messages
                .iter()
                .filter_map(|m| views::message(m, None))
                .collect();
            // Newest first, as the real server paged.
            list.sort_by_key(|m| std::cmp::Reverse(m["sequence"].as_u64().unwrap_or(0)));
            ok(json!({"list": list, "hasMore": has_more, "total": list.len()}))
        }
        other => Err(unexpected(&other).into()),
    }
}
