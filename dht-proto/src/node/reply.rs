//! The node's replies, written straight from their descriptor.
//!
//! A reply has one shape: `d`, `ip`, the `r` dictionary, `t`, `v`, `y`, `e`, with the keys of
//! `r` in a fixed order. [`write_reply`] writes it from an [`OutResponse`] with the framing of
//! each field as one constant piece, instead of building a [`Message`](crate::wire::krpc::Message)
//! and walking the codec's general encoder (which handles every message, extra keys of
//! application responses and contacts in any form). The bytes are the same as the codec's:
//! `prop_tests` checks them against [`Message::encode`](crate::wire::krpc::Message::encode)
//! for arbitrary replies, and every reply in a debug build is checked against
//! [`OutResponse::encoded_len`].

use core::net::SocketAddr;

use super::out::{OutResponse, Sender};
use crate::id::ID_LEN;
use crate::wire::compact::{PEER6_LEN, encode_peer};
use crate::wire::encode::format_i64;

/// A cursor over an output buffer that remembers whether anything did not fit. The codec's
/// [`Writer`](crate::wire::encode::Writer) does the same job; written with it, replies cost 170
/// (find_node) to 570 (sample_infohashes) instructions more each (callgrind, node bench), so
/// the hot path keeps this one.
struct Cursor<'a> {
    buf: &'a mut [u8],
    len: usize,
    overflow: bool,
}

impl Cursor<'_> {
    /// Appends `bytes`.
    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        match self.buf.get_mut(self.len..end) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len = end;
            }
            None => self.overflow = true,
        }
    }

    /// Appends the length prefix of a byte string of `n` bytes, `<n>:`.
    #[inline(always)]
    fn prefix(&mut self, n: usize) {
        // Digits of numbers below 10,000; nothing in a reply is longer.
        let d = |k: usize| b'0' + (k % 10) as u8;
        if n < 10 {
            self.put(&[d(n), b':']);
        } else if n < 100 {
            self.put(&[d(n / 10), d(n), b':']);
        } else if n < 1000 {
            self.put(&[d(n / 100), d(n / 10), d(n), b':']);
        } else if n < 10_000 {
            self.put(&[d(n / 1000), d(n / 100), d(n / 10), d(n), b':']);
        } else {
            self.overflow = true;
        }
    }

    /// Appends the byte string `bytes` with its length prefix.
    #[inline(always)]
    fn string(&mut self, bytes: &[u8]) {
        self.prefix(bytes.len());
        self.put(bytes);
    }

    /// Appends the integer `v`, `i<v>e`.
    fn int(&mut self, v: i64) {
        let mut digits = [0u8; 21];
        self.put(b"i");
        self.put(format_i64(v, &mut digits));
        self.put(b"e");
    }
}

/// Writes the reply `body` to `to` in transaction `tid` from `sender` into `buf`: the bytes
/// [`OutResponse::message`] encodes to. `None` if it does not fit.
pub(crate) fn write_reply(
    body: &OutResponse,
    to: SocketAddr,
    tid: &[u8],
    sender: &Sender,
    buf: &mut [u8],
) -> Option<usize> {
    let mut w = Cursor {
        buf,
        len: 0,
        overflow: false,
    };
    let mut peer = [0u8; PEER6_LEN];
    let n = encode_peer(&to, &mut peer);
    if n == 6 {
        w.put(b"d2:ip6:");
    } else {
        w.put(b"d2:ip18:");
    }
    w.put(peer.get(..n).unwrap_or_default());
    w.put(b"1:rd");
    if let Some((seeds, peers)) = body.scrape.as_deref() {
        w.put(b"4:BFpe");
        w.string(peers.as_bytes());
        w.put(b"4:BFsd");
        w.string(seeds.as_bytes());
    }
    w.put(b"2:id20:");
    w.put(sender.id.as_bytes());
    if let Some(interval) = body.interval {
        w.put(b"8:interval");
        w.int(i64::from(interval));
    }
    let signed = body.item.as_ref().and_then(|item| item.signed.as_deref());
    if let Some(signed) = signed {
        w.put(b"1:k32:");
        w.put(&signed.key);
    }
    if !body.nodes.is_empty() || body.families.0 {
        w.put(b"5:nodes");
        w.string(body.nodes.as_bytes());
    }
    if !body.nodes6.is_empty() || body.families.1 {
        w.put(b"6:nodes6");
        w.string(body.nodes6.as_bytes());
    }
    if let Some(num) = body.num {
        w.put(b"3:num");
        w.int(i64::from(num));
    }
    if let Some(samples) = &body.samples {
        w.put(b"7:samples");
        w.prefix(samples.len() * ID_LEN);
        for id in samples {
            w.put(id.as_bytes());
        }
    }
    let seq = match &body.item {
        Some(_) => signed.map(|s| s.seq),
        None => body.seq,
    };
    if let Some(seq) = seq {
        w.put(b"3:seq");
        w.int(seq);
    }
    if let Some(signed) = signed {
        w.put(b"3:sig64:");
        w.put(&signed.signature);
    }
    if let Some(token) = &body.token {
        w.put(b"5:token");
        w.string(token.as_bytes());
    }
    if let Some(item) = &body.item {
        // Already bencoded: written verbatim.
        w.put(b"1:v");
        w.put(&item.value);
    }
    if !body.values.is_empty() {
        w.put(b"6:values");
        w.put(body.values.as_bytes());
    }
    w.put(b"e1:t");
    w.string(tid);
    if let Some(version) = &sender.version {
        w.put(b"1:v4:");
        w.put(version);
    }
    w.put(b"1:y1:re");
    (!w.overflow).then_some(w.len)
}

#[cfg(test)]
mod tests {
    use alloc::boxed::Box;
    use alloc::sync::Arc;
    use alloc::vec::Vec;
    use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

    use proptest::prelude::*;

    use super::write_reply;
    use crate::id::Id;
    use crate::node::out::{OutItem, OutResponse, Sender, Signed};
    use crate::server::bloom::Bloom;
    use crate::server::tokens::Tokens;
    use crate::test_rng::TestRng;

    /// IPv4, IPv6 and IPv4-mapped IPv6 addresses (the last written as IPv4 in compact form).
    fn addr() -> impl Strategy<Value = SocketAddr> {
        (0u8..3, any::<u32>(), any::<u128>(), any::<u16>()).prop_map(|(kind, v4, v6, port)| {
            let ip = match kind {
                0 => IpAddr::V4(Ipv4Addr::from(v4)),
                1 => IpAddr::V6(Ipv6Addr::from(v6)),
                _ => IpAddr::V6(Ipv4Addr::from(v4).to_ipv6_mapped()),
            };
            SocketAddr::new(ip, port)
        })
    }

    prop_compose! {
        fn item()(
            value in proptest::collection::vec(any::<u8>(), 0..300),
            signed in proptest::option::of((any::<[u8; 32]>(), any::<i64>())),
        ) -> OutItem {
            OutItem {
                value: Arc::from(value),
                signed: signed.map(|(key, seq)| {
                    Box::new(Signed { key, signature: [7; 64], seq })
                }),
            }
        }
    }

    prop_compose! {
        fn response()(
            nodes in proptest::collection::vec((any::<[u8; 20]>(), addr()), 0..10),
            families in any::<(bool, bool)>(),
            values in proptest::collection::vec(addr(), 0..40),
            token in proptest::option::of(addr()),
            samples in proptest::option::of(proptest::collection::vec(any::<[u8; 20]>(), 0..60)),
            num in proptest::option::of(any::<u32>()),
            interval in proptest::option::of(any::<u32>()),
            scrape in proptest::option::of(proptest::collection::vec(addr(), 0..20)),
            item in proptest::option::of(item()),
            seq in proptest::option::of(any::<i64>()),
        ) -> OutResponse {
            let mut r = OutResponse { families, num, interval, seq, item, ..OutResponse::default() };
            for value in &values {
                r.values.push(value);
            }
            for (id, a) in &nodes {
                // Each list keeps its own family; the other family's contacts are skipped.
                r.nodes.push(&Id::new(*id), a);
                r.nodes6.push(&Id::new(*id), a);
            }
            r.token = token.map(|a| Tokens::new(&mut TestRng(3)).issue(a.ip()));
            r.samples = samples.map(|s| s.into_iter().map(Id::new).collect());
            r.scrape = scrape.map(|ips| {
                let (mut seeds, mut peers) = (Bloom::new(), Bloom::new());
                for (i, a) in ips.iter().enumerate() {
                    if i % 2 == 0 { seeds.insert(a.ip()) } else { peers.insert(a.ip()) }
                }
                Box::new((seeds, peers))
            });
            r
        }
    }

    proptest! {
        /// Keeping the first `n` values gives the list of those `n` alone, whatever their
        /// families (how a reply over its budget is trimmed).
        #[test]
        fn values_truncate_to_a_prefix(values in proptest::collection::vec(addr(), 0..30), n in 0usize..35) {
            let mut all = crate::node::out::CompactValues::default();
            let mut prefix = crate::node::out::CompactValues::default();
            for (i, v) in values.iter().enumerate() {
                all.push(v);
                if i < n {
                    prefix.push(v);
                }
            }
            all.truncate(n);
            prop_assert_eq!(all.len(), n.min(values.len()));
            prop_assert_eq!(all.as_bytes(), prefix.as_bytes());
        }

        /// The node's writer gives the codec's bytes for any reply, and refuses a buffer too
        /// small for it as the codec does.
        #[test]
        fn replies_match_the_codec(
            body in response(),
            to in addr(),
            tid in proptest::collection::vec(any::<u8>(), 0..20),
            id in any::<[u8; 20]>(),
            version in proptest::option::of(any::<[u8; 4]>()),
            short in any::<prop::sample::Index>(),
        ) {
            let sender = Sender { id: Id::new(id), version, read_only: false };
            let mut codec = alloc::vec![0u8; 8192];
            let n = body.message(to, &tid, &sender).encode(&mut codec).unwrap();
            let mut ours = alloc::vec![0u8; 8192];
            prop_assert_eq!(write_reply(&body, to, &tid, &sender, &mut ours), Some(n));
            prop_assert_eq!(codec.get(..n), ours.get(..n));
            let small = short.index(n);
            let mut buf: Vec<u8> = alloc::vec![0u8; small];
            prop_assert_eq!(write_reply(&body, to, &tid, &sender, &mut buf), None);
        }
    }
}
