//! The public handle.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parley_protocol::frames::{
    ContentType, ConversationInfo, ConversationPrefs, CursorKind, LoginResult, PeerRef, Request,
    Response, SendAck, SendRequest,
};
use parley_protocol::ids::{ClientMsgId, ConversationId, Seq, UserId};
use parley_protocol::values::GroupName;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::auth::Tokens;
use crate::config::{ClientConfig, Credentials, Resume};
use crate::driver::Driver;
use crate::error::ClientError;
use crate::events::Events;
use crate::link::Link;
use crate::state::{Command, Emitter, State};
use crate::sync::SyncSummary;
use crate::transport::Connector;

/// Commands queued towards the connection task before callers wait.
const COMMAND_CAPACITY: usize = 256;

/// A connected client. Cheap to clone; every clone drives the same connection. The connection
/// task ends when [`Client::close`] is called, on logout, or when every clone is dropped.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    commands: mpsc::Sender<Command>,
    login: watch::Receiver<LoginResult>,
    shutdown: CancellationToken,
    request_timeout: Duration,
    /// The QUIC endpoint (for [`Client::rebind`]); `None` on TCP and TLS.
    quic: Option<quinn::Endpoint>,
}

impl Client {
    /// Connects and logs in, then hands the connection to a background task that keeps it
    /// alive (heartbeat, reconnects) and returns a handle and the event stream.
    ///
    /// Fails fast: if this first connection or login fails, the error is returned and nothing
    /// is retried. The first events are [`Event::Connected`](crate::Event) and then what the
    /// initial sync brings (everything after `config.resume`).
    pub async fn connect(
        config: ClientConfig,
        credentials: Credentials,
    ) -> Result<(Client, Events), ClientError> {
        config.validate()?;
        let request = credentials.request(config.device.clone())?;
        let connector = Connector::new(&config)?;
        let quic = connector.quic_endpoint();
        let stream = connector.connect().await?;
        let mut link = Link::new(stream, config.request_timeout);
        let login = match link.login(request, config.request_timeout).await {
            Ok(login) => login,
            Err(e) => {
                link.close(Duration::from_secs(1)).await;
                return Err(e);
            }
        };
        drop(credentials); // the password is not kept: reconnects use tokens

        let span = tracing::info_span!(
            "parley_client",
            user = %login.user,
            device = %config.device.id,
            transport = ?config.transport,
            addr = %config.addr,
        );
        let (events_tx, events_rx) = mpsc::channel(config.event_capacity);
        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_CAPACITY);
        let (login_tx, login_rx) = watch::channel(login.clone());
        let shutdown = CancellationToken::new();
        let request_timeout = config.request_timeout;
        let emitter = Emitter {
            tx: events_tx,
            shutdown: shutdown.clone(),
        };
        let state = State::new(Arc::new(config), emitter, login_tx, &login);
        let driver = Driver {
            state,
            connector,
            tokens: Tokens::from_login(&login),
            commands: commands_rx,
        };
        tokio::spawn(driver.run(link, login).instrument(span));
        let client = Client {
            inner: Arc::new(Inner {
                commands: commands_tx,
                login: login_rx,
                shutdown,
                request_timeout,
                quic,
            }),
        };
        Ok((client, Events::new(events_rx)))
    }

    /// The result of the latest successful login (refreshed after each reconnect).
    pub fn login_result(&self) -> LoginResult {
        self.inner.login.borrow().clone()
    }

    /// The logged-in user.
    pub fn user_id(&self) -> UserId {
        self.inner.login.borrow().user
    }

    /// Sends a text or other message with a fresh random `client_msg_id`; see
    /// [`Client::send_request`].
    pub async fn send(
        &self,
        conversation: ConversationId,
        content_type: ContentType,
        content: Bytes,
    ) -> Result<SendAck, ClientError> {
        self.send_request(SendRequest {
            conversation,
            content_type,
            content,
            client_msg_id: new_client_msg_id(),
            reply_to: Seq::ZERO,
            mentions: Vec::new(),
            mention_all: false,
        })
        .await
    }

    /// Sends a message and resolves when the server has stored it durably.
    ///
    /// The send survives reconnects: until acknowledged it is re-sent on each new connection
    /// with the same `client_msg_id` (the server answers a repeat with the original ack), so this
    /// has no timeout of its own. It fails if the server rejects the message, or the client
    /// stops (closed, reconnect disabled or given up). Dropping the future does not cancel the
    /// send. The message is not repeated as an [`Event::Message`](crate::Event).
    pub async fn send_request(&self, request: SendRequest) -> Result<SendAck, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::Send { request, reply }).await?;
        rx.await.map_err(|_| ClientError::Closed)?
    }

    /// Opens (creating on first use) the 1:1 conversation with a peer.
    pub async fn open_direct(&self, peer: PeerRef) -> Result<ConversationInfo, ClientError> {
        expect_conversation(self.call(Request::OpenDirect(peer)).await?)
    }

    /// Creates a group owned by this user (the name is checked here, before anything is sent).
    pub async fn create_group(
        &self,
        name: &str,
        members: Vec<UserId>,
    ) -> Result<ConversationInfo, ClientError> {
        let name = GroupName::try_from(name)?;
        let request = Request::CreateGroup { name, members };
        expect_conversation(self.call(request).await?)
    }

    /// Adds and removes group members. The change is an entry in the group's log: every member
    /// (and everyone removed) gets it as a message whose `event` says what changed. Resolves once
    /// it is durable. The request carries a fresh idempotency key.
    pub async fn change_members(
        &self,
        conversation: ConversationId,
        add: Vec<UserId>,
        remove: Vec<UserId>,
    ) -> Result<(), ClientError> {
        let request = Request::ChangeMembers {
            conversation,
            add,
            remove,
            request_key: Some(new_client_msg_id()),
        };
        expect_ok(self.call(request).await?)
    }

    /// This user's conversations: pinned first, then newest activity first, with cursors,
    /// unread counts and last entries (hidden ones left out).
    pub async fn list_conversations(&self) -> Result<Vec<ConversationInfo>, ClientError> {
        Ok(self.conversation_page(0, 0).await?.conversations)
    }

    /// One page of [`Client::list_conversations`] (`limit` 0: all), with the badge count.
    pub async fn conversation_page(
        &self,
        limit: u32,
        offset: u32,
    ) -> Result<ConversationPage, ClientError> {
        match self
            .call(Request::ListConversations { limit, offset })
            .await?
        {
            Response::ConversationList {
                conversations,
                total_unread,
                total,
            } => Ok(ConversationPage {
                conversations,
                total_unread,
                total,
            }),
            other => Err(unexpected(other)),
        }
    }

    /// Pins, mutes or hides a conversation on every device of this user.
    pub async fn set_conversation_prefs(
        &self,
        conversation: ConversationId,
        prefs: ConversationPrefs,
    ) -> Result<(), ClientError> {
        let request = Request::SetConversationPrefs {
            conversation,
            prefs,
        };
        expect_ok(self.call(request).await?)
    }

    /// Moves this user's delivered or read cursor in a conversation.
    pub async fn ack(
        &self,
        conversation: ConversationId,
        kind: CursorKind,
        seq: Seq,
    ) -> Result<(), ClientError> {
        let request = Request::CursorAck {
            conversation,
            kind,
            seq,
        };
        expect_ok(self.call(request).await?)
    }

    /// Tells the other members' online devices that this user is typing (not stored).
    pub async fn typing(&self, conversation: ConversationId) -> Result<(), ClientError> {
        expect_ok(self.call(Request::Typing { conversation }).await?)
    }

    /// Catches up now: fetches everything newer than the positions, page by page, delivering
    /// new messages as events, and resolves when the server has nothing more. Runs after every
    /// (re)connect anyway; call it to force one.
    ///
    /// No timeout: a large history takes as long as it takes. The events it produces must be
    /// drained meanwhile (see [`Events`]), or it cannot finish.
    pub async fn sync(&self) -> Result<SyncSummary, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::Sync { reply }).await?;
        rx.await.map_err(|_| ClientError::Closed)?
    }

    /// The current positions (epoch and highest contiguous seq per conversation), to persist
    /// and pass back as [`ClientConfig::resume`] next time.
    pub async fn positions(&self) -> Result<Resume, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::Positions { reply }).await?;
        rx.await.map_err(|_| ClientError::Closed)
    }

    /// Any request, answered raw (escape hatch). An `Error` response becomes
    /// `Err(ClientError::Server)`. `Send` takes the same path as [`Client::send_request`] (kept
    /// until acknowledged); a raw `Sync` bypasses the ordering of events and returns the page
    /// as is.
    pub async fn request(&self, request: Request) -> Result<Response, ClientError> {
        match request {
            Request::Send(s) => self.send_request(s).await.map(Response::SendAck),
            other => self.call(other).await,
        }
    }

    /// Changes this user's password; every other device is signed out.
    pub async fn change_password(&self, old: &str, new: &str) -> Result<(), ClientError> {
        let request = Request::ChangePassword {
            old: parley_protocol::values::Password::try_from(old)?,
            new: parley_protocol::values::NewPassword::try_from(new)?,
        };
        expect_ok(self.call(request).await?)
    }

    /// Registers (empty `token`: removes) this device's push token, for notifications while
    /// none of the user's devices is connected.
    pub async fn set_push_token(&self, provider: &str, token: &str) -> Result<(), ClientError> {
        let request = Request::SetPushToken {
            provider: provider.to_owned(),
            token: token.to_owned(),
        };
        expect_ok(self.call(request).await?)
    }

    /// This user's devices that hold tokens.
    pub async fn devices(&self) -> Result<Vec<parley_protocol::frames::DeviceEntry>, ClientError> {
        match self.call(Request::ListDevices).await? {
            Response::Devices(d) => Ok(d),
            other => Err(unexpected(other)),
        }
    }

    /// Signs one of this user's devices out (its sessions close, its tokens stop working).
    pub async fn sign_out_device(
        &self,
        device: parley_protocol::ids::DeviceId,
    ) -> Result<(), ClientError> {
        expect_ok(self.call(Request::SignOutDevice(device)).await?)
    }

    /// Revokes this device's tokens and stops the client ([`Event::Closed`](crate::Event)
    /// follows; no reconnect).
    pub async fn logout(&self) -> Result<(), ClientError> {
        expect_ok(self.call(Request::Logout).await?)
    }

    /// Closes the connection gracefully and waits for the connection task to end. Sends not yet
    /// acknowledged fail with [`ClientError::Closed`]; events not yet emitted are dropped.
    pub async fn close(&self) {
        self.inner.shutdown.cancel();
        let mut login = self.inner.login.clone();
        // The task holds the sender: `changed` fails once it has ended.
        while login.changed().await.is_ok() {}
    }

    /// Moves a QUIC client to a new UDP socket (a new local port), as a phone does when it
    /// switches networks; returns the new local address. The connection migrates (QUIC
    /// connection migration): the session, its login and its pushes carry on, with no reconnect.
    /// Over TCP and TLS a connection cannot change address: this is an error there (those
    /// reconnect instead, with a token login).
    pub fn rebind(&self) -> Result<std::net::SocketAddr, ClientError> {
        let endpoint = self.inner.quic.as_ref().ok_or_else(|| {
            ClientError::Config("rebind needs the QUIC transport (TCP and TLS reconnect)".into())
        })?;
        crate::transport::rebind(endpoint).map_err(|e| {
            let addr = endpoint
                .local_addr()
                .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into());
            ClientError::connect(addr, e)
        })
    }

    /// Whether the connection task has ended.
    pub fn is_closed(&self) -> bool {
        self.inner.commands.is_closed()
    }

    async fn command(&self, cmd: Command) -> Result<(), ClientError> {
        self.inner
            .commands
            .send(cmd)
            .await
            .map_err(|_| ClientError::Closed)
    }

    /// A request with one response, under the request timeout.
    pub(crate) async fn call(&self, request: Request) -> Result<Response, ClientError> {
        let (reply, rx) = oneshot::channel();
        let exchange = async {
            self.command(Command::Request { request, reply }).await?;
            rx.await.map_err(|_| ClientError::Closed)?
        };
        tokio::time::timeout(self.inner.request_timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout)?
    }
}

/// A page of the conversation list.
#[derive(Clone, Debug)]
pub struct ConversationPage {
    /// The conversations, in list order.
    pub conversations: Vec<ConversationInfo>,
    /// Unread messages over all listed conversations that are not muted.
    pub total_unread: u64,
    /// Conversations listed in all.
    pub total: u32,
}

/// A fresh idempotency key: 128 random bits in hex.
pub fn new_client_msg_id() -> ClientMsgId {
    let id = format!("{:032x}", rand::random::<u128>());
    // 32 hex digits always satisfy the 1..=64 byte rule.
    ClientMsgId::try_from(id).unwrap_or_else(|_| unreachable!("hex id is valid"))
}

fn expect_conversation(r: Response) -> Result<ConversationInfo, ClientError> {
    match r {
        Response::Conversation(c) => Ok(c),
        other => Err(ClientError::Protocol(format!(
            "expected a conversation, got {other:?}"
        ))),
    }
}

pub(crate) fn unexpected(other: Response) -> ClientError {
    ClientError::Protocol(format!("unexpected response {other:?}"))
}

pub(crate) fn expect_ok(r: Response) -> Result<(), ClientError> {
    match r {
        Response::Ok => Ok(()),
        other => Err(ClientError::Protocol(format!("expected Ok, got {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_msg_ids_are_random_hex() {
        let a = new_client_msg_id();
        let b = new_client_msg_id();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
