//! The caller's conversation list, newest activity first.

use parley_protocol::frames::ConversationInfo;
use parley_protocol::ids::Seq;
use parley_protocol::session::Identity;

use super::{internal, Core, CoreResult};

impl Core {
    /// Every conversation the caller belongs to, as the caller sees it (cursors, unread), ordered
    /// by the server time of its newest entry, newest first; conversations without entries come
    /// last, newest first by id.
    pub fn list_conversations(&self, me: &Identity) -> CoreResult<Vec<ConversationInfo>> {
        let mut listed: Vec<(u64, ConversationInfo)> = Vec::new();
        for conv in self.store.user_conversations(me.user).map_err(internal)? {
            let Ok((members, record)) = self.membership(conv, me.user) else {
                continue; // left between the two reads
            };
            let info = self.info_from(conv, &members, me.user, &record)?;
            let last_ms = match info.head {
                Seq::ZERO => 0,
                head => self
                    .store
                    .messages(conv, Seq(head.get() - 1), head, 1, usize::MAX)
                    .map_err(internal)?
                    .first()
                    .map_or(0, |m| m.server_time_ms),
            };
            listed.push((last_ms, info));
        }
        listed.sort_by(|(a_ms, a), (b_ms, b)| b_ms.cmp(a_ms).then(b.id.cmp(&a.id)));
        Ok(listed.into_iter().map(|(_, info)| info).collect())
    }
}
