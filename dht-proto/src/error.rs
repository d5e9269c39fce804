//! Errors of the local caller: [`ConfigError`] (and, with the node, `CommandError`).
//!
//! Remote faults are never errors: they are dropped and counted, or answered with a KRPC error.
//! Decode errors live in [`wire`](crate::wire).

use core::fmt;

/// A [`Config`](crate::Config) field is out of range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The offending field, as written in the source (`"alpha"`, `"limits.max_datagram"`).
    pub field: &'static str,
    /// What the field must satisfy.
    pub problem: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid configuration: `{}` {}",
            self.field, self.problem
        )
    }
}

impl core::error::Error for ConfigError {}
