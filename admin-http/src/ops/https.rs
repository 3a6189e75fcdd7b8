//! HTTPS for the HTTP listeners: tokio-rustls accepts, hyper serves HTTP/1.1 (with upgrades,
//! so the WebSocket works over it too), with the server's certificate.
//!
//! The TLS handshake runs in the connection's own task under [`HANDSHAKE_TIMEOUT`], never in
//! the accept loop, so a slow or silent client holds up nobody else. Shutdown stops accepting,
//! asks every connection to finish its request in flight and close, and waits for them.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// Time a client has to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The ALPN protocol the HTTPS listeners offer: HTTP/1.1 (what `axum::serve` speaks too).
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Serves `router` over TLS on `listener` until `shutdown` completes. `tls` is the server's
/// rustls configuration; its ALPN list is replaced with `http/1.1` here (the binary
/// listeners offer the protocol's own).
pub async fn serve_tls(
    listener: TcpListener,
    router: Router,
    tls: &ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut config = tls.clone();
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let addr = listener.local_addr().ok();
    tracing::debug!(?addr, "HTTPS side-service listening");
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // Finished connections are reaped as we go, so the set holds only live ones.
        while connections.try_join_next().is_some() {}
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "HTTPS accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let stop = stop_rx.clone();
        connections.spawn(async move {
            let _ = tcp.set_nodelay(true);
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "HTTPS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "HTTPS handshake timed out");
                    return;
                }
            };
            // As `axum::serve` does for plain HTTP: the peer's address for the handlers.
            let router = router.layer(axum::Extension(axum::extract::ConnectInfo(peer)));
            serve_connection(stream, router, stop).await;
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

async fn serve_connection<S>(stream: S, router: Router, mut stop: watch::Receiver<bool>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let service = TowerToHyperService::new(router);
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = stopped(&mut stop) => {
            // Finish the request in flight (if any), then close.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "HTTPS connection ended with an error");
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which only happens after it said stop.
    let _ = stop.wait_for(|s| *s).await;
}
