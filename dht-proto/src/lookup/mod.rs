//! One iterative lookup: the candidate set of a `find_node` / `get_peers` / announce / refresh.
//!
//! Pure bookkeeping, no I/O and no clock: the [`Node`](crate::Node) asks [`Lookup::next`] whom to
//! query, and reports answers, slow answers and failures back. The shape follows the
//! closest-peers iterator of libp2p's Kademlia: candidates are kept ordered by XOR distance to the
//! target and capped; at most α requests are in flight among the closest candidates not yet
//! queried; a request that passes its short timeout stops counting toward α (the lookup widens)
//! and toward the result set, but a late answer is still welcome; the lookup ends once the k
//! closest candidates that did not fail have all answered. The last round asks a few spares
//! beyond the k closest at once, so that a dead one among them costs no extra round trip.
//!
//! A request stops holding the lookup's end earlier than its short timeout, at the lookup's
//! release time (about the median of its own answers' round trips, [`Lookup::release_after`]):
//! a dead node among the k closest then delays the end by one typical round trip of this
//! lookup rather than a short timeout, and the spares that answered take its place. It still
//! counts toward α until its short timeout, so releasing sends no extra request.

use alloc::vec::Vec;
use core::net::SocketAddr;
use core::time::Duration;

use crate::id::{Distance, Id};
use crate::wire::compact::NodeInfo;

pub(crate) use crate::small::SmallBytes as TokenBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Known, not yet queried.
    Fresh,
    /// Queried, within its short timeout: counts toward α.
    Waiting,
    /// Queried, past the lookup's release time but within its short timeout: counts toward α,
    /// but no longer holds the lookup's end (an answer still puts it in the result set).
    Late,
    /// Queried, past its short timeout: neither in α nor in the result set until it answers.
    Slow,
    /// Answered.
    Responded,
    /// Failed (timed out or answered with an error).
    Failed,
}

#[derive(Clone, Debug)]
pub(crate) struct Candidate {
    pub(crate) id: Id,
    pub(crate) addr: SocketAddr,
    pub(crate) distance: Distance,
    pub(crate) state: State,
    /// 1 for contacts taken from the routing table or seeds, parent + 1 for contacts learned from
    /// a response.
    pub(crate) hop: u8,
    pub(crate) token: Option<TokenBuf>,
}

impl Candidate {
    /// Whether it answered.
    pub(crate) fn answered(&self) -> bool {
        self.state == State::Responded
    }
}

/// Whom to query next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Contact {
    /// `None` for bootstrap seeds, whose ids are unknown.
    pub(crate) id: Option<Id>,
    pub(crate) addr: SocketAddr,
}

/// How a lookup ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Finish {
    /// The closest live candidates have answered (or every candidate was tried and some answered).
    Converged,
    /// Nobody answered.
    Exhausted,
}

/// Requests a lookup sends again after a timeout (see [`Lookup::on_timeout`]): enough for a
/// lookup through one contact to survive a lost datagram, and a bound on how long a lookup
/// toward an unreachable contact lasts (two full timeouts).
const MAX_RETRIES: u8 = 1;

/// Candidates beyond the k closest that the last round asks as well. One of the k closest is
/// dead or its datagram lost in most lookups (with a fifth of entries dead, 83 % of them), and
/// the lookup then needs the next candidate's answer: asked at once rather than after the short
/// timeout, it is usually in hand by then. The simulator (100,000 nodes, 5 % loss, 20 % dead)
/// puts the median lookup at 5.5 round trips with 5 spares against 6.2 without, for the same
/// number of requests (a spare replaces the request the lookup sends after a timeout).
const LAST_ROUND_SPARE: usize = 5;

/// Answer times a lookup keeps (the most recent ones) for its release time.
const ANSWER_TIMES: usize = 16;
/// Answers a lookup waits for before it sets release times: fewer say little about the round
/// trips of this lookup.
const MIN_ANSWERS: usize = 3;
/// The release time in percent of the median answer time. The simulator (100,000 nodes, 5 %
/// loss, 20 % dead entries, α 6, seeds 1 and 2) puts the median lookup at 4.91 and 4.89 round
/// trips with 80 % (about 5.0 with 100 %) against 5.57 and 5.49 without a release time, for the
/// same number of requests (p99 38 and 37 against 39).
const RELEASE_PERCENT: u32 = 80;
/// Shortest release time.
const MIN_RELEASE: Duration = Duration::from_millis(50);

#[derive(Clone, Debug)]
pub(crate) struct Lookup {
    target: Id,
    /// Result-set size k.
    k: usize,
    alpha: usize,
    max_candidates: usize,
    /// Ordered by distance, unique ids and unique addresses.
    candidates: Vec<Candidate>,
    /// Seed addresses not yet queried (ids unknown).
    seeds: Vec<SocketAddr>,
    /// Seed requests in flight (within short timeout).
    seeds_waiting: usize,
    /// Seed requests past their short timeout, still pending.
    seeds_slow: usize,
    /// Requests sent again after a timeout, at most [`MAX_RETRIES`].
    retries: u8,
    /// Round trips of the latest answers in ms (saturated), a ring of [`ANSWER_TIMES`].
    answer_ms: [u16; ANSWER_TIMES],
    /// Slots of `answer_ms` in use (at most [`ANSWER_TIMES`]).
    answers: u8,
    /// The slot of `answer_ms` the next answer time goes to.
    next_answer: u8,
}

impl Lookup {
    pub(crate) fn new(target: Id, k: usize, alpha: usize, max_candidates: usize) -> Self {
        Self {
            target,
            k: k.max(1),
            alpha: alpha.max(1),
            max_candidates: max_candidates.max(k.max(1)),
            candidates: Vec::new(),
            seeds: Vec::new(),
            seeds_waiting: 0,
            seeds_slow: 0,
            retries: 0,
            answer_ms: [0; ANSWER_TIMES],
            answers: 0,
            next_answer: 0,
        }
    }

    pub(crate) fn target(&self) -> Id {
        self.target
    }

    /// Adds a seed address (id unknown) to contact first.
    pub(crate) fn add_seed(&mut self, addr: SocketAddr) {
        if self.seeds.len() < self.max_candidates
            && !self.seeds.contains(&addr)
            && !self.candidates.iter().any(|c| c.addr == addr)
        {
            self.seeds.push(addr);
        }
    }

    /// Adds a candidate; returns whether it was new and kept. Duplicated ids or addresses are
    /// ignored; beyond the cap the farthest candidate that is not in flight is dropped.
    pub(crate) fn add_candidate(&mut self, id: Id, addr: SocketAddr, hop: u8) -> bool {
        let distance = id.distance(&self.target);
        let Err(pos) = self
            .candidates
            .binary_search_by(|c| c.distance.cmp(&distance))
        else {
            return false;
        };
        if self.candidates.iter().any(|c| c.addr == addr) {
            return false;
        }
        if self.candidates.len() >= self.max_candidates {
            if pos >= self.candidates.len() {
                return false;
            }
            // Drop the farthest candidate that nothing is waiting for.
            let victim = self
                .candidates
                .iter()
                .rposition(|c| !matches!(c.state, State::Waiting | State::Late | State::Slow));
            match victim {
                Some(v) if v >= pos => {
                    self.candidates.remove(v);
                }
                _ => return false,
            }
        }
        self.candidates.insert(
            pos,
            Candidate {
                id,
                addr,
                distance,
                state: State::Fresh,
                hop,
                token: None,
            },
        );
        true
    }

    fn in_flight(&self) -> usize {
        self.seeds_waiting
            + self
                .candidates
                .iter()
                .filter(|c| matches!(c.state, State::Waiting | State::Late))
                .count()
    }

    /// The next contact to query now, if α allows and the lookup still needs one. The contact
    /// is marked as waiting.
    ///
    /// Beyond α, the last round of Kademlia: once some candidate has answered, an unqueried
    /// candidate among the k closest still alive is queried at once rather than waiting for a
    /// slot, since the result will be those k and every one of them must answer anyway; and so
    /// are [`LAST_ROUND_SPARE`] more, the stand-ins for those of the k that do not answer.
    pub(crate) fn next(&mut self) -> Option<Contact> {
        let in_flight = self.in_flight();
        if in_flight >= self.alpha + self.k {
            return None;
        }
        if in_flight < self.alpha {
            if let Some(addr) = self.seeds.pop() {
                self.seeds_waiting += 1;
                return Some(Contact { id: None, addr });
            }
        }
        let mut responded = 0;
        // Position among the candidates still alive (not failed), nearest first.
        let mut rank = 0;
        for c in &mut self.candidates {
            match c.state {
                State::Responded => {
                    responded += 1;
                    if responded >= self.k {
                        return None;
                    }
                }
                State::Fresh => {
                    let last_round = responded > 0 && rank < self.k + LAST_ROUND_SPARE;
                    if in_flight >= self.alpha && !last_round {
                        return None;
                    }
                    c.state = State::Waiting;
                    return Some(Contact {
                        id: Some(c.id),
                        addr: c.addr,
                    });
                }
                State::Waiting | State::Late | State::Slow => {}
                State::Failed => continue,
            }
            rank += 1;
        }
        None
    }

    /// Whether the lookup is over, and how.
    pub(crate) fn finished(&self) -> Option<Finish> {
        if !self.seeds.is_empty() || self.seeds_waiting > 0 {
            return None;
        }
        let mut responded = 0;
        for c in &self.candidates {
            match c.state {
                State::Responded => {
                    responded += 1;
                    if responded >= self.k {
                        return Some(Finish::Converged);
                    }
                }
                State::Fresh | State::Waiting => return None,
                State::Late | State::Slow | State::Failed => {}
            }
        }
        // Fewer than k answered and nothing fresh is left. If some answered, the lookup has
        // seen all there is (a small network, or the rest is unreachable): stop rather than
        // wait a full timeout for requests already past their short timeout. If none did, the
        // slow (or late) ones are all that is left: wait for them.
        let slow = self.seeds_slow > 0
            || self
                .candidates
                .iter()
                .any(|c| matches!(c.state, State::Late | State::Slow));
        if slow && responded == 0 {
            return None;
        }
        Some(if responded > 0 {
            Finish::Converged
        } else {
            Finish::Exhausted
        })
    }

    fn find(&mut self, id: Option<Id>, addr: SocketAddr) -> Option<&mut Candidate> {
        match id {
            Some(id) => {
                let d = id.distance(&self.target);
                let i = self
                    .candidates
                    .binary_search_by(|c| c.distance.cmp(&d))
                    .ok()?;
                self.candidates.get_mut(i).filter(|c| c.addr == addr)
            }
            None => self.candidates.iter_mut().find(|c| c.addr == addr),
        }
    }

    /// A request to a seed (`queried_id == None`) or a candidate was answered by `id`.
    /// Returns the hop count of the responder.
    pub(crate) fn on_response(
        &mut self,
        queried_id: Option<Id>,
        was_slow: bool,
        id: Id,
        addr: SocketAddr,
        token: Option<&[u8]>,
    ) -> u8 {
        if queried_id.is_none() {
            if was_slow {
                self.seeds_slow = self.seeds_slow.saturating_sub(1);
            } else {
                self.seeds_waiting = self.seeds_waiting.saturating_sub(1);
            }
            // The seed becomes a regular candidate that has answered.
            self.add_candidate(id, addr, 1);
        }
        match self.find(Some(id), addr) {
            Some(c) => {
                c.state = State::Responded;
                c.token = token.and_then(TokenBuf::new);
                c.hop
            }
            None => 1,
        }
    }

    /// Records the round trip of an answer to one of this lookup's requests.
    pub(crate) fn on_answer_time(&mut self, rtt: Duration) {
        let ms = u16::try_from(rtt.as_millis()).unwrap_or(u16::MAX);
        if let Some(slot) = self.answer_ms.get_mut(usize::from(self.next_answer)) {
            *slot = ms;
        }
        self.next_answer = if usize::from(self.next_answer) + 1 >= ANSWER_TIMES {
            0
        } else {
            self.next_answer + 1
        };
        if usize::from(self.answers) < ANSWER_TIMES {
            self.answers += 1;
        }
    }

    /// How long a request sent now holds the lookup's end: [`RELEASE_PERCENT`] of the median
    /// round trip of the lookup's latest answers, at least [`MIN_RELEASE`]; `None` (until the
    /// short timeout) before [`MIN_ANSWERS`] answers.
    pub(crate) fn release_after(&self) -> Option<Duration> {
        let n = usize::from(self.answers).min(ANSWER_TIMES);
        if n < MIN_ANSWERS {
            return None;
        }
        let mut times = self.answer_ms;
        let recorded = times.get_mut(..n)?;
        recorded.sort_unstable();
        let median = u32::from(*recorded.get(n / 2)?);
        let ms = median.saturating_mul(RELEASE_PERCENT) / 100;
        Some(Duration::from_millis(u64::from(ms)).max(MIN_RELEASE))
    }

    /// A request passed its release time: it no longer holds the lookup's end.
    pub(crate) fn on_release(&mut self, queried_id: Option<Id>, addr: SocketAddr) {
        if queried_id.is_none() {
            return;
        }
        if let Some(c) = self.find(queried_id, addr) {
            if c.state == State::Waiting {
                c.state = State::Late;
            }
        }
    }

    /// A request passed its short timeout.
    pub(crate) fn on_slow(&mut self, queried_id: Option<Id>, addr: SocketAddr) {
        if queried_id.is_none() {
            if self.seeds_waiting > 0 {
                self.seeds_waiting -= 1;
                self.seeds_slow += 1;
            }
            return;
        }
        if let Some(c) = self.find(queried_id, addr) {
            if matches!(c.state, State::Waiting | State::Late) {
                c.state = State::Slow;
            }
        }
    }

    /// Contacts (seeds and candidates) that have not failed: queried, to query, or answered.
    fn live(&self) -> usize {
        let candidates = self.candidates.iter().filter(|c| c.state != State::Failed);
        candidates.count() + self.seeds.len() + self.seeds_waiting + self.seeds_slow
    }

    /// A request went unanswered for the full timeout.
    ///
    /// A lost datagram must not end a lookup that has almost nobody else to ask: when fewer
    /// than α other contacts are live, the contact is queried once more (it goes back to the
    /// contacts to query), at most [`MAX_RETRIES`] times per lookup; otherwise it failed.
    pub(crate) fn on_timeout(&mut self, queried_id: Option<Id>, addr: SocketAddr, was_slow: bool) {
        let pending = match queried_id {
            None => true,
            Some(_) => self
                .find(queried_id, addr)
                .is_some_and(|c| matches!(c.state, State::Waiting | State::Late | State::Slow)),
        };
        self.on_failure(queried_id, addr, was_slow);
        if !pending || self.live() >= self.alpha || self.retries >= MAX_RETRIES {
            return;
        }
        self.retries += 1;
        match queried_id {
            None => self.seeds.push(addr),
            Some(_) => {
                if let Some(c) = self.find(queried_id, addr) {
                    c.state = State::Fresh;
                }
            }
        }
    }

    /// A request failed (full timeout or error).
    pub(crate) fn on_failure(&mut self, queried_id: Option<Id>, addr: SocketAddr, was_slow: bool) {
        if queried_id.is_none() {
            if was_slow {
                self.seeds_slow = self.seeds_slow.saturating_sub(1);
            } else {
                self.seeds_waiting = self.seeds_waiting.saturating_sub(1);
            }
            return;
        }
        if let Some(c) = self.find(queried_id, addr) {
            if matches!(c.state, State::Waiting | State::Late | State::Slow) {
                c.state = State::Failed;
            }
        }
    }

    /// The candidates that answered, nearest first, at most `n`.
    pub(crate) fn responded(&self, n: usize) -> impl Iterator<Item = &Candidate> {
        self.candidates
            .iter()
            .filter(|c| c.state == State::Responded)
            .take(n)
    }

    /// The candidates that answered or are past their release time or short timeout (still
    /// unanswered, the lookup no longer waits for them), nearest first.
    pub(crate) fn answered_or_slow(&self) -> impl Iterator<Item = &Candidate> {
        self.candidates
            .iter()
            .filter(|c| matches!(c.state, State::Responded | State::Late | State::Slow))
    }

    /// The closest responders as node infos.
    pub(crate) fn closest(&self, n: usize) -> Vec<NodeInfo> {
        self.responded(n)
            .map(|c| NodeInfo {
                id: c.id,
                addr: c.addr,
            })
            .collect()
    }

    /// The largest hop count among responders.
    pub(crate) fn max_hop(&self) -> u8 {
        self.responded(usize::MAX).map(|c| c.hop).max().unwrap_or(0)
    }

    #[cfg(test)]
    pub(crate) fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }
}

#[cfg(test)]
mod tests;
