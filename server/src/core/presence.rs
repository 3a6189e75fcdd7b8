//! Presence: online while a device is connected (or away, if the user says so), offline with a
//! last-seen time otherwise. Pushed, never part of a log: to the user's friends and the members
//! of its small groups who are online, never to users it blocked.

use std::collections::HashSet;

use parley_protocol::frames::{Presence, PresenceStatus, Push, SharedPush};
use parley_protocol::ids::UserId;
use parley_protocol::session::Identity;

use super::{internal, Core, CoreResult};
use crate::clock::now_ms;
use crate::store::Relation;

/// Groups up to this size share presence among their members.
pub const SMALL_GROUP: usize = 100;

impl Core {
    /// `user`'s presence as `viewer` may see it (someone who blocked the viewer shows offline,
    /// with no last-seen time).
    pub fn presence_of(&self, viewer: UserId, user: UserId) -> CoreResult<Presence> {
        if self.store.blocked(user, viewer) {
            return Ok(Presence {
                user,
                status: PresenceStatus::Offline,
                text: String::new(),
                last_seen_ms: 0,
            });
        }
        self.presence(user)
    }

    /// `user`'s presence.
    fn presence(&self, user: UserId) -> CoreResult<Presence> {
        let record = self.store.presence(user).map_err(internal)?;
        let online = self.router.sessions_of(user) > 0;
        Ok(Presence {
            user,
            status: match (online, record.away) {
                (false, _) => PresenceStatus::Offline,
                (true, true) => PresenceStatus::Away,
                (true, false) => PresenceStatus::Online,
            },
            text: record.text,
            last_seen_ms: if online { 0 } else { record.last_seen_ms },
        })
    }

    /// Presence of several users, as the caller may see it (unknown ids are left out).
    pub fn get_presence(&self, me: &Identity, users: &[UserId]) -> CoreResult<Vec<Presence>> {
        let mut out = Vec::with_capacity(users.len());
        for u in users {
            if self.store.user(*u).map_err(internal)?.is_some() {
                out.push(self.presence_of(me.user, *u)?);
            }
        }
        Ok(out)
    }

    /// Sets the caller's status and text, and tells its audience.
    pub fn set_presence(
        &self,
        me: &Identity,
        status: Option<PresenceStatus>,
        text: Option<String>,
    ) -> CoreResult<()> {
        let mut record = self.store.presence(me.user).map_err(internal)?;
        let before = record.clone();
        if let Some(s) = status {
            record.away = s == PresenceStatus::Away;
        }
        if let Some(t) = text {
            record.text = t;
        }
        if record != before {
            self.store
                .put_presence(me.user, &record)
                .map_err(internal)?;
            self.announce_presence(me.user);
        }
        Ok(())
    }

    /// A user's first device connected, or its last one left: record the time and tell its
    /// audience. Best effort: a failure is logged, never the session's problem.
    pub(crate) fn connected_changed(&self, user: UserId, online: bool) {
        if !online {
            let result = self.store.presence(user).and_then(|mut r| {
                r.last_seen_ms = now_ms();
                self.store.put_presence(user, &r)
            });
            if let Err(e) = result {
                tracing::warn!(%user, error = %e, "last-seen time not recorded");
            }
        }
        self.announce_presence(user);
    }

    /// Pushes `user`'s presence to its friends and the members of its small groups.
    fn announce_presence(&self, user: UserId) {
        let audience = match self.presence_audience(user) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(%user, error = %e.message, "presence not announced");
                return;
            }
        };
        if audience.is_empty() {
            return;
        }
        let Ok(presence) = self.presence(user) else {
            return;
        };
        let push = SharedPush::new(Push::Presence(Box::new(presence)));
        for other in audience {
            self.router.deliver(other, &push, None);
        }
    }

    fn presence_audience(&self, user: UserId) -> CoreResult<HashSet<UserId>> {
        let mut audience = HashSet::new();
        for (other, relation) in self.store.relations(user).map_err(internal)? {
            if matches!(relation, Relation::Friend { .. }) {
                audience.insert(other);
            }
        }
        for conv in self.store.user_conversations(user).map_err(internal)? {
            let Ok(members) = self.members_of(conv) else {
                continue;
            };
            if members.record.group && members.list.len() <= SMALL_GROUP {
                audience.extend(members.ids());
            }
        }
        audience.remove(&user);
        audience.retain(|u| !self.store.blocked(user, *u) && self.router.sessions_of(*u) > 0);
        Ok(audience)
    }
}
