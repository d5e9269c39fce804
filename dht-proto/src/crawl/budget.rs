//! [`SendBudget`]: how many queries a crawler may send, and to whom, right now.

use core::net::IpAddr;
use core::time::Duration;

use hashbrown::HashMap;
use rand_core::RngCore;

use crate::rng::KeyedState;
use crate::time::Instant;

/// The limits of a [`SendBudget`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendBudgetConfig {
    /// Queries per second, all destinations together (default 500; at least 1).
    pub rate: u32,
    /// Queries that may go at once after a quiet spell (default 50; at least 1).
    pub burst: u32,
    /// The least time between two queries to one remote address (default 1 s). IPv6
    /// addresses count per /64, the block one host usually has.
    pub per_ip_interval: Duration,
    /// Remote addresses tracked at once (default 65,536, about 2 MB). At the cap, addresses
    /// whose interval is over are forgotten; if none is, new addresses must wait.
    pub max_tracked_ips: usize,
}

impl Default for SendBudgetConfig {
    fn default() -> Self {
        Self {
            rate: 500,
            burst: 50,
            per_ip_interval: Duration::from_secs(1),
            max_tracked_ips: 65_536,
        }
    }
}

/// Why a query may not go now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Throttled {
    /// The global rate is spent until `until`.
    Global {
        /// When the next query may go.
        until: Instant,
    },
    /// This address had a query less than [`SendBudgetConfig::per_ip_interval`] ago.
    PerIp {
        /// When it may have the next one.
        until: Instant,
    },
    /// [`SendBudgetConfig::max_tracked_ips`] addresses had a query within the interval.
    TooManyIps,
}

/// One remote address as the budget counts it: IPv4 whole, IPv6 by its /64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum IpKey {
    V4([u8; 4]),
    V6([u8; 8]),
}

impl From<IpAddr> for IpKey {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4.octets()),
                None => {
                    let [a, b, c, d, e, f, g, h, ..] = v6.octets();
                    Self::V6([a, b, c, d, e, f, g, h])
                }
            },
        }
    }
}

/// How long a reservation ([`SendBudget::reserve`]) holds an address at most: the default
/// query timeout, after which the query it was for has ended anyway.
pub const RESERVATION: Duration = Duration::from_secs(5);
/// How soon a query refused for a reserved address that is free asks again.
const RESERVED_RECHECK: Duration = Duration::from_millis(100);

/// Milli-queries per query: the token bucket counts in thousandths so that any rate refills
/// exactly with millisecond time.
const UNIT: u64 = 1000;

/// A crawler's send budget: a token bucket for the global rate and the time of the last query
/// to each remote address. Ask [`SendBudget::try_send`] before each query.
#[derive(Debug)]
pub struct SendBudget {
    config: SendBudgetConfig,
    /// Available queries, in thousandths.
    tokens: u64,
    refilled: Instant,
    last_sent: HashMap<IpKey, Instant, KeyedState>,
    /// Addresses with a query created but not sent yet ([`SendBudget::reserve`]), and when
    /// the reservation lapses.
    reserved: HashMap<IpKey, Instant, KeyedState>,
    sent: u64,
    throttled: u64,
}

impl SendBudget {
    /// A budget with a full burst available at `now`; its address table is hashed with a
    /// secret key drawn from `rng`.
    pub fn new(mut config: SendBudgetConfig, now: Instant, rng: &mut impl RngCore) -> Self {
        let mut key = [0; 16];
        rng.fill_bytes(&mut key);
        config.rate = config.rate.max(1);
        config.burst = config.burst.max(1);
        config.max_tracked_ips = config.max_tracked_ips.max(1);
        Self {
            config,
            tokens: u64::from(config.burst) * UNIT,
            refilled: now,
            last_sent: HashMap::with_hasher(KeyedState::new(key)),
            reserved: HashMap::with_hasher(KeyedState::new(key)),
            sent: 0,
            throttled: 0,
        }
    }

    /// The limits in force.
    pub fn config(&self) -> &SendBudgetConfig {
        &self.config
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled);
        let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        let cap = u64::from(self.config.burst) * UNIT;
        self.tokens = self
            .tokens
            .saturating_add(ms.saturating_mul(u64::from(self.config.rate)))
            .min(cap);
        self.refilled = self.refilled.max(now);
    }

    /// Takes one query to `ip` out of the budget at `now`, or says when to try again.
    ///
    /// # Errors
    ///
    /// [`Throttled`]: nothing is taken then.
    pub fn try_send(&mut self, now: Instant, ip: IpAddr) -> Result<(), Throttled> {
        let result = self.check(now, ip);
        match result {
            Ok(()) => self.sent += 1,
            Err(_) => self.throttled += 1,
        }
        result
    }

    /// [`SendBudget::try_send`] for a query that yields to reservations: refused while `ip`
    /// is reserved for another query ([`SendBudget::reserve`]), which then goes first.
    ///
    /// # Errors
    ///
    /// [`Throttled`]: nothing is taken then.
    pub fn try_send_unreserved(&mut self, now: Instant, ip: IpAddr) -> Result<(), Throttled> {
        let key = IpKey::from(ip);
        if self.reserved.get(&key).is_some_and(|lapse| now < *lapse) {
            // Ask again when the address is free, or a little later while it is.
            let free = self
                .last_sent
                .get(&key)
                .map(|t| t.saturating_add(self.config.per_ip_interval))
                .filter(|t| *t > now);
            let until = free.unwrap_or(now.saturating_add(RESERVED_RECHECK));
            self.throttled += 1;
            return Err(Throttled::PerIp { until });
        }
        self.try_send(now, ip)
    }

    /// Whether a query created for `ip` waits to go ([`SendBudget::reserve`]).
    pub fn is_reserved(&self, now: Instant, ip: IpAddr) -> bool {
        self.reserved
            .get(&IpKey::from(ip))
            .is_some_and(|lapse| now < *lapse)
    }

    fn check(&mut self, now: Instant, ip: IpAddr) -> Result<(), Throttled> {
        let key = IpKey::from(ip);
        let interval = self.config.per_ip_interval;
        if let Some(&last) = self.last_sent.get(&key) {
            let until = last.saturating_add(interval);
            if now < until {
                return Err(Throttled::PerIp { until });
            }
        } else if self.last_sent.len() >= self.config.max_tracked_ips {
            self.last_sent
                .retain(|_, last| now < last.saturating_add(interval));
            if self.last_sent.len() >= self.config.max_tracked_ips {
                return Err(Throttled::TooManyIps);
            }
        }
        self.refill(now);
        if self.tokens < UNIT {
            let rate = u64::from(self.config.rate);
            let wait_ms = (UNIT - self.tokens).div_ceil(rate);
            return Err(Throttled::Global {
                until: self.refilled.saturating_add(Duration::from_millis(wait_ms)),
            });
        }
        self.tokens -= UNIT;
        self.last_sent.insert(key, now);
        self.reserved.remove(&key);
        Ok(())
    }

    /// When `ip` may have its next query under the per-IP interval: `None` when it may now.
    /// Takes nothing, and says nothing of the global rate.
    pub fn ip_ready_at(&self, now: Instant, ip: IpAddr) -> Option<Instant> {
        let key = IpKey::from(ip);
        let interval = self.config.per_ip_interval;
        let free = self.last_sent.get(&key).map(|t| t.saturating_add(interval));
        let lapse = self.reserved.get(&key).copied();
        let until = free.into_iter().chain(lapse).max()?;
        (now < until).then_some(until)
    }

    /// Notes that a query to `ip` was created at `now` and waits to go: until it goes
    /// through [`SendBudget::try_send`] (or [`RESERVATION`] passes), [`SendBudget::ip_ready_at`]
    /// says `ip` must wait and [`SendBudget::try_send_unreserved`] refuses it, so that a caller
    /// creating queries only for unreserved addresses creates one per address, and it goes
    /// first. Takes nothing from the rate. At [`SendBudgetConfig::max_tracked_ips`]
    /// reservations, lapsed ones are forgotten first.
    pub fn reserve(&mut self, now: Instant, ip: IpAddr) {
        if self.reserved.len() >= self.config.max_tracked_ips {
            self.reserved.retain(|_, lapse| now < *lapse);
            if self.reserved.len() >= self.config.max_tracked_ips {
                return;
            }
        }
        self.reserved
            .insert(IpKey::from(ip), now.saturating_add(RESERVATION));
    }

    /// Whole queries the global rate allows at `now` (to any address not held back by the
    /// per-IP interval), without taking any.
    pub fn available(&mut self, now: Instant) -> u32 {
        self.refill(now);
        u32::try_from(self.tokens / UNIT).unwrap_or(u32::MAX)
    }

    /// When the global rate allows the next query (`now` if it does now).
    pub fn next_token(&mut self, now: Instant) -> Instant {
        self.refill(now);
        if self.tokens >= UNIT {
            return now;
        }
        let wait_ms = (UNIT - self.tokens).div_ceil(u64::from(self.config.rate));
        self.refilled.saturating_add(Duration::from_millis(wait_ms))
    }

    /// Queries allowed so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Queries refused so far.
    pub fn throttled(&self) -> u64 {
        self.throttled
    }

    /// Remote addresses tracked now.
    pub fn tracked_ips(&self) -> usize {
        self.last_sent.len()
    }
}
