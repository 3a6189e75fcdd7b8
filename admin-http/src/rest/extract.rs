//! What every REST handler reads from a request, with failures rendered as the one error body:
//! the caller (bearer token), JSON bodies, path and query parameters, the idempotency key, and
//! ids, which travel as strings.

use std::fmt;

use axum::extract::{FromRequest, FromRequestParts, Query as AxumQuery, Request};
use axum::http::request::Parts;
use parley_protocol::ids::ClientMsgId;
use parley_protocol::session::Identity;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::ToSchema;

use super::error::ApiError;
use super::Rest;

/// The authenticated caller: `Authorization: Bearer <access token>`, checked by
/// [`crate::Backend::authenticate_bearer`]. Missing or malformed: `401 UNAUTHENTICATED`;
/// unknown or revoked: `401 AUTH_FAILED`; expired: `401 TOKEN_EXPIRED`.
pub struct Caller(pub Identity);

impl FromRequestParts<Rest> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, rest: &Rest) -> Result<Caller, ApiError> {
        let token = match crate::bearer(&parts.headers) {
            crate::Bearer::Token(token) => token,
            crate::Bearer::Missing => {
                return Err(ApiError::unauthenticated("missing bearer token"))
            }
            crate::Bearer::Malformed => {
                return Err(ApiError::unauthenticated(
                    "the Authorization header must be `Bearer <token>`",
                ))
            }
        };
        let identity = rest.backend.authenticate_bearer(token.to_owned()).await?;
        Ok(Caller(identity))
    }
}

/// A JSON body (`Content-Type: application/json`); a bad one is `400 INVALID_ARGUMENT`.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Body<T>, ApiError> {
        let axum::Json(v) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Body(v))
    }
}

/// An optional JSON body: none at all (an empty body) is `None`; anything else must be a
/// valid JSON body of `T`.
pub struct MaybeBody<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for MaybeBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<MaybeBody<T>, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| match e.status() {
                axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::new(parley_protocol::ErrorCode::FrameTooLarge, e.body_text())
                }
                _ => ApiError::invalid(e.body_text()),
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(MaybeBody(None));
        }
        serde_json::from_slice(&bytes)
            .map(|v| MaybeBody(Some(v)))
            .map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))
    }
}

/// Path parameters; a bad one is `400 INVALID_ARGUMENT`.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Path<T>, ApiError> {
        let axum::extract::Path(v) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Path(v))
    }
}

/// Query parameters; a bad one is `400 INVALID_ARGUMENT`.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Query<T>, ApiError> {
        let AxumQuery(v) = AxumQuery::<T>::from_request_parts(parts, state).await?;
        Ok(Query(v))
    }
}

/// The optional `Idempotency-Key` header of requests that write a conversation event: the
/// protocol's `client_request_id` (1–64 bytes, same key space as `client_msg_id`). A retry with
/// the same key writes nothing new and gets the first answer.
pub struct IdempotencyKey(pub Option<ClientMsgId>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<IdempotencyKey, ApiError> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(IdempotencyKey(None));
        };
        let key = value
            .to_str()
            .map_err(|_| ApiError::invalid("Idempotency-Key must be visible ASCII"))?;
        ClientMsgId::try_from(key)
            .map(|k| IdempotencyKey(Some(k)))
            .map_err(|e| ApiError::invalid(format!("Idempotency-Key: {e}")))
    }
}

/// An id (user, conversation, message, call): a decimal string in JSON. Requests may also give
/// it as a JSON number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Id(pub u64);

impl utoipa::PartialSchema for Id {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[0-9]{1,20}$"))
            .description(Some("An id: a decimal string"))
            .examples([serde_json::json!("42")])
            .into()
    }
}

impl ToSchema for Id {}

impl Id {
    /// The id as a domain id (`T::try_from(u64)` rejects 0).
    pub fn to<T: TryFrom<u64, Error = parley_protocol::InvalidInput>>(
        self,
        what: &str,
    ) -> Result<T, ApiError> {
        T::try_from(self.0).map_err(|_| ApiError::invalid(format!("{what} must be non-zero")))
    }
}

impl<T: Into<u64>> From<T> for Id {
    fn from(v: T) -> Id {
        Id(v.into())
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Id, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Id;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an id: a decimal string (or number)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Id, E> {
                Ok(Id(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Id, E> {
                u64::try_from(v)
                    .map(Id)
                    .map_err(|_| E::custom("an id is not negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Id, E> {
                v.parse()
                    .map(Id)
                    .map_err(|_| E::custom(format!("`{v}` is not an id (a decimal string)")))
            }
        }
        d.deserialize_any(V)
    }
}

/// Ids from a comma-separated query parameter (`?ids=1,2,3`).
pub fn id_list(s: &str) -> Result<Vec<u64>, ApiError> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            p.trim()
                .parse::<u64>()
                .map_err(|_| ApiError::invalid(format!("`{p}` is not an id")))
        })
        .collect()
}
