//! Meetings: rooms that anyone given the id may join (with the password, if there is one);
//! the requests' validation and a meeting as the server shows it.

use crate::error::InvalidInput;
use crate::ids::UserId;
use crate::wire as w;

use super::group::text;

/// Longest meeting title, in characters.
pub const MAX_MEETING_TITLE_CHARS: usize = 128;
/// Longest meeting password, in bytes.
pub const MAX_MEETING_PASSWORD_BYTES: usize = 128;
/// Most participants a meeting may have (also what `max_participants = 0` means).
pub const MAX_MEETING_PARTICIPANTS: u32 = 1000;
/// Meetings listed per page when the client asks for 0, and at most.
pub const DEFAULT_MEETING_PAGE: u32 = 20;
/// See [`DEFAULT_MEETING_PAGE`].
pub const MAX_MEETING_PAGE: u32 = 100;

/// A meeting as the server shows it (see `MeetingInfo` in the .proto file).
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // see `MeetingInfo` in the .proto file
pub struct MeetingInfo {
    pub id: u64,
    pub creator: UserId,
    pub title: String,
    pub has_password: bool,
    pub max_participants: u32,
    pub created_at_ms: u64,
    /// 0: open.
    pub ended_at_ms: u64,
    /// Empty for a caller who is neither the creator nor a participant.
    pub participants: Vec<UserId>,
    pub participant_count: u32,
}

impl From<MeetingInfo> for w::MeetingInfo {
    fn from(m: MeetingInfo) -> Self {
        w::MeetingInfo {
            meeting_id: m.id,
            creator_user_id: m.creator.get(),
            title: m.title,
            has_password: m.has_password,
            max_participants: m.max_participants,
            created_at_ms: m.created_at_ms,
            ended_at_ms: m.ended_at_ms,
            participant_user_ids: m.participants.into_iter().map(u64::from).collect(),
            participant_count: m.participant_count,
        }
    }
}

impl TryFrom<w::MeetingInfo> for MeetingInfo {
    type Error = InvalidInput;
    fn try_from(m: w::MeetingInfo) -> Result<Self, InvalidInput> {
        Ok(MeetingInfo {
            id: meeting_id(m.meeting_id)?,
            creator: UserId::try_from(m.creator_user_id)?,
            title: m.title,
            has_password: m.has_password,
            max_participants: m.max_participants,
            created_at_ms: m.created_at_ms,
            ended_at_ms: m.ended_at_ms,
            participants: super::response::ids(m.participant_user_ids)?,
            participant_count: m.participant_count,
        })
    }
}

/// A meeting id: non-zero.
pub(crate) fn meeting_id(v: u64) -> Result<u64, InvalidInput> {
    match v {
        0 => Err(InvalidInput::new("meeting_id is required")),
        v => Ok(v),
    }
}

/// A meeting title: 1..=128 characters, not blank, no control characters.
pub(crate) fn meeting_title(s: String) -> Result<String, InvalidInput> {
    let s = text(s, MAX_MEETING_TITLE_CHARS, true, "title")?;
    if s.trim().is_empty() {
        return Err(InvalidInput::new("title must not be empty"));
    }
    Ok(s)
}

/// A meeting password: at most 128 bytes (empty: none).
pub(crate) fn meeting_password(s: String) -> Result<String, InvalidInput> {
    if s.len() > MAX_MEETING_PASSWORD_BYTES {
        return Err(InvalidInput::new("password is longer than 128 bytes"));
    }
    Ok(s)
}

/// `max_participants`: 0 (the server's limit) to [`MAX_MEETING_PARTICIPANTS`].
pub(crate) fn meeting_size(v: u32) -> Result<u32, InvalidInput> {
    match v {
        0 => Ok(MAX_MEETING_PARTICIPANTS),
        v if v <= MAX_MEETING_PARTICIPANTS => Ok(v),
        _ => Err(InvalidInput::new("max_participants is at most 1000")),
    }
}

/// A page size of `ListMeetings`: 0 → [`DEFAULT_MEETING_PAGE`], at most [`MAX_MEETING_PAGE`].
pub(crate) fn meeting_page(v: u32) -> Result<u32, InvalidInput> {
    match v {
        0 => Ok(DEFAULT_MEETING_PAGE),
        v if v <= MAX_MEETING_PAGE => Ok(v),
        _ => Err(InvalidInput::new("limit is at most 100")),
    }
}
