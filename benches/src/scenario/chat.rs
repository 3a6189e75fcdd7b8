//! `chat`: P sender/receiver pairs, each pair in its own 1:1 conversation, at a fixed total rate
//! or at saturation. Reports delivered msgs/s, send→durable-ack and send→deliver latency, the
//! server's CPU per message, and proves that every acknowledged message arrived exactly once.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use super::{machine, register_with_progress, round3, Common, Mark, Target};
use crate::client::{account_name, ns_of, open_direct};
use crate::peer::{self, Counters, Expect, PeerConfig, PeerOutcome, SendPlan, SERVER_MAX_INFLIGHT};
use crate::progress::Progress;
use crate::stats::Latency;

/// Options of `chat`.
#[derive(Clone, Debug, clap::Args)]
pub struct ChatArgs {
    /// Options every scenario takes.
    #[command(flatten)]
    pub common: Common,
    /// Sender/receiver pairs.
    #[arg(long, default_value_t = 100)]
    pub pairs: usize,
    /// Total messages per second over all senders; 0 = saturation.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Payload bytes (at least 8: the send time is stamped into it).
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Unacknowledged sends per sender at saturation (at most 256, the server's limit).
    #[arg(long, default_value_t = 32)]
    pub window: usize,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds at the start excluded from rates and latencies.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
}

/// Throughput, latency and integrity figures shared by `chat` and `fanout`.
pub(crate) struct Traffic {
    pub counters: Arc<Counters>,
    pub ack: Latency,
    pub deliver: Latency,
    pub send_lag: Latency,
}

impl Traffic {
    pub fn new() -> Traffic {
        Traffic {
            counters: Arc::new(Counters::default()),
            ack: Latency::default(),
            deliver: Latency::default(),
            send_lag: Latency::default(),
        }
    }
}

/// Samples at warm-up end and at the end of sending, showing progress; returns the two marks.
/// A measured sending window: what the peers did between the end of the warm-up and the end
/// of sending, and how they ended.
pub(crate) struct Window {
    /// Server CPU and time at the start of the window.
    pub first: Mark,
    /// The same at its end.
    pub last: Mark,
    /// Deliveries within the window.
    pub delivered: u64,
    /// Acks within the window.
    pub acked: u64,
    /// Length of the window in seconds.
    pub secs: f64,
    /// Server RSS every 5 s from the start of sending.
    pub rss_every_5s_kib: Vec<u64>,
    /// Every peer's outcome, in the order the tasks were given.
    pub outcomes: Vec<PeerOutcome>,
    /// The server's counters once every peer has finished.
    pub server_counters: Value,
}

/// Waits for `start`, measures the window `[start + warmup, start + duration]`, then waits for
/// every peer task and reads the server's counters.
pub(crate) async fn run_window(
    target: &Target,
    counters: &Counters,
    start: Instant,
    warmup: Duration,
    duration: Duration,
    tasks: Vec<tokio::task::JoinHandle<PeerOutcome>>,
) -> anyhow::Result<Window> {
    tokio::time::sleep_until(start).await;
    let (first, d0, a0, last, d1, a1, rss_every_5s_kib) =
        measure_window(target, counters, start, warmup, duration).await;
    let mut outcomes = Vec::with_capacity(tasks.len());
    for t in tasks {
        outcomes.push(t.await?);
    }
    Ok(Window {
        secs: last.at.duration_since(first.at).as_secs_f64(),
        first,
        last,
        delivered: d1 - d0,
        acked: a1 - a0,
        rss_every_5s_kib,
        outcomes,
        server_counters: target.stats().await,
    })
}

async fn measure_window(
    target: &Target,
    counters: &Counters,
    start: Instant,
    warmup: Duration,
    duration: Duration,
) -> (Mark, u64, u64, Mark, u64, u64, Vec<u64>) {
    let progress = Progress::new("sending", duration.as_secs().max(1));
    let warm_at = start + warmup;
    let end_at = start + duration;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut last = (Instant::now(), 0u64);
    let mut m0 = None;
    let mut rss = Vec::new();
    let mut next_rss = start;
    loop {
        tick.tick().await;
        let now = Instant::now();
        let delivered = counters.delivered.load(Ordering::Relaxed);
        if now.duration_since(last.0) >= Duration::from_secs(1) {
            let rate = (delivered - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
            progress.message(format!("{rate:.0} delivered/s"));
            last = (now, delivered);
        }
        progress.set(now.saturating_duration_since(start).as_secs());
        if now >= next_rss {
            if let Some(s) = target.sample() {
                rss.push(s.rss_kib);
            }
            next_rss += Duration::from_secs(5);
        }
        if m0.is_none() && now >= warm_at {
            m0 = Some((
                Mark::now(target),
                counters.delivered.load(Ordering::Relaxed),
                counters.acked.load(Ordering::Relaxed),
            ));
        }
        if now >= end_at {
            let m1 = Mark::now(target);
            let d1 = counters.delivered.load(Ordering::Relaxed);
            let a1 = counters.acked.load(Ordering::Relaxed);
            progress.finish();
            let (m0, d0, a0) = m0.unwrap_or((m1, d1, a1));
            return (m0, d0, a0, m1, d1, a1, rss);
        }
    }
}

/// Runs `chat`.
pub async fn run(args: ChatArgs) -> anyhow::Result<Value> {
    let mut a = args;
    if a.common.smoke {
        a.pairs = a.pairs.min(4);
        a.duration = 2.0;
        a.warmup = 0.5;
        a.rate = if a.rate > 0.0 { a.rate.min(200.0) } else { 0.0 };
    }
    a.window = a.window.clamp(1, SERVER_MAX_INFLIGHT);
    a.payload = a.payload.max(8);
    anyhow::ensure!(a.pairs > 0, "--pairs must be positive");
    anyhow::ensure!(
        a.warmup < a.duration,
        "--warmup must be shorter than --duration"
    );
    let c = &a.common;
    let target = Target::resolve(c).await?;
    let connector = target.connector(c, super::sources(0, c.sources))?;

    // Setup: 2P accounts (password registration: slow by design), one conversation per pair.
    let names = (0..2 * a.pairs)
        .map(|i| account_name(target.run_id, 0, i))
        .collect();
    let (mut clients, register_secs) =
        register_with_progress(&connector, names, c.setup_concurrency).await?;
    let mut receivers = clients.split_off(a.pairs);
    let mut senders = clients;
    let mut convs = Vec::with_capacity(a.pairs);
    for ((sconn, _), (_, rid)) in senders.iter_mut().zip(receivers.iter()) {
        convs.push(open_direct(sconn, rid.user).await?);
    }

    let per_conn_limit = senders
        .first()
        .map_or(0, |(_, id)| id.max_requests_per_second);
    let traffic = Traffic::new();
    let warmup = Duration::from_secs_f64(a.warmup);
    let duration = Duration::from_secs_f64(a.duration);
    let start = Instant::now() + Duration::from_millis(100);
    let deadline = start + duration + Duration::from_secs(30);
    let record_from_ns = ns_of(start + warmup);
    let mut tasks = Vec::with_capacity(2 * a.pairs);
    for (i, ((sconn, sid), (rconn, _))) in senders.drain(..).zip(receivers.drain(..)).enumerate() {
        let expect = Arc::new(Expect::default());
        expect.senders_left.store(1, Ordering::Release);
        let cfg = |send| PeerConfig {
            conv: convs[i],
            server_entries: 0,
            epoch: sid.epoch,
            send,
            expect: expect.clone(),
            counters: traffic.counters.clone(),
            record_from_ns,
            deadline,
            ack_latency: traffic.ack.recorder(),
            deliver_latency: traffic.deliver.recorder(),
            send_lag: traffic.send_lag.recorder(),
        };
        let plan = SendPlan {
            rate: a.rate / a.pairs as f64,
            window: a.window,
            payload: a.payload,
            until: start + duration,
            phase: i as f64 / a.pairs as f64,
            max_messages: u64::MAX,
            max_rate: sid.max_requests_per_second,
            tag: format!("{}-{}", sid.account, i),
        };
        tasks.push(tokio::spawn(peer::run(sconn, cfg(Some(plan)))));
        tasks.push(tokio::spawn(peer::run(rconn, cfg(None))));
    }
    let w = run_window(&target, &traffic.counters, start, warmup, duration, tasks).await?;

    // Integrity: per pair, the sender's acked seqs must be exactly 1..=n, and the receiver
    // must have seen each of them once.
    let integrity = pair_integrity(&w.outcomes);
    let mut cpu = w.first.cpu_between(&w.last, w.delivered);
    cpu["server_rss_every_5s_kib"] = json!(w.rss_every_5s_kib);
    let ok = integrity["ok"].as_bool().unwrap_or(false);
    let report = json!({
        "scenario": "chat",
        "ok": ok,
        "config": {
            "transport": c.transport.name(),
            "pairs": a.pairs,
            "mode": if a.rate > 0.0 { format!("fixed {} msgs/s", a.rate) } else { format!("saturation, window {}", a.window) },
            "payload_bytes": a.payload,
            "server_rate_limit_per_connection": per_conn_limit,
            "duration_s": a.duration,
            "warmup_s": a.warmup,
            "smoke": c.smoke,
        },
        "setup": { "accounts": 2 * a.pairs, "register_s": round3(register_secs),
                   "password_registrations_per_s": round3((2 * a.pairs) as f64 / register_secs) },
        "throughput": {
            "delivered_per_s": round3(w.delivered as f64 / w.secs),
            "acked_per_s": round3(w.acked as f64 / w.secs),
            "window_s": round3(w.secs),
        },
        "latency": {
            "send_to_durable_ack": traffic.ack.summary(),
            "send_to_deliver": traffic.deliver.summary(),
            "generator_send_lag_behind_schedule": traffic.send_lag.summary(),
        },
        "cpu": cpu,
        "integrity": integrity,
        "server_counters": w.server_counters,
        "machine": machine(),
    });
    target.stop().await?;
    Ok(report)
}

fn pair_integrity(outcomes: &[PeerOutcome]) -> Value {
    let mut sent = 0;
    let mut acked = 0;
    let mut delivered = 0;
    let mut lost = 0;
    let mut duplicates = 0;
    let mut seq_gaps = 0;
    let mut duplicate_acks = 0;
    let mut sync_needed = 0;
    let mut recovered = 0;
    let mut errors = 0;
    let mut timed_out = 0;
    let mut failures = Vec::new();
    for pair in outcomes.chunks(2) {
        let [s, r] = pair else { continue };
        sent += s.sent;
        acked += s.acked.len();
        delivered += r.seen.len();
        lost += s.acked.missing_from(&r.seen);
        duplicates += r.seen.duplicates() + s.acked.duplicates();
        if !s.acked.is_gapless() {
            seq_gaps += 1;
        }
        duplicate_acks += s.duplicate_acks;
        sync_needed += r.sync_needed;
        recovered += r.recovered_by_sync;
        for o in [s, r] {
            errors += o.errors;
            timed_out += u64::from(o.timed_out);
            if let Some(f) = &o.failure {
                failures.push(f.clone());
            }
        }
    }
    failures.truncate(5);
    let ok = lost == 0
        && duplicates == 0
        && seq_gaps == 0
        && duplicate_acks == 0
        && errors == 0
        && failures.is_empty()
        && acked > 0;
    json!({
        "ok": ok,
        "sent": sent,
        "acked": acked,
        "delivered": delivered,
        "lost": lost,
        "duplicates": duplicates,
        "conversations_with_seq_gaps": seq_gaps,
        "duplicate_acks": duplicate_acks,
        "sync_needed_pushes": sync_needed,
        "recovered_by_sync": recovered,
        "errors": errors,
        "peers_timed_out": timed_out,
        "failures": failures,
    })
}
