//! Hostile hosts: byte-level packet generators that misbehave in the ways a public DHT sees.
//!
//! A [`Hostile`] host is not a `Node`; it reads and writes raw datagrams with the simulator's
//! own [`bencode`](crate::bencode) module, so it can produce anything — including messages the
//! codec under test could never build.

use core::net::{IpAddr, SocketAddr};
use core::time::Duration;

use dht_proto::Instant;

use crate::bencode::{Value, dict, krpc};
use crate::net::{MAX_HOSTS, host_addr};
use crate::rng::SimRng;

/// The misbehaviour of a hostile host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Behaviour {
    /// Listed in tables but never answers anything.
    Silent,
    /// Answers queries with random bytes, truncated or malformed messages, deep nesting; also
    /// sprays garbage at random hosts.
    Garbage,
    /// Answers with a different random node id every time (and random compact nodes).
    WrongId,
    /// Answers with its real id but claims to know nodes closer to every target than anyone:
    /// fabricated ids at addresses where nothing listens (a black hole for lookups).
    FakeNodes,
    /// Answers with datagrams far beyond any MTU (2 KB – 64 KB), or just above 1,500 bytes.
    Oversized,
    /// Sends queries with spoofed source addresses (other hosts' addresses), so honest nodes
    /// answer — reflect — to victims, and unsolicited responses with spoofed sources.
    Spoofer,
    /// Collects announce tokens with `get_peers`, then replays them: from spoofed addresses,
    /// to other nodes, and after they expired.
    TokenReplayer,
    /// Collects a token from each node it can reach (its [`Hostile::focus`] if set), then
    /// announces random info-hashes with them as fast as [`FLOOD_PER_TICK`] allows, to evict
    /// honest peers from the stores.
    StoreFlooder,
}

/// Announces a [`Behaviour::StoreFlooder`] sends per 100-ms tick.
pub const FLOOD_PER_TICK: usize = 20;

impl Behaviour {
    /// Every behaviour of the mixed scenarios ([`Behaviour::StoreFlooder`] has its own, in
    /// [`floods`](crate::floods)).
    pub const ALL: [Self; 7] = [
        Self::Silent,
        Self::Garbage,
        Self::WrongId,
        Self::FakeNodes,
        Self::Oversized,
        Self::Spoofer,
        Self::TokenReplayer,
    ];

    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Silent => "silent",
            Self::Garbage => "garbage",
            Self::WrongId => "wrong-id",
            Self::FakeNodes => "fake-nodes",
            Self::Oversized => "oversized",
            Self::Spoofer => "spoofer",
            Self::TokenReplayer => "token-replayer",
            Self::StoreFlooder => "store-flooder",
        }
    }
}

/// The port every fake peer of a [`Behaviour::TokenReplayer`] announce carries, so tests can
/// recognise a replay that an honest node wrongly accepted.
pub const REPLAY_PORT: u16 = 6666;

/// The info-hash token replayers announce (a test can look it up).
pub const BAIT_INFO_HASH: [u8; 20] = *b"bait-info-hash-00000";

/// A datagram a hostile host sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The source address it claims.
    pub from: SocketAddr,
    /// The destination.
    pub to: SocketAddr,
    /// The bytes.
    pub data: Vec<u8>,
}

/// Age at which a harvested token is certainly expired and replayed to its issuer.
pub const TOKEN_EXPIRED_AFTER: Duration = Duration::from_secs(11 * 60);

/// A harvested token.
#[derive(Clone, Debug)]
struct Harvest {
    issuer: SocketAddr,
    token: Vec<u8>,
    got_at: Instant,
    replays: u8,
}

/// One hostile host.
#[derive(Clone, Debug)]
pub struct Hostile {
    /// What it does.
    pub behaviour: Behaviour,
    /// Its host number.
    pub host: u32,
    /// The node id it claims.
    pub id: [u8; 20],
    rng: SimRng,
    next_tid: u16,
    harvest: Vec<Harvest>,
    /// Datagrams received.
    pub received: u64,
    /// Datagrams sent.
    pub sent: u64,
    /// Announces sent with a token obtained for another address or node, or expired.
    pub replays: u64,
    /// Where a [`Behaviour::StoreFlooder`] aims (empty: random hosts).
    pub focus: Vec<SocketAddr>,
    /// Tokens a [`Behaviour::StoreFlooder`] holds, by issuer.
    tokens: Vec<(SocketAddr, Vec<u8>)>,
    /// Announces a [`Behaviour::StoreFlooder`] sent.
    pub flood_announces: u64,
    /// A paused [`Behaviour::StoreFlooder`] sends nothing.
    pub paused: bool,
}

/// Tokens a store flooder keeps.
const MAX_TOKENS: usize = 4096;

/// Tokens a replayer keeps.
const MAX_HARVEST: usize = 64;

impl Hostile {
    /// A hostile host `host` with id `id`, drawing from `seed`.
    pub fn new(behaviour: Behaviour, host: u32, id: [u8; 20], seed: u64) -> Self {
        Self {
            behaviour,
            host,
            id,
            rng: SimRng::new(seed),
            next_tid: 0,
            harvest: Vec::new(),
            received: 0,
            sent: 0,
            replays: 0,
            focus: Vec::new(),
            tokens: Vec::new(),
            flood_announces: 0,
            paused: false,
        }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        host_addr(self.host)
    }

    /// How often [`Hostile::on_tick`] wants to run (`None`: never).
    pub fn tick_interval(&self) -> Option<Duration> {
        match self.behaviour {
            Behaviour::Garbage => Some(Duration::from_secs(2)),
            Behaviour::Spoofer => Some(Duration::from_millis(500)),
            Behaviour::TokenReplayer => Some(Duration::from_secs(5)),
            Behaviour::StoreFlooder => Some(Duration::from_millis(100)),
            _ => None,
        }
    }

    fn tid(&mut self) -> [u8; 2] {
        self.next_tid = self.next_tid.wrapping_add(1);
        self.next_tid.to_be_bytes()
    }

    fn push(&mut self, out: &mut Vec<Outgoing>, from: SocketAddr, to: SocketAddr, data: Vec<u8>) {
        self.sent += 1;
        out.push(Outgoing { from, to, data });
    }

    /// Compact nodes: `count` fabricated entries near `target` at addresses nobody uses.
    fn fake_nodes(&mut self, target: Option<&[u8]>, count: usize) -> Vec<u8> {
        let mut nodes = Vec::with_capacity(count * 26);
        for _ in 0..count {
            let mut id = self.rng.bytes20();
            if let Some(t) = target.filter(|t| t.len() == 20) {
                // Share the first 15 bytes: closer than any real node in any realistic network.
                id[..15].copy_from_slice(&t[..15]);
            }
            nodes.extend_from_slice(&id);
            // High host numbers are never allocated by a simulation of realistic size.
            let ghost = MAX_HOSTS - 1 - self.rng.below(1 << 20) as u32;
            push_compact(&mut nodes, &host_addr(ghost));
        }
        nodes
    }

    fn response(&self, tid: &[u8], id: &[u8], extra: Vec<(&'static [u8], Value<'_>)>) -> Vec<u8> {
        let mut r = vec![(&b"id"[..], Value::Bytes(id))];
        r.extend(extra);
        dict(vec![
            (b"t", Value::Bytes(tid)),
            (b"y", Value::Bytes(b"r")),
            (b"r", dict(r)),
        ])
        .encode()
    }

    /// A query `method` with the next transaction id, claiming node id `id`, with `args` besides
    /// the id.
    fn query<'a>(
        &mut self,
        method: &[u8],
        id: &'a [u8],
        args: Vec<(&'a [u8], Value<'a>)>,
    ) -> Vec<u8> {
        let tid = self.tid();
        let mut a = vec![(&b"id"[..], Value::Bytes(id))];
        a.extend(args);
        dict(vec![
            (b"t", Value::Bytes(&tid)),
            (b"y", Value::Bytes(b"q")),
            (b"q", Value::Bytes(method)),
            (b"a", dict(a)),
        ])
        .encode()
    }

    /// A `get_peers` for `info_hash` from its own id.
    fn get_peers(&mut self, info_hash: &[u8]) -> Vec<u8> {
        let id = self.id;
        self.query(
            b"get_peers",
            &id,
            vec![(b"info_hash", Value::Bytes(info_hash))],
        )
    }

    /// An `announce_peer` of `info_hash` on [`REPLAY_PORT`] with `token`, from its own id.
    fn announce(&mut self, info_hash: &[u8], token: &[u8]) -> Vec<u8> {
        let id = self.id;
        let args = vec![
            (&b"info_hash"[..], Value::Bytes(info_hash)),
            (b"port", Value::Int(i64::from(REPLAY_PORT))),
            (b"token", Value::Bytes(token)),
        ];
        self.query(b"announce_peer", &id, args)
    }

    /// Reacts to a datagram from `from`.
    pub fn on_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
        out: &mut Vec<Outgoing>,
    ) {
        self.received += 1;
        let me = self.addr();
        let Some(msg) = krpc(data) else { return };
        if msg.kind == b'r' {
            if self.behaviour == Behaviour::StoreFlooder {
                if let Some(token) = msg.token {
                    self.tokens.retain(|(issuer, _)| *issuer != from);
                    if self.tokens.len() < MAX_TOKENS {
                        self.tokens.push((from, token.to_vec()));
                    }
                }
            }
            if self.behaviour == Behaviour::TokenReplayer {
                if let Some(token) = msg.token {
                    if self.harvest.len() >= MAX_HARVEST {
                        self.harvest.remove(0);
                    }
                    self.harvest.push(Harvest {
                        issuer: from,
                        token: token.to_vec(),
                        got_at: now,
                        replays: 0,
                    });
                }
            }
            return;
        }
        if msg.kind != b'q' {
            return;
        }
        let tid = msg.tid.to_vec();
        let target = msg.target.map(<[u8]>::to_vec);
        let wants_nodes = matches!(msg.method, Some(b"find_node" | b"get_peers"));
        let is_get_peers = msg.method == Some(b"get_peers");
        match self.behaviour {
            Behaviour::Silent | Behaviour::StoreFlooder => {}
            Behaviour::Garbage => {
                let data = self.garbage(&tid);
                self.push(out, me, from, data);
            }
            Behaviour::WrongId => {
                let liar = self.rng.bytes20();
                let mut nodes = vec![0u8; 26 * 8];
                self.rng.fill(&mut nodes);
                let mut extra = Vec::new();
                if wants_nodes {
                    extra.push((&b"nodes"[..], Value::Bytes(&nodes)));
                }
                if is_get_peers {
                    extra.push((&b"token"[..], Value::Bytes(b"liar")));
                }
                let data = self.response(&tid, &liar, extra);
                self.push(out, me, from, data);
            }
            Behaviour::FakeNodes | Behaviour::TokenReplayer => {
                let nodes = self.fake_nodes(target.as_deref(), 8);
                let mut extra = Vec::new();
                if wants_nodes {
                    extra.push((&b"nodes"[..], Value::Bytes(&nodes)));
                }
                let mut values = Vec::new();
                if is_get_peers {
                    extra.push((&b"token"[..], Value::Bytes(b"tok1")));
                    for _ in 0..4 {
                        let mut p = Vec::new();
                        let ghost = MAX_HOSTS - 1 - self.rng.below(1 << 20) as u32;
                        push_compact(&mut p, &host_addr(ghost));
                        values.push(p);
                    }
                }
                let vals: Vec<Value<'_>> = values.iter().map(|p| Value::Bytes(p)).collect();
                if !vals.is_empty() && self.behaviour == Behaviour::FakeNodes {
                    extra.push((&b"values"[..], Value::List(vals)));
                }
                let id = self.id;
                let data = self.response(&tid, &id, extra);
                self.push(out, me, from, data);
            }
            Behaviour::Oversized => {
                let size = match self.rng.below(3) {
                    0 => 1_501 + self.rng.below(100) as usize,
                    1 => 2_000 + self.rng.below(8_000) as usize,
                    _ => 60_000 + self.rng.below(5_000) as usize,
                };
                // A well-formed response whose `nodes` string alone is bigger than any MTU.
                let count = size / 26;
                let nodes = self.fake_nodes(target.as_deref(), count);
                let id = self.id;
                let data = self.response(&tid, &id, vec![(b"nodes", Value::Bytes(&nodes))]);
                self.push(out, me, from, data);
            }
            Behaviour::Spoofer => {
                // Answer honestly-looking but from a spoofed source: the response cannot match.
                let spoofed = host_addr(self.rng.below(u64::from(self.host) + 1) as u32);
                let id = self.id;
                let data = self.response(&tid, &id, Vec::new());
                self.push(out, spoofed, from, data);
            }
        }
    }

    /// Introduces itself: a `find_node` for its own id to each of `targets`, from its real
    /// address, so that they see it and may list it.
    pub fn hello(&mut self, targets: &[SocketAddr], out: &mut Vec<Outgoing>) {
        let me = self.addr();
        for &to in targets {
            let id = self.id;
            let data = self.query(b"find_node", &id, vec![(b"target", Value::Bytes(&id))]);
            self.push(out, me, to, data);
        }
    }

    /// Unsolicited traffic; `targets` are addresses of random hosts the simulator offers.
    pub fn on_tick(&mut self, now: Instant, targets: &[SocketAddr], out: &mut Vec<Outgoing>) {
        let me = self.addr();
        let Some(&target) = targets.get(self.rng.index(targets.len())) else {
            return;
        };
        match self.behaviour {
            Behaviour::Garbage => {
                let tid = self.tid();
                let data = self.garbage(&tid);
                self.push(out, me, target, data);
            }
            Behaviour::Spoofer => {
                let victim = *targets
                    .get(self.rng.index(targets.len()))
                    .unwrap_or(&target);
                let claimed = self.rng.bytes20();
                let method: &[u8] = match self.rng.below(3) {
                    0 => b"ping",
                    1 => b"find_node",
                    _ => b"get_peers",
                };
                let want_target = self.rng.bytes20();
                let mut args = Vec::new();
                match method {
                    b"find_node" => args.push((&b"target"[..], Value::Bytes(&want_target))),
                    b"get_peers" => args.push((b"info_hash", Value::Bytes(&want_target))),
                    _ => {}
                }
                let data = self.query(method, &claimed, args);
                // The query claims to come from the victim; the answer goes there.
                self.push(out, victim, target, data);
                // And an unsolicited response, claiming to come from the target's neighbour.
                let tid = self.tid();
                let id = self.rng.bytes20();
                let data = self.response(&tid, &id, Vec::new());
                self.push(out, victim, target, data);
            }
            Behaviour::TokenReplayer => {
                // Harvest a token for the bait.
                let data = self.get_peers(&BAIT_INFO_HASH);
                self.push(out, me, target, data);
                self.replay(now, targets, out);
            }
            Behaviour::StoreFlooder => self.flood(target, out),
            _ => {}
        }
    }

    /// One tick of a store flood: a token request, and announces with the tokens held.
    fn flood(&mut self, random: SocketAddr, out: &mut Vec<Outgoing>) {
        if self.paused {
            return;
        }
        let me = self.addr();
        let ask = if self.focus.is_empty() {
            random
        } else {
            self.focus[self.rng.index(self.focus.len())]
        };
        if !self.tokens.iter().any(|(i, _)| *i == ask) {
            let info_hash = self.rng.bytes20();
            let data = self.get_peers(&info_hash);
            self.push(out, me, ask, data);
        }
        for _ in 0..FLOOD_PER_TICK {
            if self.tokens.is_empty() {
                break;
            }
            let (to, token) = self.tokens[self.rng.index(self.tokens.len())].clone();
            let info_hash = self.rng.bytes20();
            let data = self.announce(&info_hash, &token);
            self.flood_announces += 1;
            self.push(out, me, to, data);
        }
    }

    /// Replays harvested tokens in ways an honest node must refuse.
    fn replay(&mut self, now: Instant, targets: &[SocketAddr], out: &mut Vec<Outgoing>) {
        if self.harvest.is_empty() {
            return;
        }
        let i = self.rng.index(self.harvest.len());
        let Some(h) = self.harvest.get(i).cloned() else {
            return;
        };
        let me = self.addr();
        let other = *targets
            .get(self.rng.index(targets.len()))
            .unwrap_or(&h.issuer);
        let (from, to) = match self.rng.below(3) {
            // The token's issuer, but from another host's address.
            0 => (other, h.issuer),
            // Our own address, to a node that did not issue it.
            1 => (me, other),
            // Our own address to the issuer, but only once the token has expired (BEP 5 tokens
            // live 5 to 10 minutes).
            _ => {
                if now.saturating_duration_since(h.got_at) < TOKEN_EXPIRED_AFTER {
                    return;
                }
                (me, h.issuer)
            }
        };
        // Never the legitimate pair (our address, the issuer) with a fresh token.
        let fresh = now.saturating_duration_since(h.got_at) < TOKEN_EXPIRED_AFTER;
        if from == to || (from == me && to == h.issuer && fresh) {
            return;
        }
        let data = self.announce(&BAIT_INFO_HASH, &h.token);
        self.replays += 1;
        if let Some(h) = self.harvest.get_mut(i) {
            h.replays = h.replays.saturating_add(1);
        }
        self.push(out, from, to, data);
    }

    /// One of several kinds of broken datagram (the transaction id is kept in some, so the
    /// receiver may answer 203).
    fn garbage(&mut self, tid: &[u8]) -> Vec<u8> {
        match self.rng.below(6) {
            0 => {
                let mut b = vec![0u8; 1 + self.rng.below(300) as usize];
                self.rng.fill(&mut b);
                b
            }
            1 => {
                // A valid response cut short.
                let id = self.id;
                let full = self.response(tid, &id, vec![(b"nodes", Value::Bytes(&[7; 52]))]);
                let cut = self.rng.index(full.len());
                full[..cut].to_vec()
            }
            2 => {
                // Deep nesting.
                let depth = 10 + self.rng.below(5_000) as usize;
                let mut b = vec![b'l'; depth];
                b.extend(core::iter::repeat_n(b'e', depth));
                b
            }
            3 => {
                // Wrong types and lengths everywhere.
                dict(vec![
                    (b"t", Value::Bytes(tid)),
                    (b"y", Value::Bytes(b"r")),
                    (
                        b"r",
                        dict(vec![
                            (b"id", Value::Bytes(b"short")),
                            (b"nodes", Value::Int(-1)),
                            (b"values", Value::Bytes(b"xx")),
                        ]),
                    ),
                ])
                .encode()
            }
            4 => {
                // A huge length prefix.
                b"d1:t2:aa1:y1:r1:rd2:id99999999999:".to_vec()
            }
            _ => {
                // A valid-looking message with random bits flipped.
                let id = self.id;
                let mut full = self.response(tid, &id, vec![(b"token", Value::Bytes(b"abcd"))]);
                for _ in 0..3 {
                    let i = self.rng.index(full.len());
                    if let Some(b) = full.get_mut(i) {
                        *b ^= 1 << self.rng.below(8);
                    }
                }
                full
            }
        }
    }
}

/// Appends the 6-byte compact form of an IPv4 address (IPv6 addresses are skipped).
pub fn push_compact(out: &mut Vec<u8>, addr: &SocketAddr) {
    if let IpAddr::V4(ip) = addr.ip() {
        out.extend_from_slice(&ip.octets());
        out.extend_from_slice(&addr.port().to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bencode::decode_all;

    fn query(method: &[u8], key: &'static [u8]) -> Vec<u8> {
        dict(vec![
            (b"t", Value::Bytes(b"xy")),
            (b"y", Value::Bytes(b"q")),
            (b"q", Value::Bytes(method)),
            (
                b"a",
                dict(vec![
                    (b"id", Value::Bytes(&[1; 20])),
                    (key, Value::Bytes(&[0xab; 20])),
                ]),
            ),
        ])
        .encode()
    }

    /// What a fresh hostile host (drawing from `seed`) sends when given `data` `times` times.
    fn answers(b: Behaviour, seed: u64, data: &[u8], times: usize) -> Vec<Outgoing> {
        let mut h = Hostile::new(b, 5, [9; 20], seed);
        let mut out = Vec::new();
        for _ in 0..times {
            h.on_datagram(Instant::ZERO, host_addr(1), data, &mut out);
        }
        out
    }

    fn answer(b: Behaviour, data: &[u8]) -> Vec<Outgoing> {
        answers(b, 1, data, 1)
    }

    #[test]
    fn silent_never_answers() {
        assert!(answer(Behaviour::Silent, &query(b"find_node", b"target")).is_empty());
    }

    #[test]
    fn fake_nodes_are_close_to_the_target_and_unreachable() {
        let out = answer(Behaviour::FakeNodes, &query(b"get_peers", b"info_hash"));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].to, host_addr(1));
        let k = krpc(&out[0].data).unwrap();
        assert_eq!(k.kind, b'r');
        assert_eq!(k.tid, b"xy");
        assert_eq!(k.id, Some(&[9; 20][..]));
        let nodes = k.nodes.unwrap();
        assert_eq!(nodes.len(), 26 * 8);
        for n in nodes.chunks(26) {
            assert_eq!(&n[..15], &[0xab; 15]);
            let ip = u32::from_be_bytes([n[20], n[21], n[22], n[23]]);
            assert!(ip & 0x00ff_ffff > MAX_HOSTS - (1 << 20) - 1);
        }
        assert!(k.token.is_some());
        assert_eq!(k.values.len(), 4);
    }

    #[test]
    fn wrong_id_changes_every_time() {
        let out = answers(Behaviour::WrongId, 1, &query(b"find_node", b"target"), 2);
        let a = krpc(&out[0].data).unwrap().id.unwrap().to_vec();
        let b = krpc(&out[1].data).unwrap().id.unwrap().to_vec();
        assert_ne!(a, b);
        assert_ne!(a, [9; 20]);
    }

    #[test]
    fn oversized_is_always_above_the_mtu() {
        let out = answers(Behaviour::Oversized, 3, &query(b"find_node", b"target"), 30);
        assert!(out.iter().all(|o| o.data.len() > 1500));
        assert!(out.iter().any(|o| o.data.len() > 60_000));
        assert!(out.iter().all(|o| decode_all(&o.data).is_some()));
    }

    #[test]
    fn garbage_is_mostly_not_krpc_at_all() {
        let out = answers(Behaviour::Garbage, 4, &query(b"ping", b"target"), 600);
        assert_eq!(out.len(), 600);
        // Random bytes, cut messages, deep nesting and huge length prefixes (four kinds of six)
        // never decode; wrong-typed fields and flipped bits sometimes do.
        let invalid = out.iter().filter(|o| krpc(&o.data).is_none()).count();
        assert!((350..600).contains(&invalid), "{invalid}");
        let lens: std::collections::HashSet<usize> = out.iter().map(|o| o.data.len()).collect();
        assert!(lens.len() > 100);
    }

    #[test]
    fn spoofer_sends_with_foreign_sources() {
        let mut h = Hostile::new(Behaviour::Spoofer, 50, [9; 20], 2);
        let targets: Vec<SocketAddr> = (0..10).map(host_addr).collect();
        let mut out = Vec::new();
        for _ in 0..20 {
            h.on_tick(Instant::ZERO, &targets, &mut out);
        }
        assert!(!out.is_empty());
        assert!(out.iter().all(|o| o.from != h.addr()));
    }

    #[test]
    fn replayer_harvests_then_replays() {
        let mut h = Hostile::new(Behaviour::TokenReplayer, 50, [9; 20], 2);
        let targets: Vec<SocketAddr> = (0..10).map(host_addr).collect();
        let mut out = Vec::new();
        h.on_tick(Instant::ZERO, &targets, &mut out);
        assert_eq!(out.len(), 1);
        let q = krpc(&out[0].data).unwrap();
        assert_eq!(q.method, Some(&b"get_peers"[..]));
        // The target answers with a token.
        let resp = dict(vec![
            (b"t", Value::Bytes(q.tid)),
            (b"y", Value::Bytes(b"r")),
            (
                b"r",
                dict(vec![
                    (b"id", Value::Bytes(&[3; 20])),
                    (b"token", Value::Bytes(b"secret")),
                ]),
            ),
        ])
        .encode();
        let issuer = out[0].to;
        h.on_datagram(Instant::ZERO, issuer, &resp, &mut Vec::new());
        let mut replays = Vec::new();
        for i in 0..50 {
            let mut o = Vec::new();
            let now = Instant::from_secs(i * 60);
            h.on_tick(now, &targets, &mut o);
            replays.extend(
                o.into_iter()
                    .filter(|o| krpc(&o.data).unwrap().method == Some(b"announce_peer"))
                    .map(|o| (now, o)),
            );
        }
        assert_eq!(replays.len() as u64, h.replays);
        assert!(replays.len() > 10);
        for (now, r) in &replays {
            let k = krpc(&r.data).unwrap();
            assert_eq!(k.token, Some(&b"secret"[..]));
            // The legitimate pair (own address to the issuer) only once the token has expired.
            if r.from == h.addr() && r.to == issuer {
                assert!(*now >= Instant::ZERO + TOKEN_EXPIRED_AFTER, "{now}");
            }
        }
        assert!(
            replays
                .iter()
                .any(|(_, r)| r.to == issuer && r.from != h.addr())
        );
        assert!(
            replays
                .iter()
                .any(|(_, r)| r.to != issuer && r.from == h.addr())
        );
    }
}
