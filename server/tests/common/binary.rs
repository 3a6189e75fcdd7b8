//! Starting the real `parley` binary (not in-process) for crash and smoke tests.
//!
//! [`ServerProcess::start`] runs the binary on a given data dir with every listener on
//! 127.0.0.1 port 0, waits (bounded) for its `PARLEY_READY` line and exposes the bound addresses,
//! the pid and the dev certificate. The process is killed when the handle is dropped (also when
//! a test panics), so no test leaks servers; its log (stderr) is kept and printed if the test
//! panics while the handle is alive.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use parley_client::{Client, ClientConfig, Credentials, Events, Transport, Trust};
use parley_protocol::ids::{Account, DeviceId};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader, Lines};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use super::WAIT;

/// The server binary cargo built for this test run.
pub const BIN: &str = env!("CARGO_BIN_EXE_parley");

/// How long `terminate` waits for the exit: the default drain timeout (5 s) plus a margin.
pub const EXIT_WAIT: Duration = Duration::from_secs(20);

/// Lines of server output kept for diagnostics.
const LOG_LINES: usize = 400;

/// The last lines the server wrote (stderr, and stdout after the ready line).
#[derive(Clone, Default)]
pub struct LogTail(Arc<Mutex<std::collections::VecDeque<String>>>);

impl LogTail {
    fn push(&self, line: String) {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() == LOG_LINES {
            q.pop_front();
        }
        q.push_back(line);
    }

    /// Everything kept, one line each.
    pub fn text(&self) -> String {
        let q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        q.iter().map(|l| format!("{l}\n")).collect()
    }
}

/// Reads `lines` into `tail` until EOF (the process exited).
fn collect_lines<R>(mut lines: Lines<BufReader<R>>, tail: LogTail) -> JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            tail.push(line);
        }
    })
}

/// What the binary printed when it was ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ready {
    pub pid: u32,
    pub tls: SocketAddr,
    pub quic: SocketAddr,
    pub tcp: SocketAddr,
    pub http: SocketAddr,
}

/// Parses `PARLEY_READY pid=.. tls=.. quic=.. tcp=.. http=..` (first address of each list).
pub fn parse_ready(line: &str) -> Option<Ready> {
    let rest = line.strip_prefix("PARLEY_READY ")?;
    let field = |key: &str| {
        rest.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.split(',').next().unwrap_or(""))
    };
    let addr = |key: &str| field(key)?.parse::<SocketAddr>().ok();
    Some(Ready {
        pid: field("pid")?.parse().ok()?,
        tls: addr("tls")?,
        quic: addr("quic")?,
        tcp: addr("tcp")?,
        http: addr("http")?,
    })
}

/// Reads a spawned server's stdout until its ready line (bounded by [`WAIT`]: a silent server
/// fails the test), then keeps draining it so the server never blocks on a full pipe. `None`
/// if the server closed its stdout (exited) before it was ready.
pub async fn ready_line(stdout: tokio::process::ChildStdout) -> Option<Ready> {
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(WAIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(ready) = parse_ready(&line) {
                return Some(ready);
            }
        }
        None
    })
    .await
    .expect("ready in time");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    ready
}

/// A running `parley` process.
pub struct ServerProcess {
    child: Child,
    /// The server's pid (from the ready line; the same as the child's).
    pub pid: u32,
    /// TLS over TCP.
    pub tls: SocketAddr,
    /// QUIC.
    pub quic: SocketAddr,
    /// Plain TCP.
    pub tcp: SocketAddr,
    /// HTTP side-service.
    pub http: SocketAddr,
    /// The data dir it runs on.
    pub data_dir: PathBuf,
    /// The dev certificate, `<data_dir>/tls/cert.pem`.
    pub cert: PathBuf,
    log: LogTail,
    exited: Option<ExitStatus>,
}

impl ServerProcess {
    /// Starts the binary on `data_dir` with TLS, QUIC, plain TCP and HTTP on 127.0.0.1:0 and
    /// waits for its ready line. Panics (with the server's log) if it exits or stays silent
    /// for [`WAIT`].
    pub async fn start(data_dir: &Path) -> ServerProcess {
        Self::start_with_args(data_dir, &[]).await
    }

    /// [`ServerProcess::start`] with extra command-line arguments.
    pub async fn start_with_args(data_dir: &Path, extra: &[&OsStr]) -> ServerProcess {
        let mut command = Command::new(BIN);
        command
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--tls", "127.0.0.1:0"])
            .args(["--quic", "127.0.0.1:0"])
            .args(["--http", "127.0.0.1:0"])
            .args(["--plain-tcp", "127.0.0.1:0"])
            .args(extra);
        let mut child = spawn(&mut command);
        let log = LogTail::default();
        let stderr = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
        let stderr_reader = collect_lines(stderr, log.clone());
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(WAIT, async {
            // Bounded by the timeout; the binary prints nothing else before the ready line.
            loop {
                match lines.next_line().await {
                    Ok(Some(line)) => match parse_ready(&line) {
                        Some(ready) => return Some(ready),
                        None => log.push(format!("[stdout] {line}")),
                    },
                    Ok(None) | Err(_) => return None,
                }
            }
        })
        .await;
        let ready = match ready {
            Ok(Some(ready)) => ready,
            failed => {
                let _ = child.start_kill();
                let status = tokio::time::timeout(WAIT, child.wait()).await;
                // The pipe closes with the process: let the reader take the last lines.
                let _ = tokio::time::timeout(WAIT, stderr_reader).await;
                panic!(
                    "parley did not become ready ({}; exit: {status:?})\n--- server log ---\n{}",
                    if failed.is_err() {
                        "timed out"
                    } else {
                        "stdout ended"
                    },
                    log.text()
                );
            }
        };
        collect_lines(lines, log.clone());
        assert_eq!(
            Some(ready.pid),
            child.id(),
            "the ready line names another process"
        );
        ServerProcess {
            child,
            pid: ready.pid,
            tls: ready.tls,
            quic: ready.quic,
            tcp: ready.tcp,
            http: ready.http,
            data_dir: data_dir.to_owned(),
            cert: data_dir.join("tls").join("cert.pem"),
            log,
            exited: None,
        }
    }

    /// The server's recent output (stderr).
    pub fn log(&self) -> String {
        self.log.text()
    }

    /// The address for a transport.
    pub fn addr(&self, transport: Transport) -> SocketAddr {
        match transport {
            Transport::Tls => self.tls,
            Transport::Quic => self.quic,
            Transport::PlainTcp => self.tcp,
        }
    }

    /// Client configuration trusting the dev certificate by file. `reconnect` is off: a test
    /// that kills the server wants sends to fail, not to be retried against a dead address.
    pub fn client_config(&self, transport: Transport, device: &str) -> ClientConfig {
        let mut cfg = ClientConfig::new(
            self.addr(transport),
            transport,
            Trust::CertFile(self.cert.clone()),
            DeviceId::try_from(device).expect("device id"),
        );
        cfg.reconnect = false;
        cfg
    }

    /// Connects an SDK client (`register`: create the account first; else log in with the
    /// password). Panics on failure.
    pub async fn connect(
        &self,
        transport: Transport,
        account: &str,
        device: &str,
        password: &str,
        register: bool,
    ) -> (Client, Events) {
        let account_id = Account::try_from(account).expect("account");
        let credentials = if register {
            Credentials::Register {
                account: account_id,
                password: password.to_owned(),
            }
        } else {
            Credentials::Password {
                account: account_id,
                password: password.to_owned(),
            }
        };
        tokio::time::timeout(
            WAIT,
            Client::connect(self.client_config(transport, device), credentials),
        )
        .await
        .unwrap_or_else(|_| panic!("{account} did not connect within {WAIT:?}"))
        .unwrap_or_else(|e| panic!("{account} connects over {transport:?}: {e}"))
    }

    /// `kill -9`: no chance to flush or drain. Returns once the process is gone.
    pub async fn kill9(mut self) -> ExitStatus {
        self.child.start_kill().expect("send SIGKILL");
        self.wait_exit(WAIT)
            .await
            .expect("a SIGKILLed process exits at once")
    }

    /// SIGTERM (graceful drain), then waits up to [`EXIT_WAIT`] for the exit status. Panics,
    /// killing the process, if it does not exit in time.
    pub async fn terminate(mut self) -> ExitStatus {
        self.signal("-TERM").await;
        match self.wait_exit(EXIT_WAIT).await {
            Some(status) => status,
            None => panic!(
                "parley did not exit within {EXIT_WAIT:?} of SIGTERM\n--- server log ---\n{}",
                self.log()
            ),
        }
    }

    /// Sends a signal (`-TERM`, `-9` ...) with `kill(1)`.
    pub async fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(signal)
            .arg(self.pid.to_string())
            .status()
            .await
            .expect("run kill(1)");
        assert!(status.success(), "kill {signal} {} failed", self.pid);
    }

    /// Waits for the process to exit, at most `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.exited {
            return Some(status);
        }
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .ok()?
            .expect("wait for parley");
        self.exited = Some(status);
        Some(status)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.exited.is_none() {
            // Also done by `kill_on_drop`; explicit so the intent is plain.
            let _ = self.child.start_kill();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- parley (pid {}) log, last {LOG_LINES} lines ---\n{}",
                self.pid,
                self.log()
            );
        }
    }
}

/// Runs the binary with `args` to completion (bounded by [`WAIT`]) and returns its output.
pub async fn run_to_exit<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let child = spawn(Command::new(BIN).args(args));
    tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("parley exits in time")
        .expect("collect parley output")
}

/// Starts the binary with no stdin and both outputs piped; it is killed if the handle drops.
fn spawn(command: &mut Command) -> Child {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the parley binary")
}
