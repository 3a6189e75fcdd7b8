//! Wetty's forms: ids as decimal strings (accepted as strings or numbers), RFC 3339 times, and
//! the JSON of messages, chats, groups, members and profiles in the document's snake_case.

use parley_protocol::frames::{
    AddPolicy, ContentType, ConversationInfo, ConversationKind, GroupInfo, JoinPolicy, MemberInfo,
    MemberRole, Message, Profile, Settings,
};
use parley_protocol::ids::{ConversationId, Seq, UserId};
use serde::Deserialize;
use serde_json::{json, Value};

use super::WtError;

/// A 64-bit id as sent: a decimal string or a number.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum IdIn {
    /// `"42"`.
    Text(String),
    /// `42`.
    Number(u64),
}

impl IdIn {
    /// The id's value, if it is a positive integer.
    pub fn value(&self) -> Option<u64> {
        match self {
            IdIn::Text(s) => s.trim().parse().ok(),
            IdIn::Number(n) => Some(*n),
        }
        .filter(|v| *v > 0)
    }
}

/// A positive 64-bit id from text, named `what` in the error (`400`).
pub fn parse_u64(raw: &str, what: &str) -> Result<u64, WtError> {
    raw.trim()
        .parse::<u64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| WtError::invalid(format!("{what} must be a positive 64-bit integer")))
}

/// A user id from text.
pub fn user_id(raw: &str) -> Result<UserId, WtError> {
    UserId::try_from(parse_u64(raw, "user id")?).map_err(|e| WtError::invalid(e.message()))
}

/// A user id from a body field.
pub fn user_in(id: Option<&IdIn>, what: &str) -> Result<UserId, WtError> {
    let v = id
        .and_then(IdIn::value)
        .ok_or_else(|| WtError::invalid(format!("{what} is required (a user id)")))?;
    UserId::try_from(v).map_err(|e| WtError::invalid(e.message()))
}

/// A chat (or group) id from text.
pub fn chat_id(raw: &str) -> Result<ConversationId, WtError> {
    ConversationId::try_from(parse_u64(raw, "chat id")?).map_err(|e| WtError::invalid(e.message()))
}

/// Bits of a message id that hold the seq; the chat's id is above them.
pub const SEQ_BITS: u32 = 32;
/// The largest chat id and the largest seq a message id can carry (`2^32 - 1`).
pub const MAX_PART: u64 = (1 << SEQ_BITS) - 1;

/// A message's Wetty id: `chat_id << 32 | seq`, one 64-bit number unique on the server that
/// names both the chat and the message in it (so a route needs the id alone). `None` when
/// either part does not fit in 32 bits (conversation ids come from one counter from 1 and seqs
/// count a chat's entries from 1: neither comes near `2^32` on one server).
pub fn encode_message(conv: ConversationId, seq: Seq) -> Option<u64> {
    if conv.get() <= MAX_PART && seq.get() <= MAX_PART && seq != Seq::ZERO {
        Some((conv.get() << SEQ_BITS) | seq.get())
    } else {
        None
    }
}

/// A message's Wetty id as rendered: a decimal string (`null` if it cannot be encoded, see
/// [`encode_message`]).
pub fn message_id_json(conv: ConversationId, seq: Seq) -> Value {
    encode_message(conv, seq).map_or(Value::Null, |id| json!(id.to_string()))
}

/// The chat and seq a message id names (see [`encode_message`]); `what` names the field in
/// the error (`400`: not a positive integer, or not of the form `chat_id << 32 | seq` with both
/// parts non-zero).
pub fn decode_message(id: u64, what: &str) -> Result<(ConversationId, Seq), WtError> {
    let conv = id >> SEQ_BITS;
    let seq = id & MAX_PART;
    if conv == 0 || seq == 0 {
        return Err(WtError::invalid(format!(
            "{what} {id} is not a message id (ids are chat_id * 2^32 + seq, both non-zero)"
        )));
    }
    let conv = ConversationId::try_from(conv).map_err(|e| WtError::invalid(e.message()))?;
    Ok((conv, Seq(seq)))
}

/// A message id from text (a query or path), named `what` in the error.
pub fn message_id(raw: &str, what: &str) -> Result<(ConversationId, Seq), WtError> {
    let id = raw
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| {
            WtError::invalid(format!(
                "{what} must be a message id (a positive 64-bit integer)"
            ))
        })?;
    decode_message(id, what)
}

/// A message id from a body field (a string or a number), named `what` in the error.
pub fn message_in(id: &IdIn, what: &str) -> Result<(ConversationId, Seq), WtError> {
    let v = id.value().ok_or_else(|| {
        WtError::invalid(format!(
            "{what} must be a message id (a positive 64-bit integer)"
        ))
    })?;
    decode_message(v, what)
}

/// The seq of message id `(of, seq)` in chat `conv`: `400` when the id is another chat's.
pub fn seq_in(
    conv: ConversationId,
    (of, seq): (ConversationId, Seq),
    what: &str,
) -> Result<Seq, WtError> {
    if of == conv {
        Ok(seq)
    } else {
        Err(WtError::invalid(format!(
            "{what} is a message of chat {of}, not of chat {conv}"
        )))
    }
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds (`2024-01-01T00:00:00.000Z`).
pub fn rfc3339(ms: u64) -> String {
    crate::compat::time::rfc3339_millis(ms)
}

/// An optional time: `null` for 0 (unknown).
fn time_or_null(ms: u64) -> Value {
    if ms == 0 {
        Value::Null
    } else {
        json!(rfc3339(ms))
    }
}

/// Wetty's `message_type` as our content type. Files, images, audio and video carry a `fid`
/// in `message`; an emote is the clients' own text (our custom content).
pub fn content_type(kind: &str) -> Result<ContentType, WtError> {
    Ok(match kind {
        "" | "text" => ContentType::Text,
        "image" => ContentType::Image,
        "file" => ContentType::File,
        "audio" => ContentType::Audio,
        "video" => ContentType::Video,
        "emote" => ContentType::Custom,
        other => {
            return Err(WtError::invalid(format!(
                "message_type {other:?} is not one of text, image, file, audio, video, emote"
            )))
        }
    })
}

/// Our content type as Wetty's `message_type`.
pub fn kind_name(t: ContentType) -> &'static str {
    match t {
        ContentType::Text | ContentType::Unspecified => "text",
        ContentType::Image => "image",
        ContentType::File => "file",
        ContentType::Audio => "audio",
        ContentType::Video => "video",
        ContentType::Custom => "emote",
        ContentType::System => "system",
        ContentType::Location => "location",
        ContentType::Sticker => "sticker",
    }
}

/// Whether a content type carries a file (`{"file_id"}` in our content, a `fid` in Wetty's).
pub fn carries_file(t: ContentType) -> bool {
    matches!(
        t,
        ContentType::Image
            | ContentType::File
            | ContentType::Audio
            | ContentType::Video
            | ContentType::Sticker
    )
}

/// Whether a history entry is a message Wetty shows (conversation events are not).
pub fn shown(m: &Message) -> bool {
    m.event.is_none()
}

/// An optional seq of chat `conv` as a message id: `null` for none.
fn seq_or_null(conv: ConversationId, s: Seq) -> Value {
    if s == Seq::ZERO {
        Value::Null
    } else {
        message_id_json(conv, s)
    }
}

/// A message: `{id, chat_id, sender_uid, message, message_type, client_generated_id,
/// reply_to_id, reply_root_id, created_at, is_edited, is_deleted}` (`id`, `reply_to_id`,
/// `reply_root_id`: message ids, see [`encode_message`]). A recalled message keeps its place
/// with `is_deleted: true` and `message: null`.
pub fn message(m: &Message) -> Value {
    let amended = m.amended.as_deref();
    let withheld = amended.is_some_and(|a| a.recalled || a.deleted_for_me);
    let text = if withheld {
        Value::Null
    } else if carries_file(m.content_type) {
        serde_json::from_slice::<Value>(&m.content)
            .ok()
            .and_then(|v| v["file_id"].as_str().map(|s| json!(s)))
            .unwrap_or(Value::Null)
    } else {
        json!(String::from_utf8_lossy(&m.content))
    };
    json!({
        "id": message_id_json(m.conversation, m.seq),
        "chat_id": m.conversation.to_string(),
        "sender_uid": m.sender.to_string(),
        "message": text,
        "message_type": kind_name(m.content_type),
        "client_generated_id": m.client_msg_id.as_str(),
        "reply_to_id": seq_or_null(m.conversation, m.reply_to),
        "reply_root_id": seq_or_null(m.conversation, m.thread_root),
        "created_at": rfc3339(m.server_time_ms),
        "is_edited": amended.is_some_and(|a| a.edited_at_ms > 0),
        "is_deleted": amended.is_some_and(|a| a.recalled),
    })
}

/// A chat of the list: `{id, kind: direct|group, name, members?, unread_count, last_message,
/// last_message_at}` (`members` for 1:1 chats: both user ids).
pub fn chat(c: &ConversationInfo) -> Value {
    let kind = match c.kind {
        ConversationKind::Group => "group",
        _ => "direct",
    };
    let last = c.last_message.as_deref();
    let mut v = json!({
        "id": c.id.to_string(),
        "kind": kind,
        "name": c.name,
        "unread_count": c.unread,
        "last_message": last.filter(|m| shown(m)).map(message),
        "last_message_at": last.map_or(Value::Null, |m| json!(rfc3339(m.server_time_ms))),
    });
    if kind == "direct" {
        v["members"] = json!(c
            .members
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>());
    }
    v
}

/// Wetty's name of a join policy (`verification`).
pub fn policy_name(p: JoinPolicy) -> &'static str {
    match p {
        JoinPolicy::Free => "free",
        JoinPolicy::Approval => "approval",
        JoinPolicy::InviteOnly | JoinPolicy::Unspecified => "invite_only",
    }
}

/// A join policy by its Wetty name.
pub fn policy(name: &str) -> Result<JoinPolicy, WtError> {
    Ok(match name {
        "free" => JoinPolicy::Free,
        "approval" => JoinPolicy::Approval,
        "invite_only" => JoinPolicy::InviteOnly,
        other => {
            return Err(WtError::invalid(format!(
                "verification {other:?} is not one of free, approval, invite_only"
            )))
        }
    })
}

/// A group: `{id, name, avatar_fid, description, announcement, visibility: public|private,
/// verification, max_members, owner_uid, member_count, muted_all, created_at, join_requests}`
/// (`created_at`: when the group was created, `null` if the core does not know).
pub fn group(g: &GroupInfo) -> Value {
    let p = &g.profile;
    json!({
        "id": g.conversation.to_string(),
        "name": p.name,
        "avatar_fid": p.avatar_file_id,
        "description": p.description,
        "announcement": p.announcement,
        "visibility": if p.public { "public" } else { "private" },
        "verification": policy_name(p.join_policy),
        "max_members": p.max_members,
        "owner_uid": g.owner.map(|o| o.to_string()),
        "member_count": g.member_count,
        "muted_all": p.muted_all_until_ms > 0,
        "created_at": time_or_null(g.created_at_ms),
        "join_requests": g.join_requests.iter().map(|r| json!({
            "uid": r.user.to_string(),
            "apply_msg": r.message,
            "created_at": rfc3339(r.requested_at_ms),
        })).collect::<Vec<_>>(),
    })
}

/// Wetty's name of a member role.
pub fn role_name(r: MemberRole) -> &'static str {
    match r {
        MemberRole::Owner => "owner",
        MemberRole::Manager => "manager",
        _ => "member",
    }
}

/// A member: `{uid, role, nickname, muted_until}`.
pub fn member(m: &MemberInfo) -> Value {
    json!({
        "uid": m.user.to_string(),
        "role": role_name(m.role),
        "nickname": m.nickname,
        "muted_until": time_or_null(m.muted_until_ms),
    })
}

/// Wetty's `add_friend_setting` of an add policy.
pub fn add_setting_name(p: AddPolicy) -> &'static str {
    match p {
        AddPolicy::Anyone => "anyone",
        AddPolicy::Nobody => "nobody",
        AddPolicy::Verify | AddPolicy::Unspecified => "verify",
    }
}

/// An add policy by its `add_friend_setting` name.
pub fn add_setting(name: &str) -> Result<AddPolicy, WtError> {
    Ok(match name {
        "anyone" => AddPolicy::Anyone,
        "verify" => AddPolicy::Verify,
        "nobody" => AddPolicy::Nobody,
        other => {
            return Err(WtError::invalid(format!(
                "add_friend_setting {other:?} is not one of anyone, verify, nobody"
            )))
        }
    })
}

/// A user as others see them: `{uid, username, nickname, avatar_fid, bio, sr_link,
/// created_at}`.
pub fn user(p: &Profile) -> Value {
    json!({
        "uid": p.user.map(|u| u.to_string()),
        "username": p.account,
        "nickname": p.nickname,
        "avatar_fid": p.avatar_file_id,
        "bio": p.bio,
        "sr_link": p.link,
        "created_at": time_or_null(p.created_at_ms),
    })
}

/// The caller's own profile: [`user`] and `add_friend_setting`.
pub fn own_profile(p: &Profile, s: &Settings) -> Value {
    let mut v = user(p);
    v["add_friend_setting"] = json!(add_setting_name(s.add_policy));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_704_067_200_123), "2024-01-01T00:00:00.123Z");
    }

    #[test]
    fn ids_in_both_forms() {
        let s: IdIn = serde_json::from_value(json!("42")).unwrap();
        let n: IdIn = serde_json::from_value(json!(42)).unwrap();
        assert_eq!(s.value(), Some(42));
        assert_eq!(n.value(), Some(42));
        let bad: IdIn = serde_json::from_value(json!("x")).unwrap();
        assert_eq!(bad.value(), None);
        assert!(parse_u64("0", "id").is_err());
        assert!(parse_u64("-3", "id").is_err());
    }

    #[test]
    fn message_ids_name_chat_and_seq() {
        let conv = ConversationId::try_from(7).unwrap();
        let id = encode_message(conv, Seq(3)).unwrap();
        assert_eq!(id, 7 * (1 << 32) + 3);
        assert_eq!(decode_message(id, "id").unwrap(), (conv, Seq(3)));
        assert_eq!(message_id(&id.to_string(), "id").unwrap(), (conv, Seq(3)));
        let n: IdIn = serde_json::from_value(json!(id)).unwrap();
        assert_eq!(message_in(&n, "id").unwrap(), (conv, Seq(3)));
        let top = ConversationId::try_from(MAX_PART).unwrap();
        assert_eq!(
            decode_message(encode_message(top, Seq(MAX_PART)).unwrap(), "id").unwrap(),
            (top, Seq(MAX_PART))
        );
        // Out of range: not encoded; a seq alone, or a chat alone, is not an id.
        let big = ConversationId::try_from(MAX_PART + 1).unwrap();
        assert_eq!(encode_message(big, Seq(1)), None);
        assert_eq!(encode_message(conv, Seq(MAX_PART + 1)), None);
        assert_eq!(message_id_json(big, Seq(1)), Value::Null);
        assert!(decode_message(3, "id").is_err());
        assert!(decode_message(7 << 32, "id").is_err());
        assert!(message_id("0", "id").is_err());
        assert!(message_id("x", "id").is_err());
        assert!(message_id("18446744073709551616", "id").is_err());
        let other = ConversationId::try_from(8).unwrap();
        assert!(seq_in(other, (conv, Seq(3)), "before").is_err());
        assert_eq!(seq_in(conv, (conv, Seq(3)), "before").unwrap(), Seq(3));
    }
}
