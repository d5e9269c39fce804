//! The one-shot subcommands: `ping`, `find-node`, `get-peers`, `announce`.

use core::net::SocketAddr;
use core::time::Duration;
use std::collections::HashSet;
use std::process::ExitCode;

use dht_proto::{AddressPolicy, Event, Id, QueryId, QueryMetrics, QueryOutcome, QueryStatus};

use crate::json::Json;
use crate::{Fail, Global, Session, millis, resolve, seeds};

/// Clients bind an OS-chosen port.
pub const CLIENT_BIND: SocketAddr =
    SocketAddr::new(core::net::IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED), 0);
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

pub fn ping(g: &Global, addr: &str) -> Result<ExitCode, Fail> {
    let targets = resolve(addr, "address")?;
    // A ping contacts only the address named, so any address the user names is fine.
    let mut s = Session::open(
        g,
        CLIENT_BIND,
        Some(CLIENT_TIMEOUT),
        Some(AddressPolicy::ALLOW_ALL),
        true,
    )?;
    let target = pick_family(&s, &targets)?;
    let sent_at = std::time::Instant::now();
    let q = s
        .dht
        .ping(target)
        .map_err(|e| Fail::input(format_args!("cannot ping {target}: {e}")))?;
    let outcome = drive(&mut s, q, "ping", |_, _| Ok(()))?;
    // Measured here rather than from the node's millisecond clock: loopback answers in
    // microseconds.
    let rtt = sent_at.elapsed();
    s.save_state()?;
    match (&outcome.status, outcome.responder) {
        (QueryStatus::Completed, Some(id)) => {
            let rtt_ms = (rtt.as_secs_f64() * 1e6).round() / 1e3;
            if s.json {
                let line = Json::obj()
                    .field("addr", target.to_string())
                    .field("id", id.to_string())
                    .field("rtt_ms", rtt_ms);
                s.println(line)?;
            } else {
                s.println(format_args!("{target} answered in {rtt_ms} ms: id {id}"))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        (QueryStatus::Error { code, message }, _) => Err(Fail::failed(format_args!(
            "{target} answered with error {code}: {message}"
        ))),
        _ => Err(Fail::failed(format_args!("no answer from {target}"))),
    }
}

pub fn find_node(g: &Global, target: Id) -> Result<ExitCode, Fail> {
    let mut s = Session::open(g, CLIENT_BIND, Some(CLIENT_TIMEOUT), None, true)?;
    join(&mut s, g)?;
    let q = s
        .dht
        .find_node(target)
        .map_err(|e| Fail::failed(format_args!("cannot start the lookup: {e}")))?;
    let outcome = drive(&mut s, q, "find_node", |_, _| Ok(()))?;
    s.save_state()?;
    if s.json {
        let nodes = outcome
            .closest
            .iter()
            .map(|n| {
                Json::obj()
                    .field("id", n.id.to_string())
                    .field("addr", n.addr.to_string())
            })
            .collect::<Vec<_>>();
        let line = Json::obj()
            .field("target", target.to_string())
            .field("nodes", nodes)
            .field("status", status_name(&outcome.status))
            .field("metrics", metrics_json(&outcome.metrics));
        s.println(line)?;
    } else {
        for n in &outcome.closest {
            s.println(format_args!("{} {}", n.id, n.addr))?;
        }
    }
    log::info!("find_node: {}", metrics_text(&outcome.metrics));
    if outcome.closest.is_empty() {
        return Err(Fail::failed("no node answered"));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn get_peers(g: &Global, info_hash: Id) -> Result<ExitCode, Fail> {
    let mut s = Session::open(g, CLIENT_BIND, Some(CLIENT_TIMEOUT), None, true)?;
    join(&mut s, g)?;
    let q = s
        .dht
        .get_peers(info_hash)
        .map_err(|e| Fail::failed(format_args!("cannot start the lookup: {e}")))?;
    let mut seen = HashSet::new();
    let outcome = drive(&mut s, q, "get_peers", |s, peers| {
        for peer in peers {
            if seen.insert(peer) {
                print_peer(s, peer)?;
            }
        }
        Ok(())
    })?;
    s.save_state()?;
    log::info!(
        "get_peers: {} peers; {}",
        seen.len(),
        metrics_text(&outcome.metrics)
    );
    if seen.is_empty() {
        s.progress.clear();
        if !s.json {
            log::warn!("no peer found");
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_peer(s: &mut Session, peer: SocketAddr) -> Result<(), Fail> {
    if s.json {
        let line = Json::obj()
            .field("peer", peer.to_string())
            .field("ip", peer.ip().to_string())
            .field("port", peer.port());
        s.println(line)
    } else {
        s.println(peer)
    }
}

pub fn announce(g: &Global, info_hash: Id, port: Option<u16>) -> Result<ExitCode, Fail> {
    let mut s = Session::open(g, CLIENT_BIND, Some(CLIENT_TIMEOUT), None, true)?;
    join(&mut s, g)?;
    let q = s
        .dht
        .announce_peer(info_hash, port)
        .map_err(|e| Fail::failed(format_args!("cannot start the announce: {e}")))?;
    let outcome = drive(&mut s, q, "announce", |_, _| Ok(()))?;
    s.save_state()?;
    if s.json {
        let line = Json::obj()
            .field("info_hash", info_hash.to_string())
            .field_opt("port", port)
            .field("implied_port", port.is_none())
            .field("announced", outcome.announced)
            .field("closest", outcome.closest.len())
            .field("status", status_name(&outcome.status))
            .field("metrics", metrics_json(&outcome.metrics));
        s.println(line)?;
    } else {
        s.println(format_args!(
            "announced to {} of the {} closest nodes",
            outcome.announced,
            outcome.closest.len()
        ))?;
    }
    log::info!("announce: {}", metrics_text(&outcome.metrics));
    if outcome.announced == 0 {
        return Err(Fail::failed("no node accepted the announce"));
    }
    Ok(ExitCode::SUCCESS)
}

/// Bootstraps and, unless the state file already gave contacts, waits for the bootstrap to end.
pub fn join(s: &mut Session, g: &Global) -> Result<(), Fail> {
    let seeds = seeds(g, &s.dht)?;
    let had_contacts = s.dht.node().table_len() > 0;
    if seeds.is_empty() && !had_contacts {
        return Err(Fail::input(
            "no contact to join the DHT through: pass --bootstrap, or --state with a saved table",
        ));
    }
    match s.dht.bootstrap(seeds) {
        Ok(q) if !had_contacts => {
            let outcome = drive(s, q, "joining", |_, _| Ok(()))?;
            if s.dht.node().table_len() == 0 {
                return Err(Fail::failed(match outcome.status {
                    QueryStatus::Cancelled => "could not join the DHT in time",
                    _ => "could not join the DHT: no bootstrap contact answered",
                }));
            }
            log::info!("joined: {} contacts", s.dht.node().table_len());
        }
        Ok(_) => {}
        Err(e) if had_contacts => log::warn!("bootstrap: {e}"),
        Err(e) => return Err(Fail::failed(format_args!("cannot join the DHT: {e}"))),
    }
    Ok(())
}

/// Runs the node until `query` ends, passing its peers to `on_peers` and showing progress. At
/// the deadline or a signal the query is cancelled, and its outcome so far returned.
pub fn drive(
    s: &mut Session,
    query: QueryId,
    label: &str,
    mut on_peers: impl FnMut(&mut Session, Vec<SocketAddr>) -> Result<(), Fail>,
) -> Result<QueryOutcome, Fail> {
    let started = std::time::Instant::now();
    let mut peers = 0usize;
    let mut cancelled = false;
    loop {
        while let Some(event) = s.dht.poll_event() {
            match event {
                Event::PeersFound { query: q, peers: p } if q == query => {
                    peers += p.len();
                    on_peers(s, p)?;
                }
                Event::QueryFinished { query: q, outcome } if q == query => {
                    s.progress.clear();
                    return Ok(outcome);
                }
                _ => {}
            }
        }
        if s.should_stop() {
            if cancelled {
                return Err(Fail::failed("the query ended without a result"));
            }
            // Ends the query now; its QueryFinished (with what was found) is queued at once.
            cancelled = true;
            let _ = s.dht.cancel(query);
            continue;
        }
        // The node is this process's own: its counters cover this run.
        let stats = s.dht.node().stats();
        let sent = stats.queries_sent.total();
        let answers = stats.responses_received;
        let table = s.dht.node().table_len();
        s.progress.update(|| {
            format!(
                "{label}: {sent} queries sent, {answers} answers, {peers} peers, {table} contacts, \
                 {:.1} s",
                started.elapsed().as_secs_f64()
            )
        });
        s.step()?;
    }
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

pub fn status_name(status: &QueryStatus) -> &'static str {
    match status {
        QueryStatus::Completed => "completed",
        QueryStatus::Exhausted => "exhausted",
        QueryStatus::TimedOut => "timed_out",
        QueryStatus::Error { .. } => "error",
        QueryStatus::Cancelled => "cancelled",
        _ => "other",
    }
}

pub fn metrics_json(m: &QueryMetrics) -> Json {
    Json::obj()
        .field("hops", m.hops)
        .field("messages_sent", m.messages_sent)
        .field("responses", m.responses)
        .field("timeouts", m.timeouts)
        .field_opt("time_to_first_peer_ms", m.time_to_first_peer.map(millis))
        .field("duration_ms", millis(m.duration))
}

pub fn metrics_text(m: &QueryMetrics) -> String {
    let first = m
        .time_to_first_peer
        .map(|t| format!(", first peer after {} ms", millis(t)))
        .unwrap_or_default();
    format!(
        "{} hops, {} messages, {} responses, {} timeouts{first}, {} ms",
        m.hops,
        m.messages_sent,
        m.responses,
        m.timeouts,
        millis(m.duration)
    )
}
