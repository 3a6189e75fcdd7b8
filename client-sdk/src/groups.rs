//! Group management and what happens to messages after sending: each change is an entry in
//! the conversation's log, so every member's devices get it as a message whose `event` says
//! what changed, live and through sync. Each call resolves once the change is durable and
//! carries a fresh idempotency key.

use bytes::Bytes;
use parley_protocol::frames::{
    GroupInfo, GroupProfileChange, MemberInfo, MemberRole, Message, Request, Response,
};
use parley_protocol::ids::{ConversationId, Seq, UserId};

use crate::client::{expect_ok, unexpected};
use crate::{new_client_msg_id, Client, ClientError};

/// A page of a group's members.
#[derive(Clone, Debug)]
pub struct MemberPage {
    /// Members in user-id order.
    pub members: Vec<MemberInfo>,
    /// More follow: ask again after the last one's id.
    pub has_more: bool,
    /// Members in all.
    pub total: u32,
}

/// A page of history.
#[derive(Clone, Debug)]
pub struct HistoryPage {
    /// Messages as they read now; newest first when paging backwards.
    pub messages: Vec<Message>,
    /// More exist in the direction of the page.
    pub has_more: bool,
}

/// Which way a history page goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    /// The newest messages (newest first).
    Latest,
    /// Older than this seq (newest first).
    Before(Seq),
    /// Newer than this seq (oldest first).
    After(Seq),
}

impl Client {
    /// Changes a group's profile and settings (owner or managers); unset fields stay.
    pub async fn update_group(
        &self,
        conversation: ConversationId,
        change: GroupProfileChange,
    ) -> Result<(), ClientError> {
        let request_key = Some(new_client_msg_id());
        let request = Request::UpdateGroup {
            conversation,
            change,
            request_key,
        };
        expect_ok(self.call(request).await?)
    }

    /// Appoints a manager, demotes one, or (with [`MemberRole::Owner`]) transfers ownership
    /// (owner only).
    pub async fn set_member_role(
        &self,
        conversation: ConversationId,
        user: UserId,
        role: MemberRole,
    ) -> Result<(), ClientError> {
        let request = Request::SetMemberRole {
            conversation,
            user,
            role,
            request_key: Some(new_client_msg_id()),
        };
        expect_ok(self.call(request).await?)
    }

    /// Mutes a member (`None`: everyone but the owner and managers) for `duration_ms`; 0
    /// unmutes.
    pub async fn mute(
        &self,
        conversation: ConversationId,
        user: Option<UserId>,
        duration_ms: u64,
    ) -> Result<(), ClientError> {
        let request = Request::MuteMember {
            conversation,
            user,
            duration_ms,
            request_key: Some(new_client_msg_id()),
        };
        expect_ok(self.call(request).await?)
    }

    /// Disbands a group (owner only).
    pub async fn disband_group(&self, conversation: ConversationId) -> Result<(), ClientError> {
        let request = Request::DisbandGroup {
            conversation,
            request_key: Some(new_client_msg_id()),
        };
        expect_ok(self.call(request).await?)
    }

    /// Sets this user's nickname in a group (empty clears it).
    pub async fn set_group_nickname(
        &self,
        conversation: ConversationId,
        nickname: &str,
    ) -> Result<(), ClientError> {
        let request = Request::SetGroupNickname {
            conversation,
            nickname: nickname.to_owned(),
            request_key: Some(new_client_msg_id()),
        };
        expect_ok(self.call(request).await?)
    }

    /// A page of members after `after` (0: from the start); `limit` 0 is the server's default.
    pub async fn list_members(
        &self,
        conversation: ConversationId,
        after: u64,
        limit: u32,
    ) -> Result<MemberPage, ClientError> {
        let request = Request::ListMembers {
            conversation,
            after,
            limit,
        };
        match self.call(request).await? {
            Response::MemberList {
                members,
                has_more,
                total,
            } => Ok(MemberPage {
                members,
                has_more,
                total,
            }),
            other => Err(unexpected(other)),
        }
    }

    /// Joins a public group. Returns true if a join request now waits for a manager, false if
    /// this user is a member.
    pub async fn join_group(
        &self,
        conversation: ConversationId,
        message: &str,
    ) -> Result<bool, ClientError> {
        let request = Request::JoinGroup {
            conversation,
            message: message.to_owned(),
            request_key: Some(new_client_msg_id()),
        };
        match self.call(request).await? {
            Response::JoinResult { pending } => Ok(pending),
            other => Err(unexpected(other)),
        }
    }

    /// Approves or rejects a pending join request (owner or managers).
    pub async fn answer_join_request(
        &self,
        conversation: ConversationId,
        user: UserId,
        approve: bool,
    ) -> Result<(), ClientError> {
        let request = Request::AnswerJoinRequest {
            conversation,
            user,
            approve,
            request_key: Some(new_client_msg_id()),
        };
        expect_ok(self.call(request).await?)
    }

    /// A group's profile (members; anyone for public groups).
    pub async fn get_group(&self, conversation: ConversationId) -> Result<GroupInfo, ClientError> {
        match self.call(Request::GetGroup { conversation }).await? {
            Response::Group(g) => Ok(*g),
            other => Err(unexpected(other)),
        }
    }

    /// Edits this user's message at `seq`.
    pub async fn edit_message(
        &self,
        conversation: ConversationId,
        seq: Seq,
        content: impl Into<Bytes>,
    ) -> Result<(), ClientError> {
        let request = Request::EditMessage {
            conversation,
            seq,
            content: content.into(),
            request_key: Some(new_client_msg_id()),
        };
        expect_ok(self.call(request).await?)
    }

    /// Recalls the message at `seq` (its sender within the recall window; group owner and
    /// managers any time).
    pub async fn recall_message(
        &self,
        conversation: ConversationId,
        seq: Seq,
    ) -> Result<(), ClientError> {
        let request = Request::RecallMessage {
            conversation,
            seq,
            request_key: Some(new_client_msg_id()),
        };
        expect_ok(self.call(request).await?)
    }

    /// Adds (or with `remove`, takes back) this user's reaction on the message at `seq`.
    pub async fn react(
        &self,
        conversation: ConversationId,
        seq: Seq,
        emoji: &str,
        remove: bool,
    ) -> Result<(), ClientError> {
        let request = Request::React {
            conversation,
            seq,
            emoji: emoji.to_owned(),
            remove,
            request_key: Some(new_client_msg_id()),
        };
        expect_ok(self.call(request).await?)
    }

    /// Forwards a message this user can read into another conversation (answered like a send).
    pub async fn forward_message(
        &self,
        from: ConversationId,
        seq: Seq,
        to: ConversationId,
    ) -> Result<parley_protocol::frames::SendAck, ClientError> {
        let request = Request::ForwardMessage {
            from,
            seq,
            to,
            client_msg_id: new_client_msg_id(),
        };
        match self.call(request).await? {
            Response::SendAck(a) => Ok(a),
            other => Err(unexpected(other)),
        }
    }

    /// Deletes messages for this user only (on all its devices).
    pub async fn delete_for_me(
        &self,
        conversation: ConversationId,
        seqs: Vec<Seq>,
    ) -> Result<(), ClientError> {
        expect_ok(
            self.call(Request::DeleteForMe { conversation, seqs })
                .await?,
        )
    }

    /// Members' read cursors in a conversation (who read up to where), after `after`.
    pub async fn read_state(
        &self,
        conversation: ConversationId,
        after: u64,
        limit: u32,
    ) -> Result<(Vec<parley_protocol::frames::Receipt>, bool), ClientError> {
        let request = Request::GetReadState {
            conversation,
            after,
            limit,
        };
        match self.call(request).await? {
            Response::ReadState { receipts, has_more } => Ok((receipts, has_more)),
            other => Err(unexpected(other)),
        }
    }

    /// Full-text search over this user's text messages (or one conversation's), newest first,
    /// older than message id `before` (0: from the newest).
    pub async fn search_messages(
        &self,
        query: &str,
        conversation: Option<ConversationId>,
        before: u64,
        limit: u32,
    ) -> Result<HistoryPage, ClientError> {
        let request = Request::SearchMessages {
            query: query.to_owned(),
            conversation,
            before,
            limit,
        };
        match self.call(request).await? {
            Response::SearchResult { messages, has_more } => Ok(HistoryPage { messages, has_more }),
            other => Err(unexpected(other)),
        }
    }

    /// A page of history as it reads now (edits applied, recalls withheld, reactions
    /// attached); `limit` 0 is the server's default.
    pub async fn history(
        &self,
        conversation: ConversationId,
        page: Page,
        limit: u32,
    ) -> Result<HistoryPage, ClientError> {
        let (before, after) = match page {
            Page::Latest => (Seq::ZERO, Seq::ZERO),
            Page::Before(s) => (s, Seq::ZERO),
            Page::After(s) => (Seq::ZERO, s),
        };
        let request = Request::GetHistory {
            conversation,
            before,
            after,
            limit,
        };
        match self.call(request).await? {
            Response::History { messages, has_more } => Ok(HistoryPage { messages, has_more }),
            other => Err(unexpected(other)),
        }
    }
}
