//! QUIC listener: one bidirectional stream per connection carries the session.
//!
//! The session starts as soon as the client opens its stream, before the handshake completes
//! when the client resumed with 0-RTT (only with `tls.early_data_tickets > 0`): the stream is
//! gated (`early::Gated`) so that only replay-safe requests run until quinn reports the
//! handshake complete. Connection migration is on (`tls::quic_config`): a client that changes
//! address keeps this connection and its session.

use std::time::Duration;

use super::early::Gated;
use super::{Duplex, Shared};
use crate::session::{self, ConnInfo, TransportKind};

/// Resolves when the handshake completes (`true`) or fails (`false`).
type Confirmed = std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>;

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
        // The login deadline counts from here, over the handshake too.
        let accepted = tokio::time::Instant::now();
        let peer = incoming.remote_address();
        let service = shared.service.clone();
        let env = shared.env(permit);
        // Boxed before spawning: the handshake future (and the `Incoming` it consumes) is large,
        // and anything the task captures stays part of every idle connection's memory.
        let handshake = Box::pin(async move {
            // A server may always go on before the handshake completes (0.5-RTT); what it may
            // run meanwhile is the gate's business. `confirmed` resolves once it completes.
            let (conn, confirmed) = match incoming.accept()?.into_0rtt() {
                Ok(pair) => pair,
                Err(connecting) => {
                    let conn = connecting.await?;
                    let (send, recv) = conn.accept_bi().await?;
                    let done: Confirmed = Box::pin(std::future::ready(true));
                    return Ok((conn, send, recv, done));
                }
            };
            let (send, recv) = conn.accept_bi().await?;
            // `ZeroRttAccepted` resolves when the handshake completes or the connection is lost
            // first; on a server its value means nothing, so a live connection tells which.
            let watched = conn.clone();
            let confirmed: Confirmed = Box::pin(async move {
                confirmed.await;
                watched.close_reason().is_none()
            });
            Ok::<_, quinn::ConnectionError>((conn, send, recv, confirmed))
        });
        shared.tracker.spawn(async move {
            let timeout = service.core().config().heartbeat.login_timeout;
            let opened = tokio::time::timeout_at(accepted + timeout, handshake).await;
            let (conn, send, recv, confirmed) = match opened {
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
            let stream = Gated::new(Duplex { recv, send }, confirmed);
            session::run_accepted(service, stream, info, env, accepted).await;
            // The driver finished the stream; give the peer a moment to read the last frames
            // (a QUIC close discards undelivered data), then close.
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
            conn.close(0u32.into(), b"bye");
        });
    }
    tracing::debug!("QUIC listener stopped");
}
