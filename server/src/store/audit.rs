//! The admin audit log: one record per admin action, newest kept, oldest dropped past
//! [`MAX_AUDIT`]. One tree, opened by name on use (admin actions are rare and on no hot path):
//!
//! | tree    | key                         | value                   |
//! |---------|-----------------------------|-------------------------|
//! | `audit` | entry number (u64 BE, 1 up) | [`AuditRecord`] (JSON)  |
//!
//! Entry numbers follow the last one (not sled's id generator, which jumps after a restart and
//! would make the bound drop everything), so the newest [`MAX_AUDIT`] entries are exactly the
//! keys above `last - MAX_AUDIT`.

use serde::{Deserialize, Serialize};

use super::keys;
use super::{from_json, json, Result, Store};

/// Entries kept at most; each new one past this drops the oldest.
pub const MAX_AUDIT: u64 = 10_000;

/// One admin action as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When, Unix ms.
    pub at_ms: u64,
    /// Who: `operator` for the `[admin] token`.
    pub actor: String,
    /// What: `ban`, `unban`, `disband_group`, `announce`, ...
    pub action: String,
    /// On what: `user:<id>`, `group:<id>`, `all_users`, ...
    pub target: String,
    /// `ok`, or the error code's name when the action was refused or failed.
    pub outcome: String,
    /// Anything else worth keeping (an announcement's text, its number of recipients ...).
    #[serde(default)]
    pub detail: String,
}

/// A page of the log: `(number, record)` newest first, and the `before` of the next page.
pub type AuditSlice = (Vec<(u64, AuditRecord)>, Option<u64>);

impl Store {
    fn audit_tree(&self) -> Result<sled::Tree> {
        Ok(self.db.open_tree("audit")?)
    }

    /// Appends `record` and drops what falls beyond [`MAX_AUDIT`]; returns its entry number.
    /// Not durable until the next [`Store::sync`].
    pub fn append_audit(&self, record: &AuditRecord) -> Result<u64> {
        let tree = self.audit_tree()?;
        let value = json(record);
        let number = loop {
            let next = match tree.last()? {
                Some((k, _)) => keys::decode_u64(&k, "audit")? + 1,
                None => 1,
            };
            // Two actions at once may pick the same number: one wins, the other tries the next.
            let swapped =
                tree.compare_and_swap(keys::u64_key(next), None::<&[u8]>, Some(value.clone()))?;
            if swapped.is_ok() {
                break next;
            }
        };
        if number > MAX_AUDIT {
            let cut = keys::u64_key(number - MAX_AUDIT + 1);
            for key in tree.range(..cut).keys() {
                tree.remove(key?)?;
            }
        }
        Ok(number)
    }

    /// Entries numbered below `before` (`0`: from the newest), newest first, that `keep`
    /// accepts, at most `limit`; and the `before` of the next page (`None`: no more). Walks at
    /// most the whole bounded log.
    pub fn audit_page(
        &self,
        before: u64,
        limit: usize,
        keep: impl Fn(&AuditRecord) -> bool,
    ) -> Result<AuditSlice> {
        let tree = self.audit_tree()?;
        let rows = match before {
            0 => tree.iter(),
            n => tree.range(..keys::u64_key(n)),
        };
        let mut out = Vec::new();
        for row in rows.rev() {
            let (k, v) = row?;
            let number = keys::decode_u64(&k, "audit")?;
            if out.len() == limit {
                let next = out.last().map(|(n, _)| *n);
                return Ok((out, next));
            }
            let record: AuditRecord = from_json(&v, "audit")?;
            if keep(&record) {
                out.push((number, record));
            }
        }
        Ok((out, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_util::{reopen, temp_store};

    fn entry(action: &str, at_ms: u64) -> AuditRecord {
        AuditRecord {
            at_ms,
            actor: "operator".into(),
            action: action.into(),
            target: "user:1".into(),
            outcome: "ok".into(),
            detail: String::new(),
        }
    }

    #[test]
    fn pages_newest_first_filtered_and_survive_a_reopen() {
        let (dir, store) = temp_store();
        for i in 1..=5 {
            let action = if i % 2 == 0 { "ban" } else { "unban" };
            assert_eq!(store.append_audit(&entry(action, i)).unwrap(), i);
        }
        store.sync().unwrap();
        drop(store);
        let store = reopen(dir.path()).unwrap();
        let (page, next) = store.audit_page(0, 2, |_| true).unwrap();
        let at: Vec<u64> = page.iter().map(|(_, r)| r.at_ms).collect();
        assert_eq!((at, next), (vec![5, 4], Some(4)));
        let (page, next) = store.audit_page(4, 10, |_| true).unwrap();
        assert_eq!((page.len(), next), (3, None));
        let (page, _) = store.audit_page(0, 10, |r| r.action == "ban").unwrap();
        let at: Vec<u64> = page.iter().map(|(_, r)| r.at_ms).collect();
        assert_eq!(at, vec![4, 2]);
        // Numbering goes on after a reopen.
        assert_eq!(store.append_audit(&entry("ban", 6)).unwrap(), 6);
    }

    #[test]
    fn the_log_is_bounded() {
        let (_dir, store) = temp_store();
        for i in 1..=MAX_AUDIT + 3 {
            store.append_audit(&entry("ban", i)).unwrap();
        }
        let tree = store.audit_tree().unwrap();
        assert_eq!(tree.len() as u64, MAX_AUDIT);
        let (page, _) = store.audit_page(0, 1, |_| true).unwrap();
        assert_eq!(page[0].1.at_ms, MAX_AUDIT + 3);
        let first = tree.first().unwrap().unwrap().0;
        assert_eq!(keys::decode_u64(&first, "audit").unwrap(), 4);
    }
}
