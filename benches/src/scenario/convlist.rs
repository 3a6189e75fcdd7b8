//! `convlist`: one user in C conversations, each with a message, then `ListConversations` asked N
//! times in a row. Reports the latency of the answer (write of the request to the last byte of
//! the response, before decoding), its size in bytes, and the server's CPU per request.
//!
//! Setup (bounded by `--setup-timeout`): two password registrations, the user and a peer. The
//! user creates C groups with the peer as the other member, over `--setup-connections`
//! connections (each its own device: one password login each), since the server handles one
//! conversation change per connection at a time. Then the peer writes one message in each group,
//! in a shuffled order, so the list's order by latest activity is not the order of creation.
//! With `--direct D`, D of the C conversations are 1:1 conversations with D more users instead
//! (a password registration each, ~100/s), in which the user writes (before the peer's group
//! messages). Nobody else is online while the list is measured. With `--limit 0` the server
//! answers as many conversations as fit in its `limits.max_sync_bytes` (1 MiB by default; about
//! 170 bytes per conversation, so some 6,000 of 10,000): the measured request is that first
//! page. The measuring connection accepts frames far above the announced limit all the same.
//!
//! The check: every conversation of the page listed once with its message, newest entry first
//! (by each one's last message, when the answer carries it), and none missing when the page
//! holds them all (`complete`); `same_as_write_order` tells, for information, whether the list
//! is exactly the reverse of the order the messages were written.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use parley_protocol::frames::{Push, Request, Response, ServerFrame};
use parley_protocol::ids::ConversationId;
use parley_protocol::LEN_PREFIX;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::{machine, register_ids, round3, Common, Mark, Pacer, Target};
use crate::client::{
    account_name, create_group, now_ns, open_direct, password_login, send_request, token_login,
    Identity,
};
use crate::conn::{Conn, Connector};
use crate::progress::Progress;
use crate::stats::{histogram, summarize};

/// Options of `convlist`.
#[derive(Clone, Debug, clap::Args)]
pub struct ConvlistArgs {
    /// Options every scenario takes.
    #[command(flatten)]
    pub common: Common,
    /// Conversations of the measured user.
    #[arg(long, default_value_t = 10_000)]
    pub conversations: usize,
    /// How many of them are 1:1 conversations, each with a user of its own (a password
    /// registration each); the rest are groups shared with one peer.
    #[arg(long, default_value_t = 0)]
    pub direct: usize,
    /// `ListConversations` requests measured, one after another (after one unmeasured first).
    #[arg(long, default_value_t = 200)]
    pub requests: usize,
    /// Page size asked for (0: the whole list).
    #[arg(long, default_value_t = 0)]
    pub limit: u32,
    /// Connections (devices) of the user creating the conversations in parallel.
    #[arg(long, default_value_t = 8)]
    pub setup_connections: usize,
    /// Payload bytes of each conversation's message.
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Give up if the setup takes longer than this many seconds.
    #[arg(long, default_value_t = 900.0)]
    pub setup_timeout: f64,
    /// Stop measuring after this many seconds even if fewer requests were made.
    #[arg(long, default_value_t = 120.0)]
    pub max_seconds: f64,
}

/// Unacknowledged sends per connection during setup.
const SEND_WINDOW: usize = 64;

/// Frame limit of the measuring connection (the server's pages are far smaller).
const LIST_MAX_FRAME: usize = 256 << 20;

/// A small deterministic generator for the shuffle (no need for a crate).
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// `items` in a shuffled order (Fisher-Yates, seeded).
fn shuffled<T: Copy>(items: &[T], seed: u64) -> Vec<T> {
    let mut v = items.to_vec();
    let mut s = seed | 1;
    for i in (1..v.len()).rev() {
        let j = (xorshift(&mut s) % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

/// Sends one stamped message to each of `convs`, in order, `SEND_WINDOW` unacknowledged at a
/// time on one connection (under the server's rate); fails on any refusal.
async fn send_one_each(
    conn: &mut Conn,
    id: &Identity,
    convs: &[ConversationId],
    payload: usize,
    done: &AtomicU64,
) -> anyhow::Result<()> {
    let mut pacer = Pacer::new(id.max_requests_per_second);
    let mut inflight = HashSet::new();
    let mut next = 0;
    loop {
        while next < convs.len() && inflight.len() < SEND_WINDOW && pacer.allows() {
            pacer.sent += 1;
            let cmid = format!("{}-l{next}", id.account);
            let req = send_request(convs[next], &cmid, now_ns(), payload)?;
            inflight.insert(conn.writer.queue(req).get());
            next += 1;
        }
        conn.writer.flush().await?;
        if next == convs.len() && inflight.is_empty() {
            return Ok(());
        }
        let may_send = next < convs.len() && inflight.len() < SEND_WINDOW;
        tokio::select! {
            frame = conn.reader.next_frame() => match frame? {
                None => bail!("the server closed the connection"),
                Some(ServerFrame::Response(rid, Response::SendAck(_)))
                    if inflight.remove(&rid.get()) =>
                {
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Some(ServerFrame::Response(_, Response::Error(e))) => bail!("send refused: {e}"),
                Some(ServerFrame::Response(rid, other)) => {
                    bail!("unexpected response {rid}: {other:?}")
                }
                Some(ServerFrame::Push(Push::GoAway { reason, message })) => {
                    bail!("server sent GoAway {reason:?}: {message}")
                }
                Some(ServerFrame::Push(_)) => {}
            },
            _ = tokio::time::sleep_until(pacer.next_at()), if may_send => {}
        }
    }
}

/// `count` logged-in connections of `id`: the first with its access token, the others as
/// devices `imload-1`.. with a password login each.
async fn devices(connector: &Connector, id: &Identity, count: usize) -> anyhow::Result<Vec<Conn>> {
    let mut out = Vec::with_capacity(count);
    let mut conn = connector.connect().await?;
    token_login(&mut conn, id).await?;
    out.push(conn);
    let extra = futures::future::try_join_all((1..count).map(|k| async move {
        let mut conn = connector.connect().await?;
        let turn = connector.hashing_turn().await;
        password_login(&mut conn, id, &format!("imload-{k}")).await?;
        drop(turn);
        Ok::<_, anyhow::Error>(conn)
    }))
    .await?;
    out.extend(extra);
    Ok(out)
}

/// What the setup made.
struct Setup {
    /// The measured user.
    user: Identity,
    /// Its conversations, in order of creation.
    convs: Vec<ConversationId>,
    /// The same, newest message first (the reverse of the order they were written in).
    newest_first: Vec<ConversationId>,
    report: Value,
}

async fn setup(a: &ConvlistArgs, target: &Target, connector: &Connector) -> anyhow::Result<Setup> {
    let c = &a.common;
    let started = Instant::now();
    let groups = a.conversations - a.direct;
    let names = (0..2 + a.direct)
        .map(|i| account_name(target.run_id, 0, i))
        .collect();
    let (ids, register_s) = register_ids(connector, names, c.setup_concurrency).await?;
    let (user, peer) = (ids[0].clone(), ids[1].clone());

    // The conversations, round-robin over the user's devices (one change at a time each).
    let t = Instant::now();
    let k = a.setup_connections.clamp(1, 64).min(a.conversations);
    let mut conns = devices(connector, &user, k).await?;
    let logins_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let created = Arc::new(AtomicU64::new(0));
    let bar = Progress::new("creating", a.conversations as u64);
    let ticker = {
        let (created, bar) = (created.clone(), bar.clone());
        tokio::spawn(async move {
            loop {
                bar.set(created.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let rate = user.max_requests_per_second;
    let made = futures::future::try_join_all(conns.iter_mut().enumerate().map(|(j, conn)| {
        let (ids, created, peer) = (&ids, created.clone(), peer.user);
        async move {
            let mut pacer = Pacer::new(rate);
            let mut mine = Vec::new();
            for i in (j..a.conversations).step_by(k) {
                pacer.take().await;
                let conv = if i < groups {
                    create_group(conn, &format!("imload-cl{i}"), vec![peer]).await?
                } else {
                    open_direct(conn, ids[2 + i - groups].user).await?
                };
                mine.push((i, conv));
                created.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(mine)
        }
    }))
    .await;
    ticker.abort();
    bar.finish();
    let mut convs = vec![None; a.conversations];
    for (i, conv) in made?.into_iter().flatten() {
        convs[i] = Some(conv);
    }
    let convs: Vec<ConversationId> = convs.into_iter().flatten().collect();
    let create_s = t.elapsed().as_secs_f64();

    // One message in each, in a shuffled order; only the sending connection is online, so
    // no one else's push queue fills up.
    let t = Instant::now();
    let sent = AtomicU64::new(0);
    let seed = (u64::from(target.run_id) << 32) | 0x9e37_79b9;
    let mut conns = conns.into_iter();
    let mut own = conns.next().ok_or_else(|| anyhow!("no connection"))?;
    for conn in conns {
        conn.close().await;
    }
    let directs = shuffled(&convs[groups..], seed);
    send_one_each(&mut own, &user, &directs, a.payload, &sent).await?;
    own.close().await;
    let order = shuffled(&convs[..groups], seed.rotate_left(17));
    if groups > 0 {
        let mut conn = connector.connect().await?;
        token_login(&mut conn, &peer).await?;
        send_one_each(&mut conn, &peer, &order, a.payload, &sent).await?;
        conn.close().await;
    }
    let newest_first = order
        .iter()
        .rev()
        .chain(directs.iter().rev())
        .copied()
        .collect();
    let messages_s = t.elapsed().as_secs_f64();
    let report = json!({
        "accounts": ids.len(),
        "register_s": round3(register_s),
        "device_logins_s": round3(logins_s),
        "create_s": round3(create_s),
        "creates_per_s": round3(a.conversations as f64 / create_s.max(1e-9)),
        "messages": sent.load(Ordering::Relaxed),
        "messages_s": round3(messages_s),
        "total_s": round3(started.elapsed().as_secs_f64()),
    });
    Ok(Setup {
        user,
        convs,
        newest_first,
        report,
    })
}

/// One `ListConversations`: the request's latency (until the last byte of the answer), the
/// frame's size with its length prefix, the client's decoding time, and the answer.
async fn list_once(
    conn: &mut Conn,
    limit: u32,
) -> anyhow::Result<(Duration, usize, Duration, Response)> {
    let t0 = Instant::now();
    let id = conn
        .writer
        .queue(Request::ListConversations { limit, offset: 0 });
    conn.writer.flush().await?;
    loop {
        let body = conn
            .reader
            .next()
            .await?
            .ok_or_else(|| anyhow!("the server closed the connection"))?;
        let took = t0.elapsed();
        let size = body.len() + LEN_PREFIX;
        let t1 = Instant::now();
        match ServerFrame::decode(body)? {
            ServerFrame::Response(rid, Response::Error(e)) if rid == id => {
                bail!("list_conversations: {e}")
            }
            ServerFrame::Response(rid, r) if rid == id => return Ok((took, size, t1.elapsed(), r)),
            ServerFrame::Response(rid, _) => bail!("unexpected response {rid}"),
            ServerFrame::Push(_) => {}
        }
    }
}

/// Checks the list against what the setup made: every conversation listed once, each with a
/// message, newest activity first (where the answer carries each one's last message). Also
/// tells, without judging, whether the list is exactly the reverse of the order the messages
/// were written in (one connection writes them, so they commit in that order).
fn check(r: &Response, s: &Setup, limit: u32) -> anyhow::Result<Value> {
    let convs = &s.convs;
    let Response::ConversationList {
        conversations,
        total_unread,
        total,
    } = r
    else {
        bail!("expected ConversationList, got {r:?}");
    };
    let ours: HashSet<ConversationId> = convs.iter().copied().collect();
    let mut seen: HashMap<ConversationId, u32> = HashMap::new();
    let mut without_messages = 0;
    for info in conversations.iter().filter(|i| ours.contains(&i.id)) {
        *seen.entry(info.id).or_default() += 1;
        if info.head.get() == 0 {
            without_messages += 1;
        }
    }
    let duplicates = seen.values().filter(|n| **n > 1).count();
    let complete = conversations.len() as u64 == u64::from(*total);
    let missing = if limit == 0 && complete {
        ours.len() - seen.len()
    } else {
        0
    };
    // Newest first by the last entry's server time (pinned ones first: none here).
    let times: Vec<u64> = conversations
        .iter()
        .filter(|i| !i.pinned)
        .filter_map(|i| i.last_message.as_ref().map(|m| m.server_time_ms))
        .collect();
    let order_checked = !times.is_empty() && times.len() == conversations.len();
    let order_violations = times.windows(2).filter(|w| w[0] < w[1]).count();
    let listed_ours: Vec<ConversationId> = conversations
        .iter()
        .map(|i| i.id)
        .filter(|id| ours.contains(id))
        .collect();
    let same_as_write_order = s.newest_first.get(..listed_ours.len()) == Some(&listed_ours[..]);
    let ok = missing == 0
        && duplicates == 0
        && without_messages == 0
        && (!order_checked || order_violations == 0);
    Ok(json!({
        "ok": ok,
        "listed": conversations.len(),
        "listed_of_ours": seen.len(),
        "total": total,
        "complete": complete,
        "total_unread": total_unread,
        "missing": missing,
        "duplicates": duplicates,
        "without_messages": without_messages,
        "order_checked": order_checked,
        "order_violations": order_violations,
        "same_as_write_order": same_as_write_order,
    }))
}

/// Runs `convlist`.
pub async fn run(args: ConvlistArgs) -> anyhow::Result<Value> {
    let mut a = args;
    if a.common.smoke {
        a.conversations = a.conversations.min(40);
        a.direct = a.direct.min(4);
        a.requests = a.requests.min(20);
    }
    a.payload = a.payload.max(8);
    anyhow::ensure!(a.conversations > 0, "--conversations must be positive");
    anyhow::ensure!(
        a.direct <= a.conversations,
        "--direct must be at most --conversations"
    );
    anyhow::ensure!(a.requests > 0, "--requests must be positive");
    let c = &a.common;
    let target = Target::resolve(c).await?;
    let connector = target.connector(c, super::sources(0, c.sources))?;
    let timeout = Duration::from_secs_f64(a.setup_timeout.max(1.0));
    let s = tokio::time::timeout(timeout, setup(&a, &target, &connector))
        .await
        .map_err(|_| anyhow!("the setup took longer than --setup-timeout {timeout:?}"))?
        .context("setup")?;

    // The measurement: the user alone online, one request at a time.
    let mut conn = connector.connect().await?;
    token_login(&mut conn, &s.user).await?;
    conn.reader.set_max_frame(LIST_MAX_FRAME);
    let (first, first_size, _, first_answer) = list_once(&mut conn, a.limit).await?;
    let checked = check(&first_answer, &s, a.limit)?;
    drop(first_answer);
    let mut latency = histogram();
    let mut decode = histogram();
    let mut sizes = (usize::MAX, 0usize);
    let bound = Duration::from_secs_f64(a.max_seconds.max(0.1));
    let progress = Progress::new("listing", a.requests as u64);
    let m0 = Mark::now(&target);
    let mut done = 0u64;
    for _ in 0..a.requests {
        let (took, size, dec, _) = list_once(&mut conn, a.limit).await?;
        latency.saturating_record(took.as_nanos() as u64);
        decode.saturating_record(dec.as_nanos() as u64);
        sizes = (sizes.0.min(size), sizes.1.max(size));
        done += 1;
        progress.set(done);
        if m0.at.elapsed() >= bound {
            break;
        }
    }
    let m1 = Mark::now(&target);
    progress.finish();
    let secs = m1.at.duration_since(m0.at).as_secs_f64();
    conn.close().await;
    connector.shutdown().await;

    let listed = checked["listed"].as_u64().unwrap_or(0);
    let ok = checked["ok"].as_bool() == Some(true);
    let stats = target.stats().await;
    let report = json!({
        "scenario": "convlist",
        "ok": ok,
        "config": {
            "transport": c.transport.name(),
            "conversations": a.conversations,
            "groups": a.conversations - a.direct,
            "direct": a.direct,
            "requests": a.requests,
            "limit": a.limit,
            "setup_connections": a.setup_connections,
            "payload_bytes": a.payload,
            "smoke": c.smoke,
        },
        "setup": s.report,
        "list": {
            "requests": done,
            "stopped_by_time_bound": done < a.requests as u64,
            "first_request_ms": round3(first.as_secs_f64() * 1e3),
            "latency": summarize(&latency),
            "client_decode": summarize(&decode),
            "requests_per_s": round3(done as f64 / secs.max(1e-9)),
            "response_bytes": first_size,
            // The frame echoes the request id, a varint: one byte more from id 128 on.
            "response_bytes_min": sizes.0,
            "response_bytes_max": sizes.1,
            "bytes_per_conversation": round3(first_size as f64 / (listed.max(1)) as f64),
        },
        "check": checked,
        "cpu": m0.cpu_between(&m1, done),
        "server_counters": stats,
        "machine": machine(),
    });
    target.stop().await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_is_a_permutation() {
        let v: Vec<u32> = (0..1000).collect();
        let s = shuffled(&v, 42);
        assert_ne!(s, v);
        let mut sorted = s.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, v);
    }
}
