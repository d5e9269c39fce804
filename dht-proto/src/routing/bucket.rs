//! A bucket: the contacts of one range of the id space plus their replacement cache.

use alloc::vec::Vec;

use crate::id::Id;
use crate::time::Instant;

use super::{Entry, TableConfig};

/// One bucket of a [`RoutingTable`](super::RoutingTable): the ids sharing a prefix.
///
/// A bucket covers every id whose first [`prefix_len`](Bucket::prefix_len) bits equal those of
/// [`prefix`](Bucket::prefix). It holds at most [`capacity`](Bucket::capacity) entries and a
/// replacement cache of contacts waiting for a free slot.
#[derive(Clone, Debug)]
pub struct Bucket {
    pub(crate) prefix: Id,
    pub(crate) prefix_len: usize,
    pub(crate) cap: usize,
    pub(crate) entries: Vec<Entry>,
    pub(crate) cache: Vec<Entry>,
    pub(crate) last_changed: Instant,
    /// When the bucket is due for a refresh: `refresh_interval` after it last changed or after
    /// the last refresh target it produced, whichever is later.
    pub(crate) next_refresh: Instant,
    /// [`Bucket::compute_deadline`] as of the last change, valid unless `stale`.
    pub(crate) deadline: Instant,
    /// Set by every mutable access; cleared when the table recomputes `deadline`.
    pub(crate) stale: bool,
}

impl Bucket {
    pub(crate) fn new(prefix: Id, prefix_len: usize, cap: usize, now: Instant) -> Self {
        Self {
            prefix,
            prefix_len,
            cap,
            entries: Vec::new(),
            cache: Vec::new(),
            last_changed: now,
            next_refresh: now,
            deadline: now,
            stale: true,
        }
    }

    /// An id inside the bucket's range; only its first [`prefix_len`](Bucket::prefix_len) bits
    /// are meaningful.
    pub fn prefix(&self) -> Id {
        self.prefix
    }

    /// Number of leading bits shared by every id in the range (0 for the whole space).
    pub fn prefix_len(&self) -> usize {
        self.prefix_len
    }

    /// Whether `id` falls inside the bucket's range.
    pub fn covers(&self, id: &Id) -> bool {
        self.prefix.common_prefix_len(id) >= self.prefix_len
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the bucket has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Most entries the bucket holds.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// The entries, in no particular order.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = &Entry> + '_ {
        self.entries.iter()
    }

    /// The replacement cache: contacts waiting for a slot in this bucket.
    pub fn replacements(&self) -> impl ExactSizeIterator<Item = &Entry> + '_ {
        self.cache.iter()
    }

    /// When a node was last added to, replaced in, or answered from this bucket (BEP 5's "last
    /// changed").
    pub fn last_changed(&self) -> Instant {
        self.last_changed
    }

    /// Marks the bucket as changed at `now` (BEP 5): it is not refreshed for another interval.
    pub(crate) fn touch(&mut self, now: Instant, config: &TableConfig) {
        self.last_changed = self.last_changed.max(now);
        self.next_refresh = self
            .next_refresh
            .max(now.saturating_add(config.refresh_interval));
    }

    pub(crate) fn position(&self, id: &Id) -> Option<usize> {
        self.entries.iter().position(|e| e.id == *id)
    }

    pub(crate) fn cache_position(&self, id: &Id) -> Option<usize> {
        self.cache.iter().position(|e| e.id == *id)
    }

    /// Index of a bad entry, the least recently seen one if there are several.
    pub(crate) fn bad_entry(&self, config: &TableConfig) -> Option<usize> {
        let bad = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.is_bad(config));
        bad.min_by_key(|(_, e)| e.last_seen()).map(|(i, _)| i)
    }

    /// Index of the unverified entry seen least recently.
    pub(crate) fn unverified_entry(&self) -> Option<usize> {
        let unverified = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.is_verified());
        unverified
            .min_by_key(|(_, e)| e.last_seen())
            .map(|(i, _)| i)
    }

    /// Whether some entry has a ping outstanding.
    pub(crate) fn has_pending_ping(&self, now: Instant, config: &TableConfig) -> bool {
        self.entries.iter().any(|e| e.ping_pending(now, config))
    }

    /// The questionable entry to ping before replacing anybody: unverified entries first, then
    /// the one seen least recently (BEP 5). Entries with a ping outstanding are skipped.
    pub(crate) fn ping_candidate(&self, now: Instant, config: &TableConfig) -> Option<usize> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                e.status(now, config) == super::NodeStatus::Questionable
                    && !e.ping_pending(now, config)
            })
            .min_by_key(|(_, e)| (e.is_verified(), e.last_seen()))
            .map(|(i, _)| i)
    }

    /// Whether this full bucket has somebody waiting to replace a questionable entry, so its
    /// questionable entries should be pinged.
    pub(crate) fn wants_verification(&self) -> bool {
        self.entries.len() >= self.cap && !self.cache.is_empty()
    }
}

impl Bucket {
    /// The earliest instant at which the table's `pings_due` or `refresh_targets` could have
    /// something new for this bucket; a pure function of the bucket's contents, so it can be
    /// cached until the bucket changes.
    pub(crate) fn compute_deadline(&self, config: &TableConfig) -> Instant {
        let mut next = self.next_refresh;
        let mut any_pending = false;
        for entry in &self.entries {
            if let Some(sent) = entry.ping_sent() {
                any_pending = true;
                next = next.min(sent.saturating_add(config.ping_timeout));
            } else if !entry.is_verified() && entry.failures == 0 {
                next = next.min(entry.added.saturating_add(config.verify_after));
            }
        }
        if self.wants_verification() && !any_pending {
            for entry in &self.entries {
                if !entry.is_bad(config) {
                    // An unverified entry is questionable from the start.
                    next = next.min(entry.questionable_at(config).unwrap_or(entry.added));
                }
            }
        }
        next
    }
}

/// `buckets[b]`, marked as changed so that its cached deadline is recomputed.
pub(crate) fn bucket_mut(buckets: &mut [Bucket], b: usize) -> Option<&mut Bucket> {
    let bucket = buckets.get_mut(b)?;
    bucket.stale = true;
    Some(bucket)
}

pub(crate) fn worst(list: &[Entry], config: &TableConfig) -> Option<usize> {
    let ranked = list.iter().enumerate();
    ranked.min_by_key(|(_, e)| e.rank(config)).map(|(i, _)| i)
}
