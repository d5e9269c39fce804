//! [`Fetcher`]: many [`Fetch`] state machines on TCP connections, on one mio thread.

use core::fmt;
use core::net::SocketAddr;
use core::time::Duration;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::{self, Read as _, Write as _};
use std::sync::Arc;

use dht_proto::metadata::{FailReason, Fetch, FetchConfig, FetchEvent};
use dht_proto::{Id, Instant};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

/// Token of the cross-thread waker; connections use the others.
const WAKE: Token = Token(usize::MAX);

/// Bytes read from a connection per call.
const READ_CHUNK: usize = 64 * 1024;

/// Most bytes read from one connection per readiness event, so that one fast peer cannot
/// starve the others (mio readiness is edge-triggered: the rest is read on the next step).
const READ_BUDGET: usize = 1024 * 1024;

/// Limits of a [`Fetcher`]. Every field has a default.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct FetchOptions {
    /// The protocol's caps and identity (metadata size, message length, handshake, piece and
    /// total time limits, our peer id).
    pub fetch: FetchConfig,
    /// Longest wait for a TCP connection to be established (default 5 s).
    pub connect_timeout: Duration,
    /// Connections one fetch has open at once (default 4): the peers are tried in parallel in
    /// groups this large until one yields the metadata.
    pub peers_at_once: usize,
    /// Connections of all fetches together (default 256); further attempts wait their turn.
    pub max_connections: usize,
    /// Peers one fetch keeps (default 200); more are ignored.
    pub max_peers: usize,
    /// Failures one fetch remembers for its final error (default 50; the count is always
    /// exact).
    pub max_failures_kept: usize,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            fetch: FetchConfig::default(),
            connect_timeout: Duration::from_secs(5),
            peers_at_once: 4,
            max_connections: 256,
            max_peers: 200,
            max_failures_kept: 50,
        }
    }
}

/// Identifies a fetch of a [`Fetcher`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FetchId(u64);

/// Why one peer did not give the metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerError {
    /// The TCP connection could not be established (refused, unreachable, ...).
    Connect(io::ErrorKind),
    /// The TCP connection was not established within [`FetchOptions::connect_timeout`].
    ConnectTimeout,
    /// Reading or writing the connection failed.
    Io(io::ErrorKind),
    /// The peer spoke, but did not give valid metadata.
    Protocol(FailReason),
    /// Another peer gave the metadata first, or the fetch was cancelled.
    Cancelled,
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(kind) => write!(f, "cannot connect: {kind}"),
            Self::ConnectTimeout => f.write_str("connect timed out"),
            Self::Io(kind) => write!(f, "connection error: {kind}"),
            Self::Protocol(reason) => reason.fmt(f),
            Self::Cancelled => f.write_str("cancelled"),
        }
    }
}

impl core::error::Error for PeerError {}

/// Verified metadata and the peer that gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// The info-hash (SHA-1 of `info`).
    pub info_hash: Id,
    /// The bencoded info dictionary, byte for byte.
    pub info: Vec<u8>,
    /// The peer it came from.
    pub peer: SocketAddr,
    /// That peer's client name (`v` of its extended handshake), if it sent one.
    pub client: Option<String>,
    /// Peers the fetch had tried by then, this one included.
    pub tried: usize,
}

/// No peer gave the metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchError {
    /// Peers tried.
    pub tried: usize,
    /// The first failures, at most [`FetchOptions::max_failures_kept`], in the order they
    /// happened.
    pub failures: Vec<(SocketAddr, PeerError)>,
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.tried {
            0 => f.write_str("no peer to fetch the metadata from"),
            1 => match self.failures.first() {
                Some((peer, reason)) => write!(f, "the peer {peer} failed: {reason}"),
                None => f.write_str("the peer failed"),
            },
            n => write!(f, "none of the {n} peers gave the metadata"),
        }
    }
}

impl core::error::Error for FetchError {}

/// What a [`Fetcher`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetcherEvent {
    /// A TCP connection to a peer was established.
    Connected {
        /// The fetch.
        fetch: FetchId,
        /// The peer.
        peer: SocketAddr,
    },
    /// A peer's extended handshake offers the metadata.
    Offered {
        /// The fetch.
        fetch: FetchId,
        /// The peer.
        peer: SocketAddr,
        /// Its announced metadata size.
        metadata_size: u64,
    },
    /// A peer failed; the fetch goes on with the others.
    PeerFailed {
        /// The fetch.
        fetch: FetchId,
        /// The peer.
        peer: SocketAddr,
        /// Why.
        reason: PeerError,
    },
    /// A fetch ended: with verified metadata, or because every peer failed. Its id is no
    /// longer valid.
    Finished {
        /// The fetch.
        fetch: FetchId,
        /// The info-hash it was for.
        info_hash: Id,
        /// The result.
        result: Result<Metadata, FetchError>,
    },
}

/// Wakes a [`Fetcher`] blocked in [`Fetcher::step`] from another thread.
#[derive(Clone, Debug)]
pub struct FetcherWaker(Arc<mio::Waker>);

impl FetcherWaker {
    /// Makes the current or next [`Fetcher::step`] return promptly.
    ///
    /// # Errors
    ///
    /// The operating system refused to signal the poller.
    pub fn wake(&self) -> io::Result<()> {
        self.0.wake()
    }
}

#[derive(Debug)]
struct Job {
    info_hash: Id,
    queue: VecDeque<SocketAddr>,
    seen: HashSet<SocketAddr>,
    active: usize,
    tried: usize,
    failures: Vec<(SocketAddr, PeerError)>,
    more_coming: bool,
}

#[derive(Debug)]
enum ConnState {
    Connecting { deadline: std::time::Instant },
    Open(Box<Fetch>),
}

#[derive(Debug)]
struct Conn {
    fetch: FetchId,
    peer: SocketAddr,
    stream: TcpStream,
    state: ConnState,
    client: Option<String>,
}

/// Fetches metadata from peers over TCP: many fetches, each trying several peers at once, all
/// on the caller's thread, with bounded concurrency.
///
/// Drive it like [`Dht`](crate::Dht): [`Fetcher::step`] waits until a connection is ready or
/// the next deadline, and [`Fetcher::poll_event`] reports progress and results. Each fetch
/// tries its peers [`FetchOptions::peers_at_once`] at a time, in the order given, and ends with
/// the first verified metadata or once every peer has failed (each failure is reported with its
/// reason). For one fetch on a blocking call, use [`fetch_metadata`].
///
/// ```no_run
/// use dht_std::metadata::{Fetcher, FetcherEvent, FetchOptions};
///
/// let mut fetcher = Fetcher::new(FetchOptions::default())?;
/// let info_hash = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a".parse()?;
/// fetcher.start(info_hash, ["192.0.2.7:6881".parse()?]);
/// while !fetcher.is_idle() {
///     fetcher.step(None)?;
///     while let Some(event) = fetcher.poll_event() {
///         if let FetcherEvent::Finished { result, .. } = event {
///             println!("{:?}", result.map(|m| m.info.len()));
///         }
///     }
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Fetcher {
    options: FetchOptions,
    poll: Poll,
    events: Events,
    waker: FetcherWaker,
    origin: std::time::Instant,
    jobs: BTreeMap<FetchId, Job>,
    conns: HashMap<Token, Conn>,
    next_id: u64,
    next_token: usize,
    out: VecDeque<FetcherEvent>,
    buf: Vec<u8>,
}

impl Fetcher {
    /// A fetcher with `options`.
    ///
    /// # Errors
    ///
    /// The poller cannot be created.
    pub fn new(options: FetchOptions) -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = FetcherWaker(Arc::new(mio::Waker::new(poll.registry(), WAKE)?));
        Ok(Self {
            options,
            poll,
            events: Events::with_capacity(256),
            waker,
            origin: std::time::Instant::now(),
            jobs: BTreeMap::new(),
            conns: HashMap::new(),
            next_id: 0,
            next_token: 0,
            out: VecDeque::new(),
            buf: vec![0; READ_CHUNK],
        })
    }

    /// A waker for [`Fetcher::step`].
    pub fn waker(&self) -> FetcherWaker {
        self.waker.clone()
    }

    /// Starts fetching `info_hash`'s metadata from `peers` (the whole list: the fetch fails
    /// once they all have).
    pub fn start(&mut self, info_hash: Id, peers: impl IntoIterator<Item = SocketAddr>) -> FetchId {
        let id = self.start_open(info_hash);
        self.add_peers(id, peers);
        self.end_peers(id);
        id
    }

    /// Starts a fetch whose peers come later ([`Fetcher::add_peers`], for example as a DHT
    /// lookup finds them); it cannot fail for lack of peers before [`Fetcher::end_peers`].
    pub fn start_open(&mut self, info_hash: Id) -> FetchId {
        let id = FetchId(self.next_id);
        self.next_id += 1;
        self.jobs.insert(
            id,
            Job {
                info_hash,
                queue: VecDeque::new(),
                seen: HashSet::new(),
                active: 0,
                tried: 0,
                failures: Vec::new(),
                more_coming: true,
            },
        );
        id
    }

    /// Adds peers to a running fetch (duplicates and peers beyond [`FetchOptions::max_peers`]
    /// are ignored). Returns how many were new.
    pub fn add_peers(&mut self, id: FetchId, peers: impl IntoIterator<Item = SocketAddr>) -> usize {
        let Some(job) = self.jobs.get_mut(&id) else {
            return 0;
        };
        let mut added = 0;
        for peer in peers {
            if job.seen.len() >= self.options.max_peers {
                break;
            }
            if job.seen.insert(peer) {
                job.queue.push_back(peer);
                added += 1;
            }
        }
        added
    }

    /// No more peers will be added: the fetch fails once those it has have failed.
    pub fn end_peers(&mut self, id: FetchId) {
        if let Some(job) = self.jobs.get_mut(&id) {
            job.more_coming = false;
        }
    }

    /// Stops a fetch and closes its connections; no event follows for it.
    pub fn cancel(&mut self, id: FetchId) {
        if self.jobs.remove(&id).is_some() {
            self.close_fetch_conns(id);
        }
    }

    /// Whether no fetch is running.
    pub fn is_idle(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Fetches running.
    pub fn fetches(&self) -> usize {
        self.jobs.len()
    }

    /// Connections open or being established.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<FetcherEvent> {
        self.out.pop_front()
    }

    /// Opens connections, waits until a connection is ready, the next deadline, a wake-up or
    /// `max_wait` (`None`: no limit but the deadlines; with nothing running it returns at
    /// once), then reads, writes and runs the time limits.
    ///
    /// # Errors
    ///
    /// Polling failed (connection errors are per-peer failures, not errors).
    pub fn step(&mut self, max_wait: Option<Duration>) -> io::Result<()> {
        self.schedule();
        let now = std::time::Instant::now();
        let mut wait = self.next_deadline().map(|d| {
            // Round up to whole milliseconds: the core's clock has that resolution.
            d.saturating_duration_since(now) + Duration::from_micros(999)
        });
        if let Some(max) = max_wait {
            wait = Some(wait.map_or(max, |w| w.min(max)));
        }
        if self.jobs.is_empty() && self.out.is_empty() && max_wait.is_none() {
            wait = Some(Duration::ZERO);
        }
        if !self.out.is_empty() {
            wait = Some(Duration::ZERO);
        }
        match self.poll.poll(&mut self.events, wait) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        let ready: Vec<(Token, bool, bool)> = self
            .events
            .iter()
            .filter(|e| e.token() != WAKE)
            .map(|e| {
                (
                    e.token(),
                    e.is_readable() || e.is_read_closed() || e.is_error(),
                    e.is_writable() || e.is_error(),
                )
            })
            .collect();
        for (token, readable, writable) in ready {
            self.on_ready(token, readable, writable);
        }
        self.run_timers();
        self.schedule();
        Ok(())
    }

    fn now(&self) -> Instant {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        Instant::from_millis(ms)
    }

    fn to_std(&self, t: Instant) -> std::time::Instant {
        self.origin + Duration::from_millis(t.as_millis())
    }

    fn next_deadline(&self) -> Option<std::time::Instant> {
        self.conns
            .values()
            .filter_map(|c| match &c.state {
                ConnState::Connecting { deadline } => Some(*deadline),
                ConnState::Open(f) => f.poll_timeout().map(|t| self.to_std(t)),
            })
            .min()
    }

    /// Opens connections while fetches have peers waiting and the caps allow.
    fn schedule(&mut self) {
        let ids: Vec<FetchId> = self.jobs.keys().copied().collect();
        for id in ids {
            loop {
                if self.conns.len() >= self.options.max_connections {
                    return;
                }
                let Some(job) = self.jobs.get_mut(&id) else {
                    break;
                };
                if job.active >= self.options.peers_at_once.max(1) {
                    break;
                }
                let Some(peer) = job.queue.pop_front() else {
                    if job.active == 0 && !job.more_coming {
                        self.give_up(id);
                    }
                    break;
                };
                job.active += 1;
                job.tried += 1;
                self.connect(id, peer);
            }
        }
    }

    fn connect(&mut self, id: FetchId, peer: SocketAddr) {
        let stream = match TcpStream::connect(peer) {
            Ok(s) => s,
            Err(e) => return self.peer_failed(id, peer, PeerError::Connect(e.kind())),
        };
        let token = Token(self.next_token);
        self.next_token = (self.next_token + 1) % (usize::MAX - 1);
        let mut conn = Conn {
            fetch: id,
            peer,
            stream,
            state: ConnState::Connecting {
                deadline: std::time::Instant::now() + self.options.connect_timeout,
            },
            client: None,
        };
        if let Err(e) = self.poll.registry().register(
            &mut conn.stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            return self.peer_failed(id, peer, PeerError::Connect(e.kind()));
        }
        log::trace!("metadata: connecting to {peer}");
        self.conns.insert(token, conn);
    }

    fn on_ready(&mut self, token: Token, readable: bool, writable: bool) {
        let now = self.now();
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        if let ConnState::Connecting { .. } = conn.state {
            if !(writable || readable) {
                return;
            }
            // Established, or failed: `take_error` and `peer_addr` tell which.
            match conn.stream.take_error() {
                Ok(Some(e)) | Err(e) => {
                    return self.close(token, PeerError::Connect(e.kind()));
                }
                Ok(None) => {}
            }
            match conn.stream.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => return self.close(token, PeerError::Connect(e.kind())),
            }
            // Small request/response messages: do not wait to coalesce them.
            let _ = conn.stream.set_nodelay(true);
            let fetch = Fetch::new(
                self.jobs
                    .get(&conn.fetch)
                    .map_or(Id::new([0; 20]), |j| j.info_hash),
                self.options.fetch.clone(),
                now,
            );
            conn.state = ConnState::Open(Box::new(fetch));
            self.out.push_back(FetcherEvent::Connected {
                fetch: conn.fetch,
                peer: conn.peer,
            });
        }
        if readable {
            self.read(token, now);
        }
        self.flush(token);
    }

    fn read(&mut self, token: Token, now: Instant) {
        let mut budget = READ_BUDGET;
        loop {
            let Some(conn) = self.conns.get_mut(&token) else {
                return;
            };
            let ConnState::Open(fetch) = &mut conn.state else {
                return;
            };
            if fetch.is_finished() {
                break;
            }
            match conn.stream.read(&mut self.buf) {
                Ok(0) => {
                    fetch.handle_eof(now);
                    break;
                }
                Ok(n) => {
                    fetch.handle_input(now, self.buf.get(..n).unwrap_or_default());
                    budget = budget.saturating_sub(n);
                    if budget == 0 {
                        // Edge-triggered: come back for the rest without waiting for news.
                        let _ = self.poll.registry().reregister(
                            &mut conn.stream,
                            token,
                            Interest::READABLE | Interest::WRITABLE,
                        );
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.close(token, PeerError::Io(e.kind())),
            }
        }
        self.drain_events(token);
    }

    /// Writes what the connection's fetch has to send, as far as the socket takes it.
    fn flush(&mut self, token: Token) {
        loop {
            let Some(conn) = self.conns.get_mut(&token) else {
                return;
            };
            let ConnState::Open(fetch) = &mut conn.state else {
                return;
            };
            let pending = fetch.pending_output();
            if pending.is_empty() {
                return;
            }
            match conn.stream.write(pending) {
                Ok(0) => return self.close(token, PeerError::Io(io::ErrorKind::WriteZero)),
                Ok(n) => fetch.consume_output(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.close(token, PeerError::Io(e.kind())),
            }
        }
    }

    /// Passes on the events of a connection's fetch; ends the connection (and, with metadata,
    /// the whole fetch) when it has finished.
    fn drain_events(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        let ConnState::Open(fetch) = &mut conn.state else {
            return;
        };
        let mut end = None;
        while let Some(event) = fetch.poll_event() {
            match event {
                FetchEvent::Handshake {
                    client,
                    metadata_size,
                    ..
                } => {
                    conn.client = client.map(|c| String::from_utf8_lossy(&c).into_owned());
                    self.out.push_back(FetcherEvent::Offered {
                        fetch: conn.fetch,
                        peer: conn.peer,
                        metadata_size,
                    });
                }
                FetchEvent::Metadata { info_hash, info } => {
                    end = Some(Ok(Metadata {
                        info_hash,
                        info,
                        peer: conn.peer,
                        client: conn.client.take(),
                        tried: 0,
                    }));
                }
                FetchEvent::Failed { reason } => end = Some(Err(PeerError::Protocol(reason))),
                _ => {}
            }
        }
        match end {
            Some(Ok(mut metadata)) => {
                let id = conn.fetch;
                self.close_quietly(token);
                if let Some(job) = self.jobs.remove(&id) {
                    metadata.tried = job.tried;
                    self.close_fetch_conns(id);
                    self.out.push_back(FetcherEvent::Finished {
                        fetch: id,
                        info_hash: job.info_hash,
                        result: Ok(metadata),
                    });
                }
            }
            Some(Err(reason)) => self.close(token, reason),
            None => {}
        }
    }

    fn run_timers(&mut self) {
        let now_std = std::time::Instant::now();
        let now = self.now();
        let mut expired = Vec::new();
        let mut fired = Vec::new();
        for (token, conn) in &mut self.conns {
            match &mut conn.state {
                ConnState::Connecting { deadline } if *deadline <= now_std => expired.push(*token),
                ConnState::Connecting { .. } => {}
                ConnState::Open(fetch) => {
                    if fetch.poll_timeout().is_some_and(|t| t <= now) {
                        fetch.handle_timeout(now);
                        fired.push(*token);
                    }
                }
            }
        }
        for token in expired {
            self.close(token, PeerError::ConnectTimeout);
        }
        for token in fired {
            self.drain_events(token);
        }
    }

    /// Closes a connection because its peer failed, and reports it.
    fn close(&mut self, token: Token, reason: PeerError) {
        if let Some(conn) = self.close_quietly(token) {
            self.peer_failed(conn.fetch, conn.peer, reason);
        }
    }

    fn close_quietly(&mut self, token: Token) -> Option<Conn> {
        let mut conn = self.conns.remove(&token)?;
        let _ = self.poll.registry().deregister(&mut conn.stream);
        if let Some(job) = self.jobs.get_mut(&conn.fetch) {
            job.active = job.active.saturating_sub(1);
        }
        Some(conn)
    }

    fn close_fetch_conns(&mut self, id: FetchId) {
        let tokens: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| c.fetch == id)
            .map(|(t, _)| *t)
            .collect();
        for token in tokens {
            self.close_quietly(token);
        }
    }

    fn peer_failed(&mut self, id: FetchId, peer: SocketAddr, reason: PeerError) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        log::debug!("metadata: {peer}: {reason}");
        if job.failures.len() < self.options.max_failures_kept {
            job.failures.push((peer, reason.clone()));
        }
        self.out.push_back(FetcherEvent::PeerFailed {
            fetch: id,
            peer,
            reason,
        });
    }

    fn give_up(&mut self, id: FetchId) {
        if let Some(job) = self.jobs.remove(&id) {
            self.out.push_back(FetcherEvent::Finished {
                fetch: id,
                info_hash: job.info_hash,
                result: Err(FetchError {
                    tried: job.tried,
                    failures: job.failures,
                }),
            });
        }
    }
}

/// Fetches `info_hash`'s metadata from `peers` with the default [`FetchOptions`], blocking
/// until one peer gives verified metadata or all have failed.
///
/// # Errors
///
/// [`FetchError`] with each peer's reason when none gave it (a poller failure counts as every
/// remaining peer failing with [`PeerError::Io`]).
pub fn fetch_metadata(
    info_hash: Id,
    peers: impl IntoIterator<Item = SocketAddr>,
) -> Result<Metadata, FetchError> {
    fetch_metadata_with(FetchOptions::default(), info_hash, peers)
}

/// [`fetch_metadata`] with other options.
///
/// # Errors
///
/// As [`fetch_metadata`].
pub fn fetch_metadata_with(
    options: FetchOptions,
    info_hash: Id,
    peers: impl IntoIterator<Item = SocketAddr>,
) -> Result<Metadata, FetchError> {
    let peers: Vec<SocketAddr> = peers.into_iter().collect();
    let io_error = |e: io::Error, peers: &[SocketAddr]| FetchError {
        tried: peers.len(),
        failures: peers
            .iter()
            .map(|p| (*p, PeerError::Io(e.kind())))
            .collect(),
    };
    let mut fetcher = Fetcher::new(options).map_err(|e| io_error(e, &peers))?;
    let id = fetcher.start(info_hash, peers.iter().copied());
    loop {
        while let Some(event) = fetcher.poll_event() {
            if let FetcherEvent::Finished { fetch, result, .. } = event
                && fetch == id
            {
                return result;
            }
        }
        fetcher.step(None).map_err(|e| io_error(e, &peers))?;
    }
}
