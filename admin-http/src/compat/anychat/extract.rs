//! What AnyChat handlers read from a request: the caller (`Authorization: Bearer`), JSON bodies,
//! query and path parameters, and ids in AnyChat's forms. Every rejection renders as an AnyChat
//! error (`code` 400 or 401, HTTP 200).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use parley_protocol::ids::{ConversationId, Seq, UserId};
use parley_protocol::session::Identity;
use serde::Deserialize;

use crate::compat::extract::bearer_identity;

use super::error::AnyError;
use super::views;
use super::AnyChat;

/// The caller: `Authorization: Bearer <access token>`. Missing, malformed, unknown, revoked or
/// expired: `code: 401`.
pub struct Me(pub Identity);

impl FromRequestParts<AnyChat> for Me {
    type Rejection = AnyError;

    async fn from_request_parts(parts: &mut Parts, any: &AnyChat) -> Result<Me, AnyError> {
        let identity = bearer_identity(parts, &*any.backend, AnyError::unauthorized).await?;
        Ok(Me(identity))
    }
}

pub use crate::compat::extract::Peer;

crate::compat::extract::dialect_extractors!(AnyError);

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
