//! [`Dht`]: a [`Node`] on real UDP sockets and the real clock.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use core::ops::ControlFlow;
use core::time::Duration;
use std::io;
use std::sync::Arc;

use dht_proto::wire::compact::NodeInfo;
use dht_proto::{
    AddressClass, CommandError, Config, Disposition, Event, Id, Instant, Node, QueryId,
};

use crate::items::DalekVerifier;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, Socket, Type};

use crate::error::Error;
use crate::state::State;
use crate::udp::Batch;

const V4: Token = Token(0);
const V6: Token = Token(1);
const WAKE: Token = Token(2);

/// Most datagrams read from one socket per [`Dht::step`], so that timers and the other socket
/// get their turn under a flood.
const RECV_BATCH: usize = 256;

/// A DHT node on UDP sockets: the [`Node`] state machine plus the I/O it leaves to its caller.
///
/// `Dht` owns an IPv4 socket and, when bound to an unspecified address and IPv6 is available,
/// an IPv6 socket on the same port (BEP 32). It reads the clock (one [`std::time::Instant`]
/// origin, so `dht_proto` time is milliseconds since [`Dht::bind`]), and contains no protocol
/// logic (the seed in the [`Config`] comes from the caller, usually [`os_seed`](crate::os_seed)): [`Dht::step`] waits exactly until a
/// datagram arrives, the node's next deadline ([`Node::poll_timeout`]) or a
/// [`DhtWaker::wake`], feeds the node and sends what it produced.
///
/// ```no_run
/// use dht_std::{Dht, DEFAULT_BOOTSTRAP};
/// use dht_proto::{Config, Event};
///
/// let mut dht = Dht::bind("0.0.0.0:0".parse()?, Config::new(dht_std::os_seed()))?;
/// let seeds = dht_std::resolve_all(DEFAULT_BOOTSTRAP);
/// dht.bootstrap(seeds)?;
/// loop {
///     dht.step(None)?;
///     while let Some(event) = dht.poll_event() {
///         if let Event::Bootstrapped { nodes } = event {
///             println!("joined the DHT with {nodes} contacts");
///         }
///     }
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Dht {
    node: Node<DalekVerifier>,
    origin: std::time::Instant,
    poll: Poll,
    events: Events,
    /// `[IPv4, IPv6]`.
    sockets: [Option<UdpSocket>; 2],
    /// Sockets that may still hold datagrams (mio readiness is edge-triggered).
    readable: [bool; 2],
    local_addrs: Vec<SocketAddr>,
    waker: DhtWaker,
    /// Datagrams just received.
    rx: Batch,
    /// Datagrams about to be sent.
    tx: Batch,
    io: IoStats,
}

/// What [`Dht::run`] hands its callback.
#[derive(Debug)]
pub enum Turn {
    /// An event of the node.
    Event(Event),
    /// Every event so far is handled: the loop is about to wait.
    Idle,
}

/// Wakes a [`Dht`] blocked in [`Dht::step`] from another thread. Cheap to clone.
#[derive(Clone, Debug)]
pub struct DhtWaker(Arc<mio::Waker>);

impl DhtWaker {
    /// Makes the current or next [`Dht::step`] return promptly.
    ///
    /// # Errors
    ///
    /// The operating system refused to signal the poller (practically never).
    pub fn wake(&self) -> io::Result<()> {
        self.0.wake()
    }
}

/// Counters of the socket layer (the protocol's own are in [`Node::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IoStats {
    /// Datagrams the operating system refused to send (no route, buffer full, ...).
    pub send_errors: u64,
    /// Datagrams for an address family without a socket.
    pub unroutable: u64,
    /// Errors reading a socket.
    pub recv_errors: u64,
    /// Receive system calls that returned datagrams (`recvmmsg` on Linux: up to 32 each).
    pub recv_calls: u64,
    /// Datagrams those calls returned.
    pub recv_datagrams: u64,
    /// Send system calls that sent datagrams (`sendmmsg` on Linux: up to 32 each).
    pub send_calls: u64,
    /// Datagrams those calls sent.
    pub send_datagrams: u64,
}

impl Dht {
    /// Binds UDP sockets at `addr` and starts a node with `config`.
    ///
    /// - An unspecified address (`0.0.0.0` or `[::]`) binds both families on one port when the
    ///   system has IPv6 and `config.ipv6` is set; otherwise only `addr`'s family. A missing
    ///   second family is not an error: `config.ipv6` is then cleared.
    /// - The node checks BEP 44 signatures with [`DalekVerifier`](crate::DalekVerifier).
    /// - A node bound to a loopback address accepts loopback contacts and allows several
    ///   contacts per IP address (all nodes of a local swarm share 127.0.0.1); one bound to a
    ///   private address accepts private contacts. The policy is only ever widened, never
    ///   narrowed.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] when the socket cannot be bound (port in use, foreign address);
    /// [`Error::Config`] when the configuration is invalid; [`Error::Io`] when the poller
    /// cannot be created.
    pub fn bind(addr: SocketAddr, mut config: Config) -> Result<Self, Error> {
        widen_policy(&mut config, addr.ip());
        config.validate()?;
        let sockets = bind_sockets(addr, config.ipv6)?;
        if sockets[1].is_none() {
            config.ipv6 = false;
        }
        let poll = Poll::new()?;
        let mut local_addrs = Vec::new();
        let mut sockets = sockets;
        for (socket, token) in sockets.iter_mut().zip([V4, V6]) {
            if let Some(s) = socket {
                poll.registry().register(s, token, Interest::READABLE)?;
                local_addrs.push(s.local_addr()?);
            }
        }
        let waker = DhtWaker(Arc::new(mio::Waker::new(poll.registry(), WAKE)?));
        let origin = std::time::Instant::now();
        // One byte more than the largest datagram accepted, so that a larger one is seen.
        let stride = config.limits.max_datagram.saturating_add(1);
        let node = Node::with_ed25519_verifier(config, Instant::ZERO, DalekVerifier)?;
        log::info!(
            "node {} listening on {}",
            node.id(),
            local_addrs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(Self {
            node,
            origin,
            poll,
            events: Events::with_capacity(8),
            sockets,
            readable: [false; 2],
            local_addrs,
            waker,
            rx: Batch::new(stride),
            tx: Batch::new(stride),
            io: IoStats::default(),
        })
    }

    /// The current time on the node's clock: milliseconds since [`Dht::bind`].
    pub fn now(&self) -> Instant {
        Instant::from_millis(u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// Converts a node time to a [`std::time::Instant`].
    pub fn to_std(&self, t: Instant) -> std::time::Instant {
        self.origin + Duration::from_millis(t.as_millis())
    }

    /// The node.
    pub fn node(&self) -> &Node<DalekVerifier> {
        &self.node
    }

    /// The node, for commands and getters not wrapped here. Commands issued through it are
    /// sent at the next [`Dht::step`]; prefer [`Dht::command`], which sends at once.
    pub fn node_mut(&mut self) -> &mut Node<DalekVerifier> {
        &mut self.node
    }

    /// The node id.
    pub fn id(&self) -> Id {
        self.node.id()
    }

    /// The first bound address (IPv4 when there is one).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addrs
            .first()
            .copied()
            .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
    }

    /// Every bound address (one per socket).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// A handle that interrupts [`Dht::step`] from another thread.
    pub fn waker(&self) -> DhtWaker {
        self.waker.clone()
    }

    /// Counters of the socket layer.
    pub fn io_stats(&self) -> IoStats {
        self.io
    }

    /// Runs `f` with the node and the current time, then sends what it queued. Every
    /// [`Node`] command fits: `dht.command(|node, now| node.sample_infohashes(now, target))`.
    pub fn command<R>(&mut self, f: impl FnOnce(&mut Node<DalekVerifier>, Instant) -> R) -> R {
        let now = self.now();
        let r = f(&mut self.node, now);
        self.flush(now);
        r
    }

    /// [`Node::bootstrap`] now.
    ///
    /// # Errors
    ///
    /// As [`Node::bootstrap`].
    pub fn bootstrap(
        &mut self,
        seeds: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<QueryId, CommandError> {
        self.command(|n, now| n.bootstrap(now, seeds))
    }

    /// [`Node::ping`] now.
    ///
    /// # Errors
    ///
    /// As [`Node::ping`].
    pub fn ping(&mut self, addr: SocketAddr) -> Result<QueryId, CommandError> {
        self.command(|n, now| n.ping(now, addr))
    }

    /// [`Node::find_node`] now.
    ///
    /// # Errors
    ///
    /// As [`Node::find_node`].
    pub fn find_node(&mut self, target: Id) -> Result<QueryId, CommandError> {
        self.command(|n, now| n.find_node(now, target))
    }

    /// [`Node::get_peers`] now.
    ///
    /// # Errors
    ///
    /// As [`Node::get_peers`].
    pub fn get_peers(&mut self, info_hash: Id) -> Result<QueryId, CommandError> {
        self.command(|n, now| n.get_peers(now, info_hash))
    }

    /// [`Node::announce_peer`] now (`port: None` = the source port, BEP 5 `implied_port`).
    ///
    /// # Errors
    ///
    /// As [`Node::announce_peer`].
    pub fn announce_peer(
        &mut self,
        info_hash: Id,
        port: Option<u16>,
    ) -> Result<QueryId, CommandError> {
        self.command(|n, now| n.announce_peer(now, info_hash, port))
    }

    /// [`Node::cancel`].
    ///
    /// # Errors
    ///
    /// As [`Node::cancel`].
    pub fn cancel(&mut self, query: QueryId) -> Result<(), CommandError> {
        self.command(|n, _| n.cancel(query))
    }

    /// The next event of the node ([`Node::poll_event`]).
    pub fn poll_event(&mut self) -> Option<Event> {
        self.node.poll_event()
    }

    /// The node id and contacts, for [`State::save`].
    pub fn state(&self) -> State {
        State {
            id: Some(self.node.id()),
            nodes: self.node.export_nodes(),
        }
    }

    /// Adds saved contacts ([`Node::import_nodes`]); returns how many were taken. To keep the
    /// saved id too, put it in [`Config::id`] before [`Dht::bind`].
    pub fn import_nodes(&mut self, nodes: &[NodeInfo]) -> usize {
        self.command(|n, now| n.import_nodes(now, nodes.iter().copied()))
    }

    /// Waits for one thing to happen, then handles it: a datagram, the node's deadline, a wake-up
    /// or `max_wait` (`None`: no limit but the node's own deadline). Afterwards drain
    /// [`Dht::poll_event`].
    ///
    /// Sends everything the node queued, waits (never past [`Node::poll_timeout`]; at least the
    /// poller's 1 ms resolution when the deadline is in the future), reads every datagram that
    /// arrived (at most 256 per socket, the rest at the next step, so that timers stay on time;
    /// on Linux 32 per `recvmmsg` system call, the replies of each batch sent at once with one
    /// `sendmmsg`), runs due timers and sends again. Datagrams the operating system refuses to send are dropped and counted in
    /// [`IoStats`]: UDP is lossy, and the node's timeouts recover.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when waiting on the poller fails.
    pub fn step(&mut self, max_wait: Option<Duration>) -> Result<(), Error> {
        let now = self.now();
        self.flush(now);
        let wait = self.wait_time(now, max_wait);
        match self.poll.poll(&mut self.events, wait) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Io(e)),
        }
        for event in &self.events {
            match event.token() {
                V4 => self.readable[0] = true,
                V6 => self.readable[1] = true,
                _ => {}
            }
        }
        self.receive();
        let now = self.now();
        if self.node.poll_timeout().is_some_and(|t| t <= now) {
            self.node.handle_timeout(now);
        }
        self.flush(now);
        Ok(())
    }

    /// The run loop: hands every event to `on`, then [`Turn::Idle`] once there are none
    /// left, then [`Dht::step`]s, until `on` breaks. Returns the break value.
    ///
    /// `on`'s answer to [`Turn::Idle`] is when to wake up at the latest: `Continue(None)`
    /// waits for the next datagram or node deadline only, `Continue(Some(t))` returns by `t`
    /// too (a timer of the caller's, a deadline). Its answer to an event is only a break or
    /// not. Commands issued from `on` are sent before the loop waits, and the events they
    /// cause come first.
    ///
    /// [`Dht::run_until`], the [`DhtHandle`](crate::DhtHandle)'s thread and the `dht`
    /// program are all this loop.
    ///
    /// # Errors
    ///
    /// As [`Dht::step`].
    pub fn run<B>(
        &mut self,
        mut on: impl FnMut(&mut Self, Turn) -> ControlFlow<B, Option<std::time::Instant>>,
    ) -> Result<B, Error> {
        loop {
            while let Some(event) = self.node.poll_event() {
                if let ControlFlow::Break(b) = on(self, Turn::Event(event)) {
                    return Ok(b);
                }
            }
            let wake = match on(self, Turn::Idle) {
                ControlFlow::Break(b) => return Ok(b),
                ControlFlow::Continue(wake) => wake,
            };
            if self.node.pending_events() > 0 {
                continue;
            }
            let max_wait = wake.map(|t| t.saturating_duration_since(std::time::Instant::now()));
            self.step(max_wait)?;
        }
    }

    /// Steps until `on_event` breaks or `deadline` passes (`None`: forever). Returns the break
    /// value, or `None` at the deadline.
    ///
    /// # Errors
    ///
    /// As [`Dht::step`].
    pub fn run_until<B>(
        &mut self,
        deadline: Option<std::time::Instant>,
        mut on_event: impl FnMut(&mut Self, Event) -> ControlFlow<B>,
    ) -> Result<Option<B>, Error> {
        self.run(|dht, turn| match turn {
            Turn::Event(event) => on_event(dht, event).map_break(Some).map_continue(|()| None),
            Turn::Idle if deadline.is_some_and(|d| std::time::Instant::now() >= d) => {
                ControlFlow::Break(None)
            }
            Turn::Idle => ControlFlow::Continue(deadline),
        })
    }

    fn wait_time(&self, now: Instant, max_wait: Option<Duration>) -> Option<Duration> {
        if self.readable.iter().any(|r| *r) {
            return Some(Duration::ZERO);
        }
        let timer = self
            .node
            .poll_timeout()
            .map(|t| t.saturating_duration_since(now));
        match (timer, max_wait) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Reads and handles the datagrams waiting on the readable sockets, a batch per system
    /// call, and sends the replies of each batch before reading the next.
    fn receive(&mut self) {
        for fam in 0..2 {
            if !self.readable.get(fam).copied().unwrap_or(false) {
                continue;
            }
            let mut drained = false;
            let mut handled = 0;
            while handled < RECV_BATCH {
                let Some(Some(socket)) = self.sockets.get(fam) else {
                    drained = true;
                    break;
                };
                match self.rx.recv(socket, fam == 1) {
                    Ok(n) => {
                        handled += n.max(1);
                        self.io.recv_calls = self.io.recv_calls.saturating_add(1);
                        let got = u64::try_from(n).unwrap_or(u64::MAX);
                        self.io.recv_datagrams = self.io.recv_datagrams.saturating_add(got);
                        let now = self.now();
                        for i in 0..n {
                            let Some((from, data)) = self.rx.get(i) else {
                                break;
                            };
                            let disposition = self.node.handle_datagram(now, from, data);
                            if log::log_enabled!(log::Level::Trace) {
                                let dropped = match disposition {
                                    Disposition::Dropped(reason) => {
                                        format!(" (dropped: {reason:?})")
                                    }
                                    _ => String::new(),
                                };
                                let what = crate::describe_datagram(data);
                                log::trace!("from {from}: {what}{dropped}");
                            }
                        }
                        self.flush(now);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        drained = true;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        // E.g. an ICMP error reported on the socket; the next read goes on.
                        handled += 1;
                        self.io.recv_errors = self.io.recv_errors.saturating_add(1);
                        log::debug!("receive error: {e}");
                    }
                }
            }
            if let Some(r) = self.readable.get_mut(fam) {
                *r = !drained;
            }
        }
    }

    /// Sends every datagram the node has queued, a batch per system call.
    fn flush(&mut self, now: Instant) {
        loop {
            self.tx.clear();
            while !self.tx.is_full() {
                let Some(t) = self.node.poll_transmit(now, self.tx.slot()) else {
                    break;
                };
                self.tx.push(t.len, t.to);
            }
            let queued = self.tx.len();
            // Runs of one address family, each on its socket.
            let mut start = 0;
            while start < queued {
                let fam = self.tx.family(start);
                let end = (start..queued)
                    .find(|&i| self.tx.family(i) != fam)
                    .unwrap_or(queued);
                if let Some(Some(socket)) = self.sockets.get(fam) {
                    if log::log_enabled!(log::Level::Trace) {
                        for (to, data) in (start..end).filter_map(|i| self.tx.get(i)) {
                            log::trace!("to {to}: {}", crate::describe_datagram(data));
                        }
                    }
                    let sent = self.tx.send(socket, start, end);
                    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
                    let io = &mut self.io;
                    io.send_errors = io.send_errors.saturating_add(count(sent.failed));
                    io.send_calls = io.send_calls.saturating_add(count(sent.calls));
                    io.send_datagrams = io.send_datagrams.saturating_add(count(sent.ok));
                } else {
                    let dropped = u64::try_from(end - start).unwrap_or(u64::MAX);
                    self.io.unroutable = self.io.unroutable.saturating_add(dropped);
                    log::debug!("no socket for IPv{}: datagrams dropped", 4 + 2 * fam);
                }
                start = end;
            }
            if queued < crate::udp::BATCH {
                break;
            }
        }
    }
}

/// Widens the address policy to the bound address's kind (never narrows it).
fn widen_policy(config: &mut Config, ip: IpAddr) {
    if ip.is_loopback() {
        config.address_policy.allow_loopback = true;
        // Every node of a loopback swarm has the same IP address.
        config.one_node_per_ip = false;
    } else if is_private(ip) {
        config.address_policy.allow_private = true;
    }
}

/// Private, shared and link-local ranges, as [`dht_proto::AddressPolicy::allow_private`]
/// defines them.
pub(crate) fn is_private(ip: IpAddr) -> bool {
    matches!(
        AddressClass::of(ip),
        AddressClass::Private | AddressClass::Shared
    )
}

/// Binds `addr`, plus the other family on the same port when `addr` is unspecified.
fn bind_sockets(addr: SocketAddr, ipv6: bool) -> Result<[Option<UdpSocket>; 2], Error> {
    let first = bind_one(addr)?;
    let port = first.local_addr().map_err(Error::Io)?.port();
    let other = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() && ipv6 => {
            Some(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)))
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            Some(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))
        }
        _ => None,
    };
    let second = other.and_then(|other| match bind_one(other) {
        Ok(s) => Some(s),
        // The family exists but its port is taken: the node silently losing half of the
        // DHT would surprise; say so.
        Err(Error::Bind { source, .. }) if source.kind() == io::ErrorKind::AddrInUse => {
            log::warn!(
                "cannot bind UDP {other}: the port is already in use; serving on {} only",
                addr.ip()
            );
            None
        }
        // No such family on this system (no IPv6): the normal case there.
        Err(e) => {
            log::info!("{e}; continuing with {} only", addr.ip());
            None
        }
    });
    Ok(if addr.is_ipv4() {
        [Some(first), second]
    } else {
        [second, Some(first)]
    })
}

fn bind_one(addr: SocketAddr) -> Result<UdpSocket, Error> {
    let err = |source| Error::Bind { addr, source };
    let socket =
        Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    if addr.is_ipv6() {
        // The IPv4 socket owns IPv4 traffic; without this the IPv6 bind would collide with it.
        socket.set_only_v6(true).map_err(err)?;
    }
    socket.set_nonblocking(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    Ok(UdpSocket::from_std(socket.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os_seed;

    #[test]
    fn private_ranges() {
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.0.1",
            "100.64.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["fd00::1", "fe80::1"] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "127.0.0.1", "100.128.0.1", "2001:db8::1", "::1"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn policy_follows_the_bound_address() {
        let mut c = Config::new([0; 32]);
        widen_policy(&mut c, "127.0.0.1".parse().unwrap());
        assert!(c.address_policy.allow_loopback && !c.one_node_per_ip);
        assert!(!c.address_policy.allow_private);
        let mut c = Config::new([0; 32]);
        widen_policy(&mut c, "192.168.0.2".parse().unwrap());
        assert!(c.address_policy.allow_private && !c.address_policy.allow_loopback);
        let mut c = Config::new([0; 32]);
        widen_policy(&mut c, "0.0.0.0".parse().unwrap());
        assert_eq!(c.address_policy, Config::new([0; 32]).address_policy);
    }

    #[test]
    fn port_in_use_is_a_bind_error() {
        let a = Dht::bind("127.0.0.1:0".parse().unwrap(), Config::new(os_seed())).unwrap();
        let taken = a.local_addr();
        let e = Dht::bind(taken, Config::new(os_seed())).unwrap_err();
        assert!(matches!(e, Error::Bind { .. }), "{e:?}");
        assert!(e.to_string().contains("already in use"), "{e}");
    }

    #[test]
    fn unspecified_binds_both_families_on_one_port() {
        let dht = Dht::bind("0.0.0.0:0".parse().unwrap(), Config::new(os_seed())).unwrap();
        let addrs = dht.local_addrs();
        assert!(addrs.first().unwrap().is_ipv4());
        if let Some(v6) = addrs.get(1) {
            assert!(v6.is_ipv6());
            assert_eq!(v6.port(), dht.local_addr().port());
            assert!(dht.node().config().ipv6);
        } else {
            assert!(!dht.node().config().ipv6);
        }
    }

    #[test]
    fn run_delivers_the_events_of_commands_issued_while_idle() {
        let peer = Dht::bind("127.0.0.1:0".parse().unwrap(), Config::new(os_seed())).unwrap();
        let peer_id = peer.id();
        let peer_addr = peer.local_addr();
        let _peer = crate::DhtHandle::spawn(peer).unwrap();
        let mut dht = Dht::bind("127.0.0.1:0".parse().unwrap(), Config::new(os_seed())).unwrap();
        let mut ping = None;
        let mut idles = 0;
        let outcome = dht
            .run(|dht, turn| match turn {
                Turn::Idle => {
                    idles += 1;
                    if ping.is_none() {
                        ping = Some(dht.ping(peer_addr).unwrap());
                    }
                    ControlFlow::Continue(None)
                }
                Turn::Event(Event::QueryFinished { query, outcome }) if Some(query) == ping => {
                    ControlFlow::Break(outcome)
                }
                Turn::Event(_) => ControlFlow::Continue(None),
            })
            .unwrap();
        assert_eq!(outcome.responder, Some(peer_id));
        assert!(idles >= 1);
    }

    #[test]
    fn run_until_a_past_deadline_returns_none_after_the_pending_events() {
        let mut dht = Dht::bind("127.0.0.1:0".parse().unwrap(), Config::new(os_seed())).unwrap();
        let past = std::time::Instant::now();
        let mut events = 0;
        let r: Option<()> = dht
            .run_until(Some(past), |_, _| {
                events += 1;
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(r, None);
        assert_eq!(events, 0);
    }

    #[test]
    fn step_returns_at_max_wait_and_on_wake() {
        let mut dht = Dht::bind("127.0.0.1:0".parse().unwrap(), Config::new(os_seed())).unwrap();
        let t0 = std::time::Instant::now();
        dht.step(Some(Duration::from_millis(30))).unwrap();
        let waited = t0.elapsed();
        // The node's own timers (token rotation, ...) are minutes away.
        assert!(waited >= Duration::from_millis(29), "{waited:?}");
        let waker = dht.waker();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            waker.wake().unwrap();
        });
        let t0 = std::time::Instant::now();
        dht.step(Some(Duration::from_secs(10))).unwrap();
        assert!(t0.elapsed() < Duration::from_secs(5));
        t.join().unwrap();
    }
}
