//! The TCP metadata fetcher against seeding peers on loopback, honest and lying.

mod support;

use core::net::SocketAddr;
use core::time::Duration;
use std::net::TcpListener;

use dht_proto::metadata::PIECE_LEN;
use dht_std::metadata::{
    FailReason, FetchOptions, Fetcher, FetcherEvent, InfoDict, PeerError, TimeoutKind,
    fetch_metadata, fetch_metadata_with, torrent_file,
};
use support::seeder::{Behaviour, Seeder, info_hash, sample_info};

fn fast_options() -> FetchOptions {
    let mut o = FetchOptions::default();
    o.connect_timeout = Duration::from_secs(2);
    o.fetch.handshake_timeout = Duration::from_millis(600);
    o.fetch.piece_timeout = Duration::from_millis(600);
    o
}

#[test]
fn fetches_single_and_multi_piece_metadata() {
    for len in [300, PIECE_LEN, 3 * PIECE_LEN + 500] {
        let info = sample_info("file.bin", len);
        let seeder = Seeder::spawn("127.0.0.1", info.clone(), Behaviour::Honest);
        let m = fetch_metadata(info_hash(&info), [seeder.addr]).unwrap();
        assert_eq!(m.info, info);
        assert_eq!(m.peer, seeder.addr);
        assert_eq!(m.client.as_deref(), Some("test peer"));
        let parsed = InfoDict::parse(&m.info).unwrap();
        assert_eq!(parsed.name, "file.bin");
        let torrent = torrent_file(&m.info);
        assert!(torrent.windows(info.len()).any(|w| w == info.as_slice()));
    }
}

/// A port nothing listens on (bound, then closed).
fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

#[test]
fn lying_peers_fail_cleanly_and_the_next_peer_is_tried() {
    let info = sample_info("x", 2 * PIECE_LEN + 10);
    let liars = [
        Behaviour::WrongData,
        Behaviour::Oversized,
        Behaviour::Garbage,
        Behaviour::Silent,
        Behaviour::NoExtensions,
        Behaviour::NoUtMetadata,
        Behaviour::Reject,
    ];
    let seeders: Vec<Seeder> = liars
        .iter()
        .map(|b| Seeder::spawn("127.0.0.1", info.clone(), *b))
        .collect();
    let honest = Seeder::spawn("127.0.0.1", info.clone(), Behaviour::Honest);
    let refused = closed_port();

    // Each liar alone: a clean failure with its reason.
    let expect = [
        PeerError::Protocol(FailReason::HashMismatch),
        PeerError::Protocol(FailReason::MetadataTooLarge { size: 1 << 30 }),
        PeerError::Protocol(FailReason::MessageTooLong { len: 0xabab_abab }),
        PeerError::Protocol(FailReason::Timeout(TimeoutKind::Handshake)),
        PeerError::Protocol(FailReason::NoExtensionProtocol),
        PeerError::Protocol(FailReason::NoUtMetadata),
        PeerError::Protocol(FailReason::Rejected { piece: 0 }),
    ];
    let mut options = fast_options();
    options.peers_at_once = 8;
    let all: Vec<SocketAddr> = seeders.iter().map(|s| s.addr).chain([refused]).collect();
    let err = fetch_metadata_with(options.clone(), info_hash(&info), all.clone()).unwrap_err();
    assert_eq!(err.tried, 8);
    for (seeder, want) in seeders.iter().zip(&expect) {
        let got = err
            .failures
            .iter()
            .find(|(p, _)| *p == seeder.addr)
            .map(|(_, r)| r);
        assert!(
            got == Some(want)
                || (*want == PeerError::Protocol(FailReason::Rejected { piece: 0 })
                    && matches!(got, Some(PeerError::Protocol(FailReason::Rejected { .. })))),
            "{:?}: {got:?}",
            seeder.addr
        );
    }
    assert!(err.failures.contains(&(
        refused,
        PeerError::Connect(std::io::ErrorKind::ConnectionRefused)
    )));

    // Liars first, one at a time, the honest peer last: it still gets the metadata.
    options.peers_at_once = 1;
    let mut fetcher = Fetcher::new(options).unwrap();
    let id = fetcher.start(info_hash(&info), all.iter().copied().chain([honest.addr]));
    let mut failed = 0;
    let result = loop {
        fetcher.step(None).unwrap();
        let mut done = None;
        while let Some(e) = fetcher.poll_event() {
            match e {
                FetcherEvent::PeerFailed { fetch, .. } if fetch == id => failed += 1,
                FetcherEvent::Finished { fetch, result, .. } if fetch == id => done = Some(result),
                _ => {}
            }
        }
        if let Some(r) = done {
            break r;
        }
    };
    let m = result.unwrap();
    assert_eq!(m.info, info);
    assert_eq!(m.tried, 9);
    assert_eq!(failed, 8);
    assert!(fetcher.is_idle());
    assert_eq!(fetcher.connections(), 0);
}

#[test]
fn many_fetches_on_one_thread_with_bounded_connections() {
    let infos: Vec<Vec<u8>> = (0..12)
        .map(|i| sample_info(&format!("t{i}"), 1000 + i * 3000))
        .collect();
    let seeders: Vec<Seeder> = infos
        .iter()
        .map(|info| Seeder::spawn("127.0.0.1", info.clone(), Behaviour::Honest))
        .collect();
    let mut options = FetchOptions::default();
    options.max_connections = 5;
    let mut fetcher = Fetcher::new(options).unwrap();
    let mut ids = Vec::new();
    for (info, s) in infos.iter().zip(&seeders) {
        // Every fetch also has a dead peer first.
        ids.push(fetcher.start(info_hash(info), [closed_port(), s.addr]));
    }
    let mut got = Vec::new();
    while !fetcher.is_idle() {
        fetcher.step(None).unwrap();
        assert!(fetcher.connections() <= 5);
        while let Some(e) = fetcher.poll_event() {
            if let FetcherEvent::Finished { fetch, result, .. } = e {
                got.push((fetch, result.unwrap().info));
            }
        }
    }
    assert_eq!(got.len(), 12);
    for (id, info) in ids.iter().zip(&infos) {
        assert!(got.contains(&(*id, info.clone())));
    }
}

#[test]
fn streaming_peers_and_no_peers() {
    let info = sample_info("s", 100);
    let seeder = Seeder::spawn("127.0.0.1", info.clone(), Behaviour::Honest);
    let mut fetcher = Fetcher::new(FetchOptions::default()).unwrap();
    let id = fetcher.start_open(info_hash(&info));
    // No peers yet: the fetch waits rather than failing.
    fetcher.step(Some(Duration::from_millis(20))).unwrap();
    assert!(fetcher.poll_event().is_none());
    assert_eq!(fetcher.add_peers(id, [seeder.addr, seeder.addr]), 1);
    let m = loop {
        fetcher.step(None).unwrap();
        if let Some(FetcherEvent::Finished { result, .. }) =
            core::iter::from_fn(|| fetcher.poll_event())
                .find(|e| matches!(e, FetcherEvent::Finished { .. }))
        {
            break result.unwrap();
        }
    };
    assert_eq!(m.info, info);

    let err = fetch_metadata(info_hash(&info), []).unwrap_err();
    assert_eq!(err.tried, 0);
    assert_eq!(err.to_string(), "no peer to fetch the metadata from");
}

#[test]
fn cancel_closes_everything() {
    let info = sample_info("c", 100);
    let silent = Seeder::spawn("127.0.0.1", info.clone(), Behaviour::Silent);
    let mut fetcher = Fetcher::new(FetchOptions::default()).unwrap();
    let id = fetcher.start(info_hash(&info), [silent.addr]);
    fetcher.step(Some(Duration::from_millis(50))).unwrap();
    fetcher.cancel(id);
    assert!(fetcher.is_idle());
    assert_eq!(fetcher.connections(), 0);
}

#[test]
fn peer_list_and_kept_failures_are_capped() {
    let mut options = FetchOptions::default();
    options.max_peers = 10;
    options.max_failures_kept = 2;
    let mut fetcher = Fetcher::new(options.clone()).unwrap();
    let id = fetcher.start_open(dht_proto::Id::new([1; 20]));
    let many = (1..=30u16).map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
    assert_eq!(fetcher.add_peers(id, many), 10);
    assert_eq!(
        fetcher.add_peers(id, [SocketAddr::from(([127, 0, 0, 1], 999))]),
        0
    );
    fetcher.cancel(id);

    let closed: Vec<SocketAddr> = (0..3).map(|_| closed_port()).collect();
    let err = fetch_metadata_with(options, dht_proto::Id::new([1; 20]), closed).unwrap_err();
    assert_eq!(err.tried, 3);
    assert_eq!(err.failures.len(), 2);
    assert_eq!(err.to_string(), "none of the 3 peers gave the metadata");
}
