//! The `dht` binary end to end, on loopback only. Every child process is killed when its guard
//! drops, and every wait is bounded.

mod common;

use core::time::Duration;
use std::io::{BufRead as _, BufReader};
use std::net::UdpSocket;
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

#[test]
fn swarm_finds_the_announced_peer() {
    let out = run(&["swarm", "--nodes", "12", "--json"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let lines = out.json_lines();
    assert_eq!(lines.len(), 1, "{out:?}");
    let v = &lines[0];
    assert_eq!(v["found"], true);
    assert_eq!(v["nodes"], 12);
    let announcer = v["announce"]["addr"].as_str().unwrap();
    let peers = v["get_peers"]["peers"].as_array().unwrap();
    assert!(peers.iter().any(|p| p == announcer), "{v}");
    assert!(v["announce"]["announced"].as_u64().unwrap() >= 1);
    assert!(v["get_peers"]["metrics"]["responses"].as_u64().unwrap() >= 1);
    // Not a terminal: no progress output on stderr.
    assert_eq!(out.stderr, "");
}

#[test]
fn swarm_text_output() {
    let out = run(&["swarm", "--nodes", "4"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains("swarm: 4 nodes on 127.0.0.1"),
        "{out:?}"
    );
    assert!(
        out.stdout
            .contains("ok: the lookup found the announced peer"),
        "{out:?}"
    );
}

#[test]
fn announce_and_get_peers_across_processes() {
    let node = start_node(&["--no-bootstrap"]);
    let seed = node.addr.to_string();
    let common = ["--bind", "127.0.0.1:0", "--bootstrap", seed.as_str()];

    let mut args = vec!["announce", IH, "--port", "4321", "--json"];
    args.extend_from_slice(&common);
    let out = run(&args);
    assert_eq!(out.code, Some(0), "{out:?}");
    let v = &out.json_lines()[0];
    assert_eq!(v["info_hash"], IH);
    assert_eq!(v["port"], 4321);
    assert!(v["announced"].as_u64().unwrap() >= 1, "{v}");

    let mut args = vec!["get-peers", IH];
    args.extend_from_slice(&common);
    let out = run(&args);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "127.0.0.1:4321\n");

    // The same through a magnet URI, with JSON lines.
    let magnet = format!("magnet:?xt=urn:btih:{}&dn=x", IH.to_uppercase());
    let mut args = vec!["get-peers", magnet.as_str(), "--json"];
    args.extend_from_slice(&common);
    let out = run(&args);
    assert_eq!(out.code, Some(0), "{out:?}");
    let lines = out.json_lines();
    assert_eq!(lines.len(), 2, "{out:?}");
    assert_eq!(lines[0]["type"], "peer");
    assert_eq!(lines[0]["peer"], "127.0.0.1:4321");
    assert_eq!(lines[0]["port"], 4321);
    // The summary closes the stream.
    assert_eq!(lines[1]["type"], "get_peers");
    assert_eq!(lines[1]["info_hash"], IH);
    assert_eq!(lines[1]["peers"], 1);
    assert!(lines[1]["metrics"]["responses"].as_u64().unwrap() >= 1);

    // An info-hash nobody announced: exit 1, nothing on stdout.
    let other = "00".repeat(20);
    let mut args = vec!["get-peers", other.as_str()];
    args.extend_from_slice(&common);
    let out = run(&args);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.stdout, "");
    // With --json, the summary says so.
    let mut args = vec!["get-peers", other.as_str(), "--json"];
    args.extend_from_slice(&common);
    let out = run(&args);
    assert_eq!(out.code, Some(1), "{out:?}");
    let lines = out.json_lines();
    assert_eq!(lines.len(), 1, "{out:?}");
    assert_eq!(lines[0]["type"], "get_peers");
    assert_eq!(lines[0]["peers"], 0);
}

#[test]
fn implied_port_announces_the_dht_port() {
    let node = start_node(&["--no-bootstrap"]);
    let seed = node.addr.to_string();
    // A port that was free a moment ago.
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    let out = run(&[
        "announce",
        IH,
        "--implied-port",
        "--bind",
        &bind,
        "--bootstrap",
        &seed,
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.starts_with("announced to 1 of"), "{out:?}");
    let out = run(&[
        "get-peers",
        IH,
        "--bind",
        "127.0.0.1:0",
        "--bootstrap",
        &seed,
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, format!("{bind}\n"));
}

#[test]
fn ping_a_node_and_a_silent_port() {
    let node = start_node(&["--no-bootstrap"]);
    let addr = node.addr.to_string();
    let out = run(&["ping", &addr, "--bind", "127.0.0.1:0", "--json"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let v = &out.json_lines()[0];
    assert_eq!(v["id"].as_str().unwrap(), node.id);
    assert_eq!(v["addr"], addr.as_str());
    let rtt = v["rtt_ms"].as_f64().unwrap();
    assert!(rtt > 0.0 && rtt < 5_000.0, "{v}");

    let out = run(&["ping", &addr]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.starts_with(&format!("{addr} answered in ")),
        "{out:?}"
    );
    assert!(out.stdout.trim_end().ends_with(&node.id), "{out:?}");

    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent = silent.local_addr().unwrap().to_string();
    let out = run(&["ping", &silent, "--timeout", "0.5"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.stderr, format!("dht: no answer from {silent}\n"));
}

#[test]
fn find_node_lists_the_closest() {
    let node = start_node(&["--no-bootstrap"]);
    let seed = node.addr.to_string();
    let helper = start_node(&["--bootstrap", &seed]);
    let out = run(&[
        "find-node",
        &"ff".repeat(20),
        "--bind",
        "127.0.0.1:0",
        "--bootstrap",
        &seed,
        "--json",
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let v = &out.json_lines()[0];
    let ids: Vec<&str> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&node.id.as_str()), "{v}");
    assert!(ids.contains(&helper.id.as_str()), "{v}");
}

#[test]
fn state_survives_a_restart() {
    let dir = temp_dir("state");
    let state = dir.join("table.txt");
    let state_arg = state.to_str().unwrap();
    let node = start_node(&["--no-bootstrap"]);
    let seed = node.addr.to_string();
    let out = run(&[
        "announce",
        IH,
        "--port",
        "7777",
        "--bind",
        "127.0.0.1:0",
        "--bootstrap",
        &seed,
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");

    // A client learns the node and saves it.
    let out = run(&[
        "find-node",
        IH,
        "--bind",
        "127.0.0.1:0",
        "--bootstrap",
        &seed,
        "--state",
        state_arg,
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let text = std::fs::read_to_string(&state).unwrap();
    assert!(text.contains(&format!("node {} {seed}", node.id)), "{text}");
    let saved_id = text
        .lines()
        .find_map(|l| l.strip_prefix("id "))
        .unwrap()
        .to_owned();

    // Restarted with no bootstrap contact at all, it still finds the peer through the saved
    // table, and keeps its id.
    let out = run(&[
        "get-peers",
        IH,
        "--bind",
        "127.0.0.1:0",
        "--no-bootstrap",
        "--state",
        state_arg,
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "127.0.0.1:7777\n");
    let text = std::fs::read_to_string(&state).unwrap();
    assert!(text.contains(&format!("id {saved_id}")), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn node_prints_status_and_saves_state() {
    let dir = temp_dir("node");
    let state = dir.join("node.txt");
    let first = start_node(&["--no-bootstrap"]);
    let seed = first.addr.to_string();
    let out = run(&[
        "node",
        "--bind",
        "127.0.0.1:0",
        "--bootstrap",
        &seed,
        "--duration",
        "1.5",
        "--status-interval",
        "0.5",
        "--state",
        state.to_str().unwrap(),
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.starts_with("node "), "{out:?}");
    assert!(out.stdout.contains(" listening on 127.0.0.1:"), "{out:?}");
    let status: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("dht node: "))
        .collect();
    assert!(status.len() >= 2, "{out:?}");
    assert!(status.iter().all(|l| l.contains("peers stored")), "{out:?}");
    let text = std::fs::read_to_string(&state).unwrap();
    assert!(text.contains(&first.id), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- decode ---------------------------------------------------------------------------------

fn decode_json(name: &str) -> Value {
    let path = data(name);
    let out = run(&["decode", "--json", path.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{name}: {out:?}");
    let mut lines = out.json_lines();
    assert_eq!(lines.len(), 1, "{name}: {out:?}");
    assert_eq!(lines[0]["type"], "message", "{name}: {out:?}");
    lines.remove(0)
}

fn h(byte: &str) -> String {
    byte.repeat(20)
}

#[test]
fn decode_queries() {
    let v = decode_json("ping_query.bin");
    assert_eq!(v["y"], "q");
    assert_eq!(v["t"], "6161"); // "aa"
    assert_eq!(v["method"], "ping");
    assert_eq!(v["v"], "4c540102"); // "LT" 1 2
    assert_eq!(v["args"]["id"], h("11"));

    let v = decode_json("find_node_query.bin");
    assert_eq!(v["t"], "0102");
    assert_eq!(v["method"], "find_node");
    assert_eq!(v["args"]["target"], h("33"));
    assert_eq!(v["args"]["want"], serde_json::json!(["n4", "n6"]));

    let v = decode_json("get_peers_query.bin");
    assert_eq!(v["method"], "get_peers");
    assert_eq!(v["args"]["info_hash"], h("77"));

    let v = decode_json("announce_peer_query.bin");
    assert_eq!(v["method"], "announce_peer");
    assert_eq!(v["args"]["info_hash"], h("77"));
    assert_eq!(v["args"]["port"], 6881);
    assert_eq!(v["args"]["implied_port"], 1);
    assert_eq!(v["args"]["token"], "deadbeef");
}

#[test]
fn decode_responses_and_errors() {
    let v = decode_json("ping_response.bin");
    assert_eq!(v["y"], "r");
    assert!(v.get("method").is_none());
    assert_eq!(v["ip"], "203.0.113.5:6881");
    assert_eq!(v["response"]["id"], h("22"));

    let v = decode_json("find_node_response.bin");
    assert_eq!(
        v["response"]["nodes"],
        serde_json::json!([
            {"id": h("44"), "addr": "1.2.3.4:6881"},
            {"id": h("55"), "addr": "5.6.7.8:51413"},
        ])
    );
    assert_eq!(
        v["response"]["nodes6"],
        serde_json::json!([{"id": h("66"), "addr": "[2001:db8::1]:6881"}])
    );

    let v = decode_json("get_peers_response_values.bin");
    assert_eq!(v["response"]["token"], "deadbeef");
    assert_eq!(
        v["response"]["values"],
        serde_json::json!(["1.2.3.4:6881", "[2001:db8::2]:7000"])
    );
    let v = decode_json("get_peers_response_nodes.bin");
    assert_eq!(v["response"]["nodes"][1]["addr"], "5.6.7.8:51413");

    let v = decode_json("sample_infohashes_response.bin");
    assert_eq!(v["response"]["interval"], 21600);
    assert_eq!(v["response"]["num"], 2);
    assert_eq!(
        v["response"]["samples"],
        serde_json::json!([h("88"), h("99")])
    );

    let v = decode_json("error.bin");
    assert_eq!(v["y"], "e");
    assert_eq!(v["t"], "6572");
    assert_eq!(v["error"]["code"], 201);
    assert_eq!(v["error"]["message"], "A Generic Error Ocurred");
}

#[test]
fn decode_text_from_stdin() {
    let bytes = std::fs::read(data("find_node_response.bin")).unwrap();
    let out = run_with(&["decode", "-"], Duration::from_secs(10), Some(&bytes));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("    nodes (2):\n"), "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("      {} 5.6.7.8:51413\n", h("55"))),
        "{out:?}"
    );
}

#[test]
fn decode_malformed() {
    let path = data("malformed_truncated.bin");
    let out = run(&["decode", path.to_str().unwrap()]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr,
        "dht: not a KRPC message: unexpected end of input at byte 64\n"
    );
    // With --json the error is a JSON object on stdout.
    let out = run(&["decode", "--json", path.to_str().unwrap()]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.stderr, "");
    let v = &out.json_lines()[0];
    assert_eq!(v["type"], "error");
    assert_eq!(
        v["message"],
        "not a KRPC message: unexpected end of input at byte 64"
    );
    assert_eq!(v["exit_code"], 1);
    for garbage in [&b"hello"[..], b"d1:y1:qe", b"de", b"i1e"] {
        let out = run_with(&["decode"], Duration::from_secs(10), Some(garbage));
        assert_eq!(out.code, Some(1), "{garbage:?}: {out:?}");
        assert!(
            out.stderr.starts_with("dht: not a KRPC message: "),
            "{out:?}"
        );
        assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    }
    let out = run(&["decode", "/nonexistent/file.bin"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .starts_with("dht: cannot read /nonexistent/file.bin: "),
        "{out:?}"
    );
}

// ---- bad input ------------------------------------------------------------------------------

#[test]
fn malformed_info_hash() {
    let out = run(&["get-peers", "xyz", "--bootstrap", "127.0.0.1:1"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains(
            "invalid value 'xyz' for '<INFOHASH>': expected 40 hex digits, 32 base32 characters \
             or a magnet: URI"
        ),
        "{out:?}"
    );
    assert!(!out.stderr.contains("panicked"), "{out:?}");
}

#[test]
fn unresolvable_bootstrap_host() {
    let out = run(&[
        "get-peers",
        IH,
        "--bind",
        "127.0.0.1:0",
        "--bootstrap",
        "no-such-host.invalid:6881",
    ]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .starts_with("dht: cannot resolve the bootstrap address `no-such-host.invalid:6881`"),
        "{out:?}"
    );
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
}

#[test]
fn bootstrap_without_port() {
    let out = run(&[
        "get-peers",
        IH,
        "--bind",
        "127.0.0.1:0",
        "--bootstrap",
        "localhost",
    ]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert_eq!(
        out.stderr,
        "dht: the bootstrap address `localhost` is not HOST:PORT\n"
    );
}

#[test]
fn port_in_use() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(&["node", "--bind", &addr, "--no-bootstrap", "--duration", "1"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert_eq!(
        out.stderr,
        format!("dht: cannot bind UDP {addr}: the address is already in use\n")
    );
}

#[test]
fn usage_errors() {
    for args in [
        &["announce", IH, "--bootstrap", "127.0.0.1:1"][..],
        &["announce", IH, "--port", "0"],
        &["--bind", "nowhere", "ping", "127.0.0.1:1"],
        &["find-node", "1234"],
        &["swarm", "--nodes", "1"],
        &["--timeout", "soon", "ping", "127.0.0.1:1"],
        &["frobnicate"],
    ] {
        let out = run(args);
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
        assert!(out.stderr.starts_with("error: "), "{args:?}: {out:?}");
        assert!(!out.stderr.contains("panicked"), "{args:?}: {out:?}");
    }
}

#[test]
fn missing_state_directory_is_a_clear_error() {
    let out = run(&[
        "ping",
        "127.0.0.1:9",
        "--timeout",
        "0.2",
        "--state",
        "/nonexistent-dir/state.txt",
    ]);
    // Found before anything is sent: bad input.
    assert_eq!(out.code, Some(2), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(
        out.stderr
            .starts_with("dht: cannot write the state file /nonexistent-dir/state.txt: "),
        "{out:?}"
    );
}

#[test]
fn node_stops_on_sigterm_and_saves_its_table() {
    let dir = temp_dir("sigterm");
    let state = dir.join("t.txt");
    let first = start_node(&["--no-bootstrap"]);
    let seed = first.addr.to_string();
    let args = [
        "node",
        "--bind",
        "127.0.0.1:0",
        "--bootstrap",
        &seed,
        "--state",
        state.to_str().unwrap(),
    ];
    let mut child = Guard(command(&args).stderr(Stdio::null()).spawn().unwrap());
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.starts_with("node "), "{line:?}");
    std::thread::sleep(Duration::from_millis(300));
    let killed = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = wait_exit(&mut child.0, Duration::from_secs(10), "the node");
    assert_eq!(status.code(), Some(0));
    let text = std::fs::read_to_string(&state).unwrap();
    assert!(
        text.contains(&format!("node {} {seed}", first.id)),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn node_prints_incoming_queries_with_queries_flag() {
    let mut node = start_node(&["--no-bootstrap", "--queries"]);
    let addr = node.addr.to_string();
    let hash = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";
    let out = run(&[
        "get-peers",
        hash,
        "--bind",
        "127.0.0.1:0",
        "--bootstrap",
        &addr,
        "--timeout",
        "2",
    ]);
    assert_eq!(out.code, Some(1), "nobody announced: {out:?}");
    // The node's stdout now holds one JSON line per query it received, the get_peers included.
    let mut seen = Vec::new();
    for _ in 0..20 {
        let mut line = String::new();
        if node._stdout.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert_eq!(v["type"], "query", "{v}");
        let query = v["method"].as_str().unwrap().to_owned();
        assert!(v["from"].as_str().unwrap().starts_with("127.0.0.1:"), "{v}");
        assert_eq!(v["id"].as_str().unwrap().len(), 40, "{v}");
        if query == "get_peers" {
            assert_eq!(v["info_hash"].as_str().unwrap(), hash, "{v}");
            assert!(v.get("target").is_none(), "{v}");
            seen.push(query);
            break;
        }
        seen.push(query);
    }
    assert!(seen.iter().any(|q| q == "get_peers"), "saw {seen:?}");
}
