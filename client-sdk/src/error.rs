//! The SDK's error type.

use std::net::SocketAddr;
use std::sync::Arc;

use parley_protocol::frames::ErrorInfo;
use parley_protocol::{ErrorCode, InvalidInput};

/// Why an SDK operation failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ClientError {
    /// The configuration cannot be used (unreadable certificate, bad server name ...).
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// A value given to the SDK breaks a protocol rule (e.g. a `client_msg_id` too long).
    #[error("invalid input: {0}")]
    Invalid(#[from] InvalidInput),
    /// Opening the connection (TCP, TLS or QUIC handshake) failed.
    #[error("connecting to {addr} failed: {source}")]
    Connect {
        /// Server address.
        addr: SocketAddr,
        /// The underlying failure.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// The server answered with an error.
    #[error("server error: {0}")]
    Server(ErrorInfo),
    /// The server broke the protocol (undecodable frame, unexpected response kind ...).
    #[error("protocol violation by the server: {0}")]
    Protocol(String),
    /// No answer within the request timeout.
    #[error("timed out")]
    Timeout,
    /// The connection was lost while the request was outstanding, or the client is reconnecting.
    #[error("disconnected from the server")]
    Disconnected,
    /// The client was closed (or logged out, or gave up reconnecting).
    #[error("client closed")]
    Closed,
}

impl ClientError {
    /// The server's error code, if the server rejected the operation.
    pub fn server_code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server(e) => Some(e.code),
            _ => None,
        }
    }

    /// Whether a login failing with this error is worth retrying later with the same
    /// credentials (network trouble, server restarting), as opposed to a rejection.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            ClientError::Connect { .. }
            | ClientError::Timeout
            | ClientError::Disconnected
            | ClientError::Protocol(_) => true,
            ClientError::Server(e) => matches!(
                e.code,
                ErrorCode::ShuttingDown | ErrorCode::Internal | ErrorCode::RateLimited
            ),
            ClientError::Config(_) | ClientError::Invalid(_) | ClientError::Closed => false,
        }
    }

    pub(crate) fn connect(
        addr: SocketAddr,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        ClientError::Connect {
            addr,
            source: Arc::from(source.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_are_classified() {
        let shutting = ClientError::Server(ErrorInfo::new(ErrorCode::ShuttingDown, "bye"));
        let denied = ClientError::Server(ErrorInfo::new(ErrorCode::AuthFailed, "no"));
        assert!(shutting.is_transient());
        assert!(!denied.is_transient());
        assert_eq!(denied.server_code(), Some(ErrorCode::AuthFailed));
        assert!(ClientError::Timeout.is_transient());
        assert!(!ClientError::Closed.is_transient());
    }
}
