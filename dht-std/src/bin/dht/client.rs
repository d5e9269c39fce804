//! The one-shot subcommands: `ping`, `find-node`, `get-peers`, `announce`.

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::ops::ControlFlow;
use core::time::Duration;
use std::collections::HashSet;
use std::process::ExitCode;
use std::time::Instant;

use dht_proto::{Event, Id, QueryId, QueryOutcome, QueryStatus};
use dht_std::Turn;
use serde::Serialize;

use crate::output::{Metrics, NodeRecord, Out, Record, count, plural, status_name};
use crate::session::{Session, Setup, resolve};
use crate::{Fail, Join, Local, Lookup};

/// Clients bind an OS-chosen port.
pub const CLIENT_BIND: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
/// A ping is repeated this often until one is answered or the time is up.
const PING_EVERY: Duration = Duration::from_secs(1);

pub fn client_setup(timeout: Duration) -> Setup {
    Setup {
        default_bind: CLIENT_BIND,
        timeout: Some(timeout),
        read_only: true,
        allow_all: false,
        progress: true,
        lenient_join: false,
    }
}

/// Opens the session of a client command ([`client_setup`]) and joins the DHT.
pub fn joined(lookup: &Lookup, json: bool) -> Result<Session, Fail> {
    let setup = client_setup(lookup.timeout);
    let (mut s, contacts) = Session::open(&lookup.local, Some(&lookup.join), json, setup)?;
    s.join(&contacts)?;
    Ok(s)
}

/// `ping`'s answer.
#[derive(Debug, Serialize)]
struct Pong {
    addr: String,
    id: String,
    rtt_ms: f64,
}

impl Record for Pong {
    const TYPE: &'static str = "pong";
    fn text(&self) -> Option<String> {
        Some(format!(
            "{} answered in {} ms: id {}",
            self.addr, self.rtt_ms, self.id
        ))
    }
}

pub fn ping(local: &Local, json: bool, timeout: Duration, addr: &str) -> Result<ExitCode, Fail> {
    let targets = resolve(addr, "address")?;
    // A ping contacts only the address named, so any address the user names is fine.
    let setup = Setup {
        allow_all: true,
        ..client_setup(timeout)
    };
    let (mut s, _) = Session::open(local, None, json, setup)?;
    let target = pick_family(&s, &targets)?;
    // One ping a second until one is answered: a lost datagram or a node slow to answer
    // does not end the wait before --timeout.
    let mut in_flight: Vec<(QueryId, Instant)> = Vec::new();
    let mut next_ping = Instant::now();
    let Session {
        dht,
        stop,
        deadline,
        out,
        ..
    } = &mut s;
    let answer = dht
        .run(|dht, turn| match turn {
            Turn::Event(Event::QueryFinished { query, outcome }) => {
                let Some(i) = in_flight.iter().position(|(q, _)| *q == query) else {
                    return ControlFlow::Continue(None);
                };
                let (_, sent_at) = in_flight.swap_remove(i);
                match (outcome.status, outcome.responder) {
                    // Measured here rather than from the node's millisecond clock: loopback
                    // answers in microseconds.
                    (QueryStatus::Completed, Some(id)) => {
                        ControlFlow::Break(Ok((id, sent_at.elapsed())))
                    }
                    (QueryStatus::Error { code, message }, _) => {
                        ControlFlow::Break(Err(Fail::failed(format_args!(
                            "{target} answered with error {code}: {message}"
                        ))))
                    }
                    _ => ControlFlow::Continue(None),
                }
            }
            Turn::Event(_) => ControlFlow::Continue(None),
            Turn::Idle => {
                let now = Instant::now();
                if stop.load(core::sync::atomic::Ordering::Relaxed)
                    || deadline.is_some_and(|d| now >= d)
                {
                    return ControlFlow::Break(Err(Fail::failed(format_args!(
                        "no answer from {target}"
                    ))));
                }
                if now >= next_ping {
                    match dht.ping(target) {
                        Ok(q) => in_flight.push((q, now)),
                        Err(e) => {
                            return ControlFlow::Break(Err(Fail::input(format_args!(
                                "cannot ping {target}: {e}"
                            ))));
                        }
                    }
                    next_ping = now + PING_EVERY;
                    let sent = in_flight.len();
                    out.progress()
                        .update(|| format!("ping {target}: {} in flight", count(sent, "ping")));
                }
                let wake = deadline.map_or(next_ping, |d| d.min(next_ping));
                ControlFlow::Continue(Some(wake))
            }
        })
        .map_err(Fail::failed)?;
    s.save_state();
    let (id, rtt) = answer?;
    let rtt_ms = (rtt.as_secs_f64() * 1e6).round() / 1e3;
    s.out.emit(&Pong {
        addr: target.to_string(),
        id: id.to_string(),
        rtt_ms,
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `find-node`'s answer.
#[derive(Debug, Serialize)]
struct FoundNodes {
    target: String,
    nodes: Vec<NodeRecord>,
    status: &'static str,
    metrics: Metrics,
}

impl Record for FoundNodes {
    const TYPE: &'static str = "find_node";
    fn text(&self) -> Option<String> {
        let lines: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("{} {}", n.id, n.addr))
            .collect();
        (!lines.is_empty()).then(|| lines.join("\n"))
    }
}

pub fn find_node(lookup: &Lookup, json: bool, target: Id) -> Result<ExitCode, Fail> {
    let mut s = joined(lookup, json)?;
    let q = s
        .dht
        .find_node(target)
        .map_err(|e| Fail::failed(format_args!("cannot start the lookup: {e}")))?;
    let outcome = drive(&mut s, q, "find_node", |_, _| Ok(()))?;
    s.save_state();
    let metrics = Metrics::from(&outcome.metrics);
    log::info!("find_node: {metrics}");
    s.out.emit(&FoundNodes {
        target: target.to_string(),
        nodes: outcome
            .closest
            .iter()
            .map(|n| NodeRecord {
                id: n.id.to_string(),
                addr: n.addr.to_string(),
            })
            .collect(),
        status: status_name(&outcome.status),
        metrics,
    })?;
    if outcome.closest.is_empty() {
        return Err(Fail::failed("no node answered"));
    }
    Ok(ExitCode::SUCCESS)
}

/// One peer found by `get-peers`.
#[derive(Debug, Serialize)]
struct Peer {
    peer: String,
    ip: String,
    port: u16,
}

impl Record for Peer {
    const TYPE: &'static str = "peer";
    fn text(&self) -> Option<String> {
        Some(self.peer.clone())
    }
}

/// The end of `get-peers` (JSON only): found or not.
#[derive(Debug, Serialize)]
struct PeersSummary {
    info_hash: String,
    peers: usize,
    status: &'static str,
    metrics: Metrics,
}

impl Record for PeersSummary {
    const TYPE: &'static str = "get_peers";
    fn text(&self) -> Option<String> {
        None
    }
}

pub fn get_peers(lookup: &Lookup, json: bool, info_hash: Id) -> Result<ExitCode, Fail> {
    let mut s = joined(lookup, json)?;
    let q = s
        .dht
        .get_peers(info_hash)
        .map_err(|e| Fail::failed(format_args!("cannot start the lookup: {e}")))?;
    let mut seen = HashSet::new();
    let outcome = drive(&mut s, q, "get_peers", |out, peers| {
        for peer in peers {
            if seen.insert(peer) {
                out.emit(&Peer {
                    peer: peer.to_string(),
                    ip: peer.ip().to_string(),
                    port: peer.port(),
                })?;
            }
        }
        Ok(())
    })?;
    s.save_state();
    let metrics = Metrics::from(&outcome.metrics);
    log::info!("get_peers: {}; {metrics}", count(seen.len(), "peer"));
    s.out.emit(&PeersSummary {
        info_hash: info_hash.to_string(),
        peers: seen.len(),
        status: status_name(&outcome.status),
        metrics,
    })?;
    if seen.is_empty() {
        if !s.out.json() {
            log::warn!("no peer found");
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `announce`'s answer.
#[derive(Debug, Serialize)]
struct Announced {
    info_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    implied_port: bool,
    announced: usize,
    closest: usize,
    status: &'static str,
    metrics: Metrics,
}

impl Record for Announced {
    const TYPE: &'static str = "announce";
    fn text(&self) -> Option<String> {
        Some(format!(
            "announced to {} of the {} closest {}",
            self.announced,
            self.closest,
            if self.closest == 1 { "node" } else { "nodes" }
        ))
    }
}

pub fn announce(
    local: &Local,
    join: &Join,
    json: bool,
    timeout: Duration,
    info_hash: Id,
    port: Option<u16>,
) -> Result<ExitCode, Fail> {
    let (mut s, contacts) = Session::open(local, Some(join), json, client_setup(timeout))?;
    s.join(&contacts)?;
    let q = s
        .dht
        .announce_peer(info_hash, port)
        .map_err(|e| Fail::failed(format_args!("cannot start the announce: {e}")))?;
    let outcome = drive(&mut s, q, "announce", |_, _| Ok(()))?;
    s.save_state();
    let metrics = Metrics::from(&outcome.metrics);
    log::info!("announce: {metrics}");
    s.out.emit(&Announced {
        info_hash: info_hash.to_string(),
        port,
        implied_port: port.is_none(),
        announced: outcome.announced,
        closest: outcome.closest.len(),
        status: status_name(&outcome.status),
        metrics,
    })?;
    if outcome.announced == 0 {
        return Err(Fail::failed("no node accepted the announce"));
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs the node until `query` ends, passing its peers to `on_peers` and showing progress. At
/// the deadline or a signal the query is cancelled, and its outcome so far returned.
pub fn drive(
    s: &mut Session,
    query: QueryId,
    label: &str,
    mut on_peers: impl FnMut(&mut Out, Vec<SocketAddr>) -> Result<(), Fail>,
) -> Result<QueryOutcome, Fail> {
    let mut peers = 0usize;
    let mut cancelled = false;
    let Session {
        dht,
        out,
        stop,
        deadline,
        ..
    } = s;
    let result = dht
        .run(|dht, turn| match turn {
            Turn::Event(Event::PeersFound { query: q, peers: p }) if q == query => {
                peers += p.len();
                match on_peers(out, p) {
                    Ok(()) => ControlFlow::Continue(None),
                    Err(e) => ControlFlow::Break(Err(e)),
                }
            }
            Turn::Event(Event::QueryFinished { query: q, outcome }) if q == query => {
                ControlFlow::Break(Ok(outcome))
            }
            Turn::Event(_) => ControlFlow::Continue(None),
            Turn::Idle => {
                let now = Instant::now();
                if stop.load(core::sync::atomic::Ordering::Relaxed)
                    || deadline.is_some_and(|d| now >= d)
                {
                    if cancelled {
                        return ControlFlow::Break(Err(Fail::failed(
                            "the query ended without a result",
                        )));
                    }
                    // Ends the query now; its QueryFinished (with what was found) is queued
                    // at once.
                    cancelled = true;
                    let _ = dht.cancel(query);
                    return ControlFlow::Continue(Some(now));
                }
                // The node is this process's own: its counters cover this run.
                let node = dht.node();
                let stats = node.stats();
                let (sent, answers) = (stats.queries_sent.total(), stats.responses_received);
                let table = node.table_len();
                out.progress().update(|| {
                    format!(
                        "{label}: {} sent, {}, {}, {}",
                        plural(sent, "query", "queries"),
                        plural(answers, "answer", "answers"),
                        count(peers, "peer"),
                        count(table, "contact"),
                    )
                });
                ControlFlow::Continue(*deadline)
            }
        })
        .map_err(Fail::failed)?;
    out.progress().clear();
    result
}

/// The first target address of a family the node has a socket for.
fn pick_family(s: &Session, targets: &[SocketAddr]) -> Result<SocketAddr, Fail> {
    let local = s.dht.local_addrs();
    targets
        .iter()
        .copied()
        .find(|t| local.iter().any(|l| l.is_ipv6() == t.is_ipv6()))
        .ok_or_else(|| Fail::input("the address is of a family this node has no socket for"))
}
