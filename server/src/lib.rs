//! The Parley connection server: TLS-TCP, QUIC and plain-TCP listeners feeding one session
//! driver, a request service every transport and the HTTP side go through, a core that
//! implements every feature once, a group committer that makes every change to a conversation
//! durable before it is answered, a router, and the store.
//!
//! Layout (docs/architecture.md): `transport` (listeners and handshakes) → `session` (the
//! binary driver) → `service` (the one entry point) → `core` (features) → `commit` (the
//! conversation logs' single writer) → `router` (delivery) → sessions; `store` beneath.

mod clock;
pub mod commit;
pub mod config;
pub mod core;
pub mod logging;
pub mod router;
pub mod search;
pub mod server;
pub mod service;
pub mod session;
pub mod store;
pub mod tls;
pub mod transport;

#[cfg(test)]
mod testing;

pub use config::Config;
pub use server::{BoundAddrs, Server, StartError};
