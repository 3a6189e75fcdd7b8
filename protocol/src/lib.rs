//! The Parley wire protocol: length-prefixed protobuf frames, their validated domain types, id
//! newtypes, and the client and server session state machines. No sockets and no clock: callers
//! pass the current time in.
//!
//! The schema is `proto/parley/v1/parley.proto`; the generated types stay private to this crate.

pub mod backoff;
pub mod codec;
pub mod error;
pub mod frames;
pub mod ids;
#[cfg(feature = "json")]
pub mod json;
pub mod session;
pub mod values;

#[allow(missing_docs, clippy::all)]
mod wire {
    include!(concat!(env!("OUT_DIR"), "/parley.v1.rs"));
}

pub use codec::{FrameCodec, DEFAULT_MAX_FRAME, LEN_PREFIX};
pub use error::{DecodeError, ErrorCode, InvalidInput};

/// ALPN protocol id for TLS and QUIC; bumps with the package version (`parley.v1`).
pub const ALPN: &[u8] = b"parley/1";
