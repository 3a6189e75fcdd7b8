//! Session state machine steps, per frame: what the driver does for every client frame before
//! the core sees it (decode and validate, liveness, rate limit, admission).
#![allow(missing_docs)] // criterion macros generate undocumented items

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use parley_protocol::frames::{
    ClientFrame, ContentType, Credential, Device, Platform, Request, SendRequest,
};
use parley_protocol::ids::{
    Account, ClientMsgId, ConversationId, DeviceId, RequestId, Seq, UserId,
};
use parley_protocol::session::{HeartbeatConfig, Identity, ServerSession};
use parley_protocol::FrameCodec;

fn send_frame() -> Bytes {
    ClientFrame {
        request_id: RequestId::try_from(7).expect("non-zero"),
        request: Request::Send(SendRequest {
            conversation: ConversationId::try_from(42).expect("non-zero"),
            content_type: ContentType::Text,
            content: Bytes::from(vec![b'x'; 64]),
            client_msg_id: ClientMsgId::try_from("0b5f7c7e-6a43-4b1e-9a53-1f7c2b1a9d10")
                .expect("valid"),
            reply_to: Seq::ZERO,
            mentions: vec![],
            mention_all: false,
        }),
    }
    .encode()
}

fn active_session(now: std::time::Instant, rate: u32) -> ServerSession {
    let cfg = HeartbeatConfig {
        requests_per_second: rate,
        ..HeartbeatConfig::default()
    };
    let mut s = ServerSession::new(now, cfg);
    s.logged_in(
        now,
        Identity {
            user: UserId::try_from(1).expect("non-zero"),
            account: Account::try_from("alice").expect("valid"),
            device: DeviceId::try_from("d").expect("valid"),
        },
    );
    s
}

fn session(c: &mut Criterion) {
    let mut group = c.benchmark_group("session");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(1));
    // The state machine takes `now` as an argument; the bench's clock is tokio's.
    let t0 = tokio::time::Instant::now().into_std();
    let request = Request::Send(SendRequest {
        conversation: ConversationId::try_from(42).expect("non-zero"),
        content_type: ContentType::Text,
        content: Bytes::from_static(b"hello"),
        client_msg_id: ClientMsgId::try_from("x").expect("valid"),
        reply_to: Seq::ZERO,
        mentions: vec![],
        mention_all: false,
    });

    group.bench_function("on_frame_received+admit", |b| {
        let mut s = active_session(t0, 0);
        let mut now = t0;
        b.iter(|| {
            now += Duration::from_nanos(100);
            s.on_frame_received(now);
            black_box(s.admit(black_box(&request)).is_ok())
        })
    });

    group.bench_function("on_frame_received+rate_limit+admit", |b| {
        // A rate high enough never to refuse: the bucket's arithmetic is what is measured.
        let mut s = active_session(t0, u32::MAX / 4);
        let mut now = t0;
        b.iter(|| {
            now += Duration::from_nanos(100);
            s.on_frame_received(now);
            let limited = s.rate_limit(now).is_err();
            black_box(limited || s.admit(black_box(&request)).is_ok())
        })
    });

    let wire = send_frame();
    group.bench_function("split+decode+admit (64 B send)", |b| {
        let codec = FrameCodec::default();
        let mut s = active_session(t0, 0);
        b.iter(|| {
            let mut buf = BytesMut::from(&wire[..]);
            let body = codec.decode(&mut buf).expect("valid").expect("complete");
            let frame = ClientFrame::decode(body).expect("valid");
            s.on_frame_received(t0);
            black_box(s.admit(&frame.request).is_ok())
        })
    });

    group.bench_function("login_then_admit", |b| {
        let login = Request::Login {
            credential: Credential::AccessToken("t".repeat(64)),
            device: Device {
                id: DeviceId::try_from("d").expect("valid"),
                platform: Platform::Cli,
            },
        };
        b.iter(|| {
            let mut s = ServerSession::new(t0, HeartbeatConfig::default());
            let ok = s.admit(&login).is_ok();
            s.logged_in(
                t0,
                Identity {
                    user: UserId::try_from(1).expect("non-zero"),
                    account: Account::try_from("alice").expect("valid"),
                    device: DeviceId::try_from("d").expect("valid"),
                },
            );
            black_box(ok && s.admit(&request).is_ok())
        })
    });
    group.finish();
}

criterion_group!(benches, session);
criterion_main!(benches);
