//! The fault suite (issue 15; docs/security.md, "Faults"), with the real binary: a read-only
//! data directory, a data directory whose message log is read-only, and a damaged store. The
//! server refuses to start, exits 1 and names the directory or the damage; once the directory
//! is writable again it starts, with every message acknowledged before.
//!
//! The rest of the suite: a full disk is server/tests/disk_full.rs, each kind of store damage
//! store_damage.rs, a log output that cannot be written log_failure.rs.
//!
//! The read-only cases mount a tmpfs (file modes do not stop root, a read-only mount does), so
//! they need root, as CI runs them. Without root they fail with a message saying so, unless
//! `PARLEY_SKIP_MOUNT_TESTS=1` is set, which skips them.

#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use bytes::Bytes;
use parley_client::{Client, Transport};
use parley_protocol::frames::{ContentType, PeerRef, SendRequest};
use parley_protocol::ids::{ClientMsgId, ConversationId, Seq};

use common::binary::{run_to_exit, ServerProcess};

/// Runs `mount` (or `umount`) with `args`, panicking with its message if it fails.
fn mount(args: &[&str], what: &Path) {
    let out = std::process::Command::new("mount")
        .args(args)
        .arg(what)
        .output()
        .expect("run mount(8)");
    assert!(
        out.status.success(),
        "mount {args:?} {}: {}",
        what.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// A tmpfs on a fresh temp directory, unmounted (with anything mounted inside it) when
/// dropped.
struct Tmpfs {
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` (the test is skipped) only when `PARLEY_SKIP_MOUNT_TESTS=1`.
    fn new() -> Option<Tmpfs> {
        if std::env::var("PARLEY_SKIP_MOUNT_TESTS").as_deref() == Ok("1") {
            eprintln!("skipped: PARLEY_SKIP_MOUNT_TESTS=1 (this test mounts a tmpfs)");
            return None;
        }
        let parent = tempfile::tempdir().expect("temp dir");
        let dir = parent.path().join("mnt");
        std::fs::create_dir(&dir).expect("mount point");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
            .arg(&dir)
            .output()
            .expect("run mount(8)");
        assert!(
            out.status.success(),
            "this test mounts a tmpfs for its data directory and could not ({}): run it as \
             root (CI does), or set PARLEY_SKIP_MOUNT_TESTS=1 to skip it",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Some(Tmpfs {
            dir,
            _parent: parent,
        })
    }

    /// Remounts the whole tmpfs read-only (`true`) or writable.
    fn read_only(&self, ro: bool) {
        mount(
            &["-o", if ro { "remount,ro" } else { "remount,rw" }],
            &self.dir,
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Recursive and lazy: a bind mount inside it, a process killed a moment ago.
        let _ = std::process::Command::new("umount")
            .args(["-R", "-l"])
            .arg(&self.dir)
            .status();
    }
}

/// `dir` made read-only by a bind mount onto itself; undone when dropped.
struct ReadOnlyBind(PathBuf);

impl ReadOnlyBind {
    fn new(dir: &Path) -> ReadOnlyBind {
        mount(&["--bind", &dir.display().to_string()], dir);
        mount(&["-o", "remount,bind,ro"], dir);
        ReadOnlyBind(dir.to_owned())
    }
}

impl Drop for ReadOnlyBind {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

fn text(conv: ConversationId, cmid: &str) -> SendRequest {
    SendRequest {
        conversation: conv,
        content_type: ContentType::Text,
        content: Bytes::from(cmid.to_owned()),
        client_msg_id: ClientMsgId::try_from(cmid).unwrap(),
        reply_to: Seq::ZERO,
        mentions: vec![],
        mention_all: false,
    }
}

/// Every message of `conv`'s contents, by sync pages.
async fn contents(client: &Client, conv: ConversationId) -> Vec<String> {
    let epoch = client.login_result().epoch;
    common::sync_conversation(client, epoch, conv)
        .await
        .into_iter()
        .map(|m| String::from_utf8_lossy(&m.content).into_owned())
        .collect()
}

const MESSAGES: usize = 5;

/// Runs a server on `data`, registers alice and bob and has alice send [`MESSAGES`] messages
/// to bob, each acknowledged; stops it cleanly.
async fn write_some(data: &Path) {
    let server = ServerProcess::start(data).await;
    let t = Transport::PlainTcp;
    let (alice, _a) = server
        .connect(t, "alice", "a1", "alice-secret-1", true)
        .await;
    let (bob, _b) = server.connect(t, "bob", "b1", "bob-secret-12", true).await;
    let conv = alice
        .open_direct(PeerRef::User(bob.user_id()))
        .await
        .unwrap()
        .id;
    for i in 0..MESSAGES {
        alice
            .send_request(text(conv, &format!("m-{i}")))
            .await
            .unwrap();
    }
    alice.close().await;
    bob.close().await;
    let status = server.terminate().await;
    assert!(status.success(), "{status:?}");
}

/// Starts a server on `data` and checks that alice's acknowledged messages are all there.
async fn all_there(data: &Path) {
    let server = ServerProcess::start(data).await;
    let t = Transport::PlainTcp;
    let (alice, _a) = server
        .connect(t, "alice", "a2", "alice-secret-1", false)
        .await;
    let (bob, _b) = server.connect(t, "bob", "b2", "bob-secret-12", false).await;
    let conv = alice
        .open_direct(PeerRef::User(bob.user_id()))
        .await
        .unwrap()
        .id;
    let want: Vec<String> = (0..MESSAGES).map(|i| format!("m-{i}")).collect();
    assert_eq!(contents(&bob, conv).await, want);
    // And it writes again.
    alice.send_request(text(conv, "after")).await.unwrap();
    alice.close().await;
    bob.close().await;
    let status = server.terminate().await;
    assert!(status.success(), "{status:?}");
}

/// The binary on `data` until it exits by itself.
async fn start_to_exit(data: &Path) -> Output {
    let data = data.display().to_string();
    run_to_exit([
        "--data-dir",
        data.as_str(),
        "--tls",
        "127.0.0.1:0",
        "--quic",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--plain-tcp",
        "127.0.0.1:0",
    ])
    .await
}

/// The refusal: a non-zero exit, no ready line, a message naming `dir` as not writable, and
/// no panic.
fn assert_refused(out: &Output, dir: &Path) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "it started\n{stderr}");
    assert_eq!(out.status.code(), Some(1), "a clean error exit\n{stderr}");
    assert!(!stdout.contains("PARLEY_READY"), "{stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let named = format!("{} is not writable", dir.display());
    assert!(
        stderr.contains(&named),
        "the message names {named:?}\n{stderr}"
    );
    assert!(stderr.contains("Read-only file system"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_data_directory_is_refused_by_name_and_served_again_once_writable() {
    let Some(fs) = Tmpfs::new() else {
        return;
    };
    let data = fs.dir.join("data");
    write_some(&data).await;
    fs.read_only(true);
    let out = start_to_exit(&data).await;
    assert_refused(&out, &data);
    fs.read_only(false);
    all_there(&data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_data_directory_on_a_read_only_mount_is_refused_by_name() {
    let Some(fs) = Tmpfs::new() else {
        return;
    };
    let data = fs.dir.join("data");
    std::fs::create_dir(&data).unwrap();
    fs.read_only(true);
    let out = start_to_exit(&data).await;
    assert_refused(&out, &data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_message_log_is_refused_by_name_and_served_again_once_writable() {
    let Some(fs) = Tmpfs::new() else {
        return;
    };
    let data = fs.dir.join("data");
    write_some(&data).await;
    let log = data.join("messages");
    let bind = ReadOnlyBind::new(&log);
    let out = start_to_exit(&data).await;
    assert_refused(&out, &log);
    drop(bind);
    all_there(&data).await;
}

/// A damaged store, through the real binary (store_damage.rs covers each kind of damage in
/// process and with `parley check`): refused at start with the damage named, exit 1, no panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_refuses_a_lost_store_beside_its_messages() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_some(&data).await;
    std::fs::remove_dir_all(data.join("store")).unwrap();
    let out = start_to_exit(&data).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("PARLEY_READY"));
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("the data directory is damaged") && stderr.contains("missing"),
        "{stderr}"
    );
}
