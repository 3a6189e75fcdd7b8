//! How protocol values look to a GoChat client: the contract's `User`, `Message`,
//! `Conversation`, `ConversationMember`, `FriendRequest` and `Friend` (camelCase keys, ids as
//! decimal strings, times as Unix seconds).
//!
//! Mappings that are ours to choose (docs/dialects.md):
//! - `messageType`: 1 text (also location and custom content, as their JSON), 2 image and
//!   sticker, 3 file, audio and video, 4 conversation events (membership, group profile,
//!   roles, mutes, disband), whose `content` is a short description and `extra` the event's kind.
//! - `avatarUrl` is the stored avatar when it is an absolute http(s) URL (GoChat sets URLs; a
//!   file id of ours is not one, and is left out).
//! - A recalled message is `deleted: true` with empty content.
//! - Membership `joinedAt` is 0: the core keeps the seq a member joined at, not the time.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use parley_protocol::frames::{
    ContentType, ConversationEvent, ConversationInfo, ConversationKind, MemberInfo, MemberRole,
    Message, Profile,
};
use parley_protocol::ids::ConversationId;
use serde_json::{json, Map, Value};

/// Unix milliseconds as GoChat's Unix seconds.
pub fn secs(ms: u64) -> u64 {
    ms / 1000
}

/// The avatar as a URL, if it is one.
pub fn avatar_url(stored: &str) -> Option<&str> {
    (stored.starts_with("https://") || stored.starts_with("http://")).then_some(stored)
}

/// A `User`.
pub fn user(p: &Profile) -> Value {
    let mut v = json!({
        "id": p.user.map_or_else(String::new, |u| u.to_string()),
        "username": p.account,
        "nickname": p.nickname,
        "isGuest": p.guest,
        "status": 0,
        "createdAt": secs(p.created_at_ms),
        "updatedAt": secs(p.created_at_ms),
    });
    if let Some(url) = avatar_url(&p.avatar_file_id) {
        v["avatarUrl"] = json!(url);
    }
    v
}

/// The sender as `new-message` pushes show it: `{id, username, avatarUrl}`.
pub fn sender(p: &Profile) -> Value {
    json!({
        "id": p.user.map_or_else(String::new, |u| u.to_string()),
        "username": p.account,
        "avatarUrl": avatar_url(&p.avatar_file_id).unwrap_or(""),
    })
}

/// GoChat's `messageType` of a content type.
pub fn message_type(ct: ContentType) -> u8 {
    match ct {
        ContentType::Image | ContentType::Sticker => 2,
        ContentType::File | ContentType::Audio | ContentType::Video => 3,
        ContentType::System => 4,
        ContentType::Text
        | ContentType::Location
        | ContentType::Custom
        | ContentType::Unspecified => 1,
    }
}

/// What a conversation event says, for a type-4 message (`None`: an amendment of another
/// message, or a per-user event, which GoChat clients do not show).
fn describe(e: &ConversationEvent) -> Option<(&'static str, String)> {
    let ids = |v: &[parley_protocol::ids::UserId]| {
        v.iter()
            .map(|u| u.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    Some(match e {
        ConversationEvent::Membership { added, removed } => {
            let mut parts = Vec::new();
            if !added.is_empty() {
                parts.push(format!("joined: {}", ids(added)));
            }
            if !removed.is_empty() {
                parts.push(format!("left: {}", ids(removed)));
            }
            ("membership", parts.join("; "))
        }
        ConversationEvent::GroupProfile(c) => match &c.name {
            Some(name) => ("group_profile", format!("the group was renamed {name}")),
            None => ("group_profile", "the group's profile changed".to_owned()),
        },
        ConversationEvent::Role { user, role, .. } => {
            ("role", format!("user {user} is now {}", role_name(*role)))
        }
        ConversationEvent::Mute { user, until_ms } => {
            let who = user.map_or_else(|| "everyone".to_owned(), |u| format!("user {u}"));
            match until_ms {
                0 => ("mute", format!("{who} was unmuted")),
                _ => ("mute", format!("{who} was muted")),
            }
        }
        ConversationEvent::Disband => ("disband", "the group was disbanded".to_owned()),
        _ => return None,
    })
}

fn role_name(role: MemberRole) -> &'static str {
    match role {
        MemberRole::Owner => "the owner",
        MemberRole::Manager => "an admin",
        MemberRole::Member | MemberRole::Unspecified => "a member",
    }
}

/// GoChat's role number: 1 member, 2 admin, 3 owner.
pub fn role(role: MemberRole) -> u8 {
    match role {
        MemberRole::Owner => 3,
        MemberRole::Manager => 2,
        MemberRole::Member | MemberRole::Unspecified => 1,
    }
}

/// A `Message` (`None` for entries GoChat does not show; see [`describe`]).
pub fn message(m: &Message) -> Option<Value> {
    let (kind, content, extra) = match &m.event {
        Some(event) => {
            let (what, text) = describe(event)?;
            (4, text, Some(json!({ "event": what }).to_string()))
        }
        None => {
            let content = match std::str::from_utf8(&m.content) {
                Ok(s) => s.to_owned(),
                Err(_) => BASE64.encode(&m.content),
            };
            (message_type(m.content_type), content, None)
        }
    };
    let amended = m.amended.as_deref();
    let deleted = amended.is_some_and(|a| a.recalled || a.deleted_for_me);
    let created = secs(m.server_time_ms);
    let updated = amended
        .map(|a| secs(a.edited_at_ms))
        .filter(|t| *t != 0)
        .unwrap_or(created);
    let mut v = json!({
        "id": m.id.to_string(),
        "conversationId": m.conversation.to_string(),
        "senderId": m.sender.to_string(),
        "messageType": kind,
        "content": if deleted { String::new() } else { content },
        "seqId": m.seq.get(),
        "clientMsgId": m.client_msg_id.to_string(),
        "deleted": deleted,
        "createdAt": created,
        "updatedAt": updated,
    });
    if let Some(extra) = extra {
        v["extra"] = json!(extra);
    }
    Some(v)
}

/// GoChat's conversation type (`None`: the user's notices, which GoChat has no place for).
pub fn conversation_type(c: &ConversationInfo, world: Option<ConversationId>) -> Option<u8> {
    match c.kind {
        ConversationKind::Direct => Some(1),
        ConversationKind::Group if Some(c.id) == world => Some(3),
        ConversationKind::Group => Some(2),
        ConversationKind::Notices | ConversationKind::Unspecified => None,
    }
}

/// A `Conversation` as `me` sees it (`None` for the notices conversation).
pub fn conversation(
    c: &ConversationInfo,
    world: Option<ConversationId>,
    me: parley_protocol::ids::UserId,
    now_ms: u64,
) -> Option<Value> {
    let kind = conversation_type(c, world)?;
    let last = c.last_message.as_deref().and_then(message);
    let updated = c
        .last_message
        .as_deref()
        .map_or(0, |m| secs(m.server_time_ms));
    let mut v = Map::new();
    v.insert("id".into(), json!(c.id.to_string()));
    v.insert("type".into(), json!(kind));
    v.insert("name".into(), json!(c.name));
    if let Some(g) = c.group.as_deref() {
        v.insert("description".into(), json!(g.description));
        if let Some(url) = avatar_url(&g.avatar_file_id) {
            v.insert("avatarUrl".into(), json!(url));
        }
    }
    if let Some(owner) = c.owner {
        v.insert("ownerId".into(), json!(owner.to_string()));
    }
    v.insert("memberCount".into(), json!(c.members.len()));
    if let Some(last) = last {
        v.insert("lastMessage".into(), last);
    }
    v.insert("unreadCount".into(), json!(c.unread));
    v.insert("updatedAt".into(), json!(updated));
    v.insert(
        "myMembership".into(),
        json!({
            "userId": me.to_string(),
            "conversationId": c.id.to_string(),
            "role": role(c.my_role),
            "muted": c.my_muted_until_ms > now_ms,
            "joinedAt": 0,
        }),
    );
    Some(Value::Object(v))
}

/// A `ConversationMember`.
pub fn member(m: &MemberInfo, conversation: ConversationId, now_ms: u64) -> Value {
    json!({
        "userId": m.user.to_string(),
        "conversationId": conversation.to_string(),
        "role": role(m.role),
        "muted": m.muted_until_ms > now_ms,
        "joinedAt": 0,
        "nickname": m.nickname,
    })
}
