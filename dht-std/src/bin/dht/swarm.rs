//! `dht swarm`: the offline demonstration. N real nodes on loopback sockets in this process,
//! each on its own thread ([`DhtHandle`]); one announces, another looks it up.

use core::net::{IpAddr, SocketAddr};
use core::time::Duration;
use std::process::ExitCode;
use std::time::Instant;

use dht_proto::{Config, Id};
use dht_std::{Dht, DhtHandle, os_seed};
use serde::Serialize;

use crate::Fail;
use crate::output::{Metrics, Out, Record, count, millis, status_name};

/// Routing-table sizes across the swarm.
#[derive(Debug, Serialize)]
struct Tables {
    min: usize,
    mean: f64,
    max: usize,
}

/// The announcing node and how its announce went.
#[derive(Debug, Serialize)]
struct AnnounceReport {
    node: usize,
    addr: String,
    announced: usize,
    status: &'static str,
    metrics: Metrics,
}

/// The looking-up node and what it found.
#[derive(Debug, Serialize)]
struct LookupReport {
    node: usize,
    addr: String,
    peers: Vec<String>,
    status: &'static str,
    metrics: Metrics,
}

/// The swarm's report.
#[derive(Debug, Serialize)]
struct Report {
    nodes: usize,
    #[serde(skip)]
    ip: IpAddr,
    join_ms: u64,
    routing_table: Tables,
    info_hash: String,
    announce: AnnounceReport,
    get_peers: LookupReport,
    datagrams_sent: u64,
    found: bool,
}

impl Record for Report {
    const TYPE: &'static str = "swarm";
    fn text(&self) -> Option<String> {
        let t = &self.routing_table;
        let mut lines = vec![
            format!(
                "swarm: {} on {}, joined in {} ms; routing tables: min {}, mean {:.1}, max {} \
                 contacts",
                count(self.nodes, "node"),
                self.ip,
                self.join_ms,
                t.min,
                t.mean,
                t.max
            ),
            format!(
                "announce: node {} ({}) announced {} to {} ({})",
                self.announce.node,
                self.announce.addr,
                self.info_hash,
                count(self.announce.announced, "node"),
                self.announce.metrics
            ),
            format!(
                "get_peers: node {} ({}) found {} [{}] ({})",
                self.get_peers.node,
                self.get_peers.addr,
                count(self.get_peers.peers.len(), "peer"),
                self.get_peers.peers.join(", "),
                self.get_peers.metrics
            ),
            format!("datagrams sent in the swarm: {}", self.datagrams_sent),
        ];
        if self.found {
            lines.push("ok: the lookup found the announced peer".to_owned());
        }
        Some(lines.join("\n"))
    }
}

pub fn run(json: bool, n: usize, ip: IpAddr, timeout: Duration) -> Result<ExitCode, Fail> {
    let mut out = Out::new(json, true);
    let deadline = Instant::now() + timeout;
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
        out.progress()
            .update(|| format!("swarm: {} of {n} nodes joined", i + 1));
        if Instant::now() >= deadline {
            return Err(Fail::failed("the swarm did not form in time"));
        }
    }
    let joined = started.elapsed();
    let mut tables = Vec::with_capacity(n);
    for node in &nodes {
        tables.push(node.info().map_err(Fail::failed)?.table_len);
    }
    out.progress().clear();

    let seed = os_seed();
    let info_hash = seed
        .get(..20)
        .and_then(Id::from_slice)
        .ok_or_else(|| Fail::failed("no random info-hash"))?;
    let (a, b) = (n / 2, n - 1);
    let (Some(announcer), Some(looker)) = (nodes.get(a), nodes.get(b)) else {
        return Err(Fail::input("a swarm needs at least two nodes"));
    };
    out.progress()
        .update(|| format!("swarm: node {a} announces {info_hash}"));
    // Implied port: the nodes store the announcer's DHT socket address as the peer.
    let announce = announcer.announce(info_hash, None).map_err(Fail::failed)?;
    let expected = announcer.local_addr();
    out.progress()
        .update(|| format!("swarm: node {b} looks up {info_hash}"));
    let mut stream = looker.get_peers(info_hash).map_err(Fail::failed)?;
    let peers: Vec<SocketAddr> = stream.by_ref().collect();
    let lookup = stream
        .outcome()
        .cloned()
        .ok_or_else(|| Fail::failed("the lookup ended without a result"))?;
    out.progress().clear();
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
    out.emit(&Report {
        nodes: n,
        ip,
        join_ms: millis(joined),
        routing_table: Tables {
            min,
            mean: (mean * 10.0).round() / 10.0,
            max,
        },
        info_hash: info_hash.to_string(),
        announce: AnnounceReport {
            node: a,
            addr: expected.to_string(),
            announced: announce.announced,
            status: status_name(&announce.status),
            metrics: Metrics::from(&announce.metrics),
        },
        get_peers: LookupReport {
            node: b,
            addr: looker.local_addr().to_string(),
            peers: peers.iter().map(ToString::to_string).collect(),
            status: status_name(&lookup.status),
            metrics: Metrics::from(&lookup.metrics),
        },
        datagrams_sent: datagrams,
        found,
    })?;
    if found {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(Fail::failed("the lookup did not find the announced peer"))
    }
}
