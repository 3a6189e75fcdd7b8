//! Every HTTP listener (public, private, the dialects' roots), plain or with TLS: an accept loop
//! with a connection cap, and hyper serving HTTP/1.1 (with upgrades, so the WebSocket works over
//! it) on each connection under the time limits of [`super::limits`].
//!
//! - **Cap**: a connection is served only with a permit of its listener
//!   ([`HttpLimits::max_connections`]) and one of the pool all HTTP listeners share (the HTTP
//!   surfaces' part of the server's descriptor budget). Without both it is refused at accept:
//!   a plain one gets `503 Service Unavailable` with `Retry-After` and a close, a TLS one a
//!   close. Nothing waits in a queue of ours; the kernel's backlog is all there is.
//! - **TLS**: the handshake runs in the connection's own task under [`HANDSHAKE_TIMEOUT`],
//!   never in the accept loop, so a slow or silent client holds up nobody else.
//! - **Shutdown** stops accepting, asks every connection to finish its request in flight and
//!   close, and waits for them.
//!
//! A connection upgraded to a WebSocket leaves this loop (hyper hands the socket over) and with
//! it its permits: its session counts under the server's `limits.max_connections` instead.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use super::limits::{Activity, Expired, HttpLimits, StallBody, Tracked, Watchdog};

/// Time a client has to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The ALPN protocol the HTTPS listeners offer: HTTP/1.1.
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// How often a listener that keeps refusing connections says so again.
const REFUSAL_REPORT: Duration = Duration::from_secs(10);

/// What a plain-HTTP connection over the cap is told before the close. Written with one
/// non-blocking write into the fresh socket's empty send buffer, so refusing never waits.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\n\
content-type: text/plain; charset=utf-8\r\ncontent-length: 29\r\nconnection: close\r\n\r\n\
too many connections; retry\r\n";

/// Serves `router` on `listener` until `shutdown` completes: with TLS when `tls` is given (its
/// ALPN list is replaced with `http/1.1`; the binary listeners offer the protocol's own), each
/// connection under `limits` and holding a permit of `pool` (shared by all HTTP listeners).
/// Each connection refused for want of a permit counts in `refused`
/// ([`super::metrics::HTTP_REFUSED`], from [`super::Metrics::http_refused`]).
pub async fn serve_http(
    listener: TcpListener,
    router: Router,
    tls: Option<&ServerConfig>,
    limits: HttpLimits,
    pool: Arc<Semaphore>,
    refused_total: metrics::Counter,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = tls.map(|tls| {
        let mut config = tls.clone();
        config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
        TlsAcceptor::from(Arc::new(config))
    });
    let addr = listener.local_addr().ok();
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    tracing::debug!(?addr, scheme, ?limits, "HTTP listener serving");
    let mine = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut refused: u64 = 0;
    let mut reported: Option<tokio::time::Instant> = None;
    tokio::pin!(shutdown);
    loop {
        // Finished connections are reaped as we go, so the set holds only live ones.
        while connections.try_join_next().is_some() {}
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, scheme, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(permits) = permits(&mine, &pool) else {
            if acceptor.is_none() {
                let _ = tcp.try_write(REFUSAL);
            }
            drop(tcp);
            refused += 1;
            refused_total.increment(1);
            let now = tokio::time::Instant::now();
            if reported.is_none_or(|t| now.duration_since(t) >= REFUSAL_REPORT) {
                reported = Some(now);
                tracing::warn!(
                    ?addr,
                    scheme,
                    refused,
                    max_connections = limits.max_connections,
                    pool_free = pool.available_permits(),
                    "HTTP connection refused: at the connection cap"
                );
            }
            continue;
        };
        let (acceptor, router, stop) = (acceptor.clone(), router.clone(), stop_rx.clone());
        connections.spawn(async move {
            let _permits = permits;
            serve_accepted(tcp, peer, acceptor, router, limits, stop).await;
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// A permit of the listener and one of the shared pool, or `None` if either is exhausted.
fn permits(
    mine: &Arc<Semaphore>,
    pool: &Arc<Semaphore>,
) -> Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)> {
    let own = mine.clone().try_acquire_owned().ok()?;
    let shared = pool.clone().try_acquire_owned().ok()?;
    Some((own, shared))
}

async fn serve_accepted(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    router: Router,
    limits: HttpLimits,
    stop: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let activity = Activity::new();
    let tcp = Tracked {
        inner: tcp,
        activity: activity.clone(),
    };
    let Some(acceptor) = acceptor else {
        return serve_connection(tcp, peer, activity, router, limits, stop).await;
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => {
            activity.waiting();
            serve_connection(stream, peer, activity, router, limits, stop).await
        }
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "HTTPS handshake failed"),
        Err(_) => tracing::debug!(%peer, "HTTPS handshake timed out"),
    }
}

async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    activity: Arc<Activity>,
    router: Router,
    limits: HttpLimits,
    mut stop: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let inner = TowerToHyperService::new(router);
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let in_flight = requests.begin();
        let stalled = Arc::new(AtomicBool::new(false));
        let flag = stalled.clone();
        let mut request = request.map(|b| StallBody::new(b, limits.body_timeout, flag));
        // As `axum::serve` does: the peer's address for the handlers (password attempts are
        // throttled by it; the WebSocket fallback logs it).
        request.extensions_mut().insert(ConnectInfo(peer));
        let answer = hyper::service::Service::call(&inner, request);
        async move {
            let response = answer.await;
            drop(in_flight);
            if stalled.load(Ordering::Relaxed) {
                tracing::debug!(%peer, "HTTP request body stalled; answered 408");
                return Ok::<_, Infallible>(body_timed_out(limits.body_timeout));
            }
            response
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        // The watchdog below owns the header and idle limits (see `limits`).
        .header_read_timeout(None::<Duration>)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    let watchdog = Watchdog { activity, limits };
    let result = tokio::select! {
        r = conn.as_mut() => r,
        why = watchdog.expired() => {
            // Dropping the connection closes the socket; a request in progress is never cut
            // here (the watchdog only fires with none).
            let why = match why {
                Expired::Idle => "idle timeout",
                Expired::Header => "request head timeout",
            };
            tracing::debug!(%peer, why, "HTTP connection closed");
            return;
        }
        () = stopped(&mut stop) => {
            // Finish the request in flight (if any), then close.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
    }
}

/// The answer to a request whose body stalled: `408` and a close.
fn body_timed_out(limit: Duration) -> Response {
    let mut response = (
        StatusCode::REQUEST_TIMEOUT,
        format!("the request body sent nothing for {}s", limit.as_secs_f64()),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which only happens after it said stop.
    let _ = stop.wait_for(|s| *s).await;
}
