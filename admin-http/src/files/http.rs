//! The HTTP side of files: the error body, bearer authentication, `Range` parsing, and the
//! headers every download carries.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use parley_protocol::frames::ErrorInfo;
use parley_protocol::session::Identity;
use parley_protocol::ErrorCode;
use serde_json::json;
use tokio::io::AsyncSeekExt;

/// Bytes read from a blob per step of a download (one blocking-pool read each): large enough
/// that the hand-offs cost little next to the copy (64 KiB ran at half `cp`'s speed), small
/// enough that many concurrent downloads stay cheap.
const DOWNLOAD_CHUNK: usize = 256 * 1024;

/// The body of a download: `count` bytes of `file` from its current position, read by the
/// blocking pool one [`DOWNLOAD_CHUNK`] at a time straight into the buffer that is handed to the
/// connection (no second copy, unlike a `tokio::fs::File` behind a `ReaderStream`), with the
/// next chunk's read started as soon as one is handed on, so the disk (or page cache) and the
/// socket work at the same time. A download holds a blocking thread only while one read runs,
/// never while a slow client drains the socket. A read error ends the body with that error
/// (the connection is closed mid-body, as for any failed download).
async fn file_body(file: tokio::fs::File, count: u64) -> Body {
    use futures::FutureExt;
    use std::io::Read;
    use std::sync::Arc;

    type Pending = tokio::task::JoinHandle<std::io::Result<bytes::Bytes>>;
    fn read_next(file: &Arc<std::fs::File>, left: u64) -> Option<Pending> {
        if left == 0 {
            return None;
        }
        let file = file.clone();
        let want = left.min(DOWNLOAD_CHUNK as u64);
        Some(tokio::task::spawn_blocking(move || {
            let mut chunk = Vec::with_capacity(want as usize);
            // `read_to_end` on a `File` reads into the spare capacity without zeroing it first.
            (&*file).take(want).read_to_end(&mut chunk)?;
            if chunk.is_empty() {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            Ok(bytes::Bytes::from(chunk))
        }))
    }

    let file = Arc::new(file.into_std().await);
    let first = read_next(&file, count);
    let stream =
        futures::stream::unfold((file, count, first), |(file, left, pending)| async move {
            let chunk = match pending?
                .map(|joined| joined.unwrap_or_else(|e| Err(std::io::Error::other(e))))
                .await
            {
                Ok(chunk) => chunk,
                Err(e) => return Some((Err(e), (file, 0, None))),
            };
            let left = left.saturating_sub(chunk.len() as u64);
            let next = read_next(&file, left);
            Some((Ok(chunk), (file, left, next)))
        });
    Body::from_stream(stream)
}

use super::{BlobFailure, BlobFile};
use crate::Backend;

/// A failed files request: `{"error":{"code":"...","message":"..."}}` with its status.
#[derive(Debug)]
pub(crate) struct FileError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// For a resumable upload's conflicts: where it is (`Upload-Offset`).
    offset: Option<u64>,
}

impl FileError {
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        FileError {
            status,
            code,
            message: message.into(),
            offset: None,
        }
    }

    /// The one answer for a file that does not exist or that the caller may not read: the
    /// same status, body and headers either way.
    pub(super) fn no_such_file() -> Self {
        FileError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such file")
    }

    pub(super) fn invalid(message: impl Into<String>) -> Self {
        FileError::new(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message)
    }

    pub(super) fn too_large(max: u64) -> Self {
        FileError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            format!("files are limited to {max} bytes"),
        )
    }

    fn unauthenticated(message: impl Into<String>) -> Self {
        FileError::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", message)
    }

    /// A core error, with the status and code the REST API gives it (`rest::error`), except
    /// that "not found" is always the one answer for files.
    pub(super) fn from_info(e: ErrorInfo) -> Self {
        if e.code == ErrorCode::NotFound {
            return FileError::no_such_file();
        }
        let (status, code) = (
            crate::rest::error::status(e.code),
            crate::rest::error::code_name(e.code),
        );
        FileError::new(status, code, e.message)
    }

    /// A blob failure; `what` names the missing thing ("file" or "upload").
    pub(super) fn from_blob(e: BlobFailure, upload: bool) -> Self {
        match e {
            BlobFailure::NotFound if upload => {
                FileError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such upload")
            }
            BlobFailure::NotFound => FileError::no_such_file(),
            BlobFailure::TooLarge { max } => FileError::too_large(max),
            BlobFailure::Conflict { offset } => FileError {
                offset: Some(offset),
                ..FileError::new(
                    StatusCode::CONFLICT,
                    "CONFLICT",
                    format!("the upload is at offset {offset}"),
                )
            },
            BlobFailure::TooMany => FileError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                "too many uploads in progress",
            ),
            BlobFailure::Body(why) => {
                FileError::invalid(format!("the request body broke off: {why}"))
            }
            BlobFailure::Unavailable => FileError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "files are not available on this server",
            ),
            BlobFailure::Internal => FileError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "internal error",
            ),
        }
    }
}

impl IntoResponse for FileError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"parley\""),
            );
        }
        if let Some(offset) = self.offset {
            headers.insert("upload-offset", HeaderValue::from(offset));
        }
        response
    }
}

/// The caller named by `Authorization: Bearer <access token>` (`None`: no such header). A
/// header that is there but not a valid token is refused (401), never taken as anonymous.
pub(super) async fn caller(
    backend: &dyn Backend,
    headers: &HeaderMap,
) -> Result<Option<Identity>, FileError> {
    let token = match crate::bearer(headers) {
        crate::Bearer::Missing => return Ok(None),
        crate::Bearer::Malformed => {
            return Err(FileError::unauthenticated(
                "Authorization must be Bearer <token>",
            ))
        }
        crate::Bearer::Token(token) => token,
    };
    match backend.authenticate_bearer(token.to_owned()).await {
        Ok(identity) => Ok(Some(identity)),
        Err(e) => Err(FileError::from_info(e)),
    }
}

/// [`caller`], required.
pub(super) async fn user(
    backend: &dyn Backend,
    headers: &HeaderMap,
) -> Result<Identity, FileError> {
    caller(backend, headers)
        .await?
        .ok_or_else(|| FileError::unauthenticated("log in first (Authorization: Bearer <token>)"))
}

/// What a `Range` header asks of a representation of `len` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ranged {
    /// The whole (no header, several ranges, or one the server ignores as malformed).
    Whole,
    /// Bytes `first..=last`.
    Part(u64, u64),
    /// Starts past the end: 416.
    Unsatisfiable,
}

/// Parses a single `bytes=` range (RFC 9110 §14.1.2). Several ranges are answered with the
/// whole representation, as the RFC allows.
pub(super) fn ranged(header: Option<&str>, len: u64) -> Ranged {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ranged::Whole;
    };
    if spec.contains(',') {
        return Ranged::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ranged::Whole;
    };
    let num = |s: &str| match s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        true => None,
        false => s.parse::<u64>().ok(),
    };
    match (a.is_empty(), num(a), num(b)) {
        // bytes=-n: the last n bytes.
        (true, _, Some(n)) => match (n, len) {
            (0, _) | (_, 0) => Ranged::Unsatisfiable,
            (n, len) => Ranged::Part(len - n.min(len), len - 1),
        },
        (false, Some(first), last) if b.is_empty() || last.is_some() => {
            if last.is_some_and(|l| l < first) {
                return Ranged::Whole;
            }
            if first >= len {
                return Ranged::Unsatisfiable;
            }
            Ranged::Part(first, last.map_or(len - 1, |l| l.min(len - 1)))
        }
        _ => Ranged::Whole,
    }
}

/// How a download is labelled.
pub(super) struct Labels<'a> {
    /// Strong validator (quoted here).
    pub etag: &'a str,
    pub mime: &'a str,
    pub public: bool,
    /// `Content-Disposition` file name (`None`: none sent).
    pub name: Option<&'a str>,
}

/// Whether a browser may show this type in place (images but SVG, audio, video, plain text);
/// everything else is sent as an attachment, so an uploaded HTML page never runs as our origin.
fn inline(mime: &str) -> bool {
    (mime.starts_with("image/") && mime != "image/svg+xml")
        || mime.starts_with("audio/")
        || mime.starts_with("video/")
        || mime == "text/plain"
}

/// `Content-Disposition` with an ASCII fallback name and the exact name (RFC 6266, 8187).
fn disposition(mime: &str, name: &str) -> String {
    let kind = if inline(mime) { "inline" } else { "attachment" };
    let ascii: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect();
    let mut exact = String::new();
    for b in name.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => exact.push(b as char),
            b'!' | b'#' | b'$' | b'&' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~' => {
                exact.push(b as char)
            }
            _ => exact.push_str(&format!("%{b:02X}")),
        }
    }
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{exact}")
}

/// Streams `blob` as the answer to a GET: `304` if `If-None-Match` names it, `206` for a
/// satisfiable single range (unless `If-Range` names another version), `416` for one past the
/// end, else `200`; never more than a 64 KiB read buffer in memory.
pub(super) async fn serve(
    mut blob: BlobFile,
    labels: Labels<'_>,
    request: &HeaderMap,
) -> Result<Response, FileError> {
    let etag = format!("\"{}\"", labels.etag);
    let mut headers = HeaderMap::new();
    let mut put = |name: header::HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    put(header::ETAG, &etag);
    put(
        header::CACHE_CONTROL,
        match labels.public {
            true => "public, max-age=31536000, immutable",
            false => "private, max-age=31536000, immutable",
        },
    );
    put(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    put(header::ACCEPT_RANGES, "bytes");
    // Whatever the type claims, nothing served here may run scripts as our origin.
    put(
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; sandbox",
    );
    put(header::VARY, "Authorization");
    if let Some(name) = labels.name {
        put(header::CONTENT_DISPOSITION, &disposition(labels.mime, name));
    }
    let header_str = |h: header::HeaderName| request.get(h).and_then(|v| v.to_str().ok());
    if header_str(header::IF_NONE_MATCH)
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return Ok((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    let len = blob.len;
    let mut range = ranged(header_str(header::RANGE), len);
    if header_str(header::IF_RANGE).is_some_and(|v| v.trim() != etag) {
        range = Ranged::Whole;
    }
    let (status, first, count) = match range {
        Ranged::Whole => (StatusCode::OK, 0, len),
        Ranged::Part(first, last) => {
            put(
                header::CONTENT_RANGE,
                &format!("bytes {first}-{last}/{len}"),
            );
            (StatusCode::PARTIAL_CONTENT, first, last - first + 1)
        }
        Ranged::Unsatisfiable => {
            put(header::CONTENT_RANGE, &format!("bytes */{len}"));
            let mut e = FileError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "RANGE_NOT_SATISFIABLE",
                format!("the file has {len} bytes"),
            )
            .into_response();
            for name in [header::CONTENT_RANGE, header::ETAG, header::ACCEPT_RANGES] {
                if let Some(v) = headers.remove(&name) {
                    e.headers_mut().insert(name, v);
                }
            }
            return Ok(e);
        }
    };
    put(header::CONTENT_TYPE, labels.mime);
    put(header::CONTENT_LENGTH, &count.to_string());
    if first > 0 {
        blob.file
            .seek(std::io::SeekFrom::Start(first))
            .await
            .map_err(|_| FileError::from_blob(BlobFailure::Internal, false))?;
    }
    let body = file_body(blob.file, count).await;
    Ok((status, headers, body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_ranges_parse_and_the_rest_is_whole_or_unsatisfiable() {
        let r = |h: &str| ranged(Some(h), 100);
        assert_eq!(ranged(None, 100), Ranged::Whole);
        assert_eq!(r("bytes=0-9"), Ranged::Part(0, 9));
        assert_eq!(r("bytes=90-"), Ranged::Part(90, 99));
        assert_eq!(r("bytes=90-500"), Ranged::Part(90, 99));
        assert_eq!(r("bytes=-10"), Ranged::Part(90, 99));
        assert_eq!(r("bytes=-500"), Ranged::Part(0, 99));
        assert_eq!(r("bytes=100-"), Ranged::Unsatisfiable);
        assert_eq!(r("bytes=-0"), Ranged::Unsatisfiable);
        assert_eq!(ranged(Some("bytes=0-"), 0), Ranged::Unsatisfiable);
        for whole in [
            "bytes=0-1,5-6",
            "bytes=5-1",
            "items=0-1",
            "bytes=x-1",
            "bytes=-",
            "bytes=+1-2",
        ] {
            assert_eq!(r(whole), Ranged::Whole, "{whole}");
        }
    }

    #[test]
    fn only_harmless_types_are_inline_and_names_are_encoded() {
        assert_eq!(
            disposition("image/png", "a \"b\".png"),
            "inline; filename=\"a _b_.png\"; filename*=UTF-8''a%20%22b%22.png"
        );
        assert!(disposition("text/html", "x.html").starts_with("attachment;"));
        assert!(disposition("image/svg+xml", "x.svg").starts_with("attachment;"));
        assert!(disposition("application/pdf", "中.pdf").ends_with("%E4%B8%AD.pdf"));
    }
}
