//! TLS from an untrusted peer, with the server's own rustls configuration (`tls::server_config`
//! over a development certificate made like the server's, with and without early data): the
//! bytes go to a buffered `rustls::ServerConnection` (`read_tls` + `process_new_packets`, as the
//! HTTPS side's tokio-rustls does) and through the TLS transport's own record handling on
//! rustls' unbuffered API (`transport/tls.rs`, including the early-data gate), in reads of a
//! fuzzed size.

#![no_main]

use std::io::{Read, Write};
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use parley_server::tls::{server_config, TlsMaterial};
use parley_server::transport::fuzzing::tls_reads;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Without early data (the default), and with it (`tls.early_data_tickets > 0`).
fn configs() -> &'static [Arc<rustls::ServerConfig>; 2] {
    static CONFIGS: OnceLock<[Arc<rustls::ServerConfig>; 2]> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        // The development certificate's names (server/src/tls.rs).
        let names = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        let cert = rcgen::generate_simple_self_signed(names).expect("certificate");
        let material = TlsMaterial {
            certs: vec![CertificateDer::from(cert.cert.der().to_vec())],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der())),
            fingerprint: String::new(),
            cert_path: Default::default(),
        };
        [
            server_config(&material, 0).expect("config"),
            server_config(&material, 16).expect("config with early data"),
        ]
    })
}

fn buffered(config: Arc<rustls::ServerConfig>, reads: &[&[u8]]) {
    let Ok(mut conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut sink = Vec::new();
    let mut plain = [0u8; 4096];
    for read in reads {
        let mut rest = *read;
        while !rest.is_empty() {
            match conn.read_tls(&mut rest) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if conn.process_new_packets().is_err() {
                let _ = conn.write_tls(&mut sink);
                return;
            }
            while let Ok(n) = conn.reader().read(&mut plain) {
                if n == 0 {
                    break;
                }
            }
            if !conn.is_handshaking() {
                let _ = conn.writer().write_all(b"pong");
            }
            while conn.wants_write() {
                sink.clear();
                if conn.write_tls(&mut sink).is_err() {
                    return;
                }
            }
        }
    }
    conn.send_close_notify();
    let _ = conn.write_tls(&mut sink);
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, data)) = data.split_first() else {
        return;
    };
    let config = &configs()[usize::from(first & 1)];
    let size = match usize::from(first >> 1) {
        0 => data.len().max(1),
        n => n * 11,
    };
    let reads: Vec<&[u8]> = data.chunks(size).collect();
    buffered(config.clone(), &reads);
    let _ = tls_reads(config.clone(), reads.iter().copied(), b"pong");
});
