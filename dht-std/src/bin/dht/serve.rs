//! `dht node`: serve until a signal or `--duration`, with a periodic status line.

use core::net::SocketAddr;
use core::time::Duration;
use std::process::ExitCode;
use std::time::Instant;

use dht_proto::Event;

use crate::json::Json;
use crate::{Fail, Global, Session, seeds};

/// A node serves on the customary DHT port unless told otherwise.
const NODE_BIND: SocketAddr = SocketAddr::new(
    core::net::IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED),
    6881,
);
/// How often the routing table is saved while serving.
const SAVE_EVERY: Duration = Duration::from_secs(5 * 60);

pub fn node(
    g: &Global,
    duration: Option<Duration>,
    status_interval: Duration,
    queries: bool,
) -> Result<ExitCode, Fail> {
    // `--timeout` bounds a node too when given; `--duration` is the natural spelling.
    let limit = match (duration, g.timeout) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let mut s = Session::open(g, NODE_BIND, None, None, false)?;
    s.deadline = limit.map(|d| Instant::now() + d);
    // The status line is a log, not progress: printed whether or not stderr is a terminal.
    s.progress = crate::progress::Progress::new(false);
    let addrs = s
        .dht
        .local_addrs()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>();
    let id = s.dht.id();
    if s.json {
        let addrs_json = addrs
            .iter()
            .map(|a| Json::from(a.as_str()))
            .collect::<Vec<_>>();
        s.println(
            Json::obj()
                .field("id", id.to_string())
                .field("listening", addrs_json),
        )?;
    } else {
        s.println(format_args!("node {id} listening on {}", addrs.join(", ")))?;
    }
    s.dht.node_mut().set_report_queries(queries);
    let seeds = seeds(g, &s.dht)?;
    if seeds.is_empty() && s.dht.node().table_len() == 0 {
        log::info!("no bootstrap contact: waiting for other nodes to contact this one");
    } else if let Err(e) = s.dht.bootstrap(seeds) {
        log::warn!("bootstrap: {e}");
    }
    let started = Instant::now();
    let mut next_status = started + status_interval;
    let mut next_save = started + SAVE_EVERY;
    while !s.should_stop() {
        let now = Instant::now();
        let mut wait = next_status.min(next_save).saturating_duration_since(now);
        if let Some(d) = s.deadline {
            wait = wait.min(d.saturating_duration_since(now));
        }
        s.dht.step(Some(wait)).map_err(Fail::failed)?;
        while let Some(event) = s.dht.poll_event() {
            match event {
                Event::Bootstrapped { nodes } => log::info!("joined the DHT: {nodes} contacts"),
                Event::RoutingTableEmpty => log::warn!("the routing table is empty"),
                Event::ExternalAddress { addr, .. } => log::info!("external address: {addr}"),
                Event::EventsDropped { count } => log::warn!("{count} events dropped"),
                Event::QueryReceived {
                    from,
                    id,
                    method,
                    target,
                    announced_port,
                } => {
                    if s.json {
                        let mut line = Json::obj()
                            .field("query", method.name())
                            .field("from", from.to_string())
                            .field("id", id.to_string());
                        if let Some(t) = target {
                            line = line.field("target", t.to_string());
                        }
                        if let Some(p) = announced_port {
                            line = line.field("port", u64::from(p));
                        }
                        s.println(line)?;
                    } else {
                        let target = target.map(|t| format!(" {t}")).unwrap_or_default();
                        let port = announced_port
                            .map(|p| format!(" port {p}"))
                            .unwrap_or_default();
                        s.println(format_args!(
                            "{} from {from} ({id}){target}{port}",
                            method.name()
                        ))?;
                    }
                }
                _ => {}
            }
        }
        let now = Instant::now();
        if now >= next_status {
            status(&s, started);
            next_status = now + status_interval;
        }
        if now >= next_save {
            s.save_state()?;
            next_save = now + SAVE_EVERY;
        }
    }
    status(&s, started);
    s.save_state()?;
    Ok(ExitCode::SUCCESS)
}

/// `dht node`'s periodic status (a JSON line on stdout with `--json`).
#[derive(serde::Serialize)]
struct Status {
    #[serde(rename = "type")]
    kind: &'static str,
    contacts: usize,
    queries_in: u64,
    queries_out: u64,
    peers_stored: usize,
    info_hashes: usize,
    uptime_s: u64,
    /// Estimated nodes in the (IPv4) DHT, from the closest nodes of recent lookups.
    #[serde(skip_serializing_if = "Option::is_none")]
    dht_size: Option<u64>,
    /// The estimate's relative standard error (0.09 = ±9 %).
    #[serde(skip_serializing_if = "Option::is_none")]
    dht_size_error: Option<f64>,
}

/// One status line: text on stderr, or JSON on stdout with `--json`.
fn status(s: &Session, started: Instant) {
    let node = s.dht.node();
    let stats = node.stats();
    let estimate = node.size_estimate();
    let st = Status {
        kind: "status",
        contacts: node.table_len(),
        queries_in: stats.queries_received.total(),
        queries_out: stats.queries_sent.total(),
        peers_stored: node.stored_peers(),
        info_hashes: node.stored_info_hashes(),
        uptime_s: started.elapsed().as_secs(),
        dht_size: estimate.map(|e| e.nodes),
        dht_size_error: estimate.map(|e| (e.relative_error * 1000.0).round() / 1000.0),
    };
    use std::io::Write as _;
    if s.json {
        if let Ok(line) = serde_json::to_string(&st) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
        return;
    }
    let size = estimate.map_or_else(String::new, |e| {
        format!(
            ", about {} nodes in the DHT (±{:.0} %)",
            e.nodes,
            e.relative_error * 100.0
        )
    });
    let line = format!(
        "dht node: {} contacts, {} queries in, {} queries out, {} peers stored for {} \
         info-hashes, up {} s{size}",
        st.contacts, st.queries_in, st.queries_out, st.peers_stored, st.info_hashes, st.uptime_s
    );
    let _ = writeln!(std::io::stderr(), "{line}");
}
