//! Admin accounts and the runtime settings an admin may change while the server runs
//! (`core/admins.rs`, `core/settings.rs`). Three small trees, opened by name on use (admin
//! requests are rare and on no hot path):
//!
//! | tree          | key                          | value                      |
//! |---------------|------------------------------|----------------------------|
//! | `admins`      | admin id (u64 BE, from 2 up) | [`AdminRecord`] (JSON)     |
//! | `admin_names` | user name (UTF-8)            | admin id ([`keys::id_value`]) |
//! | `settings`    | setting key (UTF-8)          | [`SettingRecord`] (JSON)   |
//!
//! Admin id 1 is the operator (the `[admin] token`), which has no record. Ids follow the last
//! one (like the audit log's numbers); a name is claimed with a compare-and-swap, so two
//! creations of one name never both succeed. `parley check` decodes every record of the three
//! trees and checks that names and records point at each other ([`verify`]).

use serde::{Deserialize, Serialize};

use super::keys;
use super::{from_json, get_json, json, Result, Store, StoreError};

/// Admin accounts kept at most (creation is refused beyond).
pub const MAX_ADMINS: usize = 1000;
/// The first id an admin account gets (1 is the operator).
pub const FIRST_ADMIN_ID: u64 = 2;

/// An admin account as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminRecord {
    /// Login name (unique).
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// `super_admin` or `admin`.
    pub role: String,
    /// Disabled accounts cannot log in and their tokens are refused.
    pub enabled: bool,
    /// Creation time, Unix ms.
    pub created_ms: u64,
    /// Tokens issued before this time (Unix ms) are refused (set when the account is
    /// disabled, so re-enabling it does not bring old tokens back).
    #[serde(default)]
    pub tokens_after_ms: u64,
    /// Who created it (an audit actor name).
    #[serde(default)]
    pub created_by: String,
}

/// A runtime setting's value as stored (it overrides the configuration file's).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingRecord {
    /// The value, as text (`true`, `120000`, ...), validated before it is written.
    pub value: String,
    /// When it was set, Unix ms.
    pub at_ms: u64,
    /// Who set it (an audit actor name).
    pub by: String,
}

impl Store {
    fn admins_tree(&self) -> Result<sled::Tree> {
        Ok(self.db.open_tree("admins")?)
    }

    fn admin_names_tree(&self) -> Result<sled::Tree> {
        Ok(self.db.open_tree("admin_names")?)
    }

    fn settings_tree(&self) -> Result<sled::Tree> {
        Ok(self.db.open_tree("settings")?)
    }

    /// Creates the admin account `record`: its id, or `None` if its name is taken. Not durable
    /// until the next [`Store::sync`].
    pub fn create_admin(&self, record: &AdminRecord) -> Result<Option<u64>> {
        let (admins, names) = (self.admins_tree()?, self.admin_names_tree()?);
        if names.contains_key(record.username.as_bytes())? {
            return Ok(None);
        }
        let value = json(record);
        let id = loop {
            let next = match admins.last()? {
                Some((k, _)) => (keys::decode_u64(&k, "admins")? + 1).max(FIRST_ADMIN_ID),
                None => FIRST_ADMIN_ID,
            };
            // Two creations at once may pick one id: one wins, the other tries the next.
            let swapped =
                admins.compare_and_swap(keys::u64_key(next), None::<&[u8]>, Some(value.clone()))?;
            if swapped.is_ok() {
                break next;
            }
        };
        let claimed = names.compare_and_swap(
            record.username.as_bytes(),
            None::<&[u8]>,
            Some(&keys::id_value(id)[..]),
        )?;
        if claimed.is_err() {
            // The name was taken meanwhile: the record goes again.
            admins.remove(keys::u64_key(id))?;
            return Ok(None);
        }
        Ok(Some(id))
    }

    /// The admin account `id`.
    pub fn admin(&self, id: u64) -> Result<Option<AdminRecord>> {
        get_json(&self.admins_tree()?, keys::u64_key(id), "admins")
    }

    /// The admin account named `username`, with its id.
    pub fn admin_by_name(&self, username: &str) -> Result<Option<(u64, AdminRecord)>> {
        let Some(v) = self.admin_names_tree()?.get(username.as_bytes())? else {
            return Ok(None);
        };
        let id = keys::decode_id_value(&v, "admin_names")?;
        Ok(self.admin(id)?.map(|r| (id, r)))
    }

    /// Every admin account, in id order (at most [`MAX_ADMINS`]).
    pub fn admins(&self) -> Result<Vec<(u64, AdminRecord)>> {
        let mut out = Vec::new();
        for row in self.admins_tree()?.iter().take(MAX_ADMINS) {
            let (k, v) = row?;
            out.push((keys::decode_u64(&k, "admins")?, from_json(&v, "admins")?));
        }
        Ok(out)
    }

    /// The number of admin accounts.
    pub fn admin_count(&self) -> Result<usize> {
        Ok(self.admins_tree()?.len())
    }

    /// Replaces the record of the admin account `id` (its name is never changed).
    pub fn put_admin(&self, id: u64, record: &AdminRecord) -> Result<()> {
        self.admins_tree()?
            .insert(keys::u64_key(id), json(record))?;
        Ok(())
    }

    /// Every stored runtime setting.
    pub fn settings(&self) -> Result<Vec<(String, SettingRecord)>> {
        let mut out = Vec::new();
        for row in self.settings_tree()?.iter() {
            let (k, v) = row?;
            let key = String::from_utf8(k.to_vec()).map_err(|_| StoreError::Corrupt {
                tree: "settings",
                detail: "a key is not UTF-8".to_owned(),
            })?;
            out.push((key, from_json(&v, "settings")?));
        }
        Ok(out)
    }

    /// Stores the runtime setting `key`. Not durable until the next [`Store::sync`].
    pub fn put_setting(&self, key: &str, record: &SettingRecord) -> Result<()> {
        self.settings_tree()?.insert(key.as_bytes(), json(record))?;
        Ok(())
    }
}

/// `parley check`'s look at the admin trees of `db`: every name points at a record of that
/// name and every record has its name. Answers what it verified.
pub(super) fn verify(db: &sled::Db) -> Result<String> {
    let (admins, names) = (db.open_tree("admins")?, db.open_tree("admin_names")?);
    let mut n = 0usize;
    for row in admins.iter() {
        let (k, v) = row?;
        let id = keys::decode_u64(&k, "admins")?;
        let record: AdminRecord = from_json(&v, "admins")?;
        let named = names
            .get(record.username.as_bytes())?
            .map(|v| keys::decode_id_value(&v, "admin_names"))
            .transpose()?;
        if named != Some(id) {
            return Err(StoreError::Corrupt {
                tree: "admin_names",
                detail: format!(
                    "admin {id} ({:?}) is not found by its name",
                    record.username
                ),
            });
        }
        n += 1;
    }
    if names.len() != n {
        return Err(StoreError::Corrupt {
            tree: "admin_names",
            detail: format!("{} names for {n} admin accounts", names.len()),
        });
    }
    Ok(format!(
        "admins: {n} accounts, each found by its name and no name left over"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_util::{reopen, temp_store};

    fn admin(name: &str) -> AdminRecord {
        AdminRecord {
            username: name.into(),
            password_hash: "x".into(),
            role: "admin".into(),
            enabled: true,
            created_ms: 1,
            tokens_after_ms: 0,
            created_by: "operator".into(),
        }
    }

    #[test]
    fn names_are_unique_and_records_survive_a_reopen() {
        let (dir, store) = temp_store();
        assert_eq!(store.create_admin(&admin("ann")).unwrap(), Some(2));
        assert_eq!(store.create_admin(&admin("bob")).unwrap(), Some(3));
        assert_eq!(store.create_admin(&admin("ann")).unwrap(), None);
        let mut bob = store.admin(3).unwrap().unwrap();
        bob.enabled = false;
        store.put_admin(3, &bob).unwrap();
        let setting = SettingRecord {
            value: "false".into(),
            at_ms: 5,
            by: "operator".into(),
        };
        store
            .put_setting("auth.registration_open", &setting)
            .unwrap();
        store.sync().unwrap();
        drop(store);
        let store = reopen(dir.path()).unwrap();
        assert_eq!(store.admin_by_name("bob").unwrap().unwrap().1, bob);
        assert!(store.admin_by_name("carl").unwrap().is_none());
        let ids: Vec<u64> = store.admins().unwrap().iter().map(|(i, _)| *i).collect();
        assert_eq!(ids, vec![2, 3]);
        assert_eq!(
            store.settings().unwrap(),
            vec![("auth.registration_open".to_owned(), setting)]
        );
        assert!(verify(&store.db).unwrap().contains("2 accounts"));
        // A name without its record is damage.
        store
            .admin_names_tree()
            .unwrap()
            .insert("ghost", &keys::id_value(9)[..])
            .unwrap();
        assert!(verify(&store.db).is_err());
    }
}
