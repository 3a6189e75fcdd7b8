//! Prometheus metrics: one recorder per server, rendered by `GET /metrics` (no listener of its
//! own).
//!
//! Two kinds of series, chosen so the server's hot path pays nothing new:
//!
//! - **Read at scrape time.** The counters and gauges the server already keeps as atomics
//!   ([`Stats`]) are copied into the recorder when `/metrics` is scraped, never incremented
//!   through the registry per message or per connection.
//! - **Recorded where they happen**, cheaply: the committer records one sample per batch of
//!   [`COMMIT_BATCH_SIZE`] and [`COMMIT_FSYNC_SECONDS`] (it looks the handles up once, on its
//!   own thread, under [`Metrics::recorder`]), and the HTTP layer of [`Metrics::track`] counts
//!   each HTTP request by route template (axum's `MatchedPath`, never the raw path), method and
//!   status.
//!
//! Histogram samples wait in the recorder until a scrape or [`Metrics::upkeep`] folds them
//! into buckets; the server calls `upkeep` every few seconds so an unscraped server does not
//! accumulate them.

use std::sync::Arc;
use tokio::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Key, KeyName, Label, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::Stats;

/// Entries per committed batch (histogram, recorded by the committer once per batch).
pub const COMMIT_BATCH_SIZE: &str = "parley_commit_batch_size";
/// Time to make one batch durable (the log's fdatasync and the index update), in seconds
/// (histogram, recorded by the committer once per batch).
pub const COMMIT_FSYNC_SECONDS: &str = "parley_commit_fsync_seconds";
/// 1 while the store is degraded in this `class` (`out_of_space`, `write_failed`: writes are
/// refused until the server finds the disk writable again; `sync_failed`, `engine_failed`: a
/// restart is needed), else 0 (gauge, set by the store when its state changes).
pub const STORE_DEGRADED: &str = "parley_store_degraded";
/// HTTP requests answered, by `route`, `method` and `status` (counter).
pub const HTTP_REQUESTS: &str = "parley_http_requests_total";
/// Time to answer an HTTP request (until the response head; a streamed body goes on after),
/// by `route` and `method`, in seconds (histogram).
pub const HTTP_SECONDS: &str = "parley_http_request_duration_seconds";
/// HTTP connections refused at accept (a listener's cap or the shared descriptor pool was full),
/// by `scheme` (`http`, `https`) (counter).
pub const HTTP_REFUSED: &str = "parley_http_connections_refused_total";

/// The `route` label of a request that matched no route (never the raw path: a scanner would
/// otherwise create a series per path it tries).
pub const UNMATCHED_ROUTE: &str = "unmatched";

const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];
const FSYNC_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
const HTTP_BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

static META: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// How a figure of [`Stats`] is exported.
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

/// One series read from [`Stats`] at scrape time.
struct Series {
    name: &'static str,
    labels: &'static [Label],
    kind: Kind,
    help: &'static str,
    get: fn(&Stats) -> u64,
}

macro_rules! series {
    ($name:literal, $kind:ident, $help:literal, $field:ident) => {
        Series {
            name: $name,
            labels: &[],
            kind: Kind::$kind,
            help: $help,
            get: |s| s.$field,
        }
    };
    ($name:literal { $k:literal = $v:literal }, $kind:ident, $help:literal, $field:ident) => {
        Series {
            name: $name,
            labels: &[Label::from_static_parts($k, $v)],
            kind: Kind::$kind,
            help: $help,
            get: |s| s.$field,
        }
    };
}

/// Everything exported from [`Stats`]; docs/operations.md lists the same names.
const FROM_STATS: &[Series] = &[
    series!("parley_connections_total" { "transport" = "tcp" }, Counter,
        "Connections accepted, by transport.", connections_tcp_total),
    series!("parley_connections_total" { "transport" = "tls" }, Counter,
        "Connections accepted, by transport.", connections_tls_total),
    series!("parley_connections_total" { "transport" = "quic" }, Counter,
        "Connections accepted, by transport.", connections_quic_total),
    series!("parley_connections_total" { "transport" = "ws" }, Counter,
        "Connections accepted, by transport.", connections_ws_total),
    series!(
        "parley_sessions_opened_total",
        Counter,
        "Sessions opened (every transport and the HTTP side's in-process sessions).",
        connections_total
    ),
    series!(
        "parley_sessions_online",
        Gauge,
        "Sessions logged in now.",
        sessions_online
    ),
    series!(
        "parley_sessions_asleep",
        Gauge,
        "Logged-in sessions asleep (no task, socket out of the reactor).",
        sessions_asleep
    ),
    series!(
        "parley_session_wakes_total",
        Counter,
        "Times a sleeping session woke.",
        session_wakes_total
    ),
    series!(
        "parley_users_online",
        Gauge,
        "Users with at least one session.",
        users_online
    ),
    series!(
        "parley_logins_total",
        Counter,
        "Successful logins.",
        logins_total
    ),
    series!(
        "parley_login_throttled_total",
        Counter,
        "Password attempts refused while their address (or address and account) must wait.",
        login_throttled_total
    ),
    series!(
        "parley_login_hash_refused_total",
        Counter,
        "Password requests refused because the hashing queue or the address's share was full.",
        login_hash_refused_total
    ),
    series!(
        "parley_login_throttle_sources",
        Gauge,
        "Source addresses the login throttle tracks (bounded).",
        login_throttle_sources
    ),
    series!(
        "parley_login_throttle_pairs",
        Gauge,
        "(account, address) pairs the login throttle tracks (bounded).",
        login_throttle_pairs
    ),
    series!(
        "parley_listener_restarts_total",
        Counter,
        "Listener accept loops restarted after they died.",
        listener_restarts_total
    ),
    series!(
        "parley_log_lines_lost_total",
        Counter,
        "Log lines dropped because the log output could not take them.",
        log_lines_lost_total
    ),
    series!(
        "parley_messages_committed_total",
        Counter,
        "Messages committed (durable; retries not counted).",
        messages_committed_total
    ),
    series!(
        "parley_events_committed_total",
        Counter,
        "Conversation events committed (membership, edits, recalls, notices ...).",
        events_committed_total
    ),
    series!(
        "parley_commit_batches_total",
        Counter,
        "Group commits (one write and one fsync each).",
        commit_batches_total
    ),
    series!(
        "parley_commit_items_total",
        Counter,
        "Entries carried by commits (retries included).",
        commit_items_total
    ),
    series!(
        "parley_store_writes_total",
        Counter,
        "Writes to the store made by commits.",
        store_writes_total
    ),
    series!(
        "parley_store_bytes",
        Gauge,
        "Store size on disk, in bytes.",
        store_bytes
    ),
    series!(
        "parley_pushes_delivered_total",
        Counter,
        "Pushes queued to sessions.",
        pushes_delivered
    ),
    series!(
        "parley_pushes_dropped_total",
        Counter,
        "Pushes dropped for lagging sessions (they catch up by sync).",
        pushes_dropped
    ),
    series!(
        "parley_offline_push_queued",
        Gauge,
        "Offline notifications waiting for the webhook (the queue's lag).",
        offline_push_queued
    ),
    series!(
        "parley_offline_push_sent_total",
        Counter,
        "Offline notifications posted.",
        offline_push_sent_total
    ),
    series!(
        "parley_offline_push_failed_total",
        Counter,
        "Offline notifications given up after every attempt.",
        offline_push_failed_total
    ),
    series!(
        "parley_offline_push_dropped_total",
        Counter,
        "Offline notifications dropped on a full queue.",
        offline_push_dropped_total
    ),
    series!(
        "parley_commit_full_syncs_total",
        Counter,
        "Full syncs of the store (snapshots, barriers).",
        commit_full_syncs_total
    ),
    series!(
        "parley_uptime_seconds",
        Gauge,
        "Seconds since start.",
        uptime_seconds
    ),
];

/// A server's metrics: the recorder, its rendering handle, and the series read from
/// [`Stats`].
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Keys of [`FROM_STATS`], in the same order (built once).
    keys: Vec<Key>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh recorder with the histogram buckets and the help texts of every series.
    pub fn new() -> Metrics {
        let buckets = [
            (COMMIT_BATCH_SIZE, BATCH_BUCKETS),
            (COMMIT_FSYNC_SECONDS, FSYNC_BUCKETS),
            (HTTP_SECONDS, HTTP_BUCKETS),
        ];
        let configured = buckets
            .iter()
            .try_fold(PrometheusBuilder::new(), |b, (name, values)| {
                b.set_buckets_for_metric(Matcher::Full((*name).to_owned()), values)
            });
        let recorder = match configured {
            Ok(builder) => builder.build_recorder(),
            // Only an empty bucket list fails, and these are non-empty constants.
            Err(e) => {
                tracing::error!(error = %e, "metrics: histogram buckets refused; summaries instead");
                PrometheusBuilder::new().build_recorder()
            }
        };
        let handle = recorder.handle();
        let describe = |name: &'static str, unit: Option<Unit>, help: &'static str| {
            (
                KeyName::from_const_str(name),
                unit,
                SharedString::const_str(help),
            )
        };
        for s in FROM_STATS {
            let (name, unit, help) = describe(s.name, None, s.help);
            match s.kind {
                Kind::Counter => recorder.describe_counter(name, unit, help),
                Kind::Gauge => recorder.describe_gauge(name, unit, help),
            }
        }
        for (name, unit, help) in [
            describe(COMMIT_BATCH_SIZE, None, "Entries per committed batch."),
            describe(
                COMMIT_FSYNC_SECONDS,
                Some(Unit::Seconds),
                "Time to make one batch durable (fdatasync of the log, index update).",
            ),
            describe(
                HTTP_SECONDS,
                Some(Unit::Seconds),
                "Time to answer an HTTP request (to the response head).",
            ),
        ] {
            recorder.describe_histogram(name, unit, help);
        }
        recorder.describe_counter(
            KeyName::from_const_str(HTTP_REQUESTS),
            None,
            SharedString::const_str("HTTP requests answered, by route, method and status."),
        );
        recorder.describe_counter(
            KeyName::from_const_str(HTTP_REFUSED),
            None,
            SharedString::const_str(
                "HTTP connections refused at accept (a listener's connection cap or the HTTP \
                 surfaces' share of the descriptor budget was full), by scheme.",
            ),
        );
        let keys = FROM_STATS
            .iter()
            .map(|s| Key::from_static_parts(s.name, s.labels))
            .collect();
        Metrics {
            recorder,
            handle,
            keys,
        }
    }

    /// The recorder, for code that records into it: the committer's thread runs under
    /// `metrics::with_local_recorder(metrics.recorder(), ..)`, so its `metrics::histogram!`
    /// handles land here (and in nothing global: several servers in one process keep apart).
    pub fn recorder(&self) -> &PrometheusRecorder {
        &self.recorder
    }

    /// Folds recorded histogram samples into their buckets (call every few seconds).
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// The Prometheus text exposition of everything, with `stats` copied in first.
    pub fn render(&self, stats: &Stats) -> String {
        for (s, key) in FROM_STATS.iter().zip(&self.keys) {
            let value = (s.get)(stats);
            match s.kind {
                // Counters only move forward (`absolute` keeps the larger value).
                Kind::Counter => self.recorder.register_counter(key, &META).absolute(value),
                Kind::Gauge => self.recorder.register_gauge(key, &META).set(value as f64),
            }
        }
        self.handle.render()
    }

    /// The counter of HTTP connections refused at accept for `scheme` (`"http"`/`"https"`),
    /// handed to each listener's serving loop.
    pub fn http_refused(&self, scheme: &'static str) -> metrics::Counter {
        let labels = vec![Label::new("scheme", SharedString::const_str(scheme))];
        self.recorder
            .register_counter(&Key::from_parts(HTTP_REFUSED, labels), &META)
    }

    /// Wraps `router` (apply it last, over every route) so each request is counted by route
    /// template, method and status, and timed.
    pub fn track(self: &Arc<Self>, router: axum::Router) -> axum::Router {
        router.layer(axum::middleware::from_fn_with_state(self.clone(), track))
    }

    fn observe(&self, route: SharedString, method: SharedString, status: u16, seconds: f64) {
        let labels = vec![
            Label::new("route", route.clone()),
            Label::new("method", method.clone()),
            Label::new("status", SharedString::from(status.to_string())),
        ];
        self.recorder
            .register_counter(&Key::from_parts(HTTP_REQUESTS, labels), &META)
            .increment(1);
        let labels = vec![Label::new("route", route), Label::new("method", method)];
        self.recorder
            .register_histogram(&Key::from_parts(HTTP_SECONDS, labels), &META)
            .record(seconds);
    }
}

fn method_label(method: &axum::http::Method) -> SharedString {
    const KNOWN: [&str; 7] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];
    // A client can send any token as a method: keep the label set bounded.
    let name = KNOWN
        .into_iter()
        .find(|k| *k == method.as_str())
        .unwrap_or("OTHER");
    SharedString::const_str(name)
}

async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = match request.extensions().get::<MatchedPath>() {
        Some(p) => SharedString::from(p.as_str().to_owned()),
        None => SharedString::const_str(UNMATCHED_ROUTE),
    };
    let method = method_label(request.method());
    let response = next.run(request).await;
    let seconds = started.elapsed().as_secs_f64();
    metrics.observe(route, method, response.status().as_u16(), seconds);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_and_histograms_render() {
        let m = Metrics::new();
        let stats = Stats {
            logins_total: 3,
            sessions_online: 2,
            connections_quic_total: 5,
            ..Stats::default()
        };
        metrics::with_local_recorder(m.recorder(), || {
            metrics::histogram!(COMMIT_BATCH_SIZE).record(3.0);
            metrics::histogram!(COMMIT_FSYNC_SECONDS).record(0.002);
        });
        let text = m.render(&stats);
        assert!(text.contains("parley_logins_total 3"), "{text}");
        assert!(text.contains("parley_sessions_online 2"), "{text}");
        assert!(
            text.contains("parley_connections_total{transport=\"quic\"} 5"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE parley_commit_batch_size histogram"),
            "{text}"
        );
        assert!(
            text.contains("parley_commit_batch_size_bucket{le=\"4\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("parley_commit_fsync_seconds_count 1"),
            "{text}"
        );
        assert!(text.contains("# HELP parley_logins_total"), "{text}");
        // Counters never go back, even if a figure read at scrape time does.
        let text = m.render(&Stats::default());
        assert!(text.contains("parley_logins_total 3"), "{text}");
        assert!(text.contains("parley_sessions_online 0"), "{text}");
    }
}
