//! Sending (authorization before the committer), fan-out after it, cursors and receipts, and
//! typing. Sync is in `sync.rs`.

use parley_protocol::frames::{
    ContentType, CursorKind, Message, Push, Receipt, SendRequest, SharedPush,
};
use parley_protocol::ids::{ConversationId, Seq, SessionId, UserId};
use parley_protocol::session::Identity;
use parley_protocol::ErrorCode;

use super::{err, internal, Answer, Core, CoreResult, Submission};
use crate::store::CommitItem;

impl Core {
    /// Sends a message: checks it (membership, size, reply target, type) and queues it for the
    /// conversation's log. The reply is its `SendAck`, once durable.
    pub fn send(
        &self,
        me: &Identity,
        origin: Option<SessionId>,
        request: SendRequest,
    ) -> CoreResult<Submission> {
        let item = self.prepare_send(me, request)?;
        self.commit(item, origin, Answer::Ack)
    }

    /// Checks a send (membership, size, reply target) and turns it into a commit item.
    fn prepare_send(&self, me: &Identity, request: SendRequest) -> CoreResult<CommitItem> {
        if request.content_type == ContentType::System {
            return Err(err(
                ErrorCode::InvalidArgument,
                "system entries are written by the server",
            ));
        }
        self.check_size(&request.content)?;
        check_content(request.content_type, &request.content)?;
        let (members, my) = self.gate_write(request.conversation, me.user)?;
        if request.mentions.iter().any(|u| members.get(*u).is_none()) {
            return Err(err(
                ErrorCode::InvalidArgument,
                "mentioned user is not a member",
            ));
        }
        if request.mention_all && members.record.group && !my.role.manages() {
            return Err(err(
                ErrorCode::Forbidden,
                "only the owner and managers mention everyone",
            ));
        }
        let mut thread_root = Seq::ZERO;
        if request.reply_to != Seq::ZERO {
            // A reply's thread: the replied-to message's, or that message (one log read, for
            // replies only).
            let target = request.reply_to;
            let found = match target.get() >= my.from_seq {
                true => self
                    .store
                    .messages(
                        request.conversation,
                        Seq(target.get() - 1),
                        target,
                        1,
                        usize::MAX,
                    )
                    .map_err(internal)?
                    .pop(),
                false => None,
            };
            let Some(original) = found else {
                return Err(err(
                    ErrorCode::InvalidArgument,
                    "reply_to_seq names no message you can see",
                ));
            };
            thread_root = match original.thread_root {
                Seq::ZERO => original.seq,
                root => root,
            };
        }
        // Image, file, audio, video, sticker: the sender must be able to read the file it
        // names, and the conversation's members may read it from now on (never on the text
        // path). Last, so a refused send grants nothing.
        if super::bears_file(request.content_type) {
            self.grant_sent_file(me.user, request.conversation, &request.content)?;
        }
        Ok(CommitItem {
            sender: me.user,
            sender_device: me.device.clone(),
            request,
            event: None,
            thread_root,
            forwarded_from: None,
        })
    }

    /// Forwards a message the caller can read into another conversation: a new message with
    /// the same content, marked with the original's author. Answered like a send.
    pub fn forward(
        &self,
        me: &Identity,
        origin: Option<SessionId>,
        from: ConversationId,
        seq: Seq,
        to: ConversationId,
        client_msg_id: parley_protocol::ids::ClientMsgId,
    ) -> CoreResult<Submission> {
        let (_, mine) = self.membership(from, me.user)?;
        let missing = || err(ErrorCode::NotFound, "no such message");
        if seq.get() < mine.from_seq {
            return Err(missing());
        }
        let mut page = self
            .store
            .messages(from, Seq(seq.get() - 1), seq, 1, usize::MAX)
            .map_err(internal)?;
        self.store.render(from, &mut page).map_err(internal)?;
        let original = page.pop().ok_or_else(missing)?;
        if original.event.is_some() || original.amended.as_ref().is_some_and(|a| a.recalled) {
            return Err(err(
                ErrorCode::InvalidArgument,
                "events and recalled messages cannot be forwarded",
            ));
        }
        let request = SendRequest {
            conversation: to,
            content_type: original.content_type,
            content: original.content,
            client_msg_id,
            reply_to: Seq::ZERO,
            mentions: Vec::new(),
            mention_all: false,
        };
        let mut item = self.prepare_send(me, request)?;
        item.forwarded_from = Some(original.forwarded_from.unwrap_or(original.sender));
        self.commit(item, origin, Answer::Ack)
    }

    /// Deletes messages for the caller only: an event in its notices, so every device of the
    /// caller hears it; history and search leave them out, sync withholds their content.
    pub async fn delete_for_me(
        &self,
        me: &Identity,
        origin: Option<SessionId>,
        conv: ConversationId,
        seqs: Vec<Seq>,
    ) -> CoreResult<super::Pending> {
        let (_, mine) = self.membership(conv, me.user)?;
        let head = self.store.head(conv).map_err(internal)?;
        if seqs.iter().any(|s| s.get() < mine.from_seq || *s > head) {
            return Err(err(ErrorCode::NotFound, "no such message"));
        }
        let notices = self
            .store
            .notices_conversation(me.user, crate::clock::now_ms())
            .map_err(internal)?;
        let event = parley_protocol::frames::ConversationEvent::DeletedForMe {
            conversation: conv,
            seqs,
        };
        self.commit_event(me, origin, notices, event, None, Answer::Ok)
            .await
    }

    /// Members' read cursors in a conversation, in user-id order after `after`.
    pub fn read_state(
        &self,
        me: &Identity,
        conv: ConversationId,
        after: u64,
        limit: u32,
    ) -> CoreResult<(Vec<Receipt>, bool)> {
        let (members, _) = self.membership(conv, me.user)?;
        let limit = match limit {
            0 => 100,
            n => n.min(1000),
        } as usize;
        let start = members.list.partition_point(|(u, _)| u.get() <= after);
        let mut out = Vec::new();
        for (user, _) in members.list[start..].iter().take(limit) {
            let c = self.store.cursors(*user, conv).map_err(internal)?;
            out.push(Receipt {
                conversation: conv,
                user: *user,
                kind: CursorKind::Read,
                seq: c.read,
                unread: 0,
            });
        }
        let has_more = start + out.len() < members.list.len();
        Ok((out, has_more))
    }

    /// Content within the configured message size.
    pub(crate) fn check_size(&self, content: &[u8]) -> CoreResult<()> {
        let max = self.cfg.limits.max_message_bytes;
        if content.len() > max as usize {
            return Err(err(
                ErrorCode::MessageTooLarge,
                format!("content exceeds {max} bytes"),
            ));
        }
        Ok(())
    }

    /// Pushes one durable entry of a conversation's log to its members (for an event, also to
    /// those it removed, and to the session it came from): one shared push, encoded once per
    /// wire format by its first reader.
    pub(crate) fn fan_out(&self, message: Message, origin_session: Option<SessionId>) {
        let conv = message.conversation;
        let sender = message.sender;
        let seq = message.seq;
        let members = match self.members_of(conv) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(%conv, error = %e, "fan-out skipped; members catch up by sync");
                return;
            }
        };
        let also: Vec<UserId> = message
            .event
            .as_ref()
            .map(|e| e.also_notify().to_vec())
            .unwrap_or_default();
        // The session a message came from has its seq from the ack; an event is answered `Ok`
        // without one, so its author's session gets the push too and its positions stay
        // gapless.
        let skip_origin = message.event.is_none();
        // Offline push is for messages (not events), and only where a webhook is configured.
        let for_offline = match (&self.offline_push, skip_origin) {
            (Some(_), true) => Some(message.clone()),
            _ => None,
        };
        let push = SharedPush::new(Push::Message(message));
        let except = |user| {
            (user == sender && skip_origin)
                .then_some(origin_session)
                .flatten()
        };
        for (user, record) in &members.list {
            // Membership is read after the entry's batch was applied: someone an event of the
            // same batch added after this entry must not get it (they see from their join on).
            if record.from_seq > seq.get() {
                continue;
            }
            let online = self.router.deliver(*user, &push, except(*user));
            if !online && *user != sender {
                if let (Some(offline), Some(m)) = (&self.offline_push, &for_offline) {
                    offline.offer(*user, m);
                }
            }
        }
        for user in also.into_iter().filter(|u| members.get(*u).is_none()) {
            self.router.deliver(user, &push, except(user));
        }
    }

    /// Moves a cursor forward and publishes the receipt: to the user's other devices (with the
    /// new unread count) and, for read cursors (and delivered ones in 1:1 conversations), to the
    /// other members.
    pub fn cursor_ack(
        &self,
        me: &Identity,
        session_id: Option<SessionId>,
        conv: ConversationId,
        kind: CursorKind,
        seq: Seq,
    ) -> CoreResult<()> {
        let (members, record) = self.membership(conv, me.user)?;
        let head = self.store.head(conv).map_err(internal)?;
        let seq = seq.min(head);
        let (before, after) = self
            .store
            .advance_cursor(me.user, conv, kind, seq)
            .map_err(internal)?;
        let moved = match kind {
            CursorKind::Delivered => after.delivered > before.delivered,
            CursorKind::Read => after.read > before.read,
        };
        if !moved {
            return Ok(());
        }
        let at = match kind {
            CursorKind::Delivered => after.delivered,
            CursorKind::Read => after.read,
        };
        let read_floor = after.read.max(Seq(record.from_seq.saturating_sub(1)));
        let receipt = |unread| {
            SharedPush::new(Push::Receipt(Receipt {
                conversation: conv,
                user: me.user,
                kind,
                seq: at,
                unread,
            }))
        };
        let own = receipt(head.get().saturating_sub(read_floor.get()));
        self.router.deliver(me.user, &own, session_id);
        if kind == CursorKind::Read || !members.record.group {
            let others = receipt(0);
            for user in members.ids().filter(|u| *u != me.user) {
                self.router.deliver(user, &others, None);
            }
        }
        Ok(())
    }

    /// Relays "typing" to the other members' devices, at most once per sender and
    /// conversation per `limits.typing_interval_ms` (`typing.rs`). Never stored.
    pub fn typing(&self, me: &Identity, conv: ConversationId) -> CoreResult<()> {
        let (members, _) = self.membership(conv, me.user)?;
        if !self.typing_admitted(me.user, conv) {
            return Ok(());
        }
        let push = SharedPush::new(Push::Typing {
            conversation: conv,
            user: me.user,
        });
        for user in members.ids().filter(|u| *u != me.user) {
            self.router.deliver(user, &push, None);
        }
        Ok(())
    }
}

/// Whether a message's content fits its type (docs: `ContentType` in the .proto file). Text is
/// only checked to be UTF-8; the structured types are parsed (they are not on the hot path of
/// text chat).
fn check_content(kind: ContentType, content: &[u8]) -> CoreResult<()> {
    let bad = |what: &str| Err(err(ErrorCode::InvalidArgument, what.to_owned()));
    match kind {
        ContentType::Text => match std::str::from_utf8(content) {
            Ok(_) => Ok(()),
            Err(_) => bad("text content must be UTF-8"),
        },
        // Custom content is the clients' own format (JSON recommended), opaque to the server.
        ContentType::Unspecified | ContentType::System | ContentType::Custom => Ok(()),
        other => {
            let Ok(value) = serde_json::from_slice::<serde_json::Value>(content) else {
                return bad("content of this type must be JSON");
            };
            match other {
                ContentType::Location => {
                    let num = |k: &str| value.get(k).and_then(serde_json::Value::as_f64);
                    match (num("latitude"), num("longitude")) {
                        (Some(lat), Some(lng))
                            if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lng) =>
                        {
                            Ok(())
                        }
                        _ => bad("a location needs numbers latitude (-90..=90) and longitude (-180..=180)"),
                    }
                }
                _ => match value.get("file_id").and_then(serde_json::Value::as_str) {
                    Some(id) if !id.is_empty() && id.len() <= 128 => Ok(()),
                    _ => bad("this content type needs a JSON object with a string file_id"),
                },
            }
        }
    }
}
