//! `storm`: N logged-in clients drop their connections at once and reconnect at once (token
//! login, then a full sync). Reports the time until every client is logged in and synced.
//!
//! Clients come in pairs sharing a 1:1 conversation with `--backlog` messages, so each sync has
//! real history to fetch and the run can check that every client got all of it. Each client
//! keeps its own TLS session cache, as a device does, so its reconnect resumes the session it
//! had (`--no-resume`: full handshakes; `--zero-rtt`: the token login in early data).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::idle::{slice_len, start_slices, WorkerArgs};
use super::{machine, register_all, round3, Common, Target};
use crate::client::{self, account_name, open_direct, send_request, Identity};
use crate::conn::{Connector, Resumable};
use crate::coord::Coord;
use crate::progress::Progress;
use crate::stats::summarize;

/// Options of `storm`.
#[derive(Clone, Debug, clap::Args)]
pub struct StormArgs {
    /// Options every scenario takes.
    #[command(flatten)]
    pub common: Common,
    /// Worker slices.
    #[command(flatten)]
    pub workers: WorkerArgs,
    /// Clients (over all workers).
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    /// Messages in each pair's conversation before the storm (fetched by the sync).
    #[arg(long, default_value_t = 5)]
    pub backlog: usize,
    /// Reconnects in flight at once per worker (the rest queue behind them).
    #[arg(long, default_value_t = 1000)]
    pub concurrency: usize,
    /// Reconnect with full TLS handshakes (clients keep no session tickets).
    #[arg(long)]
    pub no_resume: bool,
    /// Reconnect with 0-RTT: the token login rides in the first flight (TLS and QUIC; the
    /// server needs `[tls] early_data_tickets` > 0, e.g. through `--server-config`).
    #[arg(long, conflicts_with = "no_resume")]
    pub zero_rtt: bool,
}

async fn reconnect(
    connector: &Connector,
    client: &Resumable,
    id: &Identity,
    t0: Instant,
) -> anyhow::Result<(Duration, usize)> {
    let mut conn = connector.connect_as(client).await?;
    client::token_login(&mut conn, id).await?;
    let synced = client::sync_all(&mut conn, id.epoch, Vec::new(), 0, 1000).await?;
    let took = t0.elapsed();
    conn.close().await;
    Ok((took, synced.messages.len()))
}

async fn slice(a: StormArgs, target: Target, mut coord: Coord) -> anyhow::Result<()> {
    let r = slice_inner(a, &target, &mut coord).await;
    if let Err(e) = &r {
        coord.fail(e);
    }
    r
}

async fn slice_inner(a: StormArgs, target: &Target, coord: &mut Coord) -> anyhow::Result<()> {
    let c = &a.common;
    let w = coord.worker();
    let n = slice_len(a.clients, a.workers.worker_count, w);
    let connector = Arc::new(target.connector(c, super::sources(w, c.sources))?);
    // Setup in chunks: register, open each pair's conversation and write its backlog, close.
    // (Connections idle for longer than the server's heartbeat timeout would be reaped, and
    // registering thousands of accounts takes minutes.)
    let mut ids = Vec::with_capacity(n);
    let mut expected = vec![0usize; n];
    for first in (0..n).step_by(1000) {
        let names = (first..n.min(first + 1000))
            .map(|i| account_name(target.run_id, w, i))
            .collect();
        let mut clients =
            register_all(&connector, names, c.setup_concurrency, coord.progress()).await?;
        for j in 0..clients.len() / 2 {
            let peer = clients[2 * j + 1].1.user;
            let (conn, id) = &mut clients[2 * j];
            let conv = open_direct(conn, peer).await?;
            for k in 0..a.backlog {
                let cmid = format!("{}-b{k}", id.account);
                conn.call(send_request(conv, &cmid, 0, 16)?).await?;
            }
            expected[first + 2 * j] = a.backlog;
            expected[first + 2 * j + 1] = a.backlog;
        }
        for (conn, id) in clients {
            conn.close().await;
            ids.push(id);
        }
    }
    // Everyone online (token login), then the storm. Without resumption every client shares
    // the connector's cache, which keeps tickets for a handful of connections only.
    let shared = Resumable::default();
    let sessions = (0..n)
        .map(|_| {
            if a.no_resume {
                Ok(shared.clone())
            } else {
                connector.resumable(a.zero_rtt)
            }
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut online = Vec::with_capacity(n);
    let mut s = futures::stream::iter(ids.clone().into_iter().zip(sessions.clone()))
        .map(|(id, session)| {
            let connector = connector.clone();
            async move {
                let mut conn = connector.connect_as(&session).await?;
                client::token_login(&mut conn, &id).await?;
                Ok::<_, anyhow::Error>(conn)
            }
        })
        .buffer_unordered(a.concurrency.max(1));
    while let Some(conn) = s.next().await {
        online.push(conn?);
    }
    drop(s);
    coord
        .barrier("ready", json!({ "count": online.len() }))
        .await?;

    // The storm: every connection drops at once, then everyone reconnects at once.
    drop(online);
    let t0 = Instant::now();
    let progress = coord.progress();
    let mut hist = crate::stats::histogram();
    let (mut done, mut errors, mut wrong_history) = (0u64, 0u64, 0u64);
    let mut first_error = None;
    let mut s = futures::stream::iter(ids.into_iter().zip(expected).zip(sessions))
        .map(|((id, want), session)| {
            let connector = connector.clone();
            async move { (reconnect(&connector, &session, &id, t0).await, want) }
        })
        .buffer_unordered(a.concurrency.max(1));
    while let Some((r, want)) = s.next().await {
        match r {
            Ok((took, got)) => {
                hist.saturating_record(took.as_nanos() as u64);
                done += 1;
                if got != want {
                    wrong_history += 1;
                }
                progress.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    drop(s);
    let secs = t0.elapsed().as_secs_f64();
    connector.shutdown().await;
    coord
        .barrier(
            "synced",
            json!({
                "count": done,
                "errors": errors,
                "wrong_history": wrong_history,
                "secs": secs,
                "first_error": first_error,
                "per_client": summarize(&hist),
            }),
        )
        .await?;
    Ok(())
}

/// Entry point of a child process (`--worker-index` given).
pub async fn run_child(a: StormArgs) -> anyhow::Result<()> {
    let target = Target::resolve(&a.common).await?;
    let coord = Coord::child(a.workers.worker_index.unwrap_or(0));
    slice(a, target, coord).await
}

/// Runs `storm`.
pub async fn run(args: StormArgs) -> anyhow::Result<Value> {
    let mut a = args;
    if a.common.smoke {
        a.clients = a.clients.min(20);
        a.workers.workers = a.workers.workers.min(2);
        a.backlog = a.backlog.min(3);
    }
    anyhow::ensure!(a.clients > 0, "--clients must be positive");
    let k = a.workers.normalise();
    let target = Target::resolve(&a.common).await?;
    let mut extra = vec![
        "--clients".to_owned(),
        a.clients.to_string(),
        "--backlog".to_owned(),
        a.backlog.to_string(),
        "--concurrency".to_owned(),
        a.concurrency.to_string(),
    ];
    if a.no_resume {
        extra.push("--no-resume".to_owned());
    }
    if a.zero_rtt {
        extra.push("--zero-rtt".to_owned());
    }
    let a2 = a.clone();
    let mut slices = start_slices(
        "storm",
        &a.common,
        &a.workers,
        &target,
        &extra,
        move |t, coord| slice(a2, t, coord),
    )?;
    let long = Duration::from_secs(3600);
    let p = Progress::new("registering", a.clients as u64);
    slices.wait("ready", long, &p).await?;
    p.finish();
    let before = target.sample();
    slices.release().await?;
    let p = Progress::new("reconnecting", a.clients as u64);
    let synced = slices.wait("synced", Duration::from_secs(600), &p).await?;
    p.finish();
    let after = target.sample();
    let stats = target.stats().await;
    slices.finish().await?;

    let total = |k: &str| {
        synced
            .iter()
            .map(|v| v[k].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    let secs = synced
        .iter()
        .map(|v| v["secs"].as_f64().unwrap_or(0.0))
        .fold(0.0, f64::max);
    let (done, errors, wrong) = (total("count"), total("errors"), total("wrong_history"));
    let first_error = synced
        .iter()
        .find_map(|v| v["first_error"].as_str().map(str::to_owned));
    let ok = errors == 0 && wrong == 0 && done as usize == a.clients;
    let mut cpu = json!({});
    if let (Some(b), Some(af)) = (before, after) {
        cpu = json!({
            "server_cpu_s": round3((af.cpu_us.saturating_sub(b.cpu_us)) as f64 / 1e6),
            "server_rss_kib": af.rss_kib,
        });
    }
    let report = json!({
        "scenario": "storm",
        "ok": ok,
        "config": {
            "transport": a.common.transport.name(),
            "clients": a.clients,
            "workers": k,
            "backlog_per_pair": a.backlog,
            "concurrency_per_worker": a.concurrency,
            "tls_resumption": !a.no_resume,
            "zero_rtt": a.zero_rtt,
            "smoke": a.common.smoke,
        },
        "all_synced_s": round3(secs),
        "reconnects_per_s": round3(done as f64 / secs.max(1e-9)),
        "synced_clients": done,
        "errors": errors,
        "wrong_history": wrong,
        "first_error": first_error,
        "per_worker": synced,
        "cpu": cpu,
        "server_counters": stats,
        "machine": machine(),
    });
    target.stop().await?;
    Ok(report)
}
