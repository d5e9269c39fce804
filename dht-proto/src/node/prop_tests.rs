//! Property test: arbitrary sequences of datagrams (random bytes, valid messages, mutated valid
//! messages and responses to the node's own queries) from arbitrary sources, interleaved with
//! arbitrary time steps, never panic and keep every invariant the driver checks.

use alloc::vec::Vec;

use proptest::prelude::*;

use super::drive::drive;
use crate::wire::encode::Writer;

/// Encodes with a closure over a [`Writer`].
fn build(f: impl FnOnce(&mut Writer<'_>)) -> Vec<u8> {
    let mut buf = alloc::vec![0u8; 4096];
    let mut w = Writer::new(&mut buf);
    f(&mut w);
    let n = w.finish().unwrap();
    buf.truncate(n);
    buf
}

/// A query datagram with method `q` and arguments written by `args` (after `id`).
fn query(method: &[u8], id: [u8; 20], args: impl FnOnce(&mut Writer<'_>)) -> Vec<u8> {
    build(|w| {
        w.begin_dict();
        w.bytes(b"a");
        w.begin_dict();
        w.bytes(b"id");
        w.bytes(&id);
        args(w);
        w.end();
        w.bytes(b"q");
        w.bytes(method);
        w.bytes(b"t");
        w.bytes(b"tx");
        w.bytes(b"y");
        w.bytes(b"q");
        w.end();
    })
}

/// Valid queries of every kind the node serves, plus an unknown method.
fn valid_query() -> impl Strategy<Value = Vec<u8>> {
    (
        0u8..7,
        any::<[u8; 20]>(),
        any::<[u8; 20]>(),
        any::<u16>(),
        any::<[u8; 8]>(),
    )
        .prop_map(|(which, id, target, port, token)| match which {
            0 => query(b"ping", id, |_| {}),
            1 => query(b"find_node", id, |w| {
                w.bytes(b"target");
                w.bytes(&target);
                w.bytes(b"want");
                w.begin_list();
                w.bytes(b"n4");
                w.bytes(b"n6");
                w.end();
            }),
            2 => query(b"get_peers", id, |w| {
                w.bytes(b"info_hash");
                w.bytes(&target);
                w.bytes(b"scrape");
                w.int(1);
            }),
            3 => query(b"announce_peer", id, |w| {
                w.bytes(b"implied_port");
                w.int(i64::from(port % 2));
                w.bytes(b"info_hash");
                w.bytes(&target);
                w.bytes(b"port");
                w.int(i64::from(port));
                w.bytes(b"token");
                w.bytes(&token);
            }),
            4 => query(b"sample_infohashes", id, |w| {
                w.bytes(b"target");
                w.bytes(&target);
            }),
            5 => query(b"get", id, |w| {
                w.bytes(b"target");
                w.bytes(&target);
            }),
            _ => query(b"x_custom", id, |w| {
                w.bytes(b"z");
                w.bytes(&token);
            }),
        })
}

/// The `r` dictionary of a response: an id, and some of `nodes`, `values`, `token`.
fn response_body() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<[u8; 20]>(),
        proptest::collection::vec(any::<u8>(), 0..5 * 26),
        proptest::collection::vec(any::<[u8; 6]>(), 0..6),
        any::<Option<[u8; 8]>>(),
    )
        .prop_map(|(id, nodes, values, token)| {
            build(|w| {
                w.begin_dict();
                w.bytes(b"id");
                w.bytes(&id);
                if !nodes.is_empty() {
                    w.bytes(b"nodes");
                    w.bytes(&nodes[..nodes.len() / 26 * 26]);
                }
                if let Some(t) = token {
                    w.bytes(b"token");
                    w.bytes(&t);
                }
                if !values.is_empty() {
                    w.bytes(b"values");
                    w.begin_list();
                    for v in &values {
                        w.bytes(v);
                    }
                    w.end();
                }
                w.end();
            })
        })
}

/// Truncation, bit flips and insertions of a valid datagram.
fn mutated(base: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (base, any::<u8>(), any::<prop::sample::Index>(), any::<u8>()).prop_map(
        |(mut bytes, how, at, byte)| {
            if bytes.is_empty() {
                return bytes;
            }
            let i = at.index(bytes.len());
            match how % 3 {
                0 => bytes.truncate(i),
                1 => bytes[i] ^= 1 << (byte % 8),
                _ => bytes.insert(i, byte),
            }
            bytes
        },
    )
}

/// One driver record: time step, kind, payload.
fn record() -> impl Strategy<Value = (u8, u8, Vec<u8>)> {
    prop_oneof![
        // Plain datagrams: random, valid, mutated.
        (
            any::<u8>(),
            any::<u8>().prop_map(|k| k & 0x3f),
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..200),
                valid_query(),
                mutated(valid_query()),
            ]
        ),
        // Responses to the node's latest query: valid and mutated bodies.
        (
            any::<u8>(),
            any::<u8>().prop_map(|k| (k & 0x3f) | 0x40),
            prop_oneof![response_body(), mutated(response_body())]
        ),
        // Answers to a pending custom query.
        (
            any::<u8>(),
            any::<u8>().prop_map(|k| k | 0x80),
            prop_oneof![
                response_body(),
                proptest::collection::vec(any::<u8>(), 0..40)
            ]
        ),
    ]
}

/// Serializes records in the driver's input format.
fn encode_records(records: &[(u8, u8, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (step, kind, bytes) in records {
        out.push(*step);
        out.push(*kind);
        let len = u16::try_from(bytes.len()).unwrap();
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn any_input_keeps_the_node_sound(records in proptest::collection::vec(record(), 0..60)) {
        drive(&encode_records(&records));
    }
}

#[test]
fn a_flood_of_queries_from_every_source_stays_within_caps() {
    // Two hundred get_peers for distinct info-hashes from all eight sources, one millisecond
    // apart, every other record running the timers: the driver checks the caps after each.
    let mut records = Vec::new();
    for i in 0..200u8 {
        let q = query(b"get_peers", [i; 20], |w| {
            w.bytes(b"info_hash");
            w.bytes(&[i; 20]);
        });
        records.push((1, i & 0x3f, q));
    }
    drive(&encode_records(&records));
}
