//! Session state machines without IO or clocks: the caller feeds events with the current time
//! and asks when the next timer is due, in the style of quinn-proto.

mod client;
mod server;

pub use client::{ClientEvent, ClientSession, ClientSessionError, TimerAction};
pub use server::{Admission, HeartbeatConfig, Identity, ServerSession};
