//! Our side of the conversation: commands, requests, responses, timeouts and lookups.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::SocketAddr;

use rand_core::RngCore;

use super::{Disposition, Node, PutItem, family, normalize};
use crate::error::{CommandError, DropReason};
use crate::event::{CommandKind, Event, QueryId, QueryOutcome, QueryStatus};
use crate::id::Id;
use crate::lookup::{Finish, Lookup};
use crate::node::out::{Out, OutBody, OutQuery};
use crate::small::SmallBytes;
use crate::time::Instant;
use crate::transaction::{Expired, Purpose, Txn};
use crate::wire::bencode::{self, Value};
use crate::wire::compact::{NodeInfo, Nodes};
use crate::wire::encode::Writer;
use crate::wire::krpc::{KrpcError, Message, Response};

/// Longest custom method name accepted by [`Node::send_query`].
pub const MAX_METHOD_LEN: usize = 64;

impl Node {
    // ---- Commands ---------------------------------------------------------------------------

    /// Joins the network through `seeds` (e.g. the well-known routers, resolved by the
    /// caller): a `find_node` lookup of the own id, after which [`Event::Bootstrapped`] is
    /// emitted. The seeds are remembered for re-bootstrapping when the table empties.
    ///
    /// # Errors
    ///
    /// [`CommandError::NoContacts`] with no usable seed and an empty table;
    /// [`CommandError::TooManyQueries`] at the query cap.
    pub fn bootstrap(
        &mut self,
        now: Instant,
        seeds: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<QueryId, CommandError> {
        let now = self.advance(now);
        for s in seeds {
            let s = normalize(s);
            if self.accepts(&s) && !self.seeds.contains(&s) && self.seeds.len() < super::MAX_SEEDS {
                self.seeds.push(s);
            }
        }
        if let Some(q) = self.bootstrap_query {
            if self.is_running(q) {
                return Ok(q);
            }
        }
        let q = self.start_lookup(now, CommandKind::Bootstrap, self.id, None, None)?;
        self.bootstrap_query = Some(q);
        self.bootstrap_retry_at = None;
        Ok(q)
    }

    /// Sends a `ping` to `addr`. The [`Event::QueryFinished`] tells whether it answered
    /// (`responder` holds its id).
    ///
    /// # Errors
    ///
    /// [`CommandError::AddressRejected`], [`CommandError::TooManyQueries`],
    /// [`CommandError::Busy`].
    pub fn ping(&mut self, now: Instant, addr: SocketAddr) -> Result<QueryId, CommandError> {
        self.single(now, CommandKind::Ping, addr, OutQuery::Ping)
    }

    /// Finds the nodes closest to `target`.
    ///
    /// # Errors
    ///
    /// [`CommandError::NoContacts`], [`CommandError::TooManyQueries`].
    pub fn find_node(&mut self, now: Instant, target: Id) -> Result<QueryId, CommandError> {
        self.start_lookup(now, CommandKind::FindNode, target, None, None)
    }

    /// Looks up peers for `info_hash`; they stream in as [`Event::PeersFound`].
    ///
    /// # Errors
    ///
    /// [`CommandError::NoContacts`], [`CommandError::TooManyQueries`].
    pub fn get_peers(&mut self, now: Instant, info_hash: Id) -> Result<QueryId, CommandError> {
        self.start_lookup(now, CommandKind::GetPeers, info_hash, None, None)
    }

    /// Looks up `info_hash` (reporting peers found on the way) and announces this node as a
    /// peer on `port` to the closest nodes that gave a token. `port: None` asks them to use the
    /// source port of the announce (BEP 5 `implied_port`), for peers behind a NAT that shares
    /// the DHT socket's port mapping.
    ///
    /// # Errors
    ///
    /// [`CommandError::InvalidPort`] for `Some(0)`, [`CommandError::NoContacts`],
    /// [`CommandError::TooManyQueries`].
    pub fn announce_peer(
        &mut self,
        now: Instant,
        info_hash: Id,
        port: Option<u16>,
    ) -> Result<QueryId, CommandError> {
        if port == Some(0) {
            return Err(CommandError::InvalidPort);
        }
        self.start_lookup(now, CommandKind::AnnouncePeer, info_hash, Some(port), None)
    }

    /// Crawls info-hashes (BEP 51): a lookup towards `target` whose responders' samples arrive
    /// as [`Event::SamplesFound`].
    ///
    /// # Errors
    ///
    /// [`CommandError::NoContacts`], [`CommandError::TooManyQueries`].
    pub fn sample_infohashes(&mut self, now: Instant, target: Id) -> Result<QueryId, CommandError> {
        self.start_lookup(now, CommandKind::SampleInfohashes, target, None, None)
    }

    /// Looks up a BEP 44 item: a lookup towards `target` with `get` queries; items arrive as
    /// [`Event::ItemFound`]. `salt` is the salt of a mutable item (empty for none), used to
    /// check that a found item belongs to `target`.
    ///
    /// # Errors
    ///
    /// [`CommandError::InvalidArgument`] for a salt over 64 bytes;
    /// [`CommandError::NoContacts`], [`CommandError::TooManyQueries`].
    pub fn get_item(
        &mut self,
        now: Instant,
        target: Id,
        salt: &[u8],
    ) -> Result<QueryId, CommandError> {
        if salt.len() > crate::server::items::MAX_SALT_LEN {
            return Err(CommandError::InvalidArgument("salt longer than 64 bytes"));
        }
        let q = self.start_lookup(now, CommandKind::GetItem, target, None, None)?;
        if let Some(state) = self.query_mut(q) {
            state.salt = salt.to_vec();
        }
        Ok(q)
    }

    /// Stores a BEP 44 item: a lookup of its target with `get` queries, then `put` to the k
    /// closest nodes that gave a token. [`QueryOutcome::announced`] counts the nodes that
    /// accepted it. Mutable items come signed by the application.
    ///
    /// # Errors
    ///
    /// [`CommandError::InvalidArgument`] when the value is not one bencoded value of at most
    /// 1000 bytes or the salt is over 64 bytes; [`CommandError::NoContacts`],
    /// [`CommandError::TooManyQueries`].
    pub fn put_item(&mut self, now: Instant, item: PutItem) -> Result<QueryId, CommandError> {
        if !item.is_valid() {
            return Err(CommandError::InvalidArgument(
                "the value must be one bencoded value of at most 1000 bytes, salt at most 64",
            ));
        }
        let q = self.start_lookup(now, CommandKind::PutItem, item.target(), None, None)?;
        if let Some(state) = self.query_mut(q) {
            state.item = Some(Box::new(item));
        }
        Ok(q)
    }

    /// Sends a query with a custom `method` to `addr`. `args` is a bencoded dictionary (use
    /// [`wire::encode::Writer`](crate::wire::encode::Writer)); the node adds its `id`. The
    /// response's raw `r` dictionary comes back in [`QueryOutcome::response`].
    ///
    /// # Errors
    ///
    /// [`CommandError::InvalidArgument`] when `method` is empty or longer than 64 bytes or
    /// `args` is not a bencoded dictionary; [`CommandError::AddressRejected`],
    /// [`CommandError::TooManyQueries`], [`CommandError::Busy`].
    pub fn send_query(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        method: &[u8],
        args: &[u8],
    ) -> Result<QueryId, CommandError> {
        if method.is_empty() || method.len() > MAX_METHOD_LEN {
            return Err(CommandError::InvalidArgument("method"));
        }
        let args = with_id(args, &self.id, &self.config.limits.decode)
            .ok_or(CommandError::InvalidArgument("args"))?;
        let query = OutQuery::Custom {
            method: method.to_vec(),
            args,
        };
        self.single(now, CommandKind::Custom, addr, query)
    }

    /// Adds a contact: with its id, as an unverified routing-table candidate; without, by
    /// pinging it (its answer inserts it).
    ///
    /// # Errors
    ///
    /// [`CommandError::AddressRejected`]; [`CommandError::Busy`] when a ping cannot be sent.
    pub fn add_node(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        id: Option<Id>,
    ) -> Result<(), CommandError> {
        let now = self.advance(now);
        let addr = normalize(addr);
        if !self.accepts(&addr) {
            return Err(CommandError::AddressRejected);
        }
        match id {
            Some(id) if id != self.id => {
                let fam = family(&addr);
                let _ = self.table_mut(fam).add_candidate(now, id, addr);
                self.note_table_size();
                Ok(())
            }
            Some(_) => Err(CommandError::InvalidArgument("id")),
            None => self.send_table_ping(now, None, addr),
        }
    }

    /// Stops a command; its [`Event::QueryFinished`] reports [`QueryStatus::Cancelled`].
    ///
    /// # Errors
    ///
    /// [`CommandError::UnknownQuery`] if it is not running.
    pub fn cancel(&mut self, query: QueryId) -> Result<(), CommandError> {
        if !self.is_running(query) {
            return Err(CommandError::UnknownQuery);
        }
        let now = self.now;
        self.finish(now, query, QueryStatus::Cancelled, None, None);
        Ok(())
    }

    // ---- Starting requests ------------------------------------------------------------------

    fn single(
        &mut self,
        now: Instant,
        kind: CommandKind,
        addr: SocketAddr,
        query: OutQuery,
    ) -> Result<QueryId, CommandError> {
        let now = self.advance(now);
        let addr = normalize(addr);
        if !self.accepts(&addr) {
            return Err(CommandError::AddressRejected);
        }
        if !self.can_send() {
            return Err(CommandError::Busy);
        }
        let q = self.new_query(now, kind)?;
        if self
            .send_request(now, None, addr, query, Purpose::Single { query: q })
            .is_err()
        {
            let _ = self.take_query(q);
            return Err(CommandError::Busy);
        }
        if let Some(state) = self.query_mut(q) {
            state.pending = 1;
            state.metrics.messages_sent = 1;
        }
        Ok(q)
    }

    pub(crate) fn send_table_ping(
        &mut self,
        now: Instant,
        id: Option<Id>,
        addr: SocketAddr,
    ) -> Result<(), CommandError> {
        self.send_request(now, id, addr, OutQuery::Ping, Purpose::TablePing)
    }

    /// Opens a transaction and queues the request.
    pub(crate) fn send_request(
        &mut self,
        now: Instant,
        id: Option<Id>,
        to: SocketAddr,
        query: OutQuery,
        purpose: Purpose,
    ) -> Result<(), CommandError> {
        if !self.can_send() {
            return Err(CommandError::Busy);
        }
        let short = self.short_timeout(id, &to);
        let method = query.method();
        let txn = Txn {
            nonce: self.rng.next_u32(),
            to,
            node_id: id,
            sent_at: now,
            short_deadline: now + short,
            deadline: now + self.config.query_timeout.max(short),
            slow: false,
            purpose,
        };
        let tid = self.txns.open(txn).ok_or(CommandError::Busy)?;
        let tid = SmallBytes::new(&tid).ok_or(CommandError::Busy)?;
        self.stats.queries_sent.bump(method);
        self.transmits.push_back(Out {
            to,
            tid,
            body: OutBody::Query(query),
        });
        Ok(())
    }

    /// Starts a lookup command. `announce` is `Some(port)` for announces; `only_family`
    /// restricts a refresh to one table.
    pub(crate) fn start_lookup(
        &mut self,
        now: Instant,
        kind: CommandKind,
        target: Id,
        announce: Option<Option<u16>>,
        only_family: Option<usize>,
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
            state.announce_port = announce.flatten();
            state.storing = false;
            if announce.is_some() {
                // Remember whether the port is implied: `None` inside `Some`.
                state.pending = 0;
            }
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
                let target = lookup.target();
                state.metrics.messages_sent += 1;
                let query = match kind {
                    CommandKind::GetPeers | CommandKind::AnnouncePeer => {
                        OutQuery::GetPeers { info_hash: target }
                    }
                    CommandKind::SampleInfohashes => OutQuery::SampleInfohashes { target },
                    CommandKind::GetItem | CommandKind::PutItem => OutQuery::Get { target },
                    _ => OutQuery::FindNode { target },
                };
                let purpose = Purpose::Lookup {
                    query: q,
                    family: fam as u8,
                };
                if self
                    .send_request(now, contact.id, contact.addr, query, purpose)
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
        let busy = self.txns.is_full() || !self.can_queue();
        if done {
            if matches!(kind, CommandKind::AnnouncePeer | CommandKind::PutItem) {
                self.start_store(now, q);
            } else {
                self.finish_lookup(now, q);
            }
        } else if busy {
            // Waiting for capacity: responses and timeouts of other requests will drive it.
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
        self.txns.close_query(q);
        let k = self.config.bucket_size;
        let mut closest: Vec<NodeInfo> = Vec::new();
        let mut hops = 0;
        for (fam, l) in state.lookups.iter().enumerate() {
            let Some(l) = l else { continue };
            closest.extend(l.closest(k));
            hops = hops.max(u32::from(l.max_hop()));
            if status == QueryStatus::Completed {
                if let Some(size) = self.size.get_mut(fam) {
                    size.add_lookup(&l.target(), crate::estimate::live_closest(l));
                }
            }
        }
        let mut metrics = state.metrics;
        metrics.hops = metrics.hops.max(hops);
        metrics.duration = now.saturating_duration_since(state.started);
        let kind = state.kind;
        let outcome = QueryOutcome {
            kind,
            status,
            closest,
            announced: state.announced,
            responder,
            response,
            metrics,
        };
        self.push_event(Event::QueryFinished { query: q, outcome });
        if self.bootstrap_query == Some(q) {
            self.bootstrap_query = None;
            self.after_bootstrap(now);
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
                let body = response_body(raw, &self.config.limits.decode);
                if let Some(state) = self.query_mut(query) {
                    state.metrics.responses += 1;
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
        let next_hop = hop.saturating_add(1);
        let nodes = if fam == 0 { r.nodes } else { r.nodes6 };
        if let Some(nodes) = nodes {
            for n in nodes.iter() {
                let addr = normalize(n.addr);
                if n.id != own && family(&addr) == fam && policy.allows(&addr) {
                    lookup.add_candidate(n.id, addr, next_hop);
                }
            }
        }
        if matches!(kind, CommandKind::GetPeers | CommandKind::AnnouncePeer) {
            if let Some(values) = r.values {
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
        }
        if matches!(kind, CommandKind::GetItem) {
            if let Some(value) = r.value {
                self.on_item(q, from, value, r);
            }
        }
        if matches!(kind, CommandKind::SampleInfohashes) {
            if let Some(samples) = r.samples {
                let samples: Vec<Id> = samples.iter().collect();
                self.push_event(Event::SamplesFound {
                    query: q,
                    from,
                    samples,
                    num: r.num,
                });
            }
        }
    }

    /// Checks an item a `get` returned and reports it.
    fn on_item(&mut self, q: QueryId, from: SocketAddr, value: &[u8], r: &Response<'_>) {
        use crate::server::items::{immutable_target, mutable_target, signing_message};
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
                if self.verifier.0.is_some() {
                    let message = signing_message(&state.salt, seq, value);
                    if !crate::server::items::Ed25519Verifier::verify(
                        &self.verifier,
                        k,
                        &message,
                        sig,
                    ) {
                        return;
                    }
                    true
                } else {
                    false
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
        }
        Disposition::Accepted
    }

    pub(crate) fn on_expired(&mut self, now: Instant, expired: Expired) {
        match expired {
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
                    Purpose::Lookup { query, family: lf } => {
                        if let Some(state) = self.query_mut(query) {
                            state.metrics.timeouts += 1;
                        }
                        if let Some(l) = self.lookup_mut(query, usize::from(lf)) {
                            l.on_failure(txn.node_id, txn.to, true);
                        }
                        self.drive(now, query);
                    }
                }
            }
        }
    }

    pub(crate) fn dropped(&mut self, reason: DropReason) -> Disposition {
        self.stats.drop(reason);
        Disposition::Dropped(reason)
    }
}

/// The raw `r` dictionary of a response datagram.
fn response_body(raw: &[u8], limits: &bencode::DecodeLimits) -> Option<Vec<u8>> {
    let v = bencode::decode(raw, limits).ok()?;
    let r = v.as_dict()?.get(b"r")?;
    Some(r.raw()?.to_vec())
}

/// `dict` (a bencoded dictionary) with `id` set to `id`, keys in canonical order; `None` if
/// `dict` is not a dictionary.
pub(crate) fn with_id(dict: &[u8], id: &Id, limits: &bencode::DecodeLimits) -> Option<Vec<u8>> {
    let Value::Dict(d) = bencode::decode(dict, limits).ok()? else {
        return None;
    };
    let mut entries: Vec<(&[u8], Value<'_>)> = d.iter().filter(|(k, _)| *k != b"id").collect();
    // Stable sort, then keep the first of duplicate keys (the decoder is lenient about them).
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries.dedup_by(|later, first| later.0 == first.0);
    let mut buf = alloc::vec![0u8; dict.len() + 32];
    let mut w = Writer::new(&mut buf);
    w.begin_dict();
    let mut id_written = false;
    for (k, _) in &entries {
        if !id_written && *k > b"id".as_slice() {
            w.bytes(b"id");
            w.bytes(id.as_bytes());
            id_written = true;
        }
        w.bytes(k);
        w.raw(d.get_raw(k)?);
    }
    if !id_written {
        w.bytes(b"id");
        w.bytes(id.as_bytes());
    }
    w.end();
    let len = w.finish().ok()?;
    buf.truncate(len);
    Some(buf)
}
