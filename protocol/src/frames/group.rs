//! Conversation events (the entries of a conversation's log that are not plain messages) and
//! the group types they change: profile, roles, mutes, join requests; plus the rendered state
//! of a message (edits, recall, reactions).

use bytes::Bytes;

use crate::error::InvalidInput;
use crate::ids::{Seq, UserId};
use crate::values::GroupName;
use crate::wire as w;

use super::common::wire_enum;

wire_enum!(
    /// A member's role in a group.
    MemberRole, w::MemberRole, unknown = Unspecified,
    { Unspecified, Owner, Manager, Member }
);
wire_enum!(
    /// Who may join a public group.
    JoinPolicy, w::JoinPolicy, unknown = Unspecified,
    { Unspecified, Free, Approval, InviteOnly }
);

/// Longest group announcement, in bytes.
pub const MAX_ANNOUNCEMENT_BYTES: usize = 4096;
/// Longest group description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 1024;
/// Longest file id (avatars), in bytes.
pub const MAX_FILE_ID_BYTES: usize = 128;
/// Longest group nickname, in characters.
pub const MAX_NICKNAME_CHARS: usize = 64;
/// Longest join request message, in bytes.
pub const MAX_JOIN_MESSAGE_BYTES: usize = 256;
/// Longest reaction, in bytes.
pub const MAX_REACTION_BYTES: usize = 32;

/// A free text field: at most `max` bytes (or characters with `chars`), no control characters
/// but newlines and tabs.
pub(crate) fn text(
    s: String,
    max: usize,
    chars: bool,
    what: &'static str,
) -> Result<String, InvalidInput> {
    let len = if chars { s.chars().count() } else { s.len() };
    if len > max {
        return Err(InvalidInput::owned(format!(
            "{what} is longer than {max} {}",
            if chars { "characters" } else { "bytes" }
        )));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(InvalidInput::owned(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(s)
}

/// A reaction: 1..=32 bytes, not blank.
pub(crate) fn reaction(s: String) -> Result<String, InvalidInput> {
    if s.trim().is_empty() {
        return Err(InvalidInput::new("reaction must not be empty"));
    }
    text(s, MAX_REACTION_BYTES, false, "reaction")
}

/// A group's profile and settings, as stored and shown.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)] // see `GroupProfile` in the .proto file
pub struct GroupProfile {
    pub name: String,
    pub avatar_file_id: String,
    pub announcement: String,
    pub description: String,
    pub public: bool,
    pub join_policy: JoinPolicy,
    pub max_members: u32,
    pub muted_all_until_ms: u64,
    pub disbanded: bool,
}

/// The profile fields a change sets (`None`: unchanged).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)] // see `GroupProfileEvent` in the .proto file
pub struct GroupProfileChange {
    pub name: Option<GroupName>,
    pub avatar_file_id: Option<String>,
    pub announcement: Option<String>,
    pub description: Option<String>,
    pub public: Option<bool>,
    pub join_policy: Option<JoinPolicy>,
    pub max_members: Option<u32>,
}

impl GroupProfileChange {
    /// True if nothing would change.
    pub fn is_empty(&self) -> bool {
        *self == GroupProfileChange::default()
    }

    /// Applies the change.
    pub fn apply_to(&self, p: &mut GroupProfile) {
        if let Some(n) = &self.name {
            p.name = n.to_string();
        }
        if let Some(a) = &self.avatar_file_id {
            p.avatar_file_id.clone_from(a);
        }
        if let Some(a) = &self.announcement {
            p.announcement.clone_from(a);
        }
        if let Some(d) = &self.description {
            p.description.clone_from(d);
        }
        if let Some(v) = self.public {
            p.public = v;
        }
        if let Some(j) = self.join_policy {
            p.join_policy = j;
        }
        if let Some(m) = self.max_members {
            p.max_members = m;
        }
    }

    pub(crate) fn from_fields(
        name: Option<String>,
        avatar_file_id: Option<String>,
        announcement: Option<String>,
        description: Option<String>,
        public: Option<bool>,
        join_policy: i32,
        max_members: u32,
    ) -> Result<Self, InvalidInput> {
        Ok(GroupProfileChange {
            name: name.map(GroupName::try_from).transpose()?,
            avatar_file_id: avatar_file_id
                .map(|s| text(s, MAX_FILE_ID_BYTES, false, "avatar_file_id"))
                .transpose()?,
            announcement: announcement
                .map(|s| text(s, MAX_ANNOUNCEMENT_BYTES, false, "announcement"))
                .transpose()?,
            description: description
                .map(|s| text(s, MAX_DESCRIPTION_BYTES, false, "description"))
                .transpose()?,
            public,
            join_policy: match JoinPolicy::from_wire(join_policy) {
                JoinPolicy::Unspecified => None,
                p => Some(p),
            },
            max_members: (max_members != 0).then_some(max_members),
        })
    }
}

/// A pending request to join a group.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // see `JoinRequestEvent` in the .proto file
pub struct JoinRequest {
    pub user: UserId,
    pub message: String,
    pub requested_at_ms: u64,
}

/// A change to a conversation other than a plain message, ordered and synced with the messages
/// in the conversation's log. Its author is the entry's `sender`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConversationEvent {
    /// Members joined or left a group.
    Membership {
        /// Users added.
        added: Vec<UserId>,
        /// Users removed (or who left).
        removed: Vec<UserId>,
    },
    /// Profile fields changed.
    GroupProfile(GroupProfileChange),
    /// A member's role changed; for an ownership transfer, `previous_owner` became a member.
    Role {
        /// Whose role.
        user: UserId,
        /// The new role.
        role: MemberRole,
        /// The old owner, when ownership moved.
        previous_owner: Option<UserId>,
    },
    /// A member (`None`: everyone) is muted until then (0: unmuted).
    Mute {
        /// Who (`None`: everyone but the owner and managers).
        user: Option<UserId>,
        /// Unix ms.
        until_ms: u64,
    },
    /// The group was disbanded.
    Disband,
    /// The author's group nickname.
    Nickname(String),
    /// A request to join.
    JoinRequest(JoinRequest),
    /// A join request was rejected.
    JoinRejected(UserId),
    /// The message at `seq` was edited by its sender.
    Edit {
        /// Which message.
        seq: Seq,
        /// Its new content.
        content: Bytes,
    },
    /// The message at `seq` was recalled.
    Recall(Seq),
    /// A friend event, in a user's notices.
    Friend(super::social::FriendEvent),
    /// The user deleted messages of a conversation for itself, in its notices.
    DeletedForMe {
        /// Which conversation.
        conversation: crate::ids::ConversationId,
        /// Which messages.
        seqs: Vec<Seq>,
    },
    /// A call in the conversation ended: its record.
    Call(super::calls::CallRecord),
    /// The user changed its preferences for a conversation, in its notices.
    Prefs {
        /// Which conversation.
        conversation: crate::ids::ConversationId,
        /// Pinned (`None`: unchanged).
        pinned: Option<bool>,
        /// Muted (`None`: unchanged).
        muted: Option<bool>,
        /// Hidden up to this seq; 0: shown (`None`: unchanged).
        hidden_upto: Option<Seq>,
    },
    /// The author added or removed a reaction on the message at `seq`.
    Reaction {
        /// Which message.
        seq: Seq,
        /// The reaction.
        emoji: String,
        /// Removed rather than added.
        removed: bool,
    },
    /// The group was created by the author (its first entry): its name, and the members it
    /// started with (the creator first). Changes no state.
    Created {
        /// The group's name at creation.
        name: String,
        /// The initial members.
        members: Vec<UserId>,
    },
    /// The author invited the user into a group, in the invitee's notices.
    GroupInvite {
        /// Which group.
        conversation: crate::ids::ConversationId,
        /// Its name when the invitation was made.
        name: String,
    },
}

impl ConversationEvent {
    /// Users who must hear of the event besides the conversation's members after it (those it
    /// removed, a rejected requester).
    pub fn also_notify(&self) -> &[UserId] {
        match self {
            ConversationEvent::Membership { removed, .. } => removed,
            ConversationEvent::JoinRejected(user) => std::slice::from_ref(user),
            ConversationEvent::JoinRequest(r) => std::slice::from_ref(&r.user),
            _ => &[],
        }
    }

    /// The message an event amends (edit, recall, reaction), if any.
    pub fn amends(&self) -> Option<Seq> {
        match self {
            ConversationEvent::Edit { seq, .. }
            | ConversationEvent::Recall(seq)
            | ConversationEvent::Reaction { seq, .. } => Some(*seq),
            _ => None,
        }
    }
}

impl std::fmt::Display for ConversationEvent {
    /// A short human-readable line (for logs and command-line clients).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConversationEvent::Membership { added, removed } => {
                write!(f, "members changed: +{added:?} -{removed:?}")
            }
            ConversationEvent::GroupProfile(c) => write!(f, "group profile changed: {c:?}"),
            ConversationEvent::Role {
                user,
                role,
                previous_owner: Some(old),
            } => write!(f, "user {user} is now {role:?} (was user {old}'s)"),
            ConversationEvent::Role { user, role, .. } => write!(f, "user {user} is now {role:?}"),
            ConversationEvent::Mute {
                user: Some(u),
                until_ms: 0,
            } => write!(f, "user {u} unmuted"),
            ConversationEvent::Mute {
                user: None,
                until_ms: 0,
            } => write!(f, "everyone unmuted"),
            ConversationEvent::Mute { user, until_ms } => match user {
                Some(u) => write!(f, "user {u} muted until {until_ms}"),
                None => write!(f, "everyone muted until {until_ms}"),
            },
            ConversationEvent::Disband => write!(f, "group disbanded"),
            ConversationEvent::Nickname(n) => write!(f, "nickname set to {n:?}"),
            ConversationEvent::JoinRequest(r) => {
                write!(f, "user {} asks to join: {:?}", r.user, r.message)
            }
            ConversationEvent::JoinRejected(u) => write!(f, "join request of user {u} rejected"),
            ConversationEvent::Edit { seq, content } => {
                write!(f, "#{seq} edited: {}", String::from_utf8_lossy(content))
            }
            ConversationEvent::Recall(seq) => write!(f, "#{seq} recalled"),
            ConversationEvent::Prefs { conversation, .. } => {
                write!(f, "preferences for conversation {conversation} changed")
            }
            ConversationEvent::GroupInvite { conversation, name } => {
                write!(f, "invited into group {conversation} ({name:?})")
            }
            ConversationEvent::Created { name, members } => {
                write!(f, "group {name:?} created with {members:?}")
            }
            ConversationEvent::DeletedForMe { conversation, seqs } => {
                write!(f, "deleted for me in {conversation}: {seqs:?}")
            }
            ConversationEvent::Call(c) => write!(
                f,
                "{:?} call {} by user {}: {:?}, {} ms",
                c.media, c.call, c.caller, c.outcome, c.duration_ms
            ),
            ConversationEvent::Friend(e) => write!(
                f,
                "friends: {:?} from user {} to user {}",
                e.change, e.from, e.to
            ),
            ConversationEvent::Reaction {
                seq,
                emoji,
                removed,
            } => write!(
                f,
                "{} {emoji} on #{seq}",
                if *removed { "removed" } else { "reacted" }
            ),
        }
    }
}

fn opt_user(v: u64) -> Option<UserId> {
    UserId::try_from(v).ok()
}

impl From<ConversationEvent> for w::ConversationEvent {
    fn from(e: ConversationEvent) -> Self {
        use w::conversation_event::Kind;
        let kind = match e {
            ConversationEvent::Membership { added, removed } => {
                Kind::Membership(w::MembershipEvent {
                    added_user_ids: added.into_iter().map(u64::from).collect(),
                    removed_user_ids: removed.into_iter().map(u64::from).collect(),
                })
            }
            ConversationEvent::GroupProfile(c) => Kind::GroupProfile(w::GroupProfileEvent {
                name: c.name.map(String::from),
                avatar_file_id: c.avatar_file_id,
                announcement: c.announcement,
                description: c.description,
                public: c.public,
                join_policy: c.join_policy.unwrap_or(JoinPolicy::Unspecified).to_wire(),
                max_members: c.max_members.unwrap_or(0),
            }),
            ConversationEvent::Role {
                user,
                role,
                previous_owner,
            } => Kind::Role(w::RoleEvent {
                user_id: user.get(),
                role: role.to_wire(),
                previous_owner_user_id: previous_owner.map_or(0, u64::from),
            }),
            ConversationEvent::Mute { user, until_ms } => Kind::Mute(w::MuteEvent {
                user_id: user.map_or(0, u64::from),
                until_ms,
            }),
            ConversationEvent::Disband => Kind::Disband(w::DisbandEvent {}),
            ConversationEvent::Nickname(nickname) => Kind::Nickname(w::NicknameEvent { nickname }),
            ConversationEvent::JoinRequest(r) => Kind::JoinRequest(r.into()),
            ConversationEvent::JoinRejected(user) => Kind::JoinRejected(w::JoinRejectedEvent {
                user_id: user.get(),
            }),
            ConversationEvent::Edit { seq, content } => Kind::Edit(w::EditEvent {
                seq: seq.get(),
                content,
            }),
            ConversationEvent::Recall(seq) => Kind::Recall(w::RecallEvent { seq: seq.get() }),
            ConversationEvent::Friend(f) => Kind::Friend(f.into()),
            ConversationEvent::Call(c) => Kind::Call(c.into()),
            ConversationEvent::DeletedForMe { conversation, seqs } => {
                Kind::DeletedForMe(w::DeletedForMeEvent {
                    conversation_id: conversation.get(),
                    seqs: seqs.into_iter().map(Seq::get).collect(),
                })
            }
            ConversationEvent::Created { name, members } => {
                Kind::GroupCreated(w::GroupCreatedEvent {
                    group_name: name,
                    member_user_ids: members.into_iter().map(u64::from).collect(),
                })
            }
            ConversationEvent::GroupInvite { conversation, name } => {
                Kind::GroupInvite(w::GroupInviteEvent {
                    conversation_id: conversation.get(),
                    group_name: name,
                })
            }
            ConversationEvent::Prefs {
                conversation,
                pinned,
                muted,
                hidden_upto,
            } => Kind::Prefs(w::ConversationPrefsEvent {
                conversation_id: conversation.get(),
                pinned,
                muted,
                hidden_upto_seq: hidden_upto.map(Seq::get),
            }),
            ConversationEvent::Reaction {
                seq,
                emoji,
                removed,
            } => Kind::Reaction(w::ReactionEvent {
                seq: seq.get(),
                emoji,
                removed,
            }),
        };
        w::ConversationEvent { kind: Some(kind) }
    }
}

impl From<JoinRequest> for w::JoinRequestEvent {
    fn from(r: JoinRequest) -> Self {
        w::JoinRequestEvent {
            user_id: r.user.get(),
            message: r.message,
            requested_at_ms: r.requested_at_ms,
        }
    }
}

impl TryFrom<w::JoinRequestEvent> for JoinRequest {
    type Error = InvalidInput;
    fn try_from(r: w::JoinRequestEvent) -> Result<Self, InvalidInput> {
        Ok(JoinRequest {
            user: UserId::try_from(r.user_id)?,
            message: text(r.message, MAX_JOIN_MESSAGE_BYTES, false, "message")?,
            requested_at_ms: r.requested_at_ms,
        })
    }
}

fn seq(v: u64) -> Result<Seq, InvalidInput> {
    match v {
        0 => Err(InvalidInput::new("seq must be non-zero")),
        v => Ok(Seq(v)),
    }
}

impl TryFrom<w::ConversationEvent> for ConversationEvent {
    type Error = InvalidInput;
    fn try_from(e: w::ConversationEvent) -> Result<Self, InvalidInput> {
        use w::conversation_event::Kind;
        Ok(match e.kind {
            Some(Kind::Membership(m)) => ConversationEvent::Membership {
                added: super::response::ids(m.added_user_ids)?,
                removed: super::response::ids(m.removed_user_ids)?,
            },
            Some(Kind::GroupProfile(p)) => {
                ConversationEvent::GroupProfile(GroupProfileChange::from_fields(
                    p.name,
                    p.avatar_file_id,
                    p.announcement,
                    p.description,
                    p.public,
                    p.join_policy,
                    p.max_members,
                )?)
            }
            Some(Kind::Role(r)) => ConversationEvent::Role {
                user: UserId::try_from(r.user_id)?,
                role: MemberRole::from_wire(r.role),
                previous_owner: opt_user(r.previous_owner_user_id),
            },
            Some(Kind::Mute(m)) => ConversationEvent::Mute {
                user: opt_user(m.user_id),
                until_ms: m.until_ms,
            },
            Some(Kind::Disband(_)) => ConversationEvent::Disband,
            Some(Kind::Nickname(n)) => {
                ConversationEvent::Nickname(text(n.nickname, MAX_NICKNAME_CHARS, true, "nickname")?)
            }
            Some(Kind::JoinRequest(r)) => ConversationEvent::JoinRequest(r.try_into()?),
            Some(Kind::JoinRejected(r)) => {
                ConversationEvent::JoinRejected(UserId::try_from(r.user_id)?)
            }
            Some(Kind::Edit(e)) => ConversationEvent::Edit {
                seq: seq(e.seq)?,
                content: e.content,
            },
            Some(Kind::Recall(r)) => ConversationEvent::Recall(seq(r.seq)?),
            Some(Kind::Friend(f)) => ConversationEvent::Friend(f.try_into()?),
            Some(Kind::Call(c)) => ConversationEvent::Call(c.try_into()?),
            Some(Kind::DeletedForMe(d)) => ConversationEvent::DeletedForMe {
                conversation: crate::ids::ConversationId::try_from(d.conversation_id)?,
                seqs: d.seqs.into_iter().map(Seq).collect(),
            },
            Some(Kind::GroupCreated(g)) => ConversationEvent::Created {
                name: g.group_name,
                members: super::response::ids(g.member_user_ids)?,
            },
            Some(Kind::GroupInvite(g)) => ConversationEvent::GroupInvite {
                conversation: crate::ids::ConversationId::try_from(g.conversation_id)?,
                name: g.group_name,
            },
            Some(Kind::Prefs(p)) => ConversationEvent::Prefs {
                conversation: crate::ids::ConversationId::try_from(p.conversation_id)?,
                pinned: p.pinned,
                muted: p.muted,
                hidden_upto: p.hidden_upto_seq.map(Seq),
            },
            Some(Kind::Reaction(r)) => ConversationEvent::Reaction {
                seq: seq(r.seq)?,
                emoji: reaction(r.emoji)?,
                removed: r.removed,
            },
            None => return Err(InvalidInput::new("conversation event of an unknown kind")),
        })
    }
}

/// Who reacted how on a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reaction {
    /// The reaction.
    pub emoji: String,
    /// Who, in user-id order.
    pub users: Vec<UserId>,
}

/// What later events did to a message, as history and sync render it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Amendments {
    /// When its content was last edited (Unix ms; 0 = never).
    pub edited_at_ms: u64,
    /// Recalled: its content is withheld.
    pub recalled: bool,
    /// Reactions, in emoji order.
    pub reactions: Vec<Reaction>,
    /// Deleted by the reader for itself (its content is withheld).
    pub deleted_for_me: bool,
}

/// One member of a group as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // see `MemberInfo` in the .proto file
pub struct MemberInfo {
    pub user: UserId,
    pub role: MemberRole,
    pub nickname: String,
    pub muted_until_ms: u64,
    pub joined_seq: Seq,
}

/// A group as `GetGroup` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // see `GroupInfo` in the .proto file
pub struct GroupInfo {
    pub conversation: crate::ids::ConversationId,
    pub profile: GroupProfile,
    pub owner: Option<UserId>,
    pub member_count: u32,
    pub join_requests: Vec<JoinRequest>,
    /// When the group was created, Unix ms.
    pub created_at_ms: u64,
}

impl From<GroupProfile> for w::GroupProfile {
    fn from(p: GroupProfile) -> Self {
        w::GroupProfile {
            name: p.name,
            avatar_file_id: p.avatar_file_id,
            announcement: p.announcement,
            description: p.description,
            public: p.public,
            join_policy: p.join_policy.to_wire(),
            max_members: p.max_members,
            muted_all_until_ms: p.muted_all_until_ms,
            disbanded: p.disbanded,
        }
    }
}

impl From<w::GroupProfile> for GroupProfile {
    fn from(p: w::GroupProfile) -> Self {
        GroupProfile {
            name: p.name,
            avatar_file_id: p.avatar_file_id,
            announcement: p.announcement,
            description: p.description,
            public: p.public,
            join_policy: JoinPolicy::from_wire(p.join_policy),
            max_members: p.max_members,
            muted_all_until_ms: p.muted_all_until_ms,
            disbanded: p.disbanded,
        }
    }
}

impl From<MemberInfo> for w::MemberInfo {
    fn from(m: MemberInfo) -> Self {
        w::MemberInfo {
            user_id: m.user.get(),
            role: m.role.to_wire(),
            nickname: m.nickname,
            muted_until_ms: m.muted_until_ms,
            joined_seq: m.joined_seq.get(),
        }
    }
}

impl TryFrom<w::MemberInfo> for MemberInfo {
    type Error = InvalidInput;
    fn try_from(m: w::MemberInfo) -> Result<Self, InvalidInput> {
        Ok(MemberInfo {
            user: UserId::try_from(m.user_id)?,
            role: MemberRole::from_wire(m.role),
            nickname: m.nickname,
            muted_until_ms: m.muted_until_ms,
            joined_seq: Seq(m.joined_seq),
        })
    }
}

impl From<GroupInfo> for w::GroupInfo {
    fn from(g: GroupInfo) -> Self {
        w::GroupInfo {
            conversation_id: g.conversation.get(),
            profile: Some(g.profile.into()),
            owner_user_id: g.owner.map_or(0, u64::from),
            member_count: g.member_count,
            join_requests: g.join_requests.into_iter().map(Into::into).collect(),
            created_at_ms: g.created_at_ms,
        }
    }
}

impl TryFrom<w::GroupInfo> for GroupInfo {
    type Error = InvalidInput;
    fn try_from(g: w::GroupInfo) -> Result<Self, InvalidInput> {
        Ok(GroupInfo {
            conversation: crate::ids::ConversationId::try_from(g.conversation_id)?,
            profile: g.profile.unwrap_or_default().into(),
            owner: opt_user(g.owner_user_id),
            member_count: g.member_count,
            join_requests: g
                .join_requests
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            created_at_ms: g.created_at_ms,
        })
    }
}

impl Amendments {
    /// Writes the rendered state into a wire message.
    pub(crate) fn write(self, m: &mut w::Message) {
        m.edited_at_ms = self.edited_at_ms;
        m.recalled = self.recalled;
        m.deleted_for_me = self.deleted_for_me;
        m.reactions = self
            .reactions
            .into_iter()
            .map(|r| w::Reaction {
                emoji: r.emoji,
                user_ids: r.users.into_iter().map(u64::from).collect(),
            })
            .collect();
    }

    /// Reads the rendered state of a wire message (`None` if it has none).
    pub(crate) fn read(m: &mut w::Message) -> Result<Option<Box<Amendments>>, InvalidInput> {
        if m.edited_at_ms == 0 && !m.recalled && !m.deleted_for_me && m.reactions.is_empty() {
            return Ok(None);
        }
        Ok(Some(Box::new(Amendments {
            edited_at_ms: m.edited_at_ms,
            recalled: m.recalled,
            deleted_for_me: m.deleted_for_me,
            reactions: std::mem::take(&mut m.reactions)
                .into_iter()
                .map(|r| {
                    Ok(Reaction {
                        emoji: r.emoji,
                        users: super::response::ids(r.user_ids)?,
                    })
                })
                .collect::<Result<_, InvalidInput>>()?,
        })))
    }
}
