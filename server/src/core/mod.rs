//! The core: every feature, implemented once against the protocol's domain types, one file per
//! concept. Nothing calls it directly but the request service ([`crate::service`]), which every
//! transport, the HTTP side and the dialects go through; none of them holds feature logic.

mod admin;
mod admins;
mod audit;
mod auth;
mod calls;
mod conversation_list;
mod conversations;
mod entries;
mod files;
mod group_rate;
mod groups;
mod hashing;
mod history;
mod invites;
mod meetings;
mod message_search;
mod messaging;
mod offline_push;
mod presence;
mod settings;
mod social;
mod sync;
mod throttle;
mod typing;
mod world;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parley_protocol::frames::{CursorKind, ErrorInfo, Limits};
use parley_protocol::ids::{ConversationId, NodeId, Seq, SessionId, UserId};
use parley_protocol::session::HeartbeatConfig;
use parley_protocol::ErrorCode;
use tokio::sync::mpsc;

use crate::commit::{CommittedBatch, Committer};
use crate::config::Config;
use crate::router::{Hub, Router};
use crate::store::{Store, StoreError};

pub use admin::{UserSummary, ADMIN_MAX_PAGE};
pub use admins::{Actor, AdminInfo, AdminRole};
pub use audit::{AuditEntry, AuditFilter, MAX_AUDIT_PAGE, OPERATOR};
pub use auth::LoginOutcome;
pub use calls::Signalled;
pub use entries::{Answer, Pending, Submission, Waiting};
pub use files::FileList;
pub use files::Files;
pub(crate) use files::{bears_file, thumbnail_mime};
pub use groups::Join;
pub use offline_push::OfflinePush;
pub use settings::SettingInfo;
pub use social::Befriend;
pub use sync::sync_unit_bound;
pub use throttle::Source;

/// Result of a core operation: a domain value or an error for the client.
pub type CoreResult<T> = Result<T, ErrorInfo>;

/// Shared state of the running server.
#[derive(Debug)]
pub struct Core {
    pub(crate) store: Store,
    pub(crate) cfg: Arc<Config>,
    pub(crate) router: Arc<dyn Router>,
    pub(crate) committer: Committer,
    /// Password hashing: bounded, fair between sources, refusing early (`hashing.rs`).
    hashes: Arc<hashing::HashQueue>,
    /// Failed password attempts per source and per (account, source) (`throttle.rs`).
    throttle: std::sync::Mutex<throttle::Throttle>,
    /// Groups created and members added per account (`group_rate.rs`).
    group_rate: std::sync::Mutex<group_rate::GroupRate>,
    /// Typing notices relayed per sender and conversation (`typing.rs`).
    typing_gate: std::sync::Mutex<typing::TypingGate>,
    node: NodeId,
    next_session: AtomicU64,
    /// The sessions' liveness settings, shared by all of them.
    heartbeat: Arc<HeartbeatConfig>,
    /// Calls in progress.
    calls: calls::Calls,
    /// Wrong meeting passwords per user (`meetings.rs`).
    meeting_failures: meetings::Failures,
    /// The full-text index, if search is on.
    pub(crate) search: Option<crate::search::Search>,
    /// The offline-push queue, if a webhook is configured.
    pub(crate) offline_push: Option<OfflinePush>,
    /// Files (`None`: the files directory could not be opened; logged at start).
    pub(crate) files: Option<Files>,
    push_rx: std::sync::Mutex<Option<mpsc::Receiver<offline_push::Job>>>,
    /// The runtime settings an admin may change (`settings.rs`).
    pub(crate) settings: settings::Settings,
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
    /// Connections of the binary transports, by `session::TransportKind as usize` (tcp, tls,
    /// quic, ws); counted once per connection, for `/metrics`.
    pub transports: [AtomicU64; 4],
    /// Password attempts refused before hashing because their source (or their source on
    /// that account) failed too often and must still wait.
    pub logins_throttled: AtomicU64,
}

impl Core {
    /// Wires the core together over `store`, with the in-process router: returns the core, the
    /// committer's loop (for the caller to run on a thread of its own; tests on tokio's paused
    /// clock run it on the blocking pool, which keeps the clock from jumping ahead while a
    /// commit is in flight), and the receiver of newly durable entries for
    /// [`Core::run_fanout`].
    pub fn assemble(
        store: Store,
        cfg: Config,
    ) -> (
        Arc<Core>,
        impl FnOnce() + Send + 'static,
        mpsc::Receiver<CommittedBatch>,
    ) {
        let (fanout_tx, fanout_rx) = mpsc::channel(1024);
        let (committer, commit_loop) = Committer::new(
            store.clone(),
            cfg.limits.commit_queue,
            cfg.limits.commit_batch,
            fanout_tx,
        );
        let router = Arc::new(Hub::new(crate::router::QueueLimits {
            frames: cfg.limits.outbound_queue,
            bytes: cfg.limits.outbound_queue_bytes,
        }));
        let core = Arc::new(Core::new(store, Arc::new(cfg), committer, router));
        (core, commit_loop, fanout_rx)
    }

    fn new(store: Store, cfg: Arc<Config>, committer: Committer, router: Arc<dyn Router>) -> Core {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let heartbeat = Arc::new(HeartbeatConfig {
            interval: cfg.heartbeat.interval,
            timeout: cfg.heartbeat.timeout,
            login_timeout: cfg.heartbeat.login_timeout,
            requests_per_second: cfg.limits.requests_per_second,
            ..HeartbeatConfig::default()
        });
        let search = match cfg.search.enabled {
            false => None,
            true => {
                match crate::search::Search::open(&cfg.data_dir.join("search"), store.clone()) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        tracing::error!(
                            error = %e,
                            "search is off: the index could not be opened (delete {} to rebuild it)",
                            cfg.data_dir.join("search").display()
                        );
                        None
                    }
                }
            }
        };
        let (offline_push, push_rx) = match offline_push::OfflinePush::new(&cfg.push) {
            Some((p, rx)) => (Some(p), Some(rx)),
            None => (None, None),
        };
        let files = Files::open(&cfg);
        let login = &cfg.login;
        let hashes = hashing::HashQueue::new(hashing::HashSettings {
            workers: match login.hash_workers {
                0 => workers,
                n => n,
            },
            queue: login.hash_queue,
            per_source: login.hash_per_source,
        });
        let throttle = throttle::Throttle::new(throttle::ThrottleSettings {
            source_free: login.source_failures,
            account_free: login.account_failures,
            base: login.backoff_base,
            max: login.backoff_max,
            forget_after: login.forget_after,
            max_sources: login.max_tracked_sources,
            max_pairs: login.max_tracked_pairs,
        });
        let l = &cfg.limits;
        let group_rate = group_rate::GroupRate::new(
            group_rate::Rate {
                per_minute: l.groups_per_minute,
                burst: l.groups_burst,
            },
            group_rate::Rate {
                per_minute: l.group_adds_per_minute,
                burst: l.group_adds_burst,
            },
        );
        let settings = settings::Settings::load(&cfg, &store);
        Core {
            settings,
            files,
            meeting_failures: meetings::Failures::default(),
            heartbeat,
            group_rate: std::sync::Mutex::new(group_rate),
            typing_gate: std::sync::Mutex::new(typing::TypingGate::new(
                std::time::Duration::from_millis(l.typing_interval_ms),
            )),
            node: NodeId(cfg.node_id),
            store,
            cfg,
            router,
            committer,
            hashes,
            throttle: std::sync::Mutex::new(throttle),
            next_session: AtomicU64::new(1),
            calls: calls::Calls::default(),
            search,
            offline_push,
            push_rx: std::sync::Mutex::new(push_rx),
            stats: CoreStats::default(),
        }
    }

    /// Starts posting offline notifications, if a webhook is configured (once; later calls do
    /// nothing).
    pub fn start_offline_push(self: &Arc<Self>) {
        let rx = self
            .push_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(rx) = rx {
            tokio::spawn(self.clone().run_offline_push(rx));
        }
    }

    /// Liveness settings for a new session.
    pub fn heartbeat(&self) -> &Arc<HeartbeatConfig> {
        &self.heartbeat
    }

    /// A fresh session id on this node.
    pub fn next_session_id(&self) -> SessionId {
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
        SessionId::new(self.node, self.next_session.fetch_add(1, Ordering::Relaxed))
    }

    /// The router.
    pub fn router(&self) -> &Arc<dyn Router> {
        &self.router
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
            recall_window_ms: self.settings.recall_window_ms(),
        }
    }

    /// Waits until every store write made so far is durable (shares the committer's fsync).
    /// Operations that change accounts, tokens or conversations call it before answering, so an
    /// answer is never lost by a crash.
    pub(crate) async fn durable(&self) -> CoreResult<()> {
        self.committer.barrier().await.map_err(|e| match e {
            crate::commit::CommitError::Stopped => shutting_down(),
            // A full disk: retryable; a store that needs a restart says so.
            e => e.client_error(),
        })
    }

    /// Pushes newly durable messages to every online device of every member (and the sender's
    /// other devices). Runs until the committer stops.
    pub async fn run_fanout(self: Arc<Self>, mut rx: mpsc::Receiver<CommittedBatch>) {
        let cursors = Arc::new(SenderCursors::default());
        let writer = {
            let (cursors, store) = (cursors.clone(), self.store.clone());
            std::thread::Builder::new()
                .name("read-cursors".into())
                .spawn(move || cursors.run(&store))
        };
        while let Some(mut batch) = rx.recv().await {
            // The senders first: their acks do not wait for the pushes.
            batch.answer();
            self.stats
                .messages
                .fetch_add(batch.messages.len() as u64, Ordering::Relaxed);
            // Sending implies having read everything before: each sender's read cursor moves
            // to its newest entry (message or event), so its unread count stays 0 (one update
            // per batch).
            let mut read_upto: HashMap<(UserId, ConversationId), Seq> = HashMap::new();
            // Conversations with new entries the search index cares about (text, edits,
            // recalls): the indexer reads nothing for the rest.
            let mut searchable: HashMap<ConversationId, Seq> = HashMap::new();
            for (message, origin) in batch.messages {
                let at = read_upto
                    .entry((message.sender, message.conversation))
                    .or_default();
                *at = (*at).max(message.seq);
                if self.search.is_some() && crate::search::indexes(&message) {
                    let s = searchable.entry(message.conversation).or_default();
                    *s = (*s).max(message.seq);
                }
                self.fan_out(message, origin);
            }
            if let (Some(search), false) = (&self.search, searchable.is_empty()) {
                search.notify_many(searchable.drain());
            }
            cursors.advance(read_upto);
        }
        cursors.close();
        match writer {
            Ok(handle) => {
                let _ = tokio::task::spawn_blocking(move || handle.join()).await;
            }
            Err(e) => tracing::error!(error = %e, "could not start the read-cursor writer"),
        }
    }
}

/// How often the writer of senders' read cursors runs at most (a round every committed batch
/// cost 8-11 % of the server's CPU at 2,000-30,000 msgs/s, mostly in waking the thread).
const CURSOR_ROUND: std::time::Duration = std::time::Duration::from_millis(10);

/// Senders' read cursors waiting to be written. They are written by a thread of their own: a
/// store write waits while the committer applies a batch (sled serialises writers against its
/// atomic batches), and on a runtime worker that wait would stall every session it runs. The
/// map holds one entry per (sender, conversation) with the newest seq, so it is bounded by the
/// conversations in use and coalesces bursts into one write each; cursors only move forward.
/// A sender's own read cursor is therefore stored up to `CURSOR_ROUND` after its message.
#[derive(Debug, Default)]
struct SenderCursors {
    pending: std::sync::Mutex<PendingCursors>,
    wake: std::sync::Condvar,
}

#[derive(Debug, Default)]
struct PendingCursors {
    upto: HashMap<(UserId, ConversationId), Seq>,
    closed: bool,
    /// The writer is waiting for work (not between rounds): only then does `advance` wake it.
    idle: bool,
}

impl SenderCursors {
    fn lock(&self) -> std::sync::MutexGuard<'_, PendingCursors> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn advance(&self, upto: HashMap<(UserId, ConversationId), Seq>) {
        let mut pending = self.lock();
        for (key, seq) in upto {
            let at = pending.upto.entry(key).or_default();
            *at = (*at).max(seq);
        }
        let idle = pending.idle;
        drop(pending);
        if idle {
            self.wake.notify_one();
        }
    }

    /// Lets the writer finish what is pending and exit.
    fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    fn run(&self, store: &Store) {
        loop {
            let (work, closed) = {
                let mut pending = self.lock();
                pending.idle = true;
                while pending.upto.is_empty() && !pending.closed {
                    pending = self.wake.wait(pending).unwrap_or_else(|e| e.into_inner());
                }
                pending.idle = false;
                (std::mem::take(&mut pending.upto), pending.closed)
            };
            // A dedicated thread, not a runtime worker: tokio's clock only reads the time here.
            let next_round = tokio::time::Instant::now() + CURSOR_ROUND;
            for ((user, conv), seq) in work {
                if let Err(e) = store.advance_cursor(user, conv, CursorKind::Read, seq) {
                    tracing::warn!(error = %e, "could not advance the sender's read cursor");
                }
            }
            if closed {
                // `close` comes after the last `advance`, so nothing is left behind.
                if self.lock().upto.is_empty() {
                    return;
                }
                continue;
            }
            // One round per `CURSOR_ROUND` at most: what arrives meanwhile coalesces (one write
            // per sender and conversation) instead of waking this thread for every batch. Only
            // `close` ends the wait early.
            let mut pending = self.lock();
            while !pending.closed {
                let left = next_round.saturating_duration_since(tokio::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                pending = self
                    .wake
                    .wait_timeout(pending, left)
                    .map(|(guard, _)| guard)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
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

/// The answer to anything that needs the committer once it has stopped.
pub(crate) fn shutting_down() -> ErrorInfo {
    err(ErrorCode::ShuttingDown, "server shutting down")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_util::temp_store;

    #[test]
    fn sender_cursors_coalesce_and_are_all_written_before_the_writer_exits() {
        let (_dir, store) = temp_store();
        let cursors = SenderCursors::default();
        let user = UserId::try_from(7).unwrap();
        let (c1, c2) = (
            ConversationId::try_from(1).unwrap(),
            ConversationId::try_from(2).unwrap(),
        );
        cursors.advance(HashMap::from([((user, c1), Seq(3))]));
        cursors.advance(HashMap::from([((user, c1), Seq(9)), ((user, c2), Seq(4))]));
        // Older: never moves the cursor back.
        cursors.advance(HashMap::from([((user, c1), Seq(5))]));
        assert_eq!(cursors.lock().upto.len(), 2, "one entry per conversation");
        cursors.close();
        cursors.run(&store); // returns only once everything pending is written
        assert_eq!(store.cursors(user, c1).unwrap().read, Seq(9));
        assert_eq!(store.cursors(user, c2).unwrap().read, Seq(4));
    }

    #[test]
    fn a_running_writer_picks_up_cursors_advanced_while_it_waits_or_rests() {
        let (_dir, store) = temp_store();
        let cursors = Arc::new(SenderCursors::default());
        let writer = {
            let (cursors, store) = (cursors.clone(), store.clone());
            std::thread::spawn(move || cursors.run(&store))
        };
        let user = UserId::try_from(7).unwrap();
        let conv = ConversationId::try_from(1).unwrap();
        // Advances land while the writer waits for work and while it rests between rounds;
        // each must be written without another advance to wake it.
        for seq in 1..=6u64 {
            if seq % 2 == 1 {
                // Past the rest after the previous round: the writer is waiting for work.
                let mut tries = 0;
                while !cursors.lock().idle {
                    tries += 1;
                    assert!(tries < 2_000, "the writer never waited for work");
                    std::thread::park_timeout(std::time::Duration::from_millis(1));
                }
            }
            cursors.advance(HashMap::from([((user, conv), Seq(seq))]));
            let mut tries = 0;
            while store.cursors(user, conv).unwrap().read != Seq(seq) {
                tries += 1;
                assert!(tries < 2_000, "cursor {seq} never written");
                std::thread::park_timeout(std::time::Duration::from_millis(1));
            }
        }
        cursors.close();
        writer.join().unwrap();
    }
}
