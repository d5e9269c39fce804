//! Fetching torrent metadata (BEP 9 + BEP 10) from peers over TCP.
//!
//! The protocol is [`dht_proto::metadata`]'s sans-IO [`Fetch`](dht_proto::metadata::Fetch);
//! this module adds the sockets and the clock:
//!
//! - [`fetch_metadata`]: one blocking call, from an info-hash and peer addresses to verified
//!   metadata or every peer's reason for failing;
//! - [`Fetcher`]: many fetches at once on one thread (mio), each trying several peers in
//!   parallel, with bounded connections; the building block of a crawler's fetch pool;
//! - [`InfoDict`] to read the result (name, files, sizes) and [`torrent_file`] to save it.

mod driver;
mod info;

pub use dht_proto::metadata::{FailReason, FetchConfig, TimeoutKind};
pub use driver::{
    FetchError, FetchId, FetchOptions, Fetcher, FetcherEvent, FetcherWaker, Metadata, PeerError,
    fetch_metadata, fetch_metadata_with,
};
#[doc(hidden)]
pub use info::fuzz_info_dict;
pub use info::{FileEntry, InfoDict, InfoError, torrent_file};
