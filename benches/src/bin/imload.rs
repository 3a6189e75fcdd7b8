//! `imload`: the Parley load generator. See docs/BENCHMARKS.md for the commands behind every
//! published figure.
//!
//! ```text
//! cargo run --release -p parley-benches --bin imload -- chat --spawn-server --transport tcp
//! ```

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use parley_benches::scenario::{
    catchup, chat, convlist, download, fanout, floor, grow, idle, probe, search, storm, Common,
};
use parley_benches::stats::print_human;

/// Load generator for the Parley server (loopback only).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// P sender/receiver pairs in 1:1 conversations: msgs/s, latency, integrity.
    Chat(chat::ChatArgs),
    /// N idle logged-in connections: RSS per connection, connects/s, token logins/s.
    Idle(idle::IdleArgs),
    /// One group of G online members, S senders: deliveries/s and latency.
    Fanout(fanout::FanoutArgs),
    /// `fanout` with a 10,000-member group (the server's default limit) and 10 senders.
    #[command(
        mut_arg("members", |a| a.default_value("10000")),
        mut_arg("senders", |a| a.default_value("10"))
    )]
    Biggroup(fanout::FanoutArgs),
    /// N clients drop and reconnect at once: time until all are logged in and synced.
    Storm(storm::StormArgs),
    /// A user offline for K messages: time to sync them all.
    Catchup(catchup::CatchupArgs),
    /// The server filled to each of `--at` stored messages: disk per message, RSS, and the
    /// time from kill -9 to listening and to the first sync answered.
    Grow(grow::GrowArgs),
    /// One user in C conversations: latency and size of `ListConversations`.
    Convlist(convlist::ConvlistArgs),
    /// One user's N messages in C conversations: index catch-up and `SearchMessages` latency.
    Search(search::SearchArgs),
    /// Latency of append + fdatasync on a directory's disk (the floor under every commit).
    FsyncProbe(probe::ProbeArgs),
    /// The floor of a durable relay on this machine: `chat`'s shape at a fixed rate against a
    /// minimal one-thread server that acks and forwards only after one `fdatasync` per batch.
    Floor(floor::FloorArgs),
    /// The floor server itself (started by `floor`).
    #[command(hide = true)]
    FloorServer(floor::FloorServerArgs),
    /// One file fetched over plain HTTP by a client that is not the bottleneck: MB/s.
    Download(download::DownloadArgs),
}

impl Scenario {
    /// The options every scenario but `fsync-probe` takes.
    fn common(&self) -> Option<&Common> {
        match self {
            Scenario::Chat(a) => Some(&a.common),
            Scenario::Idle(a) => Some(&a.common),
            Scenario::Fanout(a) | Scenario::Biggroup(a) => Some(&a.common),
            Scenario::Storm(a) => Some(&a.common),
            Scenario::Catchup(a) => Some(&a.common),
            Scenario::Grow(a) => Some(&a.common),
            Scenario::Convlist(a) => Some(&a.common),
            Scenario::Search(a) => Some(&a.common),
            Scenario::FsyncProbe(_)
            | Scenario::Download(_)
            | Scenario::Floor(_)
            | Scenario::FloorServer(_) => None,
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<Option<(serde_json::Value, bool)>> {
    let server_config = cli
        .scenario
        .common()
        .filter(|c| c.spawn_server)
        .and_then(|c| c.server_config.clone());
    let mut out = match cli.scenario {
        Scenario::Chat(a) => {
            let json = a.common.json;
            Some((chat::run(a).await?, json))
        }
        Scenario::Idle(a) if a.workers.worker_index.is_some() => {
            idle::run_child(a).await?;
            None
        }
        Scenario::Idle(a) => {
            let json = a.common.json;
            Some((idle::run(a).await?, json))
        }
        Scenario::Fanout(a) => {
            let json = a.common.json;
            Some((fanout::run(a).await?, json))
        }
        Scenario::Biggroup(a) => {
            let json = a.common.json;
            Some((fanout::run_named("biggroup", a).await?, json))
        }
        Scenario::Storm(a) if a.workers.worker_index.is_some() => {
            storm::run_child(a).await?;
            None
        }
        Scenario::Storm(a) => {
            let json = a.common.json;
            Some((storm::run(a).await?, json))
        }
        Scenario::Catchup(a) => {
            let json = a.common.json;
            Some((catchup::run(a).await?, json))
        }
        Scenario::Grow(a) => {
            let json = a.common.json;
            Some((grow::run(a).await?, json))
        }
        Scenario::Convlist(a) => {
            let json = a.common.json;
            Some((convlist::run(a).await?, json))
        }
        Scenario::Search(a) => {
            let json = a.common.json;
            Some((search::run(a).await?, json))
        }
        Scenario::FsyncProbe(a) => {
            let json = a.json;
            Some((probe::run(a).await?, json))
        }
        Scenario::Floor(a) => {
            let json = a.json;
            Some((floor::run(a).await?, json))
        }
        Scenario::FloorServer(a) => {
            tokio::task::spawn_blocking(move || floor::serve(a)).await??;
            None
        }
        Scenario::Download(a) => {
            let json = a.json;
            Some((download::run(a).await?, json))
        }
    };
    // Which configuration the spawned server ran with, in every report (unless the scenario
    // recorded it itself).
    if let (Some(path), Some((report, _))) = (server_config, &mut out) {
        if let Some(config) = report
            .get_mut("config")
            .and_then(serde_json::Value::as_object_mut)
        {
            config.entry("server_config").or_insert_with(|| {
                serde_json::json!({
                    "file": path.display().to_string(),
                    "text": std::fs::read_to_string(&path).ok(),
                })
            });
        }
    }
    Ok(out)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("imload: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some((report, json))) => {
            if json {
                println!("{report}");
            } else {
                print_human(&report);
            }
            if report["ok"].as_bool() == Some(true) {
                ExitCode::SUCCESS
            } else {
                eprintln!("imload: the run reported problems (lost, duplicated or failed)");
                ExitCode::from(3)
            }
        }
        Err(e) => {
            eprintln!("imload: {e:#}");
            ExitCode::from(1)
        }
    }
}
