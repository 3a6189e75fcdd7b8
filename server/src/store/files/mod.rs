//! Files: their metadata and access grants in sled (two trees, plus the two indexes of
//! [`index`]), their contents in content-addressed blobs on disk ([`blobs`]), never in sled.
//!
//! | tree          | key                          | value                  |
//! |---------------|------------------------------|------------------------|
//! | `files`       | file id (16 bytes)           | [`FileRecord`] (JSON)  |
//! | `file_grants` | file id, conversation id     | empty                  |
//! | `file_owners`, `file_hashes` | see [`index`] | empty                  |
//!
//! A grant says the file was sent in a message of that conversation: its members may read it.

pub mod blobs;
pub mod index;

use parley_protocol::frames::{FileId, FileInfo};
use parley_protocol::ids::{ConversationId, UserId};
use serde::{Deserialize, Serialize};

use super::{get_json, json, keys, Result, Store, StoreError};

/// A file's stored metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)] // see `FileInfo` in the .proto file
pub struct FileRecord {
    pub owner: u64,
    pub name: String,
    pub mime: String,
    pub size: u64,
    pub sha256: String,
    #[serde(default)]
    pub width: u32,
    #[serde(default)]
    pub height: u32,
    #[serde(default)]
    pub public: bool,
    pub created_ms: u64,
}

impl FileRecord {
    /// The record as the protocol's [`FileInfo`].
    pub fn info(&self, id: FileId) -> Result<FileInfo> {
        Ok(FileInfo {
            id,
            owner: UserId::try_from(self.owner).map_err(|e| StoreError::Corrupt {
                tree: "files",
                detail: e.to_string(),
            })?,
            name: self.name.clone(),
            mime: self.mime.clone(),
            size: self.size,
            sha256: self.sha256.clone(),
            width: self.width,
            height: self.height,
            public: self.public,
            created_at_ms: self.created_ms,
        })
    }
}

fn grant_key(file: FileId, conv: ConversationId) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..16].copy_from_slice(&file.bytes());
    k[16..].copy_from_slice(&keys::u64_key(conv.get()));
    k
}

impl Store {
    // The trees are opened by name on use (sled caches open trees): files are not on any hot
    // path, and this keeps them out of the `Store` struct.
    fn files_tree(&self) -> Result<sled::Tree> {
        Ok(self.db.open_tree("files")?)
    }

    fn grants_tree(&self) -> Result<sled::Tree> {
        Ok(self.db.open_tree("file_grants")?)
    }

    /// Records a new file, with its index entries first ([`index`]; not durable until the
    /// next [`Store::sync`]).
    pub fn put_file(&self, id: FileId, record: &FileRecord) -> Result<()> {
        self.index_file(id, record)?;
        self.files_tree()?.insert(id.bytes(), json(record))?;
        Ok(())
    }

    /// A file's record.
    pub fn file(&self, id: FileId) -> Result<Option<FileRecord>> {
        get_json(&self.files_tree()?, id.bytes(), "files")
    }

    /// Records that `file` was sent in `conv` (not durable until the next [`Store::sync`]).
    pub fn grant_file(&self, file: FileId, conv: ConversationId) -> Result<()> {
        self.grants_tree()?.insert(grant_key(file, conv), &[])?;
        Ok(())
    }

    /// The conversations `file` was sent in, in id order.
    pub fn file_grants(&self, file: FileId) -> Result<Vec<ConversationId>> {
        self.grants_tree()?
            .scan_prefix(file.bytes())
            .keys()
            .map(|k| keys::conversation(&k?[16..], "file_grants"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_util::{reopen, temp_store};

    #[test]
    fn records_and_grants_survive_a_sync_and_reopen() {
        let (dir, store) = temp_store();
        let id = FileId::from_bytes([7; 16]);
        let other = FileId::from_bytes([8; 16]);
        let record = FileRecord {
            owner: 3,
            name: "a.png".into(),
            mime: "image/png".into(),
            size: 10,
            sha256: "ab".repeat(32),
            width: 2,
            height: 1,
            public: false,
            created_ms: 5,
        };
        store.put_file(id, &record).unwrap();
        let (c1, c9) = (
            ConversationId::try_from(1).unwrap(),
            ConversationId::try_from(9).unwrap(),
        );
        store.grant_file(id, c9).unwrap();
        store.grant_file(id, c1).unwrap();
        store.grant_file(other, c9).unwrap();
        store.sync().unwrap();
        drop(store);
        let store = reopen(dir.path()).unwrap();
        assert_eq!(store.file(id).unwrap(), Some(record.clone()));
        assert_eq!(store.file(FileId::from_bytes([1; 16])).unwrap(), None);
        assert_eq!(store.file_grants(id).unwrap(), vec![c1, c9]);
        assert_eq!(record.info(id).unwrap().owner.get(), 3);
    }
}
