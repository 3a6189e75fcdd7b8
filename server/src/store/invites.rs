//! Pending invitations into groups: who invited whom, recorded when the invitation (an event in
//! the invitee's notices) is applied, ended when the invitee joins or declines.

use parley_protocol::frames::Message;
use parley_protocol::ids::{ConversationId, UserId};
use serde::{Deserialize, Serialize};

use super::keys::pair;
use super::{get_json, json, Result, Store};

/// A pending invitation of a user into a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteRecord {
    /// Who invited.
    pub by: u64,
    /// When, Unix ms.
    pub at_ms: u64,
}

impl Store {
    /// Records the invitation an entry of `invitee`'s notices carries (idempotent).
    pub(super) fn apply_invite(
        &self,
        group: ConversationId,
        invitee: UserId,
        entry: &Message,
    ) -> Result<()> {
        if self.member(group, invitee)?.is_some() {
            return Ok(()); // joined meanwhile (a replay after a crash)
        }
        let record = InviteRecord {
            by: entry.sender.get(),
            at_ms: entry.server_time_ms,
        };
        self.invites
            .insert(pair(group.get(), invitee.get()), json(&record))?;
        Ok(())
    }

    /// The pending invitation of `user` into `group`.
    pub fn invite(&self, group: ConversationId, user: UserId) -> Result<Option<InviteRecord>> {
        get_json(&self.invites, pair(group.get(), user.get()), "invites")
    }

    /// Ends the pending invitation of `user` into `group` (declined, or joined).
    pub fn remove_invite(&self, group: ConversationId, user: UserId) -> Result<()> {
        self.invites.remove(pair(group.get(), user.get()))?;
        Ok(())
    }
}
