//! Wetty Chat's errors: a plain-text body (`text/plain; charset=utf-8`) with the HTTP status,
//! as its server answered them. Bad input is 400, bad or missing credentials 401, refusals 403
//! (and a non-member of a group the caller can see: see [`super::groups`]), unknown ids 404, an
//! existing member or account 409, rate limits 429, internal errors 500 without detail.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use parley_protocol::frames::ErrorInfo;
use parley_protocol::ErrorCode;

/// A failed Wetty request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WtError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body, for people.
    pub message: String,
    /// The protocol's code, where the error came from the core (to tell a hidden
    /// non-membership from other refusals).
    pub code: Option<ErrorCode>,
}

impl WtError {
    /// An error with its status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> WtError {
        WtError {
            status,
            message: message.into(),
            code: None,
        }
    }

    /// `400`: a bad path, query or body.
    pub fn invalid(message: impl Into<String>) -> WtError {
        WtError::new(StatusCode::BAD_REQUEST, message)
    }

    /// `401`: no usable credentials.
    pub fn unauthorized(message: impl Into<String>) -> WtError {
        WtError::new(StatusCode::UNAUTHORIZED, message)
    }

    /// `403`.
    pub fn forbidden(message: impl Into<String>) -> WtError {
        WtError::new(StatusCode::FORBIDDEN, message)
    }

    /// `404`.
    pub fn not_found(message: impl Into<String>) -> WtError {
        WtError::new(StatusCode::NOT_FOUND, message)
    }

    /// `409`.
    pub fn conflict(message: impl Into<String>) -> WtError {
        WtError::new(StatusCode::CONFLICT, message)
    }

    /// Whether the core said "not found" (which also hides non-membership).
    pub fn is_not_found(&self) -> bool {
        self.code == Some(ErrorCode::NotFound)
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

impl From<ErrorInfo> for WtError {
    fn from(e: ErrorInfo) -> WtError {
        let status = WtError::status_of(e.code);
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            "internal error".to_owned()
        } else {
            e.message
        };
        WtError {
            status,
            message,
            code: Some(e.code),
        }
    }
}

impl From<JsonRejection> for WtError {
    fn from(r: JsonRejection) -> WtError {
        WtError::invalid(r.body_text())
    }
}

impl From<PathRejection> for WtError {
    fn from(r: PathRejection) -> WtError {
        WtError::invalid(r.body_text())
    }
}

impl From<QueryRejection> for WtError {
    fn from(r: QueryRejection) -> WtError {
        WtError::invalid(r.body_text())
    }
}

impl IntoResponse for WtError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.message,
        )
            .into_response()
    }
}

/// Known paths asked with a method they do not serve.
pub async fn method_not_allowed() -> WtError {
    WtError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "this route does not serve that method",
    )
}

/// Paths of the dialect that name no route.
pub async fn no_route() -> WtError {
    WtError::not_found("no such route")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_hidden_internals() {
        for (code, status) in [
            (ErrorCode::InvalidArgument, 400),
            (ErrorCode::AuthFailed, 401),
            (ErrorCode::Forbidden, 403),
            (ErrorCode::NotFound, 404),
            (ErrorCode::Conflict, 409),
            (ErrorCode::Internal, 500),
        ] {
            assert_eq!(WtError::from(ErrorInfo::new(code, "x")).status, status);
        }
        let e = WtError::from(ErrorInfo::new(ErrorCode::Internal, "secret detail"));
        assert_eq!(e.message, "internal error");
    }
}
