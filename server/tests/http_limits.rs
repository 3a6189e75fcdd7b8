//! The limits of HTTP connections (issue 15, item 7; docs/security.md, "HTTP connections and
//! descriptors"): idle, header and body-stall timeouts, a connection cap per listener, and one
//! descriptor budget so that idle HTTP connections cannot take what new TLS logins need. Each
//! test fails on a server whose HTTP connections are never timed out or capped.
//!
//! Timeouts are configured short and asserted only as "eventually" (bounded by [`WAIT`]).

#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

mod common;

use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use parley_client::{Client, ClientConfig, Credentials, Transport, Trust};
use parley_protocol::ids::{Account, DeviceId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use common::binary::{ready_line, Ready, BIN, EXIT_WAIT};
use common::{TestServer, WAIT};

/// A short limit, for the timeouts under test.
const SHORT: Duration = Duration::from_millis(300);
/// A limit no test waits for.
const LONG: Duration = Duration::from_secs(600);

/// Reads from `s` until the server closes it (EOF or a reset), at most [`WAIT`]; everything
/// read. Panics if the connection is still open then.
async fn until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let closed = tokio::time::timeout(WAIT, async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server kept the connection open for {WAIT:?}; read {:?}",
        String::from_utf8_lossy(&out)
    );
    out
}

/// `GET /health` on an open keep-alive connection; the response head and body.
async fn health(s: &mut TcpStream) -> String {
    s.write_all(b"GET /health HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(WAIT, async {
        // The body is a small JSON object: read until it has closed.
        while !got.ends_with(b"}") {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before answering");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("an answer to GET /health");
    String::from_utf8_lossy(&got).into_owned()
}

fn with_limits(
    header: Duration,
    idle: Duration,
    body: Duration,
) -> impl FnOnce(&mut parley_server::Config) {
    move |cfg| {
        cfg.http.header_timeout = header;
        cfg.http.idle_timeout = idle;
        cfg.http.body_timeout = body;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let server = TestServer::start_with(with_limits(LONG, SHORT, LONG)).await;
    // A client that connects and never sends anything.
    let mut silent = TcpStream::connect(server.http).await.unwrap();
    assert!(until_closed(&mut silent).await.is_empty());
    // A keep-alive connection after its response.
    let mut kept = TcpStream::connect(server.http).await.unwrap();
    assert!(health(&mut kept).await.starts_with("HTTP/1.1 200"));
    until_closed(&mut kept).await;
    // New connections are served as before.
    let mut fresh = TcpStream::connect(server.http).await.unwrap();
    assert!(health(&mut fresh).await.starts_with("HTTP/1.1 200"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_request_head_is_closed_after_the_header_timeout() {
    // The idle limit is long: only the header timeout can close this one.
    let server = TestServer::start_with(with_limits(SHORT, LONG, LONG)).await;
    let mut slow = TcpStream::connect(server.http).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nhost: te")
        .await
        .unwrap();
    let got = until_closed(&mut slow).await;
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_request_body_ends_with_408() {
    let server = TestServer::start_with(with_limits(LONG, LONG, SHORT)).await;
    let mut s = TcpStream::connect(server.http).await.unwrap();
    // A login whose JSON body promises 200 bytes and sends 20.
    s.write_all(
        b"POST /im/v1/auth/login HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
          content-length: 200\r\n\r\n{\"account\":\"alice\",",
    )
    .await
    .unwrap();
    let got = until_closed(&mut s).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upload_goes_on_while_its_bytes_flow() {
    // Each pause is well within the stall limit; the whole upload takes longer than it.
    let stall = Duration::from_secs(1);
    let server = TestServer::start_with(with_limits(LONG, LONG, stall)).await;
    let (alice, _events) = server.register(Transport::PlainTcp, "alice").await;
    let token = alice.login_result().access_token;
    let chunk = 64 << 10;
    let chunks = 48; // 3 MiB in 48 pieces, 50 ms apart: 2.4 s in all
    let body = futures::stream::unfold(0u32, move |i| async move {
        if i == chunks {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let piece = Bytes::from(vec![(i % 251) as u8; chunk]);
        Some((Ok::<_, std::io::Error>(piece), i + 1))
    });
    // reqwest's rustls wants a process-wide provider (plain HTTP here, but the client checks).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let response = reqwest::Client::new()
        .post(format!("http://{}/im/v1/files?name=slow.bin", server.http))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .expect("upload");
    let status = response.status();
    let v: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(status, reqwest::StatusCode::CREATED, "{v}");
    assert_eq!(v["size"], chunk as u64 * u64::from(chunks), "{v}");
    alice.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_cap_http_is_refused_and_tls_logins_still_work() {
    let cap = 4;
    let server = TestServer::start_with(|cfg| cfg.http.max_connections = cap).await;
    // The cap, full of idle keep-alive connections (each answered, so each was accepted).
    let mut held = Vec::new();
    for _ in 0..cap {
        let mut s = TcpStream::connect(server.http).await.unwrap();
        assert!(health(&mut s).await.starts_with("HTTP/1.1 200"));
        held.push(s);
    }
    // One more is refused at once: a 503 and a close, or just the close.
    let mut over = TcpStream::connect(server.http).await.unwrap();
    let got = until_closed(&mut over).await;
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 503"),
        "{text}"
    );
    // The binary protocol over TLS is not affected.
    let (alice, _events) = server.register(Transport::Tls, "alice").await;
    alice.close().await;
    // A connection given back makes room again; through it, the refusals are counted for
    // the operator.
    drop(held.pop());
    let deadline = tokio::time::Instant::now() + WAIT;
    let text = loop {
        let mut s = TcpStream::connect(server.http).await.unwrap();
        // A refused connection may be closed before the request is written.
        let _ = s
            .write_all(b"GET /metrics HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
            .await;
        let got = String::from_utf8(until_closed(&mut s).await).unwrap();
        if got.starts_with("HTTP/1.1 200") {
            break got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no room again: {got}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let refused: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("parley_http_connections_refused_total{scheme=\"http\"} "))
        .unwrap_or_else(|| panic!("no refusal counter in:\n{text}"))
        .trim()
        .parse()
        .unwrap();
    assert!(refused >= 1, "refused {refused}");
    server.stop().await;
}

/// The real binary under a small descriptor limit (`ulimit -n`, applied before `exec`), with
/// `config` as its configuration file.
async fn start_limited(
    dir: &std::path::Path,
    config: &str,
    nofile: Option<usize>,
) -> (Child, Ready) {
    let file = dir.join("parley.toml");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(&file, config).unwrap();
    let args = format!(
        "--config '{}' --data-dir '{}' --tls 127.0.0.1:0 --quic 127.0.0.1:0 --http 127.0.0.1:0 \
         --plain-tcp 127.0.0.1:0",
        file.display(),
        dir.join("data").display()
    );
    let limit = nofile.map_or(String::new(), |n| format!("ulimit -n {n} && "));
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("{limit}exec '{BIN}' {args}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("start parley");
    let ready = ready_line(child.stdout.take().unwrap())
        .await
        .expect("parley exited before it was ready");
    (child, ready)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

async fn stop(mut child: Child, pid: u32, dir: &std::path::Path) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let status = tokio::time::timeout(EXIT_WAIT, child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    let log = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
    assert!(status.success(), "{status:?}\n--- server log ---\n{log}");
}

/// Issue 15's flood: more idle HTTP connections than the process has descriptors. The HTTP
/// listeners stop at their share of the budget, so a TLS login still finds a descriptor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_http_connections_leaves_descriptors_for_tls_logins() {
    let config = "[limits]\nfd_reserve = 32\n";
    // What the server holds open when it is ready, to size its limit from.
    let probe = tempfile::tempdir().unwrap();
    let (child, ready) = start_limited(probe.path(), config, None).await;
    let at_start = open_fds(ready.pid);
    assert!(at_start > 0, "cannot count the server's descriptors");
    stop(child, ready.pid, probe.path()).await;
    // A budget of about 100 connections: 25 for HTTP, the rest for the binary transports.
    let nofile = at_start + 32 + 100;
    let dir = tempfile::tempdir().unwrap();
    let (child, ready) = start_limited(dir.path(), config, Some(nofile)).await;

    // Twice as many idle HTTP connections as the whole limit.
    let mut flood = Vec::new();
    for _ in 0..2 * nofile {
        flood.push(TcpStream::connect(ready.http).await.unwrap());
    }
    // The server refused the ones over its share (a 503 and a close); wait until it has
    // looked at all of them: its descriptors settle below its limit.
    let mut refused = 0;
    for s in flood.iter_mut() {
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(20), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => refused += 1,
            Ok(Ok(_)) if buf.starts_with(b"HTTP/1.1 503") => refused += 1,
            _ => {}
        }
    }
    assert!(
        refused > nofile / 2,
        "only {refused} of {} refused",
        flood.len()
    );
    assert!(
        open_fds(ready.pid) < nofile,
        "the server is at its descriptor limit ({} of {nofile})",
        open_fds(ready.pid)
    );

    // A new user logs in over TLS while the flood holds its connections.
    let cert = dir.path().join("data").join("tls").join("cert.pem");
    let mut cfg = ClientConfig::new(
        ready.tls,
        Transport::Tls,
        Trust::CertFile(cert),
        DeviceId::try_from("dev-1").unwrap(),
    );
    cfg.reconnect = false;
    let credentials = Credentials::Register {
        account: Account::try_from("alice").unwrap(),
        password: "password-123".into(),
    };
    let (alice, _events) = tokio::time::timeout(WAIT, Client::connect(cfg, credentials))
        .await
        .expect("a TLS login during the flood is answered in time")
        .expect("a TLS login during the flood succeeds");
    alice.close().await;
    drop(flood);
    stop(child, ready.pid, dir.path()).await;
}
