//! Transports: each accepts connections, completes its handshake inside the connection's own
//! task (under a timeout, never in the accept loop), and hands a byte stream to the session
//! driver. No feature logic lives here.

mod quic;
mod tcp;

pub use quic::serve_quic;
pub use tcp::serve_tcp;

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::core::Core;

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
}
