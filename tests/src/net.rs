//! [`Net`]: the seeded, I/O-free network that carries datagrams between simulated hosts.
//!
//! Hosts are numbers; host `h` lives at [`host_addr`]`(h)` (`10.x.y.z:6881`, distinct IPs so
//! one-entry-per-IP routing tables accept every host). A datagram handed to [`Net::send`] goes
//! through, in order: partitions, [`Rule`]s (first non-[`Verdict::Pass`] wins), then the link
//! model (loss, duplication, reordering), and is scheduled for delivery after the pair's
//! latency. Deliveries come out of a binary heap ordered by `(time, sequence number)`, so equal
//! times are delivered in sending order and a run is a pure function of the seed.

use core::cmp::Reverse;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;
use std::collections::BinaryHeap;

use dht_proto::Instant;

use crate::latency::LatencyModel;
use crate::rng::SimRng;
use crate::rules::{PacketInfo, Rule, Verdict};

/// The UDP port every simulated host uses.
pub const PORT: u16 = 6881;

/// Most hosts a simulation can address (10.0.0.1 up to 10.255.255.254).
pub const MAX_HOSTS: u32 = (1 << 24) - 2;

/// The address of host `h` (`h < MAX_HOSTS`): `10.0.0.0 + h + 1`, port 6881.
pub fn host_addr(h: u32) -> SocketAddr {
    let ip = (10u32 << 24) | (h.min(MAX_HOSTS - 1) + 1);
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), PORT)
}

/// The host an address belongs to, if any (the port must be [`PORT`]).
pub fn host_of(addr: &SocketAddr) -> Option<u32> {
    let SocketAddr::V4(v4) = addr else {
        return None;
    };
    let ip = u32::from(*v4.ip());
    if ip >> 24 != 10 || v4.port() != PORT {
        return None;
    }
    let low = ip & 0x00ff_ffff;
    if low == 0 || low > MAX_HOSTS {
        return None;
    }
    Some(low - 1)
}

/// Random faults of every link.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkConfig {
    /// Chance that a datagram is lost.
    pub loss: f64,
    /// Chance that a datagram is delivered twice.
    pub duplicate: f64,
    /// Chance that a datagram is held back by up to `reorder_delay`, so later ones overtake it.
    pub reorder: f64,
    /// Longest extra delay of a reordered datagram.
    pub reorder_delay: Duration,
}

/// What happens to datagrams that cross a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartitionMode {
    /// They are lost.
    Drop,
    /// They are kept and delivered when the partition heals (as a network buffering them).
    Hold,
}

/// A datagram due for delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// When it arrives.
    pub at: Instant,
    /// The host that really sent it.
    pub sender: u32,
    /// The source address it claims.
    pub from: SocketAddr,
    /// Its destination.
    pub to: SocketAddr,
    /// Its destination host.
    pub receiver: u32,
    /// The bytes.
    pub data: Vec<u8>,
}

/// What the network did, summed over a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetCounters {
    /// Datagrams handed to [`Net::send`].
    pub sent: u64,
    /// Bytes handed to [`Net::send`].
    pub bytes_sent: u64,
    /// Datagrams handed out by [`Net::pop_due`].
    pub delivered: u64,
    /// Lost by the link model.
    pub lost: u64,
    /// Extra copies made (link model and rules).
    pub duplicated: u64,
    /// Held back to be overtaken.
    pub reordered: u64,
    /// Dropped by a rule.
    pub dropped_by_rule: u64,
    /// Changed by a rule (corrupt, truncate, replace).
    pub altered_by_rule: u64,
    /// Lost at a partition.
    pub partitioned: u64,
    /// Addressed to no host.
    pub unroutable: u64,
}

/// The simulated network.
#[derive(Debug)]
pub struct Net {
    seed: u64,
    rng: SimRng,
    /// The latency model.
    pub latency: LatencyModel,
    /// The link faults.
    pub link: LinkConfig,
    rules: Vec<Box<dyn Rule>>,
    /// Delivery order: `(time, sequence, slot)`, the datagram itself in `slab[slot]` (keeps
    /// the heap's elements small).
    heap: BinaryHeap<Reverse<(Instant, u64, u32)>>,
    slab: Vec<Option<Datagram>>,
    free: Vec<u32>,
    seq: u64,
    groups: Vec<u16>,
    partition: Option<PartitionMode>,
    held: Vec<(u32, SocketAddr, SocketAddr, Vec<u8>)>,
    pool: Vec<Vec<u8>>,
    /// Counters.
    pub counters: NetCounters,
}

impl Net {
    /// A network whose every random choice derives from `seed`.
    pub fn new(seed: u64, latency: LatencyModel, link: LinkConfig) -> Self {
        Self {
            seed,
            rng: SimRng::new(seed ^ 0x6e65_7477_6f72_6b00),
            latency,
            link,
            rules: Vec::new(),
            heap: BinaryHeap::new(),
            slab: Vec::new(),
            free: Vec::new(),
            seq: 0,
            groups: Vec::new(),
            partition: None,
            held: Vec::new(),
            pool: Vec::new(),
            counters: NetCounters::default(),
        }
    }

    /// The seed of the latency model (for [`LatencyModel::rtt`]).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The stable RTT between two hosts.
    pub fn rtt(&self, a: u32, b: u32) -> Duration {
        self.latency.rtt(self.seed, a, b)
    }

    /// Installs a rule after the existing ones.
    pub fn add_rule(&mut self, rule: impl Rule + 'static) {
        self.rules.push(Box::new(rule));
    }

    /// Removes every rule.
    pub fn clear_rules(&mut self) {
        self.rules.clear();
    }

    /// Datagrams waiting for delivery.
    pub fn in_flight(&self) -> usize {
        self.heap.len()
    }

    /// When the next datagram arrives.
    pub fn next_delivery(&self) -> Option<Instant> {
        self.heap.peek().map(|r| r.0.0)
    }

    /// The next datagram due at or before `now`, earliest (then first sent) first.
    pub fn pop_due(&mut self, now: Instant) -> Option<Datagram> {
        loop {
            let &Reverse((at, _, slot)) = self.heap.peek()?;
            if at > now {
                return None;
            }
            self.heap.pop();
            if let Some(d) = self.slab.get_mut(slot as usize).and_then(Option::take) {
                self.free.push(slot);
                self.counters.delivered += 1;
                return Some(d);
            }
        }
    }

    /// A cleared buffer for the next datagram (reused from delivered ones).
    pub fn buffer(&mut self) -> Vec<u8> {
        let mut b = self.pool.pop().unwrap_or_default();
        b.clear();
        b
    }

    /// Returns a delivered datagram's buffer for reuse.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        if self.pool.len() < 4096 {
            self.pool.push(buf);
        }
    }

    fn group(&self, h: u32) -> u16 {
        self.groups.get(h as usize).copied().unwrap_or(0)
    }

    /// Splits the network: `side` goes to group `group` (others stay where they are, group 0
    /// at first) and, until [`Net::heal`], datagrams between different groups are dropped or
    /// held.
    pub fn partition(
        &mut self,
        side: impl IntoIterator<Item = u32>,
        group: u16,
        mode: PartitionMode,
    ) {
        for h in side {
            let i = h as usize;
            if self.groups.len() <= i {
                self.groups.resize(i + 1, 0);
            }
            if let Some(g) = self.groups.get_mut(i) {
                *g = group;
            }
        }
        self.partition = Some(mode);
    }

    /// Whether a partition is in force.
    pub fn is_partitioned(&self) -> bool {
        self.partition.is_some()
    }

    /// Ends every partition; held datagrams leave now (with fresh latency).
    pub fn heal(&mut self, now: Instant) {
        self.partition = None;
        self.groups.clear();
        for (sender, from, to, data) in core::mem::take(&mut self.held) {
            self.send(now, sender, from, to, data);
        }
    }

    /// Sends `data` from host `sender` (claiming source `from`) to `to` at `now`.
    pub fn send(
        &mut self,
        now: Instant,
        sender: u32,
        from: SocketAddr,
        to: SocketAddr,
        data: Vec<u8>,
    ) {
        self.counters.sent += 1;
        self.counters.bytes_sent += data.len() as u64;
        let Some(receiver) = host_of(&to) else {
            self.counters.unroutable += 1;
            self.recycle(data);
            return;
        };
        if let Some(mode) = self.partition {
            if self.group(sender) != self.group(receiver) {
                match mode {
                    PartitionMode::Drop => {
                        self.counters.partitioned += 1;
                        self.recycle(data);
                    }
                    PartitionMode::Hold => self.held.push((sender, from, to, data)),
                }
                return;
            }
        }
        let mut verdict = Verdict::Pass;
        if !self.rules.is_empty() {
            let info = PacketInfo {
                now,
                sender,
                from,
                to,
                receiver: Some(receiver),
                data: &data,
            };
            for rule in &mut self.rules {
                verdict = rule.on_packet(&info, &mut self.rng);
                if verdict != Verdict::Pass {
                    break;
                }
            }
        }
        let mut data = data;
        let mut extra = Duration::ZERO;
        let mut copies = 0u8;
        match verdict {
            Verdict::Pass => {
                if self.rng.chance(self.link.loss) {
                    self.counters.lost += 1;
                    self.recycle(data);
                    return;
                }
                if self.rng.chance(self.link.duplicate) {
                    copies = 1;
                }
                if self.rng.chance(self.link.reorder) {
                    self.counters.reordered += 1;
                    let max = self.link.reorder_delay.as_millis() as u64;
                    extra = Duration::from_millis(self.rng.below(max + 1));
                }
            }
            Verdict::Deliver => {}
            Verdict::Drop => {
                self.counters.dropped_by_rule += 1;
                self.recycle(data);
                return;
            }
            Verdict::Delay(d) => extra = d,
            Verdict::Duplicate(n) => copies = n,
            Verdict::Corrupt(bits) => {
                self.counters.altered_by_rule += 1;
                if !data.is_empty() {
                    for _ in 0..bits {
                        let i = self.rng.index(data.len());
                        let bit = 1u8 << self.rng.below(8);
                        if let Some(b) = data.get_mut(i) {
                            *b ^= bit;
                        }
                    }
                }
            }
            Verdict::Truncate(n) => {
                self.counters.altered_by_rule += 1;
                data.truncate(n);
            }
            Verdict::Replace(bytes) => {
                self.counters.altered_by_rule += 1;
                data = bytes;
            }
        }
        for _ in 0..copies {
            self.counters.duplicated += 1;
            let mut copy = self.buffer();
            copy.extend_from_slice(&data);
            self.schedule(now, sender, from, to, receiver, copy, Duration::ZERO);
        }
        self.schedule(now, sender, from, to, receiver, data, extra);
    }

    #[allow(clippy::too_many_arguments)]
    fn schedule(
        &mut self,
        now: Instant,
        sender: u32,
        from: SocketAddr,
        to: SocketAddr,
        receiver: u32,
        data: Vec<u8>,
        extra: Duration,
    ) {
        let delay = self
            .latency
            .one_way_millis(self.seed, sender, receiver, &mut self.rng);
        let at = now + Duration::from_millis(delay) + extra;
        self.seq += 1;
        let dgram = Datagram {
            at,
            sender,
            from,
            to,
            receiver,
            data,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                if let Some(s) = self.slab.get_mut(slot as usize) {
                    *s = Some(dgram);
                }
                slot
            }
            None => {
                self.slab.push(Some(dgram));
                (self.slab.len() - 1) as u32
            }
        };
        self.heap.push(Reverse((at, self.seq, slot)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Selector, SimpleRule};

    fn net(link: LinkConfig) -> Net {
        Net::new(1, LatencyModel::constant(Duration::from_millis(100)), link)
    }

    fn drain(n: &mut Net, until: Instant) -> Vec<Datagram> {
        let mut out = Vec::new();
        while let Some(d) = n.pop_due(until) {
            out.push(d);
        }
        out
    }

    #[test]
    fn addresses_round_trip() {
        for h in [0, 1, 254, 255, 256, 65_535, 100_000, MAX_HOSTS - 1] {
            assert_eq!(host_of(&host_addr(h)), Some(h));
        }
        assert_eq!(host_addr(0).to_string(), "10.0.0.1:6881");
        assert_eq!(host_addr(255).to_string(), "10.0.1.0:6881");
        assert_eq!(host_of(&"10.0.0.0:6881".parse().unwrap()), None);
        assert_eq!(host_of(&"10.0.0.1:6882".parse().unwrap()), None);
        assert_eq!(host_of(&"11.0.0.1:6881".parse().unwrap()), None);
        assert_eq!(host_of(&"[::1]:6881".parse().unwrap()), None);
    }

    #[test]
    fn delivery_after_latency_in_send_order() {
        let mut n = net(LinkConfig::default());
        let t0 = Instant::from_secs(1);
        for i in 0..5u8 {
            n.send(t0, 1, host_addr(1), host_addr(2), vec![i]);
        }
        assert_eq!(n.next_delivery(), Some(Instant::from_millis(1050)));
        assert!(n.pop_due(Instant::from_millis(1049)).is_none());
        let got = drain(&mut n, Instant::from_millis(1050));
        assert_eq!(
            got.iter().map(|d| d.data[0]).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        assert!(got.iter().all(|d| d.receiver == 2 && d.sender == 1));
    }

    #[test]
    fn loss_rate_is_respected() {
        let mut n = net(LinkConfig {
            loss: 0.05,
            ..LinkConfig::default()
        });
        for _ in 0..20_000 {
            n.send(Instant::ZERO, 1, host_addr(1), host_addr(2), vec![0]);
        }
        let got = drain(&mut n, Instant::MAX).len();
        // Binomial(20k, 0.95): mean 19,000, sigma about 31.
        assert!((18_850..=19_150).contains(&got), "{got}");
        assert_eq!(n.counters.lost as usize + got, 20_000);
    }

    #[test]
    fn duplication_and_reordering() {
        let mut n = net(LinkConfig {
            duplicate: 1.0,
            ..LinkConfig::default()
        });
        n.send(Instant::ZERO, 1, host_addr(1), host_addr(2), vec![7]);
        assert_eq!(drain(&mut n, Instant::MAX).len(), 2);
        let mut n = net(LinkConfig {
            reorder: 0.5,
            reorder_delay: Duration::from_millis(500),
            ..LinkConfig::default()
        });
        for i in 0..100u8 {
            n.send(
                Instant::from_millis(u64::from(i)),
                1,
                host_addr(1),
                host_addr(2),
                vec![i],
            );
        }
        let order: Vec<u8> = drain(&mut n, Instant::MAX)
            .iter()
            .map(|d| d.data[0])
            .collect();
        assert_eq!(order.len(), 100);
        assert!(
            order.windows(2).any(|w| w[0] > w[1]),
            "nothing was reordered"
        );
    }

    #[test]
    fn partitions_drop_or_hold_then_heal() {
        let mut n = net(LinkConfig::default());
        n.partition([2, 3], 1, PartitionMode::Drop);
        n.send(Instant::ZERO, 1, host_addr(1), host_addr(2), vec![1]);
        n.send(Instant::ZERO, 2, host_addr(2), host_addr(3), vec![2]);
        let got = drain(&mut n, Instant::MAX);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].data, [2]);
        assert_eq!(n.counters.partitioned, 1);

        n.partition([2], 1, PartitionMode::Hold);
        n.send(Instant::ZERO, 1, host_addr(1), host_addr(2), vec![3]);
        assert!(drain(&mut n, Instant::MAX).is_empty());
        n.heal(Instant::from_secs(10));
        let got = drain(&mut n, Instant::MAX);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].at, Instant::from_millis(10_050));
        n.send(Instant::ZERO, 1, host_addr(1), host_addr(3), vec![4]);
        assert_eq!(drain(&mut n, Instant::MAX).len(), 1);
    }

    #[test]
    fn rules_first_non_pass_wins_and_bypass_loss() {
        let mut n = net(LinkConfig {
            loss: 1.0,
            ..LinkConfig::default()
        });
        n.add_rule(SimpleRule::new(Selector::from_host(1), Verdict::Corrupt(8)));
        n.add_rule(SimpleRule::new(Selector::any(), Verdict::Truncate(2)));
        n.send(Instant::ZERO, 1, host_addr(1), host_addr(2), vec![0; 16]);
        n.send(Instant::ZERO, 4, host_addr(4), host_addr(2), vec![9; 16]);
        n.send(
            Instant::ZERO,
            4,
            host_addr(4),
            "1.2.3.4:6881".parse().unwrap(),
            vec![9; 16],
        );
        let got = drain(&mut n, Instant::MAX);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].data.len(), 16);
        let flipped: u32 = got[0].data.iter().map(|b| b.count_ones()).sum();
        // Eight flips of random bits: an even number of bits differ, at most eight.
        assert!(flipped <= 8 && flipped % 2 == 0 && flipped > 0, "{flipped}");
        assert_eq!(got[1].data, [9, 9]);
        assert_eq!(n.counters.unroutable, 1);
        assert_eq!(n.counters.lost, 0);
    }

    #[test]
    fn delay_verdict_adds_to_latency() {
        let mut n = net(LinkConfig::default());
        n.add_rule(SimpleRule::new(
            Selector::any(),
            Verdict::Delay(Duration::from_secs(2)),
        ));
        n.send(Instant::ZERO, 1, host_addr(1), host_addr(2), vec![1]);
        assert_eq!(n.next_delivery(), Some(Instant::from_millis(2050)));
    }

    #[test]
    fn same_seed_same_schedule() {
        let run = || {
            let mut n = Net::new(
                77,
                LatencyModel::default(),
                LinkConfig {
                    loss: 0.1,
                    duplicate: 0.05,
                    reorder: 0.1,
                    reorder_delay: Duration::from_millis(300),
                },
            );
            for i in 0..1000u32 {
                n.send(
                    Instant::from_millis(u64::from(i)),
                    i % 50,
                    host_addr(i % 50),
                    host_addr(i % 7),
                    i.to_le_bytes().to_vec(),
                );
            }
            drain(&mut n, Instant::MAX)
        };
        assert_eq!(run(), run());
    }
}
