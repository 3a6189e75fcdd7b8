//! The message log's files: append-only segments of checksummed records.
//!
//! A record is `body length (u32 LE) | crc32 of the next two fields (u32 LE) | position of the
//! previous message of the same conversation (u64 LE, `NO_POS` for its first) | body` where the
//! body is the stored message (protobuf `Message`). A position is `segment << 32 | offset`.
//! Segments are `messages/NNNNNNNN.log`, numbered from 0; a new one starts once the current one
//! passes the size limit. Only the committer appends; readers read records at positions they got
//! from the index, which only ever points at records that are already durable.
//!
//! After a crash the tail of the last segment may hold a torn or unwritten record (a batch whose
//! fdatasync never returned, so none of it was acknowledged): [`Segments::scan`] stops at the
//! first record that does not check out and cuts the file there. Anywhere else that is
//! corruption, and opening fails.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, ErrorKind, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::{Result, StoreError};

/// "No previous record".
pub(super) const NO_POS: u64 = u64::MAX;
/// Record header: length, checksum, previous position.
pub(super) const HEADER: usize = 16;
/// Largest body accepted when reading (stored messages are far smaller: the configured maximum
/// message size is at most a few MiB); anything larger is damage.
const MAX_BODY: usize = 64 << 20;

pub(super) fn pos(segment: u32, offset: u64) -> u64 {
    (u64::from(segment) << 32) | offset
}

fn split(pos: u64) -> (u32, u64) {
    ((pos >> 32) as u32, pos & 0xffff_ffff)
}

fn corrupt(detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        tree: "messages",
        detail: detail.to_string(),
    }
}

fn checksum(prev: u64, body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&prev.to_le_bytes());
    h.update(body);
    h.finalize()
}

/// Appends one record (header and `body`) to `buf`.
#[cfg(test)]
pub(super) fn push_record(buf: &mut Vec<u8>, prev: u64, body: &[u8]) {
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&checksum(prev, body).to_le_bytes());
    buf.extend_from_slice(&prev.to_le_bytes());
    buf.extend_from_slice(body);
}

/// Writes the header for a body already placed at `buf[at + HEADER..]`.
pub(super) fn seal_record(buf: &mut [u8], at: usize, prev: u64) {
    let body = &buf[at + HEADER..];
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let sum = checksum(prev, body);
    buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
    buf[at + 4..at + 8].copy_from_slice(&sum.to_le_bytes());
    buf[at + 8..at + 16].copy_from_slice(&prev.to_le_bytes());
}

/// One record read back.
#[derive(Debug)]
pub(super) struct Record {
    /// Position of the previous message of the same conversation.
    pub prev: u64,
    /// The stored message.
    pub body: Vec<u8>,
}

fn parse_header(h: &[u8; HEADER]) -> (usize, u32, u64) {
    let [l0, l1, l2, l3, c0, c1, c2, c3, p @ ..] = *h;
    (
        u32::from_le_bytes([l0, l1, l2, l3]) as usize,
        u32::from_le_bytes([c0, c1, c2, c3]),
        u64::from_le_bytes(p),
    )
}

/// The segment files.
#[derive(Debug)]
pub(super) struct Segments {
    dir: PathBuf,
    files: RwLock<Vec<Arc<File>>>,
}

fn segment_path(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("{n:08}.log"))
}

impl Segments {
    /// Opens the segments under `dir` (creating the directory and segment 0 if needed).
    pub fn open(dir: &Path) -> Result<Segments> {
        std::fs::create_dir_all(dir)?;
        let mut numbers = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name();
            let Some(n) = name
                .to_str()
                .and_then(|s| s.strip_suffix(".log"))
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            numbers.push(n);
        }
        numbers.sort_unstable();
        if numbers.iter().enumerate().any(|(i, &n)| n as usize != i) {
            return Err(corrupt(format!(
                "segments must be numbered from 0 without gaps, found {numbers:?}"
            )));
        }
        let segments = Segments {
            dir: dir.to_owned(),
            files: RwLock::new(Vec::new()),
        };
        if numbers.is_empty() {
            segments.create(0)?;
        } else {
            let mut files = segments.files.write().unwrap_or_else(|e| e.into_inner());
            for n in numbers {
                files.push(Arc::new(
                    OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open(segment_path(dir, n))?,
                ));
            }
        }
        Ok(segments)
    }

    /// Number of the newest segment.
    pub fn last(&self) -> u32 {
        let files = self.files.read().unwrap_or_else(|e| e.into_inner());
        u32::try_from(files.len().saturating_sub(1)).unwrap_or(u32::MAX)
    }

    /// The file of segment `n`.
    pub fn file(&self, n: u32) -> Result<Arc<File>> {
        self.files
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(n as usize)
            .cloned()
            .ok_or_else(|| corrupt(format!("no segment {n}")))
    }

    /// Creates segment `n` (the next one) and makes its existence durable.
    pub fn create(&self, n: u32) -> Result<Arc<File>> {
        let file = Arc::new(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(segment_path(&self.dir, n))?,
        );
        File::open(&self.dir)?.sync_all()?;
        let mut files = self.files.write().unwrap_or_else(|e| e.into_inner());
        if files.len() != n as usize {
            return Err(corrupt(format!("segment {n} created out of order")));
        }
        files.push(file.clone());
        Ok(file)
    }

    /// Total size of the segments in bytes.
    pub fn size(&self) -> u64 {
        let files = self.files.read().unwrap_or_else(|e| e.into_inner());
        files
            .iter()
            .filter_map(|f| f.metadata().ok())
            .map(|m| m.len())
            .sum()
    }

    /// The record at `pos`.
    pub fn read(&self, pos: u64) -> Result<Record> {
        let (segment, offset) = split(pos);
        let file = self.file(segment)?;
        // Most records fit in one read.
        let mut first = [0u8; 512];
        let got = read_at_most(&file, &mut first, offset)?;
        if got < HEADER {
            return Err(corrupt(format!("short record at {pos:#x}")));
        }
        let header: [u8; HEADER] = first[..HEADER].try_into().unwrap_or([0; HEADER]);
        let (len, sum, prev) = parse_header(&header);
        if len == 0 || len > MAX_BODY {
            return Err(corrupt(format!("bad record length {len} at {pos:#x}")));
        }
        let mut body = vec![0u8; len];
        let have = (got - HEADER).min(len);
        body[..have].copy_from_slice(&first[HEADER..HEADER + have]);
        if have < len {
            file.read_exact_at(&mut body[have..], offset + (HEADER + have) as u64)?;
        }
        if checksum(prev, &body) != sum {
            return Err(corrupt(format!("checksum mismatch at {pos:#x}")));
        }
        Ok(Record { prev, body })
    }

    /// Reads every record from `from` to the end of the log, in order, calling `f(pos, record)`.
    /// A bad record in the last segment is a torn write: the file is cut there (and synced).
    /// Returns the position after the last good record.
    pub fn scan(&self, from: u64, mut f: impl FnMut(u64, Record) -> Result<()>) -> Result<u64> {
        let (first, mut offset) = split(from);
        let last = self.last();
        let mut segment = first;
        loop {
            let file = self.file(segment)?;
            let len = file.metadata()?.len();
            let mut reader = BufReader::with_capacity(1 << 20, ReadAt::new(&file, offset));
            let torn = loop {
                if offset == len {
                    break None;
                }
                let mut header = [0u8; HEADER];
                if let Err(e) = reader.read_exact(&mut header) {
                    break Some(format!("header: {e}"));
                }
                let (body_len, sum, prev) = parse_header(&header);
                if body_len == 0 || body_len > MAX_BODY {
                    break Some(format!("length {body_len}"));
                }
                let mut body = vec![0u8; body_len];
                if let Err(e) = reader.read_exact(&mut body) {
                    break Some(format!("body: {e}"));
                }
                if checksum(prev, &body) != sum {
                    break Some("checksum".to_owned());
                }
                f(pos(segment, offset), Record { prev, body })?;
                offset += (HEADER + body_len) as u64;
            };
            if let Some(why) = torn {
                if segment != last {
                    return Err(corrupt(format!(
                        "bad record in segment {segment} at {offset} ({why}), not at the end of the log"
                    )));
                }
                tracing::warn!(
                    segment,
                    offset,
                    cut = len - offset,
                    reason = %why,
                    "cutting an unfinished write off the end of the message log"
                );
                file.set_len(offset)?;
                file.sync_all()?;
            }
            if segment == last {
                return Ok(pos(segment, offset));
            }
            segment += 1;
            offset = 0;
        }
    }
}

fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// `Read` over a file from an offset, with positioned reads (the file's cursor is not shared).
struct ReadAt<'a> {
    file: &'a File,
    offset: u64,
}

impl<'a> ReadAt<'a> {
    fn new(file: &'a File, offset: u64) -> Self {
        ReadAt { file, offset }
    }
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(segments: &Segments, segment: u32, records: &[(u64, &[u8])]) -> Vec<u64> {
        let file = segments.file(segment).unwrap();
        let mut end = file.metadata().unwrap().len();
        let mut at = Vec::new();
        for (prev, body) in records {
            let mut buf = Vec::new();
            push_record(&mut buf, *prev, body);
            file.write_all_at(&buf, end).unwrap();
            at.push(pos(segment, end));
            end += buf.len() as u64;
        }
        at
    }

    fn collect(segments: &Segments, from: u64) -> (Vec<(u64, u64, Vec<u8>)>, u64) {
        let mut out = Vec::new();
        let end = segments
            .scan(from, |p, r| {
                out.push((p, r.prev, r.body));
                Ok(())
            })
            .unwrap();
        (out, end)
    }

    #[test]
    fn records_read_back_across_segments_and_from_any_position() {
        let dir = tempfile::tempdir().unwrap();
        let segments = Segments::open(dir.path()).unwrap();
        let a = append(&segments, 0, &[(NO_POS, b"one"), (7, &[9u8; 2000])]);
        segments.create(1).unwrap();
        let b = append(&segments, 1, &[(a[1], b"three")]);
        assert_eq!(segments.read(a[1]).unwrap().body, vec![9u8; 2000]);
        assert_eq!(segments.read(b[0]).unwrap().prev, a[1]);
        let (all, end) = collect(&segments, 0);
        assert_eq!(all.len(), 3);
        assert_eq!(all[2].0, b[0]);
        assert_eq!(end, pos(1, (HEADER + 5) as u64));
        let (tail, _) = collect(&segments, a[1]);
        assert_eq!(
            tail.iter().map(|r| r.0).collect::<Vec<_>>(),
            vec![a[1], b[0]]
        );
        drop(segments);
        // Reopened: the same files, in order.
        let segments = Segments::open(dir.path()).unwrap();
        assert_eq!(segments.last(), 1);
        assert_eq!(collect(&segments, 0).0, all);
    }

    #[test]
    fn a_torn_tail_is_cut_and_damage_elsewhere_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let segments = Segments::open(dir.path()).unwrap();
        let at = append(&segments, 0, &[(NO_POS, b"kept"), (NO_POS, b"torn record")]);
        let file = segments.file(0).unwrap();
        let full = file.metadata().unwrap().len();
        // The second record lost its last bytes, then zeros follow (a size update that made it
        // to disk without the data).
        file.set_len(full - 3).unwrap();
        file.set_len(full + 100).unwrap();
        let (good, end) = collect(&segments, 0);
        assert_eq!(good.len(), 1);
        assert_eq!(end, at[1]);
        assert_eq!(file.metadata().unwrap().len(), at[1], "the tail was cut");
        // Appending continues cleanly after the cut.
        append(&segments, 0, &[(at[0], b"next")]);
        assert_eq!(collect(&segments, 0).0.len(), 2);

        // A flipped byte in a segment that is not the last one is not a torn write.
        segments.create(1).unwrap();
        append(&segments, 1, &[(NO_POS, b"later")]);
        let mut byte = [0u8; 1];
        file.read_exact_at(&mut byte, at[0] + HEADER as u64)
            .unwrap();
        file.write_all_at(&[byte[0] ^ 1], at[0] + HEADER as u64)
            .unwrap();
        assert!(matches!(
            segments.scan(0, |_, _| Ok(())),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(segments.read(at[0]).is_err(), "the checksum catches it");
    }

    #[test]
    fn gaps_in_segment_numbers_refuse_to_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("00000000.log"), b"").unwrap();
        std::fs::write(dir.path().join("00000002.log"), b"").unwrap();
        assert!(Segments::open(dir.path()).is_err());
    }
}
