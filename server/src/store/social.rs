//! Users' profiles and settings, and their relations: friends (with pending requests), private
//! remarks, blocks. Friend and block changes are events in a user's notices, applied here
//! ([`Store::apply_friend_event`], through [`Store::apply_event`]); profiles, settings and
//! remarks belong to one user and are written directly.

use std::collections::HashSet;
use std::sync::RwLock;

use parley_protocol::frames::{
    AddPolicy, FriendChange, FriendEvent, Gender, Profile, ProfileChange, Settings,
};
use parley_protocol::ids::UserId;
use serde::{Deserialize, Serialize};

use super::keys::{self, pair, u64_key};
use super::{from_json, get_json, json, Result, Store};

fn yes() -> bool {
    true
}

/// A user's profile and settings (defaults for users from before they existed).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProfileRecord {
    /// Display name.
    #[serde(default)]
    pub nickname: String,
    /// Avatar file id.
    #[serde(default)]
    pub avatar_file_id: String,
    /// Bio.
    #[serde(default)]
    pub bio: String,
    /// `parley.v1.Gender` number.
    #[serde(default)]
    pub gender: i32,
    /// Region.
    #[serde(default)]
    pub region: String,
    /// YYYY-MM-DD or empty.
    #[serde(default)]
    pub birthday: String,
    /// URL or empty.
    #[serde(default)]
    pub link: String,
    /// Offline push wanted.
    #[serde(default = "yes")]
    pub notifications: bool,
    /// `parley.v1.AddPolicy` number (0: verify).
    #[serde(default)]
    pub add_policy: i32,
    /// Found by account.
    #[serde(default = "yes")]
    pub searchable_by_account: bool,
    /// Found by nickname.
    #[serde(default = "yes")]
    pub searchable_by_name: bool,
    /// Language tag.
    #[serde(default)]
    pub language: String,
}

impl Default for ProfileRecord {
    fn default() -> Self {
        from_json(b"{}", "profiles").unwrap_or_else(|_| unreachable!("all fields default"))
    }
}

impl ProfileRecord {
    /// The public profile.
    pub fn profile(&self, user: UserId, account: String) -> Profile {
        Profile {
            user: Some(user),
            account,
            ..self.fields()
        }
    }

    fn fields(&self) -> Profile {
        Profile {
            user: None,
            account: String::new(),
            nickname: self.nickname.clone(),
            avatar_file_id: self.avatar_file_id.clone(),
            bio: self.bio.clone(),
            gender: Gender::from_wire(self.gender),
            region: self.region.clone(),
            birthday: self.birthday.clone(),
            link: self.link.clone(),
            // Kept in the user record (`Core::profile` fills them in).
            guest: false,
            created_at_ms: 0,
        }
    }

    /// Applies a profile change.
    pub fn apply(&mut self, c: &ProfileChange) {
        let mut p = self.fields();
        c.apply_to(&mut p);
        self.nickname = p.nickname;
        self.avatar_file_id = p.avatar_file_id;
        self.bio = p.bio;
        self.gender = p.gender.to_wire();
        self.region = p.region;
        self.birthday = p.birthday;
        self.link = p.link;
    }

    /// The settings.
    pub fn settings(&self) -> Settings {
        Settings {
            notifications: self.notifications,
            add_policy: match AddPolicy::from_wire(self.add_policy) {
                AddPolicy::Unspecified => AddPolicy::Verify,
                p => p,
            },
            searchable_by_account: self.searchable_by_account,
            searchable_by_name: self.searchable_by_name,
            language: self.language.clone(),
        }
    }

    /// Replaces the settings.
    pub fn set_settings(&mut self, s: Settings) {
        self.notifications = s.notifications;
        self.add_policy = s.add_policy.to_wire();
        self.searchable_by_account = s.searchable_by_account;
        self.searchable_by_name = s.searchable_by_name;
        self.language = s.language;
    }
}

/// Where a user stands with another (one record per direction).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Relation {
    /// Friends since then (Unix ms).
    Friend {
        /// Since, Unix ms.
        since_ms: u64,
    },
    /// This user asked the other.
    Outgoing {
        /// The request's message.
        message: String,
        /// When, Unix ms.
        at_ms: u64,
    },
    /// The other asked this user.
    Incoming {
        /// The request's message.
        message: String,
        /// When, Unix ms.
        at_ms: u64,
    },
}

/// One user's preferences for one conversation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prefs {
    /// Listed first.
    #[serde(default)]
    pub pinned: bool,
    /// No notifications, not in the unread badge.
    #[serde(default)]
    pub muted: bool,
    /// Hidden up to this seq (shown again once the head passes it); 0: shown.
    #[serde(default)]
    pub hidden_upto: u64,
}

impl Prefs {
    /// Hidden with the conversation's head at `head`.
    pub fn hidden_at(&self, head: parley_protocol::ids::Seq) -> bool {
        self.hidden_upto != 0 && head.get() <= self.hidden_upto
    }
}

/// What a user said about its presence, and when it was last connected.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceRecord {
    /// Away rather than online while connected.
    #[serde(default)]
    pub away: bool,
    /// Custom status text.
    #[serde(default)]
    pub text: String,
    /// Last connected, Unix ms.
    #[serde(default)]
    pub last_seen_ms: u64,
}

/// Every block, in memory: a send in a 1:1 conversation checks it, so it must cost no store
/// read. Blocks are few; an empty set is one branch.
#[derive(Debug, Default)]
pub(super) struct BlockSet {
    set: RwLock<HashSet<(u64, u64)>>,
    /// How many blocks exist: while none do, a check reads this counter, not the shared lock.
    len: std::sync::atomic::AtomicUsize,
}

impl BlockSet {
    pub(super) fn load(tree: &sled::Tree) -> Result<BlockSet> {
        let mut set = HashSet::new();
        for k in tree.iter().keys() {
            set.insert(keys::decode_pair(&k?, "blocks")?);
        }
        Ok(BlockSet {
            len: std::sync::atomic::AtomicUsize::new(set.len()),
            set: RwLock::new(set),
        })
    }
}

impl Store {
    /// A user's profile record (defaults if never set).
    pub fn profile_record(&self, user: UserId) -> Result<ProfileRecord> {
        Ok(get_json(&self.profiles, u64_key(user.get()), "profiles")?.unwrap_or_default())
    }

    /// Writes a user's profile record.
    pub fn put_profile_record(&self, user: UserId, record: &ProfileRecord) -> Result<()> {
        self.profiles.insert(u64_key(user.get()), json(record))?;
        Ok(())
    }

    /// Every user id with its account name, in id order after `after`, for a scan.
    pub fn users_after(&self, after: u64) -> impl Iterator<Item = Result<(UserId, String)>> + '_ {
        self.users
            .range(u64_key(after.saturating_add(1))..)
            .map(|kv| {
                let (k, v) = kv?;
                let user = keys::user(&k, "users")?;
                let record: super::UserRecord = from_json(&v, "users")?;
                Ok((user, record.account))
            })
    }

    /// How `user` stands with `other`.
    pub fn relation(&self, user: UserId, other: UserId) -> Result<Option<Relation>> {
        get_json(&self.relations, pair(user.get(), other.get()), "relations")
    }

    /// Every relation of `user`, in the other's id order.
    pub fn relations(&self, user: UserId) -> Result<Vec<(UserId, Relation)>> {
        self.relations
            .scan_prefix(u64_key(user.get()))
            .map(|kv| {
                let (k, v) = kv?;
                let (_, other) = keys::decode_pair(&k, "relations")?;
                Ok((
                    keys::user(&u64_key(other), "relations")?,
                    from_json(&v, "relations")?,
                ))
            })
            .collect()
    }

    /// True if the two are friends.
    pub fn are_friends(&self, a: UserId, b: UserId) -> Result<bool> {
        Ok(matches!(
            self.relation(a, b)?,
            Some(Relation::Friend { .. })
        ))
    }

    /// `user`'s private remark for `other` (empty if none).
    pub fn remark(&self, user: UserId, other: UserId) -> Result<String> {
        Ok(self
            .remarks
            .get(pair(user.get(), other.get()))?
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default())
    }

    /// Sets (empty: clears) `user`'s remark for `other`.
    pub fn set_remark(&self, user: UserId, other: UserId, remark: &str) -> Result<()> {
        let key = pair(user.get(), other.get());
        if remark.is_empty() {
            self.remarks.remove(key)?;
        } else {
            self.remarks.insert(key, remark.as_bytes())?;
        }
        Ok(())
    }

    /// True if `blocker` blocked `blocked` (from memory).
    pub fn blocked(&self, blocker: UserId, blocked: UserId) -> bool {
        if self
            .block_set
            .len
            .load(std::sync::atomic::Ordering::Acquire)
            == 0
        {
            return false;
        }
        let set = self.block_set.set.read().unwrap_or_else(|e| e.into_inner());
        !set.is_empty() && set.contains(&(blocker.get(), blocked.get()))
    }

    /// True if either blocked the other (one lock, and one branch while nobody blocks anyone).
    pub fn blocked_either(&self, a: UserId, b: UserId) -> bool {
        if self
            .block_set
            .len
            .load(std::sync::atomic::Ordering::Acquire)
            == 0
        {
            return false;
        }
        let set = self.block_set.set.read().unwrap_or_else(|e| e.into_inner());
        !set.is_empty() && (set.contains(&(a.get(), b.get())) || set.contains(&(b.get(), a.get())))
    }

    /// Users `blocker` blocked, in id order.
    pub fn blocked_by(&self, blocker: UserId) -> Result<Vec<UserId>> {
        self.blocks
            .scan_prefix(u64_key(blocker.get()))
            .keys()
            .map(|k| {
                let (_, other) = keys::decode_pair(&k?, "blocks")?;
                keys::user(&u64_key(other), "blocks")
            })
            .collect()
    }

    fn put_relation(&self, user: UserId, other: UserId, r: &Relation) -> Result<()> {
        self.relations
            .insert(pair(user.get(), other.get()), json(r))?;
        Ok(())
    }

    fn drop_relation_if(
        &self,
        user: UserId,
        other: UserId,
        pred: impl Fn(&Relation) -> bool,
    ) -> Result<()> {
        if self.relation(user, other)?.is_some_and(|r| pred(&r)) {
            self.relations.remove(pair(user.get(), other.get()))?;
        }
        Ok(())
    }

    /// `user`'s presence record (defaults if never set).
    pub fn presence(&self, user: UserId) -> Result<PresenceRecord> {
        Ok(get_json(&self.presence, u64_key(user.get()), "presence")?.unwrap_or_default())
    }

    /// Writes `user`'s presence record (best effort: not made durable before answering; a
    /// crash may lose the latest last-seen time).
    pub fn put_presence(&self, user: UserId, record: &PresenceRecord) -> Result<()> {
        self.presence.insert(u64_key(user.get()), json(record))?;
        Ok(())
    }

    /// `user`'s preferences for `conv` (defaults if never set).
    pub fn prefs(&self, user: UserId, conv: parley_protocol::ids::ConversationId) -> Result<Prefs> {
        Ok(get_json(&self.prefs, pair(user.get(), conv.get()), "prefs")?.unwrap_or_default())
    }

    /// Every preference `user` set, by conversation (one scan).
    pub fn user_prefs(
        &self,
        user: UserId,
    ) -> Result<std::collections::HashMap<parley_protocol::ids::ConversationId, Prefs>> {
        self.prefs
            .scan_prefix(u64_key(user.get()))
            .map(|kv| {
                let (k, v) = kv?;
                let (_, conv) = keys::decode_pair(&k, "prefs")?;
                Ok((
                    keys::conversation(&u64_key(conv), "prefs")?,
                    from_json(&v, "prefs")?,
                ))
            })
            .collect()
    }

    /// Applies a preferences event of `user`.
    pub(super) fn apply_prefs(
        &self,
        user: UserId,
        conv: parley_protocol::ids::ConversationId,
        pinned: Option<bool>,
        muted: Option<bool>,
        hidden_upto: Option<parley_protocol::ids::Seq>,
    ) -> Result<()> {
        let mut p = self.prefs(user, conv)?;
        if let Some(v) = pinned {
            p.pinned = v;
        }
        if let Some(v) = muted {
            p.muted = v;
        }
        if let Some(v) = hidden_upto {
            p.hidden_upto = v.get();
        }
        let key = pair(user.get(), conv.get());
        if p == Prefs::default() {
            self.prefs.remove(key)?;
        } else {
            self.prefs.insert(key, json(&p))?;
        }
        Ok(())
    }

    /// Applies a friend event (at `at_ms`, its entry's server time). Idempotent; applied in log
    /// order it converges like every event.
    pub(super) fn apply_friend_event(&self, e: &FriendEvent, at_ms: u64) -> Result<()> {
        let (a, b) = (e.from, e.to);
        let pending = |r: &Relation| !matches!(r, Relation::Friend { .. });
        match e.change {
            FriendChange::Requested => {
                if !self.are_friends(a, b)? {
                    let out = Relation::Outgoing {
                        message: e.message.clone(),
                        at_ms,
                    };
                    let inc = Relation::Incoming {
                        message: e.message.clone(),
                        at_ms,
                    };
                    self.put_relation(a, b, &out)?;
                    self.put_relation(b, a, &inc)?;
                }
            }
            FriendChange::Accepted => {
                if !self.are_friends(a, b)? {
                    let f = Relation::Friend { since_ms: at_ms };
                    self.put_relation(a, b, &f)?;
                    self.put_relation(b, a, &f)?;
                }
            }
            FriendChange::Rejected => {
                self.drop_relation_if(a, b, pending)?;
                self.drop_relation_if(b, a, pending)?;
            }
            FriendChange::Removed => {
                let friend = |r: &Relation| matches!(r, Relation::Friend { .. });
                self.drop_relation_if(a, b, friend)?;
                self.drop_relation_if(b, a, friend)?;
            }
            FriendChange::Blocked => {
                self.blocks
                    .insert(pair(a.get(), b.get()), &at_ms.to_be_bytes())?;
                let mut set = self
                    .block_set
                    .set
                    .write()
                    .unwrap_or_else(|e| e.into_inner());
                set.insert((a.get(), b.get()));
                self.block_set
                    .len
                    .store(set.len(), std::sync::atomic::Ordering::Release);
                // Pending requests between them end; a friendship stays (unblocking restores
                // the conversation as it was).
                self.drop_relation_if(a, b, pending)?;
                self.drop_relation_if(b, a, pending)?;
            }
            FriendChange::Unblocked => {
                self.blocks.remove(pair(a.get(), b.get()))?;
                let mut set = self
                    .block_set
                    .set
                    .write()
                    .unwrap_or_else(|e| e.into_inner());
                set.remove(&(a.get(), b.get()));
                self.block_set
                    .len
                    .store(set.len(), std::sync::atomic::Ordering::Release);
            }
            FriendChange::Unspecified => {}
        }
        Ok(())
    }
}
