//! Parley's HTTP side-service: operational endpoints now, and later the REST API, the WebSocket
//! fallback, the seed dialects and file transfer.
//!
//! It depends on `parley-protocol`, not on the server: the server hands it a [`Backend`], the
//! small interface through which every HTTP request reaches the core's request service.

mod backend;
pub mod compat;
pub mod files;
pub mod ops;
pub mod rest;
pub mod web;
pub mod ws;

pub use backend::FrameStream;
pub use backend::{Backend, PushSession, SessionEvent};
pub use ops::admin::{AdminAccount, AdminActor, NewAdmin, RuntimeSetting};
pub use ops::admin::{AdminUser, UserPage, UserQuery};
pub use ops::admin::{AuditEntry, AuditPage, AuditQuery};

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

/// What an `Authorization` header holds, read the same way by every HTTP surface (REST, files,
/// the dialects, the admin API): the scheme `Bearer` in any case, then the token, trimmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bearer<'a> {
    /// No `Authorization` header.
    Missing,
    /// A header that is not `Bearer <token>` (or a token longer than any token can be).
    Malformed,
    /// The token.
    Token(&'a str),
}

/// Reads the `Authorization` header of `headers` (see [`Bearer`]).
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Bearer<'_> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Bearer::Missing;
    };
    value
        .to_str()
        .ok()
        .and_then(|h| {
            let (scheme, token) = h.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty() && t.len() <= parley_protocol::frames::MAX_TOKEN_BYTES)
        .map_or(Bearer::Malformed, Bearer::Token)
}

/// `request` as a binary frame would have decoded it: every HTTP adapter (REST, the dialects)
/// sends its requests through the frame codec, so they meet the binary protocol's field rules
/// and their refusals. A rule broken is `INVALID_ARGUMENT` with the rule's own message.
pub(crate) fn through_codec(
    request: parley_protocol::frames::Request,
) -> Result<parley_protocol::frames::Request, parley_protocol::frames::ErrorInfo> {
    use parley_protocol::frames::{ClientFrame, ErrorInfo};
    use parley_protocol::{DecodeError, ErrorCode};
    let id = parley_protocol::ids::RequestId::try_from(1)
        .map_err(|_| ErrorInfo::new(ErrorCode::Internal, "internal error"))?;
    let frame = ClientFrame {
        request_id: id,
        request,
    }
    .encode();
    ClientFrame::decode(frame.slice(parley_protocol::LEN_PREFIX..))
        .map(|f| f.request)
        .map_err(|e| match e.error {
            DecodeError::Invalid(e) => ErrorInfo::new(ErrorCode::InvalidArgument, e.message()),
            e => ErrorInfo::new(e.code(), e.to_string()),
        })
}

/// Live figures of the server.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    /// Sessions logged in right now.
    pub sessions_online: u64,
    /// Of those, sessions asleep (no task, socket out of the runtime's reactor) until a frame,
    /// a push or their heartbeat deadline wakes them.
    pub sessions_asleep: u64,
    /// Times a sleeping session was woken since start.
    pub session_wakes_total: u64,
    /// Users with at least one session.
    pub users_online: u64,
    /// Connections accepted since start.
    pub connections_total: u64,
    /// Successful logins since start.
    pub logins_total: u64,
    /// Messages committed since start.
    pub messages_total: u64,
    /// Pushes queued to sessions since start.
    pub pushes_delivered: u64,
    /// Pushes dropped for lagging sessions (they catch up by sync).
    pub pushes_dropped: u64,
    /// Store size on disk in bytes.
    pub store_bytes: u64,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// Group commits (batches written and made durable) since start.
    pub commit_batches_total: u64,
    /// Sends those batches carried (duplicates included).
    pub commit_items_total: u64,
    /// Writes to the store made by commits: one log record per entry, an index checkpoint
    /// every 1,024th seq of a conversation, and the state changes of events. A message costs
    /// the same however many members its conversation has (nothing is written per member).
    pub store_writes_total: u64,
    /// Offline notifications posted to the webhook.
    pub offline_push_sent_total: u64,
    /// Offline notifications given up after every attempt.
    pub offline_push_failed_total: u64,
    /// Offline notifications dropped because the queue was full.
    pub offline_push_dropped_total: u64,
    /// Largest batch so far.
    pub commit_batch_max: u64,
    /// Time spent assigning seqs and writing batches to the store, in microseconds.
    pub commit_write_us_total: u64,
    /// Time spent making batches durable (log fdatasync, then the index update), in microseconds.
    pub commit_sync_us_total: u64,
    /// Full syncs of the store (periodic snapshots, barriers for account and conversation writes).
    pub commit_full_syncs_total: u64,
    /// Time the committer spent in full syncs, in microseconds.
    pub commit_full_sync_us_total: u64,
    /// Longest full sync, in microseconds.
    pub commit_full_sync_us_max: u64,
    /// Plain-TCP connections accepted since start.
    pub connections_tcp_total: u64,
    /// TLS connections accepted since start.
    pub connections_tls_total: u64,
    /// QUIC connections accepted since start.
    pub connections_quic_total: u64,
    /// WebSocket connections (the browser fallback) accepted since start.
    pub connections_ws_total: u64,
    /// New messages committed since start (conversation events not included).
    pub messages_committed_total: u64,
    /// New conversation events committed since start.
    pub events_committed_total: u64,
    /// Offline notifications waiting for the webhook now.
    pub offline_push_queued: u64,
    /// Password attempts refused because their address (or their address on that account)
    /// must still wait after failed attempts.
    pub login_throttled_total: u64,
    /// Password requests refused because the hashing queue or the address's share was full.
    pub login_hash_refused_total: u64,
    /// Source addresses the login throttle tracks now (bounded by `login.max_tracked_sources`).
    pub login_throttle_sources: u64,
    /// (account, address) pairs the login throttle tracks now (`login.max_tracked_pairs`).
    pub login_throttle_pairs: u64,
    /// Listener accept loops restarted after they died (a panic or an early end) since start.
    pub listener_restarts_total: u64,
    /// Log lines dropped because the log output (stderr) could not take them.
    pub log_lines_lost_total: u64,
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    protocol: &'static str,
}

async fn health() -> Json<Health> {
    Json(Health {
        status: "ok",
        protocol: std::str::from_utf8(parley_protocol::ALPN).unwrap_or("parley"),
    })
}

async fn stats(State(backend): State<Arc<dyn Backend>>) -> Json<Stats> {
    Json(backend.stats())
}

/// The public HTTP routes: `GET /health` (the private ones, `/api/v1/stats` among them, are
/// [`ops::private_routes`]; [`ops::apps`] puts the surfaces together).
pub fn router(backend: Arc<dyn Backend>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ws", get(ws::upgrade))
        .with_state(backend.clone())
        .merge(files::router(backend.clone()))
        .merge(compat::router(backend.clone()))
        .merge(rest::router(backend))
        .merge(web::router())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    /// Only the stats: the operational routes use nothing else (the server's own tests drive
    /// the rest of the interface against the real service).
    struct Fixed;
    impl Backend for Fixed {
        fn stats(&self) -> Stats {
            Stats {
                messages_total: 42,
                ..Stats::default()
            }
        }
        fn execute(
            &self,
            _: Option<parley_protocol::session::Identity>,
            _: parley_protocol::frames::Request,
        ) -> futures::future::BoxFuture<'static, parley_protocol::frames::Response> {
            unreachable!("not routed")
        }
        fn authenticate(
            &self,
            _: String,
            _: parley_protocol::frames::Device,
        ) -> futures::future::BoxFuture<
            'static,
            Result<parley_protocol::session::Identity, parley_protocol::frames::ErrorInfo>,
        > {
            unreachable!("not routed")
        }
        fn set_banned(
            &self,
            _: parley_protocol::ids::UserId,
            _: bool,
        ) -> futures::future::BoxFuture<'static, Result<(), parley_protocol::frames::ErrorInfo>>
        {
            unreachable!("not routed")
        }
        fn open_session(&self, _: parley_protocol::session::Identity) -> Box<dyn PushSession> {
            unreachable!("not routed")
        }
    }

    #[tokio::test]
    async fn health_and_stats() {
        let app = router(Arc::new(Fixed));
        let res = app
            .clone()
            .oneshot(Request::get("/health").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        // The stats are private (ops::private_routes; tested in ops::tests).
        let res = app
            .oneshot(Request::get("/api/v1/stats").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        let res = ops::private_routes(Arc::new(Fixed), &ops::tests::ops(None))
            .oneshot(Request::get("/api/v1/stats").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["messages_total"], 42);
    }
}
