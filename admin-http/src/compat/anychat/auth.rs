//! `/auth/*`: register, log in, log out, refresh, change the password.
//!
//! - An AnyChat account is a phone number (`^1[3-9]\d{9}$`) or an e-mail address; both become
//!   our account name ([`views::account_of`]: an address lower-cased, `@` as `_at_`). Login's
//!   `account` is either.
//! - `verifyCode` is not checked (the real server did not check it either); `clientVersion` is
//!   optional (the SDK of the contract's era did not send it); `deviceType` is read in any case
//!   (`ios`, `android`, `web`, `pc`, ...). The password must be 8–32 characters with a letter
//!   and a digit, AnyChat's rule.
//! - `deviceId` is our device id (a missing one gets `anychat-` and 16 hex digits), so a
//!   client's re-login on the same device replaces its older session, as in AnyChat.
//! - AnyChat's refresh sends the refresh token alone, while ours is bound to its device: the
//!   refresh token handed out is `base64url(deviceId) + "." + our refresh token`, and a refresh
//!   reads the device back from it (a bare token of ours with a `deviceId` in the body works
//!   too).

use axum::extract::State;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use parley_protocol::frames::{
    Credential, Device, LoginResult, Platform, ProfileChange, Request, Response,
};
use parley_protocol::ids::{Account, DeviceId};
use parley_protocol::session::Identity;
use parley_protocol::values::{NewPassword, Password};
use rand::RngCore;
use serde::Deserialize;
use serde_json::json;

use super::error::AnyError;
use super::extract::{Body, MaybeBody, Me, Peer};
use super::views::{self, ok, Reply};
use super::AnyChat;
use crate::compat::{call_from, unexpected};

/// `POST /auth/register`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterBody {
    #[serde(default)]
    phone_number: Option<String>,
    #[serde(default)]
    email: Option<String>,
    password: String,
    #[serde(default)]
    nickname: Option<String>,
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    device_type: Option<String>,
}

/// `POST /auth/login`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginBody {
    account: String,
    password: String,
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    device_type: Option<String>,
}

/// `POST /auth/refresh`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshBody {
    refresh_token: String,
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    device_type: Option<String>,
}

/// `POST /auth/password/change`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangePasswordBody {
    old_password: String,
    new_password: String,
}

/// Our platform of AnyChat's `deviceType` (any case).
fn platform(device_type: Option<&str>) -> Platform {
    match device_type.map(str::to_ascii_lowercase).as_deref() {
        Some("ios") => Platform::Ios,
        Some("android") => Platform::Android,
        Some("web" | "h5") => Platform::Web,
        Some("pc" | "desktop" | "windows" | "macos" | "mac" | "linux") => Platform::Desktop,
        _ => Platform::Unspecified,
    }
}

/// The device of a login: the client's `deviceId`, or a new one.
fn device(id: Option<String>, device_type: Option<&str>) -> Result<Device, AnyError> {
    let id = match id.filter(|s| !s.trim().is_empty()) {
        Some(id) => id,
        None => {
            let mut raw = [0u8; 8];
            rand::thread_rng().fill_bytes(&mut raw);
            let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            format!("anychat-{hex}")
        }
    };
    Ok(Device {
        id: DeviceId::try_from(id).map_err(|e| AnyError::invalid(e.message()))?,
        platform: platform(device_type),
    })
}

/// AnyChat's password rule: 8–32 characters, at least one letter and one digit.
fn check_password(p: &str) -> Result<(), AnyError> {
    let n = p.chars().count();
    let letter = p.chars().any(|c| c.is_ascii_alphabetic());
    let digit = p.chars().any(|c| c.is_ascii_digit());
    if !(8..=32).contains(&n) || !letter || !digit {
        return Err(AnyError::invalid(
            "the password must be 8-32 characters with a letter and a digit",
        ));
    }
    Ok(())
}

/// The refresh token AnyChat clients get: the device, then ours.
fn wrap_refresh(device: &DeviceId, token: &str) -> String {
    format!("{}.{token}", B64URL.encode(device.as_str()))
}

/// The device and our token of a refresh token from [`wrap_refresh`] (`None`: a bare token).
fn unwrap_refresh(token: &str) -> Option<(String, String)> {
    let (device, ours) = token.split_once('.')?;
    let device = String::from_utf8(B64URL.decode(device).ok()?).ok()?;
    Some((device, ours.to_owned()))
}

/// The identity a login result stands for.
fn identity(l: &LoginResult) -> Result<Identity, AnyError> {
    Ok(Identity {
        user: l.user,
        account: Account::try_from(l.account.clone())
            .map_err(|e| AnyError::invalid(e.message()))?,
        device: l.device.clone(),
    })
}

/// Runs a login-like `request` and renders AnyChat's `AuthResponse`.
async fn log_in(any: &AnyChat, request: Request, peer: Peer) -> Result<LoginResult, AnyError> {
    match call_from(&*any.backend, None, request, peer.0).await? {
        Response::Login(l) => Ok(l),
        other => Err(unexpected(&other).into()),
    }
}

/// `AuthResponse`: `userId, accessToken, refreshToken, expiresIn` (seconds), `user`.
async fn auth_response(any: &AnyChat, l: &LoginResult) -> Reply {
    let me = identity(l)?;
    let profile = super::users::profile_of(any, &me, me.user).await?;
    ok(json!({
        "userId": views::user_id(l.user),
        "accessToken": l.access_token,
        "refreshToken": wrap_refresh(&l.device, &l.refresh_token),
        "expiresIn": l.access_expires_at_ms.saturating_sub(l.server_time_ms) / 1000,
        "user": views::user_info(&profile),
    }))
}

/// `POST /auth/register`: an account taken is `code: 409`.
pub async fn register(
    State(any): State<AnyChat>,
    peer: Peer,
    Body(b): Body<RegisterBody>,
) -> Reply {
    let given = match (
        b.phone_number.filter(|s| !s.is_empty()),
        b.email.filter(|s| !s.is_empty()),
    ) {
        (Some(phone), _) if views::is_phone(phone.trim()) => phone,
        (Some(_), _) => return Err(AnyError::invalid("phoneNumber must be a mobile number")),
        (None, Some(email)) => email,
        (None, None) => return Err(AnyError::invalid("phoneNumber or email is required")),
    };
    let account = views::account_of(&given)
        .ok_or_else(|| AnyError::invalid("email must be an address of [A-Za-z0-9_.-]"))?;
    check_password(&b.password)?;
    let request = Request::Register {
        account: Account::try_from(account).map_err(|e| AnyError::invalid(e.message()))?,
        password: NewPassword::try_from(b.password).map_err(|e| AnyError::invalid(e.message()))?,
        device: device(b.device_id, b.device_type.as_deref())?,
    };
    let login = log_in(&any, request, peer).await?;
    if let Some(nickname) = b.nickname.filter(|n| !n.trim().is_empty()) {
        let me = identity(&login)?;
        let change = ProfileChange {
            nickname: Some(nickname),
            ..ProfileChange::default()
        };
        any.call(&me, Request::UpdateProfile(change)).await?;
    }
    auth_response(&any, &login).await
}

/// `POST /auth/login`: a wrong account or password is `code: 401`.
pub async fn login(State(any): State<AnyChat>, peer: Peer, Body(b): Body<LoginBody>) -> Reply {
    // An account or password that cannot be one is a failed login, not bad input: the answer
    // does not tell which accounts could exist.
    let failed = || AnyError::unauthorized("wrong account or password");
    let account = views::account_of(&b.account).ok_or_else(failed)?;
    let (Ok(account), Ok(password)) = (Account::try_from(account), Password::try_from(b.password))
    else {
        return Err(failed());
    };
    let request = Request::Login {
        credential: Credential::Password { account, password },
        device: device(b.device_id, b.device_type.as_deref())?,
    };
    let login = log_in(&any, request, peer).await?;
    auth_response(&any, &login).await
}

/// `POST /auth/logout`: revokes this token's device (`deviceId` in the body is accepted and not
/// needed: the token names the device).
pub async fn logout(
    State(any): State<AnyChat>,
    Me(me): Me,
    MaybeBody(_): MaybeBody<serde_json::Value>,
) -> Reply {
    any.call(&me, Request::Logout).await?;
    ok(json!({}))
}

/// `POST /auth/refresh`: a new token pair (the old one is revoked).
pub async fn refresh(State(any): State<AnyChat>, Body(b): Body<RefreshBody>) -> Reply {
    let (device_id, token) = match unwrap_refresh(&b.refresh_token) {
        Some((device, token)) => (Some(device), token),
        None => (b.device_id.clone(), b.refresh_token.clone()),
    };
    let Some(device_id) = device_id.filter(|d| !d.is_empty()) else {
        return Err(AnyError::unauthorized("unknown or revoked refresh token"));
    };
    let request = Request::Refresh {
        refresh_token: token,
        device: device(Some(device_id), b.device_type.as_deref())?,
    };
    let login = log_in(&any, request, Peer(None)).await?;
    auth_response(&any, &login).await
}

/// `POST /auth/password/change`: a wrong old password is `code: 401`; the other devices are
/// signed out, as the core does.
pub async fn change_password(
    State(any): State<AnyChat>,
    Me(me): Me,
    Body(b): Body<ChangePasswordBody>,
) -> Reply {
    check_password(&b.new_password)?;
    let request = Request::ChangePassword {
        old: Password::try_from(b.old_password).map_err(|e| AnyError::invalid(e.message()))?,
        new: NewPassword::try_from(b.new_password).map_err(|e| AnyError::invalid(e.message()))?,
    };
    any.call(&me, request).await?;
    ok(json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_carry_their_device() {
        let device = DeviceId::try_from("device-uuid.123").expect("id");
        let wrapped = wrap_refresh(&device, "abc_DEF-123");
        assert_eq!(
            unwrap_refresh(&wrapped),
            Some(("device-uuid.123".to_owned(), "abc_DEF-123".to_owned()))
        );
        assert_eq!(unwrap_refresh("bare-token"), None);
    }

    #[test]
    fn passwords_follow_anychat_rules() {
        assert!(check_password("password123").is_ok());
        assert!(check_password("password").is_err());
        assert!(check_password("12345678").is_err());
        assert!(check_password("pass1").is_err());
        assert!(check_password(&format!("a1{}", "x".repeat(31))).is_err());
        assert_eq!(platform(Some("iOS")), Platform::Ios);
        assert_eq!(platform(Some("PC")), Platform::Desktop);
    }
}
