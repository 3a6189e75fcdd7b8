//! Time limits of an HTTP connection (issue 15, item 7; docs/security.md, "HTTP connections and
//! descriptors"): what keeps an idle, slow or silent client from holding a connection, and so a
//! file descriptor, for ever.
//!
//! - **Idle**: a connection with no request in progress and no byte moving either way for
//!   [`HttpLimits::idle_timeout`] is closed (a keep-alive connection between requests, a client
//!   that connected and sent nothing, a response the client stopped reading).
//! - **Header**: once the first byte of a request arrives, its head (request line and headers)
//!   must be complete within [`HttpLimits::header_timeout`], or the connection is closed.
//! - **Body stall**: a request body that delivers no data for [`HttpLimits::body_timeout`] ends
//!   with an error to the handler, and the client gets `408 Request Timeout` and a close. The
//!   limit is per stall, not per body: an upload of any size goes on while its bytes flow.
//!
//! hyper's own `header_read_timeout` is not used: it runs from the moment hyper waits for a
//! request, so it would also be the keep-alive idle limit. The [`Watchdog`] here tells the two
//! apart by watching the connection's bytes ([`Tracked`]) and its requests in progress.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The limits of every connection of an HTTP listener (`[http]` in the server's config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Time a request's head has from its first byte to its last.
    pub header_timeout: Duration,
    /// Time a connection may sit with no request in progress and no byte moving.
    pub idle_timeout: Duration,
    /// Time a request body may deliver nothing before the request ends with `408`.
    pub body_timeout: Duration,
    /// Connections one listener serves at once; more are refused at accept.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            max_connections: 4096,
        }
    }
}

/// "Not set" in the millisecond fields of [`Activity`].
const NEVER: u64 = u64::MAX;

/// What the connection's bytes and requests did, in milliseconds since the connection began.
/// Written by the I/O wrapper and the service, read by the watchdog; relaxed ordering is enough
/// since each field is a snapshot the watchdog only compares against its clock.
#[derive(Debug)]
pub(crate) struct Activity {
    start: Instant,
    /// Requests whose handler is running.
    in_flight: AtomicUsize,
    /// Last byte read or written.
    last_io: AtomicU64,
    /// First byte read while no request was in progress: a request head has begun.
    head_began: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_io: AtomicU64::new(0),
            head_began: AtomicU64::new(NEVER),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(NEVER - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    fn read(&self, n: usize) {
        if n == 0 {
            return;
        }
        let now = self.now_ms();
        self.last_io.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            let _ =
                self.head_began
                    .compare_exchange(NEVER, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    fn wrote(&self, n: usize) {
        if n > 0 {
            self.last_io.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// The connection waits for a request with nothing of one read yet: after the TLS
    /// handshake, whose bytes are not a request head.
    pub(crate) fn waiting(&self) {
        self.last_io.store(self.now_ms(), Ordering::Relaxed);
        self.head_began.store(NEVER, Ordering::Relaxed);
    }

    /// A request's handler starts: its head is complete. Ends when the guard drops.
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_began.store(NEVER, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

/// A request in progress (see [`Activity::begin`]).
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        // The idle time of a connection counts from its last response, not from the last byte
        // of the request before a slow handler.
        self.0.last_io.store(self.0.now_ms(), Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why the watchdog closed a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expired {
    /// Nothing happened for `idle_timeout`.
    Idle,
    /// A request head did not complete within `header_timeout`.
    Header,
}

/// Resolves when the connection has been idle, or slow with a request head, for too long.
pub(crate) struct Watchdog {
    pub(crate) activity: Arc<Activity>,
    pub(crate) limits: HttpLimits,
}

impl Watchdog {
    pub(crate) async fn expired(&self) -> Expired {
        let a = &self.activity;
        let limits = &self.limits;
        loop {
            let now = Instant::now();
            // The deadline from what is known now. Activity since then only moves it later,
            // except a request head that begins: its deadline is at least `header_timeout`
            // from now, so waking at least that often is never late.
            let (deadline, why) = if a.in_flight.load(Ordering::Relaxed) > 0 {
                // A handler is running; its body has its own stall limit.
                (None, Expired::Idle)
            } else {
                match a.head_began.load(Ordering::Relaxed) {
                    NEVER => {
                        let last = a.last_io.load(Ordering::Relaxed);
                        (Some(a.at(last) + limits.idle_timeout), Expired::Idle)
                    }
                    began => (Some(a.at(began) + limits.header_timeout), Expired::Header),
                }
            };
            if deadline.is_some_and(|d| now >= d) {
                return why;
            }
            let wake = now + limits.header_timeout.min(limits.idle_timeout);
            tokio::time::sleep_until(deadline.map_or(wake, |d| d.min(wake))).await;
        }
    }
}

/// A connection's byte stream, noting its reads and writes in [`Activity`].
pub(crate) struct Tracked<S> {
    pub(crate) inner: S,
    pub(crate) activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            this.activity.read(buf.filled().len() - before);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            this.activity.wrote(n);
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            this.activity.wrote(n);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The error a stalled body ends with (the client gets `408`, see [`StallBody`]).
#[derive(Debug, thiserror::Error)]
#[error("the request body delivered nothing for {0:?}")]
pub(crate) struct BodyStalled(Duration);

/// A request body that fails with [`BodyStalled`] when no data comes for `timeout` while its
/// reader waits for some, and then raises `stalled` so the connection answers `408`.
pub(crate) struct StallBody {
    inner: Incoming,
    timeout: Duration,
    /// Armed while the reader waits; re-armed (not reallocated) at each wait.
    sleep: Pin<Box<Sleep>>,
    armed: bool,
    stalled: Arc<AtomicBool>,
}

impl StallBody {
    pub(crate) fn new(inner: Incoming, timeout: Duration, stalled: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            timeout,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            armed: false,
            stalled,
        }
    }
}

impl HttpBody for StallBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.stalled.load(Ordering::Relaxed) {
            return Poll::Ready(Some(Err(BodyStalled(this.timeout).into())));
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.armed = false;
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if !this.armed {
            this.armed = true;
            let deadline = Instant::now() + this.timeout;
            this.sleep.as_mut().reset(deadline);
        }
        if this.sleep.as_mut().poll(cx).is_ready() {
            this.stalled.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(BodyStalled(this.timeout).into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watchdog(header: u64, idle: u64) -> Watchdog {
        Watchdog {
            activity: Activity::new(),
            limits: HttpLimits {
                header_timeout: Duration::from_secs(header),
                idle_timeout: Duration::from_secs(idle),
                ..HttpLimits::default()
            },
        }
    }

    /// A request head that begins while the watchdog sleeps towards a far idle deadline is
    /// still cut at its own, nearer one.
    #[tokio::test(start_paused = true)]
    async fn a_head_begun_during_a_long_idle_wait_gets_the_header_timeout() {
        let dog = Arc::new(watchdog(1, 100));
        let watched = dog.clone();
        let expired = tokio::spawn(async move { watched.expired().await });
        tokio::time::sleep(Duration::from_millis(2500)).await;
        dog.activity.read(5);
        let began = Instant::now();
        assert_eq!(expired.await.unwrap(), Expired::Header);
        let took = began.elapsed();
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }

    /// Idle counts from the last byte or the last response; a running handler is never cut.
    #[tokio::test(start_paused = true)]
    async fn idle_waits_for_handlers_and_counts_from_the_last_activity() {
        let dog = Arc::new(watchdog(10, 30));
        let request = dog.activity.begin();
        let watched = dog.clone();
        let expired = tokio::spawn(async move { watched.expired().await });
        tokio::time::sleep(Duration::from_secs(300)).await;
        assert!(!expired.is_finished(), "cut while a handler ran");
        drop(request);
        let done = Instant::now();
        assert_eq!(expired.await.unwrap(), Expired::Idle);
        assert!(done.elapsed() >= Duration::from_secs(30));
    }
}
