//! Users: the caller's profile and settings, other users' profiles, user search, presence.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use parley_protocol::frames::{
    Presence, ProfileChange, Request, Response, Settings, SettingsChange,
};
use parley_protocol::ids::UserId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::extract::{id_list, Body, Caller, Id, Path, Query};
use super::views::{AddPolicyV, GenderV, PresenceStatusV, ProfileView, UserPage};
use super::{answer, Rest};

/// Profiles asked for by id.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileList {
    /// Unknown ids are left out.
    pub users: Vec<ProfileView>,
}

/// Changes to the caller's profile (absent fields stay as they are).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileBody {
    /// At most 64 characters.
    pub nickname: Option<String>,
    pub avatar_file_id: Option<String>,
    /// At most 256 characters.
    pub bio: Option<String>,
    pub gender: Option<GenderV>,
    pub region: Option<String>,
    /// `YYYY-MM-DD` or empty.
    pub birthday: Option<String>,
    /// An `http(s)://` URL or empty.
    pub link: Option<String>,
}

/// The caller's settings.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsView {
    /// Offline notifications on.
    pub notifications: bool,
    pub add_policy: AddPolicyV,
    pub searchable_by_account: bool,
    pub searchable_by_name: bool,
    pub language: String,
}

impl From<Settings> for SettingsView {
    fn from(s: Settings) -> SettingsView {
        SettingsView {
            notifications: s.notifications,
            add_policy: s.add_policy.into(),
            searchable_by_account: s.searchable_by_account,
            searchable_by_name: s.searchable_by_name,
            language: s.language,
        }
    }
}

/// Changes to the caller's settings (absent fields stay as they are).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    pub notifications: Option<bool>,
    pub add_policy: Option<AddPolicyV>,
    pub searchable_by_account: Option<bool>,
    pub searchable_by_name: Option<bool>,
    /// A BCP 47 tag.
    pub language: Option<String>,
}

/// Users by id.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IdsQuery {
    /// Comma-separated ids (at most 100).
    pub ids: String,
}

/// A user search.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// By account or nickname, 1–64 characters.
    pub q: String,
    /// After this user id (the last of the previous page).
    #[param(value_type = Option<String>)]
    pub after: Option<Id>,
    /// Page size (0 or absent: the server's default).
    pub limit: Option<u32>,
}

/// Presence of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct PresenceView {
    pub user_id: Id,
    pub status: PresenceStatusV,
    pub text: String,
    /// When the last device left (offline only).
    pub last_seen_ms: u64,
}

impl From<Presence> for PresenceView {
    fn from(p: Presence) -> PresenceView {
        PresenceView {
            user_id: p.user.into(),
            status: p.status.into(),
            text: p.text,
            last_seen_ms: p.last_seen_ms,
        }
    }
}

/// Presence of the users asked for.
#[derive(Debug, Serialize, ToSchema)]
pub struct PresenceList {
    /// Unknown ids are left out.
    pub presences: Vec<PresenceView>,
}

/// The caller's presence (absent fields stay as they are).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PresenceBody {
    /// `online` or `away`.
    pub status: Option<PresenceStatusV>,
    /// At most 64 characters.
    pub text: Option<String>,
}

fn user_ids(ids: &str) -> Result<Vec<UserId>, ApiError> {
    id_list(ids)?
        .into_iter()
        .map(|id| Id(id).to::<UserId>("user id"))
        .collect()
}

async fn fetch_profiles(
    rest: &Rest,
    me: parley_protocol::session::Identity,
    users: Vec<UserId>,
) -> Result<Vec<ProfileView>, ApiError> {
    let response = rest.call(Some(me), Request::GetProfiles(users)).await?;
    let found = answer!(response, Response::Profiles(p) => p)?;
    Ok(found.into_iter().map(ProfileView::from).collect())
}

/// The caller's profile.
#[utoipa::path(get, path = "/users/me", tag = "users",
    responses((status = 200, body = ProfileView)))]
pub async fn me(
    State(rest): State<Rest>,
    Caller(me): Caller,
) -> Result<Json<ProfileView>, ApiError> {
    let user = me.user;
    profile_of(&rest, me, user).await
}

async fn profile_of(
    rest: &Rest,
    me: parley_protocol::session::Identity,
    user: UserId,
) -> Result<Json<ProfileView>, ApiError> {
    fetch_profiles(rest, me, vec![user])
        .await?
        .into_iter()
        .next()
        .map(Json)
        .ok_or_else(|| ApiError::not_found("no such user"))
}

/// Changes the caller's profile; friends get the new one pushed.
#[utoipa::path(patch, path = "/users/me", tag = "users", request_body = ProfileBody,
    responses((status = 204)))]
pub async fn update_me(
    State(rest): State<Rest>,
    Caller(me): Caller,
    Body(b): Body<ProfileBody>,
) -> Result<StatusCode, ApiError> {
    let change = ProfileChange {
        nickname: b.nickname,
        avatar_file_id: b.avatar_file_id,
        bio: b.bio,
        gender: b.gender.map(Into::into),
        region: b.region,
        birthday: b.birthday,
        link: b.link,
    };
    rest.call(Some(me), Request::UpdateProfile(change)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's settings.
#[utoipa::path(get, path = "/users/me/settings", tag = "users",
    responses((status = 200, body = SettingsView)))]
pub async fn settings(
    State(rest): State<Rest>,
    Caller(me): Caller,
) -> Result<Json<SettingsView>, ApiError> {
    let response = rest.call(Some(me), Request::GetSettings).await?;
    answer!(response, Response::Settings(s) => Json(SettingsView::from(*s)))
}

/// Changes the caller's settings and answers the new ones.
#[utoipa::path(patch, path = "/users/me/settings", tag = "users", request_body = SettingsBody,
    responses((status = 200, body = SettingsView)))]
pub async fn update_settings(
    State(rest): State<Rest>,
    Caller(me): Caller,
    Body(b): Body<SettingsBody>,
) -> Result<Json<SettingsView>, ApiError> {
    let change = SettingsChange {
        notifications: b.notifications,
        add_policy: b.add_policy.map(Into::into),
        searchable_by_account: b.searchable_by_account,
        searchable_by_name: b.searchable_by_name,
        language: b.language,
    };
    let response = rest.call(Some(me), Request::UpdateSettings(change)).await?;
    answer!(response, Response::Settings(s) => Json(SettingsView::from(*s)))
}

/// A user's profile.
#[utoipa::path(get, path = "/users/{user_id}", tag = "users",
    params(("user_id" = String, Path, description = "The user")),
    responses((status = 200, body = ProfileView)))]
pub async fn profile(
    State(rest): State<Rest>,
    Caller(me): Caller,
    Path(user): Path<u64>,
) -> Result<Json<ProfileView>, ApiError> {
    let user = Id(user).to::<UserId>("user id")?;
    profile_of(&rest, me, user).await
}

/// Several users' profiles.
#[utoipa::path(get, path = "/users", tag = "users", params(IdsQuery),
    responses((status = 200, body = ProfileList)))]
pub async fn profiles_by_id(
    State(rest): State<Rest>,
    Caller(me): Caller,
    Query(q): Query<IdsQuery>,
) -> Result<Json<ProfileList>, ApiError> {
    let users = fetch_profiles(&rest, me, user_ids(&q.ids)?).await?;
    Ok(Json(ProfileList { users }))
}

/// Finds users by account or nickname (those who allow it).
#[utoipa::path(get, path = "/users/search", tag = "users", params(SearchQuery),
    responses((status = 200, body = UserPage)))]
pub async fn search(
    State(rest): State<Rest>,
    Caller(me): Caller,
    Query(q): Query<SearchQuery>,
) -> Result<Json<UserPage>, ApiError> {
    let request = Request::SearchUsers {
        query: q.q,
        after: q.after.map_or(0, |a| a.0),
        limit: q.limit.unwrap_or(0),
    };
    let response = rest.call(Some(me), request).await?;
    answer!(response, Response::Users { users, has_more } => Json(UserPage {
        users: users.into_iter().map(ProfileView::from).collect(),
        has_more,
    }))
}

/// Presence of up to 100 users.
#[utoipa::path(get, path = "/presence", tag = "presence", params(IdsQuery),
    responses((status = 200, body = PresenceList)))]
pub async fn presence(
    State(rest): State<Rest>,
    Caller(me): Caller,
    Query(q): Query<IdsQuery>,
) -> Result<Json<PresenceList>, ApiError> {
    let response = rest
        .call(Some(me), Request::GetPresence(user_ids(&q.ids)?))
        .await?;
    let found = answer!(response, Response::Presences(p) => p)?;
    Ok(Json(PresenceList {
        presences: found.into_iter().map(PresenceView::from).collect(),
    }))
}

/// Sets the caller's status (`online` or `away`) and text.
#[utoipa::path(put, path = "/presence", tag = "presence", request_body = PresenceBody,
    responses((status = 204)))]
pub async fn set_presence(
    State(rest): State<Rest>,
    Caller(me): Caller,
    Body(b): Body<PresenceBody>,
) -> Result<StatusCode, ApiError> {
    let status = match b.status.map(Into::into) {
        Some(parley_protocol::frames::PresenceStatus::Unspecified) | None => None,
        Some(s) => Some(s),
    };
    let request = Request::SetPresence {
        status,
        text: b.text,
    };
    rest.call(Some(me), request).await?;
    Ok(StatusCode::NO_CONTENT)
}
