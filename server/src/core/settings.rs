//! Runtime settings: the few configuration values an admin may change while the server runs
//! (`PUT /admin/v1/settings/{key}`, AnyChat's `PUT /admin/config/{key}`), applied at once and
//! kept in the store's `settings` tree, where they override the configuration file at every
//! start. Each is one atomic, read where it is used, and none is on the message hot path:
//!
//! | key                       | type                            | read by                     |
//! |---------------------------|---------------------------------|-----------------------------|
//! | `auth.registration_open`  | `true` / `false`                | registration (`Register`)   |
//! | `limits.recall_window_ms` | integer, 0..=[`MAX_RECALL_MS`]  | recall by a message's sender, login limits |
//!
//! Every other key of the configuration is read-only (`FORBIDDEN`: change the file and
//! restart); a key the configuration does not have is `NOT_FOUND`; a value of the wrong type
//! or range is `INVALID_ARGUMENT`. Every change is audited (`set_config`, target
//! `config:<key>`, detail the new value) by [`Core::set_setting`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parley_protocol::ErrorCode;

use super::{err, internal, Core, CoreResult};
use crate::clock::now_ms;
use crate::config::Config;
use crate::store::{SettingRecord, Store};

/// The longest recall window an admin may set: 30 days.
pub const MAX_RECALL_MS: u64 = 30 * 24 * 3600 * 1000;

/// A runtime setting as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingInfo {
    /// Its key, as the configuration spells it (`section.field`).
    pub key: &'static str,
    /// Its current value, as text.
    pub value: String,
    /// `bool` or `integer`.
    pub kind: &'static str,
    /// What it changes.
    pub description: &'static str,
}

/// The editable keys: (key, kind, description).
const KEYS: &[(&str, &str, &str)] = &[
    (
        "auth.registration_open",
        "bool",
        "whether new accounts may register (guests and logins are unaffected)",
    ),
    (
        "limits.recall_window_ms",
        "integer",
        "how long after sending a sender may recall its message, in ms (0..=2592000000)",
    ),
];

/// The current values, one atomic each.
#[derive(Debug)]
pub struct Settings {
    registration_open: AtomicBool,
    recall_window_ms: AtomicU64,
}

impl Settings {
    /// The configuration's values, overridden by what the store keeps (a stored value that no
    /// longer validates is logged and ignored).
    pub fn load(cfg: &Config, store: &Store) -> Settings {
        let settings = Settings {
            registration_open: AtomicBool::new(cfg.auth.registration_open),
            recall_window_ms: AtomicU64::new(cfg.limits.recall_window_ms),
        };
        match store.settings() {
            Ok(stored) => {
                for (key, record) in stored {
                    if let Err(e) = settings.apply(&key, &record.value) {
                        tracing::warn!(key, error = %e.message, "a stored runtime setting is ignored");
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "the stored runtime settings cannot be read"),
        }
        settings
    }

    /// Validates `value` for `key` and applies it.
    fn apply(&self, key: &str, value: &str) -> CoreResult<()> {
        match key {
            "auth.registration_open" => {
                let v = match value.trim() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(err(
                            ErrorCode::InvalidArgument,
                            format!("{key} takes true or false, not {value:?}"),
                        ))
                    }
                };
                self.registration_open.store(v, Ordering::Relaxed);
            }
            "limits.recall_window_ms" => {
                let v = value
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|v| *v <= MAX_RECALL_MS)
                    .ok_or_else(|| {
                        err(
                            ErrorCode::InvalidArgument,
                            format!("{key} takes an integer 0..={MAX_RECALL_MS}, not {value:?}"),
                        )
                    })?;
                self.recall_window_ms.store(v, Ordering::Relaxed);
            }
            _ => return Err(err(ErrorCode::NotFound, "no such runtime setting")),
        }
        Ok(())
    }

    /// Whether registration is open.
    pub fn registration_open(&self) -> bool {
        self.registration_open.load(Ordering::Relaxed)
    }

    /// The recall window, ms.
    pub fn recall_window_ms(&self) -> u64 {
        self.recall_window_ms.load(Ordering::Relaxed)
    }

    fn value(&self, key: &str) -> String {
        match key {
            "auth.registration_open" => self.registration_open().to_string(),
            "limits.recall_window_ms" => self.recall_window_ms().to_string(),
            _ => String::new(),
        }
    }
}

/// Whether the configuration has `key` (dotted `section.field`, as the admin views flatten it).
fn config_has(cfg: &Config, key: &str) -> bool {
    let config = cfg.redacted();
    let mut at = Some(&config);
    for part in key.split('.') {
        at = at.and_then(|v| v.get(part));
    }
    at.is_some_and(|v| !v.is_object())
}

impl Core {
    /// The runtime settings with their current values.
    pub fn settings(&self) -> Vec<SettingInfo> {
        KEYS.iter()
            .map(|(key, kind, description)| SettingInfo {
                key,
                value: self.settings.value(key),
                kind,
                description,
            })
            .collect()
    }

    /// Sets the runtime setting `key` to `value` as `actor`: validated, stored durably, then
    /// applied; audited as `set_config` (refused attempts included). `NOT_FOUND` for a key the
    /// configuration does not have, `FORBIDDEN` for one that is read-only, `INVALID_ARGUMENT`
    /// for a bad value.
    pub async fn set_setting(
        &self,
        actor: &super::Actor,
        key: &str,
        value: &str,
    ) -> CoreResult<SettingInfo> {
        let name = actor.audit_name();
        let work = self.store_setting(&name, key, value);
        self.admin_audited(
            actor,
            "set_config",
            format!("config:{key}"),
            value.into(),
            work,
        )
        .await
    }

    async fn store_setting(&self, actor: &str, key: &str, value: &str) -> CoreResult<SettingInfo> {
        let Some(&(key, kind, description)) = KEYS.iter().find(|(k, _, _)| *k == key) else {
            return Err(match config_has(&self.cfg, key) {
                true => err(
                    ErrorCode::Forbidden,
                    format!("{key} is read from the configuration file at start: change it there and restart"),
                ),
                false => err(ErrorCode::NotFound, format!("no configuration key {key:?}")),
            });
        };
        // Validate on a scratch copy first: nothing changes unless the value is good and stored.
        let scratch = Settings {
            registration_open: AtomicBool::new(false),
            recall_window_ms: AtomicU64::new(0),
        };
        scratch.apply(key, value)?;
        let value = scratch.value(key);
        let record = SettingRecord {
            value: value.clone(),
            at_ms: now_ms(),
            by: actor.to_owned(),
        };
        self.store.put_setting(key, &record).map_err(internal)?;
        self.durable().await?;
        self.settings.apply(key, &value)?;
        tracing::info!(key, value, actor, "runtime setting changed");
        Ok(SettingInfo {
            key,
            value,
            kind,
            description,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_validated() {
        let s = Settings {
            registration_open: AtomicBool::new(true),
            recall_window_ms: AtomicU64::new(1),
        };
        s.apply("auth.registration_open", "false").unwrap();
        assert!(!s.registration_open());
        s.apply("limits.recall_window_ms", " 5000 ").unwrap();
        assert_eq!(s.recall_window_ms(), 5000);
        for (k, v) in [
            ("auth.registration_open", "yes"),
            ("limits.recall_window_ms", "-1"),
            ("limits.recall_window_ms", "99999999999999"),
            ("limits.recall_window_ms", ""),
        ] {
            assert_eq!(s.apply(k, v).unwrap_err().code, ErrorCode::InvalidArgument);
        }
        assert_eq!(s.apply("nope", "1").unwrap_err().code, ErrorCode::NotFound);
        assert_eq!(s.recall_window_ms(), 5000);
    }

    #[test]
    fn read_only_keys_are_told_from_unknown_ones() {
        let cfg = Config::default();
        assert!(config_has(&cfg, "limits.max_frame_bytes"));
        assert!(!config_has(&cfg, "limits"));
        assert!(!config_has(&cfg, "limits.nope"));
    }
}
