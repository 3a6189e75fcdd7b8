//! Frame codec throughput: encode and decode of message pushes by payload size.
#![allow(missing_docs)] // criterion macros generate undocumented items

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use parley_protocol::frames::{ContentType, Message, Push, ServerFrame};
use parley_protocol::ids::{ClientMsgId, ConversationId, DeviceId, MessageId, Seq, UserId};
use parley_protocol::FrameCodec;

fn message(payload: usize) -> Message {
    Message {
        id: MessageId::try_from(123_456).expect("non-zero"),
        conversation: ConversationId::try_from(42).expect("non-zero"),
        seq: Seq(987),
        sender: UserId::try_from(7).expect("non-zero"),
        sender_device: DeviceId::try_from("device-0001").expect("valid"),
        content_type: ContentType::Text,
        content: Bytes::from(vec![b'x'; payload]),
        client_msg_id: ClientMsgId::try_from("0b5f7c7e-6a43-4b1e-9a53-1f7c2b1a9d10")
            .expect("valid"),
        server_time_ms: 1_763_700_000_000,
        reply_to: Seq::ZERO,
        mentions: vec![],
        event: None,
        amended: None,
        thread_root: Default::default(),
        forwarded_from: None,
        mention_all: false,
    }
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    for size in [64usize, 1024, 16 * 1024] {
        let msg = message(size);
        let encoded = ServerFrame::Push(Push::Message(msg.clone())).encode();
        group.throughput(Throughput::Bytes(encoded.len() as u64));
        group.bench_with_input(BenchmarkId::new("encode_push", size), &msg, |b, msg| {
            b.iter(|| ServerFrame::Push(Push::Message(msg.clone())).encode())
        });
        group.bench_with_input(BenchmarkId::new("decode_push", size), &encoded, |b, enc| {
            let codec = FrameCodec::new(1 << 20);
            b.iter(|| {
                let mut buf = BytesMut::from(&enc[..]);
                let body = codec.decode(&mut buf).expect("valid").expect("complete");
                ServerFrame::decode(body).expect("valid")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
