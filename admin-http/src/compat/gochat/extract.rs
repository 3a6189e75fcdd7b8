//! What GoChat handlers read from a request (the bearer token, JSON bodies, query and path
//! parameters, ids in their string form) and the success envelope they answer with.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use parley_protocol::ids::{ConversationId, UserId};
use parley_protocol::session::Identity;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::compat::extract::bearer_identity;

use super::error::GoError;
use super::GoChat;

/// The caller: `Authorization: Bearer <access token>`. Missing or malformed: `401
/// UNAUTHORIZED`; unknown or revoked: `401 AUTH_FAILED`; expired: `401 TOKEN_EXPIRED`.
pub struct Caller(pub Identity);

impl FromRequestParts<GoChat> for Caller {
    type Rejection = GoError;

    async fn from_request_parts(parts: &mut Parts, go: &GoChat) -> Result<Caller, GoError> {
        let identity = bearer_identity(parts, &*go.backend, GoError::unauthorized).await?;
        Ok(Caller(identity))
    }
}

pub use crate::compat::extract::Peer;

crate::compat::extract::dialect_extractors!(GoError);

/// An id as GoChat sends it: a decimal string, or a number.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum IdIn {
    /// `"42"`.
    Text(String),
    /// `42`.
    Number(u64),
}

impl IdIn {
    /// The id's value, if it is one.
    pub fn value(&self) -> Option<u64> {
        match self {
            IdIn::Text(s) => s.trim().parse().ok().filter(|v| *v != 0),
            IdIn::Number(n) => Some(*n).filter(|v| *v != 0),
        }
    }
}

/// A conversation id from a path: one that cannot exist is `404 CONVERSATION_NOT_FOUND`.
pub fn conversation(id: &str) -> Result<ConversationId, GoError> {
    id.parse::<u64>()
        .ok()
        .and_then(|v| ConversationId::try_from(v).ok())
        .ok_or_else(GoError::no_conversation)
}

/// A user id from a path: one that cannot exist is `404 USER_NOT_FOUND`.
pub fn user_in_path(id: &str) -> Result<UserId, GoError> {
    id.parse::<u64>()
        .ok()
        .and_then(|v| UserId::try_from(v).ok())
        .ok_or_else(|| GoError::new(StatusCode::NOT_FOUND, "USER_NOT_FOUND", "no such user"))
}

/// A user id from a body: a malformed one is `400 INVALID_PARAMS`.
pub fn user_in_body(id: &IdIn) -> Result<UserId, GoError> {
    id.value()
        .and_then(|v| UserId::try_from(v).ok())
        .ok_or_else(|| GoError::invalid(format!("{id:?} is not a user id")))
}

/// The success envelope, `{success:true, message, data}`, with its status.
pub struct Done {
    status: StatusCode,
    message: &'static str,
    data: Value,
}

impl Done {
    /// `200` with `data`.
    pub fn ok(message: &'static str, data: Value) -> Done {
        Done {
            status: StatusCode::OK,
            message,
            data,
        }
    }

    /// `201` with `data`.
    pub fn created(message: &'static str, data: Value) -> Done {
        Done {
            status: StatusCode::CREATED,
            message,
            data,
        }
    }

    /// `200` with an empty object.
    pub fn empty(message: &'static str) -> Done {
        Done::ok(message, json!({}))
    }
}

impl IntoResponse for Done {
    fn into_response(self) -> Response {
        let body = json!({"success": true, "message": self.message, "data": self.data});
        (self.status, Json(body)).into_response()
    }
}
