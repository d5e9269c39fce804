//! The datagrams under `tests/data/` that the CLI tests decode, built with the codec.
//!
//! The files are checked in; this test proves they are what the codec produces today. After a
//! deliberate change of the encoding, `DHT_BLESS=1 cargo test -p dht-std --test datagrams`
//! rewrites them.

use core::net::SocketAddr;
use std::path::PathBuf;

use dht_proto::Id;
use dht_proto::wire::compact::{NodeInfo, Nodes, Peers, Samples};
use dht_proto::wire::krpc::{
    AnnouncePeer, Body, FindNode, GetPeers, KrpcError, Message, Ping, Query, Response, Want,
};

fn id(byte: u8) -> Id {
    Id::from([byte; 20])
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn message(t: &'static [u8], body: Body<'static>) -> Message<'static> {
    Message {
        transaction_id: t,
        version: None,
        ip: None,
        read_only: false,
        body,
    }
}

fn encode(msg: &Message<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 1500];
    let len = msg.encode(&mut buf).unwrap();
    buf.truncate(len);
    buf
}

/// Every saved datagram: file name and bytes.
fn datagrams() -> Vec<(&'static str, Vec<u8>)> {
    let nodes: &'static [NodeInfo] = Box::leak(Box::new([
        NodeInfo::new(id(0x44), addr("1.2.3.4:6881")),
        NodeInfo::new(id(0x55), addr("5.6.7.8:51413")),
    ]));
    let nodes6: &'static [NodeInfo] = Box::leak(Box::new([NodeInfo::new(
        id(0x66),
        addr("[2001:db8::1]:6881"),
    )]));
    let peers: &'static [SocketAddr] =
        Box::leak(Box::new([addr("1.2.3.4:6881"), addr("[2001:db8::2]:7000")]));
    let samples: &'static [Id] = Box::leak(Box::new([id(0x88), id(0x99)]));
    let token: &'static [u8] = &[0xde, 0xad, 0xbe, 0xef];

    let mut ping = message(b"aa", Body::Query(Query::Ping(Ping { id: id(0x11) })));
    ping.version = Some(b"LT\x01\x02");
    let mut pong = message(b"aa", Body::Response(Response::new(id(0x22))));
    pong.ip = Some(addr("203.0.113.5:6881"));

    let find_node = message(
        b"\x01\x02",
        Body::Query(Query::FindNode(FindNode {
            id: id(0x11),
            target: id(0x33),
            want: Some(Want::BOTH),
        })),
    );
    let mut r = Response::new(id(0x22));
    r.nodes = Some(Nodes::Slice(nodes));
    r.nodes6 = Some(Nodes::Slice(nodes6));
    let find_node_r = message(b"\x01\x02", Body::Response(r));

    let get_peers = message(
        b"gp",
        Body::Query(Query::GetPeers(GetPeers {
            id: id(0x11),
            info_hash: id(0x77),
            want: None,
            noseed: false,
            scrape: false,
        })),
    );
    let mut r = Response::new(id(0x22));
    r.token = Some(token);
    r.values = Some(Peers::Slice(peers));
    let get_peers_values = message(b"gp", Body::Response(r));
    let mut r = Response::new(id(0x22));
    r.token = Some(token);
    r.nodes = Some(Nodes::Slice(nodes));
    let get_peers_nodes = message(b"gp", Body::Response(r));

    let announce = message(
        b"an",
        Body::Query(Query::AnnouncePeer(AnnouncePeer {
            id: id(0x11),
            info_hash: id(0x77),
            port: 6881,
            implied_port: true,
            token,
            seed: false,
        })),
    );
    let error = message(
        b"er",
        Body::Error(KrpcError {
            code: 201,
            message: b"A Generic Error Ocurred",
        }),
    );
    let mut r = Response::new(id(0x22));
    r.interval = Some(21_600);
    r.num = Some(2);
    r.samples = Some(Samples::Slice(samples));
    r.nodes = Some(Nodes::Slice(nodes));
    let samples_r = message(b"si", Body::Response(r));

    let mut truncated = encode(&ping);
    truncated.pop();
    vec![
        ("ping_query.bin", encode(&ping)),
        ("ping_response.bin", encode(&pong)),
        ("find_node_query.bin", encode(&find_node)),
        ("find_node_response.bin", encode(&find_node_r)),
        ("get_peers_query.bin", encode(&get_peers)),
        ("get_peers_response_values.bin", encode(&get_peers_values)),
        ("get_peers_response_nodes.bin", encode(&get_peers_nodes)),
        ("announce_peer_query.bin", encode(&announce)),
        ("error.bin", encode(&error)),
        ("sample_infohashes_response.bin", encode(&samples_r)),
        ("malformed_truncated.bin", truncated),
    ]
}

#[test]
fn saved_datagrams_are_what_the_codec_encodes() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let bless = std::env::var_os("DHT_BLESS").is_some();
    for (name, bytes) in datagrams() {
        let path = dir.join(name);
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        } else {
            let saved = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (run with DHT_BLESS=1)", path.display()));
            assert_eq!(saved, bytes, "{name} differs from the codec's encoding");
        }
    }
}

#[test]
fn the_ping_is_the_bep5_example_shape() {
    // BEP 5's ping example, with our id and transaction id: keys sorted, `v` included.
    let ping = &datagrams()[0].1;
    let mut expected = b"d1:ad2:id20:".to_vec();
    expected.extend_from_slice(&[0x11; 20]);
    expected.extend_from_slice(b"e1:q4:ping1:t2:aa1:v4:LT\x01\x021:y1:qe");
    assert_eq!(ping, &expected);
}
