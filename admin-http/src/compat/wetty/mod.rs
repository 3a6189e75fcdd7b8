//! Wetty Chat (seed 004; the seed document is the whole contract), mounted at `/compat/wetty`:
//! `/health`, `/users/...`, `/friend/...`, `/group/...`, `/chats/...`, `/fserv/upload`,
//! `/f/fserv/download/{fid}`, and the push WebSocket at `/ws` and `/ws/chats`.
//!
//! What a Wetty client sees: plain JSON bodies, errors as plain text with the HTTP status
//! ([`WtError`]); `201` on create, `204` on delete; 64-bit ids (users, chats, groups, messages)
//! as JSON strings, accepted as strings or numbers; times as RFC 3339 strings (UTC); message
//! lists paged by cursor (`before` / `after`, `next_cursor` null at the end);
//! `client_generated_id` as the send's idempotency key (a duplicate is answered with the
//! original message). A chat's id is its conversation id (a group's chat is the group); a
//! message's id is `chat_id << 32 | seq` (chat id and seq each below `2^32`), unique on the
//! server, so every route and frame takes a message id alone ([`views::encode_message`]).
//!
//! Authentication ([`Caller`]): `Authorization: Bearer <access token>` (the document's
//! "Token in the header"), or the document's `X-User-Id` header, or `?token=` / `?uid=` (the
//! WebSocket and downloads, where a browser cannot set headers). With `[compat]
//! trust_user_header` off (the default) `X-User-Id` and `?uid=` must carry one of our access
//! tokens, or be the caller's user id or account name next to a bearer token of that same user.
//! With it on (only behind a gateway that sets them), a bare user id or account name is trusted
//! ([`crate::Backend::trusted_identity`]).
//!
//! No feature logic lives here: every route is one or a few protocol requests through
//! [`crate::compat::call`]. The route table [`table`] is the router. The mapping of each route
//! and field, and what is not rendered, is in docs/dialect-wetty.md.

mod chats;
mod error;
mod files;
mod friends;
mod groups;
mod users;
mod views;
mod ws;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::routing::{delete, get, post, put, MethodRouter};
use axum::Router;
use parley_protocol::frames::{Request, Response, MAX_TOKEN_BYTES};
use parley_protocol::ids::DeviceId;
use parley_protocol::session::Identity;
use serde::Deserialize;

pub use error::WtError;

use crate::Backend;

/// The dialect's name: its prefix is `/compat/wetty`.
pub const NAME: &str = "wetty";

/// The device a gateway-trusted caller acts on (trust on only).
const GATEWAY_DEVICE: &str = "wetty-gateway";

/// What the handlers share.
#[derive(Clone)]
pub struct Wetty {
    backend: Arc<dyn Backend>,
    trust: bool,
}

impl Wetty {
    /// Runs `request` as `caller` through the field rules (see [`crate::compat::call`]).
    async fn call(&self, caller: &Identity, request: Request) -> Result<Response, WtError> {
        Ok(crate::compat::call(&*self.backend, Some(caller.clone()), request).await?)
    }

    /// Who `claimed` (an `X-User-Id` or `?uid=` value) is, with `bearer` a token from an
    /// `Authorization` header or `?token=`:
    ///
    /// - A bearer token names the caller; `claimed`, if given, must be its user id or account.
    /// - Else `claimed` as one of our access tokens.
    /// - Else, with trust on only, `claimed` as a user id or account name.
    async fn identify(
        &self,
        claimed: Option<&str>,
        bearer: Option<&str>,
    ) -> Result<Identity, WtError> {
        let usable = |t: &&str| !t.is_empty() && t.len() <= MAX_TOKEN_BYTES;
        if let Some(token) = bearer.filter(usable) {
            let me = self.backend.authenticate_bearer(token.to_owned()).await?;
            return match claimed {
                Some(c) if c != token && !names(&me, c) => Err(WtError::unauthorized(
                    "X-User-Id does not name the token's user",
                )),
                _ => Ok(me),
            };
        }
        let claimed = claimed.filter(usable).ok_or_else(|| {
            WtError::unauthorized("a token is required (Authorization: Bearer, or X-User-Id)")
        })?;
        match self.backend.authenticate_bearer(claimed.to_owned()).await {
            Ok(me) => Ok(me),
            Err(e) if !self.trust => Err(e.into()),
            Err(_) => {
                let device = DeviceId::try_from(GATEWAY_DEVICE)
                    .map_err(|e| WtError::invalid(e.message().to_owned()))?;
                Ok(self
                    .backend
                    .trusted_identity(claimed.to_owned(), device)
                    .await?)
            }
        }
    }
}

/// Whether `claimed` is `me`'s user id or account name.
fn names(me: &Identity, claimed: &str) -> bool {
    claimed == me.user.to_string() || claimed == me.account.as_str()
}

/// `?token=` and `?uid=`, where a client cannot set headers.
#[derive(Debug, Default, Deserialize)]
struct AuthQuery {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    uid: Option<String>,
}

/// The caller of a route (see the module docs). Missing or unusable: `401`.
pub struct Caller(pub Identity);

impl FromRequestParts<Wetty> for Caller {
    type Rejection = WtError;

    async fn from_request_parts(parts: &mut Parts, wt: &Wetty) -> Result<Caller, WtError> {
        // The route's own parameters (`before`, `max`, ...) are not looked at here.
        let query = axum::extract::Query::<AuthQuery>::try_from_uri(&parts.uri)
            .map(|q| q.0)
            .unwrap_or_default();
        let header = parts
            .headers
            .get("x-user-id")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .map(str::to_owned);
        let claimed = header.or(query.uid);
        let bearer = match crate::bearer(&parts.headers) {
            crate::Bearer::Token(token) => Some(token.to_owned()),
            crate::Bearer::Missing => query.token,
            crate::Bearer::Malformed => {
                return Err(WtError::unauthorized(
                    "the Authorization header is not Bearer <token>",
                ))
            }
        };
        wt.identify(claimed.as_deref(), bearer.as_deref())
            .await
            .map(Caller)
    }
}

/// A route: method, path below the prefix, handler.
type Route = (&'static str, &'static str, MethodRouter<Wetty>);

/// Every route of the dialect: the document's, and ours beyond it (marked; see
/// docs/dialect-wetty.md).
fn table() -> Vec<Route> {
    vec![
        ("GET", "/health", get(users::health)),
        ("POST", "/users/auth/register", post(users::register)),
        ("POST", "/users/auth/login", post(users::login)),
        ("GET", "/users/profile", get(users::profile)),
        ("PUT", "/users/profile", put(users::update_profile)),
        // Ours: another user's public profile.
        ("GET", "/users/{user_id}", get(users::user)),
        ("POST", "/friend/apply", post(friends::apply)),
        ("DELETE", "/friend/{user_id}", delete(friends::remove)),
        ("POST", "/friend/block", post(friends::block)),
        // Ours: the lists and answers the document's friend flow needs.
        ("GET", "/friend", get(friends::list)),
        ("GET", "/friend/requests", get(friends::requests)),
        ("POST", "/friend/accept", post(friends::accept)),
        ("POST", "/friend/reject", post(friends::reject)),
        (
            "DELETE",
            "/friend/block/{user_id}",
            delete(friends::unblock),
        ),
        ("POST", "/group", post(groups::create)),
        ("GET", "/group/{group_id}", get(groups::get)),
        ("DELETE", "/group/{group_id}", delete(groups::disband)),
        ("PUT", "/group/{group_id}/profile", put(groups::update)),
        ("GET", "/group/{group_id}/members", get(groups::members)),
        (
            "POST",
            "/group/{group_id}/members",
            post(groups::add_members),
        ),
        (
            "POST",
            "/group/{group_id}/members/apply",
            post(groups::apply),
        ),
        // Ours: a manager's answer to a join request.
        (
            "POST",
            "/group/{group_id}/members/apply/{user_id}",
            post(groups::answer_apply),
        ),
        (
            "DELETE",
            "/group/{group_id}/members/{user_id}",
            delete(groups::remove_member),
        ),
        ("PUT", "/group/{group_id}/managers", put(groups::managers)),
        ("POST", "/group/{group_id}/mute", post(groups::mute)),
        ("GET", "/chats", get(chats::list)),
        // Ours: opens (or finds) the 1:1 chat with a user.
        ("POST", "/chats", post(chats::open)),
        ("GET", "/chats/{chat_id}/messages", get(chats::history)),
        ("POST", "/chats/{chat_id}/messages", post(chats::send)),
        // Ours: moves the caller's read position.
        ("POST", "/chats/{chat_id}/read", post(chats::read)),
        ("POST", "/chats/message/recall", post(chats::recall)),
        ("POST", "/fserv/upload", post(files::upload)),
        ("GET", "/f/fserv/download/{fid}", get(files::download)),
        ("GET", "/ws", get(ws::upgrade)),
        ("GET", "/ws/chats", get(ws::upgrade)),
    ]
}

/// The operations served, as (method, path below the prefix).
pub fn operations() -> Vec<(&'static str, &'static str)> {
    table().into_iter().map(|(m, p, _)| (m, p)).collect()
}

/// The dialect's router, relative to its prefix. Unknown paths answer `404 no such route`,
/// known paths asked with another method `405`, both as plain text.
pub fn router(backend: Arc<dyn Backend>) -> Router {
    let trust = backend.compat().trust_user_header;
    table()
        .into_iter()
        .fold(Router::new(), |router, (_, path, route)| {
            router.route(path, route)
        })
        .method_not_allowed_fallback(error::method_not_allowed)
        // A catch-all below every route of the dialect: matched only when no route is.
        .route("/{*rest}", axum::routing::any(error::no_route))
        .with_state(Wetty { backend, trust })
}
