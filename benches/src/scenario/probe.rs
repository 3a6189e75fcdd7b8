//! `fsync-probe`: the latency of one small append plus `fdatasync` on the disk that holds the
//! data directory. Every durable commit of the server costs at least one of these, so
//! `1 / latency` bounds the commits per second and `batch size / latency` the durable msgs/s.

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
    /// Appends to time.
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
    let h = tokio::task::spawn_blocking(move || -> anyhow::Result<hdrhistogram::Histogram<u64>> {
        let mut file = tempfile::NamedTempFile::new_in(&dir)?;
        let block = vec![0xA5u8; bytes];
        let mut h = crate::stats::histogram();
        for _ in 0..count {
            let t = Instant::now();
            file.write_all(&block)?;
            file.as_file().sync_data()?;
            h.saturating_record(t.elapsed().as_nanos() as u64);
        }
        Ok(h)
    })
    .await??;
    let p50 = h.value_at_quantile(0.5) as f64 / 1e9;
    Ok(json!({
        "scenario": "fsync-probe",
        "ok": true,
        "config": { "dir": args.dir.display().to_string(), "count": count, "bytes": bytes },
        "append_fdatasync": summarize(&h),
        "max_syncs_per_s_at_p50": round3(1.0 / p50.max(1e-9)),
        "machine": machine(),
    }))
}
