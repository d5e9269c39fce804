//! What the crawler's tests share: a swarm of in-process nodes on loopback, torrents served by
//! in-process seeders and announced by those nodes, and `dht crawl` as a child process.

#![allow(dead_code)]

use core::net::SocketAddr;
use core::time::Duration;
use std::io::{BufRead as _, BufReader, Read as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use dht_proto::{Config, Id};
use dht_std::store::{DbUrl, Store};
use dht_std::{Dht, DhtHandle};
use serde_json::Value;

use crate::support::seeder::{Behaviour, Seeder, info_hash};

pub const DHT: &str = env!("CARGO_BIN_EXE_dht");

/// The longest any wait of these tests lasts before it gives up (and the test fails).
pub const PATIENCE: Duration = Duration::from_secs(240);

/// In-process DHT nodes, node `i` on its own loopback address 127.0.0.`base + i` (the crawler
/// sends at most one query per remote IP per second, so a swarm sharing one IP would crawl
/// slowly).
pub struct Swarm {
    pub nodes: Vec<DhtHandle>,
}

impl Swarm {
    pub fn start(n: usize, base: u8) -> Self {
        let mut nodes: Vec<DhtHandle> = Vec::new();
        for i in 0..n {
            let ip = format!("127.0.0.{}", usize::from(base) + i);
            let mut seed = [0u8; 32];
            seed[0] = base;
            seed[1] = i as u8;
            seed[2..10].copy_from_slice(&std::process::id().to_le_bytes().repeat(2));
            let dht = Dht::bind(format!("{ip}:0").parse().unwrap(), Config::new(seed)).unwrap();
            let node = DhtHandle::spawn(dht).unwrap();
            if let Some(first) = nodes.first() {
                node.bootstrap(&[first.local_addr()]).unwrap();
            }
            nodes.push(node);
        }
        // The first node learns the others from their queries; a second round fills the tables.
        let all: Vec<SocketAddr> = nodes.iter().map(DhtHandle::local_addr).collect();
        for node in &nodes {
            node.bootstrap(&all).unwrap();
        }
        Self { nodes }
    }

    pub fn addr(&self, i: usize) -> SocketAddr {
        self.nodes[i].local_addr()
    }
}

/// A torrent: its info dictionary, served by a seeder on its announcing node's address.
pub struct Torrent {
    pub name: String,
    pub files: Vec<(String, u64)>,
    pub info: Vec<u8>,
    pub info_hash: Id,
    pub node: usize,
    pub seeder: Seeder,
}

impl Torrent {
    /// Torrent `i` of a test run `tag`, seeded beside node `node` of `swarm`.
    pub fn new(swarm: &Swarm, node: usize, tag: &str, i: usize) -> Self {
        let name = format!("{tag} torrent {i}");
        let files: Vec<(String, u64)> = (0..=i % 3)
            .map(|f| {
                (
                    format!("dir {f}/part {i}.bin"),
                    1000 * (i as u64 + 1) + f as u64,
                )
            })
            .collect();
        let info = multi_file_info(&name, &files);
        let ip = swarm.addr(node).ip().to_string();
        Self {
            info_hash: info_hash(&info),
            seeder: Seeder::spawn(&ip, info.clone(), Behaviour::Honest),
            name,
            files,
            info,
            node,
        }
    }

    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|(_, n)| n).sum()
    }

    /// Announces the seeder on the DHT through its node.
    pub fn announce(&self, swarm: &Swarm) {
        let _ = swarm.nodes[self.node].announce(self.info_hash, Some(self.seeder.addr.port()));
    }

    /// Whether the store holds this torrent's metadata, and it is right.
    pub fn check(&self, store: &mut dyn Store) -> bool {
        let Some(row) = store.get(self.info_hash).unwrap() else {
            return false;
        };
        if row.fetched_at.is_none() {
            return false;
        }
        assert_eq!(row.name.as_deref(), Some(self.name.as_str()));
        assert_eq!(row.total_size, Some(self.total_size()));
        assert_eq!(row.file_count, Some(self.files.len() as u64));
        let files: Vec<(String, u64)> =
            row.files.iter().map(|f| (f.path.clone(), f.size)).collect();
        assert_eq!(files, self.files);
        assert_eq!(row.info.as_deref(), Some(self.info.as_slice()));
        true
    }
}

/// A v1 multi-file info dictionary.
pub fn multi_file_info(name: &str, files: &[(String, u64)]) -> Vec<u8> {
    let mut v = b"d5:filesl".to_vec();
    for (path, len) in files {
        v.extend(format!("d6:lengthi{len}e4:pathl").as_bytes());
        for part in path.split('/') {
            v.extend(format!("{}:{part}", part.len()).as_bytes());
        }
        v.extend(b"ee");
    }
    v.extend(
        format!(
            "e4:name{}:{name}12:piece lengthi16384e6:pieces20:",
            name.len()
        )
        .as_bytes(),
    );
    v.extend([7u8; 20]);
    v.push(b'e');
    v
}

/// Opens the database a crawler writes (once it exists).
pub fn open(url: &str) -> Box<dyn Store> {
    let url = DbUrl::parse(url);
    let started = Instant::now();
    loop {
        match url.open(false) {
            Ok(s) => return s,
            Err(e) => {
                assert!(started.elapsed() < PATIENCE, "{e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Announces every torrent not yet stored with metadata, round after round, until all are (or
/// [`PATIENCE`] is over: then it panics naming what is missing). `also` runs after each round.
pub fn crawl_until_stored(
    swarm: &Swarm,
    torrents: &[Torrent],
    store: &mut dyn Store,
    mut also: impl FnMut(),
) {
    let started = Instant::now();
    loop {
        let missing: Vec<&Torrent> = torrents.iter().filter(|t| !t.check(store)).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "not stored: {:?}",
            missing.iter().map(|t| &t.name).collect::<Vec<_>>()
        );
        for t in missing {
            t.announce(swarm);
        }
        also();
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `dht crawl --json` as a child process, killed on drop; stdout read on a thread.
pub struct Crawler {
    pub child: Child,
    lines: mpsc::Receiver<Value>,
    pub seen: Vec<Value>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Crawler {
    pub fn spawn(db: &str, state: &Path, bootstrap: SocketAddr, extra: &[&str]) -> Self {
        let mut child = Command::new(DHT)
            .args([
                "crawl",
                "--json",
                "--db",
                db,
                "--state",
                state.to_str().unwrap(),
                "--bind",
                "127.0.0.1:0",
                "--bootstrap",
                &bootstrap.to_string(),
                "--status-interval",
                "1",
                // A fetch that found no peer (the lookup ran before the announce) is retried
                // soon, not in ten minutes.
                "--retry-after",
                "1",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("RUST_LOG")
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v: Value =
                    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
            stderr: Some(stderr),
        }
    }

    /// The next JSON line (bounded wait).
    pub fn next(&mut self) -> Value {
        let v = self
            .lines
            .recv_timeout(PATIENCE)
            .expect("a line from dht crawl");
        self.seen.push(v.clone());
        v
    }

    /// The first line: the `crawl` record.
    pub fn started(&mut self) -> Value {
        let v = self.next();
        assert_eq!(v["type"], "crawl", "{v}");
        v
    }

    /// Sends `signal` (a number) with the `kill` program.
    pub fn signal(&self, signal: i32) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the exit (bounded), returns the code, the rest of stdout and stderr.
    pub fn wait(mut self) -> (Option<i32>, Vec<Value>, String) {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(started.elapsed() < PATIENCE, "dht crawl did not exit");
            std::thread::sleep(Duration::from_millis(50));
        };
        while let Ok(v) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(v);
        }
        let stderr = self.stderr.take().unwrap().join().unwrap_or_default();
        (status.code(), core::mem::take(&mut self.seen), stderr)
    }
}

impl Drop for Crawler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub const SIGKILL: i32 = 9;
pub const SIGTERM: i32 = 15;
