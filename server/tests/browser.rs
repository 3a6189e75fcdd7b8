//! The browser client (docs/web-client.md) in a real browser: Debian's chromium, driven by
//! Playwright for Python (`server/tests/browser/chat.py`), against a real server on port 0
//! with a fresh data directory. Two users in two browser contexts register, chat both ways,
//! send an image, see each other's read receipts and the unread count, lose the network and
//! catch up, and reload the page.
//!
//! The browser and Playwright are not Rust dependencies: when `python3`, the `playwright`
//! module or chromium is missing, the test says so and passes, unless `PARLEY_BROWSER_TESTS=1`
//! (set by `.ci/run`, which installs them) makes it fail instead. `PARLEY_CHROMIUM` names
//! another browser binary than `/usr/bin/chromium`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::TestServer;
use tokio::process::Command;

/// The whole scenario's bound: it normally takes seconds; this only stops a hung browser.
const SCENARIO_LIMIT: Duration = Duration::from_secs(300);

fn chromium() -> PathBuf {
    std::env::var_os("PARLEY_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Why the browser test cannot run here, if it cannot.
async fn missing_prerequisite(browser: &Path) -> Option<String> {
    if !browser.exists() {
        return Some(format!(
            "no browser at {} (apt-get install chromium)",
            browser.display()
        ));
    }
    let probe = Command::new("python3")
        .args(["-c", "import playwright.sync_api"])
        .kill_on_drop(true)
        .output()
        .await;
    match probe {
        Err(e) => Some(format!("python3 cannot be run: {e}")),
        Ok(out) if !out.status.success() => Some(format!(
            "python3 has no playwright module (pip install playwright): {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        )),
        Ok(_) => None,
    }
}

/// `GET path` over a fresh connection: the status line and headers (lowercased), and the body.
async fn get(server: &TestServer, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(server.http)
        .await
        .expect("connect http");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(common::WAIT, s.read_to_end(&mut out))
        .await
        .expect("http answer in time")
        .expect("read");
    let out = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (head.to_ascii_lowercase(), body.to_owned())
}

/// The page and its files are served on the public HTTP port next to the API, the WebSocket
/// and health, without shadowing any of them (no browser needed).
#[tokio::test]
async fn the_client_is_served_beside_the_api() {
    let server = TestServer::start().await;
    let (head, body) = get(&server, "/").await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("content-type: text/html; charset=utf-8"),
        "{head}"
    );
    assert!(
        head.contains("content-security-policy: default-src 'none'"),
        "{head}"
    );
    assert!(body.contains("/app/app.js"), "{body}");
    let (head, body) = get(&server, "/app/app.js").await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/javascript"), "{head}");
    assert!(body.contains("new Connection("), "the app itself");
    let (head, _) = get(&server, "/app/missing.js").await;
    assert!(head.starts_with("http/1.1 404"), "{head}");

    // The neighbours still answer as themselves.
    let (head, _) = get(&server, "/health").await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let (head, body) = get(&server, "/im/v1/no-such-route").await;
    assert!(head.starts_with("http/1.1 404"), "{head}");
    assert!(body.contains("NOT_FOUND"), "the REST error body: {body}");
    let (head, _) = get(&server, "/ws").await;
    assert!(head.starts_with("http/1.1 426"), "not an upgrade: {head}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_chat_in_chromium() {
    let required = std::env::var("PARLEY_BROWSER_TESTS").is_ok_and(|v| v == "1");
    let browser = chromium();
    if let Some(why) = missing_prerequisite(&browser).await {
        assert!(!required, "PARLEY_BROWSER_TESTS=1 but {why}");
        println!("skipped: {why} (set PARLEY_BROWSER_TESTS=1 to require)");
        return;
    }

    let server = TestServer::start().await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/chat.py");
    let run = Command::new("python3")
        .arg(&script)
        .arg("--base")
        .arg(format!("http://{}", server.http))
        .arg("--chromium")
        .arg(&browser)
        .env("PYTHONUNBUFFERED", "1")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(SCENARIO_LIMIT, run)
        .await
        .unwrap_or_else(|_| panic!("the browser scenario did not finish in {SCENARIO_LIMIT:?}"))
        .expect("python3 runs the scenario");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "the browser scenario failed ({}); its output is above",
        out.status
    );
    server.stop().await;
}
