//! [`DhtHandle`]: a [`Dht`] on its own thread, driven through blocking calls; its
//! [`AsyncDhtHandle`](crate::AsyncDhtHandle) twin offers the same as futures.

use core::net::SocketAddr;
use core::time::Duration;
use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread::JoinHandle;

use dht_proto::{CommandError, Event, Id, PutItem, QueryId, QueryOutcome, QueryStatus, Stats};

use crate::adapter::{Dht, DhtWaker, IoStats};
use crate::chan::{self, Rx, Tx, block_on, block_on_until};
use crate::error::Error;
use crate::scrape::{SCRAPE_NODES, Scrape, scrape_args};
use crate::state::State;

type Job = Box<dyn FnOnce(&mut Driver) + Send>;

enum Command {
    Run(Job),
    Stop,
}

/// How often [`DhtHandle::keep_announcing`] re-announces by default: well inside the 30
/// minutes after which nodes forget an announce (BEP 5 leaves the lifetime to them; 30 minutes
/// is common).
pub const REANNOUNCE_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// A retry after a re-announce that could not start (no contacts yet).
const KEEP_RETRY: Duration = Duration::from_secs(30);

/// What a running command reports to its caller.
pub(crate) enum Update {
    Peers(Vec<SocketAddr>),
    Samples(Sample),
    Item(Item),
    Finished(QueryOutcome),
}

/// Info-hashes sampled from one node by [`DhtHandle::sample_infohashes`] (BEP 51).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sample {
    /// The node that sent them.
    pub from: SocketAddr,
    /// The sampled info-hashes.
    pub samples: Vec<Id>,
    /// How many info-hashes that node says it stores.
    pub num: Option<i64>,
}

/// A BEP 44 item found by [`DhtHandle::get_item`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Item {
    /// The node that sent it.
    pub from: SocketAddr,
    /// The bencoded value.
    pub value: Vec<u8>,
    /// Mutable items: the public key.
    pub key: Option<[u8; 32]>,
    /// Mutable items: the signature.
    pub signature: Option<[u8; 64]>,
    /// Mutable items: the sequence number.
    pub seq: Option<i64>,
    /// Whether it was checked against the target (and its signature, for mutable items: the
    /// handle's node always checks).
    pub verified: bool,
}

/// The items and outcome of a [`DhtHandle::get_item`] lookup.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ItemLookup {
    /// Every item found, in arrival order (one per answering node that had it).
    pub items: Vec<Item>,
    /// The lookup's result.
    pub outcome: QueryOutcome,
}

impl ItemLookup {
    /// The verified item with the highest sequence number (immutable items have none: the
    /// first verified one).
    pub fn best(&self) -> Option<&Item> {
        self.items
            .iter()
            .filter(|i| i.verified)
            .fold(None, |best: Option<&Item>, i| match best {
                Some(b) if b.seq >= i.seq => Some(b),
                _ => Some(i),
            })
    }
}

/// The samples and outcome of a [`DhtHandle::sample_infohashes`] lookup.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SampleLookup {
    /// Each answering node's sample, in arrival order.
    pub samples: Vec<Sample>,
    /// The lookup's result.
    pub outcome: QueryOutcome,
}

/// An announce kept alive.
struct Keep {
    info_hash: Id,
    port: Option<u16>,
    interval: Duration,
    next: std::time::Instant,
    running: Option<QueryId>,
    outcomes: Tx<QueryOutcome>,
}

/// The node thread's state: the adapter plus who waits for which query.
struct Driver {
    dht: Dht,
    queries: HashMap<QueryId, Tx<Update>>,
    subscribers: Vec<Sender<Event>>,
    keeps: Vec<Keep>,
}

impl Driver {
    fn route(&mut self, event: Event) {
        if !self.subscribers.is_empty() {
            self.subscribers.retain(|s| s.send(event.clone()).is_ok());
        }
        let (query, update) = match event {
            Event::PeersFound { query, peers } => (query, Update::Peers(peers)),
            Event::SamplesFound {
                query,
                from,
                samples,
                num,
                ..
            } => (query, Update::Samples(Sample { from, samples, num })),
            Event::ItemFound {
                query,
                from,
                value,
                key,
                signature,
                seq,
                verified,
            } => (
                query,
                Update::Item(Item {
                    from,
                    value,
                    key,
                    signature,
                    seq,
                    verified,
                }),
            ),
            Event::QueryFinished { query, outcome } => {
                if let Some(keep) = self.keeps.iter_mut().find(|k| k.running == Some(query)) {
                    keep.running = None;
                    let _ = keep.outcomes.send(outcome);
                } else if let Some(tx) = self.queries.remove(&query) {
                    let _ = tx.send(Update::Finished(outcome));
                }
                return;
            }
            _ => return,
        };
        let gone = self
            .queries
            .get(&query)
            .is_some_and(|tx| tx.send(update).is_err());
        if gone {
            // The caller dropped its stream: stop the lookup.
            self.queries.remove(&query);
            let _ = self.dht.cancel(query);
        }
    }

    /// Starts the re-announces that are due; drops the keeps whose keeper is gone. Returns
    /// the time until the next one is due.
    fn tick_keeps(&mut self) -> Option<Duration> {
        let now = std::time::Instant::now();
        let mut cancel = Vec::new();
        self.keeps.retain(|k| {
            let alive = !k.outcomes.is_abandoned();
            if !alive {
                cancel.extend(k.running);
            }
            alive
        });
        for q in cancel {
            let _ = self.dht.cancel(q);
        }
        for i in 0..self.keeps.len() {
            let Some(k) = self.keeps.get(i) else { break };
            if k.running.is_some() || k.next > now {
                continue;
            }
            let (info_hash, port, interval) = (k.info_hash, k.port, k.interval);
            let started = self.dht.announce_peer(info_hash, port);
            if let Some(k) = self.keeps.get_mut(i) {
                match started {
                    Ok(q) => {
                        k.running = Some(q);
                        k.next = now + interval;
                    }
                    Err(e) => {
                        log::debug!("re-announce of {info_hash} deferred: {e}");
                        k.next = now + interval.min(KEEP_RETRY);
                    }
                }
            }
        }
        self.keeps
            .iter()
            .filter(|k| k.running.is_none())
            .map(|k| k.next.saturating_duration_since(now))
            .min()
    }

    fn run(mut self, commands: &Receiver<Command>) -> Result<Dht, Error> {
        loop {
            loop {
                match commands.try_recv() {
                    Ok(Command::Run(job)) => job(&mut self),
                    Ok(Command::Stop) | Err(TryRecvError::Disconnected) => return Ok(self.dht),
                    Err(TryRecvError::Empty) => break,
                }
            }
            while let Some(event) = self.dht.poll_event() {
                self.route(event);
            }
            let wait = self.tick_keeps();
            self.dht.step(wait)?;
            while let Some(event) = self.dht.poll_event() {
                self.route(event);
            }
        }
    }
}

/// The command side shared by the blocking and the async handle: every operation, as a
/// future that any executor (or [`block_on`]) can drive.
#[derive(Clone)]
pub(crate) struct Client {
    commands: Sender<Command>,
    waker: DhtWaker,
}

impl core::fmt::Debug for Client {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Client")
    }
}

impl Client {
    fn send(&self, job: Job) -> Result<(), Error> {
        self.commands
            .send(Command::Run(job))
            .map_err(|_| Error::Stopped)?;
        self.waker.wake().map_err(Error::Io)
    }

    async fn with_driver<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Driver) -> R + Send + 'static,
    ) -> Result<R, Error> {
        let (tx, rx) = chan::channel();
        self.send(Box::new(move |d: &mut Driver| {
            let _ = tx.send(f(d));
        }))?;
        rx.recv().await.ok_or(Error::Stopped)
    }

    pub(crate) async fn with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Dht) -> R + Send + 'static,
    ) -> Result<R, Error> {
        self.with_driver(move |d| f(&mut d.dht)).await
    }

    /// Starts a command on the node thread and subscribes to its updates.
    async fn start(
        &self,
        f: impl FnOnce(&mut Dht) -> Result<QueryId, CommandError> + Send + 'static,
    ) -> Result<Rx<Update>, Error> {
        let (tx, rx) = chan::channel();
        self.with_driver(move |d| {
            let q = f(&mut d.dht)?;
            d.queries.insert(q, tx);
            Ok::<_, CommandError>(())
        })
        .await??;
        Ok(rx)
    }

    /// Waits for the end of a command, passing what it finds on the way to `each`.
    async fn finish(
        updates: Rx<Update>,
        mut each: impl FnMut(Update),
    ) -> Result<QueryOutcome, Error> {
        loop {
            match updates.recv().await {
                Some(Update::Finished(outcome)) => return Ok(outcome),
                Some(other) => each(other),
                None => return Err(Error::Stopped),
            }
        }
    }

    pub(crate) async fn bootstrap(&self, seeds: Vec<SocketAddr>) -> Result<usize, Error> {
        let rx = self.start(move |dht| dht.bootstrap(seeds)).await?;
        let outcome = Self::finish(rx, drop).await?;
        let table_len = self.with(|dht| dht.node().table_len()).await?;
        if table_len == 0 {
            return Err(Error::Query(outcome.status));
        }
        Ok(table_len)
    }

    pub(crate) async fn get_peers(&self, info_hash: Id) -> Result<Rx<Update>, Error> {
        self.start(move |dht| dht.get_peers(info_hash)).await
    }

    pub(crate) async fn announce(
        &self,
        info_hash: Id,
        port: Option<u16>,
    ) -> Result<QueryOutcome, Error> {
        let rx = self
            .start(move |dht| dht.announce_peer(info_hash, port))
            .await?;
        Self::finish(rx, drop).await
    }

    pub(crate) async fn find_node(&self, target: Id) -> Result<QueryOutcome, Error> {
        let rx = self.start(move |dht| dht.find_node(target)).await?;
        Self::finish(rx, drop).await
    }

    pub(crate) async fn ping(&self, addr: SocketAddr) -> Result<Pong, Error> {
        let rx = self.start(move |dht| dht.ping(addr)).await?;
        let outcome = Self::finish(rx, drop).await?;
        match (outcome.status, outcome.responder) {
            (QueryStatus::Completed, Some(id)) => Ok(Pong {
                id,
                rtt: outcome.metrics.duration,
            }),
            (QueryStatus::Completed, None) => Err(Error::Query(QueryStatus::TimedOut)),
            (status, _) => Err(Error::Query(status)),
        }
    }

    pub(crate) async fn put_item(&self, item: PutItem) -> Result<QueryOutcome, Error> {
        let rx = self
            .start(move |dht| dht.command(|n, now| n.put_item(now, item)))
            .await?;
        Self::finish(rx, drop).await
    }

    pub(crate) async fn get_item(&self, target: Id, salt: Vec<u8>) -> Result<ItemLookup, Error> {
        let rx = self
            .start(move |dht| dht.command(|n, now| n.get_item(now, target, &salt)))
            .await?;
        let mut items = Vec::new();
        let outcome = Self::finish(rx, |u| {
            if let Update::Item(i) = u {
                items.push(i);
            }
        })
        .await?;
        Ok(ItemLookup { items, outcome })
    }

    pub(crate) async fn sample_infohashes(&self, target: Id) -> Result<SampleLookup, Error> {
        let rx = self
            .start(move |dht| dht.command(|n, now| n.sample_infohashes(now, target)))
            .await?;
        let mut samples = Vec::new();
        let outcome = Self::finish(rx, |u| {
            if let Update::Samples(s) = u {
                samples.push(s);
            }
        })
        .await?;
        Ok(SampleLookup { samples, outcome })
    }

    pub(crate) async fn scrape(&self, info_hash: Id) -> Result<Scrape, Error> {
        let rx = self.get_peers(info_hash).await?;
        let outcome = Self::finish(rx, drop).await?;
        let mut scrape = Scrape::new(info_hash);
        let args = scrape_args(&info_hash);
        let mut asks = Vec::new();
        for node in outcome.closest.iter().take(SCRAPE_NODES) {
            let (addr, args) = (node.addr, args.clone());
            let started = self
                .start(move |dht| {
                    dht.command(|n, now| n.send_query(now, addr, b"get_peers", &args))
                })
                .await;
            match started {
                Ok(rx) => asks.push(rx),
                Err(Error::Command(e)) => log::debug!("scrape of {addr} not sent: {e}"),
                Err(e) => return Err(e),
            }
        }
        scrape.asked = asks.len();
        // The asks run concurrently on the node; each ends by its answer or its timeout.
        for rx in asks {
            let outcome = Self::finish(rx, drop).await?;
            if let Some(r) = outcome.response {
                scrape.merge(&r);
            }
        }
        Ok(scrape)
    }

    pub(crate) async fn keep_announcing(
        &self,
        info_hash: Id,
        port: Option<u16>,
        interval: Duration,
    ) -> Result<Rx<QueryOutcome>, Error> {
        if port == Some(0) {
            return Err(Error::Command(CommandError::InvalidPort));
        }
        let interval = interval.max(Duration::from_secs(1));
        let (tx, rx) = chan::channel();
        self.with_driver(move |d| {
            d.keeps.push(Keep {
                info_hash,
                port,
                interval,
                next: std::time::Instant::now(),
                running: None,
                outcomes: tx,
            });
        })
        .await?;
        Ok(rx)
    }

    pub(crate) async fn info(&self) -> Result<Info, Error> {
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
        .await
    }

    pub(crate) async fn subscribe(&self) -> Result<Receiver<Event>, Error> {
        let (tx, rx) = mpsc::channel();
        self.with_driver(move |d| d.subscribers.push(tx)).await?;
        Ok(rx)
    }
}

/// A [`Dht`] running on its own thread, for programs that want answers, not a run loop.
///
/// Every method blocks until its answer is known (the node's own timeouts bound that) and may
/// be called from any thread: the handle is `Send + Sync`. Dropping the handle stops the node.
/// For async code, [`DhtHandle::as_async`] gives the same methods as futures.
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
    pub(crate) client: Client,
    thread: Option<JoinHandle<Result<Dht, Error>>>,
    /// Closed when the node thread ends (awaitable shutdown).
    done: Option<Rx<()>>,
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
        let driver = Driver {
            dht,
            queries: HashMap::new(),
            subscribers: Vec::new(),
            keeps: Vec::new(),
        };
        let (done_tx, done) = chan::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("dht".into())
            .spawn(move || {
                let result = driver.run(&rx);
                if let Err(e) = &result {
                    log::error!("the DHT node stopped: {e}");
                }
                drop(done_tx);
                result
            })?;
        Ok(Self {
            client: Client { commands, waker },
            thread: Some(thread),
            done: Some(done),
            id,
            local_addrs,
        })
    }

    /// The same node with async methods, for tokio or any other executor.
    pub fn as_async(self) -> crate::AsyncDhtHandle {
        crate::AsyncDhtHandle::from_blocking(self)
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
    /// here (`handle.with(|dht| dht.node().peer_store().len())`).
    ///
    /// # Errors
    ///
    /// [`Error::Stopped`] if the node's thread has ended.
    pub fn with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Dht) -> R + Send + 'static,
    ) -> Result<R, Error> {
        block_on(self.client.with(f))
    }

    /// Joins the DHT through `seeds` and waits for the bootstrap lookup to end. Returns the
    /// routing-table size.
    ///
    /// # Errors
    ///
    /// [`Error::Command`] when no seed is usable; [`Error::Query`] when no seed answered (the
    /// table is still empty; the node keeps retrying with back-off); [`Error::Stopped`].
    pub fn bootstrap(&self, seeds: &[SocketAddr]) -> Result<usize, Error> {
        block_on(self.client.bootstrap(seeds.to_vec()))
    }

    /// Looks up peers for `info_hash`. The returned iterator yields each distinct peer as soon
    /// as it is found and ends when the lookup does; [`PeerStream::outcome`] then holds the
    /// lookup's result. Dropping the stream early cancels the lookup.
    ///
    /// # Errors
    ///
    /// [`Error::Command`] (e.g. no contacts: bootstrap first); [`Error::Stopped`].
    pub fn get_peers(&self, info_hash: Id) -> Result<PeerStream, Error> {
        let updates = block_on(self.client.get_peers(info_hash))?;
        Ok(PeerStream::new(updates))
    }

    /// Looks up `info_hash` and announces this node as a peer on `port` (`None`: the DHT
    /// socket's port as the receivers see it, BEP 5 `implied_port`) to the closest nodes.
    /// [`QueryOutcome::announced`] counts the nodes that accepted.
    ///
    /// # Errors
    ///
    /// [`Error::Command`] (no contacts, port 0); [`Error::Stopped`].
    pub fn announce(&self, info_hash: Id, port: Option<u16>) -> Result<QueryOutcome, Error> {
        block_on(self.client.announce(info_hash, port))
    }

    /// Announces `info_hash` now and again every `interval` (at least a second;
    /// [`REANNOUNCE_INTERVAL`] is a good choice: nodes forget announces after about 30
    /// minutes) until the returned [`AnnounceKeeper`] is dropped. Each round's outcome is
    /// available from the keeper. A round that cannot start (no contacts yet) is retried
    /// within 30 seconds.
    ///
    /// # Errors
    ///
    /// [`Error::Command`] for port 0; [`Error::Stopped`].
    pub fn keep_announcing(
        &self,
        info_hash: Id,
        port: Option<u16>,
        interval: Duration,
    ) -> Result<AnnounceKeeper, Error> {
        let outcomes = block_on(self.client.keep_announcing(info_hash, port, interval))?;
        Ok(AnnounceKeeper::new(info_hash, outcomes))
    }

    /// Finds the nodes closest to `target` ([`QueryOutcome::closest`]).
    ///
    /// # Errors
    ///
    /// [`Error::Command`] (no contacts); [`Error::Stopped`].
    pub fn find_node(&self, target: Id) -> Result<QueryOutcome, Error> {
        block_on(self.client.find_node(target))
    }

    /// Pings `addr`.
    ///
    /// # Errors
    ///
    /// [`Error::Query`] with [`QueryStatus::TimedOut`] when it does not answer, or
    /// [`QueryStatus::Error`] when it answers with a KRPC error; [`Error::Command`] when the
    /// address is refused by the address policy; [`Error::Stopped`].
    pub fn ping(&self, addr: SocketAddr) -> Result<Pong, Error> {
        block_on(self.client.ping(addr))
    }

    /// Stores a BEP 44 item on the nodes closest to its target ([`QueryOutcome::announced`]
    /// counts the nodes that accepted it). Sign mutable items with
    /// [`Keypair::sign`](crate::Keypair::sign).
    ///
    /// # Errors
    ///
    /// [`Error::Command`] (an invalid item, no contacts); [`Error::Stopped`].
    pub fn put_item(&self, item: PutItem) -> Result<QueryOutcome, Error> {
        block_on(self.client.put_item(item))
    }

    /// Looks up the BEP 44 item stored under `target` (`salt`: a mutable item's salt, empty
    /// for none). Items that do not match the target, or whose signature fails, are dropped
    /// by the node; [`ItemLookup::best`] picks the newest.
    ///
    /// # Errors
    ///
    /// [`Error::Command`] (salt over 64 bytes, no contacts); [`Error::Stopped`].
    pub fn get_item(&self, target: Id, salt: &[u8]) -> Result<ItemLookup, Error> {
        block_on(self.client.get_item(target, salt.to_vec()))
    }

    /// Crawls info-hashes (BEP 51) from the nodes around `target`.
    ///
    /// # Errors
    ///
    /// [`Error::Command`] (no contacts); [`Error::Stopped`].
    pub fn sample_infohashes(&self, target: Id) -> Result<SampleLookup, Error> {
        block_on(self.client.sample_infohashes(target))
    }

    /// Estimates a torrent's seeds and downloaders (BEP 33) from the bloom filters of the
    /// nodes closest to `info_hash`.
    ///
    /// # Errors
    ///
    /// [`Error::Command`] (no contacts); [`Error::Stopped`].
    pub fn scrape(&self, info_hash: Id) -> Result<Scrape, Error> {
        block_on(self.client.scrape(info_hash))
    }

    /// A snapshot of the node.
    ///
    /// # Errors
    ///
    /// [`Error::Stopped`].
    pub fn info(&self) -> Result<Info, Error> {
        block_on(self.client.info())
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
        block_on(self.client.subscribe())
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

    fn request_stop(&self) {
        let _ = self.client.commands.send(Command::Stop);
        let _ = self.client.waker.wake();
    }

    fn stop(&mut self) -> Result<Dht, Error> {
        self.request_stop();
        self.join()
    }

    fn join(&mut self) -> Result<Dht, Error> {
        match self.thread.take() {
            Some(thread) => thread.join().unwrap_or(Err(Error::Stopped)),
            None => Err(Error::Stopped),
        }
    }

    /// Asks the node to stop and waits for its thread without blocking an executor thread.
    pub(crate) async fn shutdown_async(mut self) -> Result<Dht, Error> {
        self.request_stop();
        if let Some(done) = self.done.take() {
            // Ends when the thread drops its sender, just before it returns.
            let _ = done.recv().await;
        }
        self.join()
    }
}

impl Drop for DhtHandle {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.stop();
        }
    }
}

/// Keeps an announce alive (see [`DhtHandle::keep_announcing`]); dropping it stops the
/// re-announces.
#[derive(Debug)]
pub struct AnnounceKeeper {
    info_hash: Id,
    outcomes: Rx<QueryOutcome>,
}

impl AnnounceKeeper {
    pub(crate) fn new(info_hash: Id, outcomes: Rx<QueryOutcome>) -> Self {
        Self {
            info_hash,
            outcomes,
        }
    }

    /// The info-hash kept announced.
    pub fn info_hash(&self) -> Id {
        self.info_hash
    }

    /// The outcome of the next announce round to end, waiting for it (`None`: the node has
    /// stopped).
    pub fn next_round(&self) -> Option<QueryOutcome> {
        self.outcomes.recv_blocking()
    }

    /// The outcome of the next round, as a future.
    pub async fn next_round_async(&self) -> Option<QueryOutcome> {
        self.outcomes.recv().await
    }

    /// A round that has ended since the last call, without waiting.
    pub fn try_round(&self) -> Option<QueryOutcome> {
        self.outcomes.try_recv().ok().flatten()
    }
}

/// Peers of a [`DhtHandle::get_peers`] lookup, as they are found.
#[derive(Debug)]
pub struct PeerStream {
    updates: Rx<Update>,
    pending: VecDeque<SocketAddr>,
    outcome: Option<QueryOutcome>,
    stopped: bool,
}

impl PeerStream {
    pub(crate) fn new(updates: Rx<Update>) -> Self {
        Self {
            updates,
            pending: VecDeque::new(),
            outcome: None,
            stopped: false,
        }
    }

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
        match block_on_until(self.next_async(), deadline) {
            None => Err(RecvTimeoutError::Timeout),
            Some(None) if self.stopped => Err(RecvTimeoutError::Disconnected),
            Some(next) => Ok(next),
        }
    }

    /// The next peer, as a future (`None`: the lookup has ended, or the node stopped).
    pub(crate) async fn next_async(&mut self) -> Option<SocketAddr> {
        loop {
            if let Some(p) = self.pending.pop_front() {
                return Some(p);
            }
            if self.outcome.is_some() || self.stopped {
                return None;
            }
            match self.updates.recv().await {
                Some(Update::Peers(p)) => self.pending.extend(p),
                Some(Update::Finished(o)) => self.outcome = Some(o),
                Some(_) => {}
                None => self.stopped = true,
            }
        }
    }
}

impl Iterator for PeerStream {
    type Item = SocketAddr;

    fn next(&mut self) -> Option<SocketAddr> {
        block_on(self.next_async())
    }
}
