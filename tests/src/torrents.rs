//! Generated torrents: info dictionaries whose names, files and sizes are a pure function of a
//! seed and an index, for the metadata [`seeder`](crate::seeder), the crawler's benchmark and
//! its end-to-end tests.
//!
//! About a third are single-file torrents; the others hold two to six files, some in
//! subdirectories. Sizes range from a few KiB to a few GiB, and the piece length grows with the
//! size so that no info dictionary holds more than 256 piece hashes (at most ~5 KiB: one or two
//! `ut_metadata` pieces).

use dht_proto::Id;

use crate::rng::SimRng;

/// Most piece hashes in one generated info dictionary.
const MAX_PIECES: u64 = 256;

const WORDS: &[&str] = &[
    "aurora", "basalt", "cobalt", "delta", "ember", "fjord", "glacier", "harbor", "indigo",
    "juniper", "kelvin", "lagoon", "meadow", "nebula", "orchid", "prairie", "quartz", "river",
    "sierra", "tundra", "umber", "valley", "willow", "xenon", "yarrow", "zephyr",
];
const EXTENSIONS: &[&str] = &["mkv", "flac", "iso", "pdf", "txt", "zip", "epub", "png"];

/// One generated torrent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Torrent {
    /// SHA-1 of [`info`](Self::info).
    pub info_hash: Id,
    /// The `name` key.
    pub name: String,
    /// The files: path components (below the torrent's directory, or just the name for a
    /// single-file torrent) and length, in the dictionary's order.
    pub files: Vec<(Vec<String>, u64)>,
    /// The sum of the file lengths.
    pub total_size: u64,
    /// The bencoded info dictionary.
    pub info: Vec<u8>,
}

impl Torrent {
    /// The torrent number `index` of the set generated from `seed`: the same arguments always
    /// give the same torrent, different indexes different info-hashes.
    pub fn generate(seed: u64, index: u64) -> Self {
        let mut rng = SimRng::new(seed).fork(index);
        let word = |rng: &mut SimRng| WORDS[rng.index(WORDS.len())];
        let ext = |rng: &mut SimRng| EXTENSIONS[rng.index(EXTENSIONS.len())];
        // The index in the name keeps every info-hash distinct.
        let base = format!("{}-{}-{index}", word(&mut rng), word(&mut rng));
        let size = |rng: &mut SimRng| {
            // Log-uniform between 4 KiB and 4 GiB.
            let bits = 12 + rng.below(20);
            (1u64 << bits) + rng.below(1u64 << bits)
        };
        let (name, files) = if rng.below(3) == 0 {
            let name = format!("{base}.{}", ext(&mut rng));
            let len = size(&mut rng);
            (name.clone(), vec![(vec![name], len)])
        } else {
            let count = 2 + rng.below(5);
            let files = (0..count)
                .map(|i| {
                    let mut path = Vec::new();
                    if rng.below(3) == 0 {
                        path.push(word(&mut rng).to_owned());
                    }
                    path.push(format!("{:02}-{}.{}", i + 1, word(&mut rng), ext(&mut rng)));
                    (path, size(&mut rng))
                })
                .collect();
            (base, files)
        };
        let total_size: u64 = files.iter().map(|(_, len)| len).sum();
        let mut piece_length: u64 = 16 * 1024;
        while total_size.div_ceil(piece_length) > MAX_PIECES {
            piece_length *= 2;
        }
        let pieces = total_size.div_ceil(piece_length).max(1);
        let mut hashes = Vec::with_capacity(usize::try_from(pieces * 20).unwrap_or(0));
        while (hashes.len() as u64) < pieces * 20 {
            hashes.extend_from_slice(&rng.next_u64().to_be_bytes());
        }
        hashes.truncate(usize::try_from(pieces * 20).unwrap_or(0));
        let info = encode_info(&name, &files, piece_length, &hashes);
        Self {
            info_hash: info_hash(&info),
            name,
            files,
            total_size,
            info,
        }
    }

    /// `count` torrents: indexes `0..count` of the set from `seed`.
    pub fn set(seed: u64, count: usize) -> Vec<Self> {
        (0..count as u64).map(|i| Self::generate(seed, i)).collect()
    }

    /// Whether it is a single-file torrent (`length` rather than `files`).
    pub fn single_file(&self) -> bool {
        matches!(self.files.as_slice(), [(path, _)] if path.len() == 1 && path[0] == self.name)
    }
}

/// SHA-1 of an info dictionary.
pub fn info_hash(info: &[u8]) -> Id {
    Id::new(sha1_smol::Sha1::from(info).digest().bytes())
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(s.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(s);
}

fn put_int(out: &mut Vec<u8>, n: u64) {
    out.push(b'i');
    out.extend_from_slice(n.to_string().as_bytes());
    out.push(b'e');
}

/// Keys in sorted order, as bencode requires: `files`/`length`, `name`, `piece length`,
/// `pieces`.
fn encode_info(
    name: &str,
    files: &[(Vec<String>, u64)],
    piece_length: u64,
    hashes: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(hashes.len() + 256);
    out.push(b'd');
    match files {
        [(path, len)] if path.len() == 1 && path[0] == name => {
            put_str(&mut out, b"length");
            put_int(&mut out, *len);
        }
        _ => {
            put_str(&mut out, b"files");
            out.push(b'l');
            for (path, len) in files {
                out.push(b'd');
                put_str(&mut out, b"length");
                put_int(&mut out, *len);
                put_str(&mut out, b"path");
                out.push(b'l');
                for part in path {
                    put_str(&mut out, part.as_bytes());
                }
                out.extend_from_slice(b"ee");
            }
            out.push(b'e');
        }
    }
    put_str(&mut out, b"name");
    put_str(&mut out, name.as_bytes());
    put_str(&mut out, b"piece length");
    put_int(&mut out, piece_length);
    put_str(&mut out, b"pieces");
    put_str(&mut out, hashes);
    out.push(b'e');
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::bencode;

    #[test]
    fn generation_is_deterministic_and_seeded() {
        assert_eq!(Torrent::generate(7, 3), Torrent::generate(7, 3));
        assert_ne!(
            Torrent::generate(7, 3).info_hash,
            Torrent::generate(8, 3).info_hash
        );
        let set = Torrent::set(1, 500);
        let hashes: HashSet<Id> = set.iter().map(|t| t.info_hash).collect();
        assert_eq!(hashes.len(), 500);
        let single = set.iter().filter(|t| t.single_file()).count();
        assert!((100..300).contains(&single), "{single} single-file of 500");
    }

    #[test]
    fn info_dictionaries_are_valid_bencode_that_says_what_the_torrent_says() {
        for t in Torrent::set(42, 200) {
            assert!(t.info.len() < 6 * 1024, "{} bytes", t.info.len());
            assert_eq!(info_hash(&t.info), t.info_hash);
            let v = bencode::decode_all(&t.info).expect("valid bencode");
            assert_eq!(
                v.get(b"name").and_then(|n| n.bytes()),
                Some(t.name.as_bytes())
            );
            let piece_length = v.get(b"piece length").and_then(|p| p.int()).unwrap() as u64;
            let pieces = v.get(b"pieces").and_then(|p| p.bytes()).unwrap().len() as u64;
            assert_eq!(pieces, t.total_size.div_ceil(piece_length) * 20);
            let files: Vec<(Vec<String>, u64)> = match v.get(b"files") {
                None => vec![(
                    vec![t.name.clone()],
                    v.get(b"length").and_then(|l| l.int()).unwrap() as u64,
                )],
                Some(bencode::Value::List(list)) => list
                    .iter()
                    .map(|f| {
                        let Some(bencode::Value::List(path)) = f.get(b"path") else {
                            panic!("path")
                        };
                        let path = path
                            .iter()
                            .map(|p| String::from_utf8(p.bytes().unwrap().to_vec()).unwrap())
                            .collect();
                        (path, f.get(b"length").and_then(|l| l.int()).unwrap() as u64)
                    })
                    .collect(),
                Some(other) => panic!("files: {other:?}"),
            };
            assert_eq!(files, t.files);
            assert_eq!(files.iter().map(|f| f.1).sum::<u64>(), t.total_size);
        }
    }
}
