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
//!   ([`DhtHandle::get_peers`] streams peers as they are found, [`DhtHandle::announce`],
//!   [`DhtHandle::ping`], [`DhtHandle::find_node`]).
//!
//! Other runtimes (tokio, an embedded loop) drive [`dht_proto::Node`] directly: see the
//! `tokio` and `thread` examples.
//!
//! Logging goes through the [`log`] facade: `info` for binding, `debug` for dropped datagrams
//! and socket errors, `trace` for every datagram (one line each, [`describe_datagram`]).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod adapter;
mod describe;
mod error;
mod handle;
mod info_hash;
mod seed;
pub mod state;
#[cfg(feature = "crawl")]
pub mod store;
mod udp;

use core::net::SocketAddr;
use std::net::ToSocketAddrs;

pub use adapter::{Dht, DhtWaker, IoStats, Turn};
pub use describe::describe_datagram;
pub use error::Error;
pub use handle::{DhtHandle, Info, PeerStream, Pong};
pub use info_hash::{ParseInfoHashError, parse_info_hash};
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
