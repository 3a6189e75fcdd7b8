//! `parley`: the server binary. Runs on embedded defaults with no arguments.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use parley_server::{logging, Config, Server};
use tokio_util::sync::CancellationToken;

/// jemalloc instead of the system allocator: sled allocates and frees a node copy on almost
/// every write, and glibc's malloc took a third of the committer's time (1:1 saturation rose
/// from ~62k to ~76k msgs/s); jemalloc also hands freed memory (argon2's 19 MiB per hash) back
/// to the system. mimalloc was as fast but kept ~50 MB more resident and more per idle
/// connection (docs/BENCHMARKS.md). Its background thread returns freed pages to the system
/// after ~10 s even when the server is idle (otherwise purging waits for allocations): memory
/// a sleeping session gave up leaves the resident set too.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Parley instant-messaging server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TOML configuration file (every key optional; see --print-default-config).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Data directory (overrides the file).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// TLS-over-TCP address (overrides the file).
    #[arg(long)]
    tls: Option<SocketAddr>,
    /// QUIC address (overrides the file).
    #[arg(long)]
    quic: Option<SocketAddr>,
    /// Also serve unencrypted TCP on this address (benchmarking only).
    #[arg(long)]
    plain_tcp: Option<SocketAddr>,
    /// HTTP side-service address (overrides the file).
    #[arg(long)]
    http: Option<SocketAddr>,
    /// Print the default configuration as TOML and exit.
    #[arg(long)]
    print_default_config: bool,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    check_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Commands other than serving.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Verify a data directory offline (the server must not be running on it) and print what
    /// was found: exit 0 if it is sound, 1 if it is damaged or could not be checked (the
    /// report says which).
    Check {
        /// Data directory to check (default: the one the configuration names).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

fn load(args: &Args) -> anyhow::Result<Config> {
    let mut cfg = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(d) = &args.data_dir {
        cfg.data_dir = d.clone();
    }
    if let Some(a) = args.tls {
        cfg.listen.tls = vec![a];
    }
    if let Some(a) = args.quic {
        cfg.listen.quic = vec![a];
    }
    if let Some(a) = args.plain_tcp {
        cfg.listen.tcp = vec![a];
    }
    if let Some(a) = args.http {
        cfg.listen.http = vec![a];
    }
    cfg.validate()?;
    Ok(cfg)
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Nothing here writes with `print!`/`eprintln!`: they panic when the write fails (a full
    // disk under the log, `2>/dev/full`); logging drops and counts what it cannot write.
    if args.print_default_config {
        return printed(&Config::default_toml());
    }
    logging::init("info,quinn=warn,sled=warn");
    let cfg = match load(&args) {
        Ok(c) => c,
        Err(e) => {
            // Our error types already carry their causes in their messages.
            logging::last_words(&e.to_string());
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        return printed(&toml::to_string_pretty(&cfg).unwrap_or_default());
    }
    if let Some(Command::Check { data_dir }) = &args.command {
        return check(data_dir.as_ref().unwrap_or(&cfg.data_dir));
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            logging::last_words(&format!("cannot start the runtime: {e}"));
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "parley stopped on an error");
            logging::last_words(&e.to_string());
            ExitCode::from(1)
        }
    }
}

/// `parley check`: verifies the data directory `dir` and prints the report.
fn check(dir: &std::path::Path) -> ExitCode {
    let report = parley_server::store::check(dir);
    let mut text = format!("parley check {}\n", dir.display());
    for line in &report.verified {
        text.push_str(&format!("ok: {line}\n"));
    }
    for line in &report.notes {
        text.push_str(&format!("note: {line}\n"));
    }
    for line in &report.damage {
        text.push_str(&format!("DAMAGED: {line}\n"));
    }
    let sound = report.damage.is_empty();
    text.push_str(if sound {
        "result: the data directory is sound\n"
    } else {
        "result: the data directory is damaged; the server refuses to start on it\n"
    });
    match (logging::say(&text), sound) {
        (true, true) => ExitCode::SUCCESS,
        (true, false) => ExitCode::from(1),
        (false, _) => ExitCode::from(2),
    }
}

/// Prints `text` for a command that only prints; failure to write it is failure.
fn printed(text: &str) -> ExitCode {
    match logging::say(text) {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(1),
    }
}

async fn run(cfg: Config) -> anyhow::Result<()> {
    let data_dir = cfg.data_dir.clone();
    let server = Server::bind(cfg).await?;
    // Handled from before the ready line: a SIGTERM right after it drains like any other
    // (registered later, in the task below, it could find the default action: death).
    let signalled = shutdown_signal();
    let a = server.addrs();
    tracing::info!(
        data_dir = %data_dir.display(),
        tls = ?a.tls, quic = ?a.quic, tcp = ?a.tcp, http = ?a.http,
        "parley listening"
    );
    tracing::info!(
        cert = %server.cert_path().display(),
        sha256 = server.fingerprint(),
        "certificate (trust it by file or fingerprint)"
    );
    // Machine-readable line for scripts and tests that start the binary on port 0 (if stdout
    // cannot take it, nobody is reading it: the server runs on).
    logging::say(&format!(
        "PARLEY_READY pid={} tls={} quic={} tcp={} http={}{}\n",
        std::process::id(),
        list(&a.tls),
        list(&a.quic),
        list(&a.tcp),
        list(&a.http),
        a.dialect_roots
            .iter()
            .map(|(name, addr)| format!(" compat_{name}={addr}"))
            .collect::<String>()
    ));
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        signalled.await;
        trigger.cancel();
    });
    server.run(shutdown).await?;
    Ok(())
}

fn list(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Resolves at SIGTERM or SIGINT; both are registered when this is called, not when the
/// future is first polled.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let registered = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        );
        async move {
            match registered {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
