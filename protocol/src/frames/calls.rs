//! Call signalling: the request, its push, and a call's record.

use crate::error::InvalidInput;
use crate::ids::{ConversationId, DeviceId, UserId};
use crate::wire as w;

use super::common::wire_enum;

wire_enum!(
    /// Audio or video.
    CallMedia, w::CallMedia, unknown = Unspecified,
    { Unspecified, Audio, Video }
);
wire_enum!(
    /// A step of a call.
    CallAction, w::CallAction, unknown = Unspecified,
    { Unspecified, Invite, Ringing, Accept, Reject, Cancel, End, Ice }
);
wire_enum!(
    /// How a call ended.
    CallOutcome, w::CallOutcome, unknown = Unspecified,
    { Unspecified, Completed, Rejected, Cancelled, Missed }
);

/// Longest SDP or ICE payload, in bytes.
pub const MAX_CALL_PAYLOAD_BYTES: usize = 16 * 1024;

/// A call signal from a client.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // see `CallSignal` in the .proto file
pub struct CallSignal {
    pub call: u64,
    pub action: CallAction,
    pub conversation: Option<ConversationId>,
    pub media: CallMedia,
    pub payload: String,
}

/// A call signal relayed to a participant.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // see `CallPush` in the .proto file
pub struct CallPush {
    pub call: u64,
    pub conversation: ConversationId,
    pub from: UserId,
    pub from_device: DeviceId,
    pub action: CallAction,
    pub media: CallMedia,
    pub payload: String,
}

/// A call's record, once it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // see `CallEvent` in the .proto file
pub struct CallRecord {
    pub call: u64,
    pub caller: UserId,
    pub media: CallMedia,
    pub outcome: CallOutcome,
    pub started_at_ms: u64,
    pub duration_ms: u64,
    pub participants: Vec<UserId>,
}

impl TryFrom<w::CallSignal> for CallSignal {
    type Error = InvalidInput;
    fn try_from(s: w::CallSignal) -> Result<Self, InvalidInput> {
        let action = CallAction::from_wire(s.action);
        if action == CallAction::Unspecified {
            return Err(InvalidInput::new("call signal without a known action"));
        }
        if s.payload.len() > MAX_CALL_PAYLOAD_BYTES {
            return Err(InvalidInput::new("call payload exceeds 16 KiB"));
        }
        let conversation = match action {
            CallAction::Invite => {
                if s.call_id != 0 {
                    return Err(InvalidInput::new("an invite starts a new call: call_id 0"));
                }
                Some(ConversationId::try_from(s.conversation_id)?)
            }
            _ if s.call_id == 0 => return Err(InvalidInput::new("call_id is required")),
            _ => None,
        };
        Ok(CallSignal {
            call: s.call_id,
            action,
            conversation,
            media: CallMedia::from_wire(s.media),
            payload: s.payload,
        })
    }
}

impl From<CallSignal> for w::CallSignal {
    fn from(s: CallSignal) -> Self {
        w::CallSignal {
            call_id: s.call,
            action: s.action.to_wire(),
            conversation_id: s.conversation.map_or(0, ConversationId::get),
            media: s.media.to_wire(),
            payload: s.payload,
        }
    }
}

impl From<CallPush> for w::CallPush {
    fn from(p: CallPush) -> Self {
        w::CallPush {
            call_id: p.call,
            conversation_id: p.conversation.get(),
            from_user_id: p.from.get(),
            from_device_id: p.from_device.into(),
            action: p.action.to_wire(),
            media: p.media.to_wire(),
            payload: p.payload,
        }
    }
}

impl TryFrom<w::CallPush> for CallPush {
    type Error = InvalidInput;
    fn try_from(p: w::CallPush) -> Result<Self, InvalidInput> {
        Ok(CallPush {
            call: p.call_id,
            conversation: ConversationId::try_from(p.conversation_id)?,
            from: UserId::try_from(p.from_user_id)?,
            from_device: DeviceId::try_from(p.from_device_id)?,
            action: CallAction::from_wire(p.action),
            media: CallMedia::from_wire(p.media),
            payload: p.payload,
        })
    }
}

impl From<CallRecord> for w::CallEvent {
    fn from(r: CallRecord) -> Self {
        w::CallEvent {
            call_id: r.call,
            caller_user_id: r.caller.get(),
            media: r.media.to_wire(),
            outcome: r.outcome.to_wire(),
            started_at_ms: r.started_at_ms,
            duration_ms: r.duration_ms,
            participant_user_ids: r.participants.into_iter().map(u64::from).collect(),
        }
    }
}

impl TryFrom<w::CallEvent> for CallRecord {
    type Error = InvalidInput;
    fn try_from(e: w::CallEvent) -> Result<Self, InvalidInput> {
        Ok(CallRecord {
            call: e.call_id,
            caller: UserId::try_from(e.caller_user_id)?,
            media: CallMedia::from_wire(e.media),
            outcome: CallOutcome::from_wire(e.outcome),
            started_at_ms: e.started_at_ms,
            duration_ms: e.duration_ms,
            participants: e
                .participant_user_ids
                .into_iter()
                .map(UserId::try_from)
                .collect::<Result<_, _>>()?,
        })
    }
}
