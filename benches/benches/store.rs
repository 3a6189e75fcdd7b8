//! Store append with group commit, by batch size: `commit_batch` then `make_durable` (one write
//! and one fdatasync of the message log, then the index update), exactly what the committer
//! thread does per batch. The throughput is durable messages per second. The `with_sync` group
//! adds a full `sync` (sled flush and fdatasync too), what a batch carrying a barrier costs.
//! `store_idempotency_window` is one durable send of a sender with a full window (1,024
//! earlier messages): `warm` with its window in memory, `cold` with it read back along the
//! sender's chain in the log first (the first send of each sender after a restart).
#![allow(missing_docs)] // criterion macros generate undocumented items

use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use parley_protocol::frames::{ContentType, SendRequest};
use parley_protocol::ids::{ClientMsgId, ConversationId, DeviceId, Seq, UserId};
use parley_server::store::{CommitItem, Store};
use tokio::time::Instant;

/// Conversations the batches spread over (as 1:1 chat traffic would).
const CONVERSATIONS: u64 = 64;

fn items(start: u64, n: usize) -> Vec<CommitItem> {
    (0..n as u64)
        .map(|i| {
            let k = start + i;
            CommitItem {
                sender: UserId::try_from(1 + k % CONVERSATIONS).expect("non-zero"),
                sender_device: DeviceId::try_from("bench").expect("valid"),
                request: SendRequest {
                    conversation: ConversationId::try_from(1000 + k % CONVERSATIONS)
                        .expect("non-zero"),
                    content_type: ContentType::Text,
                    content: Bytes::from(vec![b'x'; 64]),
                    client_msg_id: ClientMsgId::try_from(format!("m{k}")).expect("valid"),
                    reply_to: Seq::ZERO,
                    mentions: vec![],
                    mention_all: false,
                },
                event: None,
                thread_root: Default::default(),
                forwarded_from: None,
            }
        })
        .collect()
}

fn group_commit(c: &mut Criterion, full_sync: bool) {
    let name = if full_sync {
        "store_append_with_sync"
    } else {
        "store_append_durable"
    };
    let mut group = c.benchmark_group(name);
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    for batch in [1usize, 16, 128, 1024] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), 64 << 20).expect("open store");
        let mut counter = 0u64;
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(BenchmarkId::from_parameter(batch), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let batch_items = items(counter, batch);
                    counter += batch as u64;
                    let t = Instant::now();
                    let (out, pending) = store
                        .commit_batch(&batch_items, 1_763_700_000_000)
                        .expect("commit");
                    store.make_durable(pending).expect("durable");
                    if full_sync {
                        store.sync().expect("sync");
                    }
                    total += t.elapsed();
                    debug_assert_eq!(out.len(), batch);
                }
                total
            })
        });
    }
    group.finish();
}

fn idempotency_window(c: &mut Criterion) {
    let mut group = c.benchmark_group("store_idempotency_window");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(1));
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), 64 << 20).expect("open store");
    // One sender, 1,024 messages before the measured ones, in batches spread over conversations
    // like the other senders' traffic would be.
    let one_sender = |start: u64, n: usize| -> Vec<CommitItem> {
        let mut batch = items(start, n);
        for item in &mut batch {
            item.sender = UserId::try_from(1).expect("non-zero");
        }
        batch
    };
    let mut counter = 0u64;
    for _ in 0..8 {
        let (_, pending) = store
            .commit_batch(&one_sender(counter, 128), 1_763_700_000_000)
            .expect("commit");
        store.make_durable(pending).expect("durable");
        counter += 128;
    }
    for cold in [false, true] {
        let name = if cold { "cold" } else { "warm" };
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let item = one_sender(counter, 1);
                    counter += 1;
                    if cold {
                        store.forget_idempotency_windows();
                    }
                    let t = Instant::now();
                    let (out, pending) = store
                        .commit_batch(&item, 1_763_700_000_000)
                        .expect("commit");
                    store.make_durable(pending).expect("durable");
                    total += t.elapsed();
                    debug_assert!(out[0].as_ref().is_ok_and(|c| !c.duplicate));
                }
                total
            })
        });
    }
    group.finish();
}

fn store(c: &mut Criterion) {
    group_commit(c, false);
    group_commit(c, true);
    idempotency_window(c);
}

criterion_group!(benches, store);
criterion_main!(benches);
