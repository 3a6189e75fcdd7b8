//! Whether the store can take writes, and why not (docs/durability.md, "Full disk and failed
//! fsync").
//!
//! Failures are sorted into four classes, because each calls for a different answer:
//!
//! - **`out_of_space`**: the disk is (nearly) full. Either the health thread found less than
//!   [`LOW_WATER`] bytes free (it looks every second), or a write to the message log failed
//!   with `ENOSPC`/`EDQUOT`: that batch fails and its bytes are cut (nothing of it counts: its
//!   seqs and ids were never published). Every further write is refused at once with a
//!   retryable answer, and the **reserve** (a [`RESERVE_BYTES`] file the server keeps in the
//!   data directory) is deleted, so sled can still write out what it holds: sled, unlike the
//!   log, cannot survive meeting a full disk (below). Every second the health thread probes:
//!   once [`RESERVE_BYTES`] + [`LOW_WATER`] are free it writes the reserve back and fdatasyncs
//!   it; when that works, the store makes everything durable once more and resumes by itself.
//! - **`write_failed`**: another error on a write (`EIO`, ...): handled as above, and resumes
//!   once the probe's write and fdatasync succeed.
//! - **`sync_failed`**: an `fsync`/`fdatasync` failed. The kernel may have dropped the dirty
//!   pages it could not write, so data the server believes written may be gone: retrying the
//!   sync could succeed and lie. No further writes are accepted until a restart, which re-reads
//!   the log (every acknowledged message was synced before its ack).
//! - **`engine_failed`**: sled (accounts, conversations, the index) hit an I/O error. sled 0.34
//!   records the first I/O error of its writer threads as a global error and refuses every
//!   later write with it until the database is opened again (`Config::set_global_error`, reset
//!   only in `PageCache::start`), so this too needs a restart.
//!
//! The state is one atomic: the committer checks it before each batch (one load), nothing on
//! the hot path takes a lock. A change of state logs one line naming the class and what to do,
//! sets the gauge `parley_store_degraded{class}` and tells the listener (`/ready`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};

use super::StoreError;

/// Why the store does not take writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Degraded {
    /// The disk is full; resumes by itself once space is back.
    OutOfSpace,
    /// A write failed otherwise; resumes by itself once writes work again.
    WriteFailed,
    /// An fsync failed: restart required.
    SyncFailed,
    /// sled failed on an I/O error: restart required.
    EngineFailed,
}

impl Degraded {
    /// Every class, in the order of their codes.
    pub const ALL: [Degraded; 4] = [
        Degraded::OutOfSpace,
        Degraded::WriteFailed,
        Degraded::SyncFailed,
        Degraded::EngineFailed,
    ];

    /// The metric label and log field.
    pub fn class(self) -> &'static str {
        match self {
            Degraded::OutOfSpace => "out_of_space",
            Degraded::WriteFailed => "write_failed",
            Degraded::SyncFailed => "sync_failed",
            Degraded::EngineFailed => "engine_failed",
        }
    }

    /// True if only a restart brings the store back.
    pub fn restart_required(self) -> bool {
        matches!(self, Degraded::SyncFailed | Degraded::EngineFailed)
    }

    fn code(self) -> u8 {
        match self {
            Degraded::OutOfSpace => 1,
            Degraded::WriteFailed => 2,
            Degraded::SyncFailed => 3,
            Degraded::EngineFailed => 4,
        }
    }

    fn from_code(code: u8) -> Option<Degraded> {
        Degraded::ALL.into_iter().find(|d| d.code() == code)
    }

    /// What an operator reads: what happened and what to do.
    pub fn explain(self) -> &'static str {
        match self {
            Degraded::OutOfSpace => {
                "the disk holding the data directory is full: writes are refused (clients are \
                 told to retry) until space is freed; nothing acknowledged is lost, and the \
                 server resumes by itself once a probe write succeeds"
            }
            Degraded::WriteFailed => {
                "a write to the message log failed: writes are refused (clients are told to \
                 retry) until a probe write and fdatasync in the data directory succeed; \
                 nothing acknowledged is lost"
            }
            Degraded::SyncFailed => {
                "an fsync of the store failed, so the kernel may have dropped data the server \
                 had written: no further writes are accepted. Restart the server (after fixing \
                 the disk); the restart recovers every acknowledged message from the log"
            }
            Degraded::EngineFailed => {
                "the account and conversation store (sled) failed on an I/O error and refuses \
                 every write until it is reopened: restart the server (after freeing space if \
                 the disk is full); everything acknowledged is recovered at the restart"
            }
        }
    }
}

/// Where a failure happened, which decides its class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Writing a batch to the message log (before its fdatasync).
    Write,
    /// Making writes durable (fdatasync, sled's flush, the index after a sync).
    Sync,
}

/// The class of `e` met at `stage`, or `None` if the store can go on as it was (a failure
/// that wrote nothing, such as a damaged record found while checking a retry).
pub(crate) fn classify(e: &StoreError, stage: Stage) -> Option<Degraded> {
    match (e, stage) {
        (StoreError::Engine(sled::Error::Io(_)), _) => Some(Degraded::EngineFailed),
        (StoreError::Io(io), Stage::Write) if is_out_of_space(io) => Some(Degraded::OutOfSpace),
        (StoreError::Io(_), Stage::Write) => Some(Degraded::WriteFailed),
        (StoreError::Io(_), Stage::Sync) => Some(Degraded::SyncFailed),
        // After a successful sync, a failure leaves the batch durable but unpublished: the
        // state in memory no longer follows the log, so only a restart (which replays it) is
        // safe.
        (_, Stage::Sync) => Some(Degraded::EngineFailed),
        (_, Stage::Write) => None,
    }
}

/// True for "no space left on device" and "disk quota exceeded".
pub fn is_out_of_space(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// A listener of state changes (the server's readiness).
type Listener = Box<dyn Fn(Option<Degraded>) + Send + Sync>;

/// The store's health: see the module docs.
pub struct StoreHealth {
    state: AtomicU8,
    /// The error that put the store in its state, for the log and the shutdown message.
    cause: Mutex<String>,
    gauges: OnceLock<Vec<metrics::Gauge>>,
    listener: OnceLock<Listener>,
    /// Held while the listener is told, so it always ends with the newest state.
    notify: Mutex<()>,
    data_dir: PathBuf,
}

impl std::fmt::Debug for StoreHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHealth")
            .field("state", &self.state())
            .finish()
    }
}

/// Size of the reserve file, given back to the filesystem when the disk fills, so sled's own
/// writes (accounts, cursors, the index) still find room while writes are refused.
pub const RESERVE_BYTES: u64 = 4 << 20;
/// Below this many free bytes (besides the reserve) the store stops taking writes before a
/// write fails: more than the log needs to grow a segment at once (1 MiB).
pub const LOW_WATER: u64 = 4 << 20;
/// The reserve, in the data directory.
const RESERVE_FILE: &str = ".space-reserve";

impl StoreHealth {
    pub(super) fn new(data_dir: PathBuf) -> StoreHealth {
        StoreHealth {
            state: AtomicU8::new(0),
            cause: Mutex::new(String::new()),
            gauges: OnceLock::new(),
            listener: OnceLock::new(),
            notify: Mutex::new(()),
            data_dir,
        }
    }

    /// `None` while the store takes writes; otherwise why not. One atomic load.
    pub fn state(&self) -> Option<Degraded> {
        Degraded::from_code(self.state.load(Ordering::Acquire))
    }

    /// The error that degraded the store (empty while healthy).
    pub fn cause(&self) -> String {
        self.cause.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Calls `listener` with the current state now and after every change (at most one
    /// listener; a second is ignored).
    pub fn on_change(&self, listener: impl Fn(Option<Degraded>) + Send + Sync + 'static) {
        let _ = self.listener.set(Box::new(listener));
        self.tell();
    }

    /// Registers the `parley_store_degraded{class}` gauges in the metrics recorder of the
    /// calling thread (once; the committer's, see `commit.rs`) and sets them.
    pub fn register_metrics(&self) {
        use parley_admin_http::ops::metrics::STORE_DEGRADED;
        let gauges = self.gauges.get_or_init(|| {
            Degraded::ALL
                .iter()
                .map(|d| metrics::gauge!(STORE_DEGRADED, "class" => d.class()))
                .collect()
        });
        let now = self.state();
        for (d, g) in Degraded::ALL.iter().zip(gauges) {
            g.set(f64::from(u8::from(now == Some(*d))));
        }
    }

    /// Records a failure of class `class` caused by `cause`; returns the state after it. A
    /// store that needs a restart stays in the first such state (its cause is the real one).
    pub(crate) fn fail(&self, class: Degraded, cause: &dyn std::fmt::Display) -> Degraded {
        let mut current = self.state.load(Ordering::Acquire);
        loop {
            if let Some(now) = Degraded::from_code(current) {
                if now == class || now.restart_required() {
                    return now;
                }
            }
            match self.state.compare_exchange(
                current,
                class.code(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        *self.cause.lock().unwrap_or_else(|e| e.into_inner()) = cause.to_string();
        if class == Degraded::OutOfSpace {
            // Room for sled to write out what it holds; written back once space is back.
            match std::fs::remove_file(self.data_dir.join(RESERVE_FILE)) {
                Ok(()) => tracing::info!(
                    bytes = RESERVE_BYTES,
                    "released the data directory's space reserve"
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(error = %e, "could not release the space reserve"),
            }
        }
        tracing::error!(
            class = class.class(),
            error = %cause,
            restart_required = class.restart_required(),
            "store degraded: {}",
            class.explain()
        );
        self.tell();
        class
    }

    /// Back to taking writes after a recoverable state; false if the state needs a restart
    /// (or was healthy).
    pub(crate) fn recover(&self) -> bool {
        let current = self.state.load(Ordering::Acquire);
        match Degraded::from_code(current) {
            Some(d) if !d.restart_required() => {
                if self
                    .state
                    .compare_exchange(current, 0, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
                    return false;
                }
                tracing::info!(
                    class = d.class(),
                    "store recovered: writes work again, sends and other writes are accepted"
                );
                self.cause.lock().unwrap_or_else(|e| e.into_inner()).clear();
                self.tell();
                true
            }
            _ => false,
        }
    }

    /// Free bytes on the data directory's filesystem (for an unprivileged user).
    fn available(&self) -> std::io::Result<u64> {
        fs2::available_space(&self.data_dir)
    }

    /// While healthy: degrades the store (`out_of_space`) once less than [`LOW_WATER`] bytes
    /// are free, before a write meets a full disk. Run every second by the health thread.
    pub(crate) fn check_space(&self) {
        if let Ok(free) = self.available() {
            if free < LOW_WATER && self.state().is_none() {
                self.fail(
                    Degraded::OutOfSpace,
                    &format_args!("{free} bytes free, below the low-water mark of {LOW_WATER}"),
                );
            }
        }
    }

    /// Whether the reserve file is there and whole: at least [`RESERVE_BYTES`] long, and as
    /// many bytes allocated (a file cut short, or one whose size reached the disk but whose
    /// blocks did not before a crash, holds less room than it should).
    fn reserve_whole(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(self.data_dir.join(RESERVE_FILE))
            .is_ok_and(|m| m.len() >= RESERVE_BYTES && m.blocks() * 512 >= RESERVE_BYTES)
    }

    /// Makes sure the reserve file is there, whole and synced (at start, and by the probe).
    /// Only a missing or short reserve is written (and fdatasynced): a start with the reserve
    /// in place reads its metadata and writes nothing.
    pub(crate) fn keep_reserve(&self) -> std::io::Result<()> {
        use std::io::Write;
        if self.reserve_whole() {
            return Ok(());
        }
        let path = self.data_dir.join(RESERVE_FILE);
        let written = (|| {
            let mut f = std::fs::File::create(&path)?;
            let zeros = vec![0u8; 64 << 10];
            let mut left = RESERVE_BYTES;
            while left > 0 {
                let n = left.min(zeros.len() as u64);
                // Bounded by the buffer's length above.
                f.write_all(&zeros[..n as usize])?;
                left -= n;
            }
            f.sync_data()
        })();
        if written.is_err() {
            // A partial reserve would only take room sled may need.
            let _ = std::fs::remove_file(&path);
        }
        written
    }

    /// While degraded by a full disk or a failed write: true once [`RESERVE_BYTES`] +
    /// [`LOW_WATER`] are free and the reserve could be written back and fdatasynced (the probe
    /// write: a disk that takes it takes the log's writes again).
    pub(crate) fn probe(&self) -> std::io::Result<()> {
        let free = self.available()?;
        let to_write = if self.reserve_whole() {
            0
        } else {
            RESERVE_BYTES
        };
        let needed = LOW_WATER + to_write;
        if free < needed {
            return Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!("{free} bytes free, {needed} needed"),
            ));
        }
        self.keep_reserve()
    }

    fn tell(&self) {
        let _one_at_a_time = self.notify.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.state();
        if let Some(gauges) = self.gauges.get() {
            for (d, g) in Degraded::ALL.iter().zip(gauges) {
                g.set(f64::from(u8::from(now == Some(*d))));
            }
        }
        if let Some(listener) = self.listener.get() {
            listener(now);
        }
    }

    /// What to say when the server stops while degraded (`None` while healthy).
    pub fn shutdown_report(&self) -> Option<String> {
        let d = self.state()?;
        Some(format!(
            "the store was degraded ({}: {}): {}",
            d.class(),
            self.cause(),
            d.explain()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enospc() -> StoreError {
        StoreError::Io(std::io::Error::from_raw_os_error(28))
    }

    #[test]
    fn failures_are_classified_by_errno_and_stage() {
        assert_eq!(
            classify(&enospc(), Stage::Write),
            Some(Degraded::OutOfSpace)
        );
        let edquot = StoreError::Io(std::io::Error::from_raw_os_error(122));
        assert_eq!(classify(&edquot, Stage::Write), Some(Degraded::OutOfSpace));
        let eio = StoreError::Io(std::io::Error::from_raw_os_error(5));
        assert_eq!(classify(&eio, Stage::Write), Some(Degraded::WriteFailed));
        // An fsync that failed is never retried, whatever its errno.
        assert_eq!(classify(&enospc(), Stage::Sync), Some(Degraded::SyncFailed));
        let sled_full = StoreError::Engine(sled::Error::Io(std::io::Error::from_raw_os_error(28)));
        assert_eq!(
            classify(&sled_full, Stage::Write),
            Some(Degraded::EngineFailed)
        );
        let corrupt = StoreError::Corrupt {
            tree: "log",
            detail: "x".into(),
        };
        assert_eq!(classify(&corrupt, Stage::Write), None);
        assert_eq!(
            classify(&corrupt, Stage::Sync),
            Some(Degraded::EngineFailed)
        );
    }

    #[test]
    fn only_a_missing_or_short_reserve_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RESERVE_FILE);
        let h = StoreHealth::new(dir.path().to_owned());
        let written = |len: u64| {
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(bytes.len() as u64, len);
            bytes.iter().all(|&b| b == 0)
        };
        // Missing: written whole, as zeros.
        h.keep_reserve().unwrap();
        assert!(written(RESERVE_BYTES));
        // Whole (here marked by its content): left alone, as at a normal start.
        std::fs::write(&path, vec![0xa5; RESERVE_BYTES as usize]).unwrap();
        h.keep_reserve().unwrap();
        assert!(
            !written(RESERVE_BYTES),
            "a whole reserve is not written again"
        );
        // Short: written whole again.
        std::fs::write(&path, vec![0xa5; 1000]).unwrap();
        h.keep_reserve().unwrap();
        assert!(written(RESERVE_BYTES));
        // The right length but no blocks behind it (sparse): written again too.
        std::fs::File::create(&path)
            .unwrap()
            .set_len(RESERVE_BYTES)
            .unwrap();
        h.keep_reserve().unwrap();
        assert!(h.reserve_whole());
    }

    #[test]
    fn recoverable_states_recover_and_restart_states_stick() {
        let dir = tempfile::tempdir().unwrap();
        let h = StoreHealth::new(dir.path().to_owned());
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        h.on_change(move |s| log.lock().unwrap().push(s));
        assert_eq!(h.fail(Degraded::OutOfSpace, &"full"), Degraded::OutOfSpace);
        // The same class again changes nothing (and tells nobody).
        assert_eq!(h.fail(Degraded::OutOfSpace, &"full"), Degraded::OutOfSpace);
        h.probe().unwrap();
        assert_eq!(
            std::fs::metadata(dir.path().join(RESERVE_FILE))
                .unwrap()
                .len(),
            RESERVE_BYTES
        );
        assert!(h.recover());
        assert!(!h.recover());
        assert_eq!(h.state(), None);
        // Out of space gives the reserve back.
        assert_eq!(h.fail(Degraded::WriteFailed, &"eio"), Degraded::WriteFailed);
        assert!(dir.path().join(RESERVE_FILE).exists());
        assert_eq!(h.fail(Degraded::OutOfSpace, &"full"), Degraded::OutOfSpace);
        assert!(!dir.path().join(RESERVE_FILE).exists());
        assert!(h.recover());
        assert_eq!(h.fail(Degraded::SyncFailed, &"eio"), Degraded::SyncFailed);
        // The first cause that needs a restart stays.
        assert_eq!(h.fail(Degraded::EngineFailed, &"x"), Degraded::SyncFailed);
        assert_eq!(h.fail(Degraded::OutOfSpace, &"x"), Degraded::SyncFailed);
        assert!(!h.recover());
        assert_eq!(h.cause(), "eio");
        assert!(h.shutdown_report().unwrap().contains("sync_failed"));
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                None,
                Some(Degraded::OutOfSpace),
                None,
                Some(Degraded::WriteFailed),
                Some(Degraded::OutOfSpace),
                None,
                Some(Degraded::SyncFailed)
            ]
        );
    }
}
