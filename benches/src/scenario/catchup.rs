//! `catchup`: a user is offline while K messages arrive in a 1:1 conversation; then it logs in
//! with its token and syncs. Reports the time to sync all K (and the pages it took), and checks
//! they arrive gapless and exactly once.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use super::{machine, register_all, round3, Common, Mark, Target};
use crate::client::{self, account_name, now_ns, open_direct};
use crate::peer::{self, Counters, Expect, PeerConfig, SendPlan};
use crate::stats::{Latency, SeqSet};

/// Options of `catchup`.
#[derive(Clone, Debug, clap::Args)]
pub struct CatchupArgs {
    /// Options every scenario takes.
    #[command(flatten)]
    pub common: Common,
    /// Messages that arrive while the user is offline.
    #[arg(long, default_value_t = 10_000)]
    pub messages: u64,
    /// Payload bytes (at least 8).
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Sync page size requested (0: the server's default; the server caps it).
    #[arg(long, default_value_t = 1000)]
    pub page: u32,
}

/// Runs `catchup`.
pub async fn run(args: CatchupArgs) -> anyhow::Result<Value> {
    let mut a = args;
    if a.common.smoke {
        a.messages = a.messages.min(300);
    }
    anyhow::ensure!(a.messages > 0, "--messages must be positive");
    let c = &a.common;
    let target = Target::resolve(c).await?;
    let connector = target.connector(c, super::sources(0, c.sources))?;
    let names = (0..2).map(|i| account_name(target.run_id, 0, i)).collect();
    let mut clients = register_all(&connector, names, 2, Arc::new(AtomicU64::new(0))).await?;
    let (offline_conn, offline) = clients.pop().ok_or_else(|| anyhow::anyhow!("no client"))?;
    let (mut conn, sender) = clients.pop().ok_or_else(|| anyhow::anyhow!("no client"))?;
    let conv = open_direct(&mut conn, offline.user).await?;
    offline_conn.close().await;

    // The backlog, sent at saturation by the online peer (its acks are durable).
    let expect = Arc::new(Expect::default());
    expect
        .senders_left
        .store(1, std::sync::atomic::Ordering::Release);
    let ack = Latency::default();
    let deliver = Latency::default();
    let t_send = Instant::now();
    let cfg = PeerConfig {
        conv,
        server_entries: 0,
        epoch: sender.epoch,
        send: Some(SendPlan {
            rate: 0.0,
            window: peer::SERVER_MAX_INFLIGHT,
            payload: a.payload,
            until: t_send + Duration::from_secs(600),
            tag: format!("{}-c", sender.account),
            phase: 0.0,
            max_messages: a.messages,
            max_rate: sender.max_requests_per_second,
        }),
        expect,
        counters: Arc::new(Counters::default()),
        record_from_ns: now_ns(),
        deadline: t_send + Duration::from_secs(660),
        ack_latency: ack.recorder(),
        deliver_latency: deliver.recorder(),
        send_lag: Latency::default().recorder(),
    };
    let outcome = peer::run(conn, cfg).await;
    let send_s = t_send.elapsed().as_secs_f64();
    anyhow::ensure!(
        outcome.acked.len() == a.messages,
        "only {} of {} backlog messages were acknowledged ({:?})",
        outcome.acked.len(),
        a.messages,
        outcome.failure
    );

    // The catch-up: reconnect, token login, sync until has_more is false.
    let m0 = Mark::now(&target);
    let t0 = Instant::now();
    let mut conn = connector.connect().await?;
    let connect_s = t0.elapsed().as_secs_f64();
    client::token_login(&mut conn, &offline).await?;
    let login_s = t0.elapsed().as_secs_f64();
    let synced = client::sync_all(&mut conn, offline.epoch, Vec::new(), a.page, 1_000_000).await?;
    let total_s = t0.elapsed().as_secs_f64();
    let m1 = Mark::now(&target);
    conn.close().await;
    connector.shutdown().await;

    let mut seen = SeqSet::default();
    for (c2, s) in &synced.messages {
        if *c2 == conv {
            seen.insert(s.get());
        }
    }
    let lost = outcome.acked.missing_from(&seen);
    let ok = lost == 0 && seen.duplicates() == 0 && seen.is_gapless() && seen.len() == a.messages;
    let stats = target.stats().await;
    let report = json!({
        "scenario": "catchup",
        "ok": ok,
        "config": {
            "transport": c.transport.name(),
            "messages": a.messages,
            "payload_bytes": a.payload,
            "page": a.page,
            "smoke": c.smoke,
        },
        "backlog": {
            "send_s": round3(send_s),
            "acked_per_s": round3(a.messages as f64 / send_s.max(1e-9)),
            "send_to_durable_ack": ack.summary(),
        },
        "catchup": {
            "connect_s": round3(connect_s),
            "login_s": round3(login_s),
            "all_synced_s": round3(total_s),
            "pages": synced.pages,
            "messages_per_s": round3(seen.len() as f64 / (total_s - login_s).max(1e-9)),
        },
        "cpu": m0.cpu_between(&m1, seen.len()),
        "integrity": {
            "ok": ok,
            "acked": outcome.acked.len(),
            "synced": seen.len(),
            "lost": lost,
            "duplicates": seen.duplicates(),
            "gapless": seen.is_gapless(),
        },
        "server_counters": stats,
        "machine": machine(),
    });
    target.stop().await?;
    Ok(report)
}
