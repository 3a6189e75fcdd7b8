//! Dispatch: one arm per request, each a call into the core. Who may do what before login is
//! decided here, for every adapter alike; what an operation checks beyond that is in its core
//! file.
//!
//! `execute` itself is not a future: the frequent requests (send, cursors, typing, ping) are
//! answered or queued without one, and the rest (logins, conversation changes, sync, whose page
//! is built on the blocking pool) come back as [`Reply::Deferred`], one boxed future the adapter
//! awaits. A future per request built through
//! several layers showed in the profile of 1:1 chat at saturation (docs/BENCHMARKS.md).

use std::future::Future;
use std::sync::Arc;

use parley_protocol::frames::{ErrorInfo, Request, Response};
use parley_protocol::session::Identity;
use parley_protocol::ErrorCode;

use super::{Caller, Reply, Service};
use crate::clock::now_ms;
use crate::core::{Befriend, Core, CoreResult, Join, Pending, Signalled, Source, Submission};

impl Service {
    /// Runs `request` for `caller`. Errors come back as `Reply::Now(Response::Error(..))`; a
    /// `Reply::Deferred` resolves to one of the other replies.
    pub fn execute(&self, caller: &Caller, request: Request) -> Reply {
        let name = request.name();
        match self.run(caller, request) {
            Ok(reply) => reply,
            Err(e) => {
                tracing::debug!(request = name, code = ?e.code, "request failed");
                e.into()
            }
        }
    }

    fn run(&self, caller: &Caller, request: Request) -> CoreResult<Reply> {
        let core = &*self.core;
        let (me, session) = match caller {
            Caller::Anonymous | Caller::AnonymousFrom(_) => {
                let source = match caller {
                    Caller::AnonymousFrom(ip) => Source::from_ip(*ip),
                    _ => Source::Unknown,
                };
                let service = self.clone();
                return Ok(defer(
                    async move { service.anonymous(request, source).await },
                ));
            }
            Caller::User { identity, session } => (identity, *session),
        };
        let now = Reply::Now;
        if guests_may_not(&request, me) && core.is_guest(me.user)? {
            return Err(ErrorInfo::new(
                ErrorCode::Forbidden,
                format!("guests may not {}", request.name().replace('_', " ")),
            ));
        }
        Ok(match request {
            Request::Ping { client_time_ms } => now(pong(client_time_ms)),
            Request::Register { .. } | Request::Login { .. } | Request::GuestLogin { .. } => {
                return Err(ErrorInfo::new(
                    ErrorCode::AlreadyLoggedIn,
                    "already logged in",
                ))
            }
            Request::Refresh {
                refresh_token,
                device,
            } => self.deferred(me, move |core, me| async move {
                let mut outcome = core.refresh(&refresh_token, device, Some(&me)).await?;
                outcome.result.session_id = session.map_or(0, |s| s.get());
                Ok(Reply::Now(Response::Login(outcome.result)))
            }),
            Request::Logout => self.deferred(me, move |core, me| async move {
                core.logout(&me).await?;
                Ok(Reply::LoggedOut)
            }),
            Request::ChangePassword { old, new } => self.deferred(me, move |core, me| async move {
                core.change_password(&me, session, old, new)
                    .await
                    .map(|()| Reply::Now(Response::Ok))
            }),
            Request::ListDevices => now(Response::Devices(core.list_devices(me)?)),
            Request::SetPresence { status, text } => {
                core.set_presence(me, status, text)?;
                now(Response::Ok)
            }
            Request::CallSignal(signal) => self.deferred(me, move |core, me| async move {
                Ok(match core.call_signal(&me, session, signal).await? {
                    Signalled::Done(call) => Reply::Now(Response::CallAnswer { call }),
                    Signalled::Ended(pending) => Reply::Later(pending),
                })
            }),
            // A forwarded file message grants the target conversation access to the file (a
            // store write the log's fsync does not cover): a barrier makes it durable first.
            Request::ForwardMessage {
                from,
                seq,
                to,
                client_msg_id,
            } => self.deferred(me, move |core, me| async move {
                let forward = core.forward(&me, session, from, seq, to, client_msg_id)?;
                let pending = forward.queued().await?;
                core.durable().await?;
                Ok(Reply::Later(pending))
            }),
            Request::DeleteForMe { conversation, seqs } => {
                self.change(me, move |core, me| async move {
                    core.delete_for_me(&me, session, conversation, seqs)
                        .await
                        .map(Some)
                })
            }
            Request::GetReadState {
                conversation,
                after,
                limit,
            } => {
                let (receipts, has_more) = core.read_state(me, conversation, after, limit)?;
                now(Response::ReadState { receipts, has_more })
            }
            Request::SearchMessages {
                query,
                conversation,
                before,
                limit,
            } => self.deferred(me, move |core, me| async move {
                // The index is read from disk: off the runtime's workers.
                let search = tokio::task::spawn_blocking(move || {
                    core.search_messages(&me, &query, conversation, before, limit)
                });
                let (messages, has_more) = search.await.map_err(|_| internal_error())??;
                Ok(Reply::Now(Response::SearchResult { messages, has_more }))
            }),
            Request::SetPushToken { provider, token } => {
                self.deferred(me, move |core, me| async move {
                    core.set_push_token(&me, &provider, &token)
                        .await
                        .map(|()| Reply::Now(Response::Ok))
                })
            }
            Request::ListCalls { before, limit } => {
                let (calls, has_more) = core.list_calls(me, before, limit)?;
                now(Response::Calls { calls, has_more })
            }
            Request::GetCall { call } => {
                let call = core.get_call(me, call)?;
                now(Response::Calls {
                    calls: vec![call],
                    has_more: false,
                })
            }
            Request::GetPresence(users) => now(Response::Presences(core.get_presence(me, &users)?)),
            Request::SignOutDevice(device) => self.deferred(me, move |core, me| async move {
                core.sign_out_device(&me, &device)
                    .await
                    .map(|()| Reply::Now(Response::Ok))
            }),
            // A message naming a file grants the conversation access to it (docs/files.md), a
            // store write the log's fsync does not cover: a barrier makes it durable before the
            // ack. Only image, file, audio, video and sticker messages; text never comes here.
            Request::Send(send) if crate::core::bears_file(send.content_type) => {
                self.deferred(me, move |core, me| async move {
                    let pending = core.send(&me, session, send)?.queued().await?;
                    core.durable().await?;
                    Ok(Reply::Later(pending))
                })
            }
            Request::Send(send) => match core.send(me, session, send)? {
                Submission::Queued(pending) => Reply::Later(pending),
                Submission::Full(waiting) => {
                    defer(async move { Ok(Reply::Later(waiting.queue().await?)) })
                }
            },
            Request::CursorAck {
                conversation,
                kind,
                seq,
            } => {
                core.cursor_ack(me, session, conversation, kind, seq)?;
                now(Response::Ok)
            }
            // A page is bounded (docs/security.md) but still reads the store for many
            // conversations: it is built on the blocking pool (`core/sync.rs`).
            Request::Sync(sync) => self.deferred(me, move |core, me| async move {
                Ok(Reply::Now(Response::Sync(core.sync(me.user, sync).await?)))
            }),
            Request::OpenDirect(peer) => self.deferred(me, move |core, me| async move {
                let info = core.open_direct(&me, peer).await?;
                Ok(Reply::Now(Response::Conversation(info)))
            }),
            Request::CreateGroup { name, members } => {
                self.deferred(me, move |core, me| async move {
                    let info = core.create_group(&me, &name, &members).await?;
                    Ok(Reply::Now(Response::Conversation(info)))
                })
            }
            Request::ChangeMembers {
                conversation,
                add,
                remove,
                request_key,
            } => self.change(me, move |core, me| async move {
                core.change_members(&me, session, conversation, &add, &remove, request_key)
                    .await
            }),
            Request::Typing { conversation } => {
                core.typing(me, conversation)?;
                now(Response::Ok)
            }
            Request::ListConversations { limit, offset } => {
                let page = core.list_conversations(me, limit, offset)?;
                now(Response::ConversationList {
                    conversations: page.conversations,
                    total_unread: page.total_unread,
                    total: page.total,
                })
            }
            Request::SetConversationPrefs {
                conversation,
                prefs,
            } => self.change(me, move |core, me| async move {
                core.set_conversation_prefs(&me, session, conversation, prefs)
                    .await
            }),
            Request::UpdateGroup {
                conversation,
                change,
                request_key,
            } => self.change(me, move |core, me| async move {
                core.update_group(&me, session, conversation, change, request_key)
                    .await
            }),
            Request::SetMemberRole {
                conversation,
                user,
                role,
                request_key,
            } => self.change(me, move |core, me| async move {
                core.set_member_role(&me, session, conversation, user, role, request_key)
                    .await
            }),
            Request::MuteMember {
                conversation,
                user,
                duration_ms,
                request_key,
            } => self.change(me, move |core, me| async move {
                core.mute_member(&me, session, conversation, user, duration_ms, request_key)
                    .await
                    .map(Some)
            }),
            Request::DisbandGroup {
                conversation,
                request_key,
            } => self.change(me, move |core, me| async move {
                core.disband_group(&me, session, conversation, request_key)
                    .await
                    .map(Some)
            }),
            Request::SetGroupNickname {
                conversation,
                nickname,
                request_key,
            } => self.change(me, move |core, me| async move {
                core.set_group_nickname(&me, session, conversation, nickname, request_key)
                    .await
            }),
            Request::ListMembers {
                conversation,
                after,
                limit,
            } => {
                let (members, has_more, total) =
                    core.list_members(me, conversation, after, limit)?;
                now(Response::MemberList {
                    members,
                    has_more,
                    total,
                })
            }
            Request::JoinGroup {
                conversation,
                message,
                request_key,
            } => self.deferred(me, move |core, me| async move {
                let join = core.join_group(&me, session, conversation, message, request_key);
                Ok(match join.await? {
                    Join::Already { pending } => Reply::Now(Response::JoinResult { pending }),
                    Join::Committing(pending) => Reply::Later(pending),
                })
            }),
            Request::AnswerJoinRequest {
                conversation,
                user,
                approve,
                request_key,
            } => self.change(me, move |core, me| async move {
                core.answer_join_request(&me, session, conversation, user, approve, request_key)
                    .await
            }),
            Request::EditMessage {
                conversation,
                seq,
                content,
                request_key,
            } => self.change(me, move |core, me| async move {
                core.edit_message(&me, session, conversation, seq, content, request_key)
                    .await
                    .map(Some)
            }),
            Request::RecallMessage {
                conversation,
                seq,
                request_key,
            } => self.change(me, move |core, me| async move {
                core.recall_message(&me, session, conversation, seq, request_key)
                    .await
            }),
            Request::React {
                conversation,
                seq,
                emoji,
                remove,
                request_key,
            } => self.change(me, move |core, me| async move {
                core.react(&me, session, conversation, seq, emoji, remove, request_key)
                    .await
            }),
            Request::GetHistory {
                conversation,
                before,
                after,
                limit,
            } => {
                let (messages, has_more) = core.history(me, conversation, before, after, limit)?;
                now(Response::History { messages, has_more })
            }
            Request::GetProfiles(users) => now(Response::Profiles(core.get_profiles(&users)?)),
            Request::UpdateProfile(change) => self.deferred(me, move |core, me| async move {
                core.update_profile(&me, change)
                    .await
                    .map(|()| Reply::Now(Response::Ok))
            }),
            Request::GetSettings => now(Response::Settings(Box::new(core.get_settings(me)?))),
            Request::UpdateSettings(change) => self.deferred(me, move |core, me| async move {
                let settings = core.update_settings(&me, change).await?;
                Ok(Reply::Now(Response::Settings(Box::new(settings))))
            }),
            Request::SearchUsers {
                query,
                after,
                limit,
            } => self.deferred(me, move |core, me| async move {
                // A scan of the users: off the runtime's workers.
                let search = tokio::task::spawn_blocking(move || {
                    core.search_users(&me, &query, after, limit)
                });
                let (users, has_more) = search.await.map_err(|_| internal_error())??;
                Ok(Reply::Now(Response::Users { users, has_more }))
            }),
            Request::AddFriend {
                user,
                message,
                remark,
            } => self.deferred(me, move |core, me| async move {
                let add = core.add_friend(&me, session, user, message, remark);
                Ok(match add.await? {
                    Befriend::Already { pending } => Reply::Now(Response::FriendResult { pending }),
                    Befriend::Committing(pending) => Reply::Later(pending),
                })
            }),
            Request::AnswerFriendRequest {
                user,
                accept,
                remark,
            } => self.change(me, move |core, me| async move {
                core.answer_friend_request(&me, session, user, accept, remark)
                    .await
                    .map(Some)
            }),
            Request::RemoveFriend(user) => self.change(me, move |core, me| async move {
                core.remove_friend(&me, session, user).await.map(Some)
            }),
            Request::SetFriendRemark { user, remark } => {
                self.deferred(me, move |core, me| async move {
                    core.set_friend_remark(&me, user, &remark)
                        .await
                        .map(|()| Reply::Now(Response::Ok))
                })
            }
            Request::ListFriends => now(Response::Friends(core.list_friends(me)?)),
            Request::ListFriendRequests { outgoing } => now(Response::FriendRequests(
                core.list_friend_requests(me, outgoing)?,
            )),
            Request::SetBlocked { user, blocked } => self.change(me, move |core, me| async move {
                core.set_blocked(&me, session, user, blocked).await
            }),
            Request::ListBlocked => now(Response::Users {
                users: core.list_blocked(me)?,
                has_more: false,
            }),
            Request::GetGroup { conversation } => {
                now(Response::Group(Box::new(core.get_group(me, conversation)?)))
            }
            Request::RegisterFile { upload, file } => {
                self.deferred(me, move |core, me| async move {
                    let info = core.register_file(&me, upload, file).await?;
                    Ok(Reply::Now(Response::File(Box::new(info))))
                })
            }
            Request::GetFile(id) => now(Response::File(Box::new(core.get_file(Some(me), id)?))),
            Request::ListFiles {
                limit,
                offset,
                kind,
            } => {
                let list = core.list_files(me, limit, offset, kind)?;
                now(Response::Files {
                    files: list.files,
                    has_more: list.has_more,
                    total: list.total,
                })
            }
            Request::DeleteFile(id) => self.deferred(me, move |core, me| async move {
                core.delete_file(&me, id).await?;
                Ok(Reply::Now(Response::Ok))
            }),
            Request::JoinWorld => self.deferred(me, move |core, me| async move {
                let info = core.join_world(&me, session).await?;
                Ok(Reply::Now(Response::Conversation(info)))
            }),
            Request::CreateMeeting {
                title,
                password,
                max_participants,
            } => self.deferred(me, move |core, me| async move {
                let m = core
                    .create_meeting(&me, &title, &password, max_participants)
                    .await?;
                Ok(Reply::Now(Response::Meeting(Box::new(m))))
            }),
            Request::JoinMeeting { meeting, password } => {
                self.deferred(me, move |core, me| async move {
                    let m = core.join_meeting(&me, meeting, &password).await?;
                    Ok(Reply::Now(Response::Meeting(Box::new(m))))
                })
            }
            Request::EndMeeting { meeting } => self.deferred(me, move |core, me| async move {
                let m = core.end_meeting(&me, meeting).await?;
                Ok(Reply::Now(Response::Meeting(Box::new(m))))
            }),
            Request::GetMeeting { meeting } => {
                now(Response::Meeting(Box::new(core.get_meeting(me, meeting)?)))
            }
            Request::ListMeetings { offset, limit } => {
                let (meetings, has_more, total) = core.list_meetings(me, offset, limit)?;
                now(Response::Meetings {
                    meetings,
                    has_more,
                    total,
                })
            }
        })
    }

    /// A request that waits (hashing, a barrier, the committer): `work` runs as the caller, in
    /// one deferred reply.
    fn deferred<F, Fut>(&self, me: &Identity, work: F) -> Reply
    where
        F: FnOnce(Arc<Core>, Identity) -> Fut,
        Fut: Future<Output = CoreResult<Reply>> + Send + 'static,
    {
        defer(work(self.core.clone(), me.clone()))
    }

    /// A conversation event on its way to the log: checked and queued in a deferred reply,
    /// answered once durable (`None`: nothing to change, answered `Ok` at once).
    fn change<F, Fut>(&self, me: &Identity, work: F) -> Reply
    where
        F: FnOnce(Arc<Core>, Identity) -> Fut,
        Fut: Future<Output = CoreResult<Option<Pending>>> + Send + 'static,
    {
        self.deferred(me, move |core, me| {
            let work = work(core, me);
            async move {
                Ok(match work.await? {
                    Some(pending) => Reply::Later(pending),
                    None => Reply::Now(Response::Ok),
                })
            }
        })
    }

    /// What a caller that is not logged in may do.
    async fn anonymous(&self, request: Request, source: Source) -> CoreResult<Reply> {
        let core = &*self.core;
        let outcome = match request {
            Request::Register {
                account,
                password,
                device,
            } => core.register(account, password, device, source).await?,
            Request::Login { credential, device } => core.login(credential, device, source).await?,
            Request::GuestLogin { device, nickname } => core.guest_login(device, nickname).await?,
            Request::Refresh {
                refresh_token,
                device,
            } => core.refresh(&refresh_token, device, None).await?,
            Request::Ping { client_time_ms } => return Ok(Reply::Now(pong(client_time_ms))),
            // Public files (avatars) are readable without logging in; any other file is "no
            // such file", as for a logged-in stranger.
            Request::GetFile(id) => {
                let info = core.get_file(None, id)?;
                return Ok(Reply::Now(Response::File(Box::new(info))));
            }
            _ => return Err(ErrorInfo::new(ErrorCode::Unauthenticated, "log in first")),
        };
        Ok(Reply::LoggedIn(outcome))
    }
}

/// A reply that needs waiting (password hashing, a barrier, a full commit queue): one boxed
/// future, resolving to any reply but another deferred one.
fn defer(work: impl Future<Output = CoreResult<Reply>> + Send + 'static) -> Reply {
    Reply::Deferred(Box::pin(async move {
        work.await.unwrap_or_else(|e| {
            tracing::debug!(code = ?e.code, "request failed");
            e.into()
        })
    }))
}

fn pong(client_time_ms: u64) -> Response {
    Response::Pong {
        client_time_ms,
        server_time_ms: now_ms(),
    }
}

/// What a guest may not do (the rest it may: chat where it is a member, join free public
/// groups, leave, read, set its profile and conversation preferences).
fn guests_may_not(request: &Request, me: &Identity) -> bool {
    match request {
        Request::ChangeMembers { add, remove, .. } => {
            !(add.is_empty() && remove.iter().all(|u| *u == me.user))
        }
        Request::CreateGroup { .. }
        | Request::OpenDirect(_)
        | Request::UpdateGroup { .. }
        | Request::SetMemberRole { .. }
        | Request::MuteMember { .. }
        | Request::DisbandGroup { .. }
        | Request::AnswerJoinRequest { .. }
        | Request::AddFriend { .. }
        | Request::AnswerFriendRequest { .. }
        | Request::SearchUsers { .. }
        | Request::ChangePassword { .. }
        | Request::CreateMeeting { .. } => true,
        _ => false,
    }
}

fn internal_error() -> ErrorInfo {
    ErrorInfo::new(ErrorCode::Internal, "internal error")
}
