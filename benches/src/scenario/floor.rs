//! `floor`: what a durable relay can reach on this machine at all, as a yardstick for `chat`
//! at a fixed rate.
//!
//! The floor server (`imload floor-server`, a child process) is the least a server that keeps
//! Parley's promise can do: one thread and one `epoll` loop, no protocol beyond fixed-size
//! frames, no login, no store but one file allocated ahead. Each turn of its loop reads every
//! frame that arrived, writes them all with one `pwrite` into the allocated file, makes them
//! durable with one `fdatasync`, and only then acks each sender and forwards each frame to its
//! receiver. Frames that arrive during the `fdatasync` wait for the next turn: that is group
//! commit with no hand-off between threads at all. Its latency and CPU per message are what
//! the disk, the loopback network and the scheduler cost here; a real server adds its work on
//! top.
//!
//! The generator has `chat`'s shape: P sender/receiver pairs (two connections each), every
//! sender at `rate / P` msgs/s with its phase spread, 64-byte payloads, latency from the
//! moment a send is written to the moment the receiver reads it, and a warm-up excluded.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::{machine, round3};
use crate::procfs;
use crate::stats::{Latency, SeqSet};

/// A message frame: seq (u64 LE), send time (u64 LE, ns since the generator's start), payload.
const FRAME: usize = 16 + 64;
/// An ack: the frame's seq and send time.
const ACK: usize = 16;
/// Bytes of the file allocated ahead (written with zeros and synced before the run); batches
/// are written into it round-robin, so no `fdatasync` has to write the inode.
const ALLOCATED: u64 = 64 << 20;

/// Options of `floor`.
#[derive(Clone, Debug, clap::Args)]
pub struct FloorArgs {
    /// Sender/receiver pairs.
    #[arg(long, default_value_t = 500)]
    pub pairs: usize,
    /// Total messages per second over all senders.
    #[arg(long, default_value_t = 2000.0)]
    pub rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Seconds at the start excluded from rates and latencies.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Directory for the floor server's file (on the disk under test).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// The floor server skips the `fdatasync` (it still writes): what the disk's share is.
    /// Not durable; a yardstick only.
    #[arg(long)]
    pub no_sync: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// A short run.
    #[arg(long)]
    pub smoke: bool,
}

/// Options of `floor-server` (started by `floor`).
#[derive(Clone, Debug, clap::Args)]
pub struct FloorServerArgs {
    /// Directory for the file.
    #[arg(long)]
    pub dir: PathBuf,
    /// Skip the `fdatasync` (see [`FloorArgs::no_sync`]).
    #[arg(long)]
    pub no_sync: bool,
}

/// Runs the generator against a floor server it spawns.
pub async fn run(args: FloorArgs) -> anyhow::Result<Value> {
    let (duration, warmup, pairs) = if args.smoke {
        (2.0, 0.5, args.pairs.min(20))
    } else {
        (args.duration, args.warmup, args.pairs.max(1))
    };
    if args.rate.is_nan() || args.rate <= 0.0 {
        bail!("--rate must be above 0");
    }
    let dir = tempfile::tempdir_in(&args.dir).context("creating the floor server's directory")?;
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .arg("floor-server")
        .arg("--dir")
        .arg(dir.path())
        .args(args.no_sync.then_some("--no-sync"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting the floor server")?;
    let pid = child
        .id()
        .ok_or_else(|| anyhow!("the floor server has no pid"))?;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().context("no stdout")?);
    let mut line = String::new();
    tokio::io::AsyncBufReadExt::read_line(&mut lines, &mut line).await?;
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening ")
        .ok_or_else(|| anyhow!("the floor server said {line:?}"))?
        .parse()?;

    let base = Instant::now();
    let deliver = Latency::default();
    let ack = Latency::default();
    let delivered = Arc::new(AtomicU64::new(0));
    // Every ack and every delivery, warm-up included: the run ends once they match the sends.
    let (acks_all, arrived_all) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let period = Duration::from_secs_f64(pairs as f64 / args.rate);
    let start = Instant::now() + Duration::from_millis(200);
    let measure_from = start + Duration::from_secs_f64(warmup);
    let end = start + Duration::from_secs_f64(duration);
    let mut tasks = Vec::new();
    for p in 0..pairs {
        let mut receiver = tokio::net::TcpStream::connect(addr).await?;
        receiver.set_nodelay(true)?;
        receiver
            .write_all(&(2 * p as u32 + 1).to_le_bytes())
            .await?;
        let mut sender = tokio::net::TcpStream::connect(addr).await?;
        sender.set_nodelay(true)?;
        sender.write_all(&(2 * p as u32).to_le_bytes()).await?;
        let (mut deliver, mut ack, delivered) =
            (deliver.recorder(), ack.recorder(), delivered.clone());
        let (acks_all, arrived_all) = (acks_all.clone(), arrived_all.clone());
        let first = start + period.mul_f64(p as f64 / pairs as f64);
        let (mut acks_in, mut out) = sender.into_split();
        let sending = tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at(first, period);
            let mut frame = [0u8; FRAME];
            let mut seq = 0u64;
            loop {
                let t = ticker.tick().await;
                if t >= end {
                    return anyhow::Ok(seq);
                }
                frame[..8].copy_from_slice(&seq.to_le_bytes());
                frame[8..16].copy_from_slice(&ns_since(base).to_le_bytes());
                out.write_all(&frame).await?;
                seq += 1;
            }
        });
        let acking = tokio::spawn(async move {
            let mut buf = [0u8; ACK];
            let mut acked = 0u64;
            while acks_in.read_exact(&mut buf).await.is_ok() {
                let (_, sent) = seq_and_time(&buf);
                if base + Duration::from_nanos(sent) >= measure_from {
                    ack.record(ns_since(base).saturating_sub(sent));
                }
                acked += 1;
                acks_all.fetch_add(1, Ordering::Relaxed);
            }
            acked
        });
        let receiving = tokio::spawn(async move {
            let mut buf = [0u8; FRAME];
            let mut seen = SeqSet::default();
            while receiver.read_exact(&mut buf).await.is_ok() {
                let (seq, sent) = seq_and_time(&buf);
                if base + Duration::from_nanos(sent) >= measure_from {
                    deliver.record(ns_since(base).saturating_sub(sent));
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
                seen.insert(seq);
                arrived_all.fetch_add(1, Ordering::Relaxed);
            }
            seen
        });
        tasks.push((sending, acking, receiving));
    }
    tokio::time::sleep_until(measure_from).await;
    let (cpu0, gen0, at0, got0) = (
        procfs::cpu_us(&pid.to_string(), false)?,
        procfs::self_cpu_us(),
        Instant::now(),
        delivered.load(Ordering::Relaxed),
    );
    tokio::time::sleep_until(end).await;
    let (cpu1, gen1, at1) = (
        procfs::cpu_us(&pid.to_string(), false)?,
        procfs::self_cpu_us(),
        Instant::now(),
    );
    // The senders have stopped; wait (at most 30 s) for every ack and delivery of their sends.
    let mut sent = 0u64;
    let mut receivers = Vec::with_capacity(tasks.len());
    for (sending, acking, receiving) in tasks {
        let s = sending.await??;
        sent += s;
        receivers.push((s, acking, receiving));
    }
    let settle = Instant::now() + Duration::from_secs(30);
    while (acks_all.load(Ordering::Relaxed) < sent || arrived_all.load(Ordering::Relaxed) < sent)
        && Instant::now() < settle
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got1 = delivered.load(Ordering::Relaxed);
    // Closing stdin asks the server for its counters and ends it; its connections close with it.
    drop(child.stdin.take());
    let mut report = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut lines, &mut report).await?;
    let _ = child.wait().await;
    let (mut acked, mut lost, mut dups) = (0u64, 0u64, 0u64);
    for (s, acking, receiving) in receivers {
        acked += acking.await?;
        let seen = receiving.await?;
        lost += s.saturating_sub(seen.len());
        dups += seen.duplicates();
    }
    let counters: Value = serde_json::from_str(report.trim()).unwrap_or(Value::Null);
    let secs = at1.duration_since(at0).as_secs_f64().max(1e-9);
    let messages = got1.saturating_sub(got0);
    let cpu = cpu1.saturating_sub(cpu0) as f64;
    Ok(json!({
        "scenario": "floor",
        "ok": lost == 0 && dups == 0 && acked == sent,
        "config": { "pairs": pairs, "rate": args.rate, "duration": duration, "warmup": warmup,
                    "dir": args.dir.display().to_string(), "no_sync": args.no_sync },
        "throughput": { "delivered_per_s": round3(messages as f64 / secs) },
        "latency": { "send_to_deliver": deliver.summary(), "send_to_durable_ack": ack.summary() },
        "cpu": { "server_cores": round3(cpu / 1e6 / secs),
                 "generator_cores": round3(gen1.saturating_sub(gen0) as f64 / 1e6 / secs),
                 "server_cpu_us_per_unit": round3(cpu / messages.max(1) as f64) },
        "integrity": { "sent": sent, "acked": acked, "lost": lost, "duplicates": dups },
        "server_counters": counters,
        "machine": machine(),
    }))
}

/// Nanoseconds since the generator's start (the send time stamped into each frame).
fn ns_since(base: Instant) -> u64 {
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A frame's or an ack's seq and send time.
fn seq_and_time(buf: &[u8]) -> (u64, u64) {
    let word = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&buf[at..at + 8]);
        u64::from_le_bytes(b)
    };
    (word(0), word(8))
}

/// One connection of the floor server.
struct Conn {
    stream: TcpStream,
    /// The peer's id (2p: sender of pair p, 2p+1: its receiver), once its hello arrived.
    id: Option<u32>,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Registered for writability too (its output did not fit the socket).
    writing: bool,
}

impl Conn {
    /// Writes what it can of its output; registers for writability if some is left.
    fn flush(&mut self, registry: &mio::Registry, token: Token) -> std::io::Result<()> {
        while !self.output.is_empty() {
            match self.stream.write(&self.output) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.output.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let want = !self.output.is_empty();
        if want != self.writing {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            registry.reregister(&mut self.stream, token, interest)?;
            self.writing = want;
        }
        Ok(())
    }
}

const LISTENER: Token = Token(usize::MAX - 1);
const STOP: Token = Token(usize::MAX - 2);

/// The floor server: prints `listening ADDR`, serves until its stdin closes, then prints its
/// counters as JSON and returns.
pub fn serve(args: FloorServerArgs) -> anyhow::Result<()> {
    let file = allocate(&args.dir.join("floor.log"))?;
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind("127.0.0.1:0".parse()?)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let waker = Arc::new(Waker::new(poll.registry(), STOP)?);
    {
        let waker = waker.clone();
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
            let _ = waker.wake();
        });
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening {}", listener.local_addr()?)?;
        out.flush()?;
    }
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut by_id: HashMap<u32, usize> = HashMap::new();
    let mut events = Events::with_capacity(1024);
    // Frames read this turn: (sender's connection, frame).
    let mut batch: Vec<(usize, [u8; FRAME])> = Vec::new();
    let mut bytes: Vec<u8> = Vec::new();
    let mut touched: Vec<usize> = Vec::new();
    let (mut at, mut batches, mut messages) = (0u64, 0u64, 0u64);
    'serve: loop {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
        for event in events.iter() {
            match event.token() {
                STOP => break 'serve,
                LISTENER => loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            stream.set_nodelay(true)?;
                            let slot = conns.len();
                            poll.registry().register(
                                &mut stream,
                                Token(slot),
                                Interest::READABLE,
                            )?;
                            conns.push(Some(Conn {
                                stream,
                                id: None,
                                input: Vec::new(),
                                output: Vec::new(),
                                writing: false,
                            }));
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e.into()),
                    }
                },
                Token(slot) => {
                    let Some(conn) = conns.get_mut(slot).and_then(Option::as_mut) else {
                        continue;
                    };
                    if event.is_writable() && conn.flush(poll.registry(), Token(slot)).is_err() {
                        close(&mut conns, &mut by_id, slot);
                        continue;
                    }
                    if !event.is_readable() {
                        continue;
                    }
                    let open = read_all(conn);
                    if conn.id.is_none() && conn.input.len() >= 4 {
                        let id = u32::from_le_bytes([
                            conn.input[0],
                            conn.input[1],
                            conn.input[2],
                            conn.input[3],
                        ]);
                        conn.input.drain(..4);
                        conn.id = Some(id);
                        by_id.insert(id, slot);
                    }
                    if conn.id.is_some() {
                        let whole = conn.input.len() / FRAME * FRAME;
                        for f in conn.input[..whole].chunks_exact(FRAME) {
                            let mut frame = [0u8; FRAME];
                            frame.copy_from_slice(f);
                            bytes.extend_from_slice(f);
                            batch.push((slot, frame));
                        }
                        conn.input.drain(..whole);
                    }
                    if !open {
                        close(&mut conns, &mut by_id, slot);
                    }
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        // The commit: one write into allocated space, one fdatasync; nothing is answered
        // before it.
        if at + bytes.len() as u64 > ALLOCATED {
            at = 0;
        }
        file.write_all_at(&bytes, at)?;
        if !args.no_sync {
            file.sync_data()?;
        }
        at += bytes.len() as u64;
        batches += 1;
        messages += batch.len() as u64;
        bytes.clear();
        for (from, frame) in batch.drain(..) {
            let Some(sender) = conns.get_mut(from).and_then(Option::as_mut) else {
                continue;
            };
            sender.output.extend_from_slice(&frame[..ACK]);
            touched.push(from);
            let to = sender.id.and_then(|id| by_id.get(&(id | 1)).copied());
            if let Some(receiver) = to.and_then(|to| conns.get_mut(to)).and_then(Option::as_mut) {
                receiver.output.extend_from_slice(&frame);
                touched.extend(to);
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for slot in touched.drain(..) {
            let Some(conn) = conns.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            if !conn.writing && conn.flush(poll.registry(), Token(slot)).is_err() {
                close(&mut conns, &mut by_id, slot);
            }
        }
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}",
        json!({ "batches": batches, "messages": messages,
                "mean_batch": round3(messages as f64 / batches.max(1) as f64) })
    )?;
    out.flush()?;
    Ok(())
}

/// Reads everything available; false once the peer closed or failed.
fn read_all(conn: &mut Conn) -> bool {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match conn.stream.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => conn.input.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

fn close(conns: &mut [Option<Conn>], by_id: &mut HashMap<u32, usize>, slot: usize) {
    if let Some(conn) = conns.get_mut(slot).and_then(Option::take) {
        if let Some(id) = conn.id {
            by_id.remove(&id);
        }
    }
}

/// The file, allocated ahead with zeros and made durable.
fn allocate(path: &Path) -> anyhow::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let zeros = vec![0u8; 1 << 20];
    for i in 0..ALLOCATED / (1 << 20) {
        file.write_all_at(&zeros, i << 20)?;
    }
    file.sync_all()?;
    Ok(file)
}
