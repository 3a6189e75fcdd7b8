//! Smoke tests of the real `parley` binary: its command line, config errors, the ready line,
//! the HTTP health check, a login over each transport, and a graceful SIGTERM.

mod common;

use std::time::Duration;

use parley_client::{Event, Events, Transport};
use parley_protocol::frames::{ContentType, PeerRef};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::binary::{run_to_exit, ServerProcess};
use common::WAIT;

const PASSWORD: &str = "password-123";

/// The default drain timeout (`drain_timeout` in the config).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Listener arguments that never touch a fixed port, for runs that should fail before binding.
fn port_zero_args(data_dir: &std::path::Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec!["--data-dir".into(), data_dir.into()];
    for flag in ["--tls", "--quic", "--http", "--plain-tcp"] {
        args.push(flag.into());
        args.push("127.0.0.1:0".into());
    }
    args
}

#[tokio::test]
async fn print_default_config_prints_toml_and_exits_0() {
    let out = run_to_exit(["--print-default-config"]).await;
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        out.status.success(),
        "exit {:?}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let table: toml::Table = toml::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not TOML: {e}\n--- stdout ---\n{stdout}"));
    assert!(table.contains_key("data_dir"), "no data_dir in:\n{stdout}");
    // What it prints is a valid configuration for the same binary.
    parley_server::Config::from_toml(&stdout)
        .expect("the default config parses")
        .validate()
        .expect("the default config is valid");
}

#[tokio::test]
async fn unknown_config_keys_exit_2_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = [
        (
            "top.toml",
            "data_dir = \"x\"\nnot_a_real_key = 1\n",
            "not_a_real_key",
        ),
        ("nested.toml", "[limits]\nmax_frame = 1\n", "max_frame"),
    ];
    for (name, text, key) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write config");
        let mut args = vec!["--config".into(), path.clone().into_os_string()];
        args.extend(port_zero_args(&dir.path().join("data")));
        let out = run_to_exit(args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{name}: exit {:?}\nstderr: {stderr}",
            out.status
        );
        assert!(
            !stdout.contains("PARLEY_READY"),
            "{name}: started anyway: {stdout}"
        );
        for needle in ["unknown field", key, &path.display().to_string()] {
            assert!(
                stderr.contains(needle),
                "{name}: stderr does not mention `{needle}`:\n{stderr}"
            );
        }
    }
}

/// `GET path` over plain HTTP/1.1; returns the status code and the body.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect http");
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("write request");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read response");
        raw
    };
    let raw = tokio::time::timeout(WAIT, exchange)
        .await
        .expect("HTTP answer in time");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let status = head
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("HTTP/1.1 "))
        .and_then(|l| l.split(' ').next())
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    (status, body.to_owned())
}

/// Waits for `Event::Disconnected` (skipping others) and returns its reason.
async fn disconnected(events: &mut Events, who: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(Event::Disconnected { reason })) => return reason,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("{who}: events ended without Disconnected"),
            Err(_) => panic!("{who}: no Disconnected within {WAIT:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_every_transport_and_drains_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start(dir.path()).await;
    assert!(
        server.cert.is_file(),
        "no dev certificate at {:?}",
        server.cert
    );
    for addr in [server.tls, server.quic, server.tcp, server.http] {
        assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    }

    let (status, body) = http_get(server.http, "/health").await;
    assert_eq!(status, 200, "GET /health: {body}");
    assert!(body.contains("ok"), "GET /health body: {body}");

    // A user over QUIC and one over TLS; a message between them crosses transports.
    let (quic, mut quic_events) = server
        .connect(Transport::Quic, "quic-user", "phone", PASSWORD, true)
        .await;
    let (tls, mut tls_events) = server
        .connect(Transport::Tls, "tls-user", "laptop", PASSWORD, true)
        .await;
    let conv = tls
        .open_direct(PeerRef::User(quic.user_id()))
        .await
        .expect("open direct");
    let ack = tls
        .send(conv.id, ContentType::Text, "over the real binary".into())
        .await
        .expect("send");
    assert_eq!(ack.seq.get(), 1);
    let got = common::next_message(&mut quic_events).await;
    assert_eq!(
        (got.conversation, got.seq, &got.content[..]),
        (conv.id, ack.seq, &b"over the real binary"[..])
    );

    // SIGTERM with both clients connected: GoAway, drain, exit 0.
    let started = tokio::time::Instant::now();
    let status = server.terminate().await;
    let took = started.elapsed();
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    assert!(
        took < DRAIN_TIMEOUT + Duration::from_secs(3),
        "exit took {took:?} (drain timeout {DRAIN_TIMEOUT:?})"
    );
    for (who, events) in [("tls", &mut tls_events), ("quic", &mut quic_events)] {
        let reason = disconnected(events, who).await;
        assert!(
            reason.contains("going away"),
            "{who}: disconnected without the server's GoAway: {reason}"
        );
    }
    eprintln!("SIGTERM to exit: {took:?}");
    tls.close().await;
    quic.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = ServerProcess::start(dir.path()).await;
    let out = run_to_exit(port_zero_args(dir.path())).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && !String::from_utf8_lossy(&out.stdout).contains("PARLEY_READY"),
        "a second server ran on a data dir in use: {:?}\n{stderr}",
        out.status
    );
    assert!(stderr.contains("store"), "unclear error: {stderr}");
    // The first one is unaffected.
    let (status, _) = http_get(first.http, "/health").await;
    assert_eq!(status, 200);
    assert!(first.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_handle_kills_the_server() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start(dir.path()).await;
    let http = server.http;
    drop(server);
    // Nothing to await once the handle is gone: poll, bounded, until the socket is closed.
    for _ in 0..200 {
        if TcpStream::connect(http).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the server still listens on {http} 5 s after its handle was dropped");
}
