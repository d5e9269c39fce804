//! Bodies of the fuzz targets, shared with the corpus replay in `cargo test`. Not a stable API.
//!
//! Each body panics (through `assert!`) only when it finds a bug: a decoder that accepts what
//! its own encoder cannot reproduce, an encoder whose length disagrees with `encoded_len`, and
//! so on. Any input is fine to feed it.

use alloc::vec;

use crate::wire::bencode::{self, DecodeLimits, Value};
use crate::wire::encode::Writer;
use crate::wire::krpc::{self, Message};

/// Decodes `data` as bencode under default and tight limits; re-encodes what decodes and checks
/// that the result decodes to the same value.
pub fn fuzz_bencode(data: &[u8]) {
    for limits in [DecodeLimits::default(), DecodeLimits::new(3, 16, 64)] {
        let Ok(value) = bencode::decode(data, &limits) else {
            continue;
        };
        let mut buf = vec![0u8; data.len()];
        let mut w = Writer::new(&mut buf);
        w.value(&value);
        let len = w.finish();
        // Integers and strings re-encode canonically, containers verbatim: since the decoder
        // accepts only canonical scalars, the encoding is the input itself.
        assert_eq!(len, Ok(data.len()));
        assert_eq!(buf.as_slice(), data);
        assert_eq!(value.encoded_len(), data.len());
        walk(&value, 0);
    }
}

/// Visits every nested value (bounded by the depth limit the decoder enforced).
fn walk(value: &Value<'_>, depth: usize) {
    assert!(depth <= bencode::MAX_DEPTH);
    match value {
        Value::List(l) => {
            let mut n = 0;
            for (item, raw) in l.iter().zip(l.iter_raw()) {
                assert_eq!(item.encoded_len(), raw.len());
                walk(&item, depth + 1);
                n += 1;
            }
            assert_eq!(n, l.len());
            assert_eq!(l.is_empty(), n == 0);
        }
        Value::Dict(d) => {
            for (key, item) in d.iter() {
                // `get` returns the first entry with a key; it must exist and be equal when the
                // key is unique (always the case for the first occurrence).
                assert!(d.get(key).is_some());
                assert!(d.get_raw(key).is_some());
                walk(&item, depth + 1);
            }
        }
        Value::Int(_) | Value::Bytes(_) => {}
    }
}

/// Decodes `data` as a KRPC message; re-encodes what decodes and checks that encoding is
/// stable: `encode(decode(encode(m))) == encode(m)`, and `encoded_len` is exact.
pub fn fuzz_krpc(data: &[u8]) {
    let limits = DecodeLimits::default();
    let _ = krpc::peek_transaction(data, &limits);
    let Ok(msg) = Message::decode(data, &limits) else {
        return;
    };
    let _ = alloc::format!("{msg}");
    let len = msg.encoded_len();
    let mut buf = vec![0u8; len];
    assert_eq!(msg.encode(&mut buf), Ok(len));
    if len > 0 {
        let mut short = vec![0u8; len - 1];
        assert!(msg.encode(&mut short).is_err());
    }
    let again = Message::decode(&buf, &limits);
    assert!(
        again.is_ok(),
        "re-encoded message does not decode: {again:?}: {msg}"
    );
    let Ok(again) = again else {
        return;
    };
    let mut buf2 = vec![0u8; again.encoded_len()];
    assert_eq!(again.encode(&mut buf2), Ok(buf2.len()));
    assert_eq!(buf, buf2, "encoding is not stable for {msg}");
    assert_eq!(msg.transaction_id, again.transaction_id);
    assert_eq!(
        krpc::peek_transaction(&buf, &limits).map(|(t, _)| t),
        Some(msg.transaction_id)
    );
}

/// Drives a whole [`Node`](crate::Node) with a byte-described sequence of time steps and
/// datagrams and checks its invariants after each (caps held, every transmit decodable, one
/// `QueryFinished` per query, no spinning timer). The input format is documented on the driver:
/// records of `step: u8`, `kind: u8`, `len: u16` LE and `len` bytes.
pub fn fuzz_node(data: &[u8]) {
    crate::node::drive::drive(data);
}
