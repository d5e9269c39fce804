//! BEP 42 node id security: ids tied to the node's external IP address.
//!
//! A BEP 42 id starts with 21 bits of `CRC32-C((ip & mask) | r << top)`, where `r` is three
//! random bits that also appear in the id's last byte. Masking keeps the low bits of each octet
//! (more of them towards the end of the address), so one IP address yields eight prefixes at most
//! and a /8 block yields few more; placing many nodes next to one target takes many addresses.
//!
//! Addresses on local networks are exempt ([`is_exempt`]): their ids cannot be checked. Whether
//! to enforce the rule (on table entries, on storage targets or not at all) is the caller's
//! policy; this module only computes.
//!
//! ```
//! use core::net::{IpAddr, Ipv4Addr};
//! use dht_proto::bep42;
//!
//! let ip = IpAddr::V4(Ipv4Addr::new(124, 31, 75, 21));
//! let id: dht_proto::Id = "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401".parse().unwrap();
//! assert!(bep42::id_prefix_matches(&id, ip));
//! ```

use core::net::IpAddr;

use rand_core::RngCore;

use crate::id::{ID_LEN, Id};

/// Mask applied to the four octets of an IPv4 address.
const V4_MASK: [u8; 4] = [0x03, 0x0f, 0x3f, 0xff];
/// Mask applied to the first eight octets of an IPv6 address.
const V6_MASK: [u8; 8] = [0x01, 0x03, 0x07, 0x0f, 0x1f, 0x3f, 0x7f, 0xff];

/// Whether `id` carries the BEP 42 prefix for `ip`: its first 21 bits equal those of the CRC32-C
/// of the masked address combined with `r`, the low three bits of the id's last byte.
///
/// IPv4-mapped IPv6 addresses are checked as the IPv4 address. Exempt addresses get no special
/// treatment here; see [`is_exempt`] and [`id_is_acceptable`].
pub fn id_prefix_matches(id: &Id, ip: IpAddr) -> bool {
    let bytes = id.as_bytes();
    let [.., last] = bytes;
    let crc = prefix_crc(ip, last & 0x07).to_be_bytes();
    let ([a, b, c, ..], [x, y, z, _]) = (bytes, crc);
    *a == x && *b == y && (c & 0xf8) == (z & 0xf8)
}

/// Whether `id` is acceptable for `ip`: `ip` is exempt or the prefix matches.
pub fn id_is_acceptable(id: &Id, ip: IpAddr) -> bool {
    is_exempt(ip) || id_prefix_matches(id, ip)
}

/// A node id that is valid for `ip` under BEP 42.
///
/// `rand` becomes the id's last byte; its low three bits are the `r` of the BEP. Bits 21 to 151
/// come from `rng`.
pub fn generate_id(ip: IpAddr, rand: u8, rng: &mut impl RngCore) -> Id {
    let crc = prefix_crc(ip, rand & 0x07).to_be_bytes();
    let mut bytes = [0u8; ID_LEN];
    rng.fill_bytes(&mut bytes);
    let ([a, b, c, .., last], [x, y, z, _]) = (&mut bytes, crc);
    *a = x;
    *b = y;
    *c = (z & 0xf8) | (*c & 0x07);
    *last = rand;
    Id::new(bytes)
}

/// Whether `ip` is on a local network and therefore exempt from the id check.
///
/// BEP 42 lists 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 169.254.0.0/16 and 127.0.0.0/8. The
/// IPv6 counterparts are exempt too: `::1`, unique-local fc00::/7 and link-local fe80::/10.
/// IPv4-mapped IPv6 addresses are judged as the IPv4 address.
pub fn is_exempt(ip: IpAddr) -> bool {
    use crate::config::AddressClass;
    matches!(
        AddressClass::of(ip),
        AddressClass::Loopback | AddressClass::Private
    )
}

/// CRC32-C (Castagnoli, reflected polynomial 0x82F63B78) of `data`, as used by BEP 42.
///
/// ```
/// assert_eq!(dht_proto::bep42::crc32c(b"123456789"), 0xe306_9283);
/// ```
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            // Shift right; where a one falls off, fold in the polynomial.
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0x82f6_3b78 & mask);
        }
    }
    !crc
}

/// The CRC32-C of the masked address with `r` in its top three bits.
fn prefix_crc(ip: IpAddr, r: u8) -> u32 {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let mut octets = v4.octets();
            for (o, m) in octets.iter_mut().zip(V4_MASK) {
                *o &= m;
            }
            if let Some(first) = octets.first_mut() {
                *first |= r << 5;
            }
            crc32c(&octets)
        }
        IpAddr::V6(v6) => {
            let mut octets = [0u8; 8];
            for ((o, m), a) in octets.iter_mut().zip(V6_MASK).zip(v6.octets()) {
                *o = a & m;
            }
            if let Some(first) = octets.first_mut() {
                *first |= r << 5;
            }
            crc32c(&octets)
        }
    }
}

/// IPv4-mapped IPv6 addresses as IPv4; others unchanged.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

#[cfg(test)]
mod tests {
    use core::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::rng::Rng;

    /// The five examples of BEP 42: address, `rand`, example id.
    const VECTORS: [([u8; 4], u8, &str); 5] = [
        (
            [124, 31, 75, 21],
            1,
            "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401",
        ),
        (
            [21, 75, 31, 124],
            86,
            "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256",
        ),
        (
            [65, 23, 51, 170],
            22,
            "a5d43220bc8f112a3d426c84764f8c2a1150e616",
        ),
        (
            [84, 124, 73, 14],
            65,
            "1b0321dd1bb1fe518101ceef99462b947a01ff41",
        ),
        (
            [43, 213, 53, 83],
            90,
            "e56f6cbf5b7c4be0237986d5243b87aa6d51305a",
        ),
    ];

    fn vector_id(s: &str) -> Id {
        let s: std::string::String = s.chars().filter(|c| !c.is_whitespace()).collect();
        s.parse().unwrap()
    }

    #[test]
    fn crc32c_check_values() {
        // The standard check value and the iSCSI (RFC 3720) test pattern of 32 zero bytes.
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn bep42_vectors_match() {
        for (ip, rand, id) in VECTORS {
            let ip = IpAddr::V4(Ipv4Addr::from(ip));
            let id = vector_id(id);
            assert!(id_prefix_matches(&id, ip), "{ip}");
            assert_eq!(id.as_bytes()[19], rand);
            // Any flip within the first 21 bits breaks the match.
            for bit in 0..21 {
                let flipped = id.with_bit(bit, !id.bit(bit));
                assert!(!id_prefix_matches(&flipped, ip), "{ip} bit {bit}");
            }
            // Bits beyond the prefix are free.
            for bit in 21..152 {
                assert!(id_prefix_matches(&id.with_bit(bit, !id.bit(bit)), ip));
            }
        }
    }

    #[test]
    fn generated_ids_match_the_vectors_prefix() {
        let mut rng = Rng::new([42; 32]);
        for (ip, rand, id) in VECTORS {
            let ip = IpAddr::V4(Ipv4Addr::from(ip));
            let expected = vector_id(id);
            let generated = generate_id(ip, rand, &mut rng);
            assert_eq!(generated.as_bytes()[19], rand);
            assert!(generated.common_prefix_len(&expected) >= 21, "{ip}");
            assert!(id_prefix_matches(&generated, ip));
        }
    }

    #[test]
    fn mapped_addresses_are_the_ipv4_address() {
        let v4 = Ipv4Addr::new(124, 31, 75, 21);
        let mapped = IpAddr::V6(v4.to_ipv6_mapped());
        let id = vector_id(VECTORS[0].2);
        assert!(id_prefix_matches(&id, mapped));
        assert!(is_exempt(IpAddr::V6(
            Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped()
        )));
    }

    #[test]
    fn ipv6_ids_round_trip_and_ignore_the_low_half() {
        let mut rng = Rng::new([6; 32]);
        let ip: Ipv6Addr = "2001:db8:1234:5678:9abc:def0:1234:5678".parse().unwrap();
        for rand in 0..=255u8 {
            let id = generate_id(IpAddr::V6(ip), rand, &mut rng);
            assert!(id_prefix_matches(&id, IpAddr::V6(ip)));
            // The interface half of the address is not part of the check.
            let other: Ipv6Addr = "2001:db8:1234:5678::1".parse().unwrap();
            assert!(id_prefix_matches(&id, IpAddr::V6(other)));
        }
    }

    #[test]
    fn ipv6_prefix_uses_the_masked_high_half() {
        // Independent computation of the IPv6 formula with 64-bit integer arithmetic.
        let ip: Ipv6Addr = "2a01:e35:2f29:2e0::1".parse().unwrap();
        let high = u64::from_be_bytes(ip.octets()[..8].try_into().unwrap());
        for r in 0..8u64 {
            let value = (high & 0x0103_070f_1f3f_7fff) | (r << 61);
            let crc = crc32c(&value.to_be_bytes());
            let mut id = [0u8; 20];
            id[..4].copy_from_slice(&crc.to_be_bytes());
            id[19] = r as u8;
            assert!(id_prefix_matches(&Id::new(id), IpAddr::V6(ip)), "r {r}");
        }
    }

    #[test]
    fn ipv4_formula_matches_integer_form() {
        // crc32c((ip & 0x030f3fff) | (r << 29)) over the big-endian u32, as the BEP states it.
        let ip = Ipv4Addr::new(65, 23, 51, 170);
        let r = 22u32 & 7;
        let value = (u32::from(ip) & 0x030f_3fff) | (r << 29);
        let crc = crc32c(&value.to_be_bytes());
        let id = vector_id(VECTORS[2].2);
        assert_eq!(&id.as_bytes()[..2], &crc.to_be_bytes()[..2]);
        assert_eq!(id.as_bytes()[2] & 0xf8, crc.to_be_bytes()[2] & 0xf8);
    }

    #[test]
    fn exempt_ranges() {
        let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
        for ip in [
            v4(10, 0, 0, 1),
            v4(172, 16, 0, 1),
            v4(172, 31, 255, 255),
            v4(192, 168, 1, 1),
            v4(169, 254, 3, 4),
            v4(127, 0, 0, 1),
        ] {
            assert!(is_exempt(ip), "{ip}");
        }
        for ip in [v4(172, 32, 0, 1), v4(8, 8, 8, 8), v4(100, 64, 0, 1)] {
            assert!(!is_exempt(ip), "{ip}");
        }
        for s in ["::1", "fd00::1", "fc00::1", "fe80::1"] {
            assert!(is_exempt(IpAddr::V6(s.parse().unwrap())), "{s}");
        }
        assert!(!is_exempt(IpAddr::V6("2001:db8::1".parse().unwrap())));
        let any = Id::new([0; 20]);
        assert!(id_is_acceptable(&any, v4(192, 168, 0, 1)));
        assert!(!id_is_acceptable(&any, v4(124, 31, 75, 21)));
    }
}
