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
//!
//! A lookup ends once its k closest candidates that did not fail have answered; candidates
//! past their short timeout do not hold it up. Such a straggler closer than the k-th responder
//! is a live node more often than not (a slow link), and leaving it out would read the
//! network as smaller than it is (by about the share of slow round trips: 4–10 % in the
//! simulator). So a lookup with stragglers among its closest nodes is recorded only once each
//! straggler has answered (it counts) or timed out (it does not): see
//! [`SizeEstimator::begin`] and [`SizeEstimator::resolve`].

use alloc::vec::Vec;

use crate::id::Id;

/// Lookups the estimate is computed from (the most recent ones).
pub const WINDOW: usize = 16;

/// Closest nodes used per lookup, at most (BEP 5's k).
pub const MAX_RANK: usize = 8;

/// Lookups waiting for their stragglers, at most; a lookup finishing beyond this is recorded
/// at once from its responders alone.
pub const MAX_PENDING: usize = 16;

/// Nodes a waiting lookup remembers: its [`MAX_RANK`] closest responders and the stragglers
/// among them.
const MAX_ENTRIES: usize = 2 * MAX_RANK;

/// What is known of one of a waiting lookup's closest nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    /// It answered.
    Answered,
    /// Its request is still open.
    Waiting,
    /// Its request failed.
    Gone,
}

/// A finished lookup whose sample waits for stragglers.
#[derive(Clone, Debug)]
struct Pending {
    tag: u32,
    target: Id,
    /// Nearest first.
    nodes: Vec<(Id, Seen)>,
}

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
    /// Finished lookups waiting for stragglers, at most [`MAX_PENDING`].
    pending: Vec<Pending>,
    /// Tag of the next waiting lookup.
    next_tag: u32,
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
            pending: Vec::new(),
            next_tag: 0,
        }
    }

    /// Starts recording a finished lookup of `target` from its closest candidates, nearest
    /// first, each with whether it answered (`true`) or its request is still open (`false`).
    /// Candidates are read up to the [`MAX_RANK`]-th that answered.
    ///
    /// Without open requests among them, the lookup is recorded at once and `None` returned.
    /// Otherwise it waits, and the returned tag names it in [`SizeEstimator::resolve`], which
    /// the caller must call for each open request when it ends (and it always ends: requests
    /// time out). With [`MAX_PENDING`] lookups already waiting, the lookup is recorded at once
    /// from the candidates that answered.
    pub fn begin(
        &mut self,
        target: &Id,
        closest: impl IntoIterator<Item = (Id, bool)>,
    ) -> Option<u32> {
        let mut nodes = Vec::new();
        let mut answered = 0;
        for (id, ok) in closest {
            if answered >= MAX_RANK || nodes.len() >= MAX_ENTRIES {
                break;
            }
            answered += usize::from(ok);
            nodes.push((id, if ok { Seen::Answered } else { Seen::Waiting }));
        }
        let waiting = nodes.iter().any(|n| n.1 == Seen::Waiting);
        if !waiting || self.pending.len() >= MAX_PENDING {
            self.record(target, &nodes);
            return None;
        }
        let tag = self.next_tag;
        self.next_tag = self.next_tag.wrapping_add(1);
        self.pending.push(Pending {
            tag,
            target: *target,
            nodes,
        });
        Some(tag)
    }

    /// The open request to `id` of the waiting lookup `tag` ended: answered (`alive`) or
    /// failed. Once none of its requests is open, the lookup is recorded. Unknown tags and ids
    /// are ignored.
    pub fn resolve(&mut self, tag: u32, id: &Id, alive: bool) {
        let Some(i) = self.pending.iter().position(|p| p.tag == tag) else {
            return;
        };
        let Some(p) = self.pending.get_mut(i) else {
            return;
        };
        for n in p
            .nodes
            .iter_mut()
            .filter(|n| n.0 == *id && n.1 == Seen::Waiting)
        {
            n.1 = if alive { Seen::Answered } else { Seen::Gone };
        }
        if p.nodes.iter().all(|n| n.1 != Seen::Waiting) {
            let p = self.pending.swap_remove(i);
            self.record(&p.target, &p.nodes);
        }
    }

    /// Lookups waiting for stragglers.
    pub fn waiting(&self) -> usize {
        self.pending.len()
    }

    fn record(&mut self, target: &Id, nodes: &[(Id, Seen)]) {
        let live = nodes.iter().filter(|n| n.1 == Seen::Answered);
        self.add_lookup(target, live.map(|n| n.0));
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

/// A finished lookup's closest candidates that answered (`true`) or are still being waited
/// for past their release time or short timeout (`false`), nearest first, for [`SizeEstimator::begin`]: the
/// closest live nodes to its target unless the lookup missed some (in a network smaller than
/// k, every live node it found). (The unqueried candidates beyond them are not used: what the
/// closest nodes report of their neighbourhood is incomplete, and the gaps bias the estimate
/// low.)
pub(crate) fn closest_seen(l: &crate::lookup::Lookup) -> Vec<(Id, bool)> {
    let mut out = Vec::new();
    let mut answered = 0;
    for c in l.answered_or_slow() {
        if answered >= MAX_RANK || out.len() >= MAX_ENTRIES {
            break;
        }
        answered += usize::from(c.answered());
        out.push((c.id, c.answered()));
    }
    out
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

    /// A lookup with stragglers among its closest nodes is recorded once they are resolved:
    /// those that answered count, those that failed do not; candidates past the
    /// [`MAX_RANK`]-th responder are not waited for.
    #[test]
    fn stragglers_are_waited_for() {
        let mut rng = Rng(7);
        let network: Vec<Id> = (0..5_000).map(|_| rng.id()).collect();
        let target = rng.id();
        let near = closest(&network, &target, 12);
        // Ranks 1 and 4 are late; rank 10 (beyond the eighth responder) too.
        let late = |i: usize| matches!(i, 1 | 4 | 10);
        let seen: Vec<(Id, bool)> = near
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, !late(i)))
            .collect();
        let mut e = SizeEstimator::new();
        let tag = e.begin(&target, seen.iter().copied()).unwrap();
        assert_eq!((e.lookups(), e.waiting()), (0, 1));
        e.resolve(tag, &near[1], true);
        e.resolve(tag + 1, &near[4], true);
        e.resolve(tag, &near[0], false);
        assert_eq!(
            e.lookups(),
            0,
            "an unknown tag or a node not waited for changes nothing"
        );
        e.resolve(tag, &near[4], false);
        assert_eq!((e.lookups(), e.waiting()), (1, 0));
        // Ranks 0..=3 and 5..=8 are the eight live closest.
        let mut want = SizeEstimator::new();
        want.add_lookup(
            &target,
            near.iter()
                .enumerate()
                .filter(|(i, _)| *i != 4)
                .map(|x| *x.1),
        );
        assert_eq!(e.estimate(), want.estimate());
        // Without stragglers, a lookup is recorded at once.
        let all: Vec<(Id, bool)> = near.iter().map(|id| (*id, true)).collect();
        assert_eq!(e.begin(&target, all), None);
        assert_eq!(e.lookups(), 2);
    }

    /// At most [`MAX_PENDING`] lookups wait; the next one is recorded at once from its
    /// responders.
    #[test]
    fn waiting_lookups_are_capped() {
        let mut rng = Rng(9);
        let network: Vec<Id> = (0..2_000).map(|_| rng.id()).collect();
        let mut e = SizeEstimator::new();
        let mut tags = Vec::new();
        for _ in 0..MAX_PENDING {
            let target = rng.id();
            let near = closest(&network, &target, 9);
            let seen = near.iter().enumerate().map(|(i, id)| (*id, i != 0));
            tags.push((e.begin(&target, seen).unwrap(), near[0]));
        }
        assert_eq!((e.waiting(), e.lookups()), (MAX_PENDING, 0));
        let target = rng.id();
        let near = closest(&network, &target, 9);
        let seen: Vec<(Id, bool)> = near
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, i != 0))
            .collect();
        assert_eq!(e.begin(&target, seen), None);
        assert_eq!((e.waiting(), e.lookups()), (MAX_PENDING, 1));
        let mut alone = SizeEstimator::new();
        alone.add_lookup(&target, near[1..].iter().copied());
        assert_eq!(e.estimate(), alone.estimate());
        for (tag, id) in tags {
            e.resolve(tag, &id, true);
        }
        assert_eq!(e.waiting(), 0);
        assert_eq!(e.lookups(), (MAX_PENDING + 1).min(WINDOW));
    }

    #[test]
    fn square_root() {
        for x in [0.0, 1e-12, 0.25, 2.0, 128.0, 1e12] {
            let r = sqrt(x);
            assert!((r * r - x).abs() <= 1e-9 * x.max(1e-12), "{x}: {r}");
        }
    }
}
