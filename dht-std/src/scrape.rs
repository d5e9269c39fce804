//! BEP 33 scrapes: how many seeds and downloaders a torrent has, estimated from the bloom
//! filters (`BFsd`, `BFpe`) of the nodes closest to its info-hash.
//!
//! A scrape is a `get_peers` lookup to find the closest nodes, then a `get_peers` with
//! `scrape=1` to each of them; their filters are merged (bitwise OR: a peer stored on several
//! nodes counts once) and the merged filters give the estimates.

pub use dht_proto::Bloom;
use dht_proto::Id;
use dht_proto::wire::bencode::{self, DecodeLimits, Value};

/// How many of the closest nodes a scrape asks (BEP 5's k).
pub const SCRAPE_NODES: usize = 8;

/// The result of a scrape ([`DhtHandle::scrape`](crate::DhtHandle::scrape)).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Scrape {
    /// The torrent.
    pub info_hash: Id,
    /// Estimated seeds (from the merged `BFsd`).
    pub seeds: f64,
    /// Estimated downloaders (from the merged `BFpe`).
    pub peers: f64,
    /// Nodes that answered with filters.
    pub responders: usize,
    /// Nodes asked.
    pub asked: usize,
    /// The merged seed filter.
    pub bf_seeds: Bloom,
    /// The merged downloader filter.
    pub bf_peers: Bloom,
}

impl Scrape {
    /// An empty scrape of `info_hash`, to [`merge`](Scrape::merge) answers into.
    pub fn new(info_hash: Id) -> Self {
        Self {
            info_hash,
            ..Self::default()
        }
    }

    /// Merges one node's answer: the raw bencoded `r` dictionary of its `get_peers` reply.
    /// Returns whether it held both filters.
    pub fn merge(&mut self, response: &[u8]) -> bool {
        let Some((seeds, peers)) = filters(response) else {
            return false;
        };
        self.bf_seeds.union_with(&seeds);
        self.bf_peers.union_with(&peers);
        self.responders += 1;
        self.seeds = self.bf_seeds.estimate();
        self.peers = self.bf_peers.estimate();
        true
    }
}

/// The arguments of a scraping `get_peers` (the node adds its `id`).
pub fn scrape_args(info_hash: &Id) -> Vec<u8> {
    let mut out = b"d9:info_hash20:".to_vec();
    out.extend_from_slice(info_hash.as_bytes());
    out.extend_from_slice(b"6:scrapei1ee");
    out
}

/// `BFsd` and `BFpe` of a raw `r` dictionary, when both are there and 256 bytes long.
fn filters(response: &[u8]) -> Option<(Bloom, Bloom)> {
    let Ok(Value::Dict(r)) = bencode::decode(response, &DecodeLimits::default()) else {
        return None;
    };
    let get = |key: &[u8]| match r.get(key) {
        Some(Value::Bytes(b)) => Bloom::from_slice(b),
        _ => None,
    };
    Some((get(b"BFsd")?, get(b"BFpe")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(seeds: &Bloom, peers: &Bloom) -> Vec<u8> {
        let mut r = b"d4:BFpe256:".to_vec();
        r.extend_from_slice(peers.as_bytes());
        r.extend_from_slice(b"4:BFsd256:");
        r.extend_from_slice(seeds.as_bytes());
        r.extend_from_slice(b"2:id20:aaaaaaaaaaaaaaaaaaaae");
        r
    }

    /// A filter with the first `bits` bits set.
    fn filled(bits: usize) -> Bloom {
        let mut b = [0; 256];
        for i in 0..bits {
            b[i / 8] |= 1 << (i % 8);
        }
        Bloom::from_bytes(b)
    }

    #[test]
    fn merged_filters_count_shared_bits_once() {
        let (s1, p1, s2) = (filled(40), filled(20), filled(40));
        let mut scrape = Scrape::new(Id::ZERO);
        assert!(scrape.merge(&reply(&s1, &p1)));
        assert!(scrape.merge(&reply(&s2, &Bloom::default())));
        assert!(!scrape.merge(b"d2:id20:aaaaaaaaaaaaaaaaaaaae"));
        assert_eq!(scrape.responders, 2);
        assert_eq!(scrape.bf_seeds, filled(40));
        // 40 of 2048 bits: about 20 addresses; 20 bits: about 10.
        assert!((scrape.seeds - 20.2).abs() < 0.2, "{}", scrape.seeds);
        assert!((scrape.peers - 10.0).abs() < 0.2, "{}", scrape.peers);
    }

    #[test]
    fn args_are_canonical_bencode() {
        let args = scrape_args(&Id::new([7; 20]));
        assert!(matches!(
            bencode::decode(&args, &DecodeLimits::default()),
            Ok(Value::Dict(_))
        ));
    }
}
