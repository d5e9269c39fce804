//! Public commands: each starts a query and returns its [`QueryId`]; lookups are started here
//! and run by `queries.rs`.

use alloc::boxed::Box;
use core::net::SocketAddr;

use super::out::{Out, OutBody, OutQuery, with_id};
use super::{Node, PutItem, family, normalize};
use crate::bep44::Ed25519Verifier;
use crate::error::CommandError;
use crate::event::{CommandKind, QueryId, QueryStatus};
#[cfg(doc)]
use crate::event::{Event, QueryOutcome};
use crate::id::Id;
use crate::small::{MAX_SMALL, SmallBytes};
use crate::time::Instant;
use crate::transaction::{Purpose, TID_LEN};

/// `query` as the node would send it, with a transaction id of full length (the address is
/// not part of a query's encoding).
fn worst_case_request(query: OutQuery) -> Out {
    Out {
        to: SocketAddr::new(core::net::IpAddr::V6(core::net::Ipv6Addr::UNSPECIFIED), 0),
        tid: SmallBytes::new(&[0; TID_LEN]).unwrap_or(SmallBytes::EMPTY),
        body: OutBody::Query(query),
    }
}

/// Longest custom method name accepted by [`Node::send_query`].
pub const MAX_METHOD_LEN: usize = 64;

impl<V: Ed25519Verifier> Node<V> {
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

    /// [`Node::get_peers`] with BEP 33 `scrape=1`: the nodes that store peers for `info_hash`
    /// also send bloom filters of its seeds and other peers, whose unions give the estimates
    /// [`QueryOutcome::scrape`].
    ///
    /// # Errors
    ///
    /// [`CommandError::NoContacts`], [`CommandError::TooManyQueries`].
    pub fn get_peers_scrape(
        &mut self,
        now: Instant,
        info_hash: Id,
    ) -> Result<QueryId, CommandError> {
        self.start_lookup_with(now, CommandKind::GetPeers, info_hash, None, |state| {
            state.scrape = true;
        })
    }

    /// Asks one node, `addr`, for the peers of `info_hash`: a single `get_peers` request (no
    /// lookup), with BEP 33 `scrape=1` when `scrape` is set. The peers it returns arrive as
    /// [`Event::PeersFound`]; [`Event::QueryFinished`] ends it, with that node's scrape in
    /// [`QueryOutcome::scrape`] (`TimedOut` or `Error` when it failed). For a node known to
    /// store the info-hash, e.g. one whose BEP 51 samples named it, this costs one query where
    /// a lookup costs a dozen.
    ///
    /// # Errors
    ///
    /// [`CommandError::AddressRejected`], [`CommandError::TooManyQueries`],
    /// [`CommandError::Busy`].
    pub fn get_peers_from(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        info_hash: Id,
        scrape: bool,
    ) -> Result<QueryId, CommandError> {
        let q = self.single(
            now,
            CommandKind::GetPeers,
            addr,
            OutQuery::GetPeers { info_hash, scrape },
        )?;
        if let Some(state) = self.query_mut(q) {
            state.scrape = scrape;
        }
        Ok(q)
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
        self.start_lookup(now, CommandKind::AnnouncePeer, info_hash, port, None)
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

    /// Asks one node, `addr`, for BEP 51 samples: a single `sample_infohashes` request (no
    /// lookup) whose answer, if it has a `samples` key, arrives as one [`Event::SamplesFound`]
    /// carrying that node's `num`, `interval` and the contacts it returned for `target`; then
    /// [`Event::QueryFinished`] ends it (`TimedOut` or `Error` when it failed).
    ///
    /// # Errors
    ///
    /// [`CommandError::AddressRejected`], [`CommandError::TooManyQueries`],
    /// [`CommandError::Busy`].
    pub fn sample_infohashes_from(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        target: Id,
    ) -> Result<QueryId, CommandError> {
        self.single(
            now,
            CommandKind::SampleInfohashes,
            addr,
            OutQuery::SampleInfohashes { target },
        )
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
        if salt.len() > crate::bep44::MAX_SALT_LEN {
            return Err(CommandError::InvalidArgument("salt longer than 64 bytes"));
        }
        self.start_lookup_with(now, CommandKind::GetItem, target, None, |state| {
            state.salt = salt.to_vec();
        })
    }

    /// Stores a BEP 44 item: a lookup of its target with `get` queries, then `put` to the k
    /// closest nodes that gave a token. [`QueryOutcome::announced`] counts the nodes that
    /// accepted it. Mutable items come signed by the application.
    ///
    /// # Errors
    ///
    /// [`CommandError::InvalidArgument`] when the value is not one bencoded value of at most
    /// 1000 bytes or the salt is over 64 bytes, or when its `put` would not fit
    /// [`Limits::max_datagram`](crate::Limits::max_datagram); [`CommandError::NoContacts`],
    /// [`CommandError::TooManyQueries`].
    pub fn put_item(&mut self, now: Instant, item: PutItem) -> Result<QueryId, CommandError> {
        if !item.is_valid() {
            return Err(CommandError::InvalidArgument(
                "the value must be one bencoded value of at most 1000 bytes, salt at most 64",
            ));
        }
        // The `put` goes out later, with a token of up to 32 bytes: measure the largest.
        let put = OutQuery::Put {
            token: SmallBytes::new(&[0; MAX_SMALL]).unwrap_or(SmallBytes::EMPTY),
            item: Box::new(item.clone()),
        };
        if !self.fits_datagram(&worst_case_request(put)) {
            return Err(CommandError::InvalidArgument(
                "the item's put would not fit limits.max_datagram",
            ));
        }
        let target = item.target();
        self.start_lookup_with(now, CommandKind::PutItem, target, None, |state| {
            state.item = Some(Box::new(item));
        })
    }

    /// Sends a query with a custom `method` to `addr`. `args` is a bencoded dictionary (use
    /// [`wire::encode::Writer`](crate::wire::encode::Writer)); the node adds its `id`. The
    /// response's raw `r` dictionary comes back in [`QueryOutcome::response`].
    ///
    /// # Errors
    ///
    /// [`CommandError::InvalidArgument`] when `method` is empty or longer than 64 bytes or
    /// `args` is not a bencoded dictionary, or when the query would not fit
    /// [`Limits::max_datagram`](crate::Limits::max_datagram); [`CommandError::AddressRejected`],
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
        if !self.fits_datagram(&worst_case_request(query.clone())) {
            return Err(CommandError::InvalidArgument(
                "the query would not fit limits.max_datagram",
            ));
        }
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
}
