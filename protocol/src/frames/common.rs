//! Enums and small types shared by requests and responses, with their wire conversions.

use crate::error::{ErrorCode, InvalidInput};
use crate::ids::DeviceId;
use crate::wire as w;

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident, $wire:ty, unknown = $unknown:ident, { $($v:ident),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[allow(missing_docs)] // documented in the .proto file
        pub enum $name { $($v),* }

        impl Default for $name {
            /// The value unknown numbers map to.
            fn default() -> Self {
                $name::$unknown
            }
        }

        impl $name {
            /// Decodes the wire number; unknown numbers (from a newer peer) map to the default.
            pub fn from_wire(v: i32) -> Self {
                match <$wire>::try_from(v) {
                    $(Ok(<$wire>::$v) => $name::$v,)*
                    #[allow(unreachable_patterns)]
                    _ => $name::$unknown,
                }
            }

            /// The wire number.
            pub fn to_wire(self) -> i32 {
                match self { $($name::$v => <$wire>::$v as i32),* }
            }
        }
    };
}
pub(crate) use wire_enum;

wire_enum!(
    /// Kind of client software.
    Platform, w::Platform, unknown = Unspecified,
    { Unspecified, Ios, Android, Web, Desktop, Cli }
);
wire_enum!(
    /// How to interpret message content.
    ContentType, w::ContentType, unknown = Unspecified,
    { Unspecified, Text, Image, File, Audio, Video, Custom, System, Location, Sticker }
);
wire_enum!(
    /// 1:1 or group.
    ConversationKind, w::ConversationKind, unknown = Unspecified,
    { Unspecified, Direct, Group, Notices }
);
wire_enum!(
    /// Why the server is closing the connection.
    GoAwayReason, w::GoAwayReason, unknown = Unspecified,
    { Unspecified, Shutdown, IdleTimeout, LoggedOut, ProtocolError, Replaced }
);
wire_enum!(
    /// Error codes; see `ErrorCode` docs in the .proto file.
    WireErrorCode, w::ErrorCode, unknown = Unspecified,
    { Unspecified, BadFrame, FrameTooLarge, Unauthenticated, AuthFailed, TokenExpired,
      InvalidArgument, NotFound, Forbidden, Conflict, MessageTooLarge, RateLimited,
      AlreadyLoggedIn, BadRequestId, ShuttingDown, Internal, Muted, Disbanded, RecallExpired, Blocked,
      NotFriends, NotAcceptingFriends, Banned }
);

impl From<WireErrorCode> for ErrorCode {
    fn from(c: WireErrorCode) -> ErrorCode {
        match c {
            WireErrorCode::Unspecified => ErrorCode::Unspecified,
            WireErrorCode::BadFrame => ErrorCode::BadFrame,
            WireErrorCode::FrameTooLarge => ErrorCode::FrameTooLarge,
            WireErrorCode::Unauthenticated => ErrorCode::Unauthenticated,
            WireErrorCode::AuthFailed => ErrorCode::AuthFailed,
            WireErrorCode::TokenExpired => ErrorCode::TokenExpired,
            WireErrorCode::InvalidArgument => ErrorCode::InvalidArgument,
            WireErrorCode::NotFound => ErrorCode::NotFound,
            WireErrorCode::Forbidden => ErrorCode::Forbidden,
            WireErrorCode::Conflict => ErrorCode::Conflict,
            WireErrorCode::MessageTooLarge => ErrorCode::MessageTooLarge,
            WireErrorCode::RateLimited => ErrorCode::RateLimited,
            WireErrorCode::AlreadyLoggedIn => ErrorCode::AlreadyLoggedIn,
            WireErrorCode::BadRequestId => ErrorCode::BadRequestId,
            WireErrorCode::ShuttingDown => ErrorCode::ShuttingDown,
            WireErrorCode::Internal => ErrorCode::Internal,
            WireErrorCode::Muted => ErrorCode::Muted,
            WireErrorCode::Disbanded => ErrorCode::Disbanded,
            WireErrorCode::RecallExpired => ErrorCode::RecallExpired,
            WireErrorCode::Blocked => ErrorCode::Blocked,
            WireErrorCode::NotFriends => ErrorCode::NotFriends,
            WireErrorCode::NotAcceptingFriends => ErrorCode::NotAcceptingFriends,
            WireErrorCode::Banned => ErrorCode::Banned,
        }
    }
}

impl From<ErrorCode> for WireErrorCode {
    fn from(c: ErrorCode) -> WireErrorCode {
        match c {
            ErrorCode::Unspecified => WireErrorCode::Unspecified,
            ErrorCode::BadFrame => WireErrorCode::BadFrame,
            ErrorCode::FrameTooLarge => WireErrorCode::FrameTooLarge,
            ErrorCode::Unauthenticated => WireErrorCode::Unauthenticated,
            ErrorCode::AuthFailed => WireErrorCode::AuthFailed,
            ErrorCode::TokenExpired => WireErrorCode::TokenExpired,
            ErrorCode::InvalidArgument => WireErrorCode::InvalidArgument,
            ErrorCode::NotFound => WireErrorCode::NotFound,
            ErrorCode::Forbidden => WireErrorCode::Forbidden,
            ErrorCode::Conflict => WireErrorCode::Conflict,
            ErrorCode::MessageTooLarge => WireErrorCode::MessageTooLarge,
            ErrorCode::RateLimited => WireErrorCode::RateLimited,
            ErrorCode::AlreadyLoggedIn => WireErrorCode::AlreadyLoggedIn,
            ErrorCode::BadRequestId => WireErrorCode::BadRequestId,
            ErrorCode::ShuttingDown => WireErrorCode::ShuttingDown,
            ErrorCode::Internal => WireErrorCode::Internal,
            ErrorCode::Muted => WireErrorCode::Muted,
            ErrorCode::Disbanded => WireErrorCode::Disbanded,
            ErrorCode::RecallExpired => WireErrorCode::RecallExpired,
            ErrorCode::Blocked => WireErrorCode::Blocked,
            ErrorCode::NotFriends => WireErrorCode::NotFriends,
            ErrorCode::NotAcceptingFriends => WireErrorCode::NotAcceptingFriends,
            ErrorCode::Banned => WireErrorCode::Banned,
        }
    }
}

/// Which cursor a `CursorAck` or receipt moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CursorKind {
    /// Reached one of the user's devices.
    Delivered,
    /// Read by the user.
    Read,
}

impl CursorKind {
    pub(crate) fn from_wire(v: i32) -> Result<Self, InvalidInput> {
        match w::CursorKind::try_from(v) {
            Ok(w::CursorKind::Delivered) => Ok(CursorKind::Delivered),
            Ok(w::CursorKind::Read) => Ok(CursorKind::Read),
            _ => Err(InvalidInput::new("cursor kind must be DELIVERED or READ")),
        }
    }

    pub(crate) fn to_wire(self) -> i32 {
        match self {
            CursorKind::Delivered => w::CursorKind::Delivered as i32,
            CursorKind::Read => w::CursorKind::Read as i32,
        }
    }
}

/// A device as it identifies itself at login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// Stable client-chosen id.
    pub id: DeviceId,
    /// Kind of client.
    pub platform: Platform,
}

impl TryFrom<Option<w::DeviceInfo>> for Device {
    type Error = InvalidInput;
    fn try_from(d: Option<w::DeviceInfo>) -> Result<Self, InvalidInput> {
        let d = d.ok_or(InvalidInput::new("device is required"))?;
        Ok(Device {
            id: DeviceId::try_from(d.device_id)?,
            platform: Platform::from_wire(d.platform),
        })
    }
}

impl From<Device> for w::DeviceInfo {
    fn from(d: Device) -> Self {
        w::DeviceInfo {
            device_id: d.id.into(),
            platform: d.platform.to_wire(),
        }
    }
}
