//! Our values in IM系统's forms: message ids `msg_<conversation>_<seq>`, ISO 8601 times,
//! content types, and the `Message` object.

use parley_protocol::frames::{ContentType, ConversationInfo, ConversationKind, Message};
use parley_protocol::ids::{ConversationId, Seq, UserId};
use serde_json::{json, Value};

use super::ImError;

/// `msg_<conversation>_<seq>`: the message's conversation and its seq there.
pub fn message_id(conv: ConversationId, seq: Seq) -> String {
    format!("msg_{conv}_{}", seq.get())
}

/// The conversation and seq a message id names; one that names none is `404`.
pub fn parse_message_id(id: &str) -> Result<(ConversationId, Seq), ImError> {
    let parsed = id.strip_prefix("msg_").and_then(|rest| {
        let (conv, seq) = rest.split_once('_')?;
        let conv = ConversationId::try_from(conv.parse::<u64>().ok()?).ok()?;
        let seq = seq.parse::<u64>().ok().filter(|s| *s > 0)?;
        Some((conv, Seq(seq)))
    });
    parsed.ok_or_else(|| ImError::not_found(format!("no such message: {id:?}")))
}

/// A group id (our conversation id, decimal); one that names none is `404`.
pub fn parse_group_id(id: &str) -> Result<ConversationId, ImError> {
    id.trim()
        .parse::<u64>()
        .ok()
        .and_then(|v| ConversationId::try_from(v).ok())
        .ok_or_else(|| ImError::not_found(format!("no such group: {id:?}")))
}

/// A user id (decimal), if `s` is one.
pub fn user_id(s: &str) -> Option<UserId> {
    s.trim()
        .parse::<u64>()
        .ok()
        .and_then(|v| UserId::try_from(v).ok())
}

/// IM系统's message type as our content type.
pub fn content_type(kind: &str) -> Result<ContentType, ImError> {
    Ok(match kind {
        "" | "text" => ContentType::Text,
        "image" => ContentType::Image,
        "file" => ContentType::File,
        "voice" => ContentType::Audio,
        "video" => ContentType::Video,
        "system" => ContentType::System,
        other => {
            return Err(ImError::invalid(format!(
                "type {other:?} is not one of text, image, file, voice, video, system"
            )))
        }
    })
}

/// Our content type as IM系统's message type.
pub fn kind_name(t: ContentType) -> &'static str {
    match t {
        ContentType::Text | ContentType::Unspecified => "text",
        ContentType::Image => "image",
        ContentType::File => "file",
        ContentType::Audio => "voice",
        ContentType::Video => "video",
        ContentType::System => "system",
        ContentType::Custom => "custom",
        ContentType::Location => "location",
        ContentType::Sticker => "sticker",
    }
}

/// Where a message lives, as far as its rendering needs.
#[derive(Clone, Debug)]
pub enum Place {
    /// A 1:1 conversation (or the notices one) between these users.
    Direct(Vec<UserId>),
    /// A group.
    Group,
}

impl Place {
    /// The place of a conversation.
    pub fn of(c: &ConversationInfo) -> Place {
        match c.kind {
            ConversationKind::Group => Place::Group,
            _ => Place::Direct(c.members.clone()),
        }
    }
}

/// Whether `m` is a message IM系统 shows (not a conversation event).
pub fn shown(m: &Message) -> bool {
    m.event.is_none()
}

/// IM系统's `Message`: `{id, sender_id, receiver_id | group_id, type, content, status,
/// timestamp(ms)}`. `status` is `status` as the caller knows it.
pub fn message(m: &Message, place: &Place, status: &str) -> Value {
    let withheld = m
        .amended
        .as_ref()
        .is_some_and(|a| a.recalled || a.deleted_for_me);
    let content = if withheld {
        String::new()
    } else {
        String::from_utf8_lossy(&m.content).into_owned()
    };
    let mut v = json!({
        "id": message_id(m.conversation, m.seq),
        "sender_id": m.sender.to_string(),
        "type": kind_name(m.content_type),
        "content": content,
        "status": status,
        "timestamp": m.server_time_ms,
    });
    match place {
        Place::Group => v["group_id"] = json!(m.conversation.to_string()),
        Place::Direct(members) => {
            let receiver = members
                .iter()
                .find(|u| **u != m.sender)
                .unwrap_or(&m.sender);
            v["receiver_id"] = json!(receiver.to_string());
        }
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
        let id = message_id(conv, Seq(7));
        assert_eq!(id, "msg_42_7");
        assert_eq!(parse_message_id(&id).expect("parses"), (conv, Seq(7)));
        for bad in [
            "msg_123",
            "msg_0_1",
            "msg_1_0",
            "123",
            "msg_x_1",
            "msg_1_1_1",
        ] {
            assert_eq!(parse_message_id(bad).unwrap_err().status, 404, "{bad}");
        }
    }

    #[test]
    fn iso_times() {
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso(1_704_067_200_000), "2024-01-01T00:00:00Z");
        assert_eq!(iso(1_709_210_096_789), "2024-02-29T12:34:56Z");
    }
}
