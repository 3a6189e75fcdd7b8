//! `fsync-probe`: the latency of one small append plus `fdatasync` on the disk that holds the
//! data directory. Every durable commit of the server costs at least one of these, so
//! `1 / latency` bounds the commits per second and `batch size / latency` the durable msgs/s.
//!
//! Two ways, alternating: appends that grow the file (each `fdatasync` then also writes the
//! inode, for the new size) and writes into space the file already has (what the message log
//! does: it allocates its segments ahead of the writer), whose `fdatasync` writes only data.

use std::io::Write;
use std::path::PathBuf;

use serde_json::{json, Value};
use tokio::time::Instant;

use super::{machine, round3};
use crate::stats::summarize;

/// Options of `fsync-probe`.
#[derive(Clone, Debug, clap::Args)]
pub struct ProbeArgs {
    /// Directory to probe (a temporary file is created in it).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Writes to time (each way).
    #[arg(long, default_value_t = 500)]
    pub count: u32,
    /// Bytes per append.
    #[arg(long, default_value_t = 4096)]
    pub bytes: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// A short run.
    #[arg(long)]
    pub smoke: bool,
}

/// Runs the probe.
pub async fn run(args: ProbeArgs) -> anyhow::Result<Value> {
    let count = if args.smoke {
        args.count.min(20)
    } else {
        args.count
    };
    let dir = args.dir.clone();
    let bytes = args.bytes.max(1);
    let (grow, overwrite) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        use std::os::unix::fs::FileExt;
        let mut grown = tempfile::NamedTempFile::new_in(&dir)?;
        let allocated = tempfile::NamedTempFile::new_in(&dir)?;
        let total = bytes as u64 * u64::from(count);
        let mut zeros = vec![0u8; bytes];
        for i in 0..u64::from(count) {
            allocated.as_file().write_all_at(&zeros, i * bytes as u64)?;
        }
        allocated.as_file().sync_all()?;
        debug_assert_eq!(allocated.as_file().metadata()?.len(), total);
        zeros.fill(0xA5);
        let block = zeros;
        let mut grow = crate::stats::histogram();
        let mut overwrite = crate::stats::histogram();
        for i in 0..u64::from(count) {
            let t = Instant::now();
            grown.write_all(&block)?;
            grown.as_file().sync_data()?;
            grow.saturating_record(t.elapsed().as_nanos() as u64);
            let t = Instant::now();
            allocated.as_file().write_all_at(&block, i * bytes as u64)?;
            allocated.as_file().sync_data()?;
            overwrite.saturating_record(t.elapsed().as_nanos() as u64);
        }
        Ok((grow, overwrite))
    })
    .await??;
    let h = overwrite;
    let p50 = h.value_at_quantile(0.5) as f64 / 1e9;
    Ok(json!({
        "scenario": "fsync-probe",
        "ok": true,
        "config": { "dir": args.dir.display().to_string(), "count": count, "bytes": bytes },
        "append_fdatasync": summarize(&grow),
        "overwrite_fdatasync": summarize(&h),
        "max_syncs_per_s_at_p50": round3(1.0 / p50.max(1e-9)),
        "machine": machine(),
    }))
}
