//! Operations: probes, metrics, stats and the admin API, and how the HTTP routes are split over
//! listeners (docs/operations.md).
//!
//! The HTTP side has two surfaces. The **public** one is [`crate::router`] (REST, WebSocket,
//! files, dialects, web client, `/health`) plus `/ready`; the **private** one is `/metrics`,
//! `/api/v1/stats` and `/admin/v1` (plus `/health` and `/ready` when it has a listener of its
//! own). [`apps`] builds either one router serving both (one HTTP address, the default) or one
//! per surface (a private address configured), each counted by [`metrics::Metrics::track`].

pub mod admin;
mod https;
mod limits;
pub mod metrics;

pub use https::serve_http;
pub use limits::HttpLimits;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::Backend;
use metrics::Metrics;

/// How often [`run_upkeep`] folds histogram samples into buckets.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);

const STARTING: u8 = 0;
const READY: u8 = 1;
const DRAINING: u8 = 2;
/// Ready but the store refuses writes until the disk is writable again (it recovers by itself).
const STORE_DEGRADED: u8 = 3;
/// Ready but the store refuses writes until a restart.
const STORE_FAILED: u8 = 4;

/// What the store says about taking writes, for [`Readiness::set_store`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreState {
    /// It takes writes.
    Ok,
    /// It refuses writes for now (a full disk) and recovers by itself.
    Degraded,
    /// It refuses writes until the server is restarted (a failed fsync, a failed engine).
    Failed,
}

/// What `/ready` answers: `503 starting` until the server says it is ready (store open,
/// listeners up), `200 ready`, then `503 draining` from the moment shutdown begins. While
/// ready, a store that refuses writes makes it `503 store_degraded` (a full disk: back to
/// `ready` by itself once space is freed) or `503 store_failed` (restart required).
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicU8>);

impl Readiness {
    /// Starting: not ready yet.
    pub fn new() -> Readiness {
        Readiness::default()
    }

    /// The store is open and every listener is up.
    pub fn set_ready(&self) {
        // Never back from draining.
        let _ = self
            .0
            .compare_exchange(STARTING, READY, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// The store's state: a degraded or failed store makes a ready server unready until it
    /// recovers (never while starting or draining). `Failed` is never undone but by a restart.
    pub fn set_store(&self, state: StoreState) {
        let (from, to): (&[u8], u8) = match state {
            StoreState::Ok => (&[STORE_DEGRADED], READY),
            StoreState::Degraded => (&[READY], STORE_DEGRADED),
            StoreState::Failed => (&[READY, STORE_DEGRADED], STORE_FAILED),
        };
        for &f in from {
            if self
                .0
                .compare_exchange(f, to, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                return;
            }
        }
    }

    /// Shutdown has begun.
    pub fn set_draining(&self) {
        self.0.store(DRAINING, Ordering::SeqCst);
    }

    fn state(&self) -> &'static str {
        match self.0.load(Ordering::SeqCst) {
            STARTING => "starting",
            READY => "ready",
            STORE_DEGRADED => "store_degraded",
            STORE_FAILED => "store_failed",
            _ => "draining",
        }
    }
}

/// What the operational routes need besides the [`Backend`].
#[derive(Clone, Debug)]
pub struct Ops {
    /// The server's metrics.
    pub metrics: Arc<Metrics>,
    /// Its readiness.
    pub readiness: Readiness,
    /// The admin API's bearer token (`None`: the admin API is disabled).
    pub admin_token: Option<Arc<str>>,
    /// The running configuration with its secrets redacted, for `GET /admin/v1/config`.
    pub running_config: Arc<serde_json::Value>,
}

#[derive(Serialize)]
struct ReadyBody {
    status: &'static str,
}

async fn ready(State(readiness): State<Readiness>) -> Response {
    let status = readiness.state();
    let code = match status {
        "ready" => StatusCode::OK,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    (code, Json(ReadyBody { status })).into_response()
}

#[derive(Clone)]
struct MetricsState {
    backend: Arc<dyn Backend>,
    metrics: Arc<Metrics>,
}

async fn render_metrics(State(s): State<MetricsState>) -> Response {
    let body = s.metrics.render(&s.backend.stats());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// `GET /ready`.
fn ready_route(readiness: Readiness) -> Router {
    Router::new()
        .route("/ready", get(ready))
        .with_state(readiness)
}

/// The private routes: `GET /metrics`, `GET /api/v1/stats`, and the admin API under
/// `/admin/v1`.
pub fn private_routes(backend: Arc<dyn Backend>, ops: &Ops) -> Router {
    let metrics = Router::new()
        .route("/metrics", get(render_metrics))
        .with_state(MetricsState {
            backend: backend.clone(),
            metrics: ops.metrics.clone(),
        });
    let stats = Router::new()
        .route("/api/v1/stats", get(crate::stats))
        .with_state(backend.clone());
    metrics.merge(stats).merge(admin::router(
        backend,
        ops.admin_token.clone(),
        ops.running_config.clone(),
    ))
}

/// The HTTP applications: with `split` false, one router serving both surfaces (and `None`);
/// with `split` true, the public router and the private one (which also answers `/health` and
/// `/ready`). Every request of both is counted in the metrics.
pub fn apps(backend: Arc<dyn Backend>, ops: &Ops, split: bool) -> (Router, Option<Router>) {
    let public = crate::router(backend.clone()).merge(ready_route(ops.readiness.clone()));
    let private = private_routes(backend, ops);
    if !split {
        return (ops.metrics.track(public.merge(private)), None);
    }
    let private = private
        .merge(ready_route(ops.readiness.clone()))
        .route("/health", get(crate::health));
    (ops.metrics.track(public), Some(ops.metrics.track(private)))
}

/// Folds histogram samples into buckets every [`UPKEEP_EVERY`] until `stop` completes, so a
/// server nobody scrapes does not accumulate them.
pub async fn run_upkeep(metrics: Arc<Metrics>, stop: impl std::future::Future<Output = ()>) {
    let mut every = tokio::time::interval(UPKEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = every.tick() => metrics.upkeep(),
            () = &mut stop => return,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
