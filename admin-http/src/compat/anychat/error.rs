//! AnyChat's failure envelope, `{code, message, data: null}`, and the mapping from the
//! protocol's error codes.
//!
//! The real gateway answers most failures with **HTTP 200** and the failure in `code` (clients
//! test `code == 0` only): 400 bad input, 401 a bad or missing token (and a failed login), 403
//! forbidden (blocked, muted, not a manager, ...), 404 unknown ids (and conversations the caller
//! is not in: the core does not tell them apart, so ids cannot be probed), 409 conflicts (an
//! existing account), 429 rate limits. Internal errors are HTTP 500 with `code: 500`, and a
//! server shutting down HTTP 503 with `code: 503`.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use parley_protocol::frames::ErrorInfo;
use parley_protocol::ErrorCode;
use serde_json::json;

/// A failed AnyChat request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnyError {
    /// The envelope's `code` (400, 401, 403, 404, 409, 429, 500, 503).
    pub code: u16,
    /// For people.
    pub message: String,
}

impl AnyError {
    /// An error with its code.
    pub fn new(code: u16, message: impl Into<String>) -> AnyError {
        AnyError {
            code,
            message: message.into(),
        }
    }

    /// `400`: a bad path, query or body.
    pub fn invalid(message: impl Into<String>) -> AnyError {
        AnyError::new(400, message)
    }

    /// `401`: no usable token.
    pub fn unauthorized(message: impl Into<String>) -> AnyError {
        AnyError::new(401, message)
    }

    /// `403`.
    pub fn forbidden(message: impl Into<String>) -> AnyError {
        AnyError::new(403, message)
    }

    /// `404`.
    pub fn not_found(message: impl Into<String>) -> AnyError {
        AnyError::new(404, message)
    }

    /// `409`.
    pub fn conflict(message: impl Into<String>) -> AnyError {
        AnyError::new(409, message)
    }

    /// `500`.
    pub fn internal() -> AnyError {
        AnyError::new(500, "internal error")
    }

    /// The HTTP status the envelope travels with: 200 for everything the client caused, 500
    /// and 503 for the server's own failures.
    pub fn status(&self) -> StatusCode {
        match self.code {
            500 => StatusCode::INTERNAL_SERVER_ERROR,
            503 => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::OK,
        }
    }
}

impl From<ErrorInfo> for AnyError {
    fn from(e: ErrorInfo) -> AnyError {
        let code = match e.code {
            ErrorCode::InvalidArgument
            | ErrorCode::BadFrame
            | ErrorCode::BadRequestId
            | ErrorCode::MessageTooLarge
            | ErrorCode::FrameTooLarge => 400,
            ErrorCode::Unauthenticated | ErrorCode::AuthFailed | ErrorCode::TokenExpired => 401,
            ErrorCode::Forbidden
            | ErrorCode::Banned
            | ErrorCode::Blocked
            | ErrorCode::Muted
            | ErrorCode::Disbanded
            | ErrorCode::RecallExpired
            | ErrorCode::NotFriends
            | ErrorCode::NotAcceptingFriends => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict | ErrorCode::AlreadyLoggedIn => 409,
            ErrorCode::RateLimited => 429,
            ErrorCode::ShuttingDown => 503,
            ErrorCode::Internal | ErrorCode::Unspecified => 500,
        };
        let message = match code {
            // Internal details stay in the server's log.
            500 => "internal error".to_owned(),
            _ => e.message,
        };
        AnyError::new(code, message)
    }
}

impl From<JsonRejection> for AnyError {
    fn from(r: JsonRejection) -> AnyError {
        AnyError::invalid(r.body_text())
    }
}

impl From<PathRejection> for AnyError {
    fn from(r: PathRejection) -> AnyError {
        AnyError::invalid(r.body_text())
    }
}

impl From<QueryRejection> for AnyError {
    fn from(r: QueryRejection) -> AnyError {
        AnyError::invalid(r.body_text())
    }
}

impl IntoResponse for AnyError {
    fn into_response(self) -> Response {
        let body = json!({"code": self.code, "message": self.message, "data": null});
        (self.status(), Json(body)).into_response()
    }
}

/// Known paths asked with a method they do not serve: `code: 405`.
pub async fn method_not_allowed() -> AnyError {
    AnyError::new(405, "this route does not serve that method")
}

/// Paths of the dialect that name no route: `code: 404`.
pub async fn no_route() -> AnyError {
    AnyError::not_found("no such route")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses() {
        let cases = [
            (ErrorCode::InvalidArgument, 400, 200),
            (ErrorCode::AuthFailed, 401, 200),
            (ErrorCode::TokenExpired, 401, 200),
            (ErrorCode::Forbidden, 403, 200),
            (ErrorCode::Blocked, 403, 200),
            (ErrorCode::NotFound, 404, 200),
            (ErrorCode::Conflict, 409, 200),
            (ErrorCode::RateLimited, 429, 200),
            (ErrorCode::Internal, 500, 500),
            (ErrorCode::ShuttingDown, 503, 503),
        ];
        for (code, envelope, status) in cases {
            let e = AnyError::from(ErrorInfo::new(code, "x"));
            assert_eq!(
                (e.code, e.status().as_u16()),
                (envelope, status),
                "{code:?}"
            );
        }
        let e = AnyError::from(ErrorInfo::new(ErrorCode::Internal, "disk on fire"));
        assert_eq!(e.message, "internal error");
    }
}
