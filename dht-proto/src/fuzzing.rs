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

/// The info dictionary the `metadata` target's peer may serve (its SHA-1 is the info-hash
/// fetched), so that inputs can reach a successful fetch as well as every failure.
pub const METADATA_INFO: &[u8] = b"d6:lengthi3e4:name1:a12:piece lengthi16384e6:pieces0:e";

/// Drives one [`Fetch`](crate::metadata::Fetch) of [`METADATA_INFO`] through a whole connection.
///
/// Input: one flags byte, then records `step: u8` (milliseconds to advance), `len: u8` and
/// `len` bytes read from the stream; a record with `len` 0 runs the timer at its deadline
/// instead, and the input's end is the peer closing the stream. Flags: bit 0 prepends a valid
/// BEP 3 handshake, bit 1 also a valid extended handshake (with the right `metadata_size`),
/// bit 2 selects tight caps. Checks: buffers stay within the caps, exactly one final event,
/// and metadata is only ever reported when its SHA-1 is the info-hash.
pub fn fuzz_metadata(data: &[u8]) {
    use crate::metadata::{Fetch, FetchConfig, FetchEvent, msg};
    use crate::{Id, Instant};

    let info_hash = Id::new(sha1_smol::Sha1::from(METADATA_INFO).digest().bytes());
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let mut config = FetchConfig::default();
    if flags & 4 != 0 {
        config.max_metadata_size = 40;
        config.max_message_len = 100;
        config.max_outstanding = 1;
    }
    let mut now = Instant::ZERO;
    let mut fetch = Fetch::new(info_hash, config, now);
    if flags & 1 != 0 {
        fetch.handle_input(now, &msg::handshake(&info_hash, &[7; 20], true));
        if flags & 2 != 0 {
            let size = i64::try_from(METADATA_INFO.len()).unwrap_or_default();
            fetch.handle_input(now, &msg::extended_handshake(3, Some(size)));
        }
    }
    let mut finals = 0;
    let mut check = |fetch: &mut Fetch| {
        assert!(fetch.pending_output().len() < 64 * 1024);
        while let Some(event) = fetch.poll_event() {
            match event {
                FetchEvent::Metadata { info, .. } => {
                    assert_eq!(info, METADATA_INFO);
                    finals += 1;
                }
                FetchEvent::Failed { .. } => finals += 1,
                FetchEvent::Handshake { .. } => {}
            }
        }
        let written = fetch.pending_output().len();
        fetch.consume_output(written / 2 + 1);
    };
    while let [step, len, tail @ ..] = rest {
        now += core::time::Duration::from_millis(u64::from(*step));
        let n = usize::from(*len).min(tail.len());
        let (chunk, after) = tail.split_at(n);
        if n == 0 {
            if let Some(deadline) = fetch.poll_timeout() {
                now = now.max(deadline);
                fetch.handle_timeout(now);
            }
        } else {
            fetch.handle_input(now, chunk);
        }
        check(&mut fetch);
        rest = after;
    }
    fetch.handle_eof(now);
    check(&mut fetch);
    assert_eq!(finals, 1);
    assert!(fetch.is_finished());
}
