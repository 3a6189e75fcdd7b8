//! Test harness: a real server on 127.0.0.1 port 0 with a fresh temp data dir, and SDK clients
//! connected to it over the transport under test.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod binary;
pub mod raw;

use std::net::SocketAddr;
use std::time::Duration;

use parley_client::{Client, ClientConfig, Credentials, Event, Events, Transport, Trust};
use parley_protocol::frames::Message;
use parley_protocol::ids::DeviceId;
use parley_server::{Config, Server};
use tokio_util::sync::CancellationToken;

/// Upper bound on any single wait in a test: generous, so slow CI machines do not flake; a
/// healthy run never comes close.
pub const WAIT: Duration = Duration::from_secs(20);

/// A running in-process server.
pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub tls: SocketAddr,
    pub tcp: SocketAddr,
    pub quic: SocketAddr,
    pub http: SocketAddr,
    pub cert: std::path::PathBuf,
    pub fingerprint: String,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cfg = Config::for_tests(dir.path());
        tweak(&mut cfg);
        Self::run(dir, cfg).await
    }

    /// Starts on an existing data directory.
    #[allow(dead_code)] // not every test binary uses it
    pub async fn start_in(dir: tempfile::TempDir) -> TestServer {
        let cfg = Config::for_tests(dir.path());
        Self::run(dir, cfg).await
    }

    async fn run(dir: tempfile::TempDir, cfg: Config) -> TestServer {
        let server = Server::bind(cfg).await.expect("server binds");
        let a = server.addrs().clone();
        let cert = server.cert_path().to_owned();
        let fingerprint = server.fingerprint().to_owned();
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let task = tokio::spawn(async move {
            server.run(token).await.expect("server runs");
        });
        TestServer {
            dir,
            tls: a.tls[0],
            tcp: a.tcp[0],
            quic: a.quic[0],
            http: a.http[0],
            cert,
            fingerprint,
            shutdown,
            task,
        }
    }

    /// Stops the server and starts a new one on the same data dir and the same addresses (so
    /// clients can reconnect to where they were).
    pub async fn restart(self) -> TestServer {
        self.restart_after(async {}).await
    }

    /// Like [`TestServer::restart`], running `while_down` while no server is listening.
    pub async fn restart_after(
        self,
        while_down: impl std::future::Future<Output = ()>,
    ) -> TestServer {
        let (tls, tcp, quic, http) = (self.tls, self.tcp, self.quic, self.http);
        let dir = self.stop().await;
        while_down.await;
        let mut cfg = Config::for_tests(dir.path());
        cfg.listen.tls = vec![tls];
        cfg.listen.tcp = vec![tcp];
        cfg.listen.quic = vec![quic];
        cfg.listen.http = vec![http];
        Self::run(dir, cfg).await
    }

    /// The address for a transport.
    pub fn addr(&self, transport: Transport) -> SocketAddr {
        match transport {
            Transport::Tls => self.tls,
            Transport::Quic => self.quic,
            Transport::PlainTcp => self.tcp,
        }
    }

    /// Client configuration trusting this server's certificate by file.
    pub fn config(&self, transport: Transport, device: &str) -> ClientConfig {
        let mut cfg = ClientConfig::new(
            self.addr(transport),
            transport,
            Trust::CertFile(self.cert.clone()),
            DeviceId::try_from(device).expect("device id"),
        );
        cfg.backoff_base = Duration::from_millis(50);
        cfg.backoff_max = Duration::from_millis(500);
        cfg
    }

    /// Registers `account` and returns the connected client.
    pub async fn register(&self, transport: Transport, account: &str) -> (Client, Events) {
        self.connect(
            transport,
            account,
            "dev-1",
            Credentials::Register {
                account: parley_protocol::ids::Account::try_from(account).expect("account"),
                password: "password-123".into(),
            },
        )
        .await
    }

    /// Logs in an existing account on another device.
    pub async fn login(
        &self,
        transport: Transport,
        account: &str,
        device: &str,
    ) -> (Client, Events) {
        self.connect(
            transport,
            account,
            device,
            Credentials::Password {
                account: parley_protocol::ids::Account::try_from(account).expect("account"),
                password: "password-123".into(),
            },
        )
        .await
    }

    async fn connect(
        &self,
        transport: Transport,
        account: &str,
        device: &str,
        credentials: Credentials,
    ) -> (Client, Events) {
        tokio::time::timeout(
            WAIT,
            Client::connect(self.config(transport, device), credentials),
        )
        .await
        .expect("connect in time")
        .unwrap_or_else(|e| panic!("{account} connects: {e}"))
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(self) -> tempfile::TempDir {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("server stops in time")
            .expect("server task");
        self.dir
    }
}

/// Waits for the next message event, skipping other events.
pub async fn next_message(events: &mut Events) -> Message {
    loop {
        match tokio::time::timeout(WAIT, events.next()).await {
            Ok(Some(Event::Message(m))) => return m,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("event stream ended"),
            Err(_) => panic!("no message within {WAIT:?}"),
        }
    }
}

/// Waits for an event matching `pred`, skipping others.
pub async fn wait_for<T>(events: &mut Events, mut pred: impl FnMut(&Event) -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(ev)) => {
                if let Some(v) = pred(&ev) {
                    return v;
                }
            }
            Ok(None) => panic!("event stream ended"),
            Err(_) => panic!("expected event did not arrive within {WAIT:?}"),
        }
    }
}

/// Defines one test per transport: `$name::tls` and `$name::quic`.
#[macro_export]
macro_rules! both_transports {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn tls() {
                super::$body(parley_client::Transport::Tls).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn quic() {
                super::$body(parley_client::Transport::Quic).await;
            }
        }
    };
}

/// `GET path` on the HTTP side-service; returns the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect http");
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut out))
        .await
        .expect("http answer in time")
        .expect("read");
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

/// One counter from `/api/v1/stats`.
pub async fn stat(server: &TestServer, name: &str) -> u64 {
    let body = http_get(server.http, "/api/v1/stats").await;
    let key = format!("\"{name}\":");
    let at = body
        .find(&key)
        .unwrap_or_else(|| panic!("stats has {name}: {body}"));
    body[at + key.len()..]
        .split([',', '}'])
        .next()
        .expect("value")
        .trim()
        .parse()
        .expect("number")
}

/// Sessions the server has online, from `/api/v1/stats`.
pub async fn sessions_online(server: &TestServer) -> u64 {
    stat(server, "sessions_online").await
}

/// The server's error code of a refused request (panics on success or a non-server error).
pub fn code<T: std::fmt::Debug>(
    r: Result<T, parley_client::ClientError>,
) -> parley_protocol::ErrorCode {
    match r {
        Err(e) => e
            .server_code()
            .unwrap_or_else(|| panic!("not a server error: {e}")),
        Ok(v) => panic!("expected a refusal, got {v:?}"),
    }
}

/// Every message of `conv` from its start, read by sync pages of 100 (as a new device would).
pub async fn sync_conversation(
    client: &Client,
    epoch: u64,
    conv: parley_protocol::ids::ConversationId,
) -> Vec<Message> {
    use parley_protocol::frames::{Request, Response, SyncRequest};
    use parley_protocol::ids::Seq;
    let mut out: Vec<Message> = Vec::new();
    loop {
        let at = out.last().map_or(Seq::ZERO, |m| m.seq);
        let request = SyncRequest {
            epoch,
            positions: vec![(conv, at)],
            limit: 100,
            from_conversation: None,
        };
        let page = match client.request(Request::Sync(request)).await {
            Ok(Response::Sync(page)) => page,
            other => panic!("sync: {other:?}"),
        };
        let before = out.len();
        out.extend(page.messages.into_iter().filter(|m| m.conversation == conv));
        if !page.has_more && out.len() == before {
            return out;
        }
    }
}
