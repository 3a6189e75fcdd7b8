//! Files over HTTP, under `/im/v1/files` (docs/files.md): uploads streamed to disk (multipart,
//! raw body, or resumable in chunks), downloads streamed from disk with single-range `Range`
//! support, thumbnails, and metadata.
//!
//! No file logic lives here: who may read a file, its id and its record are the core's
//! (`RegisterFile` and `GetFile` through [`Backend::execute`]); where bytes go, how they are
//! hashed, the size limit and resumable uploads' state are the server's [`Blobs`]. This module
//! moves bytes between HTTP bodies and those two, and renders the answers.
//!
//! [`Backend::execute`]: crate::Backend::execute

mod http;
pub(crate) mod routes;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use parley_protocol::frames::{NewFile, UploadToken};
use parley_protocol::ids::UserId;
use serde::Serialize;

pub use routes::router;

/// A request body as it arrives.
pub type ByteStream<'a> = BoxStream<'a, Result<Bytes, std::io::Error>>;

/// Bytes written, fsync'd and hashed, waiting for `RegisterFile`.
#[derive(Clone, Debug)]
pub struct Staged {
    /// Names the bytes in `RegisterFile` (only for their uploader, once).
    pub token: UploadToken,
    /// Their length.
    pub size: u64,
    /// Their SHA-256, hex.
    pub sha256: String,
}

/// Where a resumable upload stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UploadStatus {
    /// The upload's id (32 hex digits).
    pub upload_id: String,
    /// Bytes received and durable so far: the next chunk starts here.
    pub offset: u64,
    /// The declared total size.
    pub size: u64,
}

/// A blob (or thumbnail) opened for reading.
#[derive(Debug)]
pub struct BlobFile {
    /// The open file.
    pub file: tokio::fs::File,
    /// Its length.
    pub len: u64,
}

/// Why a [`Blobs`] operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobFailure {
    /// No such blob, thumbnail or upload (or not the caller's).
    #[error("not found")]
    NotFound,
    /// More bytes than allowed (the configured limit, or a resumable upload's declared size).
    #[error("more than {max} bytes")]
    TooLarge {
        /// The limit.
        max: u64,
    },
    /// A chunk for another offset than where the upload is, an upload busy with another
    /// chunk, or one completed before all its bytes arrived.
    #[error("the upload is at offset {offset}")]
    Conflict {
        /// Where the upload is.
        offset: u64,
    },
    /// Too many resumable uploads in progress for this user.
    #[error("too many uploads in progress")]
    TooMany,
    /// The request body failed (the client went away or sent a broken body).
    #[error("reading the request body: {0}")]
    Body(String),
    /// Files are off on this server.
    #[error("files are not available on this server")]
    Unavailable,
    /// The server's disk failed (details are logged by the server).
    #[error("internal error")]
    Internal,
}

/// The server's file contents, as the HTTP side sees them (`Backend::blobs`). Every method
/// trusts its caller to have authenticated `owner`; reads are by hash, after `GetFile` allowed
/// them.
pub trait Blobs: Send + Sync {
    /// The largest file accepted, in bytes.
    fn max_bytes(&self) -> u64;

    /// Streams `body` to a new temporary file (refusing beyond [`Blobs::max_bytes`]), hashes
    /// it on the way, fsyncs it, and stages it for `owner`'s `RegisterFile`.
    fn stage<'a>(
        &'a self,
        owner: UserId,
        body: ByteStream<'a>,
    ) -> BoxFuture<'a, Result<Staged, BlobFailure>>;

    /// Starts a resumable upload of `size` bytes for `owner`.
    fn create_upload(
        &self,
        owner: UserId,
        size: u64,
        file: NewFile,
    ) -> BoxFuture<'static, Result<UploadStatus, BlobFailure>>;

    /// Where `owner`'s upload `id` stands.
    fn upload_status(
        &self,
        owner: UserId,
        id: String,
    ) -> BoxFuture<'static, Result<UploadStatus, BlobFailure>>;

    /// Appends `body` to `owner`'s upload `id`, which must be at `offset`; what arrived is
    /// fsync'd before the answer (also when the body breaks off: the upload resumes from there).
    fn append<'a>(
        &'a self,
        owner: UserId,
        id: String,
        offset: u64,
        body: ByteStream<'a>,
    ) -> BoxFuture<'a, Result<UploadStatus, BlobFailure>>;

    /// Finishes `owner`'s upload `id` once all its bytes arrived: hashes and stages them. The
    /// upload is gone afterwards; the returned file is what its creator said.
    fn complete_upload(
        &self,
        owner: UserId,
        id: String,
    ) -> BoxFuture<'static, Result<(Staged, NewFile), BlobFailure>>;

    /// Abandons `owner`'s upload `id`.
    fn cancel_upload(
        &self,
        owner: UserId,
        id: String,
    ) -> BoxFuture<'static, Result<(), BlobFailure>>;

    /// Opens the blob with this SHA-256 (hex).
    fn open(&self, sha256: String) -> BoxFuture<'static, Result<BlobFile, BlobFailure>>;

    /// Opens the thumbnail of an image blob, made first if needed; with its MIME type.
    fn thumbnail(
        &self,
        sha256: String,
    ) -> BoxFuture<'static, Result<(BlobFile, &'static str), BlobFailure>>;
}
