//! The WebSocket fallback's JSON text messages, as its transport reads them
//! (admin-http/src/ws/frames.rs): the proto3 JSON mapping (pbjson) to the protobuf `Frame`, then
//! the same `ClientFrame::decode` as a binary frame; a text that is not a frame gets the request
//! id read from it for the error. Text messages are UTF-8 (the WebSocket layer refuses others).
//!
//! Round trips: a JSON frame's protobuf bytes render as JSON that converts back to the same
//! bytes, and a valid request survives encode, render, parse, decode.

#![no_main]

use libfuzzer_sys::fuzz_target;
use parley_protocol::frames::ClientFrame;
use parley_protocol::json::{frame_to_json, json_to_frame, request_id_hint};
use parley_protocol::LEN_PREFIX;

fuzz_target!(|data: &[u8]| {
    // The server renders only its own frames, but the mapping must hold for any bytes.
    if let Ok(json) = frame_to_json(data) {
        let back = json_to_frame(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
        // prost's encoding of what it decoded (unknown fields dropped) is canonical.
        let canonical = frame_to_json(&back).expect("renders");
        assert_eq!(canonical, json, "JSON rendering is not stable");
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let body = match json_to_frame(text) {
        Ok(body) => body,
        Err(_) => {
            let _ = request_id_hint(text);
            return;
        }
    };
    let json = frame_to_json(&body).expect("a converted frame renders");
    assert_eq!(
        json_to_frame(&json).expect("a rendered frame converts"),
        body,
        "JSON round trip: {json}"
    );
    let Ok(frame) = ClientFrame::decode(body) else {
        return;
    };
    let encoded = frame.clone().encode();
    let json = frame_to_json(&encoded[LEN_PREFIX..]).expect("renders");
    let again = ClientFrame::decode(json_to_frame(&json).expect("converts")).expect("decodes");
    assert_eq!(again, frame, "request round trip through JSON: {json}");
});
