//! The sends a session has in flight (awaiting their durable ack), and which request ids they
//! hold.
//!
//! A request id must be unique among a connection's outstanding requests (docs/protocol.md,
//! section 3). The only requests that stay outstanding while the driver reads on are those
//! answered [`Reply::Later`](crate::service::Reply::Later) (sends and other log entries): every
//! other request is answered before the next frame is read. So the in-flight acks are exactly
//! the ids to check a new request against.
//!
//! The check runs for every frame, so it must cost O(1) and allocate nothing: a counting filter
//! of 64 slots (`id % 64`) says at once that an id is not outstanding; only when its slot is
//! taken are the in-flight acks themselves looked at. Clients number requests with a counter,
//! so with fewer than 64 in flight no two of them share a slot and the fast answer is the only
//! one ever needed.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::FuturesUnordered;
use futures::StreamExt;

use parley_protocol::frames::Response;
use parley_protocol::ids::RequestId;

use crate::service::Pending;

const SLOTS: usize = 64;

/// One send awaiting its durable ack, with the request id to answer under.
struct Ack {
    id: RequestId,
    pending: Pending,
}

impl Future for Ack {
    type Output = (RequestId, Response);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        Pin::new(&mut this.pending).poll(cx).map(|r| (this.id, r))
    }
}

/// The in-flight acks of a session (allocated with its first send, dropped when it sleeps).
pub(super) struct Acks {
    futures: FuturesUnordered<Ack>,
    /// How many in-flight ids fall into each slot (`id % SLOTS`).
    slots: [u16; SLOTS],
}

impl Default for Acks {
    fn default() -> Self {
        Acks {
            futures: FuturesUnordered::new(),
            slots: [0; SLOTS],
        }
    }
}

fn slot(id: RequestId) -> usize {
    (id.get() % SLOTS as u64) as usize
}

impl Acks {
    /// Sends in flight.
    pub(super) fn len(&self) -> usize {
        self.futures.len()
    }

    /// True if no send is in flight.
    pub(super) fn is_empty(&self) -> bool {
        self.futures.is_empty()
    }

    /// True if a request with `id` is still awaiting its answer.
    pub(super) fn holds(&self, id: RequestId) -> bool {
        self.slots[slot(id)] != 0 && self.futures.iter().any(|a| a.id == id)
    }

    /// Adds a send that answers `id` once `pending` resolves.
    pub(super) fn push(&mut self, id: RequestId, pending: Pending) {
        let s = &mut self.slots[slot(id)];
        *s = s.saturating_add(1);
        self.futures.push(Ack { id, pending });
    }

    /// Polls for the next ack to be answered (`None` when none is in flight). An ack leaves
    /// the set only in the poll that returns it. (A poll function, not an `async fn`: its
    /// future would be part of every awake session's task.)
    pub(super) fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<(RequestId, Response)>> {
        let done = std::task::ready!(self.futures.poll_next_unpin(cx));
        if let Some((id, _)) = &done {
            self.forget(*id);
        }
        Poll::Ready(done)
    }

    /// An ack that is ready now, if any.
    pub(super) fn ready(&mut self) -> Option<(RequestId, Response)> {
        use futures::FutureExt;
        let done = self.futures.next().now_or_never().flatten();
        if let Some((id, _)) = &done {
            self.forget(*id);
        }
        done
    }

    fn forget(&mut self, id: RequestId) {
        let s = &mut self.slots[slot(id)];
        *s = s.saturating_sub(1);
    }
}
