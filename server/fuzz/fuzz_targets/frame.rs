//! The binary protocol on untrusted bytes, as the server reads them: the length-prefixed stream
//! through the session's frame reader (split into reads of fuzzed sizes), every frame through
//! `ClientFrame::decode` (protobuf decoding and request validation), the early-data scan of the
//! TLS and QUIC transports, and the client's `ServerFrame::decode`.
//!
//! Round trips: a frame that decodes re-encodes to bytes that decode to the same value, and the
//! re-encoding is stable (encode, decode, encode gives the same bytes).

#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use parley_protocol::frames::{ClientFrame, ServerFrame};
use parley_protocol::{FrameCodec, LEN_PREFIX};
use parley_server::session::FrameReader;
use parley_server::transport::fuzzing::{replay_safe, scan};
use tokio::io::AsyncRead;

/// Feeds its bytes in reads of the given sizes, `Pending` between them (as a socket would).
struct Reads<'a> {
    data: &'a [u8],
    sizes: &'a [u8],
    pending: bool,
}

impl AsyncRead for Reads<'_> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.pending {
            self.pending = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let size = match self.sizes.split_first() {
            Some((&s, rest)) => {
                self.sizes = rest;
                usize::from(s) * 7 + 1
            }
            None => usize::MAX,
        };
        let n = size.min(buf.remaining()).min(self.data.len());
        buf.put_slice(&self.data[..n]);
        self.data = &self.data[n..];
        self.pending = true;
        Poll::Ready(Ok(()))
    }
}

/// Runs a future made of ready and self-waking steps to completion.
fn run<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn client_round_trip(body: &[u8]) {
    let Ok(frame) = ClientFrame::decode(Bytes::copy_from_slice(body)) else {
        return;
    };
    let _ = replay_safe(&frame.request);
    let _ = frame.request.name();
    let _ = frame.request.allowed_before_login();
    let encoded = frame.clone().encode();
    let again = ClientFrame::decode(encoded.slice(LEN_PREFIX..))
        .unwrap_or_else(|e| panic!("re-encoded frame refused: {e}\n{frame:?}"));
    assert_eq!(again, frame, "client frame round trip");
    assert_eq!(
        again.encode(),
        encoded,
        "client frame encoding is not stable"
    );
}

fn server_round_trip(body: &[u8]) {
    let Ok(frame) = ServerFrame::decode(Bytes::copy_from_slice(body)) else {
        return;
    };
    let encoded = frame.clone().encode();
    let again = ServerFrame::decode(encoded.slice(LEN_PREFIX..))
        .unwrap_or_else(|e| panic!("re-encoded server frame refused: {e}\n{frame:?}"));
    assert_eq!(again, frame, "server frame round trip");
}

fuzz_target!(|data: &[u8]| {
    // The first byte: how many of the next bytes give read sizes.
    let (sizes, stream) = match data.split_first() {
        Some((&n, rest)) => rest.split_at(usize::from(n % 16).min(rest.len())),
        None => (&[][..], data),
    };

    // The whole input as one frame body: the decoder and validation, most directly.
    client_round_trip(stream);
    server_round_trip(stream);

    // The input as a stream: the reader hands out exactly the codec's frames, in any reads.
    let found = scan(stream);
    assert!(found.safe <= stream.len());
    let codec = FrameCodec::default();
    let mut reader = FrameReader::new(
        Reads {
            data: stream,
            sizes,
            pending: false,
        },
        codec,
    );
    let mut whole = bytes::BytesMut::from(stream);
    let mut safe_left = found.safe;
    loop {
        let got = run(reader.next());
        let expected = codec.decode(&mut whole);
        match (got, expected) {
            (Some(Ok(frame)), Ok(Some(same))) => {
                assert_eq!(frame, same, "the reader and the codec disagree");
                client_round_trip(&frame);
                if safe_left > 0 {
                    // The scan's safe prefix is whole frames, each a replay-safe request.
                    let decoded = ClientFrame::decode(frame.clone()).expect("scanned as safe");
                    assert!(replay_safe(&decoded.request));
                    safe_left = safe_left
                        .checked_sub(LEN_PREFIX + frame.len())
                        .expect("the safe prefix ends inside a frame");
                }
            }
            (Some(Err(_)), Err(_)) | (None, Ok(None)) => break,
            // The stream ended inside a frame: the codec waits for more, the reader reports it.
            (Some(Err(_)), Ok(None)) => break,
            (got, expected) => panic!("reader {got:?} but codec {expected:?}"),
        }
    }
    assert_eq!(safe_left, 0, "the safe prefix is not made of frames");
});
