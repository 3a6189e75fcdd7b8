//! Worker slices and their coordination.
//!
//! A scenario that needs more sockets than one process may hold (`idle`, `storm`) splits its
//! clients into slices. With `--workers 1` the slices are tasks of this process; with more, the
//! generator re-executes itself once per slice. Either way a slice walks through named phases:
//! at the end of each it reports a JSON value and waits until the parent releases it, so the
//! parent can measure the server between phases (RSS before and after connecting, say).
//!
//! Child protocol: one JSON object per line on the child's stdout
//! (`{"worker":i,"phase":"...","data":{...}}`, with `"phase":"progress"` for progress counts
//! and `"phase":"error"` on failure); the parent releases a phase by writing `go` on the
//! child's stdin.

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::progress::Progress;

/// A report from a slice.
#[derive(Debug)]
struct Msg {
    worker: usize,
    phase: String,
    data: Value,
}

enum Channel {
    Local {
        tx: mpsc::UnboundedSender<Msg>,
        go: mpsc::UnboundedReceiver<()>,
    },
    Child {
        stdin: tokio::io::Lines<BufReader<tokio::io::Stdin>>,
    },
}

/// A slice's end of the coordination.
pub struct Coord {
    worker: usize,
    channel: Channel,
    progress: Arc<AtomicU64>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Coord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coord")
            .field("worker", &self.worker)
            .finish()
    }
}

fn emit(worker: usize, phase: &str, data: &Value) {
    println!(
        "{}",
        json!({ "worker": worker, "phase": phase, "data": data })
    );
}

impl Coord {
    /// The coordination of a child process (`--worker-index`): stdout and stdin.
    pub fn child(worker: usize) -> Coord {
        let progress = Arc::new(AtomicU64::new(0));
        let p = progress.clone();
        let ticker = tokio::spawn(async move {
            let mut last = u64::MAX;
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let n = p.load(Ordering::Relaxed);
                if n != last {
                    emit(worker, "progress", &json!({ "n": n }));
                    last = n;
                }
            }
        });
        Coord {
            worker,
            channel: Channel::Child {
                stdin: BufReader::new(tokio::io::stdin()).lines(),
            },
            progress,
            ticker: Some(ticker),
        }
    }

    /// This slice's index.
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// A counter the parent shows as progress (summed over slices).
    pub fn progress(&self) -> Arc<AtomicU64> {
        self.progress.clone()
    }

    /// Reports the end of `phase` and waits to be released.
    pub async fn barrier(&mut self, phase: &str, data: Value) -> anyhow::Result<()> {
        self.progress.store(0, Ordering::Relaxed);
        match &mut self.channel {
            Channel::Local { tx, go } => {
                tx.send(Msg {
                    worker: self.worker,
                    phase: phase.to_owned(),
                    data,
                })
                .map_err(|_| anyhow!("parent gone"))?;
                go.recv().await.ok_or_else(|| anyhow!("parent gone"))
            }
            Channel::Child { stdin } => {
                emit(self.worker, phase, &data);
                match stdin.next_line().await? {
                    Some(l) if l.trim() == "go" => Ok(()),
                    Some(l) => bail!("unexpected command {l:?}"),
                    None => bail!("parent closed stdin"),
                }
            }
        }
    }

    /// Reports a failure (child processes only; local slices return their error).
    pub fn fail(&self, error: &anyhow::Error) {
        if let Channel::Child { .. } = self.channel {
            emit(
                self.worker,
                "error",
                &json!({ "message": format!("{error:#}") }),
            );
        }
    }
}

impl Drop for Coord {
    fn drop(&mut self) {
        if let Some(t) = self.ticker.take() {
            t.abort();
        }
    }
}

enum Gate {
    Local(mpsc::UnboundedSender<()>),
    Proc(ChildStdin),
}

/// The parent's end: the slices, their reports, and the gates that release them.
pub struct Slices {
    rx: mpsc::UnboundedReceiver<Msg>,
    gates: Vec<Gate>,
    children: Vec<Child>,
    locals: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
    local_progress: Vec<Arc<AtomicU64>>,
    child_progress: Vec<u64>,
}

impl std::fmt::Debug for Slices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slices")
            .field("slices", &self.gates.len())
            .finish()
    }
}

impl Slices {
    /// Runs one slice as a task of this process; `run` gets the slice's [`Coord`].
    pub fn local<F, Fut>(run: F) -> Slices
    where
        F: FnOnce(Coord) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let (go_tx, go_rx) = mpsc::unbounded_channel();
        let progress = Arc::new(AtomicU64::new(0));
        let coord = Coord {
            worker: 0,
            channel: Channel::Local { tx, go: go_rx },
            progress: progress.clone(),
            ticker: None,
        };
        let handle = tokio::spawn(run(coord));
        Slices {
            rx,
            gates: vec![Gate::Local(go_tx)],
            children: Vec::new(),
            locals: vec![handle],
            local_progress: vec![progress],
            child_progress: Vec::new(),
        }
    }

    /// Starts `count` child processes of this executable; `args(i)` gives child i's arguments.
    pub fn spawn(count: usize, args: impl Fn(usize) -> Vec<String>) -> anyhow::Result<Slices> {
        let exe = std::env::current_exe().context("locating the imload executable")?;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut gates = Vec::new();
        let mut children = Vec::new();
        for i in 0..count {
            let mut child = Command::new(&exe)
                .args(args(i))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .context("starting a worker process")?;
            let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
            let stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin"))?;
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let Ok(v) = serde_json::from_str::<Value>(&line) else {
                        continue;
                    };
                    let msg = Msg {
                        worker: i,
                        phase: v["phase"].as_str().unwrap_or_default().to_owned(),
                        data: v["data"].clone(),
                    };
                    if tx.send(msg).is_err() {
                        break;
                    }
                }
                let _ = tx.send(Msg {
                    worker: i,
                    phase: "exit".into(),
                    data: Value::Null,
                });
            });
            gates.push(Gate::Proc(stdin));
            children.push(child);
        }
        Ok(Slices {
            rx,
            gates,
            children,
            locals: Vec::new(),
            local_progress: Vec::new(),
            child_progress: vec![0; count],
        })
    }

    fn progress_sum(&self) -> u64 {
        self.local_progress
            .iter()
            .map(|p| p.load(Ordering::Relaxed))
            .sum::<u64>()
            + self.child_progress.iter().sum::<u64>()
    }

    /// Waits until every slice has reported `phase` (at most `timeout`), showing progress;
    /// returns the reports in slice order.
    pub async fn wait(
        &mut self,
        phase: &str,
        timeout: Duration,
        progress: &Progress,
    ) -> anyhow::Result<Vec<Value>> {
        let n = self.gates.len();
        let mut out: Vec<Option<Value>> = vec![None; n];
        let deadline = tokio::time::Instant::now() + timeout;
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        while out.iter().any(Option::is_none) {
            tokio::select! {
                msg = self.rx.recv() => {
                    let msg = msg.ok_or_else(|| anyhow!("every worker is gone"))?;
                    match msg.phase.as_str() {
                        "progress" => {
                            if let Some(p) = self.child_progress.get_mut(msg.worker) {
                                *p = msg.data["n"].as_u64().unwrap_or(0);
                            }
                        }
                        "error" => bail!("worker {} failed: {}", msg.worker, msg.data["message"]),
                        "exit" => bail!("worker {} exited during phase {phase}", msg.worker),
                        p if p == phase => out[msg.worker] = Some(msg.data),
                        other => bail!("worker {} reported {other} while waiting for {phase}", msg.worker),
                    }
                }
                _ = tick.tick() => {
                    progress.set(self.progress_sum());
                    if tokio::time::Instant::now() >= deadline {
                        bail!("phase {phase} did not finish within {timeout:?}");
                    }
                    for (i, h) in self.locals.iter().enumerate() {
                        if h.is_finished() && out[i].is_none() {
                            bail!("slice {i} stopped during phase {phase}");
                        }
                    }
                }
            }
        }
        for p in &mut self.child_progress {
            *p = 0;
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// Releases every slice from its current barrier.
    pub async fn release(&mut self) -> anyhow::Result<()> {
        for g in &mut self.gates {
            match g {
                Gate::Local(tx) => {
                    let _ = tx.send(());
                }
                Gate::Proc(stdin) => {
                    stdin.write_all(b"go\n").await?;
                    stdin.flush().await?;
                }
            }
        }
        Ok(())
    }

    /// Waits for every slice to end (releasing its last barrier first).
    pub async fn finish(mut self) -> anyhow::Result<()> {
        self.release().await?;
        for h in self.locals.drain(..) {
            h.await.map_err(|e| anyhow!("slice panicked: {e}"))??;
        }
        for mut c in self.children.drain(..) {
            let status = tokio::time::timeout(Duration::from_secs(30), c.wait())
                .await
                .map_err(|_| anyhow!("a worker did not exit"))??;
            if !status.success() {
                bail!("a worker exited with {status}");
            }
        }
        Ok(())
    }
}
