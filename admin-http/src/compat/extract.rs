//! Request extractors every JSON dialect needs, written once: the remote address ([`Peer`]),
//! the bearer caller ([`bearer_identity`]), and, through [`dialect_extractors!`], JSON bodies,
//! optional bodies, query and path parameters whose rejections render in the dialect's error
//! type. A dialect's error type needs `invalid(String)` and `From` for axum's JSON, query and
//! path rejections.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use parley_protocol::frames::ErrorInfo;
use parley_protocol::session::Identity;

use crate::Backend;

/// The remote address of the HTTP connection, where the listener records it: password attempts
/// are throttled per source address (docs/security.md). Headers such as `X-Forwarded-For` are
/// not trusted: a client could name any address in them.
#[derive(Debug, Clone, Copy)]
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

/// The caller named by `Authorization: Bearer <access token>`. Missing or malformed:
/// `unauthorized(reason)`; unknown, revoked or expired: the backend's error.
pub async fn bearer_identity<E: From<ErrorInfo>>(
    parts: &Parts,
    backend: &dyn Backend,
    unauthorized: impl FnOnce(&'static str) -> E,
) -> Result<Identity, E> {
    let token = match crate::bearer(&parts.headers) {
        crate::Bearer::Token(token) => token,
        crate::Bearer::Missing => return Err(unauthorized("missing bearer token")),
        crate::Bearer::Malformed => {
            return Err(unauthorized(
                "the Authorization header must be `Bearer <token>`",
            ))
        }
    };
    Ok(backend.authenticate_bearer(token.to_owned()).await?)
}

/// `Body`, `MaybeBody`, `Query` and `Path` extractors whose rejections are `$error`.
macro_rules! dialect_extractors {
    ($error:ty) => {
        /// A JSON body; a bad one is the dialect's invalid-input error.
        pub struct Body<T>(pub T);

        impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S>
            for Body<T>
        {
            type Rejection = $error;

            async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, $error> {
                let axum::Json(v) = axum::Json::<T>::from_request(req, state).await?;
                Ok(Body(v))
            }
        }

        /// An optional JSON body: an empty one (any content type) is `T::default()`; a bad one
        /// is the dialect's invalid-input error.
        pub struct MaybeBody<T>(pub T);

        impl<T: serde::de::DeserializeOwned + Default, S: Send + Sync> axum::extract::FromRequest<S>
            for MaybeBody<T>
        {
            type Rejection = $error;

            async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, $error> {
                let bytes = axum::body::Bytes::from_request(req, state)
                    .await
                    .map_err(|e| <$error>::invalid(e.body_text()))?;
                if bytes.iter().all(u8::is_ascii_whitespace) {
                    return Ok(MaybeBody(T::default()));
                }
                serde_json::from_slice(&bytes)
                    .map(MaybeBody)
                    .map_err(|e| <$error>::invalid(format!("invalid JSON body: {e}")))
            }
        }

        /// Query parameters; a bad one is the dialect's invalid-input error.
        pub struct Query<T>(pub T);

        impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S>
            for Query<T>
        {
            type Rejection = $error;

            async fn from_request_parts(
                parts: &mut axum::http::request::Parts,
                state: &S,
            ) -> Result<Self, $error> {
                let axum::extract::Query(v) =
                    axum::extract::Query::<T>::from_request_parts(parts, state).await?;
                Ok(Query(v))
            }
        }

        /// Path parameters (strings: the dialects' ids are strings).
        pub struct Path<T>(pub T);

        impl<T: serde::de::DeserializeOwned + Send, S: Send + Sync>
            axum::extract::FromRequestParts<S> for Path<T>
        {
            type Rejection = $error;

            async fn from_request_parts(
                parts: &mut axum::http::request::Parts,
                state: &S,
            ) -> Result<Self, $error> {
                let axum::extract::Path(v) =
                    axum::extract::Path::<T>::from_request_parts(parts, state).await?;
                Ok(Path(v))
            }
        }
    };
}
pub(crate) use dialect_extractors;
