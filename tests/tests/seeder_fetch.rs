//! The metadata seeder against the real fetcher: `dht_std::metadata` fetches every generated
//! torrent from one seeder, one at a time and many at once, and reads back what was generated.

use core::net::SocketAddr;
use core::time::Duration;
use std::collections::HashMap;

use dht_proto::Id;
use dht_std::metadata::{FetchOptions, Fetcher, FetcherEvent, InfoDict, fetch_metadata};
use dht_tests::seeder::{Seeder, SeederConfig};
use dht_tests::torrents::Torrent;

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn assert_same(t: &Torrent, info: &[u8]) {
    assert_eq!(info, t.info.as_slice());
    let parsed = InfoDict::parse(info).unwrap();
    assert_eq!(parsed.name, t.name);
    assert_eq!(parsed.total_size, t.total_size);
    let files: Vec<(Vec<String>, u64)> = parsed
        .files
        .into_iter()
        .map(|f| (f.path, f.length))
        .collect();
    assert_eq!(files, t.files);
}

#[test]
fn fetch_metadata_gets_each_torrent_from_one_seeder() {
    let torrents = Torrent::set(11, 12);
    let seeder = Seeder::spawn(loopback(), &torrents, SeederConfig::default()).unwrap();
    for t in &torrents {
        let m = fetch_metadata(t.info_hash, [seeder.addr()]).unwrap();
        assert_eq!(m.peer, seeder.addr());
        assert_same(t, &m.info);
    }
    let stats = seeder.stats();
    assert_eq!(stats.served.len(), torrents.len());
    assert!(stats.served.values().all(|n| *n == 1));
    assert_eq!((stats.unknown, stats.refused, stats.rejected), (0, 0, 0));
}

#[test]
fn a_fetcher_gets_hundreds_at_once_from_a_few_seeders() {
    let torrents = Torrent::set(12, 300);
    // Three seeders on their own loopback addresses, each with a third of the torrents.
    let seeders: Vec<Seeder> = torrents
        .chunks(100)
        .zip(1u8..)
        .map(|(part, i)| {
            Seeder::spawn(
                SocketAddr::from(([127, 0, 7, i], 0)),
                part,
                SeederConfig::default(),
            )
            .unwrap()
        })
        .collect();
    let mut options = FetchOptions::default();
    options.max_connections = 48;
    options.connect_timeout = Duration::from_secs(5);
    let mut fetcher = Fetcher::new(options).unwrap();
    let mut want: HashMap<Id, &Torrent> = HashMap::new();
    for (i, t) in torrents.iter().enumerate() {
        fetcher.start(t.info_hash, [seeders[i / 100].addr()]);
        want.insert(t.info_hash, t);
    }
    let mut done = 0;
    while done < torrents.len() {
        fetcher.step(Some(Duration::from_secs(1))).unwrap();
        while let Some(event) = fetcher.poll_event() {
            if let FetcherEvent::Finished {
                info_hash, result, ..
            } = event
            {
                let m = result.unwrap_or_else(|e| panic!("{info_hash}: {e}"));
                assert_same(want[&info_hash], &m.info);
                done += 1;
            }
        }
    }
    for s in &seeders {
        let stats = s.stats();
        assert_eq!(stats.served.len(), 100);
        assert_eq!(stats.refused, 0);
    }
}

#[test]
fn a_seeder_that_lies_about_a_torrent_fails_the_fetch() {
    let torrents = Torrent::set(13, 2);
    // The first info-hash served with the second torrent's dictionary.
    let seeder = Seeder::spawn_infos(
        loopback(),
        [(torrents[0].info_hash, torrents[1].info.clone())],
        SeederConfig::default(),
    )
    .unwrap();
    let err = fetch_metadata(torrents[0].info_hash, [seeder.addr()]).unwrap_err();
    assert_eq!(err.tried, 1);
}
