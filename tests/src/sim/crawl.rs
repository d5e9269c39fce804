//! A [`Crawler`] as hosts of the simulation: one host (one address) per id, the crawler
//! itself driven like one node (one timer, drained after every step that touched it).

use core::net::SocketAddr;
use std::collections::HashMap;

use dht_proto::crawl::{CrawlEvent, Crawler, CrawlerConfig, HowFound};
use dht_proto::{Id, Instant};

use super::{Host, Sim};
use crate::net::{host_addr, host_of};

/// The crawler of a simulation and what it did.
#[derive(Debug)]
pub struct CrawlHost {
    /// The crawler.
    pub crawler: Crawler,
    /// The host of each id (`local` index = position).
    pub hosts: Vec<u32>,
    pub(super) scheduled: Instant,
    /// Every info-hash discovered: when first, and how.
    pub discovered: HashMap<Id, (Instant, HowFound)>,
    /// Lookups that ended, with the peers they found.
    pub lookups_done: u64,
    /// Lookups that found at least one peer.
    pub lookups_with_peers: u64,
    /// The queries the crawler put on honest hosts.
    pub load: CrawlLoad,
    /// Datagrams the crawler sent.
    pub datagrams: u64,
}

/// The queries a crawler sends to each host, per second of virtual time.
#[derive(Debug, Default)]
pub struct CrawlLoad {
    /// Per host: the current second, queries in it, queries in all.
    per_host: HashMap<u32, (u64, u32, u64)>,
    /// The most queries one host got from the crawler (all its ids together) within one
    /// second of virtual time (a whole second: 12:00:01.000 to 12:00:01.999).
    pub max_per_second: u32,
    /// Queries sent in all.
    pub queries: u64,
}

impl CrawlLoad {
    fn note(&mut self, now: Instant, host: u32) {
        self.queries += 1;
        let second = now.as_millis() / 1000;
        let entry = self.per_host.entry(host).or_insert((second, 0, 0));
        if entry.0 != second {
            *entry = (second, 0, entry.2);
        }
        entry.1 += 1;
        entry.2 += 1;
        self.max_per_second = self.max_per_second.max(entry.1);
    }

    /// The most queries one host got in all.
    pub fn max_total(&self) -> u64 {
        self.per_host.values().map(|e| e.2).max().unwrap_or(0)
    }

    /// Hosts that got at least one query.
    pub fn hosts(&self) -> usize {
        self.per_host.len()
    }
}

/// Whether a KRPC datagram is a query (`y` is `q`).
fn is_query(data: &[u8]) -> bool {
    data.windows(6).any(|w| w == b"1:y1:q")
}

impl Sim {
    /// Starts a crawler with one host per id (its routing tables empty; see
    /// [`Sim::bootstrap_crawler`]). The node template's address policy is replaced by the
    /// simulation's (the hosts live in `10.0.0.0/8`). Returns the hosts. One crawler per
    /// simulation: a second call replaces the first's state (its hosts stay, as down hosts).
    pub fn add_crawler(&mut self, mut config: CrawlerConfig, ids: &[Id]) -> Vec<u32> {
        config.node.address_policy = self.config.node.address_policy;
        let crawler = Crawler::new(config, ids, self.now);
        if let Some(old) = self.crawl.take() {
            for h in old.hosts {
                if let Some(slot) = self.hosts.get_mut(h as usize) {
                    *slot = Host::Down(Id::new([0; 20]));
                }
            }
        }
        let hosts: Vec<u32> = (0..crawler.len())
            .map(|local| self.new_host(Host::Crawl(local)))
            .collect();
        self.crawl = Some(Box::new(CrawlHost {
            crawler,
            hosts: hosts.clone(),
            scheduled: Instant::MAX,
            discovered: HashMap::new(),
            lookups_done: 0,
            lookups_with_peers: 0,
            load: CrawlLoad::default(),
            datagrams: 0,
        }));
        self.touch_crawler();
        hosts
    }

    /// Bootstraps the crawler through the routers.
    pub fn bootstrap_crawler(&mut self) {
        let exclude = u32::MAX;
        let seeds = self.bootstrap_seeds(exclude);
        let now = self.now;
        if let Some(c) = self.crawl.as_mut() {
            c.crawler.bootstrap(now, &seeds);
        }
        self.touch_crawler();
    }

    /// The crawler, if one runs.
    pub fn crawler(&self) -> Option<&CrawlHost> {
        self.crawl.as_deref()
    }

    /// The crawler, mutably (for commands such as [`Crawler::lookup`]); it is drained at the
    /// next step.
    pub fn crawler_mut(&mut self) -> Option<&mut CrawlHost> {
        self.touch_crawler();
        self.crawl.as_deref_mut()
    }

    fn touch_crawler(&mut self) {
        if let Some(&h) = self.crawl.as_ref().and_then(|c| c.hosts.first()) {
            self.touch(h);
        }
    }

    pub(super) fn crawl_input(&mut self, local: usize, from: SocketAddr, data: &[u8]) {
        let now = self.now;
        if let Some(c) = self.crawl.as_mut() {
            c.crawler.handle_input(now, local, from, data);
        }
        self.touch_crawler();
    }

    pub(super) fn crawl_timeout(&mut self, t: Instant) {
        let now = self.now;
        let Some(c) = self.crawl.as_mut() else { return };
        if c.scheduled != t {
            return;
        }
        c.scheduled = Instant::MAX;
        c.crawler.handle_timeout(now);
        self.counters.timeouts += 1;
        self.touch_crawler();
    }

    /// Sends what the crawler has to send, takes in its events and sets its timer.
    pub(super) fn crawl_flush(&mut self) {
        let now = self.now;
        let Some(mut c) = self.crawl.take() else {
            return;
        };
        while let Some(t) = c.crawler.poll_transmit(now, &mut self.buf) {
            let (Some(data), Some(&h)) = (self.buf.get(..t.len), c.hosts.get(t.local)) else {
                break;
            };
            let from = host_addr(h);
            c.datagrams += 1;
            if is_query(data) {
                if let Some(to) = host_of(&t.to) {
                    c.load.note(now, to);
                }
            }
            self.trace.transmit(now, h, &from, &t.to, data);
            let mut packet = self.net.buffer();
            packet.extend_from_slice(data);
            self.net.send(now, h, from, t.to, packet);
        }
        while let Some(e) = c.crawler.poll_event() {
            match e {
                CrawlEvent::Discovered { info_hash, how, .. } => {
                    c.discovered.entry(info_hash).or_insert((now, how));
                }
                CrawlEvent::LookupDone { peers, .. } => {
                    c.lookups_done += 1;
                    if peers > 0 {
                        c.lookups_with_peers += 1;
                    }
                }
                CrawlEvent::Peers { .. } => {}
            }
        }
        let next = c.crawler.poll_timeout().unwrap_or(Instant::MAX);
        if next != c.scheduled {
            c.scheduled = next;
            if let (true, Some(&h)) = (next != Instant::MAX, c.hosts.first()) {
                self.timers.push(core::cmp::Reverse((next, h)));
            }
        }
        self.crawl = Some(c);
    }
}
