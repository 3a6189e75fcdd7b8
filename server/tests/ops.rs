//! Operations against a real server on port 0: Prometheus metrics after real traffic, the admin
//! API acting on logged-in users (ban, announcement, disband), the private/public listener split,
//! and HTTPS on the HTTP listeners with the development certificate.
#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

mod common;

use std::net::SocketAddr;

use common::{code, next_message, wait_for, TestServer, WAIT};
use parley_client::{Client, Credentials, Event, Transport};
use parley_protocol::frames::{ContentType, ConversationEvent, PeerRef};
use parley_protocol::ids::Account;
use parley_protocol::ErrorCode;
use parley_server::{Config, Server};
use tokio_util::sync::CancellationToken;

const T: Transport = Transport::Tls;
const TOKEN: &str = "test-admin-token-0123456789";

fn with_admin(cfg: &mut Config) {
    cfg.admin.token = Some(TOKEN.to_owned());
}

/// A plain-HTTP client (and the ring provider reqwest's rustls wants).
fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().timeout(WAIT).build().unwrap()
}

async fn get(http: &reqwest::Client, url: String, token: Option<&str>) -> (u16, String) {
    let mut req = http.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn post(http: &reqwest::Client, url: String, body: Option<&str>) -> (u16, String) {
    let mut req = http.post(url).bearer_auth(TOKEN);
    if let Some(json) = body {
        req = req
            .header("content-type", "application/json")
            .body(json.to_owned());
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// Polls `/ready` until it answers 200 (the server says ready once every listener is up, which
/// can be a moment after the HTTP listener first answers); before that it must say `starting`.
async fn wait_ready(http: &reqwest::Client, addr: SocketAddr) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match get(http, format!("http://{addr}/ready"), None).await {
            (200, body) => return assert_eq!(body, r#"{"status":"ready"}"#),
            (503, body) => assert_eq!(body, r#"{"status":"starting"}"#),
            other => panic!("/ready answered {other:?}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not ready within {WAIT:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The value of an unlabelled series in a Prometheus text exposition.
fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_logins_sends_commits_and_http_requests() {
    let s = TestServer::start_with(with_admin).await;
    let http = client();
    let (alice, _a) = s.register(T, "alice").await;
    let (_bob, mut b) = s.register(T, "bob").await;
    let conv = alice
        .open_direct(PeerRef::Account(Account::try_from("bob").unwrap()))
        .await
        .unwrap()
        .id;
    alice
        .send(conv, ContentType::Text, "hello".into())
        .await
        .unwrap();
    next_message(&mut b).await;
    // Stats are read at scrape time; one scrape first so the route below has been counted.
    get(&http, format!("http://{}/api/v1/stats", s.http), None).await;
    let (status, text) = get(&http, format!("http://{}/metrics", s.http), None).await;
    assert_eq!(status, 200);
    assert!(value(&text, "parley_logins_total") >= 2.0, "{text}");
    assert!(
        value(&text, "parley_messages_committed_total") >= 1.0,
        "{text}"
    );
    assert!(value(&text, "parley_commit_batches_total") >= 1.0, "{text}");
    assert!(value(&text, "parley_sessions_online") >= 2.0, "{text}");
    assert!(
        value(&text, "parley_commit_batch_size_count") >= 1.0,
        "{text}"
    );
    assert!(
        value(&text, "parley_commit_fsync_seconds_count") >= 1.0,
        "{text}"
    );
    assert!(
        value(&text, "parley_pushes_delivered_total") >= 1.0,
        "{text}"
    );
    let tls = value(&text, "parley_connections_total{transport=\"tls\"}");
    assert!(tls >= 2.0, "{text}");
    for series in [
        "parley_sessions_asleep ",
        "parley_events_committed_total ",
        "parley_pushes_dropped_total ",
        "parley_offline_push_queued ",
        "parley_commit_batch_size_bucket{le=\"1\"}",
        "parley_commit_fsync_seconds_bucket{le=\"0.001\"}",
        "parley_http_requests_total{route=\"/api/v1/stats\",method=\"GET\",status=\"200\"} 1",
    ] {
        assert!(text.contains(series), "missing {series} in:\n{text}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_closes_the_session_and_refuses_the_login() {
    let s = TestServer::start_with(with_admin).await;
    let http = client();
    let (alice, mut a) = s.register(T, "alice").await;
    let id = alice.user_id().get();
    let base = format!("http://{}/admin/v1", s.http);

    // Found by the admin search, online, not banned.
    let (status, body) = get(&http, format!("{base}/users?q=ALI"), Some(TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["users"][0]["id"], id.to_string());
    assert_eq!(page["users"][0]["online"], true);
    assert_eq!(page["users"][0]["banned"], false);

    // Without the token nothing happens.
    let (status, _) = get(&http, format!("{base}/users"), Some("not-the-token-at-all")).await;
    assert_eq!(status, 401);

    let (status, body) = post(&http, format!("{base}/users/{id}/ban"), None).await;
    assert_eq!(status, 200, "{body}");
    wait_for(&mut a, |e| matches!(e, Event::Closed).then_some(())).await;
    let again = Client::connect(
        s.config(T, "dev-2"),
        Credentials::Password {
            account: Account::try_from("alice").unwrap(),
            password: "password-123".into(),
        },
    )
    .await;
    assert_eq!(code(again), ErrorCode::Banned);
    let (_, body) = get(&http, format!("{base}/users?q=alice"), Some(TOKEN)).await;
    assert!(body.contains("\"banned\":true"), "{body}");

    // Unbanned, the password works again.
    let (status, _) = post(&http, format!("{base}/users/{id}/unban"), None).await;
    assert_eq!(status, 200);
    s.login(T, "alice", "dev-3").await;
    let (status, _) = post(&http, format!("{base}/users/999999/ban"), None).await;
    assert_eq!(status, 404);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcements_and_disbands_come_from_the_server_account() {
    let s = TestServer::start_with(with_admin).await;
    let http = client();
    let (alice, mut a) = s.register(T, "alice").await;
    let (bob, mut b) = s.register(T, "bob").await;
    let group = alice
        .create_group("ops", vec![bob.user_id()])
        .await
        .unwrap()
        .id;
    let base = format!("http://{}/admin/v1", s.http);

    let (status, body) = post(
        &http,
        format!("{base}/announcements"),
        Some(r#"{"text":"maintenance at 02:00"}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, r#"{"recipients":2}"#);
    let (_, users) = get(&http, format!("{base}/users?q=system"), Some(TOKEN)).await;
    let users: serde_json::Value = serde_json::from_str(&users).unwrap();
    let system: u64 = users["users"][0]["id"].as_str().unwrap().parse().unwrap();
    for events in [&mut a, &mut b] {
        let mut m = next_message(events).await;
        if m.event.is_some() {
            // The group's `Created` event came first.
            m = next_message(events).await;
        }
        assert_eq!(m.sender.get(), system);
        assert_eq!(m.content_type, ContentType::Text);
        assert_eq!(&m.content[..], b"maintenance at 02:00");
    }
    // Nobody can log in as the server account.
    let as_system = Client::connect(
        s.config(T, "dev-x"),
        Credentials::Password {
            account: Account::try_from("system").unwrap(),
            password: "password-123".into(),
        },
    )
    .await;
    assert_eq!(code(as_system), ErrorCode::AuthFailed);

    let (status, body) = post(
        &http,
        format!("{base}/groups/{}/disband", group.get()),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let m = next_message(&mut b).await;
    assert_eq!(m.conversation, group);
    assert_eq!(m.sender.get(), system);
    assert!(matches!(
        m.event.as_deref(),
        Some(ConversationEvent::Disband)
    ));
    let (status, body) = post(
        &http,
        format!("{base}/groups/{}/disband", group.get()),
        None,
    )
    .await;
    assert_eq!((status, body.contains("DISBANDED")), (409, true), "{body}");
    let (status, _) = post(
        &http,
        format!("{base}/announcements"),
        Some(r#"{"text":""}"#),
    )
    .await;
    assert_eq!(status, 400);
    s.stop().await;
}

/// A server with the private surface on an address of its own; `tls` turns HTTPS on for both
/// HTTP listeners.
struct Split {
    public: SocketAddr,
    private: SocketAddr,
    cert: std::path::PathBuf,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn split(tls: bool) -> Split {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_tests(dir.path());
    with_admin(&mut cfg);
    cfg.listen.http_private = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
    cfg.http.tls = tls;
    cfg.http.private_tls = tls;
    let server = Server::bind(cfg).await.unwrap();
    let (public, private) = (server.addrs().http[0], server.addrs().http_private[0]);
    let cert = server.cert_path().to_owned();
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let task = tokio::spawn(async move { server.run(token).await.unwrap() });
    Split {
        public,
        private,
        cert,
        shutdown,
        task,
        _dir: dir,
    }
}

impl Split {
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_address_serves_admin_and_metrics_and_the_public_one_does_not() {
    let s = split(false).await;
    let http = client();
    for path in [
        "/metrics",
        "/api/v1/stats",
        "/admin/v1/users",
        "/admin/v1/config",
    ] {
        let (status, body) = get(&http, format!("http://{}{path}", s.private), Some(TOKEN)).await;
        assert_eq!(status, 200, "private {path}: {body}");
        let (status, _) = get(&http, format!("http://{}{path}", s.public), Some(TOKEN)).await;
        assert_eq!(status, 404, "public {path}");
    }
    for addr in [s.public, s.private] {
        assert_eq!(
            get(&http, format!("http://{addr}/health"), None).await.0,
            200
        );
        wait_ready(&http, addr).await;
    }
    // The running configuration, without its secrets.
    let (_, config) = get(
        &http,
        format!("http://{}/admin/v1/config", s.private),
        Some(TOKEN),
    )
    .await;
    assert!(!config.contains(TOKEN), "{config}");
    assert!(config.contains("\"token\":\"[redacted]\""), "{config}");
    assert!(config.contains("\"http_private\":[\""), "{config}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_on_both_listeners_with_the_development_certificate() {
    let s = split(true).await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pem = std::fs::read(&s.cert).unwrap();
    let https = reqwest::Client::builder()
        .timeout(WAIT)
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let url = |addr: SocketAddr, path: &str| format!("https://localhost:{}{path}", addr.port());
    let res = https.get(url(s.public, "/health")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.version(), reqwest::Version::HTTP_11);
    let (status, body) = get(&https, url(s.private, "/metrics"), None).await;
    assert_eq!(status, 200);
    assert!(body.contains("parley_sessions_online"), "{body}");
    let (status, _) = get(&https, url(s.private, "/admin/v1/users"), Some(TOKEN)).await;
    assert_eq!(status, 200);
    // Plain HTTP on an HTTPS listener gets no answer it could mistake for one.
    let plain = client()
        .get(format!("http://{}/health", s.public))
        .send()
        .await;
    assert!(plain.map(|r| r.status() != 200).unwrap_or(true));
    s.stop().await;
}
