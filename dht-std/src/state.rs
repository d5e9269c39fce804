//! [`State`]: a node's id and routing-table contacts, saved between runs.
//!
//! # File format
//!
//! UTF-8 text, one record per line; `#` starts a comment (a whole line or after a record),
//! blank lines are ignored:
//!
//! ```text
//! # dht routing table
//! id 0123456789abcdef0123456789abcdef01234567
//! node 89abcdef0123456789abcdef0123456789abcdef 203.0.113.7:6881
//! node fedcba9876543210fedcba9876543210fedcba98 [2001:db8::1]:51413
//! ```
//!
//! `id` (at most once) is the node id; each `node` line is a contact: its id in hex and its
//! address. Text keeps the file readable and editable by hand, and diffs well. Files are written
//! to a temporary sibling and renamed into place, so a crash never leaves half a file.

use core::fmt;
use core::net::SocketAddr;
use core::str::FromStr;
use std::io;
use std::path::Path;

use dht_proto::Id;
use dht_proto::wire::compact::NodeInfo;

/// Most `node` lines read from a file; the rest are ignored (a routing table holds far fewer).
pub const MAX_STATE_NODES: usize = 10_000;

/// What is saved between runs: the node id and its known contacts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// The node id, to keep the same place in the DHT across restarts.
    pub id: Option<Id>,
    /// Contacts, best first.
    pub nodes: Vec<NodeInfo>,
}

/// A state file line that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseStateError {
    /// The 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl fmt::Display for ParseStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.problem)
    }
}

impl core::error::Error for ParseStateError {}

impl FromStr for State {
    type Err = ParseStateError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut id = None;
        let nodes = parse_records(text, |parsed| {
            if id.is_some() {
                return Err("a second `id` line");
            }
            id = Some(parsed?);
            Ok(())
        })?;
        Ok(Self { id, nodes })
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_records(
            f,
            "dht routing table: `id HEX`, then `node HEX ADDR:PORT` lines",
            &self.id,
            &self.nodes,
        )
    }
}

impl State {
    /// Reads a state file; `Ok(None)` if it does not exist yet.
    ///
    /// # Errors
    ///
    /// The file cannot be read, or a line is malformed ([`io::ErrorKind::InvalidData`], naming
    /// the line).
    pub fn load(path: &Path) -> io::Result<Option<Self>> {
        load(path)
    }

    /// Writes the state to `path`, atomically (a temporary file renamed into place).
    ///
    /// # Errors
    ///
    /// The file cannot be written.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        save(path, self)
    }

    /// The contacts' addresses.
    pub fn addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.nodes.iter().map(|n| n.addr)
    }
}

/// Reads the records of a state file (this one or the crawler's,
/// [`CrawlState`](crate::crawl::CrawlState)): hands each `id` line's id, or what is wrong with
/// it, to `id`, which may refuse it with a problem of its own; returns the contacts of the
/// `node` lines (the first [`MAX_STATE_NODES`]).
pub(crate) fn parse_records(
    text: &str,
    mut id: impl FnMut(Result<Id, &'static str>) -> Result<(), &'static str>,
) -> Result<Vec<NodeInfo>, ParseStateError> {
    let mut nodes = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let err = |problem| ParseStateError {
            line: i + 1,
            problem,
        };
        // `#` starts a comment, at the start of a line or after a record.
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("id"), Some(hex), None, None) => {
                id(hex.parse().map_err(|_| "the id is not 40 hex digits")).map_err(err)?;
            }
            (Some("node"), Some(hex), Some(addr), None) => {
                let id = hex
                    .parse()
                    .map_err(|_| err("the node id is not 40 hex digits"))?;
                let addr = addr
                    .parse()
                    .map_err(|_| err("the node address is not IP:PORT"))?;
                if nodes.len() < MAX_STATE_NODES {
                    nodes.push(NodeInfo { id, addr });
                }
            }
            _ => return Err(err("expected `id HEX` or `node HEX ADDR:PORT`")),
        }
    }
    Ok(nodes)
}

/// Writes a state file's records: the `# header` comment, an `id` line per id, then a `node`
/// line per contact.
pub(crate) fn write_records<'a>(
    f: &mut fmt::Formatter<'_>,
    header: &str,
    ids: impl IntoIterator<Item = &'a Id>,
    nodes: &[NodeInfo],
) -> fmt::Result {
    writeln!(f, "# {header}")?;
    for id in ids {
        writeln!(f, "id {id}")?;
    }
    for n in nodes {
        writeln!(f, "node {} {}", n.id, n.addr)?;
    }
    Ok(())
}

/// Reads a state file of either kind; `Ok(None)` if it does not exist yet.
pub(crate) fn load<T: FromStr<Err = ParseStateError>>(path: &Path) -> io::Result<Option<T>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    text.parse()
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Writes a state file of either kind to `path`, atomically: to a temporary sibling, renamed
/// into place.
pub(crate) fn save(path: &Path, state: &impl fmt::Display) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, state.to_string())?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> Id {
        Id::from([b; 20])
    }

    #[test]
    fn round_trip() {
        let state = State {
            id: Some(id(1)),
            nodes: vec![
                NodeInfo {
                    id: id(2),
                    addr: "127.0.0.1:6881".parse().unwrap(),
                },
                NodeInfo {
                    id: id(3),
                    addr: "[::1]:7000".parse().unwrap(),
                },
            ],
        };
        let text = state.to_string();
        assert!(text.contains(&format!("node {} [::1]:7000", id(3))));
        assert_eq!(text.parse::<State>().unwrap(), state);
    }

    #[test]
    fn a_file_as_written_loads_and_is_written_back_the_same() {
        let text = "# dht routing table: `id HEX`, then `node HEX ADDR:PORT` lines\n\
                    id 0101010101010101010101010101010101010101\n\
                    node 0202020202020202020202020202020202020202 127.0.0.1:6881\n\
                    node 0303030303030303030303030303030303030303 [::1]:7000\n";
        let state = text.parse::<State>().unwrap();
        assert_eq!(state.id, Some(id(1)));
        assert_eq!(
            state.addrs().collect::<Vec<_>>(),
            [
                "127.0.0.1:6881".parse().unwrap(),
                "[::1]:7000".parse().unwrap()
            ]
        );
        assert_eq!(state.nodes[1].id, id(3));
        assert_eq!(state.to_string(), text);
        // Without an id, and with the contacts capped.
        let many: String = (0..MAX_STATE_NODES + 3)
            .map(|_| format!("node {} 10.0.0.1:1\n", id(4)))
            .collect();
        let state = many.parse::<State>().unwrap();
        assert_eq!((state.id, state.nodes.len()), (None, MAX_STATE_NODES));
    }

    #[test]
    fn comments_after_records() {
        let text = format!(
            "id {}  # my node\nnode {} 127.0.0.1:7000 # the seed\n   # indented\n",
            id(1),
            id(2)
        );
        let state = text.parse::<State>().unwrap();
        assert_eq!(state.id, Some(id(1)));
        assert_eq!(state.nodes.len(), 1);
    }

    #[test]
    fn errors_name_the_line() {
        let text = format!("# c\n\nid {}\nnode {} nowhere\n", id(1), id(2));
        let e = text.parse::<State>().unwrap_err();
        assert_eq!(e.line, 4);
        assert_eq!(e.to_string(), "line 4: the node address is not IP:PORT");
        assert_eq!("idx 00".parse::<State>().unwrap_err().line, 1);
        let twice = format!("id {}\nid {}\n", id(1), id(1));
        assert_eq!(twice.parse::<State>().unwrap_err().line, 2);
        // A second id line is refused before its hex is read.
        let e = format!("id {}\nid nothex\n", id(1))
            .parse::<State>()
            .unwrap_err();
        assert_eq!(e.to_string(), "line 2: a second `id` line");
        for (text, problem) in [
            ("id 12", "the id is not 40 hex digits"),
            ("node 12 127.0.0.1:1", "the node id is not 40 hex digits"),
            ("node", "expected `id HEX` or `node HEX ADDR:PORT`"),
            ("id a b", "expected `id HEX` or `node HEX ADDR:PORT`"),
        ] {
            assert_eq!(
                text.parse::<State>().unwrap_err().problem,
                problem,
                "{text}"
            );
        }
    }

    #[test]
    fn load_missing_is_none_and_save_load_round_trips() {
        let dir = std::env::temp_dir().join(format!("dht-state-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.txt");
        let _ = std::fs::remove_file(&path);
        assert_eq!(State::load(&path).unwrap(), None);
        let state = State {
            id: Some(id(9)),
            nodes: vec![],
        };
        state.save(&path).unwrap();
        assert_eq!(State::load(&path).unwrap(), Some(state));
        std::fs::write(&path, "garbage\n").unwrap();
        let e = State::load(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
