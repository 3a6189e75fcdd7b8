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

/// Tag of a checksummed sled value (envelope version 1): `TAG | crc32 of the payload (u32 LE) |
/// payload`. Values written before envelopes existed are plain JSON (starting with `{`) or a
/// plain 8-byte number, and read as they are; a damaged tag makes a value that is neither, so
/// damage is never read as an old record.
const TAG: u8 = 0x01;

/// `payload` in a checksummed envelope.
pub(super) fn seal(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 5);
    v.push(TAG);
    v.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    v.extend_from_slice(payload);
    v
}

/// The payload of a value written by [`seal`] (checksum verified), or the value itself if it
/// is an old one without an envelope.
pub(super) fn open<'a>(bytes: &'a [u8], tree: &'static str) -> Result<&'a [u8]> {
    match bytes.split_first() {
        Some((&TAG, rest)) => {
            let (sum, payload) =
                rest.split_first_chunk::<4>()
                    .ok_or_else(|| StoreError::Corrupt {
                        tree,
                        detail: format!(
                            "record of {} bytes is too short for its envelope",
                            bytes.len()
                        ),
                    })?;
            if crc32fast::hash(payload) != u32::from_le_bytes(*sum) {
                return Err(StoreError::Corrupt {
                    tree,
                    detail: "checksum mismatch: the record is damaged".to_owned(),
                });
            }
            Ok(payload)
        }
        _ => Ok(bytes),
    }
}

/// An id stored as a value (an account's user id, a 1:1 or notices conversation's id): the
/// number (u64 BE, so old readers of the first 8 bytes still work) and its crc32 (u32 LE).
pub(super) fn id_value(v: u64) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..8].copy_from_slice(&v.to_be_bytes());
    let sum = crc32fast::hash(&out[..8]);
    out[8..].copy_from_slice(&sum.to_le_bytes());
    out
}

/// Reads a value written by [`id_value`] (checksum verified) or an old plain 8-byte one.
pub(super) fn decode_id_value(bytes: &[u8], tree: &'static str) -> Result<u64> {
    match bytes.len() {
        8 => decode_u64(bytes, tree),
        12 if crc32fast::hash(&bytes[..8]).to_le_bytes() == bytes[8..] => decode_u64(bytes, tree),
        12 => Err(StoreError::Corrupt {
            tree,
            detail: "checksum mismatch in an id: the record is damaged".to_owned(),
        }),
        n => Err(StoreError::Corrupt {
            tree,
            detail: format!("an id of {n} bytes"),
        }),
    }
}

/// A user id stored as a value (see [`id_value`]).
pub(super) fn user_value(bytes: &[u8], tree: &'static str) -> Result<UserId> {
    UserId::try_from(decode_id_value(bytes, tree)?).map_err(|e| StoreError::Corrupt {
        tree,
        detail: e.to_string(),
    })
}

/// A conversation id stored as a value (see [`id_value`]).
pub(super) fn conversation_value(bytes: &[u8], tree: &'static str) -> Result<ConversationId> {
    ConversationId::try_from(decode_id_value(bytes, tree)?).map_err(|e| StoreError::Corrupt {
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

    #[test]
    fn envelopes_verify_and_old_values_read() {
        let sealed = seal(b"{\"a\":1}");
        assert_eq!(open(&sealed, "t").unwrap(), b"{\"a\":1}");
        assert_eq!(open(b"{\"a\":1}", "t").unwrap(), b"{\"a\":1}");
        for i in 0..sealed.len() {
            for bit in 0..8 {
                let mut bad = sealed.clone();
                bad[i] ^= 1 << bit;
                let read = open(&bad, "t");
                // Either detected, or (a damaged tag) not an envelope any more and not JSON.
                assert!(
                    read.is_err()
                        || serde_json::from_slice::<serde_json::Value>(read.unwrap()).is_err(),
                    "byte {i} bit {bit}"
                );
            }
        }
        let id = id_value(42);
        assert_eq!(decode_id_value(&id, "t").unwrap(), 42);
        assert_eq!(decode_id_value(&42u64.to_be_bytes(), "t").unwrap(), 42);
        for i in 0..12 {
            let mut bad = id;
            bad[i] ^= 0x10;
            assert!(decode_id_value(&bad, "t").is_err(), "byte {i}");
        }
    }
}
