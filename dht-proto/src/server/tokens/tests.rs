use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use rand_core::RngCore;

use super::*;
use crate::rng::Rng;

fn v4(x: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(x))
}

fn word(t: Token) -> u64 {
    u64::from_be_bytes(*t.as_bytes())
}

#[test]
fn valid_across_one_rotation_not_two() {
    let mut rng = Rng::new([1; 32]);
    let mut tokens = Tokens::new(&mut rng);
    let ip = v4(0xcb00_7107);
    let t = tokens.issue(ip);
    assert!(tokens.verify(ip, t.as_bytes()));
    tokens.rotate(&mut rng);
    assert!(tokens.verify(ip, t.as_bytes()), "one rotation");
    let t2 = tokens.issue(ip);
    assert_ne!(t, t2, "a rotation changes the token");
    tokens.rotate(&mut rng);
    assert!(!tokens.verify(ip, t.as_bytes()), "two rotations");
    assert!(tokens.verify(ip, t2.as_bytes()));
}

#[test]
fn rejected_for_other_addresses_and_bad_lengths() {
    let mut rng = Rng::new([2; 32]);
    let tokens = Tokens::new(&mut rng);
    let ip = v4(0x0102_0304);
    let t = tokens.issue(ip);
    for _ in 0..2000u32 {
        let other = v4(rng.next_u32());
        if other != ip {
            assert!(!tokens.verify(other, t.as_bytes()), "{other}");
        }
    }
    let v6: IpAddr = IpAddr::V6("2001:db8::1".parse().unwrap());
    assert!(!tokens.verify(v6, t.as_bytes()));
    assert!(!tokens.verify(ip, &t.as_bytes()[..7]));
    let mut long = t.as_bytes().to_vec();
    long.push(0);
    assert!(!tokens.verify(ip, &long));
    assert!(!tokens.verify(ip, &[]));
}

#[test]
fn mapped_ipv6_is_the_ipv4_address() {
    let mut rng = Rng::new([3; 32]);
    let tokens = Tokens::new(&mut rng);
    let v4 = Ipv4Addr::new(198, 51, 100, 9);
    let mapped = IpAddr::V6(v4.to_ipv6_mapped());
    assert_eq!(tokens.issue(IpAddr::V4(v4)), tokens.issue(mapped));
    assert!(tokens.verify(mapped, tokens.issue(IpAddr::V4(v4)).as_bytes()));
    // The IPv4-compatible form (::a.b.c.d) is a different, plain IPv6 address.
    let compat = IpAddr::V6(Ipv6Addr::from(u128::from(u32::from(v4))));
    assert_ne!(tokens.issue(IpAddr::V4(v4)), tokens.issue(compat));
}

#[test]
fn secrets_differ_between_nodes() {
    let a = Tokens::new(&mut Rng::new([4; 32]));
    let b = Tokens::new(&mut Rng::new([5; 32]));
    let ip = v4(0x0808_0808);
    assert_ne!(a.issue(ip), b.issue(ip));
    assert!(!b.verify(ip, a.issue(ip).as_bytes()));
}

#[test]
fn tokens_are_not_affine_in_the_address() {
    // A CRC (or any affine map over GF(2)) satisfies t(a) ^ t(b) ^ t(c) == t(a ^ b ^ c) for
    // equal-length inputs; that is how known tokens forge new ones. A keyed hash must not.
    let mut rng = Rng::new([6; 32]);
    let tokens = Tokens::new(&mut rng);
    for _ in 0..1000 {
        let (a, b, c) = (rng.next_u32(), rng.next_u32(), rng.next_u32());
        let combined =
            word(tokens.issue(v4(a))) ^ word(tokens.issue(v4(b))) ^ word(tokens.issue(v4(c)));
        assert_ne!(combined, word(tokens.issue(v4(a ^ b ^ c))));
    }
    // Nor is the difference of two tokens a function of the difference of the addresses.
    let d = 0x0000_0100u32;
    let (x, y) = (rng.next_u32(), rng.next_u32());
    assert_ne!(
        word(tokens.issue(v4(x))) ^ word(tokens.issue(v4(x ^ d))),
        word(tokens.issue(v4(y))) ^ word(tokens.issue(v4(y ^ d)))
    );
}

#[test]
fn the_affinity_check_catches_crc_tokens() {
    // The relation the previous test rules out does hold for CRC32-C(secret ‖ ip) tokens, so
    // that test can fail.
    let crc_token = |ip: u32| {
        let mut input = [0x5au8; 24];
        input[20..].copy_from_slice(&ip.to_be_bytes());
        crate::bep42::crc32c(&input)
    };
    let (a, b, c) = (0x0102_0304, 0xc0a8_0001, 0x0808_0808);
    assert_eq!(
        crc_token(a) ^ crc_token(b) ^ crc_token(c),
        crc_token(a ^ b ^ c)
    );
}

#[test]
fn one_address_bit_flips_half_the_token_bits() {
    let mut rng = Rng::new([7; 32]);
    let tokens = Tokens::new(&mut rng);
    let mut per_output_bit = [0u32; 64];
    let mut total = 0u32;
    let trials = 32 * 100;
    for trial in 0..trials {
        let ip = rng.next_u32();
        let flipped = ip ^ (1 << (trial % 32));
        let diff = word(tokens.issue(v4(ip))) ^ word(tokens.issue(v4(flipped)));
        total += diff.count_ones();
        for (bit, count) in per_output_bit.iter_mut().enumerate() {
            *count += ((diff >> bit) & 1) as u32;
        }
    }
    // 3200 trials × 64 bits: expected 102 400 flipped bits, standard deviation about 226.
    assert!((101_000..=103_800).contains(&total), "{total}");
    // Every output bit flips about half of the time (expected 1600, sd 28).
    for (bit, count) in per_output_bit.iter().enumerate() {
        assert!((1_450..=1_750).contains(count), "bit {bit}: {count}");
    }
}

#[test]
fn knowing_many_tokens_does_not_reveal_a_new_one() {
    // Tokens of 4096 addresses; the best an attacker can do with them for a new address is
    // guess. Check that no known token equals the new one and that the new token agrees with
    // each known one on about half of its bits (no correlation to exploit).
    let mut rng = Rng::new([8; 32]);
    let tokens = Tokens::new(&mut rng);
    let target = v4(0xc633_6401);
    let secret = word(tokens.issue(target));
    let mut agreeing = 0u64;
    let n = 4096u32;
    for i in 0..n {
        let known = word(tokens.issue(v4(0xc633_6400 ^ (i << 8) ^ 0x02)));
        assert_ne!(known, secret);
        agreeing += u64::from((!(known ^ secret)).count_ones());
    }
    // Expected 131 072 agreeing bits, standard deviation 362.
    assert!((129_500..=132_700).contains(&agreeing), "{agreeing}");
}

#[test]
fn debug_hides_secrets() {
    let tokens = Tokens::new(&mut Rng::new([9; 32]));
    assert_eq!(std::format!("{tokens:?}"), "Tokens { .. }");
}

proptest! {
    #[test]
    fn issued_tokens_verify_only_for_their_address(
        seed in any::<[u8; 32]>(),
        a in any::<u128>(),
        b in any::<u128>(),
        v6 in any::<bool>(),
        junk in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let mut rng = Rng::new(seed);
        let tokens = Tokens::new(&mut rng);
        let ip = |x: u128| if v6 { IpAddr::V6(Ipv6Addr::from(x)) } else { v4(x as u32) };
        let (ia, ib) = (ip(a), ip(b));
        let t = tokens.issue(ia);
        prop_assert!(tokens.verify(ia, t.as_bytes()));
        if tokens.issue(ib) != t {
            prop_assert!(!tokens.verify(ib, t.as_bytes()));
        }
        if junk.as_slice() != t.as_bytes() {
            prop_assert!(!tokens.verify(ia, &junk));
        }
    }
}

#[test]
fn token_is_siphash24_of_family_and_address() {
    let mut rng = Rng::new([9; 32]);
    let tokens = Tokens::new(&mut rng);
    let (k0, k1) = tokens.current.split_at(8);
    let key = |s: &[u8]| u64::from_le_bytes(s.try_into().unwrap());
    let (k0, k1) = (key(k0), key(k1));
    let v4 = Ipv4Addr::new(203, 0, 113, 77);
    let mut message = std::vec![4u8];
    message.extend_from_slice(&v4.octets());
    assert_eq!(
        tokens.issue(IpAddr::V4(v4)).as_bytes(),
        &SipHasher::<2, 4>::hash(k0, k1, &message).to_le_bytes()
    );
    let v6: Ipv6Addr = "2001:db8::77".parse().unwrap();
    let mut message = std::vec![6u8];
    message.extend_from_slice(&v6.octets());
    assert_eq!(
        tokens.issue(IpAddr::V6(v6)).as_bytes(),
        &SipHasher::<2, 4>::hash(k0, k1, &message).to_le_bytes()
    );
}
