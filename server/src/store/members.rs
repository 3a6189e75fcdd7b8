//! Membership as every authorization check and the fan-out read it: a cache of each
//! conversation's record and members, and the one place membership changes are applied
//! ([`Store::apply_event`]), so the cache can never serve a membership that was replaced.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use parley_protocol::ids::{ConversationId, UserId};

use super::{ConversationRecord, MemberRecord, Result, Store};

/// A conversation with its members, as cached.
#[derive(Debug)]
pub struct Members {
    /// The conversation's record.
    pub record: ConversationRecord,
    /// Members in user-id order.
    pub list: Vec<(UserId, MemberRecord)>,
}

impl Members {
    /// The record of `user`, if a member.
    pub fn get(&self, user: UserId) -> Option<&MemberRecord> {
        self.list
            .binary_search_by_key(&user, |(u, _)| *u)
            .ok()
            .map(|i| &self.list[i].1)
    }

    /// Member ids.
    pub fn ids(&self) -> impl Iterator<Item = UserId> + '_ {
        self.list.iter().map(|(u, _)| *u)
    }
}

/// Cache of conversation membership. Fills and invalidations happen under the write lock, so a
/// fill can never re-insert membership that a concurrent change just replaced.
#[derive(Debug, Default)]
pub(super) struct MemberCache {
    map: RwLock<HashMap<ConversationId, Arc<Members>>>,
}

impl MemberCache {
    fn get(&self, store: &Store, conv: ConversationId) -> Result<Option<Arc<Members>>> {
        if let Some(m) = self
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&conv)
        {
            return Ok(Some(m.clone()));
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = map.get(&conv) {
            return Ok(Some(m.clone()));
        }
        let Some(record) = store.conversation(conv)? else {
            return Ok(None);
        };
        let members = Arc::new(Members {
            record,
            list: store.members(conv)?,
        });
        map.insert(conv, members.clone());
        Ok(Some(members))
    }

    /// Runs a membership change and drops the cached entry, atomically for cache readers.
    pub(super) fn change<T>(&self, conv: ConversationId, f: impl FnOnce() -> T) -> T {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        let out = f();
        map.remove(&conv);
        out
    }
}

impl Store {
    /// The conversation and its members (cached), or `None` if it does not exist.
    pub fn members_of(&self, conv: ConversationId) -> Result<Option<Arc<Members>>> {
        self.member_cache.get(self, conv)
    }
}
