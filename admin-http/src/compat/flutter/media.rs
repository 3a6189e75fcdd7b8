//! `POST /v1/media/upload` (multipart `file` and `type`), and the inline images of profile and
//! group updates (`"avatar": "base64:..."`): bytes go to the server's file store
//! ([`crate::Backend::blobs`]) and are registered as a file of the caller (`RegisterFile`); the
//! core measures images, so the answer carries their width and height.

use axum::extract::{FromRequest, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use futures::TryStreamExt;
use parley_protocol::frames::{FileInfo, NewFile};
use parley_protocol::session::Identity;
use serde_json::{json, Value};

use super::{views, Caller, FlError, Flutter};
use crate::compat::unexpected;

/// The largest inline (base64) image accepted, decoded (its base64 fits the 2 MiB JSON body
/// limit).
pub const MAX_INLINE_BYTES: usize = 1024 * 1024;

/// The media types of the form's `type` field.
const TYPES: [&str; 4] = ["image", "video", "audio", "file"];

/// Registers staged bytes as `me`'s file.
async fn register(
    fl: &Flutter,
    me: &Identity,
    staged: crate::files::Staged,
    file: NewFile,
) -> Result<FileInfo, FlError> {
    let request = parley_protocol::frames::Request::RegisterFile {
        upload: staged.token,
        file,
    };
    match fl.call(me, request).await? {
        parley_protocol::frames::Response::File(info) => Ok(*info),
        other => Err(unexpected(&other).into()),
    }
}

fn blobs(fl: &Flutter) -> Result<std::sync::Arc<dyn crate::files::Blobs>, FlError> {
    fl.backend
        .blobs()
        .ok_or_else(|| FlError::from_blob(crate::files::BlobFailure::Unavailable))
}

/// The media object: `{media_id, url, type, size, width, height, duration, filename}`
/// (`width`/`height` null for what is not an image; `duration` is not measured: null).
fn view(f: &FileInfo, kind: &str) -> Value {
    let id = f.id.to_string();
    let pixels = |n: u32| if f.width > 0 { json!(n) } else { Value::Null };
    json!({
        "media_id": id,
        "url": views::media_url(&id),
        "type": kind,
        "size": f.size,
        "width": pixels(f.width),
        "height": pixels(f.height),
        "duration": Value::Null,
        "filename": f.name,
        "mime_type": f.mime,
    })
}

/// `POST /v1/media/upload`: `201` with the media object. The form's `file` part is streamed
/// to disk; `type` (image, video, audio, file) may come before or after it (default: from the
/// part's content type).
pub async fn upload(
    State(fl): State<Flutter>,
    Caller(me): Caller,
    request: Request,
) -> Result<Response, FlError> {
    let blobs = blobs(&fl)?;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > blobs.max_bytes().saturating_add(64 * 1024)) {
        return Err(FlError::from_blob(crate::files::BlobFailure::TooLarge {
            max: blobs.max_bytes(),
        }));
    }
    let mut form = axum::extract::Multipart::from_request(request, &())
        .await
        .map_err(|e| FlError::invalid(e.body_text()))?;
    let mut kind: Option<String> = None;
    let mut stored: Option<FileInfo> = None;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| FlError::invalid(e.body_text()))?
    {
        match field.name() {
            Some("type") => {
                let t = field
                    .text()
                    .await
                    .map_err(|e| FlError::invalid(e.body_text()))?;
                if !TYPES.contains(&t.as_str()) {
                    return Err(FlError::invalid(format!(
                        "type {t:?} is not one of image, video, audio, file"
                    )));
                }
                kind = Some(t);
            }
            Some("file") if stored.is_none() => {
                let name = field
                    .file_name()
                    .filter(|n| !n.is_empty())
                    .unwrap_or("file")
                    .to_owned();
                let mime = field.content_type().unwrap_or("").to_owned();
                let file =
                    NewFile::new(name, &mime, false).map_err(|e| FlError::invalid(e.message()))?;
                let stream = Box::pin(field.map_err(std::io::Error::other));
                let staged = blobs
                    .stage(me.user, stream)
                    .await
                    .map_err(FlError::from_blob)?;
                stored = Some(register(&fl, &me, staged, file).await?);
            }
            _ => {} // other fields: skipped unread
        }
    }
    let info = stored.ok_or_else(|| FlError::invalid("the form has no file part"))?;
    let kind = kind.unwrap_or_else(|| {
        let top = info.mime.split('/').next().unwrap_or("");
        match top {
            "image" | "video" | "audio" => top.to_owned(),
            _ => "file".to_owned(),
        }
    });
    Ok((StatusCode::CREATED, Json(view(&info, &kind))).into_response())
}

/// An avatar as the client sent it: `base64:<data>` or a `data:<mime>;base64,<data>` URL is an
/// image stored as a public file of the caller (its id is what the profile keeps); an
/// `http(s)` URL or one of our file ids is kept as is; anything else is `400`.
pub async fn avatar(fl: &Flutter, me: &Identity, given: &str) -> Result<String, FlError> {
    let given = given.trim();
    if given.starts_with("https://") || given.starts_with("http://") {
        return Ok(given.to_owned());
    }
    if given.parse::<parley_protocol::frames::FileId>().is_ok() {
        return Ok(given.to_owned());
    }
    let data = given.strip_prefix("base64:").or_else(|| {
        given
            .strip_prefix("data:")
            .and_then(|rest| rest.split_once(";base64,"))
            .map(|(_, data)| data)
    });
    let Some(data) = data else {
        return Err(FlError::invalid(
            "avatar must be base64:<image data>, a data: URL, an http(s) URL or a media id",
        ));
    };
    if data.len() > MAX_INLINE_BYTES / 3 * 4 + 4 {
        return Err(FlError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("an inline avatar is limited to {MAX_INLINE_BYTES} bytes"),
        ));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| FlError::invalid(format!("avatar is not valid base64: {e}")))?;
    let mime = sniff(&bytes)
        .ok_or_else(|| FlError::invalid("avatar is not a PNG, JPEG, GIF or WebP image"))?;
    let ext = mime.trim_start_matches("image/");
    let file = NewFile::new(format!("avatar.{ext}"), mime, true)
        .map_err(|e| FlError::invalid(e.message()))?;
    let stream = Box::pin(futures::stream::once(futures::future::ready(Ok(
        bytes::Bytes::from(bytes),
    ))));
    let staged = blobs(fl)?
        .stage(me.user, stream)
        .await
        .map_err(FlError::from_blob)?;
    Ok(register(fl, me, staged, file).await?.id.to_string())
}

/// The image type of `bytes` by its magic number.
fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF8") {
        Some("image/gif")
    } else if bytes.len() > 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_images_only() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nrest"), Some("image/png"));
        assert_eq!(sniff(&[0xff, 0xd8, 0xff, 0xe0]), Some("image/jpeg"));
        assert_eq!(sniff(b"hello"), None);
    }
}
