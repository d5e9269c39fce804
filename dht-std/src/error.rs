//! [`Error`]: what the adapter and the threaded handle can fail with.

use core::fmt;
use core::net::SocketAddr;
use std::io;

use dht_proto::{CommandError, ConfigError, QueryStatus};

/// Why an operation of [`Dht`](crate::Dht) or [`DhtHandle`](crate::DhtHandle) failed.
///
/// Every variant displays as one sentence fit for a command-line user.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A socket could not be bound.
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        source: io::Error,
    },
    /// The node's configuration is invalid.
    Config(ConfigError),
    /// The node refused a command.
    Command(CommandError),
    /// A command ran and failed: no answer, a KRPC error, or cancelled.
    Query(QueryStatus),
    /// Waiting on or reading the sockets failed.
    Io(io::Error),
    /// The node's thread has stopped.
    Stopped,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bind { addr, source } => match source.kind() {
                io::ErrorKind::AddrInUse => {
                    write!(f, "cannot bind UDP {addr}: the address is already in use")
                }
                io::ErrorKind::AddrNotAvailable => write!(
                    f,
                    "cannot bind UDP {addr}: the address does not belong to this machine"
                ),
                io::ErrorKind::PermissionDenied => {
                    write!(f, "cannot bind UDP {addr}: permission denied")
                }
                _ => write!(f, "cannot bind UDP {addr}: {source}"),
            },
            Self::Config(e) => e.fmt(f),
            Self::Command(e) => e.fmt(f),
            Self::Query(status) => match status {
                QueryStatus::TimedOut => f.write_str("no answer in time"),
                QueryStatus::Error { code, message } => {
                    write!(f, "the remote node answered with error {code}: {message}")
                }
                QueryStatus::Cancelled => f.write_str("the query was cancelled"),
                QueryStatus::Exhausted => f.write_str("no node could be reached"),
                other => write!(f, "the query ended with {other:?}"),
            },
            Self::Io(e) => write!(f, "socket error: {e}"),
            Self::Stopped => f.write_str("the DHT node has stopped"),
        }
    }
}

impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Bind { source, .. } | Self::Io(source) => Some(source),
            Self::Config(e) => Some(e),
            Self::Command(e) => Some(e),
            Self::Query(_) | Self::Stopped => None,
        }
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Self::Config(e)
    }
}

impl From<CommandError> for Error {
    fn from(e: CommandError) -> Self {
        Self::Command(e)
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}
