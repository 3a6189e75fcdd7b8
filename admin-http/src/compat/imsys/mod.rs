//! IM系统 (seed 003; the seed document is the whole contract), mounted at `/compat/imsys`:
//! `GET /health`, the REST API under `/api/v1` and the WebSocket at `/ws`.
//!
//! What an IM系统 client sees: plain JSON bodies (no envelope), errors as `{error:"..."}` with
//! 400/401/404/500 (and 403/409/429 where the core refuses for those reasons); user and group
//! ids as decimal strings of ours; message ids `msg_<conversation>_<seq>` (reversible: the
//! conversation and the entry's seq in it); message timestamps in Unix milliseconds and group
//! timestamps as ISO 8601 strings (UTC).
//!
//! Authentication ([`Caller`]): the document's `X-User-ID` header. With `[compat]
//! trust_user_header` off (the default) it must carry one of our access tokens, or be the
//! caller's user id or account name next to an `Authorization: Bearer` token of that same user.
//! With it on (only behind a gateway that sets the header), a bare user id or account name is
//! trusted ([`crate::Backend::trusted_identity`]). The WebSocket's `login` frame follows the same
//! rule with its `token` and `user_id` fields (see [`ws`]).
//!
//! No feature logic lives here: every route is one or a few protocol requests through
//! [`crate::compat::call`]. What IM系统 has that we do not render is in docs/dialects.md.

mod error;
mod rest;
mod views;
mod ws;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::Router;
use parley_protocol::frames::{Request, Response, MAX_TOKEN_BYTES};
use parley_protocol::ids::DeviceId;
use parley_protocol::session::Identity;

pub use error::ImError;

use crate::Backend;

/// The dialect's name: its prefix is `/compat/imsys`.
pub const NAME: &str = "imsys";

/// The device a gateway-trusted HTTP caller acts on (trust on only).
const GATEWAY_DEVICE: &str = "imsys-gateway";

/// What the handlers share.
#[derive(Clone)]
pub struct ImSys {
    backend: Arc<dyn Backend>,
    trust: bool,
}

impl ImSys {
    /// Runs `request` as `caller` through the field rules (see [`crate::compat::call`]).
    async fn call(&self, caller: &Identity, request: Request) -> Result<Response, ImError> {
        Ok(crate::compat::call(&*self.backend, Some(caller.clone()), request).await?)
    }

    /// Who `claimed` (an `X-User-ID` value or a login's fields) is, with `bearer` the token of
    /// an `Authorization` header if any, on `device` for a gateway-trusted caller.
    ///
    /// - A bearer token: it names the caller; `claimed`, if given, must be its user id or
    ///   account name.
    /// - Else `claimed` as one of our access tokens.
    /// - Else, with trust on only, `claimed` as a user id or account name.
    async fn identify(
        &self,
        claimed: Option<&str>,
        bearer: Option<&str>,
        device: &str,
    ) -> Result<Identity, ImError> {
        let usable = |t: &&str| !t.is_empty() && t.len() <= MAX_TOKEN_BYTES;
        if let Some(token) = bearer.filter(usable) {
            let me = self.backend.authenticate_bearer(token.to_owned()).await?;
            return match claimed {
                Some(c) if !names(&me, c) => Err(ImError::unauthorized(
                    "X-User-ID does not name the bearer token's user",
                )),
                _ => Ok(me),
            };
        }
        let claimed = claimed
            .filter(usable)
            .ok_or_else(|| ImError::unauthorized("X-User-ID is required"))?;
        match self.backend.authenticate_bearer(claimed.to_owned()).await {
            Ok(me) => Ok(me),
            Err(e) if !self.trust => Err(e.into()),
            Err(_) => {
                let device = DeviceId::try_from(device)
                    .map_err(|e| ImError::invalid(e.message().to_owned()))?;
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

/// The caller of a REST route (see the module docs). Missing or unusable: `401`.
pub struct Caller(pub Identity);

impl FromRequestParts<ImSys> for Caller {
    type Rejection = ImError;

    async fn from_request_parts(parts: &mut Parts, im: &ImSys) -> Result<Caller, ImError> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        let claimed = header("x-user-id");
        let bearer = match crate::bearer(&parts.headers) {
            crate::Bearer::Token(token) => Some(token),
            crate::Bearer::Missing | crate::Bearer::Malformed => None,
        };
        im.identify(claimed, bearer, GATEWAY_DEVICE)
            .await
            .map(Caller)
    }
}

/// The dialect's router, relative to its prefix: `/health`, `/api/v1/...` and `/ws`. Unknown
/// paths answer `404 {error}`, known paths asked with another method `405 {error}`.
pub fn router(backend: Arc<dyn Backend>) -> Router {
    let trust = backend.compat().trust_user_header;
    let api = Router::new()
        .route("/messages", post(rest::send))
        .route("/messages/offline", get(rest::offline))
        .route("/messages/{message_id}", get(rest::message))
        .route("/messages/{message_id}/ack", post(rest::ack))
        .route("/groups", post(rest::create_group))
        .route("/groups/{group_id}", get(rest::group))
        .route("/groups/{group_id}/members", get(rest::members))
        .route("/groups/{group_id}/join", post(rest::join))
        .route("/groups/{group_id}/leave", post(rest::leave))
        .route("/stats", get(rest::stats))
        .method_not_allowed_fallback(error::method_not_allowed);
    Router::new()
        .route("/health", get(rest::health))
        .nest("/api/v1", api)
        .route("/ws", get(ws::upgrade))
        .method_not_allowed_fallback(error::method_not_allowed)
        .route("/{*rest}", axum::routing::any(error::no_route))
        .with_state(ImSys { backend, trust })
}
