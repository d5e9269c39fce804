//! [`LatencyModel`]: a stable, heavy-tailed round-trip time for every pair of hosts.
//!
//! The RTT of a pair is a pure function of the model, the seed and the two host numbers, so it
//! needs no storage (100,000 hosts have 5·10⁹ pairs) and is the same for every packet of the
//! pair; only the jitter varies per packet. It is log-normal around `median_rtt` with three
//! independent factors, as measured internet latencies are:
//!
//! - one per host (its access link: fibre, DSL, mobile), `host_sigma`;
//! - one per path (distance, routing), `path_sigma`;
//! - for a `slow_share` of hosts, a Pareto-distributed multiplier (satellite, congested uplinks,
//!   bufferbloat) that makes the tail heavy rather than merely wide.
//!
//! The result is clamped to `[min_rtt, max_rtt]`.

use core::time::Duration;

use crate::rng::{SimRng, hash_words, normal_from, unit_f64};

/// How round-trip times between hosts are drawn.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyModel {
    /// The median RTT between two ordinary hosts.
    pub median_rtt: Duration,
    /// Standard deviation of the log of a host's factor.
    pub host_sigma: f64,
    /// Standard deviation of the log of a path's factor.
    pub path_sigma: f64,
    /// Share of hosts that are slow (multiplier drawn from a Pareto distribution).
    pub slow_share: f64,
    /// Pareto shape of the slow hosts' multiplier (smaller = heavier tail; 1.5 has mean 3).
    pub slow_alpha: f64,
    /// Smallest RTT.
    pub min_rtt: Duration,
    /// Largest RTT (before jitter).
    pub max_rtt: Duration,
    /// Per-packet jitter: the one-way delay is stretched by a uniform factor in
    /// `[1, 1 + jitter)`.
    pub jitter: f64,
}

impl Default for LatencyModel {
    /// Over random pairs: p10 ≈ 49 ms, median ≈ 104 ms, p90 ≈ 235 ms, p99 ≈ 635 ms,
    /// p99.9 ≈ 2.6 s, at most 3 s.
    fn default() -> Self {
        Self {
            median_rtt: Duration::from_millis(100),
            host_sigma: 0.35,
            path_sigma: 0.3,
            slow_share: 0.05,
            slow_alpha: 1.5,
            min_rtt: Duration::from_millis(4),
            max_rtt: Duration::from_secs(3),
            jitter: 0.1,
        }
    }
}

impl LatencyModel {
    /// Every packet takes exactly `rtt / 2`: no spread, no jitter (for hand-checked tests).
    pub fn constant(rtt: Duration) -> Self {
        Self {
            median_rtt: rtt,
            host_sigma: 0.0,
            path_sigma: 0.0,
            slow_share: 0.0,
            slow_alpha: 1.5,
            min_rtt: rtt,
            max_rtt: rtt,
            jitter: 0.0,
        }
    }

    /// The log-factor and Pareto multiplier of one host.
    fn host_factor(&self, seed: u64, host: u32) -> f64 {
        let h = u64::from(host);
        let z = normal_from(hash_words(&[seed, 1, h]), hash_words(&[seed, 2, h]));
        let mut f = (self.host_sigma * z).exp();
        if self.slow_share > 0.0 && unit_f64(hash_words(&[seed, 3, h])) < self.slow_share {
            let u = unit_f64(hash_words(&[seed, 4, h]));
            f *= (1.0 - u).max(1e-12).powf(-1.0 / self.slow_alpha.max(0.1));
        }
        f
    }

    /// The stable RTT between hosts `a` and `b` (symmetric) in microseconds.
    pub fn rtt_micros(&self, seed: u64, a: u32, b: u32) -> u64 {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let pair = (u64::from(lo) << 32) | u64::from(hi);
        let zp = normal_from(hash_words(&[seed, 5, pair]), hash_words(&[seed, 6, pair]));
        let factor =
            self.host_factor(seed, a) * self.host_factor(seed, b) * (self.path_sigma * zp).exp();
        let us = self.median_rtt.as_micros() as f64 * factor;
        let lo_us = self.min_rtt.as_micros() as f64;
        let hi_us = self.max_rtt.as_micros().max(self.min_rtt.as_micros()) as f64;
        us.clamp(lo_us, hi_us) as u64
    }

    /// The stable RTT between hosts `a` and `b`.
    pub fn rtt(&self, seed: u64, a: u32, b: u32) -> Duration {
        Duration::from_micros(self.rtt_micros(seed, a, b))
    }

    /// The delay of one packet from `a` to `b` in whole milliseconds (at least 1): half the RTT,
    /// stretched by jitter.
    pub fn one_way_millis(&self, seed: u64, a: u32, b: u32, rng: &mut SimRng) -> u64 {
        let half = self.rtt_micros(seed, a, b) as f64 / 2.0;
        let stretched = if self.jitter > 0.0 {
            half * (1.0 + self.jitter * rng.unit())
        } else {
            half
        };
        ((stretched / 1000.0).round() as u64).max(1)
    }

    /// The median RTT from `host` to `samples` random other hosts of `0..hosts`: the round
    /// trip its own access link allows, the unit of a lookup's time as seen from that host.
    pub fn host_median(&self, seed: u64, host: u32, hosts: u32, samples: usize) -> Duration {
        let mut rng = SimRng::new(hash_words(&[seed, 0x686f_7374, u64::from(host)]));
        let n = u64::from(hosts.max(2));
        let mut v: Vec<u64> = (0..samples.max(1))
            .map(|_| {
                let mut b = rng.below(n) as u32;
                if b == host {
                    b = (b + 1) % n as u32;
                }
                self.rtt_micros(seed, host, b)
            })
            .collect();
        v.sort_unstable();
        Duration::from_micros(v.get(v.len() / 2).copied().unwrap_or(0))
    }

    /// The median RTT over `samples` random pairs of hosts `0..hosts`: the unit in which the
    /// simulator reports lookup times.
    pub fn sampled_median(&self, seed: u64, hosts: u32, samples: usize) -> Duration {
        let mut rng = SimRng::new(hash_words(&[seed, 0x6d65_6469_616e]));
        let n = u64::from(hosts.max(2));
        let mut v: Vec<u64> = (0..samples.max(1))
            .map(|_| {
                let a = rng.below(n) as u32;
                let mut b = rng.below(n) as u32;
                if a == b {
                    b = (b + 1) % n as u32;
                }
                self.rtt_micros(seed, a, b)
            })
            .collect();
        v.sort_unstable();
        Duration::from_micros(v.get(v.len() / 2).copied().unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quantiles(m: &LatencyModel, seed: u64) -> (f64, f64, f64) {
        let mut rng = SimRng::new(11);
        let mut v: Vec<u64> = (0..50_000)
            .map(|_| {
                let a = rng.below(100_000) as u32;
                let b = rng.below(100_000) as u32;
                m.rtt_micros(seed, a, b)
            })
            .collect();
        v.sort_unstable();
        let q = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)] as f64 / 1000.0;
        (q(0.5), q(0.9), q(0.99))
    }

    #[test]
    fn rtt_is_stable_and_symmetric() {
        let m = LatencyModel::default();
        for (a, b) in [(0, 1), (7, 99_999), (123, 124)] {
            assert_eq!(m.rtt(1, a, b), m.rtt(1, b, a));
            assert_eq!(m.rtt(1, a, b), m.rtt(1, a, b));
        }
        // A different seed is a different network.
        let differ = (0..100)
            .filter(|&i| m.rtt(1, i, i + 1) != m.rtt(2, i, i + 1))
            .count();
        assert!(differ > 90);
    }

    #[test]
    fn default_has_a_100ms_median_and_a_long_tail() {
        let m = LatencyModel::default();
        let (p50, p90, p99) = quantiles(&m, 5);
        // Log-normal with total sigma sqrt(2·0.35² + 0.3²) ≈ 0.58 around 100 ms, nudged up by
        // the slow hosts: median within 100–115 ms, p90 ≈ 100·e^(1.28·0.58) ≈ 210 ms or more,
        // p99 well beyond 100·e^(2.33·0.58) ≈ 385 ms because of the Pareto hosts.
        assert!((95.0..=115.0).contains(&p50), "median {p50}");
        assert!((190.0..=300.0).contains(&p90), "p90 {p90}");
        assert!(p99 > 400.0 && p99 <= 3000.0, "p99 {p99}");
        let sampled = m.sampled_median(5, 100_000, 20_000).as_secs_f64() * 1000.0;
        assert!((sampled - p50).abs() < 5.0, "{sampled} vs {p50}");
    }

    #[test]
    fn constant_model_is_exact() {
        let m = LatencyModel::constant(Duration::from_millis(40));
        let mut rng = SimRng::new(0);
        for i in 0..100 {
            assert_eq!(m.rtt(9, i, i * 7 + 1), Duration::from_millis(40));
            assert_eq!(m.one_way_millis(9, i, i * 7 + 1, &mut rng), 20);
        }
    }

    #[test]
    fn one_way_is_half_rtt_plus_bounded_jitter() {
        let m = LatencyModel::default();
        let mut rng = SimRng::new(4);
        for i in 0..1000u32 {
            let rtt = m.rtt_micros(3, i, i + 17) as f64 / 1000.0;
            let d = m.one_way_millis(3, i, i + 17, &mut rng) as f64;
            assert!(d >= (rtt / 2.0 - 0.5).max(1.0) - 1e-9, "{d} {rtt}");
            assert!(d <= rtt / 2.0 * 1.1 + 0.5 + 1e-9, "{d} {rtt}");
        }
    }
}
