//! The message log: messages in append-only segment files of our own ([`super::log`]); sled
//! (checkpoints, snapshots of the heads) and fjall (the idempotency index) keep what is needed
//! to find them, written after the records are durable and rebuilt from the log after a crash.
use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Mutex, RwLock};

use parley_protocol::frames::{Message, SendRequest};
use parley_protocol::ids::{ConversationId, DeviceId, MessageId, Seq, UserId};

use rustc_hash::{FxHashMap, FxHashSet};

use super::keys::{self, checkpoint, dedup, pair, HEAD_PREFIX, REPLAY_FROM};
use super::log::{self, push_end_mark, seal_record, Segments, HEADER, NO_POS};
use super::{Result, Store, StoreError};

/// One send waiting to be committed.
#[derive(Clone, Debug)]
pub struct CommitItem {
    /// Who sends.
    pub sender: UserId,
    /// From which device.
    pub sender_device: DeviceId,
    /// What.
    pub request: SendRequest,
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
/// back at most this many records before the first one it wants.
const CHECKPOINT: u64 = 64;
/// A new segment starts once the current one is this large.
const SEGMENT_BYTES: u64 = 256 << 20;
/// A snapshot (heads and replay position, after a sled flush) is taken once this much has been
/// appended since the last one: it bounds the replay after a crash.
const SNAPSHOT_BYTES: u64 = 16 << 20;

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
    /// Encoding buffer, reused.
    buf: Vec<u8>,
    /// The id the next message gets.
    next_id: u64,
    /// Position up to which records are durable and indexed, and the next id there.
    indexed: u64,
    indexed_next_id: u64,
    /// Conversations whose head moved since the last snapshot.
    dirty: FxHashSet<ConversationId>,
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
}

/// A batch written to the log but not yet durable: hand it to [`Store::make_durable`].
#[derive(Debug)]
pub struct PendingBatch {
    index: sled::Batch,
    dedup: Vec<(Vec<u8>, u64)>,
    heads: Vec<(ConversationId, Head)>,
    end: u64,
    next_id: u64,
    bytes: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn decode_head(v: &[u8]) -> Result<Head> {
    let (seq, pos) = keys::decode_pair(v, "messages")?;
    Ok(Head { seq: Seq(seq), pos })
}

impl MessageLog {
    /// Opens the segments under `dir` and brings the index in `idx` up to date with them: loads
    /// the last snapshot, then replays every record after it (cutting a torn tail).
    pub(super) fn open(
        dir: &Path,
        idx: &sled::Tree,
        index_db: &fjall::Keyspace,
        dedup_index: &fjall::PartitionHandle,
    ) -> Result<MessageLog> {
        let segments = Segments::open(dir)?;
        let (from, mut next_id) = match idx.get(REPLAY_FROM)? {
            Some(v) => keys::decode_pair(&v, "messages")?,
            None => (0, 1),
        };
        let mut heads = FxHashMap::default();
        for kv in idx.scan_prefix(HEAD_PREFIX) {
            let (k, v) = kv?;
            let conv = keys::conversation(&k[1..], "messages")?;
            heads.insert(conv, decode_head(&v)?);
        }
        let mut index = sled::Batch::default();
        let mut dedup = Vec::new();
        let mut dirty = FxHashSet::default();
        let mut replayed = 0u64;
        let end = segments.scan(from, |pos, record| {
            let msg = Message::from_bytes(&record.body).map_err(corrupt)?;
            let head = heads.get(&msg.conversation).copied().unwrap_or(NO_HEAD);
            if Some(msg.seq.get()) != head.seq.get().checked_add(1) || record.prev != head.pos {
                return Err(corrupt(format!(
                    "conversation {} seq {} follows seq {} in the log",
                    msg.conversation, msg.seq, head.seq
                )));
            }
            index_message(&mut index, &mut dedup, &msg, pos);
            heads.insert(msg.conversation, Head { seq: msg.seq, pos });
            dirty.insert(msg.conversation);
            next_id = next_id.max(
                msg.id
                    .get()
                    .checked_add(1)
                    .ok_or_else(|| corrupt("message id out of range"))?,
            );
            replayed += 1;
            Ok(())
        })?;
        idx.apply_batch(index)?;
        write_dedup(index_db, dedup_index, dedup)?;
        if replayed > 0 {
            tracing::info!(replayed, "message log replayed into the index");
        }
        let segment = segments.last();
        let writer = Writer {
            segment,
            file: segments.file(segment)?,
            end: end & 0xffff_ffff,
            buf: Vec::new(),
            next_id,
            indexed: end,
            indexed_next_id: next_id,
            dirty,
            since_snapshot: 0,
            segment_bytes: SEGMENT_BYTES,
        };
        Ok(MessageLog {
            segments,
            heads: RwLock::new(heads),
            writer: Mutex::new(writer),
        })
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

/// The index entries of one message: its idempotency key and, every `CHECKPOINT` seqs, its
/// position.
fn index_message(
    index: &mut sled::Batch,
    dedup_keys: &mut Vec<(Vec<u8>, u64)>,
    msg: &Message,
    pos: u64,
) {
    dedup_keys.push((dedup(msg.sender, msg.client_msg_id.as_str()), pos));
    if msg.seq.get() % CHECKPOINT == 0 {
        index.insert(
            &checkpoint(msg.conversation, msg.seq)[..],
            &pos.to_be_bytes()[..],
        );
    }
}

/// Writes idempotency entries (not synced: [`Store::sync`] persists them before a snapshot,
/// and a replay writes them again after a crash).
fn write_dedup(
    index_db: &fjall::Keyspace,
    partition: &fjall::PartitionHandle,
    entries: Vec<(Vec<u8>, u64)>,
) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut batch = index_db.batch().durability(None);
    for (key, pos) in entries {
        batch.insert(partition, key, pos.to_be_bytes());
    }
    batch.commit()?;
    Ok(())
}

impl Store {
    /// Seq of the newest durable message of `conv` (0 if none).
    pub fn head(&self, conv: ConversationId) -> Result<Seq> {
        Ok(self.messages.head(conv).seq)
    }

    /// The id the next message will get.
    pub fn next_message_id(&self) -> Result<u64> {
        Ok(lock(&self.messages.writer).indexed_next_id)
    }

    fn read_message(&self, pos: u64) -> Result<(Message, u64)> {
        let record = self.messages.segments.read(pos)?;
        let msg = Message::from_bytes(&record.body).map_err(corrupt)?;
        Ok((msg, record.prev))
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
            bytes += body.len();
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            let msg = Message::from_bytes(&body).map_err(corrupt)?;
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

    fn find_duplicate(&self, sender: UserId, client_msg_id: &str) -> Result<Option<Message>> {
        let Some(v) = self.dedup.get(dedup(sender, client_msg_id))? else {
            return Ok(None);
        };
        let (msg, _) = self.read_message(keys::decode_u64(&v, "messages")?)?;
        if msg.sender != sender || msg.client_msg_id.as_str() != client_msg_id {
            return Err(corrupt("idempotency entry points at another message"));
        }
        Ok(Some(msg))
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
        }
        w.buf.clear();
        let mut in_batch: HashMap<(UserId, &str), usize> = HashMap::new();
        let mut batch_heads: FxHashMap<ConversationId, Head> = FxHashMap::default();
        let mut index = sled::Batch::default();
        let mut dedup_keys = Vec::with_capacity(items.len());
        let mut out: Vec<std::result::Result<Committed, IdReused>> =
            Vec::with_capacity(items.len());
        // Ids count only once the batch is written.
        let mut next_id = w.next_id;
        for (i, item) in items.iter().enumerate() {
            let item = item.as_ref();
            let req = &item.request;
            let cmid = req.client_msg_id.as_str();
            let earlier = match in_batch.get(&(item.sender, cmid)) {
                Some(&j) => match &out[j] {
                    Ok(c) => Some(c.message.clone()),
                    Err(e) => return Err(corrupt(format!("batch dedup chain: {e}"))),
                },
                None => self.find_duplicate(item.sender, cmid)?,
            };
            if let Some(original) = earlier {
                out.push(if original.conversation == req.conversation {
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
            };
            let at = w.buf.len();
            w.buf.resize(at + HEADER, 0);
            msg.encode_into(&mut w.buf);
            seal_record(&mut w.buf, at, prev.pos);
            let pos = log::pos(w.segment, w.end + at as u64);
            index_message(&mut index, &mut dedup_keys, &msg, pos);
            batch_heads.insert(req.conversation, Head { seq, pos });
            in_batch.insert((item.sender, cmid), i);
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
        if let Err(e) = w.file.write_all_at(&w.buf, w.end) {
            // Nothing of this batch counts: cut what may have been written (its seqs and ids
            // were never published).
            let _ = w.file.set_len(w.end);
            return Err(e.into());
        }
        w.end += w.buf.len() as u64;
        w.next_id = next_id;
        let pending = PendingBatch {
            index,
            dedup: dedup_keys,
            heads: batch_heads.into_iter().collect(),
            end: log::pos(w.segment, w.end),
            next_id,
            bytes: w.buf.len() as u64,
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
            self.idx.apply_batch(pending.index)?;
            write_dedup(&self.index_db, &self.dedup, pending.dedup)?;
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

    /// True once enough has been appended since the last snapshot that the committer should
    /// take one ([`Store::sync`]) after answering its current batch: it bounds the replay after
    /// a crash to about `SNAPSHOT_BYTES` of log.
    pub fn snapshot_due(&self) -> bool {
        lock(&self.messages.writer).since_snapshot >= SNAPSHOT_BYTES
    }

    /// Part of [`Store::sync`]: makes the log durable and, once sled's own flush has made every
    /// index entry so far durable, records a snapshot (replay position, next id, moved heads).
    /// The snapshot itself becomes durable with the next flush; until then the previous one is
    /// where a replay starts, which is only longer, never wrong.
    pub(super) fn sync_log(&self, flush_index: impl FnOnce() -> Result<()>) -> Result<()> {
        let mut w = lock(&self.messages.writer);
        w.file.sync_data()?;
        flush_index()?;
        let mut batch = sled::Batch::default();
        {
            let heads = self
                .messages
                .heads
                .read()
                .unwrap_or_else(|e| e.into_inner());
            for conv in &w.dirty {
                let head = heads.get(conv).copied().unwrap_or(NO_HEAD);
                batch.insert(&keys::head(*conv)[..], &pair(head.seq.get(), head.pos)[..]);
            }
        }
        batch.insert(REPLAY_FROM, &pair(w.indexed, w.indexed_next_id)[..]);
        self.idx.apply_batch(batch)?;
        w.dirty.clear();
        w.since_snapshot = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use parley_protocol::frames::ContentType;
    use parley_protocol::ids::ClientMsgId;

    use super::super::test_util::temp_store;
    use super::*;

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
            },
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
        let store = Store::open(dir.path(), 8 << 20).unwrap();
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
        // Two conversations interleaved, 300 messages each, in batches of 50.
        for b in 0..12 {
            let batch: Vec<_> = (0..50)
                .map(|i| {
                    let n = b * 50 + i;
                    item(1, 20 + n % 2, &format!("m{n}"))
                })
                .collect();
            commit(&store, &batch, 7);
        }
        assert!(store.messages.segments.last() > 2, "the log rolled over");
        let check = |store: &Store| {
            for (after, upto, limit) in [
                (0, 300, 1000),
                (0, 300, 10),
                (63, 64, 5),
                (64, 200, 7),
                (100, 128, 1000),
                (250, 300, 1000),
                (299, 300, 1),
                (300, 300, 1),
                (5, 3, 10),
            ] {
                let page = store
                    .messages(conv(21), Seq(after), Seq(upto), limit, 1 << 20)
                    .unwrap();
                let want: Vec<u64> = (after + 1..=upto).take(limit).collect();
                assert_eq!(seqs(&page), want, "after {after} upto {upto} limit {limit}");
                assert!(page.iter().all(|m| m.conversation == conv(21)));
            }
        };
        check(&store);
        close(store);
        let store = Store::open(dir.path(), 8 << 20).unwrap();
        check(&store);
        assert_eq!(store.head(conv(20)).unwrap(), Seq(300));
        assert_eq!(store.next_message_id().unwrap(), 601);
    }

    #[test]
    fn the_index_is_rebuilt_from_the_log_after_a_crash() {
        let (dir, store) = temp_store();
        commit(&store, &[item(1, 10, "first")], 1); // takes a snapshot
        commit(&store, &[item(1, 10, "second"), item(2, 10, "third")], 2);
        // A crash before sled wrote the newer index entries: they are lost, the log is not.
        for k in [dedup(uid(1), "second"), dedup(uid(2), "third")] {
            store.dedup.remove(k).unwrap();
        }
        let segment = store.messages.segments.file(0).unwrap();
        let end = segment.metadata().unwrap().len();
        close(store);
        // And a batch whose write was torn: garbage after the last good record.
        segment.write_all_at(&[0x55; 40], end).unwrap();
        drop(segment);

        let store = Store::open(dir.path(), 8 << 20).unwrap();
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
            "rebuilt idempotency entry"
        );
        assert_eq!(out[1].as_ref().unwrap().message.seq, Seq(2));
        assert_eq!(out[2].as_ref().unwrap().message.seq, Seq(4));
        let page = store
            .messages(conv(10), Seq(0), Seq(4), 10, 1 << 20)
            .unwrap();
        assert_eq!(seqs(&page), vec![1, 2, 3, 4]);
    }

    /// Drops the store like a crash after sled's last background flush: no snapshot, so the
    /// next open replays the log. (The flush also means no sled IO is still in flight, which
    /// would hold sled's file lock for a moment after the drop.)
    fn close(store: Store) {
        store.db.flush().unwrap();
        drop(store);
    }

    fn uid(n: u64) -> UserId {
        UserId::try_from(n).unwrap()
    }
}
