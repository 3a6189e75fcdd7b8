//! GoChat's failure envelope, `{success:false, message, code:"ERROR_CODE"}`, with a real HTTP
//! status, and the mapping from the protocol's error codes.
//!
//! The codes GoChat's document names are used where they fit (`AUTH_FAILED`,
//! `INVALID_MESSAGE`, `CONVERSATION_NOT_FOUND`, `MESSAGE_TOO_LARGE`, `RATE_LIMITED`); the rest
//! are the protocol's code names (`FORBIDDEN`, `MUTED`, `BLOCKED`, ...). Statuses follow the
//! contract: 400 bad input (an existing account too, as its register operation says), 401 bad
//! or missing token, 403 forbidden (guests, non-managers, mutes), 404 unknown ids (and
//! conversations the caller is not in: the core does not tell them apart, so ids cannot be
//! probed), 409 other conflicts, 429 rate limits.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use parley_protocol::frames::ErrorInfo;
use parley_protocol::ErrorCode;
use serde_json::json;

/// A failed GoChat request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoError {
    /// The HTTP status.
    pub status: StatusCode,
    /// GoChat's error code.
    pub code: &'static str,
    /// For people.
    pub message: String,
}

impl GoError {
    /// An error with its status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> GoError {
        GoError {
            status,
            code,
            message: message.into(),
        }
    }

    /// `400 INVALID_PARAMS`: a bad path, query or body.
    pub fn invalid(message: impl Into<String>) -> GoError {
        GoError::new(StatusCode::BAD_REQUEST, "INVALID_PARAMS", message)
    }

    /// `401 UNAUTHORIZED`: no usable bearer token.
    pub fn unauthorized(message: impl Into<String>) -> GoError {
        GoError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
    }

    /// `403 FORBIDDEN`.
    pub fn forbidden(message: impl Into<String>) -> GoError {
        GoError::new(StatusCode::FORBIDDEN, "FORBIDDEN", message)
    }

    /// `404 CONVERSATION_NOT_FOUND`.
    pub fn no_conversation() -> GoError {
        GoError::new(
            StatusCode::NOT_FOUND,
            "CONVERSATION_NOT_FOUND",
            "no such conversation",
        )
    }

    /// The same error with `code` for a `NOT_FOUND` (the route knows what was not found).
    pub fn not_found_as(mut self, code: &'static str) -> GoError {
        if self.status == StatusCode::NOT_FOUND {
            self.code = code;
        }
        self
    }
}

impl From<ErrorInfo> for GoError {
    fn from(e: ErrorInfo) -> GoError {
        let (status, code) = match e.code {
            ErrorCode::InvalidArgument | ErrorCode::BadFrame | ErrorCode::BadRequestId => {
                (StatusCode::BAD_REQUEST, "INVALID_PARAMS")
            }
            ErrorCode::MessageTooLarge | ErrorCode::FrameTooLarge => {
                (StatusCode::BAD_REQUEST, "MESSAGE_TOO_LARGE")
            }
            ErrorCode::Unauthenticated | ErrorCode::AuthFailed => {
                (StatusCode::UNAUTHORIZED, "AUTH_FAILED")
            }
            ErrorCode::TokenExpired => (StatusCode::UNAUTHORIZED, "TOKEN_EXPIRED"),
            ErrorCode::Forbidden => (StatusCode::FORBIDDEN, "FORBIDDEN"),
            ErrorCode::Banned => (StatusCode::FORBIDDEN, "BANNED"),
            ErrorCode::Blocked => (StatusCode::FORBIDDEN, "BLOCKED"),
            ErrorCode::Muted => (StatusCode::FORBIDDEN, "MUTED"),
            ErrorCode::Disbanded => (StatusCode::FORBIDDEN, "DISBANDED"),
            ErrorCode::RecallExpired => (StatusCode::FORBIDDEN, "RECALL_EXPIRED"),
            ErrorCode::NotFriends => (StatusCode::FORBIDDEN, "NOT_FRIENDS"),
            ErrorCode::NotAcceptingFriends => (StatusCode::FORBIDDEN, "NOT_ACCEPTING_FRIENDS"),
            ErrorCode::NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            ErrorCode::Conflict | ErrorCode::AlreadyLoggedIn => (StatusCode::CONFLICT, "CONFLICT"),
            ErrorCode::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED"),
            ErrorCode::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "SHUTTING_DOWN"),
            ErrorCode::Internal | ErrorCode::Unspecified => {
                (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR")
            }
        };
        GoError::new(status, code, e.message)
    }
}

impl From<JsonRejection> for GoError {
    fn from(r: JsonRejection) -> GoError {
        GoError::invalid(r.body_text())
    }
}

impl From<PathRejection> for GoError {
    fn from(r: PathRejection) -> GoError {
        GoError::invalid(r.body_text())
    }
}

impl From<QueryRejection> for GoError {
    fn from(r: QueryRejection) -> GoError {
        GoError::invalid(r.body_text())
    }
}

impl IntoResponse for GoError {
    fn into_response(self) -> Response {
        let body = json!({"success": false, "message": self.message, "code": self.code});
        (self.status, Json(body)).into_response()
    }
}

/// Known paths asked with a method they do not serve.
pub async fn method_not_allowed() -> GoError {
    GoError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "this route does not serve that method",
    )
}

/// Paths of the dialect that name no route.
pub async fn no_route() -> GoError {
    GoError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses() {
        let cases = [
            (ErrorCode::InvalidArgument, 400, "INVALID_PARAMS"),
            (ErrorCode::AuthFailed, 401, "AUTH_FAILED"),
            (ErrorCode::TokenExpired, 401, "TOKEN_EXPIRED"),
            (ErrorCode::Forbidden, 403, "FORBIDDEN"),
            (ErrorCode::NotFound, 404, "NOT_FOUND"),
            (ErrorCode::Conflict, 409, "CONFLICT"),
            (ErrorCode::RateLimited, 429, "RATE_LIMITED"),
            (ErrorCode::MessageTooLarge, 400, "MESSAGE_TOO_LARGE"),
        ];
        for (code, status, name) in cases {
            let e = GoError::from(ErrorInfo::new(code, "x"));
            assert_eq!((e.status.as_u16(), e.code), (status, name), "{code:?}");
        }
        let e = GoError::from(ErrorInfo::new(ErrorCode::NotFound, "x"))
            .not_found_as("CONVERSATION_NOT_FOUND");
        assert_eq!(e.code, "CONVERSATION_NOT_FOUND");
    }
}
