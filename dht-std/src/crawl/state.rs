//! [`CrawlState`]: the crawler's node ids and contacts, kept in a file between runs.
//!
//! The format extends the node's state file ([`crate::State`]): UTF-8 text, `#` comments, one
//! `id HEX` line per crawler id (in order: id `i` is the `i`-th socket) and `node HEX ADDR:PORT`
//! lines for the contacts of all ids together. Written to a temporary sibling and renamed, so a
//! crash never leaves half a file.

use core::fmt;
use core::str::FromStr;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use dht_proto::Id;
use dht_proto::wire::compact::NodeInfo;

use crate::state::{self, ParseStateError};

/// Most ids a state file holds (and a crawler runs).
pub const MAX_IDS: usize = 1024;

/// What a crawler keeps between runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CrawlState {
    /// The node ids, one per socket, in order.
    pub ids: Vec<Id>,
    /// Contacts of all ids together, best first.
    pub nodes: Vec<NodeInfo>,
}

impl FromStr for CrawlState {
    type Err = ParseStateError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut ids = Vec::new();
        let nodes = state::parse_records(text, |id| {
            if ids.len() < MAX_IDS {
                ids.push(id?);
            } else {
                id?;
            }
            Ok(())
        })?;
        Ok(Self { ids, nodes })
    }
}

impl fmt::Display for CrawlState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        state::write_records(
            f,
            "dht crawl state: `id HEX` per crawler id, then `node HEX ADDR:PORT` contacts",
            &self.ids,
            &self.nodes,
        )
    }
}

impl CrawlState {
    /// Reads a state file; `Ok(None)` if it does not exist yet.
    ///
    /// # Errors
    /// The file cannot be read, or a line is malformed ([`io::ErrorKind::InvalidData`]).
    pub fn load(path: &Path) -> io::Result<Option<Self>> {
        state::load(path)
    }

    /// Writes the state to `path`, atomically.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        state::save(path, self)
    }
}

/// Locks `FILE.lock` beside a state file for as long as the returned file is open, so that two
/// crawlers never run with the same ids.
///
/// # Errors
/// [`io::ErrorKind::WouldBlock`] when another process holds it; any error creating the file.
pub fn lock(path: &Path) -> io::Result<File> {
    let mut lock_path: PathBuf = path.as_os_str().to_owned().into();
    lock_path.as_mut_os_string().push(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!(
                "the state file {} is in use by another crawler (each needs its own --state)",
                path.display()
            ),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_the_order_of_ids() {
        let state = CrawlState {
            ids: vec![Id::new([3; 20]), Id::new([1; 20]), Id::new([2; 20])],
            nodes: vec![NodeInfo {
                id: Id::new([9; 20]),
                addr: "127.0.0.2:7000".parse().unwrap(),
            }],
        };
        assert_eq!(state.to_string().parse::<CrawlState>().unwrap(), state);
    }

    #[test]
    fn a_file_as_written_loads_and_is_written_back_the_same() {
        let text = "# dht crawl state: `id HEX` per crawler id, then `node HEX ADDR:PORT` \
                    contacts\n\
                    id 0303030303030303030303030303030303030303\n\
                    id 0101010101010101010101010101010101010101\n\
                    node 0909090909090909090909090909090909090909 127.0.0.2:7000\n\
                    node 0808080808080808080808080808080808080808 [::1]:7001\n";
        let state = text.parse::<CrawlState>().unwrap();
        assert_eq!(state.ids, [Id::new([3; 20]), Id::new([1; 20])]);
        assert_eq!(state.nodes.len(), 2);
        assert_eq!(state.nodes[1].id, Id::new([8; 20]));
        assert_eq!(state.nodes[1].addr, "[::1]:7001".parse().unwrap());
        assert_eq!(state.to_string(), text);
        // Comments, blank lines and records in any order.
        let edited = "\n  # mine\nnode 0909090909090909090909090909090909090909 127.0.0.2:7000 \
                      # a contact\nid 0303030303030303030303030303030303030303\n\
                      node 0808080808080808080808080808080808080808 [::1]:7001\n\
                      id 0101010101010101010101010101010101010101 # second\n";
        assert_eq!(edited.parse::<CrawlState>().unwrap(), state);
        // A node's state file is a crawl state file with one id.
        let node = crate::State {
            id: Some(Id::new([3; 20])),
            nodes: state.nodes,
        };
        let read = node.to_string().parse::<CrawlState>().unwrap();
        assert_eq!((read.ids, read.nodes), (vec![Id::new([3; 20])], node.nodes));
    }

    #[test]
    fn errors_name_the_line_and_ids_are_capped() {
        let e = "id 00\n".parse::<CrawlState>().unwrap_err();
        assert_eq!(e.line, 1);
        let many: String = (0..MAX_IDS + 5)
            .map(|_| format!("id {}\n", Id::new([7; 20])))
            .collect();
        assert_eq!(many.parse::<CrawlState>().unwrap().ids.len(), MAX_IDS);
    }

    #[test]
    fn a_second_lock_is_refused() {
        let dir = std::env::temp_dir().join(format!("dht-crawl-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.state");
        let held = lock(&path).unwrap();
        assert_eq!(lock(&path).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        drop(held);
        assert!(lock(&path).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
