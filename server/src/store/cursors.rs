//! Delivered and read cursors per (user, conversation). They only move forward.

use parley_protocol::frames::CursorKind;
use parley_protocol::ids::{ConversationId, Seq, UserId};

use super::keys::{decode_pair, pair};
use super::{Result, Store};

/// A user's two cursors in one conversation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursors {
    /// Everything up to here reached a device.
    pub delivered: Seq,
    /// Everything up to here was read.
    pub read: Seq,
}

fn decode(bytes: Option<&[u8]>) -> Cursors {
    bytes
        .and_then(|b| decode_pair(b, "cursors").ok())
        .map(|(d, r)| Cursors {
            delivered: Seq(d),
            read: Seq(r),
        })
        .unwrap_or_default()
}

impl Store {
    /// The user's cursors in `conv` (zero if never set).
    pub fn cursors(&self, user: UserId, conv: ConversationId) -> Result<Cursors> {
        Ok(decode(
            self.cursors.get(pair(user.get(), conv.get()))?.as_deref(),
        ))
    }

    /// Every cursor of `user`, by conversation (one scan).
    pub fn user_cursors(&self, user: UserId) -> Result<Vec<(ConversationId, Cursors)>> {
        self.cursors
            .scan_prefix(super::keys::u64_key(user.get()))
            .map(|kv| {
                let (k, v) = kv?;
                let (_, conv) = decode_pair(&k, "cursors")?;
                let conv = super::keys::conversation(&super::keys::u64_key(conv), "cursors")?;
                Ok((conv, decode(Some(&v))))
            })
            .collect()
    }

    /// Moves a cursor forward to `seq` (a read cursor moves the delivered one too). Returns the
    /// cursors before and after; equal if nothing moved.
    pub fn advance_cursor(
        &self,
        user: UserId,
        conv: ConversationId,
        kind: CursorKind,
        seq: Seq,
    ) -> Result<(Cursors, Cursors)> {
        let mut before = Cursors::default();
        let mut after = Cursors::default();
        self.cursors
            .fetch_and_update(pair(user.get(), conv.get()), |old| {
                let cur = decode(old);
                let mut next = cur;
                match kind {
                    CursorKind::Delivered => next.delivered = cur.delivered.max(seq),
                    CursorKind::Read => {
                        next.read = cur.read.max(seq);
                        next.delivered = cur.delivered.max(next.read);
                    }
                }
                before = cur;
                after = next;
                Some(pair(next.delivered.get(), next.read.get()).to_vec())
            })?;
        if after != before {
            self.user_index.cursor_moved(user, conv, after);
        }
        Ok((before, after))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::temp_store;
    use super::*;

    #[test]
    fn cursors_only_move_forward() {
        let (_d, store) = temp_store();
        let u = UserId::try_from(1).unwrap();
        let c = ConversationId::try_from(2).unwrap();
        assert_eq!(store.cursors(u, c).unwrap(), Cursors::default());
        store
            .advance_cursor(u, c, CursorKind::Delivered, Seq(5))
            .unwrap();
        let (_, after) = store
            .advance_cursor(u, c, CursorKind::Read, Seq(3))
            .unwrap();
        assert_eq!(
            after,
            Cursors {
                delivered: Seq(5),
                read: Seq(3)
            }
        );
        let (b, a) = store
            .advance_cursor(u, c, CursorKind::Read, Seq(2))
            .unwrap();
        assert_eq!(b, a);
        let (_, after) = store
            .advance_cursor(u, c, CursorKind::Read, Seq(9))
            .unwrap();
        assert_eq!(
            after,
            Cursors {
                delivered: Seq(9),
                read: Seq(9)
            }
        );
    }
}
