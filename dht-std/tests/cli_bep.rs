//! `dht put`, `get`, `sample`, `scrape`, `announce --keep` and `decode`'s warning for a
//! truncated `nodes`, against `dht node` processes on loopback.

mod common;

use core::net::SocketAddr;
use core::time::Duration;

use common::{NodeProcess, Output, run, run_with, start_node, temp_dir};
use serde_json::Value;

/// Four serving nodes; commands join through the first.
fn swarm() -> Vec<NodeProcess> {
    let first = start_node(&["--no-bootstrap"]);
    let seed = first.addr.to_string();
    let mut nodes = vec![first];
    nodes.extend((0..3).map(|_| start_node(&["--bootstrap", &seed])));
    // Let the later nodes' bootstraps reach each other.
    std::thread::sleep(Duration::from_millis(300));
    nodes
}

/// Runs `dht ARGS --bootstrap SEED --json` (killed after 30 s); its output and JSON lines.
fn run_json(seed: SocketAddr, args: &[&str]) -> (Output, Vec<Value>) {
    let seed = seed.to_string();
    let args = [
        args,
        &["--bootstrap", &seed, "--bind", "127.0.0.1:0", "--json"],
    ]
    .concat();
    let out = run(&args);
    let lines = out.json_lines();
    (out, lines)
}

#[test]
fn put_and_get_items() {
    let nodes = swarm();
    let seed = nodes[0].addr;
    // Immutable: the target is the SHA-1 of `5:hello`.
    let (out, lines) = run_json(seed, &["put", "hello"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let put = &lines[0];
    assert_eq!(put["type"], "put");
    assert_eq!(put["mutable"], false);
    assert!(put["stored"].as_u64().unwrap() >= 1, "{put}");
    let target = put["target"].as_str().unwrap().to_owned();
    let (out, lines) = run_json(seed, &["get", &target]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(lines[0]["type"], "item");
    assert_eq!(lines[0]["value"], "hello");
    assert_eq!(lines[0]["v"], "353a68656c6c6f");
    assert_eq!(lines[0]["verified"], true);

    // Mutable: a new key file, seq 1 then 2 (one more than the newest stored).
    let dir = temp_dir("items");
    let key = dir.join("key");
    let key = key.to_str().unwrap();
    let (out, lines) = run_json(seed, &["put", "first", "--key", key, "--salt", "s"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(lines[0]["seq"], 1);
    assert!(out.stderr.contains("created the key file"), "{out:?}");
    let public = lines[0]["public_key"].as_str().unwrap().to_owned();
    let (out, lines) = run_json(seed, &["put", "second", "--key", key, "--salt", "s"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(lines[0]["seq"], 2);
    let (out, lines) = run_json(seed, &["get", "--public-key", &public, "--salt", "s"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(
        (lines[0]["value"].as_str(), lines[0]["seq"].as_i64()),
        (Some("second"), Some(2))
    );
    assert_eq!(lines[0]["public_key"], public.as_str());
    let (_, lines) = run_json(seed, &["get", "--key", key, "--salt", "s"]);
    assert_eq!(lines[0]["seq"], 2);
    // A wrong compare-and-swap is refused everywhere: exit 1.
    let (out, lines) = run_json(
        seed,
        &["put", "third", "--key", key, "--salt", "s", "--cas", "7"],
    );
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(lines[0]["stored"], 0);
    // Nothing under another salt: exit 1, no line.
    let (out, lines) = run_json(seed, &["get", "--key", key, "--salt", "other"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(lines.is_empty());
    // Bad input: exit 2.
    let (out, _) = run_json(seed, &["put", "i1", "--bencoded", "--seq", "1"]);
    assert_eq!(out.code, Some(2), "--seq needs --key: {out:?}");
    let (out, _) = run_json(seed, &["put", "not bencode", "--bencoded"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    std::fs::write(dir.join("bad"), "# no key here\n").unwrap();
    let (out, _) = run_json(
        seed,
        &["put", "x", "--key", dir.join("bad").to_str().unwrap()],
    );
    assert_eq!(out.code, Some(2), "{out:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sample_scrape_and_keep() {
    let nodes = swarm();
    let seed = nodes[0].addr;
    let ih = "5a".repeat(20);
    let (out, lines) = run_json(seed, &["announce", &ih, "--port", "6881"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(lines[0]["announced"].as_u64().unwrap() >= 1);

    let (out, lines) = run_json(seed, &["sample", &ih]);
    assert_eq!(out.code, Some(0), "{out:?}");
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
    let (out, lines) = run_json(seed, &["scrape", &ih]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(lines[0]["type"], "scrape");
    assert_eq!(
        (lines[0]["peers"].as_u64(), lines[0]["seeds"].as_u64()),
        (Some(1), Some(0))
    );
    assert!(lines[0]["responders"].as_u64().unwrap() >= 1);

    // --keep re-announces every second until --timeout: at least two rounds, exit 0.
    let other = "6b".repeat(20);
    let (out, lines) = run_json(
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
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(lines.len() >= 2, "{lines:?}");
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["type"], "announce");
        assert_eq!(l["round"].as_u64(), Some(i as u64 + 1));
        assert!(l["announced"].as_u64().unwrap() >= 1, "{l}");
    }
    // --interval without --keep is a usage error.
    let (out, _) = run_json(
        seed,
        &["announce", &other, "--port", "7000", "--interval", "5"],
    );
    assert_eq!(out.code, Some(2));
}

/// A `find_node` reply whose `nodes` is cut mid-entry: decoded, the whole entry shown, the
/// message accepted (exit 0) with a warning on stderr and in the JSON.
#[test]
fn decode_warns_about_truncated_nodes() {
    let mut reply = b"d1:rd2:id20:abcdefghij01234567895:nodes35:".to_vec();
    reply.extend_from_slice(b"0123456789abcdefghij\x7f\x00\x00\x01\x1a\xe1");
    reply.extend_from_slice(&[0x41; 9]);
    reply.extend_from_slice(b"e1:t2:aa1:y1:re");
    let out = run_with(
        &["decode", "--json", "-"],
        Duration::from_secs(30),
        Some(&reply),
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    let v = out.json();
    let nodes = v["response"]["nodes"].as_array().unwrap();
    assert_eq!(nodes[0]["addr"], "127.0.0.1:6881");
    assert!(
        v["warnings"][0].as_str().unwrap().contains("9 bytes"),
        "{v}"
    );
    assert!(out.stderr.contains("partial entry"), "{out:?}");
}

/// `dht node --json` prints status records with the DHT size estimate once lookups ended.
#[test]
fn node_status_shows_the_size_estimate() {
    let nodes = swarm();
    let seed = nodes[0].addr.to_string();
    let out = run(&[
        "node",
        "--json",
        "--bind",
        "127.0.0.1:0",
        "--bootstrap",
        &seed,
        "--duration",
        "1.5",
        "--status-interval",
        "0.5",
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let status: Vec<Value> = out
        .stdout
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
