//! Per-source loads of a store: which entries each source (IPv4 address or IPv6 /64) holds,
//! least recently stored first, and which source holds the most.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use core::mem::size_of;

use hashbrown::HashMap;

use crate::id::Id;
use crate::rng::KeyedState;

/// Entries per source, for quotas and heaviest-first eviction.
#[derive(Debug)]
pub(crate) struct Loads {
    /// Per source: the keys of its entries, least recently stored first.
    lists: HashMap<u128, Vec<Id>, KeyedState>,
    /// (load, source) of every source with two entries or more: the heaviest last.
    by_load: BTreeSet<(usize, u128)>,
}

impl Loads {
    pub(crate) fn new(hasher_key: [u8; 16]) -> Self {
        Self {
            lists: HashMap::with_hasher(KeyedState::new(hasher_key)),
            by_load: BTreeSet::new(),
        }
    }

    /// Entries of `source`.
    pub(crate) fn load(&self, source: u128) -> usize {
        self.lists.get(&source).map_or(0, Vec::len)
    }

    /// The least recently stored entry of `source`.
    pub(crate) fn oldest_of(&self, source: u128) -> Option<Id> {
        self.lists.get(&source)?.first().copied()
    }

    /// The source with the most entries, if it has two or more, and its oldest entry.
    pub(crate) fn heaviest(&self) -> Option<(u128, Id)> {
        let &(_, source) = self.by_load.last()?;
        Some((source, self.oldest_of(source)?))
    }

    /// Counts a new entry `key` of `source`, as its newest.
    pub(crate) fn add(&mut self, source: u128, key: Id) {
        // Most sources hold one entry: no slack for them.
        let list = self
            .lists
            .entry(source)
            .or_insert_with(|| Vec::with_capacity(1));
        let load = list.len();
        list.push(key);
        // Only sources with two entries or more can be the heaviest.
        if load > 1 {
            self.by_load.remove(&(load, source));
        }
        if load >= 1 {
            self.by_load.insert((load + 1, source));
        }
    }

    /// Makes `key` the newest entry of `source`.
    pub(crate) fn touch(&mut self, source: u128, key: Id) {
        if let Some(list) = self.lists.get_mut(&source) {
            if let Some(i) = list.iter().position(|k| *k == key) {
                list.remove(i);
                list.push(key);
            }
        }
    }

    /// Uncounts an entry `key` of `source`.
    pub(crate) fn remove(&mut self, source: u128, key: Id) {
        let Some(list) = self.lists.get_mut(&source) else {
            return;
        };
        let Some(i) = list.iter().position(|k| *k == key) else {
            return;
        };
        let load = list.len();
        list.remove(i);
        self.by_load.remove(&(load, source));
        if list.is_empty() {
            self.lists.remove(&source);
            // A flood of one-entry sources that has gone leaves no big table behind.
            if self.lists.capacity() > 4 * self.lists.len() + 64 {
                self.lists.shrink_to(2 * self.lists.len());
            }
        } else {
            if list.capacity() > 2 * list.len() + 2 {
                list.shrink_to(list.len());
            }
            if load > 2 {
                self.by_load.insert((load - 1, source));
            }
        }
    }

    /// Approximate heap bytes held.
    pub(crate) fn memory_usage(&self) -> usize {
        let table = self
            .lists
            .capacity()
            .saturating_mul(size_of::<(u128, Vec<Id>)>() + 1);
        let index = self
            .by_load
            .len()
            .saturating_mul(2 * size_of::<(usize, u128)>());
        // Every list is read for its capacity; the order of the sum does not matter.
        let lists: usize = self
            .lists
            .values()
            .map(|l| l.capacity().saturating_mul(size_of::<Id>()))
            .sum();
        table + index + lists
    }

    /// Checks the internal invariants against `count(source, key)`, the store's own count of
    /// entries `key` of `source`; returns the number of entries.
    #[cfg(test)]
    pub(crate) fn check(&self, max_per_source: usize, count: impl Fn(u128, &Id) -> usize) -> usize {
        let heavy = self.lists.values().filter(|l| l.len() >= 2).count();
        assert_eq!(self.by_load.len(), heavy);
        let mut total = 0;
        for (source, list) in &self.lists {
            assert!(!list.is_empty());
            assert!(list.len() <= max_per_source);
            assert_eq!(
                self.by_load.contains(&(list.len(), *source)),
                list.len() >= 2
            );
            for k in list {
                let n = list.iter().filter(|x| *x == k).count();
                assert_eq!(n, count(*source, k), "source list out of step");
            }
            total += list.len();
        }
        total
    }
}
