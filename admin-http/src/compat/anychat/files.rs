//! AnyChat's files (`/api/v1/files...`): the presigned-URL flow of AnyChat (which handed out
//! MinIO URLs), served by us. No file logic lives here: uploads are the server's resumable
//! uploads ([`crate::files::Blobs`]), the record and who may read a file are the core's
//! (`RegisterFile`, `GetFile`).
//!
//! 1. `POST /files/upload-token {fileName, fileSize, mimeType?, fileType?}` starts a resumable
//!    upload of `fileSize` bytes for the caller and answers `{fileId, uploadUrl, expiresIn}`:
//!    `fileId` is the upload's id, `uploadUrl` a signed URL valid for an hour.
//! 2. The client `PUT`s the bytes to `uploadUrl` (no token needed: the signature names the user
//!    and the upload). They stream to disk ([`crate::files::Blobs::append`]), never whole in
//!    memory; failures there answer with real HTTP statuses (403 for an expired or altered
//!    signature, 409, 413), as a storage service would.
//! 3. `POST /files/{fileId}/complete` registers the bytes as the caller's file and answers the
//!    file, whose `fileId` is now the file's own id (AnyChat's SDK takes it from this answer).
//!
//! `GET /files?fileType=&page=&pageSize=` lists the caller's files (of one kind, if asked),
//! newest first (`ListFiles`), and `DELETE /files/{fileId}` deletes one of them (`DeleteFile`:
//! only its uploader may; anyone else gets `404`). After a delete, the file's info, download
//! link and signed content URL all answer `404`.
//!
//! `GET /files/{fileId}/download?expiresMinutes=` answers a signed `downloadUrl` (default 60
//! minutes, at most a day) for a file the caller may read; the link streams the bytes to whoever
//! holds it until it expires, and access is checked again when it is used (a user who lost
//! access, or was banned, gets 404). Signed URLs are relative to the API base (`/files/...`, as
//! AnyChat's SDK joins them to its base URL) and signed with HMAC-SHA-256 under a key drawn at
//! start ([`sign`]): a restart invalidates outstanding links.
//!
//! File answers carry every key in both casings (`fileId` and `file_id`, ...), as AnyChat's
//! clients of both eras read one or the other.

use std::sync::{Arc, OnceLock};

use axum::body::Body as HttpBody;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::{delete, get, post, put, MethodRouter};
use axum::Json;
use futures::{StreamExt, TryStreamExt};
use parley_protocol::frames::{FileId, FileInfo, NewFile, Request, Response};
use parley_protocol::ids::{DeviceId, UserId};
use parley_protocol::session::Identity;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::AnyError;
use super::extract::{Body, Me, Path, Query};
use super::views::{self, ok, Reply};
use super::AnyChat;
use crate::files::{BlobFailure, Blobs};

/// The file operations of the contract, as (method, path below `/api/v1`, handler).
pub(super) fn table() -> Vec<(&'static str, &'static str, MethodRouter<AnyChat>)> {
    vec![
        ("POST", "/files/upload-token", post(upload_token)),
        ("POST", "/files/{fileId}/complete", post(complete)),
        ("GET", "/files", get(list)),
        ("GET", "/files/{fileId}", get(info)),
        ("DELETE", "/files/{fileId}", delete(remove)),
        ("GET", "/files/{fileId}/download", get(download_url)),
    ]
}

/// The signed URLs this module hands out, below `/api/v1` (not operations of the contract: the
/// contract's clients reach them through `uploadUrl` and `downloadUrl`).
pub(super) fn signed_rows() -> Vec<(&'static str, &'static str, MethodRouter<AnyChat>)> {
    vec![
        (
            "PUT",
            "/files/{fileId}/upload",
            // The body streams to disk; the blob store enforces `[files] max_bytes`.
            put(upload_bytes).layer(DefaultBodyLimit::disable()),
        ),
        ("GET", "/files/{fileId}/content", get(content)),
    ]
}

/// How long an upload URL is valid, in seconds.
const UPLOAD_TTL_SECS: u64 = 3600;
/// A download URL's validity when the client names none, and at most, in minutes.
const DEFAULT_DOWNLOAD_MINUTES: u64 = 60;
const MAX_DOWNLOAD_MINUTES: u64 = 24 * 60;
/// The device a signed link acts on (its user's identity is re-read when it is used).
const LINK_DEVICE: &str = "anychat-link";

// ---- signatures -------------------------------------------------------------------------------

/// The key of the dialect's link and call-token signatures (admin tokens have their own, in
/// the router's state: admin.rs): 32 bytes from
/// the OS's CSPRNG, drawn once per process. Nothing signed survives a restart, which is what
/// these short-lived links and tokens need.
fn key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(rand::random)
}

/// HMAC-SHA-256 (RFC 2104) of `message` under `key`.
pub(super) fn hmac(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// The signature (64 hex digits) of `fields`, each length-prefixed so no two lists of fields
/// sign alike. The first field names what is signed (`"put"`, `"get"`, `"call"`, `"admin"`),
/// so a signature of one kind is never valid as another.
pub(super) fn sign(fields: &[&str]) -> String {
    let mut message = Vec::new();
    for f in fields {
        message.extend_from_slice(&(f.len() as u32).to_be_bytes());
        message.extend_from_slice(f.as_bytes());
    }
    hex(&hmac(key(), &message))
}

/// Whether `signature` is [`sign`] of `fields` (compared in constant time).
pub(super) fn verify(fields: &[&str], signature: &str) -> bool {
    let expected = sign(fields);
    expected.len() == signature.len() && bool::from(expected.as_bytes().ct_eq(signature.as_bytes()))
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Now, Unix seconds.
pub(super) fn now_secs() -> u64 {
    views::now_ms() / 1000
}

/// `?u=<user>&e=<expiry, Unix s>&s=<signature>` of a signed link.
#[derive(Deserialize)]
struct Signed {
    u: String,
    e: u64,
    s: String,
}

/// A signed link's query for `kind` of `id`, for `user`, valid `ttl` seconds.
fn signed_query(kind: &str, id: &str, user: UserId, ttl: u64) -> String {
    let u = views::user_id(user);
    let e = (now_secs() + ttl).to_string();
    let s = sign(&[kind, id, &u, &e]);
    format!("u={u}&e={e}&s={s}")
}

/// The user a signed link of `kind` for `id` was made for, if it is intact and unexpired.
fn check_link(kind: &str, id: &str, q: &Signed) -> Result<UserId, AnyError> {
    if !verify(&[kind, id, &q.u, &q.e.to_string()], &q.s) {
        return Err(AnyError::forbidden("the link's signature does not match"));
    }
    if q.e < now_secs() {
        return Err(AnyError::forbidden("the link has expired"));
    }
    views::parse_user(&q.u).ok_or_else(|| AnyError::forbidden("the link names no user"))
}

/// An error of a signed link, with the HTTP status of its code (a storage service's links
/// answer real statuses: clients check them, not an envelope).
fn link_error(e: AnyError) -> HttpResponse {
    let status = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"code": e.code, "message": e.message, "data": null});
    (status, Json(body)).into_response()
}

// ---- views ------------------------------------------------------------------------------------

/// AnyChat's `fileType` of a MIME type: `image`, `video`, `audio` or `file`.
fn file_type(mime: &str) -> &'static str {
    match mime.split('/').next().unwrap_or("") {
        "image" => "image",
        "video" => "video",
        "audio" => "audio",
        _ => "file",
    }
}

/// A file, every key in both casings, with a download link for `viewer` valid an hour.
fn file_view(f: &FileInfo, viewer: UserId) -> Value {
    let id = f.id.to_string();
    let url = download_link(&id, viewer, DEFAULT_DOWNLOAD_MINUTES * 60);
    let kind = file_type(&f.mime);
    let owner = views::user_id(f.owner);
    let created = views::secs(f.created_at_ms);
    json!({
        "fileId": id, "file_id": id,
        "fileName": f.name, "file_name": f.name,
        "fileType": kind, "file_type": kind,
        "fileSize": f.size, "file_size": f.size,
        "mimeType": f.mime, "mime_type": f.mime,
        "sha256": f.sha256,
        "width": f.width,
        "height": f.height,
        "ownerId": owner, "owner_id": owner, "userId": owner, "user_id": owner,
        "status": "completed",
        "downloadUrl": url, "download_url": url,
        "createdAt": created, "created_at": created,
    })
}

fn download_link(id: &str, user: UserId, ttl: u64) -> String {
    format!("/files/{id}/content?{}", signed_query("get", id, user, ttl))
}

fn blobs(any: &AnyChat) -> Result<Arc<dyn Blobs>, AnyError> {
    any.backend
        .blobs()
        .ok_or_else(|| AnyError::new(503, "files are not available on this server"))
}

fn blob_error(e: BlobFailure) -> AnyError {
    match e {
        BlobFailure::NotFound => AnyError::not_found("no such file"),
        BlobFailure::TooLarge { max } => AnyError::new(
            413,
            format!("the file is larger than allowed ({max} bytes)"),
        ),
        BlobFailure::Conflict { offset } => AnyError::conflict(format!(
            "the upload already holds {offset} bytes: complete it, or ask for a new upload token"
        )),
        BlobFailure::TooMany => AnyError::new(429, "too many uploads in progress"),
        BlobFailure::Body(m) => AnyError::invalid(format!("reading the body: {m}")),
        BlobFailure::Unavailable => AnyError::new(503, "files are not available on this server"),
        BlobFailure::Internal => AnyError::internal(),
    }
}

/// A file id from a path (`404` for anything that cannot be one: ids cannot be probed).
fn file_id(raw: &str) -> Result<FileId, AnyError> {
    raw.parse().map_err(|_| AnyError::not_found("no such file"))
}

/// `GetFile` as `who`.
async fn get_file(any: &AnyChat, who: &Identity, id: FileId) -> Result<FileInfo, AnyError> {
    match any.call(who, Request::GetFile(id)).await? {
        Response::File(f) => Ok(*f),
        other => Err(super::super::unexpected(&other).into()),
    }
}

// ---- the upload flow ----------------------------------------------------------------------------

/// A string or a number in a body (`fileSize: 1024` or `"1024"`).
#[derive(Deserialize)]
#[serde(untagged)]
enum Num {
    N(u64),
    S(String),
}

impl Num {
    fn value(&self) -> Option<u64> {
        match self {
            Num::N(n) => Some(*n),
            Num::S(s) => s.trim().parse().ok(),
        }
    }
}

/// `POST /files/upload-token` body, in either casing. `fileType` (a name, or the SDK's number)
/// and `expiresHours` are accepted; the type is read from the bytes and the MIME type instead.
#[derive(Deserialize)]
struct UploadTokenBody {
    #[serde(alias = "file_name", alias = "name")]
    #[serde(rename = "fileName")]
    file_name: Option<String>,
    #[serde(alias = "file_size", alias = "size")]
    #[serde(rename = "fileSize")]
    file_size: Option<Num>,
    #[serde(alias = "mime_type")]
    #[serde(rename = "mimeType")]
    mime_type: Option<String>,
}

/// `POST /files/upload-token`.
async fn upload_token(
    State(any): State<AnyChat>,
    Me(me): Me,
    Body(body): Body<UploadTokenBody>,
) -> Reply {
    let name = body
        .file_name
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| AnyError::invalid("fileName is required"))?;
    let size = body
        .file_size
        .as_ref()
        .and_then(Num::value)
        .filter(|n| *n > 0)
        .ok_or_else(|| AnyError::invalid("fileSize must be a number of bytes above 0"))?;
    let file = NewFile::new(name, body.mime_type.as_deref().unwrap_or(""), false)
        .map_err(|e| AnyError::invalid(e.message()))?;
    let blobs = blobs(&any)?;
    if size > blobs.max_bytes() {
        return Err(AnyError::new(
            413,
            format!(
                "the file is larger than allowed ({} bytes)",
                blobs.max_bytes()
            ),
        ));
    }
    let upload = blobs
        .create_upload(me.user, size, file)
        .await
        .map_err(blob_error)?;
    let id = upload.upload_id;
    let url = format!(
        "/files/{id}/upload?{}",
        signed_query("put", &id, me.user, UPLOAD_TTL_SECS)
    );
    ok(json!({
        "fileId": id, "file_id": id,
        "uploadUrl": url, "upload_url": url,
        "method": "PUT",
        "expiresIn": UPLOAD_TTL_SECS, "expires_in": UPLOAD_TTL_SECS,
    }))
}

/// `PUT /files/{fileId}/upload?u=&e=&s=`: the bytes of an upload, streamed to disk. Real HTTP
/// statuses: 200, 403 (signature), 404, 409 (bytes already there), 413.
async fn upload_bytes(
    State(any): State<AnyChat>,
    Path(id): Path<String>,
    query: Result<axum::extract::Query<Signed>, axum::extract::rejection::QueryRejection>,
    body: HttpBody,
) -> HttpResponse {
    let result = async {
        let axum::extract::Query(q) =
            query.map_err(|_| AnyError::forbidden("the link is not signed"))?;
        let user = check_link("put", &id, &q)?;
        let stream = body
            .into_data_stream()
            .map_err(std::io::Error::other)
            .boxed();
        let status = blobs(&any)?
            .append(user, id.clone(), 0, stream)
            .await
            .map_err(blob_error)?;
        Ok::<_, AnyError>(json!({
            "fileId": id, "file_id": id,
            "received": status.offset,
            "fileSize": status.size, "file_size": status.size,
        }))
    }
    .await;
    match result {
        Ok(data) => Json(json!({"code": 0, "message": "success", "data": data})).into_response(),
        Err(e) => link_error(e),
    }
}

/// `POST /files/{fileId}/complete`: once every byte arrived, the upload becomes the caller's
/// file (`409` before).
async fn complete(State(any): State<AnyChat>, Me(me): Me, Path(id): Path<String>) -> Reply {
    let (staged, file) = blobs(&any)?
        .complete_upload(me.user, id)
        .await
        .map_err(blob_error)?;
    let request = Request::RegisterFile {
        upload: staged.token,
        file,
    };
    match any.call(&me, request).await? {
        Response::File(f) => ok(file_view(&f, me.user)),
        other => Err(super::super::unexpected(&other).into()),
    }
}

// ---- reading ----------------------------------------------------------------------------------

/// `GET /files/{fileId}`: a file the caller may read; the caller's upload still in progress
/// (`status: "uploading"`); else `404`.
async fn info(State(any): State<AnyChat>, Me(me): Me, Path(id): Path<String>) -> Reply {
    let fid = file_id(&id)?;
    match get_file(&any, &me, fid).await {
        Ok(f) => ok(file_view(&f, me.user)),
        Err(e) if e.code == 404 => {
            let upload = blobs(&any)?
                .upload_status(me.user, id.clone())
                .await
                .map_err(|_| e)?;
            ok(json!({
                "fileId": id, "file_id": id,
                "status": "uploading",
                "fileSize": upload.size, "file_size": upload.size,
                "received": upload.offset,
            }))
        }
        Err(e) => Err(e),
    }
}

/// `GET /files/{fileId}/download?expiresMinutes=` query.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DownloadQuery {
    #[serde(alias = "expires_minutes")]
    expires_minutes: Option<u64>,
}

/// `GET /files/{fileId}/download`: a signed, expiring link to the bytes.
async fn download_url(
    State(any): State<AnyChat>,
    Me(me): Me,
    Path(id): Path<String>,
    Query(q): Query<DownloadQuery>,
) -> Reply {
    let fid = file_id(&id)?;
    get_file(&any, &me, fid).await?;
    let minutes = match q.expires_minutes {
        None | Some(0) => DEFAULT_DOWNLOAD_MINUTES,
        Some(m) => m.min(MAX_DOWNLOAD_MINUTES),
    };
    let ttl = minutes * 60;
    let url = download_link(&id, me.user, ttl);
    ok(json!({
        "fileId": id, "file_id": id,
        "downloadUrl": url, "download_url": url,
        "expiresIn": ttl, "expires_in": ttl,
    }))
}

/// `GET /files/{fileId}/content?u=&e=&s=`: the bytes, streamed (64 KiB reads), if the link is
/// intact and unexpired and its user may still read the file. Real HTTP statuses.
async fn content(
    State(any): State<AnyChat>,
    Path(id): Path<String>,
    query: Result<axum::extract::Query<Signed>, axum::extract::rejection::QueryRejection>,
) -> HttpResponse {
    let result = async {
        let axum::extract::Query(q) =
            query.map_err(|_| AnyError::forbidden("the link is not signed"))?;
        let user = check_link("get", &id, &q)?;
        let fid = file_id(&id)?;
        let device = DeviceId::try_from(LINK_DEVICE).map_err(|_| AnyError::internal())?;
        // Who the link was made for, now (unknown and banned users are refused).
        let who = any
            .backend
            .trusted_identity(user.get().to_string(), device)
            .await
            .map_err(|_| AnyError::not_found("no such file"))?;
        let f = get_file(&any, &who, fid).await?;
        let blob = blobs(&any)?
            .open(f.sha256.clone())
            .await
            .map_err(blob_error)?;
        Ok::<_, AnyError>((f, blob))
    }
    .await;
    let (f, blob) = match result {
        Ok(v) => v,
        Err(e) => return link_error(e),
    };
    let stream = tokio_util::io::ReaderStream::with_capacity(blob.file, 64 * 1024);
    let mut response = HttpBody::from_stream(stream).into_response();
    let headers = response.headers_mut();
    let mut put = |name: header::HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    put(header::CONTENT_TYPE, &f.mime);
    put(header::CONTENT_LENGTH, &blob.len.to_string());
    put(header::ETAG, &format!("\"{}\"", f.sha256));
    put(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // Whatever the type claims, nothing served here may run scripts as our origin.
    put(
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; sandbox",
    );
    put(header::CACHE_CONTROL, "private, no-store");
    let ascii: String = f
        .name
        .chars()
        .map(|c| match c.is_ascii_graphic() && c != '"' && c != '\\' {
            true => c,
            false => '_',
        })
        .collect();
    put(
        header::CONTENT_DISPOSITION,
        &format!("attachment; filename=\"{ascii}\""),
    );
    response
}

// ---- listing and deleting -----------------------------------------------------------------------

/// `GET /files?fileType=&page=&pageSize=` query (either casing; numbers as text, checked).
#[derive(Deserialize, Default)]
struct ListQuery {
    #[serde(alias = "file_type", rename = "fileType")]
    file_type: Option<String>,
    page: Option<String>,
    #[serde(alias = "page_size", rename = "pageSize")]
    page_size: Option<String>,
}

/// A positive page number or size from a query (`None`: absent or empty).
fn number(what: &str, raw: Option<&str>) -> Result<Option<u32>, AnyError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => t
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| AnyError::invalid(format!("{what} must be a number above 0"))),
    }
}

/// `GET /files?fileType=&page=&pageSize=`: the caller's files, newest first (`ListFiles`):
/// `{files, total, page, pageSize}`, `pageSize` 20 by default and at most 100. The core pages
/// by offset up to 10000 files deep: a page beyond answers `400`. `fileType` (`image`, `video`,
/// `audio` or `file`; absent or empty: every file) lists that kind only, counted in `total`;
/// another value answers `400`.
async fn list(State(any): State<AnyChat>, Me(me): Me, Query(q): Query<ListQuery>) -> Reply {
    use parley_protocol::frames::FileKind;
    let kind = match q.file_type.as_deref().map(str::trim) {
        None | Some("") => None,
        Some("image") => Some(FileKind::Image),
        Some("video") => Some(FileKind::Video),
        Some("audio") => Some(FileKind::Audio),
        Some("file") => Some(FileKind::Other),
        Some(_) => {
            return Err(AnyError::invalid(
                "fileType must be image, video, audio or file",
            ))
        }
    };
    let page = number("page", q.page.as_deref())?.unwrap_or(1);
    let size = number("pageSize", q.page_size.as_deref())?
        .unwrap_or(parley_protocol::frames::DEFAULT_FILE_PAGE)
        .min(parley_protocol::frames::MAX_FILE_PAGE);
    let offset = u64::from(page - 1) * u64::from(size);
    let offset = u32::try_from(offset)
        .ok()
        .filter(|o| *o <= parley_protocol::frames::MAX_FILE_OFFSET)
        .ok_or_else(|| AnyError::invalid("page is too far: at most 10000 files are skipped"))?;
    let request = Request::ListFiles {
        limit: size,
        offset,
        kind,
    };
    match any.call(&me, request).await? {
        Response::Files { files, total, .. } => {
            let files: Vec<Value> = files.iter().map(|f| file_view(f, me.user)).collect();
            ok(json!({"files": files, "total": total, "page": page, "pageSize": size}))
        }
        other => Err(super::super::unexpected(&other).into()),
    }
}

/// `DELETE /files/{fileId}`: deletes one of the caller's files (`DeleteFile`): its record at
/// once (reads and downloads answer `404` after), its bytes unless another file has the same
/// contents. Anyone but the uploader gets `404`, as for an unknown id.
async fn remove(State(any): State<AnyChat>, Me(me): Me, Path(id): Path<String>) -> Reply {
    let fid = file_id(&id)?;
    match any.call(&me, Request::DeleteFile(fid)).await? {
        Response::Ok => ok(Value::Null),
        other => Err(super::super::unexpected(&other).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_an_independent_implementation_and_signatures_check() {
        // Checked against an independent implementation (Python's `hmac` module).
        let key = [0x0bu8; 32];
        let mac = hex(&hmac(&key, b"Hi There"));
        assert_eq!(
            mac,
            "198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7"
        );
        let s = sign(&["get", "abc", "u", "10"]);
        assert!(verify(&["get", "abc", "u", "10"], &s));
        assert!(!verify(&["put", "abc", "u", "10"], &s));
        assert!(!verify(&["get", "abc", "u", "11"], &s));
        // Length prefixes: moving a boundary changes the signature.
        assert_ne!(sign(&["ab", "c"]), sign(&["a", "bc"]));
    }

    #[test]
    fn links_are_refused_once_expired_or_altered() {
        let user = UserId::try_from(42).unwrap();
        let query = |q: String| {
            let pairs: std::collections::HashMap<_, _> = q
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            Signed {
                u: pairs["u"].clone(),
                e: pairs["e"].parse().unwrap(),
                s: pairs["s"].clone(),
            }
        };
        let good = query(signed_query("get", "f1", user, 60));
        assert_eq!(check_link("get", "f1", &good), Ok(user));
        assert_eq!(check_link("put", "f1", &good).unwrap_err().code, 403);
        assert_eq!(check_link("get", "f2", &good).unwrap_err().code, 403);
        // Correctly signed, but its time is past.
        let u = views::user_id(user);
        let e = now_secs() - 1;
        let s = sign(&["get", "f1", &u, &e.to_string()]);
        let expired = Signed { u, e, s };
        let refused = check_link("get", "f1", &expired).unwrap_err();
        assert_eq!(
            (refused.code, refused.message.as_str()),
            (403, "the link has expired")
        );
    }
}
