//! Offline push: a message that reaches a user with no connected device is handed, without
//! waiting, to a bounded queue; workers POST it (with the user's push tokens) to the operator's
//! webhook, which forwards it to APNs, FCM or the like. Retried with backoff, bounded in
//! attempts; a full queue drops the notification (counted) rather than slow delivery down.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parley_protocol::frames::{ContentType, Message};
use parley_protocol::ids::UserId;
use serde::Serialize;
use tokio::sync::mpsc;

use super::Core;
use crate::config::PushConfig;

/// Longest text preview posted, in characters.
const PREVIEW_CHARS: usize = 100;

/// One notification to post.
#[derive(Debug)]
pub struct Job {
    user: UserId,
    message: Message,
}

/// The queue's sending side and its counters.
#[derive(Debug)]
pub struct OfflinePush {
    tx: mpsc::Sender<Job>,
    /// Posted (2xx).
    pub sent: AtomicU64,
    /// Given up after every attempt.
    pub failed: AtomicU64,
    /// Dropped on a full queue.
    pub dropped: AtomicU64,
}

impl OfflinePush {
    /// The queue, if a webhook is configured; its receiver goes to [`Core::run_offline_push`].
    pub(crate) fn new(cfg: &PushConfig) -> Option<(OfflinePush, mpsc::Receiver<Job>)> {
        if cfg.webhook.is_empty() {
            return None;
        }
        let (tx, rx) = mpsc::channel(cfg.queue);
        let me = OfflinePush {
            tx,
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        };
        Some((me, rx))
    }

    /// Notifications waiting to be posted now (the queue's lag, for `/metrics`).
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Queues a notification without waiting.
    pub(crate) fn offer(&self, user: UserId, message: &Message) {
        let job = Job {
            user,
            message: message.clone(),
        };
        if self.tx.try_send(job).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[derive(Serialize)]
struct Token<'a> {
    device_id: &'a str,
    provider: &'a str,
    token: &'a str,
}

/// The body posted: ids as strings (JSON numbers lose precision past 2^53), times in ms.
#[derive(Serialize)]
struct Body<'a> {
    user_id: String,
    conversation_id: String,
    seq: u64,
    message_id: String,
    sender_user_id: String,
    sender_account: String,
    content_type: &'static str,
    /// Text messages: the first 100 characters; others empty.
    preview: String,
    mentioned: bool,
    server_time_ms: u64,
    tokens: Vec<Token<'a>>,
}

fn kind(c: ContentType) -> &'static str {
    match c {
        ContentType::Text => "text",
        ContentType::Image => "image",
        ContentType::File => "file",
        ContentType::Audio => "audio",
        ContentType::Video => "video",
        ContentType::Custom => "custom",
        ContentType::System => "system",
        ContentType::Location => "location",
        ContentType::Sticker => "sticker",
        ContentType::Unspecified => "unspecified",
    }
}

impl Core {
    /// Sets (empty: removes) the caller's device's push token.
    pub async fn set_push_token(
        &self,
        me: &parley_protocol::session::Identity,
        provider: &str,
        token: &str,
    ) -> super::CoreResult<()> {
        self.store
            .set_push_token(me.user, &me.device, provider, token)
            .map_err(super::internal)?;
        self.durable().await
    }

    /// Posts queued notifications until the queue closes (the core is dropped).
    pub async fn run_offline_push(self: Arc<Self>, mut rx: mpsc::Receiver<Job>) {
        // reqwest's rustls wants a process-wide provider; ours is ring everywhere.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cfg = self.cfg.push.clone();
        let client = match reqwest::Client::builder().timeout(cfg.timeout).build() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "offline push disabled: no HTTP client");
                return;
            }
        };
        let permits = Arc::new(tokio::sync::Semaphore::new(cfg.concurrency));
        while let Some(job) = rx.recv().await {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (core, client, url) = (self.clone(), client.clone(), cfg.webhook.clone());
            tokio::spawn(async move {
                core.post(&client, &url, job).await;
                drop(permit);
            });
        }
    }

    async fn post(&self, client: &reqwest::Client, url: &str, job: Job) {
        let Some(push) = self.offline_push.as_ref() else {
            return;
        };
        let (user, m) = (job.user, &job.message);
        // Whether to notify at all: tokens, settings, a muted conversation (mentions still go).
        let tokens = match self.store.push_tokens(user) {
            Ok(t) if !t.is_empty() => t,
            _ => return,
        };
        let mentioned = m.mention_all || m.mentions.contains(&user);
        let wants = self
            .store
            .profile_record(user)
            .map(|p| p.notifications)
            .unwrap_or(true);
        let muted = self
            .store
            .prefs(user, m.conversation)
            .map(|p| p.muted)
            .unwrap_or(false);
        if !wants || (muted && !mentioned) {
            return;
        }
        let sender_account = self
            .store
            .user(m.sender)
            .ok()
            .flatten()
            .map(|u| u.account)
            .unwrap_or_default();
        let preview = match m.content_type {
            ContentType::Text => String::from_utf8_lossy(&m.content)
                .chars()
                .take(PREVIEW_CHARS)
                .collect(),
            _ => String::new(),
        };
        let body = Body {
            user_id: user.to_string(),
            conversation_id: m.conversation.to_string(),
            seq: m.seq.get(),
            message_id: m.id.to_string(),
            sender_user_id: m.sender.to_string(),
            sender_account,
            content_type: kind(m.content_type),
            preview,
            mentioned,
            server_time_ms: m.server_time_ms,
            tokens: tokens
                .iter()
                .map(|t| Token {
                    device_id: &t.device,
                    provider: &t.provider,
                    token: &t.token,
                })
                .collect(),
        };
        let attempts = self.cfg.push.attempts;
        let mut backoff = Duration::from_millis(200);
        for attempt in 1..=attempts {
            match client.post(url).json(&body).send().await {
                Ok(r) if r.status().is_success() => {
                    push.sent.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Ok(r) => tracing::debug!(status = %r.status(), attempt, "push webhook refused"),
                Err(e) => tracing::debug!(error = %e, attempt, "push webhook unreachable"),
            }
            if attempt < attempts {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
        push.failed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%user, conv = %m.conversation, "offline push given up");
    }
}
