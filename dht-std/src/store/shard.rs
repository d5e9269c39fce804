//! [`Shard`]: one of N contiguous slices of the info-hash key space.

use core::fmt;
use core::str::FromStr;

use dht_proto::Id;

/// Slice `index` of `count` equal, contiguous slices of the key space (by the first 32 bits of
/// the info-hash), written `I/N` with `0 ≤ I < N`. Crawlers sharing a database each take one
/// shard, so they neither claim nor chase the same info-hashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    /// The whole key space (`0/1`).
    pub const ALL: Self = Self { index: 0, count: 1 };

    /// Slice `index` of `count`, or `None` unless `index < count`.
    pub const fn new(index: u32, count: u32) -> Option<Self> {
        if index < count {
            Some(Self { index, count })
        } else {
            None
        }
    }

    /// The slice's index.
    pub const fn index(self) -> u32 {
        self.index
    }

    /// How many slices there are.
    pub const fn count(self) -> u32 {
        self.count
    }

    /// The first 32-bit prefix of slice `i` (`2^32` for `i == count`).
    fn start(self, i: u32) -> u64 {
        (u64::from(i) << 32) / u64::from(self.count)
    }

    /// Whether `info_hash` falls in this slice.
    pub fn contains(self, info_hash: &Id) -> bool {
        let [a, b, c, d, ..] = *info_hash.as_bytes();
        let prefix = u64::from(u32::from_be_bytes([a, b, c, d]));
        self.start(self.index) <= prefix && prefix < self.start(self.index + 1)
    }

    /// The slice as a byte range of info-hashes: from the first bound (inclusive) to the second
    /// (exclusive; `None` for the end of the key space). Info-hashes compare as byte strings, as
    /// SQLite blobs and PostgreSQL `bytea` do.
    pub fn bounds(self) -> ([u8; 20], Option<[u8; 20]>) {
        let bound = |prefix: u64| {
            let mut b = [0; 20];
            let p = u32::try_from(prefix).unwrap_or(u32::MAX).to_be_bytes();
            b[..4].copy_from_slice(&p);
            b
        };
        let end = self.start(self.index + 1);
        let upper = (end < 1 << 32).then(|| bound(end));
        (bound(self.start(self.index)), upper)
    }
}

impl Default for Shard {
    fn default() -> Self {
        Self::ALL
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// A shard that is not `I/N` with `0 ≤ I < N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseShardError;

impl fmt::Display for ParseShardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected I/N with 0 <= I < N, e.g. 0/2 and 1/2")
    }
}

impl core::error::Error for ParseShardError {}

impl FromStr for Shard {
    type Err = ParseShardError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (i, n) = s.trim().split_once('/').ok_or(ParseShardError)?;
        let i = i.trim().parse().map_err(|_| ParseShardError)?;
        let n = n.trim().parse().map_err(|_| ParseShardError)?;
        Self::new(i, n).ok_or(ParseShardError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_i_of_n() {
        assert_eq!("1/3".parse(), Ok(Shard::new(1, 3).unwrap()));
        assert_eq!(" 0 / 1 ".parse(), Ok(Shard::ALL));
        for bad in ["3/3", "1/0", "1", "-1/2", "a/b", "1/2/3", ""] {
            assert_eq!(bad.parse::<Shard>(), Err(ParseShardError), "{bad}");
        }
        assert_eq!(Shard::new(2, 5).unwrap().to_string(), "2/5");
    }

    #[test]
    fn the_whole_space_is_one_shard() {
        assert_eq!(Shard::ALL.bounds(), ([0; 20], None));
        assert!(Shard::ALL.contains(&Id::MAX));
        assert!(Shard::ALL.contains(&Id::ZERO));
    }

    #[test]
    fn halves() {
        let (lo, hi) = Shard::new(0, 2).unwrap().bounds();
        assert_eq!(lo, [0; 20]);
        let mut mid = [0; 20];
        mid[0] = 0x80;
        assert_eq!(hi, Some(mid));
        assert_eq!(Shard::new(1, 2).unwrap().bounds(), (mid, None));
        assert!(Shard::new(1, 2).unwrap().contains(&Id::new(mid)));
        assert!(!Shard::new(0, 2).unwrap().contains(&Id::new(mid)));
    }

    proptest! {
        /// Every info-hash is in exactly one shard, and in its byte range.
        #[test]
        fn shards_partition_the_key_space(bytes in any::<[u8; 20]>(), n in 1u32..=64) {
            let id = Id::new(bytes);
            let owners: Vec<u32> = (0..n)
                .filter(|&i| Shard::new(i, n).unwrap().contains(&id))
                .collect();
            prop_assert_eq!(owners.len(), 1);
            let (lo, hi) = Shard::new(owners[0], n).unwrap().bounds();
            prop_assert!(lo <= bytes);
            prop_assert!(hi.is_none_or(|hi| bytes < hi));
        }
    }
}
