//! A fake [`Backend`] for the router tests: it knows two tokens, records the requests it gets
//! and answers each kind with a fixed value of the right shape. It holds no feature logic, so
//! these tests cover only what the REST layer itself does (authentication, validation, request
//! building, rendering); the behaviour behind the routes is tested against the real server in
//! server/tests/rest.rs.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use parley_protocol::frames::{
    CallMedia, CallOutcome, CallRecord, ContentType, ConversationEvent, ConversationInfo,
    ConversationKind, Device, DeviceEntry, ErrorInfo, Friend, GroupInfo, GroupProfile, Limits,
    LoginResult, MemberInfo, MemberRole, Message, Platform, Presence, PresenceStatus, Profile,
    Receipt, Request, Response, SendAck, Settings,
};
use parley_protocol::ids::{
    Account, ClientMsgId, ConversationId, DeviceId, MessageId, Seq, UserId,
};
use parley_protocol::session::Identity;
use parley_protocol::ErrorCode;

use crate::{Backend, PushSession, Stats};

/// The token of user 1 ("alice", device "d1").
pub const GOOD: &str = "good-token";
/// A token past its expiry.
pub const EXPIRED: &str = "expired-token";
/// The id the fake treats as unknown (its answers are `NOT_FOUND`).
pub const MISSING: u64 = 404;

#[derive(Default)]
pub struct Fake {
    pub seen: Mutex<Vec<Request>>,
}

impl Fake {
    /// The requests executed so far.
    pub fn seen(&self) -> Vec<Request> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

pub fn user(id: u64) -> UserId {
    UserId::try_from(id).expect("non-zero")
}

fn conv(id: u64) -> ConversationId {
    ConversationId::try_from(id).expect("non-zero")
}

pub fn alice() -> Identity {
    Identity {
        user: user(1),
        account: Account::try_from("alice").expect("account"),
        device: DeviceId::try_from("d1").expect("device"),
    }
}

fn profile(id: UserId) -> Profile {
    Profile {
        user: Some(id),
        account: format!("user{id}"),
        nickname: "Nick".into(),
        ..Profile::default()
    }
}

fn message(conversation: ConversationId, seq: u64, content: Bytes) -> Message {
    Message {
        id: MessageId::try_from(1000 + seq).expect("non-zero"),
        conversation,
        seq: Seq(seq),
        sender: user(2),
        sender_device: DeviceId::try_from("d2").expect("device"),
        content_type: ContentType::Text,
        content,
        client_msg_id: ClientMsgId::try_from(format!("m{seq}")).expect("key"),
        server_time_ms: 1_700_000_000_000,
        reply_to: Seq::ZERO,
        mentions: vec![user(1)],
        event: None,
        amended: None,
        thread_root: Seq::ZERO,
        forwarded_from: None,
        mention_all: false,
    }
}

fn info(id: ConversationId, kind: ConversationKind) -> ConversationInfo {
    ConversationInfo {
        id,
        kind,
        name: "chat".into(),
        members: vec![user(1), user(2)],
        head: Seq(3),
        delivered: Seq(3),
        read: Seq(1),
        unread: 2,
        owner: (kind == ConversationKind::Group).then(|| user(1)),
        visible_from: Seq(1),
        group: (kind == ConversationKind::Group).then(|| Box::new(GroupProfile::default())),
        my_role: MemberRole::Owner,
        my_muted_until_ms: 0,
        pinned: true,
        muted: false,
        hidden: false,
        last_message: None,
    }
}

fn missing(what: &str) -> Response {
    Response::Error(ErrorInfo::new(
        ErrorCode::NotFound,
        format!("no such {what}"),
    ))
}

/// The fixed answer to each kind of request.
fn answer(request: &Request) -> Response {
    match request {
        Request::Register { device, .. }
        | Request::Login { device, .. }
        | Request::Refresh { device, .. }
        | Request::GuestLogin { device, .. } => Response::Login(LoginResult {
            user: user(1),
            account: "alice".into(),
            device: device.id.clone(),
            access_token: GOOD.into(),
            access_expires_at_ms: 2,
            refresh_token: "refresh".into(),
            refresh_expires_at_ms: 3,
            heartbeat_interval: Duration::from_secs(30),
            heartbeat_timeout: Duration::from_secs(90),
            limits: Limits {
                max_frame_bytes: 1 << 20,
                max_message_bytes: 1 << 16,
                max_inflight_sends: 8,
                max_sync_page: 500,
                max_requests_per_second: 0,
                recall_window_ms: 120_000,
            },
            server_time_ms: 1,
            epoch: 1,
            session_id: 0,
        }),
        Request::ListDevices => Response::Devices(vec![DeviceEntry {
            device: DeviceId::try_from("d1").expect("device"),
            platform: Platform::Web,
            last_login_ms: 5,
            online: true,
            current: true,
        }]),
        Request::GetProfiles(users) => Response::Profiles(
            users
                .iter()
                .filter(|u| u.get() != MISSING)
                .map(|u| profile(*u))
                .collect(),
        ),
        Request::GetSettings | Request::UpdateSettings(_) => {
            Response::Settings(Box::new(Settings {
                notifications: true,
                add_policy: parley_protocol::frames::AddPolicy::Verify,
                searchable_by_account: true,
                searchable_by_name: false,
                language: "en".into(),
            }))
        }
        Request::SearchUsers { .. } | Request::ListBlocked => Response::Users {
            users: vec![profile(user(2))],
            has_more: false,
        },
        Request::GetPresence(users) => Response::Presences(
            users
                .iter()
                .map(|u| Presence {
                    user: *u,
                    status: PresenceStatus::Away,
                    text: "lunch".into(),
                    last_seen_ms: 0,
                })
                .collect(),
        ),
        Request::ListFriends => Response::Friends(vec![Friend {
            profile: profile(user(2)),
            remark: "Bobby".into(),
            since_ms: 9,
        }]),
        Request::ListFriendRequests { .. } => Response::FriendRequests(Vec::new()),
        Request::AddFriend { user, .. } if user.get() == MISSING => missing("user"),
        Request::AddFriend { .. } => Response::FriendResult { pending: true },
        Request::OpenDirect(_) => Response::Conversation(info(conv(5), ConversationKind::Direct)),
        Request::CreateGroup { .. } => {
            Response::Conversation(info(conv(6), ConversationKind::Group))
        }
        Request::GetGroup { conversation } if conversation.get() == MISSING => missing("group"),
        Request::GetGroup { conversation } => Response::Group(Box::new(GroupInfo {
            conversation: *conversation,
            profile: GroupProfile::default(),
            owner: Some(user(1)),
            member_count: 2,
            join_requests: Vec::new(),
            created_at_ms: 0,
        })),
        Request::ListMembers { .. } => Response::MemberList {
            members: vec![MemberInfo {
                user: user(1),
                role: MemberRole::Owner,
                nickname: String::new(),
                muted_until_ms: 0,
                joined_seq: Seq::ZERO,
            }],
            has_more: false,
            total: 1,
        },
        Request::JoinGroup { .. } => Response::JoinResult { pending: true },
        Request::ListConversations { .. } => Response::ConversationList {
            conversations: vec![info(conv(5), ConversationKind::Direct)],
            total_unread: 2,
            total: 1,
        },
        Request::GetReadState { conversation, .. } => Response::ReadState {
            receipts: vec![Receipt {
                conversation: *conversation,
                user: user(2),
                kind: parley_protocol::frames::CursorKind::Read,
                seq: Seq(3),
                unread: 0,
            }],
            has_more: false,
        },
        Request::Send(s) => Response::SendAck(SendAck {
            message_id: MessageId::try_from(77).expect("non-zero"),
            conversation: s.conversation,
            seq: Seq(4),
            server_time_ms: 8,
            duplicate: s.client_msg_id.as_str() == "dup",
        }),
        Request::ForwardMessage { to, .. } => Response::SendAck(SendAck {
            message_id: MessageId::try_from(78).expect("non-zero"),
            conversation: *to,
            seq: Seq(1),
            server_time_ms: 8,
            duplicate: false,
        }),
        Request::GetHistory { conversation, .. } if conversation.get() == MISSING => {
            missing("conversation")
        }
        Request::GetHistory { conversation, .. }
        | Request::SearchMessages {
            conversation: Some(conversation),
            ..
        } => {
            let mut event = message(*conversation, 3, Bytes::new());
            event.content_type = ContentType::System;
            event.event = Some(Box::new(ConversationEvent::Membership {
                added: vec![user(3)],
                removed: Vec::new(),
            }));
            Response::History {
                messages: vec![
                    message(*conversation, 1, Bytes::from_static(b"hello")),
                    message(*conversation, 2, Bytes::from_static(&[0xff, 0x00])),
                    event,
                ],
                has_more: true,
            }
        }
        Request::SearchMessages { .. } => Response::SearchResult {
            messages: vec![message(conv(5), 1, Bytes::from_static(b"hello"))],
            has_more: false,
        },
        Request::CallSignal(_) => Response::CallAnswer { call: 9 },
        Request::ListCalls { .. } => Response::Calls {
            calls: vec![(
                conv(5),
                CallRecord {
                    call: 9,
                    caller: user(1),
                    media: CallMedia::Video,
                    outcome: CallOutcome::Missed,
                    started_at_ms: 1,
                    duration_ms: 0,
                    participants: vec![user(1), user(2)],
                },
            )],
            has_more: false,
        },
        Request::RecallMessage { conversation, .. } if conversation.get() == MISSING => {
            missing("message")
        }
        _ => Response::Ok,
    }
}

impl Backend for Fake {
    fn stats(&self) -> Stats {
        Stats::default()
    }

    fn execute(&self, _: Option<Identity>, request: Request) -> BoxFuture<'static, Response> {
        let response = answer(&request);
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(request);
        }
        Box::pin(async move { response })
    }

    fn authenticate(
        &self,
        _: String,
        _: Device,
    ) -> BoxFuture<'static, Result<Identity, ErrorInfo>> {
        unreachable!("REST authenticates with authenticate_bearer")
    }

    fn authenticate_bearer(
        &self,
        token: String,
    ) -> BoxFuture<'static, Result<Identity, ErrorInfo>> {
        let result = match token.as_str() {
            GOOD => Ok(alice()),
            EXPIRED => Err(ErrorInfo::new(ErrorCode::TokenExpired, "token expired")),
            _ => Err(ErrorInfo::new(
                ErrorCode::AuthFailed,
                "unknown or revoked token",
            )),
        };
        Box::pin(async move { result })
    }

    fn set_banned(&self, _: UserId, _: bool) -> BoxFuture<'static, Result<(), ErrorInfo>> {
        unreachable!("not routed")
    }

    fn open_session(&self, _: Identity) -> Box<dyn PushSession> {
        unreachable!("not routed")
    }
}
