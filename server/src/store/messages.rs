//! The message log: messages in append-only segment files of our own ([`super::log`]); sled
//! (checkpoints, snapshots of the heads) keeps what is needed to find them, written after the
//! records are durable and rebuilt from the log after a crash.
//!
//! A record's body is `position of the sender's previous message (u64 LE, NO_POS for its
//! first) | protobuf Message`: besides its conversation's chain, every message is on its
//! sender's chain. Idempotency uses that chain: a send is a retry if its `client_msg_id`
//! matches one of the sender's last [`IDEMPOTENCY_WINDOW`] messages. The windows of active
//! senders are kept in memory (a hash of the client_msg_id and a position per send, within a
//! fixed budget); a window not in memory is read back from the chain.
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Mutex, RwLock};

use parley_protocol::frames::{ConversationEvent, Message, MessageHead, SendRequest};
use parley_protocol::ids::{ConversationId, DeviceId, MessageId, Seq, UserId};

use rustc_hash::{FxHashMap, FxHashSet};

use super::keys::{
    self, checkpoint, pair, sent_head, FORMAT, HEAD_PREFIX, REPLAY_FROM, SENT_PREFIX,
};
use super::log::{self, push_end_mark, seal_record, Segments, HEADER, NO_POS};
use super::{Result, Store, StoreError};

/// One entry waiting to be committed to its conversation's log: a message, or a conversation
/// event (then `request.content` is empty and `request.client_msg_id` is the event's
/// idempotency key). Either way it gets the conversation's next seq, a message id, a place on
/// its author's chain, and an fsync before it is answered.
#[derive(Clone, Debug)]
pub struct CommitItem {
    /// Who sends (the event's author).
    pub sender: UserId,
    /// From which device.
    pub sender_device: DeviceId,
    /// Conversation, content and idempotency key.
    pub request: SendRequest,
    /// The event, for entries that are not plain messages. Events that change state (membership)
    /// are applied to the store when the entry is made durable, and again by the replay after
    /// a crash ([`Store::apply_event`]).
    pub event: Option<Box<ConversationEvent>>,
    /// For a reply: its thread's first message (checked and found by the core).
    pub thread_root: Seq,
    /// For a forward: the original's author.
    pub forwarded_from: Option<UserId>,
}

impl AsRef<CommitItem> for CommitItem {
    fn as_ref(&self) -> &CommitItem {
        self
    }
}

/// The outcome of one item of a batch.
#[derive(Clone, Debug)]
pub struct Committed {
    /// The stored message (the original one for a duplicate).
    pub message: Message,
    /// True if an earlier send with the same client_msg_id was found.
    pub duplicate: bool,
}

/// The client_msg_id was already used by this sender for another conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("client_msg_id already used for conversation {0}")]
pub struct IdReused(pub ConversationId);

fn corrupt(detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        tree: "messages",
        detail: detail.to_string(),
    }
}

/// Every `CHECKPOINT`th seq of a conversation has its position in the index, so a read walks
/// back at most this many records before the first one it wants. The index lives in sled,
/// which keeps what it has loaded in memory: one entry per 1,024 messages keeps that to ~0.1
/// byte per message (it was 64, ~2 bytes per message, the server's only memory that grew with
/// the number of messages). A sync near the head starts from the head and walks nothing extra.
/// Stores indexed every 64 seqs stay readable: every multiple of 1,024 is one of 64.
const CHECKPOINT: u64 = 1024;
/// A new segment starts once the current one is this large.
const SEGMENT_BYTES: u64 = 256 << 20;
/// A snapshot (heads and replay position, after a sled flush) is taken once this much has been
/// appended since the last one: it bounds the replay after a crash.
const SNAPSHOT_BYTES: u64 = 16 << 20;

/// How many of a sender's latest messages a retry is recognised against. A session has at most
/// `max_inflight_sends` (at most this, see config.rs) unacknowledged sends, and the SDK re-sends
/// those first, oldest first, after a reconnect.
pub const IDEMPOTENCY_WINDOW: usize = 1024;
/// Most sends held in memory in all senders' windows (12 bytes each, and a window itself counts
/// as `WINDOW_COST` sends); beyond it the windows used least recently are dropped, and read back
/// from the log when their sender sends again. About 24 MiB.
const WINDOW_BUDGET: usize = 1 << 21;
/// What a window costs besides its sends (its map slot and smallest allocations, ~100 bytes), in
/// sends, so that many senders with short windows stay within the budget too.
const WINDOW_COST: usize = 8;
/// Version of the log's record format (the sender chain in the body is version 2).
const LOG_FORMAT: u64 = 2;

/// The newest durable message of a conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Head {
    seq: Seq,
    pos: u64,
}

const NO_HEAD: Head = Head {
    seq: Seq::ZERO,
    pos: NO_POS,
};

/// The committer's side of the log.
#[derive(Debug)]
struct Writer {
    segment: u32,
    file: std::sync::Arc<std::fs::File>,
    /// End of what is written.
    end: u64,
    /// Length of the segment's file: zeros from `end` to here, allocated ahead of the writer
    /// (`log::ALLOCATE_STEP`) so that a batch overwrites and does not grow the file.
    allocated: u64,
    /// Encoding buffer, reused.
    buf: Vec<u8>,
    /// The id the next message gets.
    next_id: u64,
    /// Position up to which records are durable and indexed, and the next id there.
    indexed: u64,
    indexed_next_id: u64,
    /// Conversations whose head moved since the last snapshot.
    dirty: FxHashSet<ConversationId>,
    /// Each sender's newest durable message (the head of its sender chain).
    sent_heads: FxHashMap<UserId, u64>,
    /// Senders whose chain head moved since the last snapshot.
    dirty_senders: FxHashSet<UserId>,
    /// Idempotency windows of recently active senders.
    windows: Windows,
    since_snapshot: u64,
    /// A new segment starts once the current one is this large.
    segment_bytes: u64,
}

/// The message log's state in memory: segment files, the durable head of every conversation
/// (a few dozen bytes per conversation, whatever the number of messages), the writer.
#[derive(Debug)]
pub(super) struct MessageLog {
    segments: Segments,
    heads: RwLock<FxHashMap<ConversationId, Head>>,
    writer: Mutex<Writer>,
    /// Held for the whole of a snapshot, so they run one at a time.
    snapshot: Mutex<()>,
}

/// One sender's latest sends, oldest first: a tag (32 bits of the client_msg_id's hash) and the
/// position of each. The tags are kept apart from the positions so that the check every send
/// makes (is this client_msg_id among the last 1,024?) is one pass over 4 KiB of tags, which
/// the compiler turns into vector compares; only a matching tag costs a read of the message.
#[derive(Debug, Default)]
struct Window {
    tags: VecDeque<u32>,
    positions: VecDeque<u64>,
    /// When it was last looked at (the writer's batch count).
    used: u64,
}

impl Window {
    fn len(&self) -> usize {
        self.tags.len()
    }

    fn push_back(&mut self, hash: u64, pos: u64) {
        self.tags.push_back(tag(hash));
        self.positions.push_back(pos);
    }

    fn push_front(&mut self, hash: u64, pos: u64) {
        self.tags.push_front(tag(hash));
        self.positions.push_front(pos);
    }

    fn pop_front(&mut self) {
        self.tags.pop_front();
        self.positions.pop_front();
    }

    /// Positions of the sends whose tag matches `hash`'s, newest first (almost always none;
    /// more than one only when different client_msg_ids share a tag).
    fn candidates(&self, hash: u64) -> Vec<u64> {
        let wanted = tag(hash);
        // No early exit: a plain OR over every tag, which the compiler vectorises.
        let any = |tags: &[u32]| tags.iter().fold(false, |any, &t| any | (t == wanted));
        let (front, back) = self.tags.as_slices();
        if !any(front) && !any(back) {
            return Vec::new();
        }
        (self.tags.iter().zip(&self.positions).rev())
            .filter(|(&t, _)| t == wanted)
            .map(|(_, &pos)| pos)
            .collect()
    }
}

fn tag(hash: u64) -> u32 {
    // The high half: FxHash's low bits are its weakest.
    (hash >> 32) as u32
}

/// The idempotency windows in memory.
#[derive(Debug)]
struct Windows {
    by_sender: FxHashMap<UserId, Window>,
    /// Sends held in all windows, plus `WINDOW_COST` per window.
    entries: usize,
    /// Batches written so far (the clock for `Window::used`).
    tick: u64,
    /// Sends per window.
    size: usize,
    /// Most sends held in all windows.
    budget: usize,
}

impl Windows {
    fn new() -> Windows {
        Windows {
            by_sender: FxHashMap::default(),
            entries: 0,
            tick: 0,
            size: IDEMPOTENCY_WINDOW,
            budget: WINDOW_BUDGET,
        }
    }

    /// Adds a durable send to its sender's window, if that window is in memory (one that is not
    /// is read back from the log, this send included).
    fn record(&mut self, sender: UserId, hash: u64, pos: u64) {
        if let Some(w) = self.by_sender.get_mut(&sender) {
            // Make room first, so a full window's buffer never grows past `size`.
            if w.len() >= self.size {
                w.pop_front();
                self.entries -= 1;
            }
            w.push_back(hash, pos);
            self.entries += 1;
        }
    }

    /// Drops the least recently used windows once the budget is exceeded, down to 3/4 of it.
    fn trim(&mut self) {
        if self.entries <= self.budget {
            return;
        }
        let mut by_age: Vec<(u64, UserId)> =
            self.by_sender.iter().map(|(s, w)| (w.used, *s)).collect();
        by_age.sort_unstable();
        for (_, sender) in by_age {
            if self.entries <= self.budget / 4 * 3 {
                break;
            }
            if let Some(w) = self.by_sender.remove(&sender) {
                self.entries -= w.len() + WINDOW_COST;
            }
        }
    }
}

fn cmid_hash(client_msg_id: &str) -> u64 {
    let mut h = rustc_hash::FxBuildHasher.build_hasher();
    h.write(client_msg_id.as_bytes());
    h.finish()
}

/// Splits a stored body into the sender chain's previous position and the encoded message.
fn split_body(body: &[u8]) -> Result<(u64, &[u8])> {
    let (prev, msg) = body
        .split_first_chunk::<8>()
        .ok_or_else(|| corrupt("record too short for a message"))?;
    Ok((u64::from_le_bytes(*prev), msg))
}

/// A batch written to the log but not yet durable: hand it to [`Store::make_durable`].
#[derive(Debug)]
pub struct PendingBatch {
    /// Checkpoints to index: (key, position).
    index: Vec<([u8; 17], u64)>,
    /// (sender, hash of the client_msg_id, position) of every new message.
    sent: Vec<(UserId, u64, u64)>,
    heads: Vec<(ConversationId, Head)>,
    end: u64,
    next_id: u64,
    bytes: u64,
    /// Entries of this batch that change state, applied when it is made durable.
    events: Vec<Message>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Checks the log format recorded in the index (recording it, if `record`, for a new log).
fn check_format(idx: &sled::Tree, record: bool) -> Result<()> {
    match idx.get(FORMAT)? {
        Some(v) if keys::decode_u64(&v, "messages")? == LOG_FORMAT => Ok(()),
        Some(v) => Err(corrupt(format!(
            "message log format {}, this server reads format {LOG_FORMAT}",
            keys::decode_u64(&v, "messages")?
        ))),
        None if idx.get(REPLAY_FROM)?.is_some() => Err(corrupt(
            "this data directory holds an older message log format (an older Parley); \
             start with a new data directory",
        )),
        // Durable with the snapshot that opening takes.
        None if record => {
            idx.insert(FORMAT, &LOG_FORMAT.to_be_bytes())?;
            Ok(())
        }
        None => Ok(()),
    }
}

fn decode_head(v: &[u8]) -> Result<Head> {
    let (seq, pos) = keys::decode_pair(v, "messages")?;
    Ok(Head { seq: Seq(seq), pos })
}

/// What reading the whole log found ([`replay`]).
struct Replay {
    heads: FxHashMap<ConversationId, Head>,
    sent_heads: FxHashMap<UserId, u64>,
    next_id: u64,
    /// Checkpoints of the records after the snapshot, to write to the index.
    index: Vec<([u8; 17], u64)>,
    dirty: FxHashSet<ConversationId>,
    dirty_senders: FxHashSet<UserId>,
    /// Records after the snapshot, and all records.
    replayed: u64,
    records: u64,
    /// Entries after the snapshot whose events change state.
    events: Vec<Message>,
    end: u64,
    /// Where a torn last batch starts (not acknowledged; cut at open, reported by a check).
    torn: Option<(u32, u64)>,
}

/// Reads the whole log: every record's checksum, every batch's end mark, and both chains of
/// every record (`seq = head + 1`, the back pointers equal the previous heads of its
/// conversation and its sender), from the first segment on. The heads it computes at the last
/// snapshot's position must equal the heads that snapshot recorded in `idx` (so a damaged or
/// foreign index is found), and the records after the snapshot are replayed: their checkpoints
/// and state-changing events collected. A torn last batch is cut if `cut`.
///
/// The records after the snapshot are decoded whole. Those before it are decoded only as far as
/// the chains need (ids, conversation, seq: [`Message::head_from_bytes`]) when opening; an
/// offline check (`cut` false) decodes every record whole, so that it also finds a record whose
/// checksum holds but which no longer decodes as a message.
fn replay(segments: &Segments, idx: &sled::Tree, cut: bool) -> Result<Replay> {
    let deep = !cut;
    let (from, snapshot_next_id) = match idx.get(REPLAY_FROM)? {
        Some(v) => keys::decode_pair(&v, "messages")?,
        None => (0, 1),
    };
    let mut snapshot_heads = FxHashMap::default();
    for kv in idx.scan_prefix(HEAD_PREFIX) {
        let (k, v) = kv?;
        let conv = keys::conversation(&k[1..], "messages")?;
        snapshot_heads.insert(conv, decode_head(&v)?);
    }
    let mut snapshot_senders = FxHashMap::default();
    for kv in idx.scan_prefix(SENT_PREFIX) {
        let (k, v) = kv?;
        let sender = keys::user(&k[1..], "messages")?;
        snapshot_senders.insert(sender, keys::decode_u64(&v, "messages")?);
    }
    let mut r = Replay {
        heads: FxHashMap::default(),
        sent_heads: FxHashMap::default(),
        next_id: 1,
        index: Vec::new(),
        dirty: FxHashSet::default(),
        dirty_senders: FxHashSet::default(),
        replayed: 0,
        records: 0,
        events: Vec::new(),
        end: 0,
        torn: None,
    };
    let mut compared = false;
    let compare = |r: &Replay| -> Result<()> {
        let (s, o) = (from >> 32, from & 0xffff_ffff);
        if r.heads != snapshot_heads || r.sent_heads != snapshot_senders {
            let differ = snapshot_heads
                .iter()
                .filter(|(c, h)| r.heads.get(c) != Some(h))
                .count()
                + r.heads
                    .keys()
                    .filter(|c| !snapshot_heads.contains_key(c))
                    .count();
            return Err(corrupt(format!(
                "the index's snapshot (at segment {s} offset {o}) disagrees with the message \
                 log about {differ} conversation heads and {} sender heads: store/ is damaged \
                 or belongs to another message log",
                r.sent_heads.len().abs_diff(snapshot_senders.len()).max(
                    snapshot_senders
                        .iter()
                        .filter(|(u, p)| r.sent_heads.get(u) != Some(p))
                        .count()
                )
            )));
        }
        if r.next_id > snapshot_next_id {
            return Err(corrupt(format!(
                "the index's snapshot says the next message id is {snapshot_next_id} but the log \
                 already holds message id {}: store/ is damaged",
                r.next_id - 1
            )));
        }
        Ok(())
    };
    let mut torn = None;
    r.end = segments.scan_checked(
        0,
        from,
        cut,
        &mut |segment, offset| torn = Some((segment, offset)),
        |pos, prev, record| {
            if !compared && pos >= from {
                compare(&r)?;
                r.next_id = snapshot_next_id;
                compared = true;
            }
            let (prev_sent, body) = split_body(record)?;
            let full = if deep || pos >= from {
                Some(Message::from_bytes(body).map_err(corrupt)?)
            } else {
                None
            };
            let m = match &full {
                Some(msg) => MessageHead {
                    id: msg.id,
                    conversation: msg.conversation,
                    seq: msg.seq,
                    sender: msg.sender,
                },
                None => Message::head_from_bytes(body).map_err(corrupt)?,
            };
            let head = r.heads.get(&m.conversation).copied().unwrap_or(NO_HEAD);
            if Some(m.seq.get()) != head.seq.get().checked_add(1) || prev != head.pos {
                return Err(corrupt(format!(
                    "conversation {} seq {} follows seq {} in the log",
                    m.conversation, m.seq, head.seq
                )));
            }
            if prev_sent != r.sent_heads.get(&m.sender).copied().unwrap_or(NO_POS) {
                return Err(corrupt(format!(
                    "message {} breaks the chain of sender {}",
                    m.id, m.sender
                )));
            }
            r.heads.insert(m.conversation, Head { seq: m.seq, pos });
            r.sent_heads.insert(m.sender, pos);
            r.next_id = r.next_id.max(
                m.id.get()
                    .checked_add(1)
                    .ok_or_else(|| corrupt("message id out of range"))?,
            );
            r.records += 1;
            if let (Some(msg), true) = (full, pos >= from) {
                index_message(&mut r.index, &msg, pos);
                r.dirty.insert(msg.conversation);
                r.dirty_senders.insert(msg.sender);
                r.replayed += 1;
                if msg.event.is_some() {
                    r.events.push(msg);
                }
            }
            Ok(())
        },
    )?;
    if !compared {
        compare(&r)?;
        r.next_id = snapshot_next_id;
    }
    r.torn = torn;
    Ok(r)
}

/// What an offline check of the message log found.
#[derive(Debug)]
pub(super) struct LogSummary {
    /// Records (messages and events) read and verified.
    pub records: u64,
    /// Conversations with entries, and their heads.
    pub heads: Vec<(ConversationId, Seq)>,
    /// Users who sent entries.
    pub senders: Vec<UserId>,
    /// The id the next message would get.
    pub next_id: u64,
    /// Where a torn last batch starts, if there is one (never acknowledged; cut at the next
    /// start).
    pub torn: Option<(u32, u64)>,
    /// Bytes of log.
    pub bytes: u64,
}

impl MessageLog {
    /// Opens the segments under `dir` and brings the index in `idx` up to date with them:
    /// verifies every record of the log (see [`replay`]), replays the ones after the last
    /// snapshot (cutting a torn tail).
    /// Returns the log and the replayed entries whose events change state, to be applied again
    /// (in log order) by the caller.
    pub(super) fn open(dir: &Path, idx: &sled::Tree) -> Result<(MessageLog, Vec<Message>)> {
        check_format(idx, true)?;
        let segments = Segments::open(dir)?;
        let started = tokio::time::Instant::now();
        let r = replay(&segments, idx, true)?;
        write_index(idx, r.index)?;
        tracing::info!(
            records = r.records,
            replayed = r.replayed,
            bytes = segments.size(),
            ms = started.elapsed().as_millis() as u64,
            "message log verified"
        );
        let segment = segments.last();
        let file = segments.file(segment)?;
        let end = r.end & 0xffff_ffff;
        let writer = Writer {
            segment,
            allocated: file.metadata()?.len().max(end),
            file,
            end,
            buf: Vec::new(),
            next_id: r.next_id,
            indexed: r.end,
            indexed_next_id: r.next_id,
            dirty: r.dirty,
            sent_heads: r.sent_heads,
            dirty_senders: r.dirty_senders,
            windows: Windows::new(),
            since_snapshot: 0,
            segment_bytes: SEGMENT_BYTES,
        };
        let log = MessageLog {
            segments,
            heads: RwLock::new(r.heads),
            writer: Mutex::new(writer),
            snapshot: Mutex::new(()),
        };
        Ok((log, r.events))
    }

    /// Verifies the log under `dir` against the index in `idx` as [`MessageLog::open`] does,
    /// changing nothing (a torn last batch is reported, not cut).
    pub(super) fn verify(dir: &Path, idx: &sled::Tree) -> Result<LogSummary> {
        check_format(idx, false)?;
        let segments = Segments::open(dir)?;
        let r = replay(&segments, idx, false)?;
        let mut heads: Vec<_> = r
            .heads
            .iter()
            .filter(|(_, h)| h.seq != Seq::ZERO)
            .map(|(c, h)| (*c, h.seq))
            .collect();
        heads.sort_unstable();
        let mut senders: Vec<_> = r.sent_heads.keys().copied().collect();
        senders.sort_unstable();
        Ok(LogSummary {
            records: r.records,
            heads,
            senders,
            next_id: r.next_id,
            torn: r.torn,
            bytes: segments.size(),
        })
    }

    /// Users who sent entries (the heads of their sender chains are known).
    pub(super) fn senders(&self) -> Vec<UserId> {
        lock(&self.writer).sent_heads.keys().copied().collect()
    }

    fn head(&self, conv: ConversationId) -> Head {
        self.heads
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&conv)
            .copied()
            .unwrap_or(NO_HEAD)
    }

    /// Size of the segment files.
    pub(super) fn size(&self) -> u64 {
        self.segments.size()
    }
}

/// The index entries of one message: every `CHECKPOINT` seqs, its position.
fn index_message(index: &mut Vec<([u8; 17], u64)>, msg: &Message, pos: u64) {
    if msg.seq.get() % CHECKPOINT == 0 {
        index.push((checkpoint(msg.conversation, msg.seq), pos));
    }
}

/// Writes checkpoints one by one, not as a sled batch: each `apply_batch` seals and writes
/// sled's IO buffer twice (sled 0.34 `pin_log`), so a batch per commit cost two buffer writes
/// and two IO-thread wake-ups for every commit, mostly with nothing in it. The entries need no
/// atomicity: each is derived from the log and rebuilt by replay after a crash.
fn write_index(idx: &sled::Tree, index: Vec<([u8; 17], u64)>) -> Result<()> {
    for (key, pos) in index {
        idx.insert(key, &pos.to_be_bytes()[..])?;
    }
    Ok(())
}

impl Store {
    /// Seq of the newest durable message of `conv` (0 if none).
    pub fn head(&self, conv: ConversationId) -> Result<Seq> {
        Ok(self.messages.head(conv).seq)
    }

    /// Where each conversation's newest entry is in the log (`None`: no entries), read under
    /// one lock. Log positions grow with every commit, so they order conversations by latest
    /// activity without reading any entry.
    pub fn activity(&self, convs: &[ConversationId]) -> Vec<(Seq, Option<u64>)> {
        let heads = self
            .messages
            .heads
            .read()
            .unwrap_or_else(|e| e.into_inner());
        convs
            .iter()
            .map(|c| match heads.get(c) {
                Some(h) if h.seq != Seq::ZERO => (h.seq, Some(h.pos)),
                _ => (Seq::ZERO, None),
            })
            .collect()
    }

    /// Every conversation with entries, with its head.
    pub fn conversation_heads(&self) -> Vec<(ConversationId, Seq)> {
        let heads = self
            .messages
            .heads
            .read()
            .unwrap_or_else(|e| e.into_inner());
        heads
            .iter()
            .filter(|(_, h)| h.seq != Seq::ZERO)
            .map(|(c, h)| (*c, h.seq))
            .collect()
    }

    /// The id the next message will get.
    pub fn next_message_id(&self) -> Result<u64> {
        Ok(lock(&self.messages.writer).indexed_next_id)
    }

    /// The message at `pos`, and the position of its sender's previous one.
    fn read_message(&self, pos: u64) -> Result<(Message, u64)> {
        let record = self.messages.segments.read(pos)?;
        let (prev_sent, body) = split_body(&record.body)?;
        let msg = Message::from_bytes(body).map_err(corrupt)?;
        Ok((msg, prev_sent))
    }

    /// Messages of `conv` with `after < seq <= upto`, oldest first: at most `limit` of them
    /// and, after the first, no more than `max_bytes` of encoded messages in all.
    pub fn messages(
        &self,
        conv: ConversationId,
        after: Seq,
        upto: Seq,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<Message>> {
        let head = self.messages.head(conv);
        let hi = upto
            .get()
            .min(head.seq.get())
            .min(after.get().saturating_add(limit as u64));
        if hi <= after.get() {
            return Ok(Vec::new());
        }
        // Start at the head or at the first checkpoint at or after `hi`, and walk back.
        let (mut seq, mut pos) = (head.seq.get(), head.pos);
        let mark = hi.div_ceil(CHECKPOINT).saturating_mul(CHECKPOINT);
        if mark < seq {
            let v = self
                .idx
                .get(checkpoint(conv, Seq(mark)))?
                .ok_or_else(|| corrupt(format!("no checkpoint {mark} of {conv}")))?;
            (seq, pos) = (mark, keys::decode_u64(&v, "messages")?);
        }
        let mut newest_first = Vec::with_capacity((hi - after.get()) as usize);
        while seq > after.get() {
            if pos == NO_POS {
                return Err(corrupt(format!("chain of {conv} ends before seq {seq}")));
            }
            let record = self.messages.segments.read(pos)?;
            if seq <= hi {
                newest_first.push(record.body);
            }
            pos = record.prev;
            seq -= 1;
        }
        let mut out = Vec::with_capacity(newest_first.len());
        let mut bytes = 0;
        for body in newest_first.into_iter().rev() {
            let (_, body) = split_body(&body)?;
            bytes += body.len();
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            let msg = Message::from_bytes(body).map_err(corrupt)?;
            if msg.conversation != conv || msg.seq.get() != after.get() + 1 + out.len() as u64 {
                return Err(corrupt(format!(
                    "chain of {conv} led to {} seq {}",
                    msg.conversation, msg.seq
                )));
            }
            out.push(msg);
        }
        Ok(out)
    }

    /// The message `sender` sent with `client_msg_id`, if it is among its last
    /// [`IDEMPOTENCY_WINDOW`] messages. Loads the sender's window from the log if it is not in
    /// memory.
    fn find_duplicate(
        &self,
        w: &mut Writer,
        sender: UserId,
        client_msg_id: &str,
        hash: u64,
    ) -> Result<Option<Message>> {
        let tick = w.windows.tick;
        let window = match w.windows.by_sender.entry(sender) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let head = w.sent_heads.get(&sender).copied().unwrap_or(NO_POS);
                let window = self.load_window(sender, head, w.windows.size)?;
                w.windows.entries += window.len() + WINDOW_COST;
                e.insert(window)
            }
        };
        window.used = tick;
        for pos in window.candidates(hash) {
            let (msg, _) = self.read_message(pos)?;
            if msg.sender != sender {
                return Err(corrupt(
                    "idempotency window points at another sender's message",
                ));
            }
            if msg.client_msg_id.as_str() == client_msg_id {
                return Ok(Some(msg));
            }
        }
        Ok(None)
    }

    /// Reads a sender's window back from its chain: the last `size` messages from `head` on.
    fn load_window(&self, sender: UserId, mut pos: u64, size: usize) -> Result<Window> {
        let mut sends = Window::default();
        while pos != NO_POS && sends.len() < size {
            let (msg, prev_sent) = self.read_message(pos)?;
            if msg.sender != sender {
                return Err(corrupt(format!(
                    "the chain of sender {sender} leads to a message of {}",
                    msg.sender
                )));
            }
            sends.push_front(cmid_hash(msg.client_msg_id.as_str()), pos);
            pos = prev_sent;
        }
        Ok(sends)
    }

    /// Assigns seqs and ids to a batch and appends it to the log (not yet durable: pass the
    /// returned [`PendingBatch`] to [`Store::make_durable`] before acknowledging anything, and
    /// before the next call).
    ///
    /// The single committer is the only caller, which is what makes seqs gapless without
    /// locks. Returns one outcome per item, in order.
    #[allow(clippy::type_complexity)]
    pub fn commit_batch<T: AsRef<CommitItem>>(
        &self,
        items: &[T],
        now_ms: u64,
    ) -> Result<(Vec<std::result::Result<Committed, IdReused>>, PendingBatch)> {
        let mut guard = lock(&self.messages.writer);
        let w = &mut *guard;
        if w.end >= w.segment_bytes {
            let segment = w.segment + 1;
            w.file = self.messages.segments.create(segment)?;
            w.segment = segment;
            w.end = 0;
            w.allocated = 0;
        }
        w.buf.clear();
        let mut in_batch: FxHashMap<(UserId, &str), usize> = FxHashMap::default();
        let mut batch_heads: FxHashMap<ConversationId, Head> = FxHashMap::default();
        w.windows.tick += 1;
        let mut batch_sent: FxHashMap<UserId, u64> = FxHashMap::default();
        let mut index = Vec::new();
        let mut sent = Vec::with_capacity(items.len());
        let mut events = Vec::new();
        let mut out: Vec<std::result::Result<Committed, IdReused>> =
            Vec::with_capacity(items.len());
        // Ids count only once the batch is written.
        let mut next_id = w.next_id;
        for (i, item) in items.iter().enumerate() {
            let item = item.as_ref();
            let req = &item.request;
            let cmid = req.client_msg_id.as_str();
            let hash = cmid_hash(cmid);
            let earlier = match in_batch.get(&(item.sender, cmid)) {
                Some(&j) => match &out[j] {
                    Ok(c) => Some(c.message.clone()),
                    Err(e) => return Err(corrupt(format!("batch dedup chain: {e}"))),
                },
                None => self.find_duplicate(w, item.sender, cmid, hash)?,
            };
            if let Some(original) = earlier {
                // A retry is the same kind of entry in the same conversation: a key that named a
                // message cannot answer for an event, nor one event for another.
                let same =
                    original.conversation == req.conversation && original.event == item.event;
                out.push(if same {
                    Ok(Committed {
                        message: original,
                        duplicate: true,
                    })
                } else {
                    Err(IdReused(original.conversation))
                });
                continue;
            }
            let prev = match batch_heads.get(&req.conversation) {
                Some(h) => *h,
                None => self.messages.head(req.conversation),
            };
            let seq = Seq(prev
                .seq
                .get()
                .checked_add(1)
                .ok_or_else(|| corrupt("seq overflow"))?);
            let id = MessageId::try_from(next_id).map_err(corrupt)?;
            next_id = next_id
                .checked_add(1)
                .ok_or_else(|| corrupt("id overflow"))?;
            let msg = Message {
                id,
                conversation: req.conversation,
                seq,
                sender: item.sender,
                sender_device: item.sender_device.clone(),
                content_type: req.content_type,
                content: req.content.clone(),
                client_msg_id: req.client_msg_id.clone(),
                server_time_ms: now_ms,
                reply_to: req.reply_to,
                mentions: req.mentions.clone(),
                event: item.event.clone(),
                amended: None,
                thread_root: item.thread_root,
                forwarded_from: item.forwarded_from,
                mention_all: req.mention_all,
            };
            let prev_sent = match batch_sent.get(&item.sender) {
                Some(&p) => p,
                None => w.sent_heads.get(&item.sender).copied().unwrap_or(NO_POS),
            };
            let at = w.buf.len();
            w.buf.resize(at + HEADER, 0);
            w.buf.extend_from_slice(&prev_sent.to_le_bytes());
            msg.encode_into(&mut w.buf);
            seal_record(&mut w.buf, at, prev.pos);
            let pos = log::pos(w.segment, w.end + at as u64);
            index_message(&mut index, &msg, pos);
            batch_heads.insert(req.conversation, Head { seq, pos });
            batch_sent.insert(item.sender, pos);
            sent.push((item.sender, hash, pos));
            in_batch.insert((item.sender, cmid), i);
            if msg.event.is_some() {
                events.push(msg.clone());
            }
            out.push(Ok(Committed {
                message: msg,
                duplicate: false,
            }));
        }
        if !w.buf.is_empty() {
            let start = log::pos(w.segment, w.end);
            push_end_mark(&mut w.buf, start);
        }
        let too_large = w.end + w.buf.len() as u64 > u64::from(u32::MAX);
        if too_large {
            // Cannot happen with a valid configuration (config.rs bounds a batch to 2 GiB and a
            // segment rolls at 256 MiB); refuse rather than write positions that would wrap.
            return Err(corrupt("batch does not fit in a log segment"));
        }
        let written = w.end + w.buf.len() as u64;
        let wrote = w.file.write_all_at(&w.buf, w.end).and_then(|()| {
            if written > w.allocated {
                // Allocate ahead: zeros up to the next step, written now so that the next
                // batches overwrite them (see log.rs).
                let to = written.div_ceil(log::ALLOCATE_STEP) * log::ALLOCATE_STEP;
                let zeros = vec![0u8; usize::try_from(to - written).unwrap_or(0)];
                w.file.write_all_at(&zeros, written)?;
                w.allocated = to;
            }
            Ok(())
        });
        if let Err(e) = wrote {
            // Nothing of this batch counts: cut what may have been written (its seqs and ids
            // were never published).
            let _ = w.file.set_len(w.end);
            w.allocated = w.end;
            return Err(e.into());
        }
        w.end += w.buf.len() as u64;
        w.next_id = next_id;
        let pending = PendingBatch {
            index,
            sent,
            heads: batch_heads.into_iter().collect(),
            end: log::pos(w.segment, w.end),
            next_id,
            bytes: w.buf.len() as u64,
            events,
        };
        Ok((out, pending))
    }

    /// Makes a batch from [`Store::commit_batch`] durable (fdatasync of the segment), then
    /// indexes it and publishes the new heads to readers. Only after this returns may the batch
    /// be acknowledged.
    pub fn make_durable(&self, pending: PendingBatch) -> Result<()> {
        {
            let mut w = lock(&self.messages.writer);
            w.file.sync_data()?;
            self.count_writes(pending.sent.len() + pending.index.len() + pending.events.len());
            write_index(&self.idx, pending.index)?;
            // State changes of events are applied before `indexed` moves past them, under the
            // writer's lock: a snapshot that records a replay position after an event has
            // therefore flushed its change, and one that records an earlier position replays
            // the event (and applies it again) after a crash.
            for event in &pending.events {
                self.apply_event(event)?;
            }
            for (sender, hash, pos) in pending.sent {
                w.sent_heads.insert(sender, pos);
                w.dirty_senders.insert(sender);
                w.windows.record(sender, hash, pos);
            }
            w.windows.trim();
            let mut heads = self
                .messages
                .heads
                .write()
                .unwrap_or_else(|e| e.into_inner());
            for (conv, head) in pending.heads {
                heads.insert(conv, head);
                w.dirty.insert(conv);
            }
            drop(heads);
            w.indexed = pending.end;
            w.indexed_next_id = pending.next_id;
            w.since_snapshot += pending.bytes;
        }
        Ok(())
    }

    /// Forgets every sender's idempotency window, as a restart does: each is read back from the
    /// log on its sender's next send. For benchmarks of that cost.
    pub fn forget_idempotency_windows(&self) {
        let mut w = lock(&self.messages.writer);
        w.windows.by_sender.clear();
        w.windows.entries = 0;
    }

    /// True once enough has been appended since the last snapshot that one should be taken
    /// ([`Store::sync`], off the committer's thread): it bounds the replay after a crash to about
    /// `SNAPSHOT_BYTES` of log.
    pub fn snapshot_due(&self) -> bool {
        lock(&self.messages.writer).since_snapshot >= SNAPSHOT_BYTES
    }

    /// Part of [`Store::sync`]: makes the log durable and, once sled's own flush (`flush_index`)
    /// has made every index entry so far durable, records a snapshot (replay position, next id,
    /// moved heads). The snapshot itself becomes durable with the next flush; until then the
    /// previous one is where a replay starts, which is only longer, never wrong.
    ///
    /// The writer is locked only to capture what the snapshot records, not across the flushes,
    /// so the committer keeps committing meanwhile. Snapshots run one at a time.
    pub(super) fn sync_log(&self, flush_index: impl FnOnce() -> Result<()>) -> Result<()> {
        let _one_at_a_time = lock(&self.messages.snapshot);
        let mut batch = sled::Batch::default();
        let (file, dirty, dirty_senders) = {
            let mut w = lock(&self.messages.writer);
            let w = &mut *w;
            // Heads as of `indexed`: make_durable publishes heads and moves `indexed` under
            // this lock, so they are consistent with the replay position recorded here.
            let heads = self
                .messages
                .heads
                .read()
                .unwrap_or_else(|e| e.into_inner());
            for conv in &w.dirty {
                let head = heads.get(conv).copied().unwrap_or(NO_HEAD);
                batch.insert(&keys::head(*conv)[..], &pair(head.seq.get(), head.pos)[..]);
            }
            for sender in &w.dirty_senders {
                let pos = w.sent_heads.get(sender).copied().unwrap_or(NO_POS);
                batch.insert(&sent_head(*sender)[..], &pos.to_be_bytes()[..]);
            }
            batch.insert(REPLAY_FROM, &pair(w.indexed, w.indexed_next_id)[..]);
            w.since_snapshot = 0;
            (
                w.file.clone(),
                std::mem::take(&mut w.dirty),
                std::mem::take(&mut w.dirty_senders),
            )
        };
        let written = (|| {
            file.sync_data()?;
            flush_index()?;
            self.idx.apply_batch(batch)?;
            Ok(())
        })();
        if written.is_err() {
            // Not recorded: these heads must go into the next snapshot.
            let mut w = lock(&self.messages.writer);
            w.dirty.extend(dirty);
            w.dirty_senders.extend(dirty_senders);
        }
        written
    }

    /// After [`Store::commit_batch`] failed: makes sure nothing of the failed batch stays in the
    /// segment past the writer's end, so the next batch starts where the log is sound.
    /// `commit_batch` cuts the file itself but cannot report a failed cut; this retries it (the
    /// store's health thread calls it before it lets writes resume). Ids and seqs need no
    /// rollback: `commit_batch` moves the writer's end and next id only after a write that
    /// succeeded, and only `make_durable` publishes heads and records senders' chains, so the
    /// next batch takes the same seqs and ids, none of which anyone was ever given.
    /// (A failed write also gave up the segment's allocation ahead of `end`: the cut leaves
    /// none, and the next batch allocates again.)
    pub(crate) fn settle_failed_write(&self) -> Result<()> {
        let mut w = lock(&self.messages.writer);
        if w.file.metadata()?.len() > w.end {
            w.file.set_len(w.end)?;
            w.allocated = w.end;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use parley_protocol::frames::ContentType;
    use parley_protocol::ids::ClientMsgId;

    use super::super::test_util::{reopen, temp_store};
    use super::*;

    #[test]
    fn window_candidates_are_every_matching_tag_newest_first() {
        // Tags repeat every 7 sends; the ring wraps (two slices) and the lengths cross chunk
        // boundaries, so every part of the scan is exercised against a plain filter.
        let hash = |i: u64| ((i % 7) << 32) | i;
        let mut w = Window::default();
        for n in 0..300u64 {
            if w.len() >= 100 {
                w.pop_front();
            }
            w.push_back(hash(n), 1000 + n);
            for wanted in 0..8u64 {
                let expect: Vec<u64> = w
                    .tags
                    .iter()
                    .zip(&w.positions)
                    .rev()
                    .filter(|(t, _)| **t == tag(hash(wanted)))
                    .map(|(_, p)| *p)
                    .collect();
                assert_eq!(
                    w.candidates(hash(wanted)),
                    expect,
                    "after {n}, tag of {wanted}"
                );
            }
        }
        let (front, back) = w.tags.as_slices();
        assert!(!front.is_empty() && !back.is_empty(), "the ring wrapped");
        assert_eq!(w.candidates(hash(7) ^ (99 << 32)), Vec::<u64>::new());
    }

    fn item(sender: u64, conv: u64, cmid: &str) -> CommitItem {
        CommitItem {
            sender: UserId::try_from(sender).unwrap(),
            sender_device: DeviceId::try_from("d").unwrap(),
            request: SendRequest {
                conversation: ConversationId::try_from(conv).unwrap(),
                content_type: ContentType::Text,
                content: Bytes::from_static(b"hi"),
                client_msg_id: ClientMsgId::try_from(cmid).unwrap(),
                reply_to: Seq::ZERO,
                mentions: vec![],
                mention_all: false,
            },
            event: None,
            thread_root: Default::default(),
            forwarded_from: None,
        }
    }

    type Outcomes = Vec<std::result::Result<Committed, IdReused>>;

    /// Commits `batch` the way the committer does, durable before returning.
    fn commit(store: &Store, batch: &[CommitItem], now: u64) -> Outcomes {
        let (out, pending) = store.commit_batch(batch, now).unwrap();
        store.make_durable(pending).unwrap();
        out
    }

    fn seqs(page: &[Message]) -> Vec<u64> {
        page.iter().map(|m| m.seq.get()).collect()
    }

    fn conv(n: u64) -> ConversationId {
        ConversationId::try_from(n).unwrap()
    }

    #[test]
    fn seqs_are_gapless_and_sends_idempotent() {
        let (dir, store) = temp_store();
        let out = commit(
            &store,
            &[
                item(1, 10, "a"),
                item(2, 10, "b"),
                item(1, 10, "a"),
                item(1, 11, "c"),
            ],
            5,
        );
        let assigned: Vec<_> = out
            .iter()
            .map(|o| o.as_ref().unwrap().message.seq.get())
            .collect();
        assert_eq!(assigned, vec![1, 2, 1, 1]);
        assert!(out[2].as_ref().unwrap().duplicate);
        assert_eq!(
            out[0].as_ref().unwrap().message.id,
            out[2].as_ref().unwrap().message.id
        );
        close(store);

        // After reopening: the counter and heads continue, duplicates are still recognised,
        // and reuse for another conversation is refused.
        let store = reopen(dir.path()).unwrap();
        assert_eq!(store.next_message_id().unwrap(), 4);
        let out = commit(
            &store,
            &[item(1, 10, "a"), item(3, 10, "d"), item(1, 12, "c")],
            6,
        );
        assert!(out[0].as_ref().unwrap().duplicate);
        assert_eq!(out[1].as_ref().unwrap().message.seq, Seq(3));
        assert_eq!(out[1].as_ref().unwrap().message.id.get(), 4);
        assert_eq!(out[2].as_ref().unwrap_err().0.get(), 11);
        let c = conv(10);
        assert_eq!(store.head(c).unwrap(), Seq(3));
        let page = store.messages(c, Seq(1), Seq(3), 10, 1 << 20).unwrap();
        assert_eq!(seqs(&page), vec![2, 3]);
        assert_eq!(page[1].client_msg_id.as_str(), "d");
        assert_eq!(
            store.messages(c, Seq(0), Seq(3), 1, 1 << 20).unwrap().len(),
            1
        );
        // The byte budget stops a page early, but never before its first message.
        assert_eq!(store.messages(c, Seq(0), Seq(3), 10, 1).unwrap().len(), 1);
    }

    #[test]
    fn a_batch_is_invisible_until_durable() {
        let (_dir, store) = temp_store();
        let (_, pending) = store.commit_batch(&[item(1, 10, "a")], 1).unwrap();
        assert_eq!(store.head(conv(10)).unwrap(), Seq::ZERO);
        assert!(store
            .messages(conv(10), Seq(0), Seq(1), 10, 1 << 20)
            .unwrap()
            .is_empty());
        store.make_durable(pending).unwrap();
        assert_eq!(store.head(conv(10)).unwrap(), Seq(1));
    }

    #[test]
    fn pages_are_exact_across_checkpoints_and_segments() {
        let (dir, store) = temp_store();
        lock(&store.messages.writer).segment_bytes = 4096;
        // Two conversations interleaved, n messages each (past three checkpoints), in
        // batches of 100.
        const C: u64 = CHECKPOINT;
        let n = 3 * C + 128;
        for b in 0..(2 * n / 100) {
            let batch: Vec<_> = (0..100)
                .map(|i| {
                    let k = b * 100 + i;
                    item(1, 20 + k % 2, &format!("m{k}"))
                })
                .collect();
            commit(&store, &batch, 7);
        }
        assert!(store.messages.segments.last() > 2, "the log rolled over");
        let check = |store: &Store| {
            for (after, upto, limit) in [
                (0, n, 5000),
                (0, n, 10),
                (C - 1, C, 5),
                (C, 2 * C + 7, 7),
                (C + 100, 2 * C, 5000),
                (2 * C - 3, 2 * C + 3, 1000),
                (n - 50, n, 1000),
                (n - 1, n, 1),
                (n, n, 1),
                (5, 3, 10),
            ] {
                let page = store
                    .messages(conv(21), Seq(after), Seq(upto), limit as usize, 1 << 20)
                    .unwrap();
                let want: Vec<u64> = (after + 1..=upto).take(limit as usize).collect();
                // Not assert_eq: the pages are thousands of seqs long.
                assert!(
                    seqs(&page) == want,
                    "after {after} upto {upto} limit {limit}: got {} seqs",
                    page.len()
                );
                assert!(page.iter().all(|m| m.conversation == conv(21)));
            }
        };
        check(&store);
        close(store);
        let store = reopen(dir.path()).unwrap();
        check(&store);
        assert_eq!(store.head(conv(20)).unwrap(), Seq(n));
        assert_eq!(store.next_message_id().unwrap(), 2 * n + 1);
    }

    #[test]
    fn the_index_is_rebuilt_from_the_log_after_a_crash() {
        let (dir, store) = temp_store();
        commit(&store, &[item(1, 10, "first")], 1); // takes a snapshot
        commit(&store, &[item(1, 10, "second"), item(2, 10, "third")], 2);
        // A crash before a snapshot: the idempotency windows (memory) and the newer heads and
        // sender chain heads are lost, the log is not.
        let segment = store.messages.segments.file(0).unwrap();
        let end = segment.metadata().unwrap().len();
        close(store);
        // And a batch whose write was torn: garbage after the last good record.
        segment.write_all_at(&[0x55; 40], end).unwrap();
        drop(segment);

        let store = reopen(dir.path()).unwrap();
        assert_eq!(store.head(conv(10)).unwrap(), Seq(3));
        assert_eq!(store.next_message_id().unwrap(), 4);
        let out = commit(
            &store,
            &[
                item(2, 10, "third"),
                item(1, 10, "second"),
                item(3, 10, "x"),
            ],
            3,
        );
        assert!(
            out[0].as_ref().unwrap().duplicate,
            "a retry after the crash is recognised"
        );
        assert_eq!(out[1].as_ref().unwrap().message.seq, Seq(2));
        assert_eq!(out[2].as_ref().unwrap().message.seq, Seq(4));
        let page = store
            .messages(conv(10), Seq(0), Seq(4), 10, 1 << 20)
            .unwrap();
        assert_eq!(seqs(&page), vec![1, 2, 3, 4]);
    }

    #[test]
    fn retries_are_recognised_within_the_senders_window() {
        let (dir, store) = temp_store();
        lock(&store.messages.writer).windows.size = 4;
        lock(&store.messages.writer).segment_bytes = 128;
        // Sender 1 sends m0..m5 one batch at a time (several segments), sender 2 in between.
        for n in 0..6 {
            commit(&store, &[item(1, 10 + n % 2, &format!("m{n}"))], 1);
            commit(&store, &[item(2, 10, &format!("m{n}"))], 1);
        }
        assert!(store.messages.segments.last() > 2, "the log rolled over");
        let check = |store: &Store| {
            // m2..m5 are the last four: retries; m0 and m1 have left the window.
            let out = commit(store, &[item(1, 11, "m5"), item(1, 10, "m2")], 2);
            assert!(out.iter().all(|o| o.as_ref().unwrap().duplicate));
            assert_eq!(out[0].as_ref().unwrap().message.seq, Seq(3));
            assert_eq!(out[1].as_ref().unwrap().message.seq, Seq(4));
            // Reusing m3's id for another conversation is refused while m3 is in the window.
            let out = commit(store, &[item(1, 12, "m3")], 2);
            assert_eq!(out[0].as_ref().unwrap_err().0, conv(11));
        };
        check(&store);
        // Cold: the windows are read back along the sender chains.
        lock(&store.messages.writer).windows = Windows::new();
        lock(&store.messages.writer).windows.size = 4;
        check(&store);
        // And after a restart without a snapshot (a replay) and with one.
        close(store);
        let store = reopen(dir.path()).unwrap();
        lock(&store.messages.writer).windows.size = 4;
        check(&store);
        store.sync().unwrap();
        close(store);
        let store = reopen(dir.path()).unwrap();
        lock(&store.messages.writer).windows.size = 4;
        check(&store);
        // Outside the window a client_msg_id counts as new.
        assert_eq!(store.head(conv(10)).unwrap(), Seq(9));
        let out = commit(&store, &[item(1, 10, "m0")], 3);
        assert!(!out[0].as_ref().unwrap().duplicate);
        assert_eq!(out[0].as_ref().unwrap().message.seq, Seq(10));
        // Sender 2's window is its own.
        let out = commit(&store, &[item(2, 10, "m5"), item(2, 10, "m1")], 3);
        assert!(out[0].as_ref().unwrap().duplicate);
        assert!(!out[1].as_ref().unwrap().duplicate);
    }

    #[test]
    fn windows_stay_within_their_budget_and_reload() {
        let (_dir, store) = temp_store();
        lock(&store.messages.writer).windows.budget = 3 * (WINDOW_COST + 2);
        for round in 0..3 {
            let batch: Vec<_> = (1..=6)
                .map(|sender| item(sender, 100 + sender, &format!("r{round}")))
                .collect();
            commit(&store, &batch, 1);
            let w = lock(&store.messages.writer);
            assert!(
                w.windows.entries <= w.windows.budget,
                "{}",
                w.windows.entries
            );
            assert!(w.windows.by_sender.len() < 6, "some windows were dropped");
            let held: usize = w
                .windows
                .by_sender
                .values()
                .map(|w| w.len() + WINDOW_COST)
                .sum();
            assert_eq!(held, w.windows.entries);
        }
        // Every sender's sends are still recognised, evicted windows read back from the log.
        let batch: Vec<_> = (1..=6)
            .flat_map(|sender| (0..3).map(move |r| item(sender, 100 + sender, &format!("r{r}"))))
            .collect();
        let out = commit(&store, &batch, 2);
        assert!(out.iter().all(|o| o.as_ref().unwrap().duplicate));
    }

    #[test]
    fn a_snapshot_records_one_point_while_the_committer_goes_on() {
        let (dir, store) = temp_store();
        commit(&store, &[item(1, 10, "a"), item(2, 11, "b")], 1);
        // The committer commits while the snapshot flushes (the writer is not locked then).
        store
            .sync_log(|| {
                commit(&store, &[item(1, 10, "c"), item(3, 12, "d")], 2);
                store.db.flush()?;
                Ok(())
            })
            .unwrap();
        commit(&store, &[item(1, 11, "e")], 3);
        close(store);
        let store = reopen(dir.path()).unwrap();
        for (c, seq) in [(10, 2), (11, 2), (12, 1)] {
            assert_eq!(store.head(conv(c)).unwrap(), Seq(seq), "conversation {c}");
        }
        let out = commit(
            &store,
            &[item(1, 10, "c"), item(1, 10, "a"), item(1, 10, "f")],
            4,
        );
        assert!(out[0].as_ref().unwrap().duplicate && out[1].as_ref().unwrap().duplicate);
        assert_eq!(out[2].as_ref().unwrap().message.seq, Seq(3));
    }

    #[test]
    fn a_failed_snapshot_leaves_its_heads_to_the_next() {
        let (dir, store) = temp_store();
        commit(&store, &[item(1, 10, "a")], 1);
        let failed = store.sync_log(|| Err(corrupt("flush failed (test)")));
        assert!(failed.is_err());
        commit(&store, &[item(2, 11, "b")], 2);
        store.sync().unwrap();
        // A crash after the second snapshot: the replay starts after both messages, so
        // conversation 10's head must be in that snapshot.
        close(store);
        let store = reopen(dir.path()).unwrap();
        assert_eq!(store.head(conv(10)).unwrap(), Seq(1));
        assert_eq!(store.head(conv(11)).unwrap(), Seq(1));
        let out = commit(&store, &[item(1, 10, "a"), item(1, 10, "c")], 3);
        assert!(out[0].as_ref().unwrap().duplicate);
        assert_eq!(out[1].as_ref().unwrap().message.seq, Seq(2));
    }

    #[test]
    fn damage_before_the_last_snapshot_refuses_to_open() {
        let (dir, store) = temp_store();
        let out = commit(&store, &[item(1, 10, "a"), item(2, 11, "b")], 1);
        let first = out[0].as_ref().unwrap().message.clone();
        commit(&store, &[item(1, 10, "c")], 2);
        store.sync().unwrap();
        let segment = store.messages.segments.file(0).unwrap();
        close(store);
        // A flipped byte in the first record's message, well before the snapshot.
        let mut byte = [0u8; 1];
        let at = HEADER as u64 + 8 + 2;
        segment.read_exact_at(&mut byte, at).unwrap();
        segment.write_all_at(&[byte[0] ^ 0x40], at).unwrap();
        let len = segment.metadata().unwrap().len();
        match reopen(dir.path()) {
            Err(StoreError::Corrupt { detail, .. }) => {
                assert!(detail.contains("segment 0"), "{detail}");
                assert!(detail.contains("before the last snapshot"), "{detail}");
            }
            other => panic!("opened a damaged log: {other:?}"),
        }
        assert_eq!(segment.metadata().unwrap().len(), len, "nothing was cut");
        // Repaired, it opens and reads back.
        segment.write_all_at(&byte, at).unwrap();
        let store = reopen(dir.path()).unwrap();
        let page = store
            .messages(conv(10), Seq(0), Seq(2), 10, 1 << 20)
            .unwrap();
        assert_eq!(page[0].id, first.id);
        assert_eq!(seqs(&page), vec![1, 2]);
    }

    #[test]
    fn a_snapshot_that_disagrees_with_the_log_refuses_to_open() {
        for damage in ["head", "sender", "next id"] {
            let (dir, store) = temp_store();
            commit(&store, &[item(1, 10, "a"), item(2, 11, "b")], 1);
            store.sync().unwrap();
            match damage {
                "head" => {
                    let v = store.idx.get(keys::head(conv(10))).unwrap().unwrap();
                    let (seq, pos) = keys::decode_pair(&v, "t").unwrap();
                    store
                        .idx
                        .insert(keys::head(conv(10)), &pair(seq + 1, pos)[..])
                        .unwrap();
                }
                "sender" => {
                    store
                        .idx
                        .remove(sent_head(UserId::try_from(2).unwrap()))
                        .unwrap();
                }
                _ => {
                    let v = store.idx.get(REPLAY_FROM).unwrap().unwrap();
                    let (from, _) = keys::decode_pair(&v, "t").unwrap();
                    store.idx.insert(REPLAY_FROM, &pair(from, 2)[..]).unwrap();
                }
            }
            close(store);
            assert!(
                matches!(reopen(dir.path()), Err(StoreError::Corrupt { .. })),
                "a snapshot with a wrong {damage} opened"
            );
        }
    }

    #[test]
    fn an_older_log_format_is_refused() {
        let (dir, store) = temp_store();
        commit(&store, &[item(1, 10, "a")], 1);
        store.idx.remove(FORMAT).unwrap();
        close(store);
        let err = reopen(dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("older message log format"),
            "{err}"
        );
    }

    #[test]
    fn membership_events_take_a_seq_are_applied_and_replayed_after_a_crash() {
        use parley_protocol::frames::ConversationEvent;
        let (dir, store) = temp_store();
        let u = |n| UserId::try_from(n).unwrap();
        let name = parley_protocol::values::GroupName::try_from("g").unwrap();
        let g = store
            .create_group(u(1), &name, &[u(2)], Default::default(), 0)
            .unwrap();
        let mut change = item(1, g.get(), "change-1");
        change.request.content = Bytes::new();
        change.request.content_type = ContentType::System;
        change.event = Some(Box::new(ConversationEvent::Membership {
            added: vec![u(3)],
            removed: vec![u(2)],
        }));
        let out = commit(&store, &[item(1, g.get(), "m"), change.clone()], 1);
        let entry = &out[1].as_ref().unwrap().message;
        assert_eq!(
            entry.seq,
            Seq(2),
            "the event takes the conversation's next seq"
        );
        let members = |store: &Store| -> Vec<(u64, u64)> {
            let m = store.members_of(g).unwrap().unwrap();
            m.list.iter().map(|(u, r)| (u.get(), r.from_seq)).collect()
        };
        assert_eq!(
            members(&store),
            vec![(1, 1), (3, 2)],
            "applied when durable"
        );
        // A retry is the same entry, not a second change.
        let again = commit(&store, &[change], 2);
        assert!(again[0].as_ref().unwrap().duplicate);
        assert_eq!(store.head(g).unwrap(), Seq(2));

        // A crash after the log was made durable but before sled kept the change: sled holds
        // the old membership, the log the event.
        store.change_members(g, &[u(2)], &[u(3)], Seq(1)).unwrap();
        close(store);
        let store = reopen(dir.path()).unwrap();
        assert_eq!(
            members(&store),
            vec![(1, 1), (3, 2)],
            "replayed from the log"
        );
        let page = store.messages(g, Seq(0), Seq(2), 10, 1 << 20).unwrap();
        assert_eq!(
            page[1].event, entry.event,
            "the event reads back from the log"
        );
    }

    /// Drops the store like a crash after sled's last background flush: no snapshot, so the
    /// next open replays the log. (The flush also means no sled IO is still in flight, which
    /// would hold sled's file lock for a moment after the drop.)
    fn close(store: Store) {
        store.db.flush().unwrap();
        drop(store);
    }
}
