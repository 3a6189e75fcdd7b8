//! Client → server frames: decoded and validated here, so the server only sees well-formed
//! requests.

use bytes::Bytes;
use prost::Message as _;

use super::common::{ContentType, CursorKind, Device};
use crate::codec::encode_prefixed;
use crate::error::{DecodeError, InvalidInput};
use crate::ids::{Account, ClientMsgId, ConversationId, RequestId, Seq, UserId};
use crate::values::{GroupName, NewPassword, Password};
use crate::wire as w;
use crate::wire::frame::Body;

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
    ListConversations,
}

impl Request {
    /// Short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Register { .. } => "register",
            Request::Login { .. } => "login",
            Request::Refresh { .. } => "refresh",
            Request::Logout => "logout",
            Request::Send(_) => "send",
            Request::CursorAck { .. } => "cursor_ack",
            Request::Sync(_) => "sync",
            Request::Ping { .. } => "ping",
            Request::OpenDirect(_) => "open_direct",
            Request::CreateGroup { .. } => "create_group",
            Request::ChangeMembers { .. } => "change_members",
            Request::Typing { .. } => "typing",
            Request::ListConversations => "list_conversations",
        }
    }

    /// Whether this request may be made before login.
    pub fn allowed_before_login(&self) -> bool {
        matches!(
            self,
            Request::Register { .. }
                | Request::Login { .. }
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
            Body::Send(s) => Request::Send(SendRequest {
                conversation: conversation(s.conversation_id)?,
                content_type: ContentType::from_wire(s.content_type),
                content: s.content,
                client_msg_id: ClientMsgId::try_from(s.client_msg_id)?,
                reply_to: Seq(s.reply_to_seq),
                mentions: user_ids(s.mention_user_ids)?,
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
                request_key: match c.client_request_id.is_empty() {
                    true => None,
                    false => Some(ClientMsgId::try_from(c.client_request_id)?),
                },
            },
            Body::ListConversations(_) => Request::ListConversations,
            Body::Typing(t) => Request::Typing {
                conversation: conversation(t.conversation_id)?,
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
            Request::Send(s) => Body::Send(w::Send {
                conversation_id: s.conversation.get(),
                content_type: s.content_type.to_wire(),
                content: s.content,
                client_msg_id: s.client_msg_id.into(),
                reply_to_seq: s.reply_to.get(),
                mention_user_ids: s.mentions.into_iter().map(u64::from).collect(),
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
                client_request_id: request_key.map(String::from).unwrap_or_default(),
            }),
            Request::Typing { conversation } => Body::Typing(w::Typing {
                conversation_id: conversation.get(),
            }),
            Request::ListConversations => Body::ListConversations(w::ListConversations {}),
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
