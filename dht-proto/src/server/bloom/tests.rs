use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;

/// The BEP 33 test vector: the filter of 192.0.2.0-192.0.2.255 and 2001:db8::-2001:db8::3e7.
const VECTOR_HEX: &str = "
    F6C3F5EA A07FFD91 BDE89F77 7F26FB2B FF37BDB8 FB2BBAA2 FD3DDDE7 BACFFF75 EE7CCBAE
    FE5EEDB1 FBFAFF67 F6ABFF5E 43DDBCA3 FD9B9FFD F4FFD3E9 DFF12D1B DF59DB53 DBE9FA5B
    7FF3B8FD FCDE1AFB 8BEDD7BE 2F3EE71E BBBFE93B CDEEFE14 8246C2BC 5DBFF7E7 EFDCF24F
    D8DC7ADF FD8FFFDF DDFFF7A4 BBEEDF5C B95CE81F C7FCFF1F F4FFFFDF E5F7FDCB B7FD79B3
    FA1FC77B FE07FFF9 05B7B7FF C7FEFEFF E0B8370B B0CD3F5B 7F2BD93F EB4386CF DD6F7FD5
    BFAF2E9E BFFFFEEC D67ADBF7 C67F17EF D5D75EBA 6FFEBA7F FF47A91E B1BFBB53 E8ABFB57
    62ABE8FF 237279BF EFBFEEF5 FFC5FEBF DFE5ADFF ADFEE1FB 737FFFFB FD9F6AEF FEEE76B6
    FD8F72EF";

fn vector_bytes() -> [u8; BLOOM_LEN] {
    let digits: std::vec::Vec<u8> = VECTOR_HEX
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .map(|c| (c as char).to_digit(16).unwrap() as u8)
        .collect();
    assert_eq!(digits.len(), BLOOM_LEN * 2);
    let mut out = [0u8; BLOOM_LEN];
    for (o, pair) in out.iter_mut().zip(digits.chunks(2)) {
        *o = pair[0] << 4 | pair[1];
    }
    out
}

fn vector_filter() -> Bloom {
    let mut bloom = Bloom::new();
    for i in 0..=255u8 {
        bloom.insert(IpAddr::V4(Ipv4Addr::new(192, 0, 2, i)));
    }
    let base = u128::from("2001:db8::".parse::<Ipv6Addr>().unwrap());
    for i in 0..=0x3e7u128 {
        bloom.insert(IpAddr::V6(Ipv6Addr::from(base + i)));
    }
    bloom
}

#[test]
fn bep33_test_vector_bytes() {
    assert_eq!(vector_filter().as_bytes(), &vector_bytes());
}

#[test]
fn bep33_test_vector_estimate() {
    let estimate = vector_filter().estimate();
    assert!((estimate - 1224.9308).abs() < 0.0001, "{estimate}");
    assert_eq!(Bloom::from_bytes(vector_bytes()).estimate(), estimate);
}

#[test]
fn bit_indices_follow_the_pseudocode() {
    // Independent re-statement of BEP 33's insertIP for one address.
    let ip = [192u8, 168, 1, 1];
    let h = sha1_smol::Sha1::from(ip).digest().bytes();
    let i1 = (h[0] as usize | (h[1] as usize) << 8) % 2048;
    let i2 = (h[2] as usize | (h[3] as usize) << 8) % 2048;
    let mut expected = [0u8; BLOOM_LEN];
    expected[i1 / 8] |= 1 << (i1 % 8);
    expected[i2 / 8] |= 1 << (i2 % 8);
    let mut bloom = Bloom::new();
    bloom.insert(IpAddr::V4(Ipv4Addr::from(ip)));
    assert_eq!(bloom.as_bytes(), &expected);
    assert!(bloom.contains(IpAddr::V4(Ipv4Addr::from(ip))));
}

#[test]
fn mapped_addresses_count_as_ipv4() {
    let v4 = Ipv4Addr::new(203, 0, 113, 1);
    let mut a = Bloom::new();
    a.insert(IpAddr::V4(v4));
    let mut b = Bloom::new();
    b.insert(IpAddr::V6(v4.to_ipv6_mapped()));
    assert_eq!(a, b);
}

#[test]
fn edge_estimates() {
    assert_eq!(Bloom::new().estimate(), 0.0);
    assert!(Bloom::new().is_empty());
    let full = Bloom::from_bytes([0xff; BLOOM_LEN]);
    let e = full.estimate();
    assert!(e.is_finite() && (7_700.0..7_900.0).contains(&e), "{e}");
    // One bit set: c = 2047, estimate ln(2047/2048) / (2 ln(2047/2048)) = 0.5.
    let mut one = [0u8; BLOOM_LEN];
    one[0] = 1;
    assert!((Bloom::from_bytes(one).estimate() - 0.5).abs() < 1e-12);
    assert_eq!(Bloom::from_slice(&[0; 255]), None);
    assert_eq!(Bloom::from_slice(&[0; 256]), Some(Bloom::new()));
}

#[test]
fn ln_matches_known_values() {
    let cases = [
        (1.0, 0.0),
        (2.0, core::f64::consts::LN_2),
        (core::f64::consts::E, 1.0),
        (10.0, core::f64::consts::LN_10),
        (0.5, -core::f64::consts::LN_2),
        (1e-300, -690.7755278982137),
        (2047.0 / 2048.0, -4.884004981088745e-4),
        (5e-324, -744.4400719213812),
    ];
    for (x, expected) in cases {
        let got = ln(x);
        assert!(
            (got - expected).abs() <= 1e-15 * expected.abs().max(1.0),
            "ln({x}) = {got}, expected {expected}"
        );
    }
    // Against std's logarithm over a wide sweep.
    let mut x = 1e-12f64;
    while x < 1e12 {
        let (got, expected) = (ln(x), x.ln());
        assert!(
            (got - expected).abs() <= 4.0 * f64::EPSILON * expected.abs().max(1.0),
            "ln({x}) = {got}, std {expected}"
        );
        x *= 1.0137;
    }
    assert!(ln(0.0).is_nan() && ln(-1.0).is_nan() && ln(f64::NAN).is_nan());
    assert_eq!(ln(f64::INFINITY), f64::INFINITY);
}

#[test]
fn union_counts_shared_addresses_once() {
    let mut a = Bloom::new();
    let mut b = Bloom::new();
    for i in 0..300u32 {
        a.insert(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)));
        b.insert(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i + 150)));
    }
    a.union_with(&b);
    let e = a.estimate();
    // 450 distinct addresses; the estimator's error at this load is a few percent.
    assert!((420.0..480.0).contains(&e), "{e}");
}

proptest! {
    #[test]
    fn estimate_never_decreases_and_members_are_contained(
        ips in proptest::collection::vec(any::<u32>(), 1..400),
    ) {
        let mut bloom = Bloom::new();
        let mut last = bloom.estimate();
        for &ip in &ips {
            bloom.insert(IpAddr::V4(Ipv4Addr::from(ip)));
            let e = bloom.estimate();
            prop_assert!(e >= last);
            prop_assert!(e.is_finite());
            last = e;
        }
        for &ip in &ips {
            prop_assert!(bloom.contains(IpAddr::V4(Ipv4Addr::from(ip))));
        }
    }

    #[test]
    fn estimate_is_monotonic_in_bits(bytes in proptest::collection::vec(any::<u8>(), 256), bit in 0usize..2048) {
        let mut arr = [0u8; BLOOM_LEN];
        arr.copy_from_slice(&bytes);
        let before = Bloom::from_bytes(arr).estimate();
        arr[bit / 8] |= 1 << (bit % 8);
        prop_assert!(Bloom::from_bytes(arr).estimate() >= before);
    }
}
