use core::hash::{BuildHasher, Hasher};

use rand_core::RngCore;

use super::*;

/// SipHash-2-4 outputs for key `00 01 .. 0f` and messages `00 01 .. (n-1)`, n = 0..16, from the
/// SipHash paper's reference implementation.
const SIPHASH24_VECTORS: [u64; 16] = [
    0x726fdb47dd0e0e31,
    0x74f839c593dc67fd,
    0x0d6c8009d9a94f5a,
    0x85676696d7fb7e2d,
    0xcf2794e0277187b7,
    0x18765564cd99a68d,
    0xcbc9466e58fee3ce,
    0xab0200f58b01d137,
    0x93f5f5799a932462,
    0x9e0082df0ba9e4b0,
    0x7a5dbbc594ddb9f3,
    0xf4b32f46226bada7,
    0x751e8fbc860ee5fb,
    0x14ea5627c0843d90,
    0xf723ca908e7af2ee,
    0xa129ca6149be45e5,
];

fn reference_key() -> (u64, u64) {
    let key: [u8; 16] = core::array::from_fn(|i| i as u8);
    let k = KeyedState::new(key);
    (k.k0, k.k1)
}

#[test]
fn siphash24_reference_vectors() {
    let (k0, k1) = reference_key();
    let message: [u8; 16] = core::array::from_fn(|i| i as u8);
    for (n, expected) in SIPHASH24_VECTORS.iter().enumerate() {
        let mut h = SipHasher::<2, 4>::new(k0, k1);
        h.write(&message[..n]);
        assert_eq!(h.finish(), *expected, "length {n}");
    }
}

#[test]
fn siphash24_one_shot_equals_streaming() {
    let (k0, k1) = reference_key();
    let message: [u8; 16] = core::array::from_fn(|i| i as u8);
    for (n, expected) in SIPHASH24_VECTORS.iter().enumerate() {
        assert_eq!(
            SipHasher::<2, 4>::hash(k0, k1, &message[..n]),
            *expected,
            "length {n}"
        );
    }
    let mut rng = Rng::new([5; 32]);
    for len in [17usize, 24, 31, 100] {
        let mut data = std::vec![0u8; len];
        rng.fill_bytes(&mut data);
        let (k0, k1) = (rng.next_u64(), rng.next_u64());
        let mut streaming = SipHasher::<2, 4>::new(k0, k1);
        streaming.write(&data);
        assert_eq!(
            SipHasher::<2, 4>::hash(k0, k1, &data),
            streaming.finish(),
            "length {len}"
        );
    }
}

#[test]
fn siphash24_split_writes_equal_one_write() {
    let (k0, k1) = reference_key();
    let message: [u8; 16] = core::array::from_fn(|i| i as u8);
    // The 15-byte vector, fed in pieces of every shape.
    for a in 0..=15 {
        for b in a..=15 {
            let mut h = SipHasher::<2, 4>::new(k0, k1);
            h.write(&message[..a]);
            h.write(&message[a..b]);
            h.write(&message[b..15]);
            assert_eq!(h.finish(), SIPHASH24_VECTORS[15], "split at {a}, {b}");
        }
    }
}

#[test]
#[allow(deprecated)]
fn siphash24_matches_std_on_long_inputs() {
    // core's deprecated `SipHasher` is SipHash-2-4; an independent implementation to compare.
    let mut rng = Rng::new([3; 32]);
    for len in [0usize, 7, 8, 9, 63, 64, 65, 255, 256, 1000] {
        let mut data = std::vec![0u8; len];
        rng.fill_bytes(&mut data);
        let (k0, k1) = (rng.next_u64(), rng.next_u64());
        let mut ours = SipHasher::<2, 4>::new(k0, k1);
        ours.write(&data);
        let mut theirs = core::hash::SipHasher::new_with_keys(k0, k1);
        theirs.write(&data);
        assert_eq!(ours.finish(), theirs.finish(), "length {len}");
    }
}

#[test]
fn siphash13_vectors() {
    // SipHash-1-3 with the all-zero key, as published with the `digest` SipHash test suite
    // (the 64-bit result printed big-endian).
    let hex = |h: u64| std::format!("{h:016x}");
    let run = |data: &[u8]| {
        let mut h = SipHasher::<1, 3>::new(0, 0);
        h.write(data);
        h.finish()
    };
    let empty = run(b"");
    let word = run(b"siphash");
    assert_eq!(hex(empty), "d1fba762150c532c");
    assert_eq!(hex(word), "8264ceeccb16bcbe");
}

#[test]
fn siphash13_matches_std_default_hasher() {
    // `DefaultHasher::new()` is SipHash-1-3 with the zero key in every std release so far.
    let mut rng = Rng::new([4; 32]);
    for len in [0usize, 1, 8, 20, 33, 100] {
        let mut data = std::vec![0u8; len];
        rng.fill_bytes(&mut data);
        let mut ours = SipHasher::<1, 3>::new(0, 0);
        ours.write(&data);
        let mut theirs = std::hash::DefaultHasher::new();
        theirs.write(&data);
        assert_eq!(ours.finish(), theirs.finish(), "length {len}");
    }
}

#[test]
fn keyed_state_depends_on_key() {
    let a = KeyedState::new([1; 16]);
    let b = KeyedState::new([2; 16]);
    let id = [9u8; 20];
    assert_eq!(a.hash_one(id), KeyedState::new([1; 16]).hash_one(id));
    assert_ne!(a.hash_one(id), b.hash_one(id));
}

#[test]
fn rng_is_deterministic_and_seed_dependent() {
    let draw = |seed| {
        let mut r = Rng::new(seed);
        let mut out = [0u8; 64];
        r.fill_bytes(&mut out);
        out
    };
    assert_eq!(draw([1; 32]), draw([1; 32]));
    assert_ne!(draw([1; 32]), draw([2; 32]));
}

#[test]
fn rng_stream_is_sha1_counter_mode() {
    // Block i = SHA-1(seed ‖ 0x00 ‖ i big-endian), computed here independently.
    let seed = [0x5a; 32];
    let mut expected = std::vec::Vec::new();
    for i in 0u64..3 {
        let mut input = std::vec::Vec::from(seed);
        input.push(0);
        input.extend_from_slice(&i.to_be_bytes());
        expected.extend_from_slice(&sha1_smol::Sha1::from(&input).digest().bytes());
    }
    let mut r = Rng::new(seed);
    let mut got = [0u8; 60];
    r.fill_bytes(&mut got);
    assert_eq!(&got[..], &expected[..]);
}

#[test]
fn small_draws_concatenate_to_the_stream() {
    let mut whole = Rng::new([7; 32]);
    let mut expected = [0u8; 100];
    whole.fill_bytes(&mut expected);

    let mut pieces = Rng::new([7; 32]);
    let mut got = std::vec::Vec::new();
    let sizes = [1usize, 3, 4, 19, 20, 21, 0, 2, 8, 22];
    for n in sizes {
        let mut buf = std::vec![0u8; n];
        pieces.fill_bytes(&mut buf);
        got.extend_from_slice(&buf);
    }
    assert_eq!(&got[..], &expected[..got.len()]);
    // next_u32/next_u64 are little-endian reads of the same stream.
    let mut a = Rng::new([8; 32]);
    let mut b = Rng::new([8; 32]);
    let mut bytes = [0u8; 12];
    a.fill_bytes(&mut bytes);
    assert_eq!(b.next_u32().to_le_bytes(), bytes[..4]);
    assert_eq!(b.next_u64().to_le_bytes(), bytes[4..]);
}

#[test]
fn below_is_in_range_and_roughly_uniform() {
    let mut r = Rng::new([9; 32]);
    assert_eq!(below(&mut r, 0), 0);
    assert_eq!(below(&mut r, 1), 0);
    let mut counts = [0u32; 6];
    for _ in 0..60_000 {
        let v = below(&mut r, 6);
        counts[v] += 1;
    }
    for c in counts {
        // Expected 10 000 each; 5 standard deviations is about 450.
        assert!((9_500..=10_500).contains(&c), "{counts:?}");
    }
}

#[test]
fn output_bits_are_balanced() {
    let mut r = Rng::new([0; 32]);
    let mut ones = 0u32;
    for _ in 0..1000 {
        ones += r.next_u64().count_ones();
    }
    // 64 000 bits, expected 32 000 ones, standard deviation about 126.
    assert!((31_400..=32_600).contains(&ones), "{ones}");
}

#[test]
fn debug_hides_the_key() {
    let s = std::format!(
        "{:?} {:?}",
        Rng::new([0xab; 32]),
        KeyedState::new([0xcd; 16])
    );
    assert!(!s.contains("171") && !s.contains("ab"), "{s}");
}

/// Lemire's method as first written: the rejection threshold computed on every draw.
fn below_reference(rng: &mut impl RngCore, n: usize) -> usize {
    let n = n as u64;
    if n == 0 {
        return 0;
    }
    let threshold = n.wrapping_neg() % n;
    loop {
        let product = u128::from(rng.next_u64()) * u128::from(n);
        if product as u64 >= threshold {
            return (product >> 64) as usize;
        }
    }
}

#[test]
fn below_skips_the_division_without_changing_results() {
    // Same generator state in, same value and same number of draws out, for bounds where
    // rejection is common (just above a power of two, near 2^63) and rare.
    let bounds = [
        1,
        2,
        3,
        6,
        7,
        200,
        1 << 20,
        (1 << 62) + 1,
        (1 << 63) + 1,
        usize::MAX,
    ];
    for n in bounds {
        let mut a = ChoiceRng(n as u64);
        let mut b = ChoiceRng(n as u64);
        for _ in 0..2_000 {
            assert_eq!(below(&mut a, n), below_reference(&mut b, n), "n = {n}");
        }
        assert_eq!(a.next_u64(), b.next_u64(), "n = {n}: same draws");
    }
}

#[test]
fn choice_rng_is_seeded_from_the_node_generator_and_balanced() {
    let mut node = Rng::new([5; 32]);
    let mut a = ChoiceRng::seeded_from(&mut node);
    let mut b = ChoiceRng::seeded_from(&mut node);
    // Each choice takes a fresh seed: two in a row do not draw the same values.
    assert_ne!(a.next_u64(), b.next_u64());
    // The same node seed gives the same choices (determinism).
    let mut again = Rng::new([5; 32]);
    let mut c = ChoiceRng::seeded_from(&mut again);
    let mut a2 = ChoiceRng::seeded_from(&mut Rng::new([5; 32]));
    assert_eq!(c.next_u64(), a2.next_u64());
    let mut ones = 0u32;
    for _ in 0..1000 {
        ones += a.next_u64().count_ones();
    }
    // 64 000 bits, expected 32 000 ones, standard deviation about 126.
    assert!((31_400..=32_600).contains(&ones), "{ones}");
    let mut bytes = [0u8; 11];
    a.fill_bytes(&mut bytes);
    assert!(bytes.iter().any(|&x| x != 0));
    assert!(!std::format!("{a:?}").contains(&std::format!("{}", a.0)));
}

#[test]
fn choice_rng_and_test_rng_draw_the_same_splitmix64_stream() {
    // The reference's first output for seed 0, from both generators.
    let mut c = ChoiceRng(0);
    let mut t = crate::test_rng::TestRng(0);
    assert_eq!(c.next_u64(), 0xe220_a839_7b1d_cdaf);
    assert_eq!(t.next_u64(), 0xe220_a839_7b1d_cdaf);
    // Bytes are whole words, little-endian; a partial last chunk takes a word's low bytes.
    let (mut cb, mut tb) = ([0u8; 11], [0u8; 11]);
    c.fill_bytes(&mut cb);
    t.fill_bytes(&mut tb);
    assert_eq!(cb, tb);
    assert_eq!(cb[..8], 0x6e78_9e6a_a1b9_65f4_u64.to_le_bytes());
    let mut third = ChoiceRng(0);
    third.next_u64();
    third.next_u64();
    assert_eq!(cb[8..], third.next_u64().to_le_bytes()[..3]);
    // next_u32 is the high half of the next word.
    let high = u32::try_from(third.next_u64() >> 32).unwrap();
    assert_eq!(c.next_u32(), high);
    assert_eq!(t.next_u32(), high);
}

#[test]
fn streams_of_one_seed_are_distinct_sha1_counter_streams() {
    let seed = [0x42; 32];
    let block = |stream: u8, i: u64| {
        let mut h = sha1_smol::Sha1::new();
        h.update(&seed);
        h.update(&[stream]);
        h.update(&i.to_be_bytes());
        h.digest().bytes()
    };
    let draw = |mut r: SeededRng| {
        let mut b = [0u8; 40];
        r.fill_bytes(&mut b);
        b
    };
    // `new` is stream 0; stream 1 is its own counter-mode stream.
    assert_eq!(
        draw(SeededRng::new(seed)),
        draw(SeededRng::with_stream(seed, 0))
    );
    let one = draw(SeededRng::with_stream(seed, 1));
    assert_eq!(one[..20], block(1, 0));
    assert_eq!(one[20..], block(1, 1));
    let zero = draw(SeededRng::new(seed));
    assert!(!zero.windows(8).any(|w| one.windows(8).any(|v| v == w)));
}

/// The per-reply generator is a function of the seed alone, differs between seeds, does not
/// repeat its outputs, and its key comes from a stream of its own (the node's stream 0 is not
/// consumed by it).
#[test]
fn reply_rng_is_keyed_by_the_seed_and_leaves_the_main_stream_alone() {
    let draw = |seed: [u8; 32]| -> std::vec::Vec<u64> {
        let mut r = ReplyRng::new(seed);
        (0..64).map(|_| r.next_u64()).collect()
    };
    let a = draw([1; 32]);
    assert_eq!(a, draw([1; 32]));
    assert_ne!(a, draw([2; 32]));
    let mut sorted = a.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), a.len());
    // Its key is not the start of the node's own stream.
    let mut main = Rng::new([1; 32]);
    let r = ReplyRng::new([1; 32]);
    assert_ne!((r.k0, r.k1), (main.next_u64(), main.next_u64()));
}

#[test]
fn word_writes_equal_their_little_endian_bytes() {
    let mut rng = Rng::new([6; 32]);
    // Whole words on an empty state, and after 0 to 7 pending bytes (the byte path).
    for lead in 0usize..8 {
        let mut head = std::vec![0u8; lead];
        rng.fill_bytes(&mut head);
        let (a, b, c) = (rng.next_u64(), rng.next_u64(), rng.next_u32());
        let d = u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64());
        let (k0, k1) = (rng.next_u64(), rng.next_u64());
        let mut words = SipHasher::<1, 3>::new(k0, k1);
        words.write(&head);
        words.write_u128(d);
        words.write_u64(a);
        words.write_u32(c);
        words.write_u64(b);
        words.write_u128(d);
        let mut bytes = SipHasher::<1, 3>::new(k0, k1);
        bytes.write(&head);
        bytes.write(&d.to_le_bytes());
        bytes.write(&a.to_le_bytes());
        bytes.write(&c.to_le_bytes());
        bytes.write(&b.to_le_bytes());
        bytes.write(&d.to_le_bytes());
        assert_eq!(words.finish(), bytes.finish(), "after {lead} bytes");
    }
}

#[test]
fn an_id_hashes_as_its_twenty_bytes() {
    let mut rng = Rng::new([7; 32]);
    for _ in 0..20 {
        let mut bytes = [0u8; 20];
        rng.fill_bytes(&mut bytes);
        let state = KeyedState::new([3; 16]);
        let mut written = state.build_hasher();
        written.write(&bytes);
        assert_eq!(state.hash_one(crate::id::Id::new(bytes)), written.finish());
    }
}

#[test]
fn short_one_shot_equals_the_slice_one_shot() {
    let (k0, k1) = reference_key();
    let message: [u8; 16] = core::array::from_fn(|i| i as u8);
    for n in 0..8u8 {
        let mut word = [0u8; 8];
        word[..usize::from(n)].copy_from_slice(&message[..usize::from(n)]);
        assert_eq!(
            SipHasher::<2, 4>::hash_short(k0, k1, u64::from_le_bytes(word), n),
            SIPHASH24_VECTORS[usize::from(n)],
            "length {n}"
        );
    }
}
