//! The in-flight table: every request we sent and are waiting for, keyed by transaction id.
//!
//! A transaction id is six bytes: a two-byte slot index and a four-byte random nonce. The slot
//! makes lookup O(1) without hashing attacker-chosen bytes; the nonce makes ids unpredictable, so
//! an off-path attacker cannot forge a response (it would also need the right source address and
//! node id). Deadlines live in one ordered set, so the earliest is always at hand.
//!
//! No byte of an id is zero: some deployed nodes (btdht) copy `t` as a C string, so a zero byte
//! would cut the id short and their answer would never match. The slot is written in base 255
//! with digits 1..=255 (so at most 255 × 255 slots), and zero bytes of the nonce become 1.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use core::net::SocketAddr;
use core::time::Duration;

use crate::event::QueryId;
use crate::id::Id;
use crate::time::Instant;

/// Length of the transaction ids this node sends.
pub(crate) const TID_LEN: usize = 6;

/// A transaction id as sent on the wire.
pub(crate) type Tid = [u8; TID_LEN];

/// Slots a two-byte id without zero bytes can name.
const MAX_SLOTS: usize = 255 * 255;

/// The slot as two bytes in 1..=255.
fn slot_bytes(slot: u16) -> [u8; 2] {
    let (hi, lo) = (slot / 255, slot % 255);
    [
        u8::try_from(hi + 1).unwrap_or(u8::MAX),
        u8::try_from(lo + 1).unwrap_or(u8::MAX),
    ]
}

/// The slot of two id bytes, if they are a valid encoding.
fn slot_of_bytes(b: [u8; 2]) -> Option<u16> {
    let (hi, lo) = (
        u16::from(b[0].checked_sub(1)?),
        u16::from(b[1].checked_sub(1)?),
    );
    Some(hi * 255 + lo)
}

/// `n` with each zero byte replaced by 1.
fn without_zero_bytes(n: u32) -> u32 {
    u32::from_be_bytes(n.to_be_bytes().map(|b| b.max(1)))
}

/// What a request was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// A lookup request (index of the lookup within the query: 0 = IPv4, 1 = IPv6).
    Lookup { query: QueryId, family: u8 },
    /// An announce_peer (or put) after a lookup.
    Store { query: QueryId },
    /// A single request whose answer ends the query (ping, custom query).
    Single { query: QueryId },
    /// A liveness ping asked for by the routing table.
    TablePing,
    /// A lookup request past its short timeout, left open after its lookup finished because
    /// the lookup's size-estimate sample waits for it (family, the sample's tag).
    SizeSample { family: u8, tag: u32 },
}

#[derive(Clone, Debug)]
pub(crate) struct Txn {
    pub(crate) nonce: u32,
    pub(crate) to: SocketAddr,
    /// The id we expect to answer, when known.
    pub(crate) node_id: Option<Id>,
    pub(crate) sent_at: Instant,
    pub(crate) short_deadline: Instant,
    pub(crate) deadline: Instant,
    /// The short deadline has passed.
    pub(crate) slow: bool,
    /// A lookup request's release deadline in ms after `sent_at`, before the short one (see
    /// [`Expired::Released`]); 0 once it passed, or when the request has none. (Milliseconds
    /// keep the transaction small: there are `max_in_flight` of them.)
    pub(crate) release_ms: u16,
    pub(crate) purpose: Purpose,
}

/// What a deadline did.
#[derive(Clone, Debug)]
pub(crate) enum Expired {
    /// The release deadline passed (a lookup request no longer holds its lookup's end); the
    /// transaction is still open and within its short timeout.
    Released(Txn),
    /// The short timeout passed; the transaction is still open.
    Slow(Txn),
    /// The full timeout passed; the transaction is closed.
    Failed(Txn),
}

/// Slots kept when no transaction is open; more are given back (see
/// [`Transactions::release_if_idle`]).
const IDLE_SLOTS: usize = 16;

#[derive(Debug)]
pub(crate) struct Transactions {
    slots: Vec<Option<Txn>>,
    free: Vec<u16>,
    cap: usize,
    /// (deadline, slot) for every open transaction: its release deadline until that passed,
    /// then its short deadline, then its full deadline (see [`current_deadline`]).
    deadlines: BTreeSet<(Instant, u16)>,
    len: usize,
}

impl Transactions {
    pub(crate) fn new(cap: usize) -> Self {
        let cap = cap.clamp(1, MAX_SLOTS);
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            cap,
            deadlines: BTreeSet::new(),
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len >= self.cap
    }

    /// Opens a transaction; `None` at the cap.
    pub(crate) fn open(&mut self, mut txn: Txn) -> Option<Tid> {
        if self.is_full() {
            return None;
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                let s = u16::try_from(self.slots.len()).ok()?;
                self.slots.push(None);
                s
            }
        };
        txn.nonce = without_zero_bytes(txn.nonce);
        // A release deadline only makes sense before the short one.
        if release_of(&txn).is_some_and(|r| r >= txn.short_deadline) {
            txn.release_ms = 0;
        }
        let mut tid = [0u8; TID_LEN];
        let (a, b) = tid.split_at_mut(2);
        a.copy_from_slice(&slot_bytes(slot));
        b.copy_from_slice(&txn.nonce.to_be_bytes());
        self.deadlines.insert((current_deadline(&txn), slot));
        *self.slots.get_mut(usize::from(slot))? = Some(txn);
        self.len += 1;
        Some(tid)
    }

    fn slot_of(&self, tid: &[u8]) -> Option<u16> {
        let (s, n): ([u8; 2], [u8; 4]) = match tid {
            [a, b, c, d, e, f] => ([*a, *b], [*c, *d, *e, *f]),
            _ => return None,
        };
        let slot = slot_of_bytes(s)?;
        let nonce = u32::from_be_bytes(n);
        let txn = self.slots.get(usize::from(slot))?.as_ref()?;
        (txn.nonce == nonce).then_some(slot)
    }

    /// The open transaction with this id.
    pub(crate) fn get(&self, tid: &[u8]) -> Option<&Txn> {
        let slot = self.slot_of(tid)?;
        self.slots.get(usize::from(slot))?.as_ref()
    }

    /// Closes and returns the transaction with this id.
    pub(crate) fn close(&mut self, tid: &[u8]) -> Option<Txn> {
        let slot = self.slot_of(tid)?;
        self.close_slot(slot)
    }

    fn close_slot(&mut self, slot: u16) -> Option<Txn> {
        let txn = self.slots.get_mut(usize::from(slot))?.take()?;
        self.deadlines.remove(&(current_deadline(&txn), slot));
        self.free.push(slot);
        self.len -= 1;
        self.release_if_idle();
        Some(txn)
    }

    /// With nothing open, gives back the slots a burst left behind (a late answer to a closed
    /// transaction is still refused: its slot is either gone or holds another nonce).
    fn release_if_idle(&mut self) {
        if self.len == 0 && self.slots.len() > IDLE_SLOTS {
            self.slots.clear();
            self.free.clear();
            self.slots.shrink_to(IDLE_SLOTS);
            self.free.shrink_to(IDLE_SLOTS);
        }
    }

    /// Closes every transaction of `query` (a cancelled or finished query), returning how many.
    pub(crate) fn close_query(&mut self, query: QueryId) -> usize {
        let slots: Vec<u16> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let t = t.as_ref()?;
                let q = match t.purpose {
                    Purpose::Lookup { query, .. }
                    | Purpose::Store { query }
                    | Purpose::Single { query } => query,
                    Purpose::TablePing | Purpose::SizeSample { .. } => return None,
                };
                (q == query).then(|| u16::try_from(i).ok()).flatten()
            })
            .collect();
        for s in &slots {
            self.close_slot(*s);
        }
        slots.len()
    }

    /// Gives the open requests of `query`'s lookup in `family` that went to one of `ids` (the
    /// requests the lookup no longer waited for: past their release time or short timeout) the
    /// purpose `purpose` (so [`Transactions::close_query`] leaves them open), and appends their
    /// node ids to `out`.
    pub(crate) fn hand_over_slow(
        &mut self,
        query: QueryId,
        family: u8,
        ids: &[Id],
        purpose: Purpose,
        out: &mut Vec<Id>,
    ) {
        for t in self.slots.iter_mut().flatten() {
            let ours = t.purpose == Purpose::Lookup { query, family };
            if let (true, Some(id)) = (ours, t.node_id) {
                if ids.contains(&id) {
                    t.purpose = purpose;
                    out.push(id);
                }
            }
        }
    }

    /// The earliest deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(t, _)| *t)
    }

    /// Pops one deadline that is due at `now`.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<Expired> {
        let &(at, slot) = self.deadlines.first()?;
        if at > now {
            return None;
        }
        self.deadlines.remove(&(at, slot));
        let txn = self.slots.get_mut(usize::from(slot))?.as_mut()?;
        if txn.release_ms != 0 {
            txn.release_ms = 0;
            self.deadlines.insert((current_deadline(txn), slot));
            return Some(Expired::Released(txn.clone()));
        }
        if !txn.slow && txn.deadline > at {
            txn.slow = true;
            self.deadlines.insert((txn.deadline, slot));
            return Some(Expired::Slow(txn.clone()));
        }
        // The full deadline (or a short deadline equal to it): its set entry is already gone.
        let txn = self.slots.get_mut(usize::from(slot))?.take()?;
        self.free.push(slot);
        self.len -= 1;
        self.release_if_idle();
        Some(Expired::Failed(txn))
    }
}

/// The release deadline of a transaction, if it has one still to come.
fn release_of(txn: &Txn) -> Option<Instant> {
    (txn.release_ms != 0).then(|| txn.sent_at + Duration::from_millis(u64::from(txn.release_ms)))
}

/// The deadline under which an open transaction is filed in [`Transactions::deadlines`].
fn current_deadline(txn: &Txn) -> Instant {
    match (txn.slow, release_of(txn)) {
        (true, _) => txn.deadline,
        (false, Some(release)) => release,
        (false, None) => txn.short_deadline,
    }
}

#[cfg(test)]
mod tests {
    use core::time::Duration;

    use super::*;

    fn txn(nonce: u32, now: Instant) -> Txn {
        Txn {
            nonce,
            to: "1.2.3.4:5".parse().unwrap(),
            node_id: None,
            sent_at: now,
            short_deadline: now + Duration::from_secs(1),
            deadline: now + Duration::from_secs(5),
            slow: false,
            release_ms: 0,
            purpose: Purpose::TablePing,
        }
    }

    /// Ids carry no zero byte (a C-string copy of `t` must keep all six bytes), over every
    /// slot, and each id maps back to its own slot.
    #[test]
    fn ids_have_no_zero_byte() {
        let mut t = Transactions::new(usize::MAX);
        let now = Instant::ZERO;
        let mut seen = BTreeSet::new();
        for i in 0..MAX_SLOTS {
            let nonce = [0, 0x0100_0000, 0x0000_ff00, 0xffff_ffff][i % 4];
            let tid = t.open(txn(nonce, now)).unwrap();
            assert!(!tid.contains(&0), "{tid:?}");
            assert!(seen.insert(tid), "duplicate id {tid:?}");
            assert!(t.get(&tid).is_some());
        }
        assert!(t.open(txn(1, now)).is_none(), "every slot is taken");
        assert_eq!(slot_of_bytes([0, 1]), None);
        assert_eq!(slot_of_bytes(slot_bytes(65_024)), Some(65_024));
    }

    #[test]
    fn open_get_close() {
        let mut t = Transactions::new(2);
        let now = Instant::ZERO;
        let a = t.open(txn(7, now)).unwrap();
        let b = t.open(txn(8, now)).unwrap();
        assert!(t.open(txn(9, now)).is_none(), "cap");
        assert_ne!(a, b);
        assert_eq!(t.get(&a).unwrap().nonce, without_zero_bytes(7));
        let mut forged = a;
        forged[5] ^= 1;
        assert!(t.get(&forged).is_none(), "wrong nonce");
        assert!(t.get(&a[..4]).is_none(), "wrong length");
        assert_eq!(t.close(&a).unwrap().nonce, without_zero_bytes(7));
        assert!(t.close(&a).is_none(), "closed once");
        assert_eq!(t.len(), 1);
        assert_eq!(t.next_deadline(), Some(now + Duration::from_secs(1)));
    }

    /// A burst's slots are given back once nothing is open, by answers and by timeouts
    /// alike, and an answer that comes after that finds nothing.
    #[test]
    fn slots_are_given_back_when_idle() {
        let mut t = Transactions::new(1_000);
        let now = Instant::ZERO;
        let tids: Vec<Tid> = (0..500).map(|i| t.open(txn(i + 1, now)).unwrap()).collect();
        assert_eq!(t.slots.len(), 500);
        for tid in &tids[1..] {
            assert!(t.close(tid).is_some());
        }
        assert_eq!(t.slots.len(), 500, "one still open");
        // The last one times out.
        let late = now + Duration::from_secs(60);
        while t.pop_expired(late).is_some() {}
        assert_eq!(t.len(), 0);
        assert!(t.slots.capacity() <= IDLE_SLOTS, "{}", t.slots.capacity());
        // The slots are numbered from 0 again: an old id gets nothing, a new one works.
        let fresh = t.open(txn(9_999, late)).unwrap();
        for tid in &tids {
            assert!(t.get(tid).is_none());
        }
        assert!(t.close(&fresh).is_some());
    }

    #[test]
    fn short_then_full_deadline() {
        let mut t = Transactions::new(4);
        let now = Instant::ZERO;
        let a = t.open(txn(1, now)).unwrap();
        assert!(t.pop_expired(now).is_none());
        match t.pop_expired(now + Duration::from_secs(1)) {
            Some(Expired::Slow(x)) => assert_eq!(x.nonce, without_zero_bytes(1)),
            other => panic!("{other:?}"),
        }
        assert!(t.get(&a).unwrap().slow);
        assert_eq!(t.next_deadline(), Some(now + Duration::from_secs(5)));
        match t.pop_expired(now + Duration::from_secs(9)) {
            Some(Expired::Failed(x)) => assert_eq!(x.nonce, without_zero_bytes(1)),
            other => panic!("{other:?}"),
        }
        assert_eq!(t.len(), 0);
        assert_eq!(t.next_deadline(), None);
        // The slot is reused with a new nonce; the old id stays dead.
        let b = t.open(txn(2, now)).unwrap();
        assert!(t.get(&a).is_none());
        assert!(t.get(&b).is_some());
    }

    #[test]
    fn closing_a_slow_transaction_removes_its_full_deadline() {
        let mut t = Transactions::new(4);
        let a = t.open(txn(1, Instant::ZERO)).unwrap();
        let _ = t.pop_expired(Instant::from_secs(1));
        t.close(&a).unwrap();
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn release_then_short_then_full_deadline() {
        let mut t = Transactions::new(4);
        let now = Instant::ZERO;
        let mut x = txn(1, now);
        x.release_ms = 300;
        let a = t.open(x).unwrap();
        assert_eq!(t.next_deadline(), Some(now + Duration::from_millis(300)));
        assert!(t.pop_expired(now + Duration::from_millis(299)).is_none());
        match t.pop_expired(now + Duration::from_millis(300)) {
            Some(Expired::Released(x)) => assert!(!x.slow && x.release_ms == 0),
            other => panic!("{other:?}"),
        }
        assert!(!t.get(&a).unwrap().slow);
        assert_eq!(t.next_deadline(), Some(now + Duration::from_secs(1)));
        assert!(matches!(
            t.pop_expired(now + Duration::from_secs(1)),
            Some(Expired::Slow(_))
        ));
        assert!(matches!(
            t.pop_expired(now + Duration::from_secs(5)),
            Some(Expired::Failed(_))
        ));
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn a_release_not_before_the_short_deadline_is_dropped() {
        let mut t = Transactions::new(4);
        let now = Instant::ZERO;
        let mut x = txn(1, now);
        x.release_ms = 1000;
        let a = t.open(x).unwrap();
        assert_eq!(t.get(&a).unwrap().release_ms, 0);
        assert!(matches!(
            t.pop_expired(now + Duration::from_secs(1)),
            Some(Expired::Slow(_))
        ));
    }

    #[test]
    fn closing_before_the_release_removes_its_deadline() {
        let mut t = Transactions::new(4);
        let now = Instant::ZERO;
        let mut x = txn(1, now);
        x.release_ms = 300;
        let a = t.open(x).unwrap();
        t.close(&a).unwrap();
        assert_eq!(t.next_deadline(), None);
        assert!(t.pop_expired(now + Duration::from_secs(9)).is_none());
    }
}
