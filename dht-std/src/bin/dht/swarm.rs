//! `dht swarm`: the offline demonstration. N real nodes on loopback sockets in this process,
//! each on its own thread ([`DhtHandle`]); one announces, another looks it up.

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;
use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::time::Instant;

use dht_proto::{Config, Id};
use dht_std::{Dht, DhtHandle, os_seed};

use crate::client::{metrics_json, metrics_text, status_name};
use crate::json::Json;
use crate::progress::Progress;
use crate::{Fail, Global, millis};

const SWARM_TIMEOUT: Duration = Duration::from_secs(60);

pub fn run(g: &Global, n: usize) -> Result<ExitCode, Fail> {
    let mut progress = Progress::new(!g.json && std::io::stderr().is_terminal());
    // Loopback only: the demonstration never leaves the machine.
    let ip = g
        .bind
        .map(|b| b.ip())
        .filter(IpAddr::is_loopback)
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let deadline = Instant::now() + g.timeout.unwrap_or(SWARM_TIMEOUT);
    let started = Instant::now();
    let mut nodes: Vec<DhtHandle> = Vec::with_capacity(n);
    for i in 0..n {
        let dht = Dht::bind(SocketAddr::new(ip, 0), Config::new(os_seed())).map_err(Fail::input)?;
        let node = DhtHandle::spawn(dht).map_err(Fail::failed)?;
        // Each node joins through the first node and the one before it.
        let mut seeds: Vec<SocketAddr> = nodes
            .first()
            .map(DhtHandle::local_addr)
            .into_iter()
            .collect();
        if let Some(prev) = nodes.last().filter(|_| i > 1) {
            seeds.push(prev.local_addr());
        }
        if !seeds.is_empty() {
            node.bootstrap(&seeds)
                .map_err(|e| Fail::failed(format_args!("node {i} could not join: {e}")))?;
        }
        nodes.push(node);
        progress.update(|| format!("swarm: {} of {n} nodes joined", i + 1));
        if Instant::now() >= deadline {
            return Err(Fail::failed("the swarm did not form in time"));
        }
    }
    let joined = started.elapsed();
    let mut tables = Vec::with_capacity(n);
    for node in &nodes {
        tables.push(node.info().map_err(Fail::failed)?.table_len);
    }
    progress.clear();

    let seed = os_seed();
    let info_hash = seed
        .get(..20)
        .and_then(Id::from_slice)
        .ok_or_else(|| Fail::failed("no random info-hash"))?;
    let (a, b) = (n / 2, n - 1);
    let (Some(announcer), Some(looker)) = (nodes.get(a), nodes.get(b)) else {
        return Err(Fail::input("a swarm needs at least two nodes"));
    };
    progress.update(|| format!("swarm: node {a} announces {info_hash}"));
    // Implied port: the nodes store the announcer's DHT socket address as the peer.
    let announce = announcer.announce(info_hash, None).map_err(Fail::failed)?;
    let expected = announcer.local_addr();
    progress.update(|| format!("swarm: node {b} looks up {info_hash}"));
    let mut stream = looker.get_peers(info_hash).map_err(Fail::failed)?;
    let peers: Vec<SocketAddr> = stream.by_ref().collect();
    let lookup = stream
        .outcome()
        .cloned()
        .ok_or_else(|| Fail::failed("the lookup ended without a result"))?;
    progress.clear();
    let found = peers.contains(&expected);
    let datagrams: u64 = nodes
        .iter()
        .filter_map(|node| node.info().ok())
        .map(|info| info.stats.datagrams_sent)
        .sum();

    let (min, max) = (
        tables.iter().min().copied().unwrap_or(0),
        tables.iter().max().copied().unwrap_or(0),
    );
    let mean = tables.iter().sum::<usize>() as f64 / tables.len().max(1) as f64;
    let mut out = std::io::stdout().lock();
    use std::io::Write as _;
    if g.json {
        let line = Json::obj()
            .field("nodes", n)
            .field("join_ms", millis(joined))
            .field(
                "routing_table",
                Json::obj()
                    .field("min", min)
                    .field("mean", (mean * 10.0).round() / 10.0)
                    .field("max", max),
            )
            .field("info_hash", info_hash.to_string())
            .field(
                "announce",
                Json::obj()
                    .field("node", a)
                    .field("addr", expected.to_string())
                    .field("announced", announce.announced)
                    .field("status", status_name(&announce.status))
                    .field("metrics", metrics_json(&announce.metrics)),
            )
            .field(
                "get_peers",
                Json::obj()
                    .field("node", b)
                    .field("addr", looker.local_addr().to_string())
                    .field(
                        "peers",
                        peers
                            .iter()
                            .map(|p| Json::from(p.to_string()))
                            .collect::<Vec<_>>(),
                    )
                    .field("status", status_name(&lookup.status))
                    .field("metrics", metrics_json(&lookup.metrics)),
            )
            .field("datagrams_sent", datagrams)
            .field("found", found);
        writeln!(out, "{line}")?;
    } else {
        writeln!(
            out,
            "swarm: {n} nodes on {ip}, joined in {} ms; routing tables: min {min}, mean {mean:.1}, \
             max {max} contacts",
            millis(joined)
        )?;
        writeln!(
            out,
            "announce: node {a} ({expected}) announced {info_hash} to {} nodes ({})",
            announce.announced,
            metrics_text(&announce.metrics)
        )?;
        let list = peers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        writeln!(
            out,
            "get_peers: node {b} ({}) found {} peer(s) [{list}] ({})",
            looker.local_addr(),
            peers.len(),
            metrics_text(&lookup.metrics)
        )?;
        writeln!(out, "datagrams sent in the swarm: {datagrams}")?;
        if found {
            writeln!(out, "ok: the lookup found the announced peer")?;
        }
    }
    out.flush()?;
    drop(out);
    if found {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(Fail::failed("the lookup did not find the announced peer"))
    }
}
