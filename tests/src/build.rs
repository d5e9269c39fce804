//! Building a steady-state network quickly.
//!
//! Bootstrapping 100,000 nodes one by one through the protocol costs minutes of wall time and
//! leaves the network in a transient state. Instead, [`seed_tables`] gives every honest node
//! what a long-running node's table looks like: for every bucket — the nodes that share the
//! first `b` bits of its id and differ at bit `b` — a random sample of bucket-size nodes from
//! the whole population (all of them when fewer exist), through the public
//! `Node::add_node(now, addr, Some(id))`. The nodes then verify and use these entries as they
//! would saved contacts.

use core::time::Duration;

use dht_proto::Id;
use dht_proto::wire::compact::NodeInfo;

use crate::net::host_addr;
use crate::rng::SimRng;
use crate::sim::{Action, ContactHow, Host, Sim};

/// The ids of every listed host (honest, hostile or down), sorted.
fn directory(sim: &Sim) -> Vec<([u8; 20], u32)> {
    let mut dir: Vec<([u8; 20], u32)> = (0..sim.hosts())
        .filter_map(|h| sim.id_of(h).map(|id| (id.to_bytes(), h)))
        .collect();
    dir.sort_unstable();
    dir
}

/// The smallest and largest ids that share the first `len` bits of `x`.
pub fn prefix_range(x: &[u8; 20], len: usize) -> ([u8; 20], [u8; 20]) {
    let mut lo = *x;
    let mut hi = *x;
    for (i, (l, h)) in lo.iter_mut().zip(hi.iter_mut()).enumerate() {
        let keep = len.saturating_sub(i * 8).min(8);
        let mask: u8 = if keep == 0 { 0 } else { 0xff << (8 - keep) };
        *l &= mask;
        *h |= !mask;
    }
    (lo, hi)
}

/// The smallest and largest ids that share the first `b` bits of `x` and differ at bit `b`.
pub fn sibling_range(x: &[u8; 20], b: usize) -> ([u8; 20], [u8; 20]) {
    let id = Id::new(*x);
    prefix_range(&id.with_bit(b, !id.bit(b)).to_bytes(), b + 1)
}

/// Indices `[start, end)` of `dir` whose ids lie in `[lo, hi]`.
fn span(dir: &[([u8; 20], u32)], lo: &[u8; 20], hi: &[u8; 20]) -> (usize, usize) {
    let start = dir.partition_point(|(id, _)| id < lo);
    let end = dir.partition_point(|(id, _)| id <= hi);
    (start, end.max(start))
}

/// Up to `n` distinct random indices from `start..end`.
fn sample(rng: &mut SimRng, start: usize, end: usize, n: usize, out: &mut Vec<usize>) {
    out.clear();
    let len = end - start;
    if len <= n {
        out.extend(start..end);
        return;
    }
    while out.len() < n {
        let i = start + rng.index(len);
        if !out.contains(&i) {
            out.push(i);
        }
    }
}

/// For every honest host, a sample of the other hosts bucket by bucket (`extra` more than the
/// bucket holds, as replacement candidates), indexed by host number (empty for other hosts).
pub fn plan_contacts(sim: &Sim, extra: usize) -> Vec<Vec<u32>> {
    let dir = directory(sim);
    let cfg = &sim.config.node;
    let (k, far_k, far) = (cfg.bucket_size, cfg.far_bucket_size, cfg.far_buckets);
    let mut rng = SimRng::new(sim.derive(0x7461_626c_6573));
    let mut picks = Vec::new();
    let mut plan = vec![Vec::new(); sim.hosts() as usize];
    for (h, contacts) in (0..sim.hosts()).zip(plan.iter_mut()) {
        let Some(Host::Honest(_)) = sim.host(h) else {
            continue;
        };
        let Some(own) = sim.id_of(h).map(Id::to_bytes) else {
            continue;
        };
        for b in 0..160 {
            let (lo, hi) = sibling_range(&own, b);
            let (start, end) = span(&dir, &lo, &hi);
            let size = if b < far { far_k } else { k } + extra;
            sample(&mut rng, start, end, size, &mut picks);
            contacts.extend(
                picks
                    .iter()
                    .filter_map(|&i| dir.get(i))
                    .filter(|(_, peer)| *peer != h)
                    .map(|(_, peer)| *peer),
            );
            // Stop once no other host shares the first b + 1 bits.
            let (own_lo, own_hi) = prefix_range(&own, b + 1);
            let (s, e) = span(&dir, &own_lo, &own_hi);
            if e - s <= 1 {
                break;
            }
        }
    }
    plan
}

/// How seeded contacts enter the routing tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeedMode {
    /// `Node::add_node(now, addr, Some(id))` at once: unverified candidates, which never split
    /// a bucket, so a fresh table keeps about one bucket of them.
    Candidates,
    /// `Node::import_nodes` at a random instant of `spread`: the contacts a node saved from an
    /// earlier run. They enter the table unverified (an import may split the own bucket) and
    /// the node verifies each with a ping some seconds later.
    Import {
        /// The window over which nodes import.
        spread: Duration,
    },
    /// `Node::import_answered_nodes` at once, each contact with the round-trip time of the
    /// pair: the table a node holds right after every contact answered a ping (what
    /// [`SeedMode::Ping`] builds), without the two datagrams per contact.
    Answered,
    /// `Node::add_node(now, addr, None)` from a random instant of `spread`, eight every 200 ms:
    /// the node pings each contact and the answer inserts a verified entry.
    Ping {
        /// The window over which nodes start pinging.
        spread: Duration,
    },
}

/// Fills every honest node's routing table from [`plan_contacts`]. Returns how many contacts
/// were offered. With [`SeedMode::Import`] or [`SeedMode::Ping`], run the simulation for the
/// spread plus some seconds (verification pings) for the tables to fill; the other modes fill
/// them at once.
pub fn seed_tables(sim: &mut Sim, extra: usize, mode: SeedMode) -> u64 {
    let plan = plan_contacts(sim, extra);
    let mut offered = 0u64;
    let now = sim.now;
    for (h, contacts) in (0..sim.hosts()).zip(plan) {
        if contacts.is_empty() {
            continue;
        }
        offered += contacts.len() as u64;
        let (spread, how) = match mode {
            SeedMode::Candidates => {
                let ids: Vec<(u32, Option<Id>)> =
                    contacts.iter().map(|&c| (c, sim.id_of(c))).collect();
                if let Some(node) = sim.node_mut(h) {
                    for (c, id) in ids {
                        let _ = node.add_node(now, host_addr(c), id);
                    }
                }
                continue;
            }
            SeedMode::Answered => {
                let answered: Vec<(NodeInfo, Duration)> = contacts
                    .iter()
                    .filter_map(|&c| {
                        let id = sim.id_of(c)?;
                        let info = NodeInfo {
                            id,
                            addr: host_addr(c),
                        };
                        Some((info, sim.net.rtt(h, c)))
                    })
                    .collect();
                if let Some(node) = sim.node_mut(h) {
                    node.import_answered_nodes(now, answered);
                }
                continue;
            }
            SeedMode::Import { spread } => (spread, ContactHow::Import),
            SeedMode::Ping { spread } => (spread, ContactHow::Ping),
        };
        let span = spread.as_millis().max(1) as u64;
        let at = now + Duration::from_millis(sim.rng.below(span));
        sim.contacts.insert(h, (how, contacts));
        sim.schedule(at, Action::Contact(h));
    }
    offered
}

/// Kills a random `fraction` of the unprotected honest nodes; they stay in others' tables as
/// dead entries. Returns the killed hosts.
pub fn kill_fraction(sim: &mut Sim, fraction: f64) -> Vec<u32> {
    let mut candidates: Vec<u32> = sim
        .honest_hosts()
        .filter(|&h| sim.honest(h).is_some_and(|x| !x.protected))
        .collect();
    let total = sim.honest_count();
    let n = ((total as f64 * fraction).round() as usize).min(candidates.len());
    let mut rng = SimRng::new(sim.derive(0x6465_6164));
    rng.shuffle(&mut candidates);
    candidates.truncate(n);
    candidates.sort_unstable();
    for &h in &candidates {
        sim.kill(h);
    }
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sibling_range_flips_bit_b_and_spans_the_rest() {
        let x = [0b1010_0000; 20];
        let (lo, hi) = sibling_range(&x, 2);
        // The first two bits kept (10), bit 2 flipped (1 to 0), the rest all 0 or all 1.
        assert_eq!(lo[0], 0b1000_0000);
        assert_eq!(hi[0], 0b1001_1111);
        assert!(lo[1..].iter().all(|&b| b == 0));
        assert!(hi[1..].iter().all(|&b| b == 0xff));
        let (lo, hi) = sibling_range(&x, 159);
        assert_eq!(lo, hi);
        assert_eq!(lo[19], 0b1010_0001);
    }

    #[test]
    fn prefix_range_keeps_len_bits() {
        let x = [0xab; 20];
        assert_eq!(prefix_range(&x, 0), ([0; 20], [0xff; 20]));
        assert_eq!(prefix_range(&x, 160), (x, x));
        let (lo, hi) = prefix_range(&x, 12);
        assert_eq!((lo[0], lo[1], lo[2]), (0xab, 0xa0, 0));
        assert_eq!((hi[0], hi[1], hi[2]), (0xab, 0xaf, 0xff));
    }

    #[test]
    fn span_and_sample() {
        let dir: Vec<([u8; 20], u32)> = (0..10u8).map(|i| ([i * 10; 20], u32::from(i))).collect();
        assert_eq!(span(&dir, &[15; 20], &[45; 20]), (2, 5));
        assert_eq!(span(&dir, &[20; 20], &[20; 20]), (2, 3));
        assert_eq!(span(&dir, &[200; 20], &[255; 20]), (10, 10));
        let mut rng = SimRng::new(1);
        let mut out = Vec::new();
        sample(&mut rng, 2, 5, 8, &mut out);
        assert_eq!(out, [2, 3, 4]);
        sample(&mut rng, 0, 100, 8, &mut out);
        assert_eq!(out.len(), 8);
        let mut sorted = out.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 8);
    }
}
