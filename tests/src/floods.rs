//! Floods at network scale, and what they cost the honest network and third parties.
//!
//! - [`reflection_flood`]: queries with spoofed source addresses (many "victims" that never
//!   talk to the DHT) aimed at the nodes that store data, while honest nodes look up. The
//!   answers toward the victims are counted and swallowed by a packet rule: their bytes over the
//!   bytes of the spoofed queries are the amplification an attacker gets.
//! - [`store_flood`]: a few hosts harvest tokens from the nodes that store honest announces and
//!   then announce random info-hashes to them as fast as they can; afterwards honest lookups
//!   must still find the honest peers.
//!
//! Every honest node's caps are checked after every step, as in every simulation.

use core::cell::Cell;
use core::net::SocketAddr;
use core::time::Duration;
use std::rc::Rc;
use std::time::Instant as WallClock;

use dht_proto::{DropReason, Id, Node};

use crate::bencode::{Value, dict};
use crate::hostile::Behaviour;
use crate::net::host_addr;
use crate::rng::SimRng;
use crate::rules::{PacketInfo, Rule, Verdict};
use crate::scenario::{self, Params, Target};
use crate::sim::{Sim, SimError};

/// A reflection flood.
#[derive(Clone, Debug)]
pub struct ReflectionFlood {
    /// The network (its `announces` are the data the flooded nodes hold).
    pub network: Params,
    /// Distinct spoofed source addresses.
    pub sources: u32,
    /// Of those, the victims of a sustained flood: half of the datagrams claim to come from
    /// them, the other half from the rest (a few each).
    pub sustained: u32,
    /// Spoofed datagrams sent.
    pub datagrams: u64,
    /// Over this much virtual time.
    pub over: Duration,
    /// Honest lookups started during the flood.
    pub lookups: u32,
}

/// A store-eviction flood.
#[derive(Clone, Debug)]
pub struct StoreFlood {
    /// The network (its `announces` are the honest data).
    pub network: Params,
    /// Flooding hosts.
    pub flooders: u32,
    /// How long they flood.
    pub over: Duration,
}

/// What a flood did.
#[derive(Clone, Debug, Default)]
pub struct FloodReport {
    /// Honest nodes.
    pub honest: usize,
    /// Datagrams the attacker sent.
    pub attack_datagrams: u64,
    /// Bytes of those datagrams (for a reflection flood: what the victims "sent").
    pub attack_bytes: u64,
    /// Datagrams honest nodes sent to the victims.
    pub victim_datagrams: u64,
    /// Bytes honest nodes sent to the victims.
    pub victim_bytes: u64,
    /// Bytes the attacker sent claiming to be one of the victims of the sustained flood.
    pub sustained_attack_bytes: u64,
    /// Bytes honest nodes sent to those victims.
    pub sustained_victim_bytes: u64,
    /// Honest lookups started, and those that found the announced peer.
    pub lookups: usize,
    /// Lookups that found the announced peer.
    pub lookups_ok: usize,
    /// Datagrams the honest nodes dropped, by reason.
    pub drops: Vec<(DropReason, u64)>,
    /// Peers from the flooders held by honest nodes at the end, all nodes together.
    pub flooder_peers: usize,
    /// Most peers of any one honest node's store at the end.
    pub max_store: usize,
    /// Wall-clock time of the flood phase.
    pub wall: Duration,
}

impl FloodReport {
    /// Bytes sent to the victims per byte the victims (seemed to) send.
    pub fn amplification(&self) -> f64 {
        self.victim_bytes as f64 / self.attack_bytes.max(1) as f64
    }

    /// [`FloodReport::amplification`] toward the victims of the sustained flood only.
    pub fn sustained_amplification(&self) -> f64 {
        self.sustained_victim_bytes as f64 / self.sustained_attack_bytes.max(1) as f64
    }

    /// Share of lookups that found the announced peer.
    pub fn success(&self) -> f64 {
        self.lookups_ok as f64 / self.lookups.max(1) as f64
    }

    /// One line per measure.
    pub fn lines(&self) -> Vec<String> {
        let mut v = vec![
            format!("honest nodes                 {}", self.honest),
            format!(
                "attack                       {} datagrams",
                self.attack_datagrams
            ),
        ];
        if self.attack_bytes > 0 {
            v.push(format!(
                "to the victims               {} datagrams, {} bytes for {} ({:.2}x)",
                self.victim_datagrams,
                self.victim_bytes,
                self.attack_bytes,
                self.amplification()
            ));
            v.push(format!(
                "to the sustained victims     {} bytes for {} ({:.2}x)",
                self.sustained_victim_bytes,
                self.sustained_attack_bytes,
                self.sustained_amplification()
            ));
        } else {
            v.push(format!(
                "flooders' peers stored       {}",
                self.flooder_peers
            ));
        }
        v.extend([
            format!(
                "honest lookups               {} of {} found the peer ({:.2} %)",
                self.lookups_ok,
                self.lookups,
                self.success() * 100.0
            ),
            format!("largest peer store           {}", self.max_store),
            format!("wall time of the flood       {:.1?}", self.wall),
        ]);
        for (r, n) in &self.drops {
            if *n > 0 {
                v.push(format!("dropped: {:<20} {n}", r.name()));
            }
        }
        v
    }
}

/// Counts and swallows what is sent to hosts `first..end` (the victims).
#[derive(Debug)]
struct VictimMeter {
    first: u32,
    end: u32,
    /// Hosts `first..sustained_end` are the victims of the sustained flood.
    sustained_end: u32,
    datagrams: Rc<Cell<u64>>,
    bytes: Rc<Cell<u64>>,
    sustained_bytes: Rc<Cell<u64>>,
}

impl Rule for VictimMeter {
    fn on_packet(&mut self, p: &PacketInfo<'_>, _: &mut SimRng) -> Verdict {
        match p.receiver {
            Some(r) if (self.first..self.end).contains(&r) => {
                self.datagrams.set(self.datagrams.get() + 1);
                self.bytes.set(self.bytes.get() + p.data.len() as u64);
                if r < self.sustained_end {
                    self.sustained_bytes
                        .set(self.sustained_bytes.get() + p.data.len() as u64);
                }
                Verdict::Drop
            }
            _ => Verdict::Pass,
        }
    }
}

/// The honest host whose id is closest to `target`.
fn closest_host(sim: &Sim, target: &Id) -> Option<u32> {
    sim.honest_hosts()
        .filter_map(|h| sim.node(h).map(|n| (n.id().distance(target), h)))
        .min()
        .map(|(_, h)| h)
}

fn drops(sim: &Sim) -> Vec<(DropReason, u64)> {
    DropReason::ALL
        .iter()
        .map(|&r| {
            let n = sim
                .honest_hosts()
                .filter_map(|h| sim.node(h))
                .map(|n| n.stats().dropped(r))
                .sum();
            (r, n)
        })
        .collect()
}

/// Starts `n` lookups of random `targets`, spread over `over`, and waits for them; returns
/// (started, found the announced peer).
fn lookups_during(
    sim: &mut Sim,
    targets: &[Target],
    n: u32,
    over: Duration,
    mut each_step: impl FnMut(&mut Sim),
) -> Result<(usize, usize), SimError> {
    sim.finished.clear();
    let steps = over.as_millis() as u64 / 10;
    let every = (steps / u64::from(n.max(1))).max(1);
    let mut started = 0;
    for step in 0..steps {
        each_step(sim);
        if step % every == 0 && started < n as usize && !targets.is_empty() {
            let t = targets[sim.rng.index(targets.len())];
            if let Some(h) = scenario::pick_live(sim, true) {
                if sim.get_peers(h, t.info_hash, step, Some(t.peer)).is_ok() {
                    started += 1;
                }
            }
        }
        sim.run_for(Duration::from_millis(10))?;
    }
    sim.run_until_watched_done(Duration::from_secs(300))?;
    let ok = sim
        .finished
        .drain(..)
        .filter(|w| w.found_expected.is_some())
        .count();
    Ok((started, ok))
}

/// A spoofed query from `from` of one of the kinds that reflect the most.
fn spoofed_query(rng: &mut SimRng, n: u64, targets: &[Target]) -> Vec<u8> {
    let tid = (n as u16).to_be_bytes();
    let id = rng.bytes20();
    let any = rng.bytes20();
    let stored = targets
        .get(rng.index(targets.len().max(1)))
        .map_or(any, |t| *t.info_hash.as_bytes());
    let (method, key, target): (&[u8], &'static [u8], [u8; 20]) = match rng.below(10) {
        0..=4 => (b"get_peers", b"info_hash", stored),
        5 | 6 => (b"find_node", b"target", any),
        7 => (b"sample_infohashes", b"target", any),
        8 => (b"get", b"target", any),
        _ => (b"ping", b"id", id),
    };
    let mut args = vec![(&b"id"[..], Value::Bytes(&id))];
    if key != b"id" {
        args.push((key, Value::Bytes(&target)));
    }
    dict(vec![
        (b"t", Value::Bytes(&tid)),
        (b"y", Value::Bytes(b"q")),
        (b"q", Value::Bytes(method)),
        (b"a", dict(args)),
    ])
    .encode()
}

/// Builds the network, announces, then floods the storers of the announces with spoofed
/// queries while honest nodes look the announces up.
///
/// # Errors
///
/// A broken invariant, a livelock or a lookup that never ends.
pub fn reflection_flood(f: &ReflectionFlood) -> Result<FloodReport, SimError> {
    let (mut sim, mut report) = scenario::build_network(&f.network)?;
    let targets = scenario::announce(&mut sim, &f.network, &mut report)?;
    let flooded: Vec<SocketAddr> = targets
        .iter()
        .filter_map(|t| closest_host(&sim, &t.info_hash))
        .map(host_addr)
        .collect();
    let attacker = sim.add_hostile(Behaviour::Silent);
    // Victims: addresses of hosts that do not exist, far above the network.
    let first = sim.hosts() + 1_000;
    let end = first + f.sources;
    let sustained_end = first + f.sustained.clamp(1, f.sources);
    let datagrams = Rc::new(Cell::new(0));
    let bytes = Rc::new(Cell::new(0));
    let sustained_bytes = Rc::new(Cell::new(0));
    sim.net.add_rule(VictimMeter {
        first,
        end,
        sustained_end,
        datagrams: Rc::clone(&datagrams),
        bytes: Rc::clone(&bytes),
        sustained_bytes: Rc::clone(&sustained_bytes),
    });
    let mut out = FloodReport {
        honest: sim.honest_count(),
        ..FloodReport::default()
    };
    let steps = (f.over.as_millis() as u64 / 10).max(1);
    let per_step = f.datagrams / steps;
    let mut rng = SimRng::new(sim.derive(0xf100d));
    let mut sent = 0u64;
    let wall = WallClock::now();
    let (started, ok) = lookups_during(&mut sim, &targets, f.lookups, f.over, |sim| {
        let now = sim.now;
        for _ in 0..per_step {
            let heavy = sent % 2 == 0;
            let victim = if heavy {
                first + rng.below(u64::from(sustained_end - first)) as u32
            } else {
                sustained_end + rng.below(u64::from(end - sustained_end).max(1)) as u32
            };
            let victim = host_addr(victim);
            let Some(&to) = flooded.get(rng.index(flooded.len())) else {
                return;
            };
            let data = spoofed_query(&mut rng, sent, &targets);
            out.attack_bytes += data.len() as u64;
            if heavy {
                out.sustained_attack_bytes += data.len() as u64;
            }
            sent += 1;
            sim.net.send(now, attacker, victim, to, data);
        }
    })?;
    out.wall = wall.elapsed();
    out.attack_datagrams = sent;
    out.victim_datagrams = datagrams.get();
    out.victim_bytes = bytes.get();
    out.sustained_victim_bytes = sustained_bytes.get();
    out.lookups = started;
    out.lookups_ok = ok;
    out.drops = drops(&sim);
    out.max_store = max_store(&sim);
    Ok(out)
}

fn max_store(sim: &Sim) -> usize {
    sim.honest_hosts()
        .filter_map(|h| sim.node(h))
        .map(|n| n.stored_peers())
        .max()
        .unwrap_or(0)
}

/// Builds the network, announces, lets flooders announce random info-hashes to the storers of
/// the announces, then looks every announce up.
///
/// # Errors
///
/// A broken invariant, a livelock or a lookup that never ends.
pub fn store_flood(f: &StoreFlood) -> Result<FloodReport, SimError> {
    let (mut sim, mut report) = scenario::build_network(&f.network)?;
    let targets = scenario::announce(&mut sim, &f.network, &mut report)?;
    // The storers: the nodes closest to each announced info-hash.
    let focus: Vec<SocketAddr> = targets
        .iter()
        .filter_map(|t| closest_host(&sim, &t.info_hash))
        .map(host_addr)
        .collect();
    let flooders: Vec<u32> = (0..f.flooders)
        .map(|_| sim.add_hostile(Behaviour::StoreFlooder))
        .collect();
    for &h in &flooders {
        if let Some(x) = sim.hostile_mut(h) {
            x.focus.clone_from(&focus);
        }
    }
    let wall = WallClock::now();
    sim.run_for(f.over)?;
    let wall = wall.elapsed();
    let mut out = FloodReport {
        honest: sim.honest_count(),
        wall,
        ..FloodReport::default()
    };
    for &h in &flooders {
        if let Some(x) = sim.hostile(h) {
            out.attack_datagrams += x.sent;
        }
        // Stop: the lookups afterwards measure what the flood left.
        if let Some(x) = sim.hostile_mut(h) {
            x.paused = true;
        }
    }
    let flooder_ips: Vec<_> = flooders.iter().map(|&h| host_addr(h).ip()).collect();
    out.flooder_peers = sim
        .honest_hosts()
        .filter_map(|h| sim.node(h))
        .map(|n: &Node| {
            flooder_ips
                .iter()
                .map(|ip| n.stored_peers_from(*ip))
                .sum::<usize>()
        })
        .sum();
    out.max_store = max_store(&sim);
    // Every announce, looked up once.
    let n = targets.len() as u32;
    let (started, ok) = lookups_during(
        &mut sim,
        &targets,
        n,
        Duration::from_millis(10 * u64::from(n.max(1))),
        |_| {},
    )?;
    out.lookups = started;
    out.lookups_ok = ok;
    out.drops = drops(&sim);
    Ok(out)
}
