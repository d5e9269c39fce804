//! A small, independent bencode encoder and decoder for building and reading test packets.
//!
//! Hostile hosts craft datagrams byte by byte (including invalid ones), so the simulator keeps
//! its own codec rather than going through the one under test.

/// A bencoded value, borrowing its byte strings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    /// `i…e`
    Int(i64),
    /// `len:bytes`
    Bytes(&'a [u8]),
    /// `l…e`
    List(Vec<Value<'a>>),
    /// `d…e`, in the order written.
    Dict(Vec<(&'a [u8], Value<'a>)>),
}

/// Deepest nesting [`decode`] accepts.
pub const MAX_DEPTH: usize = 32;

impl<'a> Value<'a> {
    /// The value under `key` of a dictionary.
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        match self {
            Self::Dict(entries) => entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The bytes of a byte string.
    pub fn bytes(&self) -> Option<&'a [u8]> {
        match self {
            Self::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The value of an integer.
    pub fn int(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// Appends the encoding (dictionary entries in the order given).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Self::Int(i) => {
                out.push(b'i');
                out.extend_from_slice(i.to_string().as_bytes());
                out.push(b'e');
            }
            Self::Bytes(b) => put_bytes(out, b),
            Self::List(items) => {
                out.push(b'l');
                for v in items {
                    v.encode_into(out);
                }
                out.push(b'e');
            }
            Self::Dict(entries) => {
                out.push(b'd');
                for (k, v) in entries {
                    put_bytes(out, k);
                    v.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }

    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }
}

/// A dictionary with its keys sorted (as bencode requires).
pub fn dict<'a>(mut entries: Vec<(&'a [u8], Value<'a>)>) -> Value<'a> {
    entries.sort_by(|a, b| a.0.cmp(b.0));
    Value::Dict(entries)
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(b);
}

/// Decodes one value at the start of `data`; returns it and the bytes consumed.
pub fn decode(data: &[u8]) -> Option<(Value<'_>, usize)> {
    decode_at(data, 0, 0)
}

/// Decodes a whole datagram (no trailing bytes).
pub fn decode_all(data: &[u8]) -> Option<Value<'_>> {
    let (v, n) = decode(data)?;
    (n == data.len()).then_some(v)
}

fn decode_at(data: &[u8], pos: usize, depth: usize) -> Option<(Value<'_>, usize)> {
    if depth > MAX_DEPTH {
        return None;
    }
    match *data.get(pos)? {
        b'i' => {
            let end = pos + 1 + data.get(pos + 1..)?.iter().position(|&b| b == b'e')?;
            let s = core::str::from_utf8(data.get(pos + 1..end)?).ok()?;
            Some((Value::Int(s.parse().ok()?), end + 1))
        }
        b'l' => {
            let mut items = Vec::new();
            let mut p = pos + 1;
            while *data.get(p)? != b'e' {
                let (v, next) = decode_at(data, p, depth + 1)?;
                items.push(v);
                p = next;
            }
            Some((Value::List(items), p + 1))
        }
        b'd' => {
            let mut entries = Vec::new();
            let mut p = pos + 1;
            while *data.get(p)? != b'e' {
                let (k, next) = decode_at(data, p, depth + 1)?;
                let k = k.bytes()?;
                let (v, next) = decode_at(data, next, depth + 1)?;
                entries.push((k, v));
                p = next;
            }
            Some((Value::Dict(entries), p + 1))
        }
        b'0'..=b'9' => {
            let colon = pos + data.get(pos..)?.iter().position(|&b| b == b':')?;
            let len: usize = core::str::from_utf8(data.get(pos..colon)?)
                .ok()?
                .parse()
                .ok()?;
            let start = colon + 1;
            let end = start.checked_add(len)?;
            Some((Value::Bytes(data.get(start..end)?), end))
        }
        _ => None,
    }
}

/// The parts of a KRPC message a test host cares about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Krpc<'a> {
    /// `t`
    pub tid: &'a [u8],
    /// `y`: `b'q'`, `b'r'` or `b'e'`.
    pub kind: u8,
    /// `q` (queries).
    pub method: Option<&'a [u8]>,
    /// `a.id` or `r.id`.
    pub id: Option<&'a [u8]>,
    /// `a.target` or `a.info_hash`.
    pub target: Option<&'a [u8]>,
    /// `r.token` or `a.token`.
    pub token: Option<&'a [u8]>,
    /// `r.nodes`.
    pub nodes: Option<&'a [u8]>,
    /// `r.values`, each a 6-byte compact peer.
    pub values: Vec<&'a [u8]>,
}

/// Reads a KRPC message, or `None` if it is not one.
pub fn krpc(data: &[u8]) -> Option<Krpc<'_>> {
    let v = decode_all(data)?;
    let tid = v.get(b"t")?.bytes()?;
    let kind = *v.get(b"y")?.bytes()?.first()?;
    let body = match kind {
        b'q' => v.get(b"a"),
        b'r' => v.get(b"r"),
        _ => None,
    };
    let field = |k: &[u8]| body.and_then(|b| b.get(k)).and_then(Value::bytes);
    let values = match body.and_then(|b| b.get(b"values")) {
        Some(Value::List(items)) => items.iter().filter_map(Value::bytes).collect(),
        _ => Vec::new(),
    };
    Some(Krpc {
        tid,
        kind,
        method: v.get(b"q").and_then(Value::bytes),
        id: field(b"id"),
        target: field(b"target").or(field(b"info_hash")),
        token: field(b"token"),
        nodes: field(b"nodes"),
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_sorted_dict() {
        let v = dict(vec![
            (b"y", Value::Bytes(b"q")),
            (b"t", Value::Bytes(b"aa")),
            (b"a", dict(vec![(b"id", Value::Bytes(&[b'x'; 20]))])),
            (b"q", Value::Bytes(b"ping")),
        ]);
        let bytes = v.encode();
        assert_eq!(
            bytes,
            b"d1:ad2:id20:xxxxxxxxxxxxxxxxxxxxe1:q4:ping1:t2:aa1:y1:qe".to_vec()
        );
        assert_eq!(decode_all(&bytes), Some(v));
        let k = krpc(&bytes).unwrap();
        assert_eq!(k.kind, b'q');
        assert_eq!(k.method, Some(&b"ping"[..]));
        assert_eq!(k.tid, b"aa");
        assert_eq!(k.id, Some(&[b'x'; 20][..]));
    }

    #[test]
    fn rejects_bad_input_without_panicking() {
        for bad in [
            &b""[..],
            b"i12",
            b"ie",
            b"5:abc",
            b"d1:ae",
            b"l",
            b"di1ei2ee",
            b"99999999999999999999999:x",
            b"d1:t2:aa1:y1:qeX",
        ] {
            assert!(decode_all(bad).is_none(), "{bad:?}");
        }
        let deep = vec![b'l'; 10_000];
        assert!(decode(&deep).is_none());
        assert_eq!(decode(b"i-42e"), Some((Value::Int(-42), 5)));
    }

    #[test]
    fn reads_responses() {
        let r = b"d1:rd2:id20:yyyyyyyyyyyyyyyyyyyy5:token4:abcd6:valuesl6:\x0a\x00\x00\x01\x1a\xe1ee1:t2:bb1:y1:re";
        let k = krpc(r).unwrap();
        assert_eq!(k.kind, b'r');
        assert_eq!(k.token, Some(&b"abcd"[..]));
        assert_eq!(k.values, vec![&b"\x0a\x00\x00\x01\x1a\xe1"[..]]);
    }
}
