//! AnyChat (seed 000; contract: `openapi.json` and `asyncapi.yaml` of the seed), mounted at
//! `/compat/anychat`: its REST API under `/api/v1`, its admin API also under `/api/admin`, its
//! WebSocket at `/api/v1/ws?token=`, and `/health`.
//!
//! What an AnyChat client sees (docs/dialect-anychat.md has every field):
//! - the envelope `{code, message, data}`: `code: 0, message: "success"` on success; failures
//!   answer **HTTP 200** with `code` 400/401/403/404/409 (429 for rate limits), internal errors
//!   HTTP 500 with `code: 500` ([`AnyError`]). `/health` answers `{"status":"ok"}` bare;
//! - user ids, message ids and conversation (session, group) ids as UUID strings that encode our
//!   numeric ids reversibly ([`views::uuid`]); friend-request ids as integers (the other user's
//!   numeric id); `createdAt` of users and groups as RFC 3339 strings; every other time, and
//!   WebSocket timestamps, in Unix seconds;
//! - camelCase keys, zero-valued fields included, named arrays with `total` in lists.
//!
//! # How the parts of the dialect fit
//!
//! - State: [`AnyChat`] (`backend`, plus the socket table of the WebSocket). Handlers take
//!   `State(any): State<AnyChat>`, the caller as [`extract::Me`], bodies as [`extract::Body`] /
//!   [`extract::MaybeBody`], queries as [`extract::Query`], paths as [`extract::Path`] (all
//!   rejections render as AnyChat errors), run requests with [`AnyChat::call`], and answer
//!   [`views::Reply`] built by [`views::ok`].
//! - Ids: [`extract::user`], [`extract::conversation`], [`extract::message`] parse path and body
//!   ids; [`views::user_id`], [`views::conversation_id`], [`views::message_id`] render them.
//! - The route table is assembled as
//!   `let mut t = own_rows(); t.extend(groups::table()); t.extend(files::table());
//!   t.extend(rtc::table()); t.extend(admin::table());` — each of `groups.rs`, `files.rs`,
//!   `rtc.rs`, `admin.rs` exposes `pub(super) fn table() -> Vec<(&'static str, &'static str,
//!   MethodRouter<AnyChat>)>` with paths below `/api/v1` as the contract spells them (admin rows
//!   as `/admin/...`). [`router`] nests the table under `/api/v1`; extra routers (such as the
//!   admin rows again under `/api/admin`, or a signed upload URL) are merged in [`router`] too.

mod admin;
mod auth;
mod error;
pub mod extract;
mod files;
mod friends;
mod groups;
mod rtc;
mod sessions;
mod sync;
mod users;
pub mod views;
mod ws;

use std::sync::Arc;

use axum::routing::{get, post, put, MethodRouter};
use axum::Router;
use parley_protocol::frames::{Request, Response};
use parley_protocol::session::Identity;

pub use error::AnyError;

use crate::Backend;

/// The dialect's name: its prefix is `/compat/anychat`.
pub const NAME: &str = "anychat";

/// AnyChat's REST contract, `openapi.json` of the seed (MIT licensed, from the AnyChat API
/// contracts repository), for the contract tests. Its paths are below `/api/v1`.
#[cfg(feature = "contract")]
pub const OPENAPI: &str = include_str!("openapi.json");

/// AnyChat's WebSocket contract, `asyncapi.yaml` of the seed, for the frame tests.
#[cfg(feature = "contract")]
pub const ASYNCAPI: &str = include_str!("asyncapi.yaml");

/// What the handlers share.
#[derive(Clone)]
pub struct AnyChat {
    /// The request service.
    pub(crate) backend: Arc<dyn Backend>,
    /// The one WebSocket of each user: a new one closes the old.
    sockets: super::socket::Sockets,
    /// Admin tokens: their signing key and the ones signed out (admin.rs).
    admin: Arc<admin::AdminTokens>,
}

impl AnyChat {
    fn new(backend: Arc<dyn Backend>) -> AnyChat {
        AnyChat {
            backend,
            sockets: super::socket::Sockets::default(),
            admin: Arc::default(),
        }
    }

    /// Runs `request` as `caller` through the field rules (see [`super::call`]).
    pub(crate) async fn call(
        &self,
        caller: &Identity,
        request: Request,
    ) -> Result<Response, AnyError> {
        Ok(super::call(&*self.backend, Some(caller.clone()), request).await?)
    }
}

/// The operations of this file's modules (auth, users, friends, sessions, sync), as (method,
/// path below `/api/v1`, handler).
fn own_rows() -> Vec<(&'static str, &'static str, MethodRouter<AnyChat>)> {
    vec![
        ("POST", "/auth/register", post(auth::register)),
        ("POST", "/auth/login", post(auth::login)),
        ("POST", "/auth/logout", post(auth::logout)),
        ("POST", "/auth/refresh", post(auth::refresh)),
        ("POST", "/auth/password/change", post(auth::change_password)),
        ("GET", "/users/me", get(users::me)),
        ("PUT", "/users/me", put(users::update_me)),
        ("POST", "/users/me/push-token", post(users::push_token)),
        ("GET", "/users/me/settings", get(users::settings)),
        ("PUT", "/users/me/settings", put(users::update_settings)),
        ("GET", "/users/search", get(users::search)),
        ("GET", "/users/{userId}", get(users::user)),
        ("GET", "/friends", get(friends::list)),
        ("GET", "/friends/requests", get(friends::requests)),
        ("POST", "/friends/requests", post(friends::request)),
        ("PUT", "/friends/requests/{id}", put(friends::answer)),
        (
            "DELETE",
            "/friends/{id}",
            axum::routing::delete(friends::remove),
        ),
        ("PUT", "/friends/{id}/remark", put(friends::remark)),
        ("GET", "/friends/blacklist", get(friends::blacklist)),
        ("POST", "/friends/blacklist", post(friends::block)),
        (
            "DELETE",
            "/friends/blacklist/{id}",
            axum::routing::delete(friends::unblock),
        ),
        ("GET", "/sessions", get(sessions::list)),
        ("GET", "/sessions/unread/total", get(sessions::unread_total)),
        ("GET", "/sessions/{sessionId}", get(sessions::get)),
        (
            "DELETE",
            "/sessions/{sessionId}",
            axum::routing::delete(sessions::delete),
        ),
        ("PUT", "/sessions/{sessionId}/mute", put(sessions::mute)),
        ("PUT", "/sessions/{sessionId}/pin", put(sessions::pin)),
        ("POST", "/sessions/{sessionId}/read", post(sessions::read)),
        ("POST", "/sync", post(sync::sync)),
        ("POST", "/sync/messages", post(sync::messages)),
        ("GET", "/ws", get(ws::upgrade)),
    ]
}

/// Routes real AnyChat clients call beyond the contract (DIALECTS.md), below `/api/v1`.
fn extra_rows() -> Vec<(&'static str, &'static str, MethodRouter<AnyChat>)> {
    vec![
        (
            "POST",
            "/users/me/qrcode/refresh",
            post(users::qrcode_refresh),
        ),
        ("GET", "/users/qrcode", get(users::by_qrcode)),
        (
            "GET",
            "/sessions/{sessionId}/messages",
            get(sessions::messages),
        ),
    ]
}

/// Every operation of the contract, as (method, path below `/api/v1`, handler). Several
/// methods of one path appear once per method; the router merges them.
fn table() -> Vec<(&'static str, &'static str, MethodRouter<AnyChat>)> {
    let mut t = own_rows();
    t.extend(groups::table());
    t.extend(files::table());
    t.extend(rtc::table());
    t.extend(admin::table());
    t
}

/// The operations served, as (method, path below `/api/v1`), for the contract tests.
pub fn operations() -> Vec<(&'static str, &'static str)> {
    table().into_iter().map(|(m, p, _)| (m, p)).collect()
}

/// Builds a router from rows: one route per path, its methods merged (a path listed twice with
/// different methods keeps both).
fn routes(rows: Vec<(&'static str, &'static str, MethodRouter<AnyChat>)>) -> Router<AnyChat> {
    let mut by_path: Vec<(&'static str, MethodRouter<AnyChat>)> = Vec::new();
    for (_, path, route) in rows {
        match by_path.iter_mut().find(|(p, _)| *p == path) {
            Some((_, existing)) => {
                let merged = std::mem::take(existing).merge(route);
                *existing = merged;
            }
            None => by_path.push((path, route)),
        }
    }
    by_path
        .into_iter()
        .fold(Router::new(), |router, (path, route)| {
            router.route(path, route)
        })
}

/// The dialect's router, relative to its prefix: `/api/v1/...`, `/api/v1/ws`, `/health`.
/// Unknown paths and methods answer `code: 404` / `405` in the envelope.
pub fn router(backend: Arc<dyn Backend>) -> Router {
    let mut rows = table();
    rows.extend(extra_rows());
    // The signed upload and download URLs the file routes hand out.
    rows.extend(files::signed_rows());
    let api = routes(rows).method_not_allowed_fallback(error::method_not_allowed);
    // The admin routes again where the real admin service served them, `/api/admin/...`.
    let admin_api = routes(admin::table()).method_not_allowed_fallback(error::method_not_allowed);
    Router::new()
        .nest("/api/v1", api)
        .nest("/api", admin_api)
        .route("/health", get(health))
        .method_not_allowed_fallback(error::method_not_allowed)
        // A catch-all below every route of the dialect: matched only when no route is.
        .route("/{*rest}", axum::routing::any(error::no_route))
        .with_state(AnyChat::new(backend))
}

/// `GET /health`: bare, without the envelope, as the real gateway answered.
async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({
        "status": "ok",
        "service": "anychat",
        "time": views::now_ms() / 1000,
    }))
}
