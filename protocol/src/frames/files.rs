//! Files: the metadata requests and their answer (the bytes travel over HTTP, docs/files.md).

use crate::error::InvalidInput;
use crate::ids::UserId;
use crate::wire as w;

/// Longest file name, in bytes.
pub const MAX_FILE_NAME_BYTES: usize = 255;
/// Longest MIME type, in bytes.
pub const MAX_MIME_BYTES: usize = 127;
/// What an unknown or unusable MIME type becomes.
pub const DEFAULT_MIME: &str = "application/octet-stream";

/// Hex digits in a file id or an upload token (128 random bits).
const ID_HEX: usize = 32;

fn hex_id(s: &str) -> bool {
    s.len() == ID_HEX && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A file's id: 128 random bits as 32 lowercase hex digits (URL-safe, unguessable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId([u8; 16]);

impl FileId {
    /// The id made of these bytes (the server draws them from a CSPRNG).
    pub fn from_bytes(bytes: [u8; 16]) -> FileId {
        FileId(bytes)
    }

    /// Its bytes.
    pub fn bytes(&self) -> [u8; 16] {
        self.0
    }
}

impl std::fmt::Display for FileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for FileId {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<FileId, InvalidInput> {
        if !hex_id(s) {
            return Err(InvalidInput::new("file_id must be 32 lowercase hex digits"));
        }
        let mut out = [0u8; 16];
        for (i, pair) in s.as_bytes().chunks(2).enumerate() {
            let digit = |c: u8| match c {
                b'0'..=b'9' => c - b'0',
                _ => c - b'a' + 10,
            };
            out[i] = digit(pair[0]) << 4 | digit(pair[1]);
        }
        Ok(FileId(out))
    }
}

impl TryFrom<String> for FileId {
    type Error = InvalidInput;
    fn try_from(s: String) -> Result<FileId, InvalidInput> {
        s.parse()
    }
}

/// A token naming an uploaded, not yet registered blob (32 lowercase hex digits).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UploadToken(String);

impl UploadToken {
    /// The token as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UploadToken {
    type Error = InvalidInput;
    fn try_from(s: String) -> Result<UploadToken, InvalidInput> {
        match hex_id(&s) {
            true => Ok(UploadToken(s)),
            false => Err(InvalidInput::new(
                "upload_token must be 32 lowercase hex digits",
            )),
        }
    }
}

impl From<UploadToken> for String {
    fn from(t: UploadToken) -> String {
        t.0
    }
}

/// What an uploader says about a new file: checked here, so the server and the HTTP side apply
/// the same rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewFile {
    name: String,
    mime: String,
    /// Anyone may read it, even without logging in.
    pub public: bool,
}

impl NewFile {
    /// Checks a name (1..=255 bytes, no control characters, no `/` or `\`) and normalises a
    /// MIME type (lowercase `type/subtype`, parameters dropped; empty:
    /// `application/octet-stream`).
    pub fn new(name: String, mime: &str, public: bool) -> Result<NewFile, InvalidInput> {
        if name.is_empty() || name.len() > MAX_FILE_NAME_BYTES {
            return Err(InvalidInput::new("file name must be 1..=255 bytes"));
        }
        if name
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\\')
        {
            return Err(InvalidInput::new(
                "file name must not contain control characters, / or \\",
            ));
        }
        if name.trim().is_empty() || name == "." || name == ".." {
            return Err(InvalidInput::new("file name must not be blank, . or .."));
        }
        Ok(NewFile {
            name,
            mime: mime_type(mime)?,
            public,
        })
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The normalised MIME type.
    pub fn mime(&self) -> &str {
        &self.mime
    }
}

/// `type/subtype` in lowercase with parameters dropped (`""`: the default type).
pub fn mime_type(raw: &str) -> Result<String, InvalidInput> {
    let essence = raw.split(';').next().unwrap_or("").trim();
    if essence.is_empty() {
        return Ok(DEFAULT_MIME.to_owned());
    }
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    match essence.split_once('/') {
        Some((t, s)) if essence.len() <= MAX_MIME_BYTES && token(t) && token(s) => {
            Ok(essence.to_ascii_lowercase())
        }
        _ => Err(InvalidInput::new("mime_type must be type/subtype")),
    }
}

/// A file's kind, from its MIME type's top-level type (`ListFiles` filters by it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// `image/*`.
    Image,
    /// `video/*`.
    Video,
    /// `audio/*`.
    Audio,
    /// Everything else.
    Other,
}

impl FileKind {
    /// The kind of a MIME type.
    pub fn of_mime(mime: &str) -> FileKind {
        match mime.split('/').next().unwrap_or("") {
            t if t.eq_ignore_ascii_case("image") => FileKind::Image,
            t if t.eq_ignore_ascii_case("video") => FileKind::Video,
            t if t.eq_ignore_ascii_case("audio") => FileKind::Audio,
            _ => FileKind::Other,
        }
    }

    /// The kind's one-byte code (as on the wire: 1..=4).
    pub fn code(self) -> u8 {
        match self {
            FileKind::Image => 1,
            FileKind::Video => 2,
            FileKind::Audio => 3,
            FileKind::Other => 4,
        }
    }

    /// The kind of a code (`None`: 0, "any kind"; an unknown code is an error).
    pub fn from_code(code: i32) -> Result<Option<FileKind>, InvalidInput> {
        match code {
            0 => Ok(None),
            1 => Ok(Some(FileKind::Image)),
            2 => Ok(Some(FileKind::Video)),
            3 => Ok(Some(FileKind::Audio)),
            4 => Ok(Some(FileKind::Other)),
            _ => Err(InvalidInput::new("kind must be 0..=4")),
        }
    }

    /// The kind's name, as `GET /im/v1/files?kind=` takes it: `image`, `video`, `audio`,
    /// `other`.
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Image => "image",
            FileKind::Video => "video",
            FileKind::Audio => "audio",
            FileKind::Other => "other",
        }
    }

    /// The kind named `name` ([`FileKind::name`]).
    pub fn from_name(name: &str) -> Option<FileKind> {
        [
            FileKind::Image,
            FileKind::Video,
            FileKind::Audio,
            FileKind::Other,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }
}

/// Files per `ListFiles` page when the request names no limit.
pub const DEFAULT_FILE_PAGE: u32 = 20;
/// Files per `ListFiles` page at most.
pub const MAX_FILE_PAGE: u32 = 100;
/// The furthest a `ListFiles` page may start from the newest file (the listing walks the
/// skipped entries: past this, a request would cost more than a page is worth).
pub const MAX_FILE_OFFSET: u32 = 10_000;

/// A `ListFiles` limit as asked (`0`: the default), checked.
pub fn file_page(limit: u32) -> Result<u32, InvalidInput> {
    match limit {
        0 => Ok(DEFAULT_FILE_PAGE),
        1..=MAX_FILE_PAGE => Ok(limit),
        _ => Err(InvalidInput::new("limit must be 0..=100")),
    }
}

/// A `ListFiles` offset, checked.
pub fn file_offset(offset: u32) -> Result<u32, InvalidInput> {
    match offset <= MAX_FILE_OFFSET {
        true => Ok(offset),
        false => Err(InvalidInput::new("offset must be 0..=10000")),
    }
}

/// A file's metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // see `FileInfo` in the .proto file
pub struct FileInfo {
    pub id: FileId,
    pub owner: UserId,
    pub name: String,
    pub mime: String,
    pub size: u64,
    /// 64 lowercase hex digits.
    pub sha256: String,
    pub width: u32,
    pub height: u32,
    pub public: bool,
    pub created_at_ms: u64,
}

impl From<FileInfo> for w::FileInfo {
    fn from(f: FileInfo) -> Self {
        w::FileInfo {
            file_id: f.id.to_string(),
            owner_user_id: f.owner.get(),
            name: f.name,
            mime_type: f.mime,
            size: f.size,
            sha256: f.sha256,
            width: f.width,
            height: f.height,
            public: f.public,
            created_at_ms: f.created_at_ms,
        }
    }
}

impl TryFrom<w::FileInfo> for FileInfo {
    type Error = InvalidInput;
    fn try_from(f: w::FileInfo) -> Result<Self, InvalidInput> {
        Ok(FileInfo {
            id: f.file_id.parse()?,
            owner: UserId::try_from(f.owner_user_id)?,
            name: f.name,
            mime: f.mime_type,
            size: f.size,
            sha256: f.sha256,
            width: f.width,
            height: f.height,
            public: f.public,
            created_at_ms: f.created_at_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_ids_round_trip_and_reject_other_shapes() {
        let id = FileId::from_bytes([0xab; 16]);
        assert_eq!(id.to_string().len(), 32);
        assert_eq!(id.to_string().parse::<FileId>(), Ok(id));
        for bad in [
            "",
            "AB".repeat(16).as_str(),
            &"a".repeat(31),
            &"g".repeat(32),
        ] {
            assert!(bad.parse::<FileId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_and_mime_types_are_checked() {
        let f = NewFile::new("a b.png".into(), "Image/PNG; charset=x", false).unwrap();
        assert_eq!((f.name(), f.mime()), ("a b.png", "image/png"));
        assert_eq!(
            NewFile::new("x".into(), "", true).unwrap().mime(),
            DEFAULT_MIME
        );
        for name in ["", "a/b", "..", "a\nb", &"x".repeat(256)] {
            assert!(NewFile::new(name.into(), "", false).is_err(), "{name:?}");
        }
        for mime in ["text", "a/b/c", "te xt/plain", "/x"] {
            assert!(mime_type(mime).is_err(), "{mime:?}");
        }
    }

    #[test]
    fn list_and_delete_requests_round_trip_and_check_their_bounds() {
        use crate::frames::{ClientFrame, Request};
        use crate::ids::RequestId;
        assert_eq!(file_page(0), Ok(DEFAULT_FILE_PAGE));
        assert_eq!(file_page(100), Ok(100));
        assert!(file_page(101).is_err());
        assert_eq!(file_offset(MAX_FILE_OFFSET), Ok(MAX_FILE_OFFSET));
        assert!(file_offset(MAX_FILE_OFFSET + 1).is_err());
        let requests = [
            Request::ListFiles {
                limit: 20,
                offset: 40,
                kind: None,
            },
            Request::ListFiles {
                limit: 5,
                offset: 0,
                kind: Some(FileKind::Audio),
            },
            Request::DeleteFile(FileId::from_bytes([3; 16])),
        ];
        for request in requests {
            let frame = ClientFrame {
                request_id: RequestId::try_from(1).unwrap(),
                request,
            };
            // The encoding is length-prefixed (u32 BE); the decoder takes the body.
            let body = frame.clone().encode().slice(4..);
            assert_eq!(ClientFrame::decode(body).unwrap(), frame);
        }
    }
}
