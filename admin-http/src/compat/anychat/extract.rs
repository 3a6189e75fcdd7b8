//! What AnyChat handlers read from a request: the caller (`Authorization: Bearer`), JSON bodies,
//! query and path parameters, and ids in AnyChat's forms. Every rejection renders as an AnyChat
//! error (`code` 400 or 401, HTTP 200).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::Json;
use parley_protocol::ids::{ConversationId, Seq, UserId};
use parley_protocol::session::Identity;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::error::AnyError;
use super::views;
use super::AnyChat;

/// The caller: `Authorization: Bearer <access token>`. Missing, malformed, unknown, revoked or
/// expired: `code: 401`.
pub struct Me(pub Identity);

impl FromRequestParts<AnyChat> for Me {
    type Rejection = AnyError;

    async fn from_request_parts(parts: &mut Parts, any: &AnyChat) -> Result<Me, AnyError> {
        let token = match crate::bearer(&parts.headers) {
            crate::Bearer::Token(token) => token,
            crate::Bearer::Missing => return Err(AnyError::unauthorized("missing bearer token")),
            crate::Bearer::Malformed => {
                return Err(AnyError::unauthorized(
                    "the Authorization header must be `Bearer <token>`",
                ))
            }
        };
        let identity = any.backend.authenticate_bearer(token.to_owned()).await?;
        Ok(Me(identity))
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

/// A JSON body; a bad one is `code: 400`.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = AnyError;

    async fn from_request(req: Request, state: &S) -> Result<Body<T>, AnyError> {
        let Json(v) = Json::<T>::from_request(req, state).await?;
        Ok(Body(v))
    }
}

/// An optional JSON body: an empty one (any content type) is `T::default()`; a bad one is
/// `code: 400`.
pub struct MaybeBody<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for MaybeBody<T> {
    type Rejection = AnyError;

    async fn from_request(req: Request, state: &S) -> Result<MaybeBody<T>, AnyError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| AnyError::invalid(e.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(MaybeBody(T::default()));
        }
        serde_json::from_slice(&bytes)
            .map(MaybeBody)
            .map_err(|e| AnyError::invalid(format!("invalid JSON body: {e}")))
    }
}

/// Query parameters; a bad one is `code: 400`.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = AnyError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Query<T>, AnyError> {
        let axum::extract::Query(v) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Query(v))
    }
}

/// Path parameters (strings: AnyChat ids are strings).
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = AnyError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Path<T>, AnyError> {
        let axum::extract::Path(v) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Path(v))
    }
}

/// An id as clients send it in bodies and queries: a string (UUID or decimal) or a number.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum IdIn {
    /// `"01000000-…"` or `"42"`.
    Text(String),
    /// `42`.
    Number(u64),
}

impl IdIn {
    /// The text of the id.
    pub fn text(&self) -> String {
        match self {
            IdIn::Text(s) => s.clone(),
            IdIn::Number(n) => n.to_string(),
        }
    }
}

/// A user id from a path (`404` when it cannot name a user).
pub fn user(id: &str) -> Result<UserId, AnyError> {
    views::parse_user(id).ok_or_else(|| AnyError::not_found("no such user"))
}

/// A user id from a body (`400` when it cannot name a user).
pub fn user_in_body(id: &IdIn) -> Result<UserId, AnyError> {
    views::parse_user(&id.text())
        .ok_or_else(|| AnyError::invalid(format!("{} is not a user id", id.text())))
}

/// A conversation (group, session) id from a path or body (`404` when it cannot name one).
pub fn conversation(id: &str) -> Result<ConversationId, AnyError> {
    views::parse_conversation(id).ok_or_else(|| AnyError::not_found("no such conversation"))
}

/// A message id: `(conversation, seq)` (`404` when it cannot name a message).
pub fn message(id: &str) -> Result<(ConversationId, Seq), AnyError> {
    views::parse_message(id).ok_or_else(|| AnyError::not_found("no such message"))
}

/// A page size: `default` when absent or 0, at most `max`.
pub fn limit(asked: Option<u32>, default: u32, max: u32) -> u32 {
    match asked {
        None | Some(0) => default,
        Some(n) => n.min(max),
    }
}
