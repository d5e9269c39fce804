//! The table's address index: which entry holds each address.
//!
//! A vector of (key, id) pairs sorted by key. A table holds a few hundred entries at most
//! (10,240 with the largest configuration), and the index is read on every query from a
//! stranger but written only when the table's entries change, so a binary search over
//! contiguous pairs beats a tree: 48 bytes per entry with little spare room (a `BTreeMap`'s
//! nodes are about half full after a burst of inserts, some 86 bytes per entry), and a search
//! that touches a few cache lines instead of a node per level. Deterministic and immune to hash
//! flooding, like the tree it replaces.

use alloc::vec::Vec;

use crate::id::Id;

use super::AddrKey;

/// Addresses of the table's entries, in key order (family, IP, port): the addresses of one IP
/// are neighbours.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct AddrIndex {
    slots: Vec<(AddrKey, Id)>,
}

impl AddrIndex {
    /// Where `k` is, or where it would go.
    fn find(&self, k: &AddrKey) -> Result<usize, usize> {
        self.slots.binary_search_by(|(held, _)| held.cmp(k))
    }

    /// The id at address `k`.
    pub(crate) fn get(&self, k: &AddrKey) -> Option<&Id> {
        let at = self.find(k).ok()?;
        self.slots.get(at).map(|(_, id)| id)
    }

    /// Records that `id` holds `k`; returns the id that held it before, if any.
    pub(crate) fn insert(&mut self, k: AddrKey, id: Id) -> Option<Id> {
        match self.find(&k) {
            Ok(at) => self
                .slots
                .get_mut(at)
                .map(|(_, held)| core::mem::replace(held, id)),
            Err(at) => {
                if self.slots.len() == self.slots.capacity() {
                    // Grow by an eighth (at least 8): little spare room, few reallocations.
                    let more = (self.slots.len() / 8).max(8);
                    self.slots.reserve_exact(more);
                }
                // `at` is at most the length: `binary_search_by` never returns more.
                self.slots.insert(at.min(self.slots.len()), (k, id));
                None
            }
        }
    }

    /// Forgets address `k`; returns the id that held it.
    pub(crate) fn remove(&mut self, k: &AddrKey) -> Option<Id> {
        let at = self.find(k).ok()?;
        let (_, id) = self.slots.remove(at);
        // Give memory back once half of it is spare (a table that shrank after a burst).
        if self.slots.capacity() >= 2 * self.slots.len() + 16 {
            self.slots
                .shrink_to(self.slots.len() + self.slots.len() / 8);
        }
        Some(id)
    }

    /// The pairs from `k` on, in key order.
    pub(crate) fn starting_at(&self, k: &AddrKey) -> impl Iterator<Item = &(AddrKey, Id)> {
        let at = self.find(k).unwrap_or_else(|at| at);
        self.slots.get(at..).unwrap_or_default().iter()
    }

    /// Every pair, in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &(AddrKey, Id)> {
        self.slots.iter()
    }

    /// Bytes held, spare room included.
    #[cfg(test)]
    pub(crate) fn capacity_bytes(&self) -> usize {
        self.slots.capacity() * size_of::<(AddrKey, Id)>()
    }
}

#[cfg(test)]
mod tests {
    use alloc::collections::BTreeMap;
    use core::net::SocketAddr;

    use proptest::prelude::*;

    use super::*;
    use crate::routing::key;

    fn k(ip: u8, port: u16) -> AddrKey {
        key(&SocketAddr::from(([10, 0, 0, ip], port)))
    }

    fn id(n: u8) -> Id {
        Id::from([n; 20])
    }

    #[test]
    fn holds_replaces_and_forgets() {
        let mut index = AddrIndex::default();
        assert_eq!(index.insert(k(2, 80), id(1)), None);
        assert_eq!(index.insert(k(1, 80), id(2)), None);
        assert_eq!(index.get(&k(2, 80)), Some(&id(1)));
        assert_eq!(index.insert(k(2, 80), id(3)), Some(id(1)));
        assert_eq!(index.get(&k(2, 80)), Some(&id(3)));
        assert_eq!(index.get(&k(2, 81)), None);
        assert_eq!(index.remove(&k(2, 81)), None);
        assert_eq!(index.remove(&k(2, 80)), Some(id(3)));
        assert_eq!(index.get(&k(2, 80)), None);
        assert_eq!(index.iter().count(), 1);
    }

    #[test]
    fn the_walk_from_an_ip_meets_its_ports_first() {
        let mut index = AddrIndex::default();
        for (ip, port, n) in [(3, 1, 1), (2, 9, 2), (2, 7, 3), (1, 65535, 4)] {
            index.insert(k(ip, port), id(n));
        }
        let from: Vec<Id> = index.starting_at(&k(2, 0)).map(|(_, id)| *id).collect();
        assert_eq!(from, [id(3), id(2), id(1)]);
        assert_eq!(index.starting_at(&k(4, 0)).count(), 0);
    }

    #[test]
    fn spare_room_stays_small_and_is_given_back() {
        let size = size_of::<(AddrKey, Id)>();
        let mut index = AddrIndex::default();
        for n in 0..1000u16 {
            index.insert(k((n % 250) as u8, n), id(1));
            let len = usize::from(n) + 1;
            assert!(index.capacity_bytes() <= (len + (len / 8).max(8)) * size);
        }
        for n in 0..990u16 {
            index.remove(&k((n % 250) as u8, n));
        }
        // 10 left: at most about twice that, plus the minimum step.
        assert!(
            index.capacity_bytes() <= (2 * 10 + 16) * size,
            "{}",
            index.capacity_bytes()
        );
    }

    proptest! {
        /// The index answers as an ordered map does, whatever the order of changes.
        #[test]
        fn behaves_as_an_ordered_map(ops in proptest::collection::vec((any::<bool>(), 0u8..6, 0u16..4, any::<u8>()), 0..200)) {
            let mut index = AddrIndex::default();
            let mut model: BTreeMap<AddrKey, Id> = BTreeMap::new();
            for (insert, ip, port, n) in ops {
                let key = k(ip, port);
                if insert {
                    prop_assert_eq!(index.insert(key, id(n)), model.insert(key, id(n)));
                } else {
                    prop_assert_eq!(index.remove(&key), model.remove(&key));
                }
                prop_assert_eq!(index.get(&key), model.get(&key));
                let from: Vec<_> = index.starting_at(&k(ip, 0)).copied().collect();
                let expected: Vec<_> = model.range(k(ip, 0)..).map(|(a, b)| (*a, *b)).collect();
                prop_assert_eq!(from, expected);
            }
            prop_assert!(index.iter().map(|(a, b)| (*a, *b)).eq(model.into_iter()));
        }
    }
}
