//! Input: datagrams and timer expiries in; time clamped, datagrams decoded once and
//! dispatched to `serve.rs` (queries) or `queries.rs` (responses and errors to ours).

use core::net::SocketAddr;

use super::{Disposition, Node, normalize};
use crate::bep44::Ed25519Verifier;
use crate::error::DropReason;
use crate::time::Instant;
use crate::wire::krpc::{Body, Message};

impl<V: Ed25519Verifier> Node<V> {
    /// Takes one datagram from `from`.
    ///
    /// Never fails: malformed, unexpected or unwanted datagrams are dropped and counted in
    /// [`Stats`](crate::Stats) (queries that cannot be parsed are answered with KRPC error 203).
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) -> Disposition {
        let now = self.advance(now);
        self.stats.datagrams_received = self.stats.datagrams_received.saturating_add(1);
        self.stats.bytes_received = self.stats.bytes_received.saturating_add(data.len() as u64);
        let from = normalize(from);
        if data.len() > self.config.limits.max_datagram {
            return self.dropped(DropReason::TooLarge);
        }
        if !self.accepts(&from) {
            return self.dropped(DropReason::AddressRejected);
        }
        let limits = self.config.limits.decode;
        // Matched in place: the decoded message is large, and moving it out of the `Result`
        // is a copy.
        let decoded = Message::decode(data, &limits);
        let Ok(msg) = &decoded else {
            self.reply_malformed(now, from, data, &limits);
            return self.dropped(DropReason::Malformed);
        };
        match &msg.body {
            Body::Query(q) => match self.admit_query(now, from, data.len()) {
                Ok(()) => self.on_query(now, from, msg, q),
                Err(reason) => self.dropped(reason),
            },
            Body::Response(r) => self.on_response(now, from, msg, r, data),
            Body::Error(e) => self.on_error_message(now, from, msg, e),
        }
    }

    /// Runs every timer due at `now`. Idempotent; calling it early does nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.advance(now);
        while let Some(expired) = self.txns.pop_expired(now) {
            self.on_expired(now, expired);
        }
        if now >= self.token_rotate_at {
            self.tokens.rotate(&mut self.rng);
            self.token_rotate_at = now + self.config.token_rotation;
        }
        self.peers.expire(now);
        self.items.expire(now);
        // Unanswered custom queries expire silently: the remote side has given up by now.
        self.custom.retain(|c| c.expires > now);
        self.table_maintenance(now);
        if let Some(at) = self.bootstrap_retry_at {
            if now >= at {
                self.bootstrap_retry_at = None;
                self.retry_bootstrap(now);
            }
        }
    }
}
