//! Client → server frames: decoded and validated here, so the server only sees well-formed
//! requests.

use bytes::Bytes;
use prost::Message as _;

use super::calls::CallSignal;
use super::common::{ContentType, CursorKind, Device};
use super::files::{FileId, NewFile, UploadToken};
use super::group::{
    reaction, text, GroupProfileChange, MemberRole, MAX_JOIN_MESSAGE_BYTES, MAX_NICKNAME_CHARS,
};
use super::social::{
    friend_message, name, PresenceStatus, ProfileChange, SettingsChange, MAX_QUERY_CHARS,
};
use crate::codec::encode_prefixed;
use crate::error::{DecodeError, InvalidInput};
use crate::ids::{Account, ClientMsgId, ConversationId, DeviceId, RequestId, Seq, UserId};
use crate::values::{GroupName, NewPassword, Password};
use crate::wire as w;
use crate::wire::frame::Body;

/// Most users one `GetProfiles` may ask for.
pub const MAX_PROFILES: usize = 100;

/// Longest token accepted.
pub const MAX_TOKEN_BYTES: usize = 512;

/// How a login proves who it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// Account name and password.
    Password {
        /// Login name.
        account: Account,
        /// Cleartext password (TLS protects it in transit).
        password: Password,
    },
    /// An access token from an earlier login.
    AccessToken(String),
}

/// Who the other side of a 1:1 conversation is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerRef {
    /// By user id.
    User(UserId),
    /// By account name.
    Account(Account),
}

/// A message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendRequest {
    /// Target conversation.
    pub conversation: ConversationId,
    /// How to interpret `content`.
    pub content_type: ContentType,
    /// Opaque payload (its size is checked by the server against its configured limit).
    pub content: Bytes,
    /// Idempotency key.
    pub client_msg_id: ClientMsgId,
    /// Message replied to, or `Seq::ZERO`.
    pub reply_to: Seq,
    /// Mentioned users.
    pub mentions: Vec<UserId>,
    /// "@all".
    pub mention_all: bool,
}

/// What the client has, for sync.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncRequest {
    /// Epoch the positions refer to (0 = none).
    pub epoch: u64,
    /// Highest seq held per conversation.
    pub positions: Vec<(ConversationId, Seq)>,
    /// Requested page size (0 = server default).
    pub limit: u32,
    /// Continue a round from this conversation (the previous page's `next_conversation_id`);
    /// `None`: from the first.
    pub from_conversation: Option<ConversationId>,
}

/// Preferences of one user for one conversation (`None`: unchanged).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)] // see `SetConversationPrefs` in the .proto file
pub struct ConversationPrefs {
    pub pinned: Option<bool>,
    pub muted: Option<bool>,
    pub hidden: Option<bool>,
}

/// Every request a client can make.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // fields mirror the documented .proto messages
pub enum Request {
    Register {
        account: Account,
        password: NewPassword,
        device: Device,
    },
    Login {
        credential: Credential,
        device: Device,
    },
    Refresh {
        refresh_token: String,
        device: Device,
    },
    Logout,
    GuestLogin {
        device: Device,
        nickname: String,
    },
    ChangePassword {
        old: Password,
        new: NewPassword,
    },
    ListDevices,
    SignOutDevice(DeviceId),
    SetPresence {
        /// `None`: unchanged (only `Online` or `Away`).
        status: Option<PresenceStatus>,
        /// `None`: unchanged.
        text: Option<String>,
    },
    GetPresence(Vec<UserId>),
    CallSignal(CallSignal),
    ForwardMessage {
        from: ConversationId,
        seq: Seq,
        to: ConversationId,
        client_msg_id: ClientMsgId,
    },
    DeleteForMe {
        conversation: ConversationId,
        seqs: Vec<Seq>,
    },
    GetReadState {
        conversation: ConversationId,
        after: u64,
        limit: u32,
    },
    SearchMessages {
        query: String,
        conversation: Option<ConversationId>,
        before: u64,
        limit: u32,
    },
    SetPushToken {
        provider: String,
        /// Empty: remove.
        token: String,
    },
    ListCalls {
        /// Older than this call id (0: from the newest).
        before: u64,
        limit: u32,
    },
    /// One call, in progress or ended (see `GetCall` in the .proto file).
    GetCall {
        call: u64,
    },
    Send(SendRequest),
    CursorAck {
        conversation: ConversationId,
        kind: CursorKind,
        seq: Seq,
    },
    Sync(SyncRequest),
    Ping {
        client_time_ms: u64,
    },
    OpenDirect(PeerRef),
    CreateGroup {
        name: GroupName,
        members: Vec<UserId>,
    },
    ChangeMembers {
        conversation: ConversationId,
        add: Vec<UserId>,
        remove: Vec<UserId>,
        /// Idempotency key (`None`: the server picks one).
        request_key: Option<ClientMsgId>,
    },
    Typing {
        conversation: ConversationId,
    },
    ListConversations {
        /// Page size (0: all).
        limit: u32,
        /// Conversations to skip.
        offset: u32,
    },
    SetConversationPrefs {
        conversation: ConversationId,
        prefs: ConversationPrefs,
    },
    UpdateGroup {
        conversation: ConversationId,
        change: GroupProfileChange,
        request_key: Option<ClientMsgId>,
    },
    SetMemberRole {
        conversation: ConversationId,
        user: UserId,
        role: MemberRole,
        request_key: Option<ClientMsgId>,
    },
    MuteMember {
        conversation: ConversationId,
        /// `None`: everyone.
        user: Option<UserId>,
        duration_ms: u64,
        request_key: Option<ClientMsgId>,
    },
    DisbandGroup {
        conversation: ConversationId,
        request_key: Option<ClientMsgId>,
    },
    SetGroupNickname {
        conversation: ConversationId,
        nickname: String,
        request_key: Option<ClientMsgId>,
    },
    ListMembers {
        conversation: ConversationId,
        after: u64,
        limit: u32,
    },
    JoinGroup {
        conversation: ConversationId,
        message: String,
        request_key: Option<ClientMsgId>,
    },
    AnswerJoinRequest {
        conversation: ConversationId,
        user: UserId,
        approve: bool,
        request_key: Option<ClientMsgId>,
    },
    EditMessage {
        conversation: ConversationId,
        seq: Seq,
        content: Bytes,
        request_key: Option<ClientMsgId>,
    },
    RecallMessage {
        conversation: ConversationId,
        seq: Seq,
        request_key: Option<ClientMsgId>,
    },
    React {
        conversation: ConversationId,
        seq: Seq,
        emoji: String,
        remove: bool,
        request_key: Option<ClientMsgId>,
    },
    GetHistory {
        conversation: ConversationId,
        /// Page backwards from before this seq (`Seq::ZERO` with `after` zero: from the head).
        before: Seq,
        /// Page forwards from after this seq.
        after: Seq,
        limit: u32,
    },
    GetGroup {
        conversation: ConversationId,
    },
    GetProfiles(Vec<UserId>),
    UpdateProfile(ProfileChange),
    GetSettings,
    UpdateSettings(SettingsChange),
    SearchUsers {
        query: String,
        after: u64,
        limit: u32,
    },
    AddFriend {
        user: UserId,
        message: String,
        remark: String,
    },
    AnswerFriendRequest {
        user: UserId,
        accept: bool,
        remark: String,
    },
    RemoveFriend(UserId),
    SetFriendRemark {
        user: UserId,
        remark: String,
    },
    ListFriends,
    ListFriendRequests {
        outgoing: bool,
    },
    SetBlocked {
        user: UserId,
        blocked: bool,
    },
    ListBlocked,
    /// Registers an uploaded blob as a file of the caller (docs/files.md).
    RegisterFile {
        upload: UploadToken,
        file: NewFile,
    },
    /// A file's metadata, if the caller may read it.
    GetFile(FileId),
    /// The caller's own files, newest first: `offset` skips that many (at most
    /// [`MAX_FILE_OFFSET`](super::files::MAX_FILE_OFFSET)), `limit` is
    /// 1..=[`MAX_FILE_PAGE`](super::files::MAX_FILE_PAGE).
    ListFiles {
        limit: u32,
        offset: u32,
        /// Only files of this kind; `None`: every file.
        kind: Option<super::files::FileKind>,
    },
    /// Deletes a file of the caller (docs/files.md).
    DeleteFile(FileId),
    /// Joins the server's world room (made on first use); answered by its `Conversation`.
    JoinWorld,
    /// Opens a meeting (see `CreateMeeting` in the .proto file); `max_participants` is
    /// 1..=[`MAX_MEETING_PARTICIPANTS`](super::meetings::MAX_MEETING_PARTICIPANTS).
    CreateMeeting {
        title: String,
        /// Empty: none.
        password: String,
        max_participants: u32,
    },
    /// Joins an open meeting.
    JoinMeeting {
        meeting: u64,
        password: String,
    },
    /// Ends a meeting (its creator only).
    EndMeeting {
        meeting: u64,
    },
    /// A meeting, open or ended.
    GetMeeting {
        meeting: u64,
    },
    /// The caller's open meetings, newest first; `limit` is 1..=100.
    ListMeetings {
        offset: u32,
        limit: u32,
    },
}

impl Request {
    /// Short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Register { .. } => "register",
            Request::Login { .. } => "login",
            Request::Refresh { .. } => "refresh",
            Request::Logout => "logout",
            Request::GuestLogin { .. } => "guest_login",
            Request::ChangePassword { .. } => "change_password",
            Request::ListDevices => "list_devices",
            Request::SignOutDevice(_) => "sign_out_device",
            Request::SetPresence { .. } => "set_presence",
            Request::GetPresence(_) => "get_presence",
            Request::CallSignal(_) => "call_signal",
            Request::SetPushToken { .. } => "set_push_token",
            Request::SearchMessages { .. } => "search_messages",
            Request::ForwardMessage { .. } => "forward_message",
            Request::DeleteForMe { .. } => "delete_for_me",
            Request::GetReadState { .. } => "get_read_state",
            Request::ListCalls { .. } => "list_calls",
            Request::GetCall { .. } => "get_call",
            Request::Send(_) => "send",
            Request::CursorAck { .. } => "cursor_ack",
            Request::Sync(_) => "sync",
            Request::Ping { .. } => "ping",
            Request::OpenDirect(_) => "open_direct",
            Request::CreateGroup { .. } => "create_group",
            Request::ChangeMembers { .. } => "change_members",
            Request::Typing { .. } => "typing",
            Request::ListConversations { .. } => "list_conversations",
            Request::SetConversationPrefs { .. } => "set_conversation_prefs",
            Request::UpdateGroup { .. } => "update_group",
            Request::SetMemberRole { .. } => "set_member_role",
            Request::MuteMember { .. } => "mute_member",
            Request::DisbandGroup { .. } => "disband_group",
            Request::SetGroupNickname { .. } => "set_group_nickname",
            Request::ListMembers { .. } => "list_members",
            Request::JoinGroup { .. } => "join_group",
            Request::AnswerJoinRequest { .. } => "answer_join_request",
            Request::EditMessage { .. } => "edit_message",
            Request::RecallMessage { .. } => "recall_message",
            Request::React { .. } => "react",
            Request::GetHistory { .. } => "get_history",
            Request::GetGroup { .. } => "get_group",
            Request::GetProfiles(_) => "get_profiles",
            Request::UpdateProfile(_) => "update_profile",
            Request::GetSettings => "get_settings",
            Request::UpdateSettings(_) => "update_settings",
            Request::SearchUsers { .. } => "search_users",
            Request::AddFriend { .. } => "add_friend",
            Request::AnswerFriendRequest { .. } => "answer_friend_request",
            Request::RemoveFriend(_) => "remove_friend",
            Request::SetFriendRemark { .. } => "set_friend_remark",
            Request::ListFriends => "list_friends",
            Request::ListFriendRequests { .. } => "list_friend_requests",
            Request::SetBlocked { .. } => "set_blocked",
            Request::ListBlocked => "list_blocked",
            Request::RegisterFile { .. } => "register_file",
            Request::GetFile(_) => "get_file",
            Request::ListFiles { .. } => "list_files",
            Request::DeleteFile(_) => "delete_file",
            Request::JoinWorld => "join_world",
            Request::CreateMeeting { .. } => "create_meeting",
            Request::JoinMeeting { .. } => "join_meeting",
            Request::EndMeeting { .. } => "end_meeting",
            Request::GetMeeting { .. } => "get_meeting",
            Request::ListMeetings { .. } => "list_meetings",
        }
    }

    /// Whether this request may be made before login.
    pub fn allowed_before_login(&self) -> bool {
        matches!(
            self,
            Request::Register { .. }
                | Request::Login { .. }
                | Request::GuestLogin { .. }
                | Request::Refresh { .. }
                | Request::Ping { .. }
        )
    }
}

/// A request with its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientFrame {
    /// Echoed in the response.
    pub request_id: RequestId,
    /// The request.
    pub request: Request,
}

/// A client frame that could not be accepted, with the request id if one could be read (so the
/// error can be correlated), else 0.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct RejectedFrame {
    /// Request id from the frame, or 0.
    pub request_id: u64,
    /// Why.
    #[source]
    pub error: DecodeError,
}

fn token(s: String) -> Result<String, InvalidInput> {
    if s.is_empty() || s.len() > MAX_TOKEN_BYTES {
        return Err(InvalidInput::new("token must be 1..=512 bytes"));
    }
    Ok(s)
}

fn user_ids(v: Vec<u64>) -> Result<Vec<UserId>, InvalidInput> {
    v.into_iter().map(UserId::try_from).collect()
}

fn conversation(v: u64) -> Result<ConversationId, InvalidInput> {
    ConversationId::try_from(v)
}

fn key(s: String) -> Result<Option<ClientMsgId>, InvalidInput> {
    match s.is_empty() {
        true => Ok(None),
        false => Ok(Some(ClientMsgId::try_from(s)?)),
    }
}

fn unkey(k: Option<ClientMsgId>) -> String {
    k.map(String::from).unwrap_or_default()
}

fn target(v: u64) -> Result<Seq, InvalidInput> {
    match v {
        0 => Err(InvalidInput::new("seq must be non-zero")),
        v => Ok(Seq(v)),
    }
}

impl TryFrom<Body> for Request {
    type Error = DecodeError;

    fn try_from(body: Body) -> Result<Self, DecodeError> {
        Ok(match body {
            Body::Register(r) => Request::Register {
                account: Account::try_from(r.account)?,
                password: NewPassword::try_from(r.password)?,
                device: Device::try_from(r.device)?,
            },
            Body::Login(l) => {
                let credential = match l.credential {
                    Some(w::login::Credential::Password(p)) => Credential::Password {
                        account: Account::try_from(p.account)?,
                        password: Password::try_from(p.password)?,
                    },
                    Some(w::login::Credential::AccessToken(t)) => {
                        Credential::AccessToken(token(t)?)
                    }
                    None => return Err(InvalidInput::new("login needs a credential").into()),
                };
                Request::Login {
                    credential,
                    device: Device::try_from(l.device)?,
                }
            }
            Body::Refresh(r) => Request::Refresh {
                refresh_token: token(r.refresh_token)?,
                device: Device::try_from(r.device)?,
            },
            Body::Logout(_) => Request::Logout,
            Body::GuestLogin(g) => Request::GuestLogin {
                device: Device::try_from(g.device)?,
                nickname: name(g.nickname, "nickname")?,
            },
            Body::ChangePassword(c) => Request::ChangePassword {
                old: Password::try_from(c.old_password)?,
                new: NewPassword::try_from(c.new_password)?,
            },
            Body::ListDevices(_) => Request::ListDevices,
            Body::SetPresence(p) => Request::SetPresence {
                status: match PresenceStatus::from_wire(p.status) {
                    PresenceStatus::Unspecified => None,
                    s @ (PresenceStatus::Online | PresenceStatus::Away) => Some(s),
                    PresenceStatus::Offline => {
                        return Err(InvalidInput::new("status must be ONLINE or AWAY").into())
                    }
                },
                text: p.text.map(|t| name(t, "text")).transpose()?,
            },
            Body::CallSignal(c) => Request::CallSignal(c.try_into()?),
            Body::ForwardMessage(f) => Request::ForwardMessage {
                from: conversation(f.from_conversation_id)?,
                seq: target(f.seq)?,
                to: conversation(f.to_conversation_id)?,
                client_msg_id: ClientMsgId::try_from(f.client_msg_id)?,
            },
            Body::DeleteForMe(d) => {
                if d.seqs.is_empty() || d.seqs.len() > 100 {
                    return Err(InvalidInput::new("delete_for_me takes 1..=100 seqs").into());
                }
                Request::DeleteForMe {
                    conversation: conversation(d.conversation_id)?,
                    seqs: d.seqs.into_iter().map(target).collect::<Result<_, _>>()?,
                }
            }
            Body::GetReadState(g) => Request::GetReadState {
                conversation: conversation(g.conversation_id)?,
                after: g.after_user_id,
                limit: g.limit,
            },
            Body::SearchMessages(q) => {
                let query = text(q.query, 256, false, "query")?;
                if query.trim().is_empty() {
                    return Err(InvalidInput::new("query must not be empty").into());
                }
                Request::SearchMessages {
                    query,
                    conversation: ConversationId::try_from(q.conversation_id).ok(),
                    before: q.before_message_id,
                    limit: q.limit,
                }
            }
            Body::SetPushToken(p) => {
                let provider = text(p.provider, 32, false, "provider")?;
                if provider.is_empty() {
                    return Err(InvalidInput::new("provider must not be empty").into());
                }
                Request::SetPushToken {
                    provider,
                    token: text(p.token, 4096, false, "token")?,
                }
            }
            Body::ListCalls(l) => Request::ListCalls {
                before: l.before_call_id,
                limit: l.limit,
            },
            Body::GetCall(g) => {
                if g.call_id == 0 {
                    return Err(InvalidInput::new("call_id is required").into());
                }
                Request::GetCall { call: g.call_id }
            }
            Body::GetPresence(g) => {
                if g.user_ids.len() > MAX_PROFILES {
                    return Err(InvalidInput::new("at most 100 user ids").into());
                }
                Request::GetPresence(user_ids(g.user_ids)?)
            }
            Body::SignOutDevice(d) => Request::SignOutDevice(DeviceId::try_from(d.device_id)?),
            Body::Send(s) => Request::Send(SendRequest {
                conversation: conversation(s.conversation_id)?,
                content_type: ContentType::from_wire(s.content_type),
                content: s.content,
                client_msg_id: ClientMsgId::try_from(s.client_msg_id)?,
                reply_to: Seq(s.reply_to_seq),
                mentions: user_ids(s.mention_user_ids)?,
                mention_all: s.mention_all,
            }),
            Body::CursorAck(c) => Request::CursorAck {
                conversation: conversation(c.conversation_id)?,
                kind: CursorKind::from_wire(c.kind)?,
                seq: Seq(c.seq),
            },
            Body::Sync(s) => Request::Sync(SyncRequest {
                epoch: s.epoch,
                positions: s
                    .positions
                    .into_iter()
                    .map(|p| Ok((conversation(p.conversation_id)?, Seq(p.seq))))
                    .collect::<Result<_, InvalidInput>>()?,
                limit: s.limit,
                from_conversation: ConversationId::try_from(s.from_conversation_id).ok(),
            }),
            Body::Ping(p) => Request::Ping {
                client_time_ms: p.client_time_ms,
            },
            Body::OpenDirect(o) => match (o.peer_user_id, o.peer_account.is_empty()) {
                (0, false) => {
                    Request::OpenDirect(PeerRef::Account(Account::try_from(o.peer_account)?))
                }
                (id, true) if id != 0 => Request::OpenDirect(PeerRef::User(UserId::try_from(id)?)),
                _ => {
                    return Err(InvalidInput::new(
                        "open_direct needs exactly one of peer_user_id or peer_account",
                    )
                    .into())
                }
            },
            Body::CreateGroup(g) => Request::CreateGroup {
                name: GroupName::try_from(g.name)?,
                members: user_ids(g.member_user_ids)?,
            },
            Body::ChangeMembers(c) => Request::ChangeMembers {
                conversation: conversation(c.conversation_id)?,
                add: user_ids(c.add_user_ids)?,
                remove: user_ids(c.remove_user_ids)?,
                request_key: key(c.client_request_id)?,
            },
            Body::UpdateGroup(u) => Request::UpdateGroup {
                conversation: conversation(u.conversation_id)?,
                change: GroupProfileChange::from_fields(
                    u.name,
                    u.avatar_file_id,
                    u.announcement,
                    u.description,
                    u.public,
                    u.join_policy,
                    u.max_members,
                )?,
                request_key: key(u.client_request_id)?,
            },
            Body::SetMemberRole(r) => Request::SetMemberRole {
                conversation: conversation(r.conversation_id)?,
                user: UserId::try_from(r.user_id)?,
                role: match MemberRole::from_wire(r.role) {
                    MemberRole::Unspecified => {
                        return Err(
                            InvalidInput::new("role must be OWNER, MANAGER or MEMBER").into()
                        )
                    }
                    role => role,
                },
                request_key: key(r.client_request_id)?,
            },
            Body::MuteMember(m) => Request::MuteMember {
                conversation: conversation(m.conversation_id)?,
                user: UserId::try_from(m.user_id).ok(),
                duration_ms: m.duration_ms,
                request_key: key(m.client_request_id)?,
            },
            Body::DisbandGroup(d) => Request::DisbandGroup {
                conversation: conversation(d.conversation_id)?,
                request_key: key(d.client_request_id)?,
            },
            Body::SetGroupNickname(n) => Request::SetGroupNickname {
                conversation: conversation(n.conversation_id)?,
                nickname: text(n.nickname, MAX_NICKNAME_CHARS, true, "nickname")?,
                request_key: key(n.client_request_id)?,
            },
            Body::ListMembers(l) => Request::ListMembers {
                conversation: conversation(l.conversation_id)?,
                after: l.after_user_id,
                limit: l.limit,
            },
            Body::JoinGroup(j) => Request::JoinGroup {
                conversation: conversation(j.conversation_id)?,
                message: text(j.message, MAX_JOIN_MESSAGE_BYTES, false, "message")?,
                request_key: key(j.client_request_id)?,
            },
            Body::AnswerJoinRequest(a) => Request::AnswerJoinRequest {
                conversation: conversation(a.conversation_id)?,
                user: UserId::try_from(a.user_id)?,
                approve: a.approve,
                request_key: key(a.client_request_id)?,
            },
            Body::EditMessage(e) => Request::EditMessage {
                conversation: conversation(e.conversation_id)?,
                seq: target(e.seq)?,
                content: e.content,
                request_key: key(e.client_request_id)?,
            },
            Body::RecallMessage(r) => Request::RecallMessage {
                conversation: conversation(r.conversation_id)?,
                seq: target(r.seq)?,
                request_key: key(r.client_request_id)?,
            },
            Body::React(r) => Request::React {
                conversation: conversation(r.conversation_id)?,
                seq: target(r.seq)?,
                emoji: reaction(r.emoji)?,
                remove: r.remove,
                request_key: key(r.client_request_id)?,
            },
            Body::GetHistory(h) => {
                if h.before_seq != 0 && h.after_seq != 0 {
                    return Err(InvalidInput::new(
                        "get_history takes before_seq or after_seq, not both",
                    )
                    .into());
                }
                Request::GetHistory {
                    conversation: conversation(h.conversation_id)?,
                    before: Seq(h.before_seq),
                    after: Seq(h.after_seq),
                    limit: h.limit,
                }
            }
            Body::GetGroup(g) => Request::GetGroup {
                conversation: conversation(g.conversation_id)?,
            },
            Body::GetProfiles(g) => {
                if g.user_ids.len() > MAX_PROFILES {
                    return Err(InvalidInput::new("at most 100 user ids").into());
                }
                Request::GetProfiles(user_ids(g.user_ids)?)
            }
            Body::UpdateProfile(u) => Request::UpdateProfile(u.try_into()?),
            Body::GetSettings(_) => Request::GetSettings,
            Body::UpdateSettings(u) => Request::UpdateSettings(u.try_into()?),
            Body::SearchUsers(q) => {
                let query = text(q.query, MAX_QUERY_CHARS, true, "query")?;
                if query.trim().is_empty() {
                    return Err(InvalidInput::new("query must not be empty").into());
                }
                Request::SearchUsers {
                    query,
                    after: q.after_user_id,
                    limit: q.limit,
                }
            }
            Body::AddFriend(a) => Request::AddFriend {
                user: UserId::try_from(a.user_id)?,
                message: friend_message(a.message)?,
                remark: name(a.remark, "remark")?,
            },
            Body::AnswerFriendRequest(a) => Request::AnswerFriendRequest {
                user: UserId::try_from(a.user_id)?,
                accept: a.accept,
                remark: name(a.remark, "remark")?,
            },
            Body::RemoveFriend(r) => Request::RemoveFriend(UserId::try_from(r.user_id)?),
            Body::SetFriendRemark(r) => Request::SetFriendRemark {
                user: UserId::try_from(r.user_id)?,
                remark: name(r.remark, "remark")?,
            },
            Body::ListFriends(_) => Request::ListFriends,
            Body::ListFriendRequests(l) => Request::ListFriendRequests {
                outgoing: l.outgoing,
            },
            Body::SetBlocked(b) => Request::SetBlocked {
                user: UserId::try_from(b.user_id)?,
                blocked: b.blocked,
            },
            Body::ListBlocked(_) => Request::ListBlocked,
            Body::JoinWorld(_) => Request::JoinWorld,
            Body::ListConversations(l) => Request::ListConversations {
                limit: l.limit,
                offset: l.offset,
            },
            Body::SetConversationPrefs(p) => Request::SetConversationPrefs {
                conversation: conversation(p.conversation_id)?,
                prefs: ConversationPrefs {
                    pinned: p.pinned,
                    muted: p.muted,
                    hidden: p.hidden,
                },
            },
            Body::Typing(t) => Request::Typing {
                conversation: conversation(t.conversation_id)?,
            },
            Body::RegisterFile(r) => Request::RegisterFile {
                upload: UploadToken::try_from(r.upload_token)?,
                file: NewFile::new(r.name, &r.mime_type, r.public)?,
            },
            Body::GetFile(g) => Request::GetFile(g.file_id.parse()?),
            Body::ListFiles(l) => Request::ListFiles {
                limit: super::files::file_page(l.limit)?,
                offset: super::files::file_offset(l.offset)?,
                kind: super::files::FileKind::from_code(l.kind)?,
            },
            Body::DeleteFile(d) => Request::DeleteFile(d.file_id.parse()?),
            Body::CreateMeeting(c) => Request::CreateMeeting {
                title: super::meetings::meeting_title(c.title)?,
                password: super::meetings::meeting_password(c.password)?,
                max_participants: super::meetings::meeting_size(c.max_participants)?,
            },
            Body::JoinMeeting(j) => Request::JoinMeeting {
                meeting: super::meetings::meeting_id(j.meeting_id)?,
                password: super::meetings::meeting_password(j.password)?,
            },
            Body::EndMeeting(e) => Request::EndMeeting {
                meeting: super::meetings::meeting_id(e.meeting_id)?,
            },
            Body::GetMeeting(g) => Request::GetMeeting {
                meeting: super::meetings::meeting_id(g.meeting_id)?,
            },
            Body::ListMeetings(l) => Request::ListMeetings {
                offset: l.offset,
                limit: super::meetings::meeting_page(l.limit)?,
            },
            _ => return Err(DecodeError::Unexpected("server frame sent by a client")),
        })
    }
}

impl From<Request> for Body {
    fn from(r: Request) -> Body {
        match r {
            Request::Register {
                account,
                password,
                device,
            } => Body::Register(w::Register {
                account: account.into(),
                password: password.into(),
                device: Some(device.into()),
            }),
            Request::Login { credential, device } => Body::Login(w::Login {
                credential: Some(match credential {
                    Credential::Password { account, password } => {
                        w::login::Credential::Password(w::Password {
                            account: account.into(),
                            password: password.into(),
                        })
                    }
                    Credential::AccessToken(t) => w::login::Credential::AccessToken(t),
                }),
                device: Some(device.into()),
            }),
            Request::Refresh {
                refresh_token,
                device,
            } => Body::Refresh(w::Refresh {
                refresh_token,
                device: Some(device.into()),
            }),
            Request::Logout => Body::Logout(w::Logout {}),
            Request::GuestLogin { device, nickname } => Body::GuestLogin(w::GuestLogin {
                device: Some(device.into()),
                nickname,
            }),
            Request::ChangePassword { old, new } => Body::ChangePassword(w::ChangePassword {
                old_password: old.into(),
                new_password: new.into(),
            }),
            Request::ListDevices => Body::ListDevices(w::ListDevices {}),
            Request::SetPresence { status, text } => Body::SetPresence(w::SetPresence {
                status: status.unwrap_or(PresenceStatus::Unspecified).to_wire(),
                text,
            }),
            Request::CallSignal(c) => Body::CallSignal(c.into()),
            Request::ForwardMessage {
                from,
                seq,
                to,
                client_msg_id,
            } => Body::ForwardMessage(w::ForwardMessage {
                from_conversation_id: from.get(),
                seq: seq.get(),
                to_conversation_id: to.get(),
                client_msg_id: client_msg_id.into(),
            }),
            Request::DeleteForMe { conversation, seqs } => Body::DeleteForMe(w::DeleteForMe {
                conversation_id: conversation.get(),
                seqs: seqs.into_iter().map(Seq::get).collect(),
            }),
            Request::GetReadState {
                conversation,
                after,
                limit,
            } => Body::GetReadState(w::GetReadState {
                conversation_id: conversation.get(),
                after_user_id: after,
                limit,
            }),
            Request::SearchMessages {
                query,
                conversation,
                before,
                limit,
            } => Body::SearchMessages(w::SearchMessages {
                query,
                conversation_id: conversation.map_or(0, ConversationId::get),
                before_message_id: before,
                limit,
            }),
            Request::SetPushToken { provider, token } => {
                Body::SetPushToken(w::SetPushToken { provider, token })
            }
            Request::ListCalls { before, limit } => Body::ListCalls(w::ListCalls {
                before_call_id: before,
                limit,
            }),
            Request::GetCall { call } => Body::GetCall(w::GetCall { call_id: call }),
            Request::CreateMeeting {
                title,
                password,
                max_participants,
            } => Body::CreateMeeting(w::CreateMeeting {
                title,
                password,
                max_participants,
            }),
            Request::JoinMeeting { meeting, password } => Body::JoinMeeting(w::JoinMeeting {
                meeting_id: meeting,
                password,
            }),
            Request::EndMeeting { meeting } => Body::EndMeeting(w::EndMeeting {
                meeting_id: meeting,
            }),
            Request::GetMeeting { meeting } => Body::GetMeeting(w::GetMeeting {
                meeting_id: meeting,
            }),
            Request::ListMeetings { offset, limit } => {
                Body::ListMeetings(w::ListMeetings { offset, limit })
            }
            Request::GetPresence(users) => Body::GetPresence(w::GetPresence {
                user_ids: users.into_iter().map(u64::from).collect(),
            }),
            Request::SignOutDevice(d) => Body::SignOutDevice(w::SignOutDevice {
                device_id: d.into(),
            }),
            Request::Send(s) => Body::Send(w::Send {
                conversation_id: s.conversation.get(),
                content_type: s.content_type.to_wire(),
                content: s.content,
                client_msg_id: s.client_msg_id.into(),
                reply_to_seq: s.reply_to.get(),
                mention_user_ids: s.mentions.into_iter().map(u64::from).collect(),
                mention_all: s.mention_all,
            }),
            Request::CursorAck {
                conversation,
                kind,
                seq,
            } => Body::CursorAck(w::CursorAck {
                conversation_id: conversation.get(),
                kind: kind.to_wire(),
                seq: seq.get(),
            }),
            Request::Sync(s) => Body::Sync(w::SyncRequest {
                epoch: s.epoch,
                positions: s
                    .positions
                    .into_iter()
                    .map(|(c, seq)| w::ConversationPosition {
                        conversation_id: c.get(),
                        seq: seq.get(),
                    })
                    .collect(),
                limit: s.limit,
                from_conversation_id: s.from_conversation.map_or(0, |c| c.get()),
            }),
            Request::Ping { client_time_ms } => Body::Ping(w::Ping { client_time_ms }),
            Request::OpenDirect(peer) => Body::OpenDirect(match peer {
                PeerRef::User(u) => w::OpenDirect {
                    peer_user_id: u.get(),
                    peer_account: String::new(),
                },
                PeerRef::Account(a) => w::OpenDirect {
                    peer_user_id: 0,
                    peer_account: a.into(),
                },
            }),
            Request::CreateGroup { name, members } => Body::CreateGroup(w::CreateGroup {
                name: name.into(),
                member_user_ids: members.into_iter().map(u64::from).collect(),
            }),
            Request::ChangeMembers {
                conversation,
                add,
                remove,
                request_key,
            } => Body::ChangeMembers(w::ChangeMembers {
                conversation_id: conversation.get(),
                add_user_ids: add.into_iter().map(u64::from).collect(),
                remove_user_ids: remove.into_iter().map(u64::from).collect(),
                client_request_id: unkey(request_key),
            }),
            Request::UpdateGroup {
                conversation,
                change,
                request_key,
            } => Body::UpdateGroup(w::UpdateGroup {
                conversation_id: conversation.get(),
                name: change.name.map(String::from),
                avatar_file_id: change.avatar_file_id,
                announcement: change.announcement,
                description: change.description,
                public: change.public,
                join_policy: change.join_policy.unwrap_or_default().to_wire(),
                max_members: change.max_members.unwrap_or(0),
                client_request_id: unkey(request_key),
            }),
            Request::SetMemberRole {
                conversation,
                user,
                role,
                request_key,
            } => Body::SetMemberRole(w::SetMemberRole {
                conversation_id: conversation.get(),
                user_id: user.get(),
                role: role.to_wire(),
                client_request_id: unkey(request_key),
            }),
            Request::MuteMember {
                conversation,
                user,
                duration_ms,
                request_key,
            } => Body::MuteMember(w::MuteMember {
                conversation_id: conversation.get(),
                user_id: user.map_or(0, u64::from),
                duration_ms,
                client_request_id: unkey(request_key),
            }),
            Request::DisbandGroup {
                conversation,
                request_key,
            } => Body::DisbandGroup(w::DisbandGroup {
                conversation_id: conversation.get(),
                client_request_id: unkey(request_key),
            }),
            Request::SetGroupNickname {
                conversation,
                nickname,
                request_key,
            } => Body::SetGroupNickname(w::SetGroupNickname {
                conversation_id: conversation.get(),
                nickname,
                client_request_id: unkey(request_key),
            }),
            Request::ListMembers {
                conversation,
                after,
                limit,
            } => Body::ListMembers(w::ListMembers {
                conversation_id: conversation.get(),
                after_user_id: after,
                limit,
            }),
            Request::JoinGroup {
                conversation,
                message,
                request_key,
            } => Body::JoinGroup(w::JoinGroup {
                conversation_id: conversation.get(),
                message,
                client_request_id: unkey(request_key),
            }),
            Request::AnswerJoinRequest {
                conversation,
                user,
                approve,
                request_key,
            } => Body::AnswerJoinRequest(w::AnswerJoinRequest {
                conversation_id: conversation.get(),
                user_id: user.get(),
                approve,
                client_request_id: unkey(request_key),
            }),
            Request::EditMessage {
                conversation,
                seq,
                content,
                request_key,
            } => Body::EditMessage(w::EditMessage {
                conversation_id: conversation.get(),
                seq: seq.get(),
                content,
                client_request_id: unkey(request_key),
            }),
            Request::RecallMessage {
                conversation,
                seq,
                request_key,
            } => Body::RecallMessage(w::RecallMessage {
                conversation_id: conversation.get(),
                seq: seq.get(),
                client_request_id: unkey(request_key),
            }),
            Request::React {
                conversation,
                seq,
                emoji,
                remove,
                request_key,
            } => Body::React(w::React {
                conversation_id: conversation.get(),
                seq: seq.get(),
                emoji,
                remove,
                client_request_id: unkey(request_key),
            }),
            Request::GetHistory {
                conversation,
                before,
                after,
                limit,
            } => Body::GetHistory(w::GetHistory {
                conversation_id: conversation.get(),
                before_seq: before.get(),
                after_seq: after.get(),
                limit,
            }),
            Request::GetGroup { conversation } => Body::GetGroup(w::GetGroup {
                conversation_id: conversation.get(),
            }),
            Request::GetProfiles(users) => Body::GetProfiles(w::GetProfiles {
                user_ids: users.into_iter().map(u64::from).collect(),
            }),
            Request::UpdateProfile(c) => Body::UpdateProfile(c.into()),
            Request::GetSettings => Body::GetSettings(w::GetSettings {}),
            Request::UpdateSettings(c) => Body::UpdateSettings(c.into()),
            Request::SearchUsers {
                query,
                after,
                limit,
            } => Body::SearchUsers(w::SearchUsers {
                query,
                after_user_id: after,
                limit,
            }),
            Request::AddFriend {
                user,
                message,
                remark,
            } => Body::AddFriend(w::AddFriend {
                user_id: user.get(),
                message,
                remark,
            }),
            Request::AnswerFriendRequest {
                user,
                accept,
                remark,
            } => Body::AnswerFriendRequest(w::AnswerFriendRequest {
                user_id: user.get(),
                accept,
                remark,
            }),
            Request::RemoveFriend(user) => Body::RemoveFriend(w::RemoveFriend {
                user_id: user.get(),
            }),
            Request::SetFriendRemark { user, remark } => {
                Body::SetFriendRemark(w::SetFriendRemark {
                    user_id: user.get(),
                    remark,
                })
            }
            Request::ListFriends => Body::ListFriends(w::ListFriends {}),
            Request::ListFriendRequests { outgoing } => {
                Body::ListFriendRequests(w::ListFriendRequests { outgoing })
            }
            Request::SetBlocked { user, blocked } => Body::SetBlocked(w::SetBlocked {
                user_id: user.get(),
                blocked,
            }),
            Request::ListBlocked => Body::ListBlocked(w::ListBlocked {}),
            Request::JoinWorld => Body::JoinWorld(w::JoinWorld {}),
            Request::RegisterFile { upload, file } => Body::RegisterFile(w::RegisterFile {
                upload_token: upload.into(),
                name: file.name().to_owned(),
                mime_type: file.mime().to_owned(),
                public: file.public,
            }),
            Request::GetFile(id) => Body::GetFile(w::GetFile {
                file_id: id.to_string(),
            }),
            Request::ListFiles {
                limit,
                offset,
                kind,
            } => Body::ListFiles(w::ListFiles {
                limit,
                offset,
                kind: kind.map_or(0, |k| i32::from(k.code())),
            }),
            Request::DeleteFile(id) => Body::DeleteFile(w::DeleteFile {
                file_id: id.to_string(),
            }),
            Request::Typing { conversation } => Body::Typing(w::Typing {
                conversation_id: conversation.get(),
            }),
            Request::ListConversations { limit, offset } => {
                Body::ListConversations(w::ListConversations { limit, offset })
            }
            Request::SetConversationPrefs {
                conversation,
                prefs,
            } => Body::SetConversationPrefs(w::SetConversationPrefs {
                conversation_id: conversation.get(),
                pinned: prefs.pinned,
                muted: prefs.muted,
                hidden: prefs.hidden,
            }),
        }
    }
}

impl ClientFrame {
    /// Decodes and validates one frame body (without its length prefix).
    pub fn decode(body: Bytes) -> Result<ClientFrame, RejectedFrame> {
        let frame = w::Frame::decode(body).map_err(|e| RejectedFrame {
            request_id: 0,
            error: e.into(),
        })?;
        let request_id = frame.request_id;
        let reject = |error: DecodeError| RejectedFrame { request_id, error };
        let id = RequestId::try_from(request_id).map_err(|_| reject(DecodeError::BadRequestId))?;
        let body = frame
            .body
            .ok_or_else(|| reject(DecodeError::Unexpected("frame without a body")))?;
        Ok(ClientFrame {
            request_id: id,
            request: Request::try_from(body).map_err(reject)?,
        })
    }

    /// Encodes as one length-prefixed frame.
    pub fn encode(self) -> Bytes {
        encode_prefixed(&w::Frame {
            request_id: self.request_id.get(),
            body: Some(self.request.into()),
        })
    }
}
