//! Per user, the conversations it is in and its cursors there, in memory for the users who
//! list their conversations: the list's first page then reads no store tree of size
//! proportional to the user's conversations (two scans of 10,000 entries took most of its
//! time). Filled on first use, dropped for a user whenever its membership changes, updated in
//! place when its cursors move; the whole cache is dropped past [`MAX_USERS`] entries.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use parley_protocol::ids::{ConversationId, UserId};

use super::{Cursors, Result, Store};

/// Users kept at most (then the cache starts over).
const MAX_USERS: usize = 20_000;

/// One user's conversations and cursors.
#[derive(Debug, Default)]
pub struct UserIndex {
    /// Conversations, in id order.
    pub convs: Vec<ConversationId>,
    /// Cursors, where set.
    pub cursors: HashMap<ConversationId, Cursors>,
}

#[derive(Debug, Default)]
pub(super) struct UserIndexCache {
    map: RwLock<HashMap<UserId, Arc<RwLock<UserIndex>>>>,
    /// Set once anything was cached: until then a cursor move costs one relaxed load (most
    /// servers' users never list, e.g. under a chat benchmark), not a shared lock.
    used: std::sync::atomic::AtomicBool,
}

impl UserIndexCache {
    /// Forgets `users` (their membership changed). Under the write lock, so a concurrent fill
    /// cannot put back what it read before the change.
    pub(super) fn forget(&self, users: impl IntoIterator<Item = UserId>) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        for u in users {
            map.remove(&u);
        }
    }

    /// A cursor moved (after it was written to the store).
    pub(super) fn cursor_moved(&self, user: UserId, conv: ConversationId, now: Cursors) {
        if !self.used.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = map.get(&user) {
            let mut e = entry.write().unwrap_or_else(|e| e.into_inner());
            let c = e.cursors.entry(conv).or_default();
            c.delivered = c.delivered.max(now.delivered);
            c.read = c.read.max(now.read);
        }
    }
}

impl Store {
    /// Runs `f` over `user`'s conversations and cursors (filled from the store on first use).
    pub fn with_user_index<T>(&self, user: UserId, f: impl FnOnce(&UserIndex) -> T) -> Result<T> {
        let cache = &self.user_index;
        let cached = cache
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&user)
            .cloned();
        let entry = match cached {
            Some(e) => e,
            None => {
                let mut map = cache.map.write().unwrap_or_else(|e| e.into_inner());
                match map.get(&user) {
                    Some(e) => e.clone(),
                    None => {
                        let index = UserIndex {
                            convs: self.user_conversations(user)?,
                            cursors: self.user_cursors(user)?.into_iter().collect(),
                        };
                        if map.len() >= MAX_USERS {
                            map.clear();
                        }
                        let e = Arc::new(RwLock::new(index));
                        map.insert(user, e.clone());
                        cache.used.store(true, std::sync::atomic::Ordering::Release);
                        e
                    }
                }
            }
        };
        let index = entry.read().unwrap_or_else(|e| e.into_inner());
        Ok(f(&index))
    }
}
