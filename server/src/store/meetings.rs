//! Meetings: rooms anyone given the id may join (`core/meetings.rs` has the rules). Two trees,
//! opened by name on use (meetings are on no hot path):
//!
//! | tree            | key                  | value                                  |
//! |-----------------|----------------------|----------------------------------------|
//! | `meetings`      | meeting id           | [`MeetingRecord`] (JSON)               |
//! | `meeting_users` | user id, meeting id  | the meeting's creation time, Unix ms (u64 BE) |
//!
//! `meeting_users` lists the meetings a user created or joined while they are open: ending a
//! meeting removes its entries, and entries of meetings that expired are pruned when read.
//! Ended meetings keep their record (`GetMeeting` shows them).

use serde::{Deserialize, Serialize};

use super::keys::{self, pair};
use super::{from_json, get_json, json, Result, Store};

/// A meeting as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingRecord {
    /// Who opened it.
    pub creator: u64,
    /// Its title.
    pub title: String,
    /// Random salt of the password digest (hex); empty: no password.
    #[serde(default)]
    pub salt: String,
    /// SHA-256 of the salt and the password (hex); empty: no password.
    #[serde(default)]
    pub digest: String,
    /// Most participants (the creator included).
    pub max_participants: u32,
    /// When it was opened, Unix ms.
    pub created_ms: u64,
    /// When it was ended, Unix ms (0: not ended by its creator).
    #[serde(default)]
    pub ended_ms: u64,
    /// Everyone who joined, the creator first.
    pub participants: Vec<u64>,
}

impl Store {
    fn meetings_tree(&self) -> Result<sled::Tree> {
        Ok(self.db.open_tree("meetings")?)
    }

    fn meeting_users_tree(&self) -> Result<sled::Tree> {
        Ok(self.db.open_tree("meeting_users")?)
    }

    /// The meeting `id`.
    pub fn meeting(&self, id: u64) -> Result<Option<MeetingRecord>> {
        get_json(&self.meetings_tree()?, keys::u64_key(id), "meetings")
    }

    /// Records a new meeting under `id` unless that id is taken (then `false`). Not durable
    /// until the next [`Store::sync`].
    pub fn insert_meeting(&self, id: u64, record: &MeetingRecord) -> Result<bool> {
        let swapped = self.meetings_tree()?.compare_and_swap(
            keys::u64_key(id),
            None as Option<&[u8]>,
            Some(json(record)),
        )?;
        Ok(swapped.is_ok())
    }

    /// Changes the meeting `id` with `change`, atomically (retried if another change came
    /// first): `change` sees the current record and says whether it changed it, and why not
    /// (its error). `None`: no such meeting.
    pub fn update_meeting<E>(
        &self,
        id: u64,
        mut change: impl FnMut(&mut MeetingRecord) -> std::result::Result<bool, E>,
    ) -> Result<Option<std::result::Result<MeetingRecord, E>>> {
        let tree = self.meetings_tree()?;
        let key = keys::u64_key(id);
        loop {
            let Some(old) = tree.get(key)? else {
                return Ok(None);
            };
            let mut record: MeetingRecord = from_json(&old, "meetings")?;
            match change(&mut record) {
                Err(e) => return Ok(Some(Err(e))),
                Ok(false) => return Ok(Some(Ok(record))),
                Ok(true) => {}
            }
            if tree
                .compare_and_swap(key, Some(old), Some(json(&record)))?
                .is_ok()
            {
                return Ok(Some(Ok(record)));
            }
        }
    }

    /// Lists `meeting` (opened at `created_ms`) among `user`'s open meetings.
    pub fn add_user_meeting(&self, user: u64, meeting: u64, created_ms: u64) -> Result<()> {
        self.meeting_users_tree()?
            .insert(pair(user, meeting), &created_ms.to_be_bytes())?;
        Ok(())
    }

    /// Takes `meeting` off `user`'s open meetings.
    pub fn remove_user_meeting(&self, user: u64, meeting: u64) -> Result<()> {
        self.meeting_users_tree()?.remove(pair(user, meeting))?;
        Ok(())
    }

    /// `user`'s listed meetings: (meeting id, creation time), in id order.
    pub fn user_meetings(&self, user: u64) -> Result<Vec<(u64, u64)>> {
        self.meeting_users_tree()?
            .scan_prefix(keys::u64_key(user))
            .map(|kv| {
                let (k, v) = kv?;
                let (_, meeting) = keys::decode_pair(&k, "meeting_users")?;
                Ok((meeting, keys::decode_u64(&v, "meeting_users")?))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_util::temp_store;

    fn record() -> MeetingRecord {
        MeetingRecord {
            creator: 1,
            title: "standup".into(),
            salt: String::new(),
            digest: String::new(),
            max_participants: 2,
            created_ms: 5,
            ended_ms: 0,
            participants: vec![1],
        }
    }

    #[test]
    fn insert_update_and_index() {
        let (_dir, store) = temp_store();
        assert!(store.insert_meeting(9, &record()).unwrap());
        assert!(!store.insert_meeting(9, &record()).unwrap(), "id taken");
        let joined = store
            .update_meeting(9, |m| {
                m.participants.push(2);
                Ok::<_, ()>(true)
            })
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(joined.participants, vec![1, 2]);
        assert_eq!(store.meeting(9).unwrap().unwrap(), joined);
        let refused = store.update_meeting(9, |_| Err("full")).unwrap().unwrap();
        assert_eq!(refused, Err("full"));
        assert!(store
            .update_meeting(10, |_| Ok::<_, ()>(true))
            .unwrap()
            .is_none());
        store.add_user_meeting(2, 9, 5).unwrap();
        store.add_user_meeting(3, 9, 5).unwrap();
        assert_eq!(store.user_meetings(2).unwrap(), vec![(9, 5)]);
        store.remove_user_meeting(2, 9).unwrap();
        assert!(store.user_meetings(2).unwrap().is_empty());
        assert_eq!(store.user_meetings(3).unwrap(), vec![(9, 5)]);
    }
}
