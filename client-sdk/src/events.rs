//! What the client tells the application unasked, and the receiver it reads it from.

use std::pin::Pin;
use std::task::{Context, Poll};

use parley_protocol::frames::{
    CallPush, ErrorInfo, LoginResult, MembershipChange, Message, Presence, Profile, Receipt,
};
use parley_protocol::ids::{ConversationId, UserId};
use tokio::sync::mpsc;

/// Something that happened on the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// An entry of a conversation's log from someone else, or from another device of this user:
    /// a message, or a conversation event (`message.event` set, `content_type` `System`, e.g. a
    /// membership change). Per conversation, entries arrive in seq order without gaps or
    /// duplicates; messages this client sent are not repeated here (their `send` call returned
    /// the ack).
    Message(Message),
    /// A member's cursor moved (a read receipt), or this user's cursor moved on another device.
    Receipt(Receipt),
    /// A member is typing.
    Typing {
        /// Where.
        conversation: ConversationId,
        /// Who.
        user: UserId,
    },
    /// A group's membership changed, as announced by servers before conversation events. Current
    /// servers do not send it: a membership change is an entry of the conversation's log and
    /// arrives as [`Event::Message`] with `event` set (and through sync like every entry).
    Membership(MembershipChange),
    /// A friend (or this user, from another device) changed their profile.
    Profile(Box<Profile>),
    /// A friend's or small-group co-member's presence changed.
    Presence(Box<Presence>),
    /// A call signal from another participant.
    Call(Box<CallPush>),
    /// Logged in, on the first connection and after every reconnect. A sync follows.
    Connected(LoginResult),
    /// The connection was lost; the client reconnects unless this was final (then
    /// [`Event::Closed`] follows).
    Disconnected {
        /// Why, for logs.
        reason: String,
    },
    /// The server's store was reset: positions were dropped and the history is delivered again
    /// from the start. Discard local copies made before this event.
    Reset,
    /// An error the server reported outside any request, or a login failure that stops the
    /// client from reconnecting.
    ServerError(ErrorInfo),
    /// The client stopped (closed, logged out, replaced, or gave up); the last event.
    Closed,
}

/// The stream of [`Event`]s.
///
/// The channel is bounded ([`ClientConfig::event_capacity`](crate::ClientConfig)): when it is
/// full the connection task waits for the application, and while it waits it reads nothing from
/// the server (the server then marks the session lagging and it catches up by sync later). Drain
/// it promptly, from its own task if the application also awaits requests. Dropping it is fine:
/// events are then discarded.
#[derive(Debug)]
pub struct Events {
    rx: mpsc::Receiver<Event>,
}

impl Events {
    pub(crate) fn new(rx: mpsc::Receiver<Event>) -> Self {
        Self { rx }
    }

    /// The next event; `None` after [`Event::Closed`] has been taken.
    pub async fn next(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// The next event if one is ready.
    pub fn try_next(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }
}

impl futures::Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_recv(cx)
    }
}
