//! Server → client frames: responses to requests and pushes. The client decodes them through
//! the same validation, so a buggy or hostile server cannot feed the SDK nonsense ids.

use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;

use super::calls::{CallPush, CallRecord};
use super::common::{
    ContentType, ConversationKind, CursorKind, GoAwayReason, Platform, WireErrorCode,
};
use super::files::FileInfo;
use super::group::{
    Amendments, ConversationEvent, GroupInfo, GroupProfile, MemberInfo, MemberRole,
};
use super::social::{Friend, FriendRequestInfo, Presence, Profile, Settings};
use crate::codec::encode_prefixed;
use crate::error::{DecodeError, ErrorCode, InvalidInput};
use crate::ids::{ClientMsgId, ConversationId, DeviceId, MessageId, RequestId, Seq, UserId};
use crate::wire as w;
use crate::wire::frame::Body;

/// Limits announced at login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // see `Limits` in the .proto file
pub struct Limits {
    pub max_frame_bytes: u32,
    pub max_message_bytes: u32,
    pub max_inflight_sends: u32,
    pub max_sync_page: u32,
    pub max_requests_per_second: u32,
    pub recall_window_ms: u64,
}

/// A successful login.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // see `LoginResult` in the .proto file
pub struct LoginResult {
    pub user: UserId,
    pub account: String,
    pub device: DeviceId,
    pub access_token: String,
    pub access_expires_at_ms: u64,
    pub refresh_token: String,
    pub refresh_expires_at_ms: u64,
    pub heartbeat_interval: Duration,
    pub heartbeat_timeout: Duration,
    pub limits: Limits,
    pub server_time_ms: u64,
    pub epoch: u64,
    pub session_id: u64,
}

/// Durable acknowledgement of a send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // see `SendAck` in the .proto file
pub struct SendAck {
    pub message_id: MessageId,
    pub conversation: ConversationId,
    pub seq: Seq,
    pub server_time_ms: u64,
    pub duplicate: bool,
}

/// A stored message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // see `Message` in the .proto file
pub struct Message {
    pub id: MessageId,
    pub conversation: ConversationId,
    pub seq: Seq,
    pub sender: UserId,
    pub sender_device: DeviceId,
    pub content_type: ContentType,
    pub content: Bytes,
    pub client_msg_id: ClientMsgId,
    pub server_time_ms: u64,
    pub reply_to: Seq,
    pub mentions: Vec<UserId>,
    /// Set for conversation events; `None` for plain messages (boxed: most entries are
    /// messages, and a message is moved around a lot).
    pub event: Option<Box<ConversationEvent>>,
    /// What later edits, a recall and reactions did to it, where the server renders them
    /// (history, sync); `None` in pushes and for messages nothing amended.
    pub amended: Option<Box<Amendments>>,
    /// For a reply: the first message of its thread (`Seq::ZERO` otherwise).
    pub thread_root: Seq,
    /// For a forwarded message: the original's author.
    pub forwarded_from: Option<UserId>,
    /// "@all".
    pub mention_all: bool,
}

/// A conversation as one member sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // see `ConversationInfo` in the .proto file
pub struct ConversationInfo {
    pub id: ConversationId,
    pub kind: ConversationKind,
    pub name: String,
    pub members: Vec<UserId>,
    pub head: Seq,
    pub delivered: Seq,
    pub read: Seq,
    pub unread: u64,
    pub owner: Option<UserId>,
    pub visible_from: Seq,
    /// Groups only (boxed: a response is held in every session's request future).
    pub group: Option<Box<GroupProfile>>,
    pub my_role: MemberRole,
    pub my_muted_until_ms: u64,
    pub pinned: bool,
    pub muted: bool,
    pub hidden: bool,
    /// `ListConversations` only (boxed: rarely set, and the info is moved around).
    pub last_message: Option<Box<Message>>,
}

/// A cursor moved by some user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // see `ReceiptPush` in the .proto file
pub struct Receipt {
    pub conversation: ConversationId,
    pub user: UserId,
    pub kind: CursorKind,
    pub seq: Seq,
    pub unread: u64,
}

/// One page of sync.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)] // see `SyncResponse` in the .proto file
pub struct SyncResponse {
    pub epoch: u64,
    pub reset: bool,
    pub conversations: Vec<ConversationInfo>,
    pub messages: Vec<Message>,
    pub receipts: Vec<Receipt>,
    pub has_more: bool,
    /// Where the next page of the round starts (`from_conversation_id`); 0: not paged by
    /// conversation.
    pub next_conversation_id: u64,
}

/// An error reported by the server.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ErrorInfo {
    /// What went wrong.
    pub code: ErrorCode,
    /// Human-readable detail.
    pub message: String,
    /// The server closes the connection after it.
    pub fatal: bool,
    /// Wait this long before trying again (`None`: no advice). Carried as whole milliseconds.
    pub retry_after: Option<Duration>,
}

impl ErrorInfo {
    /// A non-fatal error.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            fatal: false,
            retry_after: None,
        }
    }

    /// The same error, advising the client to wait `after` before trying again (at least 1 ms,
    /// so the advice survives the trip as whole milliseconds).
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after.max(Duration::from_millis(1)));
        self
    }
}

/// A change of group membership.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // see `MembershipPush` in the .proto file
pub struct MembershipChange {
    pub conversation: ConversationInfo,
    pub added: Vec<UserId>,
    pub removed: Vec<UserId>,
    pub by: UserId,
}

/// The answer to one request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Response {
    Login(LoginResult),
    SendAck(SendAck),
    Sync(SyncResponse),
    Pong {
        client_time_ms: u64,
        server_time_ms: u64,
    },
    Error(ErrorInfo),
    Conversation(ConversationInfo),
    Ok,
    ConversationList {
        conversations: Vec<ConversationInfo>,
        total_unread: u64,
        total: u32,
    },
    MemberList {
        members: Vec<MemberInfo>,
        has_more: bool,
        total: u32,
    },
    History {
        messages: Vec<Message>,
        has_more: bool,
    },
    JoinResult {
        pending: bool,
    },
    Group(Box<GroupInfo>),
    Profiles(Vec<Profile>),
    Settings(Box<Settings>),
    Users {
        users: Vec<Profile>,
        has_more: bool,
    },
    FriendResult {
        pending: bool,
    },
    Friends(Vec<Friend>),
    FriendRequests(Vec<FriendRequestInfo>),
    Devices(Vec<DeviceEntry>),
    Presences(Vec<Presence>),
    CallAnswer {
        call: u64,
    },
    SearchResult {
        messages: Vec<Message>,
        has_more: bool,
    },
    ReadState {
        receipts: Vec<Receipt>,
        has_more: bool,
    },
    Calls {
        calls: Vec<(ConversationId, CallRecord)>,
        has_more: bool,
    },
    /// A file's metadata (boxed: responses are held in request futures).
    File(Box<FileInfo>),
    /// A page of the caller's files, newest first (`ListFiles`).
    Files {
        files: Vec<FileInfo>,
        has_more: bool,
        total: u32,
    },
    /// One meeting (boxed: responses are held in request futures).
    Meeting(Box<super::meetings::MeetingInfo>),
    /// A page of the caller's open meetings (`ListMeetings`).
    Meetings {
        meetings: Vec<super::meetings::MeetingInfo>,
        has_more: bool,
        total: u32,
    },
}

/// One of a user's devices, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // see `DeviceEntry` in the .proto file
pub struct DeviceEntry {
    pub device: DeviceId,
    pub platform: Platform,
    pub last_login_ms: u64,
    pub online: bool,
    pub current: bool,
}

/// Something the server tells the client unasked.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Push {
    Message(Message),
    Receipt(Receipt),
    GoAway {
        reason: GoAwayReason,
        message: String,
    },
    SyncNeeded,
    Typing {
        conversation: ConversationId,
        user: UserId,
    },
    Membership(MembershipChange),
    /// A friend's (or the user's own) new profile.
    Profile(Box<Profile>),
    /// A friend's or co-member's presence changed.
    Presence(Box<Presence>),
    /// A call signal.
    Call(Box<CallPush>),
    /// An error not tied to a request (e.g. an undecodable frame).
    Error(ErrorInfo),
}

/// Any frame the server sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerFrame {
    /// The answer to the request with this id.
    Response(RequestId, Response),
    /// A push.
    Push(Push),
}

// ---- domain -> wire -------------------------------------------------------------------------

impl From<Message> for w::Message {
    fn from(m: Message) -> Self {
        let mut out = w::Message {
            message_id: m.id.get(),
            conversation_id: m.conversation.get(),
            seq: m.seq.get(),
            sender_user_id: m.sender.get(),
            sender_device_id: m.sender_device.into(),
            content_type: m.content_type.to_wire(),
            content: m.content,
            client_msg_id: m.client_msg_id.into(),
            server_time_ms: m.server_time_ms,
            reply_to_seq: m.reply_to.get(),
            mention_user_ids: m.mentions.into_iter().map(u64::from).collect(),
            event: m.event.map(|e| (*e).into()),
            edited_at_ms: 0,
            recalled: false,
            reactions: Vec::new(),
            thread_root_seq: m.thread_root.get(),
            forwarded_from_user_id: m.forwarded_from.map_or(0, u64::from),
            mention_all: m.mention_all,
            deleted_for_me: false,
        };
        if let Some(a) = m.amended {
            a.write(&mut out);
        }
        out
    }
}

impl From<ConversationInfo> for w::ConversationInfo {
    fn from(c: ConversationInfo) -> Self {
        w::ConversationInfo {
            conversation_id: c.id.get(),
            kind: c.kind.to_wire(),
            name: c.name,
            member_user_ids: c.members.into_iter().map(u64::from).collect(),
            head_seq: c.head.get(),
            delivered_seq: c.delivered.get(),
            read_seq: c.read.get(),
            unread: c.unread,
            owner_user_id: c.owner.map_or(0, u64::from),
            visible_from_seq: c.visible_from.get(),
            group: c.group.map(|g| (*g).into()),
            my_role: c.my_role.to_wire(),
            my_muted_until_ms: c.my_muted_until_ms,
            pinned: c.pinned,
            muted: c.muted,
            hidden: c.hidden,
            last_message: c.last_message.map(|m| (*m).into()),
        }
    }
}

impl From<Receipt> for w::ReceiptPush {
    fn from(r: Receipt) -> Self {
        w::ReceiptPush {
            conversation_id: r.conversation.get(),
            user_id: r.user.get(),
            kind: r.kind.to_wire(),
            seq: r.seq.get(),
            unread: r.unread,
        }
    }
}

impl From<ErrorInfo> for w::Error {
    fn from(e: ErrorInfo) -> Self {
        w::Error {
            code: WireErrorCode::from(e.code).to_wire(),
            message: e.message,
            fatal: e.fatal,
            retry_after_ms: e.retry_after.map_or(0, |d| ms(d).max(1)),
        }
    }
}

fn ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

impl From<Response> for Body {
    fn from(r: Response) -> Body {
        match r {
            Response::Login(l) => Body::LoginResult(w::LoginResult {
                user_id: l.user.get(),
                account: l.account,
                device_id: l.device.into(),
                access_token: l.access_token,
                access_expires_at_ms: l.access_expires_at_ms,
                refresh_token: l.refresh_token,
                refresh_expires_at_ms: l.refresh_expires_at_ms,
                heartbeat_interval_ms: ms(l.heartbeat_interval),
                heartbeat_timeout_ms: ms(l.heartbeat_timeout),
                limits: Some(w::Limits {
                    max_frame_bytes: l.limits.max_frame_bytes,
                    max_message_bytes: l.limits.max_message_bytes,
                    max_inflight_sends: l.limits.max_inflight_sends,
                    max_sync_page: l.limits.max_sync_page,
                    max_requests_per_second: l.limits.max_requests_per_second,
                    recall_window_ms: l.limits.recall_window_ms,
                }),
                server_time_ms: l.server_time_ms,
                epoch: l.epoch,
                session_id: l.session_id,
            }),
            Response::SendAck(a) => Body::SendAck(w::SendAck {
                message_id: a.message_id.get(),
                conversation_id: a.conversation.get(),
                seq: a.seq.get(),
                server_time_ms: a.server_time_ms,
                duplicate: a.duplicate,
            }),
            Response::Sync(s) => Body::SyncResponse(w::SyncResponse {
                epoch: s.epoch,
                reset: s.reset,
                conversations: s.conversations.into_iter().map(Into::into).collect(),
                messages: s.messages.into_iter().map(Into::into).collect(),
                receipts: s.receipts.into_iter().map(Into::into).collect(),
                has_more: s.has_more,
                next_conversation_id: s.next_conversation_id,
            }),
            Response::Pong {
                client_time_ms,
                server_time_ms,
            } => Body::Pong(w::Pong {
                client_time_ms,
                server_time_ms,
            }),
            Response::Error(e) => Body::Error(e.into()),
            Response::Conversation(c) => Body::Conversation(c.into()),
            Response::Ok => Body::Ok(w::Ok {}),
            Response::ConversationList {
                conversations,
                total_unread,
                total,
            } => Body::ConversationList(w::ConversationList {
                conversations: conversations.into_iter().map(Into::into).collect(),
                total_unread,
                total,
            }),
            Response::MemberList {
                members,
                has_more,
                total,
            } => Body::MemberList(w::MemberList {
                members: members.into_iter().map(Into::into).collect(),
                has_more,
                total,
            }),
            Response::History { messages, has_more } => Body::History(w::History {
                messages: messages.into_iter().map(Into::into).collect(),
                has_more,
            }),
            Response::JoinResult { pending } => Body::JoinResult(w::JoinResult { pending }),
            Response::Group(g) => Body::GroupInfo((*g).into()),
            Response::Profiles(p) => Body::ProfileList(w::ProfileList {
                profiles: p.into_iter().map(Into::into).collect(),
            }),
            Response::Settings(s) => Body::Settings((*s).into()),
            Response::Users { users, has_more } => Body::UserList(w::UserList {
                users: users.into_iter().map(Into::into).collect(),
                has_more,
            }),
            Response::FriendResult { pending } => Body::FriendResult(w::FriendResult { pending }),
            Response::Friends(f) => Body::FriendList(w::FriendList {
                friends: f.into_iter().map(Into::into).collect(),
            }),
            Response::FriendRequests(r) => Body::FriendRequestList(w::FriendRequestList {
                requests: r.into_iter().map(Into::into).collect(),
            }),
            Response::CallAnswer { call } => Body::CallAnswer(w::CallAnswer { call_id: call }),
            Response::ReadState { receipts, has_more } => Body::ReadState(w::ReadState {
                receipts: receipts.into_iter().map(Into::into).collect(),
                has_more,
            }),
            Response::SearchResult { messages, has_more } => Body::SearchResult(w::SearchResult {
                messages: messages.into_iter().map(Into::into).collect(),
                has_more,
            }),
            Response::Calls { calls, has_more } => Body::CallList(w::CallList {
                calls: calls
                    .into_iter()
                    .map(|(c, r)| w::CallRecord {
                        conversation_id: c.get(),
                        call: Some(r.into()),
                    })
                    .collect(),
                has_more,
            }),
            Response::File(f) => Body::FileInfo((*f).into()),
            Response::Meeting(m) => Body::MeetingInfo((*m).into()),
            Response::Meetings {
                meetings,
                has_more,
                total,
            } => Body::MeetingList(w::MeetingList {
                meetings: meetings.into_iter().map(Into::into).collect(),
                has_more,
                total,
            }),
            Response::Files {
                files,
                has_more,
                total,
            } => Body::FileList(w::FileList {
                files: files.into_iter().map(Into::into).collect(),
                has_more,
                total,
            }),
            Response::Presences(p) => Body::PresenceList(w::PresenceList {
                presences: p.into_iter().map(Into::into).collect(),
            }),
            Response::Devices(d) => Body::DeviceList(w::DeviceList {
                devices: d
                    .into_iter()
                    .map(|d| w::DeviceEntry {
                        device_id: d.device.into(),
                        platform: d.platform.to_wire(),
                        last_login_ms: d.last_login_ms,
                        online: d.online,
                        current: d.current,
                    })
                    .collect(),
            }),
        }
    }
}

impl From<Push> for Body {
    fn from(p: Push) -> Body {
        match p {
            Push::Message(m) => Body::Message(w::MessagePush {
                message: Some(m.into()),
            }),
            Push::Receipt(r) => Body::Receipt(r.into()),
            Push::GoAway { reason, message } => Body::GoAway(w::GoAway {
                reason: reason.to_wire(),
                message,
            }),
            Push::SyncNeeded => Body::SyncNeeded(w::SyncNeeded {}),
            Push::Typing { conversation, user } => Body::TypingPush(w::TypingPush {
                conversation_id: conversation.get(),
                user_id: user.get(),
            }),
            Push::Membership(m) => Body::Membership(w::MembershipPush {
                conversation: Some(m.conversation.into()),
                added_user_ids: m.added.into_iter().map(u64::from).collect(),
                removed_user_ids: m.removed.into_iter().map(u64::from).collect(),
                by_user_id: m.by.get(),
            }),
            Push::Profile(p) => Body::Profile(w::ProfilePush {
                profile: Some((*p).into()),
            }),
            Push::Call(c) => Body::Call((*c).into()),
            Push::Presence(p) => Body::Presence(w::PresencePush {
                presence: Some((*p).into()),
            }),
            Push::Error(e) => Body::Error(e.into()),
        }
    }
}

// ---- wire -> domain -------------------------------------------------------------------------

pub(super) fn ids<T: TryFrom<u64, Error = InvalidInput>>(
    v: Vec<u64>,
) -> Result<Vec<T>, InvalidInput> {
    v.into_iter().map(T::try_from).collect()
}

impl TryFrom<w::Message> for Message {
    type Error = InvalidInput;
    fn try_from(mut m: w::Message) -> Result<Self, InvalidInput> {
        let amended = Amendments::read(&mut m)?;
        Ok(Message {
            id: MessageId::try_from(m.message_id)?,
            conversation: ConversationId::try_from(m.conversation_id)?,
            seq: Seq(m.seq),
            sender: UserId::try_from(m.sender_user_id)?,
            sender_device: DeviceId::try_from(m.sender_device_id)?,
            content_type: ContentType::from_wire(m.content_type),
            content: m.content,
            client_msg_id: ClientMsgId::try_from(m.client_msg_id)?,
            server_time_ms: m.server_time_ms,
            reply_to: Seq(m.reply_to_seq),
            mentions: ids(m.mention_user_ids)?,
            event: m
                .event
                .map(|e| ConversationEvent::try_from(e).map(Box::new))
                .transpose()?,
            amended,
            thread_root: Seq(m.thread_root_seq),
            forwarded_from: UserId::try_from(m.forwarded_from_user_id).ok(),
            mention_all: m.mention_all,
        })
    }
}

impl TryFrom<w::ConversationInfo> for ConversationInfo {
    type Error = InvalidInput;
    fn try_from(c: w::ConversationInfo) -> Result<Self, InvalidInput> {
        Ok(ConversationInfo {
            id: ConversationId::try_from(c.conversation_id)?,
            kind: ConversationKind::from_wire(c.kind),
            name: c.name,
            members: ids(c.member_user_ids)?,
            head: Seq(c.head_seq),
            delivered: Seq(c.delivered_seq),
            read: Seq(c.read_seq),
            unread: c.unread,
            owner: UserId::try_from(c.owner_user_id).ok(),
            visible_from: Seq(c.visible_from_seq),
            group: c.group.map(|g| Box::new(g.into())),
            my_role: MemberRole::from_wire(c.my_role),
            my_muted_until_ms: c.my_muted_until_ms,
            pinned: c.pinned,
            muted: c.muted,
            hidden: c.hidden,
            last_message: c
                .last_message
                .map(|m| Message::try_from(m).map(Box::new))
                .transpose()?,
        })
    }
}

impl TryFrom<w::ReceiptPush> for Receipt {
    type Error = InvalidInput;
    fn try_from(r: w::ReceiptPush) -> Result<Self, InvalidInput> {
        Ok(Receipt {
            conversation: ConversationId::try_from(r.conversation_id)?,
            user: UserId::try_from(r.user_id)?,
            kind: CursorKind::from_wire(r.kind)?,
            seq: Seq(r.seq),
            unread: r.unread,
        })
    }
}

impl From<w::Error> for ErrorInfo {
    fn from(e: w::Error) -> Self {
        ErrorInfo {
            code: WireErrorCode::from_wire(e.code).into(),
            message: e.message,
            fatal: e.fatal,
            retry_after: (e.retry_after_ms > 0)
                .then(|| Duration::from_millis(e.retry_after_ms.into())),
        }
    }
}

fn response(body: Body) -> Result<Response, DecodeError> {
    Ok(match body {
        Body::LoginResult(l) => {
            let limits = l.limits.unwrap_or_default();
            Response::Login(LoginResult {
                user: UserId::try_from(l.user_id)?,
                account: l.account,
                device: DeviceId::try_from(l.device_id)?,
                access_token: l.access_token,
                access_expires_at_ms: l.access_expires_at_ms,
                refresh_token: l.refresh_token,
                refresh_expires_at_ms: l.refresh_expires_at_ms,
                heartbeat_interval: Duration::from_millis(l.heartbeat_interval_ms.into()),
                heartbeat_timeout: Duration::from_millis(l.heartbeat_timeout_ms.into()),
                limits: Limits {
                    max_frame_bytes: limits.max_frame_bytes,
                    max_message_bytes: limits.max_message_bytes,
                    max_inflight_sends: limits.max_inflight_sends,
                    max_sync_page: limits.max_sync_page,
                    max_requests_per_second: limits.max_requests_per_second,
                    recall_window_ms: limits.recall_window_ms,
                },
                server_time_ms: l.server_time_ms,
                epoch: l.epoch,
                session_id: l.session_id,
            })
        }
        Body::SendAck(a) => Response::SendAck(SendAck {
            message_id: MessageId::try_from(a.message_id)?,
            conversation: ConversationId::try_from(a.conversation_id)?,
            seq: Seq(a.seq),
            server_time_ms: a.server_time_ms,
            duplicate: a.duplicate,
        }),
        Body::SyncResponse(s) => Response::Sync(SyncResponse {
            epoch: s.epoch,
            reset: s.reset,
            conversations: s
                .conversations
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            messages: s
                .messages
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            receipts: s
                .receipts
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            has_more: s.has_more,
            next_conversation_id: s.next_conversation_id,
        }),
        Body::Pong(p) => Response::Pong {
            client_time_ms: p.client_time_ms,
            server_time_ms: p.server_time_ms,
        },
        Body::Error(e) => Response::Error(e.into()),
        Body::Conversation(c) => Response::Conversation(c.try_into()?),
        Body::Ok(_) => Response::Ok,
        Body::ConversationList(l) => Response::ConversationList {
            conversations: l
                .conversations
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            total_unread: l.total_unread,
            total: l.total,
        },
        Body::MemberList(l) => Response::MemberList {
            members: l
                .members
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            has_more: l.has_more,
            total: l.total,
        },
        Body::History(h) => Response::History {
            messages: h
                .messages
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            has_more: h.has_more,
        },
        Body::JoinResult(j) => Response::JoinResult { pending: j.pending },
        Body::GroupInfo(g) => Response::Group(Box::new(g.try_into()?)),
        Body::ProfileList(p) => {
            Response::Profiles(p.profiles.into_iter().map(Into::into).collect())
        }
        Body::Settings(s) => Response::Settings(Box::new(s.into())),
        Body::UserList(u) => Response::Users {
            users: u.users.into_iter().map(Into::into).collect(),
            has_more: u.has_more,
        },
        Body::FriendResult(f) => Response::FriendResult { pending: f.pending },
        Body::FriendList(f) => Response::Friends(f.friends.into_iter().map(Into::into).collect()),
        Body::CallAnswer(c) => Response::CallAnswer { call: c.call_id },
        Body::ReadState(r) => Response::ReadState {
            receipts: r
                .receipts
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            has_more: r.has_more,
        },
        Body::SearchResult(r) => Response::SearchResult {
            messages: r
                .messages
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            has_more: r.has_more,
        },
        Body::CallList(l) => Response::Calls {
            calls: l
                .calls
                .into_iter()
                .map(|r| {
                    Ok((
                        ConversationId::try_from(r.conversation_id)?,
                        r.call
                            .ok_or(InvalidInput::new("call record without a call"))?
                            .try_into()?,
                    ))
                })
                .collect::<Result<_, InvalidInput>>()?,
            has_more: l.has_more,
        },
        Body::PresenceList(p) => Response::Presences(
            p.presences
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
        ),
        Body::DeviceList(d) => Response::Devices(
            d.devices
                .into_iter()
                .map(|d| {
                    Ok(DeviceEntry {
                        device: DeviceId::try_from(d.device_id)?,
                        platform: Platform::from_wire(d.platform),
                        last_login_ms: d.last_login_ms,
                        online: d.online,
                        current: d.current,
                    })
                })
                .collect::<Result<_, InvalidInput>>()?,
        ),
        Body::FriendRequestList(r) => {
            Response::FriendRequests(r.requests.into_iter().map(Into::into).collect())
        }
        Body::FileInfo(f) => Response::File(Box::new(f.try_into()?)),
        Body::FileList(l) => Response::Files {
            files: l
                .files
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            has_more: l.has_more,
            total: l.total,
        },
        Body::MeetingInfo(m) => Response::Meeting(Box::new(m.try_into()?)),
        Body::MeetingList(l) => Response::Meetings {
            meetings: l
                .meetings
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            has_more: l.has_more,
            total: l.total,
        },
        _ => return Err(DecodeError::Unexpected("not a response")),
    })
}

pub(super) fn push(body: Body) -> Result<Push, DecodeError> {
    Ok(match body {
        Body::Message(m) => Push::Message(
            m.message
                .ok_or(InvalidInput::new("message push without a message"))?
                .try_into()?,
        ),
        Body::Receipt(r) => Push::Receipt(r.try_into()?),
        Body::GoAway(g) => Push::GoAway {
            reason: GoAwayReason::from_wire(g.reason),
            message: g.message,
        },
        Body::SyncNeeded(_) => Push::SyncNeeded,
        Body::TypingPush(t) => Push::Typing {
            conversation: ConversationId::try_from(t.conversation_id)?,
            user: UserId::try_from(t.user_id)?,
        },
        Body::Membership(m) => Push::Membership(MembershipChange {
            conversation: m
                .conversation
                .ok_or(InvalidInput::new("membership push without a conversation"))?
                .try_into()?,
            added: ids(m.added_user_ids)?,
            removed: ids(m.removed_user_ids)?,
            by: UserId::try_from(m.by_user_id)?,
        }),
        Body::Profile(p) => Push::Profile(Box::new(p.profile.unwrap_or_default().into())),
        Body::Call(c) => Push::Call(Box::new(c.try_into()?)),
        Body::Presence(p) => Push::Presence(Box::new(
            p.presence
                .ok_or(InvalidInput::new("presence push without a presence"))?
                .try_into()?,
        )),
        Body::Error(e) => Push::Error(e.into()),
        _ => return Err(DecodeError::Unexpected("not a push")),
    })
}

impl ServerFrame {
    /// Decodes and validates one frame body (without its length prefix).
    pub fn decode(body: Bytes) -> Result<ServerFrame, DecodeError> {
        let frame = w::Frame::decode(body)?;
        let body = frame
            .body
            .ok_or(DecodeError::Unexpected("frame without a body"))?;
        match RequestId::try_from(frame.request_id) {
            Ok(id) => Ok(ServerFrame::Response(id, response(body)?)),
            Err(_) => Ok(ServerFrame::Push(push(body)?)),
        }
    }

    /// Encodes as one length-prefixed frame, ready to be shared between connections.
    pub fn encode(self) -> Bytes {
        let (request_id, body) = match self {
            ServerFrame::Response(id, r) => (id.get(), Body::from(r)),
            ServerFrame::Push(p) => (0, Body::from(p)),
        };
        encode_prefixed(&w::Frame {
            request_id,
            body: Some(body),
        })
    }

    /// An error frame answering `request_id` (0 = not tied to a request).
    pub fn error(request_id: u64, error: ErrorInfo) -> ServerFrame {
        match RequestId::try_from(request_id) {
            Ok(id) => ServerFrame::Response(id, Response::Error(error)),
            Err(_) => ServerFrame::Push(Push::Error(error)),
        }
    }
}

impl Message {
    /// Stable binary encoding of a message (the wire `Message`), used for storage.
    pub fn to_bytes(&self) -> Vec<u8> {
        w::Message::from(self.clone()).encode_to_vec()
    }

    /// Appends the [`Message::to_bytes`] encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        w::Message::from(self.clone()).encode_raw(out);
    }

    /// Decodes [`Message::to_bytes`] output.
    pub fn from_bytes(bytes: &[u8]) -> Result<Message, DecodeError> {
        Ok(w::Message::decode(bytes)?.try_into()?)
    }

    /// Decodes only the ids and position of [`Message::to_bytes`] output, skipping the rest
    /// (content, strings, events) unparsed: what a pass over the whole stored log needs to
    /// follow its chains, at a fraction of a full decode's cost.
    ///
    /// prost writes a message's fields in tag order, so the four come first: reading stops at
    /// the first later field. Anything else (another order, a field missing, another wire
    /// type) is decoded by prost in full, with its errors.
    pub fn head_from_bytes(bytes: &[u8]) -> Result<MessageHead, DecodeError> {
        let h = head_fields(bytes).map_or_else(|| WireHead::decode(bytes), Ok)?;
        Ok(MessageHead {
            id: MessageId::try_from(h.message_id)?,
            conversation: ConversationId::try_from(h.conversation_id)?,
            seq: Seq(h.seq),
            sender: UserId::try_from(h.sender_user_id)?,
        })
    }
}

/// The first four fields of an encoded `Message` when they lead it, all set, as varints, and
/// none of them appears again later (a full decode takes a field's last value: a record that
/// repeats one after another field goes to [`WireHead::decode`], which reads it the same way).
/// The rest is only skipped over, never parsed: lengths are followed, nothing is allocated.
fn head_fields(mut buf: &[u8]) -> Option<WireHead> {
    use prost::encoding::{decode_key, decode_varint, skip_field, DecodeContext, WireType};
    let mut f = [0u64; 4];
    while !buf.is_empty() {
        let (tag, wire_type) = decode_key(&mut buf).ok()?;
        if !(1..=4).contains(&tag) {
            skip_field(wire_type, tag, &mut buf, DecodeContext::default()).ok()?;
            break;
        }
        if wire_type != WireType::Varint {
            return None;
        }
        f[tag as usize - 1] = decode_varint(&mut buf).ok()?;
    }
    while !buf.is_empty() {
        let (tag, wire_type) = decode_key(&mut buf).ok()?;
        if (1..=4).contains(&tag) {
            return None;
        }
        skip_field(wire_type, tag, &mut buf, DecodeContext::default()).ok()?;
    }
    f.iter().all(|&v| v != 0).then_some(WireHead {
        message_id: f[0],
        conversation_id: f[1],
        seq: f[2],
        sender_user_id: f[3],
    })
}

/// The ids and position of a stored message ([`Message::head_from_bytes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageHead {
    /// The message's global id.
    pub id: MessageId,
    /// Its conversation.
    pub conversation: ConversationId,
    /// Its position in the conversation.
    pub seq: Seq,
    /// Who sent it.
    pub sender: UserId,
}

/// The wire `Message`'s first four fields: prost skips every other field without parsing it.
/// Tag numbers as in `parley.proto`'s `Message` (a test checks a decode against the full one).
#[derive(Clone, PartialEq, prost::Message)]
struct WireHead {
    #[prost(uint64, tag = "1")]
    message_id: u64,
    #[prost(uint64, tag = "2")]
    conversation_id: u64,
    #[prost(uint64, tag = "3")]
    seq: u64,
    #[prost(uint64, tag = "4")]
    sender_user_id: u64,
}
