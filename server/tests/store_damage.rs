//! A damaged or incomplete data directory is found, never served (issue 15, items 3 and 6):
//! the server refuses to start with a message that names the damage, and `parley check`
//! reports it offline (exit 1), while a sound data directory passes (exit 0).
//!
//! Each data directory is made by a real server (in process, port 0, temp dir) through real
//! clients: users, a 1:1 conversation and a group, with messages; it is stopped gracefully
//! (which takes a snapshot, so the damaged records lie before the last snapshot).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use bytes::Bytes;
use parley_client::Transport;
use parley_protocol::frames::{ContentType, PeerRef};
use parley_protocol::ids::Account;
use parley_server::{Config, Server};

use common::binary::run_to_exit;
use common::TestServer;

const GROUP: &str = "zq-marker-group";
const DIRECT_TEXT: &str = "zq-marker-direct-message";

/// A data directory with alice, bob and carol, alice and bob's 1:1 conversation holding
/// `messages` messages, and a group of all three with one message; stopped gracefully.
async fn populated(messages: usize) -> tempfile::TempDir {
    let s = TestServer::start().await;
    let t = Transport::Tls;
    let (alice, _a) = s.register(t, "alice").await;
    let (bob, _b) = s.register(t, "bob").await;
    let (carol, _c) = s.register(t, "carol").await;
    let direct = alice
        .open_direct(PeerRef::Account(Account::try_from("bob").unwrap()))
        .await
        .unwrap();
    for i in 0..messages {
        alice
            .send(
                direct.id,
                ContentType::Text,
                Bytes::from(format!("{DIRECT_TEXT} {i}")),
            )
            .await
            .unwrap();
    }
    let group = alice
        .create_group(GROUP, vec![bob.user_id(), carol.user_id()])
        .await
        .unwrap();
    alice
        .send(
            group.id,
            ContentType::Text,
            Bytes::from_static(b"hello group"),
        )
        .await
        .unwrap();
    drop((alice, bob, carol));
    s.stop().await
}

/// What starting a server on `dir` says: `Ok` if it started (then it is stopped again).
async fn start(dir: &Path) -> Result<(), String> {
    match Server::bind(Config::for_tests(dir)).await {
        // Started, then shut down at once, as a stopped server: its threads (the committer,
        // the store's health thread) have let the data directory go when this returns.
        Ok(server) => {
            let shutdown = tokio_util::sync::CancellationToken::new();
            shutdown.cancel();
            server.run(shutdown).await.map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// `parley check --data-dir dir`: exit code and output.
async fn check(dir: &Path) -> (Option<i32>, String) {
    let out = run_to_exit(["check".as_ref(), "--data-dir".as_ref(), dir.as_os_str()]).await;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// Flips one bit of the first occurrence of `marker` in `file`.
fn flip(file: &Path, marker: &[u8]) {
    let mut bytes = std::fs::read(file).unwrap();
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .unwrap_or_else(|| panic!("{marker:?} is in {}", file.display()));
    bytes[at + 3] ^= 0x04;
    std::fs::write(file, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sound_data_directory_passes_check_and_starts() {
    let dir = populated(5).await;
    let (code, text) = check(dir.path()).await;
    assert_eq!(
        code,
        Some(0),
        "check passes a sound data directory:\n{text}"
    );
    assert!(text.contains("sound"), "{text}");
    assert!(
        text.contains("records"),
        "it says what it verified:\n{text}"
    );
    start(dir.path()).await.unwrap();
    // And again after that start (opening must leave it sound).
    let (code, text) = check(dir.path()).await;
    assert_eq!(code, Some(0), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_store_beside_its_messages_refuses_to_start() {
    let dir = populated(30).await;
    std::fs::remove_dir_all(dir.path().join("store")).unwrap();

    let refused = start(dir.path()).await.expect_err("must not start");
    assert!(
        refused.contains("store") && refused.contains("missing") && refused.contains("backup"),
        "the refusal names the damage and the way out: {refused}"
    );
    // Refusing created nothing: it still refuses, and check says why.
    let refused_again = start(dir.path()).await.expect_err("still refuses");
    assert_eq!(refused, refused_again);
    let (code, text) = check(dir.path()).await;
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("DAMAGED") && text.contains("missing"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_from_another_data_directory_refuses_to_start() {
    let a = populated(3).await;
    let b = populated(3).await;
    std::fs::remove_dir_all(a.path().join("store")).unwrap();
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(b.path().join("store"))
        .arg(a.path().join("store"))
        .status()
        .unwrap();
    assert!(status.success());
    let refused = start(a.path()).await.expect_err("must not start");
    assert!(refused.contains("different data directories"), "{refused}");
    let (code, text) = check(a.path()).await;
    assert_eq!(code, Some(1), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_a_sled_record_is_detected() {
    let dir = populated(20).await;
    // The group's record (its name is in it) in sled's file.
    flip(&dir.path().join("store").join("db"), GROUP.as_bytes());
    let (code, text) = check(dir.path()).await;
    assert_eq!(code, Some(1), "check reports the damage:\n{text}");
    assert!(text.contains("DAMAGED"), "{text}");
    let refused = start(dir.path()).await.expect_err("must not start");
    assert!(refused.contains("damaged"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_the_log_before_the_snapshot_refuses_to_start() {
    let dir = populated(20).await;
    flip(
        &dir.path().join("messages").join("00000000.log"),
        format!("{DIRECT_TEXT} 3").as_bytes(),
    );
    let refused = start(dir.path()).await.expect_err("must not start");
    assert!(
        refused.contains("segment 0") && refused.contains("checksum"),
        "the refusal names where: {refused}"
    );
    let (code, text) = check(dir.path()).await;
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("segment 0"), "{text}");
}
