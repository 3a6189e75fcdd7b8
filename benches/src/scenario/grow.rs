//! `grow`: how the server's costs grow with the data it holds. P senders fill P 1:1
//! conversations (their peers offline) at saturation until the server holds each of the
//! `--at` counts of messages; at each count it records the disk used per stored message (the
//! message log and the sled store apart), the server's RSS, then kills the server with SIGKILL
//! and starts it again on the same data directory, timing the restart to its listeners being
//! ready (the `PARLEY_READY` line, printed once every listener is bound) and to the first sync
//! answered (connect, token login of an offline peer, one sync of its conversation from seq 0
//! with a page of 100), and the RSS after it. Then it goes on filling to the next count.
//!
//! Needs `--spawn-server` (it kills and restarts the server).

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use parley_protocol::frames::{Request, Response, SyncRequest};
use parley_protocol::ids::{ConversationId, Seq};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::{machine, register_all, round3, Common, Target};
use crate::client::{self, account_name, now_ns, open_direct, Identity};
use crate::peer::{self, Counters, Expect, PeerConfig, SendPlan};
use crate::stats::Latency;

/// Options of `grow`.
#[derive(Clone, Debug, clap::Args)]
pub struct GrowArgs {
    /// Options every scenario takes.
    #[command(flatten)]
    pub common: Common,
    /// Stored-message counts at which to measure, ascending, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000000")]
    pub at: Vec<u64>,
    /// Sending connections (each fills its own 1:1 conversation).
    #[arg(long, default_value_t = 200)]
    pub senders: usize,
    /// Unacknowledged sends per sender.
    #[arg(long, default_value_t = 32)]
    pub window: usize,
    /// Payload bytes (at least 8).
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
}

/// Bytes a directory tree takes: apparent (file lengths) and allocated (blocks).
fn disk_usage(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut apparent = 0;
    let mut allocated = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                apparent += m.len();
                allocated += m.blocks() * 512;
            }
        }
    }
    (apparent, allocated)
}

/// Runs `grow`.
pub async fn run(args: GrowArgs) -> anyhow::Result<Value> {
    let mut a = args;
    if a.common.smoke {
        a.at = vec![2_000, 4_000];
        a.senders = a.senders.min(4);
    }
    anyhow::ensure!(
        a.common.spawn_server,
        "grow kills and restarts the server: it needs --spawn-server"
    );
    anyhow::ensure!(a.senders > 0, "--senders must be positive");
    anyhow::ensure!(
        !a.at.is_empty() && a.at.windows(2).all(|w| w[0] < w[1]) && a.at[0] > 0,
        "--at must be positive counts in ascending order"
    );
    let c = &a.common;
    let mut target = Target::resolve(c).await?;
    let mut connector = target.connector(c, super::sources(0, c.sources))?;
    // Senders and their offline peers.
    let names = (0..2 * a.senders)
        .map(|i| account_name(target.run_id, 0, i))
        .collect();
    let clients = register_all(
        &connector,
        names,
        c.setup_concurrency,
        Arc::new(AtomicU64::new(0)),
    )
    .await?;
    let mut senders: Vec<Identity> = Vec::new();
    let mut peers: Vec<(Identity, ConversationId)> = Vec::new();
    let mut it = clients.into_iter();
    while let (Some((mut conn, sender)), Some((peer_conn, peer))) = (it.next(), it.next()) {
        let conv = open_direct(&mut conn, peer.user).await?;
        conn.close().await;
        peer_conn.close().await;
        senders.push(sender);
        peers.push((peer, conv));
    }

    let mut stored = 0u64;
    let mut points = Vec::new();
    let mut fill_s = 0.0;
    for &at in &a.at {
        // Fill to `at`, each sender its share, all at once.
        let share = (at - stored).div_ceil(a.senders as u64);
        let t = Instant::now();
        let mut tasks = Vec::new();
        for (i, s) in senders.iter().enumerate() {
            let mut conn = connector.connect().await?;
            client::token_login(&mut conn, s).await?;
            let expect = Arc::new(Expect::default());
            expect
                .senders_left
                .store(1, std::sync::atomic::Ordering::Release);
            let cfg = PeerConfig {
                conv: peers[i].1,
                server_entries: 0,
                epoch: s.epoch,
                send: Some(SendPlan {
                    rate: 0.0,
                    window: a.window.min(peer::SERVER_MAX_INFLIGHT),
                    payload: a.payload,
                    until: t + Duration::from_secs(3600),
                    tag: format!("{}-g{at}", s.account),
                    phase: 0.0,
                    max_messages: share,
                    max_rate: s.max_requests_per_second,
                }),
                expect,
                counters: Arc::new(Counters::default()),
                record_from_ns: now_ns(),
                deadline: t + Duration::from_secs(3660),
                ack_latency: Latency::default().recorder(),
                deliver_latency: Latency::default().recorder(),
                send_lag: Latency::default().recorder(),
            };
            tasks.push(tokio::spawn(peer::run(conn, cfg)));
        }
        let mut acked = 0u64;
        for task in tasks {
            let outcome = task.await?;
            anyhow::ensure!(
                outcome.acked.len() == share,
                "a sender had {} of {share} sends acknowledged ({:?})",
                outcome.acked.len(),
                outcome.failure
            );
            acked += outcome.acked.len();
        }
        stored += acked;
        let took = t.elapsed().as_secs_f64();
        fill_s += took;

        // Running: memory and disk.
        let server = target
            .server
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no spawned server"))?;
        let rss_running = server.sample()?.rss_kib;
        let dir = server.data_dir().to_owned();
        let (log_bytes, log_blocks) = disk_usage(&dir.join("messages"));
        let (store_bytes, store_blocks) = disk_usage(&dir.join("store"));

        // kill -9, then the same data directory again.
        let restart = target.kill_and_restart().await?;
        connector.shutdown().await;
        connector = target.connector(c, super::sources(0, c.sources))?;
        let server = target
            .server
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no spawned server"))?;
        let rss_ready = server.sample()?.rss_kib;
        let (peer, conv) = &peers[0];
        let t_sync = Instant::now();
        let mut conn = connector.connect().await?;
        client::token_login(&mut conn, peer).await?;
        let r = conn
            .call(Request::Sync(SyncRequest {
                epoch: peer.epoch,
                positions: vec![(*conv, Seq::ZERO)],
                limit: 100,
                from_conversation: None,
            }))
            .await?;
        let first_sync = t_sync.elapsed();
        let Response::Sync(page) = r else {
            anyhow::bail!("expected a sync answer, got {r:?}");
        };
        let want = share.min(100) as usize;
        anyhow::ensure!(
            page.messages.len() == want
                && page
                    .messages
                    .iter()
                    .enumerate()
                    .all(|(i, m)| m.conversation == *conv && m.seq.get() == i as u64 + 1),
            "the first sync after the restart did not answer seqs 1..={want} of the conversation"
        );
        conn.close().await;
        let rss_synced = server.sample()?.rss_kib;
        let per = |b: u64| round3(b as f64 / stored as f64);
        points.push(json!({
            "messages": stored,
            "fill_s": round3(took),
            "fill_msgs_per_s": round3(acked as f64 / took.max(1e-9)),
            "disk": {
                "log_bytes": log_bytes,
                "log_allocated_bytes": log_blocks,
                "store_bytes": store_bytes,
                "store_allocated_bytes": store_blocks,
                "bytes_per_message": per(log_blocks + store_blocks),
                "log_bytes_per_message": per(log_blocks),
                "store_bytes_per_message": per(store_blocks),
                "times_payload": round3((log_blocks + store_blocks) as f64 / (stored as f64 * a.payload as f64)),
            },
            "rss_kib": {
                "running": rss_running,
                "after_restart": rss_ready,
                "after_first_sync": rss_synced,
            },
            "restart": {
                "kill_to_listening_s": round3(restart.as_secs_f64()),
                "kill_to_first_sync_s": round3((restart + first_sync).as_secs_f64()),
                "first_sync_s": round3(first_sync.as_secs_f64()),
            },
        }));
    }
    connector.shutdown().await;
    let stats = target.stats().await;
    let report = json!({
        "scenario": "grow",
        "ok": true,
        "config": {
            "transport": c.transport.name(),
            "at": a.at,
            "senders": a.senders,
            "window": a.window,
            "payload_bytes": a.payload,
            "smoke": c.smoke,
        },
        "fill_s": round3(fill_s),
        "points": points,
        "server_counters": stats,
        "machine": machine(),
    });
    target.stop().await?;
    Ok(report)
}
