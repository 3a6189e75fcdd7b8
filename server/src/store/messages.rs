//! The message log: messages by (conversation, seq), the idempotency index, the id counter.

use std::collections::HashMap;

use parley_protocol::frames::{Message, SendRequest};
use parley_protocol::ids::{ConversationId, DeviceId, MessageId, Seq, UserId};

use super::keys::{self, dedup, message, message_prefix, pair, NEXT_MESSAGE_ID};
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
        tree: "log",
        detail: detail.to_string(),
    }
}

impl Store {
    /// Seq of the newest stored message of `conv` (0 if none).
    pub fn head(&self, conv: ConversationId) -> Result<Seq> {
        match self.log.scan_prefix(message_prefix(conv)).next_back() {
            None => Ok(Seq::ZERO),
            Some(kv) => {
                let (k, _) = kv?;
                Ok(Seq(keys::decode_u64(&k[9..], "log")?))
            }
        }
    }

    /// The id the next message will get.
    pub fn next_message_id(&self) -> Result<u64> {
        match self.log.get(NEXT_MESSAGE_ID)? {
            Some(v) => keys::decode_u64(&v, "log"),
            None => Ok(1),
        }
    }

    /// One message.
    pub fn message(&self, conv: ConversationId, seq: Seq) -> Result<Option<Message>> {
        self.log
            .get(message(conv, seq))?
            .map(|v| Message::from_bytes(&v).map_err(corrupt))
            .transpose()
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
        let mut out = Vec::new();
        if upto <= after || limit == 0 {
            return Ok(out);
        }
        let mut bytes = 0;
        for v in self
            .log
            .range(message(conv, after.next())..=message(conv, upto))
            .values()
            .take(limit)
        {
            let v = v?;
            bytes += v.len();
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            out.push(Message::from_bytes(&v).map_err(corrupt)?);
        }
        Ok(out)
    }

    fn find_duplicate(&self, sender: UserId, client_msg_id: &str) -> Result<Option<Message>> {
        let Some(v) = self.log.get(dedup(sender, client_msg_id))? else {
            return Ok(None);
        };
        let (conv, seq) = keys::decode_pair(&v, "log")?;
        let conv = ConversationId::try_from(conv).map_err(corrupt)?;
        self.message(conv, Seq(seq))?
            .ok_or_else(|| corrupt("idempotency entry without its message"))
            .map(Some)
    }

    /// Assigns seqs and ids to a batch and writes it atomically (not yet durable: call
    /// [`Store::sync`] before acknowledging).
    ///
    /// `heads` caches the newest seq per conversation and `next_id` the id counter; both belong
    /// to the single committer, which is what makes seqs gapless without locks. Returns one
    /// outcome per item, in order.
    pub fn commit_batch<T: AsRef<CommitItem>, S: std::hash::BuildHasher>(
        &self,
        items: &[T],
        heads: &mut HashMap<ConversationId, Seq, S>,
        next_id: &mut u64,
        now_ms: u64,
    ) -> Result<Vec<std::result::Result<Committed, IdReused>>> {
        let mut batch = sled::Batch::default();
        let mut in_batch: HashMap<(UserId, &str), usize> = HashMap::new();
        let mut out: Vec<std::result::Result<Committed, IdReused>> =
            Vec::with_capacity(items.len());
        let start_id = *next_id;
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
            let head = match heads.get(&req.conversation) {
                Some(h) => *h,
                None => self.head(req.conversation)?,
            };
            let seq = head.next();
            heads.insert(req.conversation, seq);
            let id = MessageId::try_from(*next_id).map_err(corrupt)?;
            *next_id += 1;
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
            batch.insert(&message(req.conversation, seq)[..], msg.to_bytes());
            batch.insert(
                dedup(item.sender, cmid),
                &pair(req.conversation.get(), seq.get())[..],
            );
            in_batch.insert((item.sender, cmid), i);
            out.push(Ok(Committed {
                message: msg,
                duplicate: false,
            }));
        }
        if *next_id != start_id {
            batch.insert(NEXT_MESSAGE_ID, &next_id.to_be_bytes()[..]);
            if let Err(e) = self.log.apply_batch(batch) {
                // Nothing was written: forget the seqs and ids handed out above.
                heads.clear();
                *next_id = start_id;
                return Err(e.into());
            }
        }
        Ok(out)
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

    #[test]
    fn seqs_are_gapless_and_sends_idempotent() {
        let (dir, store) = temp_store();
        let mut heads = HashMap::new();
        let mut next = store.next_message_id().unwrap();
        let batch = [
            item(1, 10, "a"),
            item(2, 10, "b"),
            item(1, 10, "a"),
            item(1, 11, "c"),
        ];
        let out = store
            .commit_batch(&batch, &mut heads, &mut next, 5)
            .unwrap();
        let seqs: Vec<_> = out
            .iter()
            .map(|o| o.as_ref().unwrap().message.seq.get())
            .collect();
        assert_eq!(seqs, vec![1, 2, 1, 1]);
        assert!(out[2].as_ref().unwrap().duplicate);
        assert_eq!(
            out[0].as_ref().unwrap().message.id,
            out[2].as_ref().unwrap().message.id
        );
        store.sync().unwrap();
        drop(store);

        // After reopening, with a cold cache: the counter and heads continue, duplicates are
        // still recognised, and reuse for another conversation is refused.
        let store = Store::open(dir.path(), 8 << 20).unwrap();
        let mut heads = HashMap::new();
        let mut next = store.next_message_id().unwrap();
        assert_eq!(next, 4);
        let batch = [item(1, 10, "a"), item(3, 10, "d"), item(1, 12, "c")];
        let out = store
            .commit_batch(&batch, &mut heads, &mut next, 6)
            .unwrap();
        assert!(out[0].as_ref().unwrap().duplicate);
        assert_eq!(out[1].as_ref().unwrap().message.seq, Seq(3));
        assert_eq!(out[1].as_ref().unwrap().message.id.get(), 4);
        assert_eq!(out[2].as_ref().unwrap_err().0.get(), 11);
        let conv = ConversationId::try_from(10).unwrap();
        assert_eq!(store.head(conv).unwrap(), Seq(3));
        let page = store.messages(conv, Seq(1), Seq(3), 10, 1 << 20).unwrap();
        assert_eq!(
            page.iter().map(|m| m.seq.get()).collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert_eq!(
            store
                .messages(conv, Seq(0), Seq(3), 1, 1 << 20)
                .unwrap()
                .len(),
            1
        );
        // The byte budget stops a page early, but never before its first message.
        assert_eq!(
            store.messages(conv, Seq(0), Seq(3), 10, 1).unwrap().len(),
            1
        );
    }
}
