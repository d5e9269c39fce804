//! [`Trace`]: a running hash of everything a simulation did, to prove two runs identical.
//!
//! Every datagram a node sends and every event it emits is folded into one 64-bit digest
//! together with the virtual time and the host. Two runs with the same seed must end with the
//! same digest; when they do not, [`Trace::with_log`] keeps a readable line per record so the
//! first divergence can be found by diffing the two logs.

use core::fmt::{self, Write as _};
use core::net::SocketAddr;

use dht_proto::Instant;

use crate::rng::mix64;

/// A running digest of a simulation.
#[derive(Clone, Debug)]
pub struct Trace {
    hash: u64,
    records: u64,
    log: Option<(usize, Vec<String>)>,
    scratch: String,
}

impl Default for Trace {
    fn default() -> Self {
        Self::new()
    }
}

/// Folds bytes into a hash, eight at a time.
fn fold_bytes(mut h: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = mix64(h ^ u64::from_le_bytes(w));
    }
    let rest = chunks.remainder();
    let mut w = [0u8; 8];
    w[..rest.len()].copy_from_slice(rest);
    mix64(h ^ u64::from_le_bytes(w) ^ ((data.len() as u64) << 56))
}

fn addr_word(a: &SocketAddr) -> u64 {
    match a {
        SocketAddr::V4(v4) => (u64::from(u32::from(*v4.ip())) << 16) | u64::from(v4.port()),
        SocketAddr::V6(v6) => {
            let b = v6.ip().octets();
            fold_bytes(u64::from(v6.port()), &b)
        }
    }
}

impl Trace {
    /// An empty trace.
    pub fn new() -> Self {
        Self {
            hash: 0x7472_6163_6500_0001,
            records: 0,
            log: None,
            scratch: String::new(),
        }
    }

    /// An empty trace that also keeps the first `limit` records as text.
    pub fn with_log(limit: usize) -> Self {
        Self {
            log: Some((limit, Vec::new())),
            ..Self::new()
        }
    }

    /// The digest so far.
    pub fn digest(&self) -> u64 {
        self.hash
    }

    /// Records folded so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The text log, if kept.
    pub fn log(&self) -> Option<&[String]> {
        self.log.as_ref().map(|(_, l)| l.as_slice())
    }

    fn keep(&mut self, line: impl FnOnce() -> String) {
        if let Some((limit, log)) = &mut self.log {
            if log.len() < *limit {
                log.push(line());
            }
        }
    }

    /// Records a datagram sent by `host` at `now`.
    pub fn transmit(
        &mut self,
        now: Instant,
        host: u32,
        from: &SocketAddr,
        to: &SocketAddr,
        data: &[u8],
    ) {
        self.records += 1;
        let mut h = mix64(self.hash ^ 0x5458);
        h = mix64(h ^ now.as_millis());
        h = mix64(h ^ u64::from(host));
        h = mix64(h ^ addr_word(from));
        h = mix64(h ^ addr_word(to));
        self.hash = fold_bytes(h, data);
        self.keep(|| format!("{now} h{host} {from}->{to} {}", escape(data)));
    }

    /// Records an event of `host` at `now` through its `Debug` text.
    pub fn event(&mut self, now: Instant, host: u32, event: &impl fmt::Debug) {
        self.records += 1;
        self.scratch.clear();
        let _ = write!(self.scratch, "{event:?}");
        let mut h = mix64(self.hash ^ 0x4556);
        h = mix64(h ^ now.as_millis());
        h = mix64(h ^ u64::from(host));
        self.hash = fold_bytes(h, self.scratch.as_bytes());
        if self.log.is_some() {
            let text = core::mem::take(&mut self.scratch);
            self.keep(|| format!("{now} h{host} {text}"));
            self.scratch = text;
        }
    }

    /// Records a free-form note (a scenario step, a churn action).
    pub fn note(&mut self, now: Instant, what: &str) {
        self.records += 1;
        let h = mix64(mix64(self.hash ^ 0x4e4f) ^ now.as_millis());
        self.hash = fold_bytes(h, what.as_bytes());
        self.keep(|| format!("{now} {what}"));
    }
}

/// Bytes as text: printable ASCII kept, the rest as `\xNN`.
pub fn escape(data: &[u8]) -> String {
    let mut s = String::with_capacity(data.len());
    for &b in data {
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            s.push(char::from(b));
        } else {
            let _ = write!(s, "\\x{b:02x}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn equal_inputs_equal_digest_any_change_differs() {
        let run = |byte: u8, t: u64, to: &str| {
            let mut tr = Trace::new();
            tr.transmit(
                Instant::from_millis(t),
                1,
                &a("10.0.0.1:6881"),
                &a(to),
                &[1, 2, byte],
            );
            tr.event(Instant::from_millis(t), 1, &"Bootstrapped");
            tr.digest()
        };
        let base = run(3, 10, "10.0.0.2:6881");
        assert_eq!(base, run(3, 10, "10.0.0.2:6881"));
        assert_ne!(base, run(4, 10, "10.0.0.2:6881"));
        assert_ne!(base, run(3, 11, "10.0.0.2:6881"));
        assert_ne!(base, run(3, 10, "10.0.0.3:6881"));
    }

    #[test]
    fn order_matters_and_length_matters() {
        let mut x = Trace::new();
        x.note(Instant::ZERO, "a");
        x.note(Instant::ZERO, "b");
        let mut y = Trace::new();
        y.note(Instant::ZERO, "b");
        y.note(Instant::ZERO, "a");
        assert_ne!(x.digest(), y.digest());
        assert_ne!(fold_bytes(0, &[0]), fold_bytes(0, &[0, 0]));
        assert_ne!(fold_bytes(0, &[]), fold_bytes(0, &[0]));
    }

    #[test]
    fn log_keeps_readable_lines_up_to_the_limit() {
        let mut t = Trace::with_log(2);
        t.transmit(
            Instant::from_millis(1500),
            3,
            &a("10.0.0.4:6881"),
            &a("10.0.0.5:6881"),
            b"d1:y\x00e",
        );
        t.note(Instant::ZERO, "x");
        t.note(Instant::ZERO, "y");
        let log = t.log().unwrap();
        assert_eq!(log.len(), 2);
        assert_eq!(log[0], "1.500s h3 10.0.0.4:6881->10.0.0.5:6881 d1:y\\x00e");
        assert_eq!(t.records(), 3);
    }
}
