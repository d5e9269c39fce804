//! What the node owes to strangers: per-source admission of queries, the reflection rule and
//! the upload budget for replies, and a budget for the table pings strangers cause. The
//! policy and its table are in [`admission`](crate::admission); this is where the node applies
//! them.

use core::net::{IpAddr, SocketAddr};

use super::Node;
use crate::admission::{Admit, Bucket, Policy, Sources};
use crate::bep44::Ed25519Verifier;
use crate::config::Config;
use crate::error::DropReason;
use crate::time::Instant;

/// The node's guards.
#[derive(Debug)]
pub(crate) struct Guard {
    pub(crate) sources: Sources,
    /// Bytes of replies (with [`Limits::upload_rate`](crate::Limits::upload_rate)).
    upload: Bucket,
    /// Table pings caused by incoming queries.
    pings: Bucket,
}

impl Guard {
    pub(crate) fn new(config: &Config, now: Instant, hasher_key: [u8; 16]) -> Self {
        let l = &config.limits;
        let policy = Policy {
            cap: l.max_sources,
            rate: l.source_rate,
            ratio: u64::from(l.reflection_ratio),
            burst_bytes: l.reflection_burst as u64,
        };
        Self {
            sources: Sources::new(policy, hasher_key),
            upload: Bucket::full(u64::from(l.upload_rate.unwrap_or(0)), now),
            pings: Bucket::full(u64::from(l.table_pings_per_second), now),
        }
    }
}

impl<V: Ed25519Verifier> Node<V> {
    /// Charges a query of `len` bytes from `from` (or a datagram that may get a 203) to its
    /// source's budget.
    pub(crate) fn admit_query(
        &mut self,
        now: Instant,
        from: SocketAddr,
        len: usize,
    ) -> Result<(), DropReason> {
        match self
            .guard
            .sources
            .admit(now, from.ip(), len, &mut self.choices)
        {
            Admit::Yes => Ok(()),
            Admit::OverBudget => Err(DropReason::RateLimited),
            Admit::Blocked => Err(DropReason::Blocked),
        }
    }

    /// `from` completed a round trip: it answered our query, or presented a valid token.
    pub(crate) fn round_trip(&mut self, now: Instant, from: SocketAddr) {
        self.guard.sources.verify(now, from.ip(), &mut self.choices);
    }

    /// Whether a reply of `len` bytes may go to `to` under the reflection rule and the upload
    /// budget; if so, it is charged.
    pub(crate) fn admit_reply(
        &mut self,
        now: Instant,
        to: SocketAddr,
        len: usize,
    ) -> Result<(), DropReason> {
        let allowance = self.reply_allowance(now, to);
        allowance.check(len)?;
        self.charge_reply(now, &allowance, len);
        Ok(())
    }

    /// What a reply to `to` may cost now, for [`ReplyAllowance::check`] and then
    /// [`Node::charge_reply`] (with nothing in between that adds or evicts a source): a reply
    /// can be checked against the reply budget before it is written, and charged its exact
    /// length after.
    pub(crate) fn reply_allowance(&mut self, now: Instant, to: SocketAddr) -> ReplyAllowance {
        // One look-up of the source for the check and the charge.
        let slot = self.guard.sources.slot(to.ip());
        let reflection = self.guard.sources.allowance_at(now, slot);
        let upload = match self.config.limits.upload_rate {
            Some(rate) => {
                let rate = u64::from(rate);
                self.guard.upload.refill(now, rate, rate);
                self.guard.upload.tokens()
            }
            None => u64::MAX,
        };
        ReplyAllowance {
            slot,
            reflection,
            upload,
        }
    }

    /// Charges a reply of `len` bytes that [`ReplyAllowance::check`] accepted.
    pub(crate) fn charge_reply(&mut self, now: Instant, allowance: &ReplyAllowance, len: usize) {
        if self.config.limits.upload_rate.is_some() {
            let _ = self.guard.upload.take(len as u64);
        }
        self.guard.sources.note_sent_at(now, allowance.slot, len);
    }

    /// Whether a routing-table ping that an incoming query caused may go now.
    pub(crate) fn may_ping_for_query(&mut self, now: Instant) -> bool {
        let rate = u64::from(self.config.limits.table_pings_per_second);
        self.guard.pings.refill(now, rate, rate);
        self.guard.pings.take(1)
    }

    /// Peers in the peer store announced from the source of `ip` (its IPv4 address or IPv6
    /// /64), all info-hashes together: what
    /// [`Limits::max_peers_per_source`](crate::Limits::max_peers_per_source) caps.
    pub fn stored_peers_from(&self, ip: IpAddr) -> usize {
        self.peers.source_load(ip)
    }

    /// Sources (IPv4 addresses, IPv6 /64s) whose budgets are tracked now.
    pub fn tracked_sources(&self) -> usize {
        self.guard.sources.len()
    }
}

/// What a reply may cost under the reflection rule and the upload budget, from
/// [`Node::reply_allowance`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReplyAllowance {
    /// The destination's source entry.
    slot: Option<usize>,
    /// Bytes the reflection rule allows (`u64::MAX` for a verified source).
    reflection: u64,
    /// Bytes the upload budget allows (`u64::MAX` without one).
    upload: u64,
}

impl ReplyAllowance {
    /// Whether a reply of `len` bytes may go.
    pub(crate) fn check(&self, len: usize) -> Result<(), DropReason> {
        let len = len as u64;
        if self.reflection < len {
            Err(DropReason::Reflection)
        } else if self.upload < len {
            Err(DropReason::UploadBudget)
        } else {
            Ok(())
        }
    }
}
