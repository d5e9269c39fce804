//! `dht db stats` and `dht db search` on a database written through the store API (SQLite
//! always; PostgreSQL when `DHT_TEST_POSTGRES_URL` is set).

#![cfg(feature = "crawl")]

mod store_common;

use std::process::{Command, Stdio};

use dht_std::store::{Batch, Limits, PostgresStore, Sighting, Source, SqliteStore, Store};
use serde_json::Value;
use store_common::{PgDb, TempDir, hash, torrent};

const DHT: &str = env!("CARGO_BIN_EXE_dht");

/// Runs `dht args`: exit code, stdout, stderr.
fn dht(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(DHT)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

fn fill(store: &mut dyn Store) {
    let mut batch = Batch::new();
    for i in 0..10 {
        batch.sighting(Sighting::new(hash(i), Source::GetPeers, 100));
    }
    batch.sighting(Sighting::new(hash(10), Source::Sample, 100));
    batch.sighting(Sighting::new(hash(1), Source::GetPeers, 150));
    batch.torrent(torrent(1, "Big Buck Bunny 1080p", 2, 120));
    batch.torrent(torrent(2, "Sintel \"director's cut\"", 1, 130));
    store.write(&batch).unwrap();
}

fn check(url: &str) {
    let (code, out, err) = dht(&["db", "stats", "--db", url, "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    let s = &lines[0];
    assert_eq!(s["type"], "db_stats");
    assert_eq!(s["schema_version"], 1);
    assert_eq!(s["torrents"], 11);
    assert_eq!(s["with_metadata"], 2);
    assert_eq!(s["files"], 3);
    assert_eq!(s["queued"], 9);
    assert_eq!(s["sources"][0]["source"], "get_peers");
    assert_eq!(s["sources"][0]["count"], 10);
    assert_eq!(s["sources"][1]["source"], "sample_infohashes");
    assert!(!s["database"].as_str().unwrap().contains("secret"));

    let (code, out, err) = dht(&["db", "stats", "--db", url]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("info-hashes  11"), "{out}");
    assert!(out.contains("queue        9 awaiting metadata"), "{out}");

    let (code, out, err) = dht(&["--json", "db", "search", "bunny", "--db", url]);
    assert_eq!(code, Some(0), "{err}");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    let t = &lines[0];
    assert_eq!(t["type"], "torrent");
    assert_eq!(t["info_hash"], hash(1).to_string());
    assert_eq!(t["name"], "Big Buck Bunny 1080p");
    assert_eq!(t["total_size"], 2001);
    assert_eq!(t["file_count"], 2);
    assert_eq!(t["times_seen"], 2);
    assert_eq!(t["source"], "get_peers");

    let (code, out, _) = dht(&["db", "search", "DIRECTOR", "--db", url]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with(&hash(2).to_string()), "{out}");
    assert!(out.contains("Sintel \"director's cut\""), "{out}");

    let (code, out, err) = dht(&["db", "search", "\" OR 1", "--db", url]);
    assert_eq!((code, out.as_str()), (Some(1), ""), "nothing matches");
    assert!(err.contains("no torrent name matches"), "{err}");
}

#[test]
fn stats_and_search_on_sqlite() {
    let dir = TempDir::new("db-cli");
    let path = dir.0.join("crawl.sqlite");
    fill(&mut SqliteStore::open(&path, Limits::default()).unwrap());
    check(&format!("sqlite:{}", path.display()));
    // A bare path works too.
    let (code, _, _) = dht(&["db", "stats", "--db", path.to_str().unwrap()]);
    assert_eq!(code, Some(0));
}

#[test]
fn stats_and_search_on_postgres() {
    let Some(db) = PgDb::new("db_cli") else {
        return;
    };
    fill(&mut PostgresStore::connect(&db.url, Limits::default()).unwrap());
    check(&db.url);
}

#[test]
fn bad_databases_are_refused() {
    let dir = TempDir::new("db-cli-missing");
    let missing = dir.0.join("none.sqlite");
    let (code, _, err) = dht(&["db", "stats", "--db", missing.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no database at"), "{err}");
    assert!(!missing.exists(), "a read does not create the file");
    // A closed port on loopback: the connection fails, the run fails.
    let (code, _, err) = dht(&["db", "stats", "--db", "postgres://u:secret@127.0.0.1:1/x"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("postgres://u:***@127.0.0.1:1/x"), "{err}");
    assert!(!err.contains("secret"), "{err}");
    // A file that is not a database.
    let junk = dir.0.join("junk.sqlite");
    std::fs::write(&junk, b"not a database, not at all; just text").unwrap();
    let (code, _, err) = dht(&["db", "search", "x", "--db", junk.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    let (code, out, _) = dht(&["db", "--help"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("stats") && out.contains("search"), "{out}");
    let (code, _, _) = dht(&["db", "search", "x", "--limit", "0"]);
    assert_eq!(code, Some(2));
}
