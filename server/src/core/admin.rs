//! Operator actions for the admin API (`/admin/v1`, docs/operations.md): list and search
//! users, disband any group, announce to every user. Bans are `Core::set_banned` (auth.rs).
//!
//! Entries the operator causes (a disband, an announcement) are written by the **server
//! account**: an account named by `admin.announcer`, made on first use with no password (no
//! login can ever succeed as it: its stored hash is not a password hash). An account of that name
//! made by someone else is refused rather than borrowed, so nobody can speak as the server by
//! registering its name first.

use parley_protocol::frames::{ContentType, ConversationEvent, GroupInfo, SendRequest};
use parley_protocol::ids::{Account, ClientMsgId, ConversationId, DeviceId, Seq, UserId};
use parley_protocol::session::Identity;
use parley_protocol::ErrorCode;

use super::{err, internal, Answer, Core, CoreResult};
use crate::clock::now_ms;
use crate::store::{CommitItem, UserRecord};

/// What the server account's stored "hash" is: not a PHC string, so every password login as it
/// fails verification, and the mark that the server made it.
const SERVER_ACCOUNT_MARK: &str = "!parley-server-account";
/// The device the server account writes from.
const SERVER_DEVICE: &str = "server";
/// Users looked at per call of [`Core::admin_users`] at most (then the page ends early and says
/// where to go on).
const ADMIN_SCAN: usize = 10_000;
/// Users per page at most.
pub const ADMIN_MAX_PAGE: usize = 500;
/// Announcements queued before waiting for them to be durable (bounds what one announcement
/// holds in memory, whatever the number of users).
const ANNOUNCE_WINDOW: usize = 1024;

/// A user as the operator sees it.
#[derive(Clone, Debug)]
pub struct UserSummary {
    /// Id.
    pub user: UserId,
    /// Login name.
    pub account: String,
    /// Display name.
    pub nickname: String,
    /// Creation time, Unix ms.
    pub created_ms: u64,
    /// A guest account.
    pub guest: bool,
    /// Banned.
    pub banned: bool,
    /// Has a session now.
    pub online: bool,
}

impl Core {
    /// Users whose account or nickname contains `query` (case-insensitive; empty: all), in id
    /// order after `after`, at most `limit` (1..=[`ADMIN_MAX_PAGE`]). The second value is where
    /// the next page starts (`None`: no more). Scans the users: run it off the runtime's
    /// workers.
    pub fn admin_users(
        &self,
        query: &str,
        after: u64,
        limit: usize,
    ) -> CoreResult<(Vec<UserSummary>, Option<u64>)> {
        let limit = limit.clamp(1, ADMIN_MAX_PAGE);
        let needle = query.to_lowercase();
        let mut out = Vec::new();
        let mut last = after;
        for (scanned, row) in self.store.users_after(after).enumerate() {
            if out.len() == limit || scanned == ADMIN_SCAN {
                return Ok((out, Some(last)));
            }
            let (user, account) = row.map_err(internal)?;
            last = user.get();
            let Some(record) = self.store.user(user).map_err(internal)? else {
                continue;
            };
            let profile = self.store.profile_record(user).map_err(internal)?;
            let hit = needle.is_empty()
                || account.to_lowercase().contains(&needle)
                || profile.nickname.to_lowercase().contains(&needle);
            if hit {
                out.push(UserSummary {
                    user,
                    account,
                    nickname: profile.nickname,
                    created_ms: record.created_ms,
                    guest: record.guest,
                    banned: record.banned,
                    online: self.router.sessions_of(user) > 0,
                });
            }
        }
        Ok((out, None))
    }

    /// Disbands any group (the operator's version of `DisbandGroup`): the same `disband` event
    /// in its log, written by the server account. `NOT_FOUND` for no such conversation,
    /// `INVALID_ARGUMENT` for a 1:1 or notices conversation, `DISBANDED` if it already is.
    pub async fn admin_disband_group(&self, conv: ConversationId) -> CoreResult<()> {
        let members = self.members_of(conv)?;
        if !members.record.group {
            return Err(err(ErrorCode::InvalidArgument, "not a group"));
        }
        if members.record.settings.disbanded {
            return Err(err(ErrorCode::Disbanded, "the group is already disbanded"));
        }
        let author = self.server_account().await?;
        let pending = self
            .commit_event(
                &author,
                None,
                conv,
                ConversationEvent::Disband,
                None,
                Answer::Ok,
            )
            .await?;
        match pending.await {
            parley_protocol::frames::Response::Error(e) => Err(e),
            _ => Ok(()),
        }
    }

    /// Any group's profile, owner and member count, for the operator (no membership needed;
    /// join requests are not shown). `NOT_FOUND` for no such conversation, `INVALID_ARGUMENT`
    /// for a 1:1 or notices conversation.
    pub fn admin_group(&self, conv: ConversationId) -> CoreResult<GroupInfo> {
        let members = self.members_of(conv)?;
        if !members.record.group {
            return Err(err(ErrorCode::InvalidArgument, "not a group"));
        }
        Ok(GroupInfo {
            conversation: conv,
            profile: super::conversations::group_profile(&members.record),
            owner: members.record.owner.and_then(|o| UserId::try_from(o).ok()),
            member_count: u32::try_from(members.list.len()).unwrap_or(u32::MAX),
            join_requests: Vec::new(),
            created_at_ms: members.record.created_ms,
        })
    }

    /// Sends `text` as a text message from the server account into every user's notices
    /// (pushed to online devices, synced by the others, offered to the offline-push webhook
    /// like any message). Answers the number of users it reached, once every message is
    /// durable. Not idempotent: a retry announces again.
    pub async fn announce(&self, text: String) -> CoreResult<u64> {
        if text.trim().is_empty() {
            return Err(err(ErrorCode::InvalidArgument, "the text is empty"));
        }
        let content = bytes::Bytes::from(text);
        self.check_size(&content)?;
        let author = self.server_account().await?;
        let mut after = 0;
        let mut reached = 0u64;
        loop {
            // One page of users: their notices (made if missing, then made durable once for the
            // page), then one message each, queued without waiting and awaited together.
            let page: Vec<UserId> = self
                .store
                .users_after(after)
                .take(ANNOUNCE_WINDOW)
                .map(|row| row.map(|(user, _)| user))
                .collect::<Result<_, _>>()
                .map_err(internal)?;
            let Some(last) = page.last() else {
                return Ok(reached);
            };
            after = last.get();
            let mut targets = Vec::with_capacity(page.len());
            for user in page.into_iter().filter(|u| *u != author.user) {
                let conv = self
                    .store
                    .notices_conversation(user, now_ms())
                    .map_err(internal)?;
                targets.push(conv);
            }
            self.durable().await?;
            let mut pending = Vec::with_capacity(targets.len());
            for conv in targets {
                let item = CommitItem {
                    sender: author.user,
                    sender_device: author.device.clone(),
                    request: SendRequest {
                        conversation: conv,
                        content_type: ContentType::Text,
                        content: content.clone(),
                        client_msg_id: server_key()?,
                        reply_to: Seq::ZERO,
                        mentions: Vec::new(),
                        mention_all: false,
                    },
                    event: None,
                    thread_root: Default::default(),
                    forwarded_from: None,
                };
                pending.push(self.commit(item, None, Answer::Ok)?.queued().await?);
            }
            for p in pending {
                if let parley_protocol::frames::Response::Error(e) = p.await {
                    return Err(e);
                }
                reached += 1;
            }
        }
    }

    /// The server account (made durable on first use).
    pub(super) async fn server_account(&self) -> CoreResult<Identity> {
        let name = &self.cfg.admin.announcer;
        let account = Account::try_from(name.as_str()).map_err(|_| {
            err(
                ErrorCode::Internal,
                "admin.announcer is not a valid account",
            )
        })?;
        let user = match self.store.user_by_account(name).map_err(internal)? {
            Some((user, record)) if record.password_hash == SERVER_ACCOUNT_MARK => user,
            Some(_) => {
                return Err(err(
                    ErrorCode::Conflict,
                    format!(
                        "the account {name:?} belongs to a user; set admin.announcer to a free name"
                    ),
                ))
            }
            None => self.create_server_account(&account).await?,
        };
        let device = DeviceId::try_from(SERVER_DEVICE)
            .map_err(|_| err(ErrorCode::Internal, "internal error"))?;
        Ok(Identity {
            user,
            account,
            device,
        })
    }

    async fn create_server_account(&self, account: &Account) -> CoreResult<UserId> {
        let record = UserRecord {
            account: account.to_string(),
            password_hash: SERVER_ACCOUNT_MARK.to_owned(),
            created_ms: now_ms(),
            guest: false,
            banned: false,
        };
        let user = match self.store.create_user(account, &record).map_err(internal)? {
            Some(user) => user,
            // Made meanwhile (two announcements at once, or a user registering the name):
            // look again, with the same check.
            None => match self
                .store
                .user_by_account(account.as_str())
                .map_err(internal)?
            {
                Some((user, r)) if r.password_hash == SERVER_ACCOUNT_MARK => user,
                _ => {
                    return Err(err(
                        ErrorCode::Conflict,
                        "the server account's name is taken",
                    ))
                }
            },
        };
        let mut profile = self.store.profile_record(user).map_err(internal)?;
        if profile.nickname.is_empty() {
            profile.nickname = "System".to_owned();
            profile.searchable_by_account = false;
            profile.searchable_by_name = false;
            self.store
                .put_profile_record(user, &profile)
                .map_err(internal)?;
        }
        self.durable().await?;
        tracing::info!(user = user.get(), account = %account, "created the server account");
        Ok(user)
    }
}

/// A fresh idempotency key for an entry the server writes.
fn server_key() -> CoreResult<ClientMsgId> {
    let raw: [u8; 16] = rand::random();
    ClientMsgId::try_from(format!("adm-{}", hex::encode(raw)))
        .map_err(|_| err(ErrorCode::Internal, "internal error"))
}
