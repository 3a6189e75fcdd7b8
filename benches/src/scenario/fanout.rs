//! `fanout`: one group of G members, all online; S of them send. Reports deliveries/s, latency,
//! the server's CPU per delivery, and checks every member got every message exactly once.
//! `biggroup` is the same scenario with a 10,000-member group and 10 senders.
//!
//! Setup: every member is registered (password hashing, ~100/s: a large group takes minutes, so
//! each registration connection closes at once, as the server would reap it after 90 s of
//! silence), the owner creates the group with every member id in its `CreateGroup`, then every
//! member connects and logs in with its access token. All members' connections are held by this
//! process (one socket each): the open-files limit must allow G plus a margin, and above
//! [`PER_SOURCE`] members they are spread over 127.0.0.x source addresses.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use super::chat::{run_window, Traffic};
use super::{login_all, machine, register_ids, round3, Common, Target};
use crate::client::{account_name, create_group_at, ns_of, token_login};
use crate::peer::{self, Expect, PeerConfig, SendPlan, SERVER_MAX_INFLIGHT};
use crate::stats::SeqSet;

/// Connections per source address when `--sources` is not given (the kernel's ephemeral port
/// range on loopback is ~28,000 per source and destination, and the registration connections
/// leave their ports in TIME_WAIT for a minute).
pub const PER_SOURCE: usize = 5_000;

/// Descriptors this process needs beyond one per member (listeners, the runtime, stdio).
const FD_MARGIN: u64 = 256;

/// Options of `fanout`.
#[derive(Clone, Debug, clap::Args)]
pub struct FanoutArgs {
    /// Options every scenario takes.
    #[command(flatten)]
    pub common: Common,
    /// Group members, all online, the owner included (the server's default limit is 10,000).
    #[arg(long, default_value_t = 100)]
    pub members: usize,
    /// Members that send.
    #[arg(long, default_value_t = 1)]
    pub senders: usize,
    /// Total messages per second over all senders; 0 = saturation.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Unacknowledged sends per sender at saturation (at most 256).
    #[arg(long, default_value_t = 8)]
    pub window: usize,
    /// Payload bytes (at least 8).
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds at the start excluded from rates and latencies.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
}

/// Runs `fanout`.
pub async fn run(args: FanoutArgs) -> anyhow::Result<Value> {
    run_named("fanout", args).await
}

/// Runs the scenario, reported as `scenario` (`fanout`, or its preset `biggroup`).
pub async fn run_named(scenario: &str, args: FanoutArgs) -> anyhow::Result<Value> {
    let mut a = args;
    if a.common.smoke {
        a.members = a.members.min(8);
        a.senders = a.senders.min(2);
        a.duration = 2.0;
        a.warmup = 0.5;
    }
    a.window = a.window.clamp(1, SERVER_MAX_INFLIGHT);
    a.payload = a.payload.max(8);
    anyhow::ensure!(a.members >= 2, "--members must be at least 2");
    anyhow::ensure!(
        (1..=a.members).contains(&a.senders),
        "--senders must be in 1..=members"
    );
    anyhow::ensure!(
        a.warmup < a.duration,
        "--warmup must be shorter than --duration"
    );
    if let Some(limit) = crate::procfs::open_files_limit() {
        anyhow::ensure!(
            a.members as u64 + FD_MARGIN <= limit,
            "--members {} needs about {} open files in this process, but the limit is {limit} \
             (raise it with `ulimit -n`)",
            a.members,
            a.members as u64 + FD_MARGIN
        );
    }
    let c = &a.common;
    let sources = match c.sources {
        0 if a.members > PER_SOURCE => a.members.div_ceil(PER_SOURCE),
        n => n,
    };
    let target = Target::resolve(c).await?;
    let connector = target.connector(c, super::sources(0, sources))?;

    let setup_started = Instant::now();
    let names = (0..a.members)
        .map(|i| account_name(target.run_id, 0, i))
        .collect();
    let (ids, register_secs) = register_ids(&connector, names, c.setup_concurrency).await?;
    let t = Instant::now();
    let mut owner = connector.connect().await?;
    token_login(&mut owner, &ids[0]).await?;
    let others = ids[1..].iter().map(|id| id.user).collect();
    // The group's log starts with the server's own entries (its `Created` event): seqs up to
    // `base`. The senders' messages follow.
    let (conv, base) = create_group_at(&mut owner, &format!("imload-{scenario}"), others).await?;
    let create_group_secs = t.elapsed().as_secs_f64();
    let (members, login_secs) = login_all(&connector, &ids[1..], c.setup_concurrency).await?;
    let setup_secs = setup_started.elapsed().as_secs_f64();
    let per_conn_limit = ids[0].max_requests_per_second;
    let clients = std::iter::once(owner).chain(members).zip(ids);

    let traffic = Traffic::new();
    let warmup = Duration::from_secs_f64(a.warmup);
    let duration = Duration::from_secs_f64(a.duration);
    let start = Instant::now() + Duration::from_millis(200);
    let deadline = start + duration + Duration::from_secs(60);
    let expect = Arc::new(Expect::default());
    expect.senders_left.store(a.senders, Ordering::Release);
    let mut tasks = Vec::with_capacity(a.members);
    for (i, (conn, id)) in clients.enumerate() {
        let send = (i < a.senders).then(|| SendPlan {
            rate: a.rate / a.senders as f64,
            window: a.window,
            payload: a.payload,
            until: start + duration,
            phase: i as f64 / a.senders as f64,
            max_messages: u64::MAX,
            max_rate: id.max_requests_per_second,
            tag: format!("{}-{i}", id.account),
        });
        let cfg = PeerConfig {
            conv,
            server_entries: base,
            epoch: id.epoch,
            send,
            expect: expect.clone(),
            counters: traffic.counters.clone(),
            record_from_ns: ns_of(start + warmup),
            deadline,
            ack_latency: traffic.ack.recorder(),
            deliver_latency: traffic.deliver.recorder(),
            send_lag: traffic.send_lag.recorder(),
        };
        tasks.push(tokio::spawn(peer::run(conn, cfg)));
    }
    let w = run_window(&target, &traffic.counters, start, warmup, duration, tasks).await?;
    let outcomes = &w.outcomes;

    // Every seq acked by some sender, once: with the server's entries (1..=base) the group's
    // log must be exactly 1..=base+n.
    let mut all = SeqSet::default();
    for s in 1..=base {
        all.insert(s);
    }
    let mut seq_conflicts = 0;
    for o in outcomes {
        seq_conflicts += all.union_with(&o.acked);
    }
    let n = all.len() - base;
    let mut lost = 0;
    let mut duplicates = 0;
    let mut errors = 0;
    let mut failures = Vec::new();
    let (mut sync_needed, mut recovered, mut timed_out, mut delivered) = (0, 0, 0, 0);
    for o in outcomes {
        // A member receives everything sent except what its own connection sent.
        let mut own = o.acked.clone();
        for s in 1..=base {
            own.insert(s);
        }
        let expected = own.complement_upto(base + n);
        lost += expected.missing_from(&o.seen);
        duplicates += o.seen.duplicates();
        errors += o.errors;
        sync_needed += o.sync_needed;
        recovered += o.recovered_by_sync;
        timed_out += u64::from(o.timed_out);
        delivered += o.seen.len();
        if let Some(f) = &o.failure {
            failures.push(f.clone());
        }
    }
    failures.truncate(5);
    let gapless = all.is_gapless();
    let ok = lost == 0
        && duplicates == 0
        && seq_conflicts == 0
        && gapless
        && errors == 0
        && failures.is_empty()
        && n > 0;
    let report = json!({
        "scenario": scenario,
        "ok": ok,
        "config": {
            "transport": c.transport.name(),
            "members": a.members,
            "senders": a.senders,
            "client_processes": 1,
            "source_addresses": sources,
            "mode": if a.rate > 0.0 { format!("fixed {} msgs/s", a.rate) } else { format!("saturation, window {}", a.window) },
            "payload_bytes": a.payload,
            "server_rate_limit_per_connection": per_conn_limit,
            "duration_s": a.duration,
            "warmup_s": a.warmup,
            "smoke": c.smoke,
        },
        "setup": {
            "accounts": a.members,
            "register_s": round3(register_secs),
            "password_registrations_per_s": round3(a.members as f64 / register_secs.max(1e-9)),
            "create_group_s": round3(create_group_secs),
            "token_logins_s": round3(login_secs),
            "total_s": round3(setup_secs),
        },
        "throughput": {
            "deliveries_per_s": round3(w.delivered as f64 / w.secs),
            "messages_per_s": round3(w.acked as f64 / w.secs),
            "window_s": round3(w.secs),
        },
        "latency": {
            "send_to_durable_ack": traffic.ack.summary(),
            "send_to_deliver": traffic.deliver.summary(),
            "generator_send_lag_behind_schedule": traffic.send_lag.summary(),
        },
        "cpu": w.first.cpu_between(&w.last, w.delivered),
        "integrity": {
            "ok": ok,
            "messages": n,
            "deliveries": delivered,
            "lost": lost,
            "duplicates": duplicates,
            "seq_conflicts": seq_conflicts,
            "gapless": gapless,
            "sync_needed_pushes": sync_needed,
            "recovered_by_sync": recovered,
            "errors": errors,
            "peers_timed_out": timed_out,
            "failures": failures,
        },
        "server_counters": w.server_counters,
        "machine": machine(),
    });
    target.stop().await?;
    Ok(report)
}
