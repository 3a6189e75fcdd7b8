//! Users, account names and session tokens.

use parley_protocol::ids::{Account, DeviceId, UserId};
use serde::{Deserialize, Serialize};

use super::keys::{self, u64_key};
use super::{from_json, get_json, json, Result, Store};

/// A user account.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserRecord {
    /// Login name.
    pub account: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Creation time, Unix ms.
    pub created_ms: u64,
    /// A temporary guest account (no password; limited rights).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub guest: bool,
    /// Banned by an administrator: no login.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub banned: bool,
}

/// Access or refresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenKind {
    /// Short-lived, for logins.
    Access,
    /// Long-lived, to obtain new tokens.
    Refresh,
}

/// What a token grants. Only the token's SHA-256 is stored, never the token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Owner.
    pub user: u64,
    /// Device the token was issued to.
    pub device: String,
    /// Access or refresh.
    pub kind: TokenKind,
    /// Expiry, Unix ms.
    pub expires_ms: u64,
    /// The owner's account name, so a token login reads this record only (account names
    /// never change). Absent in tokens issued before it was added: those read the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// The current token pair of one device (so logout can revoke it).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeviceTokens {
    /// SHA-256 of the access token.
    pub access: [u8; 32],
    /// SHA-256 of the refresh token.
    pub refresh: [u8; 32],
    /// `parley.v1.Platform` number of the device.
    #[serde(default)]
    pub platform: i32,
    /// When these tokens were issued, Unix ms.
    #[serde(default)]
    pub issued_ms: u64,
}

/// A device's push token, for the offline-push webhook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushToken {
    /// Device it belongs to.
    pub device: String,
    /// "apns", "fcm" ...
    pub provider: String,
    /// The token.
    pub token: String,
}

fn device_key(user: UserId, device: &DeviceId) -> Vec<u8> {
    let mut k = u64_key(user.get()).to_vec();
    k.extend_from_slice(device.as_str().as_bytes());
    k
}

/// The key under which `accounts` maps an account's skeleton ([`Account::skeleton`]) to its
/// user: a 0 byte first, which no account name holds, then the skeleton.
fn skeleton_key(skeleton: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + skeleton.len());
    k.push(0);
    k.extend_from_slice(skeleton.as_bytes());
    k
}

/// Marks (in `meta`) a store whose accounts all have their skeleton entries.
const SKELETONS_INDEXED: &str = "account_skeletons";

impl Store {
    /// Creates a user; `None` if the account name is taken, or another account has its
    /// skeleton ("Alice" when "alice" exists).
    pub fn create_user(&self, account: &Account, record: &UserRecord) -> Result<Option<UserId>> {
        let id = self.generate_id()?;
        let user = UserId::try_from(id).map_err(|e| super::StoreError::Corrupt {
            tree: "users",
            detail: e.to_string(),
        })?;
        // Write the record first: a crash between the two writes leaves an unreachable record,
        // never a name pointing at nothing.
        self.users.insert(u64_key(id), json(record))?;
        // The skeleton is claimed first: of two names with one skeleton registering at once,
        // one wins it and the other gives up before claiming its name.
        let skeleton = skeleton_key(&account.skeleton());
        let value = keys::id_value(id);
        let claimed =
            self.accounts
                .compare_and_swap(&skeleton, None as Option<&[u8]>, Some(&value[..]))?;
        if claimed.is_err() {
            self.users.remove(u64_key(id))?;
            return Ok(None);
        }
        let claimed = self.accounts.compare_and_swap(
            account.as_str(),
            None as Option<&[u8]>,
            Some(&value[..]),
        )?;
        if claimed.is_err() {
            self.accounts.remove(&skeleton)?;
            self.users.remove(u64_key(id))?;
            return Ok(None);
        }
        Ok(Some(user))
    }

    /// True if a new account could not take `account`: the name, or its skeleton, is taken.
    pub fn account_name_taken(&self, account: &Account) -> Result<bool> {
        Ok(self.accounts.contains_key(account.as_str())?
            || self
                .accounts
                .contains_key(skeleton_key(&account.skeleton()))?)
    }

    /// Looks a user up by account name: the exact name first (every account, also one made
    /// before names were compared by skeleton, is found by the name it was made with), then
    /// the account holding the name's skeleton, if its name differs from this one only in case
    /// ("ALICE" finds "alice"; "a.lice" does not).
    pub fn user_by_account(&self, account: &str) -> Result<Option<(UserId, UserRecord)>> {
        if let Some(id) = self.accounts.get(account)? {
            let user = keys::user_value(&id, "accounts")?;
            return Ok(self.user(user)?.map(|r| (user, r)));
        }
        let Ok(name) = Account::try_from(account) else {
            return Ok(None);
        };
        let Some(id) = self.accounts.get(skeleton_key(&name.skeleton()))? else {
            return Ok(None);
        };
        let user = keys::user_value(&id, "accounts")?;
        Ok(self
            .user(user)?
            .filter(|r| r.account.eq_ignore_ascii_case(account))
            .map(|r| (user, r)))
    }

    /// Gives every account made before skeletons were kept its skeleton entry, once per data
    /// directory (at open). Where old accounts share a skeleton ("alice" and "Alice" both
    /// registered before), the oldest account gets it; the others keep their names and log in
    /// with them exactly, and no new account can take a name with that skeleton.
    pub(super) fn index_account_skeletons(&self, meta: &sled::Tree) -> Result<()> {
        if meta.get(SKELETONS_INDEXED)?.is_some() {
            return Ok(());
        }
        let mut accounts = Vec::new();
        for kv in self.accounts.iter() {
            let (k, v) = kv?;
            if k.first() == Some(&0) {
                continue;
            }
            let Some(name) = std::str::from_utf8(&k)
                .ok()
                .and_then(|s| Account::try_from(s).ok())
            else {
                continue;
            };
            accounts.push((keys::user_value(&v, "accounts")?, name));
        }
        accounts.sort_by_key(|(user, _)| *user);
        for (user, name) in &accounts {
            let value = keys::id_value(user.get());
            // Taken already (by an older account): left as it is.
            let _ = self.accounts.compare_and_swap(
                skeleton_key(&name.skeleton()),
                None as Option<&[u8]>,
                Some(&value[..]),
            )?;
        }
        meta.insert(SKELETONS_INDEXED, &[1u8][..])?;
        if !accounts.is_empty() {
            tracing::info!(
                accounts = accounts.len(),
                "account names indexed by skeleton (case and look-alike duplicates are refused)"
            );
        }
        Ok(())
    }

    /// Looks a user up by id.
    pub fn user(&self, user: UserId) -> Result<Option<UserRecord>> {
        get_json(&self.users, u64_key(user.get()), "users")
    }

    /// Stores a new token pair for a device, revoking the device's previous pair.
    pub fn replace_device_tokens(
        &self,
        user: UserId,
        device: &DeviceId,
        access: ([u8; 32], &TokenRecord),
        refresh: ([u8; 32], &TokenRecord),
        platform: i32,
        issued_ms: u64,
    ) -> Result<()> {
        self.tokens.insert(access.0, json(access.1))?;
        self.tokens.insert(refresh.0, json(refresh.1))?;
        let pair = DeviceTokens {
            access: access.0,
            refresh: refresh.0,
            platform,
            issued_ms,
        };
        if let Some(old) = self.devices.insert(device_key(user, device), json(&pair))? {
            let old: DeviceTokens = from_json(&old, "devices")?;
            self.tokens.remove(old.access)?;
            self.tokens.remove(old.refresh)?;
        }
        Ok(())
    }

    /// The record of a token, by the token's hash.
    pub fn token(&self, hash: &[u8; 32]) -> Result<Option<TokenRecord>> {
        get_json(&self.tokens, hash, "tokens")
    }

    /// Replaces a user's password hash.
    pub fn set_password_hash(&self, user: UserId, hash: String) -> Result<()> {
        if let Some(mut record) = self.user(user)? {
            record.password_hash = hash;
            self.users.insert(u64_key(user.get()), json(&record))?;
        }
        Ok(())
    }

    /// Bans or unbans a user (false if there is no such user).
    pub fn set_banned(&self, user: UserId, banned: bool) -> Result<bool> {
        let Some(mut record) = self.user(user)? else {
            return Ok(false);
        };
        record.banned = banned;
        self.users.insert(u64_key(user.get()), json(&record))?;
        Ok(true)
    }

    /// The devices of `user` that hold tokens.
    pub fn devices_of(&self, user: UserId) -> Result<Vec<(DeviceId, DeviceTokens)>> {
        self.devices
            .scan_prefix(u64_key(user.get()))
            .map(|kv| {
                let (k, v) = kv?;
                let id = String::from_utf8_lossy(&k[8..]).into_owned();
                let id = DeviceId::try_from(id).map_err(|e| super::StoreError::Corrupt {
                    tree: "devices",
                    detail: e.to_string(),
                })?;
                Ok((id, from_json(&v, "devices")?))
            })
            .collect()
    }

    /// Sets (empty token: removes) a device's push token.
    pub fn set_push_token(
        &self,
        user: UserId,
        device: &DeviceId,
        provider: &str,
        token: &str,
    ) -> Result<()> {
        let key = device_key(user, device);
        if token.is_empty() {
            self.push_tokens.remove(key)?;
        } else {
            let record = PushToken {
                device: device.to_string(),
                provider: provider.to_owned(),
                token: token.to_owned(),
            };
            self.push_tokens.insert(key, json(&record))?;
        }
        Ok(())
    }

    /// A user's push tokens.
    pub fn push_tokens(&self, user: UserId) -> Result<Vec<PushToken>> {
        self.push_tokens
            .scan_prefix(u64_key(user.get()))
            .values()
            .map(|v| from_json(&v?, "push_tokens"))
            .collect()
    }

    /// Revokes the device's tokens (logout), and forgets its push token: a device signed out
    /// gets no more notifications.
    pub fn revoke_device(&self, user: UserId, device: &DeviceId) -> Result<()> {
        self.push_tokens.remove(device_key(user, device))?;
        if let Some(old) = self.devices.remove(device_key(user, device))? {
            let old: DeviceTokens = from_json(&old, "devices")?;
            self.tokens.remove(old.access)?;
            self.tokens.remove(old.refresh)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::temp_store;
    use super::*;

    fn rec(account: &str) -> UserRecord {
        UserRecord {
            guest: false,
            banned: false,
            account: account.into(),
            password_hash: "h".into(),
            created_ms: 1,
        }
    }

    #[test]
    fn account_names_are_unique() {
        let (_d, store) = temp_store();
        let alice = Account::try_from("alice").unwrap();
        let id = store.create_user(&alice, &rec("alice")).unwrap().unwrap();
        assert!(store.create_user(&alice, &rec("alice")).unwrap().is_none());
        assert_eq!(store.user_by_account("alice").unwrap().unwrap().0, id);
        assert!(store.user_by_account("bob").unwrap().is_none());
    }

    #[test]
    fn names_with_one_skeleton_are_one_account() {
        let (_d, store) = temp_store();
        let name = |s: &str| Account::try_from(s).unwrap();
        let id = store
            .create_user(&name("alice"), &rec("alice"))
            .unwrap()
            .unwrap();
        for same in ["Alice", "a.lice", "a1ice"] {
            assert!(store.account_name_taken(&name(same)).unwrap(), "{same}");
            assert!(
                store
                    .create_user(&name(same), &rec(same))
                    .unwrap()
                    .is_none(),
                "{same}"
            );
        }
        // Found in any case, not by a look-alike with other characters.
        assert_eq!(store.user_by_account("ALICE").unwrap().unwrap().0, id);
        assert!(store.user_by_account("a.lice").unwrap().is_none());
        assert!(!store.account_name_taken(&name("alicia")).unwrap());
    }

    /// A store from before skeletons: "alice" (older) and "Alice" both exist. Both keep logging
    /// in by their exact names; the older one gets the skeleton; no third can join them.
    #[test]
    fn old_accounts_are_indexed_once_and_keep_their_names() {
        let (_d, store) = temp_store();
        let meta = store.db.open_tree("meta").unwrap();
        meta.remove(SKELETONS_INDEXED).unwrap();
        let mut ids = Vec::new();
        for (n, account) in [(5u64, "alice"), (9, "Alice"), (7, "bob")] {
            store.users.insert(u64_key(n), json(&rec(account))).unwrap();
            store
                .accounts
                .insert(account, &keys::id_value(n)[..])
                .unwrap();
            ids.push(UserId::try_from(n).unwrap());
        }
        assert!(
            store.user_by_account("BOB").unwrap().is_none(),
            "not indexed yet"
        );
        store.index_account_skeletons(&meta).unwrap();
        assert!(meta.get(SKELETONS_INDEXED).unwrap().is_some());
        assert_eq!(store.user_by_account("alice").unwrap().unwrap().0, ids[0]);
        assert_eq!(store.user_by_account("Alice").unwrap().unwrap().0, ids[1]);
        assert_eq!(store.user_by_account("ALICE").unwrap().unwrap().0, ids[0]);
        assert_eq!(store.user_by_account("BOB").unwrap().unwrap().0, ids[2]);
        let taken = Account::try_from("aLice").unwrap();
        assert!(store.create_user(&taken, &rec("aLice")).unwrap().is_none());
    }

    #[test]
    fn new_tokens_revoke_old_ones() {
        let (_d, store) = temp_store();
        let user = UserId::try_from(1).unwrap();
        let dev = DeviceId::try_from("d").unwrap();
        let t = |kind| TokenRecord {
            user: 1,
            device: "d".into(),
            kind,
            expires_ms: 10,
            account: None,
        };
        let (a, r) = (t(TokenKind::Access), t(TokenKind::Refresh));
        store
            .replace_device_tokens(user, &dev, ([1; 32], &a), ([2; 32], &r), 0, 0)
            .unwrap();
        store
            .replace_device_tokens(user, &dev, ([3; 32], &a), ([4; 32], &r), 0, 0)
            .unwrap();
        assert!(store.token(&[1; 32]).unwrap().is_none());
        assert!(store.token(&[3; 32]).unwrap().is_some());
        store.revoke_device(user, &dev).unwrap();
        assert!(store.token(&[3; 32]).unwrap().is_none());
        assert!(store.token(&[4; 32]).unwrap().is_none());
    }

    #[test]
    fn token_records_carry_the_account_and_old_ones_still_read() {
        let old = br#"{"user":7,"device":"d","kind":"Access","expires_ms":10}"#;
        let r: TokenRecord = serde_json::from_slice(old).unwrap();
        assert_eq!((r.user, r.account), (7, None));
        let new = TokenRecord {
            account: Some("alice".into()),
            ..r
        };
        let back: TokenRecord = serde_json::from_slice(&serde_json::to_vec(&new).unwrap()).unwrap();
        assert_eq!(back.account.as_deref(), Some("alice"));
    }
}
