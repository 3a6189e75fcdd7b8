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

/// `m` + conversation + seq.
pub(super) fn message(conv: ConversationId, seq: Seq) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = b'm';
    k[1..9].copy_from_slice(&conv.get().to_be_bytes());
    k[9..].copy_from_slice(&seq.get().to_be_bytes());
    k
}

/// `m` + conversation: prefix of all its messages.
pub(super) fn message_prefix(conv: ConversationId) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = b'm';
    k[1..].copy_from_slice(&conv.get().to_be_bytes());
    k
}

/// `d` + sender + client_msg_id.
pub(super) fn dedup(sender: UserId, client_msg_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + client_msg_id.len());
    k.push(b'd');
    k.extend_from_slice(&sender.get().to_be_bytes());
    k.extend_from_slice(client_msg_id.as_bytes());
    k
}

pub(super) const NEXT_MESSAGE_ID: &[u8] = b"n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_keys_sort_numerically() {
        let c = ConversationId::try_from(1).unwrap();
        assert!(message(c, Seq(255)) < message(c, Seq(256)));
        let c2 = ConversationId::try_from(256).unwrap();
        assert!(message(c, Seq(u64::MAX)) < message(c2, Seq(1)));
        assert!(message(c, Seq(3)).starts_with(&message_prefix(c)));
    }
}
