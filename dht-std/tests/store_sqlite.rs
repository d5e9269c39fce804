//! The SQLite backend: the shared storage properties, restarts, and a writer killed with
//! SIGKILL in the middle of its batches.

#![cfg(feature = "crawl")]

mod store_common;

use dht_std::store::{
    Batch, DbUrl, Limits, SCHEMA_VERSION, Sighting, Source, SqliteStore, Store, StoreError,
};
use store_common::{KILL_SIGHTINGS, TempDir, check_whole_batches, hash, kill_writer, torrent};

fn memory(limits: Limits) -> SqliteStore {
    SqliteStore::open_in_memory(limits).unwrap()
}

#[test]
fn upserts_are_idempotent() {
    store_common::upserts_are_idempotent(&mut memory(Limits::default()));
}

#[test]
fn the_queue_leases_and_completes() {
    store_common::the_queue_leases_and_completes(&mut memory(Limits::default()));
}

#[test]
fn an_owner_takes_back_its_claims() {
    store_common::an_owner_takes_back_its_claims(&mut memory(Limits::default()));
}

#[test]
fn the_queue_is_capped() {
    let limits = Limits {
        max_queue: 3,
        ..Limits::default()
    };
    store_common::the_queue_is_capped(&mut memory(limits));
}

#[test]
fn shards_split_the_queue() {
    store_common::shards_split_the_queue(&mut memory(Limits::default()));
}

#[test]
fn caps_hold_for_metadata() {
    let limits = Limits {
        max_files: 2,
        max_info_len: 16,
        max_text_len: 8,
        ..Limits::default()
    };
    store_common::caps_hold_for_metadata(&mut memory(limits));
}

#[test]
fn search_finds_names() {
    store_common::search_finds_names(&mut memory(Limits::default()));
}

/// A database written by a newer program is refused, not rewritten; a missing file is not
/// created by read-only opens.
#[test]
fn schema_versions() {
    let dir = TempDir::new("schema");
    let path = dir.0.join("db.sqlite");
    assert!(matches!(
        DbUrl::Sqlite(path.clone()).open(false),
        Err(StoreError::NotFound(_))
    ));
    assert!(!path.exists());
    let mut store = DbUrl::Sqlite(path.clone()).open(true).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(conn);
    match SqliteStore::open(&path, Limits::default()) {
        Err(StoreError::NewerSchema { found }) => assert_eq!(found, SCHEMA_VERSION + 1),
        other => panic!("{other:?}"),
    }
}

/// Closing and reopening the file, then writing the same things again, duplicates nothing.
#[test]
fn restart_without_duplicates() {
    let dir = TempDir::new("restart");
    let path = dir.0.join("db.sqlite");
    let batch = |b: &mut Batch| {
        for i in 0..100 {
            b.sighting(Sighting::new(hash(i), Source::GetPeers, 100));
        }
        for i in 0..10 {
            b.torrent(torrent(i, &format!("t{i}"), 2, 100));
        }
    };
    let mut first = Batch::new();
    batch(&mut first);
    let mut store = SqliteStore::open(&path, Limits::default()).unwrap();
    store.write(&first).unwrap();
    let before = store.stats(200).unwrap();
    drop(store);
    let mut store = SqliteStore::open(&path, Limits::default()).unwrap();
    store.write(&first).unwrap();
    let after = store.stats(200).unwrap();
    assert_eq!(
        (
            after.torrents,
            after.with_metadata,
            after.files,
            after.queued
        ),
        (100, 10, 20, 90)
    );
    assert_eq!(
        (
            before.torrents,
            before.with_metadata,
            before.files,
            before.queued
        ),
        (
            after.torrents,
            after.with_metadata,
            after.files,
            after.queued
        )
    );
    assert_eq!(store.get(hash(50)).unwrap().unwrap().times_seen, 2);
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

/// `kill -9` during the writes loses at most the batch in flight and never corrupts; a restart
/// writes on without duplicates.
#[test]
fn sigkill_mid_batch_loses_at_most_the_batch() {
    if let Ok(url) = std::env::var("DHT_STORE_KILL_CHILD") {
        store_common::kill_child(&url);
        return;
    }
    let dir = TempDir::new("kill");
    let path = dir.0.join("db.sqlite");
    let url = format!("sqlite:{}", path.display());
    let reported = kill_writer("sigkill_mid_batch_loses_at_most_the_batch", &url, 5);
    let mut store = SqliteStore::open(&path, Limits::default()).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    let batches = check_whole_batches(&mut store, reported);
    // Restart: the first batch again changes no count.
    let mut again = Batch::new();
    for i in 0..KILL_SIGHTINGS {
        again.sighting(Sighting::new(hash(i), Source::GetPeers, 150));
    }
    store.write(&again).unwrap();
    assert_eq!(check_whole_batches(&mut store, batches), batches);
    assert_eq!(store.get(hash(0)).unwrap().unwrap().times_seen, 2);
    assert_eq!(store.integrity_check().unwrap(), "ok");
}
