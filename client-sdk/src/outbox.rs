//! Sends not yet acknowledged. They outlive connections: after a reconnect they go out again,
//! in their original order and with their original `client_msg_id`, so the server's idempotency
//! turns a lost ack into the same ack, never a second message.

use std::collections::{BTreeMap, HashMap};

use parley_protocol::frames::{SendAck, SendRequest};
use parley_protocol::ids::ClientMsgId;
use tokio::sync::oneshot;

use crate::error::ClientError;

/// Completes a caller's `send`.
pub(crate) type AckSender = oneshot::Sender<Result<SendAck, ClientError>>;

struct Entry {
    request: SendRequest,
    reply: AckSender,
    in_flight: bool,
}

/// Unacknowledged sends, oldest first.
#[derive(Default)]
pub(crate) struct Outbox {
    entries: BTreeMap<u64, Entry>,
    /// Entry keys by `client_msg_id`, to recognise our own messages coming back from sync.
    by_id: HashMap<ClientMsgId, u64>,
    next_key: u64,
    in_flight: usize,
}

impl Outbox {
    /// Queues a send; returns its key.
    pub(crate) fn push(&mut self, request: SendRequest, reply: AckSender) -> u64 {
        let key = self.next_key;
        self.next_key += 1;
        self.by_id.insert(request.client_msg_id.clone(), key);
        self.entries.insert(
            key,
            Entry {
                request,
                reply,
                in_flight: false,
            },
        );
        key
    }

    /// The oldest send not yet on the wire, marked in flight, if fewer than `max_in_flight`
    /// are outstanding.
    pub(crate) fn next_unsent(&mut self, max_in_flight: usize) -> Option<(u64, SendRequest)> {
        if self.in_flight >= max_in_flight {
            return None;
        }
        let (key, entry) = self.entries.iter_mut().find(|(_, e)| !e.in_flight)?;
        entry.in_flight = true;
        self.in_flight += 1;
        Some((*key, entry.request.clone()))
    }

    /// Finishes a send: the caller gets `result`.
    pub(crate) fn complete(&mut self, key: u64, result: Result<SendAck, ClientError>) {
        if let Some(entry) = self.entries.remove(&key) {
            if entry.in_flight {
                self.in_flight -= 1;
            }
            if self.by_id.get(&entry.request.client_msg_id) == Some(&key) {
                self.by_id.remove(&entry.request.client_msg_id);
            }
            // The caller may have stopped waiting; the message is sent all the same.
            let _ = entry.reply.send(result);
        }
    }

    /// Takes a send off the wire, to go again on the next connection.
    pub(crate) fn unsend(&mut self, key: u64) {
        if let Some(entry) = self.entries.get_mut(&key) {
            if entry.in_flight {
                entry.in_flight = false;
                self.in_flight -= 1;
            }
        }
    }

    /// The connection is gone: everything goes again on the next one.
    pub(crate) fn requeue_all(&mut self) {
        for entry in self.entries.values_mut() {
            entry.in_flight = false;
        }
        self.in_flight = 0;
    }

    /// Fails every send (the client stops).
    pub(crate) fn fail_all(&mut self, error: &ClientError) {
        for (_, entry) in std::mem::take(&mut self.entries) {
            let _ = entry.reply.send(Err(error.clone()));
        }
        self.by_id.clear();
        self.in_flight = 0;
    }

    /// Whether a send with this id is waiting for its ack.
    pub(crate) fn contains(&self, id: &ClientMsgId) -> bool {
        self.by_id.contains_key(id)
    }

    /// Number of sends waiting.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use parley_protocol::frames::ContentType;
    use parley_protocol::ids::{ConversationId, Seq};

    fn req(id: &str) -> SendRequest {
        SendRequest {
            conversation: ConversationId::try_from(1).unwrap(),
            content_type: ContentType::Text,
            content: Bytes::from_static(b"hi"),
            client_msg_id: ClientMsgId::try_from(id).unwrap(),
            reply_to: Seq::ZERO,
            mentions: vec![],
            mention_all: false,
        }
    }

    #[test]
    fn resends_keep_order_ids_and_window() {
        let mut o = Outbox::default();
        let (tx_a, _rx_a) = oneshot::channel();
        let (tx_b, mut rx_b) = oneshot::channel();
        let (tx_c, _rx_c) = oneshot::channel();
        let a = o.push(req("a"), tx_a);
        let b = o.push(req("b"), tx_b);
        o.push(req("c"), tx_c);
        // Window of two.
        assert_eq!(o.next_unsent(2).map(|(k, _)| k), Some(a));
        assert_eq!(o.next_unsent(2).map(|(k, _)| k), Some(b));
        assert!(o.next_unsent(2).is_none());
        // Connection lost: the same requests go again, oldest first.
        o.requeue_all();
        let again: Vec<_> = std::iter::from_fn(|| o.next_unsent(10))
            .map(|(_, r)| r.client_msg_id.to_string())
            .collect();
        assert_eq!(again, ["a", "b", "c"]);
        assert!(o.contains(&ClientMsgId::try_from("b").unwrap()));
        o.complete(b, Err(ClientError::Timeout));
        assert!(matches!(rx_b.try_recv(), Ok(Err(ClientError::Timeout))));
        assert!(!o.contains(&ClientMsgId::try_from("b").unwrap()));
        assert_eq!(o.len(), 2);
        o.unsend(a);
        assert_eq!(o.next_unsent(10).map(|(k, _)| k), Some(a));
    }

    #[test]
    fn fail_all_answers_everyone() {
        let mut o = Outbox::default();
        let (tx, mut rx) = oneshot::channel();
        o.push(req("a"), tx);
        o.fail_all(&ClientError::Closed);
        assert!(matches!(rx.try_recv(), Ok(Err(ClientError::Closed))));
        assert_eq!(o.len(), 0);
    }
}
