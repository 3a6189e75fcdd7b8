//! The interface the server hands the HTTP side: its request service, seen through protocol
//! types only. REST routes, the WebSocket fallback and the dialects are adapters over it: they
//! turn HTTP into [`Request`]s, run them with [`Backend::execute`], and render the
//! [`Response`]s and the pushes of sessions opened with [`Backend::open_session`].

use futures::future::BoxFuture;
use parley_protocol::frames::{Device, ErrorInfo, Request, Response, SharedPush};
use parley_protocol::ids::{SessionId, UserId};
use parley_protocol::session::Identity;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::Stats;

/// What the HTTP side needs from the server.
pub trait Backend: Send + Sync + 'static {
    /// Current figures.
    fn stats(&self) -> Stats;

    /// Runs `request` for `caller` (`None`: anonymous, which may only register, log in, refresh
    /// or ping) and resolves with the answer once it is final: for a send or any other change
    /// to a conversation, once it is durable. A login answers `Response::Login` without opening
    /// a session (use [`Backend::open_session`] for pushes).
    fn execute(&self, caller: Option<Identity>, request: Request) -> BoxFuture<'static, Response>;

    /// [`Backend::execute`] for a request that came from `peer` (the HTTP connection's remote
    /// address): an anonymous caller's password attempts are hashed and throttled per source
    /// address (docs/security.md), so the REST login and registration pass it. The default
    /// ignores the address.
    fn execute_from(
        &self,
        caller: Option<Identity>,
        request: Request,
        peer: Option<std::net::SocketAddr>,
    ) -> BoxFuture<'static, Response> {
        let _ = peer;
        self.execute(caller, request)
    }

    /// Whose access token this is (for bearer authentication); the error is the one a login
    /// with it would get.
    fn authenticate(
        &self,
        access_token: String,
        device: Device,
    ) -> BoxFuture<'static, Result<Identity, ErrorInfo>>;

    /// Whose access token this is, on the device the token was issued to: bearer authentication
    /// where the request names no device (the REST API). The error is `AUTH_FAILED` for an
    /// unknown or revoked token, `TOKEN_EXPIRED` for an expired one. The default refuses every
    /// token (for backends that only serve the operational routes).
    fn authenticate_bearer(
        &self,
        access_token: String,
    ) -> BoxFuture<'static, Result<Identity, ErrorInfo>> {
        let _ = access_token;
        Box::pin(async {
            Err(ErrorInfo::new(
                parley_protocol::ErrorCode::AuthFailed,
                "bearer tokens are not accepted here",
            ))
        })
    }

    /// The identity of a user named by a gateway the operator trusts (`[compat]
    /// trust_user_header`, docs/dialects.md): `user` is a decimal user id or an account name,
    /// acting on `device`. Only the header-trust dialects call it, and only with trust on. The
    /// error is `AUTH_FAILED` for an unknown user, `BANNED` for a banned one. The default
    /// refuses every user (for backends that trust no gateway).
    fn trusted_identity(
        &self,
        user: String,
        device: parley_protocol::ids::DeviceId,
    ) -> BoxFuture<'static, Result<Identity, ErrorInfo>> {
        let _ = (user, device);
        Box::pin(async {
            Err(ErrorInfo::new(
                parley_protocol::ErrorCode::AuthFailed,
                "user ids are not trusted here",
            ))
        })
    }

    /// Bans or unbans a user (admin API): a ban revokes its tokens and closes its sessions, and
    /// its logins are refused with `BANNED`.
    fn set_banned(&self, user: UserId, banned: bool) -> BoxFuture<'static, Result<(), ErrorInfo>>;

    /// Admin API: a page of users, searched by account name or nickname. The default refuses
    /// (for backends without the admin operations, such as test doubles).
    fn admin_users(
        &self,
        query: crate::UserQuery,
    ) -> BoxFuture<'static, Result<crate::UserPage, ErrorInfo>> {
        let _ = query;
        admin_unsupported()
    }

    /// Admin API: disbands any group (`NOT_FOUND`, `INVALID_ARGUMENT` for a conversation that is
    /// not a group, `DISBANDED`). The default refuses.
    fn admin_disband_group(
        &self,
        group: parley_protocol::ids::ConversationId,
    ) -> BoxFuture<'static, Result<(), ErrorInfo>> {
        let _ = group;
        admin_unsupported()
    }

    /// Admin API: sends `text` to every user as a message from the server account; resolves
    /// with the number of users reached once every copy is durable. The default refuses.
    fn admin_announce(&self, text: String) -> BoxFuture<'static, Result<u64, ErrorInfo>> {
        let _ = text;
        admin_unsupported()
    }

    /// Admin API: any group's profile, owner and member count, whoever asks (`NOT_FOUND`,
    /// `INVALID_ARGUMENT` for a conversation that is not a group). The default refuses.
    fn admin_group(
        &self,
        group: parley_protocol::ids::ConversationId,
    ) -> BoxFuture<'static, Result<parley_protocol::frames::GroupInfo, ErrorInfo>> {
        let _ = group;
        admin_unsupported()
    }

    /// Admin API: a page of the audit log of admin actions, newest first (docs/operations.md).
    /// The default refuses.
    fn admin_audit_log(
        &self,
        query: crate::AuditQuery,
    ) -> BoxFuture<'static, Result<crate::AuditPage, ErrorInfo>> {
        let _ = query;
        admin_unsupported()
    }

    /// The running configuration with its secrets redacted (what `GET /admin/v1/config`
    /// shows), for the dialects' admin views. The default: none.
    fn running_config(&self) -> Option<serde_json::Value> {
        None
    }

    /// Admin accounts (docs/operations.md): the admin `actor` if it may act now (the operator
    /// always; an account if it exists, is enabled and its token is younger than its last
    /// disabling). Surfaces that sign admin tokens call it on every request: `AUTH_FAILED`
    /// means the token no longer works. The default refuses.
    fn admin_check(
        &self,
        actor: crate::AdminActor,
    ) -> BoxFuture<'static, Result<crate::AdminAccount, ErrorInfo>> {
        let _ = actor;
        admin_unsupported()
    }

    /// Admin accounts: a password login (`admin` with the `[admin] token` is the operator),
    /// hashed and throttled per source like user logins (`peer`). `AUTH_FAILED` for a wrong
    /// name or password, `FORBIDDEN` for a disabled account. The default refuses.
    fn admin_login(
        &self,
        username: String,
        password: String,
        peer: Option<std::net::SocketAddr>,
    ) -> BoxFuture<'static, Result<crate::AdminAccount, ErrorInfo>> {
        let _ = (username, password, peer);
        admin_unsupported()
    }

    /// Admin accounts: every admin, the operator (id 1, `admin`) first. The default refuses.
    fn admin_accounts(
        &self,
        actor: crate::AdminActor,
    ) -> BoxFuture<'static, Result<Vec<crate::AdminAccount>, ErrorInfo>> {
        let _ = actor;
        admin_unsupported()
    }

    /// Admin accounts: creates one (`role` `super_admin` or `admin`; a super admin's action,
    /// audited). The default refuses.
    fn admin_create(
        &self,
        actor: crate::AdminActor,
        account: crate::NewAdmin,
        peer: Option<std::net::SocketAddr>,
    ) -> BoxFuture<'static, Result<crate::AdminAccount, ErrorInfo>> {
        let _ = (actor, account, peer);
        admin_unsupported()
    }

    /// Admin accounts: enables or disables one (a super admin's action, audited; disabling
    /// stops its tokens). The default refuses.
    fn admin_set_enabled(
        &self,
        actor: crate::AdminActor,
        id: u64,
        enabled: bool,
    ) -> BoxFuture<'static, Result<crate::AdminAccount, ErrorInfo>> {
        let _ = (actor, id, enabled);
        admin_unsupported()
    }

    /// Runtime settings: the configuration values an admin may change while the server runs,
    /// with their current values. The default: none.
    fn admin_settings(&self) -> Vec<crate::RuntimeSetting> {
        Vec::new()
    }

    /// Runtime settings: sets one (validated, stored, applied at once, audited). `NOT_FOUND`
    /// for a key the configuration lacks, `FORBIDDEN` for a read-only one, `INVALID_ARGUMENT`
    /// for a bad value. The default refuses.
    fn admin_set_setting(
        &self,
        actor: crate::AdminActor,
        key: String,
        value: String,
    ) -> BoxFuture<'static, Result<crate::RuntimeSetting, ErrorInfo>> {
        let _ = (actor, key, value);
        admin_unsupported()
    }

    /// [`Backend::set_banned`] by the admin `actor` (checked and audited as that admin). The
    /// default: the operator's is `set_banned`; others are refused.
    fn admin_set_banned(
        &self,
        actor: crate::AdminActor,
        user: UserId,
        banned: bool,
    ) -> BoxFuture<'static, Result<(), ErrorInfo>> {
        match actor {
            crate::AdminActor::Operator => self.set_banned(user, banned),
            _ => admin_unsupported(),
        }
    }

    /// [`Backend::admin_disband_group`] by the admin `actor` (checked and audited as that
    /// admin). The default: the operator's is `admin_disband_group`; others are refused.
    fn admin_disband_group_as(
        &self,
        actor: crate::AdminActor,
        group: parley_protocol::ids::ConversationId,
    ) -> BoxFuture<'static, Result<(), ErrorInfo>> {
        match actor {
            crate::AdminActor::Operator => self.admin_disband_group(group),
            _ => admin_unsupported(),
        }
    }

    /// Opens an in-process session for `identity`: it receives the pushes every other session of
    /// the user's device would, until it is dropped.
    fn open_session(&self, identity: Identity) -> Box<dyn PushSession>;

    /// Runs a connection that speaks the binary protocol's framing (`u32` big-endian length,
    /// then one protobuf `Frame`, both ways) through the server's session driver, exactly like
    /// a TCP connection: login or token, acks once durable, pushes, heartbeat, GoAway, the
    /// connection limit. Returns at once; the session runs in a task of the server's. The
    /// WebSocket fallback hands its sockets here. The default refuses (drops the stream).
    fn serve_stream(&self, stream: Box<dyn FrameStream>, peer: std::net::SocketAddr) {
        tracing::debug!(%peer, "this backend runs no streamed sessions");
        drop(stream);
    }

    /// The largest frame a session accepts after login (the WebSocket fallback sizes its
    /// message limit by it).
    fn max_frame_bytes(&self) -> usize {
        parley_protocol::DEFAULT_MAX_FRAME
    }

    /// Which seed dialects are served and how (the `[compat]` section; docs/dialects.md). The
    /// default: every dialect on, header trust off.
    fn compat(&self) -> crate::compat::CompatConfig {
        crate::compat::CompatConfig::default()
    }

    /// File contents, for `/im/v1/files` (docs/files.md). The default: no files here (the
    /// routes answer `503 UNAVAILABLE`).
    fn blobs(&self) -> Option<std::sync::Arc<dyn crate::files::Blobs>> {
        None
    }
}

/// A byte stream in the binary protocol's framing, for [`Backend::serve_stream`].
pub trait FrameStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T> FrameStream for T where T: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

/// A session opened through [`Backend::open_session`]. Its push queue is bounded like every
/// session's: when it overflows, pushes are dropped and [`SessionEvent::SyncNeeded`] follows
/// once it has drained (the client then catches up by sync). Dropping it closes the session.
pub trait PushSession: Send + Sync {
    /// The session's id.
    fn id(&self) -> SessionId;

    /// The next thing for the session (cancel-safe).
    fn next(&self) -> BoxFuture<'_, SessionEvent>;
}

/// What a [`PushSession`] gets.
#[derive(Debug)]
pub enum SessionEvent {
    /// Pushes, oldest first.
    Pushes(Vec<SharedPush>),
    /// Pushes were dropped (the queue was full): sync to catch up.
    SyncNeeded,
    /// The same device opened another session; this one is over.
    Replaced,
    /// The device was signed out (password change, sign-out from another device); this
    /// session is over.
    SignedOut,
}

/// What the admin methods' defaults answer.
fn admin_unsupported<T: Send + 'static>() -> BoxFuture<'static, Result<T, ErrorInfo>> {
    Box::pin(futures::future::ready(Err(ErrorInfo::new(
        parley_protocol::ErrorCode::Forbidden,
        "this server has no admin operations",
    ))))
}
