//! The PostgreSQL backend against a real server (`.ci/postgres.sh` starts one and sets
//! `DHT_TEST_POSTGRES_URL`; without it each test says it is skipped). Each test has a database
//! of its own.

#![cfg(feature = "crawl")]

mod store_common;

use std::collections::HashSet;
use std::sync::{Arc, Barrier};

use core::time::Duration;

use dht_proto::Id;
use dht_std::store::{
    Batch, Limits, PostgresStore, SCHEMA_VERSION, Shard, Sighting, Source, Store, StoreError,
};
use store_common::{KILL_SIGHTINGS, PgDb, check_whole_batches, hash, kill_writer, torrent};

fn connect(db: &PgDb, limits: Limits) -> PostgresStore {
    PostgresStore::connect(&db.url, limits).unwrap()
}

#[test]
fn upserts_are_idempotent() {
    let Some(db) = PgDb::new("upserts") else {
        return;
    };
    store_common::upserts_are_idempotent(&mut connect(&db, Limits::default()));
}

#[test]
fn the_queue_leases_and_completes() {
    let Some(db) = PgDb::new("queue") else { return };
    store_common::the_queue_leases_and_completes(&mut connect(&db, Limits::default()));
}

#[test]
fn an_owner_takes_back_its_claims() {
    let Some(db) = PgDb::new("owner") else {
        return;
    };
    store_common::an_owner_takes_back_its_claims(&mut connect(&db, Limits::default()));
}

#[test]
fn the_queue_is_capped() {
    let Some(db) = PgDb::new("queue_cap") else {
        return;
    };
    let limits = Limits {
        max_queue: 3,
        ..Limits::default()
    };
    store_common::the_queue_is_capped(&mut connect(&db, limits));
}

#[test]
fn shards_split_the_queue() {
    let Some(db) = PgDb::new("shards") else {
        return;
    };
    store_common::shards_split_the_queue(&mut connect(&db, Limits::default()));
}

#[test]
fn caps_hold_for_metadata() {
    let Some(db) = PgDb::new("caps") else { return };
    let limits = Limits {
        max_files: 2,
        max_info_len: 16,
        max_text_len: 8,
        ..Limits::default()
    };
    store_common::caps_hold_for_metadata(&mut connect(&db, limits));
}

#[test]
fn search_finds_names() {
    let Some(db) = PgDb::new("search") else {
        return;
    };
    store_common::search_finds_names(&mut connect(&db, Limits::default()));
}

/// Reconnecting migrates nothing twice and writing the same batch again duplicates nothing;
/// a schema newer than this program's is refused.
#[test]
fn restart_without_duplicates_and_schema_versions() {
    let Some(db) = PgDb::new("restart") else {
        return;
    };
    let mut batch = Batch::new();
    for i in 0..100 {
        batch.sighting(Sighting::new(hash(i), Source::GetPeers, 100));
    }
    for i in 0..10 {
        batch.torrent(torrent(i, &format!("t{i}"), 2, 100));
    }
    let mut store = connect(&db, Limits::default());
    store.write(&batch).unwrap();
    drop(store);
    let mut store = connect(&db, Limits::default());
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    store.write(&batch).unwrap();
    let stats = store.stats(200).unwrap();
    assert_eq!(
        (
            stats.torrents,
            stats.with_metadata,
            stats.files,
            stats.queued
        ),
        (100, 10, 20, 90)
    );
    drop(store);
    let mut client = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    client
        .execute("UPDATE dht_schema SET version = version + 1", &[])
        .unwrap();
    match PostgresStore::connect(&db.url, Limits::default()) {
        Err(StoreError::NewerSchema { found }) => assert_eq!(found, SCHEMA_VERSION + 1),
        other => panic!("{other:?}"),
    }
}

/// Crawlers starting together migrate the schema once, one at a time.
#[test]
fn concurrent_first_connections_migrate_once() {
    let Some(db) = PgDb::new("migrate") else {
        return;
    };
    let barrier = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                PostgresStore::connect(&url, Limits::default()).map(|_| ())
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    let mut store = connect(&db, Limits::default());
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
}

/// Two crawlers claiming from one queue at the same time never get the same info-hash, and
/// between them get every one.
#[test]
fn concurrent_claimers_never_share_an_info_hash() {
    let Some(db) = PgDb::new("claimers") else {
        return;
    };
    const N: u64 = 3000;
    let mut batch = Batch::new();
    for i in 0..N {
        batch.sighting(Sighting::new(hash(i), Source::Sample, 100));
    }
    connect(&db, Limits::default()).write(&batch).unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let claimers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|owner| {
            let mut store = connect(&db, Limits::default());
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                let mut got = Vec::new();
                loop {
                    let claimed = store
                        .claim(owner, 7, Shard::ALL, 1000, Duration::from_secs(600))
                        .unwrap();
                    if claimed.is_empty() {
                        return got;
                    }
                    got.extend(claimed);
                }
            })
        })
        .collect();
    let results: Vec<Vec<Id>> = claimers.into_iter().map(|t| t.join().unwrap()).collect();
    let (a, b) = (&results[0], &results[1]);
    eprintln!("claimer a took {}, claimer b took {}", a.len(), b.len());
    let a_set: HashSet<Id> = a.iter().copied().collect();
    let b_set: HashSet<Id> = b.iter().copied().collect();
    assert_eq!(a_set.len(), a.len(), "a claimed an info-hash twice");
    assert_eq!(b_set.len(), b.len(), "b claimed an info-hash twice");
    assert!(a_set.is_disjoint(&b_set), "both claimed one info-hash");
    assert_eq!(a.len() + b.len(), N as usize, "every info-hash was claimed");
}

/// Two writers upserting overlapping info-hashes at once: no deadlock, no lost sighting.
#[test]
fn concurrent_writers_merge() {
    let Some(db) = PgDb::new("writers") else {
        return;
    };
    let barrier = Arc::new(Barrier::new(2));
    let writers: Vec<_> = (0..2_u64)
        .map(|w| {
            let mut store = connect(&db, Limits::default());
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                for round in 0..20_u64 {
                    let mut batch = Batch::new();
                    // Both writers touch 0..500; each also has its own range.
                    for i in (0..500).chain(1000 * (w + 1)..1000 * (w + 1) + 100) {
                        batch.sighting(Sighting::new(hash(i), Source::GetPeers, 100));
                    }
                    if round % 5 == 0 {
                        batch.torrent(torrent(round, "shared", 2, 100));
                    }
                    store.write(&batch).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let mut store = connect(&db, Limits::default());
    let stats = store.stats(200).unwrap();
    assert_eq!(stats.torrents, 500 + 200, "{stats:?}");
    assert_eq!(store.get(hash(7)).unwrap().unwrap().times_seen, 40);
    assert_eq!(stats.files, 4 * 2);
}

/// `kill -9` during the writes loses at most the transaction in flight (the server rolls it
/// back); a restart writes on without duplicates.
#[test]
fn sigkill_mid_batch_loses_at_most_the_batch() {
    if let Ok(url) = std::env::var("DHT_STORE_KILL_CHILD") {
        store_common::kill_child(&url);
        return;
    }
    let Some(db) = PgDb::new("kill") else { return };
    let reported = kill_writer("sigkill_mid_batch_loses_at_most_the_batch", &db.url, 3);
    let mut store = connect(&db, Limits::default());
    let batches = check_whole_batches(&mut store, reported);
    let mut again = Batch::new();
    for i in 0..KILL_SIGHTINGS {
        again.sighting(Sighting::new(hash(i), Source::GetPeers, 150));
    }
    store.write(&again).unwrap();
    assert_eq!(check_whole_batches(&mut store, batches), batches);
    assert_eq!(store.get(hash(0)).unwrap().unwrap().times_seen, 2);
}
