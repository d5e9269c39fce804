//! The crawler's network thread: one UDP socket per crawler id, driving
//! [`dht_proto::crawl::Crawler`] (which holds all the protocol logic) with the clock, and passing
//! its events on.

use core::net::SocketAddr;
use core::time::Duration;
use std::collections::HashSet;
use std::io;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

use dht_proto::crawl::Crawler;
use dht_proto::wire::compact::NodeInfo;
use dht_proto::{Id, Instant};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

use super::Msg;
use crate::state::MAX_STATE_NODES;
use crate::udp::Batch;

/// The waker's token; socket `i` has token `i`.
const WAKE: Token = Token(usize::MAX);
/// Most datagrams read from one socket per turn, so timers and the other sockets get theirs.
const RECV_PER_TURN: usize = 256;
/// How often the thread reports its counters.
const STATS_EVERY: Duration = Duration::from_secs(1);
/// How often it hands over the contacts to be saved.
const CONTACTS_EVERY: Duration = Duration::from_secs(5 * 60);

/// The network thread's counters, sent every second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct NetStats {
    /// Queries sent by all ids.
    pub queries_sent: u64,
    /// Queries held back by the send budget.
    pub throttled: u64,
    /// Contacts in all routing tables together.
    pub contacts: usize,
    /// `get_peers` lookups running and waiting.
    pub lookups_running: usize,
    pub lookups_queued: usize,
    /// Info-hashes waiting for their holders to be asked, or being asked.
    pub holders_waiting: usize,
    /// Info-hashes whose peers came from a holder's answer (no lookup).
    pub peers_from_holders: u64,
    /// Datagrams the operating system refused to send.
    pub send_errors: u64,
}

/// Commands of the network thread.
#[derive(Debug)]
pub(crate) enum Command {
    /// Look up peers of an info-hash (a claim with no peers known).
    Lookup(Id),
    /// Hand over the contacts, then end.
    Stop,
}

/// Binds one UDP socket per id: at `bind`'s port and upwards, or each on an ephemeral port
/// when the port is 0.
pub(crate) fn bind_sockets(bind: SocketAddr, n: usize) -> io::Result<Vec<UdpSocket>> {
    let first = usize::from(bind.port());
    if first != 0 && first + n.saturating_sub(1) > usize::from(u16::MAX) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{n} ports from {first} run past 65535"),
        ));
    }
    (0..n)
        .map(|i| {
            let mut addr = bind;
            if first != 0 {
                addr.set_port(u16::try_from(first + i).unwrap_or(u16::MAX));
            }
            UdpSocket::bind(addr)
        })
        .collect()
}

/// The running network thread.
#[derive(Debug)]
pub(crate) struct NetThread {
    tx: Sender<Command>,
    waker: Arc<mio::Waker>,
    thread: Option<JoinHandle<()>>,
}

impl NetThread {
    /// Starts driving `crawler` on `sockets` (socket `i` for the crawler's id `i`).
    pub(crate) fn spawn(
        crawler: Crawler,
        sockets: Vec<UdpSocket>,
        stride: usize,
        out: SyncSender<Msg>,
    ) -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKE)?);
        let mut sockets = sockets;
        for (i, s) in sockets.iter_mut().enumerate() {
            poll.registry().register(s, Token(i), Interest::READABLE)?;
        }
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("crawl-net".into())
            .spawn(move || {
                let mut net = Net {
                    crawler,
                    readable: vec![true; sockets.len()],
                    sockets,
                    poll,
                    events: Events::with_capacity(64),
                    origin: std::time::Instant::now(),
                    rx: Batch::new(stride),
                    tx: Batch::new(stride),
                    tx_local: 0,
                    scratch: vec![0; stride],
                    send_errors: 0,
                };
                net.run(&rx, &out);
            })?;
        Ok(Self {
            tx,
            waker,
            thread: Some(thread),
        })
    }

    /// Sends a command (a stopped thread ignores it).
    pub(crate) fn send(&self, command: Command) {
        if self.tx.send(command).is_ok() {
            let _ = self.waker.wake();
        }
    }

    /// Whether the thread has ended.
    pub(crate) fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Waits for the thread to end.
    pub(crate) fn join(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Net {
    crawler: Crawler,
    sockets: Vec<UdpSocket>,
    /// Sockets that may still hold datagrams (mio readiness is edge-triggered).
    readable: Vec<bool>,
    poll: Poll,
    events: Events,
    origin: std::time::Instant,
    rx: Batch,
    tx: Batch,
    /// The socket the datagrams in `tx` go out on.
    tx_local: usize,
    /// Where the crawler writes each datagram before it joins `tx`.
    scratch: Vec<u8>,
    send_errors: u64,
}

impl Net {
    fn now(&self) -> Instant {
        Instant::from_millis(u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    fn to_std(&self, t: Instant) -> std::time::Instant {
        self.origin + Duration::from_millis(t.as_millis())
    }

    fn run(&mut self, commands: &Receiver<Command>, out: &SyncSender<Msg>) {
        let mut next_stats = std::time::Instant::now();
        let mut next_contacts = std::time::Instant::now() + CONTACTS_EVERY;
        loop {
            loop {
                match commands.try_recv() {
                    Ok(Command::Lookup(info_hash)) => {
                        let now = self.now();
                        if !self.crawler.lookup(now, info_hash)
                            && out.send(Msg::LookupRefused(info_hash)).is_err()
                        {
                            return;
                        }
                    }
                    Ok(Command::Stop) | Err(mpsc::TryRecvError::Disconnected) => {
                        let _ = out.send(Msg::Net(self.stats()));
                        let _ = out.send(Msg::Contacts(self.contacts()));
                        return;
                    }
                    Err(mpsc::TryRecvError::Empty) => break,
                }
            }
            self.send_all();
            if !self.forward_events(out) {
                return;
            }
            let now_std = std::time::Instant::now();
            if now_std >= next_stats {
                if out.send(Msg::Net(self.stats())).is_err() {
                    return;
                }
                next_stats = now_std + STATS_EVERY;
            }
            if now_std >= next_contacts {
                if out.send(Msg::Contacts(self.contacts())).is_err() {
                    return;
                }
                next_contacts = now_std + CONTACTS_EVERY;
            }
            let mut wake = next_stats.min(next_contacts);
            if let Some(t) = self.crawler.poll_timeout() {
                wake = wake.min(self.to_std(t));
            }
            let mut wait = wake.saturating_duration_since(std::time::Instant::now());
            if self.readable.iter().any(|r| *r) {
                wait = Duration::ZERO;
            } else if !wait.is_zero() {
                // The core's clock has millisecond resolution: do not wake just before a deadline.
                wait += Duration::from_micros(999);
            }
            match self.poll.poll(&mut self.events, Some(wait)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("crawler poll: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            for event in &self.events {
                if let Some(r) = self.readable.get_mut(event.token().0) {
                    *r = true;
                }
            }
            for local in 0..self.sockets.len() {
                self.receive(local);
            }
            let now = self.now();
            if self.crawler.poll_timeout().is_some_and(|t| t <= now) {
                self.crawler.handle_timeout(now);
            }
        }
    }

    /// Reads what waits on socket `local` (at most [`RECV_PER_TURN`] datagrams).
    fn receive(&mut self, local: usize) {
        if !self.readable.get(local).copied().unwrap_or(false) {
            return;
        }
        let mut read = 0;
        while read < RECV_PER_TURN {
            let Some(socket) = self.sockets.get(local) else {
                return;
            };
            match self.rx.recv(socket, socket_is_v6(socket)) {
                Ok(n) => {
                    read += n.max(1);
                    let now = self.now();
                    for i in 0..n {
                        if let Some((from, data)) = self.rx.get(i) {
                            self.crawler.handle_input(now, local, from, data);
                        }
                    }
                    // Replies go out with each batch, as in the node's own loop.
                    self.send_all();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Some(r) = self.readable.get_mut(local) {
                        *r = false;
                    }
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // ICMP errors surface here on some systems; the socket is still usable.
                    log::debug!("crawler socket {local}: {e}");
                    read += 1;
                }
            }
        }
    }

    /// Sends everything the crawler has queued, in batches per socket.
    fn send_all(&mut self) {
        loop {
            let now = self.now();
            let Some(t) = self.crawler.poll_transmit(now, &mut self.scratch) else {
                break;
            };
            if self.tx.len() > 0 && t.local != self.tx_local {
                self.flush_tx();
            }
            self.tx_local = t.local;
            let slot = self.tx.slot();
            let n = t.len.min(slot.len());
            if let (Some(dst), Some(src)) = (slot.get_mut(..n), self.scratch.get(..n)) {
                dst.copy_from_slice(src);
                self.tx.push(n, t.to);
            }
            if self.tx.is_full() {
                self.flush_tx();
            }
        }
        self.flush_tx();
    }

    fn flush_tx(&mut self) {
        if self.tx.len() == 0 {
            return;
        }
        if let Some(socket) = self.sockets.get(self.tx_local) {
            let n = self.tx.len();
            let sent = self.tx.send(socket, 0, n);
            self.send_errors += sent.failed as u64;
        }
        self.tx.clear();
    }

    /// Passes the crawler's events on; false when the receiver is gone.
    fn forward_events(&mut self, out: &SyncSender<Msg>) -> bool {
        while let Some(event) = self.crawler.poll_event() {
            if out.send(Msg::Event(event)).is_err() {
                return false;
            }
        }
        true
    }

    fn stats(&self) -> NetStats {
        let s = self.crawler.stats();
        NetStats {
            queries_sent: s.queries_sent,
            throttled: s.queries_throttled,
            contacts: s.contacts,
            lookups_running: s.lookups_running,
            lookups_queued: s.lookups_queued,
            holders_waiting: s.holders_pending,
            peers_from_holders: s.holder_hits,
            send_errors: self.send_errors,
        }
    }

    /// The contacts of all ids, deduplicated by address, at most [`MAX_STATE_NODES`].
    fn contacts(&self) -> Vec<NodeInfo> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for i in 0..self.crawler.len() {
            let Some(node) = self.crawler.node(i) else {
                continue;
            };
            for n in node.export_nodes() {
                if out.len() >= MAX_STATE_NODES {
                    return out;
                }
                if seen.insert(n.addr) {
                    out.push(n);
                }
            }
        }
        out
    }
}

fn socket_is_v6(socket: &UdpSocket) -> bool {
    socket.local_addr().is_ok_and(|a| a.is_ipv6())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_id_has_its_own_socket() {
        let sockets = bind_sockets("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        let mut ports: Vec<u16> = sockets
            .iter()
            .map(|s| s.local_addr().unwrap().port())
            .collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 3);
    }

    #[test]
    fn ports_past_65535_are_refused() {
        let e = bind_sockets("127.0.0.1:65534".parse().unwrap(), 3).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
