//! `/v1/auth/*`, `/v1/user/me` and `/v1/users/search`: register, log in, refresh, third-party
//! login; the caller's profile; user search.
//!
//! A register or login is a new device of ours (`flutter-` and 16 hex digits): its access token
//! is the bearer token of every other route and the WebSocket's `?token=`. The document's
//! refresh body carries only the refresh token while ours is bound to its device, so the
//! `refresh_token` handed out is `<device>.<our refresh token>`.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Json, Path, Query, State};
use axum::http::StatusCode;
use parley_protocol::frames::{
    Credential, Device, LoginResult, Platform, PresenceStatus, ProfileChange, Request, Response,
};
use parley_protocol::ids::{Account, DeviceId};
use parley_protocol::session::Identity;
use parley_protocol::values::{NewPassword, Password};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{media, views, Caller, FlError, Flutter, Peer};
use crate::compat::{call_from, unexpected};

/// A registration.
#[derive(Debug, Deserialize)]
pub struct RegisterBody {
    username: String,
    password: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    nickname: Option<String>,
}

/// A login.
#[derive(Debug, Deserialize)]
pub struct LoginBody {
    username: String,
    password: String,
}

/// A refresh.
#[derive(Debug, Deserialize)]
pub struct RefreshBody {
    refresh_token: String,
}

/// A profile update.
#[derive(Debug, Deserialize)]
pub struct ProfileBody {
    #[serde(default)]
    nickname: Option<String>,
    #[serde(default)]
    avatar: Option<String>,
    #[serde(default)]
    status_message: Option<String>,
}

/// A user search.
#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    offset: Option<u32>,
}

/// Most users a search lists per page, and most matches it counts for `total`.
const MAX_SEARCH: u32 = 100;
const MAX_SEARCH_SCAN: usize = 1000;

/// A JSON body, or `400`.
pub fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, FlError> {
    b.map(|Json(v)| v).map_err(FlError::from)
}

/// A query, or `400`.
pub fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, FlError> {
    q.map(|Query(v)| v).map_err(FlError::from)
}

fn device() -> Result<Device, FlError> {
    let mut raw = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut raw);
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    Ok(Device {
        id: DeviceId::try_from(format!("flutter-{hex}"))
            .map_err(|e| FlError::invalid(e.message()))?,
        platform: Platform::Unspecified,
    })
}

fn identity(l: &LoginResult) -> Result<Identity, FlError> {
    Ok(Identity {
        user: l.user,
        account: Account::try_from(l.account.clone()).map_err(|e| FlError::invalid(e.message()))?,
        device: l.device.clone(),
    })
}

/// The refresh token the client holds: `<device>.<ours>` (device ids have no `.`).
fn refresh_token(l: &LoginResult) -> String {
    format!("{}.{}", l.device, l.refresh_token)
}

async fn log_in(fl: &Flutter, request: Request, peer: Peer) -> Result<LoginResult, FlError> {
    match call_from(&*fl.backend, None, request, peer.0).await? {
        Response::Login(l) => Ok(l),
        other => Err(unexpected(&other).into()),
    }
}

/// `POST /v1/auth/register`: `201 {user_id, username, token, refresh_token}`; a taken
/// username is `409`. The nickname goes to the profile; the email is accepted but not kept (the
/// core has no email field; see docs/dialect-flutter.md).
pub async fn register(
    State(fl): State<Flutter>,
    peer: Peer,
    b: Result<Json<RegisterBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), FlError> {
    let b = body(b)?;
    if let Some(email) = &b.email {
        if !email.is_empty() && !email.contains('@') {
            return Err(FlError::invalid("email is not an email address"));
        }
    }
    let request = Request::Register {
        account: Account::try_from(b.username).map_err(|e| FlError::invalid(e.message()))?,
        password: NewPassword::try_from(b.password).map_err(|e| FlError::invalid(e.message()))?,
        device: device()?,
    };
    let login = log_in(&fl, request, peer).await?;
    if let Some(nickname) = b.nickname.filter(|n| !n.trim().is_empty()) {
        let me = identity(&login)?;
        let change = ProfileChange {
            nickname: Some(nickname),
            ..ProfileChange::default()
        };
        fl.call(&me, Request::UpdateProfile(change)).await?;
    }
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "user_id": login.user.to_string(),
            "username": login.account,
            "token": login.access_token,
            "refresh_token": refresh_token(&login),
        })),
    ))
}

/// `POST /v1/auth/login`: a wrong username or password is `401`.
pub async fn login(
    State(fl): State<Flutter>,
    peer: Peer,
    b: Result<Json<LoginBody>, JsonRejection>,
) -> Result<Json<Value>, FlError> {
    let b = body(b)?;
    // A name or password that cannot be an account's is a failed login, not bad input: the
    // answer does not tell which accounts could exist.
    let (Ok(account), Ok(password)) = (
        Account::try_from(b.username),
        Password::try_from(b.password),
    ) else {
        return Err(FlError::unauthorized("wrong username or password"));
    };
    let request = Request::Login {
        credential: Credential::Password { account, password },
        device: device()?,
    };
    let login = log_in(&fl, request, peer).await?;
    Ok(Json(json!({
        "user_id": login.user.to_string(),
        "username": login.account,
        "token": login.access_token,
        "refresh_token": refresh_token(&login),
    })))
}

/// `POST /v1/auth/refresh`: `{token, refresh_token}`; the old pair is revoked. A refresh token
/// that is not one of ours is `401`.
pub async fn refresh(
    State(fl): State<Flutter>,
    b: Result<Json<RefreshBody>, JsonRejection>,
) -> Result<Json<Value>, FlError> {
    let b = body(b)?;
    let bad = || FlError::unauthorized("invalid refresh token");
    let (device, token) = b.refresh_token.split_once('.').ok_or_else(bad)?;
    let device = DeviceId::try_from(device).map_err(|_| bad())?;
    let request = Request::Refresh {
        refresh_token: token.to_owned(),
        device: Device {
            id: device,
            platform: Platform::Unspecified,
        },
    };
    let login = log_in(&fl, request, Peer(None)).await?;
    Ok(Json(json!({
        "token": login.access_token,
        "refresh_token": refresh_token(&login),
    })))
}

/// `POST /v1/auth/oauth/{provider}`: this server has no third-party identity providers, so
/// every provider answers `501` (an unknown one's name is in `details`).
pub async fn oauth(Path(provider): Path<String>) -> FlError {
    FlError::new(
        StatusCode::NOT_IMPLEMENTED,
        format!("third-party login ({provider}) is not configured on this server"),
    )
}

/// The caller's presence: (status, custom message).
async fn presence(fl: &Flutter, me: &Identity) -> Result<(PresenceStatus, String), FlError> {
    match fl.call(me, Request::GetPresence(vec![me.user])).await? {
        Response::Presences(p) => Ok(p
            .into_iter()
            .next()
            .map_or((PresenceStatus::Offline, String::new()), |p| {
                (p.status, p.text)
            })),
        other => Err(unexpected(&other).into()),
    }
}

/// `GET /v1/user/me`: `{user_id, username, email, nickname, avatar, status, status_message,
/// created_at}` (`email` is null: not kept).
pub async fn me(State(fl): State<Flutter>, Caller(me): Caller) -> Result<Json<Value>, FlError> {
    let p = fl.profile(&me, me.user).await?;
    let (status, text) = presence(&fl, &me).await?;
    Ok(Json(json!({
        "user_id": me.user.to_string(),
        "username": p.account,
        "email": Value::Null,
        "nickname": views::display_name(&p),
        "avatar": views::avatar(&p.avatar_file_id),
        "status": views::status_name(status),
        "status_message": text,
        "created_at": views::iso(p.created_at_ms),
    })))
}

/// `PATCH /v1/user/me`: nickname, avatar (`base64:<image>` stored as a file of the caller, or a
/// URL) and `status_message` (the presence's custom text). Answers the new values.
pub async fn update_me(
    State(fl): State<Flutter>,
    Caller(me): Caller,
    b: Result<Json<ProfileBody>, JsonRejection>,
) -> Result<Json<Value>, FlError> {
    let b = body(b)?;
    let avatar = match b.avatar.as_deref() {
        Some(a) => Some(media::avatar(&fl, &me, a).await?),
        None => None,
    };
    let change = ProfileChange {
        nickname: b.nickname,
        avatar_file_id: avatar,
        ..ProfileChange::default()
    };
    if change != ProfileChange::default() {
        fl.call(&me, Request::UpdateProfile(change)).await?;
    }
    if let Some(text) = b.status_message {
        let request = Request::SetPresence {
            status: None,
            text: Some(text),
        };
        fl.call(&me, request).await?;
    }
    let p = fl.profile(&me, me.user).await?;
    let (_, text) = presence(&fl, &me).await?;
    Ok(Json(json!({
        "user_id": me.user.to_string(),
        "username": p.account,
        "nickname": views::display_name(&p),
        "avatar": views::avatar(&p.avatar_file_id),
        "status_message": text,
    })))
}

/// `GET /v1/users/search?query=&limit=&offset=`: `{total, users}`, users by account name or
/// nickname (`total` counts at most the first 1000 matches).
pub async fn search(
    State(fl): State<Flutter>,
    Caller(me): Caller,
    q: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Json<Value>, FlError> {
    let q = query(q)?;
    let text = q.query.unwrap_or_default();
    if text.trim().is_empty() {
        return Err(FlError::invalid("query is required"));
    }
    let limit = q.limit.unwrap_or(20);
    if limit == 0 || limit > MAX_SEARCH {
        return Err(FlError::invalid(format!("limit must be 1..={MAX_SEARCH}")));
    }
    let offset = q.offset.unwrap_or(0) as usize;
    let mut found = Vec::new();
    let mut after = 0;
    loop {
        let request = Request::SearchUsers {
            query: text.clone(),
            after,
            limit: MAX_SEARCH,
        };
        let (users, has_more) = match fl.call(&me, request).await? {
            Response::Users { users, has_more } => (users, has_more),
            other => return Err(unexpected(&other).into()),
        };
        let last = users.last().and_then(|p| p.user).map(u64::from);
        found.extend(users);
        match last {
            Some(last) if has_more && found.len() < MAX_SEARCH_SCAN => after = last,
            _ => break,
        }
    }
    let users: Vec<Value> = found
        .iter()
        .skip(offset)
        .take(limit as usize)
        .map(views::user_brief)
        .collect();
    Ok(Json(json!({ "total": found.len(), "users": users })))
}
