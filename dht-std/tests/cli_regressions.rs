//! Regression tests of the `dht` program's behaviour and output, on loopback only: each names
//! what used to go wrong.

mod common;

use core::net::SocketAddr;
use core::time::Duration;
use std::io::Read as _;
use std::net::UdpSocket;

use common::*;
use dht_proto::wire::bencode::DecodeLimits;
use dht_proto::wire::krpc::peek_transaction;

fn status_lines(stderr: &str) -> usize {
    stderr
        .lines()
        .filter(|l| l.starts_with("dht node: "))
        .count()
}

// ---- bugs -----------------------------------------------------------------------------------

#[test]
fn status_interval_zero_is_no_periodic_status_not_a_busy_loop() {
    let out = run(&[
        "node",
        "--bind",
        "127.0.0.1:0",
        "--no-bootstrap",
        "--duration",
        "1",
        "--status-interval",
        "0",
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    // Only the final status line.
    assert_eq!(status_lines(&out.stderr), 1, "{out:?}");
}

#[test]
fn an_unwritable_state_file_is_refused_at_the_start() {
    let node = start_node(&["--no-bootstrap"]);
    let seed = node.addr.to_string();
    let state = "/nonexistent-dir/state.txt";
    let out = run(&[
        "get-peers",
        IH,
        "--bind",
        "127.0.0.1:0",
        "--bootstrap",
        &seed,
        "--state",
        state,
    ]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert_eq!(out.stdout, "", "{out:?}");
    assert!(
        out.stderr
            .starts_with("dht: cannot write the state file /nonexistent-dir/state.txt: "),
        "{out:?}"
    );
    // A node does not print "listening" and then fail five minutes later.
    let out = run(&[
        "node",
        "--bind",
        "127.0.0.1:0",
        "--no-bootstrap",
        "--state",
        state,
        "--duration",
        "5",
    ]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert_eq!(out.stdout, "", "{out:?}");
}

/// Answers every second `ping` it receives (the first is "lost").
fn lossy_responder() -> (SocketAddr, std::thread::JoinHandle<usize>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let addr = socket.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        let mut seen = 0;
        while let Ok((len, from)) = socket.recv_from(&mut buf) {
            seen += 1;
            if seen == 1 {
                continue;
            }
            let Some((tid, _)) = peek_transaction(&buf[..len], &DecodeLimits::default()) else {
                continue;
            };
            let mut reply = b"d1:rd2:id20:".to_vec();
            reply.extend_from_slice(&[0x42; 20]);
            reply.extend_from_slice(format!("e1:t{}:", tid.len()).as_bytes());
            reply.extend_from_slice(tid);
            reply.extend_from_slice(b"1:y1:re");
            socket.send_to(&reply, from).unwrap();
            break;
        }
        seen
    });
    (addr, t)
}

#[test]
fn ping_keeps_trying_until_its_timeout() {
    let (addr, responder) = lossy_responder();
    let addr = addr.to_string();
    let out = run(&["ping", &addr, "--timeout", "20", "--json"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let v = &out.json_lines()[0];
    assert_eq!(v["type"], "pong");
    assert_eq!(v["id"], "42".repeat(20));
    assert_eq!(responder.join().unwrap(), 2);
}

#[test]
fn a_loopback_bootstrap_named_by_the_user_is_used_without_bind() {
    let node = start_node(&["--no-bootstrap"]);
    let seed = node.addr.to_string();
    let out = run(&["find-node", IH, "--bootstrap", &seed, "--json"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let v = &out.json_lines()[0];
    assert_eq!(v["type"], "find_node");
    assert_eq!(v["nodes"][0]["id"], node.id.as_str());
}

#[test]
fn one_bad_bootstrap_entry_does_not_reject_the_list() {
    let node = start_node(&["--no-bootstrap"]);
    let list = format!("no-such-host.invalid:6881,{}", node.addr);
    let out = run(&[
        "find-node",
        IH,
        "--bind",
        "127.0.0.1:0",
        "--bootstrap",
        &list,
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains(&node.id), "{out:?}");
    assert!(
        out.stderr.starts_with(
            "dht: warning: cannot resolve the bootstrap address `no-such-host.invalid:6881`"
        ),
        "{out:?}"
    );
}

#[test]
fn port_zero_is_named_as_the_problem() {
    let out = run(&["get-peers", IH, "--bootstrap", "127.0.0.1:0"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert_eq!(
        out.stderr,
        "dht: the bootstrap address `127.0.0.1:0` has port 0\n"
    );
}

#[test]
fn a_node_whose_bootstrap_host_does_not_resolve_keeps_serving() {
    let out = run(&[
        "node",
        "--bind",
        "127.0.0.1:0",
        "--bootstrap",
        "no-such-host.invalid:6881",
        "--duration",
        "1",
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains(" listening on 127.0.0.1:"), "{out:?}");
    assert!(
        out.stderr
            .contains("cannot resolve no-such-host.invalid:6881; serving meanwhile"),
        "{out:?}"
    );
}

#[test]
fn a_node_with_a_malformed_bootstrap_fails_before_listening() {
    let out = run(&["node", "--bind", "127.0.0.1:0", "--bootstrap", "localhost"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert_eq!(out.stdout, "", "{out:?}");
    assert_eq!(
        out.stderr,
        "dht: the bootstrap address `localhost` is not HOST:PORT\n"
    );
}

#[test]
fn a_node_whose_bootstrap_contact_is_silent_keeps_serving_and_says_so() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent = silent.local_addr().unwrap().to_string();
    // The bootstrap lookup gives up after two 5 s query timeouts (a lookup with a single
    // contact asks it once more after the first).
    let out = run_with(
        &[
            "node",
            "--bind",
            "127.0.0.1:0",
            "--bootstrap",
            &silent,
            "--duration",
            "12",
            "--status-interval",
            "0",
        ],
        Duration::from_secs(30),
        None,
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr
            .contains("could not join the DHT: no bootstrap contact answered; serving meanwhile"),
        "{out:?}"
    );
}

#[test]
fn saved_loopback_contacts_are_used_on_an_unspecified_bind() {
    let dir = temp_dir("loopback-state");
    let state = dir.join("t.txt");
    let node = start_node(&["--no-bootstrap"]);
    std::fs::write(
        &state,
        format!("node {} {}  # a local node\n", node.id, node.addr),
    )
    .unwrap();
    let out = run(&[
        "find-node",
        IH,
        "--no-bootstrap",
        "--state",
        state.to_str().unwrap(),
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains(&node.id), "{out:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_processes_cannot_share_a_state_file() {
    let dir = temp_dir("shared-state");
    let state = dir.join("t.txt");
    let state_arg = state.to_str().unwrap();
    let _first = start_node(&["--no-bootstrap", "--state", state_arg]);
    let out = run(&[
        "node",
        "--bind",
        "127.0.0.1:0",
        "--no-bootstrap",
        "--state",
        state_arg,
        "--duration",
        "5",
    ]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert_eq!(out.stdout, "", "{out:?}");
    assert!(
        out.stderr.contains("is in use by another dht process"),
        "{out:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_corrupt_state_file_is_a_warning_and_a_fresh_start() {
    let dir = temp_dir("corrupt-state");
    let state = dir.join("t.txt");
    std::fs::write(&state, "garbage\n").unwrap();
    let out = run(&[
        "node",
        "--bind",
        "127.0.0.1:0",
        "--no-bootstrap",
        "--state",
        state.to_str().unwrap(),
        "--duration",
        "0.5",
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("ignoring the state file"), "{out:?}");
    // Saved afresh at exit.
    let text = std::fs::read_to_string(&state).unwrap();
    assert!(text.contains("\nid "), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_taken_ipv6_port_is_reported() {
    // The IPv6 half of the port is taken; the IPv4 half is (very likely) free.
    let Ok(v6) = socket2::Socket::new(
        socket2::Domain::IPV6,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    ) else {
        return;
    };
    v6.set_only_v6(true).unwrap();
    let any6: SocketAddr = "[::]:0".parse().unwrap();
    if v6.bind(&any6.into()).is_err() {
        return; // no IPv6 on this machine
    }
    let port = v6.local_addr().unwrap().as_socket().unwrap().port();
    let bind = format!("0.0.0.0:{port}");
    let out = run(&[
        "node",
        "--bind",
        &bind,
        "--no-bootstrap",
        "--duration",
        "0.3",
    ]);
    if out.code == Some(2) {
        return; // the IPv4 port was taken by someone else meanwhile
    }
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "dht: warning: cannot bind UDP [::]:{port}: the port is already in use; serving on \
             0.0.0.0 only"
        )),
        "{out:?}"
    );
}

// ---- --queries and a slow reader ------------------------------------------------------------

#[test]
fn queries_output_never_blocks_the_node() {
    // The node's stdout is a pipe that nobody reads.
    let mut child = Guard(
        command(&[
            "node",
            "--bind",
            "127.0.0.1:0",
            "--no-bootstrap",
            "--queries",
            "--json",
            "--duration",
            "4",
            "--status-interval",
            "0",
        ])
        .spawn()
        .unwrap(),
    );
    let mut stdout = child.0.stdout.take().unwrap();
    // Only the first line (the address) is read.
    let mut first = Vec::new();
    let mut byte = [0u8; 1];
    while stdout.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        first.push(byte[0]);
    }
    let v: serde_json::Value = serde_json::from_slice(&first).unwrap();
    let node: SocketAddr = v["listening"][0].as_str().unwrap().parse().unwrap();
    // Many sources, each sending a few find_node queries: far more lines than a pipe holds.
    let target = "t".repeat(20);
    let mut sent = 0;
    for i in 1..=250u8 {
        let Ok(s) = UdpSocket::bind(format!("127.0.3.{i}:0")) else {
            continue;
        };
        // Paced a little, so that the node's socket buffer does not overflow.
        std::thread::sleep(Duration::from_millis(2));
        for j in 0..16u8 {
            let mut q = b"d1:ad2:id20:".to_vec();
            q.extend_from_slice(&[i ^ 0x55; 19]);
            q.push(j);
            q.extend_from_slice(format!("6:target20:{target}e1:q9:find_node1:t2:").as_bytes());
            q.extend_from_slice(&[i, j]);
            q.extend_from_slice(b"1:y1:qe");
            s.send_to(&q, node).unwrap();
            sent += 1;
        }
    }
    assert!(sent > 3000);
    // The node still answers, although its stdout is full.
    let probe = UdpSocket::bind("127.0.4.1:0").unwrap();
    probe
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let ping = format!("d1:ad2:id20:{}e1:q4:ping1:t2:zz1:y1:qe", "p".repeat(20));
    probe.send_to(ping.as_bytes(), node).unwrap();
    let mut buf = [0u8; 1500];
    // The node may ping the new source too; the answer is the response with our `t`.
    let answered = (0..10).any(|_| {
        let (len, _) = probe.recv_from(&mut buf).expect("the node answers");
        let reply = &buf[..len];
        reply.windows(7).any(|w| w == b"1:t2:zz") && reply.ends_with(b"1:y1:re")
    });
    assert!(answered);
    // It ends on time, and counts what it dropped.
    let mut stderr = child.0.stderr.take().unwrap();
    let status = wait_exit(&mut child.0, Duration::from_secs(20), "the node");
    assert_eq!(status.code(), Some(0));
    let mut err = String::new();
    stderr.read_to_string(&mut err).unwrap();
    let dropped = err
        .lines()
        .find_map(|l| l.strip_prefix("dht: warning: "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no drop count: {err}"));
    assert!(dropped > 0, "{err}");
    assert!(
        err.contains(" query lines dropped: stdout was not read fast enough"),
        "{err}"
    );
    drop(stdout);
}

// ---- output ---------------------------------------------------------------------------------

#[test]
fn errors_are_json_objects_with_json() {
    let out = run(&["get-peers", IH, "--bootstrap", "localhost", "--json"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert_eq!(out.stderr, "", "{out:?}");
    let v = &out.json_lines()[0];
    assert_eq!(v["type"], "error");
    assert_eq!(
        v["message"],
        "the bootstrap address `localhost` is not HOST:PORT"
    );
    assert_eq!(v["exit_code"], 2);
    // Usage errors too.
    let out = run(&["get-peers", "xyz", "--json"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    let v = &out.json_lines()[0];
    assert_eq!(v["type"], "error");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("invalid value 'xyz'"),
        "{v}"
    );
}

#[test]
fn every_json_line_has_a_type() {
    let node = start_node(&["--no-bootstrap"]);
    let seed = node.addr.to_string();
    let base = [
        "--bind",
        "127.0.0.1:0",
        "--bootstrap",
        seed.as_str(),
        "--json",
    ];
    let runs: [&[&str]; 4] = [
        &["announce", IH, "--port", "1234"],
        &["get-peers", IH],
        &["find-node", IH],
        &["ping", seed.as_str(), "--json"],
    ];
    for args in runs {
        let mut args = args.to_vec();
        if args[0] != "ping" {
            args.extend_from_slice(&base);
        }
        let out = run(&args);
        assert_eq!(out.code, Some(0), "{args:?}: {out:?}");
        for v in out.json_lines() {
            assert!(v["type"].is_string(), "{args:?}: {v}");
        }
    }
    let out = run(&["swarm", "--nodes", "3", "--json"]);
    assert_eq!(out.json_lines()[0]["type"], "swarm", "{out:?}");
}

#[test]
fn texts_say_one_node_not_one_nodes() {
    let node = start_node(&["--no-bootstrap"]);
    let seed = node.addr.to_string();
    let out = run(&[
        "announce",
        IH,
        "--port",
        "1234",
        "--bind",
        "127.0.0.1:0",
        "--bootstrap",
        &seed,
        "-v",
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "announced to 1 of the 1 closest node\n");
    assert!(out.stderr.contains("joined: 1 contact\n"), "{out:?}");
    assert!(!out.stderr.contains(" 1 hops"), "{out:?}");
}

#[test]
fn decode_text_has_no_debug_dumps() {
    let path = data("ping_query.bin");
    let out = run(&["decode", path.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let first = out.stdout.lines().next().unwrap();
    assert!(first.starts_with("query ping, t 6161, id 1111"), "{out:?}");
    assert!(!out.stdout.contains("b\""), "{out:?}");
    assert!(!out.stdout.contains("Some("), "{out:?}");
}

#[test]
fn decode_reads_hex_and_tolerates_a_trailing_newline() {
    let bytes = std::fs::read(data("ping_query.bin")).unwrap();
    let expected = run(&["decode", "--json", data("ping_query.bin").to_str().unwrap()]);
    let mut with_newline = bytes.clone();
    with_newline.extend_from_slice(b"\r\n");
    let out = run_with(
        &["decode", "--json"],
        Duration::from_secs(10),
        Some(&with_newline),
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, expected.stdout);
    let hex: String = bytes
        .chunks(8)
        .map(|c| c.iter().map(|b| format!("{b:02X}")).collect::<String>())
        .collect::<Vec<_>>()
        .join(" \n");
    let out = run_with(
        &["decode", "--hex", "--json", "-"],
        Duration::from_secs(10),
        Some(format!("{hex}\n").as_bytes()),
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, expected.stdout);
    let out = run_with(&["decode", "--hex"], Duration::from_secs(10), Some(b"zz"));
    assert_eq!(out.code, Some(2), "{out:?}");
}

#[test]
fn vvv_logs_each_datagram_decoded_on_one_line() {
    let node = start_node(&["--no-bootstrap"]);
    let addr = node.addr.to_string();
    let out = run(&["ping", &addr, "--bind", "127.0.0.1:0", "-vvv"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let sent = format!("dht: trace: to {addr}: query ping, t ");
    let got = format!("dht: trace: from {addr}: response, t ");
    assert!(out.stderr.lines().any(|l| l.starts_with(&sent)), "{out:?}");
    assert!(
        out.stderr
            .lines()
            .any(|l| l.starts_with(&got) && l.contains(&format!("id {}", node.id))),
        "{out:?}"
    );
}
