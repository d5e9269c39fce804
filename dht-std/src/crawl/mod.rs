//! The crawler application: [`Crawl`] runs [`dht_proto::crawl::Crawler`] on real sockets,
//! fetches the metadata of what it finds and writes everything to a [`Store`].
//!
//! Three threads, joined by channels:
//!
//! - the network thread: one UDP socket per crawler id (the crawler's protocol logic is all in
//!   the core), passing on each [`CrawlEvent`];
//! - the fetch thread: a [`Fetcher`](crate::metadata::Fetcher) with at most
//!   [`CrawlOptions::fetch_concurrency`] fetches at once, each trying the peers the crawler's
//!   `get_peers` lookup finds, several at a time;
//! - the caller's thread ([`Crawl::run`]): writes every sighting and every fetched torrent
//!   through a [`Batcher`] (one transaction at most a second old), claims queued info-hashes
//!   from the store's fetch queue and hands them to the fetch thread.
//!
//! Nothing is lost: a stop ([`Stopper::stop`], on SIGINT/SIGTERM in `dht crawl`) commits the
//! last batch and gives unfinished claims back; a killed process loses at most the batch being
//! built, and its claims come back to it when it restarts with the same ids (the claim owner is
//! the first id), or to other crawlers when their leases end. Info-hashes with metadata are
//! never queued, so never fetched twice; with PostgreSQL, crawlers sharing the database claim
//! with `SKIP LOCKED` and so never fetch the same info-hash at once.
//!
//! The ids and the routing contacts are kept in a state file ([`CrawlState`]), so a restarted
//! crawler takes its old places in other nodes' routing tables.

mod fetch;
mod net;
mod state;

use core::fmt;
use core::net::{IpAddr, SocketAddr};
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use dht_proto::crawl::{CrawlEvent, Crawler, CrawlerConfig, HowFound};
use dht_proto::wire::compact::NodeInfo;
use dht_proto::{Config, Id};
use rand_core::RngCore;

use self::fetch::{Action, FetchThread, Fetches};
use self::net::{NetStats, NetThread};
pub use self::state::{CrawlState, MAX_IDS, lock as lock_state};
use crate::metadata::{FetchOptions, InfoDict};
use crate::store::{
    Batcher, BatcherConfig, FileEntry, Shard, Sighting, Source, Store, StoreError, TorrentRecord,
};

/// Crawler ids without `--ids` and without a state file.
pub const DEFAULT_IDS: usize = 8;
/// How long a claim is ours before other crawlers may take it.
const LEASE: Duration = Duration::from_secs(5 * 60);
/// A fetch (lookup included) running longer is given up (and retried later).
const FETCH_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest wait between two claims while fetch slots are free.
const CLAIM_EVERY: Duration = Duration::from_secs(1);
/// Shortest wait between two claims.
const CLAIM_MIN: Duration = Duration::from_millis(50);
/// How often the state file is rewritten while crawling.
const SAVE_EVERY: Duration = Duration::from_secs(5 * 60);
/// Messages from the network and fetch threads waiting to be handled; past it they wait.
const CHANNEL: usize = 16_384;
/// Unclaimed info-hashes whose peers are remembered (at most 32 peers each: about 16 MB).
const MAX_FOUND: usize = 16_384;
/// Tries of the last commit at a stop.
const FINAL_TRIES: u32 = 3;
/// The wait before a failed commit is tried again.
const COMMIT_BACKOFF: Duration = Duration::from_secs(1);
/// The fetch queue's length is counted at most this often (a count is a scan on PostgreSQL).
const QUEUE_COUNT_EVERY: Duration = Duration::from_secs(5);

/// Settings of a [`Crawl`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CrawlOptions {
    /// How many ids (one UDP socket each); `None`: as many as the state file holds, or
    /// [`DEFAULT_IDS`]. At most [`MAX_IDS`].
    pub ids: Option<usize>,
    /// Where the sockets bind: the first at this port, the next ones above it; port 0 gives each
    /// an ephemeral port.
    pub bind: SocketAddr,
    /// Contacts to join through (besides those of the state file).
    pub bootstrap: Vec<SocketAddr>,
    /// Accept loopback and private contacts from anywhere (otherwise only when bound to such an
    /// address or given such contacts).
    pub allow_local: bool,
    /// The crawler's queries per second, all ids together.
    pub rate: u32,
    /// Metadata fetches at once.
    pub fetch_concurrency: usize,
    /// How long a failed fetch waits before it may be claimed again (each claim looks the
    /// peers up anew); after [`Limits::max_attempts`](crate::store::Limits::max_attempts) failures
    /// the info-hash leaves the queue.
    pub retry_after: Duration,
    /// The slice of the key space this crawler's ids sit in and whose queue it claims.
    pub shard: Shard,
    /// The state file (ids and contacts); `None`: fresh ids every run.
    pub state: Option<PathBuf>,
    /// Stop after this long (`None`: at [`Stopper::stop`] only).
    pub duration: Option<Duration>,
    /// How often [`Crawl::run`] reports a [`Status`].
    pub status_interval: Duration,
    /// Entropy for ids and the core's keys.
    pub seed: [u8; 32],
    /// When writes commit.
    pub batch: BatcherConfig,
    /// The fetcher's limits.
    pub fetch: FetchOptions,
}

impl CrawlOptions {
    /// Defaults: [`DEFAULT_IDS`] ids on ephemeral ports of `0.0.0.0`, 500 queries/s, 64 fetches
    /// at once, failed fetches retried after 10 minutes, the whole key space, no state file, a
    /// status every 5 s.
    pub fn new(seed: [u8; 32]) -> Self {
        Self {
            ids: None,
            bind: SocketAddr::from(([0, 0, 0, 0], 0)),
            bootstrap: Vec::new(),
            allow_local: false,
            rate: 500,
            fetch_concurrency: 64,
            retry_after: Duration::from_secs(10 * 60),
            shard: Shard::ALL,
            state: None,
            duration: None,
            status_interval: Duration::from_secs(5),
            seed,
            batch: BatcherConfig::default(),
            fetch: FetchOptions::default(),
        }
    }
}

/// Why a crawl could not start or ended badly.
#[derive(Debug)]
#[non_exhaustive]
pub enum CrawlError {
    /// The state file cannot be read, written or locked.
    State(PathBuf, io::Error),
    /// A socket cannot be bound.
    Bind(io::Error),
    /// A thread or poller cannot be created, or a thread died.
    Io(io::Error),
    /// The database failed.
    Store(StoreError),
}

impl fmt::Display for CrawlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::State(path, e) => write!(f, "state file {}: {e}", path.display()),
            Self::Bind(e) => write!(f, "cannot bind the crawler's sockets: {e}"),
            Self::Io(e) => write!(f, "{e}"),
            Self::Store(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for CrawlError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::State(_, e) | Self::Bind(e) | Self::Io(e) => Some(e),
            Self::Store(e) => Some(e),
        }
    }
}

impl From<StoreError> for CrawlError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// Info-hashes by how they were found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BySource {
    /// In incoming `get_peers` queries.
    pub get_peers: u64,
    /// In incoming `announce_peer` queries.
    pub announce_peer: u64,
    /// In BEP 51 samples.
    pub sample: u64,
}

impl BySource {
    /// All sources together.
    pub fn total(&self) -> u64 {
        self.get_peers
            .saturating_add(self.announce_peer)
            .saturating_add(self.sample)
    }

    fn minus(&self, earlier: &Self) -> Self {
        Self {
            get_peers: self.get_peers.saturating_sub(earlier.get_peers),
            announce_peer: self.announce_peer.saturating_sub(earlier.announce_peer),
            sample: self.sample.saturating_sub(earlier.sample),
        }
    }
}

/// What a crawl has done so far.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Status {
    /// Time since the start.
    pub uptime: Duration,
    /// Crawler ids (sockets).
    pub ids: usize,
    /// Contacts in the ids' routing tables together.
    pub contacts: usize,
    /// Queries sent so far.
    pub queries_sent: u64,
    /// Queries sent per second since the previous status.
    pub queries_per_sec: f64,
    /// Queries held back by the send budget so far.
    pub throttled: u64,
    /// New info-hashes found since the start.
    pub found: BySource,
    /// New info-hashes found in the last minute (or since the start, if sooner).
    pub found_last_minute: BySource,
    /// `get_peers` lookups running and waiting.
    pub lookups_running: usize,
    /// Lookups waiting for a slot.
    pub lookups_queued: usize,
    /// Metadata fetched and stored since the start.
    pub fetched: u64,
    /// Metadata fetched in the last minute (or since the start, if sooner).
    pub fetched_last_minute: u64,
    /// Fetches that failed (every peer failed, no peer, or too slow).
    pub fetch_failed: u64,
    /// Fetches running.
    pub fetching: usize,
    /// Info-hashes in the database's fetch queue (all crawlers'), if it could be read.
    pub queue: Option<u64>,
    /// Transactions committed.
    pub commits: u64,
    /// Writes waiting for the next commit.
    pub pending_writes: usize,
    /// Writes dropped while the database failed.
    pub dropped_writes: u64,
    /// Database errors so far.
    pub store_errors: u64,
}

/// Messages to the caller's thread.
#[derive(Debug)]
pub(crate) enum Msg {
    Event(CrawlEvent),
    Net(NetStats),
    Contacts(Vec<NodeInfo>),
    LookupRefused(Id),
    Fetched {
        info_hash: Id,
        result: Result<Vec<u8>, String>,
    },
    Wake,
}

/// Stops a [`Crawl`] from another thread (a signal handler's thread, for example).
#[derive(Clone, Debug)]
pub struct Stopper {
    flag: Arc<AtomicBool>,
    wake: SyncSender<Msg>,
}

impl Stopper {
    /// Asks the crawl to commit what it has and end; [`Crawl::run`] then returns.
    pub fn stop(&self) {
        self.flag.store(true, Ordering::Relaxed);
        let _ = self.wake.try_send(Msg::Wake);
    }
}

/// A running crawler: bound sockets, threads started. [`Crawl::run`] handles what they find.
#[derive(Debug)]
pub struct Crawl<S: Store> {
    batcher: Batcher<S>,
    options: CrawlOptions,
    ids: Vec<Id>,
    local_addrs: Vec<SocketAddr>,
    owner: String,
    net: NetThread,
    fetcher: FetchThread,
    rx: Receiver<Msg>,
    stopper: Stopper,
    contacts: Vec<NodeInfo>,
    _lock: Option<File>,
    /// Claims given back at the start (left over by a killed run).
    resumed: u64,
}

/// Current Unix time in seconds.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `n` ids spread evenly over `shard`'s slice of the key space (the first 32 bits), the other
/// bits random.
pub fn shard_ids(n: usize, shard: Shard, rng: &mut impl RngCore) -> Vec<Id> {
    let n32 = u32::try_from(n).unwrap_or(u32::MAX);
    let whole = dht_proto::crawl::spread_ids(n32, rng);
    let start = (u64::from(shard.index()) << 32) / u64::from(shard.count());
    let end = (u64::from(shard.index() + 1) << 32) / u64::from(shard.count());
    whole
        .into_iter()
        .map(|id| {
            let mut bytes = id.to_bytes();
            let [a, b, c, d, ..] = bytes;
            let prefix = u64::from(u32::from_be_bytes([a, b, c, d]));
            let scaled = start + ((prefix * (end - start)) >> 32);
            let p = u32::try_from(scaled).unwrap_or(u32::MAX).to_be_bytes();
            for (byte, p) in bytes.iter_mut().zip(p) {
                *byte = p;
            }
            Id::new(bytes)
        })
        .collect()
}

/// The ids to run: the saved ones (those in the shard, up to `want`), completed with fresh ones
/// spread over the shard.
fn choose_ids(saved: &[Id], want: Option<usize>, shard: Shard, seed: [u8; 32]) -> Vec<Id> {
    let mut ids: Vec<Id> = saved
        .iter()
        .copied()
        .filter(|id| shard.contains(id))
        .collect();
    let want = want
        .unwrap_or(if ids.is_empty() {
            DEFAULT_IDS
        } else {
            ids.len()
        })
        .clamp(1, MAX_IDS);
    ids.truncate(want);
    if ids.len() < want {
        let mut rng = SeedRng::new(seed);
        let fresh = shard_ids(want, shard, &mut rng);
        ids.extend(fresh.into_iter().skip(ids.len()));
    }
    ids
}

/// Random bits for fresh ids from the caller's seed (splitmix64 over the seed's words: ids need
/// to be spread and unpredictable to others, which the seed already is).
#[derive(Debug)]
struct SeedRng(u64);

impl SeedRng {
    fn new(seed: [u8; 32]) -> Self {
        let mut x = 0u64;
        for chunk in seed.chunks(8) {
            let mut w = [0; 8];
            w.get_mut(..chunk.len())
                .unwrap_or_default()
                .copy_from_slice(chunk);
            x = x.rotate_left(17) ^ u64::from_le_bytes(w);
        }
        Self(x)
    }
}

impl RngCore for SeedRng {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(bytes.get(..chunk.len()).unwrap_or_default());
        }
    }
}

/// Widens the nodes' address policy for a loopback or private address the user named.
fn widen(config: &mut Config, ip: IpAddr) {
    if ip.is_loopback() {
        config.address_policy.allow_loopback = true;
        // Every node of a loopback swarm has the same kind of address.
        config.one_node_per_ip = false;
    } else if crate::adapter::is_private(ip) {
        config.address_policy.allow_private = true;
    }
}

impl<S: Store> Crawl<S> {
    /// Locks and reads the state file, binds one socket per id, starts the crawler and the
    /// fetcher, and gives back the claims a killed run of the same ids left.
    ///
    /// # Errors
    /// [`CrawlError::State`], [`CrawlError::Bind`], [`CrawlError::Io`], or
    /// [`CrawlError::Store`] when the claims cannot be given back.
    pub fn start(store: S, options: CrawlOptions) -> Result<Self, CrawlError> {
        let (lock, saved) = match &options.state {
            Some(path) => {
                let lock = lock_state(path).map_err(|e| CrawlError::State(path.clone(), e))?;
                let saved = match CrawlState::load(path) {
                    Ok(s) => s.unwrap_or_default(),
                    Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                        log::warn!(
                            "ignoring the state file {} ({e}): starting with new ids",
                            path.display()
                        );
                        CrawlState::default()
                    }
                    Err(e) => return Err(CrawlError::State(path.clone(), e)),
                };
                (Some(lock), saved)
            }
            None => (None, CrawlState::default()),
        };
        let ids = choose_ids(&saved.ids, options.ids, options.shard, options.seed);
        let sockets = net::bind_sockets(options.bind, ids.len()).map_err(CrawlError::Bind)?;
        let local_addrs = sockets
            .iter()
            .map(mio::net::UdpSocket::local_addr)
            .collect::<io::Result<Vec<_>>>()
            .map_err(CrawlError::Bind)?;

        let mut config = CrawlerConfig::new(options.seed);
        widen(&mut config.node, options.bind.ip());
        for addr in options
            .bootstrap
            .iter()
            .chain(saved.nodes.iter().map(|n| &n.addr))
        {
            widen(&mut config.node, addr.ip());
        }
        if options.allow_local {
            config.node.address_policy = dht_proto::AddressPolicy::ALLOW_ALL;
            config.node.one_node_per_ip = false;
        }
        config.budget.rate = options.rate.max(1);
        let stride = config.node.limits.max_datagram.saturating_add(1);
        let start = dht_proto::Instant::ZERO;
        let mut crawler = Crawler::new(config, &ids, start);
        let mut contacts: Vec<SocketAddr> = options.bootstrap.clone();
        contacts.extend(saved.nodes.iter().map(|n| n.addr));
        crawler.bootstrap(start, &contacts);

        let mut batcher = Batcher::new(store, options.batch);
        let owner = ids.first().map(ToString::to_string).unwrap_or_default();
        let resumed = batcher.store().release_owner(&owner)?;
        if resumed > 0 {
            log::info!("resuming {resumed} fetches left unfinished by the last run");
        }

        let (tx, rx) = mpsc::sync_channel(CHANNEL);
        let net = NetThread::spawn(crawler, sockets, stride, tx.clone()).map_err(CrawlError::Io)?;
        let fetcher =
            FetchThread::spawn(options.fetch.clone(), tx.clone()).map_err(CrawlError::Io)?;
        let stopper = Stopper {
            flag: Arc::new(AtomicBool::new(false)),
            wake: tx,
        };
        let crawl = Self {
            batcher,
            options,
            ids,
            local_addrs,
            owner,
            net,
            fetcher,
            rx,
            stopper,
            contacts: saved.nodes,
            _lock: lock,
            resumed,
        };
        crawl.save_state();
        Ok(crawl)
    }

    /// The crawler's ids, in socket order.
    pub fn ids(&self) -> &[Id] {
        &self.ids
    }

    /// The sockets' addresses, in id order.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// Unfinished fetches of a previous run given back to the queue at the start.
    pub fn resumed(&self) -> u64 {
        self.resumed
    }

    /// A handle that stops [`Crawl::run`].
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    fn save_state(&self) {
        let Some(path) = &self.options.state else {
            return;
        };
        let state = CrawlState {
            ids: self.ids.clone(),
            nodes: self.contacts.clone(),
        };
        if let Err(e) = state.save(path) {
            log::warn!("cannot write the state file {}: {e}", path.display());
        }
    }

    /// Crawls until stopped or [`CrawlOptions::duration`] is over, calling `on_status` every
    /// [`CrawlOptions::status_interval`]; then commits what is left, gives unfinished claims
    /// back and saves the state file. Returns the last status.
    ///
    /// # Errors
    /// [`CrawlError::Store`] when the last commit fails (earlier failures are counted in
    /// [`Status::store_errors`] and retried); [`CrawlError::Io`] when a thread died.
    pub fn run(mut self, mut on_status: impl FnMut(&Status)) -> Result<Status, CrawlError> {
        let started = Instant::now();
        let deadline = self.options.duration.map(|d| started + d);
        let mut run = Run::new(started, self.ids.len(), self.options.fetch_concurrency);
        let mut next_status = started + self.options.status_interval;
        let mut next_save = started + SAVE_EVERY;
        let mut died = false;
        loop {
            let now = Instant::now();
            if self.stopper.flag.load(Ordering::Relaxed) || deadline.is_some_and(|d| now >= d) {
                break;
            }
            if self.net.is_finished() || self.fetcher.is_finished() {
                died = true;
                break;
            }
            // Claims wait for a free fetch slot; a failing commit waits for its back-off.
            let claim = (run.fetches.running() < run.concurrency).then_some(run.next_claim);
            let commit = self
                .batcher
                .deadline()
                .map(|d| run.commit_backoff.map_or(d, |b| b.max(d)));
            let wake = [
                Some(next_status),
                claim,
                commit,
                deadline,
                run.next_overdue_check,
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + CLAIM_EVERY);
            match self.rx.recv_timeout(wake.saturating_duration_since(now)) {
                Ok(msg) => {
                    self.handle(&mut run, msg);
                    for _ in 0..1024 {
                        match self.rx.try_recv() {
                            Ok(msg) => self.handle(&mut run, msg),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    died = true;
                    break;
                }
            }
            let now = Instant::now();
            self.commit_if_due(&mut run, now);
            self.claim_if_due(&mut run, now);
            self.give_up_overdue(&mut run, now);
            if now >= next_status {
                let status = self.status(&mut run, now);
                on_status(&status);
                next_status = now + self.options.status_interval;
            }
            if now >= next_save {
                self.save_state();
                next_save = now + SAVE_EVERY;
            }
        }
        self.finish(run, died)
    }

    fn handle(&mut self, run: &mut Run, msg: Msg) {
        let now = Instant::now();
        match msg {
            Msg::Event(CrawlEvent::Discovered { info_hash, how, .. }) => {
                match how {
                    HowFound::GetPeers => run.found.get_peers += 1,
                    HowFound::AnnouncePeer => run.found.announce_peer += 1,
                    HowFound::Sample => run.found.sample += 1,
                }
                let s = Sighting::new(info_hash, Source::from(how), unix_now());
                let r = self.batcher.sighting(s, now);
                run.note(r);
            }
            Msg::Event(CrawlEvent::Peers { info_hash, peers }) => {
                if let Some(a) = run.fetches.on_peers(info_hash, peers) {
                    self.act(a);
                }
            }
            Msg::Event(CrawlEvent::LookupDone {
                info_hash,
                peers,
                seeds,
                leechers,
            }) => {
                let s = Sighting {
                    peers: Some(u32::try_from(peers).unwrap_or(u32::MAX)),
                    seeders: seeds,
                    leechers,
                    ..Sighting::new(info_hash, Source::Other, unix_now())
                };
                let r = self.batcher.sighting(s, now);
                run.note(r);
                if let Some(a) = run.fetches.on_lookup_done(info_hash) {
                    self.act(a);
                }
            }
            Msg::Wake => {}
            Msg::LookupRefused(info_hash) => {
                if let Some(a) = run.fetches.on_lookup_done(info_hash) {
                    self.act(a);
                }
            }
            Msg::Net(stats) => run.net = stats,
            Msg::Contacts(contacts) => {
                if !contacts.is_empty() {
                    self.contacts = contacts;
                }
            }
            Msg::Fetched { info_hash, result } => {
                if !run.fetches.on_finished(info_hash) {
                    return;
                }
                run.claim_soon(now);
                match result {
                    Ok(info) => {
                        run.fetched += 1;
                        let t = torrent_record(info_hash, info, unix_now());
                        let r = self.batcher.torrent(t, now);
                        run.note(r);
                    }
                    Err(reason) => {
                        log::debug!("metadata of {info_hash}: {reason}");
                        run.failed(info_hash);
                    }
                }
            }
        }
    }

    /// Passes an action on to the thread it is for.
    fn act(&self, action: Action) {
        match action {
            Action::Lookup { info_hash } => self.net.send(net::Command::Lookup(info_hash)),
            other => self.fetcher.send(fetch::Command::Act(other)),
        }
    }

    fn commit_if_due(&mut self, run: &mut Run, now: Instant) {
        if run.commit_backoff.is_some_and(|b| now < b) {
            return;
        }
        match self.batcher.poll(now) {
            Ok(_) => run.commit_backoff = None,
            Err(e) => {
                run.store_error(&e);
                run.commit_backoff = Some(now + COMMIT_BACKOFF);
                return;
            }
        }
        if !run.failed.is_empty() && self.batcher.pending() == 0 {
            // Failures are reported once the batch before them is committed, so that a failure
            // never overtakes the sightings of its info-hash.
            let failed = core::mem::take(&mut run.failed);
            if let Err(e) = self
                .batcher
                .store()
                .fail(&failed, unix_now(), self.options.retry_after)
            {
                run.store_error(&e);
                run.failed = failed;
            }
        }
    }

    fn claim_if_due(&mut self, run: &mut Run, now: Instant) {
        let free = run.concurrency.saturating_sub(run.fetches.running());
        if now < run.next_claim || free == 0 {
            return;
        }
        run.next_claim = now + CLAIM_EVERY;
        let claimed =
            self.batcher
                .store()
                .claim(&self.owner, free, self.options.shard, unix_now(), LEASE);
        match claimed {
            Ok(hashes) => {
                if hashes.len() == free {
                    run.claim_soon(now);
                }
                for h in hashes {
                    for a in run.fetches.on_claimed(h, now) {
                        self.act(a);
                    }
                }
                if run.next_overdue_check.is_none() && run.fetches.running() > 0 {
                    run.next_overdue_check = Some(now + Duration::from_secs(1));
                }
            }
            Err(e) => run.store_error(&e),
        }
    }

    fn give_up_overdue(&mut self, run: &mut Run, now: Instant) {
        if run.next_overdue_check.is_none_or(|t| now < t) {
            return;
        }
        run.next_overdue_check = (run.fetches.running() > 0).then(|| now + Duration::from_secs(1));
        for h in run.fetches.overdue(now, FETCH_TIMEOUT) {
            self.fetcher.send(fetch::Command::Cancel(h));
            run.fetches.on_finished(h);
            run.failed(h);
        }
    }

    fn status(&mut self, run: &mut Run, now: Instant) -> Status {
        if run
            .queue
            .is_none_or(|(at, _)| now >= at + QUEUE_COUNT_EVERY)
        {
            match self.batcher.store().queue_len() {
                Ok(n) => run.queue = Some((now, Some(n))),
                Err(e) => {
                    run.store_error(&e);
                    run.queue = Some((now, None));
                }
            }
        }
        let queue = run.queue.and_then(|(_, n)| n);
        run.status(now, queue, &self.batcher)
    }

    /// Commits the batch, reports the failed fetches and gives the unfinished claims back.
    fn final_writes(&mut self, failed: &[Id], unfinished: &[Id]) -> Result<(), StoreError> {
        self.batcher.flush()?;
        let store = self.batcher.store();
        if !failed.is_empty() {
            store.fail(failed, unix_now(), self.options.retry_after)?;
        }
        if !unfinished.is_empty() {
            store.release(unfinished)?;
        }
        Ok(())
    }

    fn finish(mut self, mut run: Run, died: bool) -> Result<Status, CrawlError> {
        self.net.send(net::Command::Stop);
        self.fetcher.send(fetch::Command::Stop);
        // The threads may be blocked on a full channel: keep taking their messages until they
        // have ended, then take what is left.
        while !(self.net.is_finished() && self.fetcher.is_finished()) {
            if let Ok(msg) = self.rx.recv_timeout(Duration::from_millis(20)) {
                self.handle(&mut run, msg);
            }
        }
        self.net.join();
        self.fetcher.join();
        while let Ok(msg) = self.rx.try_recv() {
            self.handle(&mut run, msg);
        }
        self.save_state();
        let unfinished = run.fetches.running_hashes();
        let failed = core::mem::take(&mut run.failed);
        // The last writes: a database that fails for a moment gets a few more tries.
        let mut last = Ok(());
        for attempt in 0..FINAL_TRIES {
            if attempt > 0 {
                std::thread::sleep(COMMIT_BACKOFF);
            }
            last = self.final_writes(&failed, &unfinished);
            match &last {
                Ok(()) => break,
                Err(e) => run.store_error(e),
            }
        }
        last?;
        for h in &unfinished {
            run.fetches.on_finished(*h);
        }
        run.queue = None;
        let status = self.status(&mut run, Instant::now());
        if died {
            return Err(CrawlError::Io(io::Error::other(
                "a crawler thread ended unexpectedly",
            )));
        }
        Ok(status)
    }
}

/// The bookkeeping of one [`Crawl::run`].
#[derive(Debug)]
struct Run {
    started: Instant,
    ids: usize,
    concurrency: usize,
    fetches: Fetches,
    net: NetStats,
    found: BySource,
    fetched: u64,
    fetch_failed: u64,
    /// Failed fetches not yet reported to the store.
    failed: Vec<Id>,
    next_claim: Instant,
    next_overdue_check: Option<Instant>,
    /// A commit failed: the next try waits until then.
    commit_backoff: Option<Instant>,
    /// The fetch queue's length and when it was counted.
    queue: Option<(Instant, Option<u64>)>,
    store_errors: u64,
    /// (time, found, fetched) at earlier statuses, for the per-minute rates.
    history: VecDeque<(Instant, BySource, u64)>,
    last_queries: (Instant, u64),
}

impl Run {
    fn new(started: Instant, ids: usize, concurrency: usize) -> Self {
        Self {
            started,
            ids,
            concurrency: concurrency.max(1),
            fetches: Fetches::new(MAX_FOUND),
            net: NetStats::default(),
            found: BySource::default(),
            fetched: 0,
            fetch_failed: 0,
            failed: Vec::new(),
            next_claim: started,
            next_overdue_check: None,
            commit_backoff: None,
            queue: None,
            store_errors: 0,
            history: VecDeque::from([(started, BySource::default(), 0)]),
            last_queries: (started, 0),
        }
    }

    fn claim_soon(&mut self, now: Instant) {
        self.next_claim = self.next_claim.min(now + CLAIM_MIN);
    }

    fn failed(&mut self, info_hash: Id) {
        self.fetch_failed += 1;
        self.failed.push(info_hash);
    }

    fn note(&mut self, r: Result<bool, StoreError>) {
        if let Err(e) = r {
            self.store_error(&e);
        }
    }

    fn store_error(&mut self, e: &StoreError) {
        self.store_errors += 1;
        // The first error, then one in a hundred: a database that is down must not flood the log.
        if self.store_errors % 100 == 1 {
            log::warn!("database error (retrying): {e}");
        }
    }

    fn status<S: Store>(&mut self, now: Instant, queue: Option<u64>, b: &Batcher<S>) -> Status {
        let minute = Duration::from_secs(60);
        // Keep one entry at least a minute old as the base of the rates.
        while self.history.len() > 1
            && self
                .history
                .get(1)
                .is_some_and(|(t, ..)| now.saturating_duration_since(*t) >= minute)
        {
            self.history.pop_front();
        }
        let (found_then, fetched_then) = self
            .history
            .front()
            .map_or((BySource::default(), 0), |(_, f, n)| (*f, *n));
        self.history.push_back((now, self.found, self.fetched));
        let (then, sent_then) = self.last_queries;
        let secs = now.saturating_duration_since(then).as_secs_f64();
        let sent = self.net.queries_sent;
        let queries_per_sec = if secs > 0.0 {
            sent.saturating_sub(sent_then) as f64 / secs
        } else {
            0.0
        };
        self.last_queries = (now, sent);
        Status {
            uptime: now.saturating_duration_since(self.started),
            ids: self.ids,
            contacts: self.net.contacts,
            queries_sent: sent,
            queries_per_sec,
            throttled: self.net.throttled,
            found: self.found,
            found_last_minute: self.found.minus(&found_then),
            lookups_running: self.net.lookups_running,
            lookups_queued: self.net.lookups_queued,
            fetched: self.fetched,
            fetched_last_minute: self.fetched.saturating_sub(fetched_then),
            fetch_failed: self.fetch_failed,
            fetching: self.fetches.running(),
            queue,
            commits: b.commits(),
            pending_writes: b.pending(),
            dropped_writes: b.dropped(),
            store_errors: self.store_errors,
        }
    }
}

/// What the store keeps of fetched metadata. An info dictionary this reader cannot list (a v2-only
/// torrent) is kept raw, with an empty name and no files.
pub fn torrent_record(info_hash: Id, info: Vec<u8>, at: i64) -> TorrentRecord {
    let (name, total_size, files) = match InfoDict::parse(&info) {
        Ok(d) => (
            d.name,
            d.total_size,
            d.files
                .into_iter()
                .map(|f| FileEntry {
                    path: f.path.join("/"),
                    size: f.length,
                })
                .collect(),
        ),
        Err(e) => {
            log::debug!("metadata of {info_hash}: {e}");
            (String::new(), 0, Vec::new())
        }
    };
    TorrentRecord {
        info_hash,
        name,
        total_size,
        files,
        info,
        fetched_at: at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_ids_stay_in_their_shard_and_spread() {
        let mut rng = SeedRng::new([1; 32]);
        for (i, n) in [(0, 1), (1, 3), (3, 4)] {
            let shard = Shard::new(i, n).unwrap();
            let ids = shard_ids(16, shard, &mut rng);
            assert_eq!(ids.len(), 16);
            assert!(ids.iter().all(|id| shard.contains(id)), "{shard}");
            let mut sorted = ids.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), 16);
        }
    }

    #[test]
    fn saved_ids_are_kept_and_completed() {
        let shard = Shard::ALL;
        let fresh = choose_ids(&[], Some(4), shard, [2; 32]);
        assert_eq!(fresh.len(), 4);
        assert_eq!(choose_ids(&fresh, None, shard, [3; 32]), fresh);
        assert_eq!(choose_ids(&fresh, Some(2), shard, [3; 32]), fresh[..2]);
        let more = choose_ids(&fresh, Some(6), shard, [3; 32]);
        assert_eq!(more[..4], fresh[..]);
        assert_eq!(more.len(), 6);
        // Ids outside a new shard are replaced.
        let half = Shard::new(1, 2).unwrap();
        let moved = choose_ids(&fresh, None, half, [3; 32]);
        assert!(moved.iter().all(|id| half.contains(id)));
        assert!(!moved.is_empty());
    }

    #[test]
    fn metadata_becomes_a_record() {
        let info = b"d5:filesld6:lengthi3e4:pathl1:a1:beed6:lengthi4e4:pathl1:ceee4:name1:x\
                     12:piece lengthi16384e6:pieces0:e"
            .to_vec();
        let t = torrent_record(Id::new([1; 20]), info.clone(), 7);
        assert_eq!((t.name.as_str(), t.total_size, t.fetched_at), ("x", 7, 7));
        assert_eq!(
            t.files,
            [
                FileEntry {
                    path: "a/b".into(),
                    size: 3
                },
                FileEntry {
                    path: "c".into(),
                    size: 4
                }
            ]
        );
        assert_eq!(t.info, info);
        let odd = torrent_record(Id::new([1; 20]), b"d4:file treedee".to_vec(), 7);
        assert_eq!((odd.name.as_str(), odd.files.len()), ("", 0));
    }

    #[test]
    fn rates_cover_the_last_minute() {
        let t0 = Instant::now();
        let mut run = Run::new(t0, 1, 1);
        let b = Batcher::new(
            crate::store::SqliteStore::open_in_memory(crate::store::Limits::default()).unwrap(),
            BatcherConfig::default(),
        );
        run.found.sample = 5;
        run.fetched = 2;
        let s = run.status(t0 + Duration::from_secs(30), Some(0), &b);
        assert_eq!((s.found_last_minute.sample, s.fetched_last_minute), (5, 2));
        run.found.sample = 8;
        let s = run.status(t0 + Duration::from_secs(70), None, &b);
        assert_eq!(s.found_last_minute.sample, 8, "the base is the start");
        run.found.sample = 9;
        let s = run.status(t0 + Duration::from_secs(100), None, &b);
        assert_eq!(s.found_last_minute.sample, 4, "since the status at 30 s");
        assert_eq!(s.found.total(), 9);
    }
}
