//! Entries on their way into a conversation's log: queued on the committer without a future,
//! waited for only when its queue is full, answered once durable.

use parley_protocol::frames::{Response, SendAck};
use parley_protocol::ids::SessionId;
use parley_protocol::ErrorCode;
use tokio::sync::oneshot;

use super::{err, shutting_down, Core, CoreResult};
use crate::commit::{CommitError, CommitRequest, Committer, SubmitError};
use crate::store::CommitItem;

impl Core {
    /// Queues an entry for the conversation's log without waiting. The reply resolves once it
    /// is durable (or refused); `origin` is the session it came from (its own push is
    /// skipped). A full queue gives back [`Submission::Full`] to wait on: the caller awaits it
    /// (boxed) before taking more work, which is the backpressure on that session.
    pub(crate) fn commit(
        &self,
        item: CommitItem,
        origin: Option<SessionId>,
        answer: Answer,
    ) -> CoreResult<Submission> {
        let (reply, rx) = oneshot::channel();
        let request = CommitRequest {
            item,
            origin_session: origin,
            reply,
        };
        let pending = Pending { rx, answer };
        match self.committer.try_submit(request) {
            Ok(()) => Ok(Submission::Queued(pending)),
            Err(SubmitError::Full(request)) => Ok(Submission::Full(Waiting {
                committer: self.committer.clone(),
                request,
                pending,
            })),
            Err(SubmitError::Stopped) => Err(shutting_down()),
        }
    }
}

/// An entry handed to the committer.
#[derive(Debug)]
pub enum Submission {
    /// Queued; the answer follows once durable.
    Queued(Pending),
    /// The committer's queue is full: wait for room, then the answer follows.
    Full(Waiting),
}

/// An entry waiting for room in the committer's queue.
#[derive(Debug)]
pub struct Waiting {
    committer: Committer,
    request: Box<CommitRequest>,
    pending: Pending,
}

impl Waiting {
    /// Waits for room and queues the entry.
    pub async fn queue(self) -> CoreResult<Pending> {
        self.committer
            .submit(*self.request)
            .await
            .map_err(|_| shutting_down())?;
        Ok(self.pending)
    }
}

impl Submission {
    /// The answer to come, once queued (for callers that wait anyway; a send's frequent path
    /// matches on the submission instead and waits only when it is `Full`).
    pub async fn queued(self) -> CoreResult<Pending> {
        match self {
            Submission::Queued(p) => Ok(p),
            Submission::Full(w) => w.queue().await,
        }
    }
}

/// What a durable entry is answered with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Its `SendAck` (messages).
    Ack,
    /// `Ok` (events: the change is done).
    Ok,
    /// `JoinResult` (a join, or a join request that waits for a manager).
    Joined {
        /// A request was filed.
        pending: bool,
    },
    /// `CallAnswer` (the signal that ended a call, once its record is durable).
    Call(u64),
    /// `FriendResult` (friends now, or a request that waits for the other).
    Befriended {
        /// A request was filed.
        pending: bool,
    },
}

/// The answer to a committed entry, once it is durable. A future of its own (not boxed): a
/// session awaits one per send in flight.
#[derive(Debug)]
pub struct Pending {
    rx: oneshot::Receiver<Result<SendAck, CommitError>>,
    answer: Answer,
}

impl std::future::Future for Pending {
    type Output = Response;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Response> {
        let answer = self.answer;
        std::pin::Pin::new(&mut self.rx)
            .poll(cx)
            .map(|outcome| match outcome {
                Ok(Ok(ack)) => match answer {
                    Answer::Ack => Response::SendAck(ack),
                    Answer::Ok => Response::Ok,
                    Answer::Joined { pending } => Response::JoinResult { pending },
                    Answer::Befriended { pending } => Response::FriendResult { pending },
                    Answer::Call(call) => Response::CallAnswer { call },
                },
                Ok(Err(CommitError::IdReused(e))) => {
                    Response::Error(err(ErrorCode::Conflict, e.to_string()))
                }
                Ok(Err(CommitError::Stopped)) | Err(_) => Response::Error(shutting_down()),
                Ok(Err(e @ (CommitError::Store | CommitError::Degraded(_)))) => {
                    Response::Error(e.client_error())
                }
            })
    }
}
