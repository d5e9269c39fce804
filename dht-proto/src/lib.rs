//! A sans-IO BitTorrent mainline DHT (BEP 5) protocol state machine.
//!
//! `dht-proto` never opens a socket, reads a clock or draws OS randomness: it consumes datagrams
//! and timestamps and produces outgoing datagrams, timer deadlines and events. It is `no_std`
//! (with `alloc`), so the same [`Node`] runs in a torrent client, a crawler driving hundreds of
//! node ids on one thread, an embedded board or a deterministic simulation.
//!
//! # The run loop
//!
//! A [`Node`] is driven by two inputs and three outputs:
//!
//! - [`Node::handle_datagram`] for every datagram that arrives, and [`Node::handle_timeout`] when
//!   the deadline of [`Node::poll_timeout`] has passed;
//! - after any input or command, drain [`Node::poll_transmit`] (send each datagram), then
//!   [`Node::poll_event`], then read [`Node::poll_timeout`] and sleep until then or until the next
//!   datagram.
//!
//! Time is an [`Instant`]: milliseconds since an epoch the caller chooses. It may repeat; if it
//! goes backwards the node uses the latest value it has seen. Randomness comes from
//! [`Config::seed`]: the same seed and the same inputs give byte-identical outputs.
//!
//! Two nodes talking through an in-memory "network":
//!
//! ```
//! use dht_proto::{Config, Event, Id, Instant, Node};
//! use std::net::SocketAddr;
//!
//! let a_addr: SocketAddr = "127.0.0.1:6881".parse().unwrap();
//! let b_addr: SocketAddr = "127.0.0.2:6881".parse().unwrap();
//! let mut now = Instant::ZERO;
//! // Loopback addresses are refused by the default address policy; allow them here.
//! let mut a = Node::new(Config::local_testing([1; 32]), now).unwrap();
//! let mut b = Node::new(Config::local_testing([2; 32]), now).unwrap();
//!
//! // `a` joins the network through `b`, then looks up an info-hash.
//! a.bootstrap(now, [b_addr]).unwrap();
//! let mut buf = [0u8; 1500];
//! let mut bootstrapped = false;
//! for _ in 0..100 {
//!     // Deliver everything each node wants to send (here instantly, 10 ms per round).
//!     while let Some(t) = a.poll_transmit(now, &mut buf) {
//!         assert_eq!(t.to, b_addr);
//!         b.handle_datagram(now, a_addr, &buf[..t.len]);
//!     }
//!     while let Some(t) = b.poll_transmit(now, &mut buf) {
//!         a.handle_datagram(now, b_addr, &buf[..t.len]);
//!     }
//!     while let Some(event) = a.poll_event() {
//!         if let Event::Bootstrapped { .. } = event {
//!             bootstrapped = true;
//!         }
//!     }
//!     while b.poll_event().is_some() {}
//!     // Sleep until the earliest deadline (here: advance virtual time), then run timers.
//!     now = now + core::time::Duration::from_millis(10);
//!     if a.poll_timeout().is_some_and(|t| t <= now) {
//!         a.handle_timeout(now);
//!     }
//!     if b.poll_timeout().is_some_and(|t| t <= now) {
//!         b.handle_timeout(now);
//!     }
//! }
//! assert!(bootstrapped);
//! assert!(b.routing_table().contains(&a.id()));
//! ```
//!
//! # Errors and panics
//!
//! Remote faults are never errors: a malformed or unexpected datagram is dropped and counted in
//! [`Stats`] (and answered with a KRPC error where BEP 5 says so). Decoding errors of the
//! [`wire`] codec are small `Copy` values with a byte offset. Caller mistakes are
//! [`CommandError`] and [`ConfigError`]. No input — bytes, addresses, timestamps in any order, or
//! command arguments — can make the crate panic: `unwrap`, `expect`, `panic!` and slice indexing
//! are denied by lint outside tests, and fuzzing plus property tests back that up.
//!
//! # Memory
//!
//! Every table and queue is capped by [`Limits`]; at a cap, commands get [`CommandError`],
//! datagrams are dropped and counted, and stores evict by documented rules.
//!
//! # Module map
//!
//! Public: [`wire`] (the pure KRPC/bencode codec), [`config`], [`event`], [`error`], [`stats`],
//! [`id`], [`time`], [`bep42`] (secure ids), [`bep44`] (item targets, signing bytes, the
//! [`Ed25519Verifier`]). Private: `node/` (the [`Node`]; in it calls go one way: `input.rs`
//! decodes and dispatches to `serve.rs`, answering queries, and `queries.rs`, running ours;
//! `commands.rs` starts queries; all queue messages through `out.rs`, encoded only in
//! [`Node::poll_transmit`]), `routing/` (read through [`RoutingTableView`]), `lookup/`,
//! `server/` (tokens, the peer and item stores), `transaction.rs` and `rng.rs`.

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod bep42;
pub mod bep44;
pub mod config;
pub mod crawl;
pub mod error;
pub mod estimate;
pub mod event;
pub mod id;
pub mod metadata;
pub mod stats;
pub mod testnet;
pub mod time;
pub mod wire;

mod admission;
mod lookup;
mod node;
pub(crate) mod rng;
mod routing;
mod server;
mod small;
mod test_rng;
mod transaction;

#[doc(hidden)]
pub mod fuzzing;

/// Internals the crate's own benchmarks and examples exercise alone. Not a stable API:
/// applications read them through [`Node`] (for example [`Node::routing_table`]).
#[doc(hidden)]
pub mod internals {
    pub use crate::routing::RoutingTable;
    pub use crate::server::{items, peers, tokens};
    pub use crate::test_rng::TestRng;
}

pub use bep44::{Ed25519Verifier, NoVerifier};
pub use config::{AddressClass, AddressPolicy, Config, Limits, RateLimit};
pub use error::{CommandError, ConfigError, DropReason};
pub use event::{
    CommandKind, CustomHandle, Event, QueryId, QueryMetrics, QueryOutcome, QueryStatus, Scrape,
};
pub use id::{Distance, Id, ParseIdError};
pub use node::{Disposition, MutableItem, Node, PutItem, TimerKind, Transmit};
pub use rng::SeededRng;
pub use routing::{Bucket, Entry, NodeStatus, RoutingTableView, TableConfig};
pub use server::bloom::Bloom;
pub use stats::{MethodKind, Stats};
pub use time::Instant;
