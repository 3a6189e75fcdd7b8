//! TCP listeners, with TLS (the default) or plain (opt-in, for benchmarks).

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use super::{Shared, Socket, TlsSocket};
use crate::session::{self, ConnInfo, TransportKind};

/// How often a listener that keeps failing to accept says so again.
const ACCEPT_ERROR_REPORT: Duration = Duration::from_secs(10);

/// Accepts until shutdown. `tls: None` serves plain TCP. The listener is shared so that a
/// supervisor ([`super::supervise`]) can start the loop again on the same socket.
///
/// A failed accept (usually EMFILE: out of file descriptors) is waited out, never fatal: the
/// loop backs off 50 ms and tries again, and accepts again as soon as descriptors are free. It
/// says so at the first failure and then at most every [`ACCEPT_ERROR_REPORT`], with a count.
pub async fn serve_tcp(
    listener: Arc<TcpListener>,
    tls: Option<Arc<rustls::ServerConfig>>,
    shared: Shared,
) {
    let transport = if tls.is_some() {
        TransportKind::Tls
    } else {
        TransportKind::Tcp
    };
    let mut failures: u64 = 0;
    let mut reported: Option<tokio::time::Instant> = None;
    loop {
        let permit = tokio::select! {
            p = shared.permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = shared.shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning.
                    failures += 1;
                    let now = tokio::time::Instant::now();
                    if reported.is_none_or(|t| now.duration_since(t) >= ACCEPT_ERROR_REPORT) {
                        reported = Some(now);
                        tracing::warn!(
                            error = %e,
                            failures,
                            transport = transport.name(),
                            "accept failed; retrying"
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shared.shutdown.cancelled() => break,
        };
        if failures > 0 {
            tracing::info!(failures, transport = transport.name(), "accepting again");
            failures = 0;
        }
        // The login deadline counts from here, over the handshake too.
        let accepted = tokio::time::Instant::now();
        let _ = stream.set_nodelay(true);
        let info = ConnInfo { transport, peer };
        let service = shared.service.clone();
        let env = shared.env(permit);
        let stream = Socket::Live(stream);
        // Each task's future is part of every active connection's memory: the plain task holds
        // only the session, and the TLS handshake (a large future) is boxed and gone before
        // the session starts.
        match &tls {
            None => {
                shared
                    .tracker
                    .spawn(session::run(service, stream, info, env));
            }
            Some(config) => {
                let accept = Box::pin(TlsSocket::accept(stream, config.clone()));
                shared.tracker.spawn(async move {
                    let timeout = service.core().config().heartbeat.login_timeout;
                    match tokio::time::timeout_at(accepted + timeout, accept).await {
                        Ok(Ok(tls)) => {
                            session::run_accepted(service, tls, info, env, accepted).await
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
    tracing::debug!(transport = transport.name(), "listener stopped");
}
