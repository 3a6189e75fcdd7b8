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
    /// File uploads and downloads (docs/files.md).
    pub files: FilesConfig,
    /// The admin API.
    pub admin: AdminConfig,
    /// The HTTP listeners' TLS.
    pub http: HttpConfig,
    /// Password logins and registrations: the hashing queue and brute-force throttling.
    pub login: LoginConfig,
    /// The seed dialects under `/compat` (docs/dialects.md).
    pub compat: parley_admin_http::compat::CompatConfig,
}

/// The admin API (`/admin/v1` on the private HTTP surface; docs/operations.md).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// The bearer token the admin API requires (at least 16 characters, no whitespace; compared
    /// in constant time). Unset: the admin API is disabled and answers `403 ADMIN_DISABLED`.
    pub token: Option<String>,
    /// Account name of the server account that writes announcements and the operator's
    /// disbands (made on first use, with no password; an existing user's account of that name
    /// is never borrowed).
    pub announcer: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            token: None,
            announcer: "system".to_owned(),
        }
    }
}

/// The HTTP listeners: TLS with the server's certificate (`[tls]`, or the development one),
/// and the limits of every HTTP connection (docs/security.md, "HTTP connections and
/// descriptors").
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Serve HTTPS on `listen.http` (the public surface, and the private one when
    /// `listen.http_private` is empty).
    pub tls: bool,
    /// Serve HTTPS on `listen.http_private`.
    pub private_tls: bool,
    /// Time a request head (request line and headers) has from its first byte to its last;
    /// then the connection is closed.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// A connection with no request in progress and no byte moving this long is closed
    /// (keep-alive between requests, a client that sends nothing, a response left unread).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A request body that sends nothing this long ends with `408` and a close. Per stall, not
    /// per body: an upload goes on as long as its bytes flow.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// Connections one HTTP listener serves at once; more are refused at accept (`503` on
    /// plain HTTP, a close on HTTPS). All HTTP listeners together also stay within their share
    /// of the descriptor budget (`limits.fd_reserve`).
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        let limits = parley_admin_http::ops::HttpLimits::default();
        Self {
            tls: false,
            private_tls: false,
            header_timeout: limits.header_timeout,
            idle_timeout: limits.idle_timeout,
            body_timeout: limits.body_timeout,
            max_connections: limits.max_connections,
        }
    }
}

impl HttpConfig {
    /// The limits every HTTP listener applies to its connections.
    pub fn limits(&self) -> parley_admin_http::ops::HttpLimits {
        parley_admin_http::ops::HttpLimits {
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            body_timeout: self.body_timeout,
            max_connections: self.max_connections,
        }
    }
}

/// Files: contents in content-addressed blobs on disk, metadata in the store (docs/files.md).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilesConfig {
    /// Where blobs, thumbnails and uploads in progress live (empty: `<data_dir>/files`).
    pub dir: PathBuf,
    /// Largest file accepted, in bytes (larger uploads get 413).
    pub max_bytes: u64,
    /// How long a resumable upload may sit unfinished before it is deleted.
    #[serde(with = "humantime_serde")]
    pub upload_ttl: Duration,
    /// Resumable uploads in progress per user.
    pub max_uploads_per_user: usize,
}

impl Default for FilesConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::new(),
            max_bytes: 2 << 30,
            upload_ttl: Duration::from_secs(24 * 3600),
            max_uploads_per_user: 16,
        }
    }
}

impl FilesConfig {
    /// The files directory: `dir`, or `<data_dir>/files`.
    pub fn dir(&self, data_dir: &Path) -> PathBuf {
        match self.dir.as_os_str().is_empty() {
            true => data_dir.join("files"),
            false => self.dir.clone(),
        }
    }
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
    /// Whether `CreateGroup` and `ChangeMembers` put a user into a group only with its consent
    /// (`true`: directly only friends and users whose settings accept anyone; everyone else is
    /// invited and joins by accepting; docs/security.md), the default. `false`: anyone may put
    /// anyone in.
    pub group_adds_need_consent: bool,
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            strangers_may_chat: true,
            group_adds_need_consent: true,
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
    /// The private HTTP surface (`/metrics`, `/api/v1/stats`, `/admin/v1`). Empty (the
    /// default): `listen.http` serves both surfaces. Set: the private routes are served only
    /// here, and `listen.http` serves the public ones.
    pub http_private: Vec<SocketAddr>,
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
    /// 0-RTT for returning TLS and QUIC clients (docs/protocol.md, "Early data (0-RTT)"): how
    /// many single-use resumption tickets the server keeps, per transport (about 250 bytes
    /// each, one per connected device). 0, the default, turns early data off and keeps the
    /// stateless tickets, which cost no server memory.
    pub early_data_tickets: usize,
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
    /// Upper bound of one sync page's encoded size, in bytes: every field (conversations with
    /// their members and profiles, messages, receipts) counts; a user in many conversations
    /// gets several pages (docs/protocol.md, section 10). At most 4 MiB.
    pub max_sync_bytes: u32,
    /// Sustained requests per second per connection (bursts of twice as many); 0 = unlimited.
    pub requests_per_second: u32,
    /// Pushes queued per session before it is marked lagging.
    pub outbound_queue: usize,
    /// Bytes of pushes queued per session before it is marked lagging (whichever of this and
    /// `outbound_queue` comes first; docs/security.md, "Smaller limits").
    pub outbound_queue_bytes: u32,
    /// At most one typing notice per sender and conversation is relayed in this many ms; the
    /// others are answered `Ok` and dropped (docs/security.md, "Smaller limits").
    pub typing_interval_ms: u64,
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
    /// Groups one account may create a minute, sustained (docs/security.md).
    pub groups_per_minute: u32,
    /// Groups one account may create at once before the rate applies.
    pub groups_burst: u32,
    /// Members one account may put into groups a minute (initial members of `CreateGroup`
    /// and `ChangeMembers` adds), sustained.
    pub group_adds_per_minute: u32,
    /// Members one account may add at once before the rate applies (one larger request still
    /// passes, and the account then waits it off).
    pub group_adds_burst: u32,
    /// File descriptors kept out of the connection budget for the store, the message log,
    /// files being streamed and the search index: the budget is the process's descriptor limit
    /// (`RLIMIT_NOFILE`) less those open at start and this reserve (docs/security.md, "HTTP
    /// connections and descriptors").
    pub fd_reserve: usize,
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
    /// Whether new accounts may register (a runtime setting: an admin may change it while the
    /// server runs, and the stored change then overrides this; core/settings.rs).
    pub registration_open: bool,
}

/// Store tuning.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// sled page cache, in MiB.
    pub cache_mib: u64,
}

/// Password logins and registrations (docs/security.md): the password-hashing queue, and the
/// throttling of failed password attempts per source address and per (account, address).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginConfig {
    /// Password hashes computed at once (each takes ~19 MiB and a core); 0 = one per core.
    pub hash_workers: usize,
    /// Hashes waiting for a worker; beyond it a password request is refused at once with
    /// `RATE_LIMITED` and a retry advice.
    pub hash_queue: usize,
    /// Running and waiting hashes of one source address (IPv4 address or IPv6 /64).
    pub hash_per_source: usize,
    /// Failed password attempts from one address, on any accounts, before it has to wait.
    pub source_failures: u32,
    /// Failed password attempts from one address on one account before that address has to
    /// wait for that account (other addresses are not affected).
    pub account_failures: u32,
    /// The first wait; each further failure doubles it.
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    /// The longest wait.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Failures are forgotten this long after the last one (at least `backoff_max`).
    #[serde(with = "humantime_serde")]
    pub forget_after: Duration,
    /// Most source addresses tracked (a full table drops the entries with the fewest failures).
    pub max_tracked_sources: usize,
    /// Most (account, address) pairs tracked.
    pub max_tracked_pairs: usize,
}

impl Default for LoginConfig {
    fn default() -> Self {
        Self {
            hash_workers: 0,
            hash_queue: 64,
            hash_per_source: 2,
            source_failures: 20,
            account_failures: 5,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(15 * 60),
            forget_after: Duration::from_secs(3600),
            max_tracked_sources: 65_536,
            max_tracked_pairs: 65_536,
        }
    }
}

impl LoginConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.hash_per_source == 0 || self.source_failures == 0 || self.account_failures == 0 {
            return bad(
                "login.hash_per_source, login.source_failures and login.account_failures must be positive",
            );
        }
        if self.backoff_base.is_zero() || self.backoff_max < self.backoff_base {
            return bad("login.backoff_base must be positive and at most login.backoff_max");
        }
        if self.forget_after < self.backoff_max {
            return bad("login.forget_after must be at least login.backoff_max");
        }
        if self.max_tracked_sources == 0 || self.max_tracked_pairs == 0 {
            return bad("login.max_tracked_sources and login.max_tracked_pairs must be positive");
        }
        Ok(())
    }
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
            files: FilesConfig::default(),
            admin: AdminConfig::default(),
            http: HttpConfig::default(),
            login: LoginConfig::default(),
            compat: parley_admin_http::compat::CompatConfig::default(),
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
            http_private: vec![],
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
            outbound_queue_bytes: 2 * 1024 * 1024,
            typing_interval_ms: 1000,
            max_connections: 100_000,
            max_group_members: 10_000,
            recall_window_ms: 120_000,
            call_ring_ms: 60_000,
            commit_queue: 16 * 1024,
            commit_batch: 4096,
            groups_per_minute: 600,
            groups_burst: 2000,
            group_adds_per_minute: 300,
            group_adds_burst: 1000,
            fd_reserve: 256,
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
            registration_open: true,
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
        self.login.validate()?;
        self.compat.validate().map_err(ConfigError::Invalid)?;
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
        // Clients accept frames of up to 16 MiB (and the JSON of the WebSocket fallback is
        // larger than the protobuf): a page stays well under that.
        if l.max_sync_bytes > 4 * 1024 * 1024 {
            return bad("limits.max_sync_bytes must be at most 4 MiB");
        }
        // The first conversation of a sync page always goes in whole with one entry: its info
        // (members, group profile), every member's receipt, and a message of the largest size.
        if (l.max_sync_bytes as usize) < crate::core::sync_unit_bound(l) {
            return bad(&format!(
                "limits.max_sync_bytes must be at least {} for these limits.max_group_members \
                 and limits.max_message_bytes (a page must fit one group's listing, receipts \
                 and one message)",
                crate::core::sync_unit_bound(l)
            ));
        }
        if l.default_sync_page == 0 || l.default_sync_page > l.max_sync_page {
            return bad("limits.default_sync_page must be in 1..=limits.max_sync_page");
        }
        if l.max_inflight_sends == 0
            || l.outbound_queue == 0
            || l.outbound_queue_bytes == 0
            || l.max_connections == 0
            || l.commit_queue == 0
            || l.commit_batch == 0
            || l.max_group_members < 2
            || l.groups_per_minute == 0
            || l.groups_burst == 0
            || l.group_adds_per_minute == 0
            || l.group_adds_burst == 0
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
        let f = &self.files;
        if f.max_bytes == 0 || f.upload_ttl.is_zero() || f.max_uploads_per_user == 0 {
            return bad(
                "files.max_bytes, files.upload_ttl and files.max_uploads_per_user must be positive",
            );
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return bad("tls.cert and tls.key must be given together");
        }
        let l = &self.listen;
        if l.tls.is_empty() && l.tcp.is_empty() && l.quic.is_empty() {
            return bad("at least one of listen.tls, listen.tcp, listen.quic is needed");
        }
        if let Some(token) = &self.admin.token {
            if token.len() < 16 || token.chars().any(char::is_whitespace) {
                return bad("admin.token must be at least 16 characters, without whitespace");
            }
        }
        if parley_protocol::ids::Account::try_from(self.admin.announcer.as_str()).is_err() {
            return bad("admin.announcer must be 3..=64 characters of [A-Za-z0-9_.-]");
        }
        if self.http.private_tls && l.http_private.is_empty() {
            return bad("http.private_tls needs listen.http_private");
        }
        let h = &self.http;
        if h.header_timeout.is_zero()
            || h.idle_timeout.is_zero()
            || h.body_timeout.is_zero()
            || h.max_connections == 0
        {
            return bad(
                "http.header_timeout, http.idle_timeout, http.body_timeout and \
                 http.max_connections must be positive",
            );
        }
        Ok(())
    }

    /// The configuration as JSON with its secrets replaced by `"[redacted]"` (for the admin
    /// API): every key naming a token, password, secret or key, and the user info and query
    /// of the push webhook's URL (where credentials hide).
    pub fn redacted(&self) -> serde_json::Value {
        fn secret(key: &str) -> bool {
            ["token", "password", "secret", "key"]
                .iter()
                .any(|word| key.contains(word))
        }
        fn walk(v: &mut serde_json::Value) {
            match v {
                serde_json::Value::Object(map) => {
                    for (k, v) in map.iter_mut() {
                        if secret(k) && !v.is_null() {
                            *v = serde_json::Value::from(REDACTED);
                        } else {
                            walk(v);
                        }
                    }
                }
                serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
                _ => {}
            }
        }
        let mut v = serde_json::to_value(self).unwrap_or_default();
        walk(&mut v);
        if let Some(hook) = v.pointer_mut("/push/webhook") {
            if let Some(url) = hook.as_str() {
                *hook = serde_json::Value::from(redact_url(url));
            }
        }
        v
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
                http_private: vec![],
            },
            store: StoreConfig { cache_mib: 16 },
            // Sessions sleep between almost any two requests, so every test that talks to a
            // server also exercises sleeping and waking.
            heartbeat: HeartbeatSettings {
                park_after: Duration::from_millis(20),
                ..HeartbeatSettings::default()
            },
            // Many integration tests (and the dialects' tests) were written when anyone could
            // put anyone into a group; tests of consent turn it on (server/tests/sync_abuse.rs).
            // The server's own default is on.
            rules: RulesConfig {
                group_adds_need_consent: false,
                ..RulesConfig::default()
            },
            ..Config::default()
        }
    }
}

/// What stands in for a secret in [`Config::redacted`].
pub const REDACTED: &str = "[redacted]";

/// `url` without user info and query: `https://user:pw@host/p?k=v` becomes
/// `https://[redacted]@host/p?[redacted]`.
fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (before_query, query) = match rest.split_once('?') {
        Some((b, _)) => (b, Some(REDACTED)),
        None => (rest, None),
    };
    let authority_end = before_query.find('/').unwrap_or(before_query.len());
    let (authority, path) = before_query.split_at(authority_end);
    let host = match authority.rsplit_once('@') {
        Some((_, host)) => format!("{REDACTED}@{host}"),
        None => authority.to_owned(),
    };
    let mut out = if scheme.is_empty() {
        format!("{host}{path}")
    } else {
        format!("{scheme}://{host}{path}")
    };
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_config_hides_secrets() {
        let mut cfg = Config::default();
        cfg.admin.token = Some("a-very-secret-admin-token".into());
        cfg.tls.key = Some("/etc/parley/key.pem".into());
        cfg.push.webhook = "https://user:pw@push.example/hook?sig=abc".into();
        let v = cfg.redacted();
        let text = v.to_string();
        assert!(!text.contains("a-very-secret-admin-token"), "{text}");
        assert!(!text.contains("key.pem"), "{text}");
        assert!(!text.contains("pw@") && !text.contains("sig=abc"), "{text}");
        assert_eq!(v["admin"]["token"], REDACTED);
        assert_eq!(
            v["push"]["webhook"],
            "https://[redacted]@push.example/hook?[redacted]"
        );
        // Everything else is there as configured.
        assert_eq!(v["limits"]["max_frame_bytes"], cfg.limits.max_frame_bytes);
        assert_eq!(v["admin"]["announcer"], "system");
        // Nothing to hide: left alone.
        let plain = Config::default().redacted();
        assert!(plain["admin"]["token"].is_null());
        assert_eq!(plain["push"]["webhook"], "");
    }

    #[test]
    fn admin_and_http_settings_are_checked() {
        let mut cfg = Config::default();
        cfg.admin.token = Some("short".into());
        assert!(cfg.validate().is_err());
        cfg.admin.token = Some("0123456789abcdef".into());
        cfg.validate().unwrap();
        cfg.admin.announcer = "no spaces allowed".into();
        assert!(cfg.validate().is_err());
        let mut cfg = Config::default();
        cfg.http.private_tls = true;
        assert!(cfg.validate().is_err());
        cfg.listen.http_private = vec![addr("127.0.0.1:7481")];
        cfg.validate().unwrap();
        let cfg = Config::from_toml(
            "[listen]\nhttp_private = [\"127.0.0.1:7481\"]\n[http]\ntls = true\n[admin]\ntoken = \"0123456789abcdef\"\n",
        )
        .unwrap();
        assert!(cfg.http.tls && !cfg.http.private_tls);
        assert_eq!(cfg.admin.token.as_deref(), Some("0123456789abcdef"));
    }

    #[test]
    fn http_limits_are_checked() {
        let cfg = Config::from_toml(
            "[http]\nheader_timeout = \"2s\"\nidle_timeout = \"5s\"\nbody_timeout = \"3s\"\n\
             max_connections = 8\n[limits]\nfd_reserve = 32\n",
        )
        .unwrap();
        cfg.validate().unwrap();
        let limits = cfg.http.limits();
        assert_eq!(limits.header_timeout, Duration::from_secs(2));
        assert_eq!(limits.idle_timeout, Duration::from_secs(5));
        assert_eq!(limits.body_timeout, Duration::from_secs(3));
        assert_eq!((limits.max_connections, cfg.limits.fd_reserve), (8, 32));
        let mut cfg = Config::default();
        cfg.http.body_timeout = Duration::ZERO;
        assert!(cfg.validate().is_err());
        let mut cfg = Config::default();
        cfg.http.max_connections = 0;
        assert!(cfg.validate().is_err());
    }

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
        // A sync page must hold one such message besides a group's listing.
        cfg.limits.max_sync_bytes = 2 << 20;
        cfg.limits.commit_batch = 4096;
        assert!(cfg.validate().is_err());
        cfg.limits.commit_batch = 1024;
        assert!(cfg.validate().is_ok());
        // A session's unacknowledged sends must fit in the idempotency window.
        cfg.limits.max_inflight_sends = crate::store::IDEMPOTENCY_WINDOW as u32 + 1;
        assert!(cfg.validate().is_err());
    }

    #[test]
    fn sync_page_and_group_rate_limits_are_checked() {
        let mut cfg = Config::default();
        cfg.limits.max_sync_bytes = 5 << 20; // over the 4 MiB bound
        assert!(cfg.validate().is_err());
        let mut cfg = Config::default();
        cfg.limits.max_group_members = 100_000; // one group's listing would not fit a page
        assert!(cfg.validate().is_err());
        cfg.limits.max_sync_bytes = 4 << 20;
        cfg.limits.max_group_members = 50_000;
        assert!(cfg.validate().is_ok());
        let mut cfg = Config::default();
        cfg.limits.group_adds_burst = 0;
        assert!(cfg.validate().is_err());
    }

    #[test]
    fn login_settings_are_checked() {
        let mut cfg = Config::default();
        cfg.login.forget_after = cfg.login.backoff_max / 2;
        assert!(cfg.validate().is_err());
        let mut cfg = Config::default();
        cfg.login.hash_per_source = 0;
        assert!(cfg.validate().is_err());
        let mut cfg = Config::default();
        cfg.login.backoff_base = Duration::ZERO;
        assert!(cfg.validate().is_err());
        let cfg = Config::from_toml("[login]\nhash_queue = 0\nbackoff_max = \"1m\"\n").unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.login.backoff_max, Duration::from_secs(60));
    }

    #[test]
    fn example_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/parley.example.toml");
        let cfg = Config::from_file(&path).unwrap();
        cfg.validate().unwrap();
    }
}
