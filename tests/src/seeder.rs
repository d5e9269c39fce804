//! A metadata seeder: one TCP listener serving the info dictionaries of many torrents over
//! BEP 9/10 (the BitTorrent handshake, the extended handshake with `ut_metadata` and
//! `metadata_size`, then `data` or `reject` for each piece requested). It serves metadata only,
//! never content. For the crawler's benchmark and tests, on loopback.
//!
//! Bounded and self-stopping: at most [`SeederConfig::max_connections`] at once (one thread
//! each; further connections are closed at once and counted), a connection idle for
//! [`SeederConfig::idle_timeout`] or asking for more pieces than its torrent has twice over is
//! closed, and the whole seeder stops when dropped or when [`SeederConfig::lifetime`] has passed.

use core::net::SocketAddr;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use core::time::Duration;
use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use dht_proto::Id;
use dht_proto::metadata::{PIECE_LEN, msg};
use dht_proto::wire::bencode::{self, DecodeLimits};

use crate::torrents::Torrent;

/// The seeder's extended message id for `ut_metadata` (what fetchers send requests with).
pub const SEEDER_UT_METADATA: u8 = 3;

/// The BEP 3 protocol string, as the handshake starts.
const PROTOCOL: &[u8] = b"\x13BitTorrent protocol";

/// Longest message read from a fetcher (a `ut_metadata` request or an extended handshake).
const MAX_MESSAGE: usize = 64 * 1024;

/// How often blocked reads and the accept loop look at the stop flag.
const TICK: Duration = Duration::from_millis(50);

/// Limits of a [`Seeder`].
#[derive(Clone, Copy, Debug)]
pub struct SeederConfig {
    /// Connections served at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// The seeder stops by itself this long after it started.
    pub lifetime: Duration,
}

impl Default for SeederConfig {
    /// 256 connections, 10 s idle, 10 minutes of life.
    fn default() -> Self {
        Self {
            max_connections: 256,
            idle_timeout: Duration::from_secs(10),
            lifetime: Duration::from_secs(600),
        }
    }
}

/// What a [`Seeder`] has done so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeederStats {
    /// Connections accepted and served.
    pub connections: u64,
    /// Connections closed at once because `max_connections` were being served.
    pub refused: u64,
    /// Handshakes for an info-hash the seeder does not have (closed).
    pub unknown: u64,
    /// `ut_metadata` pieces sent.
    pub pieces: u64,
    /// Requests rejected (a piece past the end of the metadata).
    pub rejected: u64,
    /// Times the last piece of a torrent was sent, by info-hash (a whole fetch, usually).
    pub served: HashMap<Id, u64>,
}

#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    active: AtomicUsize,
    connections: AtomicU64,
    refused: AtomicU64,
    unknown: AtomicU64,
    pieces: AtomicU64,
    rejected: AtomicU64,
    served: Mutex<HashMap<Id, u64>>,
}

/// A running seeder. Dropping it stops the listener and every connection.
#[derive(Debug)]
pub struct Seeder {
    addr: SocketAddr,
    count: usize,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Seeder {
    /// Listens on `bind` (port 0: any free port) and serves `torrents`.
    ///
    /// # Errors
    ///
    /// When the listener cannot be bound.
    pub fn spawn(bind: SocketAddr, torrents: &[Torrent], config: SeederConfig) -> io::Result<Self> {
        Self::spawn_infos(
            bind,
            torrents.iter().map(|t| (t.info_hash, t.info.clone())),
            config,
        )
    }

    /// Like [`spawn`](Self::spawn), from info-hashes and info dictionaries (they are served as
    /// given, so a wrong pairing makes a lying seeder).
    ///
    /// # Errors
    ///
    /// When the listener cannot be bound.
    pub fn spawn_infos(
        bind: SocketAddr,
        infos: impl IntoIterator<Item = (Id, Vec<u8>)>,
        config: SeederConfig,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(bind)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let library: HashMap<Id, Arc<[u8]>> = infos
            .into_iter()
            .map(|(ih, info)| (ih, info.into()))
            .collect();
        let count = library.len();
        let shared = Arc::new(Shared::default());
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("seeder".into())
                .spawn(move || accept_loop(&listener, &Arc::new(library), &shared, config))?
        };
        Ok(Self {
            addr,
            count,
            shared,
            thread: Some(thread),
        })
    }

    /// The listening address (the peer address to announce).
    pub const fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many torrents it serves.
    pub const fn len(&self) -> usize {
        self.count
    }

    /// Whether it serves no torrent.
    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Connections being served now.
    pub fn active(&self) -> usize {
        self.shared.active.load(Ordering::Relaxed)
    }

    /// Whether it has stopped (dropped or past its lifetime).
    pub fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::Relaxed)
    }

    /// What it has done so far.
    pub fn stats(&self) -> SeederStats {
        let s = &self.shared;
        SeederStats {
            connections: s.connections.load(Ordering::Relaxed),
            refused: s.refused.load(Ordering::Relaxed),
            unknown: s.unknown.load(Ordering::Relaxed),
            pieces: s.pieces.load(Ordering::Relaxed),
            rejected: s.rejected.load(Ordering::Relaxed),
            served: s.served.lock().map(|m| m.clone()).unwrap_or_default(),
        }
    }
}

impl Drop for Seeder {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Accepts until stopped, then waits for the connections to end (each sees the flag within a
/// tick).
fn accept_loop(
    listener: &TcpListener,
    library: &Arc<HashMap<Id, Arc<[u8]>>>,
    shared: &Arc<Shared>,
    config: SeederConfig,
) {
    let deadline = Instant::now() + config.lifetime;
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stop.load(Ordering::Relaxed) {
        if Instant::now() >= deadline {
            shared.stop.store(true, Ordering::Relaxed);
            break;
        }
        match listener.accept() {
            Ok((stream, _)) => {
                workers.retain(|w| !w.is_finished());
                if shared.active.load(Ordering::Relaxed) >= config.max_connections {
                    shared.refused.fetch_add(1, Ordering::Relaxed);
                    let _ = stream.shutdown(Shutdown::Both);
                    continue;
                }
                shared.active.fetch_add(1, Ordering::Relaxed);
                shared.connections.fetch_add(1, Ordering::Relaxed);
                let (library, worker_shared) = (Arc::clone(library), Arc::clone(shared));
                let spawned = std::thread::Builder::new()
                    .name("seeder-conn".into())
                    .spawn(move || {
                        let _ = serve(stream, &library, &worker_shared, config.idle_timeout);
                        worker_shared.active.fetch_sub(1, Ordering::Relaxed);
                    });
                match spawned {
                    Ok(handle) => workers.push(handle),
                    Err(_) => {
                        shared.active.fetch_sub(1, Ordering::Relaxed);
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(TICK / 10),
            Err(_) => std::thread::sleep(TICK),
        }
    }
    for w in workers {
        let _ = w.join();
    }
}

/// Reads exactly `buf.len()` bytes, giving up when stopped or idle for `idle`.
fn read_full(s: &mut TcpStream, buf: &mut [u8], shared: &Shared, idle: Duration) -> io::Result<()> {
    let mut filled = 0;
    let mut last = Instant::now();
    while filled < buf.len() {
        if shared.stop.load(Ordering::Relaxed) {
            return Err(ErrorKind::Interrupted.into());
        }
        match s.read(&mut buf[filled..]) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                filled += n;
                last = Instant::now();
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if last.elapsed() >= idle {
                    return Err(ErrorKind::TimedOut.into());
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn serve(
    mut s: TcpStream,
    library: &HashMap<Id, Arc<[u8]>>,
    shared: &Shared,
    idle: Duration,
) -> io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(TICK))?;
    let mut hs = [0u8; 68];
    read_full(&mut s, &mut hs, shared, idle)?;
    let mut ih = [0u8; 20];
    ih.copy_from_slice(&hs[28..48]);
    let ih = Id::new(ih);
    let info = match library.get(&ih) {
        Some(info) if hs.starts_with(PROTOCOL) => Arc::clone(info),
        _ => {
            shared.unknown.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
    };
    let mut peer_id = [b'-'; 20];
    peer_id[..8].copy_from_slice(b"-SD0001-");
    let mut out = msg::handshake(&ih, &peer_id, true).to_vec();
    let size = i64::try_from(info.len()).unwrap_or(i64::MAX);
    out.extend(msg::extended_handshake(SEEDER_UT_METADATA, Some(size)));
    s.write_all(&out)?;

    let pieces = info.len().div_ceil(PIECE_LEN);
    let mut requests_left = 2 * pieces + 4;
    // Until the fetcher's extended handshake says otherwise (BEP 10 lets it pick the id).
    let mut their_ut = 0u8;
    let limits = DecodeLimits::default();
    loop {
        let mut len = [0u8; 4];
        read_full(&mut s, &mut len, shared, idle)?;
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_MESSAGE {
            return Ok(());
        }
        let mut body = vec![0u8; len];
        read_full(&mut s, &mut body, shared, idle)?;
        // Only extended messages (id 20) matter; keep-alives and the rest are skipped.
        let [20, ext_id, payload @ ..] = body.as_slice() else {
            continue;
        };
        let Some(dict) = bencode::decode_prefix(payload, &limits)
            .ok()
            .and_then(|(v, _)| v.as_dict())
        else {
            continue;
        };
        if *ext_id == 0 {
            if let Some(id) = dict
                .get(b"m")
                .and_then(|m| m.as_dict())
                .and_then(|m| m.get(b"ut_metadata"))
                .and_then(|v| v.as_int())
            {
                their_ut = u8::try_from(id).unwrap_or(0);
            }
            continue;
        }
        if *ext_id != SEEDER_UT_METADATA || their_ut == 0 {
            continue;
        }
        // msg_type 0 is a request; the seeder ignores anything else.
        if dict.get(b"msg_type").and_then(|v| v.as_int()) != Some(0) {
            continue;
        }
        if requests_left == 0 {
            return Ok(());
        }
        requests_left -= 1;
        let piece = dict.get(b"piece").and_then(|v| v.as_int()).unwrap_or(-1);
        let reply = match usize::try_from(piece).ok().filter(|p| *p < pieces) {
            Some(p) => {
                let start = p * PIECE_LEN;
                let end = (start + PIECE_LEN).min(info.len());
                shared.pieces.fetch_add(1, Ordering::Relaxed);
                if p + 1 == pieces
                    && let Ok(mut served) = shared.served.lock()
                {
                    *served.entry(ih).or_default() += 1;
                }
                msg::data(their_ut, p as u32, info.len(), &info[start..end])
            }
            None => {
                shared.rejected.fetch_add(1, Ordering::Relaxed);
                msg::reject(their_ut, u32::try_from(piece).unwrap_or(u32::MAX))
            }
        };
        s.write_all(&reply)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    /// Opens a connection and sends a handshake for `ih`; returns the stream.
    fn hello(addr: SocketAddr, ih: &Id) -> TcpStream {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(&msg::handshake(ih, &[b'F'; 20], true)).unwrap();
        s
    }

    fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        got
    }

    #[test]
    fn unknown_info_hashes_are_closed_and_counted() {
        let torrents = Torrent::set(1, 3);
        let seeder = Seeder::spawn(loopback(), &torrents, SeederConfig::default()).unwrap();
        assert_eq!(seeder.len(), 3);
        let mut s = hello(seeder.addr(), &Id::new([9; 20]));
        assert!(read_to_end(&mut s).is_empty());
        assert_eq!(seeder.stats().unknown, 1);
    }

    #[test]
    fn past_max_connections_new_ones_are_closed_at_once() {
        let torrents = Torrent::set(2, 1);
        let config = SeederConfig {
            max_connections: 2,
            ..SeederConfig::default()
        };
        let seeder = Seeder::spawn(loopback(), &torrents, config).unwrap();
        // Two connections that say nothing hold both slots.
        let _a = TcpStream::connect(seeder.addr()).unwrap();
        let _b = TcpStream::connect(seeder.addr()).unwrap();
        while seeder.active() < 2 {
            std::thread::sleep(TICK);
        }
        let mut c = hello(seeder.addr(), &torrents[0].info_hash);
        assert!(read_to_end(&mut c).is_empty());
        let stats = seeder.stats();
        assert_eq!((stats.connections, stats.refused), (2, 1));
    }

    #[test]
    fn idle_connections_are_closed_and_the_lifetime_ends_the_seeder() {
        let torrents = Torrent::set(3, 1);
        let config = SeederConfig {
            idle_timeout: Duration::from_millis(200),
            lifetime: Duration::from_millis(1500),
            ..SeederConfig::default()
        };
        let seeder = Seeder::spawn(loopback(), &torrents, config).unwrap();
        let mut idle = TcpStream::connect(seeder.addr()).unwrap();
        idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // Closed by the seeder (end of stream) well before the read timeout.
        assert!(read_to_end(&mut idle).is_empty());
        while !seeder.stopped() {
            std::thread::sleep(TICK);
        }
        // The listener is gone once the accept loop has returned.
        drop(seeder);
        assert!(
            TcpStream::connect_timeout(&idle.peer_addr().unwrap(), Duration::from_secs(1)).is_err()
        );
    }

    #[test]
    fn requests_past_the_end_are_rejected_and_endless_requests_cut_off() {
        let torrents = Torrent::set(4, 1);
        let t = &torrents[0];
        let seeder = Seeder::spawn(loopback(), &torrents, SeederConfig::default()).unwrap();
        let mut s = hello(seeder.addr(), &t.info_hash);
        let mut out = msg::extended_handshake(7, None);
        // One request past the end, then far more than the torrent's pieces.
        for piece in [99].into_iter().chain(core::iter::repeat_n(0, 50)) {
            out.extend(msg::request(SEEDER_UT_METADATA, piece));
        }
        s.write_all(&out).unwrap();
        let got = read_to_end(&mut s);
        assert!(!got.is_empty());
        let stats = seeder.stats();
        // Generated info dictionaries fit in one piece.
        assert_eq!(t.info.len().div_ceil(PIECE_LEN), 1);
        assert_eq!(stats.rejected, 1);
        // The request budget: twice the pieces and four more, then the connection ends.
        assert_eq!(stats.pieces, 2 + 4 - 1);
        assert_eq!(stats.served.get(&t.info_hash).copied(), Some(5));
    }
}
