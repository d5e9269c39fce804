//! Counters: what arrived, what was dropped and why, what was sent.

use crate::error::DropReason;

/// Methods counted separately in [`Stats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MethodKind {
    /// `ping`
    Ping,
    /// `find_node`
    FindNode,
    /// `get_peers`
    GetPeers,
    /// `announce_peer`
    AnnouncePeer,
    /// BEP 44 `get`
    Get,
    /// BEP 44 `put`
    Put,
    /// BEP 51 `sample_infohashes`
    SampleInfohashes,
    /// Any other method.
    Other,
}

impl MethodKind {
    /// Every kind, in counter order.
    pub const ALL: [Self; 8] = [
        Self::Ping,
        Self::FindNode,
        Self::GetPeers,
        Self::AnnouncePeer,
        Self::Get,
        Self::Put,
        Self::SampleInfohashes,
        Self::Other,
    ];

    /// The method's name on the wire (`"other"` for [`MethodKind::Other`]).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::FindNode => "find_node",
            Self::GetPeers => "get_peers",
            Self::AnnouncePeer => "announce_peer",
            Self::Get => "get",
            Self::Put => "put",
            Self::SampleInfohashes => "sample_infohashes",
            Self::Other => "other",
        }
    }

    /// The kind of a method name.
    pub fn from_name(name: &[u8]) -> Self {
        match name {
            b"ping" => Self::Ping,
            b"find_node" => Self::FindNode,
            b"get_peers" => Self::GetPeers,
            b"announce_peer" => Self::AnnouncePeer,
            b"get" => Self::Get,
            b"put" => Self::Put,
            b"sample_infohashes" => Self::SampleInfohashes,
            _ => Self::Other,
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

/// Per-method counters, read with [`PerMethod::get`] and [`PerMethod::total`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PerMethod([u64; MethodKind::ALL.len()]);

impl PerMethod {
    /// The counter of one method.
    pub fn get(&self, kind: MethodKind) -> u64 {
        self.0.get(kind.index()).copied().unwrap_or(0)
    }

    pub(crate) fn bump(&mut self, kind: MethodKind) {
        if let Some(c) = self.0.get_mut(kind.index()) {
            *c = c.saturating_add(1);
        }
    }

    /// The sum over all methods.
    pub fn total(&self) -> u64 {
        self.0.iter().fold(0u64, |a, b| a.saturating_add(*b))
    }
}

/// Counters of a [`Node`](crate::Node). All saturate; none ever resets by itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Datagrams given to `handle_datagram`.
    pub datagrams_received: u64,
    /// Bytes given to `handle_datagram`.
    pub bytes_received: u64,
    /// Datagrams returned by `poll_transmit`.
    pub datagrams_sent: u64,
    /// Bytes returned by `poll_transmit`.
    pub bytes_sent: u64,
    /// Queries received, by method.
    pub queries_received: PerMethod,
    /// Queries sent, by method.
    pub queries_sent: PerMethod,
    /// Responses accepted for our queries.
    pub responses_received: u64,
    /// KRPC errors received for our queries.
    pub errors_received: u64,
    /// Our queries that got no answer in time.
    pub timeouts: u64,
    /// Responses sent.
    pub responses_sent: u64,
    /// KRPC errors sent, by code 201..=204 (index 0..=3) and others (index 4): read with
    /// [`Stats::errors_sent`].
    errors_sent: [u64; 5],
    /// Datagrams dropped, by [`DropReason`]: read with [`Stats::dropped`].
    dropped_by_reason: [u64; DropReason::ALL.len()],
    /// Events dropped because the event queue was full.
    pub events_dropped: u64,
    /// Messages the node built that would have exceeded
    /// [`Limits::max_datagram`](crate::Limits::max_datagram), discarded by `poll_transmit`
    /// (only replies can, and only with a `max_datagram` below the 1280-byte reply budget).
    pub transmits_too_large: u64,
    /// `poll_transmit` calls refused because the buffer was shorter than
    /// [`Limits::max_datagram`](crate::Limits::max_datagram); nothing was taken from the
    /// queue.
    pub transmit_buffer_too_small: u64,
    /// Accepted responses whose `nodes` or `nodes6` ended in a partial entry (ignored; the
    /// whole entries before it were used). Some deployed nodes cut `nodes` at a NUL byte.
    pub truncated_nodes: u64,
}

impl Stats {
    /// How many datagrams were dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped_by_reason
            .get(reason.index())
            .copied()
            .unwrap_or(0)
    }

    /// KRPC errors sent with `code`; every code outside 201..=204 counts as one "other"
    /// counter, which any such code reads.
    pub fn errors_sent(&self, code: i64) -> u64 {
        self.errors_sent
            .get(error_index(code))
            .copied()
            .unwrap_or(0)
    }

    /// KRPC errors sent, all codes.
    pub fn errors_sent_total(&self) -> u64 {
        self.errors_sent
            .iter()
            .fold(0u64, |a, b| a.saturating_add(*b))
    }

    /// Datagrams dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_by_reason
            .iter()
            .fold(0u64, |a, b| a.saturating_add(*b))
    }

    pub(crate) fn drop(&mut self, reason: DropReason) {
        if let Some(c) = self.dropped_by_reason.get_mut(reason.index()) {
            *c = c.saturating_add(1);
        }
    }

    pub(crate) fn error_sent(&mut self, code: i64) {
        if let Some(c) = self.errors_sent.get_mut(error_index(code)) {
            *c = c.saturating_add(1);
        }
    }
}

/// The `errors_sent` counter of a KRPC error code.
fn error_index(code: i64) -> usize {
    match code {
        201..=204 => usize::try_from(code - 201).unwrap_or(4),
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_read_through_accessors() {
        let mut s = Stats::default();
        s.error_sent(203);
        s.error_sent(203);
        s.error_sent(999);
        s.drop(DropReason::Malformed);
        s.queries_sent.bump(MethodKind::Put);
        assert_eq!(s.errors_sent(203), 2);
        assert_eq!(s.errors_sent(201), 0);
        assert_eq!(s.errors_sent(-1), 1, "all other codes share one counter");
        assert_eq!(s.errors_sent_total(), 3);
        assert_eq!(s.dropped(DropReason::Malformed), 1);
        assert_eq!(s.dropped_total(), 1);
        assert_eq!(s.queries_sent.get(MethodKind::Put), 1);
        assert_eq!(s.queries_sent.total(), 1);
        // Every kind has its own counter.
        for (i, kind) in MethodKind::ALL.into_iter().enumerate() {
            assert_eq!(kind.index(), i);
        }
    }
}
