//! The std adapter for [`dht_proto`]: UDP sockets, the clock and the OS seed around the sans-IO
//! [`Node`](dht_proto::Node), plus the `dht` command-line program.
//!
//! Two ways to use it:
//!
//! - [`Dht`]: a blocking run loop on the caller's thread. [`Dht::step`] waits exactly until a
//!   datagram arrives or the node's next deadline, then feeds the node and sends what it
//!   produced; commands pass through ([`Dht::get_peers`], [`Dht::command`] for any other);
//!   events come from [`Dht::poll_event`]. [`Dht::run`] is the loop around it, with a callback
//!   for each event and before each wait; [`Dht::run_until`], the handle's thread and the `dht`
//!   program all use it. No protocol logic lives here.
//! - [`DhtHandle`]: the same on a thread of its own, with blocking calls that return answers
//!   ([`DhtHandle::get_peers`] streams peers as they are found, [`DhtHandle::announce`] and
//!   [`DhtHandle::keep_announcing`], [`DhtHandle::ping`], [`DhtHandle::find_node`], BEP 44
//!   [`DhtHandle::put_item`] / [`DhtHandle::get_item`], BEP 51
//!   [`DhtHandle::sample_infohashes`], BEP 33 [`DhtHandle::scrape`]).
//! - [`AsyncDhtHandle`] ([`DhtHandle::as_async`]): the same methods as futures that need no
//!   particular runtime (tokio, async-std, `pollster`, ...) and never block the executor.
//!
//! BEP 44 mutable items are signed with [`Keypair`] (Ed25519 through `ed25519-dalek`), and
//! every node bound by [`Dht::bind`] verifies signatures with [`DalekVerifier`].
//!
//! Other runtimes can also drive [`dht_proto::Node`] directly on their own sockets: see the
//! `tokio` and `thread` examples.
//!
//! Logging goes through the [`log`] facade: `info` for binding, `debug` for dropped datagrams
//! and socket errors, `trace` for every datagram (one line each, [`describe_datagram`]).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod adapter;
mod async_handle;
mod chan;
#[cfg(feature = "crawl")]
pub mod crawl;
mod describe;
mod error;
mod handle;
mod info_hash;
pub mod items;
pub mod metadata;
pub mod scrape;
mod seed;
pub mod state;
#[cfg(feature = "crawl")]
pub mod store;
mod udp;

use core::net::SocketAddr;
use std::net::ToSocketAddrs;

pub use adapter::{Dht, DhtWaker, IoStats, Turn};
pub use async_handle::{AsyncDhtHandle, AsyncPeerStream};
pub use describe::describe_datagram;
pub use error::Error;
pub use handle::{
    AnnounceKeeper, DhtHandle, Info, Item, ItemLookup, PeerStream, Pong, REANNOUNCE_INTERVAL,
    Sample, SampleLookup,
};
pub use info_hash::{ParseInfoHashError, parse_info_hash};
pub use items::{DalekVerifier, Keypair};
pub use scrape::Scrape;
pub use seed::os_seed;
pub use state::State;

/// The README's Rust blocks, compiled (not run: they use the public DHT) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// The well-known public bootstrap routers.
pub const DEFAULT_BOOTSTRAP: &[&str] = &[
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "router.utorrent.com:6881",
    "dht.libtorrent.org:25401",
];

/// Resolves every `host:port` it can (DNS for names), skipping those that fail.
pub fn resolve_all(hosts: &[&str]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for host in hosts {
        match host.to_socket_addrs() {
            Ok(addrs) => out.extend(addrs),
            Err(e) => log::debug!("cannot resolve {host}: {e}"),
        }
    }
    out.dedup();
    out
}
