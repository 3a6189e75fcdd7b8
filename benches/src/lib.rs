//! Benchmarks and load generation for Parley.
//!
//! - `benches/`: criterion benchmarks (codec, store group commit, session state machine, an
//!   in-process end-to-end send→deliver).
//! - `src/bin/imload.rs`: the load generator, which speaks the real protocol over plain TCP,
//!   TLS, QUIC and the WebSocket fallback against a running (or spawned) server. Its scenarios
//!   live in [`scenario`].
//! - `http/`: shell scripts that load the REST API (`wrk`) and file downloads (`curl`).
//!
//! The generator uses the protocol crate directly (frames, codec) rather than the SDK, so its
//! own cost per message stays small: it shares the machine's cores with the server.

pub mod client;
pub mod conn;
pub mod coord;
pub mod peer;
pub mod procfs;
pub mod progress;
pub mod scenario;
pub mod spawn;
pub mod stats;
