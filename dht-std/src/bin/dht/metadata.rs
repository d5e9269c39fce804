//! `dht metadata`: fetch a torrent's info dictionary from its peers (BEP 9 + BEP 10).

use core::fmt::Write as _;
use core::net::SocketAddr;
use core::sync::atomic::Ordering;
use core::time::Duration;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use dht_proto::{Event, Id};
use dht_std::metadata::{
    FailReason, FetchError, FetchOptions, Fetcher, FetcherEvent, InfoDict, Metadata, PeerError,
    torrent_file,
};
use serde::Serialize;

use crate::output::{Out, Record, count};
use crate::session::{Session, Setup, resolve};
use crate::{Fail, Lookup, Torrent};

const CLIENT_BIND: SocketAddr =
    SocketAddr::new(core::net::IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED), 0);
/// How long each of the DHT node and the fetcher waits before the other gets its turn.
const SLICE: Duration = Duration::from_millis(10);

/// Arguments of `dht metadata`.
#[derive(Debug, clap::Args)]
#[command(mut_arg("timeout", |a| {
    a.help("Give up after SECS seconds (the DHT lookup and the fetches together)")
}))]
pub struct Args {
    #[command(flatten)]
    torrent: Torrent,
    /// Fetch from this peer (HOST:PORT) instead of looking peers up on the DHT; repeatable
    #[arg(long, value_name = "ADDR")]
    peer: Vec<String>,
    /// Write the torrent to DIR/HEX.torrent (HEX: the info-hash)
    #[arg(long, value_name = "DIR")]
    output: Option<PathBuf>,
    #[command(flatten)]
    lookup: Lookup,
}

/// Counters shown on the progress line.
#[derive(Debug, Default)]
struct Counts {
    found: usize,
    tried: usize,
    connected: usize,
    failed: usize,
}

/// The fetched metadata (`type` `metadata`).
#[derive(Debug, Serialize)]
struct MetadataRecord {
    info_hash: String,
    name: Option<String>,
    total_size: Option<u64>,
    piece_length: Option<u64>,
    private: Option<bool>,
    files: Vec<FileRecord>,
    /// Why the info dictionary could not be listed (it is still verified and saved).
    unreadable: Option<String>,
    info_size: usize,
    peer: String,
    client: Option<String>,
    torrent: Option<String>,
    peers_found: usize,
    peers_tried: usize,
}

#[derive(Debug, Serialize)]
struct FileRecord {
    path: String,
    length: u64,
}

impl Record for MetadataRecord {
    const TYPE: &'static str = "metadata";

    fn text(&self) -> Option<String> {
        let mut t = String::new();
        if let Some(name) = &self.name {
            let _ = writeln!(t, "name:         {name}");
        }
        let _ = writeln!(t, "info-hash:    {}", self.info_hash);
        if let Some(size) = self.total_size {
            let _ = writeln!(t, "size:         {} ({size} bytes)", human(size));
        }
        if let Some(len) = self.piece_length {
            let _ = writeln!(t, "piece length: {}", human(len));
        }
        if let Some(why) = &self.unreadable {
            let _ = writeln!(t, "unreadable:   {why}");
        } else {
            let _ = writeln!(t, "files:        {}", self.files.len());
        }
        for f in &self.files {
            let _ = writeln!(t, "  {:>10}  {}", human(f.length), f.path);
        }
        let client = self
            .client
            .as_deref()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
        let _ = write!(
            t,
            "from:         {}{client}, {} bytes of metadata",
            self.peer, self.info_size
        );
        if let Some(path) = &self.torrent {
            let _ = write!(t, "\nsaved:        {path}");
        }
        Some(t)
    }
}

/// No peer gave the metadata (`type` `metadata_failed`; JSON only: the text form is the error
/// sentence on stderr).
#[derive(Debug, Serialize)]
struct FailedRecord {
    info_hash: String,
    error: String,
    peers_found: usize,
    peers_tried: usize,
    failures: Vec<FailureRecord>,
}

#[derive(Debug, Serialize)]
struct FailureRecord {
    peer: String,
    reason: String,
}

impl Record for FailedRecord {
    const TYPE: &'static str = "metadata_failed";

    fn text(&self) -> Option<String> {
        None
    }
}

pub fn run(json: bool, args: Args) -> Result<ExitCode, Fail> {
    if let Some(dir) = &args.output
        && !dir.is_dir()
    {
        return Err(Fail::input(format_args!(
            "--output {}: not a directory",
            dir.display()
        )));
    }
    let mut peers = Vec::new();
    for p in &args.peer {
        peers.extend(resolve(p, "peer address")?);
    }
    let deadline = std::time::Instant::now() + args.lookup.timeout;
    let mut options = FetchOptions::default();
    options.fetch.total_timeout = options.fetch.total_timeout.min(args.lookup.timeout);
    let mut fetcher = Fetcher::new(options).map_err(Fail::failed)?;
    let mut counts = Counts::default();
    let (result, mut out) = if peers.is_empty() {
        let setup = Setup {
            default_bind: CLIENT_BIND,
            timeout: Some(args.lookup.timeout),
            read_only: true,
            allow_all: false,
            progress: true,
            lenient_join: false,
        };
        let (mut s, contacts) =
            Session::open(&args.lookup.local, Some(&args.lookup.join), json, setup)?;
        s.join(&contacts)?;
        let result = via_dht(&mut s, &mut fetcher, args.torrent.info_hash, &mut counts);
        s.save_state();
        (result?, s.out)
    } else {
        counts.found = peers.len();
        let mut out = Out::new(json, true);
        let id = fetcher.start(args.torrent.info_hash, peers);
        let mut result = None;
        while result.is_none() {
            if std::time::Instant::now() >= deadline {
                fetcher.cancel(id);
                return Err(Fail::failed("timed out before any peer gave the metadata"));
            }
            fetcher
                .step(Some(Duration::from_millis(100)))
                .map_err(Fail::failed)?;
            result = drain(&mut fetcher, &mut counts);
            out.progress().update(|| counts.line("metadata"));
        }
        out.progress().clear();
        (result.ok_or_else(|| Fail::failed("no result"))?, out)
    };
    match result {
        Ok(metadata) => report(&mut out, &args, &metadata, &counts),
        Err(error) => report_failure(&mut out, args.torrent.info_hash, &error, &counts),
    }
}

impl Counts {
    fn line(&self, label: &str) -> String {
        format!(
            "{label}: {} found, {} tried, {} connected, {} failed",
            count(self.found, "peer"),
            self.tried,
            self.connected,
            self.failed
        )
    }
}

/// Passes the fetcher's events to the counters; the result once the fetch has finished.
fn drain(fetcher: &mut Fetcher, counts: &mut Counts) -> Option<Result<Metadata, FetchError>> {
    let mut result = None;
    while let Some(event) = fetcher.poll_event() {
        match event {
            FetcherEvent::Connected { peer, .. } => {
                counts.connected += 1;
                log::debug!("{peer}: connected");
            }
            FetcherEvent::Offered {
                peer,
                metadata_size,
                ..
            } => log::debug!("{peer}: offers {metadata_size} bytes of metadata"),
            FetcherEvent::PeerFailed { peer, reason, .. } => {
                counts.failed += 1;
                log::info!("{peer}: {reason}");
            }
            FetcherEvent::Finished { result: r, .. } => {
                counts.tried = match &r {
                    Ok(m) => m.tried,
                    Err(e) => e.tried,
                };
                result = Some(r);
            }
            _ => {}
        }
    }
    if result.is_none() {
        counts.tried = counts.failed + fetcher.connections();
    }
    result
}

/// Looks the peers up on the DHT while fetching from those already found.
fn via_dht(
    s: &mut Session,
    fetcher: &mut Fetcher,
    info_hash: Id,
    counts: &mut Counts,
) -> Result<Result<Metadata, FetchError>, Fail> {
    let query = s
        .dht
        .get_peers(info_hash)
        .map_err(|e| Fail::failed(format_args!("cannot start the lookup: {e}")))?;
    let id = fetcher.start_open(info_hash);
    let mut lookup_done = false;
    loop {
        while let Some(event) = s.dht.poll_event() {
            match event {
                Event::PeersFound { query: q, peers } if q == query => {
                    counts.found += fetcher.add_peers(id, peers);
                }
                Event::QueryFinished { query: q, .. } if q == query => {
                    lookup_done = true;
                    fetcher.end_peers(id);
                }
                _ => {}
            }
        }
        if let Some(result) = drain(fetcher, counts) {
            if !lookup_done {
                let _ = s.dht.cancel(query);
            }
            s.out.progress().clear();
            return Ok(result);
        }
        let stopped = s.stop.load(Ordering::Relaxed)
            || s.deadline.is_some_and(|d| std::time::Instant::now() >= d);
        if stopped {
            fetcher.cancel(id);
            s.out.progress().clear();
            let what = if counts.found == 0 {
                "no peer found on the DHT"
            } else {
                "no peer gave the metadata"
            };
            return Err(Fail::failed(format_args!("{what} before the time limit")));
        }
        let label = if lookup_done {
            "metadata"
        } else {
            "looking up peers"
        };
        let line = counts.line(label);
        s.out.progress().update(|| line);
        s.dht.step(Some(SLICE)).map_err(Fail::failed)?;
        fetcher.step(Some(SLICE)).map_err(Fail::failed)?;
    }
}

fn report(out: &mut Out, args: &Args, m: &Metadata, counts: &Counts) -> Result<ExitCode, Fail> {
    let torrent = match &args.output {
        Some(dir) => Some(save(dir, m)?),
        None => None,
    };
    let parsed = InfoDict::parse(&m.info);
    let info = parsed.as_ref().ok();
    out.emit(&MetadataRecord {
        info_hash: args.torrent.info_hash.to_string(),
        name: info.map(|i| i.name.clone()),
        total_size: info.map(|i| i.total_size),
        piece_length: info.map(|i| i.piece_length),
        private: info.map(|i| i.private),
        files: info
            .map(|i| {
                i.files
                    .iter()
                    .map(|f| FileRecord {
                        path: f.path.join("/"),
                        length: f.length,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        unreadable: parsed.as_ref().err().map(ToString::to_string),
        info_size: m.info.len(),
        peer: m.peer.to_string(),
        client: m.client.clone(),
        torrent: torrent.as_ref().map(|p| p.display().to_string()),
        peers_found: counts.found,
        peers_tried: counts.tried,
    })?;
    Ok(ExitCode::SUCCESS)
}

fn save(dir: &Path, m: &Metadata) -> Result<PathBuf, Fail> {
    let path = dir.join(format!("{}.torrent", m.info_hash));
    std::fs::write(&path, torrent_file(&m.info))
        .map_err(|e| Fail::failed(format_args!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

fn report_failure(
    out: &mut Out,
    info_hash: Id,
    error: &FetchError,
    counts: &Counts,
) -> Result<ExitCode, Fail> {
    let message = summary(error);
    if out.json() {
        // The record carries the message and every reason: no separate error object.
        out.emit(&FailedRecord {
            info_hash: info_hash.to_string(),
            error: message,
            peers_found: counts.found,
            peers_tried: error.tried,
            failures: error
                .failures
                .iter()
                .map(|(peer, reason)| FailureRecord {
                    peer: peer.to_string(),
                    reason: reason.to_string(),
                })
                .collect(),
        })?;
        return Ok(ExitCode::FAILURE);
    }
    Err(Fail::failed(message))
}

/// One sentence for a failed fetch, grouping the peers' reasons.
fn summary(error: &FetchError) -> String {
    if error.tried == 0 {
        return "no peer to fetch the metadata from".into();
    }
    let mut groups: Vec<(&str, usize)> = Vec::new();
    for (_, reason) in &error.failures {
        let label = match reason {
            PeerError::Connect(_) | PeerError::ConnectTimeout => "unreachable",
            PeerError::Protocol(FailReason::NoUtMetadata | FailReason::NoExtensionProtocol) => {
                "without ut_metadata"
            }
            PeerError::Protocol(FailReason::HashMismatch) => "with metadata not matching the hash",
            PeerError::Protocol(FailReason::MetadataTooLarge { .. }) => {
                "with metadata larger than the cap"
            }
            PeerError::Protocol(FailReason::Rejected { .. }) => "rejecting the request",
            PeerError::Protocol(FailReason::Timeout(_)) => "timed out",
            _ => "with other errors",
        };
        match groups.iter_mut().find(|(l, _)| *l == label) {
            Some((_, n)) => *n += 1,
            None => groups.push((label, 1)),
        }
    }
    if let ([(peer, reason)], 1) = (error.failures.as_slice(), error.tried) {
        return format!("the peer {peer} gave no metadata: {reason}");
    }
    let parts: Vec<String> = groups.iter().map(|(l, n)| format!("{n} {l}")).collect();
    format!(
        "none of the {} peers gave the metadata: {} (-v for each peer's reason)",
        error.tried,
        parts.join(", ")
    )
}

/// A byte count in binary units.
fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(10 * 1024 * 1024), "10.0 MiB");
    }

    #[test]
    fn summary_groups_reasons() {
        let p: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let e = FetchError {
            tried: 3,
            failures: vec![
                (p, PeerError::Protocol(FailReason::NoUtMetadata)),
                (p, PeerError::Protocol(FailReason::NoExtensionProtocol)),
                (p, PeerError::Protocol(FailReason::HashMismatch)),
            ],
        };
        assert_eq!(
            summary(&e),
            "none of the 3 peers gave the metadata: 2 without ut_metadata, 1 with metadata \
             not matching the hash (-v for each peer's reason)"
        );
    }
}
