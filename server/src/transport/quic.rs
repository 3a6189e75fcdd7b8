//! QUIC listener: one bidirectional stream per connection carries the session.

use std::time::Duration;

use super::{Duplex, Shared};
use crate::session::{self, ConnInfo, TransportKind};

/// Accepts until shutdown.
pub async fn serve_quic(endpoint: quinn::Endpoint, shared: Shared) {
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => match i {
                Some(i) => i,
                None => break,
            },
            _ = shared.shutdown.cancelled() => break,
        };
        let Ok(permit) = shared.permits.clone().try_acquire_owned() else {
            incoming.refuse();
            continue;
        };
        let peer = incoming.remote_address();
        let service = shared.service.clone();
        let env = shared.env(permit);
        // Boxed before spawning: the handshake future (and the `Incoming` it consumes) is large,
        // and anything the task captures stays part of every idle connection's memory.
        let handshake = Box::pin(async move {
            let conn = incoming.await?;
            let (send, recv) = conn.accept_bi().await?;
            Ok::<_, quinn::ConnectionError>((conn, send, recv))
        });
        shared.tracker.spawn(async move {
            let timeout = service.core().config().heartbeat.login_timeout;
            let opened = tokio::time::timeout(timeout, handshake).await;
            let (conn, send, recv) = match opened {
                Ok(Ok(x)) => x,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "QUIC handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "QUIC handshake timed out");
                    return;
                }
            };
            let info = ConnInfo {
                transport: TransportKind::Quic,
                peer,
            };
            session::run(service, Duplex { recv, send }, info, env).await;
            // The driver finished the stream; give the peer a moment to read the last frames
            // (a QUIC close discards undelivered data), then close.
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
            conn.close(0u32.into(), b"bye");
        });
    }
    tracing::debug!("QUIC listener stopped");
}
