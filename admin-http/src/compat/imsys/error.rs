//! IM系统's error body, `{error:"..."}`, with the HTTP status, and the mapping from the
//! protocol's error codes: 400 bad input, 401 bad or missing credentials, 404 unknown ids (and
//! conversations the caller is not in: the core does not tell them apart, so ids cannot be
//! probed), 500 internal errors; the document lists only those, and the core's other refusals
//! keep their natural statuses (403 forbidden, 409 conflict, 429 rate limited, 503 shutting
//! down).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use parley_protocol::frames::ErrorInfo;
use parley_protocol::ErrorCode;
use serde_json::json;

/// A failed IM系统 request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImError {
    /// The HTTP status.
    pub status: StatusCode,
    /// For people (the body's `error`).
    pub message: String,
}

impl ImError {
    /// An error with its status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ImError {
        ImError {
            status,
            message: message.into(),
        }
    }

    /// `400`: a bad path, query or body.
    pub fn invalid(message: impl Into<String>) -> ImError {
        ImError::new(StatusCode::BAD_REQUEST, message)
    }

    /// `401`: no usable credentials.
    pub fn unauthorized(message: impl Into<String>) -> ImError {
        ImError::new(StatusCode::UNAUTHORIZED, message)
    }

    /// `404`.
    pub fn not_found(message: impl Into<String>) -> ImError {
        ImError::new(StatusCode::NOT_FOUND, message)
    }

    /// The status of a protocol error code.
    pub fn status_of(code: ErrorCode) -> StatusCode {
        match code {
            ErrorCode::InvalidArgument
            | ErrorCode::BadFrame
            | ErrorCode::BadRequestId
            | ErrorCode::MessageTooLarge
            | ErrorCode::FrameTooLarge => StatusCode::BAD_REQUEST,
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
}

impl From<ErrorInfo> for ImError {
    fn from(e: ErrorInfo) -> ImError {
        let status = ImError::status_of(e.code);
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            "internal error".to_owned()
        } else {
            e.message
        };
        ImError::new(status, message)
    }
}

impl From<JsonRejection> for ImError {
    fn from(r: JsonRejection) -> ImError {
        ImError::invalid(r.body_text())
    }
}

impl From<PathRejection> for ImError {
    fn from(r: PathRejection) -> ImError {
        ImError::invalid(r.body_text())
    }
}

impl From<QueryRejection> for ImError {
    fn from(r: QueryRejection) -> ImError {
        ImError::invalid(r.body_text())
    }
}

impl IntoResponse for ImError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

/// Known paths asked with a method they do not serve.
pub async fn method_not_allowed() -> ImError {
    ImError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "this route does not serve that method",
    )
}

/// Paths of the dialect that name no route.
pub async fn no_route() -> ImError {
    ImError::not_found("no such route")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        for (code, status) in [
            (ErrorCode::InvalidArgument, 400),
            (ErrorCode::AuthFailed, 401),
            (ErrorCode::TokenExpired, 401),
            (ErrorCode::NotFound, 404),
            (ErrorCode::Internal, 500),
            (ErrorCode::Forbidden, 403),
        ] {
            assert_eq!(ImError::from(ErrorInfo::new(code, "x")).status, status);
        }
        let e = ImError::from(ErrorInfo::new(ErrorCode::Internal, "secret detail"));
        assert_eq!(e.message, "internal error");
    }
}
