//! What the client needs to know before connecting: where, how, whom to trust, who it is.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use parley_protocol::frames::{Device, Platform};
use parley_protocol::ids::{Account, ConversationId, DeviceId, Seq};

use crate::error::ClientError;

/// Which transport carries the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// TLS over TCP (ALPN `parley/1`).
    Tls,
    /// QUIC, one bidirectional stream (ALPN `parley/1`).
    Quic,
    /// Unencrypted TCP: only for benchmarks and local tests, and only if the server enables it.
    PlainTcp,
}

/// How the client decides that the server's certificate is the right one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trust {
    /// Trust this certificate (PEM or DER; for example the server's dev certificate at
    /// `<data_dir>/tls/cert.pem`, or a private CA) as a root, and verify the chain and the server
    /// name as usual.
    CertFile(PathBuf),
    /// Pin the server certificate: the SHA-256 of its DER encoding must equal this (for example
    /// the contents of `<data_dir>/tls/cert.sha256`). The server name and the chain are not
    /// checked: the pin is the whole trust decision. See [`parse_fingerprint`].
    Fingerprint([u8; 32]),
}

/// Parses a SHA-256 fingerprint written as 64 hex digits, optionally separated by `:` (as
/// `openssl x509 -fingerprint` prints it) and surrounded by whitespace; case is ignored.
pub fn parse_fingerprint(s: &str) -> Result<[u8; 32], ClientError> {
    let digits: String = s.trim().chars().filter(|c| *c != ':').collect();
    let mut out = [0u8; 32];
    hex::decode_to_slice(&digits, &mut out).map_err(|e| {
        ClientError::Config(format!(
            "a certificate fingerprint must be 64 hex digits (SHA-256): {e}"
        ))
    })?;
    Ok(out)
}

/// How the first login proves who the user is. Later logins (after a reconnect) use the tokens
/// the server handed out; the password is not kept.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Create the account, then log in.
    Register {
        /// Login name.
        account: Account,
        /// Password (at least 8 bytes on the default server).
        password: String,
    },
    /// Log in with a password.
    Password {
        /// Login name.
        account: Account,
        /// Password.
        password: String,
    },
    /// Log in with an access token from an earlier [`LoginResult`](parley_protocol::frames::LoginResult).
    Token(String),
    /// Log in as a new temporary guest account (limited rights; reconnects use its tokens).
    Guest {
        /// Shown as its nickname (may be empty).
        nickname: String,
    },
}

impl std::fmt::Debug for Credentials {
    // Never print secrets into logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Register { account, .. } => write!(f, "Register({account})"),
            Credentials::Password { account, .. } => write!(f, "Password({account})"),
            Credentials::Token(_) => f.write_str("Token(..)"),
            Credentials::Guest { nickname } => write!(f, "Guest({nickname:?})"),
        }
    }
}

/// Where the application's copy of the history ends, so that sync fetches only what is newer.
/// The default (nothing held) fetches every conversation's visible history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resume {
    /// Store epoch the positions refer to (0 = none).
    pub epoch: u64,
    /// Highest seq the application holds, per conversation.
    pub positions: Vec<(ConversationId, Seq)>,
}

/// Connection settings. Build with [`ClientConfig::new`] and adjust the public fields.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Server address.
    pub addr: SocketAddr,
    /// Transport to use.
    pub transport: Transport,
    /// Name the server certificate must be valid for (default `localhost`, the dev
    /// certificate's name).
    pub server_name: String,
    /// Trust anchor for TLS and QUIC (ignored by [`Transport::PlainTcp`]).
    pub trust: Trust,
    /// This device.
    pub device: Device,
    /// Reconnect automatically after the connection is lost (default true).
    pub reconnect: bool,
    /// Give up after this many failed reconnect attempts in a row (default: never).
    pub max_reconnect_attempts: Option<u32>,
    /// First reconnect delay (default 1 s); doubles per failed attempt, with jitter.
    pub backoff_base: Duration,
    /// Longest reconnect delay (default 30 s).
    pub backoff_max: Duration,
    /// Time limit for connecting, logging in, and each request other than `send` (default 30 s).
    pub request_timeout: Duration,
    /// How long a gap in a conversation's seqs may persist before the client syncs (default 1 s).
    pub gap_timeout: Duration,
    /// Capacity of the event channel (default 1024).
    pub event_capacity: usize,
    /// Where the application's history ends (default: nothing held).
    pub resume: Resume,
}

impl ClientConfig {
    /// Defaults for everything but the address, transport, trust and device id. The device
    /// platform defaults to [`Platform::Unspecified`]; set `device.platform` to say more.
    pub fn new(addr: SocketAddr, transport: Transport, trust: Trust, device_id: DeviceId) -> Self {
        Self {
            addr,
            transport,
            server_name: "localhost".to_owned(),
            trust,
            device: Device {
                id: device_id,
                platform: Platform::Unspecified,
            },
            reconnect: true,
            max_reconnect_attempts: None,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            gap_timeout: Duration::from_secs(1),
            event_capacity: 1024,
            resume: Resume::default(),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), ClientError> {
        if self.event_capacity == 0 {
            return Err(ClientError::Config(
                "event_capacity must be at least 1".into(),
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(ClientError::Config(
                "request_timeout must be positive".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ClientConfig {
        ClientConfig::new(
            "127.0.0.1:7400".parse().unwrap(),
            Transport::Tls,
            Trust::Fingerprint([7; 32]),
            DeviceId::try_from("laptop").unwrap(),
        )
    }

    #[test]
    fn defaults() {
        let c = config();
        assert_eq!(c.server_name, "localhost");
        assert!(c.reconnect);
        assert_eq!(c.max_reconnect_attempts, None);
        assert_eq!(c.backoff_base, Duration::from_secs(1));
        assert_eq!(c.backoff_max, Duration::from_secs(30));
        assert_eq!(c.request_timeout, Duration::from_secs(30));
        assert_eq!(c.gap_timeout, Duration::from_secs(1));
        assert_eq!(c.event_capacity, 1024);
        assert_eq!(c.device.id.as_str(), "laptop");
        assert_eq!(c.device.platform, Platform::Unspecified);
        assert_eq!(c.resume, Resume::default());
        assert!(c.validate().is_ok());
    }

    #[test]
    fn zero_capacity_is_rejected() {
        let mut c = config();
        c.event_capacity = 0;
        assert!(matches!(c.validate(), Err(ClientError::Config(_))));
    }

    #[test]
    fn fingerprints_parse() {
        let plain = "00ff".repeat(16);
        let fp = parse_fingerprint(&plain).unwrap();
        assert_eq!(fp[0], 0x00);
        assert_eq!(fp[1], 0xff);
        let colons = plain
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap().to_uppercase())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(parse_fingerprint(&format!("  {colons}\n")).unwrap(), fp);
    }

    #[test]
    fn bad_fingerprints_are_rejected() {
        assert!(parse_fingerprint("").is_err());
        assert!(parse_fingerprint(&"ab".repeat(31)).is_err());
        assert!(parse_fingerprint(&"ab".repeat(33)).is_err());
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn credentials_debug_hides_secrets() {
        let c = Credentials::Password {
            account: Account::try_from("alice").unwrap(),
            password: "hunter22".into(),
        };
        assert!(!format!("{c:?}").contains("hunter22"));
        assert!(!format!("{:?}", Credentials::Token("secret".into())).contains("secret"));
    }
}
