//! Invariants every honest node must hold after every simulation step.
//!
//! - Caps: requests in flight, running commands, queued transmits and events, routing-table
//!   size, peer-store size within the node's [`Limits`](dht_proto::Limits).
//! - The routing tables' own structural invariants (bucket ranges and capacities, no own id, no
//!   duplicate, one entry per IP).
//! - No spinning timer: after `handle_timeout(now)` and a full drain, `poll_timeout` is later
//!   than `now` (else a driver would call it again at once, forever).
//! - Counters add up: `Stats::datagrams_sent`/`bytes_sent` grow by exactly what
//!   `poll_transmit` returned.
//! - Exactly one `QueryFinished` per query ([`QueryLedger`]).

use core::fmt;
use std::collections::HashSet;

use dht_proto::{Instant, Node, QueryId, TimerKind};

/// Which invariants the simulator checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checks {
    /// Caps and own-id, after every input a node handled.
    pub caps: bool,
    /// The routing tables' structural invariants (`RoutingTable::check_invariants`: bucket
    /// ranges, capacities, no duplicates, one entry per IP); linear in the table size.
    pub tables: bool,
    /// No spinning timer.
    pub spin: bool,
    /// Stats counters against what was drained.
    pub counters: bool,
    /// Remember every finished query of every node (not only watched ones) to catch a second
    /// `QueryFinished`. Costs memory proportional to all queries ever run.
    pub every_query: bool,
}

impl Checks {
    /// Everything.
    pub const ALL: Self = Self {
        caps: true,
        tables: true,
        spin: true,
        counters: true,
        every_query: true,
    };

    /// Everything that costs no memory per query (for very large runs).
    pub const CHEAP: Self = Self {
        caps: true,
        tables: false,
        spin: true,
        counters: true,
        every_query: false,
    };
}

impl Default for Checks {
    fn default() -> Self {
        Self::ALL
    }
}

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// When.
    pub now: Instant,
    /// Which host.
    pub host: u32,
    /// What.
    pub what: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at {} host {}: {}", self.now, self.host, self.what)
    }
}

/// Checks the caps of `node` (call before draining its queues, when they are fullest).
///
/// # Errors
///
/// A description of the first cap found exceeded.
pub fn check_caps(node: &Node) -> Result<(), String> {
    let l = &node.config().limits;
    let c = node.config();
    let checks = [
        (node.in_flight(), l.max_in_flight, "requests in flight"),
        (node.running_queries(), l.max_queries, "running commands"),
        (
            node.pending_transmits(),
            l.max_pending_transmits,
            "queued transmits",
        ),
        // The node may hold one extra `EventsDropped` notice beyond the queue.
        (node.pending_events(), l.max_pending_events, "queued events"),
        (
            node.table_len(),
            2 * table_capacity(c.bucket_size, c.far_bucket_size, c.far_buckets),
            "routing-table entries",
        ),
        (
            node.stored_info_hashes(),
            l.max_info_hashes,
            "stored info-hashes",
        ),
        (node.stored_peers(), l.max_stored_peers, "stored peers"),
    ];
    for (value, cap, what) in checks {
        if value > cap {
            return Err(format!("{what}: {value} > cap {cap}"));
        }
    }
    Ok(())
}

/// Checks both routing tables' structural invariants (which include: no own id).
///
/// # Errors
///
/// The first violated invariant.
pub fn check_tables(node: &Node) -> Result<(), String> {
    for (name, table) in [
        ("IPv4", node.routing_table()),
        ("IPv6", node.routing_table_v6()),
    ] {
        table
            .check_invariants()
            .map_err(|e| format!("{name} routing table: {e}"))?;
    }
    Ok(())
}

/// Most entries one routing table can hold: 160 buckets, the `far_buckets` farthest of
/// `far_bucket_size`, the rest of `bucket_size`.
pub fn table_capacity(bucket_size: usize, far_bucket_size: usize, far_buckets: usize) -> usize {
    let far = far_buckets.min(160);
    far * far_bucket_size + (160 - far) * bucket_size
}

/// Checks that a node whose timers just ran at `now` (and was drained) does not ask to run
/// them again at `now`; `next` is its `Node::next_timer()`.
///
/// # Errors
///
/// A description of the spinning timer.
pub fn check_not_spinning(next: Option<(Instant, TimerKind)>, now: Instant) -> Result<(), String> {
    match next {
        Some((t, kind)) if t <= now => Err(format!(
            "spinning timer: after handle_timeout({now}) poll_timeout is {t} ({kind:?})"
        )),
        _ => Ok(()),
    }
}

/// Tracks finished queries to prove each ends exactly once.
#[derive(Debug, Default)]
pub struct QueryLedger {
    finished: HashSet<(u32, u32, u64)>,
}

impl QueryLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that query `q` of host `host` (in its `incarnation`) finished.
    ///
    /// # Errors
    ///
    /// When it had finished before, or the node still says it is running.
    pub fn finished(
        &mut self,
        host: u32,
        incarnation: u32,
        q: QueryId,
        node: &Node,
    ) -> Result<(), String> {
        if node.is_running(q) {
            return Err(format!("{q:?} reported finished but is still running"));
        }
        if !self.finished.insert((host, incarnation, q.as_u64())) {
            return Err(format!("second QueryFinished for {q:?}"));
        }
        Ok(())
    }

    /// Queries recorded.
    pub fn len(&self) -> usize {
        self.finished.len()
    }

    /// Whether none are recorded.
    pub fn is_empty(&self) -> bool {
        self.finished.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_counts_far_buckets() {
        assert_eq!(table_capacity(8, 8, 0), 1280);
        assert_eq!(table_capacity(8, 16, 4), 4 * 16 + 156 * 8);
        assert_eq!(table_capacity(8, 16, 500), 160 * 16);
    }
}
