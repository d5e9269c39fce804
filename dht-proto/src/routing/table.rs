//! The table's private machinery: admission, splitting, replacement and the closest walk.

use alloc::vec::Vec;
use core::net::SocketAddr;

use crate::config::MAX_BUCKET_SIZE;
use crate::id::{ID_BITS, Id};
use crate::time::Instant;

use super::bucket::{self, Bucket, bucket_mut};
use super::{Entry, InsertOutcome, Observation, RejectReason, RoutingTable, TableConfig, key};

impl RoutingTable {
    /// Depth of the bucket whose range contains `id`.
    pub(super) fn bucket_index(&self, id: &Id) -> usize {
        let last = self.buckets.len().saturating_sub(1);
        self.own_id.common_prefix_len(id).min(last)
    }

    /// Applies what we learned about a node, then fills any slot it freed.
    pub(super) fn observe(
        &mut self,
        now: Instant,
        id: Id,
        addr: SocketAddr,
        obs: Observation,
    ) -> InsertOutcome {
        let outcome = self.observe_unsettled(now, id, addr, obs);
        self.settle(now);
        self.sync_deadlines();
        outcome
    }

    /// Fills free slots from the replacement caches wherever possible. An entry leaving the
    /// table frees its address, which can make a replacement usable in another bucket than its
    /// own; this pass is linear in the number of buckets, and skipped when no entry left since
    /// the last one.
    pub(super) fn settle(&mut self, now: Instant) {
        // Only a freed address or slot can leave a usable replacement waiting.
        if !core::mem::take(&mut self.freed) {
            return;
        }
        for b in 0..self.buckets.len() {
            let waiting = self
                .buckets
                .get(b)
                .is_some_and(|bk| bk.entries.len() < bk.cap && !bk.cache.is_empty());
            if waiting {
                self.refill(now, b);
            }
        }
    }

    fn observe_unsettled(
        &mut self,
        now: Instant,
        id: Id,
        addr: SocketAddr,
        obs: Observation,
    ) -> InsertOutcome {
        if id == self.own_id {
            return InsertOutcome::Rejected(RejectReason::OwnId);
        }
        if !self.config.address_policy.allows(&addr) {
            return InsertOutcome::Rejected(RejectReason::AddressNotAllowed);
        }
        let config = self.config;
        let b = self.bucket_index(&id);
        // Not marked changed here: most queries change nothing the deadline depends on (the
        // branches below mark it when they do).
        let Some(bucket) = self.buckets.get_mut(b) else {
            return InsertOutcome::Rejected(RejectReason::BucketFull);
        };
        if let Some(pos) = bucket.position(&id) {
            return self.update_entry(now, b, pos, addr, obs);
        }
        if let Some(cached) = bucket.cache.iter_mut().find(|e| e.id == id) {
            if key(&cached.addr) != key(&addr) {
                if !may_readdress(cached, obs, &config) {
                    return InsertOutcome::Rejected(RejectReason::AddressMismatch);
                }
                *cached = Entry::new(id, addr, now);
            }
            apply(cached, now, obs);
            if !matches!(obs, Observation::Response(_)) {
                return InsertOutcome::Cached;
            }
            // An answer: the contact competes for a slot like a newcomer.
            bucket.stale = true;
            let Some(entry) = bucket
                .cache_position(&id)
                .and_then(|p| take(&mut bucket.cache, p))
            else {
                return InsertOutcome::Cached;
            };
            return self.admit(now, entry, obs);
        }
        let mut entry = Entry::new(id, addr, now);
        apply(&mut entry, now, obs);
        self.admit(now, entry, obs)
    }

    /// Applies an observation to the entry at `b`/`pos`.
    fn update_entry(
        &mut self,
        now: Instant,
        b: usize,
        pos: usize,
        addr: SocketAddr,
        obs: Observation,
    ) -> InsertOutcome {
        let config = self.config;
        let Some(entry) = self.buckets.get(b).and_then(|bk| bk.entries.get(pos)) else {
            return InsertOutcome::Rejected(RejectReason::BucketFull);
        };
        let (id, old_addr) = (entry.id, entry.addr);
        if key(&old_addr) != key(&addr) {
            if !may_readdress(entry, obs, &config) {
                return InsertOutcome::Rejected(RejectReason::AddressMismatch);
            }
            if let Some((_, reason)) = self.addr_conflict(&id, &addr) {
                return InsertOutcome::Rejected(reason);
            }
            self.freed = true;
            self.addrs.remove(&key(&old_addr));
            self.addrs.insert(key(&addr), id);
            if let Some(entry) = self.entry_mut(b, pos) {
                // The history belonged to the old address.
                *entry = Entry::new(id, addr, entry.added);
            }
        }
        let Some(bucket) = self.buckets.get_mut(b) else {
            return InsertOutcome::Updated;
        };
        if let Some(entry) = bucket.entries.get_mut(pos) {
            apply(entry, now, obs);
        }
        // A query moves the deadline only through when the entry turns questionable, which
        // counts only in a bucket that wants verification; an answer always may.
        bucket.stale |= match obs {
            Observation::Query => bucket.wants_verification(),
            Observation::Response(_) => true,
            Observation::Candidate | Observation::Import => false,
        };
        if matches!(obs, Observation::Response(_)) {
            bucket.touch(now, &config);
        }
        InsertOutcome::Updated
    }

    fn entry_mut(&mut self, b: usize, pos: usize) -> Option<&mut Entry> {
        bucket_mut(&mut self.buckets, b)?.entries.get_mut(pos)
    }

    /// The entry (other than `id`) holding `addr`, or its IP when one node per IP is enforced.
    pub(super) fn addr_conflict(&self, id: &Id, addr: &SocketAddr) -> Option<(Id, RejectReason)> {
        let k = key(addr);
        if !self.config.one_node_per_ip {
            let holder = self.addrs.get(&k).filter(|h| *h != id)?;
            return Some((*holder, RejectReason::AddressInUse));
        }
        // One walk over the IP's addresses (rarely more than one) finds both conflicts; the
        // address itself comes first. The walk starts with one search and stops at the first
        // other IP.
        let mut other_port = None;
        for (held, holder) in self
            .addrs
            .starting_at(&k.first_of_ip())
            .take_while(|(held, _)| held.same_ip(&k))
        {
            if holder == id {
                continue;
            }
            if *held == k {
                return Some((*holder, RejectReason::AddressInUse));
            }
            other_port = other_port.or(Some(*holder));
        }
        other_port.map(|holder| (holder, RejectReason::IpInUse))
    }

    /// Finds room for a contact that is in neither the table nor a replacement cache, with
    /// the rights its observation gives it.
    pub(super) fn admit(&mut self, now: Instant, entry: Entry, obs: Observation) -> InsertOutcome {
        // An address conflict with a bad entry resolves in the newcomer's favour; each round
        // removes an entry, so this ends.
        let mut freed = None;
        while let Some((holder, reason)) = self.addr_conflict(&entry.id, &entry.addr) {
            let holder_bad = self.get(&holder).is_some_and(|e| e.is_bad(&self.config));
            if !holder_bad {
                if let Some(b) = freed {
                    self.refill(now, b);
                }
                return InsertOutcome::Rejected(reason);
            }
            let b = self.bucket_index(&holder);
            self.take_entry(b, &holder);
            freed = Some(b);
        }
        let outcome = self.place(now, entry, obs);
        if let Some(b) = freed {
            self.refill(now, b);
        }
        outcome
    }

    /// Inserts, replaces, splits or caches (see the module documentation).
    fn place(&mut self, now: Instant, entry: Entry, obs: Observation) -> InsertOutcome {
        let before = self.buckets.len();
        let outcome = self.place_splitting(now, entry, obs);
        // Splits kept the newcomer's address free; if it did not take it, a replacement may.
        for b in before.saturating_sub(1)..self.buckets.len() {
            self.refill(now, b);
        }
        outcome
    }

    fn place_splitting(&mut self, now: Instant, entry: Entry, obs: Observation) -> InsertOutcome {
        let config = self.config;
        let (may_split, may_displace) = match obs {
            Observation::Response(_) => (true, true),
            Observation::Import => (true, false),
            Observation::Candidate | Observation::Query => (false, false),
        };
        loop {
            let b = self.bucket_index(&entry.id);
            let splittable = b + 1 == self.buckets.len() && b + 1 < ID_BITS;
            // Marked changed only where its entries change (or its cache stops being empty):
            // the deadline depends on nothing else, and most newcomers to a full bucket only
            // replace one cached contact by another.
            let Some(bucket) = self.buckets.get_mut(b) else {
                return InsertOutcome::Rejected(RejectReason::BucketFull);
            };
            if bucket.entries.len() < bucket.cap {
                bucket.stale = true;
                self.addrs.insert(key(&entry.addr), entry.id);
                bucket.entries.push(entry);
                bucket.touch(now, &config);
                self.len += 1;
                return InsertOutcome::Inserted;
            }
            if let Some(slot) = bucket
                .bad_entry(&config)
                .and_then(|p| bucket.entries.get_mut(p))
            {
                let old = core::mem::replace(slot, entry);
                self.freed = true;
                self.addrs.remove(&key(&old.addr));
                self.addrs.insert(key(&slot.addr), slot.id);
                bucket.stale = true;
                bucket.touch(now, &config);
                return InsertOutcome::Inserted;
            }
            if may_split && splittable {
                // The newcomer keeps its address: no replacement holding it may fill the split
                // buckets in the meantime.
                self.split(now, Some(&entry));
                continue;
            }
            // A full bucket wants its entries verified once its cache holds someone.
            let cache_was_empty = bucket.cache.is_empty();
            if !may_displace {
                return match cache_insert(bucket, entry, &config) {
                    Ok(()) => {
                        bucket.stale |= cache_was_empty;
                        InsertOutcome::Cached
                    }
                    Err(reason) => InsertOutcome::Rejected(reason),
                };
            }
            let unverified = bucket.unverified_entry();
            if let Some(slot) = unverified.and_then(|p| bucket.entries.get_mut(p)) {
                let old = core::mem::replace(slot, entry);
                self.freed = true;
                self.addrs.remove(&key(&old.addr));
                self.addrs.insert(key(&slot.addr), slot.id);
                bucket.stale = true;
                bucket.touch(now, &config);
                // Displaced, not dropped: it may still answer and come back.
                let _ = cache_insert(bucket, old, &config);
                return InsertOutcome::Inserted;
            }
            let ping = if bucket.has_pending_ping(now, &config) {
                None
            } else {
                bucket.ping_candidate(now, &config)
            };
            if let Err(reason) = cache_insert(bucket, entry, &config) {
                return InsertOutcome::Rejected(reason);
            }
            bucket.stale |= cache_was_empty || ping.is_some();
            return match ping.and_then(|p| bucket.entries.get_mut(p)) {
                Some(stale) => {
                    stale.set_ping_sent(Some(now));
                    InsertOutcome::PingFirst {
                        id: stale.id,
                        addr: stale.addr,
                    }
                }
                None => InsertOutcome::Cached,
            };
        }
    }

    /// Splits the last bucket in two: the far half keeps its depth, the half with the own id
    /// becomes the new last bucket.
    fn split(&mut self, now: Instant, reserved: Option<&Entry>) {
        let config = self.config;
        let depth = self.buckets.len().saturating_sub(1);
        if depth + 1 >= ID_BITS {
            return;
        }
        let own_bit = self.own_id.bit(depth);
        let Some(far) = bucket_mut(&mut self.buckets, depth) else {
            return;
        };
        let mut near = Bucket::new(
            self.own_id,
            depth + 1,
            config.bucket_capacity(depth + 1),
            far.last_changed,
        );
        near.next_refresh = far.next_refresh;
        far.prefix = self.own_id.with_bit(depth, !own_bit);
        far.prefix_len = depth + 1;
        let goes_near = |e: &Entry| e.id.bit(depth) == own_bit;
        (near.entries, far.entries) = core::mem::take(&mut far.entries)
            .into_iter()
            .partition(goes_near);
        (near.cache, far.cache) = core::mem::take(&mut far.cache)
            .into_iter()
            .partition(goes_near);
        // Far buckets may be larger than the new near bucket: demote its worst entries.
        while near.entries.len() > near.cap {
            let Some(demoted) =
                bucket::worst(&near.entries, &config).and_then(|w| take(&mut near.entries, w))
            else {
                break;
            };
            self.freed = true;
            self.addrs.remove(&key(&demoted.addr));
            self.len = self.len.saturating_sub(1);
            let _ = cache_insert(&mut near, demoted, &config);
        }
        self.buckets.push(near);
        self.refill_except(now, depth, reserved);
        self.refill_except(now, depth + 1, reserved);
    }

    /// Removes the entry `id` from bucket `b` (no refill).
    pub(super) fn take_entry(&mut self, b: usize, id: &Id) -> Option<Entry> {
        let bucket = bucket_mut(&mut self.buckets, b)?;
        let pos = bucket.position(id)?;
        let entry = take(&mut bucket.entries, pos)?;
        self.freed = true;
        self.addrs.remove(&key(&entry.addr));
        self.len = self.len.saturating_sub(1);
        Some(entry)
    }

    /// The replacement of bucket `b` that would take a free slot: the best-ranked one that is
    /// not bad and whose address is free.
    pub(super) fn best_promotable(&self, b: usize) -> Option<usize> {
        self.best_promotable_except(b, None)
    }

    /// Like [`best_promotable`](Self::best_promotable), also treating the address of
    /// `reserved` (a contact being inserted) as taken.
    fn best_promotable_except(&self, b: usize, reserved: Option<&Entry>) -> Option<usize> {
        let bucket = self.buckets.get(b)?;
        let clashes =
            |e: &Entry| reserved.is_some_and(|r| r.id != e.id && self.same_slot(&r.addr, &e.addr));
        let usable = bucket.cache.iter().enumerate().filter(|(_, e)| {
            !e.is_bad(&self.config) && !clashes(e) && self.addr_conflict(&e.id, &e.addr).is_none()
        });
        usable
            .max_by_key(|(_, e)| e.rank(&self.config))
            .map(|(i, _)| i)
    }

    /// Whether two addresses may not both have entries: equal, or the same IP when one node
    /// per IP is enforced.
    fn same_slot(&self, a: &SocketAddr, b: &SocketAddr) -> bool {
        key(a) == key(b) || (self.config.one_node_per_ip && a.ip() == b.ip())
    }

    /// Moves the best replacements of bucket `b` into its free slots.
    pub(super) fn refill(&mut self, now: Instant, b: usize) {
        self.refill_except(now, b, None);
    }

    /// Like [`refill`](Self::refill), leaving the address of `reserved` free.
    fn refill_except(&mut self, now: Instant, b: usize, reserved: Option<&Entry>) {
        let config = self.config;
        // A full bucket takes no replacement: say so before searching its cache (every query
        // from a newcomer ends here, and the search checks each replacement's address).
        while self
            .buckets
            .get(b)
            .is_some_and(|bucket| bucket.entries.len() < bucket.cap)
        {
            let Some(pos) = self.best_promotable_except(b, reserved) else {
                return;
            };
            let Some(bucket) = bucket_mut(&mut self.buckets, b) else {
                return;
            };
            let Some(entry) = take(&mut bucket.cache, pos) else {
                return;
            };
            self.addrs.insert(key(&entry.addr), entry.id);
            bucket.entries.push(entry);
            bucket.touch(now, &config);
            self.len += 1;
        }
    }

    /// A query to an address of no entry failed: count it against replacements at that
    /// address.
    pub(super) fn fail_cached_address(&mut self, addr: &SocketAddr) {
        let config = self.config;
        for bucket in &mut self.buckets {
            let pos = bucket.cache.iter().position(|e| key(&e.addr) == key(addr));
            if let Some(pos) = pos {
                bucket.stale = true;
                fail_cached(&mut bucket.cache, pos, addr, &config);
            }
        }
    }

    /// Calls `emit` on the `n` entries nearest to `target` that pass `keep`, nearest first.
    ///
    /// Buckets are whole subtrees of the id trie, so their order by distance to `target` is
    /// known without looking inside: at depth `i` the sibling subtree (bucket `i`) comes before
    /// the own id's subtree (every deeper bucket) exactly when `target` takes the sibling's
    /// branch, i.e. when bit `i` of `target` differs from the own id's. Hence the walk: buckets
    /// `i` where the bit differs by increasing depth, then the last bucket, then buckets where
    /// it agrees by decreasing depth. Only the entries inside one bucket need sorting.
    pub(crate) fn walk_closest<'a>(
        &'a self,
        target: &Id,
        n: usize,
        mut keep: impl FnMut(&Entry) -> bool,
        mut emit: impl FnMut(&'a Entry),
    ) {
        if n == 0 {
            return;
        }
        let mut remaining = n;
        // The first 64 bits of the distance order almost every pair; only ids sharing them
        // (never by chance, only by choice) fall back to the whole key.
        let target_prefix = target.prefix_u64();
        let mut visit = |bucket: &'a Bucket| -> bool {
            // The `remaining` nearest kept entries of the bucket, nearest first: each entry
            // is inserted into its place in a list bounded to what is still wanted (no need
            // to order the whole bucket when only part of it is taken).
            let wanted = remaining.min(MAX_BUCKET_SIZE);
            let mut best: heapless::Vec<(u64, &'a Entry), MAX_BUCKET_SIZE> = heapless::Vec::new();
            for entry in &bucket.entries {
                if !keep(entry) {
                    continue;
                }
                let prefix = entry.id.prefix_u64() ^ target_prefix;
                let nearer = |(p, e): &(u64, &Entry)| {
                    *p < prefix
                        || (*p == prefix
                            && e.id.distance_key(target) < entry.id.distance_key(target))
                };
                if best.len() == wanted {
                    // Full: the entry replaces the farthest kept one if it is nearer.
                    match best.last_mut() {
                        Some(last) if !nearer(last) => *last = (prefix, entry),
                        _ => continue,
                    }
                } else if best.push((prefix, entry)).is_err() {
                    // `wanted` is at most the capacity: unreachable.
                    continue;
                }
                // Then it moves down to its place (swaps, not a memmove call for a few
                // 16-byte elements).
                let mut pos = best.len() - 1;
                while pos > 0 && best.get(pos - 1).is_some_and(|b| !nearer(b)) {
                    best.swap(pos - 1, pos);
                    pos -= 1;
                }
            }
            for &(_, entry) in &best {
                emit(entry);
            }
            remaining -= best.len();
            remaining == 0
        };
        let last = self.buckets.len().saturating_sub(1);
        let differs = |i: usize| self.own_id.bit(i) != target.bit(i);
        let mut shallow = self.buckets.iter().enumerate().take(last);
        if shallow.any(|(i, bucket)| differs(i) && visit(bucket)) {
            return;
        }
        if self.buckets.get(last).is_some_and(&mut visit) {
            return;
        }
        let mut back = self.buckets.iter().enumerate().take(last).rev();
        let _ = back.any(|(i, bucket)| !differs(i) && visit(bucket));
    }
}

/// Records an observation on an entry.
fn apply(entry: &mut Entry, now: Instant, obs: Observation) {
    match obs {
        Observation::Candidate | Observation::Import => {}
        Observation::Query => entry.record_query(now),
        Observation::Response(rtt) => entry.record_response(now, rtt),
    }
}

/// Whether `obs` at a new address may move a known id there: only an answer (proof the new
/// address speaks for the id), and only if the old record is bad or never answered.
fn may_readdress(existing: &Entry, obs: Observation, config: &TableConfig) -> bool {
    matches!(obs, Observation::Response(_)) && (existing.is_bad(config) || !existing.is_verified())
}

/// Removes `list[pos]`, or `None` if out of range.
pub(super) fn take(list: &mut Vec<Entry>, pos: usize) -> Option<Entry> {
    (pos < list.len()).then(|| list.remove(pos))
}

/// A replacement at `pos` failed a query to `addr`: count it, drop it once bad.
pub(super) fn fail_cached(
    cache: &mut Vec<Entry>,
    pos: usize,
    addr: &SocketAddr,
    config: &TableConfig,
) {
    let Some(entry) = cache.get_mut(pos) else {
        return;
    };
    if key(&entry.addr) != key(addr) {
        return;
    }
    entry.record_failure();
    if entry.is_bad(config) {
        take(cache, pos);
    }
}

/// Puts a contact (in no bucket, no cache) into `bucket`'s replacement cache.
///
/// It replaces a replacement with the same address (or IP, with one node per IP) if it ranks
/// at least as high, else takes a free place, else replaces the lowest-ranked replacement if it
/// ranks higher (see [`Entry::rank`]).
fn cache_insert(
    bucket: &mut Bucket,
    entry: Entry,
    config: &TableConfig,
) -> Result<(), RejectReason> {
    if config.replacement_cache_size == 0 {
        return Err(RejectReason::BucketFull);
    }
    let (k, one_per_ip) = (key(&entry.addr), config.one_node_per_ip);
    let clash = bucket.cache.iter_mut().find_map(|c| {
        let ck = key(&c.addr);
        if ck == k {
            Some((c, RejectReason::AddressInUse))
        } else if one_per_ip && ck.same_ip(&k) {
            Some((c, RejectReason::IpInUse))
        } else {
            None
        }
    });
    if let Some((slot, reason)) = clash {
        if entry.rank(config) >= slot.rank(config) {
            *slot = entry;
            return Ok(());
        }
        return Err(reason);
    }
    if bucket.cache.len() < config.replacement_cache_size {
        bucket.cache.push(entry);
        return Ok(());
    }
    match bucket::worst(&bucket.cache, config).and_then(|w| bucket.cache.get_mut(w)) {
        Some(slot) if entry.rank(config) > slot.rank(config) => {
            *slot = entry;
            Ok(())
        }
        _ => Err(RejectReason::BucketFull),
    }
}
