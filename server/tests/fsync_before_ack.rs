//! The durable-ack guarantee, checked on the real binary with strace: the message's bytes are
//! written to the message log, that file is fsync'd, and only then does the ack reach the socket.
//! (See docs/durability.md for the same check run by hand.)
#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use bytes::Bytes;
use common::raw::Raw;
use parley_protocol::frames::{
    ContentType, Device, PeerRef, Platform, Request, Response, SendRequest,
};
use parley_protocol::ids::{Account, ClientMsgId, DeviceId};

fn hex_escaped(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\x{b:02x}")).collect()
}

struct Line {
    pid: String,
    text: String,
}

fn parse(trace: &str) -> Vec<Line> {
    trace
        .lines()
        .map(|l| {
            let (pid, text) = l.split_once(' ').unwrap_or(("", l));
            Line {
                pid: pid.to_owned(),
                text: text.trim_start().to_owned(),
            }
        })
        .collect()
}

/// Index of the line where the syscall started at `i` completed.
fn completion(lines: &[Line], i: usize, name: &str) -> usize {
    if !lines[i].text.contains("<unfinished ...>") {
        return i;
    }
    let resumed = format!("<... {name} resumed>");
    (i + 1..lines.len())
        .find(|&j| lines[j].pid == lines[i].pid && lines[j].text.starts_with(&resumed))
        .unwrap_or(usize::MAX)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_is_fsynced_before_its_ack_is_written() {
    let strace = which("strace")
        .expect("strace is required for this test (apt-get install strace; .ci/run installs it)");
    let dir = tempfile::tempdir().unwrap();
    let trace_path = dir.path().join("trace.txt");
    let data = dir.path().join("data");
    let mut child = Command::new(strace)
        .args(["-f", "-s", "65536", "-xx", "-o"])
        .arg(&trace_path)
        .args([
            "-e",
            "trace=openat,pwrite64,pwritev,write,writev,sendto,sendmsg,fsync,fdatasync",
        ])
        .arg(env!("CARGO_BIN_EXE_parley"))
        .arg("--data-dir")
        .arg(&data)
        .args([
            "--tls",
            "127.0.0.1:0",
            "--quic",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
        ])
        .args(["--plain-tcp", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start strace");
    let stdout = child.stdout.take().unwrap();
    let (server_pid, tcp) = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        loop {
            let line = lines.next().expect("server printed its addresses").unwrap();
            if let Some(rest) = line.strip_prefix("PARLEY_READY ") {
                let field = |k: &str| rest.split(' ').find_map(|kv| kv.strip_prefix(k)).unwrap();
                let pid = field("pid=").to_owned();
                return (pid, field("tcp=").parse::<std::net::SocketAddr>().unwrap());
            }
        }
    })
    .await
    .unwrap();

    let device = Device {
        id: DeviceId::try_from("probe").unwrap(),
        platform: Platform::Cli,
    };
    let mut raw = Raw::connect(tcp).await;
    raw.send(
        1,
        Request::Register {
            account: Account::try_from("prober").unwrap(),
            password: parley_protocol::values::NewPassword::try_from("password-123").unwrap(),
            device: device.clone(),
        },
    )
    .await;
    let Response::Login(login) = raw.response(1).await else {
        panic!("register failed");
    };
    raw.send(2, Request::OpenDirect(PeerRef::User(login.user)))
        .await;
    let Response::Conversation(conv) = raw.response(2).await else {
        panic!("open_direct failed");
    };
    let probe = format!("fsync-probe-{:016x}", rand_u64());
    let ack_request_id = 0x2a5; // two-byte varint, distinctive in the trace
    raw.send(
        ack_request_id,
        Request::Send(SendRequest {
            conversation: conv.id,
            content_type: ContentType::Text,
            content: Bytes::from(probe.clone()),
            client_msg_id: ClientMsgId::try_from("probe-1").unwrap(),
            reply_to: Default::default(),
            mentions: vec![],
            mention_all: false,
        }),
    )
    .await;
    let Response::SendAck(ack) = raw.response(ack_request_id).await else {
        panic!("send failed");
    };
    assert_eq!(ack.seq.get(), 1);
    drop(raw);
    // Stop the server itself (strace exits when its tracee does).
    let _ = Command::new("kill").arg("-TERM").arg(&server_pid).status();
    let _ = child.wait();

    let trace = std::fs::read_to_string(&trace_path).unwrap();
    let lines = parse(&trace);
    // Every fd opened on a segment of the message log.
    // strace -xx prints paths hex-escaped too.
    let log_dir = hex_escaped(format!("{}/messages/", data.display()).as_bytes());
    // Under load strace may split an `openat` into `<unfinished ...>` and a later `<... openat
    // resumed> = fd` line of the same thread: the fd is on the line where the call completed.
    let db_fds: Vec<String> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.text.starts_with("openat(") && l.text.contains(&log_dir))
        .filter_map(|(i, _)| lines.get(completion(&lines, i, "openat")))
        .filter_map(|l| l.text.rsplit("= ").next().map(|fd| fd.trim().to_owned()))
        .collect();
    assert!(!db_fds.is_empty(), "the message log was never opened?");
    let probe_hex = hex_escaped(probe.as_bytes());
    let written = lines
        .iter()
        .position(|l| {
            let Some(args) = ["pwrite64(", "pwritev(", "write("]
                .iter()
                .find_map(|s| l.text.strip_prefix(s))
            else {
                return false;
            };
            let fd = args.split(',').next().unwrap_or("");
            db_fds.iter().any(|d| d == fd) && l.text.contains(&probe_hex)
        })
        .expect("the message content was written to the message log");
    // Frame { request_id = 0x2a5 (field 1 varint: 08 a5 05), send_ack = field 51 (9a 03) }.
    let ack_marker = hex_escaped(&[0x08, 0xa5, 0x05, 0x9a, 0x03]);
    let acked = lines
        .iter()
        .position(|l| {
            ["write(", "writev(", "sendto(", "sendmsg("]
                .iter()
                .any(|s| l.text.starts_with(s))
                && l.text.contains(&ack_marker)
        })
        .expect("the ack was written to the socket");
    assert!(
        written < acked,
        "ack written before the message reached the message log"
    );
    let synced = (written..acked).any(|i| {
        let t = &lines[i].text;
        let name = if t.starts_with("fdatasync(") {
            "fdatasync"
        } else if t.starts_with("fsync(") {
            "fsync"
        } else {
            return false;
        };
        let fd = t[name.len() + 1..]
            .split([',', ')', ' '])
            .next()
            .unwrap_or("");
        db_fds.iter().any(|d| d == fd) && completion(&lines, i, name) < acked
    });
    assert!(
        synced,
        "no fsync/fdatasync of the message log completed between the write of the message \
         (trace line {written}) and its ack (trace line {acked})"
    );
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    h.finish()
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}
