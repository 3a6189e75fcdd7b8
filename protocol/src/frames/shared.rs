//! A push as all its recipients share it: the typed protobuf message, and each wire encoding
//! made at most once, on first use, by whichever recipient needs it first. A message fanned out
//! to a thousand binary sessions is encoded once; a JSON dialect's sessions get their own
//! encoding of the same typed message (both encoders read it by reference), also once, and
//! nobody decodes bytes back into a push.
//!
//! It keeps the push in its schema form (the `Frame` generated from `proto/`), converted from
//! the domain [`Push`] once, by moving: the fan-out of every message goes through here, and a
//! copy of each message's strings per push was measurable (docs/BENCHMARKS.md).

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use super::Push;
use crate::codec::encode_prefixed;
use crate::error::DecodeError;
use crate::wire as w;

/// A push shared by every recipient (cloning is a reference-count increment).
#[derive(Clone)]
pub struct SharedPush(Arc<Inner>);

struct Inner {
    frame: w::Frame,
    binary: OnceLock<Bytes>,
    /// Length of the binary encoding, prefix included.
    size: u32,
}

impl SharedPush {
    /// Wraps a push; nothing is encoded yet.
    pub fn new(push: Push) -> SharedPush {
        let frame = w::Frame {
            request_id: 0,
            body: Some(push.into()),
        };
        // Measured now (cheap, no encoding): routers bound their queues by it.
        let size = u32::try_from(crate::codec::LEN_PREFIX + prost::Message::encoded_len(&frame))
            .unwrap_or(u32::MAX);
        SharedPush(Arc::new(Inner {
            frame,
            binary: OnceLock::new(),
            size,
        }))
    }

    /// Length of [`SharedPush::binary`] in bytes, known without encoding.
    pub fn size(&self) -> u32 {
        self.0.size
    }

    /// The push as a domain value (a copy: for in-process readers and tests; the encodings
    /// need none).
    pub fn push(&self) -> Result<Push, DecodeError> {
        let body = self.0.frame.body.clone();
        super::response::push(body.ok_or(DecodeError::Unexpected("push without a body"))?)
    }

    /// The binary protocol's length-prefixed `Frame` (request id 0), encoded on first use.
    pub fn binary(&self) -> &Bytes {
        self.0.binary.get_or_init(|| encode_prefixed(&self.0.frame))
    }

    /// Whether the binary encoding has been made (for tests of the laziness).
    pub fn is_binary_encoded(&self) -> bool {
        self.0.binary.get().is_some()
    }

    /// True if both handles share one push.
    pub fn ptr_eq(a: &SharedPush, b: &SharedPush) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl std::fmt::Debug for SharedPush {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SharedPush").field(&self.push()).finish()
    }
}

impl From<Push> for SharedPush {
    fn from(push: Push) -> SharedPush {
        SharedPush::new(push)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::ServerFrame;
    use crate::ids::{ConversationId, UserId};

    #[test]
    fn encoded_once_lazily_and_shared() {
        let push = Push::Typing {
            conversation: ConversationId::try_from(4).unwrap(),
            user: UserId::try_from(9).unwrap(),
        };
        let shared = SharedPush::new(push.clone());
        let other = shared.clone();
        assert!(
            !shared.is_binary_encoded(),
            "nothing encoded before it is needed"
        );
        let bytes = other.binary().clone();
        assert!(
            shared.is_binary_encoded(),
            "one encoding, seen by every handle"
        );
        assert_eq!(bytes.as_ptr(), shared.binary().as_ptr());
        assert_eq!(
            shared.size() as usize,
            bytes.len(),
            "size known before encoding"
        );
        let decoded = ServerFrame::decode(bytes.slice(crate::LEN_PREFIX..)).unwrap();
        assert_eq!(decoded, ServerFrame::Push(push.clone()));
        assert_eq!(shared.push().unwrap(), push);
    }
}
