//! Server configuration: one serde struct with embedded defaults, unknown keys rejected, and
//! validation before any socket is bound.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything the server can be configured with. Every field has a default, so an empty file
/// (or none) is a valid configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the store, the dev certificate and files live.
    pub data_dir: PathBuf,
    /// This node's number, carried in every session id (0 on a single node; a router spanning
    /// several nodes tells them apart by it).
    pub node_id: u16,
    /// Listening addresses.
    pub listen: ListenConfig,
    /// Certificates.
    pub tls: TlsConfig,
    /// Limits announced to clients and enforced.
    pub limits: LimitsConfig,
    /// Liveness.
    pub heartbeat: HeartbeatSettings,
    /// Tokens.
    pub auth: AuthConfig,
    /// Store tuning.
    pub store: StoreConfig,
    /// Who may talk to whom.
    pub rules: RulesConfig,
    /// Offline push.
    pub push: PushConfig,
    /// Full-text search over messages.
    pub search: SearchConfig,
    /// How long shutdown waits for sessions to drain.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
}

/// Full-text search over messages (an index in `<data_dir>/search/`, derived from the log and
/// rebuilt from it if deleted). Indexing costs CPU per text message (docs/BENCHMARKS.md).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// Index messages and answer `SearchMessages` (false: the request gets `FORBIDDEN`).
    pub enabled: bool,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// Offline push: messages for users with no connected device are POSTed (as JSON, with the
/// users' push tokens) to a webhook that forwards them to APNs, FCM or the like.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    /// The webhook's URL (http or https); empty: no offline push.
    pub webhook: String,
    /// Notifications waiting to be posted; beyond it new ones are dropped (and counted), never
    /// waited for.
    pub queue: usize,
    /// Posts in flight at once.
    pub concurrency: usize,
    /// Attempts per notification (with doubling backoff from 200 ms between them).
    pub attempts: u32,
    /// Time limit of one post.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            webhook: String::new(),
            queue: 10_000,
            concurrency: 16,
            attempts: 5,
            timeout: Duration::from_secs(5),
        }
    }
}

/// Who may talk to whom.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Whether users who are not friends may start and use a 1:1 conversation (`false`: only
    /// friends; others get `NOT_FRIENDS`).
    pub strangers_may_chat: bool,
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            strangers_may_chat: true,
        }
    }
}

/// Listening addresses per transport; an empty list disables the transport.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenConfig {
    /// TLS over TCP (the default transport).
    pub tls: Vec<SocketAddr>,
    /// Plain TCP, no encryption: for local benchmarking only.
    pub tcp: Vec<SocketAddr>,
    /// QUIC (UDP).
    pub quic: Vec<SocketAddr>,
    /// The HTTP side-service (health, stats).
    pub http: Vec<SocketAddr>,
}

/// Certificate and key (PEM). Without them a self-signed development certificate is created in
/// `<data_dir>/tls/` at first start and reused afterwards.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Certificate chain, PEM.
    pub cert: Option<PathBuf>,
    /// Private key, PEM.
    pub key: Option<PathBuf>,
}

/// Limits.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest frame accepted after login.
    pub max_frame_bytes: u32,
    /// Largest message content.
    pub max_message_bytes: u32,
    /// Unacknowledged sends per session before the server stops reading from it.
    pub max_inflight_sends: u32,
    /// Upper bound of a sync page, in messages.
    pub max_sync_page: u32,
    /// Sync page when the client asks for 0.
    pub default_sync_page: u32,
    /// Approximate upper bound of the messages in one sync page, in bytes (a page always
    /// carries at least one message).
    pub max_sync_bytes: u32,
    /// Sustained requests per second per connection (bursts of twice as many); 0 = unlimited.
    pub requests_per_second: u32,
    /// Pushes queued per session before it is marked lagging.
    pub outbound_queue: usize,
    /// Concurrent connections over all transports.
    pub max_connections: usize,
    /// Members of one group.
    pub max_group_members: usize,
    /// How long after sending its sender may recall a message, in ms (owners and managers of
    /// a group may recall any time).
    pub recall_window_ms: u64,
    /// How long a call rings before it ends as missed, in ms.
    pub call_ring_ms: u64,
    /// Sends queued for the committer over all sessions.
    pub commit_queue: usize,
    /// Most sends written and fsync'd together.
    pub commit_batch: usize,
}

/// Heartbeat and handshake timing.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeartbeatSettings {
    /// Clients ping when idle this long (announced at login).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Silence after which a connection is closed (announced at login).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Time to complete TLS/QUIC handshakes and log in.
    #[serde(with = "humantime_serde")]
    pub login_timeout: Duration,
    /// A logged-in TCP or TLS session with nothing to do this long goes to sleep: it gives up
    /// its task and its socket's registration with the runtime until a frame, a push or its
    /// heartbeat deadline wakes it (idle memory per connection; 0 = never).
    #[serde(with = "humantime_serde")]
    pub park_after: Duration,
}

/// Token lifetimes.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Access token lifetime (desktop, command line, unspecified platforms).
    #[serde(with = "humantime_serde")]
    pub access_ttl: Duration,
    /// Refresh token lifetime (desktop, command line, unspecified platforms).
    #[serde(with = "humantime_serde")]
    pub refresh_ttl: Duration,
    /// Access token lifetime of web clients (shorter: browsers are shared and leak).
    #[serde(with = "humantime_serde")]
    pub web_access_ttl: Duration,
    /// Refresh token lifetime of web clients.
    #[serde(with = "humantime_serde")]
    pub web_refresh_ttl: Duration,
    /// Access token lifetime of iOS and Android clients.
    #[serde(with = "humantime_serde")]
    pub mobile_access_ttl: Duration,
    /// Refresh token lifetime of iOS and Android clients (longer: phones stay logged in).
    #[serde(with = "humantime_serde")]
    pub mobile_refresh_ttl: Duration,
}

/// Store tuning.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// sled page cache, in MiB.
    pub cache_mib: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            node_id: 0,
            listen: ListenConfig::default(),
            tls: TlsConfig::default(),
            limits: LimitsConfig::default(),
            heartbeat: HeartbeatSettings::default(),
            auth: AuthConfig::default(),
            store: StoreConfig::default(),
            rules: RulesConfig::default(),
            push: PushConfig::default(),
            search: SearchConfig::default(),
            drain_timeout: Duration::from_secs(5),
        }
    }
}

fn addr(s: &str) -> SocketAddr {
    // Literal constants below; parsing them cannot fail.
    s.parse().unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            tls: vec![addr("0.0.0.0:7400")],
            tcp: vec![],
            quic: vec![addr("0.0.0.0:7400")],
            http: vec![addr("127.0.0.1:7480")],
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: 128 * 1024,
            max_message_bytes: 64 * 1024,
            max_inflight_sends: 256,
            max_sync_page: 1000,
            default_sync_page: 200,
            max_sync_bytes: 1024 * 1024,
            requests_per_second: 2000,
            outbound_queue: 1024,
            max_connections: 100_000,
            max_group_members: 10_000,
            recall_window_ms: 120_000,
            call_ring_ms: 60_000,
            commit_queue: 16 * 1024,
            commit_batch: 4096,
        }
    }
}

impl Default for HeartbeatSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(90),
            login_timeout: Duration::from_secs(10),
            park_after: Duration::from_secs(1),
        }
    }
}

impl AuthConfig {
    /// Access and refresh token lifetimes for a platform.
    pub fn ttls(&self, platform: parley_protocol::frames::Platform) -> (Duration, Duration) {
        use parley_protocol::frames::Platform;
        match platform {
            Platform::Web => (self.web_access_ttl, self.web_refresh_ttl),
            Platform::Ios | Platform::Android => (self.mobile_access_ttl, self.mobile_refresh_ttl),
            _ => (self.access_ttl, self.refresh_ttl),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            access_ttl: Duration::from_secs(2 * 3600),
            refresh_ttl: Duration::from_secs(7 * 24 * 3600),
            web_access_ttl: Duration::from_secs(3600),
            web_refresh_ttl: Duration::from_secs(24 * 3600),
            mobile_access_ttl: Duration::from_secs(2 * 3600),
            mobile_refresh_ttl: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self { cache_mib: 256 }
    }
}

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this struct.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// File.
        path: PathBuf,
        /// Why.
        source: Box<toml::de::Error>,
    },
    /// A value is out of range.
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    /// The defaults as TOML, for `--print-default-config`.
    pub fn default_toml() -> String {
        toml::to_string_pretty(&Config::default()).unwrap_or_default()
    }

    /// Checks values that serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        let p = &self.push;
        let web = p.webhook.starts_with("http://") || p.webhook.starts_with("https://");
        if !p.webhook.is_empty() && !web {
            return bad("push.webhook must be an http:// or https:// URL, or empty");
        }
        if p.queue == 0 || p.concurrency == 0 || p.attempts == 0 || p.timeout.is_zero() {
            return bad(
                "push.queue, push.concurrency, push.attempts and push.timeout must be positive",
            );
        }
        if l.max_message_bytes == 0 || l.max_frame_bytes < l.max_message_bytes + 1024 {
            return bad("limits.max_frame_bytes must exceed limits.max_message_bytes by 1 KiB");
        }
        if l.max_frame_bytes > 16 * 1024 * 1024 {
            return bad("limits.max_frame_bytes must be at most 16 MiB");
        }
        if l.max_sync_bytes < l.max_message_bytes {
            return bad("limits.max_sync_bytes must be at least limits.max_message_bytes");
        }
        if l.default_sync_page == 0 || l.default_sync_page > l.max_sync_page {
            return bad("limits.default_sync_page must be in 1..=limits.max_sync_page");
        }
        if l.max_inflight_sends == 0
            || l.outbound_queue == 0
            || l.max_connections == 0
            || l.commit_queue == 0
            || l.commit_batch == 0
            || l.max_group_members < 2
        {
            return bad("limits must be positive (max_group_members at least 2)");
        }
        // A retry is recognised among the sender's last IDEMPOTENCY_WINDOW messages; one session
        // alone must not be able to push its own unacknowledged sends out of that window.
        if l.max_inflight_sends as usize > crate::store::IDEMPOTENCY_WINDOW {
            return bad(&format!(
                "limits.max_inflight_sends must be at most {}",
                crate::store::IDEMPOTENCY_WINDOW
            ));
        }
        // A batch is one write into one log segment, and positions in a segment are 32-bit.
        if l.commit_batch as u64 * (u64::from(l.max_message_bytes) + 1024) > 2 << 30 {
            return bad("limits.commit_batch x limits.max_message_bytes must stay under 2 GiB");
        }
        let h = &self.heartbeat;
        if h.interval.is_zero() || h.timeout <= h.interval || h.login_timeout.is_zero() {
            return bad("heartbeat.timeout must exceed heartbeat.interval, both non-zero");
        }
        let a = &self.auth;
        let pairs = [
            (a.access_ttl, a.refresh_ttl),
            (a.web_access_ttl, a.web_refresh_ttl),
            (a.mobile_access_ttl, a.mobile_refresh_ttl),
        ];
        if pairs
            .iter()
            .any(|(access, refresh)| access.is_zero() || refresh < access)
        {
            return bad("auth: each refresh_ttl must be at least its access_ttl, both non-zero");
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return bad("tls.cert and tls.key must be given together");
        }
        let l = &self.listen;
        if l.tls.is_empty() && l.tcp.is_empty() && l.quic.is_empty() {
            return bad("at least one of listen.tls, listen.tcp, listen.quic is needed");
        }
        Ok(())
    }

    /// A configuration for tests: every listener on 127.0.0.1 port 0 (plain TCP included), a
    /// given data dir, small caches.
    pub fn for_tests(data_dir: &Path) -> Config {
        let any = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
        Config {
            data_dir: data_dir.to_owned(),
            listen: ListenConfig {
                tls: any.clone(),
                tcp: any.clone(),
                quic: any.clone(),
                http: any,
            },
            store: StoreConfig { cache_mib: 16 },
            // Sessions sleep between almost any two requests, so every test that talks to a
            // server also exercises sleeping and waking.
            heartbeat: HeartbeatSettings {
                park_after: Duration::from_millis(20),
                ..HeartbeatSettings::default()
            },
            ..Config::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_round_trip() {
        let cfg = Config::default();
        cfg.validate().unwrap();
        let text = Config::default_toml();
        let parsed = Config::from_toml(&text).unwrap();
        parsed.validate().unwrap();
        assert_eq!(parsed.listen.tls, cfg.listen.tls);
        assert_eq!(parsed.heartbeat.timeout, cfg.heartbeat.timeout);
    }

    #[test]
    fn empty_and_partial_files_use_defaults() {
        let cfg = Config::from_toml("").unwrap();
        assert_eq!(cfg.data_dir, PathBuf::from("./data"));
        let cfg = Config::from_toml("[heartbeat]\ninterval = \"5s\"\ntimeout = \"15s\"\n").unwrap();
        assert_eq!(cfg.heartbeat.interval, Duration::from_secs(5));
        cfg.validate().unwrap();
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected() {
        assert!(Config::from_toml("datadir = \"x\"").is_err());
        assert!(Config::from_toml("[limits]\nmax_frame = 1").is_err());
        let mut cfg = Config::default();
        cfg.limits.max_frame_bytes = 10;
        assert!(cfg.validate().is_err());
        let mut cfg = Config::default();
        cfg.tls.cert = Some("c.pem".into());
        assert!(cfg.validate().is_err());
        // A batch must fit in one log segment's 32-bit offsets.
        let mut cfg = Config::default();
        cfg.limits.max_message_bytes = 1 << 20;
        cfg.limits.max_frame_bytes = 2 << 20;
        cfg.limits.commit_batch = 4096;
        assert!(cfg.validate().is_err());
        cfg.limits.commit_batch = 1024;
        assert!(cfg.validate().is_ok());
        // A session's unacknowledged sends must fit in the idempotency window.
        cfg.limits.max_inflight_sends = crate::store::IDEMPOTENCY_WINDOW as u32 + 1;
        assert!(cfg.validate().is_err());
    }

    #[test]
    fn example_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/parley.example.toml");
        let cfg = Config::from_file(&path).unwrap();
        cfg.validate().unwrap();
    }
}
