//! Key encodings: big-endian numbers, so lexicographic order is numeric order.

use parley_protocol::ids::{ConversationId, Seq, UserId};

use super::{Result, StoreError};

pub(super) fn u64_key(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

pub(super) fn pair(a: u64, b: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&a.to_be_bytes());
    k[8..].copy_from_slice(&b.to_be_bytes());
    k
}

pub(super) fn decode_u64(bytes: &[u8], tree: &'static str) -> Result<u64> {
    let arr: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| StoreError::Corrupt {
            tree,
            detail: format!("expected 8 bytes, got {}", bytes.len()),
        })?;
    Ok(u64::from_be_bytes(arr))
}

pub(super) fn decode_pair(bytes: &[u8], tree: &'static str) -> Result<(u64, u64)> {
    if bytes.len() < 16 {
        return Err(StoreError::Corrupt {
            tree,
            detail: format!("expected 16 bytes, got {}", bytes.len()),
        });
    }
    Ok((
        decode_u64(&bytes[..8], tree)?,
        decode_u64(&bytes[8..16], tree)?,
    ))
}

pub(super) fn user(bytes: &[u8], tree: &'static str) -> Result<UserId> {
    UserId::try_from(decode_u64(bytes, tree)?).map_err(|e| StoreError::Corrupt {
        tree,
        detail: e.to_string(),
    })
}

pub(super) fn conversation(bytes: &[u8], tree: &'static str) -> Result<ConversationId> {
    ConversationId::try_from(decode_u64(bytes, tree)?).map_err(|e| StoreError::Corrupt {
        tree,
        detail: e.to_string(),
    })
}

/// `s` + sender: the position of the newest message it sent (the head of its sender chain) as
/// of the last snapshot.
pub(super) fn sent_head(sender: UserId) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = b's';
    k[1..].copy_from_slice(&sender.get().to_be_bytes());
    k
}

/// Prefix of every sender chain head.
pub(super) const SENT_PREFIX: &[u8] = b"s";

/// `c` + conversation + seq: the position of a checkpointed message.
pub(super) fn checkpoint(conv: ConversationId, seq: Seq) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = b'c';
    k[1..9].copy_from_slice(&conv.get().to_be_bytes());
    k[9..].copy_from_slice(&seq.get().to_be_bytes());
    k
}

/// `h` + conversation: its head (seq, position) as of the last snapshot.
pub(super) fn head(conv: ConversationId) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = b'h';
    k[1..].copy_from_slice(&conv.get().to_be_bytes());
    k
}

/// Prefix of every head entry.
pub(super) const HEAD_PREFIX: &[u8] = b"h";

/// The snapshot marker: where replay starts, and the next message id there.
pub(super) const REPLAY_FROM: &[u8] = b"r";

/// The message log's format version (u64 BE).
pub(super) const FORMAT: &[u8] = b"v";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_keys_sort_numerically() {
        let c = ConversationId::try_from(1).unwrap();
        assert!(checkpoint(c, Seq(255)) < checkpoint(c, Seq(256)));
        let c2 = ConversationId::try_from(256).unwrap();
        assert!(checkpoint(c, Seq(u64::MAX)) < checkpoint(c2, Seq(1)));
        assert!(head(c).starts_with(HEAD_PREFIX));
        assert!(sent_head(UserId::try_from(7).unwrap()).starts_with(SENT_PREFIX));
    }
}
