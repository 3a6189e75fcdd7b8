//! HTTP from an untrusted client: the input is a raw HTTP/1 byte stream (one or more requests)
//! served by hyper's server connection, over an in-memory pipe, with the router the server
//! builds (`ops::apps`: REST, the five seed dialects under `/compat/<name>`, files, the
//! WebSocket upgrade route, the web client, health, metrics and the admin API). Everything our
//! own code parses is reached: paths and queries, headers (bearer tokens, the dialects' user
//! headers), the REST and dialect JSON bodies, and every request they build goes through the
//! frame codec's validation (`through_codec`).
//!
//! The backend is a stand-in that holds no feature logic (like the router tests' fake): one
//! access token is valid, every request is answered with the outcome the input's first byte
//! picks (`Ok` or an error code), so a run costs microseconds and reaches the success and the
//! error rendering of every route. The core behind the real backend is fuzzed through the
//! frame target's decoder, which is the same validation.

#![no_main]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

use axum::extract::connect_info::MockConnectInfo;
use futures::future::BoxFuture;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use libfuzzer_sys::fuzz_target;
use parley_admin_http::ops::metrics::Metrics;
use parley_admin_http::ops::{apps, Ops, Readiness};
use parley_admin_http::{Backend, PushSession, SessionEvent, Stats};
use parley_protocol::frames::{Device, ErrorInfo, Request, Response};
use parley_protocol::ids::{Account, DeviceId, NodeId, SessionId, UserId};
use parley_protocol::session::Identity;
use parley_protocol::ErrorCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The one token the stand-in accepts (the seeds use it).
const TOKEN: &str = "fuzz-token";

/// What every request is answered with (set from the input for each run).
static OUTCOME: AtomicU8 = AtomicU8::new(0);

fn identity() -> Identity {
    Identity {
        user: UserId::try_from(1).expect("non-zero"),
        account: Account::try_from("alice").expect("account"),
        device: DeviceId::try_from("d1").expect("device"),
    }
}

fn outcome() -> Response {
    const CODES: [ErrorCode; 7] = [
        ErrorCode::NotFound,
        ErrorCode::Forbidden,
        ErrorCode::InvalidArgument,
        ErrorCode::AuthFailed,
        ErrorCode::RateLimited,
        ErrorCode::Conflict,
        ErrorCode::Internal,
    ];
    match OUTCOME.load(Ordering::Relaxed) % 8 {
        0 => Response::Ok,
        n => Response::Error(ErrorInfo::new(CODES[usize::from(n - 1)], "fuzz")),
    }
}

struct StandIn;

struct Ended;

impl PushSession for Ended {
    fn id(&self) -> SessionId {
        SessionId::new(NodeId(0), 1)
    }
    fn next(&self) -> BoxFuture<'_, SessionEvent> {
        Box::pin(async { SessionEvent::SignedOut })
    }
}

impl Backend for StandIn {
    fn stats(&self) -> Stats {
        Stats::default()
    }
    fn execute(&self, _: Option<Identity>, _: Request) -> BoxFuture<'static, Response> {
        Box::pin(futures::future::ready(outcome()))
    }
    fn authenticate(
        &self,
        token: String,
        _: Device,
    ) -> BoxFuture<'static, Result<Identity, ErrorInfo>> {
        self.authenticate_bearer(token)
    }
    fn authenticate_bearer(
        &self,
        token: String,
    ) -> BoxFuture<'static, Result<Identity, ErrorInfo>> {
        Box::pin(futures::future::ready(if token == TOKEN {
            Ok(identity())
        } else {
            Err(ErrorInfo::new(ErrorCode::AuthFailed, "unknown token"))
        }))
    }
    fn trusted_identity(
        &self,
        _: String,
        _: DeviceId,
    ) -> BoxFuture<'static, Result<Identity, ErrorInfo>> {
        Box::pin(futures::future::ready(Ok(identity())))
    }
    fn set_banned(&self, _: UserId, _: bool) -> BoxFuture<'static, Result<(), ErrorInfo>> {
        Box::pin(futures::future::ready(Ok(())))
    }
    fn open_session(&self, _: Identity) -> Box<dyn PushSession> {
        Box::new(Ended)
    }
}

struct Harness {
    rt: tokio::runtime::Runtime,
    /// Header trust off (the default) and on.
    apps: [axum::Router; 2],
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        // Paused time: whatever a handler sleeps for passes at once, so runs are deterministic.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        let peer: SocketAddr = "192.0.2.1:4000".parse().expect("address");
        let app = |trust: bool| {
            let backend: Arc<dyn Backend> = if trust {
                Arc::new(Trusting)
            } else {
                Arc::new(StandIn)
            };
            let ops = Ops {
                metrics: Arc::new(Metrics::new()),
                readiness: Readiness::new(),
                admin_token: Some(Arc::from("admin-token")),
                running_config: Arc::new(serde_json::json!({})),
            };
            apps(backend, &ops, false).0.layer(MockConnectInfo(peer))
        };
        Harness {
            rt,
            apps: [app(false), app(true)],
        }
    })
}

/// The stand-in with header trust on (`[compat] trust_user_header`).
struct Trusting;

impl Backend for Trusting {
    fn stats(&self) -> Stats {
        StandIn.stats()
    }
    fn execute(&self, c: Option<Identity>, r: Request) -> BoxFuture<'static, Response> {
        StandIn.execute(c, r)
    }
    fn authenticate(
        &self,
        t: String,
        d: Device,
    ) -> BoxFuture<'static, Result<Identity, ErrorInfo>> {
        StandIn.authenticate(t, d)
    }
    fn authenticate_bearer(&self, t: String) -> BoxFuture<'static, Result<Identity, ErrorInfo>> {
        StandIn.authenticate_bearer(t)
    }
    fn trusted_identity(
        &self,
        u: String,
        d: DeviceId,
    ) -> BoxFuture<'static, Result<Identity, ErrorInfo>> {
        StandIn.trusted_identity(u, d)
    }
    fn set_banned(&self, u: UserId, b: bool) -> BoxFuture<'static, Result<(), ErrorInfo>> {
        StandIn.set_banned(u, b)
    }
    fn open_session(&self, i: Identity) -> Box<dyn PushSession> {
        StandIn.open_session(i)
    }
    fn compat(&self) -> parley_admin_http::compat::CompatConfig {
        parley_admin_http::compat::CompatConfig {
            trust_user_header: true,
            ..Default::default()
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, request)) = data.split_first() else {
        return;
    };
    OUTCOME.store(first >> 1, Ordering::Relaxed);
    let h = harness();
    let app = h.apps[usize::from(first & 1)].clone();
    h.rt.block_on(async move {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(server), TowerToHyperService::new(app));
        let (mut rx, mut tx) = tokio::io::split(client);
        let send = async move {
            let _ = tx.write_all(request).await;
            let _ = tx.shutdown().await;
        };
        let receive = async move {
            let mut out = Vec::new();
            let _ = rx.read_to_end(&mut out).await;
        };
        let (_, _, _) = tokio::join!(conn, send, receive);
    });
});
