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

/// Why a command could not start. These are the caller's mistakes or local limits, never remote
/// faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandError {
    /// [`Limits::max_queries`](crate::Limits::max_queries) commands are already running.
    TooManyQueries,
    /// The routing table is empty and no bootstrap contacts are known: call
    /// [`Node::bootstrap`](crate::Node::bootstrap) or [`Node::add_node`](crate::Node::add_node).
    NoContacts,
    /// The address is refused by the [`AddressPolicy`](crate::AddressPolicy) or is of a family
    /// this node does not run.
    AddressRejected,
    /// The query id is unknown or already finished.
    UnknownQuery,
    /// Port 0 is not a valid port to announce.
    InvalidPort,
    /// An argument is malformed; the string names it.
    InvalidArgument(&'static str),
    /// [`Limits::max_in_flight`](crate::Limits::max_in_flight) requests are already in flight or
    /// the transmit queue is full.
    Busy,
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyQueries => f.write_str("too many queries are running"),
            Self::NoContacts => f.write_str(
                "no contacts: the routing table is empty and no bootstrap node is known",
            ),
            Self::AddressRejected => f.write_str("the address is refused by the address policy"),
            Self::UnknownQuery => f.write_str("unknown or finished query"),
            Self::InvalidPort => f.write_str("port 0 cannot be announced"),
            Self::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            Self::Busy => f.write_str("too many requests in flight"),
        }
    }
}

impl core::error::Error for CommandError {}

/// Why an incoming datagram was dropped without an answer. Counted in
/// [`Stats::dropped`](crate::Stats).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// Not a KRPC message (bencode or structure error); answered with 203 when a transaction
    /// id could be found.
    Malformed,
    /// Larger than [`Limits::max_datagram`](crate::Limits::max_datagram).
    TooLarge,
    /// The source address is refused by the [`AddressPolicy`](crate::AddressPolicy).
    AddressRejected,
    /// A response or error whose transaction id matches nothing in flight.
    UnknownTransaction,
    /// A response whose transaction id matches, but from another address than the query went to.
    WrongSource,
    /// A response whose node id differs from the id the query was sent to.
    WrongId,
    /// A query carrying our own node id (a reflection or a confused peer).
    OwnId,
    /// This node is read-only (BEP 43) and answers no queries.
    ReadOnly,
    /// The transmit queue was full, so the answer was dropped.
    TransmitQueueFull,
    /// A custom query arrived while too many were waiting for the application.
    CustomQueueFull,
    /// A query over its source's budget ([`Limits::source_rate`](crate::Limits)); the source
    /// is now blocked.
    RateLimited,
    /// A query from a source blocked for going over its budget.
    Blocked,
    /// A query whose answer would exceed what the node sends toward an address that never
    /// completed a round trip with it ([`Limits::reflection_ratio`](crate::Limits)).
    Reflection,
    /// A query whose answer would exceed the node's reply budget
    /// ([`Limits::upload_rate`](crate::Limits)).
    UploadBudget,
    /// A query whose answer could not be trimmed to fit
    /// [`Limits::max_reply`](crate::Limits::max_reply).
    ReplyTooLarge,
}

impl DropReason {
    /// Every reason, for iterating counters.
    pub const ALL: [Self; 15] = [
        Self::Malformed,
        Self::TooLarge,
        Self::AddressRejected,
        Self::UnknownTransaction,
        Self::WrongSource,
        Self::WrongId,
        Self::OwnId,
        Self::ReadOnly,
        Self::TransmitQueueFull,
        Self::CustomQueueFull,
        Self::RateLimited,
        Self::Blocked,
        Self::Reflection,
        Self::UploadBudget,
        Self::ReplyTooLarge,
    ];

    /// A short stable name for logs and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::TooLarge => "too_large",
            Self::AddressRejected => "address_rejected",
            Self::UnknownTransaction => "unknown_transaction",
            Self::WrongSource => "wrong_source",
            Self::WrongId => "wrong_id",
            Self::OwnId => "own_id",
            Self::ReadOnly => "read_only",
            Self::TransmitQueueFull => "transmit_queue_full",
            Self::CustomQueueFull => "custom_queue_full",
            Self::RateLimited => "rate_limited",
            Self::Blocked => "blocked",
            Self::Reflection => "reflection",
            Self::UploadBudget => "upload_budget",
            Self::ReplyTooLarge => "reply_too_large",
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
