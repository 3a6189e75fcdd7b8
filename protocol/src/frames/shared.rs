//! A push as all its recipients share it: the typed value, and each wire encoding made at most
//! once, on first use, by whichever recipient needs it first. A message fanned out to a
//! thousand binary sessions is encoded once; a JSON dialect's sessions get their own encoding,
//! also once, and nobody decodes bytes back into a push.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use super::{Push, ServerFrame};

/// A push shared by every recipient (cloning is a reference-count increment).
#[derive(Clone)]
pub struct SharedPush(Arc<Inner>);

struct Inner {
    push: Push,
    binary: OnceLock<Bytes>,
}

impl SharedPush {
    /// Wraps a push; nothing is encoded yet.
    pub fn new(push: Push) -> SharedPush {
        SharedPush(Arc::new(Inner {
            push,
            binary: OnceLock::new(),
        }))
    }

    /// The typed push.
    pub fn push(&self) -> &Push {
        &self.0.push
    }

    /// The binary protocol's length-prefixed `Frame` (request id 0), encoded on first use.
    pub fn binary(&self) -> &Bytes {
        self.0
            .binary
            .get_or_init(|| ServerFrame::Push(self.0.push.clone()).encode())
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
        f.debug_tuple("SharedPush").field(&self.0.push).finish()
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
        let decoded = ServerFrame::decode(bytes.slice(crate::LEN_PREFIX..)).unwrap();
        assert_eq!(decoded, ServerFrame::Push(push));
    }
}
