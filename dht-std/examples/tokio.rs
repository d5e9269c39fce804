//! A `dht_proto::Node` in a tokio event loop, on tokio's `UdpSocket`, with nothing from
//! `dht-std`: the sans-IO core fits an async runtime as it is.
//!
//! ```text
//! cargo run -p dht-std --example tokio
//! ```
//!
//! starts three nodes on 127.0.0.1 (one task each), joins two of them through the third, lets
//! one announce an info-hash and the other look it up, prints what it found and exits.

use core::error::Error;
use core::net::SocketAddr;
use core::time::Duration;

use dht_proto::{Config, Event, Id, Instant, Node, QueryId};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

/// A command run on the node's task, with the node's clock.
type Command = Box<dyn FnOnce(&mut Node, Instant) + Send>;

/// A node running on its own task: commands in, events out.
struct Remote {
    addr: SocketAddr,
    commands: mpsc::UnboundedSender<Command>,
    events: mpsc::UnboundedReceiver<Event>,
}

impl Remote {
    /// Starts a node bound to an OS-chosen loopback port.
    async fn start(seed: u8) -> Result<Self, Box<dyn Error>> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let addr = socket.local_addr()?;
        let mut config = Config::local_testing([seed; 32]);
        config.one_node_per_ip = false; // every node here is 127.0.0.1
        let node = Node::new(config, Instant::ZERO)?;
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (event_tx, events) = mpsc::unbounded_channel();
        tokio::spawn(drive(node, socket, command_rx, event_tx));
        Ok(Self {
            addr,
            commands,
            events,
        })
    }

    /// Runs a command on the node's task and returns the query it started.
    async fn command(
        &self,
        f: impl FnOnce(&mut Node, Instant) -> Result<QueryId, dht_proto::CommandError> + Send + 'static,
    ) -> Result<QueryId, Box<dyn Error>> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Box::new(move |node, now| {
                let _ = tx.send(f(node, now));
            }))
            .map_err(|_| "the node task stopped")?;
        Ok(rx.await??)
    }

    /// Waits for the end of `query`, collecting the peers it reports.
    async fn finish(
        &mut self,
        query: QueryId,
    ) -> Result<(Vec<SocketAddr>, dht_proto::QueryOutcome), Box<dyn Error>> {
        let mut peers = Vec::new();
        loop {
            match self.events.recv().await.ok_or("the node task stopped")? {
                Event::PeersFound { query: q, peers: p } if q == query => peers.extend(p),
                Event::QueryFinished { query: q, outcome } if q == query => {
                    return Ok((peers, outcome));
                }
                _ => {}
            }
        }
    }
}

/// The run loop: send what the node wants sent, hand out its events, then wait for a datagram,
/// the node's deadline or a command, whichever comes first.
async fn drive(
    mut node: Node,
    socket: UdpSocket,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<Event>,
) {
    let origin = tokio::time::Instant::now();
    let now = || Instant::from_millis(origin.elapsed().as_millis() as u64);
    let mut buf = vec![0u8; 1501];
    loop {
        while let Some(t) = node.poll_transmit(now(), &mut buf) {
            let _ = socket.send_to(&buf[..t.len], t.to).await;
        }
        while let Some(event) = node.poll_event() {
            if events.send(event).is_err() {
                return;
            }
        }
        let deadline = node
            .poll_timeout()
            .map(|t| origin + Duration::from_millis(t.as_millis()));
        let timer = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => core::future::pending().await,
            }
        };
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                if let Ok((len, from)) = received {
                    node.handle_datagram(now(), from, &buf[..len]);
                }
            }
            () = timer => node.handle_timeout(now()),
            command = commands.recv() => match command {
                Some(f) => f(&mut node, now()),
                None => return,
            },
        }
    }
}

/// The demonstration; returns the line it prints.
pub async fn demo() -> Result<String, Box<dyn Error>> {
    let first = Remote::start(1).await?;
    let mut announcer = Remote::start(2).await?;
    let mut looker = Remote::start(3).await?;
    for node in [&mut announcer, &mut looker] {
        let seed = first.addr;
        let q = node.command(move |n, now| n.bootstrap(now, [seed])).await?;
        node.finish(q).await?;
    }
    let info_hash: Id = "5ac55cf9e2ab8d2d5fd0ab2ae6b4e0a5d7ac1a29".parse()?;
    let q = announcer
        .command(move |n, now| n.announce_peer(now, info_hash, Some(6881)))
        .await?;
    let (_, announced) = announcer.finish(q).await?;
    let q = looker
        .command(move |n, now| n.get_peers(now, info_hash))
        .await?;
    let (peers, outcome) = looker.finish(q).await?;
    let expected = SocketAddr::new(announcer.addr.ip(), 6881);
    if !peers.contains(&expected) {
        return Err(format!("expected {expected} among the peers, got {peers:?}").into());
    }
    Ok(format!(
        "tokio: announced to {} nodes; lookup found {peers:?} in {} ms ({} messages)",
        announced.announced,
        outcome.metrics.duration.as_millis(),
        outcome.metrics.messages_sent
    ))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let line = tokio::time::timeout(Duration::from_secs(30), demo()).await??;
    println!("{line}");
    Ok(())
}
