//! Tests of the bencode layer: grammar, limits, strictness policy and the malformed-input table.

use alloc::vec::Vec;
use core::time::Duration;
use std::time::Instant;

use super::bencode::{DecodeError, DecodeErrorKind as K, DecodeLimits, Value, decode};
use super::krpc::Message;

fn lim() -> DecodeLimits {
    DecodeLimits::default()
}

#[test]
fn scalars() {
    assert_eq!(decode(b"i0e", &lim()), Ok(Value::Int(0)));
    assert_eq!(decode(b"i-42e", &lim()), Ok(Value::Int(-42)));
    assert_eq!(
        decode(b"i9223372036854775807e", &lim()),
        Ok(Value::Int(i64::MAX))
    );
    assert_eq!(
        decode(b"i-9223372036854775808e", &lim()),
        Ok(Value::Int(i64::MIN))
    );
    assert_eq!(decode(b"0:", &lim()), Ok(Value::Bytes(b"")));
    assert_eq!(decode(b"4:spam", &lim()), Ok(Value::Bytes(b"spam")));
}

#[test]
fn containers_are_views() {
    let input = b"d4:listli1ei-2e3:abce3:numi7e5:innerd1:xdeee";
    let v = decode(input, &lim()).unwrap();
    assert_eq!(v.raw(), Some(input.as_slice()));
    let d = v.as_dict().unwrap();
    assert_eq!(d.len(), 3);
    let keys: Vec<&[u8]> = d.iter().map(|(k, _)| k).collect();
    assert_eq!(keys, [b"list".as_slice(), b"num", b"inner"]);
    let list = d.get(b"list").unwrap().as_list().unwrap();
    assert_eq!(list.raw(), b"li1ei-2e3:abce");
    let items: Vec<Value<'_>> = list.iter().collect();
    assert_eq!(items, [Value::Int(1), Value::Int(-2), Value::Bytes(b"abc")]);
    let raws: Vec<&[u8]> = list.iter_raw().collect();
    assert_eq!(raws, [b"i1e".as_slice(), b"i-2e", b"3:abc"]);
    assert_eq!(d.get_raw(b"num"), Some(b"i7e".as_slice()));
    assert_eq!(d.get_raw(b"inner"), Some(b"d1:xdee".as_slice()));
    let inner = d.get(b"inner").unwrap().as_dict().unwrap();
    assert!(inner.get(b"x").unwrap().as_dict().unwrap().is_empty());
    assert_eq!(d.get(b"missing"), None);
    // The views borrow the input: the bytes are the same memory.
    assert!(core::ptr::eq(
        d.get(b"list").unwrap().raw().unwrap().as_ptr(),
        input[7..].as_ptr()
    ));
}

#[test]
fn unsorted_keys_are_accepted() {
    let v = decode(b"d1:bi1e1:ai2ee", &lim()).unwrap();
    let d = v.as_dict().unwrap();
    assert_eq!(d.get(b"a"), Some(Value::Int(2)));
    assert_eq!(d.get(b"b"), Some(Value::Int(1)));
}

#[test]
fn duplicate_keys() {
    // Adjacent repeat: always rejected, offset at the second key.
    assert_eq!(
        decode(b"d1:ai1e1:ai2ee", &lim()),
        Err(DecodeError::new(K::DuplicateKey, 7))
    );
    // Same in a nested dictionary after returning from a deeper level.
    assert_eq!(
        decode(b"d1:ad1:xi1e1:xi2eee", &lim()).unwrap_err().kind,
        K::DuplicateKey
    );
    assert_eq!(
        decode(b"d1:ali1ee1:ai2ee", &lim()).unwrap_err().kind,
        K::DuplicateKey
    );
    // A non-adjacent repeat in an out-of-order dictionary is not detected; `get` returns the
    // first occurrence (documented policy).
    let v = decode(b"d1:bi1e1:ai2e1:bi3ee", &lim()).unwrap();
    assert_eq!(v.as_dict().unwrap().get(b"b"), Some(Value::Int(1)));
}

#[test]
fn a_million_l_is_rejected_fast_without_recursion() {
    let input = alloc::vec![b'l'; 1_000_000];
    let start = Instant::now();
    let e = decode(&input, &lim()).unwrap_err();
    let m = Message::decode(&input, &lim()).unwrap_err();
    let elapsed = start.elapsed();
    // Default max_depth is 16: the 17th `l` (offset 16) is one too many.
    assert_eq!(e, DecodeError::new(K::DepthLimit, 16));
    assert_eq!(m, DecodeError::new(K::DepthLimit, 16));
    assert!(elapsed < Duration::from_millis(5), "took {elapsed:?}");

    // Also through a KRPC dictionary, and with the largest supported depth.
    let mut input = b"d1:a".to_vec();
    input.extend(core::iter::repeat_n(b'l', 1_000_000));
    assert_eq!(
        Message::decode(&input, &lim()).unwrap_err(),
        DecodeError::new(K::DepthLimit, 4 + 15)
    );
    let deep = DecodeLimits::new(usize::MAX, usize::MAX, usize::MAX);
    assert_eq!(
        decode(&input[4..], &deep).unwrap_err(),
        DecodeError::new(K::DepthLimit, super::bencode::MAX_DEPTH)
    );
}

#[test]
fn limits() {
    let tight = DecodeLimits::new(2, 3, 4);
    assert!(decode(b"l4:abcde", &tight).is_ok());
    assert_eq!(
        decode(b"l5:abcdee", &tight),
        Err(DecodeError::new(K::StringTooLong, 1))
    );
    assert!(decode(b"lli1eee", &tight).is_ok());
    assert_eq!(
        decode(b"llli1eeee", &tight),
        Err(DecodeError::new(K::DepthLimit, 2))
    );
    assert!(decode(b"li1ei2ei3ee", &tight).is_ok());
    assert_eq!(
        decode(b"li1ei2ei3ei4ee", &tight),
        Err(DecodeError::new(K::ElementLimit, 10))
    );
    // Elements are counted across levels, dictionary entries included.
    assert_eq!(
        decode(b"d1:ali1ei2ei3eee", &tight),
        Err(DecodeError::new(K::ElementLimit, 11))
    );
    // A huge length prefix is refused before looking for the bytes.
    assert_eq!(
        decode(b"4294967296:x", &lim()),
        Err(DecodeError::new(K::StringTooLong, 0))
    );
}

/// The malformed-input table: each input with the exact error expected.
#[test]
fn malformed_inputs() {
    use K::*;
    let deep: Vec<u8> = core::iter::repeat_n(b'l', 17).chain([b'e'; 17]).collect();
    #[rustfmt::skip]
    let cases: &[(&[u8], K, usize)] = &[
        // Empty and truncated input.
        (b"", UnexpectedEnd, 0),
        (b"i", UnexpectedEnd, 1),
        (b"i12", UnexpectedEnd, 3),
        (b"i-", UnexpectedEnd, 2),
        (b"3", UnexpectedEnd, 1),
        (b"3:ab", UnexpectedEnd, 4),
        (b"l", UnexpectedEnd, 1),
        (b"li1e", UnexpectedEnd, 4),
        (b"d", UnexpectedEnd, 1),
        (b"d1:a", UnexpectedEnd, 4),
        (b"d1:ai1e", UnexpectedEnd, 7),
        (b"d1:al", UnexpectedEnd, 5),
        // Integers.
        (b"i-0e", NegativeZero, 0),
        (b"i03e", LeadingZero, 0),
        (b"i-03e", LeadingZero, 0),
        (b"i00e", LeadingZero, 0),
        (b"ie", UnexpectedByte, 1),
        (b"i-e", UnexpectedByte, 2),
        (b"i+1e", UnexpectedByte, 1),
        (b"i1.5e", UnexpectedByte, 2),
        (b"i 1e", UnexpectedByte, 1),
        (b"i9223372036854775808e", IntegerOverflow, 0),
        (b"i-9223372036854775809e", IntegerOverflow, 0),
        (b"i99999999999999999999999999e", IntegerOverflow, 0),
        // Strings.
        (b"03:abc", LeadingZero, 0),
        (b"-1:a", UnexpectedByte, 0),
        (b"3abc", UnexpectedByte, 1),
        (b"99999999999999999999999:a", StringTooLong, 0),
        (b"65537:", StringTooLong, 0),
        // Structure.
        (b"x", UnexpectedByte, 0),
        (b"e", UnexpectedByte, 0),
        (b"i1ei2e", TrailingBytes, 3),
        (b"dei", TrailingBytes, 2),
        (b"le\n", TrailingBytes, 2),
        (b"di1ei2ee", NonStringKey, 1),
        (b"dli1ee1:ae", NonStringKey, 1),
        (b"dd1:ae", NonStringKey, 1),
        (b"d1:ae", UnexpectedByte, 4),
        (b"d1:a1:b1:ce", UnexpectedByte, 10),
        (b"d1:ai1e1:ai1ee", DuplicateKey, 7),
        (b"lxe", UnexpectedByte, 1),
        (&deep, DepthLimit, 16),
    ];
    assert!(cases.len() >= 30);
    for &(input, kind, offset) in cases {
        assert_eq!(
            decode(input, &lim()),
            Err(DecodeError::new(kind, offset)),
            "input {:?}",
            super::bencode::EscapedBytes(input)
        );
    }
}

/// KRPC-level entries of the malformed table.
#[test]
fn malformed_messages() {
    use K::*;
    #[rustfmt::skip]
    let cases: &[(&[u8], K)] = &[
        (b"le", WrongType("message")),
        (b"i1e", WrongType("message")),
        (b"4:spam", WrongType("message")),
        (b"de", MissingKey("t")),
        (b"d1:y1:qe", MissingKey("t")),
        (b"d1:t2:aae", MissingKey("y")),
        (b"d1:t0:1:y1:re", InvalidValue("t")),
        (b"d1:t17:aaaaaaaaaaaaaaaaa1:y1:re", InvalidValue("t")),
        (b"d1:ti1e1:y1:qe", WrongType("t")),
        (b"d1:t2:aa1:yi1ee", WrongType("y")),
        (b"d1:t2:aa1:y1:xe", InvalidValue("y")),
        (b"d1:t2:aa1:y1:qe", MissingKey("q")),
        (b"d1:q4:ping1:t2:aa1:y1:qe", MissingKey("a")),
        (b"d1:ali1ee1:q4:ping1:t2:aa1:y1:qe", WrongType("a")),
        (b"d1:ade1:q4:ping1:t2:aa1:y1:qe", MissingKey("id")),
        (b"d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe", InvalidValue("id")),
        (b"d1:ad2:idi1ee1:q4:ping1:t2:aa1:y1:qe", WrongType("id")),
        (b"d1:t2:aa1:y1:re", MissingKey("r")),
        (b"d1:r0:1:t2:aa1:y1:re", WrongType("r")),
        (b"d1:rde1:t2:aa1:y1:re", MissingKey("id")),
        (b"d1:rd2:id20:mnopqrstuvwxyz1234566:valuesl3:abcee1:t2:aa1:y1:re",
            InvalidValue("values")),
        (b"d1:rd2:id20:mnopqrstuvwxyz1234566:valuesli1eee1:t2:aa1:y1:re",
            WrongType("values")),
        (b"d1:rd2:id20:mnopqrstuvwxyz1234566:values6:abcdefe1:t2:aa1:y1:re",
            WrongType("values")),
        (b"d1:rd2:id20:mnopqrstuvwxyz1234565:tokeni1ee1:t2:aa1:y1:re", WrongType("token")),
        (b"d1:rd2:id20:mnopqrstuvwxyz1234561:k3:abce1:t2:aa1:y1:re", InvalidValue("k")),
        (b"d1:t2:aa1:y1:ee", MissingKey("e")),
        (b"d1:e0:1:t2:aa1:y1:ee", WrongType("e")),
        (b"d1:ele1:t2:aa1:y1:ee", InvalidValue("e")),
        (b"d1:el3:abce1:t2:aa1:y1:ee", WrongType("e")),
        (b"d1:eli201ei1ee1:t2:aa1:y1:ee", WrongType("e")),
        (b"d2:ip3:abc1:t2:aa1:y1:re", InvalidValue("ip")),
        (b"d2:ro1:11:t2:aa1:y1:qe", WrongType("ro")),
        (b"d1:t2:aa1:t2:bb1:y1:qe", DuplicateKey),
        (b"d1:t2:aa1:y1:q1:t2:bbe", DuplicateKey),
    ];
    for &(input, kind) in cases {
        assert_eq!(
            Message::decode(input, &lim()).map_err(|e| e.kind),
            Err(kind),
            "input {:?}",
            super::bencode::EscapedBytes(input)
        );
    }
}

/// Every strict prefix of a valid message is rejected with `UnexpectedEnd` at its end.
#[test]
fn truncated_everywhere() {
    let msg: &[u8] = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe";
    assert!(Message::decode(msg, &lim()).is_ok());
    assert!(decode(msg, &lim()).is_ok());
    for n in 0..msg.len() {
        let prefix = &msg[..n];
        assert_eq!(
            decode(prefix, &lim()),
            Err(DecodeError::new(K::UnexpectedEnd, n)),
            "prefix {n}"
        );
        assert_eq!(
            Message::decode(prefix, &lim()).map_err(|e| e.kind),
            Err(K::UnexpectedEnd),
            "prefix {n}"
        );
    }
}

#[test]
fn error_display() {
    let e = DecodeError::new(K::MissingKey("id"), 12);
    assert_eq!(alloc::format!("{e}"), "missing key `id` at byte 12");
}
