//! Dialects at the root of listeners of their own (`[compat.root]`, docs/dialects.md): a client
//! whose paths cannot be prefixed is pointed at `http://HOST:PORT` and finds its dialect's
//! paths there, the same accounts as everywhere else, and nothing else of ours.

use parley_server::config::Config;
use parley_server::Server;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

fn client() -> reqwest::Client {
    // reqwest's rustls needs a process-wide provider (this server's own TLS picks its own).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("client")
}

#[tokio::test]
async fn a_dialect_at_the_root_of_its_own_listener_shares_the_accounts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = Config::for_tests(dir.path());
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    cfg.compat.root.gochat = vec![any];
    cfg.compat.root.wetty = vec![any];
    let server = Server::bind(cfg).await.expect("server binds");
    let addrs = server.addrs().clone();
    let root = |name: &str| {
        let (_, addr) = addrs
            .dialect_roots
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("{name} has a root listener"));
        format!("http://{addr}")
    };
    let (gochat, wetty, http) = (root("gochat"), root("wetty"), addrs.http[0]);
    assert_eq!(addrs.dialect_roots.len(), 2);
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let task = tokio::spawn(async move { server.run(token).await.expect("server runs") });
    let c = client();

    // GoChat's own paths at the root: register there...
    let r = c
        .post(format!("{gochat}/api/auth/register"))
        .json(&json!({"username": "rooted", "password": "root-password-1", "email": "rooted@example.com"}))
        .send()
        .await
        .expect("register");
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["success"], true, "{body}");
    let token = body["data"]["accessToken"]
        .as_str()
        .or(body["data"]["token"].as_str())
        .unwrap_or_else(|| panic!("a token in {body}"))
        .to_owned();

    // ...and the account and its token are the same under the public port's prefix.
    let r = c
        .get(format!("http://{http}/compat/gochat/api/users/profile"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("profile");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["data"]["username"], "rooted", "{body}");

    // A bad token gets GoChat's error envelope at the root too.
    let r = c
        .get(format!("{gochat}/api/users/profile"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .expect("profile");
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["success"], false, "{body}");

    // Only the dialect is there: not our REST API, not the prefixed mounts, not another dialect.
    for path in [
        "/im/v1/auth/login",
        "/compat/gochat/api/users/profile",
        "/health",
    ] {
        let r = c.get(format!("{gochat}{path}")).send().await.expect("get");
        assert_eq!(r.status(), 404, "{path} on GoChat's root listener");
    }
    // Wetty's listener serves Wetty (its /health), not GoChat.
    let r = c
        .get(format!("{wetty}/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(r.status(), 200);
    let r = c
        .get(format!("{wetty}/api/users/profile"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 404);

    shutdown.cancel();
    task.await.expect("server stops");
}

#[tokio::test]
async fn a_root_listener_for_a_disabled_dialect_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = Config::for_tests(dir.path());
    cfg.compat.gochat = false;
    cfg.compat.root.gochat = vec!["127.0.0.1:0".parse().unwrap()];
    let Err(err) = Server::bind(cfg).await else {
        panic!("a root listener for a disabled dialect was accepted");
    };
    assert!(err.to_string().contains("compat.gochat is off"), "{err}");
}
