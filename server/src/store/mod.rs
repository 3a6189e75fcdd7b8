//! The durable store. Everything the server keeps lives here, behind domain types: nothing
//! outside this module sees sled, so another engine can be plugged in.
//!
//! # Catalogue of trees
//!
//! | tree        | key                                   | value                          |
//! |-------------|---------------------------------------|--------------------------------|
//! | `meta`      | `epoch`                               | epoch, the data directory's identity (u64 BE) |
//! |             | `bound`                               | present once `messages/IDENTITY` holds the epoch |
//! |             | `world`                               | world room's id (u64 BE)       |
//! |             | `account_skeletons`                   | present once every account has its skeleton entry |
//! | `accounts`  | account name (utf-8)                  | user id (u64 BE)               |
//! |             | 0, the name's skeleton (utf-8)        | user id holding it (accounts.rs) |
//! | `users`     | user id                               | [`UserRecord`] (JSON)          |
//! | `tokens`    | SHA-256 of the token                  | [`TokenRecord`] (JSON)         |
//! | `devices`   | user id, device id (utf-8)            | [`DeviceTokens`] (JSON)        |
//! | `convs`     | conversation id                       | [`ConversationRecord`] (JSON)  |
//! | `direct`    | lower user id, higher user id         | conversation id                |
//! | `members`   | conversation id, user id              | [`MemberRecord`] (JSON)        |
//! | `user_convs`| user id, conversation id              | empty                          |
//! | `msgidx`    | `c` conversation id, seq (1,024th)    | message position (u64 BE)      |
//! |             | `h` conversation id                   | head seq, position (snapshot)  |
//! |             | `r`                                   | replay position, next msg id   |
//! |             | `s` sender id                         | position of its newest message |
//! |             | `v`                                   | message log format (u64 BE)    |
//! | `cursors`   | user id, conversation id              | delivered seq, read seq        |
//! | `join_reqs` | conversation id, user id              | [`JoinRequestRecord`] (JSON)   |
//! | `invites`   | conversation id, user id              | [`InviteRecord`] (JSON)        |
//! | `amends`    | conversation id, seq                  | [`Amendment`] (JSON)           |
//! | `profiles`  | user id                               | [`ProfileRecord`] (JSON)       |
//! | `relations` | user id, other user id                | [`Relation`] (JSON)            |
//! | `remarks`   | user id, other user id                | remark (utf-8)                 |
//! | `blocks`    | blocker id, blocked id                | since, Unix ms (u64 BE)        |
//! | `notices`   | user id                               | its notices conversation id    |
//! | `prefs`     | user id, conversation id              | [`Prefs`] (JSON)               |
//! | `presence`  | user id                               | [`PresenceRecord`] (JSON)      |
//! | `calls`     | user id, call id                      | [`CallEntry`] (JSON)           |
//! | `push_tokens`| user id, device id (utf-8)           | [`PushToken`] (JSON)           |
//! | `search_pos`| conversation id                       | seq indexed for search (u64 BE)|
//! | `deleted`   | user id, conversation id, seq         | empty (deleted for that user)  |
//! | `files`     | file id (16 bytes)                    | [`files::FileRecord`] (JSON)   |
//! | `file_grants`| file id, conversation id             | empty (sent there)             |
//! | `file_owners`| owner id, created ms, file id        | empty ([`files::index`])       |
//! | `file_hashes`| SHA-256 (hex), file id               | empty ([`files::index`])       |
//! | `audit`     | entry number                          | [`AuditRecord`] (JSON)         |
//! | `meetings`  | meeting id                            | [`MeetingRecord`] (JSON)       |
//! | `admins`, `admin_names`, `settings` | admin id; admin name; setting key | [`AdminRecord`], admin id, [`SettingRecord`] (admins.rs) |
//! | `meeting_users`| user id, meeting id                | its creation time (u64 BE)     |
//!
//! Numbers in keys are big-endian u64 so range scans run in numeric order.
//!
//! # Integrity
//!
//! Every JSON value above is written sealed: `0x01 | crc32 (u32 LE) | JSON` ([`keys::seal`]),
//! and the ids stored as values in `accounts`, `direct` and `notices` are followed by their
//! crc32 ([`keys::id_value`]); reads verify them, and values written before seals (plain JSON,
//! plain 8-byte ids) read as they are. Opening binds `store/` and `messages/` to one identity
//! and checks them against each other; [`check`] does the same offline for `parley check`
//! ([`verify`], docs/durability.md "A damaged or incomplete data directory").
//!
//! Messages themselves are not in sled: they are records in append-only segment files under
//! `messages/` ([`log`]), each pointing at the previous message of its conversation and at the
//! previous message of its sender. `msgidx` is derived from those files: it is written after
//! the records are durable and, after a crash, rebuilt by replaying the log from the last
//! snapshot, so the files are the only truth.
//!
//! There is no index of every message ever sent: idempotency checks a send against its sender's
//! last [`IDEMPOTENCY_WINDOW`] messages, kept in memory for active senders and read back along
//! the sender's chain otherwise ([`messages`]; docs/durability.md says why).
//!
//! # Durability
//!
//! A message is durable once its segment is `fdatasync`ed ([`Store::make_durable`]): one write
//! and one fdatasync per batch; the index writes that follow are not synced (no sled flush on
//! the way to an ack). [`Store::sync`] makes every earlier write of any kind durable: the log as
//! above, then sled's `flush` and an `fdatasync` of sled's file through a
//! handle of our own, so the guarantee does not depend on what a given sled version does inside
//! `flush`. See `docs/durability.md`.
//!
//! A store that meets a full disk or a failed fsync says so through [`Store::health`]
//! ([`health`]): a full disk refuses writes until space is back, then resumes by itself; a
//! failed fsync or a failed sled needs a restart.

mod accounts;
mod admins;
mod audit;
mod conversations;
mod cursors;
mod events;
pub mod files;
#[doc(hidden)]
pub mod fuzzing;
mod health;
mod invites;
mod keys;
mod log;
mod meetings;
mod members;
mod messages;
mod social;
mod user_index;
mod verify;

use std::fs::File;
use std::path::{Path, PathBuf};

use parley_protocol::ids::{ConversationId, Seq};

pub use accounts::{DeviceTokens, PushToken, TokenKind, TokenRecord, UserRecord};
pub use admins::{AdminRecord, SettingRecord, FIRST_ADMIN_ID, MAX_ADMINS};
pub use audit::{AuditRecord, MAX_AUDIT};
pub use conversations::{ConversationRecord, GroupSettings, MemberRecord, Role};
pub use cursors::Cursors;
pub use events::{Amendment, CallEntry, JoinRequestRecord};
pub(crate) use health::{classify, Stage};
pub use health::{is_out_of_space, Degraded, StoreHealth};
pub use invites::InviteRecord;
pub use meetings::MeetingRecord;
pub use members::Members;
pub use messages::{CommitItem, Committed, IdReused, PendingBatch, IDEMPOTENCY_WINDOW};
pub use social::{Prefs, PresenceRecord, ProfileRecord, Relation};
pub use user_index::UserIndex;
pub use verify::{check, CheckReport};

/// A store failure. Internal details are logged, never sent to peers.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The engine failed.
    #[error("storage engine: {0}")]
    Engine(#[from] sled::Error),
    /// A transaction failed.
    #[error("storage transaction: {0}")]
    Transaction(String),
    /// File IO outside the engine (fsync, open).
    #[error("storage io: {0}")]
    Io(#[from] std::io::Error),
    /// Stored bytes did not decode: the store is damaged or from an incompatible version.
    #[error("corrupt record in {tree}: {detail}")]
    Corrupt {
        /// Tree name.
        tree: &'static str,
        /// What failed.
        detail: String,
    },
    /// The data directory is damaged or incomplete (its parts disagree); the message names the
    /// damage and how to recover. Opening refuses rather than serve from it.
    #[error("the data directory is damaged: {0}")]
    Damaged(String),
}

pub(crate) type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The opened store.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    accounts: sled::Tree,
    users: sled::Tree,
    tokens: sled::Tree,
    devices: sled::Tree,
    convs: sled::Tree,
    direct: sled::Tree,
    members: sled::Tree,
    user_convs: sled::Tree,
    idx: sled::Tree,
    cursors: sled::Tree,
    join_reqs: sled::Tree,
    invites: sled::Tree,
    amends: sled::Tree,
    profiles: sled::Tree,
    relations: sled::Tree,
    remarks: sled::Tree,
    blocks: sled::Tree,
    notices: sled::Tree,
    prefs: sled::Tree,
    presence: sled::Tree,
    calls: sled::Tree,
    push_tokens: sled::Tree,
    search_pos: sled::Tree,
    deleted: sled::Tree,
    block_set: std::sync::Arc<social::BlockSet>,
    messages: std::sync::Arc<messages::MessageLog>,
    member_cache: std::sync::Arc<members::MemberCache>,
    user_index: std::sync::Arc<user_index::UserIndexCache>,
    /// Writes made by commits (see [`Store::writes`]).
    writes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    db_file: std::sync::Arc<File>,
    /// Whether writes are taken ([`health`]).
    health: std::sync::Arc<StoreHealth>,
    epoch: u64,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("epoch", &self.epoch)
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) the store under `dir`, with `cache_bytes` of page cache.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Store> {
        let path = dir.join("store");
        let log_dir = dir.join("messages");
        // A store that is gone beside a log that is not: refuse before creating a new one.
        if !path.join("db").exists() && verify::log_has_data(&log_dir)? {
            return Err(verify::store_lost(dir));
        }
        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            // Messages are durable through their own log (group commit); sled's background
            // flush writes the index, cursors and snapshots out every second.
            .flush_every_ms(Some(1000))
            .open()?;
        let meta = db.open_tree("meta")?;
        let epoch = match meta.get("epoch")? {
            Some(v) => keys::decode_u64(&v, "meta")?,
            // A store that lost its identity is no new store if the log holds anything.
            None if verify::log_has_data(&log_dir)? => return Err(verify::store_lost(dir)),
            None => {
                // Non-zero and random, so a client can tell a reset server from the old one.
                // It is also the data directory's identity, written to `messages/` too.
                let epoch = rand::random::<u64>() | 1;
                meta.insert("epoch", &epoch.to_be_bytes())?;
                db.flush()?;
                epoch
            }
        };
        let db_file = File::open(path.join("db"))?;
        if db.tree_names().iter().any(|n| &n[..] == b"log") && !db.open_tree("log")?.is_empty() {
            return Err(StoreError::Corrupt {
                tree: "log",
                detail: "this data directory keeps messages in sled (an older Parley); \
                         start with a new data directory"
                    .into(),
            });
        }
        let idx = db.open_tree("msgidx")?;
        if idx.scan_prefix(b"d").next().is_some() {
            return Err(StoreError::Corrupt {
                tree: "msgidx",
                detail: "this data directory keeps the idempotency index in sled (an older \
                         Parley); start with a new data directory"
                    .into(),
            });
        }
        if dir.join("msgidx").exists() {
            return Err(StoreError::Corrupt {
                tree: "msgidx",
                detail: "this data directory keeps an idempotency index in fjall (an older \
                         Parley); start with a new data directory"
                    .into(),
            });
        }
        verify::bind(&log_dir, &meta, epoch, true)?;
        let (messages, replayed_events) = messages::MessageLog::open(&log_dir, &idx)?;
        let store = Store {
            accounts: db.open_tree("accounts")?,
            users: db.open_tree("users")?,
            tokens: db.open_tree("tokens")?,
            devices: db.open_tree("devices")?,
            convs: db.open_tree("convs")?,
            direct: db.open_tree("direct")?,
            members: db.open_tree("members")?,
            user_convs: db.open_tree("user_convs")?,
            idx,
            cursors: db.open_tree("cursors")?,
            join_reqs: db.open_tree("join_reqs")?,
            invites: db.open_tree("invites")?,
            amends: db.open_tree("amends")?,
            profiles: db.open_tree("profiles")?,
            relations: db.open_tree("relations")?,
            remarks: db.open_tree("remarks")?,
            block_set: std::sync::Arc::new(social::BlockSet::load(&db.open_tree("blocks")?)?),
            blocks: db.open_tree("blocks")?,
            notices: db.open_tree("notices")?,
            prefs: db.open_tree("prefs")?,
            presence: db.open_tree("presence")?,
            calls: db.open_tree("calls")?,
            push_tokens: db.open_tree("push_tokens")?,
            search_pos: db.open_tree("search_pos")?,
            deleted: db.open_tree("deleted")?,
            messages: std::sync::Arc::new(messages),
            db_file: std::sync::Arc::new(db_file),
            member_cache: std::sync::Arc::new(members::MemberCache::default()),
            user_index: std::sync::Arc::new(user_index::UserIndexCache::default()),
            writes: Default::default(),
            health: std::sync::Arc::new(StoreHealth::new(dir.to_owned())),
            epoch,
            path,
            db,
        };
        store.index_account_skeletons(&meta)?;
        // Events after the last snapshot may not have reached sled before a crash: apply them
        // again, in log order (applying is idempotent, and a later state in sled converges).
        for event in &replayed_events {
            store.apply_event(event)?;
        }
        // Record a snapshot after the replay (if there was one), so the next start does not
        // replay the same records again: crash loops cannot make the replay grow.
        store.sync()?;
        Ok(store)
    }

    /// Writes made by commits since start: log records, index checkpoints, and event state
    /// changes.
    pub fn writes(&self) -> u64 {
        self.writes.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn count_writes(&self, n: usize) {
        self.writes
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Up to which seq each conversation is in the search index (absent: 0).
    pub fn search_positions(&self) -> Result<std::collections::HashMap<ConversationId, Seq>> {
        self.search_pos
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                Ok((
                    keys::conversation(&k, "search_pos")?,
                    Seq(keys::decode_u64(&v, "search_pos")?),
                ))
            })
            .collect()
    }

    /// Records search positions (after the index committed them).
    pub fn set_search_positions(&self, positions: &[(ConversationId, Seq)]) -> Result<()> {
        for (conv, seq) in positions {
            self.search_pos
                .insert(keys::u64_key(conv.get()), &seq.get().to_be_bytes())?;
        }
        Ok(())
    }

    /// Forgets every search position (the index is rebuilt from the log).
    pub fn clear_search_positions(&self) -> Result<()> {
        self.search_pos.clear()?;
        Ok(())
    }

    /// The store's identity; changes only when the data directory is recreated.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The world room (`JoinWorld`), if one was made.
    pub fn world_room(&self) -> Result<Option<ConversationId>> {
        let meta = self.db.open_tree("meta")?;
        meta.get("world")?
            .map(|v| {
                ConversationId::try_from(keys::decode_u64(&v, "meta")?).map_err(|_| corrupt_world())
            })
            .transpose()
    }

    /// Records `conv` as the world room unless one is recorded already; returns the one that is.
    pub fn set_world_room(&self, conv: ConversationId) -> Result<ConversationId> {
        let meta = self.db.open_tree("meta")?;
        match meta.compare_and_swap(
            "world",
            None as Option<&[u8]>,
            Some(&conv.get().to_be_bytes()[..]),
        )? {
            Ok(()) => Ok(conv),
            Err(e) => {
                let current = e.current.ok_or_else(corrupt_world)?;
                ConversationId::try_from(keys::decode_u64(&current, "meta")?)
                    .map_err(|_| corrupt_world())
            }
        }
    }

    /// Makes every write so far durable: the message log, then sled (flush, and fdatasync of
    /// its file).
    pub fn sync(&self) -> Result<()> {
        self.sync_log(|| {
            self.db.flush()?;
            self.db_file.sync_data()?;
            Ok(())
        })
    }

    /// Whether the store takes writes, and why not ([`health`]).
    pub fn health(&self) -> &StoreHealth {
        &self.health
    }

    /// The I/O error sled recorded if one of its writer threads failed: sled 0.34 then refuses
    /// every write until it is reopened. One atomic load (`global_error` is public but hidden in
    /// sled's docs; 0.34 is the pinned line).
    pub(crate) fn engine_error(&self) -> Option<sled::Error> {
        self.db.context.global_error().err()
    }

    /// A fresh id (users, conversations). Monotonic; may skip numbers after a crash.
    pub(crate) fn generate_id(&self) -> Result<u64> {
        Ok(self.db.generate_id()? + 1)
    }

    /// Size of the store on disk in bytes.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0) + self.messages.size()
    }
}

/// `v` as JSON in a checksummed envelope ([`keys::seal`]): every JSON record the store writes
/// (conversations, members, users, tokens, ...) is verified when read back.
fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    // Serialising our own plain structs to JSON cannot fail.
    keys::seal(&serde_json::to_vec(v).unwrap_or_default())
}

fn corrupt_world() -> StoreError {
    StoreError::Corrupt {
        tree: "meta",
        detail: "the world room's id".to_owned(),
    }
}

/// The JSON record under `key` in `tree` (named `name` in errors), or `None`.
fn get_json<T: serde::de::DeserializeOwned>(
    tree: &sled::Tree,
    key: impl AsRef<[u8]>,
    name: &'static str,
) -> Result<Option<T>> {
    tree.get(key)?.map(|v| from_json(&v, name)).transpose()
}

fn from_json<T: serde::de::DeserializeOwned>(bytes: &[u8], tree: &'static str) -> Result<T> {
    serde_json::from_slice(keys::open(bytes, tree)?).map_err(|e| StoreError::Corrupt {
        tree,
        detail: e.to_string(),
    })
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;

    /// A store in a fresh temp dir (kept alive by the returned guard).
    pub fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), 8 << 20).expect("open store");
        (dir, store)
    }

    /// Opens the store in `dir` again after the previous one was dropped. sled's IO threads
    /// let go of the database file (and its lock) a moment after the last handle is dropped,
    /// with nothing to wait on, so an open that finds the lock still taken is retried for up
    /// to 10 s; any other result is returned as it is.
    pub fn reopen(dir: &std::path::Path) -> Result<Store> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match Store::open(dir, 8 << 20) {
                Err(StoreError::Engine(e))
                    if e.to_string().contains("could not acquire lock")
                        && tokio::time::Instant::now() < deadline =>
                {
                    // Not a runtime thread: a plain unit test.
                    std::thread::park_timeout(std::time::Duration::from_millis(5));
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::temp_store;
    use super::*;

    #[test]
    fn epoch_survives_reopen() {
        let (dir, store) = temp_store();
        let epoch = store.epoch();
        assert_ne!(epoch, 0);
        drop(store);
        let store = test_util::reopen(dir.path()).unwrap();
        assert_eq!(store.epoch(), epoch);
        store.sync().unwrap();
    }
}
