//! Validated values a peer supplies that are not ids: passwords and names. Every transport and
//! dialect decodes into these, so the rules (lengths, characters) are the same everywhere and
//! the server's features never see an unchecked value.

use std::fmt;

use crate::error::InvalidInput;

/// Shortest password a new account (or a password change) may set.
pub const MIN_PASSWORD_BYTES: usize = 8;
/// Longest password accepted (hashing cost is bounded by it).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Longest group name.
pub const MAX_GROUP_NAME_BYTES: usize = 128;

/// A password presented at login: 1..=[`MAX_PASSWORD_BYTES`] bytes. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

/// A password being set (registration): [`MIN_PASSWORD_BYTES`]..=[`MAX_PASSWORD_BYTES`] bytes.
/// Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct NewPassword(String);

/// What both password types share: a length rule, the cleartext only on request, no `Debug`
/// output of it.
macro_rules! password_type {
    ($name:ident, $min:expr, $rule:literal) => {
        impl $name {
            /// The cleartext, for hashing.
            pub fn expose(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidInput;
            fn try_from(s: String) -> Result<Self, InvalidInput> {
                if s.len() < $min || s.len() > MAX_PASSWORD_BYTES {
                    return Err(InvalidInput::new($rule));
                }
                Ok($name(s))
            }
        }

        impl TryFrom<&str> for $name {
            type Error = InvalidInput;
            fn try_from(s: &str) -> Result<Self, InvalidInput> {
                $name::try_from(s.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(p: $name) -> String {
                p.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(..)"))
            }
        }
    };
}

password_type!(Password, 1, "password must be 1..=1024 bytes");
password_type!(
    NewPassword,
    MIN_PASSWORD_BYTES,
    "password must be 8..=1024 bytes"
);

/// A group's name: 1..=[`MAX_GROUP_NAME_BYTES`] bytes of UTF-8, not only whitespace, without
/// control characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GroupName(String);

impl GroupName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for GroupName {
    type Error = InvalidInput;
    fn try_from(s: String) -> Result<Self, InvalidInput> {
        if s.trim().is_empty() || s.len() > MAX_GROUP_NAME_BYTES {
            return Err(InvalidInput::new(
                "group name must be 1..=128 bytes and not blank",
            ));
        }
        if s.chars().any(char::is_control) {
            return Err(InvalidInput::new(
                "group name must not contain control characters",
            ));
        }
        Ok(GroupName(s))
    }
}

impl TryFrom<&str> for GroupName {
    type Error = InvalidInput;
    fn try_from(s: &str) -> Result<Self, InvalidInput> {
        GroupName::try_from(s.to_owned())
    }
}

impl From<GroupName> for String {
    fn from(n: GroupName) -> String {
        n.0
    }
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_bounded_and_never_printed() {
        assert!(Password::try_from("").is_err());
        assert!(
            Password::try_from("short").is_ok(),
            "login accepts any old password"
        );
        assert!(NewPassword::try_from("seven77").is_err());
        assert!(NewPassword::try_from("eight888").is_ok());
        assert!(NewPassword::try_from("x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
        let p = NewPassword::try_from("hunter2hunter2").unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
    }

    #[test]
    fn group_names_are_checked() {
        assert!(GroupName::try_from("team").is_ok());
        assert!(GroupName::try_from("   ").is_err());
        assert!(GroupName::try_from("a\u{7}b").is_err());
        assert!(GroupName::try_from("x".repeat(129)).is_err());
        assert!(GroupName::try_from("é".repeat(64)).is_ok());
    }
}
