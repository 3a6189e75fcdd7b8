//! The traffic loop of one connection in `chat` and `fanout`: it sends stamped messages (at a
//! fixed rate or with a window of unacknowledged sends), receives acks and pushes, records
//! latencies, and tracks every seq it sees so the run can prove nothing was lost or duplicated.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parley_protocol::frames::{Push, Request, Response, ServerFrame, SyncRequest};
use parley_protocol::ids::{ConversationId, Seq};
use tokio::time::{Instant, MissedTickBehavior};

use crate::client::{now_ns, send_request, stamp_of};
use crate::conn::Conn;
use crate::stats::{Recorder, SeqSet};

/// The server's default `max_inflight_sends`: never exceed it, or the server stops reading.
pub const SERVER_MAX_INFLIGHT: usize = 256;

/// A peer that has written nothing for this long sends a `Ping` (the server's heartbeat
/// interval is 30 s and it closes connections silent for 90 s).
const PING_EVERY: Duration = Duration::from_secs(15);

/// What the receivers of one conversation wait for.
#[derive(Debug, Default)]
pub struct Expect {
    /// Sends acknowledged so far in the conversation.
    pub acked: AtomicU64,
    /// Senders still sending.
    pub senders_left: AtomicUsize,
}

/// Counters shared by every peer of a run, sampled for throughput.
#[derive(Debug, Default)]
pub struct Counters {
    /// Distinct messages delivered (by push or sync).
    pub delivered: AtomicU64,
    /// Sends acknowledged.
    pub acked: AtomicU64,
    /// Errors (error responses, broken connections).
    pub errors: AtomicU64,
}

/// How a peer sends.
#[derive(Clone, Debug)]
pub struct SendPlan {
    /// Messages per second from this peer; 0 means saturation (keep `window` in flight).
    pub rate: f64,
    /// Unacknowledged sends allowed in saturation mode (at most 256, the server's limit).
    pub window: usize,
    /// Payload bytes.
    pub payload: usize,
    /// Stop starting sends at this instant.
    pub until: Instant,
    /// Prefix of `client_msg_id`s (unique per sender).
    pub tag: String,
    /// Fixed-rate mode: this peer's phase, as a fraction of its send period in `[0, 1)`.
    /// Spreading the senders' phases makes arrivals at the server uniform instead of every
    /// sender firing on the same tick.
    pub phase: f64,
    /// Stop after this many sends (`u64::MAX`: only `until` stops).
    pub max_messages: u64,
    /// The server's announced per-connection request rate (0 = unlimited). The peer paces
    /// itself under it (a one-second burst, then this rate), so saturation never turns into
    /// `RATE_LIMITED` errors.
    pub max_rate: u32,
}

/// Everything one peer needs.
#[derive(Debug)]
pub struct PeerConfig {
    /// The conversation it sends to and receives from.
    pub conv: ConversationId,
    /// Seqs up to this are the server's own entries (a group's `Created` event), not sends:
    /// they are not counted as deliveries, so a peer that happens to receive one does not
    /// count it toward the sends it waits for.
    pub server_entries: u64,
    /// Store epoch (for sync after `SyncNeeded`).
    pub epoch: u64,
    /// Sending, if this peer sends.
    pub send: Option<SendPlan>,
    /// What the conversation's receivers wait for.
    pub expect: Arc<Expect>,
    /// Run-wide counters.
    pub counters: Arc<Counters>,
    /// Latencies of messages stamped before this (warm-up) are not recorded.
    pub record_from_ns: u64,
    /// Give up waiting for deliveries at this instant.
    pub deadline: Instant,
    /// send → durable ack.
    pub ack_latency: Recorder,
    /// send → deliver.
    pub deliver_latency: Recorder,
    /// Fixed-rate mode: how late each send was written after its scheduled time (the
    /// generator's own delay: timer granularity, scheduling on the shared cores).
    pub send_lag: Recorder,
}

/// What one peer saw.
#[derive(Debug, Default)]
pub struct PeerOutcome {
    /// Sends written.
    pub sent: u64,
    /// Seqs of this peer's acknowledged sends.
    pub acked: SeqSet,
    /// Seqs delivered to this peer (push or sync).
    pub seen: SeqSet,
    /// Acks marked `duplicate` (never expected: every client_msg_id is fresh).
    pub duplicate_acks: u64,
    /// `SyncNeeded` pushes received.
    pub sync_needed: u64,
    /// Messages first seen through sync (after a dropped push).
    pub recovered_by_sync: u64,
    /// Error responses and unexpected frames.
    pub errors: u64,
    /// Stopped at the deadline with deliveries still missing.
    pub timed_out: bool,
    /// Why the connection failed, if it did.
    pub failure: Option<String>,
}

struct Loop {
    cfg: PeerConfig,
    out: PeerOutcome,
    /// request id -> send time (ns) of sends awaiting their ack.
    inflight: HashMap<u64, u64>,
    /// Scheduled send times not yet sent (fixed-rate mode, when the window was full).
    due: VecDeque<u64>,
    sync_pending: Option<u64>,
    sender_done: bool,
    started: Instant,
    /// When this peer last wrote a frame (the server reaps connections silent for 90 s).
    last_write: Instant,
}

/// Runs one peer until it has sent everything, got every ack, and received everything the
/// conversation's senders had acknowledged (or the deadline passes).
pub async fn run(conn: Conn, cfg: PeerConfig) -> PeerOutcome {
    let sender_done = cfg.send.is_none();
    let mut l = Loop {
        cfg,
        out: PeerOutcome::default(),
        inflight: HashMap::new(),
        due: VecDeque::new(),
        sync_pending: None,
        sender_done,
        started: Instant::now(),
        last_write: Instant::now(),
    };
    if let Err(e) = l.drive(conn).await {
        l.out.failure = Some(format!("{e:#}"));
        l.cfg.counters.errors.fetch_add(1, Ordering::Relaxed);
        if !l.sender_done {
            l.cfg.expect.senders_left.fetch_sub(1, Ordering::AcqRel);
        }
    }
    l.cfg.ack_latency.flush();
    l.cfg.deliver_latency.flush();
    l.cfg.send_lag.flush();
    l.out
}

impl Loop {
    fn expected(&self) -> Option<u64> {
        let e = &self.cfg.expect;
        (e.senders_left.load(Ordering::Acquire) == 0)
            .then(|| e.acked.load(Ordering::Acquire) - self.out.acked.len())
    }

    /// Whether one more send stays within the server's announced rate.
    fn within_rate(&self, plan: &SendPlan, now: Instant) -> bool {
        if plan.max_rate == 0 {
            return true;
        }
        let rate = f64::from(plan.max_rate) * 0.95;
        let allowed = rate * (1.0 + now.duration_since(self.started).as_secs_f64());
        (self.out.sent as f64) < allowed
    }

    fn finished(&self) -> bool {
        self.sender_done
            && self.sync_pending.is_none()
            && self.expected().is_some_and(|n| self.out.seen.len() >= n)
    }

    async fn drive(&mut self, conn: Conn) -> anyhow::Result<()> {
        let Conn {
            mut reader,
            mut writer,
            ..
        } = conn;
        let plan = self.cfg.send.clone();
        let rate = plan.as_ref().map_or(0.0, |p| p.rate);
        let period = if rate > 0.0 {
            Duration::from_secs_f64(1.0 / rate)
        } else {
            Duration::from_secs(3600)
        };
        let phase = plan.as_ref().map_or(0.0, |p| p.phase.clamp(0.0, 1.0));
        let mut ticker = tokio::time::interval_at(Instant::now() + period.mul_f64(phase), period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let mut check = tokio::time::interval(Duration::from_millis(20));
        check.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut next_msg = 0u64;
        loop {
            let sending = plan
                .as_ref()
                .is_some_and(|p| Instant::now() < p.until && self.out.sent < p.max_messages);
            tokio::select! {
                biased;
                frame = reader.next() => match frame? {
                    Some(body) => self.on_frame(ServerFrame::decode(body)?, &mut writer),
                    None => anyhow::bail!("server closed the connection"),
                },
                t = ticker.tick(), if sending && rate > 0.0 => {
                    self.due.push_back(crate::client::ns_of(t));
                }
                _ = check.tick() => {}
            }
            if let Some(p) = &plan {
                let now = Instant::now();
                if now < p.until && self.out.sent < p.max_messages {
                    let window = if rate > 0.0 {
                        SERVER_MAX_INFLIGHT
                    } else {
                        p.window
                    };
                    while self.inflight.len() < window
                        && self.out.sent < p.max_messages
                        && self.within_rate(p, now)
                    {
                        // Latency runs from the moment the send is written; in fixed-rate mode
                        // the delay between schedule and write is recorded separately, so a
                        // stalled generator shows up instead of hiding queueing.
                        let stamp = now_ns();
                        if rate > 0.0 {
                            match self.due.pop_front() {
                                Some(due) => {
                                    if stamp >= self.cfg.record_from_ns {
                                        self.cfg.send_lag.record(stamp.saturating_sub(due));
                                    }
                                }
                                None => break,
                            }
                        }
                        next_msg += 1;
                        let req = send_request(
                            self.cfg.conv,
                            &format!("{}-{next_msg}", p.tag),
                            stamp,
                            p.payload,
                        )?;
                        let id = writer.queue(req);
                        self.inflight.insert(id.get(), stamp);
                        self.out.sent += 1;
                    }
                } else if !self.sender_done && self.inflight.is_empty() {
                    self.sender_done = true;
                    self.cfg.expect.senders_left.fetch_sub(1, Ordering::AcqRel);
                }
            }
            // Any frame counts as liveness; a pure receiver pings well within the heartbeat.
            if self.last_write.elapsed() >= PING_EVERY {
                writer.queue(Request::Ping { client_time_ms: 0 });
            }
            if writer.has_queued() {
                self.last_write = Instant::now();
            }
            writer.flush().await?;
            if self.finished() {
                return Ok(());
            }
            if Instant::now() >= self.cfg.deadline {
                self.out.timed_out = true;
                return Ok(());
            }
        }
    }

    fn on_frame(&mut self, frame: ServerFrame, writer: &mut crate::conn::FrameWriter) {
        match frame {
            ServerFrame::Response(id, Response::SendAck(ack)) => {
                let Some(sent) = self.inflight.remove(&id.get()) else {
                    self.out.errors += 1;
                    return;
                };
                if sent >= self.cfg.record_from_ns {
                    self.cfg.ack_latency.record(now_ns().saturating_sub(sent));
                }
                if ack.duplicate {
                    self.out.duplicate_acks += 1;
                }
                if self.out.acked.insert(ack.seq.get()) {
                    self.cfg.expect.acked.fetch_add(1, Ordering::AcqRel);
                    self.cfg.counters.acked.fetch_add(1, Ordering::Relaxed);
                }
            }
            ServerFrame::Response(id, Response::Sync(page))
                if Some(id.get()) == self.sync_pending =>
            {
                self.sync_pending = None;
                let conv = self.cfg.conv;
                let skip = self.cfg.server_entries;
                for m in page
                    .messages
                    .iter()
                    .filter(|m| m.conversation == conv && m.seq.get() > skip)
                {
                    // Sync repeats what pushes already brought: only new seqs count.
                    if !self.out.seen.contains(m.seq.get()) && self.out.seen.insert(m.seq.get()) {
                        self.out.recovered_by_sync += 1;
                        self.count_delivery(&m.content);
                    }
                }
                if page.has_more {
                    self.request_sync(writer);
                }
            }
            ServerFrame::Response(_, Response::Pong { .. }) => {}
            ServerFrame::Response(id, other) => {
                self.inflight.remove(&id.get());
                if let Response::Error(e) = other {
                    report_server_error(&e.to_string());
                }
                self.out.errors += 1;
                self.cfg.counters.errors.fetch_add(1, Ordering::Relaxed);
            }
            ServerFrame::Push(Push::Message(m)) => {
                if m.conversation != self.cfg.conv || m.seq.get() <= self.cfg.server_entries {
                    return;
                }
                if self.out.seen.insert(m.seq.get()) {
                    self.count_delivery(&m.content);
                }
            }
            ServerFrame::Push(Push::SyncNeeded) => {
                self.out.sync_needed += 1;
                if self.sync_pending.is_none() {
                    self.request_sync(writer);
                }
            }
            ServerFrame::Push(Push::GoAway { .. } | Push::Error(_)) => {
                self.out.errors += 1;
                self.cfg.counters.errors.fetch_add(1, Ordering::Relaxed);
            }
            ServerFrame::Push(_) => {}
        }
    }

    /// Counts a newly seen message and records its send→deliver latency (past the warm-up).
    fn count_delivery(&mut self, content: &[u8]) {
        self.cfg.counters.delivered.fetch_add(1, Ordering::Relaxed);
        if let Some(stamp) = stamp_of(content) {
            if stamp >= self.cfg.record_from_ns {
                self.cfg
                    .deliver_latency
                    .record(now_ns().saturating_sub(stamp));
            }
        }
    }

    fn request_sync(&mut self, writer: &mut crate::conn::FrameWriter) {
        let have = Seq(self.out.seen.contiguous());
        let id = writer.queue(Request::Sync(SyncRequest {
            epoch: self.cfg.epoch,
            positions: vec![(self.cfg.conv, have)],
            limit: 1000,
            from_conversation: None,
        }));
        self.sync_pending = Some(id.get());
    }
}

fn report_server_error(msg: &str) {
    // Rare (errors fail the run anyway): print the first few so the cause is visible.
    static PRINTED: AtomicUsize = AtomicUsize::new(0);
    if PRINTED.fetch_add(1, Ordering::Relaxed) < 5 {
        eprintln!("imload: server error: {msg}");
    }
}
