//! The node's seed from the operating system.

use core::hash::{BuildHasher, Hasher};
use std::collections::hash_map::RandomState;
use std::io::Read;

/// 32 random bytes for [`Config::seed`](dht_proto::Config::seed).
///
/// Reads `/dev/urandom`; where that is missing (not a Unix system, a sandbox), mixes the clock,
/// the process id and std's randomly keyed [`RandomState`] (itself seeded by the OS) instead.
pub fn os_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    let from_urandom = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .is_ok();
    if !from_urandom || seed == [0; 32] {
        seed = fallback_seed();
    }
    seed
}

fn fallback_seed() -> [u8; 32] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut seed = [0u8; 32];
    for (i, chunk) in seed.chunks_mut(8).enumerate() {
        // A fresh RandomState per chunk: each gets new keys from the OS-seeded generator.
        let mut h = RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u32(std::process::id());
        h.write_usize(i);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    seed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_differ() {
        assert_ne!(os_seed(), os_seed());
        assert_ne!(fallback_seed(), fallback_seed());
        assert_ne!(os_seed(), [0; 32]);
    }
}
