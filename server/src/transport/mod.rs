//! Transports: each accepts connections, completes its handshake inside the connection's own
//! task (under a timeout, never in the accept loop), and hands a byte stream to the session
//! driver. No feature logic lives here. Transports depend on `session`, never the reverse.

pub mod budget;
mod early;
#[doc(hidden)]
pub mod fuzzing;
mod quic;
mod stream;
mod supervise;
mod tcp;
mod tls;
mod ws;

pub use quic::serve_quic;
pub use stream::{Duplex, SessionStream, Socket};
pub use supervise::{supervise, Supervision};
pub use tcp::serve_tcp;
pub use tls::TlsSocket;
pub use ws::{serve_ws, WsStream};

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::service::Service;
use crate::session::{self, ParkingLot};

/// What every listener needs.
#[derive(Clone, Debug)]
pub struct Shared {
    /// The request service.
    pub service: Service,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every connection's task holds this future until its session sleeps, so its size is
    /// part of the memory of every active connection (the driver itself is boxed; ~760 bytes
    /// on rustc 1.95). Request handling, writes and the close are boxed too; this fails if
    /// something large lands inline again.
    #[test]
    fn session_future_stays_small() {
        let n = session::session_future_size::<Socket>();
        assert!(n <= 800, "session future is {n} bytes");
    }

    /// What a sleeping session keeps (the driver, boxed): this fails if a field lands in the
    /// driver and pushes it past its allocation size class (384 bytes for plain TCP, 1,536
    /// with TLS, most of it rustls' connection state).
    #[test]
    fn sleeping_driver_stays_small() {
        let tcp = session::sleeping_driver_size::<Socket>();
        assert!(tcp <= 384, "driver is {tcp} bytes");
        let tls = session::sleeping_driver_size::<TlsSocket>();
        assert!(tls <= 1536, "TLS driver is {tls} bytes");
    }
}
