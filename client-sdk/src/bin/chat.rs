//! `parley-chat`: a small command-line client built on the Parley SDK.
//!
//! ```text
//! parley-chat --account alice --password secret123 --register send --to bob "hello"
//! parley-chat --account bob --password secret456 listen
//! parley-chat --account alice --password secret123 group create team --member 2 --member 3
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand, ValueEnum};
use parley_client::protocol::frames::{ContentType, ConversationInfo, Message, PeerRef, Platform};
use parley_client::protocol::ids::{Account, ConversationId, DeviceId, UserId};
use parley_client::protocol::ErrorCode;
use parley_client::{
    parse_fingerprint, Client, ClientConfig, Credentials, Event, Events, Transport, Trust,
};

/// Where the server keeps its dev certificate, relative to where it was started.
const DEFAULT_CERT: &str = "data/tls/cert.pem";
const DEFAULT_FINGERPRINT: &str = "data/tls/cert.sha256";

#[derive(Parser)]
#[command(
    name = "parley-chat",
    version,
    about = "Command-line client for Parley"
)]
struct Cli {
    /// Server address.
    #[arg(long, global = true, default_value = "127.0.0.1:7400")]
    addr: SocketAddr,
    /// Transport.
    #[arg(long, global = true, value_enum, default_value_t = TransportArg::Tls)]
    transport: TransportArg,
    /// Trust this certificate (PEM or DER). Default: ./data/tls/cert.pem if present.
    #[arg(long, global = true, conflicts_with = "fingerprint")]
    cert: Option<PathBuf>,
    /// Pin the server certificate by the SHA-256 of its DER (64 hex digits, colons allowed).
    #[arg(long, global = true)]
    fingerprint: Option<String>,
    /// Name the server certificate must be valid for.
    #[arg(long, global = true, default_value = "localhost")]
    server_name: String,
    /// Account name.
    #[arg(long, global = true, env = "PARLEY_ACCOUNT")]
    account: Option<String>,
    /// Password.
    #[arg(long, global = true, env = "PARLEY_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Device id of this client.
    #[arg(long, global = true, default_value = "cli")]
    device: String,
    /// Create the account first (logs in instead if it already exists).
    #[arg(long, global = true)]
    register: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum TransportArg {
    Tls,
    Quic,
    Tcp,
}

#[derive(Subcommand)]
enum Command {
    /// Send a text message and print its ack.
    Send {
        /// Recipient account (opens the 1:1 conversation).
        #[arg(
            long,
            conflicts_with = "conversation",
            required_unless_present = "conversation"
        )]
        to: Option<String>,
        /// Conversation id.
        #[arg(long)]
        conversation: Option<u64>,
        /// The text.
        text: String,
    },
    /// Print events (history first, then live) until Ctrl-C.
    Listen,
    /// Sync and print the conversations.
    Sync,
    /// Group management.
    Group {
        #[command(subcommand)]
        command: GroupCommand,
    },
}

#[derive(Subcommand)]
enum GroupCommand {
    /// Create a group owned by this account.
    Create {
        /// Group name.
        name: String,
        /// Member user id (repeatable).
        #[arg(long = "member")]
        members: Vec<u64>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let (client, events) = connect(&cli).await?;
    let result = match cli.command {
        Command::Listen => listen(events).await,
        Command::Sync => sync(&client, events).await,
        command => {
            // The connection task waits for room in the event channel: keep draining it.
            tokio::spawn(discard(events));
            once(&client, command).await
        }
    };
    client.close().await;
    result
}

async fn connect(cli: &Cli) -> anyhow::Result<(Client, Events)> {
    let account = cli.account.as_deref().context("--account is required")?;
    let account = Account::try_from(account).context("bad --account")?;
    let password = cli.password.clone().context("--password is required")?;
    let device = DeviceId::try_from(cli.device.as_str()).context("bad --device")?;
    let transport = match cli.transport {
        TransportArg::Tls => Transport::Tls,
        TransportArg::Quic => Transport::Quic,
        TransportArg::Tcp => Transport::PlainTcp,
    };
    let mut config = ClientConfig::new(cli.addr, transport, trust(cli, transport)?, device);
    config.server_name = cli.server_name.clone();
    config.device.platform = Platform::Cli;

    if cli.register {
        let credentials = Credentials::Register {
            account: account.clone(),
            password: password.clone(),
        };
        match Client::connect(config.clone(), credentials).await {
            Err(e) if e.server_code() == Some(ErrorCode::Conflict) => {
                eprintln!("account {account} exists; logging in");
            }
            other => return other.context("register failed"),
        }
    }
    let credentials = Credentials::Password { account, password };
    Client::connect(config, credentials)
        .await
        .context("login failed")
}

fn trust(cli: &Cli, transport: Transport) -> anyhow::Result<Trust> {
    if let Some(hex) = &cli.fingerprint {
        return Ok(Trust::Fingerprint(parse_fingerprint(hex)?));
    }
    if let Some(path) = &cli.cert {
        return Ok(Trust::CertFile(path.clone()));
    }
    if Path::new(DEFAULT_CERT).exists() {
        return Ok(Trust::CertFile(DEFAULT_CERT.into()));
    }
    if let Ok(hex) = std::fs::read_to_string(DEFAULT_FINGERPRINT) {
        return Ok(Trust::Fingerprint(parse_fingerprint(&hex)?));
    }
    if transport == Transport::PlainTcp {
        // Not consulted for plain TCP.
        return Ok(Trust::CertFile(DEFAULT_CERT.into()));
    }
    bail!("no server certificate to trust: pass --cert PATH or --fingerprint HEX (or run from the server's directory, which has {DEFAULT_CERT})")
}

async fn once(client: &Client, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Send {
            to,
            conversation,
            text,
        } => {
            let conversation = match (to, conversation) {
                (_, Some(id)) => ConversationId::try_from(id).context("bad --conversation")?,
                (Some(peer), None) => {
                    let peer = Account::try_from(peer).context("bad --to")?;
                    client.open_direct(PeerRef::Account(peer)).await?.id
                }
                (None, None) => bail!("pass --to ACCOUNT or --conversation ID"),
            };
            let ack = client
                .send(conversation, ContentType::Text, text.into())
                .await?;
            println!(
                "sent: conversation {} seq {} message {}{}",
                ack.conversation,
                ack.seq,
                ack.message_id,
                if ack.duplicate { " (duplicate)" } else { "" }
            );
        }
        Command::Group {
            command: GroupCommand::Create { name, members },
        } => {
            let members = members
                .into_iter()
                .map(UserId::try_from)
                .collect::<Result<Vec<_>, _>>()
                .context("bad --member")?;
            let group = client.create_group(&name, members).await?;
            println!("created {}", describe(&group));
        }
        Command::Listen | Command::Sync => unreachable!("handled by run"),
    }
    Ok(())
}

async fn listen(mut events: Events) -> anyhow::Result<()> {
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        match event {
            None | Some(Event::Closed) => {
                println!("closed");
                return Ok(());
            }
            Some(Event::Connected(login)) => println!(
                "connected as {} (user {}, session {})",
                login.account, login.user, login.session_id
            ),
            Some(Event::Message(m)) => println!("{}", render(&m)),
            Some(Event::Receipt(r)) => println!(
                "[{}] user {} {:?} up to #{}",
                r.conversation, r.user, r.kind, r.seq
            ),
            Some(Event::Typing { conversation, user }) => {
                println!("[{conversation}] user {user} is typing")
            }
            Some(Event::Membership(m)) => println!(
                "[{}] members changed by {}: +{:?} -{:?}",
                m.conversation.id, m.by, m.added, m.removed
            ),
            Some(Event::Profile(p)) => println!(
                "user {} ({}) updated their profile: {:?}",
                p.user.map_or(0, |u| u.get()),
                p.account,
                p.nickname
            ),
            Some(Event::Presence(p)) => {
                println!("user {} is {:?} {}", p.user, p.status, p.text)
            }
            Some(Event::Call(c)) => println!(
                "[{}] call {} from user {}: {:?}",
                c.conversation, c.call, c.from, c.action
            ),
            Some(Event::Disconnected { reason }) => println!("disconnected: {reason}"),
            Some(Event::Reset) => println!("server store was reset; history follows again"),
            Some(Event::ServerError(e)) => println!("server error: {e}"),
        }
    }
}

/// Prints the history the client syncs after login (and any explicit sync), then the
/// conversations.
async fn sync(client: &Client, mut events: Events) -> anyhow::Result<()> {
    let printer = tokio::spawn(async move {
        while let Some(event) = events.next().await {
            match event {
                Event::Message(m) => println!("{}", render(&m)),
                Event::ServerError(e) => eprintln!("server error: {e}"),
                _ => {}
            }
        }
    });
    let summary = client.sync().await?;
    // Closing ends the event stream once everything before it has been printed.
    client.close().await;
    printer.await?;
    println!(
        "{} conversations (epoch {})",
        summary.conversations.len(),
        summary.epoch
    );
    for c in &summary.conversations {
        println!("  {}", describe(c));
    }
    Ok(())
}

async fn discard(mut events: Events) {
    while let Some(event) = events.next().await {
        if let Event::ServerError(e) = event {
            eprintln!("server error: {e}");
        }
    }
}

fn render(m: &Message) -> String {
    let body = match (&m.event, m.content_type) {
        (Some(event), _) => format!("<{event}>"),
        (None, ContentType::Text) => String::from_utf8_lossy(&m.content).into_owned(),
        (None, other) => format!("<{other:?}, {} bytes>", m.content.len()),
    };
    format!(
        "[{} #{}] user {} ({}): {body}",
        m.conversation, m.seq, m.sender, m.sender_device
    )
}

fn describe(c: &ConversationInfo) -> String {
    let name = if c.name.is_empty() { "-" } else { &c.name };
    format!(
        "conversation {} {:?} {name:?}: head #{}, read #{}, {} unread, members {:?}",
        c.id, c.kind, c.head, c.read, c.unread, c.members
    )
}
