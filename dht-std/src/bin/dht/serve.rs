//! `dht node`: serve until a signal or `--duration`, with a periodic status line.
//!
//! A node that cannot join keeps serving: it says so on stderr, and retries (resolving the
//! bootstrap hosts again, and the core re-bootstrapping an empty table) with back-off.
//! `--queries` lines go through a bounded queue to a writer thread, so a reader that falls
//! behind loses lines (counted) instead of stalling the node.

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::ops::ControlFlow;
use core::sync::atomic::Ordering;
use core::time::Duration;
use std::io::{self, BufWriter, Write as _};
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Instant;

use dht_proto::{CommandKind, Event, Id, MethodKind};
use dht_std::Turn;
use serde::Serialize;

use crate::output::{Record, count, format, plural};
use crate::session::{Contacts, Session, Setup, contacts, save_state};
use crate::{Fail, Join, Local};

/// A node serves on the customary DHT port unless told otherwise.
const NODE_BIND: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 6881);
/// How often the routing table is saved while serving.
const SAVE_EVERY: Duration = Duration::from_secs(5 * 60);
/// Lines waiting for a slow stdout before new ones are dropped.
pub const QUEUE_LINES: usize = 1024;
/// First wait before resolving bootstrap hosts again; doubles up to `RESOLVE_MAX`.
const RESOLVE_MIN: Duration = Duration::from_secs(5);
const RESOLVE_MAX: Duration = Duration::from_secs(10 * 60);

/// `node`'s own options.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub duration: Option<Duration>,
    pub status_interval: Duration,
    pub queries: bool,
}

/// The first line: the node's id and addresses.
#[derive(Debug, Serialize)]
struct Listening {
    id: String,
    listening: Vec<String>,
}

impl Record for Listening {
    const TYPE: &'static str = "node";
    fn text(&self) -> Option<String> {
        Some(format!(
            "node {} listening on {}",
            self.id,
            self.listening.join(", ")
        ))
    }
}

/// One incoming query (`--queries`).
#[derive(Debug, Serialize)]
struct Query {
    method: &'static str,
    from: String,
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    info_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
}

impl Query {
    fn new(
        method: MethodKind,
        from: SocketAddr,
        id: Id,
        key: Option<Id>,
        port: Option<u16>,
    ) -> Self {
        // get_peers and announce_peer name a torrent; the other methods a point in id space.
        let is_torrent = matches!(method, MethodKind::GetPeers | MethodKind::AnnouncePeer);
        let key = key.map(|k| k.to_string());
        Self {
            method: method.name(),
            from: from.to_string(),
            id: id.to_string(),
            info_hash: key.clone().filter(|_| is_torrent),
            target: key.filter(|_| !is_torrent),
            port,
        }
    }
}

impl Record for Query {
    const TYPE: &'static str = "query";
    fn text(&self) -> Option<String> {
        let mut line = format!("{} from {} ({})", self.method, self.from, self.id);
        if let Some(h) = &self.info_hash {
            line.push_str(&format!(" info_hash {h}"));
        }
        if let Some(t) = &self.target {
            line.push_str(&format!(" target {t}"));
        }
        if let Some(p) = self.port {
            line.push_str(&format!(" port {p}"));
        }
        Some(line)
    }
}

/// The periodic status (stderr; with `--json` an object on stdout).
#[derive(Debug, Serialize)]
struct Status {
    contacts: usize,
    queries_in: u64,
    queries_out: u64,
    peers_stored: usize,
    info_hashes: usize,
    uptime_s: u64,
    query_lines_dropped: u64,
    /// Receive system calls that returned datagrams, and the datagrams they returned (their
    /// ratio is the batch size: up to 32 with `recvmmsg` on Linux).
    recv_calls: u64,
    recv_datagrams: u64,
    /// Send system calls, and the datagrams they sent.
    send_calls: u64,
    send_datagrams: u64,
    /// Estimated nodes in the (IPv4) DHT, from the closest nodes of recent lookups.
    #[serde(skip_serializing_if = "Option::is_none")]
    dht_size: Option<u64>,
    /// The estimate's relative standard error (0.09 = ±9 %).
    #[serde(skip_serializing_if = "Option::is_none")]
    dht_size_error: Option<f64>,
}

impl Record for Status {
    const TYPE: &'static str = "status";
    fn text(&self) -> Option<String> {
        let mut line = format!(
            "dht node: {}, {} in, {} out, {} stored for {}, up {} s",
            count(self.contacts, "contact"),
            plural(self.queries_in, "query", "queries"),
            plural(self.queries_out, "query", "queries"),
            plural(
                u64::try_from(self.peers_stored).unwrap_or(u64::MAX),
                "peer",
                "peers"
            ),
            plural(
                u64::try_from(self.info_hashes).unwrap_or(u64::MAX),
                "info-hash",
                "info-hashes"
            ),
            self.uptime_s
        );
        if self.query_lines_dropped > 0 {
            line.push_str(&format!(
                ", {} dropped",
                plural(self.query_lines_dropped, "query line", "query lines")
            ));
        }
        if let (Some(n), Some(e)) = (self.dht_size, self.dht_size_error) {
            line.push_str(&format!(
                ", about {n} nodes in the DHT (±{:.0} %)",
                e * 100.0
            ));
        }
        Some(line)
    }
}

/// Standard output through a bounded queue and a writer thread: never blocks the node.
#[derive(Debug)]
pub struct LineQueue {
    tx: Option<SyncSender<String>>,
    done: Receiver<()>,
    thread: Option<JoinHandle<()>>,
    dropped: u64,
}

impl LineQueue {
    /// Starts the writer thread on `sink`, holding at most `capacity` lines.
    pub fn new(sink: impl io::Write + Send + 'static, capacity: usize) -> io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<String>(capacity);
        let (done_tx, done) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("stdout".into())
            .spawn(move || {
                let mut out = BufWriter::new(sink);
                'lines: while let Ok(line) = rx.recv() {
                    let mut next = Some(line);
                    while let Some(line) = next {
                        if writeln!(out, "{line}").is_err() {
                            break 'lines;
                        }
                        next = rx.try_recv().ok();
                    }
                    if out.flush().is_err() {
                        break;
                    }
                }
                let _ = done_tx.send(());
            })?;
        Ok(Self {
            tx: Some(tx),
            done,
            thread: Some(thread),
            dropped: 0,
        })
    }

    /// Queues a line, or drops and counts it when the queue is full.
    pub fn push(&mut self, line: String) {
        if let Some(tx) = &self.tx {
            match tx.try_send(line) {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    self.dropped = self.dropped.saturating_add(1);
                }
            }
        }
    }

    /// Lines dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Lets the writer finish the queue, waiting at most `wait` (a reader that never reads
    /// must not keep the process alive).
    pub fn close(&mut self, wait: Duration) {
        self.tx = None;
        if self.done.recv_timeout(wait).is_ok()
            && let Some(t) = self.thread.take()
        {
            let _ = t.join();
        }
    }
}

pub fn node(local: &Local, join: &Join, json: bool, o: Options) -> Result<ExitCode, Fail> {
    let setup = Setup {
        default_bind: NODE_BIND,
        timeout: o.duration,
        read_only: false,
        allow_all: false,
        progress: false,
        lenient_join: true,
    };
    let (mut s, mut found) = Session::open(local, Some(join), json, setup)?;
    s.out.emit(&Listening {
        id: s.dht.id().to_string(),
        listening: s
            .dht
            .local_addrs()
            .iter()
            .map(ToString::to_string)
            .collect(),
    })?;
    s.dht.node_mut().set_report_queries(o.queries);
    let mut lines = LineQueue::new(io::stdout(), QUEUE_LINES)?;
    let mut join_state = Joining::new(join.clone());
    join_state.start(&mut s, &mut found);

    let started = Instant::now();
    let status_every = (!o.status_interval.is_zero()).then_some(o.status_interval);
    let mut next_status = status_every.map(|i| started + i);
    let mut next_save = started + SAVE_EVERY;
    let Session {
        dht,
        stop,
        deadline,
        ..
    } = &mut s;
    let status = |dht: &dht_std::Dht, dropped: u64| {
        let node = dht.node();
        let stats = node.stats();
        Status {
            contacts: node.table_len(),
            queries_in: stats.queries_received.total(),
            queries_out: stats.queries_sent.total(),
            peers_stored: node.stored_peers(),
            info_hashes: node.stored_info_hashes(),
            uptime_s: started.elapsed().as_secs(),
            query_lines_dropped: dropped,
            recv_calls: dht.io_stats().recv_calls,
            recv_datagrams: dht.io_stats().recv_datagrams,
            send_calls: dht.io_stats().send_calls,
            send_datagrams: dht.io_stats().send_datagrams,
            dht_size: node.size_estimate().map(|e| e.nodes),
            dht_size_error: node
                .size_estimate()
                .map(|e| (e.relative_error * 1000.0).round() / 1000.0),
        }
    };
    dht.run(|dht, turn| {
        match turn {
            Turn::Event(Event::QueryReceived {
                from,
                id,
                method,
                target,
                announced_port,
            }) => {
                let query = Query::new(method, from, id, target, announced_port);
                if let Some(line) = format(json, &query) {
                    lines.push(line);
                }
            }
            Turn::Event(event) => join_state.on_event(dht, &event),
            Turn::Idle => {
                let now = Instant::now();
                if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| now >= d) {
                    return ControlFlow::Break(());
                }
                if next_status.is_some_and(|t| now >= t) {
                    print_status(json, &status(dht, lines.dropped()), &mut lines);
                    next_status = status_every.map(|i| now + i);
                }
                if now >= next_save {
                    save_state(dht, local.state.as_deref());
                    next_save = now + SAVE_EVERY;
                }
                join_state.retry(dht, now);
                let wake = [next_status, Some(next_save), *deadline, join_state.retry_at]
                    .into_iter()
                    .flatten()
                    .min();
                return ControlFlow::Continue(wake);
            }
        }
        ControlFlow::Continue(None)
    })
    .map_err(Fail::failed)?;
    let last = status(&s.dht, lines.dropped());
    print_status(json, &last, &mut lines);
    s.save_state();
    lines.close(Duration::from_secs(1));
    if lines.dropped() > 0 {
        log::warn!(
            "{} dropped: stdout was not read fast enough",
            plural(lines.dropped(), "query line", "query lines")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_status(json: bool, status: &Status, lines: &mut LineQueue) {
    if json {
        if let Some(line) = format(true, status) {
            lines.push(line);
        }
    } else if let Some(line) = status.text() {
        let _ = writeln!(io::stderr(), "{line}");
    }
}

/// Joining the DHT, with retries: hosts that did not resolve are resolved again with back-off;
/// an empty table after a bootstrap is reported (the core re-bootstraps with back-off).
#[derive(Debug)]
struct Joining {
    join: Join,
    unresolved: bool,
    retry_at: Option<Instant>,
    backoff: Duration,
    troubled: bool,
}

impl Joining {
    fn new(join: Join) -> Self {
        Self {
            join,
            unresolved: false,
            retry_at: None,
            backoff: RESOLVE_MIN,
            troubled: false,
        }
    }

    fn start(&mut self, s: &mut Session, found: &mut Contacts) {
        let has_table = s.dht.node().table_len() > 0;
        if found.addrs.is_empty() && !has_table && found.unresolved.is_empty() {
            log::info!("no bootstrap contact: waiting for other nodes to contact this one");
            return;
        }
        self.bootstrap(&mut s.dht, core::mem::take(&mut found.addrs));
        if !found.unresolved.is_empty() && !has_table {
            self.unresolved = true;
            self.note_unresolved(found, Instant::now());
        }
    }

    fn bootstrap(&mut self, dht: &mut dht_std::Dht, addrs: Vec<SocketAddr>) {
        if addrs.is_empty() && dht.node().table_len() == 0 {
            return;
        }
        if let Err(e) = dht.bootstrap(addrs) {
            log::warn!("bootstrap: {e}");
        }
    }

    fn note_unresolved(&mut self, found: &Contacts, now: Instant) {
        self.troubled = true;
        let what = if found.default_routers {
            "cannot resolve any of the public bootstrap routers (is the network up?)".to_owned()
        } else {
            format!("cannot resolve {}", found.unresolved.join(", "))
        };
        log::warn!(
            "{what}; serving meanwhile, and trying again in {} s",
            self.backoff.as_secs()
        );
        self.retry_at = Some(now + self.backoff);
        self.backoff = (self.backoff * 2).min(RESOLVE_MAX);
    }

    fn retry(&mut self, dht: &mut dht_std::Dht, now: Instant) {
        if self.retry_at.is_none_or(|t| now < t) {
            return;
        }
        self.retry_at = None;
        if dht.node().table_len() > 0 {
            self.unresolved = false;
            return;
        }
        match contacts(&self.join, true) {
            Ok(found) if !found.addrs.is_empty() => {
                self.unresolved = false;
                log::warn!("resolved the bootstrap contacts; joining");
                self.bootstrap(dht, found.addrs);
            }
            Ok(found) => self.note_unresolved(&found, now),
            Err(e) => log::warn!("{}", e.message),
        }
    }

    fn on_event(&mut self, dht: &dht_std::Dht, event: &Event) {
        match event {
            Event::Bootstrapped { nodes } => {
                if self.troubled {
                    log::warn!("joined the DHT after all: {}", count(*nodes, "contact"));
                } else {
                    log::info!("joined the DHT: {}", count(*nodes, "contact"));
                }
                self.troubled = false;
            }
            Event::QueryFinished { outcome, .. }
                if outcome.kind == CommandKind::Bootstrap && dht.node().table_len() == 0 =>
            {
                self.troubled = true;
                log::warn!(
                    "could not join the DHT: no bootstrap contact answered; serving meanwhile, \
                     and trying again with back-off"
                );
            }
            Event::RoutingTableEmpty => log::warn!("the routing table is empty"),
            Event::ExternalAddress { addr, .. } => log::info!("external address: {addr}"),
            Event::EventsDropped { count: n } => {
                log::warn!("{} dropped", plural(*n, "event", "events"));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that never accepts a byte until released: a pipe nobody reads.
    struct Stuck(std::sync::Arc<std::sync::Mutex<()>>);

    impl io::Write for Stuck {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _held = self.0.lock();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_reader_costs_lines_not_time() {
        let gate = std::sync::Arc::new(std::sync::Mutex::new(()));
        let held = gate.lock().unwrap();
        let mut q = LineQueue::new(Stuck(gate.clone()), 8).unwrap();
        for i in 0..100 {
            q.push(format!("line {i}"));
        }
        // At most the queue and the line in the writer's hand got through.
        assert!(q.dropped() >= 100 - 8 - 1, "{}", q.dropped());
        assert!(q.dropped() <= 100 - 8, "{}", q.dropped());
        q.close(Duration::from_millis(10));
        drop(held);
    }

    #[test]
    fn query_lines_name_info_hashes_and_targets() {
        let from: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let id = Id::from([1; 20]);
        let key = Some(Id::from([2; 20]));
        let q = Query::new(MethodKind::GetPeers, from, id, key, None);
        let line = format(true, &q).unwrap();
        assert!(
            line.starts_with(r#"{"type":"query","method":"get_peers""#),
            "{line}"
        );
        assert!(line.contains(&format!(r#""info_hash":"{}""#, "02".repeat(20))));
        assert!(!line.contains("target"), "{line}");
        let q = Query::new(MethodKind::FindNode, from, id, key, None);
        let line = format(true, &q).unwrap();
        assert!(
            line.contains(r#""target":"#) && !line.contains("info_hash"),
            "{line}"
        );
        let text = q.text().unwrap();
        assert_eq!(
            text,
            format!(
                "find_node from 127.0.0.1:1 ({}) target {}",
                id,
                "02".repeat(20)
            )
        );
    }
}
