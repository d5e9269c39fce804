//! Routing-table micro-benchmarks on the table of a node in a network of ten million nodes.
//!
//! Run with `cargo bench -p dht-proto --bench routing`. Plain `std::time` loops, one line per
//! operation: nanoseconds per call, best of a few rounds.

use core::hint::black_box;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;
use std::time::Instant as Clock;

use dht_proto::TableConfig;
use dht_proto::internals::RoutingTable;
use dht_proto::{Id, Instant};
use rand_core::RngCore;

/// Nodes in the simulated network.
const NETWORK: f64 = 10_000_000.0;
/// Most nodes offered per depth (enough to fill any bucket and its replacement cache).
const OFFER_CAP: usize = 24;
const RTT: Duration = Duration::from_millis(40);

/// SplitMix64.
struct Rng(u64);

impl RngCore for Rng {
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
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// A random id sharing exactly `depth` leading bits with `own`.
fn id_at(own: &Id, depth: usize, rng: &mut Rng) -> Id {
    let sibling = own.with_bit(depth, !own.bit(depth));
    Id::random_with_prefix(&sibling, depth + 1, rng)
}

/// Distinct public IPv4 addresses (1.0.0.0 onwards).
fn addr(n: u32) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0100_0000 + n)), 6881)
}

/// The contacts a node with id `own` meets in a network of `NETWORK` random ids: a random
/// sample at every depth, as many as the network has there (capped), in random order.
fn network_sample(own: &Id, rng: &mut Rng, first_addr: &mut u32) -> Vec<(Id, SocketAddr)> {
    let mut nodes = Vec::new();
    for depth in 0..64 {
        let expected = NETWORK / 2f64.powi(depth as i32 + 1);
        let whole = expected.floor();
        let extra = (rng.next_u64() as f64 / u64::MAX as f64) < expected - whole;
        let count = (whole as usize + usize::from(extra)).min(OFFER_CAP);
        for _ in 0..count {
            nodes.push((id_at(own, depth, rng), addr(*first_addr)));
            *first_addr += 1;
        }
    }
    for i in (1..nodes.len()).rev() {
        nodes.swap(i, rng.below(i + 1));
    }
    nodes
}

fn filled_table(own: Id, nodes: &[(Id, SocketAddr)], now: Instant) -> RoutingTable {
    let mut table = RoutingTable::new(own, TableConfig::default(), now);
    for &(id, a) in nodes {
        let _ = table.on_response(now, id, a, RTT);
    }
    table
}

/// Runs `body(i)` for `i` in `0..iters`, five rounds; the best round's nanoseconds per call.
fn measure(iters: usize, mut body: impl FnMut(usize)) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Clock::now();
        for i in 0..iters {
            body(i);
        }
        best = best.min(start.elapsed().as_nanos() as f64 / iters as f64);
    }
    best
}

fn row(name: &str, ns: f64) {
    println!("| {name:<52} | {ns:>10.1} |");
}

fn main() {
    let mut rng = Rng(0x5eed);
    let own = Id::random(&mut rng);
    let now = Instant::from_secs(1_000);
    let mut next_addr = 0;
    let sample = network_sample(&own, &mut rng, &mut next_addr);
    let table = filled_table(own, &sample, now);
    let cached: usize = table.buckets().map(|b| b.replacements().len()).sum();
    let full = table.buckets().filter(|b| b.len() == b.capacity()).count();
    println!(
        "table of a node in a {NETWORK:.0}-node network: {} buckets ({full} full), {} entries, \
         {cached} replacements, from {} contacts offered",
        table.buckets().len(),
        table.len(),
        sample.len(),
    );
    println!();
    println!("| {:<52} | {:>10} |", "operation", "ns/op");
    println!("|{:-<54}|{:->12}|", "", "");

    // closest(target, 8).
    let random_targets: Vec<Id> = (0..4096).map(|_| Id::random(&mut rng)).collect();
    let near_targets: Vec<Id> = (0..4096)
        .map(|_| id_at(&own, 12 + rng.below(14), &mut rng))
        .collect();
    let mut out = Vec::with_capacity(8);
    let ns = measure(200_000, |i| {
        table.closest(&random_targets[i % 4096], 8, &mut out);
        black_box(&out);
    });
    row("closest(random target, 8)", ns);
    let ns = measure(200_000, |i| {
        table.closest(&near_targets[i % 4096], 8, &mut out);
        black_box(&out);
    });
    row("closest(target near own id, 8)", ns);
    let ns = measure(50_000, |i| {
        table.closest(&random_targets[i % 4096], 32, &mut out);
        black_box(&out);
    });
    row("closest(random target, 32)", ns);
    // The naive answer for comparison: every entry's distance, sorted.
    let mut all: Vec<(dht_proto::Distance, Id, SocketAddr)> = Vec::with_capacity(table.len());
    let ns = measure(50_000, |i| {
        let target = &random_targets[i % 4096];
        all.clear();
        all.extend(
            table
                .iter()
                .map(|e| (e.id().distance(target), e.id(), e.addr())),
        );
        all.sort_unstable_by_key(|x| x.0);
        out.clear();
        out.extend(all.iter().take(8).map(|x| (x.1, x.2)));
        black_box(&out);
    });
    row("reference: sort all entries by distance, take 8", ns);

    // Updates of known entries.
    let entries: Vec<(Id, SocketAddr)> = table.iter().map(|e| (e.id(), e.addr())).collect();
    let mut t = table.clone();
    let ns = measure(200_000, |i| {
        let (id, a) = entries[i % entries.len()];
        let at = now + Duration::from_millis(i as u64);
        let _ = black_box(t.on_response(at, id, a, RTT));
    });
    row("on_response, known entry (update)", ns);
    let ns = measure(200_000, |i| {
        let (id, a) = entries[i % entries.len()];
        let at = now + Duration::from_millis(i as u64);
        let _ = black_box(t.on_query(at, id, a));
    });
    row("on_query, known entry (update)", ns);
    let ns = measure(100_000, |i| {
        let (id, a) = entries[i % entries.len()];
        let at = now + Duration::from_millis(i as u64);
        t.on_failure(at, Some(id), a);
        let _ = black_box(t.on_response(at, id, a, RTT));
    });
    row("on_failure + on_response, known entry (pair)", ns);

    // Newcomers.
    let newcomers: Vec<(Id, SocketAddr)> = (0..65_536)
        .map(|_| {
            next_addr += 1;
            (id_at(&own, rng.below(20), &mut rng), addr(next_addr))
        })
        .collect();
    let mut t = table.clone();
    let ns = measure(65_536 / 5, {
        let mut k = 0;
        move |i| {
            let (id, a) = newcomers[k % newcomers.len()];
            k += 1;
            let at = now + Duration::from_millis(i as u64);
            let _ = black_box(t.on_response(at, id, a, RTT));
        }
    });
    row("on_response, new node into a full bucket (cache)", ns);
    let mut t = table.clone();
    let ns = measure(50_000, |i| {
        let (id, a) = entries[i % entries.len()];
        t.remove(&id);
        let _ = black_box(t.add_candidate(now, id, a));
    });
    row("remove + add_candidate (pair)", ns);

    // Building the table: every contact of the sample answers once.
    let ns = measure(200, |_| {
        black_box(filled_table(own, &sample, now));
    });
    row(
        &format!(
            "insert: build the table, per on_response ({})",
            sample.len()
        ),
        ns / sample.len() as f64,
    );

    // Maintenance.
    let mut t = table.clone();
    let mut pings = Vec::new();
    let mut targets = Vec::new();
    let ns = measure(50_000, |i| {
        let at = now + Duration::from_secs(i as u64 % 3600);
        pings.clear();
        targets.clear();
        t.pings_due(at, &mut pings);
        t.refresh_targets(at, &mut rng, &mut targets);
        black_box(t.next_deadline());
    });
    row("pings_due + refresh_targets + next_deadline", ns);
    let ns = measure(20_000, |_| {
        black_box(table.export());
    });
    row(&format!("export ({} contacts)", table.export().len()), ns);
}
