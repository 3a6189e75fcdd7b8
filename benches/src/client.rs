//! Protocol steps the scenarios share: accounts, logins, conversations, sync.

use std::sync::OnceLock;

use anyhow::{anyhow, bail};
use bytes::{BufMut, Bytes, BytesMut};
use parley_protocol::frames::{
    AddPolicy, ContentType, Credential, Device, LoginResult, PeerRef, Platform, Request, Response,
    SendRequest, SettingsChange, SyncRequest,
};
use parley_protocol::ids::{Account, ClientMsgId, ConversationId, DeviceId, Seq, UserId};
use parley_protocol::values::{GroupName, NewPassword, Password};
use tokio::time::Instant;

use crate::conn::{Conn, Connector};

/// Password of every generated account (at least 8 bytes, as the server demands).
pub const PASSWORD: &str = "imload-password";

/// An account the generator registered, with what it needs to log in again cheaply.
#[derive(Clone, Debug)]
pub struct Identity {
    /// Login name.
    pub account: String,
    /// The user.
    pub user: UserId,
    /// The device the tokens belong to.
    pub device: Device,
    /// Access token for token logins.
    pub access_token: String,
    /// Store epoch from the login.
    pub epoch: u64,
    /// The per-connection request rate the server announced (0 = unlimited).
    pub max_requests_per_second: u32,
}

/// The device every generated client uses (one per account).
pub fn device(name: &str) -> anyhow::Result<Device> {
    Ok(Device {
        id: DeviceId::try_from(name)?,
        platform: Platform::Cli,
    })
}

/// A unique account name for client `i` of worker `worker` in run `run`.
pub fn account_name(run: u32, worker: usize, i: usize) -> String {
    format!("ld{run:08x}w{worker}n{i}")
}

fn login_result(r: Response) -> anyhow::Result<LoginResult> {
    match r {
        Response::Login(l) => Ok(l),
        other => Err(anyhow!("expected LoginResult, got {other:?}")),
    }
}

/// Registers `account` on a fresh connection and returns the logged-in connection.
pub async fn register(connector: &Connector, account: &str) -> anyhow::Result<(Conn, Identity)> {
    let _turn = connector.hashing_turn().await;
    let mut conn = connector.connect().await?;
    let device = device("imload")?;
    let r = conn
        .call_hashing(Request::Register {
            account: Account::try_from(account)?,
            password: NewPassword::try_from(PASSWORD)?,
            device: device.clone(),
        })
        .await?;
    let l = login_result(r)?;
    // The generator's users let anyone put them into groups (the group scenarios create
    // groups of strangers; with the server's default rule strangers would be invited instead
    // of added).
    let set = conn
        .call(Request::UpdateSettings(SettingsChange {
            add_policy: Some(AddPolicy::Anyone),
            ..SettingsChange::default()
        }))
        .await?;
    if let Response::Error(e) = set {
        bail!("UpdateSettings: {e:?}");
    }
    let id = Identity {
        account: account.to_owned(),
        user: l.user,
        device,
        access_token: l.access_token,
        epoch: l.epoch,
        max_requests_per_second: l.limits.max_requests_per_second,
    };
    Ok((conn, id))
}

/// Logs in with the access token on an open connection.
pub async fn token_login(conn: &mut Conn, id: &Identity) -> anyhow::Result<LoginResult> {
    let r = conn
        .call(Request::Login {
            credential: Credential::AccessToken(id.access_token.clone()),
            device: id.device.clone(),
        })
        .await?;
    login_result(r)
}

/// Logs in with the account's password as another device (`device`): one password hash on the
/// server. Gives one user several connections whose requests the server handles in parallel
/// (each device has one session; a second login of the same device replaces the first).
pub async fn password_login(
    conn: &mut Conn,
    id: &Identity,
    device: &str,
) -> anyhow::Result<LoginResult> {
    let r = conn
        .call_hashing(Request::Login {
            credential: Credential::Password {
                account: Account::try_from(id.account.as_str())?,
                password: Password::try_from(PASSWORD)?,
            },
            device: self::device(device)?,
        })
        .await?;
    login_result(r)
}

/// The 1:1 conversation with `peer`.
pub async fn open_direct(conn: &mut Conn, peer: UserId) -> anyhow::Result<ConversationId> {
    match conn.call(Request::OpenDirect(PeerRef::User(peer))).await? {
        Response::Conversation(c) => Ok(c.id),
        other => Err(anyhow!("expected ConversationInfo, got {other:?}")),
    }
}

/// Creates a group with `members` (the caller is the owner).
pub async fn create_group(
    conn: &mut Conn,
    name: &str,
    members: Vec<UserId>,
) -> anyhow::Result<ConversationId> {
    Ok(create_group_at(conn, name, members).await?.0)
}

/// [`create_group`], also returning the group's head when created: the entries the server
/// wrote into it (its `Created` event), which come before anything sent to it.
pub async fn create_group_at(
    conn: &mut Conn,
    name: &str,
    members: Vec<UserId>,
) -> anyhow::Result<(ConversationId, u64)> {
    let r = conn
        .call(Request::CreateGroup {
            name: GroupName::try_from(name)?,
            members,
        })
        .await?;
    match r {
        Response::Conversation(c) => Ok((c.id, c.head.get())),
        other => Err(anyhow!("expected ConversationInfo, got {other:?}")),
    }
}

/// What a full sync returned.
#[derive(Clone, Debug, Default)]
pub struct Synced {
    /// Pages (requests) it took.
    pub pages: u64,
    /// Messages received, per conversation: (conversation, seqs in order received).
    pub messages: Vec<(ConversationId, Seq)>,
}

/// Runs the sync loop from `positions` until `has_more` is false (bounded by `max_pages`).
pub async fn sync_all(
    conn: &mut Conn,
    epoch: u64,
    mut positions: Vec<(ConversationId, Seq)>,
    limit: u32,
    max_pages: u64,
) -> anyhow::Result<Synced> {
    let mut out = Synced::default();
    let mut epoch = epoch;
    let mut from = None;
    loop {
        if out.pages >= max_pages {
            bail!("sync did not finish within {max_pages} pages");
        }
        let r = conn
            .call(Request::Sync(SyncRequest {
                epoch,
                positions: positions.clone(),
                limit,
                from_conversation: from,
            }))
            .await?;
        let Response::Sync(page) = r else {
            bail!("expected SyncResponse, got {r:?}");
        };
        out.pages += 1;
        epoch = page.epoch;
        from = ConversationId::try_from(page.next_conversation_id).ok();
        for m in &page.messages {
            out.messages.push((m.conversation, m.seq));
            match positions.iter_mut().find(|(c, _)| *c == m.conversation) {
                Some((_, s)) => *s = (*s).max(m.seq),
                None => positions.push((m.conversation, m.seq)),
            }
        }
        if !page.has_more {
            return Ok(out);
        }
    }
}

fn clock_origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Nanoseconds since the process's clock origin (monotonic; comparable within one process).
pub fn now_ns() -> u64 {
    clock_origin().elapsed().as_nanos() as u64
}

/// Nanoseconds from the clock origin to `t` (0 if `t` is earlier).
pub fn ns_of(t: Instant) -> u64 {
    t.saturating_duration_since(clock_origin()).as_nanos() as u64
}

/// Message content of `size` bytes (at least 8) that starts with the send time.
pub fn stamped_payload(sent_ns: u64, size: usize) -> Bytes {
    let mut b = BytesMut::with_capacity(size.max(8));
    b.put_u64_le(sent_ns);
    b.resize(size.max(8), b'x');
    b.freeze()
}

/// The send time stamped into `content`, if it is long enough.
pub fn stamp_of(content: &[u8]) -> Option<u64> {
    let arr: [u8; 8] = content.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(arr))
}

/// A send request with a stamped payload.
pub fn send_request(
    conv: ConversationId,
    client_msg_id: &str,
    sent_ns: u64,
    payload: usize,
) -> anyhow::Result<Request> {
    Ok(Request::Send(SendRequest {
        conversation: conv,
        content_type: ContentType::Custom,
        content: stamped_payload(sent_ns, payload),
        client_msg_id: ClientMsgId::try_from(client_msg_id)?,
        reply_to: Seq::ZERO,
        mentions: vec![],
        mention_all: false,
    }))
}
