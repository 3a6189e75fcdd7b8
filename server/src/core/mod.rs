//! The core: every feature, implemented once against the protocol's domain types. Transports
//! and (later) HTTP dialects call into it; none of them holds feature logic.

mod auth;
mod conversations;
mod messaging;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parley_protocol::frames::{ErrorInfo, Limits};
use parley_protocol::ErrorCode;
use tokio::sync::{mpsc, Semaphore};

use crate::commit::{CommittedBatch, Committer, DurableHeads};
use crate::config::Config;
use crate::hub::Hub;
use crate::store::{Store, StoreError};

pub use auth::LoginOutcome;
pub use conversations::MemberCache;

/// Result of a core operation: a domain value or an error for the client.
pub type CoreResult<T> = Result<T, ErrorInfo>;

/// Shared state of the running server.
#[derive(Debug)]
pub struct Core {
    pub(crate) store: Store,
    pub(crate) cfg: Arc<Config>,
    pub(crate) hub: Arc<Hub>,
    pub(crate) committer: Committer,
    pub(crate) heads: Arc<DurableHeads>,
    members: MemberCache,
    /// Bounds concurrent password hashing (each argon2id hash takes ~19 MiB and a core).
    hash_permits: Semaphore,
    next_session: AtomicU64,
    /// Counters for the stats endpoint.
    pub stats: CoreStats,
}

/// Counters.
#[derive(Debug, Default)]
pub struct CoreStats {
    /// Messages committed (excluding duplicates).
    pub messages: AtomicU64,
    /// Successful logins.
    pub logins: AtomicU64,
    /// Connections accepted.
    pub connections: AtomicU64,
}

impl Core {
    /// Wires the core together. `fanout_rx` must be passed to [`Core::run_fanout`].
    pub fn new(
        store: Store,
        cfg: Arc<Config>,
        committer: Committer,
        heads: Arc<DurableHeads>,
    ) -> Core {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        Core {
            store,
            cfg,
            hub: Arc::new(Hub::default()),
            committer,
            heads,
            members: MemberCache::default(),
            hash_permits: Semaphore::new(workers),
            next_session: AtomicU64::new(1),
            stats: CoreStats::default(),
        }
    }

    /// A fresh connection id.
    pub fn next_session_id(&self) -> u64 {
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    /// The router.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The store's epoch.
    pub fn epoch(&self) -> u64 {
        self.store.epoch()
    }

    /// Limits announced at login.
    pub fn limits(&self) -> Limits {
        let l = &self.cfg.limits;
        Limits {
            max_frame_bytes: l.max_frame_bytes,
            max_message_bytes: l.max_message_bytes,
            max_inflight_sends: l.max_inflight_sends,
            max_sync_page: l.max_sync_page,
            max_requests_per_second: l.requests_per_second,
        }
    }

    /// Waits until every store write made so far is durable (shares the committer's fsync).
    /// Operations that change accounts, tokens or conversations call it before answering, so an
    /// answer is never lost by a crash.
    pub(crate) async fn durable(&self) -> CoreResult<()> {
        self.committer.barrier().await.map_err(|e| match e {
            crate::commit::CommitError::Stopped => err(ErrorCode::ShuttingDown, "shutting down"),
            _ => err(ErrorCode::Internal, "internal error"),
        })
    }

    /// Pushes newly durable messages to every online device of every member (and the sender's
    /// other devices). Runs until the committer stops.
    pub async fn run_fanout(self: Arc<Self>, mut rx: mpsc::Receiver<CommittedBatch>) {
        while let Some(batch) = rx.recv().await {
            self.stats
                .messages
                .fetch_add(batch.messages.len() as u64, Ordering::Relaxed);
            // Sending implies having read everything before: advance each sender's read cursor
            // once per batch (to its newest message), so its unread count stays 0.
            let mut read_upto: std::collections::HashMap<_, parley_protocol::ids::Seq> =
                std::collections::HashMap::new();
            for (message, origin) in batch.messages {
                let key = (message.sender, message.conversation);
                let seq = read_upto.entry(key).or_default();
                *seq = (*seq).max(message.seq);
                self.fan_out(message, origin);
            }
            // Off the runtime's workers: a store write waits while the committer applies a
            // batch (sled serialises writers against its atomic batches), and a blocked
            // worker would stall every session it runs. Cursors only move forward (max), so
            // the order of these updates does not matter.
            let store = self.store.clone();
            tokio::task::spawn_blocking(move || {
                for ((user, conv), seq) in read_upto {
                    let kind = parley_protocol::frames::CursorKind::Read;
                    if let Err(e) = store.advance_cursor(user, conv, kind, seq) {
                        tracing::warn!(error = %e, "could not advance the sender's read cursor");
                    }
                }
            });
        }
    }
}

/// Maps a store failure to an opaque internal error (details go to the log only).
pub(crate) fn internal(e: StoreError) -> ErrorInfo {
    tracing::error!(error = %e, "store failure");
    ErrorInfo::new(ErrorCode::Internal, "internal error")
}

pub(crate) fn err(code: ErrorCode, msg: impl Into<String>) -> ErrorInfo {
    ErrorInfo::new(code, msg)
}
