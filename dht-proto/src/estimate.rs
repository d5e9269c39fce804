//! How many nodes the DHT has, estimated from the lookups a node runs anyway.
//!
//! Node ids are uniform over the 160-bit space, so around any target the ids form (nearly) a
//! Poisson process of intensity N, the network size, on distances normalised to `[0, 1)`. After
//! a lookup converges, the node knows the `m` live nodes closest to its target; the distance
//! `d` of the `m`-th one is then Gamma(`m`, N)-distributed. Over `L` lookups the sums
//! `M = Σ m` and `D = Σ d` are sufficient, and `(M − 1) / D` is the unbiased estimate of N, with
//! a relative standard deviation of about `1 / √M` (the window of 16 lookups of 8 nodes: 9 %). This is the
//! maximum-likelihood version of the closest-set estimators of mldht and of pubky/mainline
//! (which fit `i / d_i` by least squares).
//!
//! The estimator keeps the last [`WINDOW`] lookups, so it follows a network that grows or
//! shrinks, in constant memory.

use crate::id::Id;

/// Lookups the estimate is computed from (the most recent ones).
pub const WINDOW: usize = 16;

/// Closest nodes used per lookup, at most (BEP 5's k).
pub const MAX_RANK: usize = 8;

/// The network size as a [`SizeEstimator`] sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct SizeEstimate {
    /// Estimated number of nodes.
    pub nodes: u64,
    /// Relative standard error of `nodes` (0.06 = ±6 %), from the number of samples.
    pub relative_error: f64,
    /// Lookups the estimate rests on.
    pub lookups: usize,
}

/// Running estimate of the network size from converged lookups (see the [module](self) docs).
#[derive(Clone, Debug)]
pub struct SizeEstimator {
    /// (m, d) of the last lookups, oldest first; a ring of `WINDOW` entries.
    samples: [(u32, f64); WINDOW],
    /// Entries in use.
    len: usize,
    /// Where the next one goes.
    next: usize,
}

impl Default for SizeEstimator {
    fn default() -> Self {
        Self::new()
    }
}

impl SizeEstimator {
    /// An estimator with no lookup yet.
    pub const fn new() -> Self {
        Self {
            samples: [(0, 0.0); WINDOW],
            len: 0,
            next: 0,
        }
    }

    /// Records a converged lookup of `target` whose live nodes, nearest first, are `closest`
    /// (only the first [`MAX_RANK`] are used). Lookups that found nobody, or whose farthest
    /// used node sits at distance zero, are ignored.
    pub fn add_lookup(&mut self, target: &Id, closest: impl IntoIterator<Item = Id>) {
        let mut m = 0u32;
        let mut farthest = None;
        for id in closest.into_iter().take(MAX_RANK) {
            m += 1;
            farthest = Some(id);
        }
        let Some(far) = farthest else {
            return;
        };
        let d = normalised_distance(target, &far);
        if d <= 0.0 {
            return;
        }
        if let Some(slot) = self.samples.get_mut(self.next) {
            *slot = (m, d);
        }
        self.next = (self.next + 1) % WINDOW;
        self.len = (self.len + 1).min(WINDOW);
    }

    /// Lookups recorded (at most [`WINDOW`]).
    pub fn lookups(&self) -> usize {
        self.len
    }

    /// The current estimate, once a lookup with at least two nodes was recorded.
    pub fn estimate(&self) -> Option<SizeEstimate> {
        let used = self.samples.get(..self.len)?;
        let (m, d) = used
            .iter()
            .fold((0u64, 0.0f64), |(m, d), s| (m + u64::from(s.0), d + s.1));
        if m < 2 || d <= 0.0 {
            return None;
        }
        let n = (m - 1) as f64 / d;
        Some(SizeEstimate {
            nodes: if n >= u64::MAX as f64 {
                u64::MAX
            } else {
                n as u64
            },
            relative_error: 1.0 / sqrt(m as f64),
            lookups: self.len,
        })
    }
}

/// The ids of a finished lookup's closest responders, nearest first: the nodes it queried
/// last, which are the closest live nodes to its target unless the lookup missed some (in a
/// network smaller than k, every live node it found). (The
/// unqueried candidates beyond them are not used: what the closest nodes report of their
/// neighbourhood is incomplete, and the gaps bias the estimate low.)
pub(crate) fn live_closest(l: &crate::lookup::Lookup) -> impl Iterator<Item = Id> + '_ {
    l.responded(MAX_RANK).map(|c| c.id)
}

/// XOR distance of `a` and `b` as a fraction of the id space (the top 64 bits suffice: a
/// network of a billion nodes puts the closest at around 2^-30).
fn normalised_distance(a: &Id, b: &Id) -> f64 {
    let d = a.distance(b);
    let bytes = d.as_bytes();
    let mut top = [0u8; 8];
    if let Some(src) = bytes.get(..8) {
        top.copy_from_slice(src);
    }
    u64::from_be_bytes(top) as f64 / 18_446_744_073_709_551_616.0
}

/// Square root by Newton's method (`core` has no `f64::sqrt` without `std`).
fn sqrt(x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    let mut r = if x > 1.0 { x / 2.0 } else { 1.0 };
    for _ in 0..64 {
        let next = 0.5 * (r + x / r);
        if (next - r).abs() <= f64::EPSILON * r {
            return next;
        }
        r = next;
    }
    r
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::*;

    /// A small deterministic generator (xorshift64*) for test ids.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn id(&mut self) -> Id {
            let mut b = [0u8; 20];
            for chunk in b.chunks_mut(8) {
                let v = self.next().to_be_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
            Id::new(b)
        }
    }

    /// The `m` ids of `network` closest to `target`, nearest first.
    fn closest(network: &[Id], target: &Id, m: usize) -> Vec<Id> {
        let mut v: Vec<Id> = network.to_vec();
        v.sort_by_key(|id| id.distance(target));
        v.truncate(m);
        v
    }

    #[test]
    fn nothing_before_a_lookup() {
        let mut e = SizeEstimator::new();
        assert_eq!(e.estimate(), None);
        e.add_lookup(&Id::ZERO, []);
        assert_eq!(e.estimate(), None);
        // A node at distance zero (the target itself) carries no scale.
        e.add_lookup(&Id::ZERO, [Id::ZERO]);
        assert_eq!(e.lookups(), 0);
    }

    /// On perfect closest sets of uniform ids, 16 lookups land within the standard error
    /// (about 6 %) of the size, for several sizes and seeds, and the window caps the memory.
    #[test]
    fn perfect_lookups_estimate_the_size() {
        for (seed, n) in [(1u64, 2_000usize), (2, 20_000), (3, 50_000)] {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let network: Vec<Id> = (0..n).map(|_| rng.id()).collect();
            let mut e = SizeEstimator::new();
            for _ in 0..16 {
                let target = rng.id();
                e.add_lookup(&target, closest(&network, &target, MAX_RANK + 4));
            }
            let est = e.estimate().unwrap();
            assert_eq!(est.lookups, 16);
            assert!((est.relative_error - 1.0 / sqrt(128.0)).abs() < 1e-9);
            let err = (est.nodes as f64 - n as f64) / n as f64;
            assert!(
                err.abs() < 0.15,
                "n {n}: estimate {} ({err:+.3})",
                est.nodes
            );
            for _ in 0..WINDOW {
                let target = rng.id();
                e.add_lookup(&target, closest(&network, &target, 4));
            }
            assert_eq!(e.lookups(), WINDOW);
            // Only the last WINDOW lookups (of 4 nodes each) count.
            assert!((e.estimate().unwrap().relative_error - 1.0 / sqrt(64.0)).abs() < 1e-9);
        }
    }

    #[test]
    fn square_root() {
        for x in [0.0, 1e-12, 0.25, 2.0, 128.0, 1e12] {
            let r = sqrt(x);
            assert!((r * r - x).abs() <= 1e-9 * x.max(1e-12), "{x}: {r}");
        }
    }
}
