//! Reading an info dictionary for display, and writing it as a `.torrent` file.

use core::fmt;

use dht_proto::wire::bencode::{self, DecodeError, DecodeLimits, Dict, Value};

/// What an info dictionary says, for display (BitTorrent v1 single- and multi-file torrents).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InfoDict {
    /// The suggested name (`name`; a file name, or a directory name for several files), with
    /// invalid UTF-8 replaced.
    pub name: String,
    /// Bytes per piece (`piece length`).
    pub piece_length: u64,
    /// The files with their paths (a single-file torrent has one, whose path is the name).
    pub files: Vec<FileEntry>,
    /// The sum of the file lengths.
    pub total_size: u64,
    /// Whether `private` is 1 (BEP 27).
    pub private: bool,
}

/// One file of an [`InfoDict`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// Path components below the torrent's directory (or just the name for a single file),
    /// with invalid UTF-8 replaced.
    pub path: Vec<String>,
    /// Size in bytes.
    pub length: u64,
}

/// Why bytes are not a usable info dictionary.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InfoError {
    /// Not bencode (or beyond the decoder's limits).
    Bencode(DecodeError),
    /// Bencode, but not a dictionary.
    NotADictionary,
    /// A required key is missing or of the wrong type.
    Missing(&'static str),
    /// A key has an unusable value (negative length, empty path, sizes that overflow).
    Invalid(&'static str),
    /// Neither `length` nor `files`: a BitTorrent v2-only info dictionary (`file tree`), which
    /// this reader does not list.
    V2Only,
}

impl fmt::Display for InfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bencode(e) => write!(f, "the info dictionary is not valid bencode: {e}"),
            Self::NotADictionary => f.write_str("the info dictionary is not a dictionary"),
            Self::Missing(key) => write!(f, "the info dictionary lacks a valid `{key}`"),
            Self::Invalid(what) => write!(f, "the info dictionary has an invalid {what}"),
            Self::V2Only => f.write_str("a BitTorrent v2-only info dictionary (no v1 file list)"),
        }
    }
}

impl core::error::Error for InfoError {}

/// Deepest nesting read: info, files, a file, its path.
const MAX_DEPTH: usize = 8;

impl InfoDict {
    /// Reads a bencoded info dictionary.
    ///
    /// ```
    /// use dht_std::metadata::InfoDict;
    ///
    /// let info = InfoDict::parse(b"d6:lengthi5e4:name5:a.txt12:piece lengthi16384e6:pieces0:e")?;
    /// assert_eq!((info.name.as_str(), info.total_size), ("a.txt", 5));
    /// assert_eq!(info.files[0].path, ["a.txt"]);
    /// # Ok::<(), dht_std::metadata::InfoError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`InfoError`] for anything that is not a v1 info dictionary.
    pub fn parse(info: &[u8]) -> Result<Self, InfoError> {
        // Every element and string is bounded by the input's own length.
        let limits = DecodeLimits::new(MAX_DEPTH, info.len(), info.len());
        let value = bencode::decode(info, &limits).map_err(InfoError::Bencode)?;
        let dict = value.as_dict().ok_or(InfoError::NotADictionary)?;
        let name = dict
            .get(b"name")
            .and_then(|v| v.as_bytes())
            .ok_or(InfoError::Missing("name"))?;
        let name = String::from_utf8_lossy(name).into_owned();
        let piece_length = dict
            .get(b"piece length")
            .and_then(|v| v.as_int())
            .ok_or(InfoError::Missing("piece length"))?;
        let piece_length =
            u64::try_from(piece_length).map_err(|_| InfoError::Invalid("piece length"))?;
        let private = dict.get(b"private").and_then(|v| v.as_int()) == Some(1);
        let files = match (dict.get(b"length"), dict.get(b"files")) {
            (Some(length), _) => vec![FileEntry {
                path: vec![name.clone()],
                length: length_of(&length)?,
            }],
            (None, Some(files)) => {
                let list = files.as_list().ok_or(InfoError::Missing("files"))?;
                list.iter().map(file_entry).collect::<Result<Vec<_>, _>>()?
            }
            (None, None) if dict.get(b"file tree").is_some() => return Err(InfoError::V2Only),
            (None, None) => return Err(InfoError::Missing("length` or `files")),
        };
        let total_size = files
            .iter()
            .try_fold(0u64, |sum, f| sum.checked_add(f.length))
            .ok_or(InfoError::Invalid("total size"))?;
        Ok(Self {
            name,
            piece_length,
            files,
            total_size,
            private,
        })
    }
}

fn length_of(v: &Value<'_>) -> Result<u64, InfoError> {
    let n = v.as_int().ok_or(InfoError::Missing("length"))?;
    u64::try_from(n).map_err(|_| InfoError::Invalid("file length"))
}

fn file_entry(v: Value<'_>) -> Result<FileEntry, InfoError> {
    let d: Dict<'_> = v.as_dict().ok_or(InfoError::Invalid("file entry"))?;
    let length = length_of(&d.get(b"length").ok_or(InfoError::Missing("length"))?)?;
    let path = d
        .get(b"path")
        .and_then(|p| p.as_list())
        .ok_or(InfoError::Missing("path"))?;
    let path = path
        .iter()
        .map(|c| {
            c.as_bytes()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .ok_or(InfoError::Invalid("path component"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if path.is_empty() {
        return Err(InfoError::Invalid("empty path"));
    }
    Ok(FileEntry { path, length })
}

/// A `.torrent` file holding `info` byte for byte: `d4:info<info>e` (no tracker: peers come
/// from the DHT). `info` must be one bencoded value (as a verified fetch gives).
///
/// ```
/// let info = b"d4:name1:ae";
/// assert_eq!(dht_std::metadata::torrent_file(info), b"d4:infod4:name1:aee");
/// ```
pub fn torrent_file(info: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(info.len() + 8);
    out.extend_from_slice(b"d4:info");
    out.extend_from_slice(info);
    out.push(b'e');
    out
}

/// The body of the `info_dict` fuzz target, replayed over its corpus by `cargo test`: reading
/// arbitrary bytes as an info dictionary never panics, and what it accepts is consistent.
///
/// # Panics
///
/// When an accepted dictionary breaks an invariant (that is the bug the fuzzer looks for).
#[doc(hidden)]
pub fn fuzz_info_dict(data: &[u8]) {
    let Ok(info) = InfoDict::parse(data) else {
        return;
    };
    assert!(!info.files.is_empty(), "an accepted dictionary lists files");
    assert!(
        info.files.iter().all(|f| !f.path.is_empty()),
        "every file has a path"
    );
    let sum = info
        .files
        .iter()
        .map(|f| u128::from(f.length))
        .sum::<u128>();
    assert_eq!(
        u128::from(info.total_size),
        sum,
        "total size is the sum of the lengths"
    );
    // The `.torrent` written around it is one dictionary whose `info` is the input, byte for
    // byte.
    let file = torrent_file(data);
    let limits = DecodeLimits::new(MAX_DEPTH + 1, file.len(), file.len());
    let value = bencode::decode(&file, &limits).expect("the .torrent decodes");
    let inner = value.as_dict().and_then(|d| d.get_raw(b"info"));
    assert_eq!(
        inner,
        Some(data),
        "the .torrent holds the dictionary byte for byte"
    );
}
