//! A crawler built over the core: many node ids in one process and one thread (spread over the
//! key space by `crawl::spread_ids`), harvesting the info-hashes of incoming queries and of BEP 51
//! samples (`crawl::Harvester`), on an in-memory network of ordinary nodes. No sockets and no
//! clock: virtual time advances to the next deadline.
//!
//! Run with `cargo run -p dht-proto --example crawler`. It prints what the crawler learned and
//! exits 0 if it found every announced info-hash.

use core::cmp::Reverse;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::process::ExitCode;

use dht_proto::crawl::{Found, Harvester, HowFound, spread_ids};
// The crate's small deterministic generator for tests and examples (SplitMix64), for the
// crawler's ids and hash keys; a real crawler draws from `dht_proto::SeededRng` with
// a secret seed.
use dht_proto::internals::TestRng;
use dht_proto::{Config, Event, Id, Instant, Node};

/// A datagram in flight: due time, sequence number (ties keep sending order), destination
/// node, source address, bytes.
type Delivery = (Instant, u64, usize, SocketAddr, Vec<u8>);

/// A network address per node: 10.0.x.y, port 6881.
fn address(i: usize) -> SocketAddr {
    let [_, _, a, b] = (i as u32 + 1).to_be_bytes();
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, a, b)), 6881)
}

/// A seed per node, so the whole run is reproducible.
fn seed(i: usize) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
    s
}

fn main() -> ExitCode {
    const HONEST: usize = 60;
    const CRAWLER_IDS: usize = 8;
    let latency = Duration::from_millis(30);
    let mut now = Instant::from_secs(1);

    // Ordinary nodes, then the crawler's nodes: one per id, spread over the id space so that
    // together they hear from much of the network. All are plain `Node`s.
    let mut rng = TestRng(42);
    let crawler_ids = spread_ids(CRAWLER_IDS as u32, &mut rng);
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..HONEST + CRAWLER_IDS {
        let mut config = Config::local_testing(seed(i));
        config.address_policy = dht_proto::AddressPolicy::ALLOW_ALL;
        if let Some(&id) = i.checked_sub(HONEST).and_then(|k| crawler_ids.get(k)) {
            config.report_queries = true;
            config.id = Some(id);
        }
        nodes.push(Node::new(config, now).expect("valid config"));
    }
    let by_addr: HashMap<SocketAddr, usize> = (0..nodes.len()).map(|i| (address(i), i)).collect();

    // Everyone joins through node 0; a few nodes announce info-hashes.
    for node in nodes.iter_mut().skip(1) {
        node.bootstrap(now, [address(0)]).expect("a seed");
    }
    let announced: Vec<Id> = (1..=6u8)
        .map(|b| Id::new([b.wrapping_mul(37); 20]))
        .collect();

    // Deliveries ordered by time (a min-heap through Reverse).
    let mut queue: BinaryHeap<Reverse<Delivery>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut buf = [0u8; 1500];
    let mut harvester = Harvester::new(100_000, &mut rng);
    let mut found: Vec<Found> = Vec::new();
    let mut queries_seen = 0usize;
    let start = now;
    let end = start + Duration::from_secs(300);
    let (mut announcing, mut sampling) = (false, false);
    while now < end {
        // Phases at fixed virtual times: announce after a minute, crawl after two.
        if !announcing && now >= start + Duration::from_secs(60) {
            announcing = true;
            for (k, ih) in announced.iter().enumerate() {
                let _ = nodes[5 + k * 7].announce_peer(now, *ih, Some(7000));
            }
        }
        if !sampling && now >= start + Duration::from_secs(120) {
            sampling = true;
            for crawler in nodes.iter_mut().skip(HONEST) {
                let target = crawler.id();
                let _ = crawler.sample_infohashes(now, target);
            }
        }
        // Drain every node.
        for (i, node) in nodes.iter_mut().enumerate() {
            while let Some(t) = node.poll_transmit(now, &mut buf) {
                if let Some(&to) = by_addr.get(&t.to) {
                    seq += 1;
                    let msg = buf[..t.len].to_vec();
                    queue.push(Reverse((now + latency, seq, to, address(i), msg)));
                }
            }
            while let Some(event) = node.poll_event() {
                if i >= HONEST {
                    queries_seen += usize::from(matches!(event, Event::QueryReceived { .. }));
                    harvester.observe(&event, &mut found);
                }
            }
        }
        // Jump to the next delivery or deadline.
        let next_delivery = queue.peek().map(|d| d.0.0);
        let next_timer = nodes.iter().filter_map(Node::poll_timeout).min();
        let next_phase = [(announcing, 60), (sampling, 120)]
            .into_iter()
            .find(|(done, _)| !done)
            .map(|(_, secs)| start + Duration::from_secs(secs));
        let Some(next) = next_delivery
            .into_iter()
            .chain(next_timer)
            .chain(next_phase)
            .min()
        else {
            break;
        };
        now = now.max(next);
        while queue.peek().is_some_and(|d| d.0.0 <= now) {
            let Reverse((_, _, to, from, msg)) = queue.pop().expect("peeked");
            let _ = nodes[to].handle_datagram(now, from, &msg);
        }
        for node in &mut nodes {
            if node.poll_timeout().is_some_and(|t| t <= now) {
                node.handle_timeout(now);
            }
        }
    }

    let known: BTreeSet<Id> = found.iter().map(|f| f.info_hash).collect();
    let hits = announced.iter().filter(|ih| known.contains(ih)).count();
    let by = |how| found.iter().filter(|f| f.how == how).count();
    println!(
        "crawler: {CRAWLER_IDS} ids saw {queries_seen} incoming queries; {} distinct info-hashes \
         found ({} from get_peers, {} from announce_peer, {} from samples), {hits} of the {} \
         announced",
        found.len(),
        by(HowFound::GetPeers),
        by(HowFound::AnnouncePeer),
        by(HowFound::Sample),
        announced.len(),
    );
    if hits == announced.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
