//! Dispatch: one arm per request, each a call into the core. Who may do what before login is
//! decided here, for every adapter alike; what an operation checks beyond that is in its core
//! file.

use parley_protocol::frames::{ErrorInfo, Request, Response};
use parley_protocol::ErrorCode;

use super::{Caller, Reply, Service};
use crate::clock::now_ms;
use crate::core::CoreResult;

impl Service {
    /// Runs `request` for `caller`. Errors come back as `Reply::Now(Response::Error(..))`.
    pub async fn execute(&self, caller: &Caller, request: Request) -> Reply {
        let name = request.name();
        match self.run(caller, request).await {
            Ok(reply) => reply,
            Err(e) => {
                tracing::debug!(request = name, code = ?e.code, "request failed");
                e.into()
            }
        }
    }

    async fn run(&self, caller: &Caller, request: Request) -> CoreResult<Reply> {
        let core = &*self.core;
        let (me, session) = match caller {
            // Boxed, like every rare path below: the future of a request is allocated per
            // frame and moved, so the hot paths (send, cursors, sync, ping) keep it small.
            Caller::Anonymous => return Box::pin(self.anonymous(request)).await,
            Caller::User { identity, session } => (identity, *session),
        };
        let now = Reply::Now;
        Ok(match request {
            Request::Ping { client_time_ms } => now(pong(client_time_ms)),
            Request::Register { .. } | Request::Login { .. } => {
                return Err(ErrorInfo::new(
                    ErrorCode::AlreadyLoggedIn,
                    "already logged in",
                ))
            }
            Request::Refresh {
                refresh_token,
                device,
            } => {
                let mut outcome = Box::pin(core.refresh(&refresh_token, device, Some(me))).await?;
                outcome.result.session_id = session.map_or(0, |s| s.get());
                now(Response::Login(outcome.result))
            }
            Request::Logout => {
                Box::pin(core.logout(me)).await?;
                Reply::LoggedOut
            }
            Request::Send(send) => Reply::Later(core.send(me, session, send)?.queued().await?),
            Request::CursorAck {
                conversation,
                kind,
                seq,
            } => {
                core.cursor_ack(me, session, conversation, kind, seq)?;
                now(Response::Ok)
            }
            Request::Sync(sync) => now(Response::Sync(core.sync(me.user, sync)?)),
            Request::OpenDirect(peer) => {
                now(Response::Conversation(core.open_direct(me, peer).await?))
            }
            Request::CreateGroup { name, members } => now(Response::Conversation(
                core.create_group(me, &name, &members).await?,
            )),
            Request::ChangeMembers {
                conversation,
                add,
                remove,
                request_key,
            } => match Box::pin(core.change_members(
                me,
                session,
                conversation,
                &add,
                &remove,
                request_key,
            ))
            .await?
            {
                Some(pending) => Reply::Later(pending),
                None => now(Response::Ok),
            },
            Request::Typing { conversation } => {
                core.typing(me, conversation)?;
                now(Response::Ok)
            }
            Request::ListConversations => {
                now(Response::ConversationList(core.list_conversations(me)?))
            }
        })
    }

    /// What a caller that is not logged in may do.
    async fn anonymous(&self, request: Request) -> CoreResult<Reply> {
        let core = &*self.core;
        let outcome = match request {
            Request::Register {
                account,
                password,
                device,
            } => core.register(account, password, device).await?,
            Request::Login { credential, device } => core.login(credential, device).await?,
            Request::Refresh {
                refresh_token,
                device,
            } => core.refresh(&refresh_token, device, None).await?,
            Request::Ping { client_time_ms } => return Ok(Reply::Now(pong(client_time_ms))),
            _ => return Err(ErrorInfo::new(ErrorCode::Unauthenticated, "log in first")),
        };
        Ok(Reply::LoggedIn(outcome))
    }
}

fn pong(client_time_ms: u64) -> Response {
    Response::Pong {
        client_time_ms,
        server_time_ms: now_ms(),
    }
}
