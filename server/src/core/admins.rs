//! Admin accounts: people who run the server's admin operations under their own name, beside
//! the operator's root credential (`[admin] token`).
//!
//! - **The operator** is admin **1**, named `admin`, a `super_admin` that has no record and
//!   cannot be disabled: whoever presents the `[admin] token` (to `/admin/v1`, or as the
//!   password of `admin` to a dialect's admin login). It bootstraps the others.
//! - **Accounts** (store tree `admins`, ids from 2): a unique user name, an argon2id password
//!   hash (made and checked on the server's bounded hashing queue, throttled per source like
//!   user logins), a role (`super_admin` or `admin`), enabled or disabled, a creation time.
//! - Only a `super_admin` creates admins and enables or disables them; nobody disables the
//!   operator, and a super admin does not disable itself.
//! - **Every admin request names its [`Actor`]** and is checked here ([`Core::acting_admin`]):
//!   the account must exist and be enabled, and a token issued to it must be younger than its
//!   last disabling. Disabling an admin therefore stops its tokens at their next request.
//! - **Audit.** Admin actions run through [`Core::admin_audited`], which records the actor
//!   (`operator`, or `admin:<id>`) and checks it inside the audited work, so a refused attempt
//!   of a disabled admin is recorded too. Creating an admin (`create_admin`) and changing its
//!   status (`enable_admin`, `disable_admin`) are audited like bans.
//!
//! Who signs admin tokens is the surface's business (AnyChat's dialect signs its own, holding
//! the admin's id and the time it was issued): the core only checks the actor it is given.

use std::future::Future;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use parley_protocol::ErrorCode;

use super::auth::DUMMY_HASH;
use super::throttle::Source;
use super::{err, internal, Core, CoreResult};
use crate::clock::now_ms;
use crate::store::{AdminRecord, MAX_ADMINS};

/// The operator's admin id.
pub const OPERATOR_ID: u64 = 1;
/// The operator's admin name.
pub const OPERATOR_NAME: &str = "admin";
/// Longest admin name, in bytes.
const MAX_NAME: usize = 64;
/// Shortest and longest admin password, in bytes.
const PASSWORD_BYTES: std::ops::RangeInclusive<usize> = 8..=1024;

/// Who runs an admin request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Actor {
    /// The `[admin] token` (admin 1).
    Operator,
    /// An admin account, by a token issued at `issued_ms` (Unix ms).
    Admin {
        /// Its id.
        id: u64,
        /// When the token it presents was issued.
        issued_ms: u64,
    },
}

impl Actor {
    /// The actor as the audit log names it: `operator` or `admin:<id>`.
    pub fn audit_name(&self) -> String {
        match self {
            Actor::Operator => super::audit::OPERATOR.to_owned(),
            Actor::Admin { id, .. } => format!("admin:{id}"),
        }
    }
}

/// An admin's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminRole {
    /// May also create admins and change their status.
    SuperAdmin,
    /// Runs the admin operations on users, groups, settings and the audit log.
    Admin,
}

impl AdminRole {
    /// `super_admin` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminRole::SuperAdmin => "super_admin",
            AdminRole::Admin => "admin",
        }
    }

    /// The role named `name` (`INVALID_ARGUMENT` for another).
    pub fn parse(name: &str) -> CoreResult<AdminRole> {
        match name {
            "super_admin" => Ok(AdminRole::SuperAdmin),
            "admin" => Ok(AdminRole::Admin),
            other => Err(err(
                ErrorCode::InvalidArgument,
                format!("role must be super_admin or admin, not {other:?}"),
            )),
        }
    }
}

/// An admin as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminInfo {
    /// Its id (1: the operator).
    pub id: u64,
    /// Its login name.
    pub username: String,
    /// Its role.
    pub role: AdminRole,
    /// Whether it may act.
    pub enabled: bool,
    /// Creation time, Unix ms (0 for the operator).
    pub created_ms: u64,
}

fn operator() -> AdminInfo {
    AdminInfo {
        id: OPERATOR_ID,
        username: OPERATOR_NAME.to_owned(),
        role: AdminRole::SuperAdmin,
        enabled: true,
        created_ms: 0,
    }
}

fn info(id: u64, r: &AdminRecord) -> AdminInfo {
    AdminInfo {
        id,
        username: r.username.clone(),
        // A role the store does not know (never written) acts as the lesser one.
        role: AdminRole::parse(&r.role).unwrap_or(AdminRole::Admin),
        enabled: r.enabled,
        created_ms: r.created_ms,
    }
}

fn admin_failed() -> parley_protocol::frames::ErrorInfo {
    err(ErrorCode::AuthFailed, "wrong admin name or password")
}

/// A new admin's name: 1..=64 bytes of ASCII letters, digits, `_`, `-`, `.`; not the
/// operator's name nor `operator`.
fn check_name(name: &str) -> CoreResult<()> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if name.is_empty() || name.len() > MAX_NAME || !ok_chars {
        return Err(err(
            ErrorCode::InvalidArgument,
            format!("username must be 1..={MAX_NAME} ASCII letters, digits, '_', '-' or '.'"),
        ));
    }
    if name == OPERATOR_NAME || name == super::audit::OPERATOR {
        return Err(err(
            ErrorCode::Conflict,
            format!("the name {name:?} is the operator's"),
        ));
    }
    Ok(())
}

impl Core {
    /// The admin `actor` is, if it may act now: the operator always (its credential was
    /// checked by the surface); an account if it exists, is enabled, and the token it presents
    /// was issued after it was last disabled (`AUTH_FAILED` otherwise). One read of a small
    /// tree: every admin request calls it.
    pub fn acting_admin(&self, actor: &Actor) -> CoreResult<AdminInfo> {
        let (id, issued_ms) = match *actor {
            Actor::Operator => return Ok(operator()),
            Actor::Admin { id, issued_ms } => (id, issued_ms),
        };
        let record = self
            .store
            .admin(id)
            .map_err(internal)?
            .ok_or_else(|| err(ErrorCode::AuthFailed, "no such admin"))?;
        if !record.enabled {
            return Err(err(ErrorCode::AuthFailed, "this admin account is disabled"));
        }
        if issued_ms < record.tokens_after_ms {
            return Err(err(
                ErrorCode::AuthFailed,
                "this admin token was revoked; log in again",
            ));
        }
        Ok(info(id, &record))
    }

    /// A super admin acting as `actor` (`FORBIDDEN` for an `admin`).
    fn acting_super_admin(&self, actor: &Actor) -> CoreResult<AdminInfo> {
        let me = self.acting_admin(actor)?;
        if me.role != AdminRole::SuperAdmin {
            return Err(err(
                ErrorCode::Forbidden,
                "only a super_admin may manage admins",
            ));
        }
        Ok(me)
    }

    /// Runs the admin action `work` for `actor` and audits it: the actor is checked first
    /// (inside the audited work, so a disabled admin's attempt is recorded as refused).
    pub async fn admin_audited<T>(
        &self,
        actor: &Actor,
        action: &str,
        target: String,
        detail: String,
        work: impl Future<Output = CoreResult<T>>,
    ) -> CoreResult<T> {
        let checked = async {
            self.acting_admin(actor)?;
            work.await
        };
        self.audited(&actor.audit_name(), action, target, detail, checked)
            .await
    }

    /// An admin's password login from `source`: the operator is `admin` with the `[admin]
    /// token` as its password (no hashing; no operator without a token); an account's password
    /// is checked on the hashing queue, throttled like user logins. `AUTH_FAILED` for a wrong
    /// name or password (one message for both, and an unknown name costs a hash too);
    /// `FORBIDDEN` for a disabled account with the right password.
    pub async fn admin_login(
        &self,
        username: &str,
        password: &str,
        source: Source,
    ) -> CoreResult<AdminInfo> {
        // Throttled under a name of its own, apart from a user account of the same name.
        let key = format!("admin:{username}");
        self.check_throttle(source, &key)?;
        if username == OPERATOR_NAME {
            let ok = self.cfg.admin.token.as_deref().is_some_and(|expected| {
                parley_admin_http::ops::admin::admin_token_matches(expected, password)
            });
            if !ok {
                return Err(self.password_failed(source, &key, admin_failed()));
            }
            self.throttle().succeeded(source, &key);
            return Ok(operator());
        }
        if !PASSWORD_BYTES.contains(&password.len()) || username.len() > MAX_NAME {
            return Err(self.password_failed(source, &key, admin_failed()));
        }
        let found = self.store.admin_by_name(username).map_err(internal)?;
        let stored = found.as_ref().map(|(_, r)| r.password_hash.clone());
        let password = password.to_owned();
        let ok = self
            .hash_blocking(source, move || {
                let hash = stored.unwrap_or_else(|| DUMMY_HASH.to_owned());
                PasswordHash::new(&hash).is_ok_and(|h| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &h)
                        .is_ok()
                })
            })
            .await?;
        let Some((id, record)) = found.filter(|_| ok) else {
            return Err(self.password_failed(source, &key, admin_failed()));
        };
        self.throttle().succeeded(source, &key);
        if !record.enabled {
            return Err(err(ErrorCode::Forbidden, "this admin account is disabled"));
        }
        Ok(info(id, &record))
    }

    /// Every admin, the operator first, for an admin that may act.
    pub fn admins(&self, actor: &Actor) -> CoreResult<Vec<AdminInfo>> {
        self.acting_admin(actor)?;
        let mut out = vec![operator()];
        for (id, r) in self.store.admins().map_err(internal)? {
            out.push(info(id, &r));
        }
        Ok(out)
    }

    /// Creates an admin account, a super admin's action, audited as `create_admin` (refused
    /// attempts included). `role` is `super_admin` or `admin` (empty: `admin`).
    /// `INVALID_ARGUMENT` for a bad name, password or role, `CONFLICT` for a name in use,
    /// `FORBIDDEN` past [`MAX_ADMINS`].
    pub async fn create_admin(
        &self,
        actor: &Actor,
        username: &str,
        password: String,
        role: &str,
        source: Source,
    ) -> CoreResult<AdminInfo> {
        let role = if role.is_empty() { "admin" } else { role };
        let work = async {
            let role = AdminRole::parse(role)?;
            self.insert_admin(actor, username, password, role, source)
                .await
        };
        let (target, detail) = (format!("admin_name:{username}"), format!("role={role}"));
        self.admin_audited(actor, "create_admin", target, detail, work)
            .await
    }

    async fn insert_admin(
        &self,
        actor: &Actor,
        username: &str,
        password: String,
        role: AdminRole,
        source: Source,
    ) -> CoreResult<AdminInfo> {
        self.acting_super_admin(actor)?;
        check_name(username)?;
        if !PASSWORD_BYTES.contains(&password.len()) {
            return Err(err(
                ErrorCode::InvalidArgument,
                "password must be 8..=1024 bytes",
            ));
        }
        if self.store.admin_count().map_err(internal)? >= MAX_ADMINS {
            return Err(err(
                ErrorCode::Forbidden,
                format!("at most {MAX_ADMINS} admin accounts"),
            ));
        }
        if self
            .store
            .admin_by_name(username)
            .map_err(internal)?
            .is_some()
        {
            return Err(err(ErrorCode::Conflict, "an admin of that name exists"));
        }
        let hash = self
            .hash_blocking(source, move || {
                let salt = SaltString::generate(&mut OsRng);
                Argon2::default()
                    .hash_password(password.as_bytes(), &salt)
                    .map(|h| h.to_string())
            })
            .await?
            .map_err(|_| err(ErrorCode::Internal, "internal error"))?;
        let record = AdminRecord {
            username: username.to_owned(),
            password_hash: hash,
            role: role.as_str().to_owned(),
            enabled: true,
            created_ms: now_ms(),
            tokens_after_ms: 0,
            created_by: actor.audit_name(),
        };
        let id = self
            .store
            .create_admin(&record)
            .map_err(internal)?
            .ok_or_else(|| err(ErrorCode::Conflict, "an admin of that name exists"))?;
        self.durable().await?;
        Ok(info(id, &record))
    }

    /// Enables or disables the admin `id`, a super admin's action, audited as `enable_admin`
    /// or `disable_admin`. Disabling revokes every token issued to it so far. `FORBIDDEN` for
    /// the operator or a super admin disabling itself, `NOT_FOUND` for no such admin.
    pub async fn set_admin_enabled(
        &self,
        actor: &Actor,
        id: u64,
        enabled: bool,
    ) -> CoreResult<AdminInfo> {
        let action = if enabled {
            "enable_admin"
        } else {
            "disable_admin"
        };
        let work = self.switch_admin(actor, id, enabled);
        self.admin_audited(actor, action, format!("admin:{id}"), String::new(), work)
            .await
    }

    async fn switch_admin(&self, actor: &Actor, id: u64, enabled: bool) -> CoreResult<AdminInfo> {
        self.acting_super_admin(actor)?;
        if id == OPERATOR_ID {
            return Err(err(
                ErrorCode::Forbidden,
                "the operator is the [admin] token: change it in the configuration",
            ));
        }
        if !enabled && matches!(*actor, Actor::Admin { id: me, .. } if me == id) {
            return Err(err(
                ErrorCode::Forbidden,
                "a super admin cannot disable itself",
            ));
        }
        let mut record = self
            .store
            .admin(id)
            .map_err(internal)?
            .ok_or_else(|| err(ErrorCode::NotFound, "no such admin"))?;
        if record.enabled != enabled {
            record.enabled = enabled;
            if !enabled {
                record.tokens_after_ms = now_ms().saturating_add(1);
            }
            self.store.put_admin(id, &record).map_err(internal)?;
            self.durable().await?;
        }
        Ok(info(id, &record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_roles_are_checked() {
        assert!(check_name("ops.team-1_a").is_ok());
        for bad in ["", "with space", "é", &"a".repeat(65)] {
            assert_eq!(
                check_name(bad).unwrap_err().code,
                ErrorCode::InvalidArgument
            );
        }
        assert_eq!(check_name("admin").unwrap_err().code, ErrorCode::Conflict);
        assert_eq!(
            check_name("operator").unwrap_err().code,
            ErrorCode::Conflict
        );
        assert_eq!(AdminRole::parse("admin").unwrap(), AdminRole::Admin);
        assert!(AdminRole::parse("root").is_err());
        assert_eq!(
            Actor::Admin {
                id: 7,
                issued_ms: 0
            }
            .audit_name(),
            "admin:7"
        );
        assert_eq!(Actor::Operator.audit_name(), "operator");
    }
}
