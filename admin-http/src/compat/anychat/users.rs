//! `/users/*`: the caller's profile, settings and push token, user search, other users'
//! profiles, and the QR-code routes real clients call beyond the contract.
//!
//! Profile fields: `nickname`, `avatar` (an http(s) URL, kept as the avatar), `signature` (our
//! bio), `gender` (0 unknown, 1 male, 2 female), `birthday` (RFC 3339 in AnyChat, a date for us:
//! its date part is kept), `region`. Settings: `notificationEnabled` (notifications),
//! `friendVerifyRequired` (our add policy: verify, or anyone), `searchByPhone` (searchable by
//! account name: the phone number or e-mail), `language`; `searchById`, `soundEnabled`,
//! `vibrationEnabled`, `messagePreviewEnabled` are the client's own and are shown `true`
//! (accepted, not stored). A QR code is `anychat://user/<userId>`: it names the user and does
//! not change, so `qrcode/refresh` answers the same one.

use axum::extract::State;
use parley_protocol::frames::{
    AddPolicy, Gender, Profile, ProfileChange, Request, Response, Settings, SettingsChange,
};
use parley_protocol::ids::UserId;
use parley_protocol::session::Identity;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::AnyError;
use super::extract::{self, Body, Me, Path, Query};
use super::views::{self, ok, Reply};
use super::AnyChat;
use crate::compat::unexpected;

/// `user`'s profile as `me` may see it (`404` when there is no such user).
pub(super) async fn profile_of(
    any: &AnyChat,
    me: &Identity,
    user: UserId,
) -> Result<Profile, AnyError> {
    match any.call(me, Request::GetProfiles(vec![user])).await? {
        Response::Profiles(p) => p
            .into_iter()
            .next()
            .ok_or_else(|| AnyError::not_found("no such user")),
        other => Err(unexpected(&other).into()),
    }
}

/// `GET /users/me`: `UserProfile`.
pub async fn me(State(any): State<AnyChat>, Me(me): Me) -> Reply {
    let p = profile_of(&any, &me, me.user).await?;
    ok(views::user_profile(&p))
}

/// `PUT /users/me` (`UpdateProfileRequest`; absent fields are unchanged).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileBody {
    nickname: Option<String>,
    avatar: Option<String>,
    signature: Option<String>,
    gender: Option<u8>,
    birthday: Option<String>,
    region: Option<String>,
}

/// `PUT /users/me`: the new `UserProfile`.
pub async fn update_me(
    State(any): State<AnyChat>,
    Me(me): Me,
    Body(b): Body<ProfileBody>,
) -> Reply {
    let gender = match b.gender {
        None => None,
        Some(0) => Some(Gender::Unspecified),
        Some(1) => Some(Gender::Male),
        Some(2) => Some(Gender::Female),
        Some(_) => return Err(AnyError::invalid("gender must be 0, 1 or 2")),
    };
    // AnyChat sends `1990-01-01T00:00:00Z`; we keep the date.
    let birthday = b
        .birthday
        .map(|s| s.get(..10).map_or(s.clone(), str::to_owned));
    let change = ProfileChange {
        nickname: b.nickname,
        avatar_file_id: b.avatar,
        bio: b.signature,
        gender,
        region: b.region,
        birthday,
        link: None,
    };
    any.call(&me, Request::UpdateProfile(change)).await?;
    let p = profile_of(&any, &me, me.user).await?;
    ok(views::user_profile(&p))
}

/// `POST /users/me/push-token`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PushTokenBody {
    push_token: String,
    #[serde(default)]
    platform: Option<String>,
}

/// `POST /users/me/push-token`: the token of this device (the bearer token names it; the body's
/// `deviceId` is not needed). The provider is `apns` for `ios`, `fcm` otherwise; an empty token
/// removes it.
pub async fn push_token(
    State(any): State<AnyChat>,
    Me(me): Me,
    Body(b): Body<PushTokenBody>,
) -> Reply {
    let provider = match b.platform.map(|p| p.to_ascii_lowercase()).as_deref() {
        Some("ios") => "apns",
        _ => "fcm",
    };
    let request = Request::SetPushToken {
        provider: provider.to_owned(),
        token: b.push_token,
    };
    any.call(&me, request).await?;
    ok(json!({}))
}

/// `UserSettings`.
fn settings_view(me: UserId, s: &Settings) -> Value {
    json!({
        "userId": views::user_id(me),
        "notificationEnabled": s.notifications,
        "soundEnabled": true,
        "vibrationEnabled": true,
        "messagePreviewEnabled": true,
        "friendVerifyRequired": !matches!(s.add_policy, AddPolicy::Anyone),
        "searchByPhone": s.searchable_by_account,
        "searchById": true,
        "language": s.language,
    })
}

/// `GET /users/me/settings`.
pub async fn settings(State(any): State<AnyChat>, Me(me): Me) -> Reply {
    match any.call(&me, Request::GetSettings).await? {
        Response::Settings(s) => ok(settings_view(me.user, &s)),
        other => Err(unexpected(&other).into()),
    }
}

/// `PUT /users/me/settings` (`UpdateSettingsRequest`; absent fields are unchanged).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsBody {
    notification_enabled: Option<bool>,
    friend_verify_required: Option<bool>,
    search_by_phone: Option<bool>,
    language: Option<String>,
    // Accepted, not stored (the client's own).
    #[serde(default)]
    #[allow(dead_code)]
    sound_enabled: Option<bool>,
    #[serde(default)]
    #[allow(dead_code)]
    vibration_enabled: Option<bool>,
    #[serde(default)]
    #[allow(dead_code)]
    message_preview_enabled: Option<bool>,
    #[serde(default)]
    #[allow(dead_code)]
    search_by_id: Option<bool>,
}

/// `PUT /users/me/settings`: the new `UserSettings`.
pub async fn update_settings(
    State(any): State<AnyChat>,
    Me(me): Me,
    Body(b): Body<SettingsBody>,
) -> Reply {
    let change = SettingsChange {
        notifications: b.notification_enabled,
        add_policy: b.friend_verify_required.map(|v| match v {
            true => AddPolicy::Verify,
            false => AddPolicy::Anyone,
        }),
        searchable_by_account: b.search_by_phone,
        searchable_by_name: None,
        language: b.language,
    };
    match any.call(&me, Request::UpdateSettings(change)).await? {
        Response::Settings(s) => ok(settings_view(me.user, &s)),
        other => Err(unexpected(&other).into()),
    }
}

/// `GET /users/search?keyword=&page=&pageSize=`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchQuery {
    keyword: Option<String>,
    page: Option<u32>,
    page_size: Option<u32>,
}

/// Most users a search page holds.
const MAX_SEARCH: u32 = 50;

/// `GET /users/search`: `UserSearchResult {users, total}`. A keyword that is a user id finds
/// that user; an e-mail address is searched as its account name; otherwise account names and
/// nicknames containing it (as the users' settings allow). `total` counts what this page and
/// the ones before it found, plus one when more follow.
pub async fn search(State(any): State<AnyChat>, Me(me): Me, Query(q): Query<SearchQuery>) -> Reply {
    let keyword = q.keyword.unwrap_or_default();
    let keyword = keyword.trim();
    if keyword.is_empty() {
        return Err(AnyError::invalid("keyword is required"));
    }
    let size = extract::limit(q.page_size, 20, MAX_SEARCH);
    let page = q.page.unwrap_or(1).max(1);
    if let Some(user) = views::parse_user(keyword).filter(|_| keyword.contains('-')) {
        let found = match profile_of(&any, &me, user).await {
            Ok(p) if page == 1 => vec![views::user_brief(&p)],
            Ok(_) | Err(AnyError { code: 404, .. }) => vec![],
            Err(e) => return Err(e),
        };
        return ok(json!({"total": found.len(), "users": found}));
    }
    let query = match keyword.contains('@') {
        true => views::account_of(keyword).unwrap_or_else(|| keyword.to_owned()),
        false => keyword.to_owned(),
    };
    // Pages are cursor-paged in the core: walk to the one asked for.
    let mut after = 0;
    let mut skipped = 0u64;
    for current in 1..=page {
        let request = Request::SearchUsers {
            query: query.clone(),
            after,
            limit: size,
        };
        let (users, has_more) = match any.call(&me, request).await? {
            Response::Users { users, has_more } => (users, has_more),
            other => return Err(unexpected(&other).into()),
        };
        if current == page || !has_more {
            if current != page {
                return ok(json!({"total": skipped + users.len() as u64, "users": []}));
            }
            let total = skipped + users.len() as u64 + u64::from(has_more);
            let users: Vec<Value> = users.iter().map(views::user_brief).collect();
            return ok(json!({"total": total, "users": users}));
        }
        skipped += users.len() as u64;
        after = users.last().and_then(|p| p.user).map_or(0, UserId::get);
    }
    ok(json!({"total": skipped, "users": []}))
}

/// `GET /users/{userId}`: `UserProfile` (`code: 404` for no such user).
pub async fn user(State(any): State<AnyChat>, Me(me): Me, Path(id): Path<String>) -> Reply {
    let user = extract::user(&id)?;
    let p = profile_of(&any, &me, user).await?;
    ok(views::user_profile(&p))
}

/// `POST /users/me/qrcode/refresh`: `{qrcodeUrl, qrcode}` (the same code: it names the user).
pub async fn qrcode_refresh(Me(me): Me) -> Reply {
    let code = views::qrcode(me.user);
    ok(json!({"qrcode": code, "qrcodeUrl": code}))
}

/// `GET /users/qrcode?qrcode=`.
#[derive(Debug, Deserialize)]
pub struct QrQuery {
    qrcode: Option<String>,
}

/// `GET /users/qrcode?qrcode=`: the `UserProfile` a QR code names (`code: 404` for none).
pub async fn by_qrcode(State(any): State<AnyChat>, Me(me): Me, Query(q): Query<QrQuery>) -> Reply {
    let code = q.qrcode.unwrap_or_default();
    let user = views::parse_qrcode(&code).ok_or_else(|| AnyError::not_found("no such QR code"))?;
    let p = profile_of(&any, &me, user).await?;
    ok(views::user_profile(&p))
}
