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

/// A message id (its seq in its chat) from text.
pub fn message_id(raw: &str) -> Result<Seq, WtError> {
    Ok(Seq(parse_u64(raw, "message id")?))
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds (`2024-01-01T00:00:00.000Z`).
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// The server's clock, Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
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

/// An optional seq as an id: `null` for none.
fn seq_or_null(s: Seq) -> Value {
    if s == Seq::ZERO {
        Value::Null
    } else {
        json!(s.get().to_string())
    }
}

/// A message: `{id, chat_id, sender_uid, message, message_type, client_generated_id,
/// reply_to_id, reply_root_id, created_at, is_edited, is_deleted}`. A recalled message keeps
/// its place with `is_deleted: true` and `message: null`.
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
        "id": m.seq.get().to_string(),
        "chat_id": m.conversation.to_string(),
        "sender_uid": m.sender.to_string(),
        "message": text,
        "message_type": kind_name(m.content_type),
        "client_generated_id": m.client_msg_id.as_str(),
        "reply_to_id": seq_or_null(m.reply_to),
        "reply_root_id": seq_or_null(m.thread_root),
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
/// (`created_at`: when its chat began, the first entry's time, if known).
pub fn group(g: &GroupInfo, created_at_ms: u64) -> Value {
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
        "created_at": time_or_null(created_at_ms),
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
}
