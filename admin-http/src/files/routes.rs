//! The routes under `/im/v1/files`.
//!
//! | method | path                                   | what                                  |
//! |--------|----------------------------------------|---------------------------------------|
//! | POST   | `/im/v1/files`                         | upload: multipart, or a raw body      |
//! | GET    | `/im/v1/files?limit=&offset=`          | the caller's files, newest first      |
//! | POST   | `/im/v1/files/uploads`                 | start a resumable upload              |
//! | GET    | `/im/v1/files/uploads/{id}`            | where it stands                       |
//! | PUT    | `/im/v1/files/uploads/{id}?offset=N`   | append a chunk at `N`                 |
//! | POST   | `/im/v1/files/uploads/{id}/complete`   | finish: the file is registered        |
//! | DELETE | `/im/v1/files/uploads/{id}`            | abandon                               |
//! | GET    | `/im/v1/files/{id}`                    | download (`Range`, `If-None-Match`)   |
//! | DELETE | `/im/v1/files/{id}`                    | delete one of the caller's files      |
//! | GET    | `/im/v1/files/{id}/thumbnail`          | an image's thumbnail                  |
//! | GET    | `/im/v1/files/{id}/meta`               | metadata                              |

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{StreamExt, TryStreamExt};
use parley_protocol::frames::Response as CoreResponse;
use parley_protocol::frames::{FileId, FileInfo, NewFile, Request as CoreRequest};
use parley_protocol::session::Identity;
use serde::{Deserialize, Serialize};

use super::http::{caller, serve, user, FileError, Labels};
use super::{Blobs, ByteStream, Staged};
use crate::Backend;

type Shared = State<Arc<dyn Backend>>;

/// The file routes (their bodies are streamed: axum's default body limit is off for them, the
/// blob store enforces `[files] max_bytes`).
pub fn router(backend: Arc<dyn Backend>) -> Router {
    Router::new()
        .route("/im/v1/files", post(upload).get(list_files))
        .route(
            "/im/v1/files/uploads",
            post(create_upload).layer(DefaultBodyLimit::max(16 * 1024)),
        )
        .route(
            "/im/v1/files/uploads/{id}",
            get(upload_status).put(append).delete(cancel_upload),
        )
        .route("/im/v1/files/uploads/{id}/complete", post(complete_upload))
        .route("/im/v1/files/{id}", get(download).delete(delete_file))
        .route("/im/v1/files/{id}/thumbnail", get(thumbnail))
        .route("/im/v1/files/{id}/meta", get(meta))
        .layer(DefaultBodyLimit::disable())
        .with_state(backend)
}

/// A file as the REST API shows it (ids as strings, times in ms).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct FileView {
    file_id: String,
    owner_user_id: String,
    name: String,
    mime_type: String,
    size: u64,
    sha256: String,
    /// Pixels, for images (0 otherwise).
    width: u32,
    height: u32,
    public: bool,
    created_at_ms: u64,
    url: String,
    /// For images only.
    #[serde(skip_serializing_if = "Option::is_none")]
    thumbnail_url: Option<String>,
}

impl From<FileInfo> for FileView {
    fn from(f: FileInfo) -> FileView {
        let id = f.id.to_string();
        FileView {
            url: format!("/im/v1/files/{id}"),
            thumbnail_url: (f.width > 0).then(|| format!("/im/v1/files/{id}/thumbnail")),
            file_id: id,
            owner_user_id: f.owner.get().to_string(),
            name: f.name,
            mime_type: f.mime,
            size: f.size,
            sha256: f.sha256,
            width: f.width,
            height: f.height,
            public: f.public,
            created_at_ms: f.created_at_ms,
        }
    }
}

fn blobs(backend: &dyn Backend) -> Result<Arc<dyn Blobs>, FileError> {
    backend
        .blobs()
        .ok_or_else(|| FileError::from_blob(super::BlobFailure::Unavailable, false))
}

/// Runs `GetFile` for the caller: the metadata, or the one "no such file".
async fn get_file(
    backend: &dyn Backend,
    who: Option<Identity>,
    id: &str,
) -> Result<FileInfo, FileError> {
    let id: FileId = id.parse().map_err(|_| FileError::no_such_file())?;
    match backend.execute(who, CoreRequest::GetFile(id)).await {
        CoreResponse::File(info) => Ok(*info),
        CoreResponse::Error(e) => Err(FileError::from_info(e)),
        _ => Err(FileError::from_info(internal())),
    }
}

fn internal() -> parley_protocol::frames::ErrorInfo {
    parley_protocol::frames::ErrorInfo::new(parley_protocol::ErrorCode::Internal, "internal error")
}

/// Registers staged bytes as the caller's file: `201` with the file.
async fn register(
    backend: &dyn Backend,
    me: Identity,
    staged: Staged,
    file: NewFile,
) -> Result<Response, FileError> {
    let request = CoreRequest::RegisterFile {
        upload: staged.token,
        file,
    };
    match backend.execute(Some(me), request).await {
        CoreResponse::File(info) => {
            let view = FileView::from(*info);
            let location = view.url.clone();
            Ok((
                StatusCode::CREATED,
                [(header::LOCATION, location)],
                Json(view),
            )
                .into_response())
        }
        CoreResponse::Error(e) => Err(FileError::from_info(e)),
        _ => Err(FileError::from_info(internal())),
    }
}

fn body_stream(body: axum::body::Body) -> ByteStream<'static> {
    body.into_data_stream()
        .map_err(std::io::Error::other)
        .boxed()
}

/// `?name=` and `?public=` of a direct upload.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UploadQuery {
    name: Option<String>,
    #[serde(default)]
    public: bool,
}

/// `POST /im/v1/files`: `multipart/form-data` (the first part with a file name, or named
/// `file`; its name and type come from the part, `?name=` overrides the name), or any other
/// body, named by `?name=` and typed by `Content-Type`. A `Content-Length` over the limit is
/// refused before anything is read.
#[utoipa::path(post, path = "/im/v1/files", tag = "files",
    params(("name" = Option<String>, Query, description = "File name (overrides the part's)"),
           ("public" = Option<bool>, Query, description = "Readable by anyone (avatars)")),
    request_body(content = Vec<u8>, description = "multipart/form-data, or the raw bytes typed by Content-Type",
        content_type = "application/octet-stream"),
    responses((status = 201, body = FileView), (status = 413, description = "Over files.max_bytes")))]
pub(crate) async fn upload(
    State(backend): Shared,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> Result<Response, FileError> {
    let Query(query) = query.map_err(|e| FileError::invalid(e.body_text()))?;
    let me = user(&*backend, request.headers()).await?;
    let blobs = blobs(&*backend)?;
    let headers = request.headers();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > blobs.max_bytes().saturating_add(64 * 1024)) {
        return Err(FileError::too_large(blobs.max_bytes()));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if content_type
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        let mut form = axum::extract::Multipart::from_request(request, &())
            .await
            .map_err(|e| FileError::invalid(e.body_text()))?;
        loop {
            let field = form
                .next_field()
                .await
                .map_err(|e| FileError::invalid(e.body_text()))?
                .ok_or_else(|| FileError::invalid("the form has no file part"))?;
            let named = field.name() == Some("file");
            let Some(name) = query
                .name
                .clone()
                .or_else(|| field.file_name().map(str::to_owned))
                .or_else(|| named.then(|| "file".to_owned()))
            else {
                continue; // another form field: skipped unread
            };
            let mime = field.content_type().unwrap_or("").to_owned();
            let file = NewFile::new(name, &mime, query.public)
                .map_err(|e| FileError::invalid(e.message()))?;
            let stream = field.map_err(std::io::Error::other).boxed();
            let staged = blobs
                .stage(me.user, stream)
                .await
                .map_err(|e| FileError::from_blob(e, false))?;
            return register(&*backend, me, staged, file).await;
        }
    }
    let name = query
        .name
        .ok_or_else(|| FileError::invalid("a raw upload needs ?name="))?;
    let file = NewFile::new(name, &content_type, query.public)
        .map_err(|e| FileError::invalid(e.message()))?;
    let staged = blobs
        .stage(me.user, body_stream(request.into_body()))
        .await
        .map_err(|e| FileError::from_blob(e, false))?;
    register(&*backend, me, staged, file).await
}

/// The body of `POST /im/v1/files/uploads`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateUpload {
    name: String,
    #[serde(default)]
    mime_type: String,
    size: u64,
    #[serde(default)]
    public: bool,
}

/// `POST /im/v1/files/uploads`: `201` with `{upload_id, offset: 0, size}`.
#[utoipa::path(post, path = "/im/v1/files/uploads", tag = "files",
    request_body = CreateUpload,
    responses((status = 201, description = "A resumable upload: its id and offset")))]
pub(crate) async fn create_upload(
    State(backend): Shared,
    headers: HeaderMap,
    body: Result<Json<CreateUpload>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, FileError> {
    let me = user(&*backend, &headers).await?;
    let Json(body) = body.map_err(|e| FileError::invalid(e.body_text()))?;
    let blobs = blobs(&*backend)?;
    if body.size > blobs.max_bytes() {
        return Err(FileError::too_large(blobs.max_bytes()));
    }
    let file = NewFile::new(body.name, &body.mime_type, body.public)
        .map_err(|e| FileError::invalid(e.message()))?;
    let status = blobs
        .create_upload(me.user, body.size, file)
        .await
        .map_err(|e| FileError::from_blob(e, true))?;
    Ok((StatusCode::CREATED, Json(status)).into_response())
}

/// `GET /im/v1/files/uploads/{id}`.
#[utoipa::path(get, path = "/im/v1/files/uploads/{id}", tag = "files",
    params(("id" = String, Path, description = "Upload id")),
    responses((status = 200, description = "The upload's offset and size")))]
pub(crate) async fn upload_status(
    State(backend): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, FileError> {
    let me = user(&*backend, &headers).await?;
    let status = blobs(&*backend)?
        .upload_status(me.user, id)
        .await
        .map_err(|e| FileError::from_blob(e, true))?;
    Ok(Json(status).into_response())
}

/// `?offset=` of a chunk.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChunkQuery {
    offset: u64,
}

/// `PUT /im/v1/files/uploads/{id}?offset=N`: the body is the bytes from `N` on. `409` (with
/// `Upload-Offset`) if the upload is elsewhere; what arrived is durable when answered.
#[utoipa::path(put, path = "/im/v1/files/uploads/{id}", tag = "files",
    params(("id" = String, Path, description = "Upload id"),
           ("offset" = u64, Query, description = "Where the body's bytes start")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, description = "The new offset (durable)"),
              (status = 409, description = "The upload is at another offset (Upload-Offset)")))]
pub(crate) async fn append(
    State(backend): Shared,
    Path(id): Path<String>,
    query: Result<Query<ChunkQuery>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> Result<Response, FileError> {
    let me = user(&*backend, request.headers()).await?;
    let Query(ChunkQuery { offset }) = query.map_err(|e| FileError::invalid(e.body_text()))?;
    let blobs = blobs(&*backend)?;
    let status = blobs
        .append(me.user, id, offset, body_stream(request.into_body()))
        .await
        .map_err(|e| FileError::from_blob(e, true))?;
    Ok(Json(status).into_response())
}

/// `POST /im/v1/files/uploads/{id}/complete`: `201` with the file, once every byte arrived
/// (`409` with `Upload-Offset` before).
#[utoipa::path(post, path = "/im/v1/files/uploads/{id}/complete", tag = "files",
    params(("id" = String, Path, description = "Upload id")),
    responses((status = 201, body = FileView)))]
pub(crate) async fn complete_upload(
    State(backend): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, FileError> {
    let me = user(&*backend, &headers).await?;
    let (staged, file) = blobs(&*backend)?
        .complete_upload(me.user, id)
        .await
        .map_err(|e| FileError::from_blob(e, true))?;
    register(&*backend, me, staged, file).await
}

/// `DELETE /im/v1/files/uploads/{id}`: `204`.
#[utoipa::path(delete, path = "/im/v1/files/uploads/{id}", tag = "files",
    params(("id" = String, Path, description = "Upload id")),
    responses((status = 204)))]
pub(crate) async fn cancel_upload(
    State(backend): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, FileError> {
    let me = user(&*backend, &headers).await?;
    blobs(&*backend)?
        .cancel_upload(me.user, id)
        .await
        .map_err(|e| FileError::from_blob(e, true))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /im/v1/files/{id}`: the bytes, for whoever may read the file (anyone for a public
/// one); everyone else gets the same `404` as for an id that does not exist.
#[utoipa::path(get, path = "/im/v1/files/{id}", tag = "files",
    params(("id" = String, Path, description = "File id"),
           ("Range" = Option<String>, Header, description = "One byte range")),
    responses((status = 200, description = "The bytes", content_type = "application/octet-stream"),
              (status = 206, description = "The range's bytes"),
              (status = 304, description = "Not modified (If-None-Match)"),
              (status = 416, description = "Range not satisfiable")))]
pub(crate) async fn download(
    State(backend): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, FileError> {
    let who = caller(&*backend, &headers).await?;
    let info = get_file(&*backend, who, &id).await?;
    let blob = blobs(&*backend)?
        .open(info.sha256.clone())
        .await
        .map_err(|e| FileError::from_blob(e, false))?;
    let labels = Labels {
        etag: &info.sha256,
        mime: &info.mime,
        public: info.public,
        name: Some(&info.name),
    };
    serve(blob, labels, &headers).await
}

/// `GET /im/v1/files/{id}/thumbnail`: a JPEG (or PNG, for transparent images) at most 256
/// pixels on its longer edge; `404` for files that are not images.
#[utoipa::path(get, path = "/im/v1/files/{id}/thumbnail", tag = "files",
    params(("id" = String, Path, description = "File id")),
    responses((status = 200, description = "A thumbnail of an image", content_type = "image/png")))]
pub(crate) async fn thumbnail(
    State(backend): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, FileError> {
    let who = caller(&*backend, &headers).await?;
    let info = get_file(&*backend, who, &id).await?;
    if info.width == 0 {
        return Err(FileError::no_such_file());
    }
    let (blob, mime) = blobs(&*backend)?
        .thumbnail(info.sha256.clone())
        .await
        .map_err(|e| FileError::from_blob(e, false))?;
    let etag = format!("{}-thumbnail", info.sha256);
    let labels = Labels {
        etag: &etag,
        mime,
        public: info.public,
        name: None,
    };
    serve(blob, labels, &headers).await
}

/// `GET /im/v1/files/{id}/meta`.
#[utoipa::path(get, path = "/im/v1/files/{id}/meta", tag = "files",
    params(("id" = String, Path, description = "File id")),
    responses((status = 200, body = FileView)))]
pub(crate) async fn meta(
    State(backend): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, FileError> {
    let who = caller(&*backend, &headers).await?;
    let info = get_file(&*backend, who, &id).await?;
    Ok(Json(FileView::from(info)).into_response())
}

/// `?limit=&offset=&kind=` of the file list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    #[serde(default)]
    limit: u32,
    #[serde(default)]
    offset: u32,
    /// `image`, `video`, `audio` or `other`; absent: every file.
    #[serde(default)]
    kind: Option<String>,
}

/// A page of the caller's files.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct FileListView {
    /// Newest first.
    files: Vec<FileView>,
    has_more: bool,
    /// The caller's files in all.
    total: u32,
}

/// `GET /im/v1/files?limit=&offset=&kind=`: the files the caller uploaded and has not
/// deleted, newest first (`limit` 1..=100, default 20; `offset` at most 10000; `kind` one of
/// `image`, `video`, `audio`, `other`: that kind only, by MIME type).
#[utoipa::path(get, path = "/im/v1/files", tag = "files",
    params(("limit" = Option<u32>, Query, description = "Files per page, 1..=100 (default 20)"),
           ("offset" = Option<u32>, Query, description = "Files skipped from the newest, at most 10000"),
           ("kind" = Option<String>, Query, description = "Only files of this kind: image, video, audio or other (by MIME type)")),
    responses((status = 200, body = FileListView)))]
pub(crate) async fn list_files(
    State(backend): Shared,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, FileError> {
    let me = user(&*backend, &headers).await?;
    let Query(q) = query.map_err(|e| FileError::invalid(e.body_text()))?;
    let limit =
        parley_protocol::frames::file_page(q.limit).map_err(|e| FileError::invalid(e.message()))?;
    let offset = parley_protocol::frames::file_offset(q.offset)
        .map_err(|e| FileError::invalid(e.message()))?;
    let kind = match q.kind.as_deref() {
        None => None,
        Some(name) => Some(
            parley_protocol::frames::FileKind::from_name(name)
                .ok_or_else(|| FileError::invalid("kind must be image, video, audio or other"))?,
        ),
    };
    match backend
        .execute(
            Some(me),
            CoreRequest::ListFiles {
                limit,
                offset,
                kind,
            },
        )
        .await
    {
        CoreResponse::Files {
            files,
            has_more,
            total,
        } => Ok(Json(FileListView {
            files: files.into_iter().map(FileView::from).collect(),
            has_more,
            total,
        })
        .into_response()),
        CoreResponse::Error(e) => Err(FileError::from_info(e)),
        _ => Err(FileError::from_info(internal())),
    }
}

/// `DELETE /im/v1/files/{id}`: `204` once the file is gone (durably); its bytes go too unless
/// another file has the same contents. Only the uploader may delete; anyone else gets the same
/// `404` as for an id that does not exist.
#[utoipa::path(delete, path = "/im/v1/files/{id}", tag = "files",
    params(("id" = String, Path, description = "File id")),
    responses((status = 204, description = "Deleted"),
              (status = 404, description = "No such file of the caller")))]
pub(crate) async fn delete_file(
    State(backend): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, FileError> {
    let me = user(&*backend, &headers).await?;
    let id: FileId = id.parse().map_err(|_| FileError::no_such_file())?;
    match backend.execute(Some(me), CoreRequest::DeleteFile(id)).await {
        CoreResponse::Ok => Ok(StatusCode::NO_CONTENT.into_response()),
        CoreResponse::Error(e) => Err(FileError::from_info(e)),
        _ => Err(FileError::from_info(internal())),
    }
}
