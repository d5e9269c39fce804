//! [`RoutingTableView`]: what applications may read of a node's routing table.

use alloc::vec::Vec;
use core::net::SocketAddr;

use super::{Bucket, Entry, NodeStatus, RoutingTable, TableConfig};
use crate::id::Id;
use crate::time::Instant;

/// A read-only view of one of a node's routing tables
/// ([`Node::routing_table`](crate::Node::routing_table)): the node alone changes the table.
#[derive(Clone, Copy, Debug)]
pub struct RoutingTableView<'a> {
    table: &'a RoutingTable,
}

impl<'a> RoutingTableView<'a> {
    pub(crate) fn new(table: &'a RoutingTable) -> Self {
        Self { table }
    }

    /// The node's own id, around which buckets split.
    pub fn own_id(&self) -> Id {
        self.table.own_id()
    }

    /// The table's configuration (bucket sizes, timing), for [`Entry::status`].
    pub fn config(&self) -> &'a TableConfig {
        self.table.config()
    }

    /// Entries in the table (replacement caches excluded).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Whether the node is an entry of the table (replacement caches excluded).
    pub fn contains(&self, id: &Id) -> bool {
        self.table.contains(id)
    }

    /// The node's entry, if it is in the table (replacement caches excluded).
    pub fn get(&self, id: &Id) -> Option<&'a Entry> {
        self.table.get(id)
    }

    /// The node's status at `now`, if it is in the table.
    pub fn status(&self, now: Instant, id: &Id) -> Option<NodeStatus> {
        self.table.status(now, id)
    }

    /// Writes into `out` (cleared first) the `n` entries nearest to `target`, nearest first,
    /// leaving out bad ones.
    pub fn closest(&self, target: &Id, n: usize, out: &mut Vec<(Id, SocketAddr)>) {
        self.table.closest(target, n, out);
    }

    /// Every entry (replacement caches excluded), bucket by bucket from the farthest.
    pub fn iter(&self) -> impl Iterator<Item = &'a Entry> + 'a {
        self.table.iter()
    }

    /// The buckets, from the farthest to the one holding the own id's range.
    pub fn buckets(&self) -> impl ExactSizeIterator<Item = &'a Bucket> + 'a {
        self.table.buckets()
    }

    /// The contacts worth saving for the next start, good entries first (what
    /// [`Node::export_nodes`](crate::Node::export_nodes) returns for both tables).
    pub fn export(&self) -> Vec<(Id, SocketAddr)> {
        self.table.export()
    }

    /// Checks the table's structural invariants (for tests, fuzzing and simulations; linear in
    /// the table size).
    ///
    /// # Errors
    ///
    /// A description of the first violated invariant.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        self.table.check_invariants()
    }
}
