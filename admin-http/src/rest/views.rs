//! How protocol values look in REST JSON: snake_case keys, ids as decimal strings, times as
//! Unix milliseconds (`*_ms`), enums as lowercase strings. Views shared by several areas live
//! here; an area's own views live in its module.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use parley_protocol::frames::{
    AddPolicy, Amendments, CallMedia, CallOutcome, CallRecord, ContentType, ConversationEvent,
    ConversationInfo, ConversationKind, CursorKind, FriendChange, Gender, GroupProfile, JoinPolicy,
    MemberRole, Message, Platform, PresenceStatus, Profile,
};
use parley_protocol::ids::{ConversationId, Seq};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::Id;

/// A lowercase string enum mirroring a protocol enum, both ways.
macro_rules! mirror {
    ($(#[$doc:meta])* $name:ident <=> $domain:ident { $($v:ident),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        #[allow(missing_docs)] // the protocol documents each value
        pub enum $name { $($v),* }

        impl From<$domain> for $name {
            fn from(d: $domain) -> $name {
                match d { $($domain::$v => $name::$v),* }
            }
        }

        impl From<$name> for $domain {
            fn from(v: $name) -> $domain {
                match v { $($name::$v => $domain::$v),* }
            }
        }
    };
}

mirror!(
    /// A device's platform (it sets the lifetimes of the device's tokens).
    PlatformV <=> Platform { Unspecified, Ios, Android, Web, Desktop, Cli }
);
mirror!(
    /// How a message's content is meant: `text` is UTF-8; `image`, `file`, `audio`, `video`
    /// and `sticker` carry a JSON object with a `file_id`; `location` has `latitude` and
    /// `longitude`; `custom` is the clients' own; `system` marks conversation events.
    ContentTypeV <=> ContentType {
        Unspecified, Text, Image, File, Audio, Video, Custom, System, Location, Sticker
    }
);
mirror!(
    /// 1:1, group, or a user's notices.
    ConversationKindV <=> ConversationKind { Unspecified, Direct, Group, Notices }
);
mirror!(
    /// A member's role in a group.
    RoleV <=> MemberRole { Unspecified, Owner, Manager, Member }
);
mirror!(
    /// How users join a group.
    JoinPolicyV <=> JoinPolicy { Unspecified, Free, Approval, InviteOnly }
);
mirror!(
    /// Gender on a profile.
    GenderV <=> Gender { Unspecified, Female, Male, Other }
);
mirror!(
    /// Who may add the user as a friend.
    AddPolicyV <=> AddPolicy { Unspecified, Anyone, Verify, Nobody }
);
mirror!(
    /// Online, away or offline.
    PresenceStatusV <=> PresenceStatus { Unspecified, Online, Away, Offline }
);
mirror!(
    /// Audio or video.
    CallMediaV <=> CallMedia { Unspecified, Audio, Video }
);
mirror!(
    /// How a call ended.
    CallOutcomeV <=> CallOutcome { Unspecified, Completed, Rejected, Cancelled, Missed }
);
mirror!(
    /// What a friend event says.
    FriendChangeV <=> FriendChange {
        Unspecified, Requested, Accepted, Rejected, Removed, Blocked, Unblocked
    }
);
mirror!(
    /// Which cursor: `delivered` (reached a device) or `read`.
    CursorKindV <=> CursorKind { Delivered, Read }
);

/// A user's public profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileView {
    /// The user (absent only in a profile that names nobody, which the server never sends).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Id>,
    /// Login name.
    pub account: String,
    pub nickname: String,
    pub avatar_file_id: String,
    pub bio: String,
    pub gender: GenderV,
    pub region: String,
    /// `YYYY-MM-DD` or empty.
    pub birthday: String,
    pub link: String,
}

impl From<Profile> for ProfileView {
    fn from(p: Profile) -> ProfileView {
        ProfileView {
            user_id: p.user.map(Id::from),
            account: p.account,
            nickname: p.nickname,
            avatar_file_id: p.avatar_file_id,
            bio: p.bio,
            gender: p.gender.into(),
            region: p.region,
            birthday: p.birthday,
            link: p.link,
        }
    }
}

/// Users, as search and the block list return them.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    pub users: Vec<ProfileView>,
    /// More results follow: ask again with `after` = the last user's id.
    pub has_more: bool,
}

/// One reaction on a message.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReactionView {
    pub emoji: String,
    /// Who reacted, in id order.
    pub user_ids: Vec<Id>,
}

/// A stored message or conversation event, as history, search and pushes show it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    pub message_id: Id,
    pub conversation_id: Id,
    /// Position in the conversation: gapless, from 1.
    pub seq: u64,
    pub sender_id: Id,
    pub sender_device_id: String,
    pub content_type: ContentTypeV,
    /// The content, when it is UTF-8 (text, and the JSON of media types).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// The content in base64, when it is not UTF-8 (binary `custom` content).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_base64: Option<String>,
    /// The sender's idempotency key.
    pub client_msg_id: String,
    pub server_time_ms: u64,
    /// The message replied to (0: not a reply).
    pub reply_to_seq: u64,
    /// For a reply: the first message of its thread (0 otherwise).
    pub thread_root_seq: u64,
    pub mention_ids: Vec<Id>,
    pub mention_all: bool,
    /// For a forwarded message: the original's author.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarded_from_id: Option<Id>,
    /// When its content was last edited (0: never).
    pub edited_at_ms: u64,
    /// Recalled: its content is withheld.
    pub recalled: bool,
    /// Deleted by the reader for itself: its content is withheld.
    pub deleted_for_me: bool,
    pub reactions: Vec<ReactionView>,
    /// Set for conversation events (`content_type` is `system`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<EventView>,
}

/// The content of a message, both ways: UTF-8 as `content`, anything else as `content_base64`.
pub fn content_out(content: &Bytes) -> (Option<String>, Option<String>) {
    match std::str::from_utf8(content) {
        Ok(s) => (Some(s.to_owned()), None),
        Err(_) => (None, Some(BASE64.encode(content))),
    }
}

/// Content from a request: exactly one of `content` and `content_base64`.
pub fn content_in(text: Option<String>, base64: Option<String>) -> Result<Bytes, ApiError> {
    match (text, base64) {
        (Some(t), None) => Ok(Bytes::from(t)),
        (None, Some(b)) => BASE64
            .decode(b.as_bytes())
            .map(Bytes::from)
            .map_err(|_| ApiError::invalid("content_base64 is not valid base64")),
        _ => Err(ApiError::invalid(
            "give exactly one of content and content_base64",
        )),
    }
}

impl From<Message> for MessageView {
    fn from(m: Message) -> MessageView {
        let (content, content_base64) = content_out(&m.content);
        let a: Amendments = m.amended.map(|a| *a).unwrap_or_default();
        MessageView {
            message_id: m.id.into(),
            conversation_id: m.conversation.into(),
            seq: m.seq.get(),
            sender_id: m.sender.into(),
            sender_device_id: m.sender_device.to_string(),
            content_type: m.content_type.into(),
            content,
            content_base64,
            client_msg_id: m.client_msg_id.to_string(),
            server_time_ms: m.server_time_ms,
            reply_to_seq: m.reply_to.get(),
            thread_root_seq: m.thread_root.get(),
            mention_ids: m.mentions.into_iter().map(Id::from).collect(),
            mention_all: m.mention_all,
            forwarded_from_id: m.forwarded_from.map(Id::from),
            edited_at_ms: a.edited_at_ms,
            recalled: a.recalled,
            deleted_for_me: a.deleted_for_me,
            reactions: a
                .reactions
                .into_iter()
                .map(|r| ReactionView {
                    emoji: r.emoji,
                    user_ids: r.users.into_iter().map(Id::from).collect(),
                })
                .collect(),
            event: m.event.map(|e| EventView::from(*e)),
        }
    }
}

/// Messages in order, with whether more follow.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePage {
    pub messages: Vec<MessageView>,
    pub has_more: bool,
}

/// A conversation event: `kind` says which, the other fields are that kind's (docs/protocol.md
/// section 7).
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[allow(missing_docs)] // each kind is documented in docs/protocol.md
pub enum EventView {
    Membership {
        added_ids: Vec<Id>,
        removed_ids: Vec<Id>,
    },
    GroupProfile {
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        avatar_file_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        announcement: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        public: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        join_policy: Option<JoinPolicyV>,
        #[serde(skip_serializing_if = "Option::is_none")]
        max_members: Option<u32>,
    },
    Role {
        user_id: Id,
        role: RoleV,
        #[serde(skip_serializing_if = "Option::is_none")]
        previous_owner_id: Option<Id>,
    },
    Mute {
        /// Absent: everyone.
        #[serde(skip_serializing_if = "Option::is_none")]
        user_id: Option<Id>,
        /// 0: unmuted.
        until_ms: u64,
    },
    Disband,
    Nickname {
        nickname: String,
    },
    JoinRequest {
        user_id: Id,
        message: String,
        requested_at_ms: u64,
    },
    JoinRejected {
        user_id: Id,
    },
    Edit {
        seq: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        content: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        content_base64: Option<String>,
    },
    Recall {
        seq: u64,
    },
    Reaction {
        seq: u64,
        emoji: String,
        removed: bool,
    },
    Friend {
        change: FriendChangeV,
        from_id: Id,
        to_id: Id,
        message: String,
    },
    DeletedForMe {
        conversation_id: Id,
        seqs: Vec<u64>,
    },
    Call(CallView),
    Prefs {
        conversation_id: Id,
        #[serde(skip_serializing_if = "Option::is_none")]
        pinned: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        muted: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        hidden_upto_seq: Option<u64>,
    },
    GroupInvite {
        conversation_id: Id,
        group_name: String,
    },
    /// The group was created (its first entry).
    GroupCreated {
        group_name: String,
        member_ids: Vec<Id>,
    },
}

fn ids(v: Vec<parley_protocol::ids::UserId>) -> Vec<Id> {
    v.into_iter().map(Id::from).collect()
}

impl From<ConversationEvent> for EventView {
    fn from(e: ConversationEvent) -> EventView {
        match e {
            ConversationEvent::Membership { added, removed } => EventView::Membership {
                added_ids: ids(added),
                removed_ids: ids(removed),
            },
            ConversationEvent::GroupProfile(c) => EventView::GroupProfile {
                name: c.name.map(String::from),
                avatar_file_id: c.avatar_file_id,
                announcement: c.announcement,
                description: c.description,
                public: c.public,
                join_policy: c.join_policy.map(JoinPolicyV::from),
                max_members: c.max_members,
            },
            ConversationEvent::Role {
                user,
                role,
                previous_owner,
            } => EventView::Role {
                user_id: user.into(),
                role: role.into(),
                previous_owner_id: previous_owner.map(Id::from),
            },
            ConversationEvent::Mute { user, until_ms } => EventView::Mute {
                user_id: user.map(Id::from),
                until_ms,
            },
            ConversationEvent::Disband => EventView::Disband,
            ConversationEvent::Nickname(nickname) => EventView::Nickname { nickname },
            ConversationEvent::JoinRequest(r) => EventView::JoinRequest {
                user_id: r.user.into(),
                message: r.message,
                requested_at_ms: r.requested_at_ms,
            },
            ConversationEvent::JoinRejected(user) => EventView::JoinRejected {
                user_id: user.into(),
            },
            ConversationEvent::Edit { seq, content } => {
                let (content, content_base64) = content_out(&content);
                EventView::Edit {
                    seq: seq.get(),
                    content,
                    content_base64,
                }
            }
            ConversationEvent::Recall(seq) => EventView::Recall { seq: seq.get() },
            ConversationEvent::Reaction {
                seq,
                emoji,
                removed,
            } => EventView::Reaction {
                seq: seq.get(),
                emoji,
                removed,
            },
            ConversationEvent::Friend(f) => EventView::Friend {
                change: f.change.into(),
                from_id: f.from.into(),
                to_id: f.to.into(),
                message: f.message,
            },
            ConversationEvent::DeletedForMe { conversation, seqs } => EventView::DeletedForMe {
                conversation_id: conversation.into(),
                seqs: seqs.into_iter().map(Seq::get).collect(),
            },
            ConversationEvent::Call(record) => EventView::Call(CallView::new(None, record)),
            ConversationEvent::Prefs {
                conversation,
                pinned,
                muted,
                hidden_upto,
            } => EventView::Prefs {
                conversation_id: conversation.into(),
                pinned,
                muted,
                hidden_upto_seq: hidden_upto.map(Seq::get),
            },
            ConversationEvent::GroupInvite { conversation, name } => EventView::GroupInvite {
                conversation_id: conversation.into(),
                group_name: name,
            },
            ConversationEvent::Created { name, members } => EventView::GroupCreated {
                group_name: name,
                member_ids: ids(members),
            },
        }
    }
}

/// A call's record.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallView {
    pub call_id: Id,
    /// Where it took place (absent inside a conversation event: the event's conversation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<Id>,
    pub caller_id: Id,
    pub media: CallMediaV,
    pub outcome: CallOutcomeV,
    pub started_at_ms: u64,
    pub duration_ms: u64,
    pub participant_ids: Vec<Id>,
}

impl CallView {
    /// The view of `record`, in `conversation` if given.
    pub fn new(conversation: Option<ConversationId>, record: CallRecord) -> CallView {
        CallView {
            call_id: Id(record.call),
            conversation_id: conversation.map(Id::from),
            caller_id: record.caller.into(),
            media: record.media.into(),
            outcome: record.outcome.into(),
            started_at_ms: record.started_at_ms,
            duration_ms: record.duration_ms,
            participant_ids: ids(record.participants),
        }
    }
}

/// A group's profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupProfileView {
    pub name: String,
    pub avatar_file_id: String,
    pub announcement: String,
    pub description: String,
    /// Found by anyone (and joinable by its policy).
    pub public: bool,
    pub join_policy: JoinPolicyV,
    pub max_members: u32,
    /// Everyone is muted until then (0: not muted).
    pub muted_all_until_ms: u64,
    pub disbanded: bool,
}

impl From<GroupProfile> for GroupProfileView {
    fn from(p: GroupProfile) -> GroupProfileView {
        GroupProfileView {
            name: p.name,
            avatar_file_id: p.avatar_file_id,
            announcement: p.announcement,
            description: p.description,
            public: p.public,
            join_policy: p.join_policy.into(),
            max_members: p.max_members,
            muted_all_until_ms: p.muted_all_until_ms,
            disbanded: p.disbanded,
        }
    }
}

/// A conversation as the caller sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationView {
    pub conversation_id: Id,
    pub kind: ConversationKindV,
    pub name: String,
    pub member_ids: Vec<Id>,
    /// The last seq written.
    pub head_seq: u64,
    pub delivered_seq: u64,
    pub read_seq: u64,
    /// Entries after the read cursor.
    pub unread: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<Id>,
    /// The first seq the caller may read.
    pub visible_from_seq: u64,
    /// Groups only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupProfileView>,
    pub my_role: RoleV,
    pub my_muted_until_ms: u64,
    pub pinned: bool,
    pub muted: bool,
    pub hidden: bool,
    /// The list only: its newest message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_message: Option<MessageView>,
}

impl From<ConversationInfo> for ConversationView {
    fn from(c: ConversationInfo) -> ConversationView {
        ConversationView {
            conversation_id: c.id.into(),
            kind: c.kind.into(),
            name: c.name,
            member_ids: ids(c.members),
            head_seq: c.head.get(),
            delivered_seq: c.delivered.get(),
            read_seq: c.read.get(),
            unread: c.unread,
            owner_id: c.owner.map(Id::from),
            visible_from_seq: c.visible_from.get(),
            group: c.group.map(|g| GroupProfileView::from(*g)),
            my_role: c.my_role.into(),
            my_muted_until_ms: c.my_muted_until_ms,
            pinned: c.pinned,
            muted: c.muted,
            hidden: c.hidden,
            last_message: c.last_message.map(|m| MessageView::from(*m)),
        }
    }
}
