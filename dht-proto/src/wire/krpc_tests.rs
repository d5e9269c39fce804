//! Tests of the KRPC layer: the BEP examples, the decoding policy and encoding.

use alloc::string::ToString;
use alloc::vec::Vec;
use core::net::SocketAddr;

use super::bencode::{DecodeErrorKind as K, DecodeLimits, Value, decode};
use super::compact::{NodeInfo, Nodes, Peers, Samples, decode_node, decode_peer, encode_node};
use super::encode::InsufficientSize;
use super::krpc::*;
use crate::id::Id;

fn lim() -> DecodeLimits {
    DecodeLimits::default()
}

/// Decodes `bytes`, checks that re-encoding gives the same bytes and that `encoded_len` and
/// short buffers behave; returns the message.
fn round_trip(bytes: &[u8]) -> Message<'_> {
    let msg = Message::decode(bytes, &lim())
        .unwrap_or_else(|e| panic!("{e} in {:?}", super::bencode::EscapedBytes(bytes)));
    let mut buf = alloc::vec![0u8; bytes.len() + 16];
    let n = msg.encode(&mut buf).unwrap();
    assert_eq!(
        super::bencode::EscapedBytes(&buf[..n]).to_string(),
        super::bencode::EscapedBytes(bytes).to_string()
    );
    assert_eq!(msg.encoded_len(), bytes.len());
    for short in [0, 1, bytes.len() / 2, bytes.len() - 1] {
        let mut buf = alloc::vec![0u8; short];
        assert_eq!(
            msg.encode(&mut buf),
            Err(InsufficientSize {
                required: bytes.len()
            })
        );
    }
    msg
}

fn id(s: &[u8; 20]) -> Id {
    Id::new(*s)
}

fn hex<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn sha1(parts: &[&[u8]]) -> [u8; 20] {
    let mut h = sha1_smol::Sha1::new();
    for p in parts {
        h.update(p);
    }
    h.digest().bytes()
}

fn query<'a>(msg: &Message<'a>) -> Query<'a> {
    match msg.body {
        Body::Query(q) => q,
        ref other => panic!("not a query: {other:?}"),
    }
}

fn response<'a>(msg: &Message<'a>) -> Response<'a> {
    match msg.body {
        Body::Response(r) => r,
        ref other => panic!("not a response: {other:?}"),
    }
}

/// A valid compact node to stand in for BEP 5's `def456...` placeholder.
const NODE: &[u8; 26] = b"0123456789abcdefghij\x01\x02\x03\x04\x1a\xe1";

#[test]
fn bep5_error() {
    let m = round_trip(b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee");
    assert_eq!(m.transaction_id, b"aa");
    assert_eq!(
        m.body,
        Body::Error(KrpcError {
            code: error_code::GENERIC,
            message: b"A Generic Error Ocurred"
        })
    );
}

#[test]
fn bep5_ping() {
    let m = round_trip(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe");
    assert_eq!(
        m,
        Message {
            transaction_id: b"aa",
            version: None,
            ip: None,
            read_only: false,
            body: Body::Query(Query::Ping(Ping {
                id: id(b"abcdefghij0123456789")
            })),
        }
    );
    let r = round_trip(b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re");
    assert_eq!(
        r.body,
        Body::Response(Response::new(id(b"mnopqrstuvwxyz123456")))
    );
}

#[test]
fn bep5_find_node() {
    let m = round_trip(b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe");
    assert_eq!(
        query(&m),
        Query::FindNode(FindNode {
            id: id(b"abcdefghij0123456789"),
            target: id(b"mnopqrstuvwxyz123456"),
            want: None,
        })
    );
    // The BEP's response uses the 9-byte placeholder "def456..." for the compact node info:
    // not a whole 26-byte entry. The message is accepted with no node and a 9-byte tail.
    let literal = b"d1:rd2:id20:0123456789abcdefghij5:nodes9:def456...e1:t2:aa1:y1:re";
    let m = Message::decode(literal, &lim()).unwrap();
    let nodes = response(&m).nodes.unwrap();
    assert_eq!((nodes.len(), nodes.malformed_tail()), (0, 9));
    assert_eq!(nodes.iter().count(), 0);
    // With a real node in its place.
    let mut bytes = b"d1:rd2:id20:0123456789abcdefghij5:nodes26:".to_vec();
    bytes.extend_from_slice(NODE);
    bytes.extend_from_slice(b"e1:t2:aa1:y1:re");
    let m = round_trip(&bytes);
    let r = response(&m);
    assert_eq!(r.id, id(b"0123456789abcdefghij"));
    let nodes: Vec<NodeInfo> = r.nodes.unwrap().iter().collect();
    assert_eq!(
        nodes,
        [NodeInfo::new(
            id(b"0123456789abcdefghij"),
            "1.2.3.4:6881".parse().unwrap()
        )]
    );
}

#[test]
fn bep5_get_peers() {
    let m = round_trip(b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe");
    assert_eq!(
        query(&m),
        Query::GetPeers(GetPeers {
            id: id(b"abcdefghij0123456789"),
            info_hash: id(b"mnopqrstuvwxyz123456"),
            want: None,
            noseed: false,
            scrape: false,
        })
    );
    assert_eq!(query(&m).target(), Some(id(b"mnopqrstuvwxyz123456")));

    let m = round_trip(b"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re");
    let r = response(&m);
    assert_eq!(r.id, id(b"abcdefghij0123456789"));
    assert_eq!(r.token, Some(b"aoeusnth".as_slice()));
    let peers: Vec<SocketAddr> = r.values.unwrap().iter().collect();
    // "axje" = 97.120.106.101, ".u" = 0x2e75; "idht" = 105.100.104.116, "nm" = 0x6e6d.
    assert_eq!(
        peers,
        [
            "97.120.106.101:11893".parse().unwrap(),
            "105.100.104.116:28269".parse::<SocketAddr>().unwrap()
        ]
    );
    assert_eq!(r.values.unwrap().len(), 2);

    let literal =
        b"d1:rd2:id20:abcdefghij01234567895:nodes9:def456...5:token8:aoeusnthe1:t2:aa1:y1:re";
    let m = Message::decode(literal, &lim()).unwrap();
    assert_eq!(response(&m).nodes.unwrap().malformed_tail(), 9);
    assert_eq!(response(&m).token, Some(b"aoeusnth".as_slice()));
    let mut bytes = b"d1:rd2:id20:abcdefghij01234567895:nodes26:".to_vec();
    bytes.extend_from_slice(NODE);
    bytes.extend_from_slice(b"5:token8:aoeusnthe1:t2:aa1:y1:re");
    let m = round_trip(&bytes);
    let r = response(&m);
    assert_eq!(r.nodes.unwrap().len(), 1);
    assert_eq!(r.token, Some(b"aoeusnth".as_slice()));
    assert!(r.values.is_none());
}

#[test]
fn bep5_announce_peer() {
    // The bencoded example (its line break removed); it omits the JSON's implied_port.
    let m = round_trip(b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe");
    let expected = AnnouncePeer {
        id: id(b"abcdefghij0123456789"),
        info_hash: id(b"mnopqrstuvwxyz123456"),
        port: 6881,
        implied_port: false,
        token: b"aoeusnth",
        seed: false,
    };
    assert_eq!(query(&m), Query::AnnouncePeer(expected));
    // The JSON form, with implied_port: 1.
    let m = round_trip(b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe");
    assert_eq!(
        query(&m),
        Query::AnnouncePeer(AnnouncePeer {
            implied_port: true,
            ..expected
        })
    );
    let r = round_trip(b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re");
    assert_eq!(response(&r).id, id(b"mnopqrstuvwxyz123456"));
}

const PUBKEY: &str = "77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548";
const SIG1: &str = "305ac8aeb6c9c151fa120f120ea2cfb923564e11552d06a5d856091e5e853cff\
                    1260d3f39e4999684aa92eb73ffd136e6f4f3ecbfda0ce53a1608ecd7ae21f01";
const SIG2: &str = "6834284b6b24c3204eb2fea824d82f88883a3d95e8b4a21b8c0ded553d17d17d\
                    df9a8a7104b1258f30bed3787e6cb896fca78c58f8e03b5f18f14951a87d9a08";

#[test]
fn bep44_immutable() {
    let m = round_trip(b"d1:ad2:id20:abcdefghij01234567895:token8:aoeusnth1:v12:Hello World!e1:q3:put1:t2:aa1:y1:qe");
    let Query::Put(put) = query(&m) else { panic!() };
    assert_eq!(put.value, b"12:Hello World!");
    assert_eq!(put.key, None);
    // BEP 44 test 3: the target of an immutable item is the SHA-1 of its bencoded form.
    assert_eq!(
        sha1(&[put.value]),
        hex::<20>("e5f96f6f38320f0f33959cb4d3d656452117aadb")
    );
    let get = round_trip(
        b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q3:get1:t2:aa1:y1:qe",
    );
    assert!(matches!(query(&get), Query::Get(Get { seq: None, .. })));
}

#[test]
fn bep44_mutable() {
    let k = hex::<32>(PUBKEY);
    let sig = hex::<64>(SIG1);
    let mut bytes = b"d1:ad2:id20:abcdefghij01234567891:k32:".to_vec();
    bytes.extend_from_slice(&k);
    bytes.extend_from_slice(b"3:seqi1e3:sig64:");
    bytes.extend_from_slice(&sig);
    bytes.extend_from_slice(b"5:token8:aoeusnth1:v12:Hello World!e1:q3:put1:t2:aa1:y1:qe");
    let m = round_trip(&bytes);
    let Query::Put(put) = query(&m) else { panic!() };
    assert_eq!(put.key, Some(&k));
    assert_eq!(put.signature, Some(&sig));
    assert_eq!(put.seq, Some(1));
    assert_eq!(put.salt, None);
    let mut buf = [0u8; 64];
    let n = mutable_signing_buffer(put.salt, 1, put.value, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"3:seqi1e1:v12:Hello World!");
    // BEP 44 test 1: target = SHA-1(k).
    assert_eq!(
        sha1(&[&k]),
        hex::<20>("4a533d47ec9c7d95b1ad75f576cffc641853b750")
    );

    // Test 2, with salt and cas.
    let sig = hex::<64>(SIG2);
    let mut bytes = b"d1:ad3:casi0e2:id20:abcdefghij01234567891:k32:".to_vec();
    bytes.extend_from_slice(&k);
    bytes.extend_from_slice(b"4:salt6:foobar3:seqi1e3:sig64:");
    bytes.extend_from_slice(&sig);
    bytes.extend_from_slice(b"5:token8:aoeusnth1:v12:Hello World!e1:q3:put1:t2:aa1:y1:qe");
    let m = round_trip(&bytes);
    let Query::Put(put) = query(&m) else { panic!() };
    assert_eq!(put.salt, Some(b"foobar".as_slice()));
    assert_eq!(put.cas, Some(0));
    let n = mutable_signing_buffer(put.salt, 1, put.value, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"4:salt6:foobar3:seqi1e1:v12:Hello World!");
    assert_eq!(
        sha1(&[&k, b"foobar"]),
        hex::<20>("411eba73b6f087ca51a3795d9c8c938d365e32c1")
    );
    assert_eq!(
        mutable_signing_buffer(Some(b""), 1, put.value, &mut buf),
        Ok(26),
        "an empty salt is as if absent"
    );

    // A mutable get and its response.
    let get = round_trip(b"d1:ad2:id20:abcdefghij01234567893:seqi4e6:target20:mnopqrstuvwxyz123456e1:q3:get1:t2:aa1:y1:qe");
    assert!(matches!(query(&get), Query::Get(Get { seq: Some(4), .. })));
    let mut bytes = b"d1:rd2:id20:mnopqrstuvwxyz1234561:k32:".to_vec();
    bytes.extend_from_slice(&k);
    bytes.extend_from_slice(b"5:nodes26:");
    bytes.extend_from_slice(NODE);
    bytes.extend_from_slice(b"3:seqi1e3:sig64:");
    bytes.extend_from_slice(&sig);
    bytes.extend_from_slice(b"5:token8:aoeusnth1:v12:Hello World!e1:t2:aa1:y1:re");
    let m = round_trip(&bytes);
    let r = response(&m);
    assert_eq!(r.key, Some(&k));
    assert_eq!(r.seq, Some(1));
    assert_eq!(r.value, Some(b"12:Hello World!".as_slice()));
    assert_eq!(r.signature, Some(&sig));
}

#[test]
fn bep44_put_needs_k_sig_seq_together() {
    let mut bytes = b"d1:ad2:id20:abcdefghij01234567891:k32:".to_vec();
    bytes.extend_from_slice(&[7; 32]);
    bytes.extend_from_slice(b"3:seqi1e5:token1:x1:vi1ee1:q3:put1:t2:aa1:y1:qe");
    assert_eq!(
        Message::decode(&bytes, &lim()).unwrap_err().kind,
        K::MissingKey("sig")
    );
    let b = b"d1:ad2:id20:abcdefghij01234567895:token1:x1:vi1ee1:q3:put1:t2:aa1:y1:qe";
    assert!(Message::decode(b, &lim()).is_ok());
    let b = b"d1:ad2:id20:abcdefghij01234567891:vi1ee1:q3:put1:t2:aa1:y1:qe";
    assert_eq!(
        Message::decode(b, &lim()).unwrap_err().kind,
        K::MissingKey("token")
    );
}

#[test]
fn bep51_sample_infohashes() {
    let q = round_trip(b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q17:sample_infohashes1:t2:aa1:y1:qe");
    assert_eq!(
        query(&q),
        Query::SampleInfohashes(SampleInfohashes {
            id: id(b"abcdefghij0123456789"),
            target: id(b"mnopqrstuvwxyz123456"),
            want: None
        })
    );
    let mut bytes = b"d1:rd2:id20:mnopqrstuvwxyz1234568:intervali21600e5:nodes26:".to_vec();
    bytes.extend_from_slice(NODE);
    bytes.extend_from_slice(b"3:numi1234e7:samples40:");
    bytes.extend_from_slice(b"aaaaaaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbbbbb");
    bytes.extend_from_slice(b"e1:t2:aa1:y1:re");
    let m = round_trip(&bytes);
    let r = response(&m);
    assert_eq!(r.interval, Some(21600));
    assert_eq!(r.num, Some(1234));
    let samples: Vec<Id> = r.samples.unwrap().iter().collect();
    assert_eq!(samples, [Id::new([b'a'; 20]), Id::new([b'b'; 20])]);
    // An empty sample is valid (BEP 51: always include `samples`).
    let m = round_trip(b"d1:rd2:id20:mnopqrstuvwxyz1234567:samples0:e1:t2:aa1:y1:re");
    assert!(response(&m).samples.unwrap().is_empty());
    let bad = b"d1:rd2:id20:mnopqrstuvwxyz1234567:samples3:abce1:t2:aa1:y1:re";
    assert_eq!(
        Message::decode(bad, &lim()).unwrap_err().kind,
        K::InvalidValue("samples")
    );
}

#[test]
fn bep32_bep33_bep42_bep43() {
    // want, noseed, scrape, ro.
    let m = round_trip(b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234566:noseedi1e6:scrapei1e4:wantl2:n42:n6ee1:q9:get_peers2:roi1e1:t2:aa1:y1:qe");
    assert!(m.read_only);
    assert_eq!(
        query(&m),
        Query::GetPeers(GetPeers {
            id: id(b"abcdefghij0123456789"),
            info_hash: id(b"mnopqrstuvwxyz123456"),
            want: Some(Want::BOTH),
            noseed: true,
            scrape: true,
        })
    );
    // nodes6, mixed-family values, bloom filters, ip.
    let node6 = NodeInfo::new(Id::new([6; 20]), "[2001:db8::1]:6881".parse().unwrap());
    let mut n6 = [0u8; 38];
    assert_eq!(encode_node(&node6, &mut n6), 38);
    let mut bytes = b"d2:ip6:\x01\x02\x03\x04\x1a\xe11:rd4:BFpe256:".to_vec();
    bytes.extend_from_slice(&[0xaa; 256]);
    bytes.extend_from_slice(b"4:BFsd256:");
    bytes.extend_from_slice(&[0x55; 256]);
    bytes.extend_from_slice(b"2:id20:mnopqrstuvwxyz1234566:nodes638:");
    bytes.extend_from_slice(&n6);
    bytes.extend_from_slice(b"5:token2:tk6:valuesl6:\x05\x06\x07\x08\x00\x5018:");
    bytes.extend_from_slice(&[
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 80,
    ]);
    bytes.extend_from_slice(b"ee1:t2:aa1:v4:LT\x01\x021:y1:re");
    let m = round_trip(&bytes);
    assert_eq!(m.ip, Some("1.2.3.4:6881".parse().unwrap()));
    assert_eq!(m.version, Some(b"LT\x01\x02".as_slice()));
    let r = response(&m);
    assert_eq!(r.bf_peers, Some(&[0xaa; 256]));
    assert_eq!(r.bf_seeds, Some(&[0x55; 256]));
    assert_eq!(r.nodes6.unwrap().iter().collect::<Vec<_>>(), [node6]);
    let peers: Vec<SocketAddr> = r.values.unwrap().iter().collect();
    assert_eq!(
        peers,
        [
            "5.6.7.8:80".parse().unwrap(),
            "[2001:db8::2]:80".parse::<SocketAddr>().unwrap()
        ]
    );
    // An IPv6 `ip`.
    let mut bytes = b"d2:ip18:".to_vec();
    bytes.extend_from_slice(&[
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 1,
    ]);
    bytes.extend_from_slice(b"1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re");
    let m = round_trip(&bytes);
    assert_eq!(m.ip, Some("[2001:db8::9]:1".parse().unwrap()));
    // BEP 33 `seed` in announce_peer.
    let m = round_trip(b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti1e4:seedi1e5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe");
    assert!(matches!(
        query(&m),
        Query::AnnouncePeer(AnnouncePeer {
            seed: true,
            port: 1,
            ..
        })
    ));
}

#[test]
fn key_order_is_lenient_and_encoding_canonical() {
    let unsorted = b"d1:y1:q1:t2:aa1:q9:find_node1:ad6:target20:mnopqrstuvwxyz1234562:id20:abcdefghij0123456789ee";
    let m = Message::decode(unsorted, &lim()).unwrap();
    let mut buf = [0u8; 200];
    let n = m.encode(&mut buf).unwrap();
    assert_eq!(
        &buf[..n],
        b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe"
    );
    // Unsorted `r` too.
    let m = Message::decode(
        b"d1:y1:r1:rd5:token1:x2:id20:mnopqrstuvwxyz123456e1:t2:aae",
        &lim(),
    )
    .unwrap();
    assert_eq!(response(&m).token, Some(b"x".as_slice()));
}

#[test]
fn known_keys_may_not_repeat_in_any_order() {
    let b = b"d1:ad6:target20:mnopqrstuvwxyz1234562:id20:abcdefghij01234567892:id20:abcdefghij0123456789e1:q9:find_node1:t2:aa1:y1:qe";
    assert_eq!(
        Message::decode(b, &lim()).unwrap_err().kind,
        K::DuplicateKey
    );
    let b = b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz1234561:x0:2:id20:abcdefghij0123456789e1:q9:find_node1:t2:aa1:y1:qe";
    let e = Message::decode(b, &lim()).unwrap_err();
    assert_eq!(e.kind, K::DuplicateKey);
    assert_eq!(e.offset, 68);
    let b = b"d1:rd5:token1:x2:id20:mnopqrstuvwxyz1234565:token1:ye1:t2:aa1:y1:re";
    assert_eq!(
        Message::decode(b, &lim()).unwrap_err().kind,
        K::DuplicateKey
    );
    let b = b"d1:t2:aa1:y1:r1:rd2:id20:mnopqrstuvwxyz123456e1:t2:bbe";
    assert_eq!(
        Message::decode(b, &lim()).unwrap_err().kind,
        K::DuplicateKey
    );
}

#[test]
fn unknown_keys_are_skipped() {
    // Top level, `a`, and nested garbage of every type; ping ignores a badly typed `port`.
    let b =
        b"d1:ad2:id20:abcdefghij01234567894:porti-1e3:zzzld1:xleeee1:q4:ping1:t2:aa3:xyzi5e1:y1:qe";
    let m = Message::decode(b, &lim()).unwrap();
    assert_eq!(
        query(&m),
        Query::Ping(Ping {
            id: id(b"abcdefghij0123456789")
        })
    );
    // A known method's key with the wrong type is an error.
    let b = b"d1:ad2:id20:abcdefghij01234567896:target3:abce1:q9:find_node1:t2:aa1:y1:qe";
    assert_eq!(
        Message::decode(b, &lim()).unwrap_err().kind,
        K::InvalidValue("target")
    );
    let b = b"d1:ad2:id20:abcdefghij01234567894:wanti1e6:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe";
    assert_eq!(
        Message::decode(b, &lim()).unwrap_err().kind,
        K::WrongType("want")
    );
    // Unknown keys in `r` are kept readable in `extra` and re-encoded in place.
    let b = b"d1:rd2:id20:mnopqrstuvwxyz1234561:pi6881e5:token1:xe1:t2:aa1:y1:re";
    let m = round_trip(b);
    let r = response(&m);
    assert_eq!(r.extra.unwrap().get(b"p"), Some(Value::Int(6881)));
    assert_eq!(r.token, Some(b"x".as_slice()));
}

#[test]
fn want_ignores_unknown_items() {
    let b = b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz1234564:wantl2:n63:n10i4ed2:n4i1eeee1:q9:find_node1:t2:aa1:y1:qe";
    let m = Message::decode(b, &lim()).unwrap();
    assert_eq!(
        query(&m).want(),
        Some(Want {
            v4: false,
            v6: true
        })
    );
    let b = b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz1234564:wantlee1:q9:find_node1:t2:aa1:y1:qe";
    let m = round_trip(b);
    assert_eq!(query(&m).want(), Some(Want::default()));
}

#[test]
fn announce_port_rules() {
    let msg = |args: &str| {
        let mut b = b"d1:ad2:id20:abcdefghij0123456789".to_vec();
        b.extend_from_slice(args.as_bytes());
        b.extend_from_slice(b"e1:q13:announce_peer1:t2:aa1:y1:qe");
        b
    };
    let ih = "9:info_hash20:mnopqrstuvwxyz123456";
    let decode_port = |args: &str| {
        let b = msg(args);
        Message::decode(&b, &lim()).map(|m| match query(&m) {
            Query::AnnouncePeer(a) => (a.port, a.implied_port),
            _ => panic!(),
        })
    };
    assert_eq!(
        decode_port(&alloc::format!("{ih}4:porti1e5:token1:x")),
        Ok((1, false))
    );
    assert_eq!(
        decode_port(&alloc::format!("{ih}4:porti65535e5:token1:x")),
        Ok((65535, false))
    );
    for bad in ["0", "65536", "-1", "99999999999"] {
        assert_eq!(
            decode_port(&alloc::format!("{ih}4:porti{bad}e5:token1:x"))
                .unwrap_err()
                .kind,
            K::InvalidValue("port"),
            "{bad}"
        );
    }
    assert_eq!(
        decode_port(&alloc::format!("{ih}5:token1:x"))
            .unwrap_err()
            .kind,
        K::MissingKey("port")
    );
    assert_eq!(
        decode_port(&alloc::format!("{ih}4:port4:68815:token1:x"))
            .unwrap_err()
            .kind,
        K::WrongType("port")
    );
    // With implied_port, the port may be absent or out of range.
    let ip = "12:implied_porti1e";
    assert_eq!(
        decode_port(&alloc::format!("{ip}{ih}5:token1:x")),
        Ok((0, true))
    );
    assert_eq!(
        decode_port(&alloc::format!("{ip}{ih}4:porti0e5:token1:x")),
        Ok((0, true))
    );
    assert_eq!(
        decode_port(&alloc::format!("{ip}{ih}4:porti70000e5:token1:x")),
        Ok((0, true))
    );
    assert_eq!(
        decode_port(&alloc::format!("{ip}{ih}4:porti80e5:token1:x")),
        Ok((80, true))
    );
    // implied_port 0 is "not set".
    assert_eq!(
        decode_port(&alloc::format!("12:implied_porti0e{ih}4:porti0e5:token1:x"))
            .unwrap_err()
            .kind,
        K::InvalidValue("port")
    );
    assert_eq!(
        decode_port(&alloc::format!("{ih}4:porti80e"))
            .unwrap_err()
            .kind,
        K::MissingKey("token")
    );
}

#[test]
fn transaction_id_length() {
    let t = |n: usize| {
        let mut b = alloc::format!("d1:rd2:id20:mnopqrstuvwxyz123456e1:t{n}:").into_bytes();
        b.extend(core::iter::repeat_n(b'x', n));
        b.extend_from_slice(b"1:y1:re");
        Message::decode(&b, &lim())
            .map(|m| m.transaction_id.len())
            .map_err(|e| e.kind)
    };
    assert_eq!(t(0), Err(K::InvalidValue("t")));
    assert_eq!(t(1), Ok(1));
    assert_eq!(t(MAX_TRANSACTION_ID_LEN), Ok(MAX_TRANSACTION_ID_LEN));
    assert_eq!(t(MAX_TRANSACTION_ID_LEN + 1), Err(K::InvalidValue("t")));
}

#[test]
fn custom_queries() {
    // An unknown method is representable, with its whole `a` dictionary.
    let b = b"d1:ad2:id20:abcdefghij01234567894:name3:bob6:target20:mnopqrstuvwxyz123456e1:q4:vote1:t2:aa1:y1:qe";
    let m = round_trip(b);
    let q = query(&m);
    assert_eq!(q.method(), b"vote");
    assert_eq!(q.id(), Some(id(b"abcdefghij0123456789")));
    assert_eq!(q.target(), Some(id(b"mnopqrstuvwxyz123456")));
    let Query::Custom(c) = q else { panic!() };
    assert_eq!(c.args.get(b"name"), Some(Value::Bytes(b"bob")));

    // An application's dictionary without `id`: the node's id is put in canonical place.
    let args = decode(b"d1:a1:x4:name3:bobe", &lim())
        .unwrap()
        .as_dict()
        .unwrap();
    let msg = Message {
        transaction_id: b"tx",
        version: None,
        ip: None,
        read_only: false,
        body: Body::Query(Query::Custom(Custom {
            method: b"vote",
            args,
            id: Some(id(b"abcdefghij0123456789")),
        })),
    };
    let mut buf = [0u8; 128];
    let n = msg.encode(&mut buf).unwrap();
    assert_eq!(
        &buf[..n],
        b"d1:ad1:a1:x2:id20:abcdefghij01234567894:name3:bobe1:q4:vote1:t2:tx1:y1:qe"
    );
    assert_eq!(msg.encoded_len(), n);
    // An `id` in the application's dictionary is replaced.
    let args = decode(b"d2:id1:z4:name3:bobe", &lim())
        .unwrap()
        .as_dict()
        .unwrap();
    let msg = Message {
        body: Body::Query(Query::Custom(Custom {
            method: b"vote",
            args,
            id: Some(id(b"abcdefghij0123456789")),
        })),
        ..msg
    };
    let n = msg.encode(&mut buf).unwrap();
    assert_eq!(
        &buf[..n],
        b"d1:ad2:id20:abcdefghij01234567894:name3:bobe1:q4:vote1:t2:tx1:y1:qe"
    );
    // With `id: None`, `args` are written as they are.
    let args = decode(b"d1:zi1ee", &lim()).unwrap().as_dict().unwrap();
    let msg = Message {
        body: Body::Query(Query::Custom(Custom {
            method: b"x",
            args,
            id: None,
        })),
        ..msg
    };
    let n = msg.encode(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"d1:ad1:zi1ee1:q1:x1:t2:tx1:y1:qe");
    assert_eq!(
        query(&Message::decode(&buf[..n], &lim()).unwrap()).id(),
        None
    );
}

#[test]
fn custom_response_body() {
    let extra = decode(b"d5:votesi3e1:a0:2:id1:z5:token1:ze", &lim())
        .unwrap()
        .as_dict()
        .unwrap();
    let mut r = Response::new(id(b"mnopqrstuvwxyz123456"));
    r.extra = Some(extra);
    r.token = Some(b"tk");
    r.num = Some(5);
    let msg = Message {
        transaction_id: b"aa",
        version: None,
        ip: None,
        read_only: false,
        body: Body::Response(r),
    };
    let mut buf = [0u8; 128];
    let n = msg.encode(&mut buf).unwrap();
    // Typed fields win over `extra`'s known keys (`id`, `token`); `extra`'s own keys are merged
    // in canonical order (here `extra` itself is not sorted: `votes` goes where it comes).
    assert_eq!(
        &buf[..n],
        b"d1:rd2:id20:mnopqrstuvwxyz1234563:numi5e5:token2:tk5:votesi3e1:a0:e1:t2:aa1:y1:re"
    );
    assert_eq!(msg.encoded_len(), n);
    let sorted = decode(b"d1:a0:5:votesi3ee", &lim())
        .unwrap()
        .as_dict()
        .unwrap();
    r.extra = Some(sorted);
    let msg = Message {
        body: Body::Response(r),
        ..msg
    };
    let n = msg.encode(&mut buf).unwrap();
    let expected: &[u8] =
        b"d1:rd1:a0:2:id20:mnopqrstuvwxyz1234563:numi5e5:token2:tk5:votesi3ee1:t2:aa1:y1:re";
    assert_eq!(&buf[..n], expected);
    let back = Message::decode(expected, &lim()).unwrap();
    assert_eq!(
        response(&back).extra.unwrap().get(b"votes"),
        Some(Value::Int(3))
    );
}

#[test]
fn encode_from_slices() {
    let v4 = NodeInfo::new(Id::new([1; 20]), "1.2.3.4:5".parse().unwrap());
    let mapped = NodeInfo::new(Id::new([2; 20]), "[::ffff:5.6.7.8]:9".parse().unwrap());
    let v6 = NodeInfo::new(Id::new([3; 20]), "[2001:db8::1]:7".parse().unwrap());
    let nodes = [v4, v6, mapped];
    let peers: [SocketAddr; 3] = [
        "1.1.1.1:1".parse().unwrap(),
        "[::ffff:2.2.2.2]:2".parse().unwrap(),
        "[2001:db8::3]:3".parse().unwrap(),
    ];
    let samples = [Id::new([9; 20]), Id::new([8; 20])];
    let mut r = Response::new(Id::new([7; 20]));
    r.nodes = Some(Nodes::Slice(&nodes));
    r.nodes6 = Some(Nodes::Slice(&nodes));
    r.values = Some(Peers::Slice(&peers));
    r.samples = Some(Samples::Slice(&samples));
    let msg = Message {
        transaction_id: b"aa",
        version: None,
        ip: None,
        read_only: false,
        body: Body::Response(r),
    };
    let mut buf = [0u8; 512];
    let n = msg.encode(&mut buf).unwrap();
    assert_eq!(msg.encoded_len(), n);
    let back = Message::decode(&buf[..n], &lim()).unwrap();
    let r = response(&back);
    // IPv4 (mapped included) under `nodes`, the rest under `nodes6`.
    let n4: Vec<NodeInfo> = r.nodes.unwrap().iter().collect();
    assert_eq!(
        n4,
        [v4, NodeInfo::new(mapped.id, "5.6.7.8:9".parse().unwrap())]
    );
    assert_eq!(r.nodes6.unwrap().iter().collect::<Vec<_>>(), [v6]);
    let p: Vec<SocketAddr> = r.values.unwrap().iter().collect();
    assert_eq!(p, [peers[0], "2.2.2.2:2".parse().unwrap(), peers[2]]);
    assert_eq!(r.samples.unwrap().iter().collect::<Vec<_>>(), samples);
}

#[test]
fn compact_formats() {
    let a: SocketAddr = "[2001:db8::1]:6881".parse().unwrap();
    let mut out = [0u8; 18];
    assert_eq!(super::compact::encode_peer(&a, &mut out), 18);
    assert_eq!(decode_peer(&out), Some(a));
    assert_eq!(decode_peer(&out[..17]), None);
    assert_eq!(decode_peer(&[]), None);
    let n = NodeInfo::new(Id::new([4; 20]), "9.8.7.6:1".parse().unwrap());
    let mut out = [0u8; 38];
    assert_eq!(encode_node(&n, &mut out), 26);
    assert_eq!(&out[20..26], &[9, 8, 7, 6, 0, 1]);
    assert_eq!(decode_node(&out[..26]), Some(n));
    assert_eq!(decode_node(&out[..25]), None);
}

#[test]
fn peek_transaction_finds_t_and_y() {
    // Grammar fine, message invalid: `id` too short.
    let b = b"d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe";
    assert!(Message::decode(b, &lim()).is_err());
    assert_eq!(peek_transaction(b, &lim()), Some((b"aa".as_slice(), b'q')));
    // Garbage after t and y.
    let b = b"d1:t2:xy1:y1:q1:a?";
    assert_eq!(peek_transaction(b, &lim()), Some((b"xy".as_slice(), b'q')));
    // Garbage before them: nothing can be known.
    assert_eq!(peek_transaction(b"d1:a?1:t2:aa1:y1:qe", &lim()), None);
    assert_eq!(peek_transaction(b"l1:te", &lim()), None);
    assert_eq!(peek_transaction(b"d1:t0:1:y1:qe", &lim()), None);
    assert_eq!(peek_transaction(b"d1:t2:aae", &lim()), None);
}

#[test]
fn display_is_one_line() {
    let m = Message::decode(
        b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe",
        &lim(),
    )
    .unwrap();
    let s = m.to_string();
    assert_eq!(
        s,
        "q t=6161 b\"find_node\" id=6162636465666768696a30313233343536373839 \
         target=6d6e6f707172737475767778797a313233343536"
    );
    let e = Message::decode(
        b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee",
        &lim(),
    )
    .unwrap();
    assert_eq!(e.to_string(), "e t=6161 201 b\"A Generic Error Ocurred\"");
}

#[test]
fn error_with_code_only() {
    let m = Message::decode(b"d1:eli202ee1:t2:aa1:y1:ee", &lim()).unwrap();
    assert_eq!(
        m.body,
        Body::Error(KrpcError {
            code: error_code::SERVER,
            message: b""
        })
    );
    // Further items are ignored.
    let m = Message::decode(b"d1:eli203e1:xi9ee1:t2:aa1:y1:ee", &lim()).unwrap();
    assert!(matches!(m.body, Body::Error(KrpcError { code: 203, .. })));
}

/// A `nodes` string cut short (as by an implementation that stops at the first NUL byte):
/// the whole entries are used, the partial one is ignored and reported; the same for `nodes6`.
#[test]
fn truncated_nodes_keep_whole_entries() {
    let mut bytes = b"d1:rd2:id20:0123456789abcdefghij5:nodes40:".to_vec();
    bytes.extend_from_slice(NODE);
    bytes.extend_from_slice(&NODE[..14]);
    bytes.extend_from_slice(b"6:nodes645:");
    bytes.extend_from_slice(&[0x11; 38]);
    bytes.extend_from_slice(&[0x22; 7]);
    bytes.extend_from_slice(b"e1:t2:aa1:y1:re");
    let m = Message::decode(&bytes, &lim()).unwrap();
    let r = response(&m);
    let nodes = r.nodes.unwrap();
    assert_eq!((nodes.len(), nodes.malformed_tail()), (1, 14));
    assert_eq!(
        nodes.iter().collect::<Vec<_>>(),
        [NodeInfo::new(
            id(b"0123456789abcdefghij"),
            "1.2.3.4:6881".parse().unwrap()
        )]
    );
    let nodes6 = r.nodes6.unwrap();
    assert_eq!((nodes6.len(), nodes6.malformed_tail()), (1, 7));
    // Re-encoding writes the whole entries only.
    let mut buf = [0u8; 512];
    let len = m.encode(&mut buf).unwrap();
    let again = Message::decode(&buf[..len], &lim()).unwrap();
    let r2 = response(&again);
    assert_eq!(r2.nodes.unwrap().malformed_tail(), 0);
    assert_eq!(
        r2.nodes.unwrap().iter().collect::<Vec<_>>(),
        nodes.iter().collect::<Vec<_>>()
    );
    assert_eq!(r2.nodes6.unwrap().len(), 1);
}
