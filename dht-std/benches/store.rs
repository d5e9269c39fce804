//! Crawler storage throughput for each backend: sightings upserted per second in batches of
//! 10,000 (new info-hashes, then the same ones again), against one transaction per sighting as
//! the baseline; torrents with metadata stored per second; fetch claims per second.
//!
//! Run with `cargo bench -p dht-std --bench store` (SQLite in a temporary file); under
//! `.ci/postgres.sh` (or with `DHT_TEST_POSTGRES_URL` set) PostgreSQL is measured too, in a
//! database of its own that is dropped afterwards.

use core::time::Duration;
use std::time::Instant;

use dht_proto::Id;
use dht_std::store::{
    Batch, FileEntry, Limits, PostgresStore, Shard, Sighting, Source, SqliteStore, Store,
    TorrentRecord,
};

const SIGHTINGS: u64 = 100_000;
const BATCH: u64 = 10_000;
const UNBATCHED: u64 = 2_000;
const TORRENTS: u64 = 5_000;
const TORRENT_BATCH: u64 = 500;
const CLAIM: usize = 100;
const CLAIMS: usize = 20_000;

fn hash(i: u64) -> Id {
    let mut bytes = [0; 20];
    let mut x = (i ^ 0xbe7c).wrapping_mul(0xd6e8_feb8_6659_fd93);
    for chunk in bytes.chunks_mut(8) {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let n = chunk.len();
        chunk.copy_from_slice(&z.to_be_bytes()[..n]);
    }
    Id::new(bytes)
}

fn torrent(i: u64) -> TorrentRecord {
    let files: Vec<FileEntry> = (0..5)
        .map(|f| FileEntry {
            path: format!("Some Torrent {i}/disc {f}/track {f}.flac"),
            size: 30_000_000 + f,
        })
        .collect();
    TorrentRecord {
        info_hash: hash(i),
        name: format!("Some Torrent {i} (2026) [FLAC]"),
        total_size: files.iter().map(|f| f.size).sum(),
        files,
        info: vec![b'x'; 2048],
        fetched_at: 1_000,
    }
}

/// Writes sightings `from..to` in batches of `batch`; returns the rate per second.
fn sightings(store: &mut dyn Store, from: u64, to: u64, batch: u64) -> f64 {
    let start = Instant::now();
    let mut i = from;
    while i < to {
        let mut b = Batch::new();
        for j in i..(i + batch).min(to) {
            b.sighting(Sighting::new(hash(j), Source::GetPeers, 1_000));
        }
        store.write(&b).unwrap();
        i += batch;
    }
    (to - from) as f64 / start.elapsed().as_secs_f64()
}

fn run(name: &str, store: &mut dyn Store) {
    let new = sightings(store, 0, SIGHTINGS, BATCH);
    let again = sightings(store, 0, SIGHTINGS, BATCH);
    let single = sightings(store, SIGHTINGS, SIGHTINGS + UNBATCHED, 1);
    let start = Instant::now();
    let mut i = 0;
    while i < TORRENTS {
        let mut b = Batch::new();
        for j in i..i + TORRENT_BATCH {
            b.torrent(torrent(j));
        }
        store.write(&b).unwrap();
        i += TORRENT_BATCH;
    }
    let torrents = TORRENTS as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut claimed = 0;
    while claimed < CLAIMS {
        let got = store
            .claim("bench", CLAIM, Shard::ALL, 2_000, Duration::from_secs(600))
            .unwrap();
        assert!(!got.is_empty(), "the queue ran dry");
        claimed += got.len();
    }
    let claims = claimed as f64 / start.elapsed().as_secs_f64();
    println!(
        "{name:<10} {new:>12.0} {again:>12.0} {single:>12.0} {:>8.0}x {torrents:>12.0} {claims:>12.0}",
        new / single
    );
}

fn main() {
    println!(
        "{:<10} {:>12} {:>12} {:>12} {:>9} {:>12} {:>12}",
        "backend", "new/s", "repeat/s", "1-per-tx/s", "batched", "torrents/s", "claims/s"
    );
    let dir = std::env::temp_dir().join(format!("dht-store-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    {
        let mut store = SqliteStore::open(&dir.join("bench.sqlite"), Limits::default()).unwrap();
        run("sqlite", &mut store);
    }
    let _ = std::fs::remove_dir_all(&dir);
    match std::env::var("DHT_TEST_POSTGRES_URL") {
        Ok(admin) if !admin.is_empty() => {
            let name = format!("dht_bench_{}", std::process::id());
            let mut client = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
            client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .unwrap();
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            {
                let mut store =
                    PostgresStore::connect(&format!("{base}/{name}"), Limits::default()).unwrap();
                run("postgres", &mut store);
            }
            client
                .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
                .unwrap();
        }
        _ => println!("postgres   skipped: DHT_TEST_POSTGRES_URL is unset (see .ci/postgres.sh)"),
    }
    println!(
        "(sightings in batches of {BATCH}; baseline: one transaction per sighting; torrents with \
         5 files and a 2 KiB info dictionary, {TORRENT_BATCH} per batch; claims {CLAIM} at a time)"
    );
}
