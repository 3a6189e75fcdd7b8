//! Certificates for TLS and QUIC: from config in production, otherwise a self-signed
//! development certificate created with rcgen at first start and kept in `<data_dir>/tls/`, so
//! clients can trust it by file or by its SHA-256 fingerprint.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::config::Config;

/// Certificate chain and key, loaded.
#[derive(Debug)]
pub struct TlsMaterial {
    /// Chain, leaf first.
    pub certs: Vec<CertificateDer<'static>>,
    /// Private key.
    pub key: PrivateKeyDer<'static>,
    /// SHA-256 of the leaf certificate (DER), lowercase hex.
    pub fingerprint: String,
    /// Where the leaf certificate is (PEM).
    pub cert_path: PathBuf,
}

/// Certificate problems (all fatal at start-up).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// File IO.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// No certificate or key in a PEM file.
    #[error("{0}: no certificate or private key found")]
    Empty(PathBuf),
    /// Certificate generation failed.
    #[error("generating the development certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the material.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// quinn refused the TLS configuration.
    #[error("QUIC TLS configuration: {0}")]
    Quic(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Loads the configured certificate, or the development one (creating it if absent).
pub fn load_or_create(cfg: &Config) -> Result<TlsMaterial, TlsError> {
    let (cert_path, key_path) = match (&cfg.tls.cert, &cfg.tls.key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => {
            let dir = cfg.data_dir.join("tls");
            let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
            if !c.exists() || !k.exists() {
                create_dev_cert(&dir, &c, &k)?;
            }
            (c, k)
        }
    };
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(&cert_path).map_err(io(&cert_path))?,
    ))
    .collect::<Result<Vec<_>, _>>()
    .map_err(io(&cert_path))?;
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(&key_path).map_err(io(&key_path))?,
    ))
    .map_err(io(&key_path))?
    .ok_or_else(|| TlsError::Empty(key_path.clone()))?;
    let leaf = certs
        .first()
        .ok_or_else(|| TlsError::Empty(cert_path.clone()))?;
    let fingerprint = hex::encode(Sha256::digest(leaf.as_ref()));
    if cfg.tls.cert.is_none() {
        let fp_path = cfg.data_dir.join("tls").join("cert.sha256");
        std::fs::write(&fp_path, format!("{fingerprint}\n")).map_err(io(&fp_path))?;
    }
    Ok(TlsMaterial {
        certs,
        key,
        fingerprint,
        cert_path,
    })
}

fn create_dev_cert(dir: &Path, cert: &Path, key: &Path) -> Result<(), TlsError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let generated = rcgen::generate_simple_self_signed(names)?;
    std::fs::write(cert, generated.cert.pem()).map_err(io(cert))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(key).map_err(io(key))?;
    f.write_all(generated.key_pair.serialize_pem().as_bytes())
        .map_err(io(key))?;
    tracing::info!(cert = %cert.display(), "created a self-signed development certificate");
    Ok(())
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Largest early data (0-RTT) a TLS-over-TCP client may send: a token login and a sync request
/// fit many times over. QUIC has no such number (RFC 9001 requires `u32::MAX`); its stream flow
/// control bounds what a client sends before the handshake completes.
pub const TLS_EARLY_DATA_BYTES: u32 = 16 * 1024;

/// Session resumption, so a reconnecting device skips the certificate and its signature, the
/// costliest part of a handshake (in a reconnect storm, most of the server's work).
///
/// With `early_data_tickets == 0`: stateless tickets (encrypted with keys that rotate every six
/// hours), so every client can resume, however many, at no memory cost. rustls' default instead
/// keeps the last 256 sessions in server memory.
///
/// Otherwise early data (0-RTT) is on, and rustls accepts it only with stateful resumption: the
/// server keeps up to `early_data_tickets` tickets (oldest evicted first), and a ticket is taken
/// out of the store when a client uses it. Each ticket therefore resumes once: a replayed first
/// flight finds no ticket and falls back to a full handshake, its early data discarded. What
/// may ride in early data at all is decided by `transport::early` (docs/protocol.md).
fn resumable(cfg: &mut rustls::ServerConfig, early_data_tickets: usize) -> Result<(), TlsError> {
    if early_data_tickets == 0 {
        cfg.ticketer = rustls::crypto::ring::Ticketer::new()?;
        cfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        cfg.max_early_data_size = 0;
    } else {
        cfg.session_storage = rustls::server::ServerSessionMemoryCache::new(early_data_tickets);
        // The answer to an early login leaves with the server's handshake flight (0.5-RTT):
        // without this, it would wait for the client's Finished and 0-RTT would save nothing.
        // Safe: no client certificates are used, and only the holder of the client's key share
        // can read it.
        cfg.send_half_rtt_data = true;
    }
    // One ticket per connection: each reconnect brings the next.
    cfg.send_tls13_tickets = 1;
    Ok(())
}

/// rustls server configuration for TLS over TCP, offering ALPN `parley/1`; early data is
/// accepted when `early_data_tickets > 0` (see [`resumable`]).
pub fn server_config(
    m: &TlsMaterial,
    early_data_tickets: usize,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(m.certs.clone(), m.key.clone_key())?;
    cfg.alpn_protocols = vec![parley_protocol::ALPN.to_vec()];
    resumable(&mut cfg, early_data_tickets)?;
    if early_data_tickets > 0 {
        cfg.max_early_data_size = TLS_EARLY_DATA_BYTES;
    }
    Ok(Arc::new(cfg))
}

/// quinn server configuration (TLS 1.3 only, ALPN `parley/1`), with 0-RTT when
/// `early_data_tickets > 0` (see [`resumable`]).
///
/// Connection migration (RFC 9000 section 9) stays on, quinn's default: a client whose address
/// changes (a phone moving between networks) keeps its connection, and with it its session.
/// Nothing in the server is keyed by a QUIC peer's address after the handshake (the address in
/// a session's log span is the one it connected from).
pub fn quic_config(
    m: &TlsMaterial,
    idle_timeout: std::time::Duration,
    early_data_tickets: usize,
) -> Result<quinn::ServerConfig, TlsError> {
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(m.certs.clone(), m.key.clone_key())?;
    tls.alpn_protocols = vec![parley_protocol::ALPN.to_vec()];
    resumable(&mut tls, early_data_tickets)?;
    // QUIC allows only 0 or u32::MAX (RFC 9001 section 4.6.1).
    tls.max_early_data_size = if early_data_tickets > 0 { u32::MAX } else { 0 };
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    // One stream per connection carries the session; the peer may not open more.
    transport.max_concurrent_bidi_streams(1u32.into());
    transport.max_concurrent_uni_streams(0u32.into());
    // Memory per connection (see docs/BENCHMARKS.md): without segmentation offload quinn's
    // per-connection transmit buffer holds one datagram instead of a batch, and without MTU
    // discovery it stays at the 1,200-byte minimum. Chat frames are small; neither costs
    // throughput that matters here.
    transport.enable_segmentation_offload(false);
    transport.mtu_discovery_config(None);
    transport.max_idle_timeout(Some(
        idle_timeout
            .try_into()
            .map_err(|_| TlsError::Quic("idle timeout out of range".into()))?,
    ));
    server.transport_config(Arc::new(transport));
    server.migration(true);
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_certificate_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::for_tests(dir.path());
        let first = load_or_create(&cfg).unwrap();
        let second = load_or_create(&cfg).unwrap();
        assert_eq!(
            first.fingerprint, second.fingerprint,
            "kept across restarts"
        );
        let on_disk = std::fs::read_to_string(dir.path().join("tls/cert.sha256")).unwrap();
        assert_eq!(on_disk.trim(), first.fingerprint);
        for tickets in [0, 16] {
            server_config(&first, tickets).unwrap();
            quic_config(&first, std::time::Duration::from_secs(10), tickets).unwrap();
        }
    }

    #[test]
    fn configured_certificate_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["chat.example".to_owned()]).unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
        let mut cfg = Config::for_tests(&dir.path().join("data"));
        cfg.tls.cert = Some(cert.clone());
        cfg.tls.key = Some(key);
        let m = load_or_create(&cfg).unwrap();
        assert_eq!(m.fingerprint, hex::encode(Sha256::digest(made.cert.der())));
        assert_eq!(m.cert_path, cert);
        assert!(
            !dir.path().join("data/tls").exists(),
            "no dev certificate was made"
        );

        cfg.tls.key = Some(dir.path().join("missing.pem"));
        assert!(matches!(load_or_create(&cfg), Err(TlsError::Io { .. })));
    }
}
