//! `dht put`, `get`, `sample`, `scrape`, `announce --keep` and `decode`'s warning for a
//! truncated `nodes`, against `dht node` processes on loopback.

use core::net::SocketAddr;
use core::time::Duration;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Output, Stdio};

use serde_json::Value;

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct NodeProcess {
    _child: Guard,
    addr: SocketAddr,
    _stdout: BufReader<ChildStdout>,
}

fn dht() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dht"))
}

/// A `dht node` on 127.0.0.1 (joining through `bootstrap`, if any).
fn start_node(bootstrap: Option<SocketAddr>) -> NodeProcess {
    let mut cmd = dht();
    cmd.args([
        "node",
        "--json",
        "--bind",
        "127.0.0.1:0",
        "--duration",
        "60",
    ]);
    match bootstrap {
        Some(b) => cmd.args(["--bootstrap", &b.to_string()]),
        None => cmd.arg("--no-bootstrap"),
    };
    let mut child = Guard(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    NodeProcess {
        _child: child,
        addr: v["listening"][0].as_str().unwrap().parse().unwrap(),
        _stdout: stdout,
    }
}

/// Three serving nodes; commands join through the first.
fn swarm() -> Vec<NodeProcess> {
    let first = start_node(None);
    let seed = first.addr;
    let mut nodes = vec![first];
    nodes.extend((0..3).map(|_| start_node(Some(seed))));
    // Let the later nodes' bootstraps reach each other.
    std::thread::sleep(Duration::from_millis(300));
    nodes
}

/// Runs `dht ARGS --bootstrap SEED --json` (killed after 30 s).
fn run(seed: SocketAddr, args: &[&str]) -> (Output, Vec<Value>) {
    let mut child = dht()
        .args(args)
        .args([
            "--bootstrap",
            &seed.to_string(),
            "--bind",
            "127.0.0.1:0",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("dht {args:?} ran for more than 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (out, lines)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dht-cli-bep-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn put_and_get_items() {
    let nodes = swarm();
    let seed = nodes[0].addr;
    // Immutable: the target is the SHA-1 of `5:hello`.
    let (out, lines) = run(seed, &["put", "hello"]);
    assert!(out.status.success(), "{out:?}");
    let put = &lines[0];
    assert_eq!(put["type"], "put");
    assert_eq!(put["mutable"], false);
    assert!(put["stored"].as_u64().unwrap() >= 1, "{put}");
    let target = put["target"].as_str().unwrap().to_owned();
    let (out, lines) = run(seed, &["get", &target]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(lines[0]["type"], "item");
    assert_eq!(lines[0]["value"], "hello");
    assert_eq!(lines[0]["v"], "353a68656c6c6f");
    assert_eq!(lines[0]["verified"], true);

    // Mutable: a new key file, seq 1 then 2 (one more than the newest stored).
    let dir = temp_dir("items");
    let key = dir.join("key");
    let key = key.to_str().unwrap();
    let (out, lines) = run(seed, &["put", "first", "--key", key, "--salt", "s"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(lines[0]["seq"], 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("created the key file"),
        "{out:?}"
    );
    let public = lines[0]["public_key"].as_str().unwrap().to_owned();
    let (out, lines) = run(seed, &["put", "second", "--key", key, "--salt", "s"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(lines[0]["seq"], 2);
    let (out, lines) = run(seed, &["get", "--public-key", &public, "--salt", "s"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        (lines[0]["value"].as_str(), lines[0]["seq"].as_i64()),
        (Some("second"), Some(2))
    );
    assert_eq!(lines[0]["public_key"], public.as_str());
    let (_, lines) = run(seed, &["get", "--key", key, "--salt", "s"]);
    assert_eq!(lines[0]["seq"], 2);
    // A wrong compare-and-swap is refused everywhere: exit 1.
    let (out, lines) = run(
        seed,
        &["put", "third", "--key", key, "--salt", "s", "--cas", "7"],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(lines[0]["stored"], 0);
    // Nothing under another salt: exit 1, no line.
    let (out, lines) = run(seed, &["get", "--key", key, "--salt", "other"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(lines.is_empty());
    // Bad input: exit 2.
    let (out, _) = run(seed, &["put", "i1", "--bencoded", "--seq", "1"]);
    assert_eq!(out.status.code(), Some(2), "--seq needs --key: {out:?}");
    let (out, _) = run(seed, &["put", "not bencode", "--bencoded"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    std::fs::write(dir.join("bad"), "# no key here\n").unwrap();
    let (out, _) = run(
        seed,
        &["put", "x", "--key", dir.join("bad").to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sample_scrape_and_keep() {
    let nodes = swarm();
    let seed = nodes[0].addr;
    let ih = "5a".repeat(20);
    let (out, lines) = run(seed, &["announce", &ih, "--port", "6881"]);
    assert!(out.status.success(), "{out:?}");
    assert!(lines[0]["announced"].as_u64().unwrap() >= 1);

    let (out, lines) = run(seed, &["sample", &ih]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        lines.iter().any(|l| l["type"] == "samples"
            && l["samples"]
                .as_array()
                .unwrap()
                .contains(&ih.clone().into())),
        "{lines:?}"
    );
    let summary = lines.last().unwrap();
    assert_eq!(summary["type"], "sample_summary");
    assert!(summary["info_hashes"].as_u64().unwrap() >= 1);

    // One downloader (every peer here is 127.0.0.1), no seed.
    let (out, lines) = run(seed, &["scrape", &ih]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(lines[0]["type"], "scrape");
    assert_eq!(
        (lines[0]["peers"].as_u64(), lines[0]["seeds"].as_u64()),
        (Some(1), Some(0))
    );
    assert!(lines[0]["responders"].as_u64().unwrap() >= 1);

    // --keep re-announces every second until --timeout: at least two rounds, exit 0.
    let other = "6b".repeat(20);
    let (out, lines) = run(
        seed,
        &[
            "announce",
            &other,
            "--port",
            "7000",
            "--keep",
            "--interval",
            "1",
            "--timeout",
            "2.5",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(lines.len() >= 2, "{lines:?}");
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["type"], "announce");
        assert_eq!(l["round"].as_u64(), Some(i as u64 + 1));
        assert!(l["announced"].as_u64().unwrap() >= 1, "{l}");
    }
    // --interval without --keep is a usage error.
    let (out, _) = run(
        seed,
        &["announce", &other, "--port", "7000", "--interval", "5"],
    );
    assert_eq!(out.status.code(), Some(2));
}

/// A `find_node` reply whose `nodes` is cut mid-entry: decoded, the whole entry shown, the
/// message accepted (exit 0) with a warning on stderr and in the JSON.
#[test]
fn decode_warns_about_truncated_nodes() {
    let mut reply = b"d1:rd2:id20:abcdefghij01234567895:nodes35:".to_vec();
    reply.extend_from_slice(b"0123456789abcdefghij\x7f\x00\x00\x01\x1a\xe1");
    reply.extend_from_slice(&[0x41; 9]);
    reply.extend_from_slice(b"e1:t2:aa1:y1:re");
    let mut child = dht()
        .args(["decode", "--json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&reply).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let nodes = v["response"]["nodes"].as_array().unwrap();
    assert_eq!(nodes[0]["addr"], "127.0.0.1:6881");
    assert!(
        v["warnings"][0].as_str().unwrap().contains("9 bytes"),
        "{v}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("partial entry"));
}

/// `dht node --json` prints status records with the DHT size estimate once lookups ended.
#[test]
fn node_status_shows_the_size_estimate() {
    let nodes = swarm();
    let seed = nodes[0].addr.to_string();
    let out = dht()
        .args([
            "node",
            "--json",
            "--bind",
            "127.0.0.1:0",
            "--bootstrap",
            &seed,
        ])
        .args(["--duration", "1.5", "--status-interval", "0.5"])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let status: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "status")
        .collect();
    assert!(status.len() >= 2, "{out:?}");
    let last = status.last().unwrap();
    // Four other nodes: an estimate of a few nodes.
    let size = last["dht_size"]
        .as_u64()
        .unwrap_or_else(|| panic!("{last}"));
    assert!((1..=20).contains(&size), "{last}");
    assert!(last["contacts"].as_u64().unwrap() >= 1);
}
