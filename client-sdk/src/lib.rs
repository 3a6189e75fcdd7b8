//! Async Rust client for Parley.
//!
//! ```no_run
//! # async fn demo() -> Result<(), parley_client::ClientError> {
//! use parley_client::{Client, ClientConfig, Credentials, Event, Transport, Trust};
//! use parley_client::protocol::frames::{ContentType, PeerRef};
//! use parley_client::protocol::ids::{Account, DeviceId};
//!
//! let config = ClientConfig::new(
//!     "127.0.0.1:7400".parse().unwrap(),
//!     Transport::Tls,
//!     Trust::CertFile("data/tls/cert.pem".into()),
//!     DeviceId::try_from("laptop")?,
//! );
//! let credentials = Credentials::Password {
//!     account: Account::try_from("alice")?,
//!     password: "correct horse".into(),
//! };
//! let (client, mut events) = Client::connect(config, credentials).await?;
//! tokio::spawn(async move {
//!     while let Some(event) = events.next().await {
//!         if let Event::Message(m) = event {
//!             println!("{}: {:?}", m.sender, m.content);
//!         }
//!     }
//! });
//! let bob = client.open_direct(PeerRef::Account(Account::try_from("bob")?)).await?;
//! let ack = client.send(bob.id, ContentType::Text, "hi".into()).await?;
//! println!("stored as seq {}", ack.seq);
//! client.close().await;
//! # Ok(()) }
//! ```
//!
//! # Model
//!
//! [`Client::connect`] connects (TLS over TCP, QUIC, or plain TCP for benchmarks), logs in, and
//! hands the connection to a background task. That task:
//!
//! - answers requests made through [`Client`] handles (cloneable, usable from any task);
//! - keeps the connection alive with pings on the server's heartbeat schedule, and treats a
//!   silent server as a lost connection;
//! - delivers [`Event`]s through a bounded channel. Messages arrive per conversation in seq
//!   order, without gaps or duplicates: pushes that skip ahead are held back until the gap is
//!   filled, by a later push or by a sync once the gap is older than
//!   [`ClientConfig::gap_timeout`];
//! - on connection loss emits [`Event::Disconnected`], waits a jittered exponential backoff
//!   (1 s doubling up to 30 s by default), reconnects, logs in with the access token (refreshing
//!   it if it expired), emits [`Event::Connected`], syncs from its positions, and re-sends
//!   unacknowledged messages with their original `client_msg_id`;
//! - syncs after every login, so the first events after connecting are the history after
//!   [`ClientConfig::resume`] (all visible history by default).
//!
//! The client keeps no storage: persist what you need from the events and
//! [`Client::positions`], and pass the positions back in [`ClientConfig::resume`].

mod auth;
mod client;
mod config;
mod driver;
mod error;
mod events;
mod groups;
mod link;
mod outbox;
mod positions;
mod social;
mod state;
mod sync;
mod tls;
mod transport;

pub use client::{new_client_msg_id, Client, ConversationPage};
pub use config::{parse_fingerprint, ClientConfig, Credentials, Resume, Transport, Trust};
pub use error::ClientError;
pub use events::{Event, Events};
pub use groups::{HistoryPage, MemberPage, Page};
pub use social::UserPage;
pub use sync::SyncSummary;
pub use tls::fingerprint;

/// The protocol crate, re-exported for its domain types and ids.
pub use parley_protocol as protocol;
