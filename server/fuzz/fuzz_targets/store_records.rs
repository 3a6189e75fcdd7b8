//! Everything the server reads back from its data directory (server/src/store): the message
//! log's segment files (records, batches and end marks parsed in place, checksums, the chains
//! of each conversation and sender, every record decoded as a `Message`, a torn last batch cut),
//! the log's record decoders on their own (`Message::from_bytes`, `Message::head_from_bytes`),
//! and the sled values (checksummed JSON envelopes, ids, pairs).
//!
//! A fuzzer cannot forge crc32s, so the input describes the log (records, end marks, raw bytes)
//! and this target writes it with valid checksums and correct chains where the input asks for
//! them, then flips the bytes the input names to reach the damage paths. Files go to a
//! directory under /dev/shm where it exists (no disk I/O per run).

#![no_main]

use std::collections::HashMap;
use std::path::PathBuf;

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use parley_protocol::frames::{ContentType, Message};
use parley_protocol::ids::{ClientMsgId, ConversationId, DeviceId, MessageId, Seq, UserId};
use parley_server::store::fuzzing::{
    decode_values, log_end_mark, log_record, scan_log, seal, verify_log, LOG_HEADER,
};

/// "No previous record" in the log's chains.
const NO_POS: u64 = u64::MAX;

#[derive(Arbitrary, Debug)]
enum Link {
    /// The position the writer would have put there.
    Right,
    Value(u64),
}

#[derive(Arbitrary, Debug)]
enum Body {
    /// A message as the committer stores it, plus protobuf bytes appended to its encoding
    /// (later fields: events, amendments, anything).
    Message {
        id: u64,
        conversation: u8,
        /// `None`: the next seq of the conversation.
        seq: Option<u64>,
        sender: u8,
        content: Vec<u8>,
        tail: Vec<u8>,
    },
    /// Any bytes after the sender's back pointer.
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Item {
    Record {
        prev: Link,
        prev_sent: Link,
        body: Body,
    },
    /// Ends the batch: `None` marks the batch that is open, as the writer does.
    EndMark(Option<u64>),
    Zeros(u8),
    Bytes(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    segments: Vec<Vec<Item>>,
    /// (byte index, xor) applied to the last segment after writing.
    flips: Vec<(u16, u8)>,
    cut: bool,
    /// Values as sled holds them: sealed (valid checksum) or as they are.
    values: Vec<(bool, Vec<u8>)>,
}

fn dir() -> PathBuf {
    let base = std::path::Path::new("/dev/shm");
    let base = if base.is_dir() {
        base.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    base.join(format!("parley-fuzz-store-{}", std::process::id()))
}

fn message(id: u64, conversation: u64, seq: u64, sender: u64, content: Vec<u8>) -> Message {
    let nz = |v: u64| v.max(1);
    Message {
        id: MessageId::try_from(nz(id)).expect("non-zero"),
        conversation: ConversationId::try_from(nz(conversation)).expect("non-zero"),
        seq: Seq(seq),
        sender: UserId::try_from(nz(sender)).expect("non-zero"),
        sender_device: DeviceId::try_from("d").expect("device"),
        content_type: ContentType::Text,
        content: Bytes::from(content),
        client_msg_id: ClientMsgId::try_from("m".to_owned()).expect("key"),
        server_time_ms: 1,
        reply_to: Seq(0),
        mentions: Vec::new(),
        event: None,
        amended: None,
        thread_root: Seq(0),
        forwarded_from: None,
        mention_all: false,
    }
}

/// Writes the segments the input describes; the chains follow the records as written.
fn write_log(input: &Input) -> Vec<Vec<u8>> {
    let mut heads: HashMap<u64, (u64, u64)> = HashMap::new();
    let mut sent: HashMap<u64, u64> = HashMap::new();
    let mut files = Vec::new();
    for (n, items) in input.segments.iter().take(3).enumerate() {
        let segment = (n as u64) << 32;
        let mut buf = Vec::new();
        let mut batch_start = 0u64;
        for item in items.iter().take(64) {
            match item {
                Item::Record {
                    prev,
                    prev_sent,
                    body,
                } => {
                    let at = segment | buf.len() as u64;
                    let (conv, sender, bytes) = match body {
                        Body::Message {
                            id,
                            conversation,
                            seq,
                            sender,
                            content,
                            tail,
                        } => {
                            let conv = u64::from(*conversation).max(1);
                            let sender = u64::from(*sender).max(1);
                            let head = heads.get(&conv).map_or(0, |h| h.0);
                            let seq = seq.unwrap_or(head.wrapping_add(1));
                            let mut bytes =
                                message(*id, conv, seq, sender, content.clone()).to_bytes();
                            bytes.extend_from_slice(tail);
                            (Some((conv, seq)), Some(sender), bytes)
                        }
                        Body::Raw(b) => (None, None, b.clone()),
                    };
                    let prev = match prev {
                        Link::Right => conv
                            .and_then(|(c, _)| heads.get(&c))
                            .map_or(NO_POS, |h| h.1),
                        Link::Value(v) => *v,
                    };
                    let prev_sent = match prev_sent {
                        Link::Right => sender.and_then(|s| sent.get(&s)).copied().unwrap_or(NO_POS),
                        Link::Value(v) => *v,
                    };
                    let mut record = prev_sent.to_le_bytes().to_vec();
                    record.extend_from_slice(&bytes);
                    log_record(&mut buf, prev, &record);
                    if let Some((c, seq)) = conv {
                        heads.insert(c, (seq, at));
                    }
                    if let Some(s) = sender {
                        sent.insert(s, at);
                    }
                }
                Item::EndMark(start) => {
                    log_end_mark(&mut buf, start.unwrap_or(segment | batch_start));
                    batch_start = buf.len() as u64;
                }
                Item::Zeros(n) => buf.resize(buf.len() + usize::from(*n) * LOG_HEADER, 0),
                Item::Bytes(b) => buf.extend_from_slice(b),
            }
        }
        files.push(buf);
    }
    if let Some(last) = files.last_mut() {
        for &(at, xor) in input.flips.iter().take(8) {
            if !last.is_empty() {
                let i = usize::from(at) % last.len();
                last[i] ^= xor;
            }
        }
    }
    files
}

fuzz_target!(|input: Input| {
    for (sealed, value) in input.values.iter().take(8) {
        if *sealed {
            decode_values(&seal(value));
        } else {
            decode_values(value);
        }
    }

    let files = write_log(&input);
    for file in &files {
        // The record decoders alone, on every body-shaped slice.
        if file.len() > LOG_HEADER + 8 {
            let body = &file[LOG_HEADER + 8..];
            if let Ok(m) = Message::from_bytes(body) {
                let head = Message::head_from_bytes(body).expect("a message has a head");
                assert_eq!(
                    (head.id, head.conversation, head.seq, head.sender),
                    (m.id, m.conversation, m.seq, m.sender)
                );
            }
        }
    }

    let dir = dir();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("fuzz directory");
    for (n, file) in files.iter().enumerate() {
        std::fs::write(dir.join(format!("{n:08}.log")), file).expect("segment");
    }
    let verified = verify_log(&dir);
    let scanned = scan_log(&dir, input.cut);
    if input.cut {
        // What is left after a cut is a log that opens.
        if scanned.is_ok() {
            scan_log(&dir, false).expect("the log opens after its torn batch was cut");
        }
    } else {
        // The check and the open agree on whether the log's records are readable.
        if verified.is_ok() {
            assert!(scanned.is_ok(), "verified but not scanned: {scanned:?}");
        }
    }
});
