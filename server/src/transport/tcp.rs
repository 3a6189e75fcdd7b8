//! TCP listeners, with TLS (the default) or plain (opt-in, for benchmarks).

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use super::{Shared, Socket, TlsSocket};
use crate::session::{self, ConnInfo, TransportKind};

/// Accepts until shutdown. `tls: None` serves plain TCP.
pub async fn serve_tcp(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shared: Shared,
) {
    let transport = if tls.is_some() {
        TransportKind::Tls
    } else {
        TransportKind::Tcp
    };
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
                    tracing::warn!(error = %e, transport = transport.name(), "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shared.shutdown.cancelled() => break,
        };
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
                    match tokio::time::timeout(timeout, accept).await {
                        Ok(Ok(tls)) => session::run(service, tls, info, env).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
    tracing::debug!(transport = transport.name(), "listener stopped");
}
