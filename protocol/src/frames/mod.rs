//! Domain types for everything carried in a `Frame`, converted from the wire types with
//! validation (`TryFrom`) and back.

mod calls;
mod common;
mod files;
mod group;
mod meetings;
mod page;
mod request;
mod response;
mod shared;
mod social;

pub use crate::values::{MAX_GROUP_NAME_BYTES, MAX_PASSWORD_BYTES, MIN_PASSWORD_BYTES};
pub use common::{ContentType, ConversationKind, CursorKind, Device, GoAwayReason, Platform};
pub use group::{
    Amendments, ConversationEvent, GroupInfo, GroupProfile, GroupProfileChange, JoinPolicy,
    JoinRequest, MemberInfo, MemberRole, Reaction, MAX_ANNOUNCEMENT_BYTES, MAX_DESCRIPTION_BYTES,
    MAX_FILE_ID_BYTES, MAX_JOIN_MESSAGE_BYTES, MAX_NICKNAME_CHARS, MAX_REACTION_BYTES,
};
pub use request::{
    ClientFrame, ConversationPrefs, Credential, PeerRef, RejectedFrame, Request, SendRequest,
    SyncRequest, MAX_PROFILES, MAX_TOKEN_BYTES,
};
pub use response::{
    ConversationInfo, DeviceEntry, ErrorInfo, Limits, LoginResult, MembershipChange, Message,
    MessageHead, Push, Receipt, Response, SendAck, ServerFrame, SyncResponse,
};

pub use calls::{
    CallAction, CallMedia, CallOutcome, CallPush, CallRecord, CallSignal, MAX_CALL_PAYLOAD_BYTES,
};
pub use files::{file_offset, file_page, DEFAULT_FILE_PAGE, MAX_FILE_OFFSET, MAX_FILE_PAGE};
pub use files::{
    mime_type, FileId, FileInfo, FileKind, NewFile, UploadToken, DEFAULT_MIME, MAX_FILE_NAME_BYTES,
    MAX_MIME_BYTES,
};
pub use meetings::{
    MeetingInfo, DEFAULT_MEETING_PAGE, MAX_MEETING_PAGE, MAX_MEETING_PARTICIPANTS,
    MAX_MEETING_PASSWORD_BYTES, MAX_MEETING_TITLE_CHARS,
};
pub use page::FRAME_OVERHEAD;
pub use shared::SharedPush;
pub use social::{
    AddPolicy, Friend, FriendChange, FriendEvent, FriendRequestInfo, Gender, Presence,
    PresenceStatus, Profile, ProfileChange, Settings, SettingsChange, MAX_BIO_CHARS,
    MAX_FRIEND_MESSAGE_BYTES, MAX_LINK_BYTES, MAX_NAME_CHARS, MAX_QUERY_CHARS,
};

#[cfg(test)]
mod tests;
