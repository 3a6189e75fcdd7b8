//! AnyChat's admin API, under `/api/v1/admin/...` (the contract) and `/api/admin/...` (the real
//! admin service), over the server's admin operations (the same [`Backend`] calls as
//! `/admin/v1`), each run as the admin who signed in.
//!
//! **Admins.** The core keeps admin accounts (docs/operations.md): the operator, admin `1`
//! named `admin` whose password is the `[admin] token` of the configuration (a `super_admin`
//! that cannot be disabled; with no token configured it cannot sign in), and accounts a super
//! admin creates, each `super_admin` or `admin`, enabled or disabled.
//!
//! **Login.** `POST /admin/auth/login {username, password}` answers an admin token valid 8
//! hours (`expiresIn: 28800`): `adm.<adminId>.<issued ms>.<nonce>.<signature>`, signed by the
//! dialect (HMAC-SHA-256 under a key of this router's state, drawn when it is built: a restart
//! signs every admin out). Every other admin route takes it as `Authorization: Bearer`, and on
//! every request the core checks the admin it names ([`Backend::admin_check`]): a disabled
//! admin's tokens, and tokens issued before its last disabling, answer `401`.
//! `POST /admin/auth/logout` revokes the token it is called with (kept in this router's state
//! until it would have expired). A wrong name or password is `401`; password checks are hashed
//! and throttled per address like user logins.
//!
//! What exists and how it is shown (docs/dialect-anychat.md):
//! - users: list (searched by `keyword` in account name or nickname, paged), get, ban, unban (a
//!   ban revokes the user's tokens and closes its sessions: its next request is `401`). The ban
//!   `reason` is written to the server's log, not stored;
//! - groups: get (profile, owner, member count), delete (disbands, as the server account);
//! - stats: what the server counts (users by a scan of the accounts; online users and sessions;
//!   messages, logins and connections since start);
//! - config: the running configuration, secrets redacted, flattened to `key`/`value` pairs;
//!   the runtime settings (`auth.registration_open`, `limits.recall_window_ms`) show their
//!   current values with `editable: true`. `PUT /admin/config/{key} {value}` changes a
//!   runtime setting at once (kept across restarts); any other known key answers `403`, an
//!   unknown one `404`, a bad value `400`;
//! - admins: list (the operator first; `status` 1 enabled, 0 disabled), create (`super_admin`
//!   only: `403` for an `admin`; `409` for a name in use), status (`super_admin` only; nobody
//!   disables the operator, a super admin does not disable itself);
//! - audit logs: the core's audit log of admin actions (bans, unbans, disbands, announcements,
//!   admin creations and status changes, configuration changes; through this dialect or
//!   `/admin/v1`; refused attempts included), newest first, paged by `page`/`pageSize`,
//!   filtered by `action` and `adminId` (an admin's id, or `admin` for the operator). `action`
//!   takes the core's names (`ban`, `unban`, `disband_group`, `announce`, `create_admin`,
//!   `enable_admin`, `disable_admin`, `set_config`).

use std::collections::HashMap;
use std::sync::Mutex;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::routing::{delete, get, post, put, MethodRouter};
use parley_protocol::ids::UserId;
use serde::Deserialize;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use super::error::AnyError;
use super::extract::{self, Body, MaybeBody, Path, Query};
use super::files::{hex, hmac};
use super::groups::group_view;
use super::views::{self, ok, Kind, Reply};
use super::AnyChat;
use crate::compat::extract::Peer;
use crate::{AdminAccount, AdminActor, AdminUser, NewAdmin, UserQuery};

/// The admin operations, as (method, path below `/api/v1`, also below `/api`, handler).
pub(super) fn table() -> Vec<(&'static str, &'static str, MethodRouter<AnyChat>)> {
    vec![
        ("POST", "/admin/auth/login", post(login)),
        ("POST", "/admin/auth/logout", post(logout)),
        ("GET", "/admin/users", get(users)),
        ("GET", "/admin/users/{userId}", get(user)),
        ("POST", "/admin/users/{userId}/ban", post(ban)),
        ("POST", "/admin/users/{userId}/unban", post(unban)),
        ("GET", "/admin/groups/{groupId}", get(group)),
        ("DELETE", "/admin/groups/{groupId}", delete(disband)),
        ("GET", "/admin/stats/overview", get(stats)),
        ("GET", "/admin/config", get(config)),
        ("PUT", "/admin/config/{key}", put(set_config)),
        ("GET", "/admin/admins", get(admins)),
        ("POST", "/admin/admins", post(create_admin)),
        ("PUT", "/admin/admins/{adminId}/status", put(admin_status)),
        ("GET", "/admin/audit-logs", get(audit_logs)),
    ]
}

/// An admin token's life, in seconds (8 hours, as AnyChat's admin service).
pub const ADMIN_TOKEN_SECS: u64 = 8 * 3600;
/// The operator's admin id and name.
const OPERATOR_ID: u64 = 1;
const OPERATOR_NAME: &str = "admin";
/// Users per page when `pageSize` is absent, and at most.
const DEFAULT_USER_PAGE: u32 = 20;
const MAX_USER_PAGE: u32 = 100;
/// Users fetched per call while walking the accounts.
const SCAN_PAGE: usize = crate::ops::admin::MAX_PAGE;
/// Revoked admin tokens remembered at most (each only until it would have expired).
const MAX_REVOKED: usize = 10_000;

fn admin_id(id: u64) -> String {
    views::uuid(Kind::Admin, u128::from(id))
}

/// An admin id from the path or a filter: its UUID, its number, or `admin` (the operator).
fn parse_admin_id(raw: &str) -> Option<u64> {
    match raw.trim() {
        OPERATOR_NAME => Some(OPERATOR_ID),
        other => views::number_of(Kind::Admin, other),
    }
}

// ---- tokens ---------------------------------------------------------------------------------

/// The dialect's admin sign-ins, in its state ([`AnyChat`]): the key admin tokens are signed
/// with (drawn from the OS's CSPRNG when the router is built) and the tokens signed out before
/// they expired. Two servers in one process share neither.
pub(super) struct AdminTokens {
    key: [u8; 32],
    /// Signatures of revoked tokens, with their expiry (Unix seconds).
    revoked: Mutex<HashMap<String, u64>>,
}

impl Default for AdminTokens {
    fn default() -> AdminTokens {
        AdminTokens {
            key: rand::random(),
            revoked: Mutex::new(HashMap::new()),
        }
    }
}

/// What an intact admin token says.
struct Claims {
    id: u64,
    issued_ms: u64,
    /// Unix seconds.
    expiry: u64,
    signature: String,
}

impl AdminTokens {
    /// The signature (hex) of `fields`, each length-prefixed.
    fn sign(&self, fields: &[&str]) -> String {
        let mut message = Vec::new();
        for f in std::iter::once(&"admin").chain(fields) {
            message.extend_from_slice(&(f.len() as u32).to_be_bytes());
            message.extend_from_slice(f.as_bytes());
        }
        hex(&hmac(&self.key, &message))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.revoked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new token for admin `id`, issued now: `adm.<id>.<issued ms>.<nonce>.<signature>`.
    fn issue(&self, id: u64) -> String {
        self.issue_at(id, views::now_ms())
    }

    fn issue_at(&self, id: u64, issued_ms: u64) -> String {
        let (id, issued) = (id.to_string(), issued_ms.to_string());
        let nonce = format!("{:032x}", rand::random::<u128>());
        let s = self.sign(&[&id, &issued, &nonce]);
        format!("adm.{id}.{issued}.{nonce}.{s}")
    }

    /// The claims of an intact, unexpired, unrevoked admin token.
    fn check(&self, token: &str) -> Option<Claims> {
        let mut parts = token.split('.');
        let (Some("adm"), Some(id), Some(issued), Some(nonce), Some(s), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let expected = self.sign(&[id, issued, nonce]);
        if expected.len() != s.len() || !bool::from(expected.as_bytes().ct_eq(s.as_bytes())) {
            return None;
        }
        let (id, issued_ms): (u64, u64) = (id.parse().ok()?, issued.parse().ok()?);
        let expiry = issued_ms / 1000 + ADMIN_TOKEN_SECS;
        if expiry < views::now_ms() / 1000 || self.lock().contains_key(s) {
            return None;
        }
        Some(Claims {
            id,
            issued_ms,
            expiry,
            signature: s.to_owned(),
        })
    }

    /// Revokes the token of `claims` (bounded: `429` when too many are remembered).
    fn revoke(&self, claims: &Claims) -> Result<(), AnyError> {
        let now = views::now_ms() / 1000;
        let mut revoked = self.lock();
        revoked.retain(|_, expiry| *expiry >= now);
        if revoked.len() >= MAX_REVOKED {
            // Bounded: refuse rather than grow; the token still expires by itself.
            return Err(AnyError::new(
                429,
                "too many sign-outs at once; try again later",
            ));
        }
        revoked.insert(claims.signature.clone(), claims.expiry);
        Ok(())
    }
}

/// The admin a request runs as, by its admin token (`Authorization: Bearer`), checked by the
/// core on every request; else `code: 401`.
pub(super) struct Admin {
    actor: AdminActor,
    account: AdminAccount,
    claims: Claims,
}

impl FromRequestParts<AnyChat> for Admin {
    type Rejection = AnyError;

    async fn from_request_parts(parts: &mut Parts, any: &AnyChat) -> Result<Admin, AnyError> {
        let token = match crate::bearer(&parts.headers) {
            crate::Bearer::Token(t) => t,
            _ => return Err(AnyError::unauthorized("an admin token is required")),
        };
        let claims = any
            .admin
            .check(token)
            .ok_or_else(|| AnyError::unauthorized("invalid or expired admin token"))?;
        let actor = AdminActor::of(claims.id, claims.issued_ms);
        let account =
            any.backend
                .admin_check(actor)
                .await
                .map_err(|e| match e.code {
                    parley_protocol::ErrorCode::Internal
                    | parley_protocol::ErrorCode::ShuttingDown => AnyError::from(e),
                    _ => AnyError::unauthorized(e.message),
                })?;
        Ok(Admin {
            actor,
            account,
            claims,
        })
    }
}

// ---- auth -----------------------------------------------------------------------------------

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
}

/// `POST /admin/auth/login`: the operator (`admin` and the `[admin] token`) or an admin account.
async fn login(State(any): State<AnyChat>, peer: Peer, Body(body): Body<LoginBody>) -> Reply {
    if body.username.is_empty() || body.password.is_empty() {
        return Err(AnyError::invalid("username and password are required"));
    }
    let account = any
        .backend
        .admin_login(body.username, body.password, peer.0)
        .await
        .map_err(|e| {
            tracing::warn!(code = ?e.code, "anychat: failed admin login");
            AnyError::from(e)
        })?;
    tracing::info!(admin = account.id, "anychat: admin logged in");
    ok(json!({
        "token": any.admin.issue(account.id),
        "adminId": admin_id(account.id),
        "username": account.username,
        "role": account.role,
        "expiresIn": ADMIN_TOKEN_SECS,
    }))
}

/// `POST /admin/auth/logout`: the token stops working.
async fn logout(State(any): State<AnyChat>, admin: Admin) -> Reply {
    any.admin.revoke(&admin.claims)?;
    ok(Value::Null)
}

// ---- users ----------------------------------------------------------------------------------

fn user_view(u: &AdminUser) -> Value {
    let (phone, email) = views::phone_and_email(&u.account);
    json!({
        "userId": views::user_id(u.id),
        "username": u.account,
        "nickname": u.nickname,
        "phone": phone,
        "email": email,
        "isGuest": u.guest,
        "banned": u.banned,
        "status": if u.banned { "banned" } else { "active" },
        "online": u.online,
        "createdAt": views::rfc3339(u.created_ms),
    })
}

/// Every user matching `query`, page by page, handed to `each` (the admin scan of the core).
async fn walk_users(
    any: &AnyChat,
    query: &str,
    mut each: impl FnMut(AdminUser),
) -> Result<(), AnyError> {
    let mut after = 0;
    loop {
        let page = any
            .backend
            .admin_users(UserQuery {
                query: query.to_owned(),
                after,
                limit: SCAN_PAGE,
            })
            .await?;
        page.users.into_iter().for_each(&mut each);
        match page.next_after {
            Some(next) => after = next,
            None => return Ok(()),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct UsersQuery {
    keyword: Option<String>,
    page: Option<u32>,
    #[serde(alias = "page_size")]
    page_size: Option<u32>,
}

/// `GET /admin/users?keyword=&page=&pageSize=`: users in id order; `total` counts every match.
async fn users(State(any): State<AnyChat>, _: Admin, Query(q): Query<UsersQuery>) -> Reply {
    let keyword = q.keyword.unwrap_or_default();
    if keyword.len() > 256 {
        return Err(AnyError::invalid("keyword is at most 256 bytes"));
    }
    let page = q.page.unwrap_or(1).max(1);
    let size = extract::limit(q.page_size, DEFAULT_USER_PAGE, MAX_USER_PAGE) as usize;
    let skip = (page as usize - 1) * size;
    let mut total = 0usize;
    let mut list = Vec::new();
    walk_users(&any, keyword.trim(), |u| {
        if total >= skip && list.len() < size {
            list.push(user_view(&u));
        }
        total += 1;
    })
    .await?;
    ok(json!({"users": list, "total": total, "page": page, "pageSize": size}))
}

/// The user `raw` names, as the operator sees it (`404`).
async fn find_user(any: &AnyChat, raw: &str) -> Result<AdminUser, AnyError> {
    let id = extract::user(raw)?;
    let page = any
        .backend
        .admin_users(UserQuery {
            query: String::new(),
            after: id.get() - 1,
            limit: 1,
        })
        .await?;
    page.users
        .into_iter()
        .find(|u| u.id == id)
        .ok_or_else(|| AnyError::not_found("no such user"))
}

/// `GET /admin/users/{userId}`.
async fn user(State(any): State<AnyChat>, _: Admin, Path(id): Path<String>) -> Reply {
    ok(user_view(&find_user(&any, &id).await?))
}

#[derive(Deserialize, Default)]
struct BanBody {
    #[serde(default)]
    reason: String,
}

async fn set_banned(any: &AnyChat, admin: &Admin, raw: &str, banned: bool, reason: &str) -> Reply {
    let user: UserId = find_user(any, raw).await?.id;
    any.backend
        .admin_set_banned(admin.actor, user, banned)
        .await?;
    tracing::info!(
        user = user.get(),
        banned,
        reason,
        admin = admin.account.id,
        "anychat admin: ban changed"
    );
    ok(json!({"userId": views::user_id(user), "banned": banned}))
}

/// `POST /admin/users/{userId}/ban {reason?}`: the user's tokens stop working at once.
async fn ban(
    State(any): State<AnyChat>,
    admin: Admin,
    Path(id): Path<String>,
    MaybeBody(body): MaybeBody<BanBody>,
) -> Reply {
    set_banned(&any, &admin, &id, true, &body.reason).await
}

/// `POST /admin/users/{userId}/unban`.
async fn unban(State(any): State<AnyChat>, admin: Admin, Path(id): Path<String>) -> Reply {
    set_banned(&any, &admin, &id, false, "").await
}

// ---- groups ---------------------------------------------------------------------------------

fn group_id(raw: &str) -> Result<parley_protocol::ids::ConversationId, AnyError> {
    extract::conversation(raw).map_err(|_| AnyError::not_found("no such group"))
}

/// Maps "not a group" (a 1:1 conversation's id) to the same `404` as no such group.
fn group_error(e: parley_protocol::frames::ErrorInfo) -> AnyError {
    match e.code {
        parley_protocol::ErrorCode::InvalidArgument => AnyError::not_found("no such group"),
        _ => e.into(),
    }
}

/// `GET /admin/groups/{groupId}`.
async fn group(State(any): State<AnyChat>, _: Admin, Path(id): Path<String>) -> Reply {
    let g = any
        .backend
        .admin_group(group_id(&id)?)
        .await
        .map_err(group_error)?;
    let mut view = group_view(&g, None);
    view["disbanded"] = json!(g.profile.disbanded);
    ok(view)
}

/// `DELETE /admin/groups/{groupId}`: disbands it (`403` if it already is).
async fn disband(State(any): State<AnyChat>, admin: Admin, Path(id): Path<String>) -> Reply {
    let conv = group_id(&id)?;
    any.backend
        .admin_disband_group_as(admin.actor, conv)
        .await
        .map_err(group_error)?;
    tracing::info!(group = conv.get(), "anychat admin: group disbanded");
    ok(Value::Null)
}

// ---- stats, config, admins, audit -------------------------------------------------------------

/// `GET /admin/stats/overview`: what the server counts.
async fn stats(State(any): State<AnyChat>, _: Admin) -> Reply {
    let (mut total, mut banned, mut guests) = (0u64, 0u64, 0u64);
    walk_users(&any, "", |u| {
        total += 1;
        banned += u64::from(u.banned);
        guests += u64::from(u.guest);
    })
    .await?;
    let s = any.backend.stats();
    ok(json!({
        "totalUsers": total,
        "bannedUsers": banned,
        "guestUsers": guests,
        "onlineUsers": s.users_online,
        "activeUsers": s.users_online,
        "sessionsOnline": s.sessions_online,
        "messagesSinceStart": s.messages_total,
        "loginsSinceStart": s.logins_total,
        "connectionsSinceStart": s.connections_total,
        "storeBytes": s.store_bytes,
        "uptimeSeconds": s.uptime_seconds,
    }))
}

/// `(key, value)` pairs of a JSON document: keys dotted, values as text.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let key = match prefix.is_empty() {
                    true => k.clone(),
                    false => format!("{prefix}.{k}"),
                };
                flatten(&key, v, out);
            }
        }
        Value::String(s) => out.push((prefix.to_owned(), s.clone())),
        Value::Null => out.push((prefix.to_owned(), String::new())),
        other => out.push((prefix.to_owned(), other.to_string())),
    }
}

fn config_pairs(any: &AnyChat) -> Result<Vec<(String, String)>, AnyError> {
    let config = any
        .backend
        .running_config()
        .ok_or_else(|| AnyError::new(503, "this server shows no configuration"))?;
    let mut pairs = Vec::new();
    flatten("", &config, &mut pairs);
    Ok(pairs)
}

/// `GET /admin/config`: the running configuration, secrets redacted; the runtime settings
/// with their current values and `editable: true`.
async fn config(State(any): State<AnyChat>, _: Admin) -> Reply {
    let pairs = config_pairs(&any)?;
    let settings = any.backend.admin_settings();
    let mut configs: Vec<Value> = pairs
        .iter()
        .map(|(k, v)| match settings.iter().find(|s| s.key == *k) {
            Some(s) => {
                json!({"key": k, "value": s.value, "editable": true, "description": s.description})
            }
            None => json!({"key": k, "value": v, "editable": false}),
        })
        .collect();
    // A runtime setting the configuration does not show (none today) is listed too.
    for s in settings
        .iter()
        .filter(|s| !pairs.iter().any(|(k, _)| *k == s.key))
    {
        configs.push(
            json!({"key": s.key, "value": s.value, "editable": true, "description": s.description}),
        );
    }
    ok(json!({"configs": configs, "total": configs.len()}))
}

#[derive(Deserialize)]
struct ConfigBody {
    value: String,
}

/// `PUT /admin/config/{key} {value}`: a runtime setting changes at once (`403` for a
/// read-only key, `404` for an unknown one, `400` for a bad value).
async fn set_config(
    State(any): State<AnyChat>,
    admin: Admin,
    Path(key): Path<String>,
    Body(body): Body<ConfigBody>,
) -> Reply {
    if key.len() > 256 {
        return Err(AnyError::not_found("no such configuration key"));
    }
    let set = any
        .backend
        .admin_set_setting(admin.actor, key, body.value)
        .await?;
    ok(json!({"key": set.key, "value": set.value, "editable": true}))
}

fn admin_view(a: &AdminAccount) -> Value {
    json!({
        "adminId": admin_id(a.id),
        "username": a.username,
        "role": a.role,
        "status": i32::from(a.enabled),
        "createdAt": views::rfc3339(a.created_ms),
    })
}

/// `GET /admin/admins`: every admin, the operator first.
async fn admins(State(any): State<AnyChat>, admin: Admin) -> Reply {
    let list = any.backend.admin_accounts(admin.actor).await?;
    let admins: Vec<Value> = list.iter().map(admin_view).collect();
    ok(json!({"admins": admins, "total": admins.len()}))
}

#[derive(Deserialize)]
struct CreateAdminBody {
    username: String,
    password: String,
    #[serde(default)]
    role: String,
}

/// `POST /admin/admins {username, password, role?}`: a super admin creates an admin (`role`
/// `super_admin` or `admin`, the default).
async fn create_admin(
    State(any): State<AnyChat>,
    admin: Admin,
    peer: Peer,
    Body(body): Body<CreateAdminBody>,
) -> Reply {
    let account = NewAdmin {
        username: body.username,
        password: body.password,
        role: body.role,
    };
    let made = any
        .backend
        .admin_create(admin.actor, account, peer.0)
        .await?;
    ok(admin_view(&made))
}

#[derive(Deserialize)]
struct StatusBody {
    status: i64,
}

/// `PUT /admin/admins/{adminId}/status {status}`: `1` enables, `0` disables (its tokens stop).
async fn admin_status(
    State(any): State<AnyChat>,
    admin: Admin,
    Path(id): Path<String>,
    Body(body): Body<StatusBody>,
) -> Reply {
    let id = parse_admin_id(&id).ok_or_else(|| AnyError::not_found("no such admin"))?;
    let enabled = match body.status {
        1 => true,
        0 => false,
        _ => return Err(AnyError::invalid("status is 1 (enabled) or 0 (disabled)")),
    };
    let changed = any
        .backend
        .admin_set_enabled(admin.actor, id, enabled)
        .await?;
    ok(admin_view(&changed))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct AuditQuery {
    #[serde(alias = "admin_id")]
    admin_id: Option<String>,
    action: Option<String>,
    page: Option<u32>,
    #[serde(alias = "page_size")]
    page_size: Option<u32>,
}

/// An audit entry's target (`user:5`, `group:7`, `admin:2`, `admin_name:ann`,
/// `config:<key>`, `all_users`) as AnyChat's `targetType` and `targetId`, ids in the dialect's
/// forms.
fn audit_target(target: &str) -> (String, String) {
    let (kind, raw) = target.split_once(':').unwrap_or((target, ""));
    let id = raw.parse::<u64>().ok();
    let shown = match kind {
        "user" => id
            .and_then(|n| UserId::try_from(n).ok())
            .map(views::user_id),
        "group" => id
            .and_then(|n| parley_protocol::ids::ConversationId::try_from(n).ok())
            .map(views::conversation_id),
        "admin" => id.map(admin_id),
        _ => None,
    };
    (kind.to_owned(), shown.unwrap_or_else(|| raw.to_owned()))
}

/// An audit entry; `names` are the admins by id (an actor `admin:<id>` shows its name).
fn audit_view(e: &crate::AuditEntry, names: &HashMap<u64, String>) -> Value {
    let (target_type, target_id) = audit_target(&e.target);
    let id = match e.actor.as_str() {
        OPERATOR_ACTOR => Some(OPERATOR_ID),
        other => other
            .strip_prefix("admin:")
            .and_then(|n| n.parse::<u64>().ok()),
    };
    let (admin, name) = match id {
        Some(id) => (
            admin_id(id),
            names.get(&id).cloned().unwrap_or_else(|| e.actor.clone()),
        ),
        None => (e.actor.clone(), e.actor.clone()),
    };
    json!({
        "logId": e.id,
        "adminId": admin,
        "adminName": name,
        "action": e.action,
        "targetType": target_type,
        "targetId": target_id,
        "details": e.detail,
        "result": e.outcome,
        "status": if e.outcome == "ok" { 1 } else { 0 },
        "createdAt": views::rfc3339(e.at_ms),
    })
}

/// The core's actor name of the operator (the `[admin] token`, AnyChat's one admin).
const OPERATOR_ACTOR: &str = "operator";
/// Audit entries fetched per call while walking the log.
const AUDIT_SCAN: usize = crate::ops::admin::MAX_AUDIT_PAGE;

/// `GET /admin/audit-logs?adminId=&action=&page=&pageSize=`: the core's audit log, newest
/// first; `total` counts every match (the log is bounded, so the walk is too).
async fn audit_logs(State(any): State<AnyChat>, me: Admin, Query(q): Query<AuditQuery>) -> Reply {
    let page = q.page.unwrap_or(1).max(1);
    let size = extract::limit(q.page_size, DEFAULT_USER_PAGE, MAX_USER_PAGE) as usize;
    let action = q.action.filter(|a| !a.trim().is_empty());
    if action.as_ref().is_some_and(|a| a.len() > 256) {
        return Err(AnyError::invalid("action is at most 256 bytes"));
    }
    let actor = match q.admin_id.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(id) => match parse_admin_id(id) {
            Some(OPERATOR_ID) => Some(OPERATOR_ACTOR.to_owned()),
            Some(n) => Some(format!("admin:{n}")),
            // No such admin: nothing matches.
            None => return ok(json!({"logs": [], "total": 0, "page": page, "pageSize": size})),
        },
    };
    let names: HashMap<u64, String> = any
        .backend
        .admin_accounts(me.actor)
        .await?
        .into_iter()
        .map(|a| (a.id, a.username))
        .collect();
    let skip = (page as usize - 1) * size;
    let (mut total, mut logs, mut before) = (0usize, Vec::new(), 0u64);
    loop {
        let query = crate::AuditQuery {
            before,
            limit: AUDIT_SCAN,
            action: action.clone(),
            actor: actor.clone(),
        };
        let batch = any.backend.admin_audit_log(query).await?;
        for e in &batch.entries {
            if total >= skip && logs.len() < size {
                logs.push(audit_view(e, &names));
            }
            total += 1;
        }
        match batch.next_before {
            Some(next) => before = next,
            None => break,
        }
    }
    ok(json!({"logs": logs, "total": total, "page": page, "pageSize": size}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_tokens_verify_and_refuse_alterations() {
        let tokens = AdminTokens::default();
        let t = tokens.issue(7);
        let claims = tokens.check(&t).expect("intact");
        assert_eq!(claims.id, 7);
        // Another router's key does not verify it.
        assert!(AdminTokens::default().check(&t).is_none());
        // A changed id breaks the signature.
        assert!(tokens.check(&t.replacen("adm.7.", "adm.2.", 1)).is_none());
        assert!(tokens.check("adm.1.2.3.4").is_none());
        assert!(tokens.check("").is_none());
        // An expired one, correctly signed.
        assert!(tokens.check(&tokens.issue_at(7, 1000)).is_none());
        // A revoked one.
        tokens.revoke(&claims).unwrap();
        assert!(tokens.check(&t).is_none());
        assert!(tokens.check(&tokens.issue(7)).is_some());
    }

    #[test]
    fn admin_ids_parse() {
        assert_eq!(parse_admin_id("admin"), Some(1));
        assert_eq!(parse_admin_id(&admin_id(5)), Some(5));
        assert_eq!(parse_admin_id("5"), Some(5));
        assert_eq!(parse_admin_id("bob"), None);
    }

    #[test]
    fn configs_flatten_to_dotted_keys() {
        let mut out = Vec::new();
        flatten("", &json!({"a": {"b": 1, "c": "x"}, "d": null}), &mut out);
        assert_eq!(
            out,
            vec![
                ("a.b".to_owned(), "1".to_owned()),
                ("a.c".to_owned(), "x".to_owned()),
                ("d".to_owned(), String::new()),
            ]
        );
    }
}
