//! Test harness without sockets: the real core, store and committer in a temp dir, the request
//! service over them, and binary sessions over in-memory pipes. Meant for tokio's paused clock
//! (quinn-proto's `tests/util.rs` `Pair` is the model): the committer runs on the blocking pool,
//! which keeps tokio from advancing the clock while a commit is in flight, so virtual time moves
//! only when a test says so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use parley_protocol::frames::{ClientFrame, Device, Platform, Request, Response, ServerFrame};
use parley_protocol::ids::{Account, DeviceId, RequestId};
use parley_protocol::session::Identity;
use parley_protocol::values::NewPassword;
use parley_protocol::FrameCodec;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::core::Core;
use crate::service::{Caller, Reply, Service};
use crate::session::{self, ConnInfo, Env, ParkingLot, SessionStream, TransportKind};
use crate::store::Store;

/// A running core in a temp dir.
pub(crate) struct Harness {
    pub service: Service,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    lot: ParkingLot,
    permits: Arc<Semaphore>,
    committer: tokio::task::JoinHandle<()>,
    fanout: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// Starts on the default configuration, changed by `tweak` (sessions never sleep: the
    /// parking lot is a real epoll thread, outside virtual time).
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config {
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        cfg.heartbeat.park_after = Duration::ZERO;
        // As `Config::for_tests`: these tests put users into groups without asking them.
        cfg.rules.group_adds_need_consent = false;
        tweak(&mut cfg);
        cfg.validate().unwrap();
        let store = Store::open(dir.path(), 8 << 20).unwrap();
        let (core, commit_loop, fanout_rx) = Core::assemble(store, cfg);
        let committer_task = tokio::task::spawn_blocking(commit_loop);
        let fanout = tokio::spawn(core.clone().run_fanout(fanout_rx));
        let tracker = TaskTracker::new();
        let lot = ParkingLot::start(tracker.clone(), tokio::runtime::Handle::current()).unwrap();
        Harness {
            service: Service::new(core),
            shutdown: CancellationToken::new(),
            tracker,
            lot,
            permits: Arc::new(Semaphore::new(1024)),
            committer: committer_task,
            fanout,
            _dir: dir,
        }
    }

    /// Registers `account` through the service (no session) and returns who it is.
    pub async fn register(&self, account: &str) -> Identity {
        let request = Request::Register {
            account: Account::try_from(account).unwrap(),
            password: NewPassword::try_from("password-123").unwrap(),
            device: device("dev"),
        };
        match self
            .service
            .execute(&Caller::Anonymous, request)
            .resolved()
            .await
        {
            Reply::LoggedIn(outcome) => outcome.identity,
            other => panic!("register: {other:?}"),
        }
    }

    /// Runs `request` as `who` (no session) and waits for the final answer.
    pub async fn call(&self, who: &Identity, request: Request) -> Response {
        let caller = Caller::User {
            identity: who.clone(),
            session: None,
        };
        self.service.answer(&caller, request).await
    }

    /// A binary session over an in-memory pipe, driven by the real driver.
    pub fn connect(&self) -> Conn {
        let (client, server) = tokio::io::duplex(64 << 10);
        let info = ConnInfo {
            transport: TransportKind::Tcp,
            peer: SocketAddr::from(([127, 0, 0, 1], 9)),
        };
        let env = Env {
            shutdown: self.shutdown.clone(),
            lot: self.lot.clone(),
            permit: self.permits.clone().try_acquire_owned().unwrap(),
        };
        self.tracker
            .spawn(session::run(self.service.clone(), Pipe(server), info, env));
        Conn {
            io: client,
            buf: BytesMut::new(),
            codec: FrameCodec::new(16 << 20),
            next_id: 1,
        }
    }

    /// Sends GoAway to every session, waits for them, and stops the committer and fan-out.
    pub async fn stop(self) {
        // As the server does: the lot holds a place in the tracker until it stops.
        self.shutdown.cancel();
        self.lot.stop();
        self.tracker.close();
        self.tracker.wait().await;
        self.service.core().committer.stop().await;
        self.committer.await.unwrap();
        drop(self.service);
        self.fanout.await.unwrap();
    }
}

pub(crate) fn device(id: &str) -> Device {
    Device {
        id: DeviceId::try_from(id).unwrap(),
        platform: Platform::Cli,
    }
}

/// The server side of an in-memory connection. It cannot sleep (there is no socket to watch).
#[derive(Debug)]
pub(crate) struct Pipe(DuplexStream);

impl SessionStream for Pipe {
    fn detach(&mut self) -> Option<std::io::Result<RawFd>> {
        None
    }
    fn attach(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl tokio::io::AsyncRead for Pipe {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Pipe {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// The client side of an in-memory connection: raw frames.
pub(crate) struct Conn {
    io: DuplexStream,
    buf: BytesMut,
    codec: FrameCodec,
    next_id: u64,
}

impl Conn {
    /// Writes one request; returns its id.
    pub async fn send(&mut self, request: Request) -> RequestId {
        let id = RequestId::try_from(self.next_id).unwrap();
        self.next_id += 1;
        self.write(
            &ClientFrame {
                request_id: id,
                request,
            }
            .encode(),
        )
        .await;
        id
    }

    /// Writes raw bytes.
    pub async fn write(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.unwrap();
    }

    /// The next frame from the server (`None`: the server closed the connection).
    pub async fn next(&mut self) -> Option<ServerFrame> {
        loop {
            if let Some(body) = self.codec.decode(&mut self.buf).unwrap() {
                return Some(ServerFrame::decode(body).unwrap());
            }
            if self.io.read_buf(&mut self.buf).await.unwrap() == 0 {
                return None;
            }
        }
    }

    /// Sends `request` and returns its answer (pushes before it are skipped).
    pub async fn call(&mut self, request: Request) -> Response {
        let id = self.send(request).await;
        loop {
            match self.next().await {
                Some(ServerFrame::Response(rid, response)) if rid == id => return response,
                Some(_) => continue,
                None => panic!("closed before the answer"),
            }
        }
    }
}
