//! File contents on disk: content-addressed blobs, the temporary files uploads stream into,
//! and resumable uploads in progress.
//!
//! ```text
//! <files dir>/
//!   blobs/ab/<sha256>        complete blobs, named by the SHA-256 of their bytes, immutable
//!   thumbs/<sha256>          thumbnails of image blobs (JPEG or PNG), derived, re-made if lost
//!   tmp/<random>             bytes being written; emptied at every start
//!   uploads/<id>.json        a resumable upload: owner, declared size, name, type (see Upload)
//!   uploads/<id>.part        its bytes so far (each chunk fsync'd before it is acknowledged)
//! ```
//!
//! Crash safety: a blob is written to `tmp/`, fsync'd, then renamed into `blobs/` and the
//! directory fsync'd, so a name in `blobs/` always holds its complete bytes (a kill -9 leaves
//! at most a file in `tmp/`, removed at the next start). Duplicate bytes share one blob.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use parley_protocol::ids::UserId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A failure of the blob directory.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// No such blob or upload (or not the caller's).
    #[error("not found")]
    NotFound,
    /// The bytes exceed the limit.
    #[error("larger than {max} bytes")]
    TooLarge {
        /// The limit.
        max: u64,
    },
    /// The upload is at another offset, or busy with another request.
    #[error("the upload is at offset {offset}")]
    Conflict {
        /// Where it is.
        offset: u64,
    },
    /// Not allowed now (too many uploads, incomplete upload ...).
    #[error("{0}")]
    Refused(&'static str),
    /// The request body failed (the client went away).
    #[error("reading the request body: {0}")]
    Body(std::io::Error),
    /// The disk failed.
    #[error("file io: {0}")]
    Io(#[from] std::io::Error),
}

/// State of a resumable upload, kept beside its bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    /// Who may continue it.
    pub owner: u64,
    /// Declared total size.
    pub size: u64,
    /// The file's name, type and visibility once complete.
    pub name: String,
    /// MIME type.
    pub mime: String,
    /// Public once registered.
    pub public: bool,
    /// When it was created (Unix ms; it expires `upload_ttl` later).
    pub created_ms: u64,
}

/// The blob directory.
#[derive(Debug)]
pub struct BlobDir {
    root: PathBuf,
}

/// Hex digits of a random id (128 bits).
pub fn random_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// fsyncs a directory, so the names created or renamed in it survive a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl BlobDir {
    /// Opens (creating) the directory and empties `tmp/`: whatever is there was being written
    /// when the process stopped.
    pub fn open(root: &Path) -> std::io::Result<BlobDir> {
        for sub in ["blobs", "thumbs", "tmp", "uploads"] {
            std::fs::create_dir_all(root.join(sub))?;
        }
        let tmp = root.join("tmp");
        let mut removed = 0usize;
        for entry in std::fs::read_dir(&tmp)? {
            let path = entry?.path();
            if std::fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(removed, "removed unfinished files from {}", tmp.display());
            sync_dir(&tmp)?;
        }
        Ok(BlobDir {
            root: root.to_owned(),
        })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A fresh temporary file's path (nothing is created).
    pub fn temp_path(&self) -> PathBuf {
        self.root.join("tmp").join(random_id())
    }

    /// Where the blob with this hash lives (`None`: not a SHA-256 in hex).
    pub fn blob_path(&self, sha256: &str) -> Option<PathBuf> {
        is_sha256(sha256).then(|| self.root.join("blobs").join(&sha256[..2]).join(sha256))
    }

    /// Where the thumbnail of this blob lives.
    pub fn thumb_path(&self, sha256: &str) -> Option<PathBuf> {
        is_sha256(sha256).then(|| self.root.join("thumbs").join(sha256))
    }

    /// Moves a complete, fsync'd temporary file into place as the blob `sha256` (blocking).
    /// If the blob exists (the same bytes were uploaded before), the temporary file is removed
    /// and the blob shared.
    pub fn commit(&self, temp: &Path, sha256: &str) -> Result<PathBuf, BlobError> {
        let path = self.blob_path(sha256).ok_or(BlobError::NotFound)?;
        if path.exists() {
            std::fs::remove_file(temp)?;
            return Ok(path);
        }
        let parent = path.parent().ok_or(BlobError::NotFound)?;
        let fresh_parent = !parent.exists();
        std::fs::create_dir_all(parent)?;
        std::fs::rename(temp, &path)?;
        sync_dir(parent)?;
        if fresh_parent {
            sync_dir(&self.root.join("blobs"))?;
        }
        Ok(path)
    }

    /// Removes the blob `sha256` and its thumbnail (blocking), once no file refers to it. The
    /// directory is fsync'd: a removal that was answered stays done. A blob already gone is
    /// not an error.
    pub fn remove(&self, sha256: &str) -> Result<(), BlobError> {
        let path = self.blob_path(sha256).ok_or(BlobError::NotFound)?;
        match std::fs::remove_file(&path) {
            Ok(()) => {
                if let Some(parent) = path.parent() {
                    sync_dir(parent)?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        if let Some(thumb) = self.thumb_path(sha256) {
            // Derived: if it stays (a crash), it is harmless and made again if ever needed.
            let _ = std::fs::remove_file(thumb);
        }
        Ok(())
    }

    /// Writes `bytes` as the thumbnail of `sha256` (blocking): a temporary file, fsync'd,
    /// renamed into place.
    pub fn put_thumb(&self, sha256: &str, bytes: &[u8]) -> Result<PathBuf, BlobError> {
        let path = self.thumb_path(sha256).ok_or(BlobError::NotFound)?;
        let temp = self.temp_path();
        let mut f = std::fs::File::create(&temp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&temp, &path)?;
        Ok(path)
    }

    fn upload_paths(&self, id: &str) -> Option<(PathBuf, PathBuf)> {
        let dir = self.root.join("uploads");
        is_id(id).then(|| {
            (
                dir.join(format!("{id}.json")),
                dir.join(format!("{id}.part")),
            )
        })
    }

    /// Creates a resumable upload (blocking): its state is written to a temporary file,
    /// fsync'd and renamed, so it exists whole or not at all. First deletes expired uploads
    /// (`now_ms` past `created_ms + ttl_ms`), then refuses if `owner` has `max_per_user` left.
    pub fn create_upload(
        &self,
        upload: &Upload,
        now_ms: u64,
        ttl_ms: u64,
        max_per_user: usize,
    ) -> Result<String, BlobError> {
        let mine = self.sweep_uploads(now_ms, ttl_ms, Some(upload.owner))?;
        if mine >= max_per_user {
            return Err(BlobError::Refused("too many uploads in progress"));
        }
        let id = random_id();
        let (state, part) = self.upload_paths(&id).ok_or(BlobError::NotFound)?;
        std::fs::File::create(&part)?.sync_all()?;
        let temp = self.temp_path();
        let mut f = std::fs::File::create(&temp)?;
        f.write_all(&serde_json::to_vec(upload).unwrap_or_default())?;
        f.sync_all()?;
        std::fs::rename(&temp, &state)?;
        sync_dir(&self.root.join("uploads"))?;
        Ok(id)
    }

    /// Deletes expired uploads (and parts without a state); returns how many live uploads
    /// `owner` has.
    pub fn sweep_uploads(
        &self,
        now_ms: u64,
        ttl_ms: u64,
        owner: Option<u64>,
    ) -> Result<usize, BlobError> {
        let dir = self.root.join("uploads");
        let mut mine = 0;
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let (Some(stem), Some(ext)) = (
                path.file_stem().and_then(|s| s.to_str()),
                path.extension().and_then(|s| s.to_str()),
            ) else {
                continue;
            };
            let Some((state, part)) = self.upload_paths(stem) else {
                let _ = std::fs::remove_file(&path);
                continue;
            };
            match ext {
                "part" if !state.exists() => {
                    let _ = std::fs::remove_file(&part);
                }
                "json" => match read_upload(&state) {
                    Ok(u) if now_ms < u.created_ms.saturating_add(ttl_ms) => {
                        mine += usize::from(Some(u.owner) == owner);
                    }
                    _ => {
                        let _ = std::fs::remove_file(&state);
                        let _ = std::fs::remove_file(&part);
                    }
                },
                _ => {}
            }
        }
        Ok(mine)
    }

    /// A resumable upload of `owner` with its current offset (blocking).
    pub fn upload(&self, owner: UserId, id: &str) -> Result<(Upload, u64, PathBuf), BlobError> {
        let (state, part) = self.upload_paths(id).ok_or(BlobError::NotFound)?;
        let upload = read_upload(&state).map_err(|_| BlobError::NotFound)?;
        if upload.owner != owner.get() {
            return Err(BlobError::NotFound);
        }
        let offset = std::fs::metadata(&part)
            .map_err(|_| BlobError::NotFound)?
            .len();
        Ok((upload, offset, part))
    }

    /// Finishes a complete upload (blocking): hashes its bytes and moves them to a temporary
    /// file (for the caller to [`BlobDir::commit`]); the upload is gone afterwards.
    pub fn finish_upload(
        &self,
        owner: UserId,
        id: &str,
    ) -> Result<(Upload, PathBuf, String), BlobError> {
        let (upload, offset, part) = self.upload(owner, id)?;
        if offset != upload.size {
            return Err(BlobError::Conflict { offset });
        }
        let mut f = std::fs::File::open(&part)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match f.read(&mut buf)? {
                0 => break,
                n => hasher.update(&buf[..n]),
            }
        }
        let sha = hex::encode(hasher.finalize());
        let temp = self.temp_path();
        std::fs::rename(&part, &temp)?;
        self.cancel_upload(owner, id).or_else(|e| match e {
            BlobError::NotFound => Ok(()),
            e => Err(e),
        })?;
        Ok((upload, temp, sha))
    }

    /// Deletes an upload of `owner` (blocking).
    pub fn cancel_upload(&self, owner: UserId, id: &str) -> Result<(), BlobError> {
        let (state, part) = self.upload_paths(id).ok_or(BlobError::NotFound)?;
        let upload = read_upload(&state).map_err(|_| BlobError::NotFound)?;
        if upload.owner != owner.get() {
            return Err(BlobError::NotFound);
        }
        std::fs::remove_file(&state)?;
        let _ = std::fs::remove_file(&part);
        sync_dir(&self.root.join("uploads"))?;
        Ok(())
    }
}

fn read_upload(path: &Path) -> Result<Upload, BlobError> {
    let bytes = std::fs::read(path).map_err(|_| BlobError::NotFound)?;
    serde_json::from_slice(&bytes).map_err(|_| BlobError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    #[test]
    fn commit_renames_into_place_and_shares_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobDir::open(dir.path()).unwrap();
        let hash = sha(b"hello");
        for _ in 0..2 {
            let temp = blobs.temp_path();
            std::fs::write(&temp, b"hello").unwrap();
            let path = blobs.commit(&temp, &hash).unwrap();
            assert_eq!(std::fs::read(path).unwrap(), b"hello");
            assert!(!temp.exists());
        }
        assert!(blobs.blob_path("../etc").is_none());
        // A leftover temporary file is gone after a restart.
        std::fs::write(blobs.temp_path(), b"half").unwrap();
        drop(blobs);
        let _blobs = BlobDir::open(dir.path()).unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn uploads_belong_to_their_owner_expire_and_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobDir::open(dir.path()).unwrap();
        let (alice, bob) = (UserId::try_from(1).unwrap(), UserId::try_from(2).unwrap());
        let upload = Upload {
            owner: 1,
            size: 3,
            name: "a".into(),
            mime: "text/plain".into(),
            public: false,
            created_ms: 1_000,
        };
        let id = blobs.create_upload(&upload, 1_000, 10, 1).unwrap();
        assert!(matches!(
            blobs.create_upload(&upload, 1_000, 10, 1),
            Err(BlobError::Refused(_))
        ));
        assert!(matches!(blobs.upload(bob, &id), Err(BlobError::NotFound)));
        let (_, offset, part) = blobs.upload(alice, &id).unwrap();
        assert_eq!(offset, 0);
        assert!(matches!(
            blobs.finish_upload(alice, &id),
            Err(BlobError::Conflict { offset: 0 })
        ));
        std::fs::write(&part, b"abc").unwrap();
        let (got, temp, hash) = blobs.finish_upload(alice, &id).unwrap();
        assert_eq!((got, hash), (upload.clone(), sha(b"abc")));
        assert_eq!(std::fs::read(temp).unwrap(), b"abc");
        assert!(matches!(blobs.upload(alice, &id), Err(BlobError::NotFound)));
        // Expired uploads are swept by the next create.
        let old = blobs.create_upload(&upload, 1_000, 10, 5).unwrap();
        blobs.create_upload(&upload, 2_000, 10, 5).unwrap();
        assert!(matches!(
            blobs.upload(alice, &old),
            Err(BlobError::NotFound)
        ));
    }
}
