//! Packet rules: pluggable fault injection consulted for every datagram sent into the
//! [`Net`](crate::net::Net).
//!
//! Rules are tried in installation order; the first one that does not answer
//! [`Verdict::Pass`] decides. A packet every rule passes is left to the link model (loss,
//! duplication, reordering).

use core::fmt;
use core::net::SocketAddr;
use core::time::Duration;

use dht_proto::Instant;

use crate::rng::SimRng;

/// What a rule sees of a packet.
#[derive(Clone, Copy, Debug)]
pub struct PacketInfo<'a> {
    /// Virtual time of sending.
    pub now: Instant,
    /// The host that really sent it.
    pub sender: u32,
    /// The source address it claims (differs from the sender's address when spoofed).
    pub from: SocketAddr,
    /// The destination.
    pub to: SocketAddr,
    /// The destination host, if the address belongs to one.
    pub receiver: Option<u32>,
    /// The datagram.
    pub data: &'a [u8],
}

impl PacketInfo<'_> {
    /// The KRPC message type (`b'q'`, `b'r'` or `b'e'`), found by a byte search for `1:y1:`.
    pub fn kind(&self) -> Option<u8> {
        find(self.data, b"1:y1:").and_then(|i| self.data.get(i + 5).copied())
    }

    /// Whether the datagram contains `needle` (e.g. `b"9:get_peers"`).
    pub fn contains(&self, needle: &[u8]) -> bool {
        find(self.data, needle).is_some()
    }
}

/// The position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A rule's decision about one packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No opinion: ask the next rule, then the link model.
    Pass,
    /// Deliver normally, bypassing random loss, duplication and reordering.
    Deliver,
    /// Lose the packet.
    Drop,
    /// Deliver after the usual latency plus this much.
    Delay(Duration),
    /// Deliver the packet and this many extra copies (each with its own jitter).
    Duplicate(u8),
    /// Flip this many random bits, then deliver.
    Corrupt(u8),
    /// Deliver only the first this-many bytes.
    Truncate(usize),
    /// Deliver these bytes instead.
    Replace(Vec<u8>),
}

/// A fault-injection rule.
pub trait Rule: fmt::Debug {
    /// Decides about one packet. `rng` is the network's random source (deterministic).
    fn on_packet(&mut self, packet: &PacketInfo<'_>, rng: &mut SimRng) -> Verdict;
}

/// Which packets a [`SimpleRule`] applies to. Every field set must match.
#[derive(Clone, Debug, Default)]
pub struct Selector {
    /// Only packets really sent by these hosts.
    pub senders: Option<Vec<u32>>,
    /// Only packets to these hosts.
    pub receivers: Option<Vec<u32>>,
    /// Only this KRPC type (`b'q'`, `b'r'`, `b'e'`).
    pub kind: Option<u8>,
    /// Only datagrams containing these bytes (e.g. `b"13:announce_peer"`).
    pub contains: Option<Vec<u8>>,
    /// Only from this instant on.
    pub after: Option<Instant>,
    /// Only before this instant.
    pub before: Option<Instant>,
}

impl Selector {
    /// Every packet.
    pub fn any() -> Self {
        Self::default()
    }

    /// Packets from `host`.
    pub fn from_host(host: u32) -> Self {
        Self {
            senders: Some(vec![host]),
            ..Self::default()
        }
    }

    /// Packets to `host`.
    pub fn to_host(host: u32) -> Self {
        Self {
            receivers: Some(vec![host]),
            ..Self::default()
        }
    }

    /// Restricts to datagrams containing `needle`.
    #[must_use]
    pub fn containing(mut self, needle: &[u8]) -> Self {
        self.contains = Some(needle.to_vec());
        self
    }

    /// Restricts to one KRPC type.
    #[must_use]
    pub fn of_kind(mut self, kind: u8) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Whether `p` matches.
    pub fn matches(&self, p: &PacketInfo<'_>) -> bool {
        if self
            .senders
            .as_ref()
            .is_some_and(|s| !s.contains(&p.sender))
        {
            return false;
        }
        if let Some(r) = &self.receivers {
            if !p.receiver.is_some_and(|h| r.contains(&h)) {
                return false;
            }
        }
        if self.after.is_some_and(|t| p.now < t) || self.before.is_some_and(|t| p.now >= t) {
            return false;
        }
        if self.kind.is_some() && p.kind() != self.kind {
            return false;
        }
        if let Some(needle) = &self.contains {
            if !p.contains(needle) {
                return false;
            }
        }
        true
    }
}

/// A [`Selector`], a probability and a [`Verdict`]: "drop 30 % of `announce_peer` queries to
/// host 5", "delay every response from host 9 by 2 s".
#[derive(Clone, Debug)]
pub struct SimpleRule {
    /// Which packets.
    pub selector: Selector,
    /// Chance that a matching packet gets the verdict.
    pub probability: f64,
    /// What happens to it.
    pub verdict: Verdict,
    /// Apply to at most this many packets (then pass everything).
    pub limit: Option<u64>,
    /// How many packets got the verdict so far.
    pub hits: u64,
}

impl SimpleRule {
    /// Applies `verdict` to every packet `selector` matches.
    pub fn new(selector: Selector, verdict: Verdict) -> Self {
        Self {
            selector,
            probability: 1.0,
            verdict,
            limit: None,
            hits: 0,
        }
    }

    /// Applies only with probability `p`.
    #[must_use]
    pub fn with_probability(mut self, p: f64) -> Self {
        self.probability = p;
        self
    }

    /// Applies to at most `n` packets.
    #[must_use]
    pub fn with_limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }
}

impl Rule for SimpleRule {
    fn on_packet(&mut self, packet: &PacketInfo<'_>, rng: &mut SimRng) -> Verdict {
        if self.limit.is_some_and(|l| self.hits >= l) || !self.selector.matches(packet) {
            return Verdict::Pass;
        }
        if !rng.chance(self.probability) {
            return Verdict::Pass;
        }
        self.hits += 1;
        self.verdict.clone()
    }
}

/// A rule from a closure.
pub struct FnRule<F>(pub F);

impl<F> fmt::Debug for FnRule<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnRule")
    }
}

impl<F> Rule for FnRule<F>
where
    F: FnMut(&PacketInfo<'_>, &mut SimRng) -> Verdict,
{
    fn on_packet(&mut self, packet: &PacketInfo<'_>, rng: &mut SimRng) -> Verdict {
        (self.0)(packet, rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info<'a>(data: &'a [u8], sender: u32, receiver: u32) -> PacketInfo<'a> {
        PacketInfo {
            now: Instant::from_secs(5),
            sender,
            from: "10.0.0.1:6881".parse().unwrap(),
            to: "10.0.0.2:6881".parse().unwrap(),
            receiver: Some(receiver),
            data,
        }
    }

    #[test]
    fn selector_fields_all_must_match() {
        let q = b"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping1:t2:aa1:y1:qe";
        let r = b"d1:rd2:id20:aaaaaaaaaaaaaaaaaaaae1:t2:aa1:y1:re";
        assert_eq!(info(q, 1, 2).kind(), Some(b'q'));
        assert_eq!(info(r, 1, 2).kind(), Some(b'r'));
        let s = Selector::from_host(1).of_kind(b'q').containing(b"4:ping");
        assert!(s.matches(&info(q, 1, 2)));
        assert!(!s.matches(&info(q, 3, 2)));
        assert!(!s.matches(&info(r, 1, 2)));
        let s = Selector::to_host(2);
        assert!(s.matches(&info(r, 9, 2)));
        assert!(!s.matches(&info(r, 9, 3)));
        let mut late = Selector::any();
        late.after = Some(Instant::from_secs(6));
        assert!(!late.matches(&info(r, 9, 3)));
        late.after = Some(Instant::from_secs(5));
        assert!(late.matches(&info(r, 9, 3)));
    }

    #[test]
    fn limit_and_probability() {
        let mut rng = SimRng::new(1);
        let mut rule = SimpleRule::new(Selector::any(), Verdict::Drop).with_limit(3);
        let data = b"x";
        let v: Vec<Verdict> = (0..5)
            .map(|_| rule.on_packet(&info(data, 0, 1), &mut rng))
            .collect();
        assert_eq!(v[..3], [Verdict::Drop, Verdict::Drop, Verdict::Drop]);
        assert_eq!(v[3..], [Verdict::Pass, Verdict::Pass]);
        let mut half = SimpleRule::new(Selector::any(), Verdict::Drop).with_probability(0.5);
        let drops = (0..10_000)
            .filter(|_| half.on_packet(&info(data, 0, 1), &mut rng) == Verdict::Drop)
            .count();
        assert!((4_700..=5_300).contains(&drops), "{drops}");
    }
}
