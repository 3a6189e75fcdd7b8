//! Resource figures of a process from `/proc`: resident memory and CPU time.

use std::sync::OnceLock;

use anyhow::{anyhow, Context as _};

/// One reading of a process.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct ProcSample {
    /// `VmRSS`, KiB.
    pub rss_kib: u64,
    /// user + system CPU time, microseconds.
    pub cpu_us: u64,
}

/// Clock ticks per second for `/proc/PID/stat` (`getconf CLK_TCK`, 100 on Linux if unknown).
pub fn clk_tck() -> u64 {
    static TCK: OnceLock<u64> = OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|t| *t > 0)
            .unwrap_or(100)
    })
}

/// Fields of `/proc/PID/stat` after the command name, 0-based from field 3 (state).
fn stat_fields(pid: &str) -> anyhow::Result<Vec<u64>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name may contain spaces and parentheses: split after the last ')'.
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("malformed /proc/{pid}/stat"))?;
    Ok(rest
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect())
}

fn ticks_to_us(ticks: u64) -> u64 {
    ticks * 1_000_000 / clk_tck()
}

/// CPU time (utime + stime) of `pid`, microseconds. With `children`, adds the CPU time of
/// children that have been waited for (cutime + cstime).
pub fn cpu_us(pid: &str, children: bool) -> anyhow::Result<u64> {
    let f = stat_fields(pid)?;
    // After the state field: ppid(0) pgrp sess tty tpgid flags minflt cminflt majflt cmajflt
    // utime(10) stime(11) cutime(12) cstime(13).
    let get = |i: usize| f.get(i).copied().unwrap_or(0);
    let mut ticks = get(10) + get(11);
    if children {
        ticks += get(12) + get(13);
    }
    Ok(ticks_to_us(ticks))
}

/// `VmRSS` of `pid`, KiB.
pub fn rss_kib(pid: &str) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS in /proc/{pid}/status"))
}

/// RSS and CPU of `pid`.
pub fn sample(pid: u32) -> anyhow::Result<ProcSample> {
    let pid = pid.to_string();
    Ok(ProcSample {
        rss_kib: rss_kib(&pid)?,
        cpu_us: cpu_us(&pid, false)?,
    })
}

/// CPU time of this process and its waited-for children, microseconds.
pub fn self_cpu_us() -> u64 {
    cpu_us("self", true).unwrap_or(0)
}

/// The soft limit on open files of this process (`ulimit -n`), if known.
pub fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let rest = text
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?;
    rest.split_whitespace().next()?.parse().ok()
}
