//! `/auth/*` and `/users/*`: register, log in, guest login, log out; the caller's profile, its
//! avatar, and user search.
//!
//! A GoChat login is a new device of ours (`gochat-` and 16 hex digits, platform web): the
//! access token is the bearer token of every other route and of the WebSocket. Every login puts
//! the user in the world room ([`GoChat::join_world`]): for a guest that is the point of the
//! login and a failure fails it; for the others a failure is logged and the login stands.

use axum::extract::State;
use parley_protocol::frames::{
    Credential, Device, LoginResult, Platform, ProfileChange, Request, Response,
};
use parley_protocol::ids::{Account, DeviceId};
use parley_protocol::session::Identity;
use parley_protocol::values::{NewPassword, Password};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::GoError;
use super::extract::{Body, Caller, Done, MaybeBody, Peer, Query};
use super::views;
use super::GoChat;
use crate::compat::{call_from, unexpected};

/// Register and login bodies.
#[derive(Debug, Deserialize)]
pub struct Credentials {
    username: String,
    password: String,
}

/// Guest login takes no fields (the contract's body is an empty object); a nickname is kept.
#[derive(Debug, Default, Deserialize)]
pub struct GuestBody {
    #[serde(default)]
    nickname: String,
}

/// A profile update: the avatar URL.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileBody {
    avatar_url: Option<String>,
}

/// A user search.
#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    q: Option<String>,
    limit: Option<u32>,
}

/// Most users a search returns (the contract's maximum).
const MAX_SEARCH: u32 = 20;

fn device() -> Result<Device, GoError> {
    let mut raw = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut raw);
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    Ok(Device {
        id: DeviceId::try_from(format!("gochat-{hex}"))
            .map_err(|e| GoError::invalid(e.message()))?,
        platform: Platform::Web,
    })
}

fn invalid(e: parley_protocol::InvalidInput) -> GoError {
    GoError::invalid(e.message())
}

/// The identity a login result stands for.
fn identity(l: &LoginResult) -> Result<Identity, GoError> {
    Ok(Identity {
        user: l.user,
        account: Account::try_from(l.account.clone()).map_err(invalid)?,
        device: l.device.clone(),
    })
}

/// A user's `User`.
pub async fn user_of(go: &GoChat, me: &Identity) -> Result<Value, GoError> {
    let profile = own_profile(go, me).await?;
    Ok(views::user(&profile))
}

async fn own_profile(
    go: &GoChat,
    me: &Identity,
) -> Result<parley_protocol::frames::Profile, GoError> {
    match go.call(me, Request::GetProfiles(vec![me.user])).await? {
        Response::Profiles(p) => p
            .into_iter()
            .next()
            .ok_or_else(|| GoError::unauthorized("the account no longer exists")),
        other => Err(unexpected(&other).into()),
    }
}

/// Logs in with `request` and renders the tokens and the user; joins the world room.
async fn log_in(
    go: &GoChat,
    request: Request,
    peer: Peer,
    world_required: bool,
) -> Result<Value, GoError> {
    let login = match call_from(&*go.backend, None, request, peer.0).await? {
        Response::Login(l) => l,
        other => return Err(unexpected(&other).into()),
    };
    let me = identity(&login)?;
    if let Err(e) = go.join_world(&me).await {
        match world_required {
            true => return Err(e),
            false => {
                tracing::warn!(code = e.code, message = %e.message, "could not join the world room")
            }
        }
    }
    let user = user_of(go, &me).await?;
    Ok(json!({
        "accessToken": login.access_token,
        // The web client of that era read `data.token`.
        "token": login.access_token,
        "refreshToken": login.refresh_token,
        "expiresIn": views::secs(login.access_expires_at_ms),
        "user": user,
    }))
}

/// `POST /auth/register`: `201`; an existing username is `400 USER_ALREADY_EXISTS`, as the
/// contract says.
pub async fn register(
    State(go): State<GoChat>,
    peer: Peer,
    Body(b): Body<Credentials>,
) -> Result<Done, GoError> {
    let request = Request::Register {
        account: Account::try_from(b.username).map_err(invalid)?,
        password: NewPassword::try_from(b.password).map_err(invalid)?,
        device: device()?,
    };
    let data = log_in(&go, request, peer, false)
        .await
        .map_err(|e| match e.code {
            "CONFLICT" => GoError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "USER_ALREADY_EXISTS",
                "the username is taken",
            ),
            _ => e,
        })?;
    Ok(Done::created("registered", data))
}

/// `POST /auth/login`: a wrong username or password is `401 AUTH_FAILED`.
pub async fn login(
    State(go): State<GoChat>,
    peer: Peer,
    Body(b): Body<Credentials>,
) -> Result<Done, GoError> {
    // A name or password that cannot be an account's is a failed login, not bad input: the
    // answer does not tell which accounts could exist.
    let (Ok(account), Ok(password)) = (
        Account::try_from(b.username),
        Password::try_from(b.password),
    ) else {
        return Err(GoError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "AUTH_FAILED",
            "wrong username or password",
        ));
    };
    let request = Request::Login {
        credential: Credential::Password { account, password },
        device: device()?,
    };
    Ok(Done::ok(
        "logged in",
        log_in(&go, request, peer, false).await?,
    ))
}

/// `POST /auth/guest`: `201`; the guest is a member of the world room.
pub async fn guest(
    State(go): State<GoChat>,
    peer: Peer,
    MaybeBody(b): MaybeBody<GuestBody>,
) -> Result<Done, GoError> {
    let request = Request::GuestLogin {
        device: device()?,
        nickname: b.nickname,
    };
    Ok(Done::created(
        "guest logged in",
        log_in(&go, request, peer, true).await?,
    ))
}

/// `POST /auth/logout`: revokes this token's device.
pub async fn logout(State(go): State<GoChat>, Caller(me): Caller) -> Result<Done, GoError> {
    go.call(&me, Request::Logout).await?;
    Ok(Done::empty("logged out"))
}

/// `GET /users/profile`.
pub async fn profile(State(go): State<GoChat>, Caller(me): Caller) -> Result<Done, GoError> {
    Ok(Done::ok("ok", user_of(&go, &me).await?))
}

/// `PUT /users/profile`: sets the avatar URL (absolute http(s), at most 128 bytes). Guests get
/// `403 FORBIDDEN`, as GoChat's contract says (our own API lets guests edit their profile).
pub async fn update_profile(
    State(go): State<GoChat>,
    Caller(me): Caller,
    Body(b): Body<ProfileBody>,
) -> Result<Done, GoError> {
    if own_profile(&go, &me).await?.guest {
        return Err(GoError::forbidden("guests may not update their profile"));
    }
    if let Some(url) = &b.avatar_url {
        if views::avatar_url(url).is_none() {
            return Err(GoError::invalid("avatarUrl must be an http(s) URL"));
        }
    }
    let change = ProfileChange {
        avatar_file_id: b.avatar_url,
        ..ProfileChange::default()
    };
    go.call(&me, Request::UpdateProfile(change)).await?;
    Ok(Done::ok("profile updated", user_of(&go, &me).await?))
}

/// `GET /users/search?q=&limit=`: users by username or nickname (guests: `403`).
pub async fn search(
    State(go): State<GoChat>,
    Caller(me): Caller,
    Query(q): Query<SearchQuery>,
) -> Result<Done, GoError> {
    let query = q.q.unwrap_or_default();
    if query.trim().is_empty() {
        return Err(GoError::invalid("q is required"));
    }
    let request = Request::SearchUsers {
        query,
        after: 0,
        limit: q.limit.unwrap_or(10).clamp(1, MAX_SEARCH),
    };
    match go.call(&me, request).await? {
        Response::Users { users, .. } => Ok(Done::ok(
            "ok",
            json!({ "users": users.iter().map(views::user).collect::<Vec<_>>() }),
        )),
        other => Err(unexpected(&other).into()),
    }
}
