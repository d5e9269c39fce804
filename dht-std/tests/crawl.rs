//! `dht crawl` end to end on loopback: a swarm of in-process nodes announces torrents served by
//! in-process seeders; the crawler must find them, fetch and store their metadata, lose nothing
//! on SIGTERM, survive `kill -9`, and resume on restart without duplicates. SQLite always;
//! PostgreSQL when `DHT_TEST_POSTGRES_URL` is set (`.ci/postgres.sh`).

#![cfg(feature = "crawl")]

mod crawl_support;
mod store_common;
#[allow(dead_code)]
mod support;

use core::time::Duration;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crawl_support::{
    Crawler, PATIENCE, SIGKILL, SIGTERM, Swarm, Torrent, crawl_until_stored, open,
};
use dht_std::crawl::{Crawl, CrawlOptions};
use dht_std::store::{Batch, Limits, Shard, Sighting, Source, SqliteStore, Store};
use serde_json::Value;
use store_common::{PgDb, TempDir};

/// The last record of a run: its totals.
fn done(lines: &[Value]) -> &Value {
    let last = lines.last().expect("output");
    assert_eq!(last["type"], "crawl_done", "{last}");
    last
}

/// Counts rows (SQLite and PostgreSQL alike: every backend answers `stats`).
fn totals(store: &mut dyn Store) -> (u64, u64) {
    let s = store.stats(0).unwrap();
    (s.torrents, s.with_metadata)
}

/// Finds, fetches and stores every torrent; SIGTERM then commits everything it found.
fn finds_and_stores(db: &str, dir: &TempDir, base: u8) {
    let swarm = Swarm::start(10, base);
    let torrents: Vec<Torrent> = (0..6)
        .map(|i| Torrent::new(&swarm, i % 10, "finds", i))
        .collect();
    let state = dir.0.join("crawl.state");
    let mut crawler = Crawler::spawn(db, &state, swarm.addr(0), &["--ids", "4"]);
    let started = crawler.started();
    assert_eq!(started["ids"].as_array().unwrap().len(), 4);
    let mut store = open(db);
    crawl_until_stored(&swarm, &torrents, &mut *store, || {});
    crawler.signal(SIGTERM);
    let (code, lines, stderr) = crawler.wait();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        lines.iter().any(|l| l["type"] == "crawl_status"),
        "a status object per interval"
    );
    for l in &lines {
        assert!(l["type"].is_string(), "{l}");
    }
    let last = done(&lines);
    // Nothing lost: every info-hash found and every torrent fetched in this run is stored.
    let (rows, with_metadata) = totals(&mut *store);
    assert_eq!(rows, last["found"].as_u64().unwrap(), "{last}");
    assert_eq!(with_metadata, last["fetched"].as_u64().unwrap(), "{last}");
    assert!(with_metadata >= torrents.len() as u64);
    for t in &torrents {
        assert!(t.check(&mut *store));
    }
    let saved = std::fs::read_to_string(&state).unwrap();
    for id in started["ids"].as_array().unwrap() {
        assert!(saved.contains(id.as_str().unwrap()), "ids saved: {saved}");
    }
}

#[test]
fn finds_announced_torrents_and_stores_their_metadata_sqlite() {
    let dir = TempDir::new("crawl-finds");
    let db = format!("sqlite:{}", dir.0.join("crawl.sqlite").display());
    finds_and_stores(&db, &dir, 20);
}

#[test]
fn finds_announced_torrents_and_stores_their_metadata_postgres() {
    let Some(pg) = PgDb::new("crawl_finds") else {
        return;
    };
    let dir = TempDir::new("crawl-finds-pg");
    finds_and_stores(&pg.url, &dir, 40);
}

/// `kill -9` in the middle of a crawl leaves a sound database holding everything committed
/// before; a restart takes the same ids and fetches the rest, each torrent once.
#[test]
fn kill_9_then_restart_resumes_without_duplicates() {
    let dir = TempDir::new("crawl-kill");
    let path = dir.0.join("crawl.sqlite");
    let db = format!("sqlite:{}", path.display());
    let state = dir.0.join("crawl.state");
    let swarm = Swarm::start(10, 60);
    let torrents: Vec<Torrent> = (0..6)
        .map(|i| Torrent::new(&swarm, i % 10, "kill", i))
        .collect();
    let mut first = Crawler::spawn(&db, &state, swarm.addr(0), &["--ids", "3"]);
    let ids = first.started()["ids"].clone();
    let mut store = open(&db);
    // Announce until the first torrent is stored, then kill the crawler.
    crawl_until_stored(&swarm, &torrents[..1], &mut *store, || {});
    first.signal(SIGKILL);
    let (code, _, _) = first.wait();
    assert_eq!(code, None, "killed by a signal");
    drop(store);
    let sqlite = SqliteStore::open(&path, Default::default()).unwrap();
    assert_eq!(sqlite.integrity_check().unwrap(), "ok");
    drop(sqlite);
    let mut store = open(&db);
    let before: Vec<Option<i64>> = torrents
        .iter()
        .map(|t| store.get(t.info_hash).unwrap().and_then(|r| r.fetched_at))
        .collect();
    assert!(before[0].is_some(), "committed before the kill");
    let stored_before = before.iter().filter(|f| f.is_some()).count() as u64;

    // The other torrents are in the DHT before the restart, as they would be: a restarted
    // crawler samples its saved contacts at once, and a node's next sample only comes after
    // its BEP 51 interval, so torrents first announced after those samples would wait for it.
    for t in &torrents[1..] {
        t.announce(&swarm);
    }
    std::thread::sleep(Duration::from_secs(2));

    // The restart: same state file, no --ids (the saved ones).
    let mut second = Crawler::spawn(&db, &state, swarm.addr(0), &[]);
    assert_eq!(second.started()["ids"], ids, "the same ids");
    crawl_until_stored(&swarm, &torrents, &mut *store, || {});
    second.signal(SIGTERM);
    let (code, lines, stderr) = second.wait();
    assert_eq!(code, Some(0), "{stderr}");
    let last = done(&lines);
    // Each torrent was fetched once: the restart fetched exactly those not stored before.
    let (_, with_metadata) = totals(&mut *store);
    assert_eq!(
        last["fetched"].as_u64().unwrap(),
        with_metadata - stored_before,
        "{last}"
    );
    for (t, fetched_at) in torrents.iter().zip(before) {
        let row = store.get(t.info_hash).unwrap().unwrap();
        if let Some(at) = fetched_at {
            assert_eq!(row.fetched_at, Some(at), "not fetched again");
        }
        assert!(t.check(&mut *store));
    }
}

/// Two crawlers on one PostgreSQL database share the fetch queue: each torrent is fetched by
/// one of them, once.
#[test]
fn two_crawlers_on_postgres_fetch_each_torrent_once() {
    let Some(pg) = PgDb::new("crawl_two") else {
        return;
    };
    let dir = TempDir::new("crawl-two");
    let swarm = Swarm::start(10, 80);
    let torrents: Vec<Torrent> = (0..8)
        .map(|i| Torrent::new(&swarm, i % 10, "two", i))
        .collect();
    let mut a = Crawler::spawn(
        &pg.url,
        &dir.0.join("a.state"),
        swarm.addr(0),
        &["--ids", "3"],
    );
    let mut b = Crawler::spawn(
        &pg.url,
        &dir.0.join("b.state"),
        swarm.addr(1),
        &["--ids", "3"],
    );
    a.started();
    b.started();
    let mut store = open(&pg.url);
    crawl_until_stored(&swarm, &torrents, &mut *store, || {});
    a.signal(SIGTERM);
    b.signal(SIGTERM);
    let (code_a, lines_a, err_a) = a.wait();
    let (code_b, lines_b, err_b) = b.wait();
    // A crawler that happened to find and fetch nothing exits 1; neither may fail otherwise.
    assert!(matches!(code_a, Some(0 | 1)), "{err_a}");
    assert!(matches!(code_b, Some(0 | 1)), "{err_b}");
    let fetched =
        done(&lines_a)["fetched"].as_u64().unwrap() + done(&lines_b)["fetched"].as_u64().unwrap();
    let (_, with_metadata) = totals(&mut *store);
    assert_eq!(fetched, with_metadata, "no torrent fetched twice");
    for t in &torrents {
        assert!(t.check(&mut *store));
    }
}

/// `--shard I/N` puts every id in slice I; with nothing to crawl the run exits 1.
#[test]
fn shard_ids_sit_in_their_slice() {
    let dir = TempDir::new("crawl-shard");
    let db = format!("sqlite:{}", dir.0.join("shard.sqlite").display());
    let out = std::process::Command::new(crawl_support::DHT)
        .args(["crawl", "--db", &db, "--shard", "1/2", "--ids", "5"])
        .args([
            "--no-bootstrap",
            "--bind",
            "127.0.0.1:0",
            "--duration",
            "0.2",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let first: Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["type"], "crawl");
    assert_eq!(first["shard"], "1/2");
    let ids = first["ids"].as_array().unwrap();
    assert_eq!(ids.len(), 5);
    for id in ids {
        let high = u8::from_str_radix(&id.as_str().unwrap()[..1], 16).unwrap();
        assert!(high >= 8, "{id} is outside the upper half");
    }
    assert_eq!(first["listening"].as_array().unwrap().len(), 5);
    let lines: Vec<&str> = stdout.lines().collect();
    let done: Value = serde_json::from_str(lines[lines.len() - 2]).unwrap();
    assert_eq!(done["type"], "crawl_done");
    let error: Value = serde_json::from_str(lines[lines.len() - 1]).unwrap();
    assert_eq!(
        (error["type"].as_str(), error["exit_code"].as_u64()),
        (Some("error"), Some(1))
    );
}

#[test]
fn bad_input_exits_2_and_help_lists_the_options() {
    let out = std::process::Command::new(crawl_support::DHT)
        .args(["crawl", "--help"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    for opt in [
        "--db",
        "--ids",
        "--rate",
        "--fetch-concurrency",
        "--duration",
        "--shard",
        "--bind",
        "--bootstrap",
        "--state",
        "--json",
    ] {
        assert!(help.contains(opt), "{opt}: {help}");
    }
    for bad in [
        &["crawl", "--shard", "2/2"][..],
        &["crawl", "--ids", "0"],
        &["crawl", "--rate", "0"],
        &[
            "crawl",
            "--db",
            "sqlite:/nonexistent-dir/x.sqlite",
            "--no-bootstrap",
        ],
    ] {
        let out = std::process::Command::new(crawl_support::DHT)
            .args(bad)
            .arg("--json")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let line = String::from_utf8(out.stdout).unwrap();
        let v: Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(v["type"], "error");
    }
}

/// A restart takes up at once the fetches a killed run had claimed (their leases still
/// running), with the same ids, and fetches each of them once.
#[test]
fn a_restart_takes_up_the_claims_of_a_killed_run() {
    let dir = TempDir::new("crawl-resume");
    let path = dir.0.join("crawl.sqlite");
    let state = dir.0.join("crawl.state");
    let swarm = Swarm::start(8, 100);
    let torrents: Vec<Torrent> = (0..3)
        .map(|i| Torrent::new(&swarm, i, "resume", i))
        .collect();
    for t in &torrents {
        t.announce(&swarm);
    }
    let options = || {
        let mut o = CrawlOptions::new([7; 32]);
        o.ids = Some(2);
        o.retry_after = Duration::from_secs(1);
        o.bind = "127.0.0.1:0".parse().unwrap();
        o.bootstrap = vec![swarm.addr(0)];
        o.state = Some(state.clone());
        o
    };
    let open_store = || SqliteStore::open(&path, Limits::default()).unwrap();
    // A first run keeps its ids in the state file.
    let first = Crawl::start(open_store(), options()).unwrap();
    let ids = first.ids().to_vec();
    first.stopper().stop();
    first.run(|_| {}).unwrap();
    // What a killed run leaves behind: info-hashes it had claimed, their leases still running.
    let mut store = open_store();
    let mut batch = Batch::new();
    let now = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    for t in &torrents {
        batch.sighting(Sighting::new(t.info_hash, Source::Other, now));
    }
    store.write(&batch).unwrap();
    let owner = ids[0].to_string();
    let claimed = store
        .claim(&owner, 10, Shard::ALL, now, Duration::from_secs(600))
        .unwrap();
    assert_eq!(claimed.len(), torrents.len());
    drop(store);

    let second = Crawl::start(open_store(), options()).unwrap();
    assert_eq!(second.ids(), ids, "the same ids");
    assert_eq!(second.resumed(), torrents.len() as u64);
    let stopper = second.stopper();
    let hashes: Vec<_> = torrents.iter().map(|t| t.info_hash).collect();
    let watch_path = path.clone();
    let watcher = std::thread::spawn(move || {
        let mut store = SqliteStore::open(&watch_path, Limits::default()).unwrap();
        let started = Instant::now();
        while started.elapsed() < PATIENCE {
            let stored = hashes.iter().all(|h| {
                store
                    .get(*h)
                    .unwrap()
                    .is_some_and(|r| r.fetched_at.is_some())
            });
            if stored {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        stopper.stop();
    });
    let status = second.run(|_| {}).unwrap();
    watcher.join().unwrap();
    assert_eq!(status.fetched, torrents.len() as u64, "{status:?}");
    let mut store = open_store();
    for t in &torrents {
        assert!(t.check(&mut store));
    }
    assert_eq!(store.queue_len().unwrap(), 0);
}
