//! Users and their relations: profiles, settings, friends, blocks.

use crate::error::InvalidInput;
use crate::ids::UserId;
use crate::wire as w;

use super::common::wire_enum;
use super::group::{text, MAX_FILE_ID_BYTES};

wire_enum!(
    /// Gender on a profile.
    Gender, w::Gender, unknown = Unspecified,
    { Unspecified, Female, Male, Other }
);
wire_enum!(
    /// Who may add a user as a friend.
    AddPolicy, w::AddPolicy, unknown = Unspecified,
    { Unspecified, Anyone, Verify, Nobody }
);
wire_enum!(
    /// What a friend event says.
    FriendChange, w::FriendChange, unknown = Unspecified,
    { Unspecified, Requested, Accepted, Rejected, Removed, Blocked, Unblocked }
);

/// Longest nickname, region or remark, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest bio, in characters.
pub const MAX_BIO_CHARS: usize = 256;
/// Longest link, in bytes.
pub const MAX_LINK_BYTES: usize = 256;
/// Longest friend request message, in bytes.
pub const MAX_FRIEND_MESSAGE_BYTES: usize = 256;
/// Longest search query, in characters.
pub const MAX_QUERY_CHARS: usize = 64;

pub(crate) fn name(s: String, what: &'static str) -> Result<String, InvalidInput> {
    text(s, MAX_NAME_CHARS, true, what)
}

pub(crate) fn friend_message(s: String) -> Result<String, InvalidInput> {
    text(s, MAX_FRIEND_MESSAGE_BYTES, false, "message")
}

fn birthday(s: String) -> Result<String, InvalidInput> {
    if s.is_empty() {
        return Ok(s);
    }
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let ok = b.len() == 10 && b[4] == b'-' && b[7] == b'-' && digits(0..4) && digits(5..7);
    let ok = ok && digits(8..10);
    let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().unwrap_or(0);
    if !ok || !(1..=12).contains(&num(5..7)) || !(1..=31).contains(&num(8..10)) {
        return Err(InvalidInput::new("birthday must be YYYY-MM-DD or empty"));
    }
    Ok(s)
}

fn link(s: String) -> Result<String, InvalidInput> {
    if s.is_empty() {
        return Ok(s);
    }
    let scheme = s.starts_with("https://") || s.starts_with("http://");
    if !scheme || s.len() > MAX_LINK_BYTES || s.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(InvalidInput::new(
            "link must be an http(s) URL of at most 256 bytes, or empty",
        ));
    }
    Ok(s)
}

fn language(s: String) -> Result<String, InvalidInput> {
    if s.len() > 35 || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(InvalidInput::new(
            "language must be a BCP 47 tag of at most 35 bytes, or empty",
        ));
    }
    Ok(s)
}

/// What anyone may see of a user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)] // see `Profile` in the .proto file
pub struct Profile {
    pub user: Option<UserId>,
    pub account: String,
    pub nickname: String,
    pub avatar_file_id: String,
    pub bio: String,
    pub gender: Gender,
    pub region: String,
    pub birthday: String,
    pub link: String,
    /// A temporary guest account.
    pub guest: bool,
    /// When the account was made, Unix ms (0: not known).
    pub created_at_ms: u64,
}

/// Profile fields to change (`None`: unchanged).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)] // see `UpdateProfile` in the .proto file
pub struct ProfileChange {
    pub nickname: Option<String>,
    pub avatar_file_id: Option<String>,
    pub bio: Option<String>,
    pub gender: Option<Gender>,
    pub region: Option<String>,
    pub birthday: Option<String>,
    pub link: Option<String>,
}

impl ProfileChange {
    /// Applies the change.
    pub fn apply_to(&self, p: &mut Profile) {
        let set = |dst: &mut String, v: &Option<String>| {
            if let Some(v) = v {
                dst.clone_from(v);
            }
        };
        set(&mut p.nickname, &self.nickname);
        set(&mut p.avatar_file_id, &self.avatar_file_id);
        set(&mut p.bio, &self.bio);
        set(&mut p.region, &self.region);
        set(&mut p.birthday, &self.birthday);
        set(&mut p.link, &self.link);
        if let Some(g) = self.gender {
            p.gender = g;
        }
    }
}

/// A user's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // see `Settings` in the .proto file
pub struct Settings {
    pub notifications: bool,
    pub add_policy: AddPolicy,
    pub searchable_by_account: bool,
    pub searchable_by_name: bool,
    pub language: String,
}

/// Settings to change (`None`: unchanged).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)] // see `UpdateSettings` in the .proto file
pub struct SettingsChange {
    pub notifications: Option<bool>,
    pub add_policy: Option<AddPolicy>,
    pub searchable_by_account: Option<bool>,
    pub searchable_by_name: Option<bool>,
    pub language: Option<String>,
}

impl SettingsChange {
    /// Applies the change.
    pub fn apply_to(&self, s: &mut Settings) {
        if let Some(v) = self.notifications {
            s.notifications = v;
        }
        if let Some(v) = self.add_policy {
            s.add_policy = v;
        }
        if let Some(v) = self.searchable_by_account {
            s.searchable_by_account = v;
        }
        if let Some(v) = self.searchable_by_name {
            s.searchable_by_name = v;
        }
        if let Some(v) = &self.language {
            s.language.clone_from(v);
        }
    }
}

/// A friend as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // see `Friend` in the .proto file
pub struct Friend {
    pub profile: Profile,
    pub remark: String,
    pub since_ms: u64,
}

/// A pending friend request as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // see `FriendRequest` in the .proto file
pub struct FriendRequestInfo {
    pub profile: Profile,
    pub message: String,
    pub requested_at_ms: u64,
}

/// A friend event in a user's notices.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // see `FriendEvent` in the .proto file
pub struct FriendEvent {
    pub change: FriendChange,
    pub from: UserId,
    pub to: UserId,
    pub message: String,
}

impl From<FriendEvent> for w::FriendEvent {
    fn from(e: FriendEvent) -> Self {
        w::FriendEvent {
            change: e.change.to_wire(),
            from_user_id: e.from.get(),
            to_user_id: e.to.get(),
            message: e.message,
        }
    }
}

impl TryFrom<w::FriendEvent> for FriendEvent {
    type Error = InvalidInput;
    fn try_from(e: w::FriendEvent) -> Result<Self, InvalidInput> {
        Ok(FriendEvent {
            change: FriendChange::from_wire(e.change),
            from: UserId::try_from(e.from_user_id)?,
            to: UserId::try_from(e.to_user_id)?,
            message: friend_message(e.message)?,
        })
    }
}

impl From<Profile> for w::Profile {
    fn from(p: Profile) -> Self {
        w::Profile {
            user_id: p.user.map_or(0, u64::from),
            account: p.account,
            nickname: p.nickname,
            avatar_file_id: p.avatar_file_id,
            bio: p.bio,
            gender: p.gender.to_wire(),
            region: p.region,
            birthday: p.birthday,
            link: p.link,
            guest: p.guest,
            created_at_ms: p.created_at_ms,
        }
    }
}

impl From<w::Profile> for Profile {
    fn from(p: w::Profile) -> Self {
        Profile {
            user: UserId::try_from(p.user_id).ok(),
            account: p.account,
            nickname: p.nickname,
            avatar_file_id: p.avatar_file_id,
            bio: p.bio,
            gender: Gender::from_wire(p.gender),
            region: p.region,
            birthday: p.birthday,
            link: p.link,
            guest: p.guest,
            created_at_ms: p.created_at_ms,
        }
    }
}

impl TryFrom<w::UpdateProfile> for ProfileChange {
    type Error = InvalidInput;
    fn try_from(u: w::UpdateProfile) -> Result<Self, InvalidInput> {
        Ok(ProfileChange {
            nickname: u.nickname.map(|s| name(s, "nickname")).transpose()?,
            avatar_file_id: u
                .avatar_file_id
                .map(|s| text(s, MAX_FILE_ID_BYTES, false, "avatar_file_id"))
                .transpose()?,
            bio: u
                .bio
                .map(|s| text(s, MAX_BIO_CHARS, true, "bio"))
                .transpose()?,
            gender: match Gender::from_wire(u.gender) {
                Gender::Unspecified => None,
                g => Some(g),
            },
            region: u.region.map(|s| name(s, "region")).transpose()?,
            birthday: u.birthday.map(birthday).transpose()?,
            link: u.link.map(link).transpose()?,
        })
    }
}

impl From<ProfileChange> for w::UpdateProfile {
    fn from(c: ProfileChange) -> Self {
        w::UpdateProfile {
            nickname: c.nickname,
            avatar_file_id: c.avatar_file_id,
            bio: c.bio,
            gender: c.gender.unwrap_or_default().to_wire(),
            region: c.region,
            birthday: c.birthday,
            link: c.link,
        }
    }
}

impl From<Settings> for w::Settings {
    fn from(s: Settings) -> Self {
        w::Settings {
            notifications: s.notifications,
            add_policy: s.add_policy.to_wire(),
            searchable_by_account: s.searchable_by_account,
            searchable_by_name: s.searchable_by_name,
            language: s.language,
        }
    }
}

impl From<w::Settings> for Settings {
    fn from(s: w::Settings) -> Self {
        Settings {
            notifications: s.notifications,
            add_policy: AddPolicy::from_wire(s.add_policy),
            searchable_by_account: s.searchable_by_account,
            searchable_by_name: s.searchable_by_name,
            language: s.language,
        }
    }
}

impl TryFrom<w::UpdateSettings> for SettingsChange {
    type Error = InvalidInput;
    fn try_from(u: w::UpdateSettings) -> Result<Self, InvalidInput> {
        Ok(SettingsChange {
            notifications: u.notifications,
            add_policy: match AddPolicy::from_wire(u.add_policy) {
                AddPolicy::Unspecified => None,
                p => Some(p),
            },
            searchable_by_account: u.searchable_by_account,
            searchable_by_name: u.searchable_by_name,
            language: u.language.map(language).transpose()?,
        })
    }
}

impl From<SettingsChange> for w::UpdateSettings {
    fn from(c: SettingsChange) -> Self {
        w::UpdateSettings {
            notifications: c.notifications,
            add_policy: c.add_policy.unwrap_or(AddPolicy::Unspecified).to_wire(),
            searchable_by_account: c.searchable_by_account,
            searchable_by_name: c.searchable_by_name,
            language: c.language,
        }
    }
}

impl From<Friend> for w::Friend {
    fn from(f: Friend) -> Self {
        w::Friend {
            profile: Some(f.profile.into()),
            remark: f.remark,
            since_ms: f.since_ms,
        }
    }
}

impl From<w::Friend> for Friend {
    fn from(f: w::Friend) -> Self {
        Friend {
            profile: f.profile.unwrap_or_default().into(),
            remark: f.remark,
            since_ms: f.since_ms,
        }
    }
}

impl From<FriendRequestInfo> for w::FriendRequest {
    fn from(r: FriendRequestInfo) -> Self {
        w::FriendRequest {
            profile: Some(r.profile.into()),
            message: r.message,
            requested_at_ms: r.requested_at_ms,
        }
    }
}

impl From<w::FriendRequest> for FriendRequestInfo {
    fn from(r: w::FriendRequest) -> Self {
        FriendRequestInfo {
            profile: r.profile.unwrap_or_default().into(),
            message: r.message,
            requested_at_ms: r.requested_at_ms,
        }
    }
}

wire_enum!(
    /// Online, away or offline.
    PresenceStatus, w::PresenceStatus, unknown = Unspecified,
    { Unspecified, Online, Away, Offline }
);

/// A user's presence.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // see `Presence` in the .proto file
pub struct Presence {
    pub user: UserId,
    pub status: PresenceStatus,
    pub text: String,
    pub last_seen_ms: u64,
}

impl From<Presence> for w::Presence {
    fn from(p: Presence) -> Self {
        w::Presence {
            user_id: p.user.get(),
            status: p.status.to_wire(),
            text: p.text,
            last_seen_ms: p.last_seen_ms,
        }
    }
}

impl TryFrom<w::Presence> for Presence {
    type Error = InvalidInput;
    fn try_from(p: w::Presence) -> Result<Self, InvalidInput> {
        Ok(Presence {
            user: UserId::try_from(p.user_id)?,
            status: PresenceStatus::from_wire(p.status),
            text: p.text,
            last_seen_ms: p.last_seen_ms,
        })
    }
}
