//! The file module: `POST /fserv/upload` (a multipart form's first file part, or a raw
//! `application/octet-stream` body named by `?name=`), streamed to the server's file store and
//! registered as the caller's file (`RegisterFile`): `201 {fid}`; and
//! `GET /f/fserv/download/{fid}`, streamed back to whoever the core lets read it (`GetFile`:
//! its owner, and the members of a chat it was sent in); everyone else gets the same `404` as
//! for an unknown fid, so fids cannot be probed.

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, Path, Request as HttpRequest, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::Json;
use futures::TryStreamExt;
use parley_protocol::frames::{FileId, FileInfo, NewFile, Request, Response};
use parley_protocol::session::Identity;
use serde_json::json;

use super::users::path;
use super::{Caller, Wetty, WtError};
use crate::compat::unexpected;
use crate::files::{BlobFailure, Blobs, Staged};

fn blobs(wt: &Wetty) -> Result<std::sync::Arc<dyn Blobs>, WtError> {
    wt.backend
        .blobs()
        .ok_or_else(|| blob_error(BlobFailure::Unavailable))
}

fn blob_error(e: BlobFailure) -> WtError {
    match e {
        BlobFailure::NotFound => WtError::not_found("no such file"),
        BlobFailure::TooLarge { max } => WtError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a file is limited to {max} bytes"),
        ),
        BlobFailure::Body(m) => WtError::invalid(m),
        BlobFailure::Unavailable => WtError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "files are not available on this server",
        ),
        BlobFailure::Conflict { .. } | BlobFailure::TooMany => {
            WtError::new(StatusCode::CONFLICT, e.to_string())
        }
        BlobFailure::Internal => WtError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    }
}

async fn register(
    wt: &Wetty,
    me: &Identity,
    staged: Staged,
    file: NewFile,
) -> Result<FileInfo, WtError> {
    let request = Request::RegisterFile {
        upload: staged.token,
        file,
    };
    match wt.call(me, request).await? {
        Response::File(info) => Ok(*info),
        other => Err(unexpected(&other).into()),
    }
}

/// `?name=` of a raw upload.
#[derive(Debug, Default, serde::Deserialize)]
struct UploadQuery {
    #[serde(default)]
    name: Option<String>,
}

/// `POST /fserv/upload`: `201 {fid, name, size, mime_type}`.
pub async fn upload(
    State(wt): State<Wetty>,
    Caller(me): Caller,
    request: HttpRequest,
) -> Result<HttpResponse, WtError> {
    let blobs = blobs(&wt)?;
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > blobs.max_bytes().saturating_add(64 * 1024)) {
        return Err(blob_error(BlobFailure::TooLarge {
            max: blobs.max_bytes(),
        }));
    }
    let info = if content_type.starts_with("multipart/form-data") {
        let mut form = axum::extract::Multipart::from_request(request, &())
            .await
            .map_err(|e| WtError::invalid(e.body_text()))?;
        let mut stored = None;
        while let Some(field) = form
            .next_field()
            .await
            .map_err(|e| WtError::invalid(e.body_text()))?
        {
            // The first part with a file name (or named `file`) is the file; others are
            // skipped unread.
            if field.file_name().is_none() && field.name() != Some("file") {
                continue;
            }
            let name = field
                .file_name()
                .filter(|n| !n.is_empty())
                .unwrap_or("file")
                .to_owned();
            let mime = field.content_type().unwrap_or("").to_owned();
            let file =
                NewFile::new(name, &mime, false).map_err(|e| WtError::invalid(e.message()))?;
            let stream = Box::pin(field.map_err(std::io::Error::other));
            let staged = blobs.stage(me.user, stream).await.map_err(blob_error)?;
            stored = Some(register(&wt, &me, staged, file).await?);
            break;
        }
        stored.ok_or_else(|| WtError::invalid("the form has no file part"))?
    } else if content_type.is_empty() || content_type.starts_with("application/octet-stream") {
        let q = axum::extract::Query::<UploadQuery>::try_from_uri(request.uri())
            .map(|q| q.0)
            .unwrap_or_default();
        let name = q
            .name
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "file".to_owned());
        let file = NewFile::new(name, "application/octet-stream", false)
            .map_err(|e| WtError::invalid(e.message()))?;
        let stream = Box::pin(
            request
                .into_body()
                .into_data_stream()
                .map_err(std::io::Error::other),
        );
        let staged = blobs.stage(me.user, stream).await.map_err(blob_error)?;
        register(&wt, &me, staged, file).await?
    } else {
        return Err(WtError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be multipart/form-data or application/octet-stream",
        ));
    };
    let out = json!({
        "fid": info.id.to_string(),
        "name": info.name,
        "size": info.size,
        "mime_type": info.mime,
    });
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// `GET /f/fserv/download/{fid}`: the bytes, with their type. Scripts never run as our origin:
/// `nosniff` and a sandboxing content security policy, and anything but media and plain text
/// is an attachment.
pub async fn download(
    State(wt): State<Wetty>,
    Caller(me): Caller,
    fid: Result<Path<String>, PathRejection>,
) -> Result<HttpResponse, WtError> {
    let fid = path(fid)?;
    let missing = || WtError::not_found("no such file");
    let id: FileId = fid.parse().map_err(|_| missing())?;
    let info = match wt.call(&me, Request::GetFile(id)).await {
        Ok(Response::File(info)) => *info,
        Ok(other) => return Err(unexpected(&other).into()),
        Err(e) if e.is_not_found() || e.status == StatusCode::FORBIDDEN => return Err(missing()),
        Err(e) => return Err(e),
    };
    let blob = blobs(&wt)?
        .open(info.sha256.clone())
        .await
        .map_err(blob_error)?;
    let inline = (info.mime.starts_with("image/") && info.mime != "image/svg+xml")
        || info.mime.starts_with("audio/")
        || info.mime.starts_with("video/")
        || info.mime == "text/plain";
    let mut response =
        Body::from_stream(tokio_util::io::ReaderStream::new(blob.file)).into_response();
    let headers = response.headers_mut();
    let mut put = |name: header::HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    put(header::CONTENT_TYPE, &info.mime);
    put(header::CONTENT_LENGTH, &blob.len.to_string());
    put(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    put(
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; sandbox",
    );
    put(
        header::CACHE_CONTROL,
        "private, max-age=31536000, immutable",
    );
    if !inline {
        put(header::CONTENT_DISPOSITION, "attachment");
    }
    Ok(response)
}
