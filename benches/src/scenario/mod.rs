//! The scenarios, and what they share: target selection (an external server or a spawned
//! one), bulk registration, sampling of the server's CPU and memory, and the report frame.

pub mod catchup;
pub mod chat;
pub mod convlist;
pub mod download;
pub mod fanout;
pub mod floor;
pub mod grow;
pub mod idle;
pub mod probe;
pub mod search;
pub mod storm;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::client::{self, Identity};
use crate::conn::{Conn, Connector, Transport};
use crate::procfs::{self, ProcSample};
use crate::spawn::{self, SpawnedServer};

/// Options every scenario takes.
#[derive(Clone, Debug, clap::Args)]
pub struct Common {
    /// Server address (loopback only): the listener of --transport; for `ws`, the HTTP
    /// side-service's public address (`listen.http`). Not needed with --spawn-server.
    #[arg(long)]
    pub addr: Option<SocketAddr>,
    /// Transport to load (`ws`: binary WebSocket messages on `/ws` of the HTTP listener).
    #[arg(long, value_enum, default_value = "tls")]
    pub transport: Transport,
    /// Server certificate (PEM) for TLS and QUIC: `<data-dir>/tls/cert.pem`.
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// PID of an external server, to read its RSS and CPU from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// HTTP side-service of an external server, to read its counters (with `--transport ws`,
    /// --addr when not given).
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// Start the server binary on a temporary data dir with port-0 listeners for this run.
    #[arg(long)]
    pub spawn_server: bool,
    /// Server binary for --spawn-server.
    #[arg(long, default_value = "target/release/parley")]
    pub server_bin: PathBuf,
    /// Data directory for the spawned server (default: a fresh temporary directory).
    #[arg(long)]
    pub server_data_dir: Option<PathBuf>,
    /// Configuration file (TOML, every key optional) for the spawned server, passed to it as
    /// `--config FILE`; its data directory and listeners stay the generator's. For instance
    /// `[search]` `enabled = false` to compare with builds that had no search.
    #[arg(long)]
    pub server_config: Option<PathBuf>,
    /// Print one JSON object instead of the human-readable summary.
    #[arg(long)]
    pub json: bool,
    /// A tiny, ~2 s version of the scenario (CI smoke; timings meaningless).
    #[arg(long)]
    pub smoke: bool,
    /// Concurrent registrations and logins during setup.
    #[arg(long, default_value_t = 64)]
    pub setup_concurrency: usize,
    /// Number of 127.0.0.x source addresses to spread connections over (0: kernel's choice).
    #[arg(long, default_value_t = 0)]
    pub sources: usize,
    /// Run id (hex) making account names unique; random by default.
    #[arg(long, value_parser = parse_hex)]
    pub run_id: Option<u32>,
}

fn parse_hex(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 16).map_err(|e| e.to_string())
}

/// The server under load.
#[derive(Debug)]
pub struct Target {
    /// Where to connect.
    pub addr: SocketAddr,
    /// Certificate for TLS and QUIC.
    pub cert: Option<PathBuf>,
    /// Process to sample.
    pub pid: Option<u32>,
    /// HTTP side-service.
    pub http: Option<SocketAddr>,
    /// The spawned server, if any.
    pub server: Option<SpawnedServer>,
    /// Run id for account names.
    pub run_id: u32,
}

impl Target {
    /// Where to connect, without the server handles (for an in-process worker slice; the
    /// coordinator keeps sampling and owning the server).
    pub fn for_slice(&self) -> Target {
        Target {
            addr: self.addr,
            cert: self.cert.clone(),
            pid: None,
            http: None,
            server: None,
            run_id: self.run_id,
        }
    }

    /// Spawns the server if asked, else uses `--addr`.
    pub async fn resolve(c: &Common) -> anyhow::Result<Target> {
        let run_id = c.run_id.unwrap_or_else(rand_u32);
        if c.spawn_server {
            let server = SpawnedServer::start(
                &c.server_bin,
                c.server_data_dir.as_deref(),
                c.server_config.as_deref(),
            )
            .await?;
            return Ok(Target {
                addr: server.addr(c.transport),
                cert: Some(server.cert().to_owned()),
                pid: Some(server.pid()),
                http: Some(server.http()),
                server: Some(server),
                run_id,
            });
        }
        let addr = c
            .addr
            .ok_or_else(|| anyhow!("give --addr or --spawn-server"))?;
        // A WebSocket target is the HTTP listener, which serves the counters too (unless the
        // server binds its private surface elsewhere: then give --http).
        let http = c
            .http
            .or_else(|| (c.transport == Transport::Ws).then_some(addr));
        Ok(Target {
            addr,
            cert: c.cert.clone(),
            pid: c.server_pid,
            http,
            server: None,
            run_id,
        })
    }

    /// A connector of `transport` using `sources` source addresses.
    pub fn connector(&self, c: &Common, sources: Vec<IpAddr>) -> anyhow::Result<Connector> {
        Connector::new(c.transport, self.addr, self.cert.as_deref(), sources)
    }

    /// RSS and CPU of the server, if known.
    pub fn sample(&self) -> Option<ProcSample> {
        self.pid.and_then(|p| procfs::sample(p).ok())
    }

    /// The server's counters, if its HTTP side-service is known.
    pub async fn stats(&self) -> Value {
        match self.http {
            Some(h) => spawn::server_stats(h).await.unwrap_or(Value::Null),
            None => Value::Null,
        }
    }

    /// Restarts a spawned server in place (same data and addresses); false if not spawned.
    pub async fn restart(&mut self) -> anyhow::Result<bool> {
        let Some(server) = &mut self.server else {
            return Ok(false);
        };
        server.restart().await?;
        self.pid = Some(server.pid());
        Ok(true)
    }

    /// Kills a spawned server (SIGKILL) and starts it again in place; the time from the kill
    /// to its listeners being ready.
    pub async fn kill_and_restart(&mut self) -> anyhow::Result<Duration> {
        let server = self
            .server
            .as_mut()
            .ok_or_else(|| anyhow!("kill and restart needs --spawn-server"))?;
        let took = server.kill_and_restart().await?;
        self.pid = Some(server.pid());
        Ok(took)
    }

    /// Stops a spawned server.
    pub async fn stop(self) -> anyhow::Result<()> {
        match self.server {
            Some(s) => s.stop().await,
            None => Ok(()),
        }
    }
}

fn rand_u32() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32).rotate_left(7))
        .unwrap_or(0);
    nanos ^ std::process::id().rotate_left(16)
}

/// `count` source addresses for worker `worker`: 127.0.0.(10 + worker*count + j).
pub fn sources(worker: usize, count: usize) -> Vec<IpAddr> {
    (0..count)
        .map(|j| {
            let host = 10 + worker * count + j;
            IpAddr::V4(Ipv4Addr::new(
                127,
                0,
                (host / 250) as u8,
                (host % 250) as u8 + 1,
            ))
        })
        .collect()
}

/// [`register_all`] with a progress bar; returns the connections and the seconds it took.
pub async fn register_with_progress(
    connector: &Connector,
    names: Vec<String>,
    concurrency: usize,
) -> anyhow::Result<(Vec<(Conn, Identity)>, f64)> {
    let bar = crate::progress::Progress::new("registering", names.len() as u64);
    let counter = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let ticker = {
        let (counter, bar) = (counter.clone(), bar.clone());
        tokio::spawn(async move {
            loop {
                bar.set(counter.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let registered = register_all(connector, names, concurrency, counter).await;
    ticker.abort();
    bar.finish();
    Ok((registered?, started.elapsed().as_secs_f64()))
}

/// Registers accounts `names` with `concurrency` in flight, keeping every connection logged in.
/// `progress` counts completed registrations.
pub async fn register_all(
    connector: &Connector,
    names: Vec<String>,
    concurrency: usize,
    progress: Arc<AtomicU64>,
) -> anyhow::Result<Vec<(Conn, Identity)>> {
    let mut out: Vec<Option<(Conn, Identity)>> = (0..names.len()).map(|_| None).collect();
    let mut stream = futures::stream::iter(names.into_iter().enumerate())
        .map(|(i, name)| async move {
            let r = client::register(connector, &name)
                .await
                .with_context(|| format!("registering {name}"));
            (i, r)
        })
        .buffer_unordered(concurrency.max(1));
    while let Some((i, r)) = stream.next().await {
        out[i] = Some(r?);
        progress.fetch_add(1, Ordering::Relaxed);
    }
    Ok(out.into_iter().flatten().collect())
}

/// Registers accounts `names` with `concurrency` in flight, closing each connection as soon as
/// its account exists, with a progress bar; returns the identities (in the order of `names`) and
/// the seconds it took. For setups too large to keep the registration connections: thousands of
/// password hashes outlast the server's 90 s heartbeat timeout, so the clients log in again with
/// their access tokens ([`login_all`]) when the measurement starts.
pub async fn register_ids(
    connector: &Connector,
    names: Vec<String>,
    concurrency: usize,
) -> anyhow::Result<(Vec<Identity>, f64)> {
    let bar = crate::progress::Progress::new("registering", names.len() as u64);
    let started = Instant::now();
    let mut out: Vec<Option<Identity>> = vec![None; names.len()];
    let mut stream = futures::stream::iter(names.into_iter().enumerate())
        .map(|(i, name)| async move {
            let r = match client::register(connector, &name).await {
                Ok((conn, id)) => {
                    conn.close().await;
                    Ok(id)
                }
                Err(e) => Err(e.context(format!("registering {name}"))),
            };
            (i, r)
        })
        .buffer_unordered(concurrency.max(1));
    let mut done = 0;
    while let Some((i, r)) = stream.next().await {
        out[i] = Some(r?);
        done += 1;
        bar.set(done);
    }
    drop(stream);
    bar.finish();
    Ok((
        out.into_iter().flatten().collect(),
        started.elapsed().as_secs_f64(),
    ))
}

/// Connects and logs in with its access token every identity, `concurrency` at a time, with a
/// progress bar; returns the connections (in the order of `ids`) and the seconds it took.
pub async fn login_all(
    connector: &Connector,
    ids: &[Identity],
    concurrency: usize,
) -> anyhow::Result<(Vec<Conn>, f64)> {
    let bar = crate::progress::Progress::new("logging in", ids.len() as u64);
    let started = Instant::now();
    let mut out: Vec<Option<Conn>> = (0..ids.len()).map(|_| None).collect();
    let mut stream = futures::stream::iter(ids.iter().enumerate())
        .map(|(i, id)| async move {
            let r = async {
                let mut conn = connector.connect().await?;
                client::token_login(&mut conn, id).await?;
                Ok::<_, anyhow::Error>(conn)
            }
            .await
            .with_context(|| format!("logging in {}", id.account));
            (i, r)
        })
        .buffer_unordered(concurrency.max(1));
    let mut done = 0;
    while let Some((i, r)) = stream.next().await {
        out[i] = Some(r?);
        done += 1;
        bar.set(done);
    }
    drop(stream);
    bar.finish();
    Ok((
        out.into_iter().flatten().collect(),
        started.elapsed().as_secs_f64(),
    ))
}

/// Keeps one connection's requests under the server's announced rate (95 % of it, after a
/// one-second burst), as the traffic peers do, so setup never meets `RATE_LIMITED`.
pub(crate) struct Pacer {
    started: Instant,
    /// Requests counted so far.
    pub(crate) sent: u64,
    rate: f64,
}

impl Pacer {
    /// A pacer for a connection the server allows `max_requests_per_second` (0: unlimited).
    pub(crate) fn new(max_requests_per_second: u32) -> Pacer {
        Pacer {
            started: Instant::now(),
            sent: 0,
            rate: f64::from(max_requests_per_second) * 0.95,
        }
    }

    /// When the next request may go.
    pub(crate) fn next_at(&self) -> Instant {
        if self.rate <= 0.0 {
            return self.started;
        }
        let secs = (self.sent as f64 / self.rate - 1.0).max(0.0);
        self.started + Duration::from_secs_f64(secs)
    }

    /// Whether a request may go now.
    pub(crate) fn allows(&self) -> bool {
        Instant::now() >= self.next_at()
    }

    /// Waits until the next request may go, and counts it.
    pub(crate) async fn take(&mut self) {
        tokio::time::sleep_until(self.next_at()).await;
        self.sent += 1;
    }
}

/// A reading of the server and of the generator at one instant.
#[derive(Clone, Copy, Debug)]
pub struct Mark {
    /// When.
    pub at: Instant,
    /// Server RSS and CPU.
    pub server: Option<ProcSample>,
    /// Generator CPU (this process and its waited-for children), µs.
    pub generator_cpu_us: u64,
}

impl Mark {
    /// Now.
    pub fn now(target: &Target) -> Mark {
        Mark {
            at: Instant::now(),
            server: target.sample(),
            generator_cpu_us: procfs::self_cpu_us(),
        }
    }

    /// CPU used between `self` and `later`, in cores, for the server and the generator, and
    /// the server's CPU µs per `units` (messages or deliveries).
    pub fn cpu_between(&self, later: &Mark, units: u64) -> Value {
        let secs = later.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let gen = (later.generator_cpu_us.saturating_sub(self.generator_cpu_us)) as f64;
        let mut v = json!({ "generator_cores": round3(gen / 1e6 / secs) });
        if let (Some(a), Some(b)) = (self.server, later.server) {
            let s = b.cpu_us.saturating_sub(a.cpu_us) as f64;
            v["server_cores"] = json!(round3(s / 1e6 / secs));
            if units > 0 {
                v["server_cpu_us_per_unit"] = json!(round3(s / units as f64));
            }
            v["server_rss_kib"] = json!(b.rss_kib);
        }
        v
    }
}

/// Rounds to 3 decimals (reports stay readable).
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The machine, for every report: the generator shares these cores with the server.
pub fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    json!({
        "cpus": cores,
        "cpu_model": cpu,
        "note": "the load generator runs on the same cores as the server",
    })
}
