//! AnyChat's admin API, under `/api/v1/admin/...` (the contract) and `/api/admin/...` (the real
//! admin service), over the server's admin operations (the same [`Backend`] calls as
//! `/admin/v1`).
//!
//! **Login.** AnyChat had admin accounts of its own; we have one operator credential, the
//! `[admin] token` of the configuration. `POST /admin/auth/login {username: "admin", password:
//! <the admin token>}` answers an admin token valid 8 hours (`expiresIn: 28800`), signed by the
//! dialect (HMAC-SHA-256, key drawn at start: a restart signs everyone out); every other admin
//! route takes it as `Authorization: Bearer`. With no admin token configured, no login
//! succeeds. `POST /admin/auth/logout` revokes the token it is called with (kept in memory until
//! it would have expired).
//!
//! What exists and how it is shown (docs/dialect-anychat.md):
//! - users: list (searched by `keyword` in account name or nickname, paged), get, ban, unban (a
//!   ban revokes the user's tokens and closes its sessions: its next request is `401`). The ban
//!   `reason` is written to the server's log, not stored;
//! - groups: get (profile, owner, member count), delete (disbands, as the server account);
//! - stats: what the server counts (users by a scan of the accounts; online users and sessions;
//!   messages, logins and connections since start);
//! - config: the running configuration, secrets redacted, flattened to `key`/`value` pairs.
//!   It is read from the file at start: `PUT /admin/config/{key}` answers `403` (a known key)
//!   or `404`;
//! - admins: the one operator credential, listed as `admin`; creating admins or changing their
//!   status answers `403`: there are no admin accounts to make;
//! - audit logs: the core's audit log of admin actions (bans, unbans, disbands, announcements,
//!   through this dialect or `/admin/v1`; refused attempts included), newest first, paged by
//!   `page`/`pageSize`, filtered by `action` and `adminId` (the one admin's id or name; any
//!   other id matches nothing). `action` takes the core's names (`ban`, `unban`,
//!   `disband_group`, `announce`).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::routing::{delete, get, post, put, MethodRouter};
use parley_protocol::ids::UserId;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::AnyError;
use super::extract::{self, Body, MaybeBody, Path, Query};
use super::files::{now_secs, sign, verify};
use super::groups::group_view;
use super::views::{self, ok, Kind, Reply};
use super::AnyChat;
use crate::{AdminUser, UserQuery};

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
/// The one admin's name.
const ADMIN_NAME: &str = "admin";
/// Users per page when `pageSize` is absent, and at most.
const DEFAULT_USER_PAGE: u32 = 20;
const MAX_USER_PAGE: u32 = 100;
/// Users fetched per call while walking the accounts.
const SCAN_PAGE: usize = crate::ops::admin::MAX_PAGE;
/// Revoked admin tokens remembered at most (each only until it would have expired).
const MAX_REVOKED: usize = 10_000;

fn admin_id() -> String {
    views::uuid(Kind::Admin, 1)
}

// ---- tokens ---------------------------------------------------------------------------------

/// Signatures of admin tokens signed out before they expired, with their expiry.
fn revoked() -> &'static Mutex<HashMap<String, u64>> {
    static REVOKED: OnceLock<Mutex<HashMap<String, u64>>> = OnceLock::new();
    REVOKED.get_or_init(|| Mutex::new(HashMap::new()))
}

fn lock_revoked() -> std::sync::MutexGuard<'static, HashMap<String, u64>> {
    revoked().lock().unwrap_or_else(|e| e.into_inner())
}

/// A new admin token: `adm.<expiry>.<nonce>.<signature>`.
fn new_token() -> String {
    let e = (now_secs() + ADMIN_TOKEN_SECS).to_string();
    let nonce = format!("{:032x}", rand::random::<u128>());
    let s = sign(&["admin", &e, &nonce]);
    format!("adm.{e}.{nonce}.{s}")
}

/// The expiry and signature of an intact, unexpired, unrevoked admin token.
fn check_token(token: &str) -> Option<(u64, String)> {
    let mut parts = token.split('.');
    let (Some("adm"), Some(e), Some(nonce), Some(s), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    if !verify(&["admin", e, nonce], s) {
        return None;
    }
    let expiry: u64 = e.parse().ok()?;
    if expiry < now_secs() || lock_revoked().contains_key(s) {
        return None;
    }
    Some((expiry, s.to_owned()))
}

/// The operator, by an admin token (`Authorization: Bearer`); else `code: 401`.
pub(super) struct Admin {
    expiry: u64,
    signature: String,
}

impl FromRequestParts<AnyChat> for Admin {
    type Rejection = AnyError;

    async fn from_request_parts(parts: &mut Parts, _: &AnyChat) -> Result<Admin, AnyError> {
        let token = match crate::bearer(&parts.headers) {
            crate::Bearer::Token(t) => t,
            _ => return Err(AnyError::unauthorized("an admin token is required")),
        };
        let (expiry, signature) = check_token(token)
            .ok_or_else(|| AnyError::unauthorized("invalid or expired admin token"))?;
        Ok(Admin { expiry, signature })
    }
}

// ---- auth -----------------------------------------------------------------------------------

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
}

/// `POST /admin/auth/login`.
async fn login(State(any): State<AnyChat>, Body(body): Body<LoginBody>) -> Reply {
    if body.username.is_empty() || body.password.is_empty() {
        return Err(AnyError::invalid("username and password are required"));
    }
    // Both checks run, so a wrong name and a wrong password take the same time.
    let secret_ok = any.backend.admin_credential_matches(&body.password);
    if body.username != ADMIN_NAME || !secret_ok {
        tracing::warn!("anychat: failed admin login");
        return Err(AnyError::unauthorized("invalid username or password"));
    }
    tracing::info!("anychat: admin logged in");
    ok(json!({
        "token": new_token(),
        "adminId": admin_id(),
        "username": ADMIN_NAME,
        "role": "super_admin",
        "expiresIn": ADMIN_TOKEN_SECS,
    }))
}

/// `POST /admin/auth/logout`: the token stops working.
async fn logout(admin: Admin) -> Reply {
    let now = now_secs();
    let mut revoked = lock_revoked();
    revoked.retain(|_, expiry| *expiry >= now);
    if revoked.len() >= MAX_REVOKED {
        // Bounded: refuse rather than grow; the token still expires by itself.
        return Err(AnyError::new(
            429,
            "too many sign-outs at once; try again later",
        ));
    }
    revoked.insert(admin.signature, admin.expiry);
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

async fn set_banned(any: &AnyChat, raw: &str, banned: bool, reason: &str) -> Reply {
    let user: UserId = find_user(any, raw).await?.id;
    any.backend.set_banned(user, banned).await?;
    tracing::info!(
        user = user.get(),
        banned,
        reason,
        "anychat admin: ban changed"
    );
    ok(json!({"userId": views::user_id(user), "banned": banned}))
}

/// `POST /admin/users/{userId}/ban {reason?}`: the user's tokens stop working at once.
async fn ban(
    State(any): State<AnyChat>,
    _: Admin,
    Path(id): Path<String>,
    MaybeBody(body): MaybeBody<BanBody>,
) -> Reply {
    set_banned(&any, &id, true, &body.reason).await
}

/// `POST /admin/users/{userId}/unban`.
async fn unban(State(any): State<AnyChat>, _: Admin, Path(id): Path<String>) -> Reply {
    set_banned(&any, &id, false, "").await
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
async fn disband(State(any): State<AnyChat>, _: Admin, Path(id): Path<String>) -> Reply {
    let conv = group_id(&id)?;
    any.backend
        .admin_disband_group(conv)
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

/// `GET /admin/config`: the running configuration, secrets redacted.
async fn config(State(any): State<AnyChat>, _: Admin) -> Reply {
    let pairs = config_pairs(&any)?;
    let configs: Vec<Value> = pairs
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v, "editable": false}))
        .collect();
    ok(json!({"configs": configs, "total": configs.len()}))
}

#[derive(Deserialize)]
#[allow(dead_code)] // read for its shape; nothing is written
struct ConfigBody {
    value: String,
}

/// `PUT /admin/config/{key}`: the configuration is read from its file at start.
async fn set_config(
    State(any): State<AnyChat>,
    _: Admin,
    Path(key): Path<String>,
    Body(_body): Body<ConfigBody>,
) -> Reply {
    if !config_pairs(&any)?.iter().any(|(k, _)| *k == key) {
        return Err(AnyError::not_found("no such configuration key"));
    }
    Err(AnyError::forbidden(
        "the configuration is read from the server's file at start: change it there and restart",
    ))
}

/// `GET /admin/admins`: the one operator credential.
async fn admins(_: Admin) -> Reply {
    ok(json!({
        "admins": [{
            "adminId": admin_id(),
            "username": ADMIN_NAME,
            "role": "super_admin",
            "status": 1,
        }],
        "total": 1,
    }))
}

#[derive(Deserialize)]
#[allow(dead_code)] // read for its shape; nothing is made
struct CreateAdminBody {
    username: String,
    password: String,
    #[serde(default)]
    role: String,
}

/// `POST /admin/admins`: there are no admin accounts to make.
async fn create_admin(_: Admin, Body(_body): Body<CreateAdminBody>) -> Reply {
    Err(AnyError::forbidden(
        "admin accounts are not kept: the operator signs in with the server's [admin] token",
    ))
}

#[derive(Deserialize)]
#[allow(dead_code)] // read for its shape; nothing changes
struct StatusBody {
    status: i64,
}

/// `PUT /admin/admins/{adminId}/status`.
async fn admin_status(_: Admin, Path(id): Path<String>, Body(_body): Body<StatusBody>) -> Reply {
    if id != admin_id() && id != ADMIN_NAME {
        return Err(AnyError::not_found("no such admin"));
    }
    Err(AnyError::forbidden(
        "the operator's credential is the server's [admin] token: change it in the configuration",
    ))
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

/// An audit entry's target (`user:5`, `group:7`, `all_users`) as AnyChat's `targetType` and
/// `targetId`, ids in the dialect's forms.
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
        _ => None,
    };
    (kind.to_owned(), shown.unwrap_or_else(|| raw.to_owned()))
}

fn audit_view(e: &crate::AuditEntry) -> Value {
    let (target_type, target_id) = audit_target(&e.target);
    let (admin, name) = match e.actor.as_str() {
        OPERATOR_ACTOR => (admin_id(), ADMIN_NAME.to_owned()),
        other => (other.to_owned(), other.to_owned()),
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
async fn audit_logs(State(any): State<AnyChat>, _: Admin, Query(q): Query<AuditQuery>) -> Reply {
    let page = q.page.unwrap_or(1).max(1);
    let size = extract::limit(q.page_size, DEFAULT_USER_PAGE, MAX_USER_PAGE) as usize;
    let action = q.action.filter(|a| !a.trim().is_empty());
    if action.as_ref().is_some_and(|a| a.len() > 256) {
        return Err(AnyError::invalid("action is at most 256 bytes"));
    }
    let actor = match q.admin_id.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(id) if id == admin_id() || id == ADMIN_NAME => Some(OPERATOR_ACTOR.to_owned()),
        // No such admin: nothing matches.
        Some(_) => return ok(json!({"logs": [], "total": 0, "page": page, "pageSize": size})),
    };
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
                logs.push(audit_view(e));
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
        let t = new_token();
        assert!(check_token(&t).is_some());
        let mut altered = t.clone();
        altered.replace_range(4..5, if &t[4..5] == "9" { "8" } else { "9" });
        assert!(check_token(&altered).is_none());
        assert!(check_token("adm.1.2.3").is_none());
        assert!(check_token("").is_none());
        // An expired one, correctly signed.
        let s = sign(&["admin", "1", "n"]);
        assert!(check_token(&format!("adm.1.n.{s}")).is_none());
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
