//! Group commit: the one writer of every conversation's log (messages and conversation events).
//!
//! The request service queues entries on a bounded channel. A dedicated thread takes everything queued (up to
//! `commit_batch`), assigns seqs and ids, appends the batch to the message log with one write,
//! makes it durable with one fdatasync, and only then answers every sender and hands the new
//! messages to the fan-out. Being the only writer is what makes per-conversation seqs gapless
//! without locks.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parley_protocol::frames::{Message, SendAck};
use parley_protocol::ids::SessionId;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::clock::now_ms;
use crate::store::{CommitItem, Committed, IdReused, Store, StoreError};

/// Why a send was not committed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommitError {
    /// The client_msg_id was used before for another conversation.
    #[error(transparent)]
    IdReused(#[from] IdReused),
    /// The store failed; nothing of this batch is acknowledged.
    #[error("store failure")]
    Store,
    /// The committer has stopped (shutdown).
    #[error("committer stopped")]
    Stopped,
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

/// Newly durable entries, for the fan-out.
#[derive(Debug)]
pub struct CommittedBatch {
    /// Entries with the session that sent each.
    pub messages: Vec<(Message, Option<SessionId>)>,
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
    /// Answer (true) once every store write made before this message is durable.
    Barrier(oneshot::Sender<bool>),
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
            let snapshots = Snapshots::spawn(store.clone(), thread_stats.clone());
            run(store, rx, max_batch, fanout, &thread_stats, &snapshots);
            snapshots.stop();
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
        match rx.await {
            Ok(true) => Ok(()),
            Ok(false) => Err(CommitError::Store),
            Err(_) => Err(CommitError::Stopped),
        }
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
    failed: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Snapshots {
    fn spawn(store: Store, stats: Arc<CommitStats>) -> Snapshots {
        // One request waiting at most: requests while one runs fold into it.
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let failed = Arc::new(AtomicBool::new(false));
        let flag = failed.clone();
        let thread = std::thread::Builder::new()
            .name("snapshots".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    if let Err(e) = stats.full_sync(&store) {
                        tracing::error!(error = %e, "snapshot failed; refusing further sends");
                        flag.store(true, Ordering::SeqCst);
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
        Snapshots { tx, failed, thread }
    }

    /// Asks for a snapshot (a no-op if one is already waiting). False if one has failed.
    fn request(&self, store: &Store, stats: &CommitStats) -> bool {
        if self.failed.load(Ordering::SeqCst) {
            return false;
        }
        match &self.tx {
            Some(tx) => {
                let _ = tx.try_send(());
                true
            }
            None => stats.full_sync(store).is_ok(),
        }
    }

    fn stop(mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
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
    let mut failed = false;
    let mut batch: Vec<CommitRequest> = Vec::with_capacity(max_batch);
    let mut barriers: Vec<oneshot::Sender<bool>> = Vec::new();
    let mut stopping = false;
    let histograms = Histograms::new();
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
        if !failed && snapshots.failed.load(Ordering::SeqCst) {
            failed = true;
        }
        if failed {
            // After a failed fsync the state of the file is unknown: acknowledge nothing more.
            for r in batch.drain(..) {
                let _ = r.reply.send(Err(CommitError::Store));
            }
            for b in barriers.drain(..) {
                let _ = b.send(false);
            }
            continue;
        }
        match commit(&store, &batch, stats, &histograms) {
            Ok(outcomes) => {
                // Barriers wait for everything written before them, not only messages: a full
                // sync (an empty batch of barriers syncs too). The batch's messages are durable
                // whatever happens here.
                if !barriers.is_empty() {
                    let synced = stats.full_sync(&store);
                    if let Err(e) = &synced {
                        tracing::error!(error = %e, "sync failed; refusing further writes");
                        failed = true;
                    }
                    for b in barriers.drain(..) {
                        let _ = b.send(synced.is_ok());
                    }
                }
                let mut fresh = Vec::with_capacity(outcomes.len());
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
                    let _ = req.reply.send(reply);
                }
                let messages = fresh.len() as u64 - events;
                stats.messages.fetch_add(messages, Ordering::Relaxed);
                stats.events.fetch_add(events, Ordering::Relaxed);
                if !fresh.is_empty()
                    && fanout
                        .blocking_send(CommittedBatch { messages: fresh })
                        .is_err()
                {
                    tracing::debug!("fan-out stopped; pushes skipped (clients catch up by sync)");
                }
                // The periodic snapshot runs beside the committer: on no ack's path.
                if !failed && store.snapshot_due() && !snapshots.request(&store, stats) {
                    failed = true;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "commit failed; refusing further sends");
                failed = true;
                for r in batch.drain(..) {
                    let _ = r.reply.send(Err(CommitError::Store));
                }
                for b in barriers.drain(..) {
                    let _ = b.send(false);
                }
            }
        }
    }
    tracing::debug!("committer stopped");
}

fn commit(
    store: &Store,
    batch: &[CommitRequest],
    stats: &CommitStats,
    histograms: &Histograms,
) -> Result<Vec<Result<Committed, IdReused>>, StoreError> {
    let started = Instant::now();
    let (outcomes, pending) = store.commit_batch(batch, now_ms())?;
    let written = Instant::now();
    store.make_durable(pending)?;
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
