//! Starting the real `parley` binary for a scenario: a temporary data directory, every
//! listener on 127.0.0.1 port 0, addresses from the `PARLEY_READY` line on its stdout.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::conn::Transport;
use crate::procfs::{self, ProcSample};

/// A server process started by the generator; stopped (SIGTERM, then SIGKILL) by
/// [`SpawnedServer::stop`] or killed when dropped.
#[derive(Debug)]
pub struct SpawnedServer {
    child: Child,
    pid: u32,
    tls: SocketAddr,
    tcp: SocketAddr,
    quic: SocketAddr,
    http: SocketAddr,
    cert: PathBuf,
    data_dir: PathBuf,
    binary: PathBuf,
    config: Option<PathBuf>,
    _temp: Option<tempfile::TempDir>,
}

fn first_addr(line: &str, key: &str) -> anyhow::Result<SocketAddr> {
    let value = line
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(key))
        .ok_or_else(|| anyhow!("ready line lacks {key}: {line}"))?;
    let first = value.split(',').next().unwrap_or_default();
    first
        .parse()
        .with_context(|| format!("bad address {first:?} in the ready line"))
}

impl SpawnedServer {
    /// Starts `binary` on `data_dir` (a fresh temporary directory if `None`) and waits up to
    /// 60 s for its ready line. The server's log goes to `<data_dir>/server.log`. With `config`,
    /// the server reads that TOML file (`--config FILE`); its data directory and listeners are
    /// still the generator's (command-line options override the file).
    pub async fn start(
        binary: &Path,
        data_dir: Option<&Path>,
        config: Option<&Path>,
    ) -> anyhow::Result<SpawnedServer> {
        Self::start_on(binary, data_dir, config, None).await
    }

    /// Stops the server gracefully and starts it again on the same data directory and the
    /// same addresses (so connected clients' targets stay valid). A fresh process is the
    /// baseline for memory figures: it holds no memory freed by earlier phases.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let addrs = [self.tls, self.quic, self.tcp, self.http];
        let temp = self._temp.take();
        let binary = self.binary.clone();
        let dir = self.data_dir.clone();
        let config = self.config.clone();
        let old = std::mem::replace(self, Self::placeholder(binary.clone(), dir.clone()));
        old.stop().await?;
        let mut fresh = Self::start_on(&binary, Some(&dir), config.as_deref(), Some(addrs)).await?;
        fresh._temp = temp;
        *self = fresh;
        Ok(())
    }

    /// Kills the server with SIGKILL (no shutdown of any kind, as a crash) and starts it again
    /// on the same data directory and addresses. Returns the time from the kill having taken
    /// effect to the new process's ready line (every listener bound).
    pub async fn kill_and_restart(&mut self) -> anyhow::Result<Duration> {
        let addrs = [self.tls, self.quic, self.tcp, self.http];
        let temp = self._temp.take();
        let binary = self.binary.clone();
        let dir = self.data_dir.clone();
        let config = self.config.clone();
        let mut old = std::mem::replace(self, Self::placeholder(binary.clone(), dir.clone()));
        old.child.kill().await?;
        let t = tokio::time::Instant::now();
        let mut fresh = Self::start_on(&binary, Some(&dir), config.as_deref(), Some(addrs)).await?;
        let took = t.elapsed();
        fresh._temp = temp;
        *self = fresh;
        Ok(took)
    }

    fn placeholder(binary: PathBuf, data_dir: PathBuf) -> SpawnedServer {
        // Never used: `restart` replaces it before returning. A child that is not running
        // cannot be made without spawning, so use a trivially exiting one.
        let child = Command::new("true")
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|_| unreachable!("`true` is always available"));
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        SpawnedServer {
            child,
            pid: 0,
            tls: any,
            tcp: any,
            quic: any,
            http: any,
            cert: PathBuf::new(),
            data_dir,
            binary,
            config: None,
            _temp: None,
        }
    }

    async fn start_on(
        binary: &Path,
        data_dir: Option<&Path>,
        config: Option<&Path>,
        addrs: Option<[SocketAddr; 4]>,
    ) -> anyhow::Result<SpawnedServer> {
        if !binary.exists() {
            bail!(
                "{} not found: build it first (cargo build --release -p parley-server) or pass --server-bin",
                binary.display()
            );
        }
        if let Some(c) = config {
            if !c.is_file() {
                bail!("server configuration {} not found", c.display());
            }
        }
        let (temp, dir) = match data_dir {
            Some(d) => (None, d.to_owned()),
            None => {
                let t = tempfile::Builder::new().prefix("imload-").tempdir()?;
                let p = t.path().to_owned();
                (Some(t), p)
            }
        };
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))?;
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let [tls, quic, tcp, http] = addrs.unwrap_or([any; 4]);
        let mut command = Command::new(binary);
        if let Some(c) = config {
            command.arg("--config").arg(c);
        }
        let mut child = command
            .arg("--data-dir")
            .arg(&dir)
            .args(["--tls", &tls.to_string(), "--quic", &quic.to_string()])
            .args(["--plain-tcp", &tcp.to_string(), "--http", &http.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout pipe"))?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await? {
                if line.starts_with("PARLEY_READY ") {
                    return Ok(line);
                }
            }
            Err(anyhow!(
                "server exited before its ready line (see {})",
                dir.join("server.log").display()
            ))
        })
        .await
        .map_err(|_| anyhow!("server not ready within 60 s"))??;
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let pid = ready
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("pid="))
            .and_then(|p| p.parse().ok())
            .or_else(|| child.id())
            .ok_or_else(|| anyhow!("no pid"))?;
        Ok(SpawnedServer {
            pid,
            tls: first_addr(&ready, "tls=")?,
            tcp: first_addr(&ready, "tcp=")?,
            quic: first_addr(&ready, "quic=")?,
            http: first_addr(&ready, "http=")?,
            cert: dir.join("tls").join("cert.pem"),
            data_dir: dir,
            binary: binary.to_owned(),
            config: config.map(Path::to_owned),
            child,
            _temp: temp,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The listener of `transport` (for WebSockets, the HTTP side-service's).
    pub fn addr(&self, transport: Transport) -> SocketAddr {
        match transport {
            Transport::Tcp => self.tcp,
            Transport::Tls => self.tls,
            Transport::Quic => self.quic,
            Transport::Ws => self.http,
        }
    }

    /// The HTTP side-service.
    pub fn http(&self) -> SocketAddr {
        self.http
    }

    /// The development certificate (PEM).
    pub fn cert(&self) -> &Path {
        &self.cert
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// RSS and CPU time now.
    pub fn sample(&self) -> anyhow::Result<ProcSample> {
        procfs::sample(self.pid)
    }

    /// SIGTERM, wait up to 15 s for a graceful exit, then SIGKILL.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await;
        match tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                if !status.success() {
                    bail!("server exited with {status}");
                }
            }
            Err(_) => {
                self.child.kill().await?;
                bail!("server did not stop within 15 s; killed");
            }
        }
        Ok(())
    }
}

/// Reads `GET /api/v1/stats` from the server's HTTP side-service (a minimal HTTP/1.1 client,
/// good enough for one small JSON body on loopback).
pub async fn server_stats(http: SocketAddr) -> anyhow::Result<serde_json::Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect(http).await?;
        s.write_all(
            format!("GET /api/v1/stats HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        let text = String::from_utf8_lossy(&buf);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .ok_or_else(|| anyhow!("no HTTP body"))?;
        Ok::<_, anyhow::Error>(serde_json::from_str(body.trim())?)
    };
    tokio::time::timeout(Duration::from_secs(5), fetch)
        .await
        .map_err(|_| anyhow!("stats request timed out"))?
}
