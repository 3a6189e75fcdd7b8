//! Request dispatch: each request runs against the core; the driver only writes the answer.

use parley_protocol::frames::{Device, Request, Response};
use parley_protocol::ids::RequestId;
use parley_protocol::FrameCodec;
use parley_protocol::{frames::ErrorInfo, frames::GoAwayReason, ErrorCode};
use tokio::sync::oneshot;

use super::Driver;
use crate::commit::{CommitError, CommitRequest};
use crate::core::{CoreResult, LoginOutcome};
use crate::hub::Link;

impl<S: crate::transport::SessionStream> Driver<S> {
    pub(super) async fn handle(&mut self, id: RequestId, request: Request) {
        let name = request.name();
        let result = self.dispatch(id, request).await;
        match result {
            Ok(Some(response)) => self.respond(id, response),
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(request = name, code = ?e.code, "request failed");
                self.respond(id, Response::Error(e));
            }
        }
    }

    /// Runs one request. `Ok(None)` means the answer comes later (a send awaiting its ack).
    async fn dispatch(&mut self, id: RequestId, request: Request) -> CoreResult<Option<Response>> {
        let core = self.core.clone();
        let me = self.sm.identity().cloned();
        let ok = |()| Some(Response::Ok);
        Ok(match (request, me) {
            (Request::Ping { client_time_ms }, _) => Some(Response::Pong {
                client_time_ms,
                server_time_ms: crate::clock::now_ms(),
            }),
            (
                Request::Register {
                    account,
                    password,
                    device,
                },
                None,
            ) => {
                let outcome = core.register(account, password, device.clone()).await?;
                Some(self.logged_in(outcome, device))
            }
            (Request::Login { credential, device }, None) => {
                let outcome = core.login(credential, device.clone()).await?;
                Some(self.logged_in(outcome, device))
            }
            (
                Request::Refresh {
                    refresh_token,
                    device,
                },
                None,
            ) => {
                let outcome = core.refresh(&refresh_token, device.clone(), None).await?;
                Some(self.logged_in(outcome, device))
            }
            (
                Request::Refresh {
                    refresh_token,
                    device,
                },
                Some(me),
            ) => {
                let mut outcome = core.refresh(&refresh_token, device, Some(&me)).await?;
                outcome.result.session_id = self.session_id;
                Some(Response::Login(outcome.result))
            }
            (_, None) => return Err(ErrorInfo::new(ErrorCode::Unauthenticated, "log in first")),
            (Request::Register { .. } | Request::Login { .. }, Some(_)) => {
                return Err(ErrorInfo::new(
                    ErrorCode::AlreadyLoggedIn,
                    "already logged in",
                ))
            }
            (Request::Logout, Some(me)) => {
                core.logout(&me).await?;
                self.begin_close(GoAwayReason::LoggedOut, "logged out");
                Some(Response::Ok)
            }
            (Request::Send(send), Some(me)) => {
                let item = core.prepare_send(&me, send)?;
                let (reply, rx) = oneshot::channel();
                let request = CommitRequest {
                    item,
                    origin_session: self.session_id,
                    reply,
                };
                core.committer
                    .submit(request)
                    .await
                    .map_err(|_| ErrorInfo::new(ErrorCode::ShuttingDown, "server shutting down"))?;
                let acks = self.acks.get_or_insert_with(Box::default);
                acks.push(Box::pin(async move {
                    let response = match rx.await {
                        Ok(Ok(ack)) => Response::SendAck(ack),
                        Ok(Err(CommitError::IdReused(e))) => {
                            Response::Error(ErrorInfo::new(ErrorCode::Conflict, e.to_string()))
                        }
                        Ok(Err(CommitError::Stopped)) | Err(_) => Response::Error(ErrorInfo::new(
                            ErrorCode::ShuttingDown,
                            "server shutting down",
                        )),
                        Ok(Err(CommitError::Store)) => {
                            Response::Error(ErrorInfo::new(ErrorCode::Internal, "internal error"))
                        }
                    };
                    (id, response)
                }));
                None
            }
            (
                Request::CursorAck {
                    conversation,
                    kind,
                    seq,
                },
                Some(me),
            ) => ok(core.cursor_ack(&me, self.session_id, conversation, kind, seq)?),
            (Request::Sync(sync), Some(me)) => Some(Response::Sync(core.sync(me.user, sync)?)),
            (Request::OpenDirect(peer), Some(me)) => {
                Some(Response::Conversation(core.open_direct(&me, peer).await?))
            }
            (Request::CreateGroup { name, members }, Some(me)) => Some(Response::Conversation(
                core.create_group(&me, &name, &members).await?,
            )),
            (
                Request::ChangeMembers {
                    conversation,
                    add,
                    remove,
                },
                Some(me),
            ) => ok(core
                .change_members(&me, conversation, &add, &remove)
                .await?),
            (Request::Typing { conversation }, Some(me)) => ok(core.typing(&me, conversation)?),
        })
    }

    /// Completes a login: the session becomes active, joins the router, and gets the larger
    /// post-login frame limit.
    fn logged_in(&mut self, outcome: LoginOutcome, device: Device) -> Response {
        let LoginOutcome {
            identity,
            mut result,
        } = outcome;
        result.session_id = self.session_id;
        tracing::Span::current().record("user", identity.user.get());
        let link = Link::new(
            self.session_id,
            identity.user,
            device.id,
            self.core.config().limits.outbound_queue,
        );
        if let Some(old) = self.core.hub().register(identity.user, link.clone()) {
            tracing::info!(
                id = self.session_id,
                user = identity.user.get(),
                replaced = old.session_id,
                "same device logged in again"
            );
        }
        self.link = Some(link);
        self.framed.set_codec(FrameCodec::new(
            self.core.config().limits.max_frame_bytes as usize,
        ));
        self.sm
            .logged_in(tokio::time::Instant::now().into_std(), identity);
        tracing::debug!("logged in");
        Response::Login(result)
    }
}
