//! BEP 44 through whole nodes on the in-memory network: put and get of immutable and mutable
//! items, signature checks, sequence numbers and the errors of the BEP.

use alloc::vec::Vec;

use super::tests::{NET_START, Net, seed};
use super::*;
use crate::bep44::{immutable_target, mutable_target, signing_message};
use crate::event::{Event, QueryStatus};

/// A stand-in for ed25519 (the core has no curve arithmetic): the "signature" of a message is
/// SHA-1(key ‖ message) repeated to 64 bytes. Only what matters here is real: a signature made
/// for other bytes or another key does not verify.
struct FakeEd25519;

fn fake_sign(key: &[u8; 32], message: &[u8]) -> [u8; 64] {
    let mut h = sha1_smol::Sha1::new();
    h.update(key);
    h.update(message);
    let d = h.digest().bytes();
    let mut sig = [0u8; 64];
    for (i, b) in sig.iter_mut().enumerate() {
        *b = d[i % 20];
    }
    sig
}

impl Ed25519Verifier for FakeEd25519 {
    fn verify(&self, public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
        fake_sign(public_key, message) == *signature
    }
}

fn net(n: usize, verifier: bool) -> Net<FakeEd25519> {
    let nodes = (0..n)
        .map(|i| {
            let config = Config::local_testing(seed(i));
            Node::build(config, NET_START, verifier.then_some(FakeEd25519)).unwrap()
        })
        .collect();
    let mut net = Net::from_nodes(nodes);
    net.bootstrap_all();
    net
}

fn mutable(seq: i64, value: &[u8], salt: &[u8]) -> MutableItem {
    let key = [7u8; 32];
    MutableItem {
        key,
        salt: salt.to_vec(),
        seq,
        signature: fake_sign(&key, &signing_message(salt, seq, value)),
        value: value.to_vec(),
        cas: None,
    }
}

fn items_found(
    net: &Net<FakeEd25519>,
    node: usize,
    q: QueryId,
) -> Vec<(Vec<u8>, Option<i64>, bool)> {
    net.events
        .iter()
        .filter_map(|(i, e)| match e {
            Event::ItemFound {
                query,
                value,
                seq,
                verified,
                ..
            } if *i == node && *query == q => Some((value.clone(), *seq, *verified)),
            _ => None,
        })
        .collect()
}

#[test]
fn immutable_item_put_by_one_node_is_found_by_another() {
    let mut net = net(12, false);
    let value = b"12:Hello World!".to_vec();
    let target = immutable_target(&value);
    let now = net.now;
    let q = net.nodes[3]
        .put_item(now, PutItem::Immutable(value.clone()))
        .unwrap();
    let out = net.run_until_finished(3, q);
    assert_eq!(out.status, QueryStatus::Completed);
    assert!(out.announced >= 4, "stored on {} nodes", out.announced);
    let stored: usize = net.nodes.iter().map(|n| n.stored_items()).sum();
    assert_eq!(stored, out.announced);
    let q = net.nodes[9].get_item(net.now, target, &[]).unwrap();
    net.run_until_finished(9, q);
    let found = items_found(&net, 9, q);
    assert!(!found.is_empty());
    assert!(
        found
            .iter()
            .all(|(v, seq, ok)| *v == value && seq.is_none() && *ok)
    );
}

#[test]
fn mutable_items_need_a_verifier_to_be_stored() {
    let mut net = net(10, false);
    let now = net.now;
    let q = net.nodes[2]
        .put_item(now, PutItem::Mutable(mutable(1, b"3:abc", b"")))
        .unwrap();
    let out = net.run_until_finished(2, q);
    assert_eq!(
        out.announced, 0,
        "nobody can check the signature, nobody stores"
    );
    assert!(net.nodes.iter().all(|n| n.stored_items() == 0));
}

#[test]
fn mutable_item_round_trip_with_signatures_and_sequence_numbers() {
    let mut net = net(12, true);
    let salt = b"salt".as_slice();
    let target = mutable_target(&[7; 32], salt);
    let now = net.now;
    let q = net.nodes[1]
        .put_item(now, PutItem::Mutable(mutable(5, b"5:first", salt)))
        .unwrap();
    let stored_on = net.run_until_finished(1, q).announced;
    assert!(stored_on >= 4);
    // A forged signature is refused by every storing node (BEP 44 error 206).
    let mut forged = mutable(6, b"6:forged", salt);
    forged.signature[0] ^= 1;
    let q = net.nodes[1]
        .put_item(net.now, PutItem::Mutable(forged))
        .unwrap();
    assert_eq!(net.run_until_finished(1, q).announced, 0);
    // An older sequence number is refused (302); a newer one replaces the value.
    let q = net.nodes[1]
        .put_item(net.now, PutItem::Mutable(mutable(4, b"3:old", salt)))
        .unwrap();
    assert_eq!(net.run_until_finished(1, q).announced, 0);
    let q = net.nodes[1]
        .put_item(net.now, PutItem::Mutable(mutable(6, b"6:second", salt)))
        .unwrap();
    assert!(net.run_until_finished(1, q).announced >= 4);
    let q = net.nodes[8].get_item(net.now, target, salt).unwrap();
    net.run_until_finished(8, q);
    let found = items_found(&net, 8, q);
    assert!(!found.is_empty());
    assert!(
        found
            .iter()
            .all(|(v, seq, ok)| v == b"6:second" && *seq == Some(6) && *ok),
        "{found:?}"
    );
    // The wrong salt: the items found do not belong to the target and are dropped.
    let q = net.nodes[8].get_item(net.now, target, b"other").unwrap();
    net.run_until_finished(8, q);
    assert!(items_found(&net, 8, q).is_empty());
}

#[test]
fn invalid_items_are_refused_before_any_lookup() {
    let mut net = net(3, false);
    let now = net.now;
    let too_big = PutItem::Immutable([b"1001:".as_slice(), &[b'x'; 1001]].concat());
    assert!(matches!(
        net.nodes[1].put_item(now, too_big),
        Err(CommandError::InvalidArgument(_))
    ));
    let not_bencode = PutItem::Immutable(b"hello".to_vec());
    assert!(net.nodes[1].put_item(now, not_bencode).is_err());
    assert!(
        net.nodes[1]
            .get_item(now, Id::new([1; 20]), &[0; 65])
            .is_err()
    );
}

#[test]
fn put_and_get_carry_their_item_and_salt_from_their_first_queries() {
    let mut net = net(12, true);
    let now = net.now;
    let node = &mut net.nodes[4];
    let salt = b"salt".as_slice();
    let item = PutItem::Mutable(mutable(1, b"3:abc", salt));
    let before = node.pending_transmits();
    let put = node.put_item(now, item.clone()).unwrap();
    // The lookup's first `get` queries are out: the command is under way already.
    assert!(node.pending_transmits() > before);
    let state = node.query(put).unwrap();
    assert_eq!(state.item.as_deref(), Some(&item));
    assert!(state.salt.is_empty());
    let before = node.pending_transmits();
    let get = node
        .get_item(now, mutable_target(&[7; 32], salt), salt)
        .unwrap();
    assert!(node.pending_transmits() > before);
    let state = node.query(get).unwrap();
    assert_eq!(state.salt, salt);
    assert!(state.item.is_none());
}
