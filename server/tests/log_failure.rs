//! The real binary with its log going nowhere (issue 15, item 5): stderr on `/dev/full`, where
//! every write fails with ENOSPC. A failed log write used to panic the thread that logged: the
//! binary exited 101 at start, and a listener's accept loop that logged an accept error died
//! for good. Now the server starts, serves, counts the lines it lost, keeps accepting after
//! running out of file descriptors, and exits cleanly on SIGTERM.

#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use bytes::BytesMut;
use parley_protocol::frames::{ClientFrame, Device, Platform, Request, Response, ServerFrame};
use parley_protocol::ids::{Account, DeviceId, RequestId};
use parley_protocol::values::NewPassword;
use parley_protocol::FrameCodec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use common::binary::{ready_line, Ready, BIN, EXIT_WAIT};
use common::{http_get, WAIT};

/// The binary with every listener on 127.0.0.1:0 and stderr on /dev/full; `nofile` caps its
/// file descriptors (through the shell's `ulimit`, applied before `exec`).
async fn start(dir: &std::path::Path, nofile: Option<u32>) -> (Child, Ready) {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let args = format!(
        "--data-dir '{}' --tls 127.0.0.1:0 --quic 127.0.0.1:0 --http 127.0.0.1:0 --plain-tcp 127.0.0.1:0",
        dir.display()
    );
    let limit = nofile.map_or(String::new(), |n| format!("ulimit -n {n} && "));
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("{limit}exec '{BIN}' {args}"))
        // Debug lines too: every connection then logs, and every one of those writes fails.
        .env("RUST_LOG", "debug,quinn=warn,sled=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(full)
        .kill_on_drop(true)
        .spawn()
        .expect("start parley");
    let Some(ready) = ready_line(child.stdout.take().expect("piped stdout")).await else {
        let status = child.wait().await;
        panic!("parley exited before it was ready: {status:?}");
    };
    (child, ready)
}

struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    codec: FrameCodec,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Conn {
        Conn {
            stream: TcpStream::connect(addr).await.expect("connect"),
            buf: BytesMut::new(),
            codec: FrameCodec::new(16 << 20),
        }
    }

    async fn send(&mut self, id: u64, request: Request) {
        let frame = ClientFrame {
            request_id: RequestId::try_from(id).unwrap(),
            request,
        };
        self.stream.write_all(&frame.encode()).await.unwrap();
    }

    /// The response to `id`, waiting at most `limit` (`None`: none came).
    async fn response_within(&mut self, id: u64, limit: Duration) -> Option<Response> {
        tokio::time::timeout(limit, async {
            loop {
                if let Some(body) = self.codec.decode(&mut self.buf).unwrap() {
                    if let ServerFrame::Response(rid, r) = ServerFrame::decode(body).unwrap() {
                        if rid.get() == id {
                            return Some(r);
                        }
                    }
                    continue;
                }
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await
        .ok()
        .flatten()
    }

    async fn ping(&mut self, id: u64, limit: Duration) -> bool {
        self.send(id, Request::Ping { client_time_ms: 1 }).await;
        matches!(
            self.response_within(id, limit).await,
            Some(Response::Pong { .. })
        )
    }
}

fn register(account: &str) -> Request {
    Request::Register {
        account: Account::try_from(account).unwrap(),
        password: NewPassword::try_from("password-123").unwrap(),
        device: Device {
            id: DeviceId::try_from("dev-1").unwrap(),
            platform: Platform::Unspecified,
        },
    }
}

async fn stat(http: SocketAddr, name: &str) -> u64 {
    let body = http_get(http, "/api/v1/stats").await;
    let v: serde_json::Value = serde_json::from_str(&body).expect("stats JSON");
    v[name]
        .as_u64()
        .unwrap_or_else(|| panic!("stats has {name}: {body}"))
}

async fn terminate(mut child: Child, pid: u32) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .expect("kill(1)");
    assert!(status.success());
    tokio::time::timeout(EXIT_WAIT, child.wait())
        .await
        .expect("parley exits after SIGTERM")
        .expect("wait")
}

#[tokio::test]
async fn with_stderr_on_a_full_device_the_server_starts_serves_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (child, ready) = start(dir.path(), None).await;
    let mut c = Conn::open(ready.tcp).await;
    c.send(1, register("alice")).await;
    let answer = c.response_within(1, WAIT).await;
    assert!(matches!(answer, Some(Response::Login(_))), "{answer:?}");
    assert!(c.ping(2, WAIT).await);
    // It logged (start-up, the connection, the login) and lost every line, without dying.
    assert!(stat(ready.http, "log_lines_lost_total").await > 0);
    assert_eq!(stat(ready.http, "listener_restarts_total").await, 0);
    let status = terminate(child, ready.pid).await;
    assert!(status.success(), "exit status {status:?}");
}

/// Open descriptors of `pid`.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn the_accept_loop_survives_running_out_of_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    // Room for what the server opens at start plus a few dozen connections.
    let probe_dir = tempfile::tempdir().unwrap();
    let (probe, probe_ready) = start(probe_dir.path(), None).await;
    let at_start = fds(probe_ready.pid);
    terminate(probe, probe_ready.pid).await;
    assert!(at_start > 0, "cannot count the server's descriptors");
    let limit = u32::try_from(at_start + 40).unwrap();
    let (child, ready) = start(dir.path(), Some(limit)).await;

    // Fill every descriptor with live connections, until one is not accepted.
    let mut held = Vec::new();
    let mut stuck = None;
    for i in 0..200u64 {
        let mut c = Conn::open(ready.tcp).await;
        // The kernel completes the handshake; only the server's accept can fail. A connection
        // that is not answered in a second is taken as not accepted (checked below).
        if c.ping(i + 1, Duration::from_secs(1)).await {
            held.push(c);
        } else {
            stuck = Some((c, i + 1));
            break;
        }
    }
    let (mut stuck, stuck_id) = stuck.expect("the server ran out of descriptors");
    assert!(
        fds(ready.pid) as u32 >= limit - 2,
        "the server was not at its descriptor limit ({} of {limit})",
        fds(ready.pid)
    );
    // Free descriptors: the waiting connection is accepted and answered, and new ones too.
    drop(held);
    let answer = stuck.response_within(stuck_id, WAIT).await;
    assert!(matches!(answer, Some(Response::Pong { .. })), "{answer:?}");
    let mut fresh = Conn::open(ready.tcp).await;
    assert!(fresh.ping(1, WAIT).await, "a new connection is not served");
    let status = terminate(child, ready.pid).await;
    assert!(status.success(), "exit status {status:?}");
}
