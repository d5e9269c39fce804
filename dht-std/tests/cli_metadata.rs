//! `dht metadata` end to end against seeding peers on loopback. Every child process is killed
//! when its guard drops, and every wait is bounded.

mod common;
mod support;

use core::net::SocketAddr;
use core::time::Duration;
use std::net::TcpListener;

use common::{Output, run_with, start_node, temp_dir};
use support::seeder::{Behaviour, Seeder, info_hash, sample_info};

fn run(args: &[&str]) -> Output {
    run_with(args, Duration::from_secs(40), None)
}

fn closed_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn fetches_from_a_peer_and_writes_the_torrent() {
    let info = sample_info("movie.mkv", 40_000);
    let ih = info_hash(&info).to_string();
    let seeder = Seeder::spawn("127.0.0.1", info.clone(), Behaviour::Honest);
    let peer = seeder.addr.to_string();
    let dir = temp_dir("write");
    let dir_s = dir.to_str().unwrap();

    let out = run(&[
        "metadata", &ih, "--peer", &peer, "--json", "--output", dir_s,
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let v = out.json();
    assert_eq!(v["type"], "metadata");
    assert_eq!(v["info_hash"], ih.as_str());
    assert_eq!(v["name"], "movie.mkv");
    assert_eq!(v["files"][0]["path"], "movie.mkv");
    assert_eq!(v["info_size"], info.len());
    assert_eq!(v["peer"], peer.as_str());
    assert_eq!(v["client"], "test peer");
    let torrent = std::fs::read(dir.join(format!("{ih}.torrent"))).unwrap();
    let mut want = b"d4:info".to_vec();
    want.extend(&info);
    want.push(b'e');
    assert_eq!(torrent, want);

    // Text, through a magnet URI.
    let magnet = format!("magnet:?xt=urn:btih:{ih}&dn=x");
    let out = run(&["metadata", &magnet, "--peer", &peer]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains("name:         movie.mkv"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(&format!("info-hash:    {ih}")));
    assert!(
        out.stdout
            .contains(&format!("from:         {peer} (test peer)"))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn failures_name_each_reason() {
    let info = sample_info("x", 1000);
    let ih = info_hash(&info).to_string();
    let no_ut = Seeder::spawn("127.0.0.1", info.clone(), Behaviour::NoUtMetadata);
    let wrong = Seeder::spawn("127.0.0.1", info.clone(), Behaviour::WrongData);
    let closed = closed_port().to_string();
    let (a, b) = (no_ut.addr.to_string(), wrong.addr.to_string());

    let out = run(&[
        "metadata", &ih, "--peer", &a, "--peer", &b, "--peer", &closed, "-v",
    ]);
    assert_eq!(out.code, Some(1), "{out:?}");
    for part in [
        "none of the 3 peers gave the metadata: ",
        "1 without ut_metadata",
        "1 with metadata not matching the hash",
        "1 unreachable",
    ] {
        assert!(out.stderr.contains(part), "{part}: {}", out.stderr);
    }
    assert!(
        out.stderr
            .contains(&format!("{a}: the peer does not offer ut_metadata"))
    );
    assert!(
        out.stderr
            .contains(&format!("{b}: the metadata does not match the info-hash"))
    );
    assert!(out.stderr.contains(&format!("{closed}: cannot connect")));

    let out = run(&["metadata", &ih, "--peer", &a, "--json"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    let v = out.json();
    assert_eq!(v["type"], "metadata_failed");
    assert_eq!(v["failures"][0]["peer"], a.as_str());
    assert_eq!(
        v["failures"][0]["reason"],
        "the peer does not offer ut_metadata (BEP 9)"
    );
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with(&format!("the peer {a} gave no metadata")),
        "{v}"
    );
    assert_eq!(out.stdout.lines().count(), 1, "one object: {}", out.stdout);

    let big = Seeder::spawn("127.0.0.1", info, Behaviour::Oversized);
    let out = run(&["metadata", &ih, "--peer", &big.addr.to_string()]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("over the cap"), "{}", out.stderr);
}

#[test]
fn bad_input_is_exit_2() {
    let ih = "ab".repeat(20);
    for args in [
        vec!["metadata", "xyz", "--peer", "127.0.0.1:1"],
        vec!["metadata", &ih, "--peer", "nohost"],
        vec![
            "metadata",
            &ih,
            "--peer",
            "127.0.0.1:1",
            "--output",
            "/nonexistent/dir",
        ],
    ] {
        let out = run(&args);
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
    }
}

#[test]
fn finds_the_seeder_through_the_dht() {
    let info = sample_info("found.bin", 20_000);
    let ih = info_hash(&info).to_string();
    let seeder = Seeder::spawn("127.0.0.1", info, Behaviour::Honest);
    let node = start_node(&["--no-bootstrap"]);
    let node_addr = node.addr.to_string();
    let common = ["--bind", "127.0.0.1:0", "--bootstrap", node_addr.as_str()];
    let port = seeder.addr.port().to_string();
    let mut args = vec!["announce", ih.as_str(), "--port", port.as_str()];
    args.extend(common);
    let out = run(&args);
    assert_eq!(out.code, Some(0), "{out:?}");

    let mut args = vec!["metadata", ih.as_str(), "--json"];
    args.extend(common);
    let out = run(&args);
    assert_eq!(out.code, Some(0), "{out:?}");
    let v = out.json();
    assert_eq!(v["name"], "found.bin");
    assert_eq!(v["peer"], seeder.addr.to_string());
    assert_eq!(v["peers_found"], 1);

    // An info-hash nobody announced: exit 1 once the lookup ends.
    let other = "00".repeat(20);
    let mut args = vec!["metadata", other.as_str()];
    args.extend(common);
    let out = run(&args);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("no peer"), "{}", out.stderr);
}
