//! The admin API, `/admin/v1` on the private surface: users (list, search, ban, unban), groups
//! (disband), announcements to every user, the running configuration without its secrets, and
//! the audit log of admin actions (`GET /admin/v1/audit-logs`: the core records every ban,
//! unban, disband and announcement, refused ones included, with time, actor and target),
//! admin accounts (`GET`/`POST /admin/v1/admins`, `PUT /admin/v1/admins/{id}/status`) and the
//! runtime settings (`GET /admin/v1/settings`, `PUT /admin/v1/settings/{key}`: the few values
//! an admin may change while the server runs, kept in the store). Here the caller is always
//! the operator (admin 1); admin accounts act through a dialect's admin login (AnyChat's).
//!
//! Every route sits behind one credential, a bearer token from the configuration
//! (`[admin] token`), compared in constant time (only a difference in length shows, through
//! timing). With no token configured, every route answers `403 ADMIN_DISABLED`. Authentication
//! runs before routing, so an unauthenticated caller cannot tell which routes exist.
//!
//! Errors share the REST API's body, `{"error":{"code":"NOT_FOUND","message":"..."}}`, with the
//! protocol's error code names plus `UNAUTHENTICATED`'s sibling `ADMIN_DISABLED`. Like every
//! adapter of the HTTP side, it holds no feature logic: each route is one [`Backend`] call.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use parley_protocol::frames::ErrorInfo;
use parley_protocol::ids::{ConversationId, UserId};
use parley_protocol::ErrorCode;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::Backend;

/// Users per page when the request names no `limit`.
pub const DEFAULT_PAGE: usize = 50;
/// Users per page at most.
pub const MAX_PAGE: usize = 500;
/// Longest search text, in bytes.
const MAX_QUERY: usize = 256;

/// What [`Backend::admin_users`] is asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserQuery {
    /// Part of the account name or nickname, case-insensitive; empty: every user.
    pub query: String,
    /// Users with an id above this one (0: from the start).
    pub after: u64,
    /// Users per page, 1..=[`MAX_PAGE`].
    pub limit: usize,
}

/// A user as the operator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminUser {
    /// Id.
    pub id: UserId,
    /// Login name.
    pub account: String,
    /// Display name.
    pub nickname: String,
    /// Creation time, Unix ms.
    pub created_ms: u64,
    /// A guest account.
    pub guest: bool,
    /// Banned.
    pub banned: bool,
    /// Has a session now.
    pub online: bool,
}

/// One page of users.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserPage {
    /// The users, in id order.
    pub users: Vec<AdminUser>,
    /// Where the next page starts (its `after`); `None`: this was the last.
    pub next_after: Option<u64>,
}

/// Audit entries per page when the request names no `limit`, and at most.
pub const DEFAULT_AUDIT_PAGE: usize = 50;
/// Audit entries per page at most.
pub const MAX_AUDIT_PAGE: usize = 500;

/// What [`Backend::admin_audit_log`] is asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Entries numbered below this (`0`: from the newest).
    pub before: u64,
    /// Entries per page, 1..=[`MAX_AUDIT_PAGE`].
    pub limit: usize,
    /// Only entries of this action (`ban`, `unban`, `disband_group`, `announce`).
    pub action: Option<String>,
    /// Only entries of this actor (`operator`).
    pub actor: Option<String>,
}

/// One admin action as the audit log keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// Its number: later entries have higher ones.
    pub id: u64,
    /// When, Unix ms.
    pub at_ms: u64,
    /// Who (`operator`: the `[admin] token`).
    pub actor: String,
    /// What.
    pub action: String,
    /// On what: `user:<id>`, `group:<id>`, `all_users`.
    pub target: String,
    /// `ok`, or the error code's name.
    pub outcome: String,
    /// More about it (an announcement's text, cut).
    pub detail: String,
}

/// One page of the audit log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
    /// The `before` of the next page; `None`: this was the last.
    pub next_before: Option<u64>,
}

/// Who runs an admin operation ([`Backend::admin_check`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminActor {
    /// The `[admin] token` (admin 1, `admin`): `/admin/v1`, or a dialect's admin login with it.
    Operator,
    /// An admin account, by a token issued to it at `issued_ms` (Unix ms).
    Account {
        /// The admin's id (2 up).
        id: u64,
        /// When its token was issued (a token older than the account's last disabling fails).
        issued_ms: u64,
    },
}

impl AdminActor {
    /// The actor of admin `id` (1: the operator) by a token issued at `issued_ms`.
    pub fn of(id: u64, issued_ms: u64) -> AdminActor {
        match id {
            1 => AdminActor::Operator,
            id => AdminActor::Account { id, issued_ms },
        }
    }

    /// How the audit log names it: `operator` or `admin:<id>`.
    pub fn audit_name(&self) -> String {
        match self {
            AdminActor::Operator => "operator".to_owned(),
            AdminActor::Account { id, .. } => format!("admin:{id}"),
        }
    }
}

/// An admin as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminAccount {
    /// Its id (1: the operator).
    pub id: u64,
    /// Its login name.
    pub username: String,
    /// `super_admin` or `admin`.
    pub role: String,
    /// Whether it may act.
    pub enabled: bool,
    /// Creation time, Unix ms (0: the operator).
    pub created_ms: u64,
}

/// What [`Backend::admin_create`] makes.
#[derive(Clone, PartialEq, Eq)]
pub struct NewAdmin {
    /// Login name: 1..=64 ASCII letters, digits, `_`, `-`, `.`.
    pub username: String,
    /// 8..=1024 bytes.
    pub password: String,
    /// `super_admin` or `admin` (empty: `admin`).
    pub role: String,
}

impl std::fmt::Debug for NewAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewAdmin")
            .field("username", &self.username)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// A configuration value an admin may change while the server runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeSetting {
    /// Its key, dotted as the configuration (`auth.registration_open`).
    pub key: String,
    /// Its current value, as text.
    pub value: String,
    /// `bool` or `integer`.
    pub kind: String,
    /// What it changes.
    pub description: String,
}

/// A failed admin request: status, stable code, message.
#[derive(Debug)]
pub struct AdminError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
}

impl AdminError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> AdminError {
        AdminError {
            status,
            code,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> AdminError {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message)
    }

    fn not_found(message: impl Into<String>) -> AdminError {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }
}

impl From<ErrorInfo> for AdminError {
    /// The REST API's status and code (`rest::error`), but a second disband is a conflict
    /// (the operator's action found the group already disbanded), and internal details stay in
    /// the log.
    fn from(e: ErrorInfo) -> AdminError {
        let status = match e.code {
            ErrorCode::Disbanded => StatusCode::CONFLICT,
            code => crate::rest::error::status(code),
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::warn!(code = ?e.code, message = %e.message, "admin request failed");
            return Self::new(status, "INTERNAL", "internal error");
        }
        Self::new(status, crate::rest::error::code_name(e.code), e.message)
    }
}

impl From<JsonRejection> for AdminError {
    fn from(r: JsonRejection) -> AdminError {
        match r.status() {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                r.body_text(),
            ),
            StatusCode::PAYLOAD_TOO_LARGE => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "MESSAGE_TOO_LARGE",
                r.body_text(),
            ),
            _ => Self::invalid(r.body_text()),
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
            },
        };
        let mut res = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"parley-admin\""),
            );
        }
        res
    }
}

type Answer<T> = Result<Json<T>, AdminError>;

/// The admin routes under `/admin/v1`, behind `token` (`None`: disabled); `config` is what
/// `GET /admin/v1/config` shows (the server redacts it).
pub fn router(
    backend: Arc<dyn Backend>,
    token: Option<Arc<str>>,
    config: Arc<serde_json::Value>,
) -> Router {
    let api = Router::new()
        .route("/users", get(list_users))
        .route("/users/{id}/ban", post(ban))
        .route("/users/{id}/unban", post(unban))
        .route("/groups/{id}/disband", post(disband))
        .route("/announcements", post(announce))
        .route("/config", get(running_config))
        .route("/audit-logs", get(audit_logs))
        .route("/admins", get(list_admins).post(create_admin))
        .route("/admins/{id}/status", put(admin_status))
        .route("/settings", get(list_settings))
        .route("/settings/{key}", put(set_setting))
        .fallback(|| async { AdminError::not_found("no such admin route") })
        .method_not_allowed_fallback(|| async {
            AdminError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "method not allowed on this admin route",
            )
        })
        .with_state(AdminState { backend, config })
        .layer(axum::middleware::from_fn_with_state(token, authorize));
    Router::new().nest("/admin/v1", api)
}

/// What the admin routes share.
#[derive(Clone)]
struct AdminState {
    backend: Arc<dyn Backend>,
    /// The running configuration, secrets already redacted by the server.
    config: Arc<serde_json::Value>,
}

async fn authorize(
    State(token): State<Option<Arc<str>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = token else {
        return AdminError::new(
            StatusCode::FORBIDDEN,
            "ADMIN_DISABLED",
            "the admin API is disabled: set [admin] token in the configuration",
        )
        .into_response();
    };
    let given = match crate::bearer(request.headers()) {
        crate::Bearer::Token(token) => Some(token),
        crate::Bearer::Missing | crate::Bearer::Malformed => None,
    };
    match given {
        None => AdminError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "an admin bearer token is required",
        )
        .into_response(),
        Some(t) if admin_token_matches(&expected, t) => next.run(request).await,
        Some(_) => {
            tracing::warn!(path = %request.uri().path(), "admin request with a wrong token");
            AdminError::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "wrong admin token",
            )
            .into_response()
        }
    }
}

fn parse_id(what: &str, raw: &str) -> Result<u64, AdminError> {
    raw.parse::<u64>()
        .ok()
        .filter(|n| *n != 0)
        .ok_or_else(|| AdminError::invalid(format!("{what} must be a non-zero decimal id")))
}

fn user_id(raw: &str) -> Result<UserId, AdminError> {
    UserId::try_from(parse_id("user id", raw)?).map_err(|e| AdminError::invalid(e.to_string()))
}

/// `GET /admin/v1/users` parameters (all optional; given as strings, checked here).
#[derive(Deserialize)]
struct ListParams {
    q: Option<String>,
    after: Option<String>,
    limit: Option<String>,
}

#[derive(Serialize)]
struct UserView {
    id: String,
    account: String,
    nickname: String,
    created_ms: u64,
    guest: bool,
    banned: bool,
    online: bool,
}

#[derive(Serialize)]
struct UsersView {
    users: Vec<UserView>,
    /// The `after` of the next page; `null` on the last.
    next_after: Option<String>,
}

async fn list_users(State(s): State<AdminState>, Query(p): Query<ListParams>) -> Answer<UsersView> {
    let query = p.q.unwrap_or_default();
    if query.len() > MAX_QUERY {
        return Err(AdminError::invalid(format!(
            "q is at most {MAX_QUERY} bytes"
        )));
    }
    let after = match p.after.as_deref() {
        None | Some("") => 0,
        Some(raw) => parse_id("after", raw)?,
    };
    let limit = match p.limit.as_deref() {
        None | Some("") => DEFAULT_PAGE,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| AdminError::invalid(format!("limit must be 1..={MAX_PAGE}")))?,
    };
    let page = s
        .backend
        .admin_users(UserQuery {
            query,
            after,
            limit,
        })
        .await?;
    Ok(Json(UsersView {
        users: page
            .users
            .into_iter()
            .map(|u| UserView {
                id: u.id.get().to_string(),
                account: u.account,
                nickname: u.nickname,
                created_ms: u.created_ms,
                guest: u.guest,
                banned: u.banned,
                online: u.online,
            })
            .collect(),
        next_after: page.next_after.map(|n| n.to_string()),
    }))
}

#[derive(Serialize)]
struct BanView {
    user_id: String,
    banned: bool,
}

async fn set_banned(backend: Arc<dyn Backend>, raw: String, banned: bool) -> Answer<BanView> {
    let user = user_id(&raw)?;
    backend.set_banned(user, banned).await?;
    tracing::info!(user = user.get(), banned, "admin: ban changed");
    Ok(Json(BanView {
        user_id: user.get().to_string(),
        banned,
    }))
}

async fn ban(State(s): State<AdminState>, Path(id): Path<String>) -> Answer<BanView> {
    set_banned(s.backend, id, true).await
}

async fn unban(State(s): State<AdminState>, Path(id): Path<String>) -> Answer<BanView> {
    set_banned(s.backend, id, false).await
}

#[derive(Serialize)]
struct DisbandView {
    group_id: String,
    disbanded: bool,
}

async fn disband(State(s): State<AdminState>, Path(id): Path<String>) -> Answer<DisbandView> {
    let group = ConversationId::try_from(parse_id("group id", &id)?)
        .map_err(|e| AdminError::invalid(e.to_string()))?;
    s.backend.admin_disband_group(group).await?;
    tracing::info!(group = group.get(), "admin: group disbanded");
    Ok(Json(DisbandView {
        group_id: group.get().to_string(),
        disbanded: true,
    }))
}

/// `POST /admin/v1/announcements` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnnounceBody {
    text: String,
}

#[derive(Serialize)]
struct AnnounceView {
    recipients: u64,
}

async fn announce(
    State(s): State<AdminState>,
    body: Result<Json<AnnounceBody>, JsonRejection>,
) -> Answer<AnnounceView> {
    let Json(body) = body?;
    if body.text.trim().is_empty() {
        return Err(AdminError::invalid("text must not be empty"));
    }
    let recipients = s.backend.admin_announce(body.text).await?;
    tracing::info!(recipients, "admin: announcement sent");
    Ok(Json(AnnounceView { recipients }))
}

/// `GET /admin/v1/audit-logs` parameters (all optional; given as strings, checked here).
#[derive(Deserialize)]
struct AuditParams {
    before: Option<String>,
    limit: Option<String>,
    action: Option<String>,
    actor: Option<String>,
}

#[derive(Serialize)]
struct AuditView {
    id: String,
    at_ms: u64,
    actor: String,
    action: String,
    target: String,
    outcome: String,
    detail: String,
}

#[derive(Serialize)]
struct AuditsView {
    entries: Vec<AuditView>,
    /// The `before` of the next page; `null` on the last.
    next_before: Option<String>,
}

/// A filter value: empty means none; at most [`MAX_QUERY`] bytes.
fn filter(what: &str, raw: Option<String>) -> Result<Option<String>, AdminError> {
    match raw {
        Some(v) if v.len() > MAX_QUERY => Err(AdminError::invalid(format!(
            "{what} is at most {MAX_QUERY} bytes"
        ))),
        Some(v) if !v.is_empty() => Ok(Some(v)),
        _ => Ok(None),
    }
}

/// `GET /admin/v1/audit-logs?before=&limit=&action=&actor=`: admin actions, newest first.
async fn audit_logs(
    State(s): State<AdminState>,
    Query(p): Query<AuditParams>,
) -> Answer<AuditsView> {
    let before = match p.before.as_deref() {
        None | Some("") => 0,
        Some(raw) => parse_id("before", raw)?,
    };
    let limit = match p.limit.as_deref() {
        None | Some("") => DEFAULT_AUDIT_PAGE,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_AUDIT_PAGE).contains(n))
            .ok_or_else(|| AdminError::invalid(format!("limit must be 1..={MAX_AUDIT_PAGE}")))?,
    };
    let query = AuditQuery {
        before,
        limit,
        action: filter("action", p.action)?,
        actor: filter("actor", p.actor)?,
    };
    let page = s.backend.admin_audit_log(query).await?;
    Ok(Json(AuditsView {
        entries: page
            .entries
            .into_iter()
            .map(|e| AuditView {
                id: e.id.to_string(),
                at_ms: e.at_ms,
                actor: e.actor,
                action: e.action,
                target: e.target,
                outcome: e.outcome,
                detail: e.detail,
            })
            .collect(),
        next_before: page.next_before.map(|n| n.to_string()),
    }))
}

#[derive(Serialize)]
struct AdminView {
    id: String,
    username: String,
    role: String,
    enabled: bool,
    created_ms: u64,
}

fn admin_view(a: AdminAccount) -> AdminView {
    AdminView {
        id: a.id.to_string(),
        username: a.username,
        role: a.role,
        enabled: a.enabled,
        created_ms: a.created_ms,
    }
}

#[derive(Serialize)]
struct AdminsView {
    admins: Vec<AdminView>,
}

/// `GET /admin/v1/admins`: every admin, the operator (`1`, `admin`) first.
async fn list_admins(State(s): State<AdminState>) -> Answer<AdminsView> {
    let admins = s.backend.admin_accounts(AdminActor::Operator).await?;
    Ok(Json(AdminsView {
        admins: admins.into_iter().map(admin_view).collect(),
    }))
}

/// `POST /admin/v1/admins` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateAdminBody {
    username: String,
    password: String,
    #[serde(default)]
    role: String,
}

/// `POST /admin/v1/admins {username, password, role?}`: a new admin account (audited).
async fn create_admin(
    State(s): State<AdminState>,
    body: Result<Json<CreateAdminBody>, JsonRejection>,
) -> Answer<AdminView> {
    let Json(body) = body?;
    let account = NewAdmin {
        username: body.username,
        password: body.password,
        role: body.role,
    };
    let made = s
        .backend
        .admin_create(AdminActor::Operator, account, None)
        .await?;
    Ok(Json(admin_view(made)))
}

/// `PUT /admin/v1/admins/{id}/status` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminStatusBody {
    enabled: bool,
}

/// `PUT /admin/v1/admins/{id}/status {enabled}`: disabling stops the admin's tokens (audited).
async fn admin_status(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    body: Result<Json<AdminStatusBody>, JsonRejection>,
) -> Answer<AdminView> {
    let id = parse_id("admin id", &id)?;
    let Json(body) = body?;
    let changed = s
        .backend
        .admin_set_enabled(AdminActor::Operator, id, body.enabled)
        .await?;
    Ok(Json(admin_view(changed)))
}

#[derive(Serialize)]
struct SettingView {
    key: String,
    value: String,
    kind: String,
    description: String,
}

fn setting_view(r: RuntimeSetting) -> SettingView {
    SettingView {
        key: r.key,
        value: r.value,
        kind: r.kind,
        description: r.description,
    }
}

#[derive(Serialize)]
struct SettingsView {
    settings: Vec<SettingView>,
}

/// `GET /admin/v1/settings`: the runtime settings and their values.
async fn list_settings(State(s): State<AdminState>) -> Json<SettingsView> {
    Json(SettingsView {
        settings: s
            .backend
            .admin_settings()
            .into_iter()
            .map(setting_view)
            .collect(),
    })
}

/// `PUT /admin/v1/settings/{key}` body: `value` as a string, a boolean or a number.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingBody {
    value: serde_json::Value,
}

/// `PUT /admin/v1/settings/{key} {value}`: applied at once, kept across restarts, audited.
async fn set_setting(
    State(s): State<AdminState>,
    Path(key): Path<String>,
    body: Result<Json<SettingBody>, JsonRejection>,
) -> Answer<SettingView> {
    let Json(body) = body?;
    if key.len() > MAX_QUERY {
        return Err(AdminError::invalid(format!(
            "key is at most {MAX_QUERY} bytes"
        )));
    }
    let value = match body.value {
        serde_json::Value::String(v) => v,
        v @ (serde_json::Value::Bool(_) | serde_json::Value::Number(_)) => v.to_string(),
        _ => {
            return Err(AdminError::invalid(
                "value must be a string, a boolean or a number",
            ))
        }
    };
    let set = s
        .backend
        .admin_set_setting(AdminActor::Operator, key, value)
        .await?;
    Ok(Json(setting_view(set)))
}

async fn running_config(State(s): State<AdminState>) -> Json<serde_json::Value> {
    Json(s.config.as_ref().clone())
}

/// Whether `given` is the admin credential `expected`: SHA-256 digests compared in constant time,
/// so the time taken tells nothing about the token, not even its length. The admin API and the
/// dialects' own admin logins (AnyChat's) use it.
pub fn admin_token_matches(expected: &str, given: &str) -> bool {
    use sha2::{Digest, Sha256};
    let (a, b) = (
        Sha256::digest(given.as_bytes()),
        Sha256::digest(expected.as_bytes()),
    );
    bool::from(a.as_slice().ct_eq(b.as_slice()))
}
