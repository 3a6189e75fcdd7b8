//! GoChat (seed 001; contract: `specs/gochat/00_openapi.yaml`), mounted at `/compat/gochat`: its
//! REST API under `/api` and its WebSocket at `/ws?token=`.
//!
//! What a GoChat client sees: the envelope `{success:true, message, data}` on success and
//! `{success:false, message, code:"ERROR_CODE"}` with a real HTTP status on failure (201 for
//! register, guest login and creations); ids as decimal strings; times as Unix seconds; `seqId`
//! is the conversation's seq; `client_msg_id` is the send's idempotency key; conversation types
//! 1 (single), 2 (group), 3 (world). Every GoChat user is put in the server's world room
//! (`Request::JoinWorld`) at register, login and guest login. The mapping of each field, and
//! what GoChat has that we do not render, is in docs/dialects.md.
//!
//! The route table [`operations`] is the router: each entry names the contract's method and
//! path, so the contract tests can check that every operation of the document has its route.

mod auth;
mod conversations;
mod error;
mod extract;
mod friends;
mod views;
mod ws;

use std::sync::{Arc, OnceLock};

use axum::routing::{delete, get, post, put, MethodRouter};
use axum::Router;
use parley_protocol::frames::{Request, Response};
use parley_protocol::ids::ConversationId;
use parley_protocol::session::Identity;

pub use error::GoError;

use crate::Backend;

/// The dialect's name: its prefix is `/compat/gochat`.
pub const NAME: &str = "gochat";

/// GoChat's contract, `00_openapi.yaml` of the seed (MIT licensed, from the GoChat repository),
/// for the contract tests.
#[cfg(feature = "contract")]
pub const OPENAPI: &str = include_str!("openapi.yaml");

/// What the handlers share.
#[derive(Clone)]
pub struct GoChat {
    backend: Arc<dyn Backend>,
    /// The world room's id, once known (it never changes once made).
    world: Arc<OnceLock<ConversationId>>,
    /// The one WebSocket of each user: a new one closes the old.
    sockets: crate::compat::socket::Sockets,
}

impl GoChat {
    fn new(backend: Arc<dyn Backend>) -> GoChat {
        GoChat {
            backend,
            world: Arc::new(OnceLock::new()),
            sockets: crate::compat::socket::Sockets::default(),
        }
    }

    /// Runs `request` as `caller` through the field rules (see [`super::call`]).
    async fn call(&self, caller: &Identity, request: Request) -> Result<Response, GoError> {
        Ok(super::call(&*self.backend, Some(caller.clone()), request).await?)
    }

    /// The world room, joining `me` to it (a no-op for a member). Every GoChat user is a member:
    /// they are joined at register, login and guest login; a user who never logged in through
    /// GoChat is joined the first time a route of the dialect needs the room.
    async fn world(&self, me: &Identity) -> Result<ConversationId, GoError> {
        if let Some(world) = self.world.get() {
            return Ok(*world);
        }
        let world = self.join_world(me).await?;
        Ok(world)
    }

    /// Joins `me` to the world room and remembers its id.
    async fn join_world(&self, me: &Identity) -> Result<ConversationId, GoError> {
        match self.call(me, Request::JoinWorld).await? {
            Response::Conversation(c) => {
                let _ = self.world.set(c.id);
                Ok(c.id)
            }
            other => Err(super::unexpected(&other).into()),
        }
    }
}

/// Every operation of the contract, as (method, path below `/api`, handler): the router is built
/// from it, and the contract tests compare it with the document.
fn table() -> Vec<(&'static str, &'static str, MethodRouter<GoChat>)> {
    vec![
        ("POST", "/auth/register", post(auth::register)),
        ("POST", "/auth/login", post(auth::login)),
        ("POST", "/auth/guest", post(auth::guest)),
        ("POST", "/auth/logout", post(auth::logout)),
        ("GET", "/users/profile", get(auth::profile)),
        ("PUT", "/users/profile", put(auth::update_profile)),
        ("GET", "/users/search", get(auth::search)),
        ("GET", "/conversations", get(conversations::list)),
        ("POST", "/conversations", post(conversations::create)),
        (
            "GET",
            "/conversations/{conversationId}",
            get(conversations::details),
        ),
        (
            "PUT",
            "/conversations/{conversationId}",
            put(conversations::update),
        ),
        (
            "GET",
            "/conversations/{conversationId}/messages",
            get(conversations::history),
        ),
        (
            "POST",
            "/conversations/{conversationId}/messages",
            post(conversations::send),
        ),
        (
            "PUT",
            "/conversations/{conversationId}/read",
            put(conversations::mark_read),
        ),
        (
            "GET",
            "/conversations/{conversationId}/members",
            get(conversations::members),
        ),
        (
            "POST",
            "/conversations/{conversationId}/members",
            post(conversations::add_members),
        ),
        (
            "DELETE",
            "/conversations/{conversationId}/members/{userId}",
            delete(conversations::remove_member),
        ),
        (
            "PUT",
            "/conversations/{conversationId}/members/{userId}",
            put(conversations::set_role),
        ),
        ("GET", "/friends/requests", get(friends::requests)),
        ("POST", "/friends/requests", post(friends::request)),
        ("PUT", "/friends/requests/{requestId}", put(friends::answer)),
        ("GET", "/friends", get(friends::list)),
    ]
}

/// The operations served, as (method, path below `/api`), for the contract tests.
pub fn operations() -> Vec<(&'static str, &'static str)> {
    table().into_iter().map(|(m, p, _)| (m, p)).collect()
}

/// The dialect's router, relative to its prefix: `/api/...` and `/ws`. Unknown paths answer
/// `404 NOT_FOUND` and known paths asked with another method `405 METHOD_NOT_ALLOWED`, both in
/// the GoChat error envelope.
pub fn router(backend: Arc<dyn Backend>) -> Router {
    let api = table()
        .into_iter()
        .fold(Router::new(), |router, (_, path, route)| {
            router.route(path, route)
        })
        .method_not_allowed_fallback(error::method_not_allowed);
    Router::new()
        .nest("/api", api)
        .route("/ws", get(ws::upgrade))
        .method_not_allowed_fallback(error::method_not_allowed)
        // A catch-all below every route of the dialect: matched only when no route is.
        .route("/{*rest}", axum::routing::any(error::no_route))
        .with_state(GoChat::new(backend))
}
