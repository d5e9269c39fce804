//! BEP 33 scrape bloom filters: 256 bytes (2048 bits), two bits per IP address.
//!
//! A `get_peers` reply with `scrape=1` carries two filters, `BFsd` for the seeds and `BFpe` for
//! the other peers stored under the info-hash. A requester ORs the filters from several nodes
//! and estimates the swarm size with [`Bloom::estimate`], counting each address once however
//! many nodes stored it.
//!
//! The two bit indices come from `SHA-1(ip)`: `index1 = (h[0] | h[1] << 8) % 2048`,
//! `index2 = (h[2] | h[3] << 8) % 2048`, and bit `i` is `bloom[i / 8] & (1 << (i % 8))`. The IP
//! is its 4 or 16 network-order bytes; IPv4-mapped IPv6 addresses are inserted as IPv4.
//!
//! ```
//! use core::net::{IpAddr, Ipv4Addr};
//! use dht_proto::Bloom;
//!
//! let mut bloom = Bloom::new();
//! for i in 0..=255 {
//!     bloom.insert(IpAddr::V4(Ipv4Addr::new(192, 0, 2, i)));
//! }
//! assert!((bloom.estimate() - 256.0).abs() < 25.0);
//! ```

use core::fmt;
use core::net::IpAddr;

/// Size of a BEP 33 filter in bytes.
pub const BLOOM_LEN: usize = 256;

/// Number of bits `m` in a filter.
const BITS: u32 = (BLOOM_LEN * 8) as u32;

/// A BEP 33 bloom filter of IP addresses.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Bloom([u8; BLOOM_LEN]);

impl Bloom {
    /// An empty filter.
    pub const fn new() -> Self {
        Self([0; BLOOM_LEN])
    }

    /// A filter from its 256 wire bytes.
    pub const fn from_bytes(bytes: [u8; BLOOM_LEN]) -> Self {
        Self(bytes)
    }

    /// A filter from a slice, or `None` unless it is exactly 256 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; BLOOM_LEN]>::try_from(bytes).ok().map(Self)
    }

    /// The filter's 256 bytes, as they go on the wire.
    pub const fn as_bytes(&self) -> &[u8; BLOOM_LEN] {
        &self.0
    }

    /// Adds `ip` (the address only; ports are never inserted).
    pub fn insert(&mut self, ip: IpAddr) {
        for index in indices(ip) {
            if let Some(byte) = self.0.get_mut(index / 8) {
                *byte |= 1 << (index % 8);
            }
        }
    }

    /// Whether `ip` may have been inserted (false positives are possible, false negatives are
    /// not).
    pub fn contains(&self, ip: IpAddr) -> bool {
        indices(ip)
            .iter()
            .all(|&i| self.0.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0))
    }

    /// Adds every address of `other`: the filter of the union of both sets.
    pub fn union_with(&mut self, other: &Self) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= b;
        }
    }

    /// Whether no bit is set.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&b| b == 0)
    }

    /// Number of zero bits.
    pub fn count_zeros(&self) -> u32 {
        self.0.iter().map(|b| b.count_zeros()).sum()
    }

    /// The estimated number of distinct addresses inserted, by the BEP 33 formula
    /// `ln(c / m) / (k · ln(1 − 1/m))` with `k = 2`, `m = 2048` and `c` the number of zero bits,
    /// capped at `m − 1`.
    ///
    /// The estimate grows with every bit set and breaks down past about 6000 addresses. Two
    /// edge cases differ from the bare formula: an empty filter estimates 0 (the formula gives
    /// 0.5), and a full filter counts as having one zero bit, so the estimate stays finite
    /// (about 7800) instead of infinite.
    pub fn estimate(&self) -> f64 {
        let zeros = self.count_zeros();
        if zeros >= BITS {
            return 0.0;
        }
        let c = f64::from(zeros.clamp(1, BITS - 1));
        let m = f64::from(BITS);
        ln(c / m) / (2.0 * ln(1.0 - 1.0 / m))
    }
}

impl Default for Bloom {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Bloom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bloom")
            .field("bits_set", &(BITS - self.count_zeros()))
            .finish()
    }
}

/// The two bit indices of `ip`.
fn indices(ip: IpAddr) -> [usize; 2] {
    let digest = match ip {
        IpAddr::V4(v4) => sha1_smol::Sha1::from(v4.octets()).digest().bytes(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => sha1_smol::Sha1::from(v4.octets()).digest().bytes(),
            None => sha1_smol::Sha1::from(v6.octets()).digest().bytes(),
        },
    };
    let index = |lo: usize, hi: usize| {
        let lo = usize::from(digest.get(lo).copied().unwrap_or(0));
        let hi = usize::from(digest.get(hi).copied().unwrap_or(0));
        (lo | (hi << 8)) % BLOOM_LEN.saturating_mul(8).max(1)
    };
    [index(0, 1), index(2, 3)]
}

/// Natural logarithm of a positive, normal `x` (`core` has no `ln` without `std`).
///
/// Splits `x = m · 2^e` with `m` in `[√½, √2)`, then sums the series
/// `ln m = 2 · (s + s³/3 + s⁵/5 + …)` with `s = (m − 1)/(m + 1)`, `|s| < 0.172`; eleven terms
/// reach the precision of `f64`. Non-positive and non-finite inputs return NaN or the input.
fn ln(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    if x.is_infinite() {
        return x;
    }
    let (mut m, mut e) = split(x);
    if m > core::f64::consts::SQRT_2 {
        m /= 2.0;
        e += 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut term = s;
    let mut sum = 0.0;
    let mut k = 1.0;
    for _ in 0..12 {
        sum += term / k;
        term *= s2;
        k += 2.0;
    }
    2.0 * sum + f64::from(e) * core::f64::consts::LN_2
}

/// `x = m · 2^e` with `m` in `[1, 2)`, for positive finite `x` (subnormals are scaled first).
fn split(x: f64) -> (f64, i32) {
    const MANTISSA: u64 = (1 << 52) - 1;
    let (x, bias) = if x < f64::MIN_POSITIVE {
        // 2^54 moves any subnormal into the normal range.
        (x * 18_014_398_509_481_984.0, 54)
    } else {
        (x, 0)
    };
    let bits = x.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32 - 1023 - bias;
    let m = f64::from_bits((bits & MANTISSA) | (1023u64 << 52));
    (m, exponent)
}

#[cfg(test)]
mod tests;
