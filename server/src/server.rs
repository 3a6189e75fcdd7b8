//! Server lifecycle: validate config and bind every socket first (so errors surface before
//! anything runs), then run until shutdown, then drain.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, ConfigError};
use crate::core::Core;
use crate::service::{HttpBackend, Service};
use crate::session::ParkingLot;
use crate::store::{Store, StoreError};
use crate::tls::{self, TlsError};
use crate::transport::{serve_quic, serve_tcp, supervise, Shared, Supervision};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Certificates.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The store could not be opened.
    #[error("opening the store: {0}")]
    Store(#[from] StoreError),
    /// A socket could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Other IO at start-up.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A listener kept dying after it was restarted, so the server shut down
    /// (`transport/supervise.rs`).
    #[error("{0}")]
    Listener(String),
    /// The store failed while the server ran, or could not be made durable at shutdown; the
    /// message names the failure (docs/durability.md, "Full disk and failed fsync").
    #[error("{0}")]
    StoreFailed(String),
    /// A directory the server writes to cannot be written (a read-only mount, permissions).
    #[error(
        "{} is not writable ({source}): the server keeps its store, message log and files \
         there; make it writable (a read-only mount? permissions?) and start again",
        dir.display()
    )]
    NotWritable {
        /// The directory.
        dir: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The addresses actually bound (port 0 resolved).
#[derive(Clone, Debug, Default)]
pub struct BoundAddrs {
    /// TLS over TCP.
    pub tls: Vec<SocketAddr>,
    /// Plain TCP.
    pub tcp: Vec<SocketAddr>,
    /// QUIC.
    pub quic: Vec<SocketAddr>,
    /// HTTP.
    pub http: Vec<SocketAddr>,
    /// The private HTTP surface (metrics, stats, admin), if it has addresses of its own.
    pub http_private: Vec<SocketAddr>,
    /// Listeners serving one dialect each at the root (`[compat.root]`), as (dialect, address).
    pub dialect_roots: Vec<(&'static str, SocketAddr)>,
}

/// A server with every socket bound, ready to run.
pub struct Server {
    core: Arc<Core>,
    committer_thread: std::thread::JoinHandle<()>,
    fanout_rx: mpsc::Receiver<crate::commit::CommittedBatch>,
    tls_listeners: Vec<TcpListener>,
    tcp_listeners: Vec<TcpListener>,
    quic_endpoints: Vec<quinn::Endpoint>,
    http_listeners: Vec<TcpListener>,
    http_private_listeners: Vec<TcpListener>,
    dialect_root_listeners: Vec<(&'static str, TcpListener)>,
    metrics: Arc<parley_admin_http::ops::metrics::Metrics>,
    rustls: Arc<rustls::ServerConfig>,
    addrs: BoundAddrs,
    fingerprint: String,
    cert_path: std::path::PathBuf,
    started: tokio::time::Instant,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addrs", &self.addrs)
            .finish()
    }
}

/// Listen backlog: a reconnect storm of tens of thousands of clients must not overflow the
/// accept queue (the default of 1024 made the kernel drop SYNs, costing clients a 1 s
/// retransmission). The kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 16 * 1024;
/// UDP receive buffer for QUIC, so a burst of handshakes is not dropped by the kernel.
const QUIC_RECV_BUFFER: usize = 8 << 20;

async fn bind_tcp(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, StartError> {
    let mut out = Vec::new();
    for &addr in addrs {
        let bind = || -> std::io::Result<TcpListener> {
            let socket = if addr.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            socket.bind(addr)?;
            socket.listen(LISTEN_BACKLOG)
        };
        out.push(bind().map_err(|source| StartError::Bind { addr, source })?);
    }
    Ok(out)
}

fn bind_udp(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: the kernel caps it at net.core.rmem_max.
    let _ = socket.set_recv_buffer_size(QUIC_RECV_BUFFER);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

fn local(listeners: &[TcpListener]) -> Vec<SocketAddr> {
    listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect()
}

impl Server {
    /// Validates `cfg`, opens the store, loads or creates certificates and binds every socket.
    pub async fn bind(cfg: Config) -> Result<Server, StartError> {
        cfg.validate()?;
        check_writable(&cfg)?;
        let material = tls::load_or_create(&cfg)?;
        let rustls = tls::server_config(&material, cfg.tls.early_data_tickets)?;
        // The session's heartbeat owns liveness (and says GoAway); QUIC's own idle timeout is
        // only a backstop for connections whose session never started.
        let quic_cfg = tls::quic_config(
            &material,
            cfg.heartbeat.timeout * 2,
            cfg.tls.early_data_tickets,
        )?;
        let store = Store::open(&cfg.data_dir, cfg.store.cache_mib << 20)?;
        // The store against the message log (store/verify.rs): refuse to serve a damaged one.
        store.verify_references()?;

        let tls_listeners = bind_tcp(&cfg.listen.tls).await?;
        let tcp_listeners = bind_tcp(&cfg.listen.tcp).await?;
        let http_listeners = bind_tcp(&cfg.listen.http).await?;
        let http_private_listeners = bind_tcp(&cfg.listen.http_private).await?;
        let mut dialect_root_listeners = Vec::new();
        for (name, addr) in cfg.compat.root_addrs() {
            let l = bind_tcp(&[addr]).await?.pop();
            dialect_root_listeners.extend(l.map(|l| (name, l)));
        }
        let mut quic_endpoints = Vec::new();
        for &addr in &cfg.listen.quic {
            let ep = bind_udp(addr)
                .and_then(|socket| {
                    quinn::Endpoint::new(
                        quinn::EndpointConfig::default(),
                        Some(quic_cfg.clone()),
                        socket,
                        Arc::new(quinn::TokioRuntime),
                    )
                })
                .map_err(|source| StartError::Bind { addr, source })?;
            quic_endpoints.push(ep);
        }
        let addrs = BoundAddrs {
            tls: local(&tls_listeners),
            tcp: local(&tcp_listeners),
            quic: quic_endpoints
                .iter()
                .filter_map(|e| e.local_addr().ok())
                .collect(),
            http: local(&http_listeners),
            http_private: local(&http_private_listeners),
            dialect_roots: dialect_root_listeners
                .iter()
                .filter_map(|(name, l)| Some((*name, l.local_addr().ok()?)))
                .collect(),
        };

        let (core, commit_loop, fanout_rx) = Core::assemble(store, cfg);
        // The committer records its per-batch histograms into this server's metrics (a
        // recorder of its own, not a process-wide one).
        let metrics = Arc::new(parley_admin_http::ops::metrics::Metrics::new());
        let recorder = metrics.clone();
        let committer_thread = std::thread::Builder::new()
            .name("committer".into())
            .spawn(move || metrics::with_local_recorder(recorder.recorder(), commit_loop))?;
        Ok(Server {
            core,
            committer_thread,
            fanout_rx,
            tls_listeners,
            tcp_listeners,
            quic_endpoints,
            http_listeners,
            http_private_listeners,
            dialect_root_listeners,
            metrics,
            rustls,
            addrs,
            fingerprint: material.fingerprint,
            cert_path: material.cert_path,
            started: tokio::time::Instant::now(),
        })
    }

    /// The bound addresses.
    pub fn addrs(&self) -> &BoundAddrs {
        &self.addrs
    }

    /// SHA-256 fingerprint of the certificate (hex).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Path of the certificate (PEM).
    pub fn cert_path(&self) -> &std::path::Path {
        &self.cert_path
    }

    /// Runs until `shutdown` is cancelled, then sends GoAway to every session, waits for them
    /// (at most `drain_timeout`), commits what is queued, and returns.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), StartError> {
        let Server {
            core,
            committer_thread,
            fanout_rx,
            tls_listeners,
            tcp_listeners,
            quic_endpoints,
            http_listeners,
            http_private_listeners,
            dialect_root_listeners,
            metrics,
            rustls,
            started,
            ..
        } = self;
        let tracker = TaskTracker::new();
        let lot = ParkingLot::start(tracker.clone(), tokio::runtime::Handle::current())?;
        let service = Service::new(core.clone());
        // One descriptor budget for every surface (transport/budget.rs): the binary transports
        // and WebSocket sessions draw from `permits`, all HTTP listeners from `http_pool`.
        let http_count =
            http_listeners.len() + http_private_listeners.len() + dialect_root_listeners.len();
        let budget = crate::transport::budget::at_start(core.config(), http_count);
        let http_pool = Arc::new(Semaphore::new(budget.http));
        let shared = Shared {
            service: service.clone(),
            shutdown: shutdown.clone(),
            tracker: tracker.clone(),
            permits: Arc::new(Semaphore::new(budget.im)),
            lot: lot.clone(),
        };
        let fanout = tokio::spawn(core.clone().run_fanout(fanout_rx));
        core.start_offline_push();
        let listeners = TaskTracker::new();
        // Every accept loop runs under a supervisor: restarted if it dies, or the server goes
        // down loudly (transport/supervise.rs).
        let supervision = Arc::new(Supervision::default());
        let supervised = |name: String| (name, shutdown.clone(), supervision.clone());
        let binary = tls_listeners
            .into_iter()
            .map(|l| ("tls", l, Some(rustls.clone())))
            .chain(tcp_listeners.into_iter().map(|l| ("tcp", l, None)));
        for (kind, l, tls) in binary {
            let (name, stop, sup) = supervised(format!("{kind} {}", addr_of(&l)));
            let (l, shared) = (Arc::new(l), shared.clone());
            listeners.spawn(supervise(name, stop, sup, move || {
                let run = serve_tcp(l.clone(), tls.clone(), shared.clone());
                async move {
                    run.await;
                    Ok(())
                }
            }));
        }
        for ep in &quic_endpoints {
            let name = ep
                .local_addr()
                .map_or("quic".into(), |a| format!("quic {a}"));
            let (name, stop, sup) = supervised(name);
            let (ep, shared) = (ep.clone(), shared.clone());
            listeners.spawn(supervise(name, stop, sup, move || {
                let run = serve_quic(ep.clone(), shared.clone());
                async move {
                    run.await;
                    Ok(())
                }
            }));
        }
        let backend: Arc<dyn parley_admin_http::Backend> = Arc::new(
            HttpBackend::new(service, Some(lot.clone()), started)
                .with_streams(shared.clone())
                .with_supervision(supervision.clone()),
        );
        let cfg = core.config();
        let ops = parley_admin_http::ops::Ops {
            metrics: metrics.clone(),
            readiness: parley_admin_http::ops::Readiness::new(),
            admin_token: cfg.admin.token.as_deref().map(Arc::from),
            running_config: Arc::new(cfg.redacted()),
        };
        if ops.admin_token.is_none() {
            tracing::info!("the admin API is disabled (no [admin] token configured)");
        }
        let split = !http_private_listeners.is_empty();
        let (public_app, private_app) = parley_admin_http::ops::apps(backend.clone(), &ops, split);
        let http = http_listeners
            .into_iter()
            .map(|l| (l, public_app.clone(), cfg.http.tls));
        let private = http_private_listeners
            .into_iter()
            .filter_map(|l| Some((l, private_app.clone()?, cfg.http.private_tls)));
        // A dialect at the root of its own listener: its routes and nothing else of ours.
        let roots = dialect_root_listeners.into_iter().filter_map(|(name, l)| {
            let app = parley_admin_http::compat::root_router(name, backend.clone())?;
            Some((l, ops.metrics.track(app), cfg.http.tls))
        });
        for (l, app, https) in http.chain(private).chain(roots) {
            let kind = if https { "https" } else { "http" };
            let (name, stop, sup) = supervised(format!("{kind} {}", addr_of(&l)));
            // The HTTP servers take their listener by value: each (re)start gets a duplicate
            // of the one socket, which stays open here.
            let socket = l.into_std()?;
            let rustls = rustls.clone();
            let token = shutdown.clone();
            let (limits, pool) = (cfg.http.limits(), http_pool.clone());
            let refused = ops.metrics.http_refused(kind);
            listeners.spawn(supervise(name, stop, sup, move || {
                let l = socket.try_clone().and_then(TcpListener::from_std);
                let (app, rustls, token) = (app.clone(), rustls.clone(), token.clone());
                let (pool, refused) = (pool.clone(), refused.clone());
                async move {
                    let l = l.map_err(|e| format!("cannot reopen the socket: {e}"))?;
                    let stop = async move { token.cancelled().await };
                    let tls = https.then_some(&*rustls);
                    parley_admin_http::ops::serve_http(l, app, tls, limits, pool, refused, stop)
                        .await
                        .map_err(|e| format!("HTTP side-service failed: {e}"))
                }
            }));
        }
        let token = shutdown.clone();
        listeners.spawn(parley_admin_http::ops::run_upkeep(metrics, async move {
            token.cancelled().await
        }));
        listeners.close();
        // The store is open and every listener is up.
        ops.readiness.set_ready();
        // From now on a store that refuses writes makes the server unready until it recovers.
        let readiness = ops.readiness.clone();
        core.store.health().on_change(move |state| {
            use parley_admin_http::ops::StoreState;
            readiness.set_store(match state {
                None => StoreState::Ok,
                Some(d) if d.restart_required() => StoreState::Failed,
                Some(_) => StoreState::Degraded,
            })
        });

        shutdown.cancelled().await;
        ops.readiness.set_draining();
        tracing::info!("shutting down: draining sessions");
        listeners.wait().await;
        // Sleeping sessions wake, see the shutdown and say GoAway like the others.
        lot.stop();
        tracker.close();
        let drain = core.config().drain_timeout;
        if tokio::time::timeout(drain, tracker.wait()).await.is_err() {
            tracing::warn!(?drain, "some sessions did not finish in time");
        }
        for ep in &quic_endpoints {
            ep.close(0u32.into(), b"shutdown");
        }
        core.committer.stop().await;
        let _ = tokio::task::spawn_blocking(move || committer_thread.join()).await;
        let _ = fanout.await;
        let store = core.store.clone();
        let synced = tokio::task::spawn_blocking(move || store.sync())
            .await
            .map_err(std::io::Error::other)?;
        // Stopping while the store is degraded: name the real cause, not the final sync's
        // symptom (docs/durability.md, "Full disk and failed fsync").
        let health = core.store.health();
        let restart = health.state().is_some_and(|d| d.restart_required());
        match (synced, health.shutdown_report()) {
            (Ok(()), None) => {}
            // A full disk whose final sync still worked stops cleanly, with a warning.
            (Ok(()), Some(report)) if !restart => tracing::warn!("stopping while {report}"),
            (Ok(()), Some(report)) => return Err(StartError::StoreFailed(report)),
            (Err(e), None) => {
                return Err(StartError::StoreFailed(format!(
                    "the final sync of the store at shutdown failed: {e}"
                )))
            }
            (Err(e), Some(report)) => {
                return Err(StartError::StoreFailed(format!(
                    "{report}; the final sync at shutdown failed too: {e}"
                )))
            }
        }
        for ep in &quic_endpoints {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), ep.wait_idle()).await;
        }
        if let Some(why) = supervision.fatal() {
            return Err(StartError::Listener(why));
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Refuses, by name, a data directory (or a directory in it that the server writes to) that
/// cannot be written, rather than meet it as an anonymous error halfway through opening the
/// store: an empty file is created, synced and removed in each that exists.
fn check_writable(cfg: &Config) -> Result<(), StartError> {
    let data = &cfg.data_dir;
    let not_writable = |dir: &std::path::Path| {
        let dir = dir.to_owned();
        move |source| StartError::NotWritable { dir, source }
    };
    std::fs::create_dir_all(data).map_err(not_writable(data))?;
    let dirs = [
        data.clone(),
        data.join("store"),
        data.join("messages"),
        cfg.files.dir(data),
    ];
    for dir in dirs.iter().filter(|d| d.is_dir()) {
        let probe = dir.join(".parley-write-probe");
        let written = std::fs::File::create(&probe).and_then(|f| f.sync_all());
        let _ = std::fs::remove_file(&probe);
        written.map_err(not_writable(dir))?;
    }
    Ok(())
}

/// A listener's address, for naming it in logs.
fn addr_of(l: &TcpListener) -> String {
    l.local_addr().map_or("?".into(), |a| a.to_string())
}
