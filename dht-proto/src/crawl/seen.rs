//! [`SeenSet`]: a bounded set of info-hashes that forgets the oldest first.

use alloc::collections::VecDeque;

use hashbrown::HashSet;
use rand_core::RngCore;

use crate::id::Id;
use crate::rng::KeyedState;

/// The info-hashes seen lately, at most `capacity` of them: when full, inserting forgets the
/// one inserted longest ago (which may then be reported again). Memory: about 64 bytes per
/// entry (the hash set and the insertion queue), 64 MB for the default million of a crawler.
#[derive(Debug)]
pub struct SeenSet {
    set: HashSet<Id, KeyedState>,
    order: VecDeque<Id>,
    capacity: usize,
    evicted: u64,
}

impl SeenSet {
    /// A set of at most `capacity` info-hashes (at least one), hashed with a secret key drawn
    /// from `rng` (remote nodes choose the info-hashes).
    pub fn new(capacity: usize, rng: &mut impl RngCore) -> Self {
        let mut key = [0; 16];
        rng.fill_bytes(&mut key);
        Self {
            set: HashSet::with_hasher(KeyedState::new(key)),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            evicted: 0,
        }
    }

    /// Inserts `id`; returns whether it was new.
    pub fn insert(&mut self, id: Id) -> bool {
        if self.set.contains(&id) {
            return false;
        }
        if self.set.len() >= self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
                self.evicted += 1;
            }
        }
        self.set.insert(id);
        self.order.push_back(id);
        true
    }

    /// Whether `id` is remembered.
    pub fn contains(&self, id: &Id) -> bool {
        self.set.contains(id)
    }

    /// How many are remembered.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// The most it remembers.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many were forgotten to make room.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}
