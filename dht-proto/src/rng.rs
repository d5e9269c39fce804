//! Keyed deterministic randomness: the node's generator ([`SeededRng`]) and the keyed hasher of
//! its hash maps ([`KeyedState`]).
//!
//! Everything random the node does comes from [`Config::seed`](crate::Config::seed): the same
//! seed and the same inputs give the same outputs. Transaction ids and token secrets come from
//! [`SeededRng`], so remote peers must not be able to predict its output from what they see; a
//! cryptographic pseudo-random function keyed by the seed gives that.
//!
//! # Generator
//!
//! Block `i` of stream `s` is `SHA-1(key ‖ s ‖ i as u64 big-endian)`, 20 bytes, where `key` is
//! the 32-byte seed and `s` one byte: 0 for the node's generator, other values for other uses
//! of the same seed. SHA-1 keyed by a secret prefix is a pseudo-random function for
//! fixed-length inputs: the collision attacks on SHA-1 do not help predict outputs, and length
//! extension does not apply because every generator input has the same length (41 bytes).
//! `sha1_smol` is
//! already a dependency for BEP 44 targets and BEP 33 filters, so the generator costs no new
//! dependency; a stream cipher such as ChaCha would be faster but would add one, and the node
//! draws only a few bytes per message.
//!
//! # Hashing
//!
//! Info-hashes and BEP 44 targets are chosen by remote peers, so the maps keyed by them use
//! SipHash-1-3 (the hash of Rust's standard `HashMap`) with a 128-bit key drawn from the seed:
//! peers that do not know the key cannot make keys collide, and the same seed gives the same
//! layout. Output order is never taken from a hash map's iteration order.

use core::fmt;
use core::hash::{BuildHasher, Hasher};

use rand_core::RngCore;

/// Length of one generator block: a SHA-1 digest.
const BLOCK_LEN: usize = 20;

/// Stream byte of [`SeededRng::new`]: the node's generator (and the crawler driver's).
const STREAM_NODE: u8 = 0x00;

/// Stream byte of the key of [`ReplyRng`].
const STREAM_REPLIES: u8 = 0x02;

/// A deterministic generator from a 32-byte seed: SHA-1 in counter mode (block `i` of stream
/// `s` is `SHA-1(seed ‖ s ‖ i)`), the generator the node draws its transaction ids and token
/// secrets from.
///
/// The same seed always gives the same stream, and the stream is unpredictable to anyone who
/// does not know the seed: use it for values that must be reproducible from a secret seed (a
/// crawler's fresh ids, say), with a seed from the operating system's random source. Two uses
/// of one seed take different streams ([`SeededRng::with_stream`]), or one of them would give
/// the other's values away. It is nothing more: it never reseeds, it is not a general-purpose
/// random source and not a key derivation function.
#[derive(Clone)]
pub struct SeededRng {
    key: [u8; 32],
    /// The stream byte of every block input.
    stream: u8,
    /// Index of the next block to compute.
    counter: u64,
    /// The current block; bytes before `used` are consumed.
    block: [u8; BLOCK_LEN],
    used: usize,
}

/// The name the crate's own modules use.
pub(crate) use SeededRng as Rng;

impl SeededRng {
    /// Stream 0 of `seed`: the generator a [`Node`](crate::Node) with `seed` in its
    /// [`Config`](crate::Config) draws from, and a [`Crawler`](crate::crawl::Crawler) with it
    /// in its [`CrawlerConfig`](crate::crawl::CrawlerConfig).
    #[must_use]
    pub fn new(seed: [u8; 32]) -> Self {
        Self::with_stream(seed, STREAM_NODE)
    }

    /// Stream `stream` of `seed`. Streams never overlap and none tells anything about another
    /// (every block is the output of a pseudo-random function on a distinct input of the same
    /// length). In use: 0 ([`SeededRng::new`]), 1 (the fresh ids of `dht-std`'s crawler, public
    /// and drawn from the crawler's seed), 2 (the key of the node's per-reply choices).
    #[must_use]
    pub fn with_stream(seed: [u8; 32], stream: u8) -> Self {
        Self {
            key: seed,
            stream,
            counter: 0,
            block: [0; BLOCK_LEN],
            // Empty buffer: the first draw computes block 0.
            used: BLOCK_LEN,
        }
    }

    fn refill(&mut self) {
        let mut h = sha1_smol::Sha1::new();
        h.update(&self.key);
        h.update(&[self.stream]);
        h.update(&self.counter.to_be_bytes());
        self.block = h.digest().bytes();
        self.counter = self.counter.wrapping_add(1);
        self.used = 0;
    }
}

impl RngCore for SeededRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, mut dst: &mut [u8]) {
        while !dst.is_empty() {
            if self.used >= BLOCK_LEN {
                self.refill();
            }
            let available = self.block.get(self.used..).unwrap_or(&[]);
            let n = available.len().min(dst.len());
            let (head, tail) = dst.split_at_mut(n);
            head.copy_from_slice(available.get(..n).unwrap_or(&[]));
            self.used += n;
            dst = tail;
        }
    }
}

impl fmt::Debug for SeededRng {
    /// Never shows the key or the buffered output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeededRng").finish_non_exhaustive()
    }
}

/// A uniform integer in `0..n` from any generator, or 0 when `n` is 0.
///
/// Lemire's multiply-and-reject method: unbiased, and almost always a single draw.
pub(crate) fn below(rng: &mut impl RngCore, n: usize) -> usize {
    let Ok(n) = u64::try_from(n) else {
        return 0;
    };
    if n == 0 {
        return 0;
    }
    // Values of the low half below `threshold` would make some results more likely. The
    // threshold is below `n`, so a low half of `n` or more is accepted without computing it
    // (a division): the same results, almost always without the division.
    let mut threshold = None;
    loop {
        let product = u128::from(rng.next_u64()) * u128::from(n);
        // Truncation keeps the low 64 bits on purpose.
        #[allow(clippy::cast_possible_truncation)]
        let low = product as u64;
        if low >= n || low >= *threshold.get_or_insert_with(|| n.wrapping_neg() % n) {
            // `product >> 64` is below `n`, which came from a usize.
            return usize::try_from(product >> 64).unwrap_or(0);
        }
    }
}

/// A fast generator for one random choice (the peers of a `get_peers` reply, the samples of a
/// `sample_infohashes` reply, the entries the per-source table samples to evict one):
/// SplitMix64 (Steele, Lea and Flood) seeded with 64 bits of another generator, the node's
/// [`SeededRng`].
///
/// It is not cryptographic: what it draws tells about its own seed. Each choice takes a fresh
/// seed from the node's generator and the generator is dropped after it, so a remote that sees
/// the choice learns nothing about any other choice or about the node's generator; drawing one
/// seed instead of a block of SHA-1 per item makes a choice among hundreds of items cost a
/// few ns per item.
pub(crate) struct ChoiceRng(u64);

impl ChoiceRng {
    /// A generator seeded from `rng`.
    pub(crate) fn seeded_from(rng: &mut impl RngCore) -> Self {
        Self(rng.next_u64())
    }
}

impl RngCore for ChoiceRng {
    fn next_u32(&mut self) -> u32 {
        // The high half of a 64-bit output.
        u32::try_from(self.next_u64() >> 32).unwrap_or(0)
    }

    fn next_u64(&mut self) -> u64 {
        splitmix64(&mut self.0)
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        fill_by_words(dst, || splitmix64(&mut self.0));
    }
}

/// One step of SplitMix64 (Steele, Lea and Flood): advances the 64-bit counter `state` by the
/// golden-ratio increment and returns it through a strong mixer. The one copy of the algorithm,
/// for [`ChoiceRng`] and the tests' [`TestRng`](crate::test_rng::TestRng).
#[inline]
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fills `dst` with the little-endian bytes of successive words from `next`, a word per 8 bytes
/// (the last, shorter chunk takes the low bytes of a whole word).
#[inline]
pub(crate) fn fill_by_words(dst: &mut [u8], mut next: impl FnMut() -> u64) {
    for chunk in dst.chunks_mut(8) {
        for (d, w) in chunk.iter_mut().zip(next().to_le_bytes()) {
            *d = w;
        }
    }
}

/// The source of a node's per-reply choices (which stored peers a `get_peers` reply carries,
/// which info-hashes a BEP 51 sample): output `i` is SipHash-2-4 of the counter `i` under a
/// 128-bit key drawn once from the seed's own stream, so the node's main generator is not
/// touched. SipHash is a keyed pseudo-random function: without the key, the choices seen in
/// earlier replies tell nothing about the next ones. One hash (about a hundred instructions)
/// per reply, where drawing the seed of a reply's [`ChoiceRng`] from the node's SHA-1
/// generator cost a SHA-1 block every two or three replies.
#[derive(Clone)]
pub(crate) struct ReplyRng {
    k0: u64,
    k1: u64,
    counter: u64,
}

impl ReplyRng {
    /// The generator of the node with `seed`.
    pub(crate) fn new(seed: [u8; 32]) -> Self {
        let mut keys = SeededRng::with_stream(seed, STREAM_REPLIES);
        Self {
            k0: keys.next_u64(),
            k1: keys.next_u64(),
            counter: 0,
        }
    }
}

impl RngCore for ReplyRng {
    fn next_u32(&mut self) -> u32 {
        // The high half of a 64-bit output.
        u32::try_from(self.next_u64() >> 32).unwrap_or(0)
    }

    fn next_u64(&mut self) -> u64 {
        let out = SipHasher::<2, 4>::hash(self.k0, self.k1, &self.counter.to_le_bytes());
        self.counter = self.counter.wrapping_add(1);
        out
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        fill_by_words(dst, || self.next_u64());
    }
}

impl fmt::Debug for ReplyRng {
    /// Never shows the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplyRng").finish_non_exhaustive()
    }
}

impl fmt::Debug for ChoiceRng {
    /// Never shows the state.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChoiceRng").finish_non_exhaustive()
    }
}

/// A [`BuildHasher`] for hash maps keyed by remote input: SipHash-1-3 with a secret 128-bit key.
#[derive(Clone)]
pub(crate) struct KeyedState {
    k0: u64,
    k1: u64,
}

impl KeyedState {
    /// A hasher keyed by the 16 bytes of `key` (two little-endian words).
    pub(crate) fn new(key: [u8; 16]) -> Self {
        let (a, b) = key.split_at(8);
        let word = |s: &[u8]| u64::from_le_bytes(s.try_into().unwrap_or([0; 8]));
        Self {
            k0: word(a),
            k1: word(b),
        }
    }
}

impl BuildHasher for KeyedState {
    type Hasher = SipHasher<1, 3>;

    fn build_hasher(&self) -> Self::Hasher {
        SipHasher::new(self.k0, self.k1)
    }
}

impl fmt::Debug for KeyedState {
    /// Never shows the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedState").finish_non_exhaustive()
    }
}

/// SipHash-`C`-`D` (Aumasson and Bernstein): `C` compression rounds per 8-byte word, `D`
/// finalization rounds. SipHash-2-4 is the reference; SipHash-1-3 is the faster variant Rust's
/// standard library uses for hash maps.
#[derive(Clone, Debug)]
pub(crate) struct SipHasher<const C: usize, const D: usize> {
    v0: u64,
    v1: u64,
    v2: u64,
    v3: u64,
    /// Bytes written so far (only the low 8 bits end up in the hash, as specified).
    length: u64,
    /// Pending bytes of an incomplete word, little-endian in the low `pending` bytes.
    tail: u64,
    pending: u32,
}

impl<const C: usize, const D: usize> SipHasher<C, D> {
    /// A hasher with the 128-bit key `(k0, k1)`.
    pub(crate) const fn new(k0: u64, k1: u64) -> Self {
        Self {
            v0: k0 ^ 0x736f_6d65_7073_6575,
            v1: k1 ^ 0x646f_7261_6e64_6f6d,
            v2: k0 ^ 0x6c79_6765_6e65_7261,
            v3: k1 ^ 0x7465_6462_7974_6573,
            length: 0,
            tail: 0,
            pending: 0,
        }
    }

    /// The hash of `bytes` in one go: what `write(bytes)` then `finish()` give, without the
    /// streaming state's byte-by-byte bookkeeping (tokens hash 5 or 17 bytes per query).
    pub(crate) fn hash(k0: u64, k1: u64, bytes: &[u8]) -> u64 {
        let mut h = Self::new(k0, k1);
        let mut words = bytes.chunks_exact(8);
        for chunk in &mut words {
            h.compress(u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8])));
        }
        let mut tail = [0u8; 8];
        let rest = words.remainder();
        if let Some(head) = tail.get_mut(..rest.len()) {
            head.copy_from_slice(rest);
        }
        h.length = bytes.len() as u64;
        h.tail = u64::from_le_bytes(tail);
        h.finish()
    }

    /// The hash of a message of `len` < 8 bytes given as the little-endian word `tail`
    /// (zero above its `len` bytes): what [`SipHasher::hash`] gives for those bytes, without
    /// going through a slice (IPv4 tokens hash 5 bytes per query).
    pub(crate) fn hash_short(k0: u64, k1: u64, tail: u64, len: u8) -> u64 {
        let mut h = Self::new(k0, k1);
        h.length = u64::from(len);
        h.tail = tail;
        h.finish()
    }

    fn round(&mut self) {
        self.v0 = self.v0.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(13) ^ self.v0;
        self.v0 = self.v0.rotate_left(32);
        self.v2 = self.v2.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(16) ^ self.v2;
        self.v0 = self.v0.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(21) ^ self.v0;
        self.v2 = self.v2.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(17) ^ self.v2;
        self.v2 = self.v2.rotate_left(32);
    }

    fn compress(&mut self, word: u64) {
        self.v3 ^= word;
        for _ in 0..C {
            self.round();
        }
        self.v0 ^= word;
    }
}

impl<const C: usize, const D: usize> Hasher for SipHasher<C, D> {
    fn write(&mut self, bytes: &[u8]) {
        self.length = self.length.wrapping_add(bytes.len() as u64);
        let mut rest = bytes;
        // Complete a pending word first.
        while self.pending > 0 {
            let Some((&b, tail)) = rest.split_first() else {
                return;
            };
            self.tail |= u64::from(b) << (8 * self.pending);
            self.pending += 1;
            rest = tail;
            if self.pending == 8 {
                let word = self.tail;
                self.compress(word);
                self.tail = 0;
                self.pending = 0;
            }
        }
        let mut words = rest.chunks_exact(8);
        for chunk in &mut words {
            self.compress(u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8])));
        }
        for &b in words.remainder() {
            self.tail |= u64::from(b) << (8 * self.pending);
            self.pending += 1;
        }
    }

    /// The 8 bytes of `word` in little-endian order, as `write` takes them; without the
    /// byte-by-byte bookkeeping when no partial word is pending (ids hash as two words and a
    /// half).
    fn write_u64(&mut self, word: u64) {
        if self.pending == 0 {
            self.length = self.length.wrapping_add(8);
            self.compress(word);
        } else {
            self.write(&word.to_le_bytes());
        }
    }

    /// The 16 bytes of `word` in little-endian order, as `write` takes them (the per-source
    /// maps are keyed by `u128`).
    fn write_u128(&mut self, word: u128) {
        if self.pending == 0 {
            self.length = self.length.wrapping_add(16);
            self.compress(word as u64);
            self.compress((word >> 64) as u64);
        } else {
            self.write(&word.to_le_bytes());
        }
    }

    /// The 4 bytes of `word` in little-endian order, as `write` takes them.
    fn write_u32(&mut self, word: u32) {
        if self.pending == 0 {
            self.length = self.length.wrapping_add(4);
            self.tail = u64::from(word);
            self.pending = 4;
        } else {
            self.write(&word.to_le_bytes());
        }
    }

    fn finish(&self) -> u64 {
        let mut s = self.clone();
        let last = ((self.length & 0xff) << 56) | self.tail;
        s.compress(last);
        s.v2 ^= 0xff;
        for _ in 0..D {
            s.round();
        }
        s.v0 ^ s.v1 ^ s.v2 ^ s.v3
    }
}

#[cfg(test)]
mod tests;
