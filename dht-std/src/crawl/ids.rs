//! The crawler's ids: spread over the key space or a shard, kept across runs.

use dht_proto::Id;
use rand_core::RngCore;

use super::{DEFAULT_IDS, MAX_IDS};
use crate::store::Shard;

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
        let mut rng = SeedRng::new(seed);
        let fresh = shard_ids(want, shard, &mut rng);
        ids.extend(fresh.into_iter().skip(ids.len()));
    }
    ids
}

/// Random bits for fresh ids from the caller's seed (splitmix64 over the seed's words: ids need
/// to be spread and unpredictable to others, which the seed already is).
#[derive(Debug)]
struct SeedRng(u64);

impl SeedRng {
    fn new(seed: [u8; 32]) -> Self {
        let mut x = 0u64;
        for chunk in seed.chunks(8) {
            let mut w = [0; 8];
            w.get_mut(..chunk.len())
                .unwrap_or_default()
                .copy_from_slice(chunk);
            x = x.rotate_left(17) ^ u64::from_le_bytes(w);
        }
        Self(x)
    }
}

impl RngCore for SeedRng {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(bytes.get(..chunk.len()).unwrap_or_default());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_ids_stay_in_their_shard_and_spread() {
        let mut rng = SeedRng::new([1; 32]);
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
