//! `parley-chat`: a small command-line client built on the Parley SDK.
//!
//! ```text
//! parley-chat --account alice --password secret123 --register send --to bob "hello"
//! parley-chat --account bob --password secret456 listen
//! parley-chat --account alice --password secret123 group create team --member 2 --member 3
//! parley-chat --account alice --password secret123 friend add bob --message "hi, it's alice"
//! parley-chat --account alice --password secret123 history --conversation 7 --limit 20
//! parley-chat --account alice --password secret123 search "lunch"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand, ValueEnum};
use parley_client::protocol::frames::{ContentType, ConversationInfo, Message, PeerRef, Platform};
use parley_client::protocol::ids::{Account, ConversationId, DeviceId, Seq, UserId};
use parley_client::protocol::ErrorCode;
use parley_client::{
    parse_fingerprint, Client, ClientConfig, Credentials, Event, Events, Page, Transport, Trust,
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
    /// Friends and blocks.
    Friend {
        #[command(subcommand)]
        command: FriendCommand,
    },
    /// The conversation list: pinned first, then latest activity, with unread counts.
    Conversations {
        /// How many (0: all).
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// A conversation's history as it reads now, newest first.
    History {
        /// Conversation id.
        #[arg(long)]
        conversation: u64,
        /// Older than this seq (default: from the newest).
        #[arg(long)]
        before: Option<u64>,
        /// Page size.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Full-text search over this account's messages, newest first.
    Search {
        /// Words to find (all must occur).
        query: String,
        /// Only this conversation.
        #[arg(long)]
        conversation: Option<u64>,
        /// Page size.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Find users by account or nickname.
    Users {
        /// Part of an account name or nickname.
        query: String,
    },
}

#[derive(Subcommand)]
enum FriendCommand {
    /// List friends.
    List,
    /// Ask an account to be friends.
    Add {
        /// Account name.
        account: String,
        /// Shown with the request.
        #[arg(long, default_value = "")]
        message: String,
    },
    /// Pending requests (to you; --outgoing: from you).
    Requests {
        #[arg(long)]
        outgoing: bool,
    },
    /// Accept a request from an account.
    Accept {
        /// Account name.
        account: String,
    },
    /// Decline a request from an account.
    Decline {
        /// Account name.
        account: String,
    },
    /// End a friendship.
    Remove {
        /// Account name.
        account: String,
    },
    /// Block an account.
    Block {
        /// Account name.
        account: String,
    },
    /// Unblock an account.
    Unblock {
        /// Account name.
        account: String,
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
    /// Show a group's profile.
    Show {
        /// Conversation id.
        conversation: u64,
    },
    /// Add members.
    Add {
        /// Conversation id.
        conversation: u64,
        /// Account name (repeatable).
        #[arg(long = "member", required = true)]
        members: Vec<String>,
    },
    /// Remove members (or yourself: leave).
    Remove {
        /// Conversation id.
        conversation: u64,
        /// Account name (repeatable).
        #[arg(long = "member", required = true)]
        members: Vec<String>,
    },
    /// List members with roles.
    Members {
        /// Conversation id.
        conversation: u64,
    },
    /// Join a public group.
    Join {
        /// Conversation id.
        conversation: u64,
        /// Shown to the managers if the group needs approval.
        #[arg(long, default_value = "")]
        message: String,
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
        Command::Group { command } => group(client, command).await?,
        Command::Friend { command } => friend(client, command).await?,
        Command::Conversations { limit } => {
            let page = client.conversation_page(limit, 0).await?;
            println!("{} conversations, {} unread", page.total, page.total_unread);
            for c in &page.conversations {
                let last = c.last_message.as_deref().map(render).unwrap_or_default();
                let flags = match (c.pinned, c.muted) {
                    (true, true) => " [pinned, muted]",
                    (true, false) => " [pinned]",
                    (false, true) => " [muted]",
                    _ => "",
                };
                println!("  {}{flags}\n    {last}", describe(c));
            }
        }
        Command::History {
            conversation,
            before,
            limit,
        } => {
            let conv = ConversationId::try_from(conversation).context("bad --conversation")?;
            let page = match before {
                Some(b) => Page::Before(Seq(b)),
                None => Page::Latest,
            };
            let page = client.history(conv, page, limit).await?;
            for m in &page.messages {
                println!("{}", render(m));
            }
            if page.has_more {
                let oldest = page.messages.last().map_or(0, |m| m.seq.get());
                println!("(more: --before {oldest})");
            }
        }
        Command::Search {
            query,
            conversation,
            limit,
        } => {
            let conv = conversation
                .map(ConversationId::try_from)
                .transpose()
                .context("bad --conversation")?;
            let page = client.search_messages(&query, conv, 0, limit).await?;
            for m in &page.messages {
                println!("{}", render(m));
            }
            if page.messages.is_empty() {
                println!("nothing found");
            }
        }
        Command::Users { query } => {
            let page = client.search_users(&query, 0, 50).await?;
            for p in &page.users {
                let id = p.user.map_or(0, UserId::get);
                println!("user {id} {} {:?}", p.account, p.nickname);
            }
        }
        Command::Listen | Command::Sync => unreachable!("handled by run"),
    }
    Ok(())
}

/// A user id by account name.
async fn user_of(client: &Client, account: &str) -> anyhow::Result<UserId> {
    let account = Account::try_from(account).context("bad account name")?;
    let page = client.search_users(account.as_str(), 0, 100).await?;
    page.users
        .iter()
        .find(|p| p.account == account.as_str())
        .and_then(|p| p.user)
        .with_context(|| format!("no searchable user {account}"))
}

async fn group(client: &Client, command: GroupCommand) -> anyhow::Result<()> {
    let conv = |id: u64| ConversationId::try_from(id).context("bad conversation id");
    match command {
        GroupCommand::Create { name, members } => {
            let members = members
                .into_iter()
                .map(UserId::try_from)
                .collect::<Result<Vec<_>, _>>()
                .context("bad --member")?;
            let group = client.create_group(&name, members).await?;
            println!("created {}", describe(&group));
        }
        GroupCommand::Show { conversation } => {
            let g = client.get_group(conv(conversation)?).await?;
            let p = &g.profile;
            println!(
                "group {} {:?}: {} members, owner {:?}, {:?}, public {}\n  {}",
                g.conversation,
                p.name,
                g.member_count,
                g.owner.map(UserId::get),
                p.join_policy,
                p.public,
                p.announcement
            );
        }
        GroupCommand::Add {
            conversation,
            members,
        } => {
            let mut ids = Vec::new();
            for m in &members {
                ids.push(user_of(client, m).await?);
            }
            client
                .change_members(conv(conversation)?, ids, vec![])
                .await?;
            println!("added {}", members.join(", "));
        }
        GroupCommand::Remove {
            conversation,
            members,
        } => {
            let mut ids = Vec::new();
            for m in &members {
                ids.push(user_of(client, m).await?);
            }
            client
                .change_members(conv(conversation)?, vec![], ids)
                .await?;
            println!("removed {}", members.join(", "));
        }
        GroupCommand::Members { conversation } => {
            let mut after = 0;
            loop {
                let page = client.list_members(conv(conversation)?, after, 500).await?;
                for m in &page.members {
                    println!(
                        "user {} {:?} {:?}{}",
                        m.user,
                        m.role,
                        m.nickname,
                        if m.muted_until_ms > 0 { " (muted)" } else { "" }
                    );
                }
                match page.members.last() {
                    Some(last) if page.has_more => after = last.user.get(),
                    _ => break,
                }
            }
        }
        GroupCommand::Join {
            conversation,
            message,
        } => {
            let pending = client.join_group(conv(conversation)?, &message).await?;
            println!("{}", if pending { "request sent" } else { "joined" });
        }
    }
    Ok(())
}

async fn friend(client: &Client, command: FriendCommand) -> anyhow::Result<()> {
    match command {
        FriendCommand::List => {
            for f in client.friends().await? {
                let id = f.profile.user.map_or(0, UserId::get);
                println!("user {id} {} remark {:?}", f.profile.account, f.remark);
            }
        }
        FriendCommand::Add { account, message } => {
            let user = user_of(client, &account).await?;
            let pending = client.add_friend(user, &message, "").await?;
            println!(
                "{}",
                if pending {
                    "request sent"
                } else {
                    "now friends"
                }
            );
        }
        FriendCommand::Requests { outgoing } => {
            for r in client.friend_requests(outgoing).await? {
                println!("{} {:?}", r.profile.account, r.message);
            }
        }
        FriendCommand::Accept { account } => {
            let user = requester(client, &account).await?;
            client.answer_friend_request(user, true, "").await?;
            println!("now friends with {account}");
        }
        FriendCommand::Decline { account } => {
            let user = requester(client, &account).await?;
            client.answer_friend_request(user, false, "").await?;
            println!("declined {account}");
        }
        FriendCommand::Remove { account } => {
            let user = friend_of(client, &account).await?;
            client.remove_friend(user).await?;
            println!("removed {account}");
        }
        FriendCommand::Block { account } => {
            client
                .set_blocked(user_of(client, &account).await?, true)
                .await?;
            println!("blocked {account}");
        }
        FriendCommand::Unblock { account } => {
            let blocked = client.blocked().await?;
            let user = blocked
                .iter()
                .find(|p| p.account == account)
                .and_then(|p| p.user)
                .with_context(|| format!("{account} is not blocked"))?;
            client.set_blocked(user, false).await?;
            println!("unblocked {account}");
        }
    }
    Ok(())
}

/// Who sent this account a pending request (requesters may not be searchable).
async fn requester(client: &Client, account: &str) -> anyhow::Result<UserId> {
    client
        .friend_requests(false)
        .await?
        .iter()
        .find(|r| r.profile.account == account)
        .and_then(|r| r.profile.user)
        .with_context(|| format!("no pending request from {account}"))
}

async fn friend_of(client: &Client, account: &str) -> anyhow::Result<UserId> {
    client
        .friends()
        .await?
        .iter()
        .find(|f| f.profile.account == account)
        .and_then(|f| f.profile.user)
        .with_context(|| format!("{account} is not a friend"))
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
