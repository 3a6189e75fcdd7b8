//! The REST API's one error body, `{"error":{"code":"NOT_FOUND","message":"..."}}`, and the
//! mapping from the protocol's [`ErrorCode`] to a stable code string and an HTTP status.
//!
//! The code strings are the protocol's error code names (`ERROR_CODE_NOT_FOUND` without its
//! prefix), so a client that knows the binary protocol knows them already; the two REST-only
//! codes, `METHOD_NOT_ALLOWED` and `UNSUPPORTED_MEDIA_TYPE`, belong to HTTP itself. Messages are
//! the ones the core writes for clients: they never carry server internals.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use parley_protocol::frames::ErrorInfo;
use parley_protocol::{DecodeError, ErrorCode};
use serde::Serialize;
use utoipa::ToSchema;

/// A failed REST request: its HTTP status and its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable machine-readable code.
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// Wait this long before trying again (a `429`'s `Retry-After`, and `retry_after_ms` in
    /// the body).
    pub retry_after: Option<std::time::Duration>,
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code: the protocol's error code name (`NOT_FOUND`, `BLOCKED`, ...),
    /// or `METHOD_NOT_ALLOWED` / `UNSUPPORTED_MEDIA_TYPE` from HTTP itself.
    #[schema(example = "NOT_FOUND")]
    pub code: String,
    /// Human-readable detail (never server internals).
    #[schema(example = "no such conversation")]
    pub message: String,
    /// How long to wait before trying again, in ms (`RATE_LIMITED`, and the `AUTH_FAILED` that
    /// starts a wait after failed logins); absent when there is no advice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl ApiError {
    /// An error with the status and code of a protocol error code.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status: status(code),
            code: code_name(code),
            message: message.into(),
            retry_after: None,
        }
    }

    /// `400 INVALID_ARGUMENT`.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::InvalidArgument, message)
    }

    /// `401 UNAUTHENTICATED`.
    pub fn unauthenticated(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Unauthenticated, message)
    }

    /// `404 NOT_FOUND`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::NotFound, message)
    }

    /// `500 INTERNAL` (the detail goes to the log, not to the client).
    pub fn internal(detail: &str) -> ApiError {
        tracing::warn!(detail, "REST request failed inside the server");
        ApiError::new(ErrorCode::Internal, "internal error")
    }
}

impl From<ErrorInfo> for ApiError {
    fn from(e: ErrorInfo) -> ApiError {
        ApiError {
            retry_after: e.retry_after,
            ..ApiError::new(e.code, e.message)
        }
    }
}

impl From<DecodeError> for ApiError {
    fn from(e: DecodeError) -> ApiError {
        match e {
            // The field rule itself, without the frame-level prefix.
            DecodeError::Invalid(e) => ApiError::invalid(e.message()),
            e => ApiError::new(e.code(), e.to_string()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        let message = r.body_text();
        match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(ErrorCode::FrameTooLarge, message),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code: "UNSUPPORTED_MEDIA_TYPE",
                message,
                retry_after: None,
            },
            _ => ApiError::invalid(message),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> ApiError {
        ApiError::invalid(r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        ApiError::invalid(r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                retry_after_ms: self.retry_after.map(|d| d.as_millis() as u64),
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(after) = self.retry_after {
            // Whole seconds, rounded up (the header has no finer unit).
            let secs = after.as_millis().div_ceil(1000).max(1);
            if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"parley\""),
            );
        }
        response
    }
}

/// The stable code of a protocol error code: its name in the schema without `ERROR_CODE_`.
pub fn code_name(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::Unspecified => "UNSPECIFIED",
        ErrorCode::BadFrame => "BAD_FRAME",
        ErrorCode::FrameTooLarge => "FRAME_TOO_LARGE",
        ErrorCode::Unauthenticated => "UNAUTHENTICATED",
        ErrorCode::AuthFailed => "AUTH_FAILED",
        ErrorCode::TokenExpired => "TOKEN_EXPIRED",
        ErrorCode::InvalidArgument => "INVALID_ARGUMENT",
        ErrorCode::NotFound => "NOT_FOUND",
        ErrorCode::Forbidden => "FORBIDDEN",
        ErrorCode::Conflict => "CONFLICT",
        ErrorCode::MessageTooLarge => "MESSAGE_TOO_LARGE",
        ErrorCode::RateLimited => "RATE_LIMITED",
        ErrorCode::AlreadyLoggedIn => "ALREADY_LOGGED_IN",
        ErrorCode::BadRequestId => "BAD_REQUEST_ID",
        ErrorCode::ShuttingDown => "SHUTTING_DOWN",
        ErrorCode::Internal => "INTERNAL",
        ErrorCode::Muted => "MUTED",
        ErrorCode::Disbanded => "DISBANDED",
        ErrorCode::RecallExpired => "RECALL_EXPIRED",
        ErrorCode::Blocked => "BLOCKED",
        ErrorCode::NotFriends => "NOT_FRIENDS",
        ErrorCode::NotAcceptingFriends => "NOT_ACCEPTING_FRIENDS",
        ErrorCode::Banned => "BANNED",
    }
}

/// The HTTP status of a protocol error code (the table in docs/rest.md).
pub fn status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidArgument | ErrorCode::BadFrame | ErrorCode::BadRequestId => {
            StatusCode::BAD_REQUEST
        }
        ErrorCode::Unauthenticated | ErrorCode::AuthFailed | ErrorCode::TokenExpired => {
            StatusCode::UNAUTHORIZED
        }
        ErrorCode::Forbidden
        | ErrorCode::Blocked
        | ErrorCode::Banned
        | ErrorCode::Muted
        | ErrorCode::Disbanded
        | ErrorCode::RecallExpired
        | ErrorCode::NotFriends
        | ErrorCode::NotAcceptingFriends => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict | ErrorCode::AlreadyLoggedIn => StatusCode::CONFLICT,
        ErrorCode::MessageTooLarge | ErrorCode::FrameTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Internal | ErrorCode::Unspecified => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Routes that exist, asked with a method they do not serve.
pub async fn method_not_allowed() -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "METHOD_NOT_ALLOWED",
        message: "this route does not serve that method".to_owned(),
        retry_after: None,
    }
}

/// Paths under `/im/v1` that name no route.
pub async fn no_route() -> ApiError {
    ApiError::not_found("no such route")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_brief() {
        let cases = [
            (ErrorCode::InvalidArgument, 400, "INVALID_ARGUMENT"),
            (ErrorCode::Unauthenticated, 401, "UNAUTHENTICATED"),
            (ErrorCode::TokenExpired, 401, "TOKEN_EXPIRED"),
            (ErrorCode::Forbidden, 403, "FORBIDDEN"),
            (ErrorCode::Blocked, 403, "BLOCKED"),
            (ErrorCode::Banned, 403, "BANNED"),
            (ErrorCode::NotFound, 404, "NOT_FOUND"),
            (ErrorCode::Conflict, 409, "CONFLICT"),
            (ErrorCode::MessageTooLarge, 413, "MESSAGE_TOO_LARGE"),
            (ErrorCode::RateLimited, 429, "RATE_LIMITED"),
            (ErrorCode::ShuttingDown, 503, "SHUTTING_DOWN"),
            (ErrorCode::Internal, 500, "INTERNAL"),
        ];
        for (code, http, name) in cases {
            assert_eq!(status(code).as_u16(), http, "{code:?}");
            assert_eq!(code_name(code), name);
        }
    }
}
