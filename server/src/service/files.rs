//! The HTTP side's view of file contents ([`parley_admin_http::files::Blobs`]): request bodies
//! streamed into the blob directory (hashed on the way, limited, fsync'd), resumable uploads,
//! and blobs and thumbnails opened for streaming out. Memory per upload is one body chunk and
//! the file's write buffer, whatever the file's size.

use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use parley_admin_http::files::{BlobFailure, BlobFile, Blobs, ByteStream, Staged, UploadStatus};
use parley_protocol::frames::{NewFile, UploadToken};
use parley_protocol::ids::UserId;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::clock::now_ms;
use crate::core::{thumbnail_mime, Core, Files};
use crate::store::files::blobs::{BlobError, Upload};

/// [`Blobs`] over the core's files.
#[derive(Debug)]
pub struct FileBlobs {
    core: Arc<Core>,
}

impl FileBlobs {
    /// The adapter, if files are on.
    pub fn new(core: Arc<Core>) -> Option<FileBlobs> {
        core.files.as_ref()?;
        Some(FileBlobs { core })
    }

    fn files(&self) -> Result<&Files, BlobFailure> {
        self.core.files().map_err(|_| BlobFailure::Unavailable)
    }
}

/// Deletes a temporary file unless disarmed: an upload that fails or whose request is dropped
/// (the client went away) leaves nothing behind.
struct TempGuard(Option<PathBuf>);

impl TempGuard {
    fn disarm(mut self) -> PathBuf {
        self.0.take().unwrap_or_default()
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn failure(e: BlobError) -> BlobFailure {
    match e {
        BlobError::NotFound => BlobFailure::NotFound,
        BlobError::TooLarge { max } => BlobFailure::TooLarge { max },
        BlobError::Conflict { offset } => BlobFailure::Conflict { offset },
        BlobError::Refused(_) => BlobFailure::TooMany,
        BlobError::Body(e) => BlobFailure::Body(e.to_string()),
        BlobError::Io(e) => io(e),
    }
}

fn io(e: std::io::Error) -> BlobFailure {
    tracing::error!(error = %e, "file io failed");
    BlobFailure::Internal
}

/// Runs blocking file work off the runtime's workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BlobError> + Send + 'static,
) -> Result<T, BlobFailure> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(failure),
        Err(_) => Err(BlobFailure::Internal),
    }
}

fn staged(token: String, size: u64, sha256: String) -> Result<Staged, BlobFailure> {
    Ok(Staged {
        token: UploadToken::try_from(token).map_err(|_| BlobFailure::Internal)?,
        size,
        sha256,
    })
}

impl Blobs for FileBlobs {
    fn max_bytes(&self) -> u64 {
        self.core.config().files.max_bytes
    }

    fn stage<'a>(
        &'a self,
        owner: UserId,
        mut body: ByteStream<'a>,
    ) -> BoxFuture<'a, Result<Staged, BlobFailure>> {
        async move {
            let files = self.files()?;
            let max = self.max_bytes();
            let temp = TempGuard(Some(files.blobs.temp_path()));
            let path = temp.0.clone().unwrap_or_default();
            let mut file = tokio::fs::File::create(&path).await.map_err(io)?;
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| BlobFailure::Body(e.to_string()))?;
                size += chunk.len() as u64;
                if size > max {
                    return Err(BlobFailure::TooLarge { max });
                }
                hasher.update(&chunk);
                file.write_all(&chunk).await.map_err(io)?;
            }
            file.flush().await.map_err(io)?;
            file.sync_all().await.map_err(io)?;
            drop(file);
            let sha256 = hex::encode(hasher.finalize());
            let token = files.stage(owner, temp.disarm(), sha256.clone(), size);
            staged(token, size, sha256)
        }
        .boxed()
    }

    fn create_upload(
        &self,
        owner: UserId,
        size: u64,
        file: NewFile,
    ) -> BoxFuture<'static, Result<UploadStatus, BlobFailure>> {
        let core = self.core.clone();
        async move {
            let files = core.files().map_err(|_| BlobFailure::Unavailable)?;
            let cfg = &core.config().files;
            let upload = Upload {
                owner: owner.get(),
                size,
                name: file.name().to_owned(),
                mime: file.mime().to_owned(),
                public: file.public,
                created_ms: now_ms(),
            };
            let (ttl, max) = (cfg.upload_ttl.as_millis() as u64, cfg.max_uploads_per_user);
            let blobs = files.blobs.clone();
            let id = blocking(move || blobs.create_upload(&upload, now_ms(), ttl, max)).await?;
            Ok(UploadStatus {
                upload_id: id,
                offset: 0,
                size,
            })
        }
        .boxed()
    }

    fn upload_status(
        &self,
        owner: UserId,
        id: String,
    ) -> BoxFuture<'static, Result<UploadStatus, BlobFailure>> {
        let core = self.core.clone();
        async move {
            let blobs = core
                .files()
                .map_err(|_| BlobFailure::Unavailable)?
                .blobs
                .clone();
            let upload_id = id.clone();
            let (upload, offset, _) = blocking(move || blobs.upload(owner, &id)).await?;
            Ok(UploadStatus {
                upload_id,
                offset,
                size: upload.size,
            })
        }
        .boxed()
    }

    fn append<'a>(
        &'a self,
        owner: UserId,
        id: String,
        offset: u64,
        mut body: ByteStream<'a>,
    ) -> BoxFuture<'a, Result<UploadStatus, BlobFailure>> {
        async move {
            let files = self.files()?;
            let blobs = files.blobs.clone();
            let upload_id = id.clone();
            let (upload, at, part) = blocking(move || blobs.upload(owner, &id)).await?;
            let Some(_claim) = files.claim_upload(&upload_id) else {
                return Err(BlobFailure::Conflict { offset: at });
            };
            if offset != at {
                return Err(BlobFailure::Conflict { offset: at });
            }
            let mut file = tokio::fs::OpenOptions::new()
                .append(true)
                .open(&part)
                .await
                .map_err(io)?;
            let mut written = at;
            let mut outcome = Ok(());
            while let Some(chunk) = body.next().await {
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => {
                        outcome = Err(BlobFailure::Body(e.to_string()));
                        break;
                    }
                };
                if written + chunk.len() as u64 > upload.size {
                    outcome = Err(BlobFailure::TooLarge { max: upload.size });
                    break;
                }
                file.write_all(&chunk).await.map_err(io)?;
                written += chunk.len() as u64;
            }
            // What arrived stays, durable: a broken-off chunk resumes from here.
            file.flush().await.map_err(io)?;
            file.sync_data().await.map_err(io)?;
            outcome?;
            Ok(UploadStatus {
                upload_id,
                offset: written,
                size: upload.size,
            })
        }
        .boxed()
    }

    fn complete_upload(
        &self,
        owner: UserId,
        id: String,
    ) -> BoxFuture<'static, Result<(Staged, NewFile), BlobFailure>> {
        let core = self.core.clone();
        async move {
            let files = core.files().map_err(|_| BlobFailure::Unavailable)?;
            let Some(_claim) = files.claim_upload(&id) else {
                let blobs = files.blobs.clone();
                let (_, at, _) = blocking(move || blobs.upload(owner, &id)).await?;
                return Err(BlobFailure::Conflict { offset: at });
            };
            let blobs = files.blobs.clone();
            let (upload, temp, sha256) = blocking(move || blobs.finish_upload(owner, &id)).await?;
            let file = NewFile::new(upload.name, &upload.mime, upload.public)
                .map_err(|_| BlobFailure::Internal)?;
            let token = files.stage(owner, temp, sha256.clone(), upload.size);
            Ok((staged(token, upload.size, sha256)?, file))
        }
        .boxed()
    }

    fn cancel_upload(
        &self,
        owner: UserId,
        id: String,
    ) -> BoxFuture<'static, Result<(), BlobFailure>> {
        let core = self.core.clone();
        async move {
            let files = core.files().map_err(|_| BlobFailure::Unavailable)?;
            let Some(_claim) = files.claim_upload(&id) else {
                return Err(BlobFailure::Conflict { offset: 0 });
            };
            let blobs = files.blobs.clone();
            blocking(move || blobs.cancel_upload(owner, &id)).await
        }
        .boxed()
    }

    fn open(&self, sha256: String) -> BoxFuture<'static, Result<BlobFile, BlobFailure>> {
        let core = self.core.clone();
        async move {
            let files = core.files().map_err(|_| BlobFailure::Unavailable)?;
            let path = files
                .blobs
                .blob_path(&sha256)
                .ok_or(BlobFailure::NotFound)?;
            open(path).await
        }
        .boxed()
    }

    fn thumbnail(
        &self,
        sha256: String,
    ) -> BoxFuture<'static, Result<(BlobFile, &'static str), BlobFailure>> {
        let core = self.core.clone();
        async move {
            let path = core
                .thumbnail(&sha256)
                .await
                .map_err(|_| BlobFailure::NotFound)?;
            let mut blob = open(path).await?;
            let mut magic = [0u8; 4];
            blob.file.read_exact(&mut magic).await.map_err(io)?;
            blob.file.rewind().await.map_err(io)?;
            Ok((blob, thumbnail_mime(&magic)))
        }
        .boxed()
    }
}

async fn open(path: PathBuf) -> Result<BlobFile, BlobFailure> {
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A record whose blob is gone: the files directory was tampered with.
            tracing::error!(path = %path.display(), "a file's blob is missing");
            return Err(BlobFailure::NotFound);
        }
        Err(e) => return Err(io(e)),
    };
    let len = file.metadata().await.map_err(io)?.len();
    Ok(BlobFile { file, len })
}
