//! What the storage tests share: data, the PostgreSQL test database, and the properties every
//! backend must have.

#![allow(dead_code)]

use core::time::Duration;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use dht_proto::Id;
use dht_std::store::{Batch, DbUrl, FileEntry, Shard, Sighting, Source, Store, TorrentRecord};

/// A well-spread info-hash for `i` (splitmix64 over the 20 bytes).
pub fn hash(i: u64) -> Id {
    let mut bytes = [0; 20];
    let mut x = (i ^ 0x5eed).wrapping_mul(0xd6e8_feb8_6659_fd93);
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

/// A torrent of `files` files named after `name`.
pub fn torrent(i: u64, name: &str, files: usize, at: i64) -> TorrentRecord {
    let files: Vec<FileEntry> = (0..files)
        .map(|f| FileEntry {
            path: format!("{name}/part {f}.bin"),
            size: 1000 + f as u64,
        })
        .collect();
    TorrentRecord {
        info_hash: hash(i),
        name: name.to_owned(),
        total_size: files.iter().map(|f| f.size).sum(),
        files,
        info: format!("d4:name{}:{name}e", name.len()).into_bytes(),
        fetched_at: at,
    }
}

/// A temporary directory, removed when dropped.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("dht-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The PostgreSQL server's URL (`.ci/postgres.sh` sets it), or `None` after saying why the test
/// is skipped. Under CI (`CI` set) a missing server is a failure, not a skip.
pub fn postgres_url(test: &str) -> Option<String> {
    match std::env::var("DHT_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{test}: DHT_TEST_POSTGRES_URL is unset under CI (run the tests through \
                 .ci/postgres.sh)"
            );
            eprintln!(
                "{test}: skipped: DHT_TEST_POSTGRES_URL is unset (.ci/postgres.sh COMMAND runs \
                 COMMAND beside a throwaway PostgreSQL server)"
            );
            None
        }
    }
}

/// A fresh database on the test server for one test, dropped when this is dropped.
#[derive(Debug)]
pub struct PgDb {
    admin: String,
    name: String,
    pub url: String,
}

impl PgDb {
    pub fn new(test: &str) -> Option<Self> {
        let admin = postgres_url(test)?;
        let name = format!("dht_{test}_{}", std::process::id());
        let mut client = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
        // One statement per call: DROP/CREATE DATABASE refuse to run in a transaction block.
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .unwrap();
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        Some(Self { admin, name, url })
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

fn write(store: &mut dyn Store, f: impl FnOnce(&mut Batch)) {
    let mut batch = Batch::new();
    f(&mut batch);
    store.write(&batch).unwrap();
}

fn sorted(mut hashes: Vec<Id>) -> Vec<Id> {
    hashes.sort();
    hashes
}

const LEASE: Duration = Duration::from_secs(600);

/// Sightings merge into one row per info-hash; writing a stored torrent again changes nothing.
pub fn upserts_are_idempotent(store: &mut dyn Store) {
    let h = hash(1);
    write(store, |b| {
        b.sighting(Sighting::new(h, Source::GetPeers, 100));
        b.sighting(Sighting::new(h, Source::Sample, 90));
        b.sighting(Sighting::new(h, Source::AnnouncePeer, 120));
    });
    let row = store.get(h).unwrap().unwrap();
    assert_eq!(
        (
            row.source.as_str(),
            row.first_seen,
            row.last_seen,
            row.times_seen
        ),
        ("sample_infohashes", 90, 120, 3)
    );
    write(store, |b| {
        b.sighting(Sighting {
            peers: Some(7),
            seeders: Some(3),
            leechers: Some(4),
            ..Sighting::new(h, Source::GetPeers, 80)
        });
    });
    let row = store.get(h).unwrap().unwrap();
    assert_eq!(
        (row.first_seen, row.last_seen, row.times_seen),
        (80, 120, 4)
    );
    assert_eq!(
        (row.peers, row.seeders, row.leechers),
        (Some(7), Some(3), Some(4))
    );
    assert_eq!(
        row.source, "sample_infohashes",
        "the first source found is kept"
    );

    let t = torrent(1, "Ubuntu 24.04 desktop", 3, 130);
    write(store, |b| b.torrent(t.clone()));
    let once = store.get(h).unwrap().unwrap();
    write(store, |b| {
        b.torrent(TorrentRecord {
            fetched_at: 200,
            ..t.clone()
        })
    });
    let twice = store.get(h).unwrap().unwrap();
    assert_eq!(once, twice, "a torrent stored twice is stored once");
    assert_eq!(twice.name.as_deref(), Some("Ubuntu 24.04 desktop"));
    assert_eq!(twice.total_size, Some(3003));
    assert_eq!(twice.file_count, Some(3));
    assert_eq!(twice.files, t.files);
    assert_eq!(twice.info.as_deref(), Some(t.info.as_slice()));
    assert_eq!(twice.fetched_at, Some(130), "the first fetch time is kept");
    assert_eq!(
        (twice.times_seen, twice.peers),
        (4, Some(7)),
        "sightings survive metadata"
    );

    // Metadata for an info-hash never sighted.
    write(store, |b| b.torrent(torrent(2, "other", 1, 140)));
    let row = store.get(hash(2)).unwrap().unwrap();
    assert_eq!(
        (row.source.as_str(), row.times_seen, row.first_seen),
        ("other", 0, 140)
    );
    let stats = store.stats(150).unwrap();
    assert_eq!(
        (stats.torrents, stats.with_metadata, stats.files),
        (2, 2, 4)
    );
    assert_eq!(
        store.schema_version().unwrap(),
        dht_std::store::SCHEMA_VERSION
    );
}

/// Info-hashes without metadata wait in the queue; claims lease them, fetches complete them,
/// failures retry then give up, releases give them back.
pub fn the_queue_leases_and_completes(store: &mut dyn Store) {
    write(store, |b| {
        for i in 0..5 {
            b.sighting(Sighting::new(hash(i), Source::GetPeers, 100 + i as i64));
        }
    });
    assert_eq!(store.stats(100).unwrap().queued, 5);
    let a = store.claim("a", 3, Shard::ALL, 1000, LEASE).unwrap();
    assert_eq!(
        sorted(a),
        sorted(vec![hash(0), hash(1), hash(2)]),
        "oldest first"
    );
    let b = store.claim("b", 10, Shard::ALL, 1000, LEASE).unwrap();
    assert_eq!(
        sorted(b),
        sorted(vec![hash(3), hash(4)]),
        "leased ones are not claimed twice"
    );
    assert_eq!(store.stats(1000).unwrap().leased, 5);
    assert!(
        store
            .claim("b", 10, Shard::ALL, 1599, LEASE)
            .unwrap()
            .is_empty()
    );

    // a completes one, fails one, releases one, and dies with the rest.
    write(store, |batch| batch.torrent(torrent(0, "zero", 1, 1010)));
    store
        .fail(&[hash(1)], 1020, Duration::from_secs(60))
        .unwrap();
    store.release(&[hash(2)]).unwrap();
    assert_eq!(
        store.claim("c", 10, Shard::ALL, 1021, LEASE).unwrap(),
        [hash(2)]
    );
    assert_eq!(
        store.claim("c", 10, Shard::ALL, 1080, LEASE).unwrap(),
        [hash(1)]
    );
    // b's lease runs out at 1600: its claims come back.
    let again = store.claim("d", 10, Shard::ALL, 1600, LEASE).unwrap();
    assert_eq!(sorted(again), sorted(vec![hash(3), hash(4)]));

    // A sighting of a fetched info-hash does not queue it again.
    write(store, |b| {
        b.sighting(Sighting::new(hash(0), Source::GetPeers, 2000))
    });
    assert_eq!(store.stats(2000).unwrap().queued, 4);
    assert_eq!(store.get(hash(0)).unwrap().unwrap().times_seen, 2);

    // hash(1) was claimed twice: three more failures (five attempts) and it leaves the queue.
    for round in 0..3 {
        store.fail(&[hash(1)], 3000, Duration::ZERO).unwrap();
        assert_eq!(store.stats(3000).unwrap().queued, 4);
        let at = 3000 + round;
        let claimed = store
            .claim("e", 10, Shard::ALL, at, Duration::from_secs(1))
            .unwrap();
        assert!(claimed.contains(&hash(1)));
    }
    store.fail(&[hash(1)], 3100, Duration::ZERO).unwrap();
    assert_eq!(store.stats(3100).unwrap().queued, 3);
    // Seen again, it is queued again.
    write(store, |b| {
        b.sighting(Sighting::new(hash(1), Source::Sample, 3200))
    });
    assert_eq!(store.stats(3200).unwrap().queued, 4);
}

/// Past `max_queue`, info-hashes are recorded but not queued. `store` has `max_queue` 3.
/// A restarting crawler gives back its own claims (and only those) at once, attempts not
/// counted; the queue's length counts leased entries too.
pub fn an_owner_takes_back_its_claims(store: &mut dyn Store) {
    write(store, |b| {
        for i in 0..6 {
            b.sighting(Sighting::new(hash(i), Source::GetPeers, 100));
        }
    });
    assert_eq!(store.queue_len().unwrap(), 6);
    let mine = store.claim("me", 2, Shard::ALL, 100, LEASE).unwrap();
    let theirs = store.claim("them", 2, Shard::ALL, 100, LEASE).unwrap();
    assert_eq!((mine.len(), theirs.len()), (2, 2));
    assert_eq!(
        store.queue_len().unwrap(),
        6,
        "leased entries are still queued"
    );
    assert_eq!(store.release_owner("me").unwrap(), 2);
    assert_eq!(store.release_owner("me").unwrap(), 0);
    // Mine are claimable at once (with the two never claimed); theirs are still leased.
    let again = store.claim("me", 10, Shard::ALL, 101, LEASE).unwrap();
    assert_eq!(again.len(), 4);
    for h in &mine {
        assert!(again.contains(h));
    }
    for h in &theirs {
        assert!(!again.contains(h));
    }
}

pub fn the_queue_is_capped(store: &mut dyn Store) {
    write(store, |b| {
        for i in 0..5 {
            b.sighting(Sighting::new(hash(i), Source::GetPeers, 100));
        }
    });
    let stats = store.stats(100).unwrap();
    assert_eq!((stats.torrents, stats.queued), (5, 3));
    write(store, |b| b.torrent(torrent(0, "done", 1, 110)));
    write(store, |b| b.torrent(torrent(1, "done", 1, 110)));
    write(store, |b| {
        for i in 5..9 {
            b.sighting(Sighting::new(hash(i), Source::GetPeers, 120));
        }
    });
    assert_eq!(store.stats(120).unwrap().queued, 3);
}

/// Claims of shard i/n return only its slice; the shards together return everything once.
pub fn shards_split_the_queue(store: &mut dyn Store) {
    write(store, |b| {
        for i in 0..200 {
            b.sighting(Sighting::new(hash(i), Source::Sample, 100));
        }
    });
    let mut all = Vec::new();
    for i in 0..3 {
        let shard = Shard::new(i, 3).unwrap();
        let claimed = store.claim("s", 1000, shard, 200, LEASE).unwrap();
        assert!(claimed.len() > 30, "shard {shard}: {}", claimed.len());
        assert!(claimed.iter().all(|h| shard.contains(h)), "shard {shard}");
        all.extend(claimed);
    }
    all.sort();
    let mut expected: Vec<Id> = (0..200).map(hash).collect();
    expected.sort();
    assert_eq!(all, expected);
}

/// Names are cut, NULs replaced, files and info dictionaries capped.
/// `store` has `max_files` 2, `max_info_len` 16, `max_text_len` 8.
pub fn caps_hold_for_metadata(store: &mut dyn Store) {
    let mut t = torrent(1, "a\0long name", 5, 100);
    t.info = vec![b'x'; 17];
    write(store, |b| b.torrent(t.clone()));
    let row = store.get(hash(1)).unwrap().unwrap();
    assert_eq!(row.name.as_deref(), Some("a\u{fffd}long"));
    assert_eq!(row.file_count, Some(5));
    assert_eq!(row.files.len(), 2);
    assert_eq!(row.files[0].path, "a\u{fffd}long");
    assert_eq!(row.info, None);
    assert_eq!(row.total_size, Some(t.total_size));
    t.info = vec![b'x'; 16];
    write(store, |b| b.torrent(t.clone()));
    assert_eq!(store.get(hash(1)).unwrap().unwrap().info, Some(t.info));
}

/// Search by words (prefixes, any case), by substring when words find nothing, and hostile
/// query text is only text.
pub fn search_finds_names(store: &mut dyn Store) {
    write(store, |b| {
        b.torrent(torrent(1, "Ubuntu 24.04 Desktop amd64", 1, 100));
        b.torrent(torrent(2, "Debian 12 netinst", 1, 100));
        b.torrent(torrent(3, "ubuntu-server_22.04", 1, 100));
        for _ in 0..3 {
            b.sighting(Sighting::new(hash(3), Source::GetPeers, 90));
        }
    });
    let names = |hits: Vec<dht_std::store::TorrentRow>| -> Vec<String> {
        hits.into_iter().filter_map(|h| h.name).collect()
    };
    assert_eq!(
        names(store.search("ubuntu", 10).unwrap()),
        ["ubuntu-server_22.04", "Ubuntu 24.04 Desktop amd64"],
        "most seen first"
    );
    assert_eq!(
        names(store.search("DESK ubu", 10).unwrap()),
        ["Ubuntu 24.04 Desktop amd64"]
    );
    assert_eq!(names(store.search("ubuntu", 1).unwrap()).len(), 1);
    assert_eq!(
        names(store.search("etins", 10).unwrap()),
        ["Debian 12 netinst"],
        "substring"
    );
    assert!(store.search("fedora", 10).unwrap().is_empty());
    for hostile in [
        "\"",
        "ubuntu\" OR \"debian",
        "*",
        "a:*",
        "' OR 1=1 --",
        "%",
        "_",
        "\\",
        "NEAR(",
        "^x",
        "!!",
        "",
    ] {
        let hits = store.search(hostile, 10).unwrap();
        assert!(hits.len() <= 3, "{hostile:?}");
    }
    assert!(
        store.search("%", 10).unwrap().is_empty(),
        "% is not a wildcard"
    );
}

/// Sightings and torrents per batch of the killed writer.
pub const KILL_SIGHTINGS: u64 = 2000;
pub const KILL_TORRENTS: u64 = 200;
pub const KILL_FILES: usize = 3;

/// The writer the test below kills: commits batches forever, printing each one's number.
pub fn kill_child(url: &str) {
    let mut store = DbUrl::parse(url).open(true).unwrap();
    let mut out = std::io::stdout();
    for n in 0_u64.. {
        let mut batch = Batch::new();
        let base = n * KILL_SIGHTINGS;
        for i in base..base + KILL_SIGHTINGS {
            batch.sighting(Sighting::new(hash(i), Source::GetPeers, 100));
        }
        for i in base..base + KILL_TORRENTS {
            batch.torrent(torrent(i, &format!("torrent {i}"), KILL_FILES, 100));
        }
        store.write(&batch).unwrap();
        writeln!(out, "committed {}", n + 1).unwrap();
        out.flush().unwrap();
    }
}

/// Runs this test binary again as the writer, kills it with SIGKILL after `commits` commits,
/// and returns how many it had reported.
pub fn kill_writer(test: &str, url: &str, commits: u64) -> u64 {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("DHT_STORE_KILL_CHILD", url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut reported = 0;
    while reported < commits {
        let line = lines.next().expect("the writer stopped").unwrap();
        if let Some(n) = line.strip_prefix("committed ") {
            reported = n.parse().unwrap();
        }
    }
    // `Child::kill` is SIGKILL on Unix: no destructor, no flush, no rollback runs.
    child.kill().unwrap();
    child.wait().unwrap();
    reported
}

/// Checks that the database holds whole batches only, at least `reported` of them.
pub fn check_whole_batches(store: &mut dyn Store, reported: u64) -> u64 {
    let stats = store.stats(200).unwrap();
    assert_eq!(
        stats.torrents % KILL_SIGHTINGS,
        0,
        "a partial batch: {stats:?}"
    );
    let batches = stats.torrents / KILL_SIGHTINGS;
    assert!(
        batches == reported || batches == reported + 1,
        "{batches} batches stored, {reported} reported"
    );
    assert_eq!(stats.with_metadata, batches * KILL_TORRENTS);
    assert_eq!(stats.files, batches * KILL_TORRENTS * KILL_FILES as u64);
    assert_eq!(stats.queued, batches * (KILL_SIGHTINGS - KILL_TORRENTS));
    batches
}
