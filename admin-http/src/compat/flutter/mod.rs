//! The Flutter/Rust IM (seed 002; the seed document is the whole contract), mounted at
//! `/compat/flutter`: its REST API under `/v1` and its WebSocket at `/ws?token=`.
//!
//! What a Flutter/Rust client sees: bare JSON bodies (no envelope) with real HTTP statuses (201
//! on create, 204 on delete); errors `{code, message, details}` ([`FlError`]); string ids
//! (users decimal, conversations `c<id>`, groups `g<id>` naming the same conversation,
//! messages `m<conversation>_<seq>`, calls `call<id>`, media our file ids); ISO 8601 UTC times,
//! except the WebSocket's ping timestamps (Unix ms). Message history pages by message-id
//! cursors `before`/`after`; a send's `temp_id` is its idempotency key and is echoed. Media
//! upload is multipart into the server's file store and answers the image's dimensions. Calls
//! carry the SDP offer and answer over REST and ICE candidates over the WebSocket, relayed by
//! the core's call signalling.
//!
//! Authentication ([`Caller`]): `Authorization: Bearer <access token>` of ours (the token a
//! register or login of this dialect hands out is one), and `?token=` on the WebSocket.
//!
//! The route table [`table`] is the router: each entry names the document's method and path, so
//! a test can check that every route of the document is served. No feature logic lives here:
//! every route is one or a few protocol requests through [`crate::compat::call`]. The mapping
//! of each field, and what the document has that we do not render, is in
//! docs/dialect-flutter.md.

mod auth;
mod calls;
mod chat;
mod error;
mod media;
mod social;
mod views;
mod ws;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::routing::{delete, get, patch, post, MethodRouter};
use axum::Router;
use parley_protocol::frames::{Profile, Request, Response};
use parley_protocol::ids::UserId;
use parley_protocol::session::Identity;

pub use error::FlError;

use crate::Backend;

/// The dialect's name: its prefix is `/compat/flutter`.
pub const NAME: &str = "flutter";

/// Where the document's REST routes live (its base URL is `https://api.example.com/v1`); the
/// WebSocket is at `/ws`, outside it.
pub const DOCUMENT_BASE: &str = "/v1";

/// The seed document (`002`, "API 文档"), the dialect's whole contract: the route-coverage test
/// reads its `URL` / `方法` pairs and its WebSocket frame types.
#[cfg(feature = "contract")]
pub const DOCUMENT: &str = include_str!("seed-002.md");

/// What the handlers share.
#[derive(Clone)]
pub struct Flutter {
    backend: Arc<dyn Backend>,
}

impl Flutter {
    /// Runs `request` as `caller` through the field rules (see [`crate::compat::call`]).
    async fn call(&self, caller: &Identity, request: Request) -> Result<Response, FlError> {
        Ok(crate::compat::call(&*self.backend, Some(caller.clone()), request).await?)
    }

    /// The profiles of `users` (unknown ones left out), at most 100 per request.
    async fn profiles(&self, me: &Identity, users: &[UserId]) -> Result<Vec<Profile>, FlError> {
        let mut out = Vec::with_capacity(users.len());
        for chunk in users.chunks(parley_protocol::frames::MAX_PROFILES) {
            match self.call(me, Request::GetProfiles(chunk.to_vec())).await? {
                Response::Profiles(p) => out.extend(p),
                other => return Err(crate::compat::unexpected(&other).into()),
            }
        }
        Ok(out)
    }

    /// The profile of one user; an unknown one is `404`.
    async fn profile(&self, me: &Identity, user: UserId) -> Result<Profile, FlError> {
        self.profiles(me, &[user])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| FlError::not_found(format!("no such user: {user}")))
    }

    /// The names shown for `users` (nickname, else account name).
    async fn names(
        &self,
        me: &Identity,
        users: impl IntoIterator<Item = UserId>,
    ) -> Result<HashMap<UserId, String>, FlError> {
        let mut wanted: Vec<UserId> = users.into_iter().collect();
        wanted.sort_unstable();
        wanted.dedup();
        Ok(self
            .profiles(me, &wanted)
            .await?
            .iter()
            .filter_map(|p| Some((p.user?, views::display_name(p))))
            .collect())
    }
}

/// The caller of a REST route: `Authorization: Bearer <access token>`. Missing or unusable:
/// `401`.
pub struct Caller(pub Identity);

impl FromRequestParts<Flutter> for Caller {
    type Rejection = FlError;

    async fn from_request_parts(parts: &mut Parts, fl: &Flutter) -> Result<Caller, FlError> {
        match crate::bearer(&parts.headers) {
            crate::Bearer::Token(token) => Ok(Caller(
                fl.backend.authenticate_bearer(token.to_owned()).await?,
            )),
            crate::Bearer::Missing => Err(FlError::unauthorized(
                "the Authorization: Bearer header is required",
            )),
            crate::Bearer::Malformed => Err(FlError::unauthorized(
                "the Authorization header is not Bearer <token>",
            )),
        }
    }
}

pub use crate::compat::extract::Peer;

/// Every route of the document, as (method, path below `/v1`, handler): the router is built
/// from it, and the route-coverage test compares it with the document.
fn table() -> Vec<(&'static str, &'static str, MethodRouter<Flutter>)> {
    vec![
        ("POST", "/auth/register", post(auth::register)),
        ("POST", "/auth/login", post(auth::login)),
        ("POST", "/auth/refresh", post(auth::refresh)),
        ("POST", "/auth/oauth/{provider}", post(auth::oauth)),
        ("GET", "/user/me", get(auth::me)),
        ("PATCH", "/user/me", patch(auth::update_me)),
        ("GET", "/users/search", get(auth::search)),
        ("GET", "/contacts", get(social::contacts)),
        ("POST", "/contacts", post(social::add_contact)),
        (
            "PATCH",
            "/contacts/{user_id}",
            patch(social::update_contact),
        ),
        (
            "DELETE",
            "/contacts/{user_id}",
            delete(social::remove_contact),
        ),
        ("GET", "/conversations", get(chat::conversations)),
        ("POST", "/conversations", post(chat::create_conversation)),
        (
            "GET",
            "/conversations/{conversation_id}/messages",
            get(chat::messages),
        ),
        (
            "POST",
            "/conversations/{conversation_id}/messages",
            post(chat::send),
        ),
        ("GET", "/groups/{group_id}", get(chat::group)),
        ("PATCH", "/groups/{group_id}", patch(chat::update_group)),
        ("GET", "/groups/{group_id}/members", get(chat::members)),
        ("POST", "/groups/{group_id}/members", post(chat::invite)),
        // Streamed to disk: the file store's `[files] max_bytes` limits it, not axum's
        // default body limit.
        (
            "POST",
            "/media/upload",
            post(media::upload).layer(axum::extract::DefaultBodyLimit::disable()),
        ),
        ("POST", "/calls", post(calls::start)),
        ("POST", "/calls/{call_id}/accept", post(calls::accept)),
        ("POST", "/calls/{call_id}/end", post(calls::end)),
    ]
}

/// The routes served, as (method, path below `/v1`), for the route-coverage test.
pub fn operations() -> Vec<(&'static str, &'static str)> {
    table().into_iter().map(|(m, p, _)| (m, p)).collect()
}

/// The dialect's router, relative to its prefix: `/v1/...` and `/ws`. Unknown paths answer
/// `404` and known paths asked with another method `405`, both as `{code, message, details}`.
pub fn router(backend: Arc<dyn Backend>) -> Router {
    let api = table()
        .into_iter()
        // Two entries of one path (GET and PATCH of `/user/me`, ...) merge into one route.
        .fold(Router::new(), |router, (_, path, route)| {
            router.route(path, route)
        })
        .method_not_allowed_fallback(error::method_not_allowed);
    Router::new()
        .nest(DOCUMENT_BASE, api)
        .route("/ws", get(ws::upgrade))
        .method_not_allowed_fallback(error::method_not_allowed)
        // A catch-all below every route of the dialect: matched only when no route is.
        .route("/{*rest}", axum::routing::any(error::no_route))
        .with_state(Flutter { backend })
}
