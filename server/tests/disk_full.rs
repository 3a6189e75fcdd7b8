//! A full disk under the data directory (issue 15, item 4): the server refuses writes with a
//! retryable error and says it is not ready, then recovers by itself once space is freed,
//! without a restart and without losing or duplicating anything acknowledged.
//!
//! The data directory lives on a small tmpfs mounted for the test, so this needs root (CI runs
//! as root). Without root the tests fail with a message saying so, unless
//! `PARLEY_SKIP_MOUNT_TESTS=1` is set, which skips them.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use parley_client::Transport;
use parley_protocol::frames::{ContentType, Message, PeerRef, SendAck, SendRequest};
use parley_protocol::ids::{ClientMsgId, ConversationId, DeviceId, Seq, UserId};
use parley_protocol::ErrorCode;
use parley_server::store::{is_out_of_space, CommitItem, Store, StoreError};

use common::binary::ServerProcess;
use common::{code, http_get, sync_conversation, WAIT};

/// A tmpfs mounted on a fresh temp directory, unmounted when dropped.
struct Mount {
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl Mount {
    /// `None` (the test is skipped) only when `PARLEY_SKIP_MOUNT_TESTS=1`.
    fn tmpfs(size_mib: u64) -> Option<Mount> {
        if std::env::var("PARLEY_SKIP_MOUNT_TESTS").as_deref() == Ok("1") {
            eprintln!("skipped: PARLEY_SKIP_MOUNT_TESTS=1 (this test mounts a tmpfs)");
            return None;
        }
        let parent = tempfile::tempdir().expect("temp dir");
        let dir = parent.path().join("mnt");
        std::fs::create_dir(&dir).expect("mount point");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(&dir)
            .output()
            .expect("run mount(8)");
        assert!(
            out.status.success(),
            "this test mounts a {size_mib} MiB tmpfs for its data directory and could not ({}): \
             run it as root (CI does), or set PARLEY_SKIP_MOUNT_TESTS=1 to skip it",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Some(Mount {
            dir,
            _parent: parent,
        })
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // Lazy: a server process killed a moment ago may still hold files open.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}

/// Fills the filesystem of `dir` with a file until `leave` bytes are free (or it is full).
fn fill(dir: &Path, leave: u64) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("filler");
    let chunk = vec![0x5a_u8; 64 << 10];
    loop {
        let free = fs2::available_space(dir).expect("statvfs");
        if free <= leave {
            break;
        }
        let n = (free - leave).min(chunk.len() as u64) as usize;
        if let Err(e) = f.write_all(&chunk[..n]) {
            assert!(is_out_of_space(&e), "filling: {e}");
            break;
        }
    }
    f.sync_all().expect("sync filler");
    path
}

/// `/ready`'s status, polled (bounded by [`WAIT`]) until it is `want`: the store's health
/// thread looks every second, so there is no event to wait on from outside the process.
async fn ready_becomes(server: &ServerProcess, want: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let body = http_get(server.http, "/ready").await;
        if body.contains(&format!("\"{want}\"")) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/ready stayed {body}, expected {want}\n--- server log ---\n{}",
            server.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn text(conv: ConversationId, cmid: &str, body: &str) -> SendRequest {
    SendRequest {
        conversation: conv,
        content_type: ContentType::Text,
        content: Bytes::from(body.to_owned()),
        client_msg_id: ClientMsgId::try_from(cmid).expect("cmid"),
        reply_to: Seq::ZERO,
        mentions: vec![],
        mention_all: false,
    }
}

fn metric(body: &str, class: &str) -> Option<String> {
    let key = format!("parley_store_degraded{{class=\"{class}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&key))
        .map(|v| v.trim().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_retryably_then_the_server_recovers_without_a_restart() {
    let Some(mount) = Mount::tmpfs(48) else {
        return;
    };
    let data = mount.dir.join("data");
    let server = ServerProcess::start(&data).await;
    let t = Transport::PlainTcp;
    let (alice, _alice_events) = server
        .connect(t, "alice", "a1", "alice-secret-1", true)
        .await;
    let (bob, _bob_events) = server.connect(t, "bob", "b1", "bob-secret-12", true).await;
    let conv = alice
        .open_direct(PeerRef::User(bob.user_id()))
        .await
        .expect("open direct")
        .id;
    let epoch = alice.login_result().epoch;
    let mut acked: Vec<(String, SendAck)> = Vec::new();
    for i in 0..20 {
        let cmid = format!("before-{i}");
        let ack = alice
            .send_request(text(conv, &cmid, &cmid))
            .await
            .expect("send before the disk fills");
        acked.push((cmid, ack));
    }
    assert_eq!(
        http_get(server.http, "/ready").await,
        r#"{"status":"ready"}"#
    );

    // The disk fills (1 MiB left, below the low-water mark): the store stops taking writes.
    let filler = fill(&mount.dir, 1 << 20);
    ready_becomes(&server, "store_degraded").await;
    let refused = alice.send_request(text(conv, "during-0", "during-0")).await;
    let e = refused.expect_err("a send on a full disk is refused");
    let info = match &e {
        parley_client::ClientError::Server(info) => info.clone(),
        other => panic!("not a server error: {other}"),
    };
    assert_eq!(info.code, ErrorCode::RateLimited, "{info:?}");
    assert!(
        info.retry_after.is_some(),
        "retryable with advice: {info:?}"
    );
    assert!(info.message.contains("disk"), "{info:?}");
    let metrics = http_get(server.http, "/metrics").await;
    assert_eq!(
        metric(&metrics, "out_of_space").as_deref(),
        Some("1"),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "sync_failed").as_deref(),
        Some("0"),
        "{metrics}"
    );
    // Liveness is not readiness.
    assert!(http_get(server.http, "/health").await.contains("ok"));
    // Reads still work.
    assert_eq!(
        sync_conversation(&bob, epoch, conv).await.len(),
        acked.len()
    );
    // One line for the state change, not one per refused request.
    let refused_again = alice.send_request(text(conv, "during-1", "during-1")).await;
    assert_eq!(code(refused_again), ErrorCode::RateLimited);
    let log = server.log();
    assert_eq!(
        log.matches("store degraded").count(),
        1,
        "one log line per state change\n{log}"
    );
    assert!(log.contains("out_of_space"), "{log}");

    // Space is back: without a restart the server is ready again and writes commit.
    std::fs::remove_file(&filler).expect("free the space");
    ready_becomes(&server, "ready").await;
    let metrics = http_get(server.http, "/metrics").await;
    assert_eq!(
        metric(&metrics, "out_of_space").as_deref(),
        Some("0"),
        "{metrics}"
    );
    // The refused sends, retried with their ids, commit now (they were never stored).
    for cmid in ["during-0", "during-1"] {
        let ack = alice
            .send_request(text(conv, cmid, cmid))
            .await
            .expect("a retry after recovery commits");
        assert!(!ack.duplicate, "{cmid} was refused, so it was never stored");
        acked.push((cmid.to_owned(), ack));
    }
    for i in 0..20 {
        let cmid = format!("after-{i}");
        let ack = alice
            .send_request(text(conv, &cmid, &cmid))
            .await
            .expect("send after recovery");
        acked.push((cmid, ack));
    }
    // A retry of a message acknowledged before the disk filled is still a duplicate.
    let (cmid, first) = acked[3].clone();
    let again = alice
        .send_request(text(conv, &cmid, &cmid))
        .await
        .expect("retry");
    assert!(again.duplicate);
    assert_eq!((again.seq, again.message_id), (first.seq, first.message_id));

    // Every acknowledged message is there exactly once, in gapless seqs, read back by sync.
    let stored = sync_conversation(&bob, epoch, conv).await;
    let seqs: Vec<u64> = stored.iter().map(|m| m.seq.get()).collect();
    let want: Vec<u64> = (1..=acked.len() as u64).collect();
    assert_eq!(seqs, want, "gapless seqs, nothing lost or doubled");
    for (cmid, ack) in &acked {
        let found: Vec<&Message> = stored.iter().filter(|m| m.id == ack.message_id).collect();
        assert_eq!(found.len(), 1, "{cmid} stored once");
        assert_eq!(found[0].seq, ack.seq);
        assert_eq!(&found[0].content[..], cmid.as_bytes());
    }

    // Logins, registrations and OpenDirect work again.
    let (carol, _carol_events) = server
        .connect(t, "carol", "c1", "carol-secret-1", true)
        .await;
    let (alice2, _e) = server
        .connect(t, "alice", "a2", "alice-secret-1", false)
        .await;
    let direct = alice2
        .open_direct(PeerRef::User(carol.user_id()))
        .await
        .expect("OpenDirect after recovery");
    assert_ne!(direct.id, conv);
    carol
        .send_request(text(direct.id, "carol-0", "hello"))
        .await
        .expect("carol sends");

    // Shutdown of a healthy server is clean.
    for c in [&alice, &bob, &carol, &alice2] {
        c.close().await;
    }
    let status = server.terminate().await;
    assert!(status.success(), "exit {status:?}");
    drop(mount);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_while_the_disk_is_full_names_the_cause() {
    let Some(mount) = Mount::tmpfs(32) else {
        return;
    };
    let data = mount.dir.join("data");
    let server = ServerProcess::start(&data).await;
    let _filler = fill(&mount.dir, 1 << 20);
    ready_becomes(&server, "store_degraded").await;
    let mut server = server;
    server.signal("-TERM").await;
    let status = server
        .wait_exit(common::binary::EXIT_WAIT)
        .await
        .expect("exits after SIGTERM");
    // A full disk whose final sync still worked stops cleanly, and says why it was degraded.
    assert!(status.success(), "exit {status:?}\n{}", server.log());
    // The last lines reach the log reader a moment after the exit.
    let deadline = tokio::time::Instant::now() + WAIT;
    while !server
        .log()
        .contains("stopping while the store was degraded (out_of_space")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the shutdown names the full disk\n{}",
            server.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(server);
    drop(mount);
}

/// The store itself: a batch whose write meets a full disk fails with `ENOSPC`, is cut, and
/// hands its seqs and ids to the next batch, so what is stored stays gapless and nothing a
/// reader or a sender saw is reused.
#[test]
fn a_batch_that_meets_a_full_disk_is_cut_and_its_seqs_go_to_the_next() {
    let Some(mount) = Mount::tmpfs(16) else {
        return;
    };
    let data = mount.dir.join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let store = Store::open(&data, 4 << 20).expect("open store");
    let conv = ConversationId::try_from(7).expect("conv");
    let item = |cmid: &str, size: usize| CommitItem {
        sender: UserId::try_from(1).expect("user"),
        sender_device: DeviceId::try_from("d").expect("device"),
        request: SendRequest {
            content: Bytes::from(vec![b'x'; size]),
            ..text(conv, cmid, "")
        },
        event: None,
        thread_root: Seq::ZERO,
        forwarded_from: None,
    };
    let (out, pending) = store
        .commit_batch(&[item("a", 10)], 1)
        .expect("first batch");
    store.make_durable(pending).expect("durable");
    let first = out[0].as_ref().expect("stored").message.clone();
    assert_eq!(first.seq, Seq(1));
    store.sync().expect("sync");

    let filler = fill(&mount.dir, 0);
    // More than a segment grows at once (1 MiB), so the write itself needs new space.
    let big: Vec<CommitItem> = (0..40)
        .map(|i| item(&format!("big-{i}"), 64 << 10))
        .collect();
    match store.commit_batch(&big, 2) {
        Err(StoreError::Io(e)) => assert!(is_out_of_space(&e), "{e}"),
        other => panic!("expected ENOSPC, got {other:?}"),
    }
    assert_eq!(store.head(conv).expect("head"), Seq(1), "nothing published");
    std::fs::remove_file(&filler).expect("free");

    let (out, pending) = store
        .commit_batch(&[item("b", 10)], 3)
        .expect("after space");
    store.make_durable(pending).expect("durable");
    let second = out[0].as_ref().expect("stored").message.clone();
    assert_eq!(second.seq, Seq(2), "seqs stay gapless");
    assert_eq!(
        second.id.get(),
        first.id.get() + 1,
        "the failed batch's ids were never given"
    );
    let stored = store
        .messages(conv, Seq::ZERO, Seq(10), 100, 1 << 20)
        .expect("read");
    let cmids: Vec<&str> = stored.iter().map(|m| m.client_msg_id.as_str()).collect();
    assert_eq!(cmids, ["a", "b"]);
    store.sync().expect("sync");
    drop(store);
    // The log reopens with both and nothing of the failed batch.
    let store = reopen(&data);
    let stored = store
        .messages(conv, Seq::ZERO, Seq(10), 100, 1 << 20)
        .expect("read");
    assert_eq!(stored.len(), 2);
    drop(store);
    drop(mount);
}

/// Opens the store again once sled's threads let go of the previous handle's lock.
fn reopen(dir: &Path) -> Store {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match Store::open(dir, 4 << 20) {
            Err(StoreError::Engine(e))
                if e.to_string().contains("could not acquire lock")
                    && tokio::time::Instant::now() < deadline =>
            {
                std::thread::park_timeout(std::time::Duration::from_millis(5));
            }
            other => return other.expect("reopen"),
        }
    }
}
