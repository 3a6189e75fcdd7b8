//! The two indexes of the `files` tree: each user's files in time order (for `ListFiles`), and
//! the files that share a blob (so deleting one file removes its blob only when no other file
//! has the same contents).
//!
//! | tree          | key                                           | value |
//! |---------------|-----------------------------------------------|-------|
//! | `file_owners` | owner id, created Unix ms (u64 BE), file id   | the file's kind (1 byte, `FileKind::code`; empty in entries written before kinds) |
//! |               | `v1` (2 bytes, outside every owner's prefix)  | empty: the indexes hold every file |
//! | `file_hashes` | SHA-256 in hex (64 bytes), file id            | empty |
//!
//! Write order makes a crash at any point harmless: [`Store::put_file`] writes the hash entry,
//! then the owner entry, then the record, and [`Store::delete_file`] removes them the other way
//! round. So a record always has its index entries; an entry without a record (the remains of
//! an interrupted write) is skipped when read and dropped when found. A blob is kept while any
//! hash entry of a *live* record names it.
//!
//! Stores written before these indexes existed are indexed once, the first time they are
//! needed ([`Store::index_files`]): a scan of `files` that writes the missing entries, then the
//! `v1` mark.

use parley_protocol::frames::{FileId, FileKind};
use parley_protocol::ids::UserId;

use super::FileRecord;
use crate::store::{keys, Result, Store, StoreError};

/// The mark that every file is indexed.
const INDEXED: &[u8] = b"v1";

fn owner_key(owner: u64, created_ms: u64, file: FileId) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..16].copy_from_slice(&keys::pair(owner, created_ms));
    k[16..].copy_from_slice(&file.bytes());
    k
}

fn hash_key(sha256: &str, file: FileId) -> Vec<u8> {
    let mut k = Vec::with_capacity(sha256.len() + 16);
    k.extend_from_slice(sha256.as_bytes());
    k.extend_from_slice(&file.bytes());
    k
}

fn file_of(key: &[u8], tree: &'static str) -> Result<FileId> {
    let at = key.len().checked_sub(16).ok_or(StoreError::Corrupt {
        tree,
        detail: format!("a key of {} bytes", key.len()),
    })?;
    let bytes: [u8; 16] = key[at..].try_into().map_err(|_| StoreError::Corrupt {
        tree,
        detail: "a file id".to_owned(),
    })?;
    Ok(FileId::from_bytes(bytes))
}

/// A page of a user's files.
#[derive(Debug, Default)]
pub struct FilePage {
    /// The files, newest first.
    pub files: Vec<(FileId, FileRecord)>,
    /// More follow.
    pub has_more: bool,
    /// How many files the user has.
    pub total: u32,
}

impl Store {
    fn owners_tree(&self) -> Result<sled::Tree> {
        Ok(self.db.open_tree("file_owners")?)
    }

    fn hashes_tree(&self) -> Result<sled::Tree> {
        Ok(self.db.open_tree("file_hashes")?)
    }

    /// Writes the index entries of a file (before its record: see the module doc).
    pub(super) fn index_file(&self, id: FileId, record: &FileRecord) -> Result<()> {
        self.hashes_tree()?
            .insert(hash_key(&record.sha256, id), &[])?;
        let kind = FileKind::of_mime(&record.mime).code();
        self.owners_tree()?
            .insert(owner_key(record.owner, record.created_ms, id), &[kind])?;
        Ok(())
    }

    /// Indexes every file unless that was done (blocking: one scan of the `files` tree, once
    /// per data directory). Not durable until the next [`Store::sync`], and idempotent: an
    /// interrupted run is done again.
    pub fn index_files(&self) -> Result<()> {
        let owners = self.owners_tree()?;
        if owners.contains_key(INDEXED)? {
            return Ok(());
        }
        let mut indexed = 0u64;
        for row in self.files_tree()?.iter() {
            let (key, value) = row?;
            let id = file_of(&key, "files")?;
            let record: FileRecord = crate::store::from_json(&value, "files")?;
            self.index_file(id, &record)?;
            indexed += 1;
        }
        owners.insert(INDEXED, &[])?;
        if indexed > 0 {
            tracing::info!(files = indexed, "indexed the files of an older store");
        }
        Ok(())
    }

    /// `owner`'s files (of `kind` only, if given), newest first: `offset` skipped, at most
    /// `limit`. Counting them walks the user's index entries, whose values carry each file's
    /// kind (no records are read but the page's, and those of entries written before kinds
    /// when a kind is asked for).
    pub fn files_of(
        &self,
        owner: UserId,
        offset: usize,
        limit: usize,
        kind: Option<FileKind>,
    ) -> Result<FilePage> {
        let files = self.files_tree()?;
        let mut page = FilePage::default();
        let mut live = 0usize;
        for row in self
            .owners_tree()?
            .scan_prefix(keys::u64_key(owner.get()))
            .rev()
        {
            let (key, value) = row?;
            let id = file_of(&key, "file_owners")?;
            let mut record = None;
            if let Some(kind) = kind {
                let code = match *value {
                    [code] => code,
                    _ => {
                        // An entry from before kinds: its record says.
                        record = crate::store::get_json::<FileRecord>(&files, id.bytes(), "files")?;
                        match &record {
                            Some(r) => FileKind::of_mime(&r.mime).code(),
                            None => 0,
                        }
                    }
                };
                if code != kind.code() {
                    continue;
                }
            }
            if live < offset || page.files.len() == limit {
                // Counted without reading the record: entries without one are rare leftovers
                // of an interrupted delete, removed when they come up on a page.
                live += 1;
                continue;
            }
            let record = match record {
                Some(r) => Some(r),
                None => crate::store::get_json::<FileRecord>(&files, id.bytes(), "files")?,
            };
            match record {
                Some(record) if record.owner == owner.get() => {
                    page.files.push((id, record));
                    live += 1;
                }
                _ => {
                    self.owners_tree()?.remove(&key)?;
                }
            }
        }
        page.has_more = live > offset + page.files.len();
        page.total = u32::try_from(live).unwrap_or(u32::MAX);
        Ok(page)
    }

    /// Deletes the file `id` whose record is `record`: record, grants, index entries (in that
    /// order). Answers whether another live file still has the same contents (then its blob
    /// must stay). Not durable until the next [`Store::sync`].
    pub fn delete_file(&self, id: FileId, record: &FileRecord) -> Result<bool> {
        let files = self.files_tree()?;
        files.remove(id.bytes())?;
        let grants = self.grants_tree()?;
        for key in grants.scan_prefix(id.bytes()).keys() {
            grants.remove(key?)?;
        }
        self.owners_tree()?
            .remove(owner_key(record.owner, record.created_ms, id))?;
        let hashes = self.hashes_tree()?;
        hashes.remove(hash_key(&record.sha256, id))?;
        let mut shared = false;
        for key in hashes.scan_prefix(record.sha256.as_bytes()).keys() {
            let key = key?;
            let other = file_of(&key, "file_hashes")?;
            match crate::store::get_json::<FileRecord>(&files, other.bytes(), "files")? {
                Some(r) if r.sha256 == record.sha256 => {
                    shared = true;
                    break;
                }
                // Left by an interrupted delete: it keeps nothing alive.
                _ => {
                    hashes.remove(&key)?;
                }
            }
        }
        Ok(shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_util::temp_store;

    fn record(owner: u64, sha: &str, created_ms: u64) -> FileRecord {
        FileRecord {
            owner,
            name: format!("f{created_ms}"),
            mime: "text/plain".into(),
            size: 1,
            sha256: sha.repeat(32),
            width: 0,
            height: 0,
            public: false,
            created_ms,
        }
    }

    #[test]
    fn lists_newest_first_in_pages_and_counts() {
        let (_dir, store) = temp_store();
        let me = UserId::try_from(5).unwrap();
        for i in 1..=5u8 {
            store
                .put_file(FileId::from_bytes([i; 16]), &record(5, "ab", u64::from(i)))
                .unwrap();
        }
        store
            .put_file(FileId::from_bytes([9; 16]), &record(6, "ab", 3))
            .unwrap();
        let page = store.files_of(me, 0, 2, None).unwrap();
        let ids: Vec<_> = page.files.iter().map(|(id, _)| id.bytes()[0]).collect();
        assert_eq!((ids, page.has_more, page.total), (vec![5, 4], true, 5));
        let page = store.files_of(me, 4, 2, None).unwrap();
        let ids: Vec<_> = page.files.iter().map(|(id, _)| id.bytes()[0]).collect();
        assert_eq!((ids, page.has_more, page.total), (vec![1], false, 5));
    }

    #[test]
    fn lists_one_kind_in_pages_and_counts_it() {
        let (_dir, store) = temp_store();
        let me = UserId::try_from(5).unwrap();
        let mimes = [
            "image/png",
            "text/plain",
            "image/jpeg",
            "audio/ogg",
            "image/gif",
        ];
        for (i, mime) in (1..=5u8).zip(mimes) {
            let r = FileRecord {
                mime: mime.into(),
                ..record(5, "ab", u64::from(i))
            };
            store.put_file(FileId::from_bytes([i; 16]), &r).unwrap();
        }
        let ids = |page: &FilePage| -> Vec<u8> {
            page.files.iter().map(|(id, _)| id.bytes()[0]).collect()
        };
        let images = store.files_of(me, 0, 2, Some(FileKind::Image)).unwrap();
        assert_eq!(
            (ids(&images), images.has_more, images.total),
            (vec![5, 3], true, 3)
        );
        let images = store.files_of(me, 2, 2, Some(FileKind::Image)).unwrap();
        assert_eq!(
            (ids(&images), images.has_more, images.total),
            (vec![1], false, 3)
        );
        let other = store.files_of(me, 0, 10, Some(FileKind::Other)).unwrap();
        assert_eq!((ids(&other), other.total), (vec![2], 1));
        let video = store.files_of(me, 0, 10, Some(FileKind::Video)).unwrap();
        assert_eq!((ids(&video), video.total), (vec![], 0));
        // An entry written before kinds (empty value) is filtered by its record's type.
        let owners = store.owners_tree().unwrap();
        let key = owner_key(5, 4, FileId::from_bytes([4; 16]));
        owners.insert(key, &[]).unwrap();
        let audio = store.files_of(me, 0, 10, Some(FileKind::Audio)).unwrap();
        assert_eq!((ids(&audio), audio.total), (vec![4], 1));
        assert_eq!(store.files_of(me, 0, 10, None).unwrap().total, 5);
    }

    #[test]
    fn a_blob_is_shared_until_its_last_file_goes() {
        let (_dir, store) = temp_store();
        let (a, b) = (FileId::from_bytes([1; 16]), FileId::from_bytes([2; 16]));
        let (ra, rb) = (record(5, "cd", 1), record(6, "cd", 2));
        store.put_file(a, &ra).unwrap();
        store.put_file(b, &rb).unwrap();
        store
            .grant_file(
                a,
                parley_protocol::ids::ConversationId::try_from(3).unwrap(),
            )
            .unwrap();
        assert!(store.delete_file(a, &ra).unwrap(), "b still has the bytes");
        assert_eq!(store.file(a).unwrap(), None);
        assert!(store.file_grants(a).unwrap().is_empty());
        assert_eq!(
            store
                .files_of(UserId::try_from(5).unwrap(), 0, 10, None)
                .unwrap()
                .total,
            0
        );
        assert!(!store.delete_file(b, &rb).unwrap(), "the last one");
    }

    #[test]
    fn an_older_store_is_indexed_once() {
        let (_dir, store) = temp_store();
        let id = FileId::from_bytes([4; 16]);
        // A record written the old way: no index entries.
        store
            .files_tree()
            .unwrap()
            .insert(id.bytes(), crate::store::json(&record(7, "ef", 1)))
            .unwrap();
        let me = UserId::try_from(7).unwrap();
        assert_eq!(store.files_of(me, 0, 10, None).unwrap().total, 0);
        store.index_files().unwrap();
        assert_eq!(store.files_of(me, 0, 10, None).unwrap().total, 1);
        // A second copy of the bytes keeps the blob when the old file goes.
        let other = FileId::from_bytes([5; 16]);
        store.put_file(other, &record(8, "ef", 2)).unwrap();
        assert!(store.delete_file(id, &record(7, "ef", 1)).unwrap());
    }
}
