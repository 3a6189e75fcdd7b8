//! How protocol values look to an AnyChat client: the success envelope, ids as UUID strings,
//! times, users and messages.
//!
//! # Ids
//!
//! AnyChat's user, message, session and group ids are UUID strings; ours are numbers. Each is
//! rendered as an RFC 9562 version-8 ("custom") UUID whose bits carry the number, so it turns
//! back into it without a lookup table ([`uuid`], [`from_uuid`]):
//!
//! ```text
//! kind (8 bits) | payload[113..74] (40) | version 8 (4) | payload[73..62] (12) | variant 0b10 (2) | payload[61..0] (62)
//! ```
//!
//! `kind` says what the id names ([`Kind`]): a user's payload is its id, a conversation's (1:1
//! or group: a group's id and its conversation's are the same) its id, a message's its
//! conversation id shifted left 50 bits plus its seq (so a message id names `(conversation,
//! seq)`, which is what the core addresses messages by). User 42 is
//! `01000000-0000-8000-8000-00000000002a`. Ids are also accepted as plain decimal numbers (our
//! native form, what other dialects show), except message ids.
//!
//! # Times
//!
//! `createdAt` of users and groups: RFC 3339 UTC strings ([`rfc3339`]); every other time, and
//! the WebSocket's, Unix seconds ([`secs`]).

use axum::Json;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use parley_protocol::frames::{
    ContentType, ConversationEvent, ConversationInfo, ConversationKind, Gender, Message, Profile,
};
use parley_protocol::ids::{ConversationId, Seq, UserId};
use serde_json::{json, Value};

use super::error::AnyError;

/// What a handler answers: the success envelope, or an AnyChat error.
pub type Reply = Result<Json<Value>, AnyError>;

/// The success envelope: `{code: 0, message: "success", data}`.
pub fn ok(data: Value) -> Reply {
    Ok(Json(json!({"code": 0, "message": "success", "data": data})))
}

/// What a UUID of ours names (its first byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A user.
    User = 1,
    /// A conversation: a 1:1 session, or a group (and its session).
    Conversation = 2,
    /// A message: `(conversation, seq)`.
    Message = 3,
    /// Free for the other parts of the dialect (calls, meetings, files, admins, ...).
    Call = 4,
    /// Free for the other parts of the dialect.
    Meeting = 5,
    /// Free for the other parts of the dialect.
    File = 6,
    /// Free for the other parts of the dialect.
    Admin = 7,
}

const PAYLOAD_BITS: u32 = 114;
const MASK_62: u128 = (1 << 62) - 1;
/// Bits of a message id's payload that hold the seq.
const SEQ_BITS: u32 = 50;

/// `payload` (at most 114 bits; higher bits are dropped) as a UUID of `kind`.
pub fn uuid(kind: Kind, payload: u128) -> String {
    let p = payload & ((1u128 << PAYLOAD_BITS) - 1);
    let v = (u128::from(kind as u8) << 120)
        | ((p >> 74) << 80)
        | (8 << 76)
        | (((p >> 62) & 0xfff) << 64)
        | (0b10 << 62)
        | (p & MASK_62);
    let h = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The payload of a UUID of `kind` (any case), if `s` is one.
pub fn from_uuid(kind: Kind, s: &str) -> Option<u128> {
    let b = s.as_bytes();
    if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
        return None;
    }
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let v = u128::from_str_radix(&hex, 16).ok()?;
    let ok = (v >> 120) as u8 == kind as u8 && (v >> 76) & 0xf == 8 && (v >> 62) & 0b11 == 0b10;
    ok.then_some(
        (((v >> 80) & ((1 << 40) - 1)) << 74) | (((v >> 64) & 0xfff) << 62) | (v & MASK_62),
    )
}

/// A user id as AnyChat shows it.
pub fn user_id(u: UserId) -> String {
    uuid(Kind::User, u128::from(u.get()))
}

/// A conversation (session, group) id as AnyChat shows it.
pub fn conversation_id(c: ConversationId) -> String {
    uuid(Kind::Conversation, u128::from(c.get()))
}

/// A message id as AnyChat shows it: `(conversation, seq)`.
pub fn message_id(c: ConversationId, seq: Seq) -> String {
    let seq = u128::from(seq.get()) & ((1 << SEQ_BITS) - 1);
    uuid(Kind::Message, (u128::from(c.get()) << SEQ_BITS) | seq)
}

/// A numeric id of `kind` from its UUID or its decimal form (`None`: neither, or 0).
pub fn number_of(kind: Kind, s: &str) -> Option<u64> {
    let s = s.trim();
    let v = match s.parse::<u64>() {
        Ok(v) => v,
        Err(_) => u64::try_from(from_uuid(kind, s)?).ok()?,
    };
    (v != 0).then_some(v)
}

/// A user id from its UUID or decimal form.
pub fn parse_user(s: &str) -> Option<UserId> {
    number_of(Kind::User, s).and_then(|v| UserId::try_from(v).ok())
}

/// A conversation id from its UUID or decimal form.
pub fn parse_conversation(s: &str) -> Option<ConversationId> {
    number_of(Kind::Conversation, s).and_then(|v| ConversationId::try_from(v).ok())
}

/// A message's `(conversation, seq)` from its UUID.
pub fn parse_message(s: &str) -> Option<(ConversationId, Seq)> {
    let p = from_uuid(Kind::Message, s.trim())?;
    let conv = u64::try_from(p >> SEQ_BITS).ok()?;
    let seq = (p & ((1 << SEQ_BITS) - 1)) as u64;
    let conv = ConversationId::try_from(conv).ok()?;
    (seq != 0).then_some((conv, Seq(seq)))
}

/// Unix milliseconds as Unix seconds.
pub fn secs(ms: u64) -> u64 {
    ms / 1000
}

/// Now, Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Unix milliseconds as an RFC 3339 UTC string (`2024-01-01T00:00:00Z`).
pub fn rfc3339(ms: u64) -> String {
    crate::compat::time::rfc3339_seconds(ms)
}

// ---- accounts -------------------------------------------------------------------------------

/// What replaces `@` in an e-mail address made an account name (our account names are
/// `[A-Za-z0-9_.-]`).
const AT: &str = "_at_";

/// The account name of an AnyChat phone number or e-mail address: a phone number as it is, an
/// address lower-cased with `@` as `_at_` (`None`: neither can be an account name).
pub fn account_of(phone_or_email: &str) -> Option<String> {
    let s = phone_or_email.trim();
    let name = match s.split_once('@') {
        Some((local, domain)) if !local.is_empty() && domain.contains('.') => {
            format!(
                "{}{AT}{}",
                local.to_ascii_lowercase(),
                domain.to_ascii_lowercase()
            )
        }
        Some(_) => return None,
        None => s.to_owned(),
    };
    parley_protocol::ids::Account::try_from(name.as_str())
        .ok()
        .map(|_| name)
}

/// Whether `s` is a mainland mobile number, as AnyChat's `phoneNumber` (`^1[3-9]\d{9}$`).
pub fn is_phone(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 11
        && b[0] == b'1'
        && (b'3'..=b'9').contains(&b[1])
        && b.iter().all(u8::is_ascii_digit)
}

/// `(phone, email)` of an account name (empty where it is not one).
pub fn phone_and_email(account: &str) -> (String, String) {
    if is_phone(account) {
        return (account.to_owned(), String::new());
    }
    match account.split_once(AT) {
        Some((local, domain)) if domain.contains('.') => {
            (String::new(), format!("{local}@{domain}"))
        }
        _ => (String::new(), String::new()),
    }
}

// ---- users ----------------------------------------------------------------------------------

/// The avatar as AnyChat shows it: the stored value when it is an http(s) URL (AnyChat clients
/// set URLs), else empty.
pub fn avatar(stored: &str) -> &str {
    match stored.starts_with("https://") || stored.starts_with("http://") {
        true => stored,
        false => "",
    }
}

/// AnyChat's gender: 0 unknown, 1 male, 2 female (ours: also "other", shown as 0).
pub fn gender(g: Gender) -> u8 {
    match g {
        Gender::Male => 1,
        Gender::Female => 2,
        Gender::Other | Gender::Unspecified => 0,
    }
}

/// The user id of a profile, rendered (empty if the profile has none).
fn profile_id(p: &Profile) -> String {
    p.user.map_or_else(String::new, user_id)
}

/// A `UserInfo` (auth responses): `userId, nickname, avatar, phone, email`.
pub fn user_info(p: &Profile) -> Value {
    let (phone, email) = phone_and_email(&p.account);
    json!({
        "userId": profile_id(p),
        "nickname": p.nickname,
        "avatar": avatar(&p.avatar_file_id),
        "phone": phone,
        "email": email,
    })
}

/// A `UserProfile` (`/users/me`, `/users/{userId}`).
pub fn user_profile(p: &Profile) -> Value {
    let (phone, email) = phone_and_email(&p.account);
    let birthday = match p.birthday.is_empty() {
        true => String::new(),
        false => format!("{}T00:00:00Z", p.birthday),
    };
    json!({
        "userId": profile_id(p),
        "nickname": p.nickname,
        "avatar": avatar(&p.avatar_file_id),
        "signature": p.bio,
        "gender": gender(p.gender),
        "birthday": birthday,
        "region": p.region,
        "phone": phone,
        "email": email,
        "qrcodeUrl": p.user.map_or_else(String::new, qrcode),
        "createdAt": rfc3339(p.created_at_ms),
    })
}

/// A `UserSearchItem`: `userId, nickname, avatar, signature`.
pub fn user_brief(p: &Profile) -> Value {
    json!({
        "userId": profile_id(p),
        "nickname": p.nickname,
        "avatar": avatar(&p.avatar_file_id),
        "signature": p.bio,
    })
}

/// The prefix of a user's QR code text.
const QRCODE: &str = "anychat://user/";

/// A user's QR code text: `anychat://user/<userId>` (it names the user and never changes).
pub fn qrcode(u: UserId) -> String {
    format!("{QRCODE}{}", user_id(u))
}

/// The user a QR code text names (also a bare user id).
pub fn parse_qrcode(s: &str) -> Option<UserId> {
    parse_user(s.trim().strip_prefix(QRCODE).unwrap_or(s))
}

// ---- messages -------------------------------------------------------------------------------

/// AnyChat's `contentType` of ours.
pub fn content_type(ct: ContentType) -> &'static str {
    match ct {
        ContentType::Text | ContentType::Unspecified => "text",
        ContentType::Image => "image",
        ContentType::Audio => "audio",
        ContentType::Video => "video",
        ContentType::File => "file",
        ContentType::Location => "location",
        ContentType::Custom | ContentType::Sticker => "custom",
        ContentType::System => "system",
    }
}

/// Ours of AnyChat's `contentType` (names, any case, or the seed's numbers 1–6 and 100).
pub fn parse_content_type(s: &str) -> Option<ContentType> {
    Some(match s.trim().to_ascii_lowercase().as_str() {
        "text" | "1" => ContentType::Text,
        "image" | "2" => ContentType::Image,
        "audio" | "voice" | "3" => ContentType::Audio,
        "video" | "4" => ContentType::Video,
        "file" | "5" => ContentType::File,
        "location" | "6" => ContentType::Location,
        "custom" => ContentType::Custom,
        _ => return None,
    })
}

/// The seed's numeric message type: 1 text, 2 image, 3 audio, 4 video, 5 file, 6 location,
/// 100 system (custom content: 1).
pub fn message_type(ct: ContentType) -> u8 {
    match ct {
        ContentType::Image | ContentType::Sticker => 2,
        ContentType::Audio => 3,
        ContentType::Video => 4,
        ContentType::File => 5,
        ContentType::Location => 6,
        ContentType::System => 100,
        ContentType::Text | ContentType::Custom | ContentType::Unspecified => 1,
    }
}

/// `"private"` or `"group"` (AnyChat's `conversationType`).
pub fn conversation_type(kind: ConversationKind) -> &'static str {
    match kind {
        ConversationKind::Group => "group",
        _ => "private",
    }
}

/// What a conversation event says, for a system message of history and sync.
fn describe(e: &ConversationEvent) -> Option<String> {
    let ids = |v: &[UserId]| v.iter().map(|u| user_id(*u)).collect::<Vec<_>>().join(",");
    Some(match e {
        ConversationEvent::Membership { added, removed } => {
            let mut parts = Vec::new();
            if !added.is_empty() {
                parts.push(format!("joined: {}", ids(added)));
            }
            if !removed.is_empty() {
                parts.push(format!("left: {}", ids(removed)));
            }
            parts.join("; ")
        }
        ConversationEvent::GroupProfile(_) => "the group's profile changed".to_owned(),
        ConversationEvent::Role { user, .. } => format!("the role of {} changed", user_id(*user)),
        ConversationEvent::Mute { .. } => "a mute changed".to_owned(),
        ConversationEvent::Disband => "the group was disbanded".to_owned(),
        ConversationEvent::Created { name, .. } => format!("the group {name} was created"),
        _ => return None,
    })
}

/// A message's content as AnyChat's string: UTF-8 as it is, other bytes in base64.
pub fn content(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => BASE64.encode(bytes),
    }
}

/// A `Message` (history, sync, `message.new`), `None` for log entries AnyChat does not show
/// (amendments of other messages: edits, reactions, recalls are rendered on the message they
/// amend). `kind` is the conversation's, where known. Recalled messages have `status: 1` and
/// empty content.
pub fn message(m: &Message, kind: Option<ConversationKind>) -> Option<Value> {
    let (content_type, text) = match &m.event {
        Some(e) => (ContentType::System, describe(e)?),
        None => (m.content_type, content(&m.content)),
    };
    let amended = m.amended.as_deref();
    let recalled = amended.is_some_and(|a| a.recalled || a.deleted_for_me);
    let mut v = json!({
        "messageId": message_id(m.conversation, m.seq),
        "conversationId": conversation_id(m.conversation),
        "senderId": user_id(m.sender),
        "contentType": self::content_type(content_type),
        "messageType": message_type(content_type),
        "content": if recalled { String::new() } else { text },
        "sequence": m.seq.get(),
        "timestamp": secs(m.server_time_ms),
        "createdAt": secs(m.server_time_ms),
        "localId": m.client_msg_id.to_string(),
        "status": u8::from(recalled),
        "atUsers": m.mentions.iter().map(|u| user_id(*u)).collect::<Vec<_>>(),
        "replyTo": match m.reply_to.get() {
            0 => String::new(),
            _ => message_id(m.conversation, m.reply_to),
        },
    });
    if let Some(kind) = kind {
        v["conversationType"] = json!(conversation_type(kind));
    }
    Some(v)
}

/// The other member of a 1:1 conversation as `me` sees it (`None` for a group, or a
/// conversation with oneself).
pub fn peer(c: &ConversationInfo, me: UserId) -> Option<UserId> {
    match c.kind {
        ConversationKind::Direct => c.members.iter().copied().find(|u| *u != me),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        let u = UserId::try_from(42).expect("id");
        assert_eq!(user_id(u), "01000000-0000-8000-8000-00000000002a");
        assert_eq!(parse_user(&user_id(u)), Some(u));
        assert_eq!(parse_user("42"), Some(u));
        assert_eq!(parse_user(&user_id(u).to_uppercase()), Some(u));
        for big in [1u64, u64::MAX, 1 << 62, (1 << 63) + 5] {
            let u = UserId::try_from(big).expect("id");
            assert_eq!(parse_user(&user_id(u)), Some(u), "{big}");
            let c = ConversationId::try_from(big).expect("id");
            assert_eq!(parse_conversation(&conversation_id(c)), Some(c), "{big}");
            assert_eq!(
                parse_message(&message_id(c, Seq(7))),
                Some((c, Seq(7))),
                "{big}"
            );
        }
        // A user id is not a conversation id, nor a message id.
        assert_eq!(parse_conversation(&user_id(u)), None);
        assert_eq!(parse_message(&user_id(u)), None);
        for bad in [
            "",
            "0",
            "x",
            "01000000-0000-8000-8000-00000000002",
            "not-a-uuid-at-all",
        ] {
            assert_eq!(parse_user(bad), None, "{bad}");
        }
        // A random version-4 UUID is none of ours.
        assert_eq!(parse_user("9b2c5e1e-3f0a-4c1d-9a7e-2b1c0d9e8f7a"), None);
    }

    #[test]
    fn accounts_of_phones_and_emails() {
        assert_eq!(account_of("13800138000").as_deref(), Some("13800138000"));
        assert_eq!(
            account_of("Zhang.San@Example.com").as_deref(),
            Some("zhang.san_at_example.com")
        );
        assert_eq!(account_of("a+b@example.com"), None);
        assert_eq!(
            phone_and_email("zhang.san_at_example.com"),
            (String::new(), "zhang.san@example.com".to_owned())
        );
        assert_eq!(
            phone_and_email("13800138000"),
            ("13800138000".to_owned(), String::new())
        );
        assert!(!is_phone("12800138000"));
    }

    #[test]
    fn messages_render_in_anychat_form() {
        let conv = ConversationId::try_from(9).expect("id");
        let sender = UserId::try_from(3).expect("id");
        let mut m = Message {
            id: parley_protocol::ids::MessageId::try_from(77).expect("id"),
            conversation: conv,
            seq: Seq(5),
            sender,
            sender_device: parley_protocol::ids::DeviceId::try_from("d").expect("id"),
            content_type: ContentType::Image,
            content: bytes::Bytes::from_static(b"{\"url\":\"x\"}"),
            client_msg_id: parley_protocol::ids::ClientMsgId::try_from("local-1").expect("id"),
            server_time_ms: 1_700_000_000_123,
            reply_to: Seq(2),
            mentions: vec![sender],
            event: None,
            amended: None,
            thread_root: Seq::ZERO,
            forwarded_from: None,
            mention_all: false,
        };
        let v = message(&m, Some(ConversationKind::Group)).expect("shown");
        assert_eq!(v["messageId"], message_id(conv, Seq(5)));
        assert_eq!(v["replyTo"], message_id(conv, Seq(2)));
        assert_eq!(
            (&v["contentType"], &v["messageType"], &v["content"]),
            (&json!("image"), &json!(2), &json!("{\"url\":\"x\"}"))
        );
        assert_eq!(
            (&v["timestamp"], &v["sequence"]),
            (&json!(1_700_000_000u64), &json!(5))
        );
        assert_eq!(
            (&v["localId"], &v["conversationType"]),
            (&json!("local-1"), &json!("group"))
        );
        assert_eq!(v["atUsers"], json!([user_id(sender)]));
        m.amended = Some(Box::new(parley_protocol::frames::Amendments {
            edited_at_ms: 0,
            recalled: true,
            reactions: Vec::new(),
            deleted_for_me: false,
        }));
        let v = message(&m, None).expect("shown");
        assert_eq!((&v["status"], &v["content"]), (&json!(1), &json!("")));
        assert!(v.get("conversationType").is_none());
        m.event = Some(Box::new(ConversationEvent::Recall(Seq(4))));
        assert!(
            message(&m, None).is_none(),
            "amendments are folded into what they amend"
        );
    }

    #[test]
    fn times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_709_210_096_789), "2024-02-29T12:34:56Z");
        assert_eq!(secs(1_999), 1);
    }
}
