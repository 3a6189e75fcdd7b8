//! What GoChat handlers read from a request (the bearer token, JSON bodies, query and path
//! parameters, ids in their string form) and the success envelope they answer with.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use parley_protocol::ids::{ConversationId, UserId};
use parley_protocol::session::Identity;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::GoError;
use super::GoChat;

/// The caller: `Authorization: Bearer <access token>`. Missing or malformed: `401
/// UNAUTHORIZED`; unknown or revoked: `401 AUTH_FAILED`; expired: `401 TOKEN_EXPIRED`.
pub struct Caller(pub Identity);

impl FromRequestParts<GoChat> for Caller {
    type Rejection = GoError;

    async fn from_request_parts(parts: &mut Parts, go: &GoChat) -> Result<Caller, GoError> {
        let token = match crate::bearer(&parts.headers) {
            crate::Bearer::Token(token) => token,
            crate::Bearer::Missing => return Err(GoError::unauthorized("missing bearer token")),
            crate::Bearer::Malformed => {
                return Err(GoError::unauthorized(
                    "the Authorization header must be `Bearer <token>`",
                ))
            }
        };
        let identity = go.backend.authenticate_bearer(token.to_owned()).await?;
        Ok(Caller(identity))
    }
}

/// The remote address, where the server records it (for login throttling).
pub struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Peer, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

/// A JSON body; a bad one is `400 INVALID_PARAMS`.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = GoError;

    async fn from_request(req: Request, state: &S) -> Result<Body<T>, GoError> {
        let Json(v) = Json::<T>::from_request(req, state).await?;
        Ok(Body(v))
    }
}

/// An optional JSON body: an empty one is `T::default()`.
pub struct MaybeBody<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for MaybeBody<T> {
    type Rejection = GoError;

    async fn from_request(req: Request, state: &S) -> Result<MaybeBody<T>, GoError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| GoError::invalid(e.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(MaybeBody(T::default()));
        }
        serde_json::from_slice(&bytes)
            .map(MaybeBody)
            .map_err(|e| GoError::invalid(format!("invalid JSON body: {e}")))
    }
}

/// Query parameters; a bad one is `400 INVALID_PARAMS`.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = GoError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Query<T>, GoError> {
        let axum::extract::Query(v) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Query(v))
    }
}

/// Path parameters (strings: GoChat ids are strings).
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = GoError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Path<T>, GoError> {
        let axum::extract::Path(v) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Path(v))
    }
}

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
