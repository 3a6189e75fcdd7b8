//! `/health` and the users module: register, login (`client_type` web|mobile), the caller's
//! profile (with the add-friend rule), and another user's public profile.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::Json;
use parley_protocol::frames::{
    Credential, Device, LoginResult, Platform, ProfileChange, Request, Response, SettingsChange,
};
use parley_protocol::ids::{Account, DeviceId};
use parley_protocol::session::Identity;
use parley_protocol::values::{NewPassword, Password};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};

use super::views;
use super::{Caller, Wetty, WtError};
use crate::compat::{call_from, unexpected};

pub use crate::compat::extract::Peer;

/// A JSON body (`400` when it is not one).
pub fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, WtError> {
    b.map(|Json(v)| v).map_err(WtError::from)
}

/// A path parameter (`400` when it does not parse).
pub fn path<T>(p: Result<Path<T>, PathRejection>) -> Result<T, WtError> {
    p.map(|Path(v)| v).map_err(WtError::from)
}

/// Register and login bodies.
#[derive(Debug, Deserialize)]
pub struct Credentials {
    username: String,
    password: String,
    #[serde(default)]
    client_type: Option<String>,
}

/// `GET /health`.
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// A new device of `client_type` (`web`, the default, or `mobile`).
fn device(client_type: Option<&str>) -> Result<(Device, &'static str), WtError> {
    let (platform, kind) = match client_type.unwrap_or("web") {
        "web" => (Platform::Web, "web"),
        "mobile" => (Platform::Android, "mobile"),
        other => {
            return Err(WtError::invalid(format!(
                "client_type {other:?} is not web or mobile"
            )))
        }
    };
    let mut raw = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut raw);
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let id = DeviceId::try_from(format!("wetty-{kind}-{hex}"))
        .map_err(|e| WtError::invalid(e.message()))?;
    Ok((Device { id, platform }, kind))
}

/// The login answer: `{token, user_key, uid, username, client_type, expires_at}`. `token` is
/// our access token; `user_key` our refresh token.
fn tokens(l: &LoginResult, kind: &str) -> Value {
    json!({
        "token": l.access_token,
        "user_key": l.refresh_token,
        "uid": l.user.to_string(),
        "username": l.account,
        "client_type": kind,
        "expires_at": views::rfc3339(l.access_expires_at_ms),
    })
}

async fn log_in(wt: &Wetty, request: Request, peer: Peer) -> Result<LoginResult, WtError> {
    match call_from(&*wt.backend, None, request, peer.0).await? {
        Response::Login(l) => Ok(l),
        other => Err(unexpected(&other).into()),
    }
}

/// `POST /users/auth/register`: `201` with the login answer; a taken username is `409`.
pub async fn register(
    State(wt): State<Wetty>,
    peer: Peer,
    b: Result<Json<Credentials>, JsonRejection>,
) -> Result<HttpResponse, WtError> {
    let b = body(b)?;
    let (device, kind) = device(b.client_type.as_deref())?;
    let request = Request::Register {
        account: Account::try_from(b.username).map_err(|e| WtError::invalid(e.message()))?,
        password: NewPassword::try_from(b.password).map_err(|e| WtError::invalid(e.message()))?,
        device,
    };
    let login = log_in(&wt, request, peer).await?;
    Ok((StatusCode::CREATED, Json(tokens(&login, kind))).into_response())
}

/// `POST /users/auth/login`: a wrong username or password is `401`.
pub async fn login(
    State(wt): State<Wetty>,
    peer: Peer,
    b: Result<Json<Credentials>, JsonRejection>,
) -> Result<Json<Value>, WtError> {
    let b = body(b)?;
    let (device, kind) = device(b.client_type.as_deref())?;
    // A name or password that cannot be an account's is a failed login, not bad input: the
    // answer does not tell which accounts could exist.
    let (Ok(account), Ok(password)) = (
        Account::try_from(b.username),
        Password::try_from(b.password),
    ) else {
        return Err(WtError::unauthorized("wrong username or password"));
    };
    let request = Request::Login {
        credential: Credential::Password { account, password },
        device,
    };
    let login = log_in(&wt, request, peer).await?;
    Ok(Json(tokens(&login, kind)))
}

/// The profile of `user` as `me` may see it (`404` for an unknown user).
async fn profile_of(
    wt: &Wetty,
    me: &Identity,
    user: parley_protocol::ids::UserId,
) -> Result<parley_protocol::frames::Profile, WtError> {
    match wt.call(me, Request::GetProfiles(vec![user])).await? {
        Response::Profiles(p) => p
            .into_iter()
            .next()
            .ok_or_else(|| WtError::not_found(format!("no such user: {user}"))),
        other => Err(unexpected(&other).into()),
    }
}

async fn own(wt: &Wetty, me: &Identity) -> Result<Value, WtError> {
    let profile = profile_of(wt, me, me.user).await?;
    let settings = match wt.call(me, Request::GetSettings).await? {
        Response::Settings(s) => s,
        other => return Err(unexpected(&other).into()),
    };
    Ok(views::own_profile(&profile, &settings))
}

/// `GET /users/profile`.
pub async fn profile(State(wt): State<Wetty>, Caller(me): Caller) -> Result<Json<Value>, WtError> {
    Ok(Json(own(&wt, &me).await?))
}

/// A profile update: any of the fields.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileBody {
    nickname: Option<String>,
    avatar_fid: Option<String>,
    bio: Option<String>,
    sr_link: Option<String>,
    add_friend_setting: Option<String>,
}

/// `PUT /users/profile`: the profile as it now is. Unknown fields are `400` (so a typo is not
/// silently ignored).
pub async fn update_profile(
    State(wt): State<Wetty>,
    Caller(me): Caller,
    b: Result<Json<ProfileBody>, JsonRejection>,
) -> Result<Json<Value>, WtError> {
    let b = body(b)?;
    let change = ProfileChange {
        nickname: b.nickname,
        avatar_file_id: b.avatar_fid,
        bio: b.bio,
        link: b.sr_link,
        ..ProfileChange::default()
    };
    let policy = b
        .add_friend_setting
        .as_deref()
        .map(views::add_setting)
        .transpose()?;
    if change == ProfileChange::default() && policy.is_none() {
        return Err(WtError::invalid("nothing to change"));
    }
    if change != ProfileChange::default() {
        wt.call(&me, Request::UpdateProfile(change)).await?;
    }
    if let Some(policy) = policy {
        let change = SettingsChange {
            add_policy: Some(policy),
            ..SettingsChange::default()
        };
        wt.call(&me, Request::UpdateSettings(change)).await?;
    }
    Ok(Json(own(&wt, &me).await?))
}

/// `GET /users/{user_id}` (ours): another user's public profile.
pub async fn user(
    State(wt): State<Wetty>,
    Caller(me): Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, WtError> {
    let user = views::user_id(&path(id)?)?;
    Ok(Json(views::user(&profile_of(&wt, &me, user).await?)))
}
