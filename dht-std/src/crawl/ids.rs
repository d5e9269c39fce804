//! The crawler's ids: spread over the key space or a shard, kept across runs.

use dht_proto::{Id, SeededRng};
use rand_core::RngCore;

use super::{DEFAULT_IDS, MAX_IDS};
use crate::store::Shard;

/// The stream of the caller's seed that fresh ids come from: the crawler's nodes draw their
/// seeds from stream 0 of the same seed ([`SeededRng::new`]) and ids are public, so they must
/// come from another one.
const IDS_STREAM: u8 = 1;

/// `n` ids spread evenly over `shard`'s slice of the key space (the first 32 bits), the other
/// bits random.
pub fn shard_ids(n: usize, shard: Shard, rng: &mut impl RngCore) -> Vec<Id> {
    let n32 = u32::try_from(n).unwrap_or(u32::MAX);
    let whole = dht_proto::crawl::spread_ids(n32, rng);
    let start = (u64::from(shard.index()) << 32) / u64::from(shard.count());
    let end = (u64::from(shard.index() + 1) << 32) / u64::from(shard.count());
    whole
        .into_iter()
        .map(|id| {
            let mut bytes = id.to_bytes();
            let [a, b, c, d, ..] = bytes;
            let prefix = u64::from(u32::from_be_bytes([a, b, c, d]));
            let scaled = start + ((prefix * (end - start)) >> 32);
            let p = u32::try_from(scaled).unwrap_or(u32::MAX).to_be_bytes();
            for (byte, p) in bytes.iter_mut().zip(p) {
                *byte = p;
            }
            Id::new(bytes)
        })
        .collect()
}

/// The ids to run: the saved ones (those in the shard, up to `want`), completed with fresh ones
/// spread over the shard.
pub(super) fn choose_ids(
    saved: &[Id],
    want: Option<usize>,
    shard: Shard,
    seed: [u8; 32],
) -> Vec<Id> {
    let mut ids: Vec<Id> = saved
        .iter()
        .copied()
        .filter(|id| shard.contains(id))
        .collect();
    let want = want
        .unwrap_or(if ids.is_empty() {
            DEFAULT_IDS
        } else {
            ids.len()
        })
        .clamp(1, MAX_IDS);
    ids.truncate(want);
    if ids.len() < want {
        let mut rng = SeededRng::with_stream(seed, IDS_STREAM);
        let fresh = shard_ids(want, shard, &mut rng);
        ids.extend(fresh.into_iter().skip(ids.len()));
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_ids_stay_in_their_shard_and_spread() {
        let mut rng = SeededRng::new([1; 32]);
        for (i, n) in [(0, 1), (1, 3), (3, 4)] {
            let shard = Shard::new(i, n).unwrap();
            let ids = shard_ids(16, shard, &mut rng);
            assert_eq!(ids.len(), 16);
            assert!(ids.iter().all(|id| shard.contains(id)), "{shard}");
            let mut sorted = ids.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), 16);
        }
    }

    #[test]
    fn fresh_ids_tell_nothing_of_the_crawler_stream() {
        // The crawler draws its nodes' seeds from `SeededRng::new(seed)`, and ids are public: no
        // id may carry bytes of that stream.
        let seed = [5; 32];
        let ids = choose_ids(&[], Some(8), Shard::ALL, seed);
        let mut stream = [0u8; 8 * 20];
        SeededRng::new(seed).fill_bytes(&mut stream);
        for id in &ids {
            // Bytes 4.. are random (the first 4 place the id in the key space).
            let tail = &id.to_bytes()[4..];
            assert!(!stream.windows(tail.len()).any(|w| w == tail), "{id}");
        }
    }

    #[test]
    fn saved_ids_are_kept_and_completed() {
        let shard = Shard::ALL;
        let fresh = choose_ids(&[], Some(4), shard, [2; 32]);
        assert_eq!(fresh.len(), 4);
        assert_eq!(choose_ids(&fresh, None, shard, [3; 32]), fresh);
        assert_eq!(choose_ids(&fresh, Some(2), shard, [3; 32]), fresh[..2]);
        let more = choose_ids(&fresh, Some(6), shard, [3; 32]);
        assert_eq!(more[..4], fresh[..]);
        assert_eq!(more.len(), 6);
        // Ids outside a new shard are replaced.
        let half = Shard::new(1, 2).unwrap();
        let moved = choose_ids(&fresh, None, half, [3; 32]);
        assert!(moved.iter().all(|id| half.contains(id)));
        assert!(!moved.is_empty());
    }
}
