//! [`TestRng`]: the one small deterministic generator of the crate's tests, benchmarks and
//! examples. Never the node's (that is the keyed generator of `rng.rs`): SplitMix64 is fast and
//! well mixed, and anyone can predict it.

use rand_core::RngCore;

use crate::id::Id;
use crate::rng::{fill_by_words, splitmix64};

/// SplitMix64 (Steele, Lea and Flood): a 64-bit counter through a strong mixer.
#[derive(Clone, Debug)]
pub struct TestRng(pub u64);

impl TestRng {
    /// A number in `0..n` (slightly biased for huge `n`: fine for tests); 0 when `n` is 0.
    pub fn below(&mut self, n: usize) -> usize {
        match u64::try_from(n) {
            Ok(0) | Err(_) => 0,
            Ok(n) => usize::try_from(self.next_u64() % n).unwrap_or(0),
        }
    }

    /// A random id.
    pub fn id(&mut self) -> Id {
        let mut bytes = [0u8; 20];
        self.fill_bytes(&mut bytes);
        Id::new(bytes)
    }
}

impl RngCore for TestRng {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        splitmix64(&mut self.0)
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        fill_by_words(dst, || splitmix64(&mut self.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_reference_values() {
        // The first outputs for seed 0 in the reference implementation.
        let mut r = TestRng(0);
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(r.below(0), 0);
        assert!(r.below(7) < 7);
    }
}
