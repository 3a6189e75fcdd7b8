//! Entry points for the fuzz targets (`server/fuzz`): the transport code that reads what peers
//! send, driven without sockets. Not an API: nothing in the server calls these.

use std::io;
use std::sync::Arc;

pub use super::early::{replay_safe, scan, Scan};

/// Runs `reads` (each one read from the peer) through the TLS transport's record handling with
/// `config`, encrypting `reply` whenever application data may flow; the plaintext a session
/// would have read (see `transport::tls`).
pub fn tls_reads<'a>(
    config: Arc<rustls::ServerConfig>,
    reads: impl IntoIterator<Item = &'a [u8]>,
    reply: &[u8],
) -> io::Result<Vec<u8>> {
    super::tls::fuzz_reads(config, reads, reply)
}
