//! Files: registering uploaded blobs as files, who may read them, and the grants that sending
//! a file in a conversation gives its members (docs/files.md).
//!
//! The bytes never pass through here: the HTTP side streams them into the blob directory
//! ([`crate::store::files::blobs`]) through the service's `Blobs` adapter, which hands back an
//! upload token. [`Core::register_file`] turns that token into a file with a random id.
//!
//! Access: the uploader, anyone for a public file, and members of a conversation the file was
//! sent in (image, file, audio, video or sticker messages, through [`Core::grant_sent_file`]).
//! Everyone else gets `NOT_FOUND` with the same message as for an id that does not exist, so a
//! file's existence cannot be probed.

mod owned;
mod thumbs;

pub use owned::FileList;

pub(crate) use thumbs::thumbnail_mime;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use parley_protocol::frames::{ContentType, FileId, FileInfo, NewFile, UploadToken};
use parley_protocol::ids::{ConversationId, UserId};
use parley_protocol::session::Identity;
use parley_protocol::ErrorCode;
use tokio::sync::Semaphore;

use super::{err, internal, Core, CoreResult};
use crate::clock::now_ms;
use crate::config::Config;
use crate::store::files::blobs::{BlobDir, BlobError};
use crate::store::files::FileRecord;

/// Staged blobs (uploaded, not yet registered) kept at most; older ones are dropped first.
const MAX_STAGED: usize = 1024;
/// How long a staged blob waits for its `RegisterFile`.
const STAGED_TTL_MS: u64 = 10 * 60 * 1000;
/// Thumbnails queued after uploads at most; beyond, they are made on first request.
const MAX_EAGER_THUMBNAILS: usize = 64;

/// What one answer to "no such file" says, whether the file is missing or hidden.
pub(crate) fn no_such_file() -> parley_protocol::frames::ErrorInfo {
    err(ErrorCode::NotFound, "no such file")
}

/// Whether messages of this type carry a `file_id` in their JSON content.
pub(crate) fn bears_file(kind: ContentType) -> bool {
    matches!(
        kind,
        ContentType::Image
            | ContentType::File
            | ContentType::Audio
            | ContentType::Video
            | ContentType::Sticker
    )
}

/// A blob written and fsync'd in `tmp/`, waiting for its `RegisterFile`.
#[derive(Debug)]
struct Staged {
    owner: UserId,
    temp: PathBuf,
    sha256: String,
    size: u64,
    at_ms: u64,
}

/// The core's file state: the blob directory, staged uploads, the thumbnail worker's permits.
#[derive(Debug)]
pub struct Files {
    pub(crate) blobs: Arc<BlobDir>,
    staged: Mutex<HashMap<String, Staged>>,
    /// One thumbnail decodes at a time (a decode can take ~100 MiB and a core for a while).
    thumb_permits: Arc<Semaphore>,
    eager: Arc<AtomicUsize>,
    /// Resumable uploads a request is writing or completing right now (one at a time each).
    busy: Arc<Mutex<HashSet<String>>>,
    /// Per-content locks between registering and deleting files (`owned`).
    locks: owned::BlobLocks,
}

/// Holds a resumable upload for one request; dropping it lets the next one in.
#[derive(Debug)]
pub struct UploadClaim {
    busy: Arc<Mutex<HashSet<String>>>,
    id: String,
}

impl Drop for UploadClaim {
    fn drop(&mut self) {
        self.busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

impl Files {
    /// Opens the files directory of `cfg` (`None`, logged: files are off).
    pub(crate) fn open(cfg: &Config) -> Option<Files> {
        let dir = cfg.files.dir(&cfg.data_dir);
        match BlobDir::open(&dir) {
            Ok(blobs) => Some(Files {
                blobs: Arc::new(blobs),
                staged: Mutex::new(HashMap::new()),
                thumb_permits: Arc::new(Semaphore::new(1)),
                eager: Arc::new(AtomicUsize::new(0)),
                busy: Arc::default(),
                locks: owned::BlobLocks::default(),
            }),
            Err(e) => {
                tracing::error!(error = %e, dir = %dir.display(), "files are off: cannot open the files directory");
                None
            }
        }
    }

    /// Claims the resumable upload `id` for one request (`None`: another one holds it).
    pub(crate) fn claim_upload(&self, id: &str) -> Option<UploadClaim> {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        busy.insert(id.to_owned()).then(|| UploadClaim {
            busy: self.busy.clone(),
            id: id.to_owned(),
        })
    }

    fn staged(&self) -> std::sync::MutexGuard<'_, HashMap<String, Staged>> {
        self.staged.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a blob written to `temp` (complete and fsync'd) for `owner`; the token names it
    /// in `RegisterFile`. Stale entries go first (their files deleted).
    pub(crate) fn stage(&self, owner: UserId, temp: PathBuf, sha256: String, size: u64) -> String {
        let now = now_ms();
        let token = crate::store::files::blobs::random_id();
        let mut dropped = Vec::new();
        {
            let mut staged = self.staged();
            staged.retain(|_, s| {
                let keep = now < s.at_ms + STAGED_TTL_MS;
                if !keep {
                    dropped.push(s.temp.clone());
                }
                keep
            });
            if staged.len() >= MAX_STAGED {
                if let Some(oldest) = staged
                    .iter()
                    .min_by_key(|(_, s)| s.at_ms)
                    .map(|(k, _)| k.clone())
                {
                    if let Some(s) = staged.remove(&oldest) {
                        dropped.push(s.temp);
                    }
                }
            }
            let entry = Staged {
                owner,
                temp,
                sha256,
                size,
                at_ms: now,
            };
            staged.insert(token.clone(), entry);
        }
        for temp in dropped {
            let _ = std::fs::remove_file(temp);
        }
        token
    }
}

fn files_off() -> parley_protocol::frames::ErrorInfo {
    err(
        ErrorCode::Internal,
        "files are not available on this server",
    )
}

impl Core {
    /// The file state (`Err`: files are off).
    pub(crate) fn files(&self) -> CoreResult<&Files> {
        self.files.as_ref().ok_or_else(files_off)
    }

    /// Registers a staged upload as a new file of the caller: the blob moves into place (shared
    /// with identical bytes uploaded before), images are measured, and the record is written;
    /// answered once blob and record are durable. A token that is unknown, stale or someone
    /// else's gets `NOT_FOUND`.
    pub async fn register_file(
        &self,
        me: &Identity,
        upload: UploadToken,
        file: NewFile,
    ) -> CoreResult<FileInfo> {
        let files = self.files()?;
        let staged = {
            let mut staged = files.staged();
            match staged.get(upload.as_str()) {
                Some(s) if s.owner == me.user => staged.remove(upload.as_str()),
                _ => None,
            }
        }
        .ok_or_else(|| err(ErrorCode::NotFound, "no such upload"))?;
        // Placing the blob and recording the file are one step for a concurrent delete of a
        // file with the same bytes (`owned`): it must not remove the blob in between.
        let lock = files.locks.lock(&staged.sha256).await;
        // Renames, fsyncs and reading an image's header are blocking file IO.
        let blobs = files.blobs.clone();
        let sha = staged.sha256.clone();
        let placed = tokio::task::spawn_blocking(move || {
            let path = blobs.commit(&staged.temp, &sha)?;
            Ok::<_, BlobError>(thumbs::probe(&path))
        })
        .await
        .map_err(|_| err(ErrorCode::Internal, "internal error"))?;
        let image = placed.map_err(|e| {
            tracing::error!(error = %e, "could not store an uploaded blob");
            err(ErrorCode::Internal, "internal error")
        })?;
        let mime = match &image {
            Some(i) => i.mime.to_owned(),
            None => file.mime().to_owned(),
        };
        let record = FileRecord {
            owner: me.user.get(),
            name: file.name().to_owned(),
            mime,
            size: staged.size,
            sha256: staged.sha256,
            width: image.as_ref().map_or(0, |i| i.width),
            height: image.as_ref().map_or(0, |i| i.height),
            public: file.public,
            created_ms: now_ms(),
        };
        let id = FileId::from_bytes(rand::random());
        self.store.put_file(id, &record).map_err(internal)?;
        drop(lock);
        self.durable().await?;
        if image.is_some() {
            self.thumbnail_soon(&record.sha256);
        }
        record.info(id).map_err(internal)
    }

    /// A file's metadata, if `me` (`None`: not logged in) may read it.
    pub fn get_file(&self, me: Option<&Identity>, id: FileId) -> CoreResult<FileInfo> {
        let record = self.readable_file(me.map(|i| i.user), id)?;
        record.info(id).map_err(internal)
    }

    /// The record of a file `user` may read: its own, a public one, or one sent in a
    /// conversation `user` is a member of. Anything else is "no such file".
    fn readable_file(&self, user: Option<UserId>, id: FileId) -> CoreResult<FileRecord> {
        let record = self
            .store
            .file(id)
            .map_err(internal)?
            .ok_or_else(no_such_file)?;
        if record.public {
            return Ok(record);
        }
        let Some(user) = user else {
            return Err(no_such_file());
        };
        if record.owner == user.get() {
            return Ok(record);
        }
        let grants = self.store.file_grants(id).map_err(internal)?;
        if grants
            .into_iter()
            .any(|conv| self.membership(conv, user).is_ok())
        {
            return Ok(record);
        }
        Err(no_such_file())
    }

    /// For a message of a file-bearing type about to be sent by `sender` in `conv` (checked
    /// already: a JSON object with a string `file_id`): if the id names a Parley file, the
    /// sender must be able to read it (else `NOT_FOUND`, so nobody gains access to a file by
    /// sending its id), and the conversation's members are granted access. Ids of another shape
    /// are the clients' own references to files elsewhere: they name nothing here and grant
    /// nothing. The grant is a store write that the log's fsync does not cover: dispatch makes
    /// it durable (a barrier) before the message is acknowledged.
    pub(crate) fn grant_sent_file(
        &self,
        sender: UserId,
        conv: ConversationId,
        content: &[u8],
    ) -> CoreResult<()> {
        let value: serde_json::Value =
            serde_json::from_slice(content).map_err(|_| no_such_file())?;
        let Some(raw) = value.get("file_id").and_then(serde_json::Value::as_str) else {
            return Ok(());
        };
        let Ok(id) = raw.parse::<FileId>() else {
            return Ok(());
        };
        self.readable_file(Some(sender), id)?;
        self.store.grant_file(id, conv).map_err(internal)
    }

    /// The path of the thumbnail of the blob `sha256`, made now if it is not there yet (off
    /// the runtime's workers, one at a time). `NOT_FOUND` if the blob is not an image this
    /// server can read.
    pub async fn thumbnail(&self, sha256: &str) -> CoreResult<PathBuf> {
        let files = self.files()?;
        let made = thumbnail(
            files.blobs.clone(),
            files.thumb_permits.clone(),
            sha256.to_owned(),
        );
        made.await.map_err(|e| {
            if let Some(e) = e {
                tracing::debug!(error = %e, "no thumbnail");
            }
            no_such_file()
        })
    }

    /// Queues the thumbnail of a new image (best effort: beyond a few queued, it is made on
    /// its first request instead).
    fn thumbnail_soon(&self, sha256: &str) {
        let Ok(files) = self.files() else { return };
        if files.eager.fetch_add(1, Ordering::Relaxed) >= MAX_EAGER_THUMBNAILS {
            files.eager.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let made = thumbnail(
            files.blobs.clone(),
            files.thumb_permits.clone(),
            sha256.to_owned(),
        );
        let eager = files.eager.clone();
        tokio::spawn(async move {
            if let Err(Some(e)) = made.await {
                tracing::debug!(error = %e, "no thumbnail");
            }
            eager.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Makes the thumbnail of blob `sha` unless it exists, with one of `permits`, and returns its
/// path (`Err(None)`: not a blob; `Err(Some(why))`: not an image this server reads).
async fn thumbnail(
    blobs: Arc<BlobDir>,
    permits: Arc<Semaphore>,
    sha: String,
) -> Result<PathBuf, Option<String>> {
    let path = blobs.thumb_path(&sha).ok_or(None)?;
    if tokio::fs::metadata(&path).await.is_ok() {
        return Ok(path);
    }
    let _permit = permits.acquire().await.map_err(|_| None)?;
    // Made while we waited for the permit?
    if tokio::fs::metadata(&path).await.is_ok() {
        return Ok(path);
    }
    tokio::task::spawn_blocking(move || {
        let source = blobs.blob_path(&sha).ok_or(None)?;
        let bytes = thumbs::make(&source).map_err(Some)?;
        blobs
            .put_thumb(&sha, &bytes)
            .map_err(|e| Some(e.to_string()))
    })
    .await
    .map_err(|_| None)?
}
