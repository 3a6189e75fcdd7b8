//! Meetings: rooms that anyone given the id may join, with the password if one was set. There
//! is no media server: a meeting is a record of who opened it, who joined and when it ended,
//! which the dialects that have meetings (AnyChat) render with room tokens of their own.
//!
//! Rules (docs/protocol.md section 25):
//! - ids are random (64 bits), so a meeting is found only by those given its id;
//! - the password is kept only as a salted SHA-256 digest and compared in constant time; a wrong
//!   one is `FORBIDDEN`;
//! - only the creator ends a meeting; one not ended [`MEETING_TTL_MS`] after it was opened is
//!   ended then (nobody is left holding a room forever);
//! - a user is in at most [`MAX_OPEN_MEETINGS`] open meetings (created or joined);
//! - a user who gave [`MAX_PASSWORD_FAILURES`] wrong passwords (to any meetings) within
//!   [`FAILURE_WINDOW`] is refused further joins (`RATE_LIMITED`, `retry_after_ms`) until the
//!   window ends: passwords cannot be guessed at request speed;
//! - every change is in the store and made durable (a barrier) before it is answered.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use parley_protocol::frames::MeetingInfo;
use parley_protocol::ids::UserId;
use parley_protocol::session::Identity;
use parley_protocol::ErrorCode;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{err, internal, Core, CoreResult};
use crate::clock::now_ms;
use crate::store::{MeetingRecord, StoreError};

/// How long a meeting stays open at most, in ms.
pub const MEETING_TTL_MS: u64 = 24 * 3600 * 1000;
/// Open meetings a user may be in (created or joined) at once.
pub const MAX_OPEN_MEETINGS: usize = 100;

/// Wrong passwords a user may give within [`FAILURE_WINDOW`].
pub const MAX_PASSWORD_FAILURES: u32 = 10;
/// See [`MAX_PASSWORD_FAILURES`].
pub const FAILURE_WINDOW: Duration = Duration::from_secs(600);
/// Users whose failures are tracked at most (expired entries are dropped beyond it).
const MAX_TRACKED: usize = 10_000;

/// Wrong meeting passwords per user: (failures, when the window started).
#[derive(Debug, Default)]
pub(crate) struct Failures {
    map: Mutex<HashMap<UserId, (u32, tokio::time::Instant)>>,
}

impl Failures {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, (u32, tokio::time::Instant)>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long `user` must still wait before trying a password (`None`: it may now).
    fn wait(&self, user: UserId, now: tokio::time::Instant) -> Option<Duration> {
        let map = self.lock();
        let (count, start) = map.get(&user)?;
        let end = *start + FAILURE_WINDOW;
        (*count >= MAX_PASSWORD_FAILURES && now < end).then(|| end - now)
    }

    /// Counts a wrong password of `user`.
    fn fail(&self, user: UserId, now: tokio::time::Instant) {
        let mut map = self.lock();
        if map.len() >= MAX_TRACKED {
            map.retain(|_, (_, start)| now < *start + FAILURE_WINDOW);
        }
        let entry = map.entry(user).or_insert((0, now));
        if now >= entry.1 + FAILURE_WINDOW {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(1);
    }
}

/// When `m` ended (0: open at `now`).
fn ended_at(m: &MeetingRecord, now: u64) -> u64 {
    let expires = m.created_ms.saturating_add(MEETING_TTL_MS);
    match m.ended_ms {
        0 if now >= expires => expires,
        ended => ended,
    }
}

fn digest(salt: &str, password: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update([0]);
    h.update(password.as_bytes());
    hex::encode(h.finalize())
}

/// Whether `password` opens `m` (any password opens a meeting without one).
fn password_ok(m: &MeetingRecord, password: &str) -> bool {
    if m.digest.is_empty() {
        return true;
    }
    digest(&m.salt, password)
        .as_bytes()
        .ct_eq(m.digest.as_bytes())
        .into()
}

fn not_found() -> parley_protocol::frames::ErrorInfo {
    err(ErrorCode::NotFound, "no such meeting")
}

/// `m` as `viewer` sees it (participants only for the creator and participants).
fn info(id: u64, m: &MeetingRecord, viewer: UserId, now: u64) -> CoreResult<MeetingInfo> {
    let ids = |v: &[u64]| -> Result<Vec<UserId>, StoreError> {
        v.iter()
            .map(|u| {
                UserId::try_from(*u).map_err(|e| StoreError::Corrupt {
                    tree: "meetings",
                    detail: e.to_string(),
                })
            })
            .collect()
    };
    let participants = ids(&m.participants).map_err(internal)?;
    let creator = ids(&[m.creator]).map_err(internal)?[0];
    let sees = creator == viewer || participants.contains(&viewer);
    Ok(MeetingInfo {
        id,
        creator,
        title: m.title.clone(),
        has_password: !m.digest.is_empty(),
        max_participants: m.max_participants,
        created_at_ms: m.created_ms,
        ended_at_ms: ended_at(m, now),
        participant_count: u32::try_from(participants.len()).unwrap_or(u32::MAX),
        participants: if sees { participants } else { Vec::new() },
    })
}

impl Core {
    /// `user`'s open meetings, (id, record), newest first; entries of meetings that ended or
    /// expired are pruned on the way.
    fn open_meetings(&self, user: UserId, now: u64) -> CoreResult<Vec<(u64, MeetingRecord)>> {
        let mut open = Vec::new();
        for (id, _) in self.store.user_meetings(user.get()).map_err(internal)? {
            match self.store.meeting(id).map_err(internal)? {
                Some(m) if ended_at(&m, now) == 0 => open.push((id, m)),
                _ => self
                    .store
                    .remove_user_meeting(user.get(), id)
                    .map_err(internal)?,
            }
        }
        open.sort_by(|(a, x), (b, y)| y.created_ms.cmp(&x.created_ms).then(b.cmp(a)));
        Ok(open)
    }

    fn check_room_for_meeting(&self, user: UserId, now: u64) -> CoreResult<()> {
        if self.open_meetings(user, now)?.len() >= MAX_OPEN_MEETINGS {
            return Err(err(
                ErrorCode::Conflict,
                "you are in too many open meetings (end or wait for some first)",
            ));
        }
        Ok(())
    }

    /// Opens a meeting with `me` as its creator and first participant.
    pub async fn create_meeting(
        &self,
        me: &Identity,
        title: &str,
        password: &str,
        max_participants: u32,
    ) -> CoreResult<MeetingInfo> {
        let now = now_ms();
        self.check_room_for_meeting(me.user, now)?;
        let salt = match password.is_empty() {
            true => String::new(),
            false => hex::encode(rand::random::<[u8; 16]>()),
        };
        let record = MeetingRecord {
            creator: me.user.get(),
            title: title.to_owned(),
            digest: match password.is_empty() {
                true => String::new(),
                false => digest(&salt, password),
            },
            salt,
            max_participants: max_participants.max(1),
            created_ms: now,
            ended_ms: 0,
            participants: vec![me.user.get()],
        };
        let id = loop {
            // Random and non-zero: a meeting is found only by those given its id.
            let id = rand::random::<u64>() >> 1 | 1;
            if self.store.insert_meeting(id, &record).map_err(internal)? {
                break id;
            }
        };
        self.store
            .add_user_meeting(me.user.get(), id, now)
            .map_err(internal)?;
        self.durable().await?;
        info(id, &record, me.user, now)
    }

    /// Joins an open meeting (a participant joining again changes nothing).
    pub async fn join_meeting(
        &self,
        me: &Identity,
        id: u64,
        password: &str,
    ) -> CoreResult<MeetingInfo> {
        let now = now_ms();
        let current = self
            .store
            .meeting(id)
            .map_err(internal)?
            .ok_or_else(not_found)?;
        let already = current.participants.contains(&me.user.get());
        if !already {
            if let Some(wait) = self
                .meeting_failures
                .wait(me.user, tokio::time::Instant::now())
            {
                return Err(err(
                    ErrorCode::RateLimited,
                    "too many wrong meeting passwords; try again later",
                )
                .with_retry_after(wait));
            }
            self.check_room_for_meeting(me.user, now)?;
        }
        let mut wrong = false;
        let changed = self
            .store
            .update_meeting(id, |m| {
                if ended_at(m, now) != 0 {
                    return Err(err(ErrorCode::Conflict, "the meeting has ended"));
                }
                if m.participants.contains(&me.user.get()) {
                    return Ok(false);
                }
                if !password_ok(m, password) {
                    wrong = true;
                    return Err(err(ErrorCode::Forbidden, "wrong meeting password"));
                }
                if m.participants.len() >= m.max_participants as usize {
                    return Err(err(ErrorCode::Conflict, "the meeting is full"));
                }
                m.participants.push(me.user.get());
                Ok(true)
            })
            .map_err(internal)?
            .ok_or_else(not_found)?;
        if wrong {
            self.meeting_failures
                .fail(me.user, tokio::time::Instant::now());
        }
        let changed = changed?;
        self.store
            .add_user_meeting(me.user.get(), id, changed.created_ms)
            .map_err(internal)?;
        self.durable().await?;
        info(id, &changed, me.user, now)
    }

    /// Ends a meeting: its creator only; an ended meeting stays as it is.
    pub async fn end_meeting(&self, me: &Identity, id: u64) -> CoreResult<MeetingInfo> {
        let now = now_ms();
        let ended = self
            .store
            .update_meeting(id, |m| {
                if m.creator != me.user.get() {
                    return Err(err(
                        ErrorCode::Forbidden,
                        "only the meeting's creator can end it",
                    ));
                }
                if ended_at(m, now) != 0 {
                    return Ok(false);
                }
                m.ended_ms = now;
                Ok(true)
            })
            .map_err(internal)?
            .ok_or_else(not_found)??;
        for user in &ended.participants {
            self.store
                .remove_user_meeting(*user, id)
                .map_err(internal)?;
        }
        self.durable().await?;
        info(id, &ended, me.user, now)
    }

    /// A meeting, open or ended, for anyone who has its id.
    pub fn get_meeting(&self, me: &Identity, id: u64) -> CoreResult<MeetingInfo> {
        let m = self
            .store
            .meeting(id)
            .map_err(internal)?
            .ok_or_else(not_found)?;
        info(id, &m, me.user, now_ms())
    }

    /// The open meetings `me` created or joined, newest first: a page, whether more follow,
    /// and how many there are.
    pub fn list_meetings(
        &self,
        me: &Identity,
        offset: u32,
        limit: u32,
    ) -> CoreResult<(Vec<MeetingInfo>, bool, u32)> {
        let now = now_ms();
        let open = self.open_meetings(me.user, now)?;
        let total = open.len();
        let page = open
            .iter()
            .skip(offset as usize)
            .take(limit as usize)
            .map(|(id, m)| info(*id, m, me.user, now))
            .collect::<CoreResult<Vec<_>>>()?;
        let more = (offset as usize).saturating_add(page.len()) < total;
        Ok((page, more, u32::try_from(total).unwrap_or(u32::MAX)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(password: &str) -> MeetingRecord {
        let salt = "00ff".to_owned();
        MeetingRecord {
            creator: 1,
            title: "t".into(),
            digest: match password {
                "" => String::new(),
                p => digest(&salt, p),
            },
            salt,
            max_participants: 2,
            created_ms: 1000,
            ended_ms: 0,
            participants: vec![1],
        }
    }

    #[test]
    fn passwords_are_checked_against_the_salted_digest() {
        let m = record("s3cret");
        assert!(password_ok(&m, "s3cret"));
        assert!(!password_ok(&m, "s3cre"));
        assert!(!password_ok(&m, ""));
        assert!(password_ok(&record(""), "anything"));
    }

    #[tokio::test(start_paused = true)]
    async fn wrong_passwords_are_limited_per_user_and_window() {
        let f = Failures::default();
        let (one, two) = (UserId::try_from(1).unwrap(), UserId::try_from(2).unwrap());
        let start = tokio::time::Instant::now();
        for _ in 0..MAX_PASSWORD_FAILURES - 1 {
            f.fail(one, start);
        }
        assert_eq!(f.wait(one, start), None, "still allowed");
        f.fail(one, start);
        assert_eq!(f.wait(one, start), Some(FAILURE_WINDOW));
        assert_eq!(f.wait(two, start), None, "others are not affected");
        let later = start + FAILURE_WINDOW;
        assert_eq!(f.wait(one, later), None, "the window ended");
        f.fail(one, later);
        assert_eq!(f.wait(one, later), None, "a new window counts from zero");
    }

    #[test]
    fn a_meeting_expires_a_day_after_it_opened() {
        let mut m = record("");
        assert_eq!(ended_at(&m, 1000 + MEETING_TTL_MS - 1), 0);
        assert_eq!(ended_at(&m, 1000 + MEETING_TTL_MS), 1000 + MEETING_TTL_MS);
        m.ended_ms = 5000;
        assert_eq!(ended_at(&m, 1000 + MEETING_TTL_MS * 2), 5000);
    }

    #[test]
    fn participants_are_shown_to_participants_only() {
        let m = record("");
        let one = UserId::try_from(1).unwrap();
        let two = UserId::try_from(2).unwrap();
        assert_eq!(info(7, &m, one, 0).unwrap().participants, vec![one]);
        let other = info(7, &m, two, 0).unwrap();
        assert!(other.participants.is_empty());
        assert_eq!(other.participant_count, 1);
    }
}
