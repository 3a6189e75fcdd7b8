//! Transports: each accepts connections, completes its handshake inside the connection's own
//! task (under a timeout, never in the accept loop), and hands a byte stream to the session
//! driver. No feature logic lives here.

mod quic;
mod stream;
mod tcp;
mod tls;

pub use quic::serve_quic;
pub use stream::{Duplex, SessionStream, Socket};
pub use tcp::serve_tcp;
pub use tls::TlsSocket;

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::core::Core;
use crate::session::{self, ParkingLot};

/// What every listener needs.
#[derive(Clone, Debug)]
pub struct Shared {
    /// The core.
    pub core: Arc<Core>,
    /// Cancelled on shutdown.
    pub shutdown: CancellationToken,
    /// Tracks connection tasks so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// One permit per open connection (taken before accepting).
    pub permits: Arc<Semaphore>,
    /// Where idle sessions sleep.
    pub lot: ParkingLot,
}

impl Shared {
    /// What a new session holds on to: the shutdown signal, the lot, and its permit.
    pub fn env(&self, permit: OwnedSemaphorePermit) -> session::Env {
        session::Env {
            shutdown: self.shutdown.clone(),
            lot: self.lot.clone(),
            permit,
        }
    }
}
