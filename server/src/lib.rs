//! The Parley connection server.
pub mod store;
