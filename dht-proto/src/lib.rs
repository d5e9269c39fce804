//! A sans-IO BitTorrent mainline DHT (BEP 5) protocol state machine.
//!
//! `dht-proto` never opens a socket, reads a clock or draws OS randomness: it consumes datagrams
//! and timestamps and produces outgoing datagrams, timer deadlines and events.

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
pub mod config;
pub mod error;
pub mod id;
pub mod routing;
pub mod server;
pub mod time;
pub mod wire;

pub(crate) mod rng;

#[doc(hidden)]
pub mod fuzzing;

pub use config::{AddressPolicy, Config, Limits};
pub use error::ConfigError;
pub use id::{Distance, Id, ParseIdError};
pub use time::Instant;
