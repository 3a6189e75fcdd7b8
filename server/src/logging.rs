//! Logging that never takes the server down.
//!
//! Logs go to stderr, and stderr can fail: a full disk under a redirected log file, a closed
//! pipe, `2>/dev/full`. `eprintln!` panics when its write fails, and so did
//! tracing-subscriber's fmt layer (it reports its own write errors with `eprintln!`): a failed
//! log line panicked whichever thread logged it, the main thread at start-up (exit 101) or a
//! listener's accept loop (its port then refused connections for good). Here:
//! - the subscriber writes through [`Lossy`], which drops a line it cannot write and counts it
//!   ([`lost_lines`], `parley_log_lines_lost_total`), and reports no error back;
//! - the binary's own messages go through [`last_words`] and [`say`], which ignore errors too.
//!
//! Losing log lines is the right trade: the server keeps serving, and the count shows it.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing_subscriber::fmt::MakeWriter;

static LOST_LINES: AtomicU64 = AtomicU64::new(0);

/// Log lines dropped because stderr could not take them, since start.
pub fn lost_lines() -> u64 {
    LOST_LINES.load(Ordering::Relaxed)
}

/// A writer that never fails: what it cannot write is dropped and counted.
#[derive(Debug, Clone, Copy, Default)]
pub struct Lossy<W>(pub W);

impl<W: Write> Write for Lossy<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.write_all(buf).is_err() {
            LOST_LINES.fetch_add(1, Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = self.0.flush();
        Ok(())
    }
}

/// Makes a [`Lossy`] stderr per log line.
#[derive(Debug, Clone, Copy, Default)]
pub struct LossyStderr;

impl<'a> MakeWriter<'a> for LossyStderr {
    type Writer = Lossy<std::io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        Lossy(std::io::stderr())
    }
}

/// Installs the process's subscriber: `filter` (RUST_LOG syntax) unless `RUST_LOG` is set,
/// to stderr, never failing on a write. Does nothing if a subscriber is already installed.
pub fn init(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| default_filter.into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(LossyStderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // Its own error reports go through `eprintln!`, which panics on a failed write.
        .log_internal_errors(false)
        .try_init();
}

/// Writes `line` to stderr, ignoring failure (instead of `eprintln!`, which panics).
pub fn last_words(line: &str) {
    let mut err = std::io::stderr().lock();
    if writeln!(err, "parley: {line}").is_err() {
        LOST_LINES.fetch_add(1, Ordering::Relaxed);
    }
}

/// Writes `text` to stdout and flushes (instead of `print!`, which panics on a failed write);
/// false if it could not be written.
pub fn say(text: &str) -> bool {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).is_ok() && out.flush().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from_raw_os_error(28)) // ENOSPC
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::Error::from_raw_os_error(28))
        }
    }

    #[test]
    fn a_failed_write_is_dropped_and_counted_not_reported() {
        let before = lost_lines();
        let mut w = Lossy(Full);
        assert_eq!(w.write(b"a line\n").unwrap(), 7);
        w.write_all(b"another\n").unwrap();
        w.flush().unwrap();
        assert!(lost_lines() >= before + 2);
    }
}
