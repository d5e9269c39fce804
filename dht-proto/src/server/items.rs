//! BEP 44 storage: immutable items (stored under the SHA-1 of their bencoded value) and mutable
//! items (stored under the SHA-1 of an Ed25519 public key and a salt, signed, versioned by a
//! sequence number).
//!
//! # Rules
//!
//! - `v` is the value's bencoding, verbatim as it appeared in the message, at most
//!   [`MAX_VALUE_LEN`] bytes (else error 205); `salt` at most [`MAX_SALT_LEN`] bytes (else 207).
//! - A mutable put with `cas` fails with 301 unless `cas` equals the stored sequence number
//!   (ignored when nothing is stored). A lower `seq` than the stored one fails with 302, and so
//!   does an equal `seq` with a different value. An equal `seq` with the same value refreshes
//!   the item.
//! - The signature is checked (error 206) after those cheap checks and before anything is
//!   stored, over [`signing_message`]. Ed25519 itself is the caller's: an
//!   [`Ed25519Verifier`].
//! - Items expire `ttl` after their last put (BEP 44: they may expire after 2 hours;
//!   [`DEFAULT_ITEM_TTL`]). An expired item is gone for `get` and `put` alike, even before
//!   [`ItemStore::expire`] sweeps it.
//! - An item's **source** is the IPv4 address or IPv6 /64 of its last putter (puts need a
//!   token, so sources cannot be spoofed).
//! - **Per-source quota** ([`ItemStore::with_source_quota`]): a source at its quota makes room
//!   with its own least recently updated item.
//! - **Caps**: `max_items` items and `max_bytes` bytes of values and salts. A put that would
//!   exceed either evicts the least recently updated item of the source with the most items
//!   (while it has two or more), else the least recently updated item of all (a refresh counts
//!   as an update). An item larger than `max_bytes` alone is refused as too big (205).
//!
//! # Memory
//!
//! [`ItemStore::memory_usage`] reports the bytes held. The worst case is about
//! `max_items × 550 + max_bytes` bytes: per item a hash-table slot at half load (2 × ~170
//! bytes), an ordered index entry (~64 bytes with B-tree slack), its place in its source's
//! list (~100 bytes at worst) and the key, signature and sequence number inline; salts are
//! boxed at their exact length, values too behind two words of reference counts (a `get`
//! reply shares the value instead of copying it). With the defaults (4096 items, 1 MiB) that is under
//! 4 MiB.

use alloc::boxed::Box;
use alloc::collections::BTreeSet;
use alloc::sync::Arc;
use core::fmt;
use core::mem::size_of;
use core::net::IpAddr;
use core::time::Duration;

use hashbrown::HashMap;

use crate::admission::source_key;
pub(crate) use crate::bep44::{
    Ed25519Verifier, MAX_SALT_LEN, MAX_VALUE_LEN, immutable_target, mutable_target, signing_message,
};
use crate::config::Config;
use crate::id::Id;
use crate::rng::KeyedState;
use crate::server::sources::Loads;
use crate::time::Instant;

/// How long an item lives after its last put unless re-put (BEP 44: 2 hours).
pub const DEFAULT_ITEM_TTL: Duration = Duration::from_secs(2 * 60 * 60);

/// Why a put was rejected; [`PutError::code`] is the KRPC error code to answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PutError {
    /// 205: the value is longer than [`MAX_VALUE_LEN`] (or than the whole byte cap).
    ValueTooBig,
    /// 206: the signature does not verify.
    InvalidSignature,
    /// 207: the salt is longer than [`MAX_SALT_LEN`].
    SaltTooBig,
    /// 301: `cas` does not match the stored sequence number.
    CasMismatch,
    /// 302: the sequence number is lower than the stored one, or equal with a different value.
    SequenceTooOld,
    /// 202: this node stores no items (`max_items` is zero).
    StorageDisabled,
}

impl PutError {
    /// The KRPC error code (BEP 44: 205, 206, 207, 301, 302; BEP 5: 202).
    pub const fn code(self) -> i64 {
        match self {
            Self::ValueTooBig => 205,
            Self::InvalidSignature => 206,
            Self::SaltTooBig => 207,
            Self::CasMismatch => 301,
            Self::SequenceTooOld => 302,
            Self::StorageDisabled => 202,
        }
    }

    /// A short error message for the KRPC error.
    pub const fn message(self) -> &'static str {
        match self {
            Self::ValueTooBig => "message (v field) too big",
            Self::InvalidSignature => "invalid signature",
            Self::SaltTooBig => "salt (salt field) too big",
            Self::CasMismatch => "the CAS hash mismatched, re-read value and try again",
            Self::SequenceTooOld => "sequence number less than current",
            Self::StorageDisabled => "item storage disabled",
        }
    }
}

impl fmt::Display for PutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message(), self.code())
    }
}

impl core::error::Error for PutError {}

/// The arguments of a mutable `put`, borrowed from the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MutablePut<'a> {
    /// `k`: the Ed25519 public key.
    pub k: &'a [u8; 32],
    /// `salt`, empty when absent.
    pub salt: &'a [u8],
    /// `seq`: the sequence number.
    pub seq: i64,
    /// `sig`: the signature over [`signing_message`]`(salt, seq, v)`.
    pub sig: &'a [u8; 64],
    /// `v`: the bencoded value, verbatim.
    pub v: &'a [u8],
    /// `cas`: the sequence number the put expects to replace.
    pub cas: Option<i64>,
}

/// A stored item, as a `get` reply needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Item<'a> {
    /// An immutable item.
    Immutable {
        /// The bencoded value.
        v: &'a [u8],
    },
    /// A mutable item.
    Mutable {
        /// The public key.
        k: &'a [u8; 32],
        /// The salt (not sent in `get` replies; the requester knows it).
        salt: &'a [u8],
        /// The sequence number.
        seq: i64,
        /// The signature.
        sig: &'a [u8; 64],
        /// The bencoded value.
        v: &'a [u8],
    },
}

impl<'a> Item<'a> {
    /// The bencoded value.
    pub fn value(self) -> &'a [u8] {
        match self {
            Item::Immutable { v } | Item::Mutable { v, .. } => v,
        }
    }
}

/// BEP 44 items, bounded by count and bytes, expiring, evicting the least recently updated.
///
/// ```
/// use core::time::Duration;
/// use dht_proto::Instant;
/// use dht_proto::bep44::immutable_target;
/// use dht_proto::internals::items::{Item, ItemStore};
///
/// let mut store = ItemStore::new(100, 100_000, Duration::from_secs(7200), [3; 16]);
/// let now = Instant::from_secs(1);
/// let target = store.put_immutable(now, b"12:Hello World!").unwrap();
/// assert_eq!(target, immutable_target(b"12:Hello World!"));
/// assert_eq!(store.get(now, &target), Some(Item::Immutable { v: b"12:Hello World!" }));
/// ```
#[derive(Debug)]
pub struct ItemStore {
    items: HashMap<Id, Stored, KeyedState>,
    /// (last update, target): eviction and expiry order.
    by_updated: BTreeSet<(Instant, Id)>,
    /// Per source: its items.
    sources: Loads,
    bytes: usize,
    max_items: usize,
    max_bytes: usize,
    max_per_source: usize,
    ttl: Duration,
}

#[derive(Debug)]
struct Stored {
    updated: Instant,
    /// The source of the last put ([`source_key`]; 0 for puts without one).
    source: u128,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Immutable {
        v: Arc<[u8]>,
    },
    Mutable {
        k: [u8; 32],
        sig: [u8; 64],
        seq: i64,
        salt: Box<[u8]>,
        v: Arc<[u8]>,
    },
}

impl Stored {
    /// Bytes counted against the byte cap.
    fn cost(&self) -> usize {
        match &self.kind {
            Kind::Immutable { v } => v.len(),
            Kind::Mutable { salt, v, .. } => salt.len() + v.len(),
        }
    }
}

impl ItemStore {
    /// An empty store holding at most `max_items` items and `max_bytes` bytes of values and
    /// salts, each living `ttl` after its last put; `hasher_key` keys the hash map.
    /// No per-source quota until [`ItemStore::with_source_quota`].
    pub fn new(max_items: usize, max_bytes: usize, ttl: Duration, hasher_key: [u8; 16]) -> Self {
        let mut sources_key = hasher_key;
        sources_key.reverse();
        Self {
            items: HashMap::with_hasher(KeyedState::new(hasher_key)),
            by_updated: BTreeSet::new(),
            sources: Loads::new(sources_key),
            bytes: 0,
            max_items,
            max_bytes,
            max_per_source: usize::MAX,
            ttl,
        }
    }

    /// Sets the most items one source may have stored (see the [module docs](self)); zero
    /// refuses every put ([`PutError::StorageDisabled`]).
    #[must_use]
    pub fn with_source_quota(mut self, max_per_source: usize) -> Self {
        self.max_per_source = max_per_source;
        self
    }

    /// Items stored whose last put came from the source of `ip` (its IPv4 address or IPv6
    /// /64).
    pub fn source_load(&self, ip: IpAddr) -> usize {
        self.sources.load(source_key(ip))
    }

    /// An empty store with the caps of `config` and [`DEFAULT_ITEM_TTL`].
    pub fn from_config(config: &Config, hasher_key: [u8; 16]) -> Self {
        Self::new(
            config.limits.max_items,
            config.limits.max_item_bytes,
            DEFAULT_ITEM_TTL,
            hasher_key,
        )
        .with_source_quota(config.limits.max_items_per_source)
    }

    /// Stores an immutable item (or refreshes it) and returns its target. All puts without a
    /// source share one quota; a node uses [`ItemStore::put_immutable_from`].
    ///
    /// # Errors
    ///
    /// As [`ItemStore::put_immutable_from`].
    pub fn put_immutable(&mut self, now: Instant, v: &[u8]) -> Result<Id, PutError> {
        self.put_immutable_by(now, 0, v)
    }

    /// Stores an immutable item put by `from` (or refreshes it) and returns its target.
    ///
    /// # Errors
    ///
    /// [`PutError::ValueTooBig`] when `v` is longer than [`MAX_VALUE_LEN`] or than the byte
    /// cap; [`PutError::StorageDisabled`] when `max_items` or the source quota is zero.
    pub fn put_immutable_from(
        &mut self,
        now: Instant,
        from: IpAddr,
        v: &[u8],
    ) -> Result<Id, PutError> {
        self.put_immutable_by(now, source_key(from), v)
    }

    fn put_immutable_by(&mut self, now: Instant, source: u128, v: &[u8]) -> Result<Id, PutError> {
        self.check_room(v.len(), 0)?;
        let target = immutable_target(v);
        self.drop_if_expired(now, target);
        if let Some(item) = self.items.get(&target) {
            if matches!(&item.kind, Kind::Immutable { v: stored } if **stored == *v) {
                self.touch(target, now, source);
                return Ok(target);
            }
        }
        self.insert(target, now, source, Kind::Immutable { v: Arc::from(v) });
        Ok(target)
    }

    /// Stores a mutable item (or refreshes it) by the rules of the [module docs](self) and
    /// returns its target. All puts without a source share one quota; a node uses
    /// [`ItemStore::put_mutable_from`].
    ///
    /// # Errors
    ///
    /// As [`ItemStore::put_mutable_from`].
    pub fn put_mutable(
        &mut self,
        now: Instant,
        put: &MutablePut<'_>,
        verifier: &impl Ed25519Verifier,
    ) -> Result<Id, PutError> {
        self.put_mutable_by(now, 0, put, verifier)
    }

    /// Stores a mutable item put by `from` (or refreshes it) by the rules of the
    /// [module docs](self) and returns its target.
    ///
    /// # Errors
    ///
    /// The [`PutError`] to answer with: 205, 207, 301, 302, 206 (checked in that order) or 202.
    pub fn put_mutable_from(
        &mut self,
        now: Instant,
        from: IpAddr,
        put: &MutablePut<'_>,
        verifier: &impl Ed25519Verifier,
    ) -> Result<Id, PutError> {
        self.put_mutable_by(now, source_key(from), put, verifier)
    }

    fn put_mutable_by(
        &mut self,
        now: Instant,
        source: u128,
        put: &MutablePut<'_>,
        verifier: &impl Ed25519Verifier,
    ) -> Result<Id, PutError> {
        if put.v.len() > MAX_VALUE_LEN {
            return Err(PutError::ValueTooBig);
        }
        if put.salt.len() > MAX_SALT_LEN {
            return Err(PutError::SaltTooBig);
        }
        self.check_room(put.v.len(), put.salt.len())?;
        let target = mutable_target(put.k, put.salt);
        self.drop_if_expired(now, target);
        let mut same_signature = false;
        if let Some(Stored {
            kind: Kind::Mutable { seq, v, sig, .. },
            ..
        }) = self.items.get(&target)
        {
            if put.cas.is_some_and(|cas| cas != *seq) {
                return Err(PutError::CasMismatch);
            }
            if put.seq < *seq || (put.seq == *seq && **v != *put.v) {
                return Err(PutError::SequenceTooOld);
            }
            same_signature = put.seq == *seq && sig == put.sig;
        }
        // An identical re-put carries the signature already verified for these exact bytes.
        if !same_signature {
            let message = signing_message(put.salt, put.seq, put.v);
            if !verifier.verify(put.k, &message, put.sig) {
                return Err(PutError::InvalidSignature);
            }
        }
        if same_signature {
            self.touch(target, now, source);
            return Ok(target);
        }
        self.insert(
            target,
            now,
            source,
            Kind::Mutable {
                k: *put.k,
                sig: *put.sig,
                seq: put.seq,
                salt: Box::from(put.salt),
                v: Arc::from(put.v),
            },
        );
        Ok(target)
    }

    /// The live item stored under `target`.
    pub fn get(&self, now: Instant, target: &Id) -> Option<Item<'_>> {
        self.get_shared(now, target).map(|(item, _)| item)
    }

    /// [`ItemStore::get`], with the value shared: what a `get` reply holds while it waits to
    /// be sent, without copying the bytes.
    pub(crate) fn get_shared(&self, now: Instant, target: &Id) -> Option<(Item<'_>, &Arc<[u8]>)> {
        let item = self.items.get(target)?;
        if item.updated.saturating_add(self.ttl) <= now {
            return None;
        }
        let shared = match &item.kind {
            Kind::Immutable { v } | Kind::Mutable { v, .. } => v,
        };
        Some((
            match &item.kind {
                Kind::Immutable { v } => Item::Immutable { v },
                Kind::Mutable {
                    k,
                    sig,
                    seq,
                    salt,
                    v,
                } => Item::Mutable {
                    k,
                    salt,
                    seq: *seq,
                    sig,
                    v,
                },
            },
            shared,
        ))
    }

    /// Drops every item not put for `ttl` or longer.
    ///
    /// Costs `O(log n)` per item removed; call it when [`ItemStore::next_expiry`] is due.
    pub fn expire(&mut self, now: Instant) {
        while let Some(&(updated, target)) = self.by_updated.first() {
            if updated.saturating_add(self.ttl) > now {
                break;
            }
            self.remove(target, updated);
        }
    }

    /// When the next item expires, or `None` when the store is empty.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.by_updated
            .first()
            .map(|(t, _)| t.saturating_add(self.ttl))
    }

    /// Number of stored items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no item is stored.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes of values and salts stored (what `max_bytes` caps).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Approximate heap bytes held: table slots, index entries, values and salts.
    pub fn memory_usage(&self) -> usize {
        let table = self
            .items
            .capacity()
            .saturating_mul(size_of::<(Id, Stored)>() + 1);
        let index = self
            .by_updated
            .len()
            .saturating_mul(2 * size_of::<(Instant, Id)>());
        // Each value's reference counts.
        let counts = self.items.len().saturating_mul(2 * size_of::<usize>());
        table + index + self.bytes + counts + self.sources.memory_usage()
    }

    /// Refuses what can never be stored: too-big values or no storage at all.
    fn check_room(&self, v_len: usize, salt_len: usize) -> Result<(), PutError> {
        if v_len > MAX_VALUE_LEN || v_len + salt_len > self.max_bytes {
            return Err(PutError::ValueTooBig);
        }
        if self.max_items == 0 || self.max_per_source == 0 {
            return Err(PutError::StorageDisabled);
        }
        Ok(())
    }

    /// Removes the item under `target` if it has expired, so that a put treats it as absent
    /// even before [`ItemStore::expire`] runs.
    fn drop_if_expired(&mut self, now: Instant, target: Id) {
        if let Some(item) = self.items.get(&target) {
            if item.updated.saturating_add(self.ttl) <= now {
                let updated = item.updated;
                self.remove(target, updated);
            }
        }
    }

    /// Marks `target` as updated at `now` by `source` (time never moves an item backwards).
    fn touch(&mut self, target: Id, now: Instant, source: u128) {
        if let Some(item) = self.items.get_mut(&target) {
            self.by_updated.remove(&(item.updated, target));
            item.updated = item.updated.max(now);
            self.by_updated.insert((item.updated, target));
            if item.source == source {
                self.sources.touch(source, target);
            } else {
                self.sources.remove(item.source, target);
                item.source = source;
                self.sources.add(source, target);
            }
        }
    }

    /// Stores `kind` under `target` for `source`, replacing what is there and evicting by
    /// the rules of the [module docs](self) until the quota and both caps hold.
    fn insert(&mut self, target: Id, now: Instant, source: u128, kind: Kind) {
        let mut updated = now;
        if let Some(old) = self.items.get(&target) {
            updated = old.updated.max(now);
            let old_updated = old.updated;
            self.remove(target, old_updated);
        }
        while self.sources.load(source) >= self.max_per_source {
            let Some(own) = self.sources.oldest_of(source) else {
                break;
            };
            self.remove_item(own);
        }
        let item = Stored {
            updated,
            source,
            kind,
        };
        let cost = item.cost();
        while self.items.len() >= self.max_items || self.bytes + cost > self.max_bytes {
            let victim = match self.sources.heaviest() {
                Some((_, oldest_of_heaviest)) => oldest_of_heaviest,
                None => match self.by_updated.first() {
                    Some(&(_, oldest)) => oldest,
                    None => break,
                },
            };
            self.remove_item(victim);
        }
        self.bytes += cost;
        self.by_updated.insert((updated, target));
        self.sources.add(source, target);
        self.items.insert(target, item);
    }

    fn remove_item(&mut self, target: Id) {
        let updated = self.items.get(&target).map(|i| i.updated);
        match updated {
            Some(updated) => self.remove(target, updated),
            // Unreachable while the source lists are consistent; never loop on it.
            None => self.sources.remove(0, target),
        }
    }

    fn remove(&mut self, target: Id, updated: Instant) {
        self.by_updated.remove(&(updated, target));
        if let Some(item) = self.items.remove(&target) {
            self.bytes = self.bytes.saturating_sub(item.cost());
            self.sources.remove(item.source, target);
        }
    }
}

#[cfg(test)]
mod tests;
