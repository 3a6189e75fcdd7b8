//! The Flutter/Rust error body, `{code, message, details}`, with the real HTTP status: `code` is
//! the status again (as the document's example `{"code": 400, ...}`), `message` names the kind of
//! failure and `details` says what exactly was wrong.
//!
//! Statuses: 400 bad input, 401 missing or bad credentials, 403 a refusal (blocked, muted, not
//! allowed), 404 unknown ids and conversations the caller is not in (the core does not tell
//! them apart, so ids cannot be probed), 409 conflicts, 413 too large, 429 rate limited, 501 a
//! route the server cannot serve (third-party login), 503 shutting down or files off, 500
//! internal errors (with no detail).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use parley_protocol::frames::ErrorInfo;
use parley_protocol::ErrorCode;
use serde_json::json;

use crate::files::BlobFailure;

/// A failed Flutter/Rust request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlError {
    /// The HTTP status (also the body's `code`).
    pub status: StatusCode,
    /// What exactly went wrong (the body's `details`).
    pub details: String,
}

impl FlError {
    /// An error with its status.
    pub fn new(status: StatusCode, details: impl Into<String>) -> FlError {
        FlError {
            status,
            details: details.into(),
        }
    }

    /// `400`: a bad path, query or body.
    pub fn invalid(details: impl Into<String>) -> FlError {
        FlError::new(StatusCode::BAD_REQUEST, details)
    }

    /// `401`: no usable credentials.
    pub fn unauthorized(details: impl Into<String>) -> FlError {
        FlError::new(StatusCode::UNAUTHORIZED, details)
    }

    /// `404`.
    pub fn not_found(details: impl Into<String>) -> FlError {
        FlError::new(StatusCode::NOT_FOUND, details)
    }

    /// The body's `message`: the kind of failure.
    pub fn message(&self) -> &'static str {
        match self.status.as_u16() {
            400 => "Invalid request parameters",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not found",
            405 => "Method not allowed",
            409 => "Conflict",
            413 => "Payload too large",
            429 => "Too many requests",
            501 => "Not implemented",
            503 => "Service unavailable",
            _ => "Internal server error",
        }
    }

    /// The status of a protocol error code.
    pub fn status_of(code: ErrorCode) -> StatusCode {
        match code {
            ErrorCode::InvalidArgument
            | ErrorCode::BadFrame
            | ErrorCode::BadRequestId
            | ErrorCode::FrameTooLarge => StatusCode::BAD_REQUEST,
            ErrorCode::MessageTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::Unauthenticated | ErrorCode::AuthFailed | ErrorCode::TokenExpired => {
                StatusCode::UNAUTHORIZED
            }
            ErrorCode::Forbidden
            | ErrorCode::Banned
            | ErrorCode::Blocked
            | ErrorCode::Muted
            | ErrorCode::Disbanded
            | ErrorCode::RecallExpired
            | ErrorCode::NotFriends
            | ErrorCode::NotAcceptingFriends => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::Conflict | ErrorCode::AlreadyLoggedIn => StatusCode::CONFLICT,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal | ErrorCode::Unspecified => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A file store failure.
    pub fn from_blob(e: BlobFailure) -> FlError {
        match e {
            BlobFailure::NotFound => FlError::not_found("no such file"),
            BlobFailure::TooLarge { max } => FlError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("files are limited to {max} bytes"),
            ),
            BlobFailure::Conflict { offset } => FlError::new(
                StatusCode::CONFLICT,
                format!("the upload is at offset {offset}"),
            ),
            BlobFailure::TooMany => FlError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many uploads in progress",
            ),
            BlobFailure::Body(e) => FlError::invalid(format!("reading the request body: {e}")),
            BlobFailure::Unavailable => FlError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "files are not available on this server",
            ),
            BlobFailure::Internal => FlError::new(StatusCode::INTERNAL_SERVER_ERROR, ""),
        }
    }

    /// The body.
    pub fn body(&self) -> serde_json::Value {
        let details = if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            ""
        } else {
            self.details.as_str()
        };
        json!({ "code": self.status.as_u16(), "message": self.message(), "details": details })
    }
}

impl From<ErrorInfo> for FlError {
    fn from(e: ErrorInfo) -> FlError {
        FlError::new(FlError::status_of(e.code), e.message)
    }
}

impl From<JsonRejection> for FlError {
    fn from(r: JsonRejection) -> FlError {
        FlError::invalid(r.body_text())
    }
}

impl From<PathRejection> for FlError {
    fn from(r: PathRejection) -> FlError {
        FlError::invalid(r.body_text())
    }
}

impl From<QueryRejection> for FlError {
    fn from(r: QueryRejection) -> FlError {
        FlError::invalid(r.body_text())
    }
}

impl IntoResponse for FlError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// Known paths asked with a method they do not serve.
pub async fn method_not_allowed() -> FlError {
    FlError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "this route does not serve that method",
    )
}

/// Paths of the dialect that name no route.
pub async fn no_route() -> FlError {
    FlError::not_found("no such route")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_bodies() {
        for (code, status) in [
            (ErrorCode::InvalidArgument, 400),
            (ErrorCode::AuthFailed, 401),
            (ErrorCode::TokenExpired, 401),
            (ErrorCode::Blocked, 403),
            (ErrorCode::NotFound, 404),
            (ErrorCode::Conflict, 409),
            (ErrorCode::Internal, 500),
        ] {
            assert_eq!(FlError::from(ErrorInfo::new(code, "x")).status, status);
        }
        let e = FlError::invalid("Username must be at least 3 characters");
        assert_eq!(
            e.body(),
            json!({"code": 400, "message": "Invalid request parameters",
                   "details": "Username must be at least 3 characters"})
        );
        let e = FlError::from(ErrorInfo::new(ErrorCode::Internal, "secret detail"));
        assert_eq!(e.body()["details"], "");
    }
}
