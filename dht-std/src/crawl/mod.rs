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
//!
//! ```no_run
//! use dht_std::crawl::{Crawl, CrawlOptions};
//! use dht_std::store::{Limits, SqliteStore};
//!
//! let store = SqliteStore::open("crawl.sqlite".as_ref(), Limits::default())?;
//! let mut options = CrawlOptions::new(dht_std::os_seed());
//! options.bootstrap = dht_std::resolve_all(dht_std::DEFAULT_BOOTSTRAP);
//! options.state = Some("crawl.state".into());
//! let crawl = Crawl::start(store, options)?;
//! let stopper = crawl.stopper(); // `stopper.stop()` from another thread ends the run
//! let last = crawl.run(|s| println!("{} found, {} fetched", s.found.total(), s.fetched))?;
//! println!("{} fetches failed", last.fetch_failed);
//! # drop(stopper);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod fetch;
mod ids;
mod net;
mod state;
mod status;

use core::fmt;
use core::net::{IpAddr, SocketAddr};
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use dht_proto::crawl::{CrawlEvent, Crawler, CrawlerConfig, HowFound};
use dht_proto::wire::compact::NodeInfo;
use dht_proto::{Config, Id};

use self::fetch::{Action, FetchThread};
use self::ids::choose_ids;
pub use self::ids::shard_ids;
use self::net::{NetStats, NetThread};
pub use self::state::{CrawlState, MAX_IDS, lock as lock_state};
use self::status::Run;
pub use self::status::{BySource, Status};
use crate::metadata::{FetchOptions, InfoDict};
use crate::store::{
    Batcher, BatcherConfig, FileEntry, Shard, Sighting, Source, Store, StoreError, TorrentRecord,
};

/// Crawler ids without `--ids` and without a state file.
pub const DEFAULT_IDS: usize = 8;
/// How long a claim is ours before other crawlers may take it, at least (twice the fetch time
/// limit when that is longer).
const LEASE: Duration = Duration::from_secs(5 * 60);
/// A fetch running longer than this after its lookup may start (the core delays the lookups of
/// new info-hashes by [`CrawlerConfig::lookup_delay`]) is given up, and retried later.
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
    /// `get_peers` lookups at once (for the info-hashes whose holders gave no peers or that
    /// were found passively; see [`CrawlerConfig::ask_holders`]).
    pub lookups: usize,
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
    /// and 32 lookups at once, failed fetches retried after 10 minutes, the whole key space, no
    /// state file, a status every 5 s.
    pub fn new(seed: [u8; 32]) -> Self {
        Self {
            ids: None,
            bind: SocketAddr::from(([0, 0, 0, 0], 0)),
            bootstrap: Vec::new(),
            allow_local: false,
            rate: 500,
            fetch_concurrency: 64,
            lookups: 32,
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
    /// A fetch running longer is given up.
    fetch_timeout: Duration,
    /// How long claims are ours.
    lease: Duration,
}

/// Current Unix time in seconds.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
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
        config.max_lookups = options.lookups.max(1);
        let stride = config.node.limits.max_datagram.saturating_add(1);
        let fetch_timeout = config.lookup_delay.saturating_add(FETCH_TIMEOUT);
        let lease = LEASE.max(fetch_timeout.saturating_mul(2));
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
            fetch_timeout,
            lease,
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
            let claim = (run.fetches.busy() < run.concurrency).then_some(run.next_claim);
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
        let free = run.concurrency.saturating_sub(run.fetches.busy());
        if now < run.next_claim || free == 0 {
            return;
        }
        run.next_claim = now + CLAIM_EVERY;
        let claimed = self.batcher.store().claim(
            &self.owner,
            free,
            self.options.shard,
            unix_now(),
            self.lease,
        );
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
        for h in run.fetches.overdue(now, self.fetch_timeout) {
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
}
