//! Accounts, tokens and devices: register, log in, refresh, guest login, log out, change the
//! password, list and sign out devices, and the device's push token.
//!
//! A REST client is a device like any other: it may name its `device_id` (kept per
//! installation), or the server picks a random one and returns it. The tokens are the
//! protocol's: the access token is the bearer token of every other route, and the refresh token
//! renews the pair (for the same `device_id`).

use axum::http::StatusCode;
use axum::Json;
use parley_protocol::frames::{Credential, Device, DeviceEntry, LoginResult, Request, Response};
use parley_protocol::ids::{Account, DeviceId};
use parley_protocol::values::{NewPassword, Password};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::{Body, Caller, Id, MaybeBody, Path};
use super::views::PlatformV;
use super::{answer, Rest};
use axum::extract::State;

/// Limits that apply to the session's requests.
#[derive(Debug, Serialize, ToSchema)]
pub struct LimitsView {
    /// Largest message content in bytes.
    pub max_message_bytes: u32,
    /// How long after sending a message its sender may recall it.
    pub recall_window_ms: u64,
    /// Sustained requests per second per binary connection (0: unlimited).
    pub max_requests_per_second: u32,
}

/// Tokens for a device, as register, login, refresh and guest login answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub user_id: Id,
    pub account: String,
    /// The device the tokens belong to (give it again to refresh).
    pub device_id: String,
    /// The bearer token of every other route.
    pub access_token: String,
    pub access_expires_at_ms: u64,
    /// Trades for a new pair at `POST /im/v1/auth/refresh`.
    pub refresh_token: String,
    pub refresh_expires_at_ms: u64,
    pub server_time_ms: u64,
    pub limits: LimitsView,
}

impl From<LoginResult> for SessionView {
    fn from(l: LoginResult) -> SessionView {
        SessionView {
            user_id: l.user.into(),
            account: l.account,
            device_id: l.device.to_string(),
            access_token: l.access_token,
            access_expires_at_ms: l.access_expires_at_ms,
            refresh_token: l.refresh_token,
            refresh_expires_at_ms: l.refresh_expires_at_ms,
            server_time_ms: l.server_time_ms,
            limits: LimitsView {
                max_message_bytes: l.limits.max_message_bytes,
                recall_window_ms: l.limits.recall_window_ms,
                max_requests_per_second: l.limits.max_requests_per_second,
            },
        }
    }
}

/// A new account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    /// 3–64 characters of `[A-Za-z0-9_.-]`.
    pub account: String,
    /// 8–1024 bytes.
    pub password: String,
    /// 1–64 bytes, kept per installation (absent: the server picks one).
    pub device_id: Option<String>,
    /// Sets the tokens' lifetimes (absent: `unspecified`).
    pub platform: Option<PlatformV>,
}

/// A password login.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub account: String,
    pub password: String,
    /// Absent: the server picks one (a new device).
    pub device_id: Option<String>,
    pub platform: Option<PlatformV>,
}

/// A refresh.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    pub refresh_token: String,
    /// The device the token was issued to.
    pub device_id: String,
    pub platform: Option<PlatformV>,
}

/// A guest login.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GuestBody {
    /// At most 64 characters (a guest with one is not searchable).
    #[serde(default)]
    pub nickname: String,
    pub device_id: Option<String>,
    pub platform: Option<PlatformV>,
}

/// A password change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    pub old_password: String,
    /// 8–1024 bytes.
    pub new_password: String,
}

/// One of the caller's devices.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceView {
    pub device_id: String,
    pub platform: PlatformV,
    /// When its tokens were last issued.
    pub last_login_ms: u64,
    /// A session of it is connected.
    pub online: bool,
    /// The device of this request's token.
    pub current: bool,
}

impl From<DeviceEntry> for DeviceView {
    fn from(d: DeviceEntry) -> DeviceView {
        DeviceView {
            device_id: d.device.to_string(),
            platform: d.platform.into(),
            last_login_ms: d.last_login_ms,
            online: d.online,
            current: d.current,
        }
    }
}

/// The caller's devices.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceList {
    pub devices: Vec<DeviceView>,
}

/// The device's token for offline notifications.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushTokenBody {
    /// 1–32 bytes, as the operator's webhook knows it (`apns`, `fcm`, ...).
    pub provider: String,
    /// At most 4096 bytes; empty removes it.
    pub token: String,
}

/// The device of a login: the one named, or a new random one.
fn device(id: Option<String>, platform: Option<PlatformV>) -> Result<Device, ApiError> {
    let id = match id {
        Some(id) => id,
        None => {
            let mut raw = [0u8; 8];
            rand::thread_rng().fill_bytes(&mut raw);
            let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            format!("rest-{hex}")
        }
    };
    Ok(Device {
        id: DeviceId::try_from(id).map_err(|e| ApiError::invalid(e.message()))?,
        platform: platform.map_or(parley_protocol::frames::Platform::Unspecified, Into::into),
    })
}

fn invalid(e: parley_protocol::InvalidInput) -> ApiError {
    ApiError::invalid(e.message())
}

pub use crate::compat::extract::Peer;

async fn log_in(rest: &Rest, peer: Peer, request: Request) -> Result<SessionView, ApiError> {
    let response = rest.call_from(peer.0, request).await?;
    answer!(response, Response::Login(l) => SessionView::from(l))
}

/// Creates an account and logs its device in.
#[utoipa::path(post, path = "/auth/register", tag = "auth", security(()),
    request_body = RegisterBody,
    responses((status = 201, body = SessionView, description = "Registered; `CONFLICT` if the account exists")))]
pub async fn register(
    State(rest): State<Rest>,
    peer: Peer,
    Body(b): Body<RegisterBody>,
) -> Result<(StatusCode, Json<SessionView>), ApiError> {
    let request = Request::Register {
        account: Account::try_from(b.account).map_err(invalid)?,
        password: NewPassword::try_from(b.password).map_err(invalid)?,
        device: device(b.device_id, b.platform)?,
    };
    Ok((
        StatusCode::CREATED,
        Json(log_in(&rest, peer, request).await?),
    ))
}

/// Logs in with account and password (`AUTH_FAILED` if wrong, `BANNED` if banned;
/// `429 RATE_LIMITED` with `Retry-After` while the address must wait after failed attempts or
/// the password-hashing queue is full).
#[utoipa::path(post, path = "/auth/login", tag = "auth", security(()),
    request_body = LoginBody, responses((status = 200, body = SessionView)))]
pub async fn login(
    State(rest): State<Rest>,
    peer: Peer,
    Body(b): Body<LoginBody>,
) -> Result<Json<SessionView>, ApiError> {
    let request = Request::Login {
        credential: Credential::Password {
            account: Account::try_from(b.account).map_err(invalid)?,
            password: Password::try_from(b.password).map_err(invalid)?,
        },
        device: device(b.device_id, b.platform)?,
    };
    Ok(Json(log_in(&rest, peer, request).await?))
}

/// Trades a refresh token for a new pair (the old pair is revoked).
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", security(()),
    request_body = RefreshBody, responses((status = 200, body = SessionView)))]
pub async fn refresh(
    State(rest): State<Rest>,
    Body(b): Body<RefreshBody>,
) -> Result<Json<SessionView>, ApiError> {
    let request = Request::Refresh {
        refresh_token: b.refresh_token,
        device: device(Some(b.device_id), b.platform)?,
    };
    Ok(Json(log_in(&rest, Peer(None), request).await?))
}

/// Creates a guest account (`guest-` and 12 hex digits) and logs it in.
#[utoipa::path(post, path = "/auth/guest", tag = "auth", security(()),
    request_body = GuestBody, responses((status = 201, body = SessionView)))]
pub async fn guest(
    State(rest): State<Rest>,
    MaybeBody(b): MaybeBody<GuestBody>,
) -> Result<(StatusCode, Json<SessionView>), ApiError> {
    let b = b.unwrap_or_default();
    let request = Request::GuestLogin {
        device: device(b.device_id, b.platform)?,
        nickname: b.nickname,
    };
    Ok((
        StatusCode::CREATED,
        Json(log_in(&rest, Peer(None), request).await?),
    ))
}

/// Revokes this device's tokens.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", responses((status = 204)))]
pub async fn logout(State(rest): State<Rest>, Caller(me): Caller) -> Result<StatusCode, ApiError> {
    rest.call(Some(me), Request::Logout).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Changes the password (`AUTH_FAILED` if the old one is wrong); every other device is signed
/// out.
#[utoipa::path(put, path = "/auth/password", tag = "auth", request_body = PasswordBody,
    responses((status = 204)))]
pub async fn change_password(
    State(rest): State<Rest>,
    Caller(me): Caller,
    Body(b): Body<PasswordBody>,
) -> Result<StatusCode, ApiError> {
    let request = Request::ChangePassword {
        old: Password::try_from(b.old_password).map_err(invalid)?,
        new: NewPassword::try_from(b.new_password).map_err(invalid)?,
    };
    rest.call(Some(me), request).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's devices that hold tokens.
#[utoipa::path(get, path = "/auth/devices", tag = "auth",
    responses((status = 200, body = DeviceList)))]
pub async fn list_devices(
    State(rest): State<Rest>,
    Caller(me): Caller,
) -> Result<Json<DeviceList>, ApiError> {
    let response = rest.call(Some(me), Request::ListDevices).await?;
    let devices = answer!(response, Response::Devices(d) => d)?;
    Ok(Json(DeviceList {
        devices: devices.into_iter().map(DeviceView::from).collect(),
    }))
}

/// Signs a device out: revokes its tokens and closes its sessions.
#[utoipa::path(delete, path = "/auth/devices/{device_id}", tag = "auth",
    params(("device_id" = String, Path, description = "The device")),
    responses((status = 204)))]
pub async fn sign_out_device(
    State(rest): State<Rest>,
    Caller(me): Caller,
    Path(device_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let device = DeviceId::try_from(device_id).map_err(invalid)?;
    rest.call(Some(me), Request::SignOutDevice(device)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets (or, with an empty token, removes) this device's push token for offline notifications.
#[utoipa::path(put, path = "/auth/push-token", tag = "auth", request_body = PushTokenBody,
    responses((status = 204)))]
pub async fn set_push_token(
    State(rest): State<Rest>,
    Caller(me): Caller,
    Body(b): Body<PushTokenBody>,
) -> Result<StatusCode, ApiError> {
    let request = Request::SetPushToken {
        provider: b.provider,
        token: b.token,
    };
    rest.call(Some(me), request).await?;
    Ok(StatusCode::NO_CONTENT)
}
