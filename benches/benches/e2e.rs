//! End to end, in process: a real server (`Server::bind(Config::for_tests(tmp))`) on this
//! runtime, two raw plain-TCP connections, and a message from one to the other. Measures one
//! send→deliver round trip at a time (latency, durable commit included) and a window of 64
//! sends in flight (throughput of one sender/receiver pair).
#![allow(missing_docs)] // criterion macros generate undocumented items

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use parley_benches::client::{self, send_request};
use parley_benches::conn::{Conn, Connector, Transport};
use parley_protocol::frames::{Push, Response, ServerFrame};
use parley_protocol::ids::ConversationId;
use parley_server::{Config, Server};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

struct Pair {
    sender: Conn,
    receiver: Conn,
    conv: ConversationId,
    next: u64,
}

async fn setup(dir: &std::path::Path) -> (Pair, CancellationToken) {
    let mut cfg = Config::for_tests(dir);
    // The per-connection rate limit would cap one sender at its default; the bench measures
    // the path, not the policy.
    cfg.limits.requests_per_second = 0;
    let server = Server::bind(cfg).await.expect("bind");
    let addr = server.addrs().tcp[0];
    let stop = CancellationToken::new();
    tokio::spawn(server.run(stop.clone()));
    let connector = Connector::new(Transport::Tcp, addr, None, Vec::new()).expect("connector");
    let (mut sender, _) = client::register(&connector, "bench_sender")
        .await
        .expect("reg");
    let (receiver, rid) = client::register(&connector, "bench_receiver")
        .await
        .expect("reg");
    let conv = client::open_direct(&mut sender, rid.user)
        .await
        .expect("conv");
    let pair = Pair {
        sender,
        receiver,
        conv,
        next: 0,
    };
    (pair, stop)
}

/// Sends `window` messages, then waits for every ack and every push.
async fn burst(p: &mut Pair, window: usize) {
    for _ in 0..window {
        p.next += 1;
        let req = send_request(p.conv, &format!("b{}", p.next), 0, 64).expect("request");
        p.sender.writer.queue(req);
    }
    p.sender.writer.flush().await.expect("write");
    let (mut acks, mut pushes) = (0, 0);
    while acks < window || pushes < window {
        tokio::select! {
            f = p.sender.reader.next_frame(), if acks < window => {
                match f.expect("read").expect("open") {
                    ServerFrame::Response(_, Response::SendAck(_)) => acks += 1,
                    other => panic!("unexpected {other:?}"),
                }
            }
            f = p.receiver.reader.next_frame(), if pushes < window => {
                if let ServerFrame::Push(Push::Message(_)) = f.expect("read").expect("open") {
                    pushes += 1;
                }
            }
        }
    }
}

fn e2e(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut pair, stop) = rt.block_on(setup(dir.path()));
    let mut group = c.benchmark_group("e2e_tcp_send_deliver");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    for window in [1usize, 64] {
        group.throughput(Throughput::Elements(window as u64));
        group.bench_function(BenchmarkId::new("window", window), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let t = Instant::now();
                    for _ in 0..iters {
                        burst(&mut pair, window).await;
                    }
                    t.elapsed()
                })
            })
        });
    }
    group.finish();
    stop.cancel();
}

criterion_group!(benches, e2e);
criterion_main!(benches);
