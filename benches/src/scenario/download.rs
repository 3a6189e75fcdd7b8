//! `download`: one file fetched over plain HTTP/1.1 `--runs` times by a client that is not the
//! bottleneck, written to `--out` in 1 MiB writes, timed and checked.
//!
//! Why a client of our own: `curl -o FILE` (and `wget`) write what they receive through stdio in
//! 4–16 KiB pieces (68,156 `write` calls for 512 MiB, counted with strace on this machine), and
//! that alone holds them near the speed of `curl file:///...` copying a local file, whatever the
//! server does. This client reads the socket into a 1 MiB buffer and writes each read out whole,
//! so what it measures is the server, loopback TCP and one write to the page cache: the same work
//! as `cp`'s read and write. `benches/http/download.sh` reports both clients against `cp`.
//!
//! The request is a plain `GET` with an optional bearer token; the response head is parsed with
//! `httparse`, the body must be exactly `Content-Length` bytes of a `200`, and with `--sha256`
//! every copy's digest is compared with the expected one (after the timed part).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use tokio::time::Instant;

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{machine, round3};

/// Read and write size of the client.
const BUFFER: usize = 1 << 20;
/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// Options of `download`.
#[derive(Clone, Debug, clap::Args)]
pub struct DownloadArgs {
    /// The file's URL: `http://HOST:PORT/path` (plain HTTP only).
    #[arg(long)]
    pub url: String,
    /// Sent as `Authorization: Bearer <token>`.
    #[arg(long)]
    pub token: Option<String>,
    /// Where each copy is written (overwritten by every run).
    #[arg(long)]
    pub out: PathBuf,
    /// Timed downloads.
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// Untimed downloads first.
    #[arg(long, default_value_t = 1)]
    pub warmup: u32,
    /// The expected SHA-256 of the body (hex): every copy is checked against it.
    #[arg(long)]
    pub sha256: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `http://host:port/path` split into the address and the path.
fn split_url(url: &str) -> anyhow::Result<(String, String)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("only http:// URLs are supported: {url}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        bail!("no host in {url}");
    }
    let address = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok((address, path.to_owned()))
}

/// One download: the body's size and the seconds from connect to the last byte written.
fn fetch(address: &str, request: &[u8], out: &PathBuf) -> anyhow::Result<(u64, f64)> {
    // The last run's copy goes first, untimed: truncating a cached file frees its pages, which
    // is not the download's cost (`cp` in download.sh writes to a fresh name too).
    match std::fs::remove_file(out) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot remove {}", out.display())),
    }
    let started = Instant::now();
    let mut socket =
        TcpStream::connect(address).with_context(|| format!("cannot connect to {address}"))?;
    socket.set_nodelay(true)?;
    socket.write_all(request)?;
    let mut buffer = vec![0u8; BUFFER];
    let mut filled = 0;
    let (head_len, length) = loop {
        let n = socket.read(&mut buffer[filled..])?;
        if n == 0 {
            bail!("the server closed the connection before the response head ended");
        }
        filled += n;
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&buffer[..filled])? {
            httparse::Status::Complete(head_len) => {
                if response.code != Some(200) {
                    bail!("the server answered {:?}", response.code);
                }
                let length = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .ok_or_else(|| anyhow!("the response has no Content-Length"))?;
                let length: u64 = std::str::from_utf8(length.value)?.trim().parse()?;
                break (head_len, length);
            }
            httparse::Status::Partial if filled >= MAX_HEAD => bail!("response head too long"),
            httparse::Status::Partial => {}
        }
    };
    let mut file =
        std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut received = (filled - head_len) as u64;
    if received > length {
        bail!("the server sent more than its Content-Length");
    }
    file.write_all(&buffer[head_len..filled])?;
    while received < length {
        let want = (length - received).min(BUFFER as u64) as usize;
        let n = socket.read(&mut buffer[..want])?;
        if n == 0 {
            bail!("the connection closed after {received} of {length} bytes");
        }
        file.write_all(&buffer[..n])?;
        received += n as u64;
    }
    drop(file);
    Ok((received, started.elapsed().as_secs_f64()))
}

/// The SHA-256 of a file, in hex.
fn sha256_of(path: &PathBuf) -> anyhow::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; BUFFER];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Runs the downloads.
pub async fn run(args: DownloadArgs) -> anyhow::Result<Value> {
    tokio::task::spawn_blocking(move || run_blocking(&args)).await?
}

fn run_blocking(args: &DownloadArgs) -> anyhow::Result<Value> {
    let (address, path) = split_url(&args.url)?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    if let Some(token) = &args.token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    request.push_str("\r\n");
    let runs = args.runs.clamp(1, 100);
    for _ in 0..args.warmup.min(10) {
        fetch(&address, request.as_bytes(), &args.out).context("warm-up download")?;
    }
    let mut rates = Vec::new();
    let mut times = Vec::new();
    let mut bytes = 0;
    let mut ok = true;
    let mut problems = Vec::new();
    for run in 0..runs {
        let (size, seconds) = fetch(&address, request.as_bytes(), &args.out)
            .with_context(|| format!("download {}", run + 1))?;
        bytes = size;
        times.push(seconds);
        rates.push(round3(size as f64 / seconds.max(1e-9) / 1e6));
        if let Some(expected) = &args.sha256 {
            let got = sha256_of(&args.out)?;
            if !got.eq_ignore_ascii_case(expected) {
                ok = false;
                problems.push(format!(
                    "run {}: sha256 {got}, expected {expected}",
                    run + 1
                ));
            }
        }
    }
    let mut sorted = rates.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    Ok(json!({
        "scenario": "download",
        "ok": ok,
        "problems": problems,
        "config": {
            "url": args.url,
            "out": args.out.display().to_string(),
            "runs": runs,
            "buffer_bytes": BUFFER,
            "sha256_checked": args.sha256.is_some(),
        },
        "bytes": bytes,
        "seconds": times,
        "mb_per_s": rates,
        "mb_per_s_median": median,
        "machine": machine(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_address_and_path() {
        assert_eq!(
            split_url("http://127.0.0.1:7480/im/v1/files/ab").unwrap(),
            ("127.0.0.1:7480".to_owned(), "/im/v1/files/ab".to_owned())
        );
        assert_eq!(
            split_url("http://localhost").unwrap(),
            ("localhost:80".to_owned(), "/".to_owned())
        );
        assert!(split_url("https://x/y").is_err());
        assert!(split_url("http:///y").is_err());
    }
}
