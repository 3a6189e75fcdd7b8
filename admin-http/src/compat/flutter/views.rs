//! Our values in the Flutter/Rust forms: string ids with a kind prefix (conversations `c<id>`,
//! groups `g<id>` of the same conversation id, messages `m<conversation>_<seq>`, calls
//! `call<id>`; users are bare decimal ids, media ids our file ids), ISO 8601 times, message
//! types, and the `User` and `Message` objects.

use std::collections::HashMap;

use parley_protocol::frames::{ContentType, Message, PresenceStatus, Profile};
use parley_protocol::ids::{ConversationId, Seq, UserId};
use serde_json::{json, Value};

use super::FlError;

/// A conversation id: `c<id>`.
pub fn conversation_id(conv: ConversationId) -> String {
    format!("c{conv}")
}

/// A group id: `g<id>` (the group's conversation is `c<id>`).
pub fn group_id(conv: ConversationId) -> String {
    format!("g{conv}")
}

/// A message id: `m<conversation>_<seq>`.
pub fn message_id(conv: ConversationId, seq: Seq) -> String {
    format!("m{conv}_{}", seq.get())
}

/// A call id: `call<id>`.
pub fn call_id(call: u64) -> String {
    format!("call{call}")
}

fn number(s: &str) -> Option<u64> {
    // Digits only: `u64::from_str` would take a leading `+`.
    (!s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// The conversation a conversation or group id names (`c<id>`, `g<id>` or the bare number);
/// one that names none is `404`.
pub fn parse_conversation(id: &str) -> Result<ConversationId, FlError> {
    let id = id.trim();
    let digits = id
        .strip_prefix('c')
        .or_else(|| id.strip_prefix('g'))
        .unwrap_or(id);
    number(digits)
        .and_then(|v| ConversationId::try_from(v).ok())
        .ok_or_else(|| FlError::not_found(format!("no such conversation: {id:?}")))
}

/// The conversation and seq a message id names; one that names none is `404`.
pub fn parse_message(id: &str) -> Result<(ConversationId, Seq), FlError> {
    let parsed = id.trim().strip_prefix('m').and_then(|rest| {
        let (conv, seq) = rest.split_once('_')?;
        let conv = ConversationId::try_from(number(conv)?).ok()?;
        let seq = number(seq).filter(|s| *s > 0)?;
        Some((conv, Seq(seq)))
    });
    parsed.ok_or_else(|| FlError::not_found(format!("no such message: {id:?}")))
}

/// The call a call id names (`call<id>` or the bare number); else `404`.
pub fn parse_call(id: &str) -> Result<u64, FlError> {
    let id = id.trim();
    number(id.strip_prefix("call").unwrap_or(id))
        .filter(|c| *c > 0)
        .ok_or_else(|| FlError::not_found(format!("no such call: {id:?}")))
}

/// A user id (decimal), if `s` is one.
pub fn user_id(s: &str) -> Option<UserId> {
    number(s.trim()).and_then(|v| UserId::try_from(v).ok())
}

/// A user id the request names; a malformed one is `404` (it names nobody).
pub fn parse_user(s: &str) -> Result<UserId, FlError> {
    user_id(s).ok_or_else(|| FlError::not_found(format!("no such user: {s:?}")))
}

/// The document's message type as our content type.
pub fn content_type(kind: &str) -> Result<ContentType, FlError> {
    Ok(match kind {
        "" | "text" => ContentType::Text,
        "image" => ContentType::Image,
        "video" => ContentType::Video,
        "audio" | "voice" => ContentType::Audio,
        "file" => ContentType::File,
        "location" => ContentType::Location,
        "sticker" => ContentType::Sticker,
        "custom" => ContentType::Custom,
        other => {
            return Err(FlError::invalid(format!(
                "type {other:?} is not one of text, image, video, audio, file, location, \
                 sticker, custom"
            )))
        }
    })
}

/// Our content type as the document's message type.
pub fn kind_name(t: ContentType) -> &'static str {
    match t {
        ContentType::Text | ContentType::Unspecified => "text",
        ContentType::Image => "image",
        ContentType::Video => "video",
        ContentType::Audio => "audio",
        ContentType::File => "file",
        ContentType::Location => "location",
        ContentType::Sticker => "sticker",
        ContentType::Custom => "custom",
        ContentType::System => "system",
    }
}

/// Whether messages of this type carry a media id (stored as our media JSON, `{"file_id"}`).
pub fn bears_media(t: ContentType) -> bool {
    matches!(
        t,
        ContentType::Image
            | ContentType::Video
            | ContentType::Audio
            | ContentType::File
            | ContentType::Sticker
    )
}

/// The stored content of a message the client sends: text as is; for media types, our media
/// JSON `{"file_id": <media id>, "caption"?}`.
pub fn stored_content(t: ContentType, content: &str, caption: Option<&str>) -> String {
    if !bears_media(t) {
        return content.to_owned();
    }
    let mut v = json!({ "file_id": content });
    if let Some(c) = caption.filter(|c| !c.is_empty()) {
        v["caption"] = json!(c);
    }
    v.to_string()
}

/// `(content, caption)` of a stored message as the client sees them: for media types the media
/// id and the caption.
pub fn shown_content(t: ContentType, stored: &[u8]) -> (String, Option<String>) {
    if bears_media(t) {
        if let Ok(v) = serde_json::from_slice::<Value>(stored) {
            if let Some(id) = v.get("file_id").and_then(Value::as_str) {
                let caption = v.get("caption").and_then(Value::as_str).map(str::to_owned);
                return (id.to_owned(), caption);
            }
        }
    }
    (String::from_utf8_lossy(stored).into_owned(), None)
}

/// Where an avatar is: a URL as stored, or the download path of one of our files.
pub fn avatar(stored: &str) -> Value {
    if stored.is_empty() {
        Value::Null
    } else if stored.starts_with("https://") || stored.starts_with("http://") {
        json!(stored)
    } else {
        json!(media_url(stored))
    }
}

/// The download path of one of our files (the REST API's, which takes the same bearer tokens;
/// public files need none).
pub fn media_url(file: &str) -> String {
    format!("/im/v1/files/{file}")
}

/// A presence status in the document's words.
pub fn status_name(s: PresenceStatus) -> &'static str {
    match s {
        PresenceStatus::Online => "online",
        PresenceStatus::Away => "away",
        PresenceStatus::Offline | PresenceStatus::Unspecified => "offline",
    }
}

/// The name shown for a user: the nickname, else the account name.
pub fn display_name(p: &Profile) -> String {
    if p.nickname.is_empty() {
        p.account.clone()
    } else {
        p.nickname.clone()
    }
}

/// A user as search results and member lists show one: `{user_id, username, nickname, avatar}`.
pub fn user_brief(p: &Profile) -> Value {
    json!({
        "user_id": p.user.map_or_else(String::new, |u| u.to_string()),
        "username": p.account,
        "nickname": display_name(p),
        "avatar": avatar(&p.avatar_file_id),
    })
}

/// A message: `{message_id, conversation_id, sender_id, sender_name, content, type, status,
/// created_at, updated_at?, caption?}`. A recalled message shows status `recalled` and no
/// content.
pub fn message(m: &Message, names: &HashMap<UserId, String>, status: &str) -> Value {
    let amended = m.amended.as_deref();
    let withheld = amended.is_some_and(|a| a.recalled || a.deleted_for_me);
    let (content, caption) = if withheld {
        (String::new(), None)
    } else {
        shown_content(m.content_type, &m.content)
    };
    let recalled = amended.is_some_and(|a| a.recalled);
    let mut v = json!({
        "message_id": message_id(m.conversation, m.seq),
        "conversation_id": conversation_id(m.conversation),
        "sender_id": m.sender.to_string(),
        "sender_name": names.get(&m.sender).cloned().unwrap_or_else(|| m.sender.to_string()),
        "content": content,
        "type": kind_name(m.content_type),
        "status": if recalled { "recalled" } else { status },
        "created_at": iso(m.server_time_ms),
    });
    if let Some(a) = amended.filter(|a| a.edited_at_ms > 0) {
        v["updated_at"] = json!(iso(a.edited_at_ms));
    }
    if let Some(c) = caption {
        v["caption"] = json!(c);
    }
    v
}

/// Unix milliseconds as an ISO 8601 UTC string (`2024-01-01T00:00:00Z`).
pub fn iso(ms: u64) -> String {
    crate::compat::time::rfc3339_seconds(ms)
}

/// Now, Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_bad_ones_are_not_found() {
        let conv = ConversationId::try_from(42).expect("id");
        assert_eq!(parse_conversation(&conversation_id(conv)).expect("c"), conv);
        assert_eq!(parse_conversation(&group_id(conv)).expect("g"), conv);
        assert_eq!(parse_conversation("42").expect("bare"), conv);
        let id = message_id(conv, Seq(7));
        assert_eq!(id, "m42_7");
        assert_eq!(parse_message(&id).expect("m"), (conv, Seq(7)));
        for bad in ["m42", "m42_0", "m0_1", "42_1", "mx_1", "m42_1_1", "m+4_1"] {
            assert_eq!(parse_message(bad).unwrap_err().status, 404, "{bad}");
        }
        for bad in ["c", "cx", "c0", "c+1", "x1"] {
            assert_eq!(parse_conversation(bad).unwrap_err().status, 404, "{bad}");
        }
        assert_eq!(parse_call(&call_id(9)).expect("call"), 9);
        assert!(parse_call("call0").is_err());
    }

    #[test]
    fn media_content_round_trips() {
        let stored = stored_content(ContentType::Image, "abc", Some("Check this"));
        assert_eq!(
            shown_content(ContentType::Image, stored.as_bytes()),
            ("abc".to_owned(), Some("Check this".to_owned()))
        );
        assert_eq!(stored_content(ContentType::Text, "hi", Some("x")), "hi");
    }

    #[test]
    fn iso_times() {
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso(1_709_210_096_789), "2024-02-29T12:34:56Z");
    }
}
