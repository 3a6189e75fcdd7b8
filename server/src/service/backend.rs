//! The HTTP side-service's view of the request service ([`parley_admin_http::Backend`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use parley_admin_http::{Backend, PushSession, SessionEvent, Stats};
use parley_protocol::frames::{Credential, Device, ErrorInfo, Request, Response};
use parley_protocol::ids::{SessionId, UserId};
use parley_protocol::session::Identity;

use super::{Caller, Reply, Service, Session};
use crate::session::ParkingLot;

/// The service as the HTTP side sees it, with what its figures need.
#[derive(Debug)]
pub struct HttpBackend {
    service: Service,
    lot: Option<ParkingLot>,
    started: tokio::time::Instant,
    /// What streamed sessions (the WebSocket fallback) run under; `None`: they are refused.
    streams: Option<crate::transport::Shared>,
    /// The listeners' supervisors (their restarts are a figure).
    supervision: Option<Arc<crate::transport::Supervision>>,
}

impl HttpBackend {
    /// The backend over `service`; `lot` is where sleeping sessions are counted (if any),
    /// `started` when the server started (for its uptime).
    pub fn new(
        service: Service,
        lot: Option<ParkingLot>,
        started: tokio::time::Instant,
    ) -> HttpBackend {
        HttpBackend {
            service,
            lot,
            started,
            streams: None,
            supervision: None,
        }
    }

    /// Reports the restarts counted by `supervision` in the figures.
    pub fn with_supervision(
        mut self,
        supervision: Arc<crate::transport::Supervision>,
    ) -> HttpBackend {
        self.supervision = Some(supervision);
        self
    }

    /// Runs the sessions of [`Backend::serve_stream`] (the WebSocket fallback) under `shared`:
    /// its connection limit, shutdown and task tracker, like the binary listeners' sessions.
    pub fn with_streams(mut self, shared: crate::transport::Shared) -> HttpBackend {
        self.streams = Some(shared);
        self
    }
}

impl Backend for HttpBackend {
    fn stats(&self) -> Stats {
        let c = self.service.core();
        let routes = c.router().stats();
        let commits = c.committer.stats();
        let push = |f: fn(&crate::core::OfflinePush) -> &std::sync::atomic::AtomicU64| {
            c.offline_push
                .as_ref()
                .map_or(0, |p| f(p).load(Ordering::Relaxed))
        };
        Stats {
            sessions_online: routes.sessions,
            sessions_asleep: self.lot.as_ref().map_or(0, |l| l.asleep() as u64),
            session_wakes_total: self.lot.as_ref().map_or(0, ParkingLot::wakes),
            users_online: routes.users,
            connections_total: c.stats.connections.load(Ordering::Relaxed),
            logins_total: c.stats.logins.load(Ordering::Relaxed),
            messages_total: c.stats.messages.load(Ordering::Relaxed),
            pushes_delivered: routes.delivered,
            pushes_dropped: routes.dropped,
            store_bytes: c.store.size_on_disk(),
            uptime_seconds: self.started.elapsed().as_secs(),
            commit_batches_total: commits.batches.load(Ordering::Relaxed),
            commit_items_total: commits.items.load(Ordering::Relaxed),
            store_writes_total: c.store.writes(),
            offline_push_sent_total: push(|p| &p.sent),
            offline_push_failed_total: push(|p| &p.failed),
            offline_push_dropped_total: push(|p| &p.dropped),
            commit_batch_max: commits.batch_max.load(Ordering::Relaxed),
            commit_write_us_total: commits.write_us.load(Ordering::Relaxed),
            commit_sync_us_total: commits.sync_us.load(Ordering::Relaxed),
            commit_full_syncs_total: commits.full_syncs.load(Ordering::Relaxed),
            commit_full_sync_us_total: commits.full_sync_us.load(Ordering::Relaxed),
            commit_full_sync_us_max: commits.full_sync_us_max.load(Ordering::Relaxed),
            connections_tcp_total: c.stats.transports[0].load(Ordering::Relaxed),
            connections_tls_total: c.stats.transports[1].load(Ordering::Relaxed),
            connections_quic_total: c.stats.transports[2].load(Ordering::Relaxed),
            connections_ws_total: c.stats.transports[3].load(Ordering::Relaxed),
            messages_committed_total: commits.messages.load(Ordering::Relaxed),
            events_committed_total: commits.events.load(Ordering::Relaxed),
            offline_push_queued: c.offline_push.as_ref().map_or(0, |p| p.queued() as u64),
            login_throttled_total: c.stats.logins_throttled.load(Ordering::Relaxed),
            login_hash_refused_total: c.hash_refusals(),
            login_throttle_sources: c.login_throttle_tracked().0 as u64,
            login_throttle_pairs: c.login_throttle_tracked().1 as u64,
            listener_restarts_total: self
                .supervision
                .as_ref()
                .map_or(0, |s| s.restarts.load(Ordering::Relaxed)),
            log_lines_lost_total: crate::logging::lost_lines(),
        }
    }

    fn execute(&self, caller: Option<Identity>, request: Request) -> BoxFuture<'static, Response> {
        let service = self.service.clone();
        async move {
            let caller = match caller {
                Some(identity) => Caller::User {
                    identity,
                    session: None,
                },
                None => Caller::Anonymous,
            };
            service.answer(&caller, request).await
        }
        .boxed()
    }

    fn execute_from(
        &self,
        caller: Option<Identity>,
        request: Request,
        peer: Option<std::net::SocketAddr>,
    ) -> BoxFuture<'static, Response> {
        let service = self.service.clone();
        async move {
            let caller = match (caller, peer) {
                (Some(identity), _) => Caller::User {
                    identity,
                    session: None,
                },
                (None, Some(peer)) => Caller::AnonymousFrom(peer.ip()),
                (None, None) => Caller::Anonymous,
            };
            service.answer(&caller, request).await
        }
        .boxed()
    }

    fn authenticate(
        &self,
        access_token: String,
        device: Device,
    ) -> BoxFuture<'static, Result<Identity, ErrorInfo>> {
        let service = self.service.clone();
        async move {
            let credential = Credential::AccessToken(access_token);
            // A token login: no hashing, no throttling, so no source is needed.
            let source = crate::core::Source::Unknown;
            Ok(service
                .core()
                .login(credential, device, source)
                .await?
                .identity)
        }
        .boxed()
    }

    fn authenticate_bearer(
        &self,
        access_token: String,
    ) -> BoxFuture<'static, Result<Identity, ErrorInfo>> {
        let result = self.service.core().identify(&access_token);
        async move { result }.boxed()
    }

    fn trusted_identity(
        &self,
        user: String,
        device: parley_protocol::ids::DeviceId,
    ) -> BoxFuture<'static, Result<Identity, ErrorInfo>> {
        let result = self.service.core().identify_trusted(&user, device);
        async move { result }.boxed()
    }

    fn set_banned(&self, user: UserId, banned: bool) -> BoxFuture<'static, Result<(), ErrorInfo>> {
        let service = self.service.clone();
        async move {
            let core = service.core();
            let action = if banned { "ban" } else { "unban" };
            let target = format!("user:{}", user.get());
            let work = core.set_banned(user, banned);
            core.audited(crate::core::OPERATOR, action, target, String::new(), work)
                .await
        }
        .boxed()
    }

    fn admin_users(
        &self,
        query: parley_admin_http::UserQuery,
    ) -> BoxFuture<'static, Result<parley_admin_http::UserPage, ErrorInfo>> {
        let core = self.service.core().clone();
        async move {
            // A scan of the users: off the runtime's workers.
            let scan = tokio::task::spawn_blocking(move || {
                core.admin_users(&query.query, query.after, query.limit)
            });
            let (users, next_after) = scan.await.map_err(|_| {
                ErrorInfo::new(parley_protocol::ErrorCode::Internal, "internal error")
            })??;
            let users = users
                .into_iter()
                .map(|u| parley_admin_http::AdminUser {
                    id: u.user,
                    account: u.account,
                    nickname: u.nickname,
                    created_ms: u.created_ms,
                    guest: u.guest,
                    banned: u.banned,
                    online: u.online,
                })
                .collect();
            Ok(parley_admin_http::UserPage { users, next_after })
        }
        .boxed()
    }

    fn admin_disband_group(
        &self,
        group: parley_protocol::ids::ConversationId,
    ) -> BoxFuture<'static, Result<(), ErrorInfo>> {
        let service = self.service.clone();
        async move {
            let core = service.core();
            let target = format!("group:{}", group.get());
            let work = core.admin_disband_group(group);
            core.audited(
                crate::core::OPERATOR,
                "disband_group",
                target,
                String::new(),
                work,
            )
            .await
        }
        .boxed()
    }

    fn admin_announce(&self, text: String) -> BoxFuture<'static, Result<u64, ErrorInfo>> {
        let service = self.service.clone();
        async move {
            let core = service.core();
            let work = core.announce(text.clone());
            let target = "all_users".to_owned();
            core.audited(crate::core::OPERATOR, "announce", target, text, work)
                .await
        }
        .boxed()
    }

    fn admin_group(
        &self,
        group: parley_protocol::ids::ConversationId,
    ) -> BoxFuture<'static, Result<parley_protocol::frames::GroupInfo, ErrorInfo>> {
        let result = self.service.core().admin_group(group);
        async move { result }.boxed()
    }

    fn admin_audit_log(
        &self,
        query: parley_admin_http::AuditQuery,
    ) -> BoxFuture<'static, Result<parley_admin_http::AuditPage, ErrorInfo>> {
        let core = self.service.core().clone();
        async move {
            let filter = crate::core::AuditFilter {
                before: query.before,
                limit: query.limit,
                action: query.action,
                actor: query.actor,
            };
            // Walks up to the whole (bounded) log: off the runtime's workers.
            let scan = tokio::task::spawn_blocking(move || core.audit_log(&filter));
            let (entries, next_before) = scan.await.map_err(|_| {
                ErrorInfo::new(parley_protocol::ErrorCode::Internal, "internal error")
            })??;
            let entries = entries
                .into_iter()
                .map(|(id, r)| parley_admin_http::AuditEntry {
                    id,
                    at_ms: r.at_ms,
                    actor: r.actor,
                    action: r.action,
                    target: r.target,
                    outcome: r.outcome,
                    detail: r.detail,
                })
                .collect();
            Ok(parley_admin_http::AuditPage {
                entries,
                next_before,
            })
        }
        .boxed()
    }

    fn running_config(&self) -> Option<serde_json::Value> {
        Some(self.service.core().config().redacted())
    }

    fn admin_check(
        &self,
        actor: parley_admin_http::AdminActor,
    ) -> BoxFuture<'static, Result<parley_admin_http::AdminAccount, ErrorInfo>> {
        let result = self
            .service
            .core()
            .acting_admin(&core_actor(actor))
            .map(admin_account);
        async move { result }.boxed()
    }

    fn admin_login(
        &self,
        username: String,
        password: String,
        peer: Option<std::net::SocketAddr>,
    ) -> BoxFuture<'static, Result<parley_admin_http::AdminAccount, ErrorInfo>> {
        let core = self.service.core().clone();
        async move {
            let source = crate::core::Source::of_peer(peer);
            core.admin_login(&username, &password, source)
                .await
                .map(admin_account)
        }
        .boxed()
    }

    fn admin_accounts(
        &self,
        actor: parley_admin_http::AdminActor,
    ) -> BoxFuture<'static, Result<Vec<parley_admin_http::AdminAccount>, ErrorInfo>> {
        let result = self
            .service
            .core()
            .admins(&core_actor(actor))
            .map(|list| list.into_iter().map(admin_account).collect());
        async move { result }.boxed()
    }

    fn admin_create(
        &self,
        actor: parley_admin_http::AdminActor,
        account: parley_admin_http::NewAdmin,
        peer: Option<std::net::SocketAddr>,
    ) -> BoxFuture<'static, Result<parley_admin_http::AdminAccount, ErrorInfo>> {
        let core = self.service.core().clone();
        async move {
            let source = crate::core::Source::of_peer(peer);
            core.create_admin(
                &core_actor(actor),
                &account.username,
                account.password,
                &account.role,
                source,
            )
            .await
            .map(admin_account)
        }
        .boxed()
    }

    fn admin_set_enabled(
        &self,
        actor: parley_admin_http::AdminActor,
        id: u64,
        enabled: bool,
    ) -> BoxFuture<'static, Result<parley_admin_http::AdminAccount, ErrorInfo>> {
        let core = self.service.core().clone();
        async move {
            core.set_admin_enabled(&core_actor(actor), id, enabled)
                .await
                .map(admin_account)
        }
        .boxed()
    }

    fn admin_settings(&self) -> Vec<parley_admin_http::RuntimeSetting> {
        self.service
            .core()
            .settings()
            .into_iter()
            .map(runtime_setting)
            .collect()
    }

    fn admin_set_setting(
        &self,
        actor: parley_admin_http::AdminActor,
        key: String,
        value: String,
    ) -> BoxFuture<'static, Result<parley_admin_http::RuntimeSetting, ErrorInfo>> {
        let core = self.service.core().clone();
        async move {
            core.set_setting(&core_actor(actor), &key, &value)
                .await
                .map(runtime_setting)
        }
        .boxed()
    }

    fn admin_set_banned(
        &self,
        actor: parley_admin_http::AdminActor,
        user: UserId,
        banned: bool,
    ) -> BoxFuture<'static, Result<(), ErrorInfo>> {
        let core = self.service.core().clone();
        async move {
            let action = if banned { "ban" } else { "unban" };
            let target = format!("user:{}", user.get());
            let work = core.set_banned(user, banned);
            core.admin_audited(&core_actor(actor), action, target, String::new(), work)
                .await
        }
        .boxed()
    }

    fn admin_disband_group_as(
        &self,
        actor: parley_admin_http::AdminActor,
        group: parley_protocol::ids::ConversationId,
    ) -> BoxFuture<'static, Result<(), ErrorInfo>> {
        let core = self.service.core().clone();
        async move {
            let target = format!("group:{}", group.get());
            let work = core.admin_disband_group(group);
            core.admin_audited(
                &core_actor(actor),
                "disband_group",
                target,
                String::new(),
                work,
            )
            .await
        }
        .boxed()
    }

    fn blobs(&self) -> Option<std::sync::Arc<dyn parley_admin_http::files::Blobs>> {
        let blobs = super::FileBlobs::new(self.service.core().clone())?;
        Some(std::sync::Arc::new(blobs))
    }

    fn open_session(&self, identity: Identity) -> Box<dyn PushSession> {
        Box::new(self.service.open_session(identity))
    }

    fn serve_stream(
        &self,
        stream: Box<dyn parley_admin_http::FrameStream>,
        peer: std::net::SocketAddr,
    ) {
        match &self.streams {
            Some(shared) => crate::transport::serve_ws(shared, stream, peer),
            None => tracing::debug!(%peer, "streamed sessions are not served here"),
        }
    }

    fn max_frame_bytes(&self) -> usize {
        self.service.core().config().limits.max_frame_bytes as usize
    }

    fn compat(&self) -> parley_admin_http::compat::CompatConfig {
        self.service.core().config().compat.clone()
    }
}

/// The core's actor for the HTTP side's.
fn core_actor(actor: parley_admin_http::AdminActor) -> crate::core::Actor {
    match actor {
        parley_admin_http::AdminActor::Operator => crate::core::Actor::Operator,
        parley_admin_http::AdminActor::Account { id, issued_ms } => {
            crate::core::Actor::Admin { id, issued_ms }
        }
    }
}

fn admin_account(a: crate::core::AdminInfo) -> parley_admin_http::AdminAccount {
    parley_admin_http::AdminAccount {
        id: a.id,
        username: a.username,
        role: a.role.as_str().to_owned(),
        enabled: a.enabled,
        created_ms: a.created_ms,
    }
}

fn runtime_setting(s: crate::core::SettingInfo) -> parley_admin_http::RuntimeSetting {
    parley_admin_http::RuntimeSetting {
        key: s.key.to_owned(),
        value: s.value,
        kind: s.kind.to_owned(),
        description: s.description.to_owned(),
    }
}

impl PushSession for Session {
    fn id(&self) -> SessionId {
        Session::id(self)
    }

    fn next(&self) -> BoxFuture<'_, SessionEvent> {
        Session::next(self).boxed()
    }
}

impl Service {
    /// Runs `request` and waits for its final answer (for callers without a connection of their
    /// own: a login answers with tokens and opens no session; a logout answers `Ok`).
    pub async fn answer(&self, caller: &Caller, request: Request) -> Response {
        match self.execute(caller, request).resolved().await {
            Reply::Now(response) => response,
            Reply::Later(pending) => pending.await,
            Reply::LoggedIn(outcome) => Response::Login(outcome.result),
            Reply::LoggedOut => Response::Ok,
            // `resolved` never gives another deferred reply.
            Reply::Deferred(_) => Response::Error(ErrorInfo::new(
                parley_protocol::ErrorCode::Internal,
                "internal error",
            )),
        }
    }
}
