//! 160-bit identifiers: node ids, info-hashes and BEP 44 targets share one type, [`Id`].
//!
//! Kademlia measures closeness by XOR: the [`Distance`] between two ids is their bitwise XOR read
//! as a big-endian unsigned integer. Both types order big-endian, so sorting distances sorts by
//! closeness.

use core::fmt;
use core::str::FromStr;

use rand_core::RngCore;

/// Length of an [`Id`] in bytes.
pub const ID_LEN: usize = 20;

/// Number of bits in an [`Id`].
pub const ID_BITS: usize = ID_LEN * 8;

/// A 160-bit identifier: a node id, an info-hash or a BEP 44 target.
///
/// ```
/// use dht_proto::Id;
///
/// let id: Id = "0123456789abcdef0123456789abcdef01234567".parse().unwrap();
/// assert_eq!(id.to_string(), "0123456789abcdef0123456789abcdef01234567");
/// assert_eq!(id.distance(&id), dht_proto::Distance::ZERO);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Id([u8; ID_LEN]);

/// The 20 bytes alone, as two little-endian words and a half (what writing the bytes gives
/// a hasher that reads words little-endian, as the stores' keyed SipHash does, which takes
/// whole words without its byte-by-byte path): every id has the same length, so the length
/// prefix a derived `Hash` writes first would only cost the keyed hashes another word.
impl core::hash::Hash for Id {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        let [
            a0,
            a1,
            a2,
            a3,
            a4,
            a5,
            a6,
            a7,
            b0,
            b1,
            b2,
            b3,
            b4,
            b5,
            b6,
            b7,
            c0,
            c1,
            c2,
            c3,
        ] = self.0;
        state.write_u64(u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]));
        state.write_u64(u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7]));
        state.write_u32(u32::from_le_bytes([c0, c1, c2, c3]));
    }
}

impl Id {
    /// The all-zero id.
    pub const ZERO: Self = Self([0; ID_LEN]);
    /// The all-ones id.
    pub const MAX: Self = Self([0xff; ID_LEN]);

    /// An id from its 20 bytes.
    pub const fn new(bytes: [u8; ID_LEN]) -> Self {
        Self(bytes)
    }

    /// An id from a slice, or `None` unless it is exactly 20 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; ID_LEN]>::try_from(bytes).ok().map(Self)
    }

    /// The id's 20 bytes.
    pub const fn as_bytes(&self) -> &[u8; ID_LEN] {
        &self.0
    }

    /// The id's 20 bytes, by value.
    pub const fn to_bytes(self) -> [u8; ID_LEN] {
        self.0
    }

    /// The XOR distance between `self` and `other`.
    pub fn distance(&self, other: &Self) -> Distance {
        let mut out = [0u8; ID_LEN];
        for ((o, a), b) in out.iter_mut().zip(self.0.iter()).zip(other.0.iter()) {
            *o = a ^ b;
        }
        Distance(out)
    }

    /// Number of leading bits `self` shares with `other` (160 when they are equal).
    ///
    /// This is the Kademlia bucket index of `other` in a flat table owned by `self`.
    pub fn common_prefix_len(&self, other: &Self) -> usize {
        match self.distance_key(other) {
            (0, low) => 128 + low.leading_zeros() as usize,
            (high, _) => high.leading_zeros() as usize,
        }
    }

    /// The XOR distance to `other` as two integers (its first 128 bits and its last 32), which
    /// order as the [`Distance`]s do and compare in two instructions rather than twenty.
    #[inline]
    pub(crate) fn distance_key(&self, other: &Self) -> (u128, u32) {
        let (a_high, a_low) = words(&self.0);
        let (b_high, b_low) = words(&other.0);
        (a_high ^ b_high, a_low ^ b_low)
    }

    /// The first 64 bits of the id as an integer: XORed with another id's, the first 64 bits
    /// of their distance, which order most pairs of distances on their own.
    #[inline]
    pub(crate) fn prefix_u64(&self) -> u64 {
        self.0
            .first_chunk::<8>()
            .map_or(0, |h| u64::from_be_bytes(*h))
    }

    /// Bit `index` (0 = most significant) of the id; `false` beyond bit 159.
    pub fn bit(&self, index: usize) -> bool {
        match self.0.get(index / 8) {
            Some(byte) => byte & (0x80 >> (index % 8)) != 0,
            None => false,
        }
    }

    /// A copy of `self` with bit `index` (0 = most significant) set to `value`.
    ///
    /// Indices beyond bit 159 leave the id unchanged.
    #[must_use]
    pub fn with_bit(mut self, index: usize, value: bool) -> Self {
        if let Some(byte) = self.0.get_mut(index / 8) {
            let mask = 0x80 >> (index % 8);
            if value {
                *byte |= mask;
            } else {
                *byte &= !mask;
            }
        }
        self
    }

    /// A uniformly random id.
    pub fn random(rng: &mut impl RngCore) -> Self {
        let mut bytes = [0u8; ID_LEN];
        rng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// A random id whose first `prefix_len` bits equal those of `prefix`.
    ///
    /// This is how a bucket refresh picks a target inside the bucket's range. A `prefix_len` of
    /// 160 or more returns `prefix` itself.
    pub fn random_with_prefix(prefix: &Self, prefix_len: usize, rng: &mut impl RngCore) -> Self {
        let random = Self::random(rng);
        let mut out = [0u8; ID_LEN];
        for (i, ((o, p), r)) in out
            .iter_mut()
            .zip(prefix.0.iter())
            .zip(random.0.iter())
            .enumerate()
        {
            let bit_start = i * 8;
            let keep = prefix_len.saturating_sub(bit_start).min(8);
            // `keep` leading bits come from the prefix, the rest are random.
            let mask: u8 = if keep == 0 { 0 } else { 0xffu8 << (8 - keep) };
            *o = (p & mask) | (r & !mask);
        }
        Self(out)
    }
}

impl From<[u8; ID_LEN]> for Id {
    fn from(bytes: [u8; ID_LEN]) -> Self {
        Self(bytes)
    }
}

impl AsRef<[u8]> for Id {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Id {
    /// Lower-case hex, 40 characters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Id(")?;
        write_hex(f, &self.0)?;
        f.write_str(")")
    }
}

/// Why a string is not an [`Id`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseIdError {
    /// The string is not exactly 40 characters long.
    Length,
    /// A character is not a hex digit.
    NotHex,
}

impl fmt::Display for ParseIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Length => "an id is exactly 40 hex characters",
            Self::NotHex => "an id contains only hex digits (0-9, a-f)",
        })
    }
}

impl core::error::Error for ParseIdError {}

impl FromStr for Id {
    type Err = ParseIdError;

    /// Parses 40 hex digits, either case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.as_bytes();
        if s.len() != ID_LEN * 2 {
            return Err(ParseIdError::Length);
        }
        let mut out = [0u8; ID_LEN];
        for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
            let (hi, lo) = match pair {
                [hi, lo] => (hex_value(*hi), hex_value(*lo)),
                _ => (None, None),
            };
            *o = (hi.ok_or(ParseIdError::NotHex)? << 4) | lo.ok_or(ParseIdError::NotHex)?;
        }
        Ok(Self(out))
    }
}

/// The 20 bytes as big-endian integers: the first 16 and the last 4.
fn words(bytes: &[u8; ID_LEN]) -> (u128, u32) {
    let high = bytes
        .first_chunk::<16>()
        .map_or(0, |h| u128::from_be_bytes(*h));
    let low = bytes
        .last_chunk::<4>()
        .map_or(0, |l| u32::from_be_bytes(*l));
    (high, low)
}

/// The XOR distance between two [`Id`]s; smaller is closer.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Distance([u8; ID_LEN]);

impl Distance {
    /// The distance of an id to itself.
    pub const ZERO: Self = Self([0; ID_LEN]);
    /// The largest possible distance.
    pub const MAX: Self = Self([0xff; ID_LEN]);

    /// The distance's 20 bytes, big-endian.
    pub const fn as_bytes(&self) -> &[u8; ID_LEN] {
        &self.0
    }

    /// Number of leading zero bits (160 for [`Distance::ZERO`]).
    pub fn leading_zeros(&self) -> usize {
        let mut zeros = 0;
        for byte in self.0 {
            if byte == 0 {
                zeros += 8;
            } else {
                return zeros + byte.leading_zeros() as usize;
            }
        }
        zeros
    }

    /// Index of the highest set bit counted from the least significant end (0..=159), the
    /// "log2 distance" used by some implementations; `None` for [`Distance::ZERO`].
    pub fn ilog2(&self) -> Option<usize> {
        let lz = self.leading_zeros();
        (lz < ID_BITS).then(|| ID_BITS - 1 - lz)
    }
}

impl fmt::Debug for Distance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Distance(")?;
        write_hex(f, &self.0)?;
        f.write_str(")")
    }
}

impl fmt::Display for Distance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

pub(crate) fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        let hi = DIGITS.get(usize::from(b >> 4)).copied().unwrap_or(b'?');
        let lo = DIGITS.get(usize::from(b & 0xf)).copied().unwrap_or(b'?');
        write!(f, "{}{}", char::from(hi), char::from(lo))?;
    }
    Ok(())
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn hex_round_trip_and_errors() {
        let id = Id::new(
            *b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\xaa\xbb\xcc\xdd\xee\xff\x10\x20\x30\x40",
        );
        let s = id.to_string();
        assert_eq!(s, "00010203040506070809aabbccddeeff10203040");
        assert_eq!(s.parse::<Id>(), Ok(id));
        assert_eq!(s.to_uppercase().parse::<Id>(), Ok(id));
        assert_eq!("abc".parse::<Id>(), Err(ParseIdError::Length));
        assert_eq!(
            "zz010203040506070809aabbccddeeff10203040".parse::<Id>(),
            Err(ParseIdError::NotHex)
        );
        // Multi-byte UTF-8 of the right byte length is not hex.
        assert_eq!(
            "é0010203040506070809aabbccddeeff1020304".parse::<Id>(),
            Err(ParseIdError::NotHex)
        );
    }

    #[test]
    fn distance_orders_by_closeness() {
        let a = Id::ZERO;
        let near = Id::ZERO.with_bit(159, true);
        let far = Id::ZERO.with_bit(0, true);
        assert!(a.distance(&near) < a.distance(&far));
        assert_eq!(a.common_prefix_len(&near), 159);
        assert_eq!(a.common_prefix_len(&far), 0);
        assert_eq!(a.common_prefix_len(&a), 160);
        assert_eq!(a.distance(&far).ilog2(), Some(159));
        assert_eq!(a.distance(&a).ilog2(), None);
    }

    /// The integer key orders pairs as the distance does, and the prefix length from it is the
    /// distance's leading zeros, at every depth (the last 32 bits included).
    #[test]
    fn distance_key_orders_as_the_distance() {
        let mut rng = crate::test_rng::TestRng(3);
        let base = rng.id();
        let ids: alloc::vec::Vec<Id> = (0..400)
            .map(|i| Id::random_with_prefix(&base, i % 161, &mut rng))
            .collect();
        for (i, a) in ids.iter().enumerate() {
            assert_eq!(a.common_prefix_len(&base), base.distance(a).leading_zeros());
            for b in ids.iter().skip(i).take(40) {
                let by_key = base.distance_key(a).cmp(&base.distance_key(b));
                assert_eq!(by_key, base.distance(a).cmp(&base.distance(b)));
            }
        }
        assert_eq!(base.common_prefix_len(&base), 160);
    }

    #[test]
    fn bits() {
        let id = Id::ZERO.with_bit(3, true).with_bit(200, true);
        assert!(id.bit(3));
        assert!(!id.bit(2));
        assert!(!id.bit(500));
        assert_eq!(id.as_bytes()[0], 0x10);
    }

    #[test]
    fn random_with_prefix_keeps_prefix() {
        let mut rng = crate::test_rng::TestRng(7);
        let prefix = Id::MAX;
        for len in 0..=161 {
            let id = Id::random_with_prefix(&prefix, len, &mut rng);
            assert!(id.common_prefix_len(&prefix) >= len.min(160), "len {len}");
        }
        assert_eq!(Id::random_with_prefix(&prefix, 160, &mut rng), prefix);
    }
}
