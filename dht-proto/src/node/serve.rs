//! The server side: answering incoming queries.

use alloc::vec::Vec;
use core::net::SocketAddr;

use super::{Disposition, Node, PendingCustom, family, normalize};
use crate::error::DropReason;
use crate::event::Event;
use crate::id::Id;
use crate::node::out::{Out, OutBody, OutResponse};
use crate::routing::InsertOutcome;
use crate::small::SmallBytes;
use crate::stats::MethodKind;
use crate::time::Instant;
use crate::wire::bencode::DecodeLimits;
use crate::wire::compact::NodeInfo;
use crate::wire::krpc::{Body, Message, Query, Want, error_code, peek_transaction};

/// Responses are kept under the IPv6 minimum MTU so they are never fragmented.
pub(crate) const RESPONSE_BUDGET: usize = 1280;
/// Bytes a response spends on everything but `nodes`, `nodes6` and `values` (t, v, ip, id,
/// token, framing), rounded up.
const RESPONSE_OVERHEAD: usize = 200;
/// Nodes returned per address family (BEP 5: the 8 closest).
const NODES_PER_REPLY: usize = 8;

impl Node {
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
        let Ok(msg) = Message::decode(data, &limits) else {
            self.reply_malformed(from, data, &limits);
            return self.dropped(DropReason::Malformed);
        };
        match &msg.body {
            Body::Query(q) => self.on_query(now, from, &msg, q),
            Body::Response(r) => self.on_response(now, from, &msg, r, data),
            Body::Error(e) => self.on_error_message(now, from, &msg, e),
        }
    }

    /// Answers 203 to a query we could not parse, when its transaction id can be found.
    fn reply_malformed(&mut self, from: SocketAddr, data: &[u8], limits: &DecodeLimits) {
        if self.config.read_only {
            return;
        }
        if let Some((t, b'q')) = peek_transaction(data, limits) {
            if let Some(tid) = SmallBytes::new(t) {
                self.queue_error(from, tid, error_code::PROTOCOL, b"malformed query");
            }
        }
    }

    pub(crate) fn queue_error(
        &mut self,
        to: SocketAddr,
        tid: SmallBytes,
        code: i64,
        message: &'static [u8],
    ) {
        if self.can_queue() {
            self.stats.error_sent(code);
            self.transmits.push_back(Out {
                to,
                tid,
                body: OutBody::Error { code, message },
            });
        } else {
            self.stats.drop(DropReason::TransmitQueueFull);
        }
    }

    fn queue_response(
        &mut self,
        to: SocketAddr,
        tid: SmallBytes,
        body: OutResponse,
    ) -> Disposition {
        if !self.can_queue() {
            return self.dropped(DropReason::TransmitQueueFull);
        }
        self.stats.responses_sent = self.stats.responses_sent.saturating_add(1);
        self.transmits.push_back(Out {
            to,
            tid,
            body: OutBody::Response(body),
        });
        Disposition::Accepted
    }

    fn on_query(
        &mut self,
        now: Instant,
        from: SocketAddr,
        msg: &Message<'_>,
        q: &Query<'_>,
    ) -> Disposition {
        let method = MethodKind::from_name(q.method());
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
            if !msg.read_only {
                let fam = family(&from);
                let outcome = self.table_mut(fam).on_query(now, id, from);
                self.handle_insert(now, outcome);
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
                let used = RESPONSE_OVERHEAD + body.nodes.len() * 26 + body.nodes6.len() * 38;
                let budget = RESPONSE_BUDGET.saturating_sub(used);
                let family = crate::server::peers::Family::of(from.ip());
                self.peers.peers(
                    now,
                    &g.info_hash,
                    family,
                    budget,
                    &mut self.rng,
                    &mut body.values,
                );
                if g.scrape {
                    body.scrape = self
                        .peers
                        .scrape(now, &g.info_hash)
                        .map(alloc::boxed::Box::new);
                }
                self.queue_response(from, tid, body)
            }
            Query::AnnouncePeer(a) => {
                if !self.tokens.verify(from.ip(), a.token) {
                    self.queue_error(from, tid, error_code::PROTOCOL, b"bad token");
                    return Disposition::Accepted;
                }
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
                let used = RESPONSE_OVERHEAD + body.nodes.len() * 26 + body.nodes6.len() * 38;
                let max_samples = RESPONSE_BUDGET.saturating_sub(used) / 20;
                let mut samples = Vec::new();
                self.peers.sample(&mut self.rng, max_samples, &mut samples);
                body.samples = Some(samples);
                body.num = Some(i64::try_from(self.peers.len()).unwrap_or(i64::MAX));
                body.interval = Some(SAMPLE_INTERVAL_SECS);
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
            // BEP 44 storage is not served yet: say so rather than stay silent.
            Query::Get(_) | Query::Put(_) | Query::Custom(_) => {
                self.queue_error(from, tid, error_code::METHOD_UNKNOWN, b"method unknown");
                Disposition::Accepted
            }
        }
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
        if v4 {
            self.closest_nodes(0, target, NODES_PER_REPLY, &mut body.nodes);
        }
        if v6 && self.config.ipv6 {
            self.closest_nodes(1, target, NODES_PER_REPLY, &mut body.nodes6);
        }
    }

    pub(crate) fn closest_nodes(&self, fam: usize, target: &Id, n: usize, out: &mut Vec<NodeInfo>) {
        let mut entries = Vec::new();
        self.table(fam).closest(target, n, &mut entries);
        out.extend(entries.iter().map(|e| NodeInfo { id: e.0, addr: e.1 }));
    }

    /// Sends the ping a full bucket asked for.
    pub(crate) fn handle_insert(&mut self, now: Instant, outcome: InsertOutcome) {
        if let InsertOutcome::PingFirst { id, addr } = outcome {
            if self.send_table_ping(now, Some(id), addr).is_err() {
                let fam = family(&addr);
                self.table_mut(fam).on_failure(now, Some(id), addr);
            }
        }
    }

    /// Answers a [`Event::CustomQuery`] with a bencoded dictionary (the node adds its `id`).
    ///
    /// # Errors
    ///
    /// [`CommandError::UnknownQuery`](crate::CommandError::UnknownQuery) when the handle is
    /// unknown or expired; [`CommandError::InvalidArgument`](crate::CommandError::InvalidArgument)
    /// when `response` is not a bencoded dictionary; [`CommandError::Busy`](crate::CommandError::Busy)
    /// when the transmit queue is full.
    pub fn respond(
        &mut self,
        handle: crate::event::CustomHandle,
        response: &[u8],
    ) -> Result<(), crate::error::CommandError> {
        use crate::error::CommandError;
        let pos = self
            .custom
            .iter()
            .position(|c| c.handle == handle)
            .ok_or(CommandError::UnknownQuery)?;
        let body = super::client::with_id(response, &self.id, &self.config.limits.decode)
            .ok_or(CommandError::InvalidArgument("response"))?;
        if !self.can_queue() {
            return Err(CommandError::Busy);
        }
        let pending = self.custom.swap_remove(pos);
        self.stats.responses_sent = self.stats.responses_sent.saturating_add(1);
        self.transmits.push_back(Out {
            to: pending.to,
            tid: pending.tid,
            body: OutBody::CustomResponse(body),
        });
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
        let pos = self
            .custom
            .iter()
            .position(|c| c.handle == handle)
            .ok_or(CommandError::UnknownQuery)?;
        if message.len() > 512 {
            return Err(CommandError::InvalidArgument("message"));
        }
        if !self.can_queue() {
            return Err(CommandError::Busy);
        }
        let pending = self.custom.swap_remove(pos);
        self.stats.error_sent(code);
        self.transmits.push_back(Out {
            to: pending.to,
            tid: pending.tid,
            body: OutBody::CustomError {
                code,
                message: message.to_vec(),
            },
        });
        Ok(())
    }
}

/// BEP 51 `interval`: seconds before the same node should be asked for samples again.
const SAMPLE_INTERVAL_SECS: i64 = 300;
