//! Datagrams captured from real DHT implementations (libtorrent, webtorrent's bittorrent-dht)
//! on loopback, listed in `tests/corpus/MANIFEST.txt`: every one decodes to the kind and
//! method the manifest names, and re-encoding the typed value gives back the same message.

use std::path::{Path, PathBuf};

use dht_proto::wire::bencode::{self, DecodeLimits, Value};
use dht_proto::wire::krpc::{Body, Message, Response};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

/// One manifest line: file, implementation, version, kind, method, family, note.
struct Entry {
    file: String,
    kind: String,
    method: String,
}

fn manifest() -> Vec<Entry> {
    let text = std::fs::read_to_string(corpus_dir().join("MANIFEST.txt")).expect("manifest");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert!(f.len() >= 5, "short manifest line: {l}");
            Entry {
                file: f[0].to_owned(),
                kind: f[3].to_owned(),
                method: f[4].to_owned(),
            }
        })
        .collect()
}

/// What a response to `method` must carry to be that response.
fn check_response(method: &str, r: &Response<'_>, file: &str) {
    let has_nodes = r.nodes.is_some() || r.nodes6.is_some();
    match method {
        "find_node" => assert!(has_nodes, "{file}: find_node answer without nodes"),
        "get_peers" => {
            assert!(r.token.is_some(), "{file}: get_peers answer without token");
            assert!(
                has_nodes || r.values.is_some(),
                "{file}: get_peers answer without nodes or values"
            );
        }
        "get" => assert!(r.token.is_some(), "{file}: get answer without token"),
        "sample_infohashes" => assert!(
            r.samples.is_some() && r.num.is_some() && r.interval.is_some(),
            "{file}: sample_infohashes answer without samples/num/interval"
        ),
        // ping, announce_peer and put answers are just an id, which decoding checked.
        _ => {}
    }
}

#[test]
fn every_captured_datagram_decodes_to_its_kind_and_round_trips() {
    let limits = DecodeLimits::default();
    let entries = manifest();
    assert!(entries.len() >= 40, "corpus too small: {}", entries.len());
    let mut kinds = std::collections::BTreeSet::new();
    for e in &entries {
        let bytes = std::fs::read(corpus_dir().join(&e.file)).expect("corpus file");
        let msg = Message::decode(&bytes, &limits)
            .unwrap_or_else(|err| panic!("{}: does not decode: {err}", e.file));
        match (&msg.body, e.kind.as_str()) {
            (Body::Query(q), "query") => {
                assert_eq!(q.method(), e.method.as_bytes(), "{}: wrong method", e.file);
            }
            (Body::Response(r), "response") => check_response(&e.method, r, &e.file),
            (Body::Error(err), "error") => {
                assert!(
                    (201..=204).contains(&err.code),
                    "{}: error code {}",
                    e.file,
                    err.code
                );
            }
            (body, kind) => panic!("{}: manifest says {kind}, decoded {body:?}", e.file),
        }
        kinds.insert((e.kind.clone(), e.method.clone()));
        // Re-encode the typed value: it must decode to the same typed value, and be exactly as
        // long as `encoded_len` says.
        let mut buf = vec![0u8; 4096];
        let n = msg.encode(&mut buf).expect("fits");
        assert_eq!(n, msg.encoded_len(), "{}: encoded_len", e.file);
        let again = Message::decode(&buf[..n], &limits)
            .unwrap_or_else(|err| panic!("{}: re-encoding does not decode: {err}", e.file));
        assert_eq!(again, msg, "{}: round trip changed the message", e.file);
    }
    // Both implementations' main query kinds are there.
    for method in ["get_peers", "announce_peer"] {
        assert!(kinds.contains(&("query".to_owned(), method.to_owned())));
        assert!(kinds.contains(&("response".to_owned(), method.to_owned())));
    }
}

/// `value` with the keys our encoder deliberately leaves out removed: a KRPC error's `r`
/// dictionary (libtorrent adds one; BEP 5 errors have none) and arguments equal to their
/// default (`seed: 0`, `implied_port: 0`).
fn normalized(value: &Value<'_>, path: &[&[u8]]) -> String {
    match value {
        Value::Int(i) => format!("i{i}e"),
        Value::Bytes(b) => format!("{}:{:?}", b.len(), b),
        Value::List(l) => {
            let items: Vec<String> = l.iter().map(|v| normalized(&v, path)).collect();
            format!("l{}e", items.concat())
        }
        Value::Dict(d) => {
            let is_error = path.is_empty() && d.get(b"y").and_then(|y| y.as_bytes()) == Some(b"e");
            let mut out = String::from("d");
            for (k, v) in d.iter() {
                let in_args = path == [b"a".as_slice()];
                if (is_error && k == b"r")
                    || (in_args && (k == b"seed" || k == b"implied_port") && v.as_int() == Some(0))
                {
                    continue;
                }
                let mut sub = path.to_vec();
                sub.push(k);
                out.push_str(&format!("{k:?}={}", normalized(&v, &sub)));
            }
            out.push('e');
            out
        }
    }
}

#[test]
fn captures_re_encode_to_the_same_bytes_up_to_documented_omissions() {
    // The implementations write canonical bencode; our encoder, given the typed value (unknown
    // keys included), writes the same bytes, except for what it leaves out on purpose.
    let limits = DecodeLimits::default();
    let (mut identical, mut explained) = (0, 0);
    for e in manifest() {
        let bytes = std::fs::read(corpus_dir().join(&e.file)).expect("corpus file");
        let msg = Message::decode(&bytes, &limits).expect("decodes");
        let mut buf = vec![0u8; 4096];
        let n = msg.encode(&mut buf).expect("fits");
        if buf[..n] == bytes[..] {
            identical += 1;
            continue;
        }
        let theirs = bencode::decode(&bytes, &limits).expect("bencode");
        let ours = bencode::decode(&buf[..n], &limits).expect("bencode");
        assert_eq!(
            normalized(&ours, &[]),
            normalized(&theirs, &[]),
            "{}: re-encoding differs beyond the documented omissions",
            e.file
        );
        explained += 1;
    }
    assert!(
        identical > 60,
        "only {identical} identical ({explained} explained)"
    );
}
