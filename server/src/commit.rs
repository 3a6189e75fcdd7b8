//! Group commit: the one writer of every conversation's log (messages and conversation events).
//!
//! The request service queues entries on a bounded channel. A dedicated thread takes everything queued (up to
//! `commit_batch`), assigns seqs and ids, appends the batch to the message log with one write,
//! makes it durable with one fdatasync, and only then hands the batch's answers and new
//! messages to the fan-out task, which answers every sender first and then pushes the
//! messages. Being the only writer is what makes per-conversation seqs gapless without locks.
//!
//! A failed write or sync fails the batch it was for; what happens next depends on the class of
//! the failure ([`crate::store::StoreHealth`]): a full disk (or another failed write) refuses
//! every further batch at once with a retryable answer until the store's health thread finds
//! the disk writable again, then writes resume by themselves; a failed fsync or a failed sled
//! needs a restart, and says so. The check before each batch is one atomic load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parley_protocol::frames::{ErrorInfo, Message, SendAck};
use parley_protocol::ids::SessionId;
use parley_protocol::ErrorCode;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::clock::now_ms;
use crate::store::{classify, CommitItem, Committed, Degraded, IdReused, Stage, Store, StoreError};

/// How long a client is told to wait before retrying a write refused for a full disk: the
/// health thread probes the disk this often.
pub const DEGRADED_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Why a send was not committed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommitError {
    /// The client_msg_id was used before for another conversation.
    #[error(transparent)]
    IdReused(#[from] IdReused),
    /// The store failed; nothing of this batch is acknowledged.
    #[error("store failure")]
    Store,
    /// The store does not take writes now (a full disk, or a failure that needs a restart);
    /// nothing of this batch is stored.
    #[error("store degraded: {}", .0.class())]
    Degraded(Degraded),
    /// The committer has stopped (shutdown).
    #[error("committer stopped")]
    Stopped,
}

impl CommitError {
    /// What a client is told when its write failed in the store: a full disk is `RATE_LIMITED`
    /// with `retry_after_ms` (the client's action for it, wait and retry, is the right one, and
    /// every client already follows it); a store that needs a restart is `INTERNAL`, saying so.
    /// Other variants have answers of their own (`CONFLICT`, `SHUTTING_DOWN`).
    pub fn client_error(&self) -> ErrorInfo {
        match self {
            CommitError::Degraded(d) if !d.restart_required() => ErrorInfo::new(
                ErrorCode::RateLimited,
                "the server cannot store anything right now (its disk is full or failing); \
                 try again shortly",
            )
            .with_retry_after(DEGRADED_RETRY_AFTER),
            CommitError::Degraded(_) => ErrorInfo::new(
                ErrorCode::Internal,
                "the server's storage failed; it takes no writes until its operator restarts it",
            ),
            _ => ErrorInfo::new(ErrorCode::Internal, "internal error"),
        }
    }
}

/// Why [`Committer::try_submit`] did not queue an entry.
#[derive(Debug)]
pub enum SubmitError {
    /// The queue is full: the entry, to wait with.
    Full(Box<CommitRequest>),
    /// The committer has stopped.
    Stopped,
}

/// One queued entry.
#[derive(Debug)]
pub struct CommitRequest {
    /// What to store.
    pub item: CommitItem,
    /// Session that sent it (excluded from the push fan-out), if it came from one.
    pub origin_session: Option<SessionId>,
    /// Where the outcome goes (the ack itself: the message moves on to the fan-out).
    pub reply: oneshot::Sender<Result<SendAck, CommitError>>,
}

impl AsRef<CommitItem> for CommitRequest {
    fn as_ref(&self) -> &CommitItem {
        &self.item
    }
}

/// Where a sender's outcome goes, and the outcome.
pub type Answer = (
    oneshot::Sender<Result<SendAck, CommitError>>,
    Result<SendAck, CommitError>,
);

/// A durable batch's answers and new entries, for the fan-out task: it answers the senders
/// first, then pushes the entries. The committer (a thread outside the runtime) thus wakes one
/// task per batch, and the senders' sessions are woken from inside the runtime, where a wake
/// is a local schedule rather than a cross-thread unpark (docs/BENCHMARKS.md, fifth session).
#[derive(Debug)]
pub struct CommittedBatch {
    /// Each sender's answer (the ack or why not), in the batch's order.
    pub replies: Vec<Answer>,
    /// New entries with the session that sent each.
    pub messages: Vec<(Message, Option<SessionId>)>,
}

impl CommittedBatch {
    /// Sends every answer (idempotent: they are taken out).
    pub fn answer(&mut self) {
        for (to, reply) in self.replies.drain(..) {
            let _ = to.send(reply);
        }
    }
}

/// What the committer has done, for `/api/v1/stats`.
#[derive(Debug, Default)]
pub struct CommitStats {
    /// Batches committed (each one store write and one fsync).
    pub batches: AtomicU64,
    /// Sends in those batches.
    pub items: AtomicU64,
    /// Largest batch.
    pub batch_max: AtomicU64,
    /// Microseconds spent writing batches (seqs, ids, store apply).
    pub write_us: AtomicU64,
    /// Microseconds spent making them durable (log fdatasync, then the index update).
    pub sync_us: AtomicU64,
    /// Full syncs of the store (periodic snapshots, on their own thread, and barriers).
    pub full_syncs: AtomicU64,
    /// Microseconds spent in full syncs.
    pub full_sync_us: AtomicU64,
    /// Longest full sync, in microseconds.
    pub full_sync_us_max: AtomicU64,
    /// New messages committed (not events, not retries).
    pub messages: AtomicU64,
    /// New conversation events committed (not retries).
    pub events: AtomicU64,
}

/// The committer's histograms (`/metrics`), looked up once when its loop starts, in the recorder
/// its thread runs under (none: no-ops); one sample each per batch.
struct Histograms {
    batch_size: metrics::Histogram,
    fsync_seconds: metrics::Histogram,
}

impl Histograms {
    fn new() -> Histograms {
        use parley_admin_http::ops::metrics::{COMMIT_BATCH_SIZE, COMMIT_FSYNC_SECONDS};
        Histograms {
            batch_size: metrics::histogram!(COMMIT_BATCH_SIZE),
            fsync_seconds: metrics::histogram!(COMMIT_FSYNC_SECONDS),
        }
    }
}

impl CommitStats {
    fn full_sync(&self, store: &Store) -> Result<(), StoreError> {
        let started = Instant::now();
        let synced = store.sync();
        let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.full_syncs.fetch_add(1, Ordering::Relaxed);
        self.full_sync_us.fetch_add(us, Ordering::Relaxed);
        self.full_sync_us_max.fetch_max(us, Ordering::Relaxed);
        synced
    }
}

enum Msg {
    Commit(CommitRequest),
    /// Answer once every store write made before this message is durable.
    Barrier(oneshot::Sender<Result<(), CommitError>>),
    /// Commit what is queued before this, then exit.
    Stop,
}

/// Handle to queue sends.
#[derive(Clone, Debug)]
pub struct Committer {
    tx: mpsc::Sender<Msg>,
    stats: Arc<CommitStats>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Msg::Commit(_) => "Commit",
            Msg::Barrier(_) => "Barrier",
            Msg::Stop => "Stop",
        })
    }
}

impl Committer {
    /// The committer's handle and its loop, for the caller to run on a thread of its choice
    /// (the server gives it one of its own, `committer`; see `Core::assemble`). The loop stops on
    /// [`Committer::stop`] (or when every handle is dropped), after committing what was queued.
    pub fn new(
        store: Store,
        queue: usize,
        max_batch: usize,
        fanout: mpsc::Sender<CommittedBatch>,
    ) -> (Committer, impl FnOnce() + Send + 'static) {
        let (tx, rx) = mpsc::channel(queue);
        let stats = Arc::new(CommitStats::default());
        let thread_stats = stats.clone();
        let work = move || {
            // Under the recorder the caller runs this in (the committer's thread).
            store.health().register_metrics();
            let snapshots = Snapshots::spawn(store.clone(), thread_stats.clone());
            let watch = HealthWatch::spawn(store.clone());
            run(store, rx, max_batch, fanout, &thread_stats, &snapshots);
            snapshots.stop();
            watch.stop();
        };
        (Committer { tx, stats }, work)
    }

    /// Counters of the work done so far.
    pub fn stats(&self) -> &CommitStats {
        &self.stats
    }

    /// Queues an entry if there is room now; gives it back if the queue is full (then wait
    /// with [`Committer::submit`]). Not a future: the request path of every send stays small.
    pub fn try_submit(&self, request: CommitRequest) -> Result<(), SubmitError> {
        match self.tx.try_send(Msg::Commit(request)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(Msg::Commit(request))) => {
                Err(SubmitError::Full(Box::new(request)))
            }
            Err(_) => Err(SubmitError::Stopped),
        }
    }

    /// Queues an entry; waits only if the queue is full (backpressure on that session).
    pub async fn submit(&self, request: CommitRequest) -> Result<(), CommitError> {
        self.tx
            .send(Msg::Commit(request))
            .await
            .map_err(|_| CommitError::Stopped)
    }

    /// Resolves once every store write made before the call is durable. Writes outside the
    /// message log (accounts, tokens, conversations, membership) use this to share the
    /// committer's fsync instead of syncing on their own.
    pub async fn barrier(&self) -> Result<(), CommitError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Msg::Barrier(tx))
            .await
            .map_err(|_| CommitError::Stopped)?;
        rx.await.unwrap_or(Err(CommitError::Stopped))
    }

    /// Asks the thread to exit once everything queued so far is committed.
    pub async fn stop(&self) {
        let _ = self.tx.send(Msg::Stop).await;
    }
}

/// The periodic snapshot ([`Store::sync`]: sled's flush and fdatasync, then the snapshot
/// entries) runs on a thread of its own, so the committer keeps committing meanwhile.
struct Snapshots {
    tx: Option<std::sync::mpsc::SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Snapshots {
    fn spawn(store: Store, stats: Arc<CommitStats>) -> Snapshots {
        // One request waiting at most: requests while one runs fold into it.
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("snapshots".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    if let Err(e) = stats.full_sync(&store) {
                        // The committer refuses every batch from now on (its state check).
                        sync_failed(&store, &e, "snapshot");
                        return;
                    }
                }
            });
        let (tx, thread) = match thread {
            Ok(t) => (Some(tx), Some(t)),
            Err(e) => {
                // Without the thread, snapshots are taken on the committer's (see `request`).
                tracing::warn!(error = %e, "no snapshot thread; the committer takes them");
                (None, None)
            }
        };
        Snapshots { tx, thread }
    }

    /// Asks for a snapshot (a no-op if one is already waiting). A failure degrades the store.
    fn request(&self, store: &Store, stats: &CommitStats) {
        match &self.tx {
            Some(tx) => {
                let _ = tx.try_send(());
            }
            None => {
                if let Err(e) = stats.full_sync(store) {
                    sync_failed(store, &e, "snapshot");
                }
            }
        }
    }

    fn stop(mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A failure of [`Store::sync`] (`what`: a snapshot, a barrier's sync): after it, nothing more
/// may be acknowledged until a restart ([`classify`]: a failed fsync, or sled refusing writes).
fn sync_failed(store: &Store, e: &StoreError, what: &str) {
    let class = classify(e, Stage::Sync).unwrap_or(Degraded::EngineFailed);
    tracing::error!(error = %e, class = class.class(), "{what} failed");
    store.health().fail(class, e);
}

/// The store's health thread: it writes the space reserve at start, then every
/// [`DEGRADED_RETRY_AFTER`] checks whether sled has recorded an I/O error of its own (sled
/// then refuses every write: a restart is needed), whether free space fell below the low-water
/// mark ([`crate::store::StoreHealth::check_space`]) and, while the store is degraded by a full
/// disk or a failed write, probes the data directory ([`crate::store::StoreHealth::probe`]).
/// Once the probe succeeds it cuts whatever a failed batch left
/// ([`Store::settle_failed_write`]), makes every write so far durable ([`Store::sync`]), and
/// lets writes resume.
struct HealthWatch {
    tx: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HealthWatch {
    fn spawn(store: Store) -> HealthWatch {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("store-health".into())
            .spawn(move || {
                if let Err(e) = store.health().keep_reserve() {
                    tracing::warn!(error = %e, "could not write the data directory's space reserve");
                }
                // Only a disconnect (the committer stopping) ends the wait early.
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    rx.recv_timeout(DEGRADED_RETRY_AFTER)
                {
                    watch_once(&store);
                }
            });
        match thread {
            Ok(t) => HealthWatch {
                tx: Some(tx),
                thread: Some(t),
            },
            Err(e) => {
                tracing::error!(
                    error = %e,
                    "no store-health thread: a full disk will need a restart to recover from"
                );
                HealthWatch {
                    tx: None,
                    thread: None,
                }
            }
        }
    }

    fn stop(mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn watch_once(store: &Store) {
    let health = store.health();
    if let Some(e) = store.engine_error() {
        health.fail(Degraded::EngineFailed, &e);
        return;
    }
    match health.state() {
        None => return health.check_space(),
        Some(d) if !d.restart_required() => {}
        Some(_) => return,
    }
    if let Err(e) = health.probe() {
        // Still full: say nothing more (the state change was logged once).
        tracing::debug!(error = %e, "store probe: still unwritable");
        return;
    }
    if let Err(e) = store.settle_failed_write() {
        tracing::debug!(error = %e, "store probe: the failed batch could not be cut yet");
        return;
    }
    match store.sync() {
        Ok(()) => {
            health.recover();
        }
        Err(e) => sync_failed(store, &e, "the sync after a full disk"),
    }
}

fn run(
    store: Store,
    mut rx: mpsc::Receiver<Msg>,
    max_batch: usize,
    fanout: mpsc::Sender<CommittedBatch>,
    stats: &CommitStats,
    snapshots: &Snapshots,
) {
    let mut batch: Vec<CommitRequest> = Vec::with_capacity(max_batch);
    let mut barriers: Vec<oneshot::Sender<Result<(), CommitError>>> = Vec::new();
    let mut stopping = false;
    let histograms = Histograms::new();
    let health = store.health();
    while !stopping {
        match rx.blocking_recv() {
            Some(Msg::Commit(first)) => batch.push(first),
            Some(Msg::Barrier(b)) => barriers.push(b),
            Some(Msg::Stop) | None => break,
        }
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(Msg::Commit(r)) => batch.push(r),
                Ok(Msg::Barrier(b)) => barriers.push(b),
                Ok(Msg::Stop) => {
                    stopping = true;
                    break;
                }
                Err(_) => break,
            }
        }
        if let Some(state) = health.state() {
            // Full disk: refused at once, retryable, until the health thread finds space. After
            // a failed fsync the state of the file is unknown: acknowledge nothing more. A
            // barrier is refused too (its sync would write sled, which a full disk poisons).
            refuse(&mut batch, &mut barriers, CommitError::Degraded(state));
            continue;
        }
        match commit(&store, &batch, stats, &histograms) {
            Ok(outcomes) => {
                // Barriers wait for everything written before them, not only messages: a full
                // sync (an empty batch of barriers syncs too). The batch's messages are durable
                // whatever happens here.
                if !barriers.is_empty() {
                    let synced = stats.full_sync(&store).map_err(|e| {
                        sync_failed(&store, &e, "a barrier's sync");
                        health
                            .state()
                            .map_or(CommitError::Store, CommitError::Degraded)
                    });
                    for b in barriers.drain(..) {
                        let _ = b.send(synced.clone());
                    }
                }
                let mut fresh = Vec::with_capacity(outcomes.len());
                let mut replies = Vec::with_capacity(outcomes.len());
                let mut events = 0u64;
                for (req, outcome) in batch.drain(..).zip(outcomes) {
                    let reply = match outcome {
                        Ok(c) => {
                            let ack = SendAck {
                                message_id: c.message.id,
                                conversation: c.message.conversation,
                                seq: c.message.seq,
                                server_time_ms: c.message.server_time_ms,
                                duplicate: c.duplicate,
                            };
                            if !c.duplicate {
                                events += u64::from(c.message.event.is_some());
                                fresh.push((c.message, req.origin_session));
                            }
                            Ok(ack)
                        }
                        Err(e) => Err(CommitError::from(e)),
                    };
                    replies.push((req.reply, reply));
                }
                let messages = fresh.len() as u64 - events;
                stats.messages.fetch_add(messages, Ordering::Relaxed);
                stats.events.fetch_add(events, Ordering::Relaxed);
                let done = CommittedBatch {
                    replies,
                    messages: fresh,
                };
                if let Err(mpsc::error::SendError(mut done)) = fanout.blocking_send(done) {
                    // No fan-out task (shutdown): answer here; the entries are durable, and
                    // their receivers catch up by sync.
                    done.answer();
                    tracing::debug!("fan-out stopped; pushes skipped (clients catch up by sync)");
                }
                // The periodic snapshot runs beside the committer: on no ack's path.
                if health.state().is_none() && store.snapshot_due() {
                    snapshots.request(&store, stats);
                }
            }
            Err((e, stage)) => {
                // The batch fails whatever the class: nothing of it was acknowledged.
                let why = match classify(&e, stage) {
                    Some(class) => CommitError::Degraded(health.fail(class, &e)),
                    None => {
                        // Nothing was written (e.g. a damaged record met while checking a
                        // retry): this batch fails, the next one is tried as usual.
                        tracing::error!(error = %e, "commit failed; this batch is refused");
                        CommitError::Store
                    }
                };
                refuse(&mut batch, &mut barriers, why);
            }
        }
    }
    tracing::debug!("committer stopped");
}

/// Answers every entry and barrier of a batch that was not committed with `why`.
fn refuse(
    batch: &mut Vec<CommitRequest>,
    barriers: &mut Vec<oneshot::Sender<Result<(), CommitError>>>,
    why: CommitError,
) {
    for r in batch.drain(..) {
        let _ = r.reply.send(Err(why.clone()));
    }
    for b in barriers.drain(..) {
        let _ = b.send(Err(why.clone()));
    }
}

/// Writes and syncs one batch; a failure comes with the stage it happened in, which decides
/// its class ([`classify`]).
fn commit(
    store: &Store,
    batch: &[CommitRequest],
    stats: &CommitStats,
    histograms: &Histograms,
) -> Result<Vec<Result<Committed, IdReused>>, (StoreError, Stage)> {
    let started = Instant::now();
    let (outcomes, pending) = store
        .commit_batch(batch, now_ms())
        .map_err(|e| (e, Stage::Write))?;
    let written = Instant::now();
    store.make_durable(pending).map_err(|e| (e, Stage::Sync))?;
    let synced = Instant::now();
    let micros = |d: std::time::Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    stats.batches.fetch_add(1, Ordering::Relaxed);
    stats.items.fetch_add(batch.len() as u64, Ordering::Relaxed);
    stats
        .batch_max
        .fetch_max(batch.len() as u64, Ordering::Relaxed);
    stats
        .write_us
        .fetch_add(micros(written - started), Ordering::Relaxed);
    stats
        .sync_us
        .fetch_add(micros(synced - written), Ordering::Relaxed);
    if !batch.is_empty() {
        histograms.batch_size.record(batch.len() as f64);
        histograms
            .fsync_seconds
            .record((synced - written).as_secs_f64());
    }
    Ok(outcomes)
}
