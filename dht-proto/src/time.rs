//! Time as an input: [`Instant`] is milliseconds since an epoch the caller chooses.
//!
//! The core never reads a clock. Every input carries `now`; spans are
//! [`core::time::Duration`]. All arithmetic saturates, so no timestamp, however wild, can
//! overflow or panic.

use core::fmt;
use core::time::Duration;

/// A point in time: whole milliseconds since an epoch chosen by the caller.
///
/// Only differences between instants matter to the node, so the epoch can be process start,
/// the Unix epoch or virtual time zero in a simulation.
///
/// ```
/// use core::time::Duration;
/// use dht_proto::Instant;
///
/// let t0 = Instant::from_millis(1_000);
/// let t1 = t0 + Duration::from_secs(2);
/// assert_eq!(t1.as_millis(), 3_000);
/// assert_eq!(t1.saturating_duration_since(t0), Duration::from_secs(2));
/// assert_eq!(t0.saturating_duration_since(t1), Duration::ZERO);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The epoch itself.
    pub const ZERO: Self = Self(0);
    /// The latest representable instant; used as "never".
    pub const MAX: Self = Self(u64::MAX);

    /// An instant `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// An instant `secs` seconds after the epoch (saturating).
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs.saturating_mul(1000))
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `self + d`, or `None` if it would not fit.
    pub fn checked_add(self, d: Duration) -> Option<Self> {
        let ms = u64::try_from(d.as_millis()).ok()?;
        self.0.checked_add(ms).map(Self)
    }

    /// `self + d`, clamped to [`Instant::MAX`].
    pub fn saturating_add(self, d: Duration) -> Self {
        self.checked_add(d).unwrap_or(Self::MAX)
    }

    /// `self - d`, clamped to [`Instant::ZERO`].
    pub fn saturating_sub(self, d: Duration) -> Self {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self(self.0.saturating_sub(ms))
    }

    /// The time elapsed from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl core::ops::Add<Duration> for Instant {
    type Output = Self;

    /// Saturating addition: never overflows.
    fn add(self, rhs: Duration) -> Self {
        self.saturating_add(rhs)
    }
}

impl core::ops::AddAssign<Duration> for Instant {
    fn add_assign(&mut self, rhs: Duration) {
        *self = self.saturating_add(rhs);
    }
}

impl core::ops::Sub<Duration> for Instant {
    type Output = Self;

    /// Saturating subtraction: never underflows.
    fn sub(self, rhs: Duration) -> Self {
        self.saturating_sub(rhs)
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}s", self.0 / 1000, self.0 % 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(Instant::MAX + Duration::from_secs(1), Instant::MAX);
        assert_eq!(Instant::ZERO - Duration::from_secs(1), Instant::ZERO);
        assert_eq!(Instant::from_millis(5).checked_add(Duration::MAX), None);
        assert_eq!(Instant::from_secs(u64::MAX), Instant::MAX);
        assert_eq!(
            Instant::from_millis(10).saturating_duration_since(Instant::from_millis(20)),
            Duration::ZERO
        );
    }

    #[test]
    fn display_is_seconds_and_millis() {
        assert_eq!(
            alloc::format!("{}", Instant::from_millis(61_005)),
            "61.005s"
        );
    }
}
