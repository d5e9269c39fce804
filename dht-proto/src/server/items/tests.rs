use alloc::string::ToString;
use alloc::vec::Vec;
use core::cell::Cell;
use core::net::{IpAddr, Ipv4Addr};
use core::time::Duration;

use proptest::prelude::*;

use super::*;

const TTL: Duration = DEFAULT_ITEM_TTL;

/// BEP 44 test vectors' public key.
const PUBLIC_KEY: &str = "77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn key(n: u8) -> [u8; 32] {
    [n; 32]
}

/// A stand-in for Ed25519: the "signature" of `message` by `k` is SHA-1(k ‖ message) followed
/// by 44 zero bytes. Counts its calls.
#[derive(Default)]
struct FakeVerifier {
    calls: Cell<u32>,
}

fn fake_sign(k: &[u8; 32], message: &[u8]) -> [u8; 64] {
    let mut h = sha1_smol::Sha1::new();
    h.update(k);
    h.update(message);
    let mut sig = [0u8; 64];
    sig[..20].copy_from_slice(&h.digest().bytes());
    sig
}

impl Ed25519Verifier for FakeVerifier {
    fn verify(&self, public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
        self.calls.set(self.calls.get() + 1);
        fake_sign(public_key, message) == *signature
    }
}

struct Put {
    k: [u8; 32],
    salt: Vec<u8>,
    seq: i64,
    sig: [u8; 64],
    v: Vec<u8>,
    cas: Option<i64>,
}

impl Put {
    fn new(k: u8, salt: &[u8], seq: i64, v: &[u8]) -> Self {
        let k = key(k);
        let sig = fake_sign(&k, &signing_message(salt, seq, v));
        Self {
            k,
            salt: salt.to_vec(),
            seq,
            sig,
            v: v.to_vec(),
            cas: None,
        }
    }

    fn args(&self) -> MutablePut<'_> {
        MutablePut {
            k: &self.k,
            salt: &self.salt,
            seq: self.seq,
            sig: &self.sig,
            v: &self.v,
            cas: self.cas,
        }
    }
}

fn t(secs: u64) -> Instant {
    Instant::from_secs(secs)
}

fn store() -> ItemStore {
    ItemStore::new(100, 100_000, TTL, [1; 16])
}

fn check(s: &ItemStore) {
    assert!(s.items.len() <= s.max_items);
    assert!(s.bytes <= s.max_bytes);
    assert_eq!(s.by_updated.len(), s.items.len());
    let mut bytes = 0;
    for &(updated, target) in &s.by_updated {
        let item = &s.items[&target];
        assert_eq!(item.updated, updated);
        bytes += item.cost();
        match &item.kind {
            Kind::Immutable { v } => assert_eq!(immutable_target(v), target),
            Kind::Mutable { k, salt, .. } => assert_eq!(mutable_target(k, salt), target),
        }
    }
    assert_eq!(bytes, s.bytes);
    let listed = s.sources.check(s.max_per_source, |source, target| {
        usize::from(s.items.get(target).is_some_and(|i| i.source == source))
    });
    assert_eq!(listed, s.items.len());
}

fn ip(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i))
}

/// 200 honest items from 200 addresses, then 70,000 puts from 5 addresses: the honest items
/// stay.
#[test]
fn five_flooders_cannot_evict_two_hundred_honest_items() {
    for (caps, quota) in [((4096, 1 << 20), 64), ((500, 100_000), usize::MAX)] {
        let mut s = ItemStore::new(caps.0, caps.1, TTL, [1; 16]).with_source_quota(quota);
        let v = FakeVerifier::default();
        let honest: Vec<Id> = (0..200)
            .map(|i| {
                let value = alloc::format!("i{i}e");
                s.put_immutable_from(t(1), ip(i), value.as_bytes()).unwrap()
            })
            .collect();
        for n in 0..70_000u32 {
            let value = alloc::format!("{n:0>200}");
            let value = alloc::format!("{}:{value}", value.len());
            let from = ip(1_000_000 + n % 5);
            if n % 2 == 0 {
                s.put_immutable_from(t(2), from, value.as_bytes()).unwrap();
            } else {
                let p = Put::new((n % 251) as u8, &n.to_be_bytes(), 1, value.as_bytes());
                s.put_mutable_from(t(2), from, &p.args(), &v).unwrap();
            }
        }
        check(&s);
        let kept = honest.iter().filter(|h| s.get(t(3), h).is_some()).count();
        assert_eq!(kept, 200, "caps {caps:?}, quota {quota}");
        if quota != usize::MAX {
            assert_eq!(s.source_load(ip(1_000_000)), quota);
        }
    }
}

#[test]
fn a_source_at_its_quota_replaces_its_own_oldest() {
    let mut s = ItemStore::new(100, 100_000, TTL, [1; 16]).with_source_quota(2);
    let other = s.put_immutable_from(t(1), ip(2), b"1:o").unwrap();
    let a = s.put_immutable_from(t(2), ip(1), b"1:a").unwrap();
    let b = s.put_immutable_from(t(3), ip(1), b"1:b").unwrap();
    // A re-put refreshes: `a` becomes the newest.
    s.put_immutable_from(t(4), ip(1), b"1:a").unwrap();
    let c = s.put_immutable_from(t(5), ip(1), b"1:c").unwrap();
    check(&s);
    assert!(s.get(t(6), &a).is_some() && s.get(t(6), &c).is_some());
    assert!(s.get(t(6), &b).is_none());
    assert!(s.get(t(6), &other).is_some());
    // A re-put by another source moves the item to it.
    s.put_immutable_from(t(7), ip(3), b"1:a").unwrap();
    check(&s);
    assert_eq!(s.source_load(ip(1)), 1);
    assert_eq!(s.source_load(ip(3)), 1);
    let mut none = ItemStore::new(100, 100_000, TTL, [1; 16]).with_source_quota(0);
    assert_eq!(
        none.put_immutable_from(t(1), ip(1), b"1:a"),
        Err(PutError::StorageDisabled)
    );
}

#[test]
fn bep44_immutable_vector() {
    assert_eq!(
        immutable_target(b"12:Hello World!").to_string(),
        "e5f96f6f38320f0f33959cb4d3d656452117aadb"
    );
}

#[test]
fn bep44_mutable_vectors() {
    let k: [u8; 32] = hex(PUBLIC_KEY).try_into().unwrap();
    // Test 1: no salt.
    assert_eq!(
        signing_message(b"", 1, b"12:Hello World!"),
        b"3:seqi1e1:v12:Hello World!"
    );
    assert_eq!(
        mutable_target(&k, b"").to_string(),
        "4a533d47ec9c7d95b1ad75f576cffc641853b750"
    );
    // Test 2: salt "foobar".
    assert_eq!(
        signing_message(b"foobar", 1, b"12:Hello World!"),
        b"4:salt6:foobar3:seqi1e1:v12:Hello World!"
    );
    assert_eq!(
        mutable_target(&k, b"foobar").to_string(),
        "411eba73b6f087ca51a3795d9c8c938d365e32c1"
    );
}

#[test]
fn signing_message_integers() {
    assert_eq!(signing_message(b"", 0, b"i1e"), b"3:seqi0e1:vi1e");
    assert_eq!(signing_message(b"", -12, b"0:"), b"3:seqi-12e1:v0:");
    assert_eq!(
        signing_message(b"", i64::MAX, b"le"),
        b"3:seqi9223372036854775807e1:vle"
    );
    assert_eq!(
        signing_message(b"", i64::MIN, b"de"),
        b"3:seqi-9223372036854775808e1:vde"
    );
    let salt = [b'x'; 64];
    let msg = signing_message(&salt, 5, b"1:a");
    assert!(msg.starts_with(b"4:salt64:xxxx"));
    assert!(msg.ends_with(b"x3:seqi5e1:v1:a"));
}

#[test]
fn error_codes() {
    let codes = [
        (PutError::ValueTooBig, 205),
        (PutError::InvalidSignature, 206),
        (PutError::SaltTooBig, 207),
        (PutError::CasMismatch, 301),
        (PutError::SequenceTooOld, 302),
        (PutError::StorageDisabled, 202),
    ];
    for (e, code) in codes {
        assert_eq!(e.code(), code);
        assert!(alloc::format!("{e}").contains(&alloc::format!("{code}")));
    }
}

#[test]
fn immutable_put_and_get() {
    let mut s = store();
    let target = s.put_immutable(t(1), b"12:Hello World!").unwrap();
    assert_eq!(target, immutable_target(b"12:Hello World!"));
    assert_eq!(s.get(t(2), &target).unwrap().value(), b"12:Hello World!");
    assert_eq!(s.len(), 1);
    assert_eq!(s.bytes(), 15);
    // A re-put refreshes.
    s.put_immutable(t(100), b"12:Hello World!").unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s.next_expiry(), Some(t(100) + TTL));
    check(&s);
}

#[test]
fn value_size_limits() {
    let mut s = store();
    let big = alloc::vec![b'x'; MAX_VALUE_LEN + 1];
    assert_eq!(s.put_immutable(t(1), &big), Err(PutError::ValueTooBig));
    assert!(s.put_immutable(t(1), &big[..MAX_VALUE_LEN]).is_ok());
    let v = FakeVerifier::default();
    assert_eq!(
        s.put_mutable(t(1), &Put::new(1, b"", 1, &big).args(), &v),
        Err(PutError::ValueTooBig)
    );
    assert_eq!(
        s.put_mutable(t(1), &Put::new(1, &[0; 65], 1, b"1:a").args(), &v),
        Err(PutError::SaltTooBig)
    );
    // 205 is reported before 207.
    assert_eq!(
        s.put_mutable(t(1), &Put::new(1, &[0; 65], 1, &big).args(), &v),
        Err(PutError::ValueTooBig)
    );
    assert!(
        s.put_mutable(t(1), &Put::new(1, &[0; 64], 1, b"1:a").args(), &v)
            .is_ok()
    );
    // Size errors never reach the verifier.
    assert_eq!(v.calls.get(), 1);
}

#[test]
fn mutable_put_get_and_sequence_rules() {
    let mut s = store();
    let v = FakeVerifier::default();
    let p1 = Put::new(7, b"salt", 1, b"3:one");
    let target = s.put_mutable(t(1), &p1.args(), &v).unwrap();
    assert_eq!(target, mutable_target(&key(7), b"salt"));
    assert_eq!(
        s.get(t(1), &target),
        Some(Item::Mutable {
            k: &key(7),
            salt: b"salt",
            seq: 1,
            sig: &p1.sig,
            v: b"3:one"
        })
    );
    // Higher seq replaces.
    let p2 = Put::new(7, b"salt", 2, b"3:two");
    s.put_mutable(t(2), &p2.args(), &v).unwrap();
    assert_eq!(s.get(t(2), &target).unwrap().value(), b"3:two");
    // Lower seq: 302.
    assert_eq!(
        s.put_mutable(t(3), &p1.args(), &v),
        Err(PutError::SequenceTooOld)
    );
    // Equal seq, different value: 302.
    let p2b = Put::new(7, b"salt", 2, b"5:other");
    assert_eq!(
        s.put_mutable(t(3), &p2b.args(), &v),
        Err(PutError::SequenceTooOld)
    );
    // Equal seq, same value: refresh.
    s.put_mutable(t(50), &p2.args(), &v).unwrap();
    assert_eq!(s.next_expiry(), Some(t(50) + TTL));
    assert_eq!(s.len(), 1);
    // A different salt is a different item.
    s.put_mutable(t(51), &Put::new(7, b"", 1, b"1:x").args(), &v)
        .unwrap();
    assert_eq!(s.len(), 2);
    check(&s);
}

#[test]
fn cas_rules() {
    let mut s = store();
    let v = FakeVerifier::default();
    // No stored item: cas is ignored.
    let mut p = Put::new(1, b"", 5, b"1:a");
    p.cas = Some(99);
    assert!(s.put_mutable(t(1), &p.args(), &v).is_ok());
    let mut next = Put::new(1, b"", 6, b"1:b");
    next.cas = Some(4);
    assert_eq!(
        s.put_mutable(t(2), &next.args(), &v),
        Err(PutError::CasMismatch)
    );
    next.cas = Some(5);
    assert!(s.put_mutable(t(2), &next.args(), &v).is_ok());
    assert_eq!(
        s.get(t(2), &mutable_target(&key(1), b"")).unwrap().value(),
        b"1:b"
    );
}

#[test]
fn signatures_are_checked() {
    let mut s = store();
    let v = FakeVerifier::default();
    let mut p = Put::new(1, b"s", 1, b"1:a");
    p.sig[0] ^= 1;
    assert_eq!(
        s.put_mutable(t(1), &p.args(), &v),
        Err(PutError::InvalidSignature)
    );
    // A signature over another seq, salt or value does not verify.
    let mut p = Put::new(1, b"s", 1, b"1:a");
    p.seq = 2;
    assert_eq!(
        s.put_mutable(t(1), &p.args(), &v),
        Err(PutError::InvalidSignature)
    );
    let mut p = Put::new(1, b"s", 1, b"1:a");
    p.salt = b"t".to_vec();
    assert_eq!(
        s.put_mutable(t(1), &p.args(), &v),
        Err(PutError::InvalidSignature)
    );
    let mut p = Put::new(1, b"s", 1, b"1:a");
    p.v = b"1:b".to_vec();
    assert_eq!(
        s.put_mutable(t(1), &p.args(), &v),
        Err(PutError::InvalidSignature)
    );
    assert!(s.is_empty());
    // A refresh with a bad signature is refused too.
    let good = Put::new(1, b"s", 1, b"1:a");
    s.put_mutable(t(1), &good.args(), &v).unwrap();
    let mut bad = Put::new(1, b"s", 1, b"1:a");
    bad.sig[63] = 1;
    assert_eq!(
        s.put_mutable(t(2), &bad.args(), &v),
        Err(PutError::InvalidSignature)
    );
    assert_eq!(s.next_expiry(), Some(t(1) + TTL));
    // An identical re-put does not need the verifier again.
    let calls = v.calls.get();
    s.put_mutable(t(3), &good.args(), &v).unwrap();
    assert_eq!(v.calls.get(), calls);
    assert_eq!(s.next_expiry(), Some(t(3) + TTL));
}

#[test]
fn items_expire() {
    let mut s = store();
    let a = s.put_immutable(t(0), b"1:a").unwrap();
    let b = s.put_immutable(t(10), b"1:b").unwrap();
    assert!(s.get(t(0) + TTL - Duration::from_millis(1), &a).is_some());
    assert!(s.get(t(0) + TTL, &a).is_none());
    s.expire(t(0) + TTL);
    assert_eq!(s.len(), 1);
    assert!(s.get(t(11), &b).is_some());
    s.expire(t(10) + TTL);
    assert!(s.is_empty());
    assert_eq!(s.bytes(), 0);
    assert_eq!(s.next_expiry(), None);
}

#[test]
fn an_expired_item_does_not_block_a_put() {
    let mut s = store();
    let v = FakeVerifier::default();
    s.put_mutable(t(0), &Put::new(1, b"", 9, b"1:a").args(), &v)
        .unwrap();
    // Not yet swept by `expire`, but dead: a lower seq is accepted as a fresh item.
    let target = s
        .put_mutable(t(0) + TTL, &Put::new(1, b"", 1, b"1:b").args(), &v)
        .unwrap();
    assert_eq!(s.get(t(0) + TTL, &target).unwrap().value(), b"1:b");
    assert_eq!(s.next_expiry(), Some(t(0) + TTL + TTL));
    check(&s);
}

#[test]
fn count_cap_evicts_least_recently_updated() {
    let mut s = ItemStore::new(3, 100_000, TTL, [1; 16]);
    let a = s.put_immutable(t(1), b"1:a").unwrap();
    let b = s.put_immutable(t(2), b"1:b").unwrap();
    let c = s.put_immutable(t(3), b"1:c").unwrap();
    // Refreshing `a` makes `b` the least recently updated.
    s.put_immutable(t(4), b"1:a").unwrap();
    let d = s.put_immutable(t(5), b"1:d").unwrap();
    assert!(s.get(t(5), &b).is_none());
    for x in [a, c, d] {
        assert!(s.get(t(5), &x).is_some());
    }
    assert_eq!(s.len(), 3);
    check(&s);
}

#[test]
fn byte_cap_evicts_until_it_fits() {
    let mut s = ItemStore::new(100, 2500, TTL, [1; 16]);
    let v = |c: u8, n: usize| {
        let mut out = alloc::format!("{n}:").into_bytes();
        out.extend(core::iter::repeat_n(c, n));
        out
    };
    let a = s.put_immutable(t(1), &v(b'a', 996)).unwrap();
    let b = s.put_immutable(t(2), &v(b'b', 996)).unwrap();
    assert_eq!(s.bytes(), 2000);
    // 1000 more bytes do not fit: the oldest goes.
    let c = s.put_immutable(t(3), &v(b'c', 996)).unwrap();
    assert!(s.get(t(3), &a).is_none());
    assert!(s.get(t(3), &b).is_some() && s.get(t(3), &c).is_some());
    assert_eq!(s.bytes(), 2000);
    // Small items fit beside them.
    s.put_immutable(t(4), b"1:x").unwrap();
    assert_eq!(s.len(), 3);
    check(&s);
    // An item bigger than the whole cap is refused.
    let mut tiny = ItemStore::new(10, 10, TTL, [1; 16]);
    assert_eq!(
        tiny.put_immutable(t(1), b"11:hello world"),
        Err(PutError::ValueTooBig)
    );
}

#[test]
fn mutable_update_changes_byte_count() {
    let mut s = ItemStore::new(10, 100, TTL, [1; 16]);
    let v = FakeVerifier::default();
    s.put_mutable(t(1), &Put::new(1, b"ab", 1, b"1:a").args(), &v)
        .unwrap();
    assert_eq!(s.bytes(), 5);
    s.put_mutable(t(2), &Put::new(1, b"ab", 2, b"6:abcdef").args(), &v)
        .unwrap();
    assert_eq!(s.bytes(), 10);
    check(&s);
}

#[test]
fn zero_cap_refuses() {
    let mut s = ItemStore::new(0, 1000, TTL, [1; 16]);
    assert_eq!(
        s.put_immutable(t(1), b"1:a"),
        Err(PutError::StorageDisabled)
    );
    let v = FakeVerifier::default();
    assert_eq!(
        s.put_mutable(t(1), &Put::new(1, b"", 1, b"1:a").args(), &v),
        Err(PutError::StorageDisabled)
    );
    assert!(s.is_empty());
}

#[test]
fn flooding_stays_within_the_documented_bound() {
    let config = Config::new([0; 32]);
    let mut s = ItemStore::from_config(&config, [2; 16]);
    let v = FakeVerifier::default();
    for i in 0..20_000u32 {
        let value = alloc::format!(
            "{}:{}",
            900,
            "z".repeat(900 - 10) + &alloc::format!("{i:010}")
        );
        if i % 2 == 0 {
            s.put_immutable_from(t(u64::from(i)), ip(i), value.as_bytes())
                .unwrap();
        } else {
            let p = Put::new((i % 251) as u8, &i.to_be_bytes(), 1, value.as_bytes());
            s.put_mutable_from(t(u64::from(i)), ip(i), &p.args(), &v)
                .unwrap();
        }
    }
    check(&s);
    let bound = config.limits.max_items * 550 + config.limits.max_item_bytes;
    assert!(s.memory_usage() <= bound, "{} > {bound}", s.memory_usage());
    assert!(bound < 4 << 20);
    // Many small items: the count cap binds.
    for i in 0..20_000u32 {
        s.put_immutable_from(t(30_000), ip(i), alloc::format!("i{i}e").as_bytes())
            .unwrap();
    }
    check(&s);
    assert_eq!(s.len(), config.limits.max_items);
    assert!(s.memory_usage() <= bound, "{} > {bound}", s.memory_usage());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn invariants_and_sequence_monotonicity(
        caps in (1usize..10, 20usize..3000),
        ops in proptest::collection::vec(
            (0u8..4, 0u8..3, 0i64..6, proptest::collection::vec(any::<u8>(), 0..40), 0u16..3000, any::<bool>()),
            1..200,
        ),
    ) {
        let mut s = ItemStore::new(caps.0, caps.1, Duration::from_secs(3600), [5; 16]);
        let v = FakeVerifier::default();
        let mut now = t(0);
        for (k, salt, seq, value, dt, immutable) in ops {
            now += Duration::from_secs(dt.into());
            let mut bencoded = alloc::format!("{}:", value.len()).into_bytes();
            bencoded.extend_from_slice(&value);
            if immutable {
                let r = s.put_immutable(now, &bencoded);
                if let Ok(target) = r {
                    prop_assert_eq!(s.get(now, &target).unwrap().value(), &bencoded[..]);
                }
            } else {
                let salt = alloc::vec![b's'; salt.into()];
                let target = mutable_target(&key(k), &salt);
                let before = match s.get(now, &target) {
                    Some(Item::Mutable { seq, v, .. }) => Some((seq, v.to_vec())),
                    _ => None,
                };
                let p = Put::new(k, &salt, seq, &bencoded);
                match s.put_mutable(now, &p.args(), &v) {
                    Ok(_) => {
                        if let Some((old_seq, old_v)) = before {
                            prop_assert!(seq > old_seq || (seq == old_seq && old_v == bencoded));
                        }
                        let got = match s.get(now, &target) {
                            Some(Item::Mutable { seq: got, .. }) => Some(got),
                            _ => None,
                        };
                        prop_assert_eq!(got, Some(seq));
                    }
                    Err(PutError::SequenceTooOld) => {
                        let (old_seq, old_v) = before.unwrap();
                        prop_assert!(seq < old_seq || (seq == old_seq && old_v != bencoded));
                    }
                    Err(PutError::ValueTooBig) => prop_assert!(bencoded.len() + salt.len() > caps.1),
                    Err(e) => prop_assert!(false, "{e:?}"),
                }
            }
            s.expire(now);
            check(&s);
        }
    }
}

#[test]
fn a_reply_shares_the_stored_value() {
    let mut s = store();
    let target = s.put_immutable(t(1), b"5:hello").unwrap();
    let (item, shared) = s.get_shared(t(2), &target).unwrap();
    assert_eq!(item, Item::Immutable { v: b"5:hello" });
    assert!(core::ptr::eq(item.value(), &**shared), "the same bytes");
    let held = Arc::clone(shared);
    assert_eq!(Arc::strong_count(&held), 2, "no copy, one more reference");
    // Removing the item while a reply holds it leaves the reply's bytes intact.
    s.expire(t(1) + TTL);
    assert!(s.get(t(1) + TTL, &target).is_none());
    assert_eq!(&*held, b"5:hello");
    assert_eq!(Arc::strong_count(&held), 1);
}
