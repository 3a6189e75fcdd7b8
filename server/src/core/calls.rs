//! Call signalling. A call in progress lives in memory (it is ephemeral, like its SDP and ICE
//! messages, which are relayed and never stored); when it ends, its record is an event in the
//! conversation's log (durable, synced, listed by `ListCalls`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use parley_protocol::frames::{
    CallAction, CallMedia, CallOutcome, CallPush, CallRecord, CallSignal, ConversationEvent, Push,
    SharedPush,
};
use parley_protocol::ids::{ConversationId, SessionId, UserId};
use parley_protocol::session::Identity;
use parley_protocol::ErrorCode;

use super::{err, internal, Answer, Core, CoreResult, Pending};
use crate::clock::now_ms;

/// Call records listed per page when the client asks for 0, and at most.
const DEFAULT_CALL_PAGE: u32 = 50;
const MAX_CALL_PAGE: u32 = 200;

#[derive(Debug)]
struct Call {
    conversation: ConversationId,
    caller: Identity,
    media: CallMedia,
    /// The other members when the call started.
    invitees: Vec<UserId>,
    accepted: Vec<UserId>,
    rejected: Vec<UserId>,
    started_ms: u64,
    answered_ms: Option<u64>,
}

impl Call {
    fn participants(&self) -> Vec<UserId> {
        let mut all = vec![self.caller.user];
        all.extend(&self.invitees);
        all
    }
}

/// Calls in progress, by id.
#[derive(Debug, Default)]
pub(crate) struct Calls {
    map: Mutex<HashMap<u64, Call>>,
}

impl Calls {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Call>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a signal did.
pub enum Signalled {
    /// Relayed; answered at once.
    Done(u64),
    /// The call ended: answered once its record is durable.
    Ended(Pending),
}

impl Core {
    /// Handles one call signal from `me`.
    pub async fn call_signal(
        self: &Arc<Self>,
        me: &Identity,
        origin: Option<SessionId>,
        signal: CallSignal,
    ) -> CoreResult<Signalled> {
        if signal.action == CallAction::Invite {
            return self.invite(me, signal).map(Signalled::Done);
        }
        let id = signal.call;
        match self.relay(me, origin, signal)? {
            None => Ok(Signalled::Done(id)),
            Some((call, outcome)) => self
                .record_call(me, origin, id, call, outcome)
                .await
                .map(Signalled::Ended),
        }
    }

    /// Checks a signal against the call, relays it, and takes the call out if it ended.
    fn relay(
        &self,
        me: &Identity,
        origin: Option<SessionId>,
        signal: CallSignal,
    ) -> CoreResult<Option<(Call, CallOutcome)>> {
        let id = signal.call;
        let gone = || err(ErrorCode::NotFound, "no such call in progress");
        let conflict = |what: &'static str| err(ErrorCode::Conflict, what);
        let mut calls = self.calls.lock();
        let call = calls.get_mut(&id).ok_or_else(gone)?;
        let is_caller = call.caller.user == me.user;
        let invited = call.invitees.contains(&me.user);
        if !is_caller && !invited {
            return Err(gone());
        }
        let (to, outcome): (Vec<UserId>, Option<CallOutcome>) = match signal.action {
            CallAction::Ringing if invited => (vec![call.caller.user], None),
            CallAction::Accept if invited => {
                if call.accepted.contains(&me.user) {
                    return Err(conflict("already accepted"));
                }
                call.accepted.push(me.user);
                call.answered_ms.get_or_insert_with(now_ms);
                // The caller, and the callee's other devices (answered elsewhere).
                (vec![call.caller.user, me.user], None)
            }
            CallAction::Reject if invited => {
                if call.accepted.contains(&me.user) {
                    return Err(conflict("accepted: end it instead"));
                }
                if !call.rejected.contains(&me.user) {
                    call.rejected.push(me.user);
                }
                let all_rejected = call.invitees.iter().all(|u| call.rejected.contains(u));
                let outcome =
                    (all_rejected && call.accepted.is_empty()).then_some(CallOutcome::Rejected);
                (vec![call.caller.user, me.user], outcome)
            }
            CallAction::Cancel if is_caller => {
                if call.answered_ms.is_some() {
                    return Err(conflict("answered: end it instead"));
                }
                (call.participants(), Some(CallOutcome::Cancelled))
            }
            CallAction::End if is_caller || call.accepted.contains(&me.user) => {
                if call.answered_ms.is_none() {
                    return Err(conflict("not answered yet: cancel or reject it"));
                }
                (call.participants(), Some(CallOutcome::Completed))
            }
            CallAction::Ice => {
                // To everyone else in it: before an accept the invitees, after it those who
                // accepted and the caller.
                let to = if call.answered_ms.is_some() {
                    let mut to = call.accepted.clone();
                    to.push(call.caller.user);
                    to
                } else {
                    call.participants()
                };
                (to, None)
            }
            _ => {
                return Err(conflict(
                    "this signal does not fit the call's state or your part",
                ))
            }
        };
        let push = SharedPush::new(Push::Call(Box::new(CallPush {
            call: id,
            conversation: call.conversation,
            from: me.user,
            from_device: me.device.clone(),
            action: signal.action,
            media: call.media,
            payload: signal.payload,
        })));
        for user in to {
            self.router.deliver(user, &push, origin);
        }
        let Some(outcome) = outcome else {
            return Ok(None);
        };
        Ok(calls.remove(&id).map(|call| (call, outcome)))
    }

    fn invite(self: &Arc<Self>, me: &Identity, signal: CallSignal) -> CoreResult<u64> {
        let conv = signal
            .conversation
            .ok_or_else(|| err(ErrorCode::InvalidArgument, "an invite names a conversation"))?;
        let (members, _) = self.gate_write(conv, me.user)?;
        let invitees: Vec<UserId> = members.ids().filter(|u| *u != me.user).collect();
        if invitees.is_empty() {
            return Err(err(ErrorCode::InvalidArgument, "nobody to call"));
        }
        let mut calls = self.calls.lock();
        if calls.values().any(|c| c.conversation == conv) {
            return Err(err(
                ErrorCode::Conflict,
                "a call is already in progress in this conversation",
            ));
        }
        let id = self.store.generate_id().map_err(internal)?;
        let media = match signal.media {
            CallMedia::Unspecified => CallMedia::Audio,
            m => m,
        };
        let push = SharedPush::new(Push::Call(Box::new(CallPush {
            call: id,
            conversation: conv,
            from: me.user,
            from_device: me.device.clone(),
            action: CallAction::Invite,
            media,
            payload: signal.payload,
        })));
        for user in &invitees {
            self.router.deliver(*user, &push, None);
        }
        calls.insert(
            id,
            Call {
                conversation: conv,
                caller: me.clone(),
                media,
                invitees,
                accepted: Vec::new(),
                rejected: Vec::new(),
                started_ms: now_ms(),
                answered_ms: None,
            },
        );
        drop(calls);
        // Nobody answers: missed.
        let core = self.clone();
        let ring = Duration::from_millis(self.cfg.limits.call_ring_ms);
        tokio::spawn(async move {
            tokio::time::sleep(ring).await;
            let unanswered = {
                let mut calls = core.calls.lock();
                match calls.get(&id) {
                    Some(c) if c.answered_ms.is_none() => calls.remove(&id),
                    _ => None,
                }
            };
            if let Some(call) = unanswered {
                let caller = call.caller.clone();
                let push = SharedPush::new(Push::Call(Box::new(CallPush {
                    call: id,
                    conversation: call.conversation,
                    from: caller.user,
                    from_device: caller.device.clone(),
                    action: CallAction::Cancel,
                    media: call.media,
                    payload: String::new(),
                })));
                for user in call.participants() {
                    core.router.deliver(user, &push, None);
                }
                if let Ok(pending) = core
                    .record_call(&caller, None, id, call, CallOutcome::Missed)
                    .await
                {
                    drop(pending.await);
                }
            }
        });
        Ok(id)
    }

    /// Commits the record of an ended call to its conversation's log.
    async fn record_call(
        &self,
        me: &Identity,
        origin: Option<SessionId>,
        id: u64,
        call: Call,
        outcome: CallOutcome,
    ) -> CoreResult<Pending> {
        let end = now_ms();
        let record = CallRecord {
            call: id,
            caller: call.caller.user,
            media: call.media,
            outcome,
            started_at_ms: call.started_ms,
            duration_ms: call.answered_ms.map_or(0, |a| end.saturating_sub(a)),
            participants: call.participants(),
        };
        let key = parley_protocol::ids::ClientMsgId::try_from(format!("call-{id}"))
            .map_err(|_| err(ErrorCode::Internal, "internal error"))?;
        self.commit_event(
            me,
            origin,
            call.conversation,
            ConversationEvent::Call(record),
            Some(key),
            Answer::Call(id),
        )
        .await
    }

    /// One call of `me`'s (its caller or an invitee): the state of a call in progress (outcome
    /// `Unspecified`; participants: the caller and those who accepted so far; duration: since
    /// the first accept), else its record once ended. Anything else is `NOT_FOUND`.
    pub fn get_call(&self, me: &Identity, id: u64) -> CoreResult<(ConversationId, CallRecord)> {
        let live = self.calls.lock().get(&id).and_then(|call| {
            let part = call.caller.user == me.user || call.invitees.contains(&me.user);
            part.then(|| {
                let mut participants = vec![call.caller.user];
                participants.extend(&call.accepted);
                let record = CallRecord {
                    call: id,
                    caller: call.caller.user,
                    media: call.media,
                    outcome: CallOutcome::Unspecified,
                    started_at_ms: call.started_ms,
                    duration_ms: call.answered_ms.map_or(0, |a| now_ms().saturating_sub(a)),
                    participants,
                };
                (call.conversation, record)
            })
        });
        if let Some(live) = live {
            return Ok(live);
        }
        // Ended: the newest record of `me`'s at or below `id` is it, if it is `id`.
        let (calls, _) = self.list_calls(me, id.saturating_add(1), 1)?;
        calls
            .into_iter()
            .find(|(_, r)| r.call == id)
            .ok_or_else(|| err(ErrorCode::NotFound, "no such call"))
    }

    /// The caller's call records, newest first.
    pub fn list_calls(
        &self,
        me: &Identity,
        before: u64,
        limit: u32,
    ) -> CoreResult<(Vec<(ConversationId, CallRecord)>, bool)> {
        let limit = match limit {
            0 => DEFAULT_CALL_PAGE,
            n => n.min(MAX_CALL_PAGE),
        } as usize;
        let mut rows = self
            .store
            .calls_of(me.user, before, limit + 1)
            .map_err(internal)?;
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        let out = rows
            .into_iter()
            .filter_map(|(call, e)| {
                let record = CallRecord {
                    call,
                    caller: UserId::try_from(e.caller).ok()?,
                    media: CallMedia::from_wire(e.media),
                    outcome: CallOutcome::from_wire(e.outcome),
                    started_at_ms: e.started_at_ms,
                    duration_ms: e.duration_ms,
                    participants: e
                        .participants
                        .into_iter()
                        .filter_map(|u| UserId::try_from(u).ok())
                        .collect(),
                };
                Some((ConversationId::try_from(e.conversation).ok()?, record))
            })
            .collect();
        Ok((out, has_more))
    }
}
