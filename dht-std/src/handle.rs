//! [`DhtHandle`]: a [`Dht`] on its own thread, driven through blocking calls.

use core::net::SocketAddr;
use core::ops::ControlFlow;
use core::time::Duration;
use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread::JoinHandle;

use dht_proto::{CommandError, Event, Id, QueryId, QueryOutcome, QueryStatus, Stats};

use crate::adapter::{Dht, DhtWaker, IoStats, Turn};
use crate::error::Error;
use crate::state::State;

type Job = Box<dyn FnOnce(&mut Dht, &mut Routes) + Send>;

enum Command {
    Run(Job),
    Stop,
}

/// What a running command reports to its caller.
enum Update {
    Peers(Vec<SocketAddr>),
    Finished(QueryOutcome),
}

/// Who on the other side of the channel waits for which query, and who wants every event.
#[derive(Default)]
struct Routes {
    queries: HashMap<QueryId, Sender<Update>>,
    subscribers: Vec<Sender<Event>>,
}

impl Routes {
    fn route(&mut self, dht: &mut Dht, event: Event) {
        if !self.subscribers.is_empty() {
            self.subscribers.retain(|s| s.send(event.clone()).is_ok());
        }
        match event {
            Event::PeersFound { query, peers } => {
                let gone = self
                    .queries
                    .get(&query)
                    .is_some_and(|tx| tx.send(Update::Peers(peers)).is_err());
                if gone {
                    // The caller dropped its stream: stop the lookup.
                    self.queries.remove(&query);
                    let _ = dht.cancel(query);
                }
            }
            Event::QueryFinished { query, outcome } => {
                if let Some(tx) = self.queries.remove(&query) {
                    let _ = tx.send(Update::Finished(outcome));
                }
            }
            _ => {}
        }
    }
}

/// The node thread: [`Dht::run`], routing events and running the callers' jobs between waits.
fn drive(mut dht: Dht, commands: &Receiver<Command>) -> Result<Dht, Error> {
    let mut routes = Routes::default();
    dht.run(|dht, turn| match turn {
        Turn::Event(event) => {
            routes.route(dht, event);
            ControlFlow::Continue(None)
        }
        Turn::Idle => loop {
            match commands.try_recv() {
                Ok(Command::Run(job)) => job(dht, &mut routes),
                Ok(Command::Stop) | Err(TryRecvError::Disconnected) => {
                    return ControlFlow::Break(());
                }
                Err(TryRecvError::Empty) => return ControlFlow::Continue(None),
            }
        },
    })?;
    Ok(dht)
}

/// A [`Dht`] running on its own thread, for programs that want answers, not a run loop.
///
/// Every method blocks until its answer is known (the node's own timeouts bound that) and may
/// be called from any thread: the handle is `Send + Sync`. Dropping the handle stops the node.
///
/// ```no_run
/// use dht_std::{Dht, DhtHandle, DEFAULT_BOOTSTRAP};
/// use dht_proto::Config;
///
/// let dht = Dht::bind("0.0.0.0:0".parse()?, Config::new(dht_std::os_seed()))?;
/// let handle = DhtHandle::spawn(dht)?;
/// handle.bootstrap(&dht_std::resolve_all(DEFAULT_BOOTSTRAP))?;
/// let info_hash = dht_std::parse_info_hash("c12fe1c06bba254a9dc9f519b335aa7c1367a88a")?;
/// for peer in handle.get_peers(info_hash)? {
///     println!("{peer}");
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct DhtHandle {
    commands: Sender<Command>,
    waker: DhtWaker,
    thread: Option<JoinHandle<Result<Dht, Error>>>,
    id: Id,
    local_addrs: Vec<SocketAddr>,
}

impl core::fmt::Debug for Command {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Run(_) => "Run",
            Self::Stop => "Stop",
        })
    }
}

/// The answer to [`DhtHandle::ping`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pong {
    /// The responder's node id.
    pub id: Id,
    /// The round-trip time (millisecond resolution).
    pub rtt: Duration,
}

/// A snapshot of a running node, from [`DhtHandle::info`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Info {
    /// The node id.
    pub id: Id,
    /// The bound addresses.
    pub local_addrs: Vec<SocketAddr>,
    /// Routing-table entries (both families).
    pub table_len: usize,
    /// Whether the first bootstrap completed.
    pub bootstrapped: bool,
    /// Our address as other nodes see it, once several agree.
    pub external_addr: Option<SocketAddr>,
    /// Protocol counters.
    pub stats: Stats,
    /// Socket counters.
    pub io: IoStats,
}

impl DhtHandle {
    /// Moves `dht` to a new thread named `dht` and returns its handle.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the thread cannot be started.
    pub fn spawn(dht: Dht) -> Result<Self, Error> {
        let (commands, rx) = mpsc::channel();
        let waker = dht.waker();
        let id = dht.id();
        let local_addrs = dht.local_addrs().to_vec();
        let thread = std::thread::Builder::new()
            .name("dht".into())
            .spawn(move || {
                let result = drive(dht, &rx);
                if let Err(e) = &result {
                    log::error!("the DHT node stopped: {e}");
                }
                result
            })?;
        Ok(Self {
            commands,
            waker,
            thread: Some(thread),
            id,
            local_addrs,
        })
    }

    /// The node id.
    pub fn id(&self) -> Id {
        self.id
    }

    /// The first bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addrs
            .first()
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Every bound address.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// Runs `f` on the node's thread and returns its result: the way to anything not wrapped
    /// here (`handle.with(|dht| dht.node().stored_peers())`).
    ///
    /// # Errors
    ///
    /// [`Error::Stopped`] if the node's thread has ended.
    pub fn with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Dht) -> R + Send + 'static,
    ) -> Result<R, Error> {
        let (tx, rx) = mpsc::channel();
        self.send(Box::new(move |dht: &mut Dht, _: &mut Routes| {
            let _ = tx.send(f(dht));
        }))?;
        rx.recv().map_err(|_| Error::Stopped)
    }

    /// Joins the DHT through `seeds` and waits for the bootstrap lookup to end. Returns the
    /// routing-table size.
    ///
    /// # Errors
    ///
    /// [`Error::Command`] when no seed is usable; [`Error::Query`] when no seed answered (the
    /// table is still empty; the node keeps retrying with back-off); [`Error::Stopped`].
    pub fn bootstrap(&self, seeds: &[SocketAddr]) -> Result<usize, Error> {
        let seeds = seeds.to_vec();
        let outcome = self.wait(self.start(move |dht| dht.bootstrap(seeds))?)?;
        let table_len = self.with(|dht| dht.node().table_len())?;
        if table_len == 0 {
            return Err(Error::Query(outcome.status));
        }
        Ok(table_len)
    }

    /// Looks up peers for `info_hash`. The returned iterator yields each distinct peer as soon
    /// as it is found and ends when the lookup does; [`PeerStream::outcome`] then holds the
    /// lookup's result. Dropping the stream early cancels the lookup.
    ///
    /// # Errors
    ///
    /// [`Error::Command`] (e.g. no contacts: bootstrap first); [`Error::Stopped`].
    pub fn get_peers(&self, info_hash: Id) -> Result<PeerStream, Error> {
        let updates = self.start(move |dht| dht.get_peers(info_hash))?;
        Ok(PeerStream {
            updates,
            pending: VecDeque::new(),
            outcome: None,
        })
    }

    /// Looks up `info_hash` and announces this node as a peer on `port` (`None`: the DHT
    /// socket's port as the receivers see it, BEP 5 `implied_port`) to the closest nodes.
    /// [`QueryOutcome::announced`] counts the nodes that accepted.
    ///
    /// # Errors
    ///
    /// [`Error::Command`] (no contacts, port 0); [`Error::Stopped`].
    pub fn announce(&self, info_hash: Id, port: Option<u16>) -> Result<QueryOutcome, Error> {
        self.wait(self.start(move |dht| dht.announce_peer(info_hash, port))?)
    }

    /// Finds the nodes closest to `target` ([`QueryOutcome::closest`]).
    ///
    /// # Errors
    ///
    /// [`Error::Command`] (no contacts); [`Error::Stopped`].
    pub fn find_node(&self, target: Id) -> Result<QueryOutcome, Error> {
        self.wait(self.start(move |dht| dht.find_node(target))?)
    }

    /// Pings `addr`.
    ///
    /// # Errors
    ///
    /// [`Error::Query`] with [`QueryStatus::TimedOut`] when it does not answer, or
    /// [`QueryStatus::Error`] when it answers with a KRPC error; [`Error::Command`] when the
    /// address is refused by the address policy; [`Error::Stopped`].
    pub fn ping(&self, addr: SocketAddr) -> Result<Pong, Error> {
        let outcome = self.wait(self.start(move |dht| dht.ping(addr))?)?;
        match (outcome.status, outcome.responder) {
            (QueryStatus::Completed, Some(id)) => Ok(Pong {
                id,
                rtt: outcome.metrics.duration,
            }),
            (QueryStatus::Completed, None) => Err(Error::Query(QueryStatus::TimedOut)),
            (status, _) => Err(Error::Query(status)),
        }
    }

    /// A snapshot of the node.
    ///
    /// # Errors
    ///
    /// [`Error::Stopped`].
    pub fn info(&self) -> Result<Info, Error> {
        self.with(|dht| {
            let node = dht.node();
            Info {
                id: node.id(),
                local_addrs: dht.local_addrs().to_vec(),
                table_len: node.table_len(),
                bootstrapped: node.is_bootstrapped(),
                external_addr: node.external_address(),
                stats: node.stats().clone(),
                io: dht.io_stats(),
            }
        })
    }

    /// The node id and contacts, to [`State::save`].
    ///
    /// # Errors
    ///
    /// [`Error::Stopped`].
    pub fn state(&self) -> Result<State, Error> {
        self.with(|dht| dht.state())
    }

    /// Every event of the node from now on (peers, finished queries, bootstrap, ...). Events
    /// are queued without bound while the receiver lives: drain it or drop it.
    ///
    /// # Errors
    ///
    /// [`Error::Stopped`].
    pub fn subscribe(&self) -> Result<Receiver<Event>, Error> {
        let (tx, rx) = mpsc::channel();
        self.with_routes(move |_, routes| routes.subscribers.push(tx))?;
        Ok(rx)
    }

    /// Stops the node's thread and returns the [`Dht`] (to save its state, or to drive it by
    /// hand).
    ///
    /// # Errors
    ///
    /// The error that stopped the thread, or [`Error::Stopped`] if it panicked.
    pub fn shutdown(mut self) -> Result<Dht, Error> {
        self.stop()
    }

    fn stop(&mut self) -> Result<Dht, Error> {
        let _ = self.commands.send(Command::Stop);
        let _ = self.waker.wake();
        match self.thread.take() {
            Some(thread) => thread.join().unwrap_or(Err(Error::Stopped)),
            None => Err(Error::Stopped),
        }
    }

    fn send(&self, job: Job) -> Result<(), Error> {
        self.commands
            .send(Command::Run(job))
            .map_err(|_| Error::Stopped)?;
        self.waker.wake().map_err(Error::Io)
    }

    fn with_routes<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Dht, &mut Routes) -> R + Send + 'static,
    ) -> Result<R, Error> {
        let (tx, rx) = mpsc::channel();
        self.send(Box::new(move |dht: &mut Dht, routes: &mut Routes| {
            let _ = tx.send(f(dht, routes));
        }))?;
        rx.recv().map_err(|_| Error::Stopped)
    }

    /// Starts a command on the node thread and subscribes to its updates.
    fn start(
        &self,
        f: impl FnOnce(&mut Dht) -> Result<QueryId, CommandError> + Send + 'static,
    ) -> Result<Receiver<Update>, Error> {
        let (tx, rx) = mpsc::channel();
        self.with_routes(move |dht, routes| {
            let q = f(dht)?;
            routes.queries.insert(q, tx);
            Ok::<_, CommandError>(())
        })??;
        Ok(rx)
    }

    /// Waits for the end of a command, ignoring the peers it finds on the way.
    fn wait(&self, updates: Receiver<Update>) -> Result<QueryOutcome, Error> {
        loop {
            match updates.recv() {
                Ok(Update::Finished(outcome)) => return Ok(outcome),
                Ok(Update::Peers(_)) => {}
                Err(_) => return Err(Error::Stopped),
            }
        }
    }
}

impl Drop for DhtHandle {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.stop();
        }
    }
}

/// Peers of a [`DhtHandle::get_peers`] lookup, as they are found.
#[derive(Debug)]
pub struct PeerStream {
    updates: Receiver<Update>,
    pending: VecDeque<SocketAddr>,
    outcome: Option<QueryOutcome>,
}

impl core::fmt::Debug for Update {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Peers(p) => write!(f, "Peers({})", p.len()),
            Self::Finished(_) => f.write_str("Finished"),
        }
    }
}

impl PeerStream {
    /// The lookup's result, once the stream has ended.
    pub fn outcome(&self) -> Option<&QueryOutcome> {
        self.outcome.as_ref()
    }

    /// The next peer, waiting at most `timeout`. `Ok(None)`: the lookup has ended.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] when nothing came in time (the lookup goes on);
    /// [`RecvTimeoutError::Disconnected`] when the node stopped.
    pub fn next_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<SocketAddr>, RecvTimeoutError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(p) = self.pending.pop_front() {
                return Ok(Some(p));
            }
            if self.outcome.is_some() {
                return Ok(None);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.updates.recv_timeout(left)? {
                Update::Peers(p) => self.pending.extend(p),
                Update::Finished(o) => self.outcome = Some(o),
            }
        }
    }
}

impl Iterator for PeerStream {
    type Item = SocketAddr;

    fn next(&mut self) -> Option<SocketAddr> {
        loop {
            if let Some(p) = self.pending.pop_front() {
                return Some(p);
            }
            if self.outcome.is_some() {
                return None;
            }
            match self.updates.recv().ok()? {
                Update::Peers(p) => self.pending.extend(p),
                Update::Finished(o) => self.outcome = Some(o),
            }
        }
    }
}
