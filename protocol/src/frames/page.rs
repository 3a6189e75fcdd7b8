//! Encoded sizes of what a paged response carries, so a server can bound a page by the bytes it
//! will put on the wire (every field, not only message content) before it encodes it.
//!
//! Each `encoded_len` is the size the item adds as one element of a repeated field: its field
//! tag, its length prefix and its body. A response's size is the sum of its elements plus its
//! scalar fields ([`SyncResponse::encoded_len`]); a frame adds [`FRAME_OVERHEAD`] at most.

use prost::Message as _;

use super::response::{ConversationInfo, Message, Receipt, SyncResponse};
use crate::wire as w;

/// The most a `Frame` adds around a response body: the length prefix (4), `request_id` (tag and
/// a varint of up to 10 bytes), the body's tag (2) and its length (up to 5).
pub const FRAME_OVERHEAD: usize = 4 + 11 + 2 + 5;

/// Bytes of one element of a repeated message field of field number < 16 whose body is `body`.
fn element(body: usize) -> usize {
    1 + prost::encoding::encoded_len_varint(body as u64) + body
}

impl ConversationInfo {
    /// Bytes this conversation adds to a repeated field (`SyncResponse.conversations`).
    pub fn encoded_len(&self) -> usize {
        element(w::ConversationInfo::from(self.clone()).encoded_len())
    }
}

impl Message {
    /// Bytes this message adds to a repeated field (`SyncResponse.messages`).
    pub fn encoded_len(&self) -> usize {
        element(w::Message::from(self.clone()).encoded_len())
    }
}

impl Receipt {
    /// Bytes this receipt adds to a repeated field (`SyncResponse.receipts`).
    pub fn encoded_len(&self) -> usize {
        element(w::ReceiptPush::from(*self).encoded_len())
    }
}

impl SyncResponse {
    /// The scalar fields' share of the encoding, at most: `epoch` (1 + 10), `reset` (2),
    /// `has_more` (2), `next_conversation_id` (1 + 10).
    pub const FIXED_LEN: usize = 11 + 2 + 2 + 11;

    /// The encoded size of this response's body, as the sum of its parts (exact for the
    /// repeated fields, an upper bound for the scalars).
    pub fn encoded_len(&self) -> usize {
        Self::FIXED_LEN
            + self
                .conversations
                .iter()
                .map(ConversationInfo::encoded_len)
                .sum::<usize>()
            + self
                .messages
                .iter()
                .map(Message::encoded_len)
                .sum::<usize>()
            + self
                .receipts
                .iter()
                .map(Receipt::encoded_len)
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::{Response, ServerFrame};
    use crate::ids::{ConversationId, RequestId, Seq, UserId};

    #[test]
    fn sizes_bound_the_encoded_frame() {
        let conv = ConversationId::try_from(300).unwrap();
        let user = UserId::try_from(70_000).unwrap();
        let info = ConversationInfo {
            name: "x".repeat(200),
            members: (1..2000).map(|u| UserId::try_from(u).unwrap()).collect(),
            head: Seq(5),
            ..ConversationInfo {
                id: conv,
                kind: crate::frames::ConversationKind::Group,
                name: String::new(),
                members: Vec::new(),
                head: Seq::ZERO,
                delivered: Seq::ZERO,
                read: Seq::ZERO,
                unread: 0,
                owner: None,
                visible_from: Seq(1),
                group: None,
                my_role: crate::frames::MemberRole::Member,
                my_muted_until_ms: 0,
                pinned: false,
                muted: false,
                hidden: false,
                last_message: None,
            }
        };
        let receipt = Receipt {
            conversation: conv,
            user,
            kind: crate::frames::CursorKind::Read,
            seq: Seq(4),
            unread: 0,
        };
        let page = SyncResponse {
            epoch: u64::MAX,
            reset: true,
            conversations: vec![info.clone(), info],
            messages: Vec::new(),
            receipts: vec![receipt; 3],
            has_more: true,
            next_conversation_id: u64::MAX,
        };
        let bound = page.encoded_len() + FRAME_OVERHEAD;
        let id = RequestId::try_from(u64::MAX).unwrap();
        let frame = ServerFrame::Response(id, Response::Sync(page.clone())).encode();
        assert!(frame.len() <= bound, "{} > {bound}", frame.len());
        // And not by much: the bound is for budgets, not a guess.
        assert!(bound - frame.len() < 64, "{} vs {bound}", frame.len());
    }
}
