//! A `dht_proto::Node` on a plain thread with `std::net::UdpSocket`, with nothing from
//! `dht-std`: the whole run loop is `set_read_timeout` until the node's next deadline.
//!
//! ```text
//! cargo run -p dht-std --example thread
//! ```
//!
//! starts three nodes on 127.0.0.1 (one thread each), joins two of them through the third, lets
//! one announce an info-hash and the other look it up, prints what it found and exits.

use core::error::Error;
use core::net::SocketAddr;
use core::time::Duration;
use std::io::ErrorKind;
use std::net::UdpSocket;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use dht_proto::{CommandError, Config, Event, Id, Instant, Node, QueryId, QueryOutcome};

/// A command run on the node's thread, with the node's clock.
type Command = Box<dyn FnOnce(&mut Node, Instant) + Send>;

/// std sockets cannot be woken from another thread, so the loop looks at its command channel
/// at least this often.
const COMMAND_LATENCY: Duration = Duration::from_millis(20);

struct Remote {
    addr: SocketAddr,
    commands: Option<Sender<Command>>,
    events: Receiver<Event>,
    thread: Option<JoinHandle<()>>,
}

impl Remote {
    fn start(seed: u8) -> Result<Self, Box<dyn Error>> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        let addr = socket.local_addr()?;
        let mut config = Config::local_testing([seed; 32]);
        config.one_node_per_ip = false; // every node here is 127.0.0.1
        let node = Node::new(config, Instant::ZERO)?;
        let (commands, command_rx) = mpsc::channel();
        let (event_tx, events) = mpsc::channel();
        let thread = std::thread::spawn(move || run(node, &socket, &command_rx, &event_tx));
        Ok(Self {
            addr,
            commands: Some(commands),
            events,
            thread: Some(thread),
        })
    }

    fn command(
        &self,
        f: impl FnOnce(&mut Node, Instant) -> Result<QueryId, CommandError> + Send + 'static,
    ) -> Result<QueryId, Box<dyn Error>> {
        let (tx, rx) = mpsc::channel();
        self.commands
            .as_ref()
            .ok_or("stopped")?
            .send(Box::new(move |node, now| {
                let _ = tx.send(f(node, now));
            }))?;
        Ok(rx.recv()??)
    }

    fn finish(&self, query: QueryId) -> Result<(Vec<SocketAddr>, QueryOutcome), Box<dyn Error>> {
        let mut peers = Vec::new();
        loop {
            match self.events.recv()? {
                Event::PeersFound { query: q, peers: p } if q == query => peers.extend(p),
                Event::QueryFinished { query: q, outcome } if q == query => {
                    return Ok((peers, outcome));
                }
                _ => {}
            }
        }
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.commands = None; // the thread sees the channel close and returns
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The run loop: send, hand out events, then block on the socket until the node's deadline.
fn run(mut node: Node, socket: &UdpSocket, commands: &Receiver<Command>, events: &Sender<Event>) {
    let origin = std::time::Instant::now();
    let now = || Instant::from_millis(origin.elapsed().as_millis() as u64);
    let mut buf = vec![0u8; 1501];
    loop {
        loop {
            match commands.try_recv() {
                Ok(f) => f(&mut node, now()),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => return,
            }
        }
        while let Some(t) = node.poll_transmit(now(), &mut buf) {
            let _ = socket.send_to(&buf[..t.len], t.to);
        }
        while let Some(event) = node.poll_event() {
            let _ = events.send(event);
        }
        let until_deadline = node
            .poll_timeout()
            .map_or(COMMAND_LATENCY, |t| t.saturating_duration_since(now()));
        // A zero read timeout is an error in std; wait at least 1 ms.
        let wait = until_deadline.clamp(Duration::from_millis(1), COMMAND_LATENCY);
        let _ = socket.set_read_timeout(Some(wait));
        match socket.recv_from(&mut buf) {
            Ok((len, from)) => {
                node.handle_datagram(now(), from, &buf[..len]);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => {}
        }
        if node.poll_timeout().is_some_and(|t| t <= now()) {
            node.handle_timeout(now());
        }
    }
}

/// The demonstration; returns the line it prints.
pub fn demo() -> Result<String, Box<dyn Error>> {
    let first = Remote::start(1)?;
    let announcer = Remote::start(2)?;
    let looker = Remote::start(3)?;
    for node in [&announcer, &looker] {
        let seed = first.addr;
        let q = node.command(move |n, now| n.bootstrap(now, [seed]))?;
        node.finish(q)?;
    }
    let info_hash: Id = "5ac55cf9e2ab8d2d5fd0ab2ae6b4e0a5d7ac1a29".parse()?;
    // Implied port: the peer is the announcer's DHT socket address.
    let q = announcer.command(move |n, now| n.announce_peer(now, info_hash, None))?;
    let (_, announced) = announcer.finish(q)?;
    let q = looker.command(move |n, now| n.get_peers(now, info_hash))?;
    let (peers, outcome) = looker.finish(q)?;
    if !peers.contains(&announcer.addr) {
        return Err(format!("expected {} among the peers, got {peers:?}", announcer.addr).into());
    }
    Ok(format!(
        "thread: announced to {} nodes; lookup found {peers:?} in {} ms ({} messages)",
        announced.announced,
        outcome.metrics.duration.as_millis(),
        outcome.metrics.messages_sent
    ))
}

fn main() -> Result<(), Box<dyn Error>> {
    // Bound the run: the nodes' own timeouts end every query, this ends the process.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(demo().map_err(|e| e.to_string()));
    });
    let line = rx.recv_timeout(Duration::from_secs(30))??;
    println!("{line}");
    Ok(())
}
