//! The metadata side of the crawler: which claimed info-hashes are being fetched, the peers the
//! crawler's lookups found for info-hashes not claimed yet, and the thread running the
//! [`Fetcher`].

use core::net::SocketAddr;
use core::time::Duration;
use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::Instant;

use dht_proto::Id;

use super::Msg;
use crate::metadata::{FetchId, FetchOptions, Fetcher, FetcherEvent, FetcherWaker};

/// Peers kept per info-hash waiting to be claimed.
const MAX_CACHED_PEERS: usize = 32;

/// What the bookkeeping asks of the fetch thread and the crawler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Start a fetch; `more`: peers may still come (a lookup is running).
    Start {
        info_hash: Id,
        peers: Vec<SocketAddr>,
        more: bool,
    },
    /// Peers for a running fetch.
    Add {
        info_hash: Id,
        peers: Vec<SocketAddr>,
    },
    /// No more peers will come for a running fetch.
    End { info_hash: Id },
    /// Ask the crawler for a `get_peers` lookup.
    Lookup { info_hash: Id },
}

/// Peers found for an info-hash not claimed (yet).
#[derive(Debug, Default)]
struct Found {
    peers: Vec<SocketAddr>,
    done: bool,
}

/// A fetch running for a claim.
#[derive(Debug)]
struct Running {
    since: Instant,
    more: bool,
    /// Some peer is known: the fetch is connecting (otherwise it waits for the crawler).
    peers: bool,
}

/// Fetches waiting for their first peer that take one fetch slot ([`Fetches::busy`]): a
/// fetch without peers holds no connection, and the crawler asks for the peers of several at
/// once.
const WAITING_PER_SLOT: usize = 4;

/// The fetch bookkeeping (no I/O): claims become fetches with the peers the crawler found.
#[derive(Debug)]
pub(crate) struct Fetches {
    found: HashMap<Id, Found>,
    /// `found`'s keys, oldest first, for eviction at the cap.
    order: VecDeque<Id>,
    max_found: usize,
    running: HashMap<Id, Running>,
}

impl Fetches {
    /// Bookkeeping remembering the peers of at most `max_found` unclaimed info-hashes.
    pub(crate) fn new(max_found: usize) -> Self {
        Self {
            found: HashMap::new(),
            order: VecDeque::new(),
            max_found: max_found.max(1),
            running: HashMap::new(),
        }
    }

    /// Fetches running.
    pub(crate) fn running(&self) -> usize {
        self.running.len()
    }

    /// Fetch slots in use: a fetch with peers takes one, [`WAITING_PER_SLOT`] waiting for
    /// their first peer take one together. Claims stop when it reaches the concurrency.
    pub(crate) fn busy(&self) -> usize {
        let with_peers = self.running.values().filter(|r| r.peers).count();
        let waiting = self.running.len() - with_peers;
        with_peers + waiting.div_ceil(WAITING_PER_SLOT)
    }

    /// Info-hashes whose peers are remembered.
    #[cfg(test)]
    pub(crate) fn remembered(&self) -> usize {
        self.found.len()
    }

    /// The info-hashes being fetched.
    pub(crate) fn running_hashes(&self) -> Vec<Id> {
        self.running.keys().copied().collect()
    }

    fn remember(&mut self, info_hash: Id) -> &mut Found {
        if !self.found.contains_key(&info_hash) {
            while self.found.len() >= self.max_found {
                match self.order.pop_front() {
                    Some(old) => {
                        self.found.remove(&old);
                    }
                    None => break,
                }
            }
            self.order.push_back(info_hash);
        }
        self.found.entry(info_hash).or_default()
    }

    /// A lookup found peers.
    pub(crate) fn on_peers(&mut self, info_hash: Id, peers: Vec<SocketAddr>) -> Option<Action> {
        if let Some(r) = self.running.get_mut(&info_hash) {
            r.peers |= !peers.is_empty();
            return Some(Action::Add { info_hash, peers });
        }
        let found = self.remember(info_hash);
        for p in peers {
            if found.peers.len() >= MAX_CACHED_PEERS {
                break;
            }
            if !found.peers.contains(&p) {
                found.peers.push(p);
            }
        }
        None
    }

    /// A lookup ended (or could not start).
    pub(crate) fn on_lookup_done(&mut self, info_hash: Id) -> Option<Action> {
        if let Some(r) = self.running.get_mut(&info_hash) {
            return r.more.then(|| {
                r.more = false;
                Action::End { info_hash }
            });
        }
        self.remember(info_hash).done = true;
        None
    }

    /// The store gave us `info_hash` to fetch.
    pub(crate) fn on_claimed(&mut self, info_hash: Id, now: Instant) -> Vec<Action> {
        if self.running.contains_key(&info_hash) {
            return Vec::new();
        }
        let mut actions = Vec::new();
        let (peers, more) = match self.found.remove(&info_hash) {
            Some(found) => {
                self.order.retain(|h| *h != info_hash);
                (found.peers, !found.done)
            }
            None => {
                actions.push(Action::Lookup { info_hash });
                (Vec::new(), true)
            }
        };
        self.running.insert(
            info_hash,
            Running {
                since: now,
                more,
                peers: !peers.is_empty(),
            },
        );
        actions.insert(
            0,
            Action::Start {
                info_hash,
                peers,
                more,
            },
        );
        actions
    }

    /// A fetch ended (or was cancelled); returns whether it was running.
    pub(crate) fn on_finished(&mut self, info_hash: Id) -> bool {
        self.running.remove(&info_hash).is_some()
    }

    /// Fetches running for longer than `limit` at `now`.
    pub(crate) fn overdue(&self, now: Instant, limit: Duration) -> Vec<Id> {
        self.running
            .iter()
            .filter(|(_, r)| now.saturating_duration_since(r.since) >= limit)
            .map(|(h, _)| *h)
            .collect()
    }
}

/// Commands of the fetch thread.
#[derive(Debug)]
pub(crate) enum Command {
    Act(Action),
    Cancel(Id),
    Stop,
}

/// The thread running the [`Fetcher`].
#[derive(Debug)]
pub(crate) struct FetchThread {
    tx: Sender<Command>,
    waker: FetcherWaker,
    thread: Option<JoinHandle<()>>,
}

impl FetchThread {
    /// Starts the thread; results go to `out` as [`Msg::Fetched`].
    pub(crate) fn spawn(options: FetchOptions, out: SyncSender<Msg>) -> std::io::Result<Self> {
        let fetcher = Fetcher::new(options)?;
        let waker = fetcher.waker();
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("crawl-fetch".into())
            .spawn(move || fetch_loop(fetcher, &rx, &out))?;
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

fn fetch_loop(mut fetcher: Fetcher, rx: &Receiver<Command>, out: &SyncSender<Msg>) {
    let mut ids: HashMap<Id, FetchId> = HashMap::new();
    loop {
        loop {
            match rx.try_recv() {
                Ok(Command::Act(action)) => match action {
                    Action::Start {
                        info_hash,
                        peers,
                        more,
                    } => {
                        if let Some(old) = ids.remove(&info_hash) {
                            fetcher.cancel(old);
                        }
                        let id = fetcher.start_open(info_hash);
                        fetcher.add_peers(id, peers);
                        if !more {
                            fetcher.end_peers(id);
                        }
                        ids.insert(info_hash, id);
                    }
                    Action::Add { info_hash, peers } => {
                        if let Some(id) = ids.get(&info_hash) {
                            fetcher.add_peers(*id, peers);
                        }
                    }
                    Action::End { info_hash } => {
                        if let Some(id) = ids.get(&info_hash) {
                            fetcher.end_peers(*id);
                        }
                    }
                    Action::Lookup { .. } => {}
                },
                Ok(Command::Cancel(info_hash)) => {
                    if let Some(id) = ids.remove(&info_hash) {
                        fetcher.cancel(id);
                    }
                }
                Ok(Command::Stop) | Err(mpsc::TryRecvError::Disconnected) => return,
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        if let Err(e) = fetcher.step(Some(Duration::from_secs(1))) {
            log::warn!("metadata fetcher: {e}");
            std::thread::sleep(Duration::from_millis(100));
        }
        while let Some(event) = fetcher.poll_event() {
            if let FetcherEvent::Finished {
                fetch,
                info_hash,
                result,
            } = event
            {
                if ids.get(&info_hash) != Some(&fetch) {
                    continue;
                }
                ids.remove(&info_hash);
                let result = result.map(|m| m.info).map_err(|e| e.to_string());
                if out.send(Msg::Fetched { info_hash, result }).is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u8) -> Id {
        Id::new([i; 20])
    }

    fn p(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 2], port))
    }

    #[test]
    fn fetches_waiting_for_peers_share_a_slot() {
        let now = Instant::now();
        let mut f = Fetches::new(10);
        f.on_peers(h(1), vec![p(1)]);
        let _ = f.on_claimed(h(1), now);
        assert_eq!(f.busy(), 1, "with a peer: a slot");
        for i in 2..=6 {
            let _ = f.on_claimed(h(i), now);
        }
        // Five waiting for their first peer: two slots (four share one).
        assert_eq!((f.running(), f.busy()), (6, 3));
        assert!(f.on_peers(h(2), vec![p(2)]).is_some());
        assert_eq!(f.busy(), 2 + 1, "four waiting share one slot");
        assert!(f.on_finished(h(1)));
        assert_eq!(f.busy(), 1 + 1);
    }

    #[test]
    fn a_claim_takes_the_peers_already_found() {
        let now = Instant::now();
        let mut f = Fetches::new(10);
        assert_eq!(f.on_peers(h(1), vec![p(1), p(2)]), None);
        assert_eq!(f.on_peers(h(1), vec![p(2), p(3)]), None);
        assert_eq!(f.on_lookup_done(h(1)), None);
        assert_eq!(
            f.on_claimed(h(1), now),
            [Action::Start {
                info_hash: h(1),
                peers: vec![p(1), p(2), p(3)],
                more: false
            }]
        );
        assert_eq!((f.running(), f.remembered()), (1, 0));
        assert!(f.on_claimed(h(1), now).is_empty(), "already running");
        assert!(f.on_finished(h(1)));
        assert!(!f.on_finished(h(1)));
    }

    #[test]
    fn a_claim_while_the_lookup_runs_gets_the_rest_of_its_peers() {
        let now = Instant::now();
        let mut f = Fetches::new(10);
        f.on_peers(h(1), vec![p(1)]);
        assert_eq!(
            f.on_claimed(h(1), now),
            [Action::Start {
                info_hash: h(1),
                peers: vec![p(1)],
                more: true
            }]
        );
        assert_eq!(
            f.on_peers(h(1), vec![p(2)]),
            Some(Action::Add {
                info_hash: h(1),
                peers: vec![p(2)]
            })
        );
        assert_eq!(
            f.on_lookup_done(h(1)),
            Some(Action::End { info_hash: h(1) })
        );
        assert_eq!(f.on_lookup_done(h(1)), None, "ended once");
    }

    #[test]
    fn an_unknown_claim_asks_for_a_lookup() {
        let now = Instant::now();
        let mut f = Fetches::new(10);
        assert_eq!(
            f.on_claimed(h(5), now),
            [
                Action::Start {
                    info_hash: h(5),
                    peers: Vec::new(),
                    more: true
                },
                Action::Lookup { info_hash: h(5) }
            ]
        );
        let later = now + Duration::from_secs(100);
        assert_eq!(f.overdue(later, Duration::from_secs(90)), [h(5)]);
        assert!(f.overdue(later, Duration::from_secs(101)).is_empty());
    }

    #[test]
    fn remembered_peers_are_capped() {
        let mut f = Fetches::new(3);
        for i in 0..10 {
            f.on_peers(h(i), vec![p(1)]);
        }
        assert_eq!(f.remembered(), 3);
        f.on_peers(h(9), (0..200).map(p).collect());
        let start = f.on_claimed(h(9), Instant::now());
        let Action::Start { peers, .. } = &start[0] else {
            panic!("{start:?}");
        };
        assert_eq!(peers.len(), MAX_CACHED_PEERS);
        // The oldest were forgotten: a claim for one of them needs a lookup.
        assert_eq!(f.on_claimed(h(0), Instant::now()).len(), 2);
    }
}
