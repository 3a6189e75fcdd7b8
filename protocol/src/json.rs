//! The canonical proto3 JSON mapping of frames, for clients that cannot speak protobuf (the
//! WebSocket fallback's text messages).
//!
//! The mapping is generated from the same descriptors as the prost types (pbjson-build in
//! `build.rs`), never written by hand: field names in lowerCamelCase (the proto names are
//! accepted too), 64-bit integers as decimal strings (numbers are accepted too), enums by their
//! full proto name (`"ERROR_CODE_BAD_FRAME"`; numbers accepted), `bytes` as base64, and fields
//! with their default value left out. A `Frame` is one JSON object: `requestId` plus exactly one
//! body field named after the oneof case, e.g.
//! `{"requestId":"1","ping":{"clientTimeMs":"5"}}`.
//!
//! Conversion goes through the protobuf bytes the binary protocol uses, so a JSON frame is
//! validated by exactly the same decoder as a binary one ([`crate::frames::ClientFrame::decode`])
//! and nothing about the protocol is implemented twice. Unknown fields are refused (a typo gets
//! a clear error instead of being ignored).

use bytes::Bytes;
use prost::Message as _;

#[allow(missing_docs, clippy::all)]
mod mapping {
    // The generated impls name the wire types as if they were in the same module.
    use crate::wire::*;
    include!(concat!(env!("OUT_DIR"), "/parley.v1.serde.rs"));
}

/// Why a frame could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The text is not a `Frame` in the proto3 JSON mapping.
    #[error("not a JSON frame: {0}")]
    Syntax(#[from] serde_json::Error),
    /// The bytes are not a protobuf `Frame`.
    #[error("malformed frame: {0}")]
    Protobuf(#[from] prost::DecodeError),
}

/// Converts one JSON `Frame` to the protobuf encoding of the same frame (no length prefix),
/// ready for [`crate::frames::ClientFrame::decode`].
pub fn json_to_frame(text: &str) -> Result<Bytes, JsonError> {
    let frame: crate::wire::Frame = serde_json::from_str(text)?;
    Ok(Bytes::from(frame.encode_to_vec()))
}

/// Converts the protobuf encoding of one `Frame` (no length prefix) to its JSON form.
pub fn frame_to_json(body: &[u8]) -> Result<String, JsonError> {
    let frame = crate::wire::Frame::decode(body)?;
    Ok(serde_json::to_string(&frame)?)
}

/// The `requestId` of a JSON object that is not a valid frame, if it has a readable one, so an
/// error about it can answer the request (0 otherwise).
pub fn request_id_hint(text: &str) -> u64 {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text) else {
        return 0;
    };
    match map.get("requestId").or_else(|| map.get("request_id")) {
        Some(serde_json::Value::String(s)) => s.parse().unwrap_or(0),
        Some(serde_json::Value::Number(n)) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::{ClientFrame, ErrorInfo, Push, Request, ServerFrame};
    use crate::ids::RequestId;
    use crate::ErrorCode;

    #[test]
    fn a_json_login_is_the_binary_login() {
        let text = r#"{"requestId":"7","login":{"password":{"account":"alice","password":"password-123"},
            "device":{"deviceId":"web-1","platform":"PLATFORM_WEB"}}}"#;
        let body = json_to_frame(text).expect("valid JSON frame");
        let frame = ClientFrame::decode(body.clone()).expect("valid frame");
        assert_eq!(frame.request_id, RequestId::try_from(7).expect("id"));
        assert!(matches!(frame.request, Request::Login { .. }));
        // And back: the canonical form, 64-bit integers as strings, enums by name.
        let json = frame_to_json(&body).expect("encodes");
        let v: serde_json::Value = serde_json::from_str(&json).expect("json");
        assert_eq!(v["requestId"], "7");
        assert_eq!(v["login"]["device"]["platform"], "PLATFORM_WEB");
        assert_eq!(json_to_frame(&json).expect("round trip"), body);
    }

    #[test]
    fn numbers_and_proto_names_are_accepted() {
        let body = json_to_frame(r#"{"request_id":3,"ping":{"client_time_ms":5}}"#).expect("ok");
        let frame = ClientFrame::decode(body).expect("valid frame");
        assert_eq!(frame.request_id, RequestId::try_from(3).expect("id"));
        assert!(matches!(frame.request, Request::Ping { .. }));
    }

    #[test]
    fn server_frames_render_as_json() {
        let bytes =
            ServerFrame::Push(Push::Error(ErrorInfo::new(ErrorCode::BadFrame, "no"))).encode();
        let json = frame_to_json(&bytes[crate::LEN_PREFIX..]).expect("encodes");
        let v: serde_json::Value = serde_json::from_str(&json).expect("json");
        assert_eq!(v["error"]["code"], "ERROR_CODE_BAD_FRAME");
        assert_eq!(v["error"]["message"], "no");
        // Defaults are left out: a push has request id 0.
        assert!(v.get("requestId").is_none());
    }

    #[test]
    fn bad_json_is_refused_with_the_request_id_when_readable() {
        for bad in [
            "not json",
            "[1,2]",
            r#"{"requestId":"1","nosuchfield":{}}"#,
            r#"{"requestId":"1","ping":{"clientTimeMs":"x"}}"#,
        ] {
            assert!(
                matches!(json_to_frame(bad), Err(JsonError::Syntax(_))),
                "{bad}"
            );
        }
        assert_eq!(request_id_hint(r#"{"requestId":"9","x":1}"#), 9);
        assert_eq!(request_id_hint(r#"{"requestId":4}"#), 4);
        assert_eq!(request_id_hint("nope"), 0);
        assert!(matches!(
            frame_to_json(&[0xff, 0xff]),
            Err(JsonError::Protobuf(_))
        ));
    }
}
