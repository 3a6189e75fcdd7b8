//! Identifier newtypes. Numeric ids are non-zero (0 means "absent" on the wire); string ids are
//! validated for length and charset where a peer supplies them.

use std::fmt;

use crate::error::InvalidInput;

macro_rules! nonzero_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(u64);

        impl $name {
            /// The raw number (never 0).
            pub const fn get(self) -> u64 {
                self.0
            }
        }

        impl TryFrom<u64> for $name {
            type Error = InvalidInput;
            fn try_from(v: u64) -> Result<Self, InvalidInput> {
                if v == 0 {
                    Err(InvalidInput::new(concat!($what, " must be non-zero")))
                } else {
                    Ok(Self(v))
                }
            }
        }

        impl From<$name> for u64 {
            fn from(v: $name) -> u64 {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

nonzero_id!(
    /// A user account.
    UserId,
    "user id"
);
nonzero_id!(
    /// A conversation (1:1 or group).
    ConversationId,
    "conversation id"
);
nonzero_id!(
    /// The global id of a stored message.
    MessageId,
    "message id"
);
nonzero_id!(
    /// A client-chosen request id, echoed in the response.
    RequestId,
    "request id"
);

/// Position of a message within its conversation: gapless, starting at 1. `Seq::ZERO` means
/// "before the first message".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seq(pub u64);

impl Seq {
    /// Before the first message.
    pub const ZERO: Seq = Seq(0);

    /// The raw number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The next seq.
    pub const fn next(self) -> Seq {
        Seq(self.0 + 1)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

fn check_token(s: &str, what: &'static str, max: usize) -> Result<(), InvalidInput> {
    if s.is_empty() || s.len() > max {
        return Err(InvalidInput::owned(format!(
            "{what} must be 1..={max} bytes"
        )));
    }
    if s.chars().any(|c| c.is_control()) {
        return Err(InvalidInput::owned(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The validated string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidInput;
            fn try_from(s: String) -> Result<Self, InvalidInput> {
                let check: fn(&str) -> Result<(), InvalidInput> = $check;
                check(&s)?;
                Ok(Self(s))
            }
        }

        impl TryFrom<&str> for $name {
            type Error = InvalidInput;
            fn try_from(s: &str) -> Result<Self, InvalidInput> {
                Self::try_from(s.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A device of a user, chosen by the client and stable across its connections.
    DeviceId,
    "device id",
    |s| check_token(s, "device id", 64)
);
string_id!(
    /// The sender's idempotency key for a message.
    ClientMsgId,
    "client_msg_id",
    |s| check_token(s, "client_msg_id", 64)
);
string_id!(
    /// A login name: 3..=64 characters of `[A-Za-z0-9_.-]`.
    Account,
    "account",
    |s| {
        let ok_len = (3..=64).contains(&s.len());
        let ok_chars = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if ok_len && ok_chars {
            Ok(())
        } else {
            Err(InvalidInput::new(
                "account must be 3..=64 characters of [A-Za-z0-9_.-]",
            ))
        }
    }
);

impl Account {
    /// What makes two account names the same account, or too alike to tell apart: the name in
    /// ASCII lower case (the case fold; account names are ASCII, on which Unicode NFKC changes
    /// nothing and which holds no other confusable scripts), without its separators `.`, `_`
    /// and `-`, with `0` read as `o` and `1` as `l`. "Alice", "alice", "a.lice" and "a1ice"
    /// share the skeleton "alice"; the server keeps one account per skeleton
    /// (docs/protocol.md, section 4).
    pub fn skeleton(&self) -> String {
        self.0
            .bytes()
            .filter(|b| !matches!(b, b'.' | b'_' | b'-'))
            .map(|b| match b.to_ascii_lowercase() {
                b'0' => 'o',
                b'1' => 'l',
                other => other as char,
            })
            .collect()
    }

    /// The rule for a name a new account takes, beyond those of every account name: it starts
    /// and ends with a letter or digit and has no two separators in a row ("alice." and
    /// "a..lice" are refused; accounts made before this rule keep their names).
    pub fn check_new(&self) -> Result<(), InvalidInput> {
        let sep = |b: &u8| matches!(b, b'.' | b'_' | b'-');
        let bytes = self.0.as_bytes();
        let edges = bytes.first().is_some_and(sep) || bytes.last().is_some_and(sep);
        let doubled = bytes.windows(2).any(|w| sep(&w[0]) && sep(&w[1]));
        if edges || doubled {
            return Err(InvalidInput::new(
                "a new account name starts and ends with a letter or digit, with at most one \
                 of . _ - in a row",
            ));
        }
        Ok(())
    }
}

/// Which server node a session lives on (0 on a single node). Session ids carry it, so a
/// router spanning several nodes knows where to deliver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u16);

/// One session (a connection, or an in-process session of the HTTP side): the node it lives on
/// in the top 16 bits, a number unique on that node below. On the wire it is the plain u64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(u64);

impl SessionId {
    /// Largest per-node number.
    pub const MAX_LOCAL: u64 = (1 << 48) - 1;

    /// The session `local` (masked to 48 bits) on `node`.
    pub const fn new(node: NodeId, local: u64) -> SessionId {
        SessionId(((node.0 as u64) << 48) | (local & Self::MAX_LOCAL))
    }

    /// The node the session lives on.
    pub const fn node(self) -> NodeId {
        NodeId((self.0 >> 48) as u16)
    }

    /// The number within its node.
    pub const fn local(self) -> u64 {
        self.0 & Self::MAX_LOCAL
    }

    /// The wire form.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.node().0, self.local())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_carry_their_node() {
        let id = SessionId::new(NodeId(3), 42);
        assert_eq!((id.node(), id.local()), (NodeId(3), 42));
        assert_eq!(id.get(), (3 << 48) | 42);
        assert_eq!(
            SessionId::new(NodeId(0), 7).get(),
            7,
            "node 0 ids are the plain number"
        );
    }

    #[test]
    fn zero_ids_are_rejected() {
        assert!(UserId::try_from(0).is_err());
        assert_eq!(UserId::try_from(7).map(u64::from), Ok(7));
    }

    #[test]
    fn string_ids_are_validated() {
        assert!(Account::try_from("al").is_err());
        assert!(Account::try_from("alice smith").is_err());
        assert!(Account::try_from("alice_01").is_ok());
        assert!(Account::try_from("alice_01").unwrap().check_new().is_ok());
        for bad in ["alice.", "_alice", "a..lice", "a.-lice"] {
            assert!(
                Account::try_from(bad).unwrap().check_new().is_err(),
                "{bad}"
            );
        }
        let skeleton = |s: &str| Account::try_from(s).unwrap().skeleton();
        for same in [
            "alice",
            "Alice",
            "ALICE",
            "a.lice",
            "a1ice",
            "a_l-i.c_e",
            "alice.",
        ] {
            assert_eq!(skeleton(same), "alice", "{same}");
        }
        assert_eq!(skeleton("b0b"), "bob");
        assert_ne!(skeleton("alicia"), "alice");
        assert!(DeviceId::try_from("").is_err());
        assert!(DeviceId::try_from("a".repeat(65)).is_err());
        assert!(DeviceId::try_from("phone\n").is_err());
        assert!(ClientMsgId::try_from("7f1c-uuid").is_ok());
    }
}
