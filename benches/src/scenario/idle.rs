//! `idle`: N logged-in idle connections. Accounts are registered first (password, argon2: slow
//! on purpose), then every client reconnects and logs in with its access token. Reports
//! connects/s (transport handshakes), token logins/s, and the server's RSS per connection,
//! twice: first right after a server restart (`kib_per_connection`: it includes the store's
//! cache filling with each user's token record), then again after those connections closed
//! (`kib_per_connection_warm`: the connections' own memory); `store_cache_kib_per_login` is
//! what stayed resident in between.
//!
//! The clients run in `--workers` slices (child processes when more than one), each on its own
//! 127.0.0.x source addresses, so the generator can hold more sockets than one process may.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::{machine, register_all, round3, Common, Target};
use crate::client::{self, account_name, Identity};
use crate::conn::Conn;
use crate::coord::{Coord, Slices};
use crate::progress::Progress;
use crate::stats::summarize;

/// Options for scenarios that run in worker slices.
#[derive(Clone, Debug, clap::Args)]
pub struct WorkerArgs {
    /// Client processes (each holds its slice of the connections).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Internal: this process is worker i (started by the parent).
    #[arg(long, hide = true)]
    pub worker_index: Option<usize>,
    /// Internal: number of workers.
    #[arg(long, hide = true, default_value_t = 1)]
    pub worker_count: usize,
}

/// Options of `idle`.
#[derive(Clone, Debug, clap::Args)]
pub struct IdleArgs {
    /// Options every scenario takes.
    #[command(flatten)]
    pub common: Common,
    /// Worker slices.
    #[command(flatten)]
    pub workers: WorkerArgs,
    /// Logged-in connections to open (over all workers).
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Connections handshaken, then logged in, per batch (the server gives 10 s to log in).
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Concurrent handshakes and logins within a batch.
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
    /// Seconds to hold the connections open before measuring and closing them (idle sessions
    /// sleep after the server's `heartbeat.park_after`, then give their memory back).
    #[arg(long, default_value_t = 4.0)]
    pub hold: f64,
}

impl WorkerArgs {
    /// Clamps the worker count to 1..=64 and records it as the slice count; returns it.
    pub fn normalise(&mut self) -> usize {
        let k = self.workers.clamp(1, 64);
        self.workers = k;
        self.worker_count = k;
        k
    }
}

/// The size of slice `i` of `n` clients over `k` slices.
pub fn slice_len(n: usize, k: usize, i: usize) -> usize {
    n / k + usize::from(i < n % k)
}

/// Arguments for child `i`, shared by the worker scenarios.
pub(crate) fn child_common(c: &Common, t: &Target, w: &WorkerArgs, i: usize) -> Vec<String> {
    let mut v = vec![
        "--addr".into(),
        t.addr.to_string(),
        "--transport".into(),
        c.transport.name().into(),
        "--run-id".into(),
        format!("{:x}", t.run_id),
        "--setup-concurrency".into(),
        c.setup_concurrency.to_string(),
        "--sources".into(),
        c.sources.max(1).to_string(),
        "--worker-index".into(),
        i.to_string(),
        "--worker-count".into(),
        w.workers.to_string(),
    ];
    if let Some(cert) = &t.cert {
        v.push("--cert".into());
        v.push(cert.display().to_string());
    }
    v
}

/// Starts the worker slices of scenario `name`: in this process for one worker, otherwise as
/// child processes of this executable, each given the common arguments plus `extra`.
pub(crate) fn start_slices<F, Fut>(
    name: &str,
    common: &Common,
    workers: &WorkerArgs,
    target: &Target,
    extra: &[String],
    local: F,
) -> anyhow::Result<Slices>
where
    F: FnOnce(Target, Coord) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    if workers.workers == 1 {
        let t = target.for_slice();
        return Ok(Slices::local(move |coord| local(t, coord)));
    }
    let mut common = common.clone();
    common.sources = common.sources.max(1);
    Slices::spawn(workers.workers, |i| {
        let mut v = vec![name.to_owned()];
        v.extend(child_common(&common, target, workers, i));
        v.extend(extra.iter().cloned());
        v
    })
}

/// Registers this slice's accounts and closes the registration connections.
pub(crate) async fn register_slice(
    target: &Target,
    c: &Common,
    worker: usize,
    n: usize,
    coord: &Coord,
) -> anyhow::Result<(crate::conn::Connector, Vec<(Conn, Identity)>)> {
    let connector = target.connector(c, super::sources(worker, c.sources))?;
    let names = (0..n)
        .map(|i| account_name(target.run_id, worker, i))
        .collect();
    let clients = register_all(&connector, names, c.setup_concurrency, coord.progress()).await?;
    Ok((connector, clients))
}

async fn slice(a: IdleArgs, target: Target, mut coord: Coord) -> anyhow::Result<()> {
    let r = slice_inner(a, &target, &mut coord).await;
    if let Err(e) = &r {
        coord.fail(e);
    }
    r
}

async fn slice_inner(a: IdleArgs, target: &Target, coord: &mut Coord) -> anyhow::Result<()> {
    let c = &a.common;
    let w = coord.worker();
    let n = slice_len(a.connections, a.workers.worker_count, w);
    let t0 = Instant::now();
    let (connector, clients) = register_slice(target, c, w, n, coord).await?;
    let connector = Arc::new(connector);
    let register_s = t0.elapsed().as_secs_f64();
    let mut ids = Vec::with_capacity(n);
    for (conn, id) in clients {
        conn.close().await;
        ids.push(id);
    }
    coord
        .barrier("registered", json!({ "count": n, "secs": register_s }))
        .await?;

    // Two passes over the same accounts: the first after a restart (the store's cache is
    // cold: each login also loads that user's token record), the second after the first
    // closed (the cache is warm, so what it adds is the connections' own memory).
    for (opened, closed) in [("connected", "closed"), ("reconnected", "closed again")] {
        let (conns, report) = connect_all(&connector, &ids, &a, coord).await;
        coord.barrier(opened, report).await?;
        for conn in conns {
            conn.close().await;
        }
        coord.barrier(closed, json!({})).await?;
    }
    connector.shutdown().await;
    Ok(())
}

/// Handshakes and logs in a connection for every identity, in batches: every connection of a
/// batch is handshaken, then all are logged in, each half timed on its own so connects/s and
/// logins/s are separate figures.
async fn connect_all(
    connector: &Arc<crate::conn::Connector>,
    ids: &[Identity],
    a: &IdleArgs,
    coord: &Coord,
) -> (Vec<Conn>, Value) {
    let progress = coord.progress();
    let mut conns: Vec<Conn> = Vec::with_capacity(ids.len());
    let (mut connect_s, mut login_s, mut errors) = (0.0, 0.0, 0u64);
    let mut connect_h = crate::stats::histogram();
    let mut login_h = crate::stats::histogram();
    let mut first_error = None;
    for chunk in ids.chunks(a.batch.max(1)) {
        let t = Instant::now();
        let mut opened: Vec<(Conn, Identity)> = Vec::with_capacity(chunk.len());
        let mut s = futures::stream::iter(chunk.to_vec())
            .map(|id| {
                let connector = connector.clone();
                async move {
                    let t = Instant::now();
                    (connector.connect().await, t.elapsed(), id)
                }
            })
            .buffer_unordered(a.concurrency.max(1));
        while let Some((r, took, id)) = s.next().await {
            match r {
                Ok(conn) => {
                    connect_h.saturating_record(took.as_nanos() as u64);
                    opened.push((conn, id));
                }
                Err(e) => {
                    errors += 1;
                    first_error.get_or_insert_with(|| format!("connect: {e:#}"));
                }
            }
        }
        drop(s);
        connect_s += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut s = futures::stream::iter(opened)
            .map(|(mut conn, id)| async move {
                let t = Instant::now();
                let r = client::token_login(&mut conn, &id).await;
                (conn, r, t.elapsed())
            })
            .buffer_unordered(a.concurrency.max(1));
        while let Some((conn, r, took)) = s.next().await {
            match r {
                Ok(_) => {
                    login_h.saturating_record(took.as_nanos() as u64);
                    conns.push(conn);
                    progress.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    errors += 1;
                    first_error.get_or_insert_with(|| format!("login: {e:#}"));
                }
            }
        }
        login_s += t.elapsed().as_secs_f64();
    }
    let report = json!({
        "count": conns.len(),
        "connect_s": connect_s,
        "login_s": login_s,
        "errors": errors,
        "first_error": first_error,
        "connect_latency": summarize(&connect_h),
        "login_latency": summarize(&login_h),
    });
    (conns, report)
}

/// Entry point of a child process (`--worker-index` given).
pub async fn run_child(a: IdleArgs) -> anyhow::Result<()> {
    let target = Target::resolve(&a.common).await?;
    let coord = Coord::child(a.workers.worker_index.unwrap_or(0));
    slice(a, target, coord).await
}

fn sum(v: &[Value], key: &str) -> f64 {
    v.iter().map(|x| x[key].as_f64().unwrap_or(0.0)).sum()
}

fn max(v: &[Value], key: &str) -> f64 {
    v.iter()
        .map(|x| x[key].as_f64().unwrap_or(0.0))
        .fold(0.0, f64::max)
}

/// Runs `idle`.
pub async fn run(args: IdleArgs) -> anyhow::Result<Value> {
    let mut a = args;
    if a.common.smoke {
        a.connections = a.connections.min(20);
        a.workers.workers = a.workers.workers.min(2);
        a.hold = 0.5;
    }
    anyhow::ensure!(a.connections > 0, "--connections must be positive");
    let k = a.workers.normalise();
    let mut target = Target::resolve(&a.common).await?;
    let extra = [
        "--connections".to_owned(),
        a.connections.to_string(),
        "--batch".to_owned(),
        a.batch.to_string(),
        "--concurrency".to_owned(),
        a.concurrency.to_string(),
    ];
    let a2 = a.clone();
    let mut slices = start_slices(
        "idle",
        &a.common,
        &a.workers,
        &target,
        &extra,
        move |t, coord| slice(a2, t, coord),
    )?;
    let long = Duration::from_secs(3600);
    let p = Progress::new("registering", a.connections as u64);
    let registered = slices.wait("registered", long, &p).await?;
    p.finish();
    // Password hashing leaves freed memory in the allocator; a restarted server is a clean
    // baseline, so the RSS growth below is the connections' own.
    let after_registration = target.sample();
    let restarted = target.restart().await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = target.sample();
    slices.release().await?;
    let hold = Duration::from_secs_f64(a.hold.max(0.5));
    let p = Progress::new("connecting", a.connections as u64);
    let connected = slices.wait("connected", long, &p).await?;
    p.finish();
    tokio::time::sleep(hold).await;
    let after = target.sample();
    let stats = target.stats().await;
    slices.release().await?;
    slices
        .wait("closed", Duration::from_secs(120), &Progress::hidden())
        .await?;
    // The connections are gone; what stays is the store's cache of the users' tokens.
    tokio::time::sleep(hold).await;
    let closed = target.sample();
    slices.release().await?;
    let p = Progress::new("reconnecting", a.connections as u64);
    let reconnected = slices.wait("reconnected", long, &p).await?;
    p.finish();
    tokio::time::sleep(hold).await;
    let warm = target.sample();
    let warm_stats = target.stats().await;
    slices.release().await?;
    slices
        .wait(
            "closed again",
            Duration::from_secs(120),
            &Progress::hidden(),
        )
        .await?;
    slices.finish().await?;

    let open = sum(&connected, "count");
    let reopened = sum(&reconnected, "count");
    let errors = sum(&connected, "errors") + sum(&reconnected, "errors");
    let connect_s = max(&connected, "connect_s");
    let login_s = max(&connected, "login_s");
    let register_s = max(&registered, "secs");
    let mut memory = json!({});
    if let (Some(b), Some(af), Some(c), Some(w)) = (before, after, closed, warm) {
        let per = |hi: u64, lo: u64, n: f64| round3((hi as f64 - lo as f64) / n.max(1.0));
        memory = json!({
            "server_restarted_before_connecting": restarted,
            "rss_after_registration_kib": after_registration.map(|s| s.rss_kib),
            "rss_before_kib": b.rss_kib,
            "rss_after_kib": af.rss_kib,
            "rss_closed_kib": c.rss_kib,
            "rss_warm_kib": w.rss_kib,
            "kib_per_connection": per(af.rss_kib, b.rss_kib, open),
            "kib_per_connection_warm": per(w.rss_kib, c.rss_kib, reopened),
            "store_cache_kib_per_login": per(c.rss_kib, b.rss_kib, open),
        });
    }
    let first_error = connected
        .iter()
        .find_map(|v| v["first_error"].as_str().map(str::to_owned));
    let ok = errors == 0.0 && open as usize == a.connections && reopened as usize == a.connections;
    let report = json!({
        "scenario": "idle",
        "ok": ok,
        "config": {
            "transport": a.common.transport.name(),
            "connections": a.connections,
            "workers": k,
            "sources_per_worker": a.common.sources.max(usize::from(k > 1)),
            "batch": a.batch,
            "concurrency_per_worker": a.concurrency,
            "smoke": a.common.smoke,
        },
        "registration": {
            "accounts": sum(&registered, "count"),
            "secs": round3(register_s),
            "password_registrations_per_s": round3(sum(&registered, "count") / register_s.max(1e-9)),
        },
        "connects_per_s": round3(open / connect_s.max(1e-9)),
        "token_logins_per_s": round3(open / login_s.max(1e-9)),
        "warm_connects_per_s": round3(reopened / max(&reconnected, "connect_s").max(1e-9)),
        "warm_token_logins_per_s": round3(reopened / max(&reconnected, "login_s").max(1e-9)),
        "open_connections": open,
        "errors": errors,
        "first_error": first_error,
        "per_worker": connected,
        "memory": memory,
        "server_counters": stats,
        "server_counters_warm": warm_stats,
        "machine": machine(),
    });
    target.stop().await?;
    Ok(report)
}
