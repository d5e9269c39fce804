//! [`AsyncDhtHandle`]: the node thread of [`DhtHandle`] behind futures.
//!
//! The futures are runtime-agnostic: they need no reactor, timer or spawner, only a
//! [`Waker`](core::task::Waker), which the node thread calls when an answer arrives. They work
//! under tokio, async-std, smol, `futures::executor::block_on` or `pollster`, and never block
//! the thread that polls them (except [`AsyncDhtHandle::shutdown`]'s final join, after the
//! node thread has already ended).

use core::net::SocketAddr;
use core::time::Duration;
use std::sync::mpsc::Receiver;

use dht_proto::{Event, Id, PutItem, QueryOutcome};

use crate::adapter::Dht;
use crate::error::Error;
use crate::handle::{AnnounceKeeper, DhtHandle, Info, ItemLookup, PeerStream, Pong, SampleLookup};
use crate::scrape::Scrape;
use crate::state::State;

/// A [`Dht`] on its own thread with async methods: [`DhtHandle::as_async`].
///
/// ```
/// use dht_proto::Config;
/// use dht_std::{Dht, DhtHandle};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = || Config::local_testing(dht_std::os_seed());
/// let a = DhtHandle::spawn(Dht::bind("127.0.0.1:0".parse()?, config())?)?.as_async();
/// let b = DhtHandle::spawn(Dht::bind("127.0.0.1:0".parse()?, config())?)?.as_async();
/// let info_hash = dht_proto::Id::new([7; 20]);
/// // Any executor drives these futures; pollster's is the smallest.
/// pollster::block_on(async {
///     b.bootstrap(&[a.local_addr()]).await?;
///     // `a` stores the announce; a lookup asks it.
///     b.announce(info_hash, Some(6881)).await?;
///     let mut peers = b.get_peers(info_hash).await?;
///     let peer = peers.next().await;
///     assert_eq!(peer.map(|p| p.port()), Some(6881));
///     Ok::<_, dht_std::Error>(())
/// })?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct AsyncDhtHandle {
    inner: DhtHandle,
}

impl AsyncDhtHandle {
    pub(crate) fn from_blocking(inner: DhtHandle) -> Self {
        Self { inner }
    }

    /// Moves `dht` to a new thread and returns its async handle.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the thread cannot be started.
    pub fn spawn(dht: Dht) -> Result<Self, Error> {
        DhtHandle::spawn(dht).map(Self::from_blocking)
    }

    /// The same node with blocking methods.
    pub fn as_blocking(self) -> DhtHandle {
        self.inner
    }

    /// The node id.
    pub fn id(&self) -> Id {
        self.inner.id()
    }

    /// The first bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr()
    }

    /// Every bound address.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        self.inner.local_addrs()
    }

    /// [`DhtHandle::with`].
    ///
    /// # Errors
    ///
    /// As [`DhtHandle::with`].
    pub async fn with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Dht) -> R + Send + 'static,
    ) -> Result<R, Error> {
        self.inner.client.with(f).await
    }

    /// [`DhtHandle::bootstrap`].
    ///
    /// # Errors
    ///
    /// As [`DhtHandle::bootstrap`].
    pub async fn bootstrap(&self, seeds: &[SocketAddr]) -> Result<usize, Error> {
        self.inner.client.bootstrap(seeds.to_vec()).await
    }

    /// [`DhtHandle::get_peers`]: peers arrive from [`AsyncPeerStream::next`].
    ///
    /// # Errors
    ///
    /// As [`DhtHandle::get_peers`].
    pub async fn get_peers(&self, info_hash: Id) -> Result<AsyncPeerStream, Error> {
        let updates = self.inner.client.get_peers(info_hash).await?;
        Ok(AsyncPeerStream(PeerStream::new(updates)))
    }

    /// [`DhtHandle::announce`].
    ///
    /// # Errors
    ///
    /// As [`DhtHandle::announce`].
    pub async fn announce(&self, info_hash: Id, port: Option<u16>) -> Result<QueryOutcome, Error> {
        self.inner.client.announce(info_hash, port).await
    }

    /// [`DhtHandle::keep_announcing`]; await rounds with
    /// [`AnnounceKeeper::next_round_async`].
    ///
    /// # Errors
    ///
    /// As [`DhtHandle::keep_announcing`].
    pub async fn keep_announcing(
        &self,
        info_hash: Id,
        port: Option<u16>,
        interval: Duration,
    ) -> Result<AnnounceKeeper, Error> {
        let outcomes = self
            .inner
            .client
            .keep_announcing(info_hash, port, interval)
            .await?;
        Ok(AnnounceKeeper::new(info_hash, outcomes))
    }

    /// [`DhtHandle::find_node`].
    ///
    /// # Errors
    ///
    /// As [`DhtHandle::find_node`].
    pub async fn find_node(&self, target: Id) -> Result<QueryOutcome, Error> {
        self.inner.client.find_node(target).await
    }

    /// [`DhtHandle::ping`].
    ///
    /// # Errors
    ///
    /// As [`DhtHandle::ping`].
    pub async fn ping(&self, addr: SocketAddr) -> Result<Pong, Error> {
        self.inner.client.ping(addr).await
    }

    /// [`DhtHandle::put_item`].
    ///
    /// # Errors
    ///
    /// As [`DhtHandle::put_item`].
    pub async fn put_item(&self, item: PutItem) -> Result<QueryOutcome, Error> {
        self.inner.client.put_item(item).await
    }

    /// [`DhtHandle::get_item`].
    ///
    /// # Errors
    ///
    /// As [`DhtHandle::get_item`].
    pub async fn get_item(&self, target: Id, salt: &[u8]) -> Result<ItemLookup, Error> {
        self.inner.client.get_item(target, salt.to_vec()).await
    }

    /// [`DhtHandle::sample_infohashes`].
    ///
    /// # Errors
    ///
    /// As [`DhtHandle::sample_infohashes`].
    pub async fn sample_infohashes(&self, target: Id) -> Result<SampleLookup, Error> {
        self.inner.client.sample_infohashes(target).await
    }

    /// [`DhtHandle::scrape`].
    ///
    /// # Errors
    ///
    /// As [`DhtHandle::scrape`].
    pub async fn scrape(&self, info_hash: Id) -> Result<Scrape, Error> {
        self.inner.client.scrape(info_hash).await
    }

    /// [`DhtHandle::info`].
    ///
    /// # Errors
    ///
    /// As [`DhtHandle::info`].
    pub async fn info(&self) -> Result<Info, Error> {
        self.inner.client.info().await
    }

    /// [`DhtHandle::state`].
    ///
    /// # Errors
    ///
    /// As [`DhtHandle::state`].
    pub async fn state(&self) -> Result<State, Error> {
        self.inner.client.with(|dht| dht.state()).await
    }

    /// [`DhtHandle::subscribe`] (a std receiver: poll it with `try_recv`, or read it on a
    /// thread of its own).
    ///
    /// # Errors
    ///
    /// As [`DhtHandle::subscribe`].
    pub async fn subscribe(&self) -> Result<Receiver<Event>, Error> {
        self.inner.client.subscribe().await
    }

    /// Stops the node's thread and returns the [`Dht`].
    ///
    /// # Errors
    ///
    /// As [`DhtHandle::shutdown`].
    pub async fn shutdown(self) -> Result<Dht, Error> {
        self.inner.shutdown_async().await
    }
}

/// Peers of an [`AsyncDhtHandle::get_peers`] lookup, as they are found. Dropping it early
/// cancels the lookup.
#[derive(Debug)]
pub struct AsyncPeerStream(PeerStream);

impl AsyncPeerStream {
    /// The next distinct peer (`None`: the lookup has ended or the node stopped).
    pub async fn next(&mut self) -> Option<SocketAddr> {
        self.0.next_async().await
    }

    /// The lookup's result, once the stream has ended.
    pub fn outcome(&self) -> Option<&QueryOutcome> {
        self.0.outcome()
    }
}
