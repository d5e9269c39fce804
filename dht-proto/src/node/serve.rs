//! Serving: answering the queries other nodes send us, including the custom queries the
//! application answers through [`Node::respond`].

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::net::SocketAddr;
use core::time::Duration;

use super::out::with_id;
use super::{Disposition, Node, PendingCustom, family};
use crate::bep44::Ed25519Verifier;
use crate::error::DropReason;
use crate::event::Event;
use crate::id::Id;
use crate::node::out::{CompactNodes, Out, OutBody, OutItem, OutResponse, Signed};
use crate::routing::{Entry, InsertOutcome};
use crate::server::items::{Item, MutablePut, PutError};
use crate::server::peers::{Family, Selection};
use crate::small::SmallBytes;
use crate::stats::MethodKind;
use crate::time::Instant;
use crate::wire::bencode::DecodeLimits;
use crate::wire::krpc::{Message, Query, Want, error_code, peek_transaction};

/// Nodes returned per address family (BEP 5: the 8 closest).
const NODES_PER_REPLY: usize = 8;

impl<V: Ed25519Verifier> Node<V> {
    /// Answers 203 to a query we could not parse, when its transaction id can be found and
    /// its source is within its budget.
    pub(crate) fn reply_malformed(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
        limits: &DecodeLimits,
    ) {
        if self.config.read_only {
            return;
        }
        if let Some((t, b'q')) = peek_transaction(data, limits) {
            if let Some(tid) = SmallBytes::new(t) {
                if self.admit_query(now, from, data.len()).is_err() {
                    return;
                }
                self.queue_error(from, tid, error_code::PROTOCOL, b"malformed query");
            }
        }
    }

    pub(crate) fn on_query(
        &mut self,
        now: Instant,
        from: SocketAddr,
        msg: &Message<'_>,
        q: &Query<'_>,
    ) -> Disposition {
        let method = method_kind(q);
        self.stats.queries_received.bump(method);
        if self.config.read_only {
            return self.dropped(DropReason::ReadOnly);
        }
        let Some(tid) = SmallBytes::new(msg.transaction_id) else {
            return self.dropped(DropReason::Malformed);
        };
        let sender = q.id();
        if sender == Some(self.id) {
            return self.dropped(DropReason::OwnId);
        }
        if self.config.report_queries {
            if let Some(id) = sender {
                let announced_port = match q {
                    Query::AnnouncePeer(a) => {
                        Some(if a.implied_port { from.port() } else { a.port })
                    }
                    _ => None,
                };
                self.push_event(Event::QueryReceived {
                    from,
                    id,
                    method,
                    target: q.target(),
                    announced_port,
                });
            }
        }
        // BEP 43: read-only nodes never enter the table. Others are seen, not yet verified.
        if let Some(id) = sender {
            if !msg.read_only && self.admits_id(&id, &from) {
                let fam = family(&from);
                let outcome = self.table_mut(fam).on_query(now, id, from);
                // Whether the bucket is our own is asked only of a cached querier.
                let splittable = || {
                    self.table(fam)
                        .bucket_of(&id)
                        .is_some_and(|b| b.covers(&self.id))
                };
                if outcome == InsertOutcome::Cached
                    && splittable()
                    && self.in_flight() < self.config.limits.max_in_flight / 2
                    && !self.split_pings.contains(&from)
                    && self.may_ping_for_query(now)
                {
                    if self.split_pings.len() >= super::MAX_SPLIT_PINGS {
                        self.split_pings.pop_front();
                    }
                    self.split_pings.push_back(from);
                    // It waits in our own bucket's cache, but an answer from it would split
                    // that bucket and let it in: ask. Without this a node that is only ever
                    // queried (the first node of a network) would stay at one bucket.
                    let _ = self.send_table_ping(now, Some(id), from);
                }
                // The ping a full bucket asks for goes to a table entry, not the sender; still,
                // strangers' queries must not make the node ping at their rate.
                if !matches!(outcome, InsertOutcome::PingFirst { .. })
                    || self.may_ping_for_query(now)
                {
                    self.handle_insert(now, outcome);
                }
                self.note_table_size();
            }
        }
        match q {
            Query::Ping(_) => self.queue_response(from, tid, OutResponse::default()),
            Query::FindNode(f) => {
                let mut body = OutResponse::default();
                self.fill_nodes(&mut body, &f.target, from, f.want);
                self.queue_response(from, tid, body)
            }
            Query::GetPeers(g) => {
                let mut body = OutResponse {
                    token: Some(self.tokens.issue(from.ip())),
                    ..OutResponse::default()
                };
                self.fill_nodes(&mut body, &g.info_hash, from, g.want);
                if g.scrape {
                    body.scrape = self.peers.scrape(now, &g.info_hash).map(Box::new);
                }
                // Most info-hashes asked for have no peers here: then the reply's room (a
                // dry-run encoding) is not needed.
                if self.peers.contains(&g.info_hash) {
                    let family = Family::of(from.ip());
                    // Room for `values` in the reply: `6:values`, `l`, `e` and the entries.
                    let room = self.reply_room(from, &tid, &body).saturating_sub(10);
                    let cap = self
                        .config
                        .limits
                        .max_values
                        .saturating_mul(family.value_cost());
                    let selection = Selection {
                        family,
                        max_bytes: room.min(cap),
                        // BEP 33 `noseed`: a downloader wants the other downloaders first.
                        non_seeds_first: g.noseed,
                    };
                    self.peers.peers_into(
                        now,
                        &g.info_hash,
                        selection,
                        &mut self.choices,
                        &mut body.values,
                    );
                }
                self.queue_response(from, tid, body)
            }
            Query::AnnouncePeer(a) => {
                if !self.tokens.verify(from.ip(), a.token) {
                    self.queue_error(from, tid, error_code::PROTOCOL, b"bad token");
                    return Disposition::Accepted;
                }
                self.round_trip(now, from);
                let port = if a.implied_port { from.port() } else { a.port };
                if port == 0 {
                    self.queue_error(from, tid, error_code::PROTOCOL, b"bad port");
                    return Disposition::Accepted;
                }
                let peer = SocketAddr::new(from.ip(), port);
                let _ = self.peers.announce(now, a.info_hash, peer, a.seed);
                self.queue_response(from, tid, OutResponse::default())
            }
            Query::SampleInfohashes(s) => {
                let mut body = OutResponse::default();
                self.fill_nodes(&mut body, &s.target, from, s.want);
                body.samples = Some(Vec::new());
                body.num = Some(u32::try_from(self.peers.len()).unwrap_or(u32::MAX));
                body.interval = Some(SAMPLE_INTERVAL_SECS);
                // Room for the samples' bytes beside their length prefix (at most `9999:`).
                let max_samples = self.reply_room(from, &tid, &body).saturating_sub(4) / 20;
                // One sample is cached for the interval we announce (BEP 51): replies within it
                // get its first `max_samples` info-hashes.
                let mut samples = Vec::new();
                self.peers.sample(
                    now,
                    Duration::from_secs(u64::from(SAMPLE_INTERVAL_SECS)),
                    &mut self.choices,
                    max_samples,
                    &mut samples,
                );
                body.samples = Some(samples);
                self.queue_response(from, tid, body)
            }
            Query::Custom(c) if self.config.custom_queries => {
                if self.custom.len() >= self.config.limits.max_pending_custom {
                    return self.dropped(DropReason::CustomQueueFull);
                }
                let handle = self.new_custom_handle();
                let expires = now + self.config.query_timeout;
                self.custom.push(PendingCustom {
                    handle,
                    to: from,
                    tid,
                    expires,
                });
                self.push_event(Event::CustomQuery {
                    handle,
                    from,
                    method: c.method.to_vec(),
                    args: c.args.raw().to_vec(),
                });
                Disposition::Accepted
            }
            Query::Get(g) => {
                let mut body = OutResponse {
                    token: Some(self.tokens.issue(from.ip())),
                    ..OutResponse::default()
                };
                if let Some((item, value)) = self.items.get_shared(now, &g.target) {
                    body.item = Some(match item {
                        Item::Immutable { .. } => OutItem {
                            value: Arc::clone(value),
                            signed: None,
                        },
                        Item::Mutable { k, seq, sig, .. } => {
                            if g.seq.is_some_and(|known| seq <= known) {
                                // BEP 44: the requester has this version; only say which.
                                body.seq = Some(seq);
                                body.item = None;
                                self.fill_nodes(&mut body, &g.target, from, g.want);
                                return self.queue_response(from, tid, body);
                            }
                            OutItem {
                                value: Arc::clone(value),
                                signed: Some(Box::new(Signed {
                                    key: *k,
                                    signature: *sig,
                                    seq,
                                })),
                            }
                        }
                    });
                }
                self.fill_nodes(&mut body, &g.target, from, g.want);
                self.queue_response(from, tid, body)
            }
            Query::Put(p) => {
                if !self.tokens.verify(from.ip(), p.token) {
                    self.queue_error(from, tid, error_code::PROTOCOL, b"bad token");
                    return Disposition::Accepted;
                }
                self.round_trip(now, from);
                let result = match (p.key, p.signature, p.seq) {
                    (None, None, None) => self.items.put_immutable_from(now, from.ip(), p.value),
                    (Some(k), Some(sig), Some(seq)) if self.verifier.is_some() => {
                        let put = MutablePut {
                            k,
                            salt: p.salt.unwrap_or_default(),
                            seq,
                            sig,
                            v: p.value,
                            cas: p.cas,
                        };
                        match &self.verifier {
                            Some(verifier) => {
                                self.items.put_mutable_from(now, from.ip(), &put, verifier)
                            }
                            None => Err(PutError::StorageDisabled),
                        }
                    }
                    (Some(_), Some(_), Some(_)) => Err(PutError::StorageDisabled),
                    _ => {
                        self.queue_error(from, tid, error_code::PROTOCOL, b"missing k, sig or seq");
                        return Disposition::Accepted;
                    }
                };
                match result {
                    Ok(_) => self.queue_response(from, tid, OutResponse::default()),
                    Err(e) => {
                        self.queue_error(from, tid, e.code(), e.message().as_bytes());
                        Disposition::Accepted
                    }
                }
            }
            Query::Custom(_) => {
                self.queue_error(from, tid, error_code::METHOD_UNKNOWN, b"method unknown");
                Disposition::Accepted
            }
        }
    }

    /// Bytes left under [`Limits::max_reply`](crate::Limits::max_reply) by the reply `body`
    /// to `to` in transaction `tid` as it stands.
    fn reply_room(&self, to: SocketAddr, tid: &SmallBytes, body: &OutResponse) -> usize {
        let version = self.config.client_version;
        let version = version.as_ref().map(|v| v.as_slice());
        let len = body.encoded_len(to, tid.as_slice(), version);
        self.config.limits.max_reply.saturating_sub(len)
    }

    /// The closest nodes for a reply: the requester's family unless `want` says otherwise
    /// (BEP 32).
    fn fill_nodes(
        &mut self,
        body: &mut OutResponse,
        target: &Id,
        from: SocketAddr,
        want: Option<Want>,
    ) {
        let (v4, v6) = match want {
            Some(w) if w.v4 || w.v6 => (w.v4, w.v6),
            _ => (from.is_ipv4(), from.is_ipv6()),
        };
        body.families = (v4, v6 && self.config.ipv6);
        if v4 {
            if let Some(buffer) = self.spare_nodes.pop() {
                body.nodes = CompactNodes::with_buffer(buffer);
            }
            self.closest_nodes(0, target, NODES_PER_REPLY, &mut body.nodes);
        }
        if v6 && self.config.ipv6 {
            self.closest_nodes(1, target, NODES_PER_REPLY, &mut body.nodes6);
        }
    }

    /// The `n` closest entries for a reply: those that have answered us first (BEP 5 hands out
    /// good nodes; a node that only queried us could be made up to poison others' lookups),
    /// topped up with unverified ones only when too few have answered, as on a young table.
    pub(crate) fn closest_nodes<const V6: bool>(
        &self,
        fam: usize,
        target: &Id,
        n: usize,
        out: &mut CompactNodes<V6>,
    ) {
        let table = self.table(fam);
        let config = table.config();
        out.reserve(n);
        let mut found = 0;
        let verified = |e: &Entry| e.is_verified() && !e.is_bad(config);
        table.walk_closest(target, n, verified, |e| {
            out.push(&e.id(), &e.addr());
            found += 1;
        });
        if found < n {
            let unverified = |e: &Entry| !e.is_verified() && !e.is_bad(config);
            table.walk_closest(target, n - found, unverified, |e| {
                out.push(&e.id(), &e.addr());
            });
        }
    }

    /// Answers a [`Event::CustomQuery`] with a bencoded dictionary (the node adds its `id`).
    ///
    /// # Errors
    ///
    /// [`CommandError::UnknownQuery`](crate::CommandError::UnknownQuery) when the handle is
    /// unknown or expired; [`CommandError::InvalidArgument`](crate::CommandError::InvalidArgument)
    /// when `response` is not a bencoded dictionary or would make a reply larger than
    /// [`Limits::max_reply`](crate::Limits::max_reply) (its bytes plus 128);
    /// [`CommandError::Busy`](crate::CommandError::Busy) when the transmit queue is full. An
    /// answer the reflection rule or the upload budget refuses is not sent and counted in
    /// [`Stats`](crate::Stats); the query is over either way.
    pub fn respond(
        &mut self,
        handle: crate::event::CustomHandle,
        response: &[u8],
    ) -> Result<(), crate::error::CommandError> {
        use crate::error::CommandError;
        let pos = self.custom_position(handle)?;
        let body = with_id(response, &self.id, &self.config.limits.decode)
            .ok_or(CommandError::InvalidArgument("response"))?;
        if self.answer_custom(pos, OutBody::CustomResponse(body))? {
            self.stats.responses_sent = self.stats.responses_sent.saturating_add(1);
        }
        Ok(())
    }

    /// Answers a [`Event::CustomQuery`] with a KRPC error.
    ///
    /// # Errors
    ///
    /// As [`Node::respond`].
    pub fn respond_error(
        &mut self,
        handle: crate::event::CustomHandle,
        code: i64,
        message: &[u8],
    ) -> Result<(), crate::error::CommandError> {
        use crate::error::CommandError;
        let pos = self.custom_position(handle)?;
        if message.len() > 512 {
            return Err(CommandError::InvalidArgument("message"));
        }
        let body = OutBody::CustomError {
            code,
            message: message.to_vec(),
        };
        if self.answer_custom(pos, body)? {
            self.stats.error_sent(code);
        }
        Ok(())
    }

    /// Where the pending custom query `handle` is.
    fn custom_position(
        &self,
        handle: crate::event::CustomHandle,
    ) -> Result<usize, crate::error::CommandError> {
        self.custom
            .iter()
            .position(|c| c.handle == handle)
            .ok_or(crate::error::CommandError::UnknownQuery)
    }

    /// Queues the answer to the pending custom query at `pos`, which it ends; `false` when a
    /// guard (reflection rule, upload budget) refused it, which is counted.
    fn answer_custom(
        &mut self,
        pos: usize,
        body: OutBody,
    ) -> Result<bool, crate::error::CommandError> {
        // Everything around the application's bytes (t, y, ip, v, id and framing) takes less
        // than this.
        const FRAMING: usize = 128;
        let Some(pending) = self.custom.get(pos) else {
            return Err(crate::error::CommandError::UnknownQuery);
        };
        let len = match &body {
            OutBody::CustomResponse(b) => b.len(),
            OutBody::CustomError { message, .. } => message.len(),
            _ => 0,
        } + FRAMING;
        if len > self.config.limits.max_reply {
            return Err(crate::error::CommandError::InvalidArgument(
                "response larger than max_reply",
            ));
        }
        let out = Out {
            to: pending.to,
            tid: pending.tid,
            body,
        };
        if !self.fits_datagram(&out) {
            return Err(crate::error::CommandError::InvalidArgument(
                "the answer would not fit limits.max_datagram",
            ));
        }
        if !self.can_queue() {
            return Err(crate::error::CommandError::Busy);
        }
        self.custom.swap_remove(pos);
        if let Err(reason) = self.admit_reply(self.now, out.to, len) {
            self.stats.drop(reason);
            return Ok(false);
        }
        self.transmits.push_back(out);
        Ok(true)
    }
}

/// BEP 51 `interval`: seconds before the same node should be asked for samples again, and how
/// long the peer store serves one cached sample.
const SAMPLE_INTERVAL_SECS: u32 = 300;

/// The kind of `q` for the statistics, from its variant (a custom query by its name).
pub(crate) fn method_kind(q: &Query<'_>) -> MethodKind {
    match q {
        Query::Ping(_) => MethodKind::Ping,
        Query::FindNode(_) => MethodKind::FindNode,
        Query::GetPeers(_) => MethodKind::GetPeers,
        Query::AnnouncePeer(_) => MethodKind::AnnouncePeer,
        Query::Get(_) => MethodKind::Get,
        Query::Put(_) => MethodKind::Put,
        Query::SampleInfohashes(_) => MethodKind::SampleInfohashes,
        Query::Custom(c) => MethodKind::from_name(c.method),
    }
}
