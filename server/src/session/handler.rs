//! Requests: each one goes to the request service; the driver only writes the answer, and
//! opens or ends its session when a login or logout says so.

use parley_protocol::frames::{GoAwayReason, Request, Response};
use parley_protocol::ids::RequestId;
use parley_protocol::FrameCodec;

use super::{Driver, SessionStream};
use crate::service::{Caller, LoginOutcome, Reply};

impl<S: SessionStream> Driver<S> {
    pub(super) async fn handle(&mut self, id: RequestId, request: Request) {
        let caller = match self.sm.identity() {
            Some(identity) => Caller::User {
                identity: identity.clone(),
                session: Some(self.session_id),
            },
            None => Caller::AnonymousFrom(self.info.peer.ip()),
        };
        let mut reply = self.service.execute(&caller, request);
        if let Reply::Deferred(work) = reply {
            // Rare (logins, conversation changes, a full commit queue): no further frame is
            // read from this connection until it is done.
            reply = work.await;
        }
        match reply {
            Reply::Now(response) => self.respond(id, response),
            Reply::Later(pending) => {
                let acks = self.acks.get_or_insert_with(Box::default);
                acks.push(id, pending);
            }
            Reply::LoggedIn(outcome) => {
                let response = self.logged_in(outcome);
                self.respond(id, response);
            }
            Reply::LoggedOut => {
                self.begin_close(GoAwayReason::LoggedOut, "logged out");
                self.respond(id, Response::Ok);
            }
            Reply::Deferred(_) => {
                tracing::error!("a deferred reply resolved to another");
                let e = parley_protocol::frames::ErrorInfo::new(
                    parley_protocol::ErrorCode::Internal,
                    "internal error",
                );
                self.respond(id, Response::Error(e));
            }
        }
    }

    /// Completes a login: the session becomes active, joins the router, and gets the larger
    /// post-login frame limit.
    fn logged_in(&mut self, outcome: LoginOutcome) -> Response {
        let LoginOutcome {
            identity,
            mut result,
        } = outcome;
        result.session_id = self.session_id.get();
        tracing::Span::current().record("user", identity.user.get());
        self.link = Some(self.service.open_link(self.session_id, &identity));
        self.framed.set_codec(FrameCodec::new(
            self.service.core().config().limits.max_frame_bytes as usize,
        ));
        self.sm
            .logged_in(tokio::time::Instant::now().into_std(), identity);
        tracing::debug!("logged in");
        Response::Login(result)
    }
}
