//! The WebSocket fallback for browsers: `GET /ws`.
//!
//! A WebSocket here is one more transport of the binary protocol, not a second implementation
//! of it. This module does the HTTP/1.1 upgrade and wraps the socket in [`WsFrames`], a byte
//! stream that speaks the binary protocol's framing (`u32` big-endian length, then one protobuf
//! `Frame`); [`Backend::serve_stream`] then runs it through the server's session driver exactly
//! like a TCP connection: login or token, durable sends with acks, pushes, cursors, sync,
//! heartbeat, rate limits, GoAway on shutdown, the connection limit.
//!
//! Each WebSocket message carries exactly one `Frame`, in one of two encodings: a binary
//! message holds its protobuf bytes, a text message its canonical proto3 JSON form
//! ([`parley_protocol::json`]). A connection speaks one encoding, chosen by `?encoding=json` or
//! `?encoding=binary` on the URL, else by the client's first message; the server answers in it.
//! See docs/websocket.md for the wire contract and the close codes.
//!
//! Idle cost: the socket's WebSocket state keeps a read buffer of [`READ_BUFFER`] bytes and a
//! write buffer that never grows past one [`FRAGMENT`] (larger messages go out as several
//! WebSocket frames), and the adapter holds no buffer between messages. The session cannot
//! sleep outside its task as a TCP session does: the upgraded socket is hidden behind hyper's
//! type-erased I/O, so there is no descriptor to watch.

mod frames;

pub use frames::{Encoding, WsFrames};

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use crate::Backend;

/// Bytes the WebSocket layer reads from the socket at a time (and keeps allocated).
pub const READ_BUFFER: usize = 2 * 1024;
/// The largest WebSocket frame the server writes: a longer message goes out in fragments, so
/// the write buffer of a connection never holds more than this.
pub const FRAGMENT: usize = 4 * 1024;

/// Query parameters of `GET /ws`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WsParams {
    /// `json` or `binary`; absent: decided by the client's first message.
    encoding: Option<String>,
}

/// The upgrade handler of `GET /ws`.
pub(crate) async fn upgrade(
    State(backend): State<Arc<dyn Backend>>,
    params: Result<Query<WsParams>, axum::extract::rejection::QueryRejection>,
    mut request: Request,
) -> Response {
    let encoding = match params.map(|Query(p)| p.encoding) {
        Ok(None) => None,
        Ok(Some(e)) if e == "json" => Some(Encoding::Json),
        Ok(Some(e)) if e == "binary" => Some(Encoding::Binary),
        _ => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "the only parameter is encoding=json or encoding=binary",
            )
        }
    };
    let key = match handshake_key(request.version(), request.headers()) {
        Ok(key) => key,
        Err(response) => return *response,
    };
    let Some(on_upgrade) = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
    else {
        return refuse(
            StatusCode::UPGRADE_REQUIRED,
            "this connection cannot be upgraded",
        );
    };
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0);
    let max_frame = backend.max_frame_bytes();
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "WebSocket upgrade failed");
                return;
            }
        };
        let socket = WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            Some(config(max_frame)),
        )
        .await;
        backend.serve_stream(Box::new(WsFrames::new(socket, encoding, max_frame)), peer);
    });
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    match HeaderValue::from_str(&key) {
        Ok(accept) => {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        // A base64 digest is always a valid header value.
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
    response
}

/// The WebSocket layer's limits: small buffers (see the module docs), and messages no larger
/// than the frame limit allows. A text message may be up to twice the limit, since JSON spells
/// the same frame out at greater length (base64 for `bytes`, field names); the protobuf frame
/// it converts to must still fit the limit, which the session driver enforces.
fn config(max_frame: usize) -> WebSocketConfig {
    let max_message = max_frame.saturating_mul(2).saturating_add(1024);
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        // Each frame goes to the socket as it is queued: nothing accumulates in user space.
        .write_buffer_size(0)
        .max_write_buffer_size(FRAGMENT * 4)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
}

/// Checks an RFC 6455 opening handshake and returns the `Sec-WebSocket-Accept` value.
fn handshake_key(version: Version, headers: &HeaderMap) -> Result<String, Box<Response>> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if version != Version::HTTP_11 {
        return Err(Box::new(refuse(
            StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            "WebSocket needs HTTP/1.1",
        )));
    }
    if !has_token(header::CONNECTION, "upgrade") || !has_token(header::UPGRADE, "websocket") {
        return Err(Box::new(refuse(
            StatusCode::UPGRADE_REQUIRED,
            "expected a WebSocket upgrade (Connection: upgrade, Upgrade: websocket)",
        )));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        let mut r = refuse(
            StatusCode::UPGRADE_REQUIRED,
            "unsupported Sec-WebSocket-Version (13 is)",
        );
        r.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return Err(Box::new(r));
    }
    match headers.get(header::SEC_WEBSOCKET_KEY) {
        Some(key) if !key.is_empty() => Ok(derive_accept_key(key.as_bytes())),
        _ => Err(Box::new(refuse(
            StatusCode::BAD_REQUEST,
            "missing Sec-WebSocket-Key",
        ))),
    }
}

fn refuse(status: StatusCode, message: &'static str) -> Response {
    (status, message).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrade_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        h.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        h
    }

    #[test]
    fn the_rfc_example_handshake_is_accepted() {
        let key = handshake_key(Version::HTTP_11, &upgrade_headers()).expect("valid");
        // RFC 6455, section 1.3.
        assert_eq!(key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn bad_handshakes_are_refused() {
        let status = |version, h: &HeaderMap| match handshake_key(version, h) {
            Ok(_) => StatusCode::SWITCHING_PROTOCOLS,
            Err(r) => r.status(),
        };
        assert_eq!(
            status(Version::HTTP_10, &upgrade_headers()),
            StatusCode::HTTP_VERSION_NOT_SUPPORTED
        );
        let mut h = upgrade_headers();
        h.remove(header::UPGRADE);
        assert_eq!(status(Version::HTTP_11, &h), StatusCode::UPGRADE_REQUIRED);
        let mut h = upgrade_headers();
        h.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
        assert_eq!(status(Version::HTTP_11, &h), StatusCode::UPGRADE_REQUIRED);
        let mut h = upgrade_headers();
        h.remove(header::SEC_WEBSOCKET_KEY);
        assert_eq!(status(Version::HTTP_11, &h), StatusCode::BAD_REQUEST);
    }
}
