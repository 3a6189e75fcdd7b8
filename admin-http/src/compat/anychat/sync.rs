//! `POST /sync` and `POST /sync/messages`: catching up after a login or a return from the
//! background.
//!
//! `/sync` takes `{lastSyncTime, conversationSeqs: [{conversationId, conversationType,
//! lastSeq}]}` and answers `{syncTime, friends, groups, sessions, conversationMessages:
//! [{conversationId, conversationType, messages, hasMore}], hasMore}`. Messages come from our
//! sync (every conversation after the `lastSeq` the client has, from the start for the ones it
//! does not name, bounded by the server's sync page: `hasMore` says to ask again with the new
//! positions). Friends, groups and sessions are always listed whole: the core keeps no change
//! times for them, and a superset is what a client merging by id needs.
//!
//! `/sync/messages` takes `{conversationSeqs, limitPerConversation}` (20 by default, 100 at
//! most) and answers `{conversations: [{conversationId, messages, hasMore}]}` with the messages
//! after each `lastSeq`, oldest first.

use std::collections::{BTreeMap, HashMap};

use axum::extract::State;
use parley_protocol::frames::{ConversationKind, Request, Response, SyncRequest};
use parley_protocol::ids::{ConversationId, Seq};
use serde::Deserialize;
use serde_json::{json, Value};

use super::extract::{self, IdIn, MaybeBody, Me};
use super::sessions::{all, resolve, session};
use super::views::{self, ok, Reply};
use super::AnyChat;
use crate::compat::unexpected;

/// One `conversationSeqItem`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeqItem {
    conversation_id: IdIn,
    #[serde(default)]
    last_seq: u64,
}

/// `POST /sync`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncBody {
    #[serde(default)]
    conversation_seqs: Vec<SeqItem>,
}

/// The positions a client names, resolved (ids that name no conversation of the caller's are
/// left out: sync answers from the start for those it has).
async fn positions(
    any: &AnyChat,
    me: &parley_protocol::session::Identity,
    items: &[SeqItem],
) -> Vec<(ConversationId, Seq)> {
    let mut out = Vec::new();
    for item in items.iter().take(1000) {
        if let Ok(conv) = resolve(any, me, &item.conversation_id.text()).await {
            out.push((conv, Seq(item.last_seq)));
        }
    }
    out
}

/// `POST /sync`.
pub async fn sync(
    State(any): State<AnyChat>,
    Me(me): Me,
    MaybeBody(b): MaybeBody<SyncBody>,
) -> Reply {
    let positions = positions(&any, &me, &b.conversation_seqs).await;
    let request = Request::Sync(SyncRequest {
        epoch: 0,
        positions,
        limit: 0,
        from_conversation: None,
    });
    let synced = match any.call(&me, request).await? {
        Response::Sync(s) => s,
        other => return Err(unexpected(&other).into()),
    };
    let (convs, _) = all(&any, &me).await?;
    let kinds: HashMap<ConversationId, ConversationKind> = synced
        .conversations
        .iter()
        .chain(convs.iter())
        .map(|c| (c.id, c.kind))
        .collect();
    let mut by_conv: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
    for m in &synced.messages {
        if let Some(v) = views::message(m, kinds.get(&m.conversation).copied()) {
            by_conv.entry(m.conversation.get()).or_default().push(v);
        }
    }
    let conversation_messages: Vec<Value> = by_conv
        .into_iter()
        .filter_map(|(conv, messages)| {
            let conv = ConversationId::try_from(conv).ok()?;
            let kind = kinds.get(&conv).copied().unwrap_or_default();
            Some(json!({
                "conversationId": views::conversation_id(conv),
                "conversationType": views::conversation_type(kind),
                "messages": messages,
                "hasMore": synced.has_more,
            }))
        })
        .collect();
    let friends: Vec<Value> = match any.call(&me, Request::ListFriends).await? {
        Response::Friends(fs) => fs.iter().map(super::friends::friend).collect(),
        other => return Err(unexpected(&other).into()),
    };
    let groups: Vec<Value> = convs
        .iter()
        .filter(|c| c.kind == ConversationKind::Group)
        .map(|c| {
            json!({
                "groupId": views::conversation_id(c.id),
                "name": c.name,
                "avatar": c.group.as_deref().map_or("", |g| views::avatar(&g.avatar_file_id)),
                "ownerId": c.owner.map_or_else(String::new, views::user_id),
                "memberCount": c.members.len(),
            })
        })
        .collect();
    let peers = HashMap::new();
    let sessions: Vec<Value> = convs.iter().map(|c| session(c, me.user, &peers)).collect();
    ok(json!({
        "syncTime": views::now_ms() / 1000,
        "friends": friends,
        "groups": groups,
        "sessions": sessions,
        "conversationMessages": conversation_messages,
        "hasMore": synced.has_more,
    }))
}

/// `POST /sync/messages`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagesBody {
    #[serde(default)]
    conversation_seqs: Vec<SeqItem>,
    limit_per_conversation: Option<u32>,
}

/// `POST /sync/messages`.
pub async fn messages(
    State(any): State<AnyChat>,
    Me(me): Me,
    MaybeBody(b): MaybeBody<MessagesBody>,
) -> Reply {
    let limit = extract::limit(b.limit_per_conversation, 20, 100);
    let mut out = Vec::new();
    let mut visible: Option<HashMap<ConversationId, Seq>> = None;
    for item in b.conversation_seqs.iter().take(100) {
        let conversation = resolve(&any, &me, &item.conversation_id.text()).await?;
        // The history pages forwards from after a seq, but "after 0" means "the newest": from
        // the start, it pages backwards from just past the first page instead (from the first
        // seq the caller may see: a late joiner's history starts later).
        let mut after = Seq(item.last_seq);
        if after == Seq::ZERO {
            if visible.is_none() {
                let (convs, _) = all(&any, &me).await?;
                visible = Some(convs.iter().map(|c| (c.id, c.visible_from)).collect());
            }
            let from = visible
                .as_ref()
                .and_then(|v| v.get(&conversation).copied())
                .unwrap_or(Seq(1));
            after = Seq(from.get().saturating_sub(1));
        }
        let request = match after {
            Seq::ZERO => Request::GetHistory {
                conversation,
                before: Seq(u64::from(limit) + 2),
                after: Seq::ZERO,
                limit: limit + 1,
            },
            after => Request::GetHistory {
                conversation,
                before: Seq::ZERO,
                after,
                limit,
            },
        };
        match any.call(&me, request).await? {
            Response::History { messages, has_more } => {
                let mut messages = messages;
                messages.sort_by_key(|m| m.seq);
                let has_more = match after {
                    Seq::ZERO => messages.len() > limit as usize,
                    _ => has_more,
                };
                messages.truncate(limit as usize);
                let messages: Vec<Value> = messages
                    .iter()
                    .filter_map(|m| views::message(m, None))
                    .collect();
                out.push(json!({
                    "conversationId": views::conversation_id(conversation),
                    "messages": messages,
                    "hasMore": has_more,
                }));
            }
            other => return Err(unexpected(&other).into()),
        }
    }
    ok(json!({"conversations": out}))
}
