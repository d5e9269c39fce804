//! [`Config`] and [`Limits`]: every policy and every cap of a [`Node`](crate::Node), with
//! validated defaults.
//!
//! Defaults are safe on the public internet. Anything that weakens that says so in its doc.

use core::time::Duration;

use crate::error::ConfigError;
use crate::id::Id;
use crate::wire::bencode::DecodeLimits;

/// Everything a node needs to start: identity, seed, policies and [`Limits`].
///
/// There is no `Default`: the seed must be chosen, or every transaction id and token secret of
/// the node would be predictable. Fill it from the operating system (`dht_std::os_seed`, the
/// `getrandom` crate, a hardware generator); tests pass a constant.
///
/// ```
/// use dht_proto::Config;
///
/// let seed = [7; 32]; // in a real program: 32 bytes from the operating system
/// let mut config = Config::new(seed);
/// config.bucket_size = 8;
/// config.validate().unwrap();
/// ```
///
/// ```compile_fail
/// // No seed, no configuration.
/// let config = dht_proto::Config::default();
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Seed of every random choice the node makes (ids, transaction ids, token secrets, refresh
    /// targets, hash-map keys). Same seed + same inputs = byte-identical outputs. Adapters fill
    /// it from the operating system; tests pass a constant.
    pub seed: [u8; 32],
    /// The node id; `None` draws one from the seed.
    pub id: Option<Id>,
    /// BEP 43 read-only mode: the node sets `ro` in its queries, answers no queries and is kept
    /// out of other nodes' routing tables.
    pub read_only: bool,
    /// The `v` key put in every message (BEP 5: two bytes of client id, two of version).
    /// `None` omits it.
    pub client_version: Option<[u8; 4]>,
    /// Which remote addresses the node talks to and keeps in its table.
    pub address_policy: AddressPolicy,
    /// BEP 42: keep out of the routing tables any node whose id does not match its IP address
    /// (the first 21 bits of the id derived from a CRC32-C of the IP; local and private
    /// addresses are exempt). Such nodes are still answered and still used in lookups, as
    /// libtorrent does. Off by default: much of today's network does not comply.
    pub enforce_node_id: bool,
    /// Whether to answer queries that arrive over IPv6 with `nodes6` and to keep an IPv6
    /// routing table (BEP 32).
    pub ipv6: bool,
    /// Kademlia bucket size k (BEP 5: 8).
    pub bucket_size: usize,
    /// Entries in the far buckets (the `far_buckets` buckets farthest from the own id), as
    /// libtorrent's extended routing table does. Equal to `bucket_size` disables the feature.
    /// Default 16 in the 4 farthest buckets (15/16 of the id space): in the simulator at
    /// 100,000 nodes it brings the median time to the first peer from 3.1 to 2.8 round trips
    /// and the p99 messages per lookup from 42 to 38, for ~4 KiB more per node.
    pub far_bucket_size: usize,
    /// How many of the farthest buckets get `far_bucket_size` entries.
    pub far_buckets: usize,
    /// Replacement-cache entries per bucket.
    pub replacement_cache_size: usize,
    /// At most one routing-table entry per IP address (recommended; BEP 42 spirit).
    pub one_node_per_ip: bool,
    /// Lookup parallelism α: requests in flight among the closest unqueried candidates.
    /// Default 6: in the simulator (10,000 nodes, 5 % loss, 20 % dead entries) it cuts the
    /// median lookup time by 28 % and the p99 by 40 % against α = 3, for ~40 % more messages
    /// (about 25 per lookup).
    pub alpha: usize,
    /// A request not answered within this time lets a lookup widen (send one more request)
    /// while still waiting for a late answer. The node uses twice the measured round trip
    /// plus 50 ms, capped by this (or by 1.5 times the node's own smoothed round trip, if
    /// that is longer: a node on a slow link). Default 200 ms: in the simulator (100,000
    /// nodes, 5 % loss, 20 % dead entries) the median lookup takes 6.2 round trips instead of
    /// 6.7 with 300 ms, for one more message per lookup.
    pub short_timeout: Duration,
    /// A request not answered within this time has failed.
    pub query_timeout: Duration,
    /// A node not heard from for this long becomes questionable (BEP 5: 15 minutes).
    pub questionable_after: Duration,
    /// A node that failed this many queries in a row is bad and may be replaced.
    pub max_failures: u8,
    /// A bucket not changed for this long is refreshed (BEP 5: 15 minutes).
    pub bucket_refresh_interval: Duration,
    /// Token secret rotation interval: a token is accepted for one to two intervals (BEP 5: 5
    /// minutes).
    pub token_rotation: Duration,
    /// How long an announced peer is kept (BEP 5 suggests 30 minutes).
    pub peer_ttl: Duration,
    /// First back-off before re-bootstrapping an empty table; doubles up to
    /// `bootstrap_backoff_max`.
    pub bootstrap_backoff_min: Duration,
    /// Longest back-off between bootstrap attempts.
    pub bootstrap_backoff_max: Duration,
    /// Emit [`Event::QueryReceived`](crate::Event::QueryReceived) for every incoming query.
    pub report_queries: bool,
    /// Hand queries with unknown methods to the application as
    /// [`Event::CustomQuery`](crate::Event::CustomQuery) instead of answering 204.
    pub custom_queries: bool,
    /// Caps on every table and queue.
    pub limits: Limits,
}

impl Config {
    /// The defaults, safe on the public internet, with `seed` as the seed of every random
    /// choice. The seed must be secret and unpredictable (32 bytes from the operating system):
    /// anyone who knows it can predict the node's transaction ids and forge its tokens.
    pub fn new(seed: [u8; 32]) -> Self {
        Self {
            seed,
            id: None,
            read_only: false,
            client_version: None,
            address_policy: AddressPolicy::default(),
            enforce_node_id: false,
            ipv6: true,
            bucket_size: 8,
            far_bucket_size: 16,
            far_buckets: 4,
            replacement_cache_size: 8,
            one_node_per_ip: true,
            alpha: 6,
            short_timeout: Duration::from_millis(200),
            query_timeout: Duration::from_secs(5),
            questionable_after: Duration::from_secs(15 * 60),
            max_failures: 3,
            bucket_refresh_interval: Duration::from_secs(15 * 60),
            token_rotation: Duration::from_secs(5 * 60),
            peer_ttl: Duration::from_secs(30 * 60),
            bootstrap_backoff_min: Duration::from_secs(5),
            bootstrap_backoff_max: Duration::from_secs(10 * 60),
            report_queries: false,
            custom_queries: false,
            limits: Limits::default(),
        }
    }

    /// [`Config::new`] accepting loopback and private addresses: for local swarms,
    /// simulations and tests. Never use it on the internet.
    pub fn local_testing(seed: [u8; 32]) -> Self {
        Self {
            address_policy: AddressPolicy::ALLOW_ALL,
            ..Self::new(seed)
        }
    }

    /// Checks every field; the error names the first offending one.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when a value is out of its documented range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(
            (1..=MAX_BUCKET_SIZE).contains(&self.bucket_size),
            "bucket_size",
            "must be 1..=64",
        )?;
        check(
            (self.bucket_size..=MAX_BUCKET_SIZE).contains(&self.far_bucket_size),
            "far_bucket_size",
            "must be between bucket_size and 64",
        )?;
        check(
            self.far_buckets <= 160,
            "far_buckets",
            "must be at most 160",
        )?;
        check(
            self.replacement_cache_size <= MAX_BUCKET_SIZE,
            "replacement_cache_size",
            "must be at most 64",
        )?;
        check((1..=32).contains(&self.alpha), "alpha", "must be 1..=32")?;
        check(
            !self.short_timeout.is_zero(),
            "short_timeout",
            "must be positive",
        )?;
        check(
            self.query_timeout >= self.short_timeout,
            "query_timeout",
            "must be at least short_timeout",
        )?;
        check(
            self.query_timeout <= Duration::from_secs(600),
            "query_timeout",
            "must be at most 10 minutes",
        )?;
        check(
            !self.questionable_after.is_zero(),
            "questionable_after",
            "must be positive",
        )?;
        check(self.max_failures >= 1, "max_failures", "must be at least 1")?;
        check(
            self.bucket_refresh_interval >= Duration::from_secs(1),
            "bucket_refresh_interval",
            "must be at least one second",
        )?;
        check(
            self.token_rotation >= Duration::from_secs(1),
            "token_rotation",
            "must be at least one second",
        )?;
        check(
            self.peer_ttl >= Duration::from_secs(1),
            "peer_ttl",
            "must be at least one second",
        )?;
        check(
            !self.bootstrap_backoff_min.is_zero(),
            "bootstrap_backoff_min",
            "must be positive",
        )?;
        check(
            self.bootstrap_backoff_max >= self.bootstrap_backoff_min,
            "bootstrap_backoff_max",
            "must be at least bootstrap_backoff_min",
        )?;
        self.limits.validate(self)
    }
}

/// Smallest [`Limits::max_reply`]: a reply with a token and a few nodes.
pub const MIN_REPLY: usize = 300;

/// Largest bucket (and replacement cache) the routing table supports.
pub const MAX_BUCKET_SIZE: usize = 64;

/// Which remote addresses are acceptable as contacts, table entries and peers.
///
/// The default accepts only globally routable unicast addresses, which is right on the public
/// internet. Loopback swarms, simulations and LAN deployments switch the relevant flags on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AddressPolicy {
    /// Accept 127.0.0.0/8 and ::1.
    pub allow_loopback: bool,
    /// Accept private and link-local ranges (10/8, 172.16/12, 192.168/16, 169.254/16,
    /// 100.64/10, fc00::/7, fe80::/10).
    pub allow_private: bool,
}

impl AddressPolicy {
    /// Accepts only globally routable unicast addresses.
    pub const PUBLIC_ONLY: Self = Self {
        allow_loopback: false,
        allow_private: false,
    };
    /// Accepts loopback and private addresses too (never unspecified, multicast, broadcast or
    /// port 0).
    pub const ALLOW_ALL: Self = Self {
        allow_loopback: true,
        allow_private: true,
    };

    /// Whether `addr` is an acceptable remote address under this policy.
    pub fn allows(&self, addr: &core::net::SocketAddr) -> bool {
        if addr.port() == 0 {
            return false;
        }
        match AddressClass::of(addr.ip()) {
            AddressClass::Unroutable => false,
            AddressClass::Loopback => self.allow_loopback,
            AddressClass::Private | AddressClass::Shared => self.allow_private,
            AddressClass::Public => true,
        }
    }
}

/// What kind of address an IP is: the one classifier of the crate, behind
/// [`AddressPolicy`] and BEP 42's exemptions ([`bep42::is_exempt`](crate::bep42::is_exempt)).
/// IPv4-mapped IPv6 addresses are classified as the IPv4 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddressClass {
    /// Never a peer: unspecified, multicast, broadcast, 0.0.0.0/8 and 240.0.0.0/4.
    Unroutable,
    /// 127.0.0.0/8 and ::1.
    Loopback,
    /// Private and link-local ranges: 10/8, 172.16/12, 192.168/16, 169.254/16, fc00::/7,
    /// fe80::/10.
    Private,
    /// Carrier-grade NAT space, 100.64.0.0/10 (RFC 6598): not on the local network, not
    /// globally routable either.
    Shared,
    /// Anything else: globally routable unicast.
    Public,
}

impl AddressClass {
    /// The class of `ip`.
    pub fn of(ip: core::net::IpAddr) -> Self {
        use core::net::IpAddr;
        match ip {
            IpAddr::V4(ip) => {
                let [a, b, ..] = ip.octets();
                // 0/8 is "this network", 240/4 reserved (and holds the broadcast address).
                if ip.is_unspecified() || ip.is_multicast() || a == 0 || a >= 240 {
                    Self::Unroutable
                } else if ip.is_loopback() {
                    Self::Loopback
                } else if ip.is_private() || ip.is_link_local() {
                    Self::Private
                } else if a == 100 && (b & 0xc0) == 64 {
                    Self::Shared
                } else {
                    Self::Public
                }
            }
            IpAddr::V6(ip) => {
                if let Some(v4) = ip.to_ipv4_mapped() {
                    return Self::of(IpAddr::V4(v4));
                }
                let seg0 = ip.segments().first().copied().unwrap_or(0);
                if ip.is_unspecified() || ip.is_multicast() {
                    Self::Unroutable
                } else if ip.is_loopback() {
                    Self::Loopback
                } else if (seg0 & 0xfe00) == 0xfc00 || (seg0 & 0xffc0) == 0xfe80 {
                    Self::Private
                } else {
                    Self::Public
                }
            }
        }
    }
}

/// Caps on every table and queue. Each field documents its worst-case memory.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Limits {
    /// Requests in flight at once (each ~160 bytes with its deadline index). At the cap,
    /// lookups wait and
    /// commands that need to send at once get [`CommandError::Busy`](crate::CommandError).
    pub max_in_flight: usize,
    /// Lookups and other commands running at once (each ~0.5 KB plus, per address family,
    /// `max_candidates` × ~112 bytes).
    pub max_queries: usize,
    /// Candidates a lookup keeps, closest first.
    pub max_candidates: usize,
    /// Outgoing messages queued for `poll_transmit` (each ~160 bytes; a reply is queued
    /// encoded, in a buffer of [`Limits::max_reply`] bytes, so up to ~1.5 KB with the
    /// defaults). At the cap, replies to incoming queries are dropped and counted.
    pub max_pending_transmits: usize,
    /// Events queued for `poll_event` (each ~192 bytes plus the peers, samples or bytes it
    /// carries, at most one datagram's worth). At the cap, events are dropped and an
    /// [`Event::EventsDropped`](crate::Event::EventsDropped) tells how many.
    pub max_pending_events: usize,
    /// Info-hashes in the peer store (each ~300 bytes with its indexes, plus its peers).
    pub max_info_hashes: usize,
    /// Peers kept per info-hash (each ~32 bytes, ~64 with vector slack).
    pub max_peers_per_info_hash: usize,
    /// BEP 44 items stored (each ~550 bytes plus its value, counted in `max_item_bytes`).
    pub max_items: usize,
    /// Custom queries waiting for the application's answer (each ~96 bytes).
    pub max_pending_custom: usize,
    /// Largest datagram accepted or produced, in bytes.
    pub max_datagram: usize,
    /// Bencode decoder limits (nesting depth, element count, string length).
    pub decode: DecodeLimits,
    /// Peers in the peer store, all info-hashes together (each ~32 bytes, ~256 at worst with
    /// slack and per-source bookkeeping). At the cap, a new peer replaces the least recently
    /// announced peer of the source with the most peers.
    pub max_stored_peers: usize,
    /// Bytes of BEP 44 values and salts stored, all items together. At the cap, the least
    /// recently updated item of the source (IPv4 address or IPv6 /64) with the most items is
    /// evicted.
    pub max_item_bytes: usize,
    /// Peers one source (IPv4 address or IPv6 /64) may have in the peer store, all info-hashes
    /// together. At the quota, its own least recently announced peer makes room, so a flooding
    /// source churns only itself. At the store's caps, the source with the most peers loses
    /// its oldest first.
    pub max_peers_per_source: usize,
    /// BEP 44 items one source (the putter's IPv4 address or IPv6 /64) may have stored. At the
    /// quota, its own least recently updated item makes room.
    pub max_items_per_source: usize,
    /// Sources (IPv4 addresses, IPv6 /64s) whose query budget and reflection windows are
    /// tracked (each ~100 bytes, allocated as sources are seen). When full, a new source
    /// replaces a sampled idle one; sources flooding now are kept (see [`RateLimit`]).
    pub max_sources: usize,
    /// Queries accepted per source; `None` accepts every query (a test bench, or behind a
    /// filter of your own). Protects the node's CPU and upload from one busy or hostile host.
    pub source_rate: Option<RateLimit>,
    /// Toward an address that never completed a round trip with this node (never answered a
    /// query of ours, never presented a valid token), bytes sent over any 10 seconds stay
    /// within `reflection_ratio ×` the bytes received from it, or [`Limits::reflection_burst`]
    /// if that is larger. Protects third parties from floods with their address as the
    /// spoofed source.
    pub reflection_ratio: u32,
    /// Bytes any address may get over 10 seconds whatever it sent: enough for a few complete
    /// answers, values included.
    pub reflection_burst: usize,
    /// Bytes per second of replies (responses and errors to others' queries), all sources
    /// together, with one second of burst; `None` leaves replies unlimited (the per-source
    /// limits still apply). Like libtorrent's `dht_upload_rate_limit` (8,000 there): the
    /// operator's own uplink budget. Queries the node sends are bounded by
    /// [`Limits::max_in_flight`] instead.
    pub upload_rate: Option<u32>,
    /// Routing-table pings that incoming queries cause (to check the sender or a questionable
    /// entry its arrival displaces), per second, with as many again of burst. Beyond it the
    /// sender is simply not added, so a spoofed flood cannot make the node send a ping per
    /// spoofed source.
    pub table_pings_per_second: u32,
    /// Largest reply in bytes (BEP 32 and libtorrent: 1,280, the IPv6 minimum MTU, so replies
    /// are never fragmented). Every reply is built within it, with every key counted; a reply
    /// that cannot be trimmed to fit is not sent and is counted as
    /// [`DropReason::ReplyTooLarge`](crate::DropReason::ReplyTooLarge). At most
    /// [`Limits::max_datagram`].
    pub max_reply: usize,
    /// Peers in one `get_peers` reply (libtorrent: 100).
    pub max_values: usize,
}

/// A per-source query budget: a token bucket of `burst` queries refilled at `per_second`. A
/// query that finds it empty is dropped ([`DropReason::RateLimited`](crate::DropReason)) and
/// blocks the source for `block`; queries while blocked are dropped
/// ([`DropReason::Blocked`](crate::DropReason)). Responses to the node's own queries are
/// never charged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Queries per second, on average.
    pub per_second: u32,
    /// Queries accepted at once after a quiet period.
    pub burst: u32,
    /// How long a source that went over budget is ignored.
    pub block: Duration,
}

impl RateLimit {
    /// libtorrent's defaults: 5 queries per second averaged over 10 seconds (a burst of 50),
    /// then a 5-minute block. A torrent client's lookups stay far below it.
    pub const CLIENT: Self = Self {
        per_second: 5,
        burst: 50,
        block: Duration::from_secs(5 * 60),
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_in_flight: 1024,
            max_queries: 128,
            max_candidates: 64,
            max_pending_transmits: 1024,
            max_pending_events: 1024,
            max_info_hashes: 16_384,
            max_peers_per_info_hash: 200,
            max_items: 4096,
            max_pending_custom: 256,
            max_datagram: 1500,
            decode: DecodeLimits::default(),
            max_stored_peers: 65_536,
            max_item_bytes: 1 << 20,
            max_peers_per_source: 256,
            max_items_per_source: 64,
            max_sources: 4096,
            source_rate: Some(RateLimit::CLIENT),
            reflection_ratio: 3,
            reflection_burst: 4096,
            upload_rate: None,
            table_pings_per_second: 10,
            max_reply: 1280,
            max_values: 100,
        }
    }
}

impl Limits {
    /// Limits for a well-connected, always-on node that many others query ("super node"), or a
    /// crawler answering the traffic its many ids attract: 10 times the query rate per source
    /// (50/s, burst 500, blocked 1 minute), 4 times the stores and 16 times the source table.
    /// Reflection limits stay as they are: they cost honest requesters nothing.
    pub fn super_node() -> Self {
        let d = Self::default();
        Self {
            max_info_hashes: d.max_info_hashes * 4,
            max_stored_peers: d.max_stored_peers * 4,
            max_items: d.max_items * 4,
            max_item_bytes: d.max_item_bytes * 4,
            max_sources: d.max_sources * 16,
            source_rate: Some(RateLimit {
                per_second: 50,
                burst: 500,
                block: Duration::from_secs(60),
            }),
            table_pings_per_second: 50,
            max_pending_transmits: d.max_pending_transmits * 4,
            ..d
        }
    }

    fn validate(&self, config: &Config) -> Result<(), ConfigError> {
        check(
            self.max_in_flight >= 1,
            "limits.max_in_flight",
            "must be at least 1",
        )?;
        check(
            self.max_queries >= 1,
            "limits.max_queries",
            "must be at least 1",
        )?;
        check(
            self.max_candidates >= config.bucket_size,
            "limits.max_candidates",
            "must be at least bucket_size",
        )?;
        check(
            self.max_pending_transmits >= 1,
            "limits.max_pending_transmits",
            "must be at least 1",
        )?;
        check(
            self.max_pending_events >= 2,
            "limits.max_pending_events",
            "must be at least 2",
        )?;
        check(
            (576..=65_507).contains(&self.max_datagram),
            "limits.max_datagram",
            "must be 576..=65507",
        )?;
        check(
            self.max_peers_per_info_hash >= 1,
            "limits.max_peers_per_info_hash",
            "must be at least 1",
        )?;
        check(
            (MIN_REPLY..=self.max_datagram).contains(&self.max_reply),
            "limits.max_reply",
            "must be between 300 and max_datagram",
        )?;
        check(
            self.source_rate
                .is_none_or(|r| r.per_second >= 1 && r.burst >= 1),
            "limits.source_rate",
            "must allow at least one query per second and a burst of one",
        )?;
        Ok(())
    }
}

/// `Ok` when `ok`, else the error naming `field`.
fn check(ok: bool, field: &'static str, problem: &'static str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError { field, problem })
    }
}

#[cfg(test)]
mod tests {
    use core::net::SocketAddr;

    use super::*;

    #[test]
    fn default_is_valid() {
        assert_eq!(Config::new([0; 32]).validate(), Ok(()));
    }

    #[test]
    fn errors_name_the_field() {
        let c = Config {
            alpha: 0,
            ..Config::new([0; 32])
        };
        assert_eq!(c.validate().unwrap_err().field, "alpha");
        let c = Config {
            query_timeout: Duration::from_millis(10),
            ..Config::new([0; 32])
        };
        assert_eq!(c.validate().unwrap_err().field, "query_timeout");
        let mut c = Config::new([0; 32]);
        c.limits.max_candidates = 2;
        assert_eq!(c.validate().unwrap_err().field, "limits.max_candidates");
    }

    #[test]
    fn guard_limits_are_checked() {
        let mut c = Config::new([0; 32]);
        c.limits.max_reply = c.limits.max_datagram + 1;
        assert_eq!(c.validate().unwrap_err().field, "limits.max_reply");
        c.limits.max_reply = MIN_REPLY - 1;
        assert_eq!(c.validate().unwrap_err().field, "limits.max_reply");
        let mut c = Config::new([0; 32]);
        c.limits.source_rate = Some(RateLimit {
            per_second: 0,
            ..RateLimit::CLIENT
        });
        assert_eq!(c.validate().unwrap_err().field, "limits.source_rate");
        let mut c = Config::new([0; 32]);
        c.limits = Limits::super_node();
        assert_eq!(c.validate(), Ok(()));
        assert!(c.limits.source_rate.unwrap().per_second > RateLimit::CLIENT.per_second);
    }

    #[test]
    fn address_classes() {
        use core::net::IpAddr;
        let cases: &[(&str, AddressClass)] = &[
            ("0.0.0.0", AddressClass::Unroutable),
            ("0.1.2.3", AddressClass::Unroutable),
            ("224.0.0.1", AddressClass::Unroutable),
            ("240.0.0.1", AddressClass::Unroutable),
            ("255.255.255.255", AddressClass::Unroutable),
            ("127.0.0.1", AddressClass::Loopback),
            ("127.255.0.9", AddressClass::Loopback),
            ("10.0.0.1", AddressClass::Private),
            ("172.16.0.1", AddressClass::Private),
            ("172.31.255.255", AddressClass::Private),
            ("192.168.1.1", AddressClass::Private),
            ("169.254.3.4", AddressClass::Private),
            ("100.64.0.1", AddressClass::Shared),
            ("100.127.255.255", AddressClass::Shared),
            ("100.128.0.1", AddressClass::Public),
            ("172.32.0.1", AddressClass::Public),
            ("8.8.8.8", AddressClass::Public),
            ("::", AddressClass::Unroutable),
            ("ff02::1", AddressClass::Unroutable),
            ("::1", AddressClass::Loopback),
            ("fc00::1", AddressClass::Private),
            ("fd12::1", AddressClass::Private),
            ("fe80::1", AddressClass::Private),
            ("::ffff:10.0.0.1", AddressClass::Private),
            ("::ffff:127.0.0.1", AddressClass::Loopback),
            ("2001:db8::1", AddressClass::Public),
        ];
        for (ip, class) in cases {
            let parsed: IpAddr = ip.parse().unwrap();
            assert_eq!(AddressClass::of(parsed), *class, "{ip}");
        }
    }

    #[test]
    fn address_policy() {
        let p = AddressPolicy::PUBLIC_ONLY;
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(p.allows(&a("1.2.3.4:6881")));
        assert!(!p.allows(&a("1.2.3.4:0")));
        assert!(!p.allows(&a("127.0.0.1:6881")));
        assert!(!p.allows(&a("10.0.0.1:6881")));
        assert!(!p.allows(&a("100.64.0.1:6881")));
        assert!(!p.allows(&a("0.1.2.3:6881")));
        assert!(!p.allows(&a("255.255.255.255:6881")));
        assert!(!p.allows(&a("224.0.0.1:6881")));
        assert!(!p.allows(&a("[::1]:6881")));
        assert!(!p.allows(&a("[fe80::1]:6881")));
        assert!(!p.allows(&a("[::ffff:127.0.0.1]:6881")));
        assert!(p.allows(&a("[2001:db8::1]:6881")));
        let all = AddressPolicy::ALLOW_ALL;
        assert!(all.allows(&a("127.0.0.1:6881")));
        assert!(all.allows(&a("[::1]:6881")));
        assert!(all.allows(&a("192.168.1.1:6881")));
        assert!(!all.allows(&a("0.0.0.0:6881")));
        assert!(!all.allows(&a("[::]:6881")));
    }
}
