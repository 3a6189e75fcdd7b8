//! Accounts and tokens: register, password and token login, refresh, logout.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use parley_protocol::frames::{Credential, Device, DeviceEntry, LoginResult, Platform};
use parley_protocol::ids::{Account, DeviceId, UserId};
use parley_protocol::session::Identity;
use parley_protocol::values::{NewPassword, Password};
use parley_protocol::ErrorCode;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::hashing::HashRefused;
use super::throttle::Source;
use super::{err, internal, Core, CoreResult};
use crate::clock::now_ms;
use crate::store::{TokenKind, TokenRecord, UserRecord};

/// A successful authentication.
#[derive(Debug)]
pub struct LoginOutcome {
    /// Who logged in.
    pub identity: Identity,
    /// What to answer (the caller fills in `session_id`).
    pub result: LoginResult,
}

fn new_token() -> (String, [u8; 32]) {
    let mut raw = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut raw);
    let token = hex::encode(raw);
    let hash = token_hash(&token);
    (token, hash)
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn auth_failed() -> parley_protocol::frames::ErrorInfo {
    err(ErrorCode::AuthFailed, "wrong account or password")
}

/// Whole seconds of `d`, rounded up, for messages.
fn secs(d: std::time::Duration) -> u64 {
    d.as_millis().div_ceil(1000) as u64
}

impl Core {
    /// Runs a password hash for `source` on the hashing queue, or refuses at once with
    /// `RATE_LIMITED` and a retry advice if there is no room for it (`hashing.rs`).
    pub(super) async fn hash_blocking<T: Send + 'static>(
        &self,
        source: Source,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> CoreResult<T> {
        self.hashes
            .run(source, f)
            .await
            .map_err(|refused| match refused {
                HashRefused::Full(wait) => err(
                    ErrorCode::RateLimited,
                    format!(
                        "the server is busy checking passwords; retry in {} s",
                        secs(wait)
                    ),
                )
                .with_retry_after(wait),
                HashRefused::SourceBusy(wait) => err(
                    ErrorCode::RateLimited,
                    format!(
                        "too many password requests from this address at once; retry in {} s",
                        secs(wait)
                    ),
                )
                .with_retry_after(wait),
                HashRefused::Failed => err(ErrorCode::Internal, "internal error"),
            })
    }

    pub(super) fn throttle(&self) -> std::sync::MutexGuard<'_, super::throttle::Throttle> {
        // Plain counters: a panic elsewhere while holding the lock leaves them usable.
        self.throttle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refuses a password attempt of `source` on `account` while either still has to wait
    /// after earlier failures (`throttle.rs`). Checked before any hashing, so a throttled
    /// attacker costs no CPU.
    pub(super) fn check_throttle(&self, source: Source, account: &str) -> CoreResult<()> {
        let now = tokio::time::Instant::now().into_std();
        match self.throttle().check(source, account, now) {
            None => Ok(()),
            Some(wait) => {
                self.stats
                    .logins_throttled
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(%source, ?wait, "password attempt throttled");
                Err(err(
                    ErrorCode::RateLimited,
                    format!(
                        "too many failed password attempts; retry in {} s",
                        secs(wait)
                    ),
                )
                .with_retry_after(wait))
            }
        }
    }

    /// `error` for a failed password attempt, counted against `source` and the pair; it
    /// announces the wait that now applies before the next attempt, if any.
    pub(super) fn password_failed(
        &self,
        source: Source,
        account: &str,
        error: parley_protocol::frames::ErrorInfo,
    ) -> parley_protocol::frames::ErrorInfo {
        let now = tokio::time::Instant::now().into_std();
        match self.throttle().failed(source, account, now) {
            Some(wait) => error.with_retry_after(wait),
            None => error,
        }
    }

    /// Sources and (account, source) pairs the login throttle tracks now.
    pub fn login_throttle_tracked(&self) -> (usize, usize) {
        self.throttle().tracked()
    }

    /// Password requests refused because the hashing queue (or the source's share) was full.
    pub fn hash_refusals(&self) -> u64 {
        self.hashes
            .refused
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Creates an account and logs it in. `source` is where the request comes from: the
    /// password hash is queued under it, and a source that must wait after failed logins is
    /// refused here too (so it cannot switch to registrations to keep the hashers busy).
    pub async fn register(
        &self,
        account: Account,
        password: NewPassword,
        device: Device,
        source: Source,
    ) -> CoreResult<LoginOutcome> {
        // A runtime setting (settings.rs): an admin may close registration.
        if !self.settings.registration_open() {
            return Err(err(ErrorCode::Forbidden, "registration is closed"));
        }
        account
            .check_new()
            .map_err(|e| err(ErrorCode::InvalidArgument, e.to_string()))?;
        // Throttled by skeleton: "Alice" and "alice" are one account to an attacker too.
        self.check_throttle(source, &account.skeleton())?;
        if self.store.account_name_taken(&account).map_err(internal)? {
            return Err(err(
                ErrorCode::Conflict,
                "account already exists (names differing only in case, separators, 0/o or \
                 1/l are the same account)",
            ));
        }
        let hash = self
            .hash_blocking(source, move || {
                let salt = SaltString::generate(&mut OsRng);
                Argon2::default()
                    .hash_password(password.expose().as_bytes(), &salt)
                    .map(|h| h.to_string())
            })
            .await?
            .map_err(|_| err(ErrorCode::Internal, "internal error"))?;
        let record = UserRecord {
            account: account.to_string(),
            password_hash: hash,
            created_ms: now_ms(),
            guest: false,
            banned: false,
        };
        let user = self
            .store
            .create_user(&account, &record)
            .map_err(internal)?
            .ok_or_else(|| err(ErrorCode::Conflict, "account already exists"))?;
        let outcome = self.issue(user, account, device)?;
        self.durable().await?;
        Ok(outcome)
    }

    /// Logs in with a password or an access token. A password attempt from `source` is
    /// throttled after failures (`throttle.rs`) and hashed on the fair queue (`hashing.rs`);
    /// a token login is cheap and neither.
    pub async fn login(
        &self,
        credential: Credential,
        device: Device,
        source: Source,
    ) -> CoreResult<LoginOutcome> {
        match credential {
            Credential::Password { account, password } => {
                let skeleton = account.skeleton();
                self.check_throttle(source, &skeleton)?;
                let found = self
                    .store
                    .user_by_account(account.as_str())
                    .map_err(internal)?;
                let stored_hash = found.as_ref().map(|(_, r)| r.password_hash.clone());
                let ok = self
                    .hash_blocking(source, move || {
                        // Verify against a dummy hash for unknown accounts, so response time does
                        // not tell which accounts exist.
                        let hash = stored_hash.unwrap_or_else(|| DUMMY_HASH.to_owned());
                        PasswordHash::new(&hash).is_ok_and(|h| {
                            Argon2::default()
                                .verify_password(password.expose().as_bytes(), &h)
                                .is_ok()
                        })
                    })
                    .await?;
                if !ok || found.is_none() {
                    return Err(self.password_failed(source, &skeleton, auth_failed()));
                }
                // The right password: this source's failures on this account are forgotten.
                self.throttle().succeeded(source, &skeleton);
                match found {
                    Some((_, record)) if record.banned => {
                        Err(err(ErrorCode::Banned, "this account is banned"))
                    }
                    Some((user, record)) => {
                        // The name the account was made with ("ALICE" logs in as "alice").
                        let account = Account::try_from(record.account).unwrap_or(account);
                        let outcome = self.issue(user, account, device)?;
                        self.durable().await?;
                        Ok(outcome)
                    }
                    None => Err(auth_failed()),
                }
            }
            Credential::AccessToken(token) => {
                let (user, record) = self.check_token(&token, TokenKind::Access, &device)?;
                // The account name travels in the token's record: a token login reads nothing
                // else from the store (its cache holds one record per logged-in device).
                let account = match record.account.clone().map(Account::try_from) {
                    Some(Ok(account)) => account,
                    _ => self.account_of(user)?,
                };
                // Token logins are cheap: no new tokens, no store writes.
                Ok(self.outcome(
                    user,
                    account,
                    device,
                    token,
                    record.expires_ms,
                    String::new(),
                    0,
                ))
            }
        }
    }

    /// Whose access token this is, on the device it was issued to: bearer authentication over
    /// HTTP, where a request names no device (the token's record holds it). Like a token login it
    /// reads only the token's record (and the account if the record lacks its name), but it opens
    /// nothing and counts no login: it runs once per REST request.
    pub fn identify(&self, token: &str) -> CoreResult<Identity> {
        let record = self
            .store
            .token(&token_hash(token))
            .map_err(internal)?
            .filter(|r| r.kind == TokenKind::Access)
            .ok_or_else(|| err(ErrorCode::AuthFailed, "unknown or revoked token"))?;
        if record.expires_ms <= now_ms() {
            return Err(err(ErrorCode::TokenExpired, "token expired"));
        }
        let user = UserId::try_from(record.user)
            .map_err(|_| err(ErrorCode::Internal, "internal error"))?;
        let device = DeviceId::try_from(record.device.as_str())
            .map_err(|_| err(ErrorCode::Internal, "internal error"))?;
        let account = match record.account.map(Account::try_from) {
            Some(Ok(account)) => account,
            _ => self.account_of(user)?,
        };
        Ok(Identity {
            user,
            account,
            device,
        })
    }

    /// The identity of `user` (a decimal user id or an account name) on `device`, for a
    /// dialect whose gateway the operator trusts to authenticate users (`[compat]
    /// trust_user_header`, docs/dialects.md). Unknown users are `AUTH_FAILED`, banned ones
    /// `BANNED`. It opens nothing and counts no login.
    pub fn identify_trusted(&self, user: &str, device: DeviceId) -> CoreResult<Identity> {
        let by_id = user
            .parse::<u64>()
            .ok()
            .and_then(|v| UserId::try_from(v).ok())
            .map(|id| self.store.user(id).map(|r| r.map(|r| (id, r))))
            .transpose()
            .map_err(internal)?
            .flatten();
        let found = match by_id {
            Some(found) => Some(found),
            None => self.store.user_by_account(user).map_err(internal)?,
        };
        let (id, record) = found.ok_or_else(|| err(ErrorCode::AuthFailed, "no such user"))?;
        if record.banned {
            return Err(err(ErrorCode::Banned, "this account is banned"));
        }
        let account = Account::try_from(record.account)
            .map_err(|_| err(ErrorCode::Internal, "internal error"))?;
        Ok(Identity {
            user: id,
            account,
            device,
        })
    }

    /// Trades a refresh token for a new pair. If `current` is set (a logged-in connection), the
    /// token must belong to that user and device.
    pub async fn refresh(
        &self,
        token: &str,
        device: Device,
        current: Option<&Identity>,
    ) -> CoreResult<LoginOutcome> {
        let (user, _) = self.check_token(token, TokenKind::Refresh, &device)?;
        if let Some(id) = current {
            if id.user != user || id.device != device.id {
                return Err(err(
                    ErrorCode::AuthFailed,
                    "token belongs to another session",
                ));
            }
        }
        let account = self.account_of(user)?;
        let outcome = self.issue(user, account, device)?;
        self.durable().await?;
        Ok(outcome)
    }

    /// Creates a temporary guest account and logs it in.
    pub async fn guest_login(&self, device: Device, nickname: String) -> CoreResult<LoginOutcome> {
        let record = UserRecord {
            // Nobody knows this password: a guest comes back with its refresh token only.
            password_hash: DUMMY_HASH.to_owned(),
            account: String::new(),
            created_ms: now_ms(),
            guest: true,
            banned: false,
        };
        let (user, account) = loop {
            let raw: [u8; 6] = rand::random();
            let account = Account::try_from(format!("guest-{}", hex::encode(raw)))
                .map_err(|_| err(ErrorCode::Internal, "internal error"))?;
            let record = UserRecord {
                account: account.to_string(),
                ..record.clone()
            };
            if let Some(user) = self
                .store
                .create_user(&account, &record)
                .map_err(internal)?
            {
                break (user, account);
            }
        };
        // Guests are not found by search, with or without a nickname.
        let profile = crate::store::ProfileRecord {
            nickname,
            searchable_by_account: false,
            searchable_by_name: false,
            ..Default::default()
        };
        self.store
            .put_profile_record(user, &profile)
            .map_err(internal)?;
        let outcome = self.issue(user, account, device)?;
        self.durable().await?;
        Ok(outcome)
    }

    /// True if `user` is a guest.
    pub fn is_guest(&self, user: UserId) -> CoreResult<bool> {
        Ok(self
            .store
            .user(user)
            .map_err(internal)?
            .is_some_and(|r| r.guest))
    }

    /// Changes the caller's password and signs every other device out.
    pub async fn change_password(
        &self,
        me: &Identity,
        session: Option<parley_protocol::ids::SessionId>,
        old: Password,
        new: NewPassword,
    ) -> CoreResult<()> {
        let record = self
            .store
            .user(me.user)
            .map_err(internal)?
            .ok_or_else(|| err(ErrorCode::AuthFailed, "account no longer exists"))?;
        if record.guest {
            return Err(err(ErrorCode::Forbidden, "guests have no password"));
        }
        // A stolen session guessing the password is throttled like a login, under its user.
        let source = Source::User(me.user);
        self.check_throttle(source, &me.account.skeleton())?;
        let stored = record.password_hash;
        let hash = self
            .hash_blocking(source, move || {
                let ok = PasswordHash::new(&stored).is_ok_and(|h| {
                    Argon2::default()
                        .verify_password(old.expose().as_bytes(), &h)
                        .is_ok()
                });
                ok.then(|| {
                    let salt = SaltString::generate(&mut OsRng);
                    Argon2::default()
                        .hash_password(new.expose().as_bytes(), &salt)
                        .map(|h| h.to_string())
                })
            })
            .await?
            .ok_or_else(|| {
                let wrong = err(ErrorCode::AuthFailed, "wrong password");
                self.password_failed(source, &me.account.skeleton(), wrong)
            })?
            .map_err(|_| err(ErrorCode::Internal, "internal error"))?;
        self.throttle().succeeded(source, &me.account.skeleton());
        self.store
            .set_password_hash(me.user, hash)
            .map_err(internal)?;
        for (device, _) in self.store.devices_of(me.user).map_err(internal)? {
            if device != me.device {
                self.store
                    .revoke_device(me.user, &device)
                    .map_err(internal)?;
            }
        }
        self.durable().await?;
        self.router.sign_out(me.user, None, session);
        Ok(())
    }

    /// Bans (or unbans) a user: a banned user's tokens are revoked and its sessions closed
    /// (`LOGGED_OUT`), and a password login is refused with `BANNED`. So no request of a banned
    /// user reaches the gate of any operation. For the admin API.
    pub async fn set_banned(&self, user: UserId, banned: bool) -> CoreResult<()> {
        if !self.store.set_banned(user, banned).map_err(internal)? {
            return Err(err(ErrorCode::NotFound, "no such user"));
        }
        if banned {
            for (device, _) in self.store.devices_of(user).map_err(internal)? {
                self.store.revoke_device(user, &device).map_err(internal)?;
            }
        }
        self.durable().await?;
        if banned {
            self.router.sign_out(user, None, None);
        }
        Ok(())
    }

    /// The caller's devices that hold tokens.
    pub fn list_devices(&self, me: &Identity) -> CoreResult<Vec<DeviceEntry>> {
        let online = self.router.online_devices(me.user);
        Ok(self
            .store
            .devices_of(me.user)
            .map_err(internal)?
            .into_iter()
            .map(|(device, tokens)| DeviceEntry {
                online: online.contains(&device),
                current: device == me.device,
                platform: Platform::from_wire(tokens.platform),
                last_login_ms: tokens.issued_ms,
                device,
            })
            .collect())
    }

    /// Signs one of the caller's devices out: tokens revoked, sessions closed.
    pub async fn sign_out_device(&self, me: &Identity, device: &DeviceId) -> CoreResult<()> {
        let known = self
            .store
            .devices_of(me.user)
            .map_err(internal)?
            .into_iter()
            .any(|(d, _)| d == *device);
        if !known {
            return Err(err(ErrorCode::NotFound, "no such device"));
        }
        self.store
            .revoke_device(me.user, device)
            .map_err(internal)?;
        self.durable().await?;
        self.router.sign_out(me.user, Some(device), None);
        Ok(())
    }

    /// Revokes the device's tokens.
    pub async fn logout(&self, identity: &Identity) -> CoreResult<()> {
        self.store
            .revoke_device(identity.user, &identity.device)
            .map_err(internal)?;
        self.durable().await
    }

    fn check_token(
        &self,
        token: &str,
        kind: TokenKind,
        device: &Device,
    ) -> CoreResult<(UserId, TokenRecord)> {
        let record = self
            .store
            .token(&token_hash(token))
            .map_err(internal)?
            .filter(|r| r.kind == kind && r.device == device.id.as_str())
            .ok_or_else(|| err(ErrorCode::AuthFailed, "unknown or revoked token"))?;
        if record.expires_ms <= now_ms() {
            return Err(err(ErrorCode::TokenExpired, "token expired"));
        }
        let user = UserId::try_from(record.user)
            .map_err(|_| err(ErrorCode::Internal, "internal error"))?;
        Ok((user, record))
    }

    fn account_of(&self, user: UserId) -> CoreResult<Account> {
        let record = self
            .store
            .user(user)
            .map_err(internal)?
            .ok_or_else(|| err(ErrorCode::AuthFailed, "account no longer exists"))?;
        Account::try_from(record.account).map_err(|_| err(ErrorCode::Internal, "internal error"))
    }

    fn issue(&self, user: UserId, account: Account, device: Device) -> CoreResult<LoginOutcome> {
        let now = now_ms();
        let (access, access_hash) = new_token();
        let (refresh, refresh_hash) = new_token();
        let (access_ttl, refresh_ttl) = self.cfg.auth.ttls(device.platform);
        let access_exp = now + access_ttl.as_millis() as u64;
        let refresh_exp = now + refresh_ttl.as_millis() as u64;
        let record = |kind, expires_ms| TokenRecord {
            user: user.get(),
            device: device.id.to_string(),
            kind,
            expires_ms,
            account: Some(account.to_string()),
        };
        self.store
            .replace_device_tokens(
                user,
                &device.id,
                (access_hash, &record(TokenKind::Access, access_exp)),
                (refresh_hash, &record(TokenKind::Refresh, refresh_exp)),
                device.platform.to_wire(),
                now,
            )
            .map_err(internal)?;
        Ok(self.outcome(
            user,
            account,
            device,
            access,
            access_exp,
            refresh,
            refresh_exp,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn outcome(
        &self,
        user: UserId,
        account: Account,
        device: Device,
        access_token: String,
        access_expires_at_ms: u64,
        refresh_token: String,
        refresh_expires_at_ms: u64,
    ) -> LoginOutcome {
        // Every successful authentication ends here.
        self.stats
            .logins
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let hb = &self.cfg.heartbeat;
        LoginOutcome {
            result: LoginResult {
                user,
                account: account.to_string(),
                device: device.id.clone(),
                access_token,
                access_expires_at_ms,
                refresh_token,
                refresh_expires_at_ms,
                heartbeat_interval: hb.interval,
                heartbeat_timeout: hb.timeout,
                limits: self.limits(),
                server_time_ms: now_ms(),
                epoch: self.epoch(),
                session_id: 0,
            },
            identity: Identity {
                user,
                account,
                device: device.id,
            },
        }
    }
}

/// An argon2id hash of a random password nobody knows, verified for unknown accounts.
pub(super) const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2Ff6Hk8bCcbQO7G9lIYyKwvGx9x6hZ0Zx2tQ0o7rKXw";
