//! Parley's REST API under `/im/v1`: JSON over HTTP for clients that do not speak the binary
//! protocol (scripts, bots, web back ends, the browser client).
//!
//! Every route is a thin adapter: it parses the path, query and JSON body, builds one protocol
//! [`Request`], runs it through the same field rules as a binary frame ([`Rest::call`] passes it
//! through the frame codec), executes it with [`Backend::execute`] as the bearer token's
//! [`Identity`], and renders the [`Response`]. No feature logic lives here: who may do what,
//! durability (a send is answered after the fsync, like the binary ack) and fan-out are the
//! core's. Conventions (snake_case, ids as strings, `*_ms` times, the error body and its
//! statuses) are in docs/rest.md.
//!
//! The router and the OpenAPI document (`GET /im/v1/openapi.json`) are built from one table,
//! [`table`]: each entry is a handler's `#[utoipa::path]`, which names its method and path for
//! both. The files routes (`/im/v1/files`, `crate::files`) have a router of their own; their
//! operations join the document through `openapi::beside` (tag `files`).

mod auth;
mod calls;
mod conversations;
pub mod error;
mod extract;
mod friends;
mod groups;
mod messages;
mod openapi;
mod users;
mod views;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::Router;
use bytes::Bytes;
use parley_protocol::frames::{Request, Response};
use parley_protocol::session::Identity;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use crate::Backend;
pub use error::ApiError;

/// The prefix of every REST route.
pub const PREFIX: &str = "/im/v1";

/// What the REST handlers share.
#[derive(Clone)]
pub struct Rest {
    backend: Arc<dyn Backend>,
    /// The OpenAPI document, serialised once.
    openapi: Bytes,
}

impl Rest {
    /// Runs `request` as `caller` (`None`: anonymous, for register, login, refresh and guest
    /// login) and gives its answer, or the error it got. The request first goes through the
    /// frame codec (encode, then decode with validation), so REST is held to exactly the field
    /// rules of a binary frame (lengths, characters, ranges), not to a second copy of them.
    pub async fn call(
        &self,
        caller: Option<Identity>,
        request: Request,
    ) -> Result<Response, ApiError> {
        let request = crate::through_codec(request)?;
        match self.backend.execute(caller, request).await {
            Response::Error(e) => Err(e.into()),
            response => Ok(response),
        }
    }

    /// [`Rest::call`] for an anonymous request from `peer` (register, login): password
    /// attempts are hashed and throttled per source address ([`Backend::execute_from`]).
    pub async fn call_from(
        &self,
        peer: Option<std::net::SocketAddr>,
        request: Request,
    ) -> Result<Response, ApiError> {
        let request = crate::through_codec(request)?;
        match self.backend.execute_from(None, request, peer).await {
            Response::Error(e) => Err(e.into()),
            response => Ok(response),
        }
    }
}

/// Takes the answer a request must get apart, or fails with `500 INTERNAL` (an answer of
/// another kind is a server bug, not the client's).
macro_rules! answer {
    ($response:expr, $pattern:pat => $value:expr) => {
        match $response {
            $pattern => Ok($value),
            other => Err($crate::rest::error::ApiError::internal(&format!(
                "unexpected answer: {other:?}"
            ))),
        }
    };
}
pub(crate) use answer;

/// Every REST route, once: the router and the OpenAPI document are both built from it (paths
/// relative to [`PREFIX`]).
fn table() -> Vec<UtoipaMethodRouter<Rest>> {
    vec![
        // The document itself.
        routes!(openapi::document),
        // Accounts, tokens and devices.
        routes!(auth::register),
        routes!(auth::login),
        routes!(auth::refresh),
        routes!(auth::guest),
        routes!(auth::logout),
        routes!(auth::change_password),
        routes!(auth::list_devices),
        routes!(auth::sign_out_device),
        routes!(auth::set_push_token),
        // Users, settings and presence.
        routes!(users::me),
        routes!(users::update_me),
        routes!(users::settings),
        routes!(users::update_settings),
        routes!(users::profile),
        routes!(users::profiles_by_id),
        routes!(users::search),
        routes!(users::presence),
        routes!(users::set_presence),
        // Friends and blocks.
        routes!(friends::list),
        routes!(friends::remove),
        routes!(friends::set_remark),
        routes!(friends::requests),
        routes!(friends::request),
        routes!(friends::accept),
        routes!(friends::reject),
        routes!(friends::blocked),
        routes!(friends::block),
        routes!(friends::unblock),
        // Groups.
        routes!(groups::create),
        routes!(groups::get),
        routes!(groups::update),
        routes!(groups::disband),
        routes!(groups::members),
        routes!(groups::add_members),
        routes!(groups::remove_member),
        routes!(groups::set_role),
        routes!(groups::mute_member),
        routes!(groups::mute_all),
        routes!(groups::set_nickname),
        routes!(groups::join),
        routes!(groups::leave),
        routes!(groups::join_requests),
        routes!(groups::approve),
        routes!(groups::reject),
        // Conversations.
        routes!(conversations::list),
        routes!(conversations::open_direct),
        routes!(conversations::set_prefs),
        routes!(conversations::move_cursor),
        routes!(conversations::read_state),
        routes!(conversations::typing),
        // Messages and search.
        routes!(messages::send),
        routes!(messages::history),
        routes!(messages::edit),
        routes!(messages::recall),
        routes!(messages::react),
        routes!(messages::unreact),
        routes!(messages::forward),
        routes!(messages::delete_for_me),
        routes!(messages::search),
        // Calls.
        routes!(calls::invite),
        routes!(calls::signal),
        routes!(calls::list),
        // Files (`/files...`): served by `crate::files`, documented through `openapi::beside`.
    ]
}

/// The routes and their document, before the state is attached.
fn api() -> (Router<Rest>, utoipa::openapi::OpenApi) {
    let routes = table()
        .into_iter()
        .fold(OpenApiRouter::new(), |router, route| router.routes(route));
    let (router, doc) = OpenApiRouter::with_openapi(openapi::base())
        .nest(PREFIX, routes)
        .split_for_parts();
    (router, openapi::finish(doc))
}

/// The REST router, to merge into the side-service's router. Routes asked with a method they
/// do not serve answer `405 METHOD_NOT_ALLOWED`, and unknown paths under `/im/v1` answer
/// `404 NOT_FOUND`, both with the error body.
pub fn router(backend: Arc<dyn Backend>) -> Router {
    let (router, doc) = api();
    let openapi = match serde_json::to_vec(&doc) {
        Ok(json) => Bytes::from(json),
        Err(e) => {
            tracing::error!(%e, "the OpenAPI document does not serialise");
            Bytes::new()
        }
    };
    router
        .method_not_allowed_fallback(error::method_not_allowed)
        // A catch-all below every route of the prefix: matched only when no route is.
        .route(
            &format!("{PREFIX}/{{*rest}}"),
            axum::routing::any(error::no_route),
        )
        .with_state(Rest { backend, openapi })
}

/// The OpenAPI document of the REST API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().1
}
