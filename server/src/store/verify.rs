//! One data directory, verified: the sled store (`store/`) and the message log (`messages/`)
//! are bound to one identity and checked against each other, at every start and by
//! `parley check`.
//!
//! - **Identity.** The store's epoch (random, made with the store) is also written to
//!   `messages/IDENTITY` when the store is first opened (or, for a data directory from before
//!   identities, the first time this version opens it; sled then records `bound` in `meta`).
//!   A store without an epoch beside a log that holds anything (`store/` lost or recreated),
//!   different identities (parts of two data directories), or a bound store whose log lost its
//!   identity file (`messages/` lost or replaced) refuse to start.
//! - **The log against itself and the index.** Opening reads every record of every segment
//!   (checksums, end marks, both chains) and compares the heads it computes at the last
//!   snapshot with the ones the snapshot recorded ([`super::messages`]).
//! - **References** ([`Store::verify_references`]): every conversation with entries in the log
//!   has its record in `convs`, every sender its record in `users`, and sled's id counter is
//!   ahead of every conversation and user id in use, so an id is never handed out twice.
//! - **Records.** Every JSON record the store writes is sealed with a crc32
//!   ([`super::keys::seal`]), ids stored as values too ([`super::keys::id_value`]); reads
//!   verify them, and `parley check` reads every one.
//! - **Admin accounts** (`parley check` only): every admin name points at the record of that
//!   name and every record has its name ([`super::admins`]).
//!
//! Any mismatch is [`StoreError::Damaged`], whose message names the damage and what to do.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use super::messages::{LogSummary, MessageLog};
use super::{keys, Result, Store, StoreError};

/// The identity file in `messages/`.
const IDENTITY_FILE: &str = "IDENTITY";
/// `meta` key recording that `messages/` carries this store's identity.
const BOUND: &str = "bound";

const RECOVER: &str = "Restore the whole data directory (store/ and messages/ together) from a \
                       backup, or, to give up its data, move the data directory away and start \
                       with an empty one. `parley check --data-dir DIR` reports what is damaged.";

fn damaged(what: String) -> StoreError {
    StoreError::Damaged(format!("{what}. {RECOVER}"))
}

/// The identity recorded in `messages/`, if any.
fn read_identity(log_dir: &Path) -> Result<Option<u64>> {
    let text = match std::fs::read_to_string(log_dir.join(IDENTITY_FILE)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    text.strip_prefix("parley data directory ")
        .and_then(|s| s.strip_suffix('\n'))
        .and_then(|s| u64::from_str_radix(s, 16).ok())
        .map(Some)
        .ok_or_else(|| {
            damaged(format!(
                "{} is damaged (it reads {text:?})",
                log_dir.join(IDENTITY_FILE).display()
            ))
        })
}

/// Writes the identity file durably (a new file, then its directory).
fn write_identity(log_dir: &Path, epoch: u64) -> Result<()> {
    if !log_dir.exists() {
        std::fs::create_dir_all(log_dir)?;
        if let Some(parent) = log_dir.parent() {
            File::open(parent)?.sync_all()?;
        }
    }
    let tmp = log_dir.join("IDENTITY.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(format!("parley data directory {epoch:016x}\n").as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, log_dir.join(IDENTITY_FILE))?;
    File::open(log_dir)?.sync_all()?;
    Ok(())
}

/// Whether `messages/` holds anything of a data directory: its identity, or a record.
pub(super) fn log_has_data(log_dir: &Path) -> Result<bool> {
    if !log_dir.exists() {
        return Ok(false);
    }
    if log_dir.join(IDENTITY_FILE).exists() {
        return Ok(true);
    }
    for entry in std::fs::read_dir(log_dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().ends_with(".log") && entry.metadata()?.len() > 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The refusal for a store that is missing (or has no identity) beside a log with data.
pub(super) fn store_lost(dir: &Path) -> StoreError {
    damaged(format!(
        "{} is missing or empty but {} holds messages: the accounts, conversations and id \
         counters that go with them are gone, and starting would hand their ids out again \
         (a new conversation would read an old one's messages)",
        dir.join("store").display(),
        dir.join("messages").display()
    ))
}

/// Binds `messages/` to the store's identity `epoch`, or checks that it is bound to it.
/// `write` false (an offline check) only checks.
pub(super) fn bind(log_dir: &Path, meta: &sled::Tree, epoch: u64, write: bool) -> Result<()> {
    match read_identity(log_dir)? {
        Some(id) if id == epoch => Ok(()),
        Some(id) => Err(damaged(format!(
            "store/ belongs to data directory {epoch:016x} but messages/ to data directory \
             {id:016x}: they are parts of two different data directories"
        ))),
        None if meta.get(BOUND)?.is_some() => Err(damaged(format!(
            "{} is missing: messages/ was lost, replaced or damaged, and the messages the store \
             refers to are not there",
            log_dir.join(IDENTITY_FILE).display()
        ))),
        // A new data directory, or one from before identities: bind it (durable with the
        // snapshot that opening takes).
        None if write => {
            write_identity(log_dir, epoch)?;
            meta.insert(BOUND, &[1u8][..])?;
            Ok(())
        }
        None => Ok(()),
    }
}

/// The largest key of `tree` read as a u64 id (keys are big-endian ids), 0 if empty.
fn last_id(tree: &sled::Tree) -> Result<u64> {
    match tree.last()? {
        Some((k, _)) => keys::decode_u64(&k, "ids"),
        None => Ok(0),
    }
}

fn some(ids: &[u64]) -> String {
    let shown: Vec<String> = ids.iter().take(5).map(u64::to_string).collect();
    let more = if ids.len() > 5 { ", ..." } else { "" };
    format!("{}{more}", shown.join(", "))
}

impl Store {
    /// Checks the store against the message log (see the module docs): every conversation
    /// with entries and every sender exist in sled, and the id counter is ahead of every id in
    /// use. Run at start, before serving.
    pub fn verify_references(&self) -> Result<()> {
        let convs: Vec<u64> = self
            .conversation_heads()
            .into_iter()
            .map(|(c, _)| c.get())
            .collect();
        let senders: Vec<u64> = self.messages.senders().iter().map(|u| u.get()).collect();
        verify_references(&self.convs, &self.users, &self.db, &convs, &senders)
    }
}

/// Every id of `convs_in_log` has a record in `convs`, every one of `senders` in `users`, and
/// `db`'s id counter is past all of them and every key of both trees.
fn verify_references(
    convs: &sled::Tree,
    users: &sled::Tree,
    db: &sled::Db,
    convs_in_log: &[u64],
    senders: &[u64],
) -> Result<()> {
    let mut problems = Vec::new();
    for (ids, tree, what) in [
        (
            convs_in_log,
            convs,
            "conversations with messages in messages/",
        ),
        (senders, users, "users who sent messages"),
    ] {
        let mut missing = Vec::new();
        for &id in ids {
            if !tree.contains_key(keys::u64_key(id))? {
                missing.push(id);
            }
        }
        missing.sort_unstable();
        if !missing.is_empty() {
            problems.push(format!(
                "{} {what} have no record in store/ (ids {})",
                missing.len(),
                some(&missing)
            ));
        }
    }
    let highest = convs_in_log
        .iter()
        .chain(senders)
        .copied()
        .chain([last_id(convs)?, last_id(users)?])
        .max()
        .unwrap_or(0);
    // The id `Store::generate_id` would hand out next (this takes it: ids may skip numbers,
    // they are never reused).
    let next = db.generate_id()? + 1;
    if next <= highest {
        problems.push(format!(
            "store/'s id counter is at {next} but ids up to {highest} are in use: new users and \
             conversations would get the ids of existing ones"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(damaged(format!(
            "store/ and messages/ disagree: {}",
            problems.join("; ")
        )))
    }
}

/// What `parley check` found.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// What was verified, one line each.
    pub verified: Vec<String>,
    /// What is damaged, one line each (empty: the data directory is sound).
    pub damage: Vec<String>,
    /// Notes that are not damage (a torn last batch, never acknowledged).
    pub notes: Vec<String>,
}

/// JSON trees whose every record `parley check` decodes (their envelopes verified).
const JSON_TREES: &[&str] = &[
    "users",
    "tokens",
    "devices",
    "convs",
    "members",
    "join_reqs",
    "amends",
    "profiles",
    "relations",
    "prefs",
    "presence",
    "calls",
    "push_tokens",
    "files",
    "audit",
    "meetings",
    "admins",
    "settings",
];
/// Trees whose values are ids ([`keys::id_value`]).
const ID_TREES: &[&str] = &["accounts", "direct", "notices", "admin_names"];

/// Verifies the data directory `dir` offline (the server must not be running on it): the
/// identity, every record of the message log, the snapshot, the references between the two,
/// and every checksummed record in sled. Changes nothing but what opening sled itself does (and
/// takes one id from the counter).
pub fn check(dir: &Path) -> CheckReport {
    let mut report = CheckReport::default();
    if let Err(e) = check_into(dir, &mut report) {
        report.damage.push(e.to_string());
    }
    report
}

fn check_into(dir: &Path, report: &mut CheckReport) -> Result<()> {
    let log_dir = dir.join("messages");
    let store_dir = dir.join("store");
    if !dir.is_dir() {
        return Err(StoreError::Damaged(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    if !store_dir.join("db").exists() {
        return Err(if log_has_data(&log_dir)? {
            store_lost(dir)
        } else {
            StoreError::Damaged(format!(
                "{} holds no Parley store (no store/db)",
                dir.display()
            ))
        });
    }
    let db = sled::Config::new().path(&store_dir).open().map_err(|e| {
        if e.to_string().contains("could not acquire lock") {
            StoreError::Damaged(format!(
                "{} is in use (is the server running on it? stop it first): {e}",
                store_dir.display()
            ))
        } else {
            StoreError::Damaged(format!("sled cannot open {}: {e}", store_dir.display()))
        }
    })?;
    let meta = db.open_tree("meta")?;
    let Some(epoch) = meta.get("epoch")? else {
        return Err(store_lost(dir));
    };
    let epoch = keys::decode_u64(&epoch, "meta")?;
    bind(&log_dir, &meta, epoch, false)?;
    report
        .verified
        .push(format!("identity: data directory {epoch:016x}"));
    let idx = db.open_tree("msgidx")?;
    let summary: LogSummary = MessageLog::verify(&log_dir, &idx)?;
    report.verified.push(format!(
        "message log: {} records in {} bytes, checksums, batches, chains and the index's \
         snapshot agree; {} conversations, {} senders, next message id {}",
        summary.records,
        summary.bytes,
        summary.heads.len(),
        summary.senders.len(),
        summary.next_id
    ));
    if let Some((segment, offset)) = summary.torn {
        report.notes.push(format!(
            "the last batch of segment {segment} (from offset {offset}) is unfinished: a write \
             cut short by a crash, never acknowledged; the next start cuts it"
        ));
    }
    for name in JSON_TREES {
        let tree = db.open_tree(name)?;
        let mut n = 0u64;
        for kv in tree.iter() {
            let (_, v) = kv?;
            let payload = keys::open(&v, name)?;
            serde_json::from_slice::<serde_json::Value>(payload).map_err(|e| {
                StoreError::Corrupt {
                    tree: name,
                    detail: e.to_string(),
                }
            })?;
            n += 1;
        }
        report.verified.push(format!("{name}: {n} records"));
    }
    for name in ID_TREES {
        let tree = db.open_tree(name)?;
        let mut n = 0u64;
        for kv in tree.iter() {
            let (_, v) = kv?;
            keys::decode_id_value(&v, name)?;
            n += 1;
        }
        report.verified.push(format!("{name}: {n} records"));
    }
    report.verified.push(super::admins::verify(&db)?);
    let convs: Vec<u64> = summary.heads.iter().map(|(c, _)| c.get()).collect();
    let senders: Vec<u64> = summary.senders.iter().map(|u| u.get()).collect();
    verify_references(
        &db.open_tree("convs")?,
        &db.open_tree("users")?,
        &db,
        &convs,
        &senders,
    )?;
    report.verified.push(
        "references: every conversation and sender in the log exists in store/, and the id \
         counter is ahead of every id in use"
            .to_owned(),
    );
    db.flush()?;
    Ok(())
}
