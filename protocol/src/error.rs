//! Protocol-level errors: what a peer did wrong, in terms a client can act on.

use std::borrow::Cow;

/// A value from the wire that does not satisfy the protocol's rules.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(Cow<'static, str>);

impl InvalidInput {
    /// An error with a static description.
    pub const fn new(msg: &'static str) -> Self {
        Self(Cow::Borrowed(msg))
    }

    /// An error with a formatted description.
    pub fn owned(msg: String) -> Self {
        Self(Cow::Owned(msg))
    }

    /// The description.
    pub fn message(&self) -> &str {
        &self.0
    }
}

/// Error codes carried in `Error` frames (mirrors `parley.v1.ErrorCode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // each variant is documented in the .proto file
pub enum ErrorCode {
    Unspecified,
    BadFrame,
    FrameTooLarge,
    Unauthenticated,
    AuthFailed,
    TokenExpired,
    InvalidArgument,
    NotFound,
    Forbidden,
    Conflict,
    MessageTooLarge,
    RateLimited,
    AlreadyLoggedIn,
    BadRequestId,
    ShuttingDown,
    Internal,
    Muted,
    Disbanded,
    RecallExpired,
    Blocked,
    NotFriends,
    NotAcceptingFriends,
    Banned,
}

/// Failure to decode a frame from bytes.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The length prefix exceeds the limit; the stream cannot be resynchronised.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// Limit in force.
        max: usize,
    },
    /// The bytes are not a valid protobuf `Frame`.
    #[error("malformed frame: {0}")]
    Malformed(#[from] prost::DecodeError),
    /// The frame decoded but breaks a protocol rule (missing body, bad field ...).
    #[error("invalid frame: {0}")]
    Invalid(#[from] InvalidInput),
    /// The frame is of a kind this side never accepts (e.g. a push sent by a client).
    #[error("unexpected frame kind: {0}")]
    Unexpected(&'static str),
    /// The request id is 0 (reserved for pushes).
    #[error("request id must be non-zero")]
    BadRequestId,
    /// Reading the underlying stream failed (only from the tokio codec).
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

impl DecodeError {
    /// The error code to report for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::TooLarge { .. } => ErrorCode::FrameTooLarge,
            DecodeError::Malformed(_) | DecodeError::Unexpected(_) => ErrorCode::BadFrame,
            DecodeError::Invalid(_) => ErrorCode::InvalidArgument,
            DecodeError::Io(_) => ErrorCode::Internal,
            DecodeError::BadRequestId => ErrorCode::BadRequestId,
        }
    }

    /// Whether the byte stream is unusable after this error (the connection must close).
    pub fn is_fatal(&self) -> bool {
        matches!(self, DecodeError::TooLarge { .. } | DecodeError::Io(_))
    }
}
