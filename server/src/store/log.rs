//! The message log's files: append-only segments of checksummed records.
//!
//! A record is `body length (u32 LE) | crc32 of the next two fields (u32 LE) | position of the
//! previous message of the same conversation (u64 LE, `NO_POS` for its first) | body` where the
//! body is what [`super::messages`] stores: the position of the sender's previous message
//! (u64 LE) and the message (protobuf `Message`). A position is `segment << 32 | offset`.
//! Every batch (one `pwrite`) ends with an *end mark*: a record with an empty body whose
//! position field is the position of the batch's first record. Segments are
//! `messages/NNNNNNNN.log`, numbered from 0; a new one starts once the current one passes the
//! size limit. Only the committer appends; readers read records at positions they got from the
//! index, which only ever points at records that are already durable.
//!
//! The writer allocates a segment ahead of what it has written, in steps of zeros
//! ([`ALLOCATE_STEP`]), so that a batch overwrites bytes the file already has and its
//! `fdatasync` writes only the data (an append that grows the file also writes the inode: a
//! second I/O per commit). A header of zeros where a batch would start is therefore the end of
//! a segment's records, unless a complete batch follows it, which is damage.
//!
//! Recovery ([`Segments::scan`]) hands out a batch's records only once its end mark checks
//! out, so a batch is all or nothing. After a crash the last batch of the last segment may be
//! torn or unterminated: its fdatasync never returned, so none of it was acknowledged, and the
//! file is cut where it began. A bad record in a batch that a later, complete batch follows is
//! damage to acknowledged data (a batch is only written after the previous one's fdatasync),
//! and so is a bad record anywhere but the last segment: opening fails rather than dropping
//! what follows.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::{Result, StoreError};

/// "No previous record".
pub(super) const NO_POS: u64 = u64::MAX;
/// The writer extends a segment by this many bytes of zeros (rounded to a multiple) whenever a
/// batch would pass its allocated end: one growth of the file, and one inode write in an
/// `fdatasync`, per MiB of log instead of per batch.
pub(super) const ALLOCATE_STEP: u64 = 1 << 20;

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

/// Appends the end mark of a batch that started at `start` (a position).
pub(super) fn push_end_mark(buf: &mut Vec<u8>, start: u64) {
    buf.extend_from_slice(&0u32.to_le_bytes());
    buf.extend_from_slice(&checksum(start, &[]).to_le_bytes());
    buf.extend_from_slice(&start.to_le_bytes());
}

/// True if `bytes` (at least `HEADER` long) is an end mark of a batch of `segment` that started
/// after `after` (an offset) and before `at` (the mark's own offset).
fn is_later_end_mark(bytes: &[u8], segment: u32, after: u64, at: u64) -> bool {
    let Ok(header) = <[u8; HEADER]>::try_from(&bytes[..HEADER]) else {
        return false;
    };
    let (len, sum, start) = parse_header(&header);
    let (s, o) = split(start);
    len == 0 && sum == checksum(start, &[]) && s == segment && o > after && o < at
}

/// Whether `file` holds only zero bytes from `from` to `len`.
fn zeros_to_end(file: &File, from: u64, len: u64) -> Result<bool> {
    let mut chunk = vec![0u8; 64 << 10];
    let mut at = from;
    while at < len {
        let n = usize::try_from(len - at)
            .unwrap_or(usize::MAX)
            .min(chunk.len());
        file.read_exact_at(&mut chunk[..n], at)?;
        if chunk[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
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
    /// What the message log stored (see the module docs).
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
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
            // The directory's existence must be durable before anything in it counts.
            if let Some(parent) = dir.parent() {
                File::open(parent)?.sync_all()?;
            }
        }
        let mut numbers = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name();
            let Some(stem) = name.to_str().and_then(|s| s.strip_suffix(".log")) else {
                continue;
            };
            let n = (stem.len() == 8 && stem.bytes().all(|b| b.is_ascii_digit()))
                .then(|| stem.parse::<u32>().ok())
                .flatten()
                .ok_or_else(|| corrupt(format!("unexpected file {stem}.log in the message log")))?;
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

    /// Reads every record from `from` (the start of a batch) to the end of the log, in order,
    /// calling `f(pos, prev, body)` for the records of each complete batch. A torn or
    /// unterminated last batch is cut off the file (and the cut synced) if it starts at or after
    /// `durable` (the position the last snapshot recorded, up to which everything was complete);
    /// damage anywhere else is an error. With `cut` false (an offline check) nothing is cut: a
    /// torn last batch is only reported, through `torn`. Returns the position after the last
    /// complete batch.
    #[cfg(test)]
    pub fn scan(&self, from: u64, f: impl FnMut(u64, u64, &[u8]) -> Result<()>) -> Result<u64> {
        self.scan_checked(from, from, true, &mut |_, _| {}, f)
    }

    /// [`Segments::scan`] with its options (see there): `torn(segment, offset)` is told of a
    /// torn last batch.
    ///
    /// Records are parsed in place in a window of the segment read with large positioned reads
    /// (no copy per record, no allocation per record): at 10 M messages the open reads 1.5 GB,
    /// and a copy and an allocation per record cost as much as the checksums.
    pub fn scan_checked(
        &self,
        from: u64,
        durable: u64,
        cut: bool,
        torn: &mut dyn FnMut(u32, u64),
        mut f: impl FnMut(u64, u64, &[u8]) -> Result<()>,
    ) -> Result<u64> {
        let (first, mut offset) = split(from);
        let last = self.last();
        let mut segment = first;
        let mut buf = Vec::new();
        // The records of the batch being read: (offset, previous position, body length).
        let mut batch: Vec<(u64, u64, usize)> = Vec::new();
        loop {
            let file = self.file(segment)?;
            let len = file.metadata()?.len();
            if offset > len {
                return Err(corrupt(format!(
                    "segment {segment} is {len} bytes but the index says it reached {offset}: \
                     the message log is shorter than what was acknowledged"
                )));
            }
            let mut window = Window::new(&file, len, offset, std::mem::take(&mut buf));
            batch.clear();
            let mut batch_start = offset;
            let bad = loop {
                if offset == len {
                    break (!batch.is_empty()).then(|| "no end mark".to_owned());
                }
                // Everything from the batch's start stays in the window until its end mark.
                let Some(header) = window.get(batch_start, offset, HEADER)? else {
                    break Some("header: the segment ends inside it".to_owned());
                };
                let header: [u8; HEADER] = header.try_into().unwrap_or([0xff; HEADER]);
                let (body_len, sum, prev) = parse_header(&header);
                if batch.is_empty() && header == [0u8; HEADER] {
                    // Zeros where a batch would start: if nothing but zeros follows, this is
                    // the part of the segment allocated ahead of the writer, and the end of its
                    // records. Anything else after them is a torn batch or damage, told apart
                    // below like any bad record.
                    if zeros_to_end(&file, offset, len)? {
                        break None;
                    }
                    break Some("zeroed header".to_owned());
                }
                if body_len == 0 {
                    // An end mark: it must close the batch that started at `batch_start`.
                    if sum != checksum(prev, &[]) || prev != pos(segment, batch_start) {
                        break Some("end mark".to_owned());
                    }
                    for &(at, prev, n) in &batch {
                        let body = window
                            .get(batch_start, at + HEADER as u64, n)?
                            .ok_or_else(|| corrupt("a batch's record left the read window"))?;
                        f(pos(segment, at), prev, body)?;
                    }
                    batch.clear();
                    offset += HEADER as u64;
                    batch_start = offset;
                    continue;
                }
                if body_len > MAX_BODY {
                    break Some(format!("length {body_len}"));
                }
                let Some(body) = window.get(batch_start, offset + HEADER as u64, body_len)? else {
                    break Some("body: the segment ends inside it".to_owned());
                };
                if checksum(prev, body) != sum {
                    break Some("checksum".to_owned());
                }
                batch.push((offset, prev, body_len));
                offset += (HEADER + body_len) as u64;
            };
            buf = window.into_buffer();
            if let Some(why) = bad {
                let damage = if segment != last {
                    Some("not in the last segment")
                } else if pos(segment, batch_start) < durable {
                    Some("before the last snapshot")
                } else if self.later_end_mark(&file, segment, batch_start, offset, len)? {
                    Some("a complete batch follows it")
                } else {
                    None
                };
                if let Some(damage) = damage {
                    return Err(corrupt(format!(
                        "bad record in segment {segment} at {offset} ({why}) in the batch at \
                         {batch_start}, {damage}: acknowledged messages are damaged"
                    )));
                }
                torn(segment, batch_start);
                if !cut {
                    return Ok(pos(segment, batch_start));
                }
                tracing::warn!(
                    segment,
                    offset = batch_start,
                    cut = len - batch_start,
                    reason = %why,
                    "cutting an unfinished batch off the end of the message log"
                );
                file.set_len(batch_start)?;
                file.sync_all()?;
                offset = batch_start;
            }
            if segment == last {
                let end = pos(segment, offset);
                if end < durable {
                    let (s, o) = split(durable);
                    return Err(corrupt(format!(
                        "the message log ends in segment {segment} at {offset}, but the last \
                         snapshot says it reached segment {s} at {o}: the message log is \
                         shorter than what was acknowledged"
                    )));
                }
                return Ok(end);
            }
            segment += 1;
            offset = 0;
        }
    }

    /// Whether an end mark of a batch that started after `batch_start` lies anywhere in
    /// `(bad, len)`: only read when recovery met a bad record.
    fn later_end_mark(
        &self,
        file: &File,
        segment: u32,
        batch_start: u64,
        bad: u64,
        len: u64,
    ) -> Result<bool> {
        let mut rest = vec![0u8; usize::try_from(len - bad).unwrap_or(0)];
        file.read_exact_at(&mut rest, bad)?;
        Ok((1..rest.len().saturating_sub(HEADER - 1))
            .any(|i| is_later_end_mark(&rest[i..], segment, batch_start, bad + i as u64)))
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

/// Bytes read when the window over a segment moves on: large reads, few system calls.
const WINDOW: usize = 4 << 20;

/// A window over a segment's bytes `[base, base + filled)`, read ahead with positioned reads
/// (the file's cursor is not shared), so that records are parsed where they lie.
struct Window<'a> {
    file: &'a File,
    /// The segment's length.
    len: u64,
    buf: Vec<u8>,
    base: u64,
    filled: usize,
}

impl<'a> Window<'a> {
    fn new(file: &'a File, len: u64, at: u64, buf: Vec<u8>) -> Self {
        Window {
            file,
            len,
            buf,
            base: at,
            filled: 0,
        }
    }

    /// The `n` bytes at `at`, keeping everything from `keep` (at most `at`) in the window;
    /// `None` if the segment ends before them.
    fn get(&mut self, keep: u64, at: u64, n: usize) -> Result<Option<&[u8]>> {
        let end = at + n as u64;
        if end > self.len {
            return Ok(None);
        }
        if end > self.base + self.filled as u64 {
            // Move the kept bytes to the front, make room for the request (a record can be
            // larger than the window), and read as much of the segment as fits.
            let drop = usize::try_from(keep - self.base).unwrap_or(usize::MAX);
            self.buf.copy_within(drop..self.filled, 0);
            self.filled -= drop;
            self.base = keep;
            let need = usize::try_from(end - self.base).unwrap_or(usize::MAX);
            // Never more than what is left of the segment (`need` is at most that): a small
            // segment is not worth zeroing a whole window for.
            let left = usize::try_from(self.len - self.base).unwrap_or(usize::MAX);
            let size = need.max(WINDOW.min(left));
            if self.buf.len() < size {
                self.buf.resize(size, 0);
            }
            let room = left.min(self.buf.len());
            let got = read_at_most(
                self.file,
                &mut self.buf[self.filled..room],
                self.base + self.filled as u64,
            )?;
            self.filled += got;
            if self.filled < need {
                // The file is shorter than its length said: treat as its end.
                return Ok(None);
            }
        }
        let from = usize::try_from(at - self.base).unwrap_or(usize::MAX);
        Ok(Some(&self.buf[from..from + n]))
    }

    fn into_buffer(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends one batch (its records, then its end mark) the way the committer does; returns
    /// the records' positions.
    fn append(segments: &Segments, segment: u32, records: &[(u64, &[u8])]) -> Vec<u64> {
        let file = segments.file(segment).unwrap();
        let start = file.metadata().unwrap().len();
        let mut buf = Vec::new();
        let mut at = Vec::new();
        for (prev, body) in records {
            at.push(pos(segment, start + buf.len() as u64));
            push_record(&mut buf, *prev, body);
        }
        push_end_mark(&mut buf, pos(segment, start));
        file.write_all_at(&buf, start).unwrap();
        at
    }

    /// Position, previous position and body of each record handed out.
    type Scanned = Vec<(u64, u64, Vec<u8>)>;

    fn collect(segments: &Segments, from: u64) -> Result<(Scanned, u64)> {
        let mut out = Vec::new();
        let end = segments.scan(from, |p, prev, body| {
            out.push((p, prev, body.to_vec()));
            Ok(())
        })?;
        Ok((out, end))
    }

    fn len(segments: &Segments, segment: u32) -> u64 {
        segments.file(segment).unwrap().metadata().unwrap().len()
    }

    #[test]
    fn records_read_back_across_segments_and_from_any_batch() {
        let dir = tempfile::tempdir().unwrap();
        let segments = Segments::open(dir.path()).unwrap();
        let a = append(&segments, 0, &[(NO_POS, b"one"), (7, &[9u8; 2000])]);
        let b = append(&segments, 0, &[(a[0], b"two")]);
        segments.create(1).unwrap();
        let c = append(&segments, 1, &[(a[1], b"three")]);
        assert_eq!(segments.read(a[1]).unwrap().body, vec![9u8; 2000]);
        assert_eq!(segments.read(c[0]).unwrap().prev, a[1]);
        let (all, end) = collect(&segments, 0).unwrap();
        assert_eq!(all.len(), 4);
        assert_eq!(all[3].0, c[0]);
        assert_eq!(end, pos(1, len(&segments, 1)));
        let (tail, _) = collect(&segments, b[0]).unwrap();
        assert_eq!(
            tail.iter().map(|r| r.0).collect::<Vec<_>>(),
            vec![b[0], c[0]]
        );
        drop(segments);
        // Reopened: the same files, in order.
        let segments = Segments::open(dir.path()).unwrap();
        assert_eq!(segments.last(), 1);
        assert_eq!(collect(&segments, 0).unwrap().0, all);
    }

    #[test]
    fn a_torn_last_batch_is_cut_whole() {
        let dir = tempfile::tempdir().unwrap();
        let segments = Segments::open(dir.path()).unwrap();
        let kept = append(&segments, 0, &[(NO_POS, b"kept")]);
        let boundary = len(&segments, 0);
        append(
            &segments,
            0,
            &[(kept[0], b"first of torn"), (NO_POS, b"torn record")],
        );
        let file = segments.file(0).unwrap();
        let full = len(&segments, 0);
        // The batch lost its last bytes, then zeros follow (a size update that made it to disk
        // without the data).
        file.set_len(full - 20).unwrap();
        file.set_len(full + 100).unwrap();
        let (good, end) = collect(&segments, 0).unwrap();
        assert_eq!(
            good.len(),
            1,
            "the whole torn batch is gone, its first record too"
        );
        assert_eq!(end, pos(0, boundary));
        assert_eq!(len(&segments, 0), boundary, "the file was cut at the batch");
        // Appending continues cleanly after the cut.
        append(&segments, 0, &[(kept[0], b"next")]);
        assert_eq!(collect(&segments, 0).unwrap().0.len(), 2);

        // A batch written without its end mark (a write cut short) is not complete either.
        let mut buf = Vec::new();
        push_record(&mut buf, NO_POS, b"unterminated");
        file.write_all_at(&buf, len(&segments, 0)).unwrap();
        let before = len(&segments, 0) - buf.len() as u64;
        assert_eq!(collect(&segments, 0).unwrap().0.len(), 2);
        assert_eq!(len(&segments, 0), before);

        // Pages of the last batch reaching the disk out of order: a hole in the middle of the
        // batch, its own end mark intact. Still the last batch: cut.
        let start = len(&segments, 0);
        append(
            &segments,
            0,
            &[(NO_POS, &[1u8; 300]), (NO_POS, b"after the hole")],
        );
        file.write_all_at(&[0u8; 40], start + 100).unwrap();
        assert_eq!(collect(&segments, 0).unwrap().0.len(), 2);
        assert_eq!(len(&segments, 0), start);
    }

    /// Appends one batch at `start` (not at the file's end, as `append` does).
    fn append_at(segments: &Segments, segment: u32, start: u64, body: &[u8]) -> u64 {
        let mut buf = Vec::new();
        push_record(&mut buf, NO_POS, body);
        push_end_mark(&mut buf, pos(segment, start));
        segments
            .file(segment)
            .unwrap()
            .write_all_at(&buf, start)
            .unwrap();
        start + buf.len() as u64
    }

    #[test]
    fn zeros_allocated_ahead_end_a_segment_and_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let segments = Segments::open(dir.path()).unwrap();
        let file = segments.file(0).unwrap();
        let a = append_at(&segments, 0, 0, b"first");
        file.set_len(ALLOCATE_STEP).unwrap();
        let (got, end) = collect(&segments, 0).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(end, pos(0, a), "the records end where the zeros start");
        assert_eq!(len(&segments, 0), ALLOCATE_STEP, "the zeros are not cut");
        // The next batch overwrites zeros.
        let b = append_at(&segments, 0, a, b"second");
        assert_eq!(
            collect(&segments, 0).unwrap(),
            (
                vec![
                    (pos(0, 0), NO_POS, b"first".to_vec()),
                    (pos(0, a), NO_POS, b"second".to_vec())
                ],
                pos(0, b)
            )
        );
        // A segment that is not the last one may end in zeros too.
        segments.create(1).unwrap();
        append_at(&segments, 1, 0, b"third");
        assert_eq!(collect(&segments, 0).unwrap().0.len(), 3);

        // A zeroed header with a complete batch after it is damage, not an end.
        file.write_all_at(&[0u8; HEADER], 0).unwrap();
        assert!(matches!(
            collect(&segments, 0),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn a_torn_batch_in_allocated_zeros_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let segments = Segments::open(dir.path()).unwrap();
        let file = segments.file(0).unwrap();
        let a = append_at(&segments, 0, 0, b"acknowledged");
        file.set_len(ALLOCATE_STEP).unwrap();
        let b = append_at(&segments, 0, a, &[7u8; 600]);
        // The batch's first bytes never reached the disk, its end mark did.
        file.write_all_at(&[0u8; 64], a).unwrap();
        let (got, end) = collect(&segments, 0).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(end, pos(0, a));
        assert_eq!(len(&segments, 0), a, "cut where the torn batch began");
        assert!(b > a);
    }

    #[test]
    fn damage_before_a_complete_batch_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let segments = Segments::open(dir.path()).unwrap();
        let at = append(&segments, 0, &[(NO_POS, b"acknowledged")]);
        append(&segments, 0, &[(NO_POS, b"later batch")]);
        let file = segments.file(0).unwrap();
        let before = len(&segments, 0);
        let mut byte = [0u8; 1];
        let body = at[0] + HEADER as u64;
        file.read_exact_at(&mut byte, body).unwrap();
        file.write_all_at(&[byte[0] ^ 1], body).unwrap();
        assert!(matches!(
            collect(&segments, 0),
            Err(StoreError::Corrupt { .. })
        ));
        assert_eq!(len(&segments, 0), before, "nothing was cut");
        assert!(segments.read(at[0]).is_err(), "the checksum catches it");

        // The same damage in a segment that is not the last one.
        file.write_all_at(&[byte[0]], body).unwrap();
        segments.create(1).unwrap();
        append(&segments, 1, &[(NO_POS, b"in the next segment")]);
        assert_eq!(collect(&segments, 0).unwrap().0.len(), 3);
        file.write_all_at(&[byte[0] ^ 1], body).unwrap();
        assert!(matches!(
            collect(&segments, 0),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn a_log_shorter_than_the_snapshot_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let segments = Segments::open(dir.path()).unwrap();
        append(&segments, 0, &[(NO_POS, b"one")]);
        assert!(matches!(
            segments.scan(pos(0, 10_000), |_, _, _| Ok(())),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn unexpected_names_and_gaps_refuse_to_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("00000000.log"), b"").unwrap();
        std::fs::write(dir.path().join("00000002.log"), b"").unwrap();
        assert!(Segments::open(dir.path()).is_err());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("1.log"), b"").unwrap();
        assert!(Segments::open(dir.path()).is_err());
        // Other files are left alone.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"").unwrap();
        assert!(Segments::open(dir.path()).is_ok());
    }
}
