//! The Parley connection server: TLS-TCP, QUIC and plain-TCP listeners feeding one session
//! driver, a core that implements every feature once, a group committer that acknowledges
//! sends only once they are fsync'd, an in-process router, and the sled store.
//!
//! Layout: `transport` (listeners and handshakes) → `session` (per-connection driver) →
//! `core` (features) → `commit` (durable writes) and `hub` (routing) → `store` (sled).

mod clock;
pub mod commit;
pub mod config;
pub mod core;
pub mod hub;
pub mod server;
pub mod session;
pub mod store;
pub mod tls;
pub mod transport;

pub use config::Config;
pub use server::{BoundAddrs, Server, StartError};
