//! Conversations and membership. Creation and membership changes are sled transactions across
//! `convs`, `direct`, `members` and `user_convs`, so a crash never leaves half a conversation.

use parley_protocol::frames::ConversationKind;
use parley_protocol::ids::{ConversationId, Seq, UserId};
use parley_protocol::values::GroupName;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;

use super::keys::{self, pair, u64_key};
use super::{from_json, get_json, json, Result, Store, StoreError};

/// Role of a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Owns the group: may do anything in it.
    Owner,
    /// Appointed by the owner: manages plain members and the profile.
    Manager,
    /// Ordinary member.
    Member,
}

impl Role {
    /// Owner or manager.
    pub fn manages(self) -> bool {
        matches!(self, Role::Owner | Role::Manager)
    }
}

/// A group's profile and settings beyond its name (defaults for groups made before they
/// existed: private, invite only, no limit of its own).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct GroupSettings {
    /// File id of the avatar.
    #[serde(default)]
    pub avatar_file_id: String,
    /// Announcement.
    #[serde(default)]
    pub announcement: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Can be looked up and joined by id.
    #[serde(default)]
    pub public: bool,
    /// `parley.v1.JoinPolicy` number (0: invite only, as before policies existed).
    #[serde(default)]
    pub join_policy: i32,
    /// The group's own member limit (0: the server's).
    #[serde(default)]
    pub max_members: u32,
    /// Everyone but owner and managers muted until then (Unix ms).
    #[serde(default)]
    pub muted_all_until_ms: u64,
    /// Disbanded: takes no new entries.
    #[serde(default)]
    pub disbanded: bool,
}

/// A conversation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConversationRecord {
    /// True for groups, false for 1:1.
    pub group: bool,
    /// Group name (empty for 1:1).
    pub name: String,
    /// Owner of a group.
    pub owner: Option<u64>,
    /// Creation time, Unix ms.
    pub created_ms: u64,
    /// Groups: profile and settings.
    #[serde(default)]
    pub settings: GroupSettings,
    /// A user's notices (its only member is that user; written by the server).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub notices: bool,
}

impl ConversationRecord {
    /// Wire kind.
    pub fn kind(&self) -> ConversationKind {
        if self.group {
            ConversationKind::Group
        } else if self.notices {
            ConversationKind::Notices
        } else {
            ConversationKind::Direct
        }
    }
}

/// A member of a conversation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberRecord {
    /// Owner, manager or member.
    pub role: Role,
    /// First seq the member may read (history before joining stays hidden).
    pub from_seq: u64,
    /// Muted until then (Unix ms; 0: not muted).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub muted_until_ms: u64,
    /// Nickname in the group.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub nickname: String,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl MemberRecord {
    /// A copy without the nickname (cheap: no string is cloned).
    pub fn without_nickname(&self) -> MemberRecord {
        MemberRecord {
            role: self.role,
            from_seq: self.from_seq,
            muted_until_ms: self.muted_until_ms,
            nickname: String::new(),
        }
    }

    /// A member with no mute and no nickname.
    pub fn new(role: Role, from_seq: u64) -> Self {
        MemberRecord {
            role,
            from_seq,
            muted_until_ms: 0,
            nickname: String::new(),
        }
    }
}

fn tx_err(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Engine(e),
    }
}

type TxResult<T> = std::result::Result<T, ConflictableTransactionError<StoreError>>;

fn put_member(
    members: &TransactionalTree,
    user_convs: &TransactionalTree,
    conv: ConversationId,
    user: UserId,
    record: &MemberRecord,
) -> TxResult<()> {
    members.insert(&pair(conv.get(), user.get())[..], json(record))?;
    user_convs.insert(&pair(user.get(), conv.get())[..], &[][..])?;
    Ok(())
}

/// Drops the cached conversation index of some users once a membership change is written
/// (when it goes out of scope, after the transaction), and again is harmless.
struct Forget<'a>(&'a Store, Vec<UserId>);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0.user_index.forget(self.1.drain(..));
    }
}

impl Store {
    /// The 1:1 conversation of `a` and `b`, created on first use. Both users get the same one.
    pub fn direct_conversation(&self, a: UserId, b: UserId, now_ms: u64) -> Result<ConversationId> {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let key = pair(lo.get(), hi.get());
        if let Some(existing) = self.direct.get(key)? {
            return keys::conversation_value(&existing, "direct");
        }
        let fresh = keys::conversation(&u64_key(self.generate_id()?), "convs")?;
        let record = ConversationRecord {
            group: false,
            name: String::new(),
            owner: None,
            created_ms: now_ms,
            settings: GroupSettings::default(),
            notices: false,
        };
        let member = MemberRecord::new(Role::Member, 1);
        let _forget = Forget(self, vec![lo, hi]);
        (&self.direct, &self.convs, &self.members, &self.user_convs)
            .transaction(|(direct, convs, members, user_convs)| {
                // A concurrent creator may have won: then use theirs.
                if let Some(existing) = direct.get(key)? {
                    return keys::conversation_value(&existing, "direct")
                        .map_err(ConflictableTransactionError::Abort);
                }
                direct.insert(&key[..], &keys::id_value(fresh.get())[..])?;
                convs.insert(&u64_key(fresh.get())[..], json(&record))?;
                put_member(members, user_convs, fresh, lo, &member)?;
                if hi != lo {
                    put_member(members, user_convs, fresh, hi, &member)?;
                }
                Ok(fresh)
            })
            .map_err(tx_err)
    }

    /// The notices conversation of `user`, if it has one.
    pub fn notices_of(&self, user: UserId) -> Result<Option<ConversationId>> {
        self.notices
            .get(u64_key(user.get()))?
            .map(|v| keys::conversation_value(&v, "notices"))
            .transpose()
    }

    /// The notices conversation of `user`, created on first use.
    pub fn notices_conversation(&self, user: UserId, now_ms: u64) -> Result<ConversationId> {
        let key = u64_key(user.get());
        if let Some(existing) = self.notices.get(key)? {
            return keys::conversation_value(&existing, "notices");
        }
        let fresh = keys::conversation(&u64_key(self.generate_id()?), "convs")?;
        let record = ConversationRecord {
            group: false,
            name: String::new(),
            owner: None,
            created_ms: now_ms,
            settings: GroupSettings::default(),
            notices: true,
        };
        let member = MemberRecord::new(Role::Member, 1);
        let _forget = Forget(self, vec![user]);
        let conv = (&self.notices, &self.convs, &self.members, &self.user_convs)
            .transaction(|(notices, convs, members, user_convs)| {
                if let Some(existing) = notices.get(key)? {
                    return keys::conversation_value(&existing, "notices")
                        .map_err(ConflictableTransactionError::Abort);
                }
                notices.insert(&key[..], &keys::id_value(fresh.get())[..])?;
                convs.insert(&u64_key(fresh.get())[..], json(&record))?;
                put_member(members, user_convs, fresh, user, &member)?;
                Ok(fresh)
            })
            .map_err(tx_err)?;
        if conv == fresh {
            // Notices are committed into it right away, without a barrier in between: its
            // record must be durable before any entry of its log is (otherwise a crash leaves
            // entries of a conversation sled never heard of, and its id free to be handed out
            // again; opening refuses such a data directory, store/verify.rs). Once per user.
            self.db.flush()?;
            self.db_file.sync_data()?;
        }
        Ok(conv)
    }

    /// Creates a group owned by `owner` with `others` as members.
    pub fn create_group(
        &self,
        owner: UserId,
        name: &GroupName,
        others: &[UserId],
        settings: GroupSettings,
        now_ms: u64,
    ) -> Result<ConversationId> {
        let conv = keys::conversation(&u64_key(self.generate_id()?), "convs")?;
        let record = ConversationRecord {
            group: true,
            name: name.to_string(),
            owner: Some(owner.get()),
            created_ms: now_ms,
            settings,
            notices: false,
        };
        let mut everyone = others.to_vec();
        everyone.push(owner);
        let _forget = Forget(self, everyone);
        (&self.convs, &self.members, &self.user_convs)
            .transaction(|(convs, members, user_convs)| {
                convs.insert(&u64_key(conv.get())[..], json(&record))?;
                let owner_rec = MemberRecord::new(Role::Owner, 1);
                put_member(members, user_convs, conv, owner, &owner_rec)?;
                let rec = MemberRecord::new(Role::Member, 1);
                for &user in others.iter().filter(|u| **u != owner) {
                    put_member(members, user_convs, conv, user, &rec)?;
                }
                Ok(())
            })
            .map_err(tx_err)?;
        Ok(conv)
    }

    /// Adds and removes members; added members see messages from `from_seq` on. Existing
    /// members listed in `add` keep their record. Called through [`Store::apply_event`], which
    /// keeps the member cache consistent.
    pub(super) fn change_members(
        &self,
        conv: ConversationId,
        add: &[UserId],
        remove: &[UserId],
        from_seq: Seq,
    ) -> Result<()> {
        let _forget = Forget(self, add.iter().chain(remove).copied().collect());
        (&self.members, &self.user_convs)
            .transaction(|(members, user_convs)| {
                for &user in add {
                    if members.get(&pair(conv.get(), user.get())[..])?.is_none() {
                        let rec = MemberRecord::new(Role::Member, from_seq.get());
                        put_member(members, user_convs, conv, user, &rec)?;
                    }
                }
                for &user in remove {
                    members.remove(&pair(conv.get(), user.get())[..])?;
                    user_convs.remove(&pair(user.get(), conv.get())[..])?;
                }
                Ok(())
            })
            .map_err(tx_err)
    }

    /// Rewrites a conversation's record (events that change a group's profile or settings;
    /// called through [`Store::apply_event`]).
    pub(super) fn update_conversation(
        &self,
        conv: ConversationId,
        f: impl FnOnce(&mut ConversationRecord),
    ) -> Result<()> {
        if let Some(mut record) = self.conversation(conv)? {
            f(&mut record);
            self.convs.insert(u64_key(conv.get()), json(&record))?;
        }
        Ok(())
    }

    /// Rewrites a member's record if `user` is a member (called through
    /// [`Store::apply_event`]).
    pub(super) fn update_member(
        &self,
        conv: ConversationId,
        user: UserId,
        f: impl FnOnce(&mut MemberRecord),
    ) -> Result<()> {
        if let Some(mut record) = self.member(conv, user)? {
            f(&mut record);
            self.members
                .insert(pair(conv.get(), user.get()), json(&record))?;
        }
        Ok(())
    }

    /// A conversation's record.
    pub fn conversation(&self, conv: ConversationId) -> Result<Option<ConversationRecord>> {
        get_json(&self.convs, u64_key(conv.get()), "convs")
    }

    /// All members of a conversation, in user-id order.
    pub fn members(&self, conv: ConversationId) -> Result<Vec<(UserId, MemberRecord)>> {
        self.members
            .scan_prefix(u64_key(conv.get()))
            .map(|kv| {
                let (k, v) = kv?;
                let (_, user) = keys::decode_pair(&k, "members")?;
                let user = keys::user(&u64_key(user), "members")?;
                Ok((user, from_json(&v, "members")?))
            })
            .collect()
    }

    /// One member's record, if `user` is a member.
    pub fn member(&self, conv: ConversationId, user: UserId) -> Result<Option<MemberRecord>> {
        get_json(&self.members, pair(conv.get(), user.get()), "members")
    }

    /// The conversations `user` belongs to, in id order.
    pub fn user_conversations(&self, user: UserId) -> Result<Vec<ConversationId>> {
        self.user_convs
            .scan_prefix(u64_key(user.get()))
            .keys()
            .map(|k| {
                let (_, conv) = keys::decode_pair(&k?, "user_convs")?;
                keys::conversation(&u64_key(conv), "user_convs")
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::temp_store;
    use super::*;

    fn u(n: u64) -> UserId {
        UserId::try_from(n).unwrap()
    }

    #[test]
    fn direct_conversation_is_shared_and_stable() {
        let (_d, store) = temp_store();
        let c1 = store.direct_conversation(u(1), u(2), 0).unwrap();
        let c2 = store.direct_conversation(u(2), u(1), 0).unwrap();
        assert_eq!(c1, c2);
        let members: Vec<_> = store
            .members(c1)
            .unwrap()
            .into_iter()
            .map(|m| m.0)
            .collect();
        assert_eq!(members, vec![u(1), u(2)]);
        assert_eq!(store.user_conversations(u(2)).unwrap(), vec![c1]);
        assert!(!store.conversation(c1).unwrap().unwrap().group);
    }

    #[test]
    fn group_membership_changes() {
        let (_d, store) = temp_store();
        let name = GroupName::try_from("g").unwrap();
        let g = store
            .create_group(u(1), &name, &[u(2), u(3)], Default::default(), 0)
            .unwrap();
        assert_eq!(store.members(g).unwrap().len(), 3);
        assert_eq!(store.member(g, u(1)).unwrap().unwrap().role, Role::Owner);
        store.change_members(g, &[u(4)], &[u(2)], Seq(7)).unwrap();
        assert!(store.member(g, u(2)).unwrap().is_none());
        assert_eq!(store.member(g, u(4)).unwrap().unwrap().from_seq, 7);
        assert!(store.user_conversations(u(2)).unwrap().is_empty());
        assert_eq!(store.user_conversations(u(4)).unwrap(), vec![g]);
    }
}
