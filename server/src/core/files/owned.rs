//! A user's own files: listing them (`ListFiles`) and deleting one (`DeleteFile`).
//!
//! Deleting removes the record, its grants and its index entries, durably, before anything
//! else: from then on every read, download and send of the id answers "no such file", exactly
//! as for an id that never existed. The blob goes next, unless another file has the same
//! contents (blobs are shared by content); a crash between the two leaves an unreferenced blob
//! (wasted space, never a dangling record). A file registered with the same bytes at the same
//! moment cannot lose its blob: registering and deleting take the same per-content lock
//! ([`BlobLocks`]) around "place the blob and write the record" and "remove the record and
//! decide about the blob".
//!
//! Messages that named the file keep their content: a message is history, and the file id in
//! it now leads to "no such file".

use std::sync::atomic::{AtomicBool, Ordering};

use parley_protocol::frames::{FileId, FileInfo};
use parley_protocol::session::Identity;

use super::{no_such_file, Core, CoreResult};
use crate::core::internal;

/// Stripes of the per-content lock.
const STRIPES: usize = 16;

/// Locks by blob (striped by the hash's first hex digit): held while a blob is placed and its
/// file recorded, or a file removed and its blob's fate decided. Async locks, since they are
/// held across the blocking work's `await` and the store barrier.
#[derive(Debug)]
pub(crate) struct BlobLocks {
    stripes: Vec<tokio::sync::Mutex<()>>,
    /// Every file is in the owner and content indexes (older stores are indexed on first use).
    indexed: AtomicBool,
}

impl Default for BlobLocks {
    fn default() -> BlobLocks {
        BlobLocks {
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            indexed: AtomicBool::new(false),
        }
    }
}

impl BlobLocks {
    /// The lock of the blob `sha256`.
    pub(crate) async fn lock(&self, sha256: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let digit = sha256
            .bytes()
            .next()
            .and_then(|b| (b as char).to_digit(16))
            .unwrap_or(0) as usize;
        self.stripes[digit % STRIPES].lock().await
    }
}

/// What one `ListFiles` answers.
#[derive(Debug)]
pub struct FileList {
    /// Newest first.
    pub files: Vec<FileInfo>,
    /// More follow.
    pub has_more: bool,
    /// The caller's files in all.
    pub total: u32,
}

impl Core {
    /// Indexes the files of a store written before the indexes existed (once per process;
    /// a no-op after the first time per data directory).
    fn files_indexed(&self) -> CoreResult<()> {
        let locks = &self.files()?.locks;
        if !locks.indexed.load(Ordering::Acquire) {
            self.store.index_files().map_err(internal)?;
            locks.indexed.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// The caller's files (of `kind` only, if given), newest first (`limit` and `offset`
    /// checked by the protocol).
    pub fn list_files(
        &self,
        me: &Identity,
        limit: u32,
        offset: u32,
        kind: Option<parley_protocol::frames::FileKind>,
    ) -> CoreResult<FileList> {
        self.files_indexed()?;
        let page = self
            .store
            .files_of(me.user, offset as usize, limit as usize, kind)
            .map_err(internal)?;
        let files = page
            .files
            .into_iter()
            .map(|(id, record)| record.info(id))
            .collect::<Result<_, _>>()
            .map_err(internal)?;
        Ok(FileList {
            files,
            has_more: page.has_more,
            total: page.total,
        })
    }

    /// Deletes a file of the caller (see the module doc); `NOT_FOUND` for anyone else's and for
    /// an unknown id. Answered once the removal is durable.
    pub async fn delete_file(&self, me: &Identity, id: FileId) -> CoreResult<()> {
        self.files_indexed()?;
        let files = self.files()?;
        let record = self
            .store
            .file(id)
            .map_err(internal)?
            .filter(|r| r.owner == me.user.get())
            .ok_or_else(no_such_file)?;
        let _lock = files.locks.lock(&record.sha256).await;
        // Read again under the lock: a concurrent delete of the same file may have won.
        if self.store.file(id).map_err(internal)?.is_none() {
            return Err(no_such_file());
        }
        let shared = self.store.delete_file(id, &record).map_err(internal)?;
        self.durable().await?;
        tracing::info!(user = me.user.get(), file = %id, shared, "file deleted");
        if !shared {
            let blobs = files.blobs.clone();
            let sha = record.sha256.clone();
            let removed = tokio::task::spawn_blocking(move || blobs.remove(&sha)).await;
            if !matches!(removed, Ok(Ok(()))) {
                // The record is gone (the answer stands); the blob is only wasted space.
                tracing::warn!(file = %id, "a deleted file's blob could not be removed");
            }
        }
        Ok(())
    }
}
