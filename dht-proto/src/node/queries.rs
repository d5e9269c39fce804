//! Running our queries: lookups driven step by step, responses, KRPC errors and timeouts
//! matched to their transactions, the end of each query, and routing-table maintenance.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::SocketAddr;

use super::out::OutQuery;
use super::{Disposition, Node, QueryState, family, normalize};
use crate::bep44::Ed25519Verifier;
use crate::error::{CommandError, DropReason};
use crate::event::{CommandKind, Event, QueryId, QueryOutcome, QueryStatus};
use crate::id::Id;
use crate::lookup::{Finish, Lookup};
use crate::server::bloom::Bloom;
use crate::small::SmallBytes;
use crate::time::Instant;
use crate::transaction::{Expired, Purpose, Txn};
use crate::wire::bencode::Dict;
use crate::wire::compact::{NodeInfo, Nodes};
use crate::wire::krpc::{KrpcError, Message, Response};

impl<V: Ed25519Verifier> Node<V> {
    /// Starts a lookup command. `announce_port` is the port an announce stores (`None`: BEP 5
    /// `implied_port`; unused by other kinds); `only_family` restricts a refresh to one table.
    pub(crate) fn start_lookup(
        &mut self,
        now: Instant,
        kind: CommandKind,
        target: Id,
        announce_port: Option<u16>,
        only_family: Option<usize>,
    ) -> Result<QueryId, CommandError> {
        self.start_lookup_with(now, kind, target, only_family, |state| {
            state.announce_port = announce_port;
        })
    }

    /// [`Self::start_lookup`], with `prepare` giving the command's state what the command
    /// carries (the port it announces, the item it stores, the salt it checks items with)
    /// before the first queries go out.
    pub(crate) fn start_lookup_with(
        &mut self,
        now: Instant,
        kind: CommandKind,
        target: Id,
        only_family: Option<usize>,
        prepare: impl FnOnce(&mut QueryState),
    ) -> Result<QueryId, CommandError> {
        let now = self.advance(now);
        let k = self.config.bucket_size;
        let mut lookups: [Option<Lookup>; 2] = [None, None];
        let mut scratch = Vec::new();
        for (fam, slot) in lookups.iter_mut().enumerate() {
            if only_family.is_some_and(|f| f != fam) || (fam == 1 && !self.config.ipv6) {
                continue;
            }
            let mut lookup = Lookup::new(
                target,
                k,
                self.config.alpha,
                self.config.limits.max_candidates,
            );
            self.table(fam).closest(
                &target,
                self.config.limits.max_candidates.min(k * 2),
                &mut scratch,
            );
            for e in &scratch {
                lookup.add_candidate(e.0, e.1, 1);
            }
            if matches!(kind, CommandKind::Bootstrap) || self.table(fam).is_empty() {
                for s in self.seeds.iter().filter(|s| family(s) == fam) {
                    lookup.add_seed(*s);
                }
            }
            if lookup.finished().is_none() {
                *slot = Some(lookup);
            }
        }
        if lookups.iter().all(Option::is_none) {
            return Err(CommandError::NoContacts);
        }
        let q = self.new_query(now, kind)?;
        if let Some(state) = self.query_mut(q) {
            state.lookups = lookups;
            prepare(state);
        }
        self.drive(now, q);
        Ok(q)
    }

    /// Sends what the query's lookups want sent, and finishes the query when they are done.
    pub(crate) fn drive(&mut self, now: Instant, q: QueryId) {
        let Some(state) = self.query(q) else { return };
        let kind = state.kind;
        if state.storing {
            if state.pending == 0 {
                self.finish_lookup(now, q);
            }
            return;
        }
        for fam in 0..2 {
            loop {
                if !self.can_send() {
                    break;
                }
                let Some(state) = self.query_mut(q) else {
                    return;
                };
                let Some(lookup) = state.lookups.get_mut(fam).and_then(Option::as_mut) else {
                    break;
                };
                let Some(contact) = lookup.next() else { break };
                // Seeds (ids unknown) come before any answer: no release time.
                let release = contact.id.and(lookup.release_after());
                let target = lookup.target();
                state.metrics.messages_sent += 1;
                let scrape = state.scrape;
                let query = match kind {
                    CommandKind::GetPeers | CommandKind::AnnouncePeer => OutQuery::GetPeers {
                        info_hash: target,
                        scrape,
                    },
                    CommandKind::SampleInfohashes => OutQuery::SampleInfohashes { target },
                    CommandKind::GetItem | CommandKind::PutItem => OutQuery::Get { target },
                    _ => OutQuery::FindNode { target },
                };
                let purpose = Purpose::Lookup {
                    query: q,
                    family: fam as u8,
                };
                if self
                    .send_request_releasing(now, contact.id, contact.addr, query, purpose, release)
                    .is_err()
                {
                    // Undo: the contact is treated as failed (rare: capacity was checked).
                    if let Some(l) = self.lookup_mut(q, fam) {
                        l.on_failure(contact.id, contact.addr, false);
                    }
                    break;
                }
            }
        }
        let Some(state) = self.query(q) else { return };
        let done = state
            .lookups
            .iter()
            .all(|l| l.as_ref().is_none_or(|l| l.finished().is_some()));
        // Not done: responses and timeouts drive it on (also when it waits for capacity).
        if done {
            if matches!(kind, CommandKind::AnnouncePeer | CommandKind::PutItem) {
                self.start_store(now, q);
            } else {
                self.finish_lookup(now, q);
            }
        }
    }

    fn lookup_mut(&mut self, q: QueryId, fam: usize) -> Option<&mut Lookup> {
        self.query_mut(q)?.lookups.get_mut(fam)?.as_mut()
    }

    /// Sends announce_peer to the k closest responders that gave a token.
    fn start_store(&mut self, now: Instant, q: QueryId) {
        let k = self.config.bucket_size;
        let Some(state) = self.query_mut(q) else {
            return;
        };
        state.storing = true;
        let port = state.announce_port;
        let item = state.item.clone();
        let mut targets: Vec<(Id, SocketAddr, SmallBytes, Id)> = Vec::new();
        for l in state.lookups.iter().flatten() {
            for c in l.responded(k) {
                if let Some(token) = c.token {
                    targets.push((c.id, c.addr, token, l.target()));
                }
            }
        }
        let mut sent = 0;
        for (id, addr, token, info_hash) in targets {
            let query = match &item {
                Some(item) => OutQuery::Put {
                    token,
                    item: item.clone(),
                },
                None => OutQuery::AnnouncePeer {
                    info_hash,
                    port,
                    token,
                },
            };
            if self
                .send_request(now, Some(id), addr, query, Purpose::Store { query: q })
                .is_ok()
            {
                sent += 1;
            }
        }
        if let Some(state) = self.query_mut(q) {
            state.pending = sent;
            state.metrics.messages_sent += sent as u32;
        }
        if sent == 0 {
            self.finish_lookup(now, q);
        }
    }

    /// Finishes a lookup command with the status its lookups reached.
    fn finish_lookup(&mut self, now: Instant, q: QueryId) {
        let Some(state) = self.query(q) else { return };
        let converged = state
            .lookups
            .iter()
            .flatten()
            .any(|l| matches!(l.finished(), Some(Finish::Converged)));
        let status = if converged {
            QueryStatus::Completed
        } else {
            QueryStatus::Exhausted
        };
        self.finish(now, q, status, None, None);
    }

    /// Ends a query: closes its transactions and emits its one [`Event::QueryFinished`].
    pub(crate) fn finish(
        &mut self,
        now: Instant,
        q: QueryId,
        status: QueryStatus,
        responder: Option<Id>,
        response: Option<Vec<u8>>,
    ) {
        let Some(state) = self.take_query(q) else {
            return;
        };
        let k = self.config.bucket_size;
        let mut closest: Vec<NodeInfo> = Vec::new();
        let mut hops = 0;
        for (fam, l) in state.lookups.iter().enumerate() {
            let Some(l) = l else { continue };
            closest.extend(l.closest(k));
            hops = hops.max(u32::from(l.max_hop()));
            if matches!(status, QueryStatus::Completed | QueryStatus::Exhausted) {
                self.size_sample(q, fam, l);
            }
        }
        self.txns.close_query(q);
        let mut metrics = state.metrics;
        metrics.hops = metrics.hops.max(hops);
        metrics.duration = now.saturating_duration_since(state.started);
        let kind = state.kind;
        let estimate = |b: &Option<Box<Bloom>>| {
            // At most about 7800 (see `Bloom::estimate`): the cast cannot overflow.
            b.as_ref().map(|b| b.estimate() as u16)
        };
        let scrape =
            (state.scrape && (state.bf_seeds.is_some() || state.bf_peers.is_some())).then(|| {
                crate::event::Scrape {
                    seeds: estimate(&state.bf_seeds).unwrap_or(0),
                    leechers: estimate(&state.bf_peers).unwrap_or(0),
                }
            });
        let outcome = QueryOutcome {
            kind,
            status,
            closest,
            announced: state.announced,
            responder,
            response,
            metrics,
            scrape,
        };
        self.push_event(Event::QueryFinished { query: q, outcome });
        if self.bootstrap_query == Some(q) {
            self.bootstrap_query = None;
            self.after_bootstrap(now);
        }
    }

    /// Feeds the size estimator a finished lookup. Its requests past their release time or
    /// short timeout to nodes among its closest stay open (as [`Purpose::SizeSample`]) until they are answered
    /// or time out: see [`crate::estimate`].
    fn size_sample(&mut self, q: QueryId, fam: usize, l: &Lookup) {
        let Some(size) = self.size.get_mut(fam) else {
            return;
        };
        let seen = crate::estimate::closest_seen(l);
        let slow: Vec<Id> = seen.iter().filter(|c| !c.1).map(|c| c.0).collect();
        let Some(tag) = size.begin(&l.target(), seen) else {
            return;
        };
        let mut kept = Vec::new();
        let purpose = Purpose::SizeSample {
            family: fam as u8,
            tag,
        };
        self.txns
            .hand_over_slow(q, fam as u8, &slow, purpose, &mut kept);
        // A straggler without an open request (none is expected) counts as gone.
        for id in slow.iter().filter(|id| !kept.contains(id)) {
            if let Some(size) = self.size.get_mut(fam) {
                size.resolve(tag, id, false);
            }
        }
    }

    /// An open request of a waiting size-estimate sample ended.
    fn size_resolve(&mut self, fam: u8, tag: u32, id: Option<Id>, alive: bool) {
        if let (Some(size), Some(id)) = (self.size.get_mut(usize::from(fam)), id) {
            size.resolve(tag, &id, alive);
        }
    }

    fn after_bootstrap(&mut self, now: Instant) {
        let nodes = self.table_len();
        self.note_table_size();
        if !self.table_was_empty {
            self.bootstrap_backoff = self.config.bootstrap_backoff_min;
            if !self.bootstrapped {
                self.bootstrapped = true;
                self.push_event(Event::Bootstrapped { nodes });
                // Fill every bucket at once rather than at its first refresh: the lookup of
                // the own id filled the nearest buckets, the others would stay sparse for
                // fifteen minutes (and lookups through a sparse table fail more often).
                self.refresh_all_buckets(now);
            }
        } else if !self.seeds.is_empty() {
            self.bootstrap_retry_at = Some(now + self.bootstrap_backoff);
            self.bootstrap_backoff =
                (self.bootstrap_backoff.saturating_mul(2)).min(self.config.bootstrap_backoff_max);
        }
    }

    /// Starts a refresh lookup of a random id in every bucket but the own one, in both tables,
    /// leaving half of the query slots to the application.
    fn refresh_all_buckets(&mut self, now: Instant) {
        let mut targets = Vec::new();
        for fam in 0..2 {
            let table = self.table(fam);
            if table.is_empty() {
                continue;
            }
            let ranges: Vec<(Id, usize)> = table
                .buckets()
                .filter(|b| !b.covers(&self.id))
                .map(|b| (b.prefix(), b.prefix_len()))
                .collect();
            for (prefix, len) in ranges {
                targets.push((fam, Id::random_with_prefix(&prefix, len, &mut self.rng)));
            }
        }
        for (fam, target) in targets {
            if self.query_count * 2 >= self.config.limits.max_queries {
                break;
            }
            let _ = self.start_lookup(now, CommandKind::Refresh, target, None, Some(fam));
        }
    }

    pub(crate) fn retry_bootstrap(&mut self, now: Instant) {
        // Entries that are all bad do not count: the node is cut off and must rejoin.
        if !self.table_was_empty && self.bootstrapped {
            return;
        }
        match self.start_lookup(now, CommandKind::Bootstrap, self.id, None, None) {
            Ok(q) => self.bootstrap_query = Some(q),
            Err(_) => {
                self.bootstrap_retry_at = Some(now + self.bootstrap_backoff);
                self.bootstrap_backoff = (self.bootstrap_backoff.saturating_mul(2))
                    .min(self.config.bootstrap_backoff_max);
            }
        }
    }

    // ---- Responses, errors and timeouts -----------------------------------------------------

    pub(crate) fn on_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        msg: &Message<'_>,
        r: &Response<'_>,
        raw: &[u8],
    ) -> Disposition {
        let Some(txn) = self.txns.get(msg.transaction_id) else {
            return self.dropped(DropReason::UnknownTransaction);
        };
        if txn.to != from {
            return self.dropped(DropReason::WrongSource);
        }
        if txn.node_id.is_some_and(|id| id != r.id) {
            return self.dropped(DropReason::WrongId);
        }
        if r.id == self.id {
            return self.dropped(DropReason::OwnId);
        }
        let Some(txn) = self.txns.close(msg.transaction_id) else {
            return self.dropped(DropReason::UnknownTransaction);
        };
        self.stats.responses_received = self.stats.responses_received.saturating_add(1);
        // The transaction id was ours and the source matched: a round trip.
        self.round_trip(now, from);
        let tail = |n: Option<Nodes<'_>>| n.is_some_and(|n| n.malformed_tail() != 0);
        if tail(r.nodes) || tail(r.nodes6) {
            self.stats.truncated_nodes = self.stats.truncated_nodes.saturating_add(1);
        }
        let rtt = now.saturating_duration_since(txn.sent_at);
        self.record_rtt(rtt);
        if self.admits_id(&r.id, &from) {
            let fam = family(&from);
            let outcome = self.table_mut(fam).on_response(now, r.id, from, rtt);
            self.handle_insert(now, outcome);
            self.note_table_size();
        }
        if let Some(ip) = msg.ip {
            self.vote_external(from, normalize(ip));
        }
        match txn.purpose {
            Purpose::TablePing => {}
            Purpose::Single { query } => {
                // The datagram decoded as a message, so it is a valid dictionary: slice `r`.
                let body = Dict::from_validated(raw).get_raw(b"r").map(<[u8]>::to_vec);
                let mut kind = None;
                if let Some(state) = self.query_mut(query) {
                    state.metrics.responses += 1;
                    kind = Some(state.kind);
                }
                match kind {
                    Some(CommandKind::SampleInfohashes) => {
                        let nodes = self.response_nodes(from, r);
                        self.report_samples(query, from, r, nodes);
                    }
                    Some(CommandKind::GetPeers) => self.report_peers(now, query, r),
                    _ => {}
                }
                self.finish(now, query, QueryStatus::Completed, Some(r.id), body);
            }
            Purpose::Store { query } => {
                if let Some(state) = self.query_mut(query) {
                    state.metrics.responses += 1;
                    state.announced += 1;
                    state.pending = state.pending.saturating_sub(1);
                }
                self.drive(now, query);
            }
            Purpose::Lookup { query, family: lf } => {
                self.on_lookup_response(now, query, usize::from(lf), &txn, from, r);
                self.drive(now, query);
            }
            Purpose::SizeSample { family: fam, tag } => {
                self.size_resolve(fam, tag, txn.node_id, true);
            }
        }
        Disposition::Accepted
    }

    fn on_lookup_response(
        &mut self,
        now: Instant,
        q: QueryId,
        fam: usize,
        txn: &Txn,
        from: SocketAddr,
        r: &Response<'_>,
    ) {
        let own = self.id;
        let policy = self.config.address_policy;
        let Some(state) = self.query_mut(q) else {
            return;
        };
        state.metrics.responses += 1;
        let kind = state.kind;
        let Some(lookup) = state.lookups.get_mut(fam).and_then(Option::as_mut) else {
            return;
        };
        let hop = lookup.on_response(txn.node_id, txn.slow, r.id, from, r.token);
        lookup.on_answer_time(now.saturating_duration_since(txn.sent_at));
        let next_hop = hop.saturating_add(1);
        let nodes = if fam == 0 { r.nodes } else { r.nodes6 };
        let mut learned = Vec::new();
        if let Some(nodes) = nodes {
            for n in nodes.iter() {
                let addr = normalize(n.addr);
                if n.id != own && family(&addr) == fam && policy.allows(&addr) {
                    lookup.add_candidate(n.id, addr, next_hop);
                    if matches!(kind, CommandKind::SampleInfohashes) {
                        learned.push(NodeInfo { id: n.id, addr });
                    }
                }
            }
        }
        if matches!(kind, CommandKind::GetPeers | CommandKind::AnnouncePeer) {
            self.report_peers(now, q, r);
        }
        if matches!(kind, CommandKind::GetItem) {
            if let Some(value) = r.value {
                self.on_item(q, from, value, r);
            }
        }
        if matches!(kind, CommandKind::SampleInfohashes) {
            self.report_samples(q, from, r, learned);
        }
    }

    /// Takes in a `get_peers` answer of query `q`: merges its BEP 33 filters (when the query
    /// asked for them) and reports the peers it has not reported yet as
    /// [`Event::PeersFound`].
    fn report_peers(&mut self, now: Instant, q: QueryId, r: &Response<'_>) {
        let Some(state) = self.query_mut(q) else {
            return;
        };
        if state.scrape {
            merge_bloom(&mut state.bf_seeds, r.bf_seeds);
            merge_bloom(&mut state.bf_peers, r.bf_peers);
        }
        let Some(values) = r.values else {
            return;
        };
        let mut fresh = Vec::new();
        for p in values.iter() {
            let p = normalize(p);
            if p.port() == 0 || state.seen_peers.contains(&p) {
                continue;
            }
            if state.seen_peers.len() < super::MAX_SEEN_PEERS {
                state.seen_peers.push(p);
            }
            fresh.push(p);
        }
        if !fresh.is_empty() {
            if state.metrics.time_to_first_peer.is_none() {
                state.metrics.time_to_first_peer =
                    Some(now.saturating_duration_since(state.started));
            }
            self.push_event(Event::PeersFound {
                query: q,
                peers: fresh,
            });
        }
    }

    /// The acceptable contacts of a response's `nodes` (or `nodes6`, for an IPv6 source).
    fn response_nodes(&self, from: SocketAddr, r: &Response<'_>) -> Vec<NodeInfo> {
        let fam = family(&from);
        let nodes = if fam == 0 { r.nodes } else { r.nodes6 };
        let mut out = Vec::new();
        for n in nodes.iter().flat_map(|n| n.iter()) {
            let addr = normalize(n.addr);
            if n.id != self.id && family(&addr) == fam && self.config.address_policy.allows(&addr) {
                out.push(NodeInfo { id: n.id, addr });
            }
        }
        out
    }

    /// Emits [`Event::SamplesFound`] for a response with a BEP 51 `samples` key.
    fn report_samples(
        &mut self,
        q: QueryId,
        from: SocketAddr,
        r: &Response<'_>,
        nodes: Vec<NodeInfo>,
    ) {
        if let Some(samples) = r.samples {
            let samples: Vec<Id> = samples.iter().collect();
            self.push_event(Event::SamplesFound {
                query: q,
                from,
                samples,
                num: r.num,
                interval: r.interval,
                nodes,
            });
        }
    }

    /// Checks an item a `get` returned and reports it.
    fn on_item(&mut self, q: QueryId, from: SocketAddr, value: &[u8], r: &Response<'_>) {
        use crate::bep44::{immutable_target, mutable_target, signing_message};
        let Some(state) = self.query(q) else { return };
        let target = state.lookups.iter().flatten().next().map(Lookup::target);
        let Some(target) = target else { return };
        let verified = match (r.key, r.signature, r.seq) {
            (None, _, _) => {
                if immutable_target(value) != target {
                    return;
                }
                true
            }
            (Some(k), Some(sig), Some(seq)) => {
                if mutable_target(k, &state.salt) != target {
                    return;
                }
                match &self.verifier {
                    Some(verifier) => {
                        let message = signing_message(&state.salt, seq, value);
                        if !verifier.verify(k, &message, sig) {
                            return;
                        }
                        true
                    }
                    None => false,
                }
            }
            _ => return,
        };
        self.push_event(Event::ItemFound {
            query: q,
            from,
            value: value.to_vec(),
            key: r.key.copied(),
            signature: r.signature.copied(),
            seq: r.seq,
            verified,
        });
    }

    pub(crate) fn on_error_message(
        &mut self,
        now: Instant,
        from: SocketAddr,
        msg: &Message<'_>,
        e: &KrpcError<'_>,
    ) -> Disposition {
        let Some(txn) = self.txns.get(msg.transaction_id) else {
            return self.dropped(DropReason::UnknownTransaction);
        };
        if txn.to != from {
            return self.dropped(DropReason::WrongSource);
        }
        let Some(txn) = self.txns.close(msg.transaction_id) else {
            return self.dropped(DropReason::UnknownTransaction);
        };
        self.stats.errors_received = self.stats.errors_received.saturating_add(1);
        match txn.purpose {
            Purpose::TablePing => {}
            Purpose::Single { query } => {
                let message = String::from_utf8_lossy(e.message).into_owned();
                self.finish(
                    now,
                    query,
                    QueryStatus::Error {
                        code: e.code,
                        message,
                    },
                    None,
                    None,
                );
            }
            Purpose::Store { query } => {
                if let Some(state) = self.query_mut(query) {
                    state.pending = state.pending.saturating_sub(1);
                }
                self.drive(now, query);
            }
            Purpose::Lookup { query, family: fam } => {
                if let Some(l) = self.lookup_mut(query, usize::from(fam)) {
                    l.on_failure(txn.node_id, txn.to, txn.slow);
                }
                self.drive(now, query);
            }
            // An error is an answer: the node is alive.
            Purpose::SizeSample { family: fam, tag } => {
                self.size_resolve(fam, tag, txn.node_id, true);
            }
        }
        Disposition::Accepted
    }

    pub(crate) fn on_expired(&mut self, now: Instant, expired: Expired) {
        match expired {
            Expired::Released(txn) => {
                if let Purpose::Lookup { query, family: fam } = txn.purpose {
                    if let Some(l) = self.lookup_mut(query, usize::from(fam)) {
                        l.on_release(txn.node_id, txn.to);
                    }
                    self.drive(now, query);
                }
            }
            Expired::Slow(txn) => {
                if let Purpose::Lookup { query, family: fam } = txn.purpose {
                    if let Some(l) = self.lookup_mut(query, usize::from(fam)) {
                        l.on_slow(txn.node_id, txn.to);
                    }
                    self.drive(now, query);
                }
            }
            Expired::Failed(txn) => {
                self.stats.timeouts = self.stats.timeouts.saturating_add(1);
                let fam = family(&txn.to);
                self.table_mut(fam).on_failure(now, txn.node_id, txn.to);
                self.note_table_size();
                match txn.purpose {
                    Purpose::TablePing => {}
                    Purpose::Single { query } => {
                        if let Some(state) = self.query_mut(query) {
                            state.metrics.timeouts += 1;
                        }
                        self.finish(now, query, QueryStatus::TimedOut, None, None);
                    }
                    Purpose::Store { query } => {
                        if let Some(state) = self.query_mut(query) {
                            state.metrics.timeouts += 1;
                            state.pending = state.pending.saturating_sub(1);
                        }
                        self.drive(now, query);
                    }
                    Purpose::SizeSample { family: fam, tag } => {
                        self.size_resolve(fam, tag, txn.node_id, false);
                    }
                    Purpose::Lookup { query, family: lf } => {
                        if let Some(state) = self.query_mut(query) {
                            state.metrics.timeouts += 1;
                        }
                        if let Some(l) = self.lookup_mut(query, usize::from(lf)) {
                            l.on_timeout(txn.node_id, txn.to, true);
                        }
                        self.drive(now, query);
                    }
                }
            }
        }
    }

    /// Pings what the tables want pinged and starts the refreshes they want.
    pub(crate) fn table_maintenance(&mut self, now: Instant) {
        let mut pings = core::mem::take(&mut self.scratch_pings);
        let mut targets = core::mem::take(&mut self.scratch_ids);
        for fam in 0..2 {
            pings.clear();
            self.table_mut(fam).pings_due(now, &mut pings);
            for (id, addr) in pings.drain(..) {
                if self.send_table_ping(now, Some(id), addr).is_err() {
                    // No room: count it as a failure so the table does not wait forever.
                    self.table_mut(fam).on_failure(now, Some(id), addr);
                }
            }
            targets.clear();
            // Always collect the due refreshes, so that the table's deadline moves on even when
            // the node cannot act on them (not bootstrapped yet, or no query slot free): a due
            // deadline left in place would make `poll_timeout` return the past forever.
            let [v4, v6] = &mut self.tables;
            let table = if fam == 0 { v4 } else { v6 };
            let empty = table.is_empty();
            table.refresh_targets(now, &mut self.rng, &mut targets);
            for target in targets.drain(..) {
                // Refreshes never take the last query slots from the application.
                // Not only once bootstrapped: a node that never bootstrapped (the first node of
                // a network) still grows its table through refreshes.
                if !empty && self.query_count * 2 < self.config.limits.max_queries {
                    let _ = self.start_lookup(now, CommandKind::Refresh, target, None, Some(fam));
                }
            }
        }
        self.scratch_pings = pings;
        self.scratch_ids = targets;
        let empty = self.table_len() == 0 || !self.has_live_entries();
        self.set_table_empty(empty);
    }
}

/// ORs a BEP 33 filter from one response into a lookup's running union.
fn merge_bloom(
    acc: &mut Option<Box<Bloom>>,
    bytes: Option<&[u8; crate::server::bloom::BLOOM_LEN]>,
) {
    let Some(bytes) = bytes else { return };
    let filter = Bloom::from_bytes(*bytes);
    match acc {
        Some(acc) => acc.union_with(&filter),
        None => *acc = Some(Box::new(filter)),
    }
}
