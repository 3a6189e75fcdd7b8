//! Entry points for the fuzz targets (`server/fuzz`, target `store_records`): everything the
//! store decodes from the data directory, reachable without opening a whole store. Not an API:
//! nothing in the server calls these, and they may change with the fuzz targets.
//!
//! The message log's records and the sled values carry crc32 checksums, which a fuzzer cannot
//! forge; so the targets build records with [`log_record`], [`log_end_mark`] and [`seal`] (valid
//! checksums around fuzzed contents) and flip bytes afterwards to reach the checksum failures.

use std::path::Path;
use std::sync::OnceLock;

use super::{keys, log, messages, Result, StoreError};

/// Appends one message-log record (header with a valid checksum, then `body`) to `buf`.
pub fn log_record(buf: &mut Vec<u8>, prev: u64, body: &[u8]) {
    let at = buf.len();
    buf.resize(at + log::HEADER, 0);
    buf.extend_from_slice(body);
    log::seal_record(buf, at, prev);
}

/// Appends the end mark of a batch that started at `start` (`segment << 32 | offset`).
pub fn log_end_mark(buf: &mut Vec<u8>, start: u64) {
    log::push_end_mark(buf, start);
}

/// Size of a record header.
pub const LOG_HEADER: usize = log::HEADER;

/// The index an empty store starts with: a process-wide temporary sled tree that
/// [`verify_log`] only reads.
fn empty_index() -> Result<&'static sled::Tree> {
    static IDX: OnceLock<std::result::Result<sled::Tree, String>> = OnceLock::new();
    IDX.get_or_init(|| {
        sled::Config::new()
            .temporary(true)
            .open()
            .and_then(|db| db.open_tree("messages"))
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| StoreError::Corrupt {
        tree: "messages",
        detail: e.clone(),
    })
}

/// Verifies the message log under `dir` (segment files `NNNNNNNN.log`) as an offline check
/// does against an empty index: every record's checksum, every batch's end mark, both chains,
/// every record decoded whole. Returns the records read.
pub fn verify_log(dir: &Path) -> Result<u64> {
    Ok(messages::MessageLog::verify(dir, empty_index()?)?.records)
}

/// Scans the log under `dir` as opening a store does (`cut`: a torn last batch is cut off the
/// file) and reads every record it handed out back by position. Returns the records' bodies'
/// total length.
pub fn scan_log(dir: &Path, cut: bool) -> Result<u64> {
    let segments = log::Segments::open(dir)?;
    let mut positions = Vec::new();
    segments.scan_checked(0, 0, cut, &mut |_, _| {}, |pos, prev, body| {
        positions.push((pos, prev, body.to_vec()));
        Ok(())
    })?;
    let mut total = 0;
    for (pos, prev, body) in positions {
        let record = segments.read(pos)?;
        // What a scan handed out, a read at its position must give back.
        assert_eq!(
            (record.prev, &record.body),
            (prev, &body),
            "read at {pos:#x}"
        );
        total += body.len() as u64;
    }
    Ok(total)
}

/// `payload` in the checksummed envelope of the store's sled values.
pub fn seal(payload: &[u8]) -> Vec<u8> {
    keys::seal(payload)
}

/// Decodes `value` as every kind of sled value the store reads (the JSON records in their
/// envelopes, ids, pairs, cursors); how many decoded.
pub fn decode_values(value: &[u8]) -> usize {
    use super::files::FileRecord;
    use super::*;
    fn ok<T>(r: Result<T>) -> usize {
        usize::from(r.is_ok())
    }
    ok(from_json::<UserRecord>(value, "f"))
        + ok(from_json::<TokenRecord>(value, "f"))
        + ok(from_json::<DeviceTokens>(value, "f"))
        + ok(from_json::<PushToken>(value, "f"))
        + ok(from_json::<AdminRecord>(value, "f"))
        + ok(from_json::<SettingRecord>(value, "f"))
        + ok(from_json::<AuditRecord>(value, "f"))
        + ok(from_json::<GroupSettings>(value, "f"))
        + ok(from_json::<ConversationRecord>(value, "f"))
        + ok(from_json::<MemberRecord>(value, "f"))
        + ok(from_json::<JoinRequestRecord>(value, "f"))
        + ok(from_json::<Amendment>(value, "f"))
        + ok(from_json::<CallEntry>(value, "f"))
        + ok(from_json::<InviteRecord>(value, "f"))
        + ok(from_json::<MeetingRecord>(value, "f"))
        + ok(from_json::<ProfileRecord>(value, "f"))
        + ok(from_json::<Relation>(value, "f"))
        + ok(from_json::<Prefs>(value, "f"))
        + ok(from_json::<PresenceRecord>(value, "f"))
        + ok(from_json::<FileRecord>(value, "f"))
        + ok(keys::decode_id_value(value, "f"))
        + ok(keys::user_value(value, "f"))
        + ok(keys::decode_pair(value, "f"))
        + ok(keys::conversation(value, "f"))
}
