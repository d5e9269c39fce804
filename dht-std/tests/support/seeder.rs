//! A minimal seeding peer on loopback, honest or lying, for the fetcher's tests and benchmark.
//! One thread accepts; each connection gets a thread of its own.

use core::net::SocketAddr;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;

use dht_proto::Id;
use dht_proto::metadata::{PIECE_LEN, msg};
use dht_proto::wire::bencode::{self, DecodeLimits};

/// How the seeder behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code)]
pub enum Behaviour {
    /// Serves the metadata.
    Honest,
    /// Serves the metadata with one byte flipped.
    WrongData,
    /// Announces 1 GiB of metadata.
    Oversized,
    /// Sends garbage after its handshake.
    Garbage,
    /// Accepts and says nothing.
    Silent,
    /// Handshakes without the extension bit.
    NoExtensions,
    /// Offers no ut_metadata.
    NoUtMetadata,
    /// Rejects every request.
    Reject,
}

/// The seeder's id for ut_metadata (what the fetcher sends requests with).
const OUR_UT: u8 = 3;

#[derive(Debug)]
pub struct Seeder {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Seeder {
    pub fn spawn(ip: &str, info: Vec<u8>, behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let info = Arc::new(info);
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let info = Arc::clone(&info);
                        let stop = Arc::clone(&stop2);
                        std::thread::spawn(move || {
                            let _ = serve(stream, &info, behaviour, &stop);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Seeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn info_hash(info: &[u8]) -> Id {
    Id::new(sha1_smol::Sha1::from(info).digest().bytes())
}

fn serve(
    mut s: TcpStream,
    info: &[u8],
    behaviour: Behaviour,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut hs = [0u8; 68];
    s.read_exact(&mut hs)?;
    let ih = Id::new(hs[28..48].try_into().unwrap());
    if behaviour == Behaviour::Silent {
        while !stop.load(Ordering::Relaxed) && s.read(&mut hs).is_ok_and(|n| n > 0) {}
        return Ok(());
    }
    let mut out = msg::handshake(&ih, &[b'S'; 20], behaviour != Behaviour::NoExtensions).to_vec();
    let size = match behaviour {
        Behaviour::Oversized => 1 << 30,
        _ => info.len() as i64,
    };
    let ut = if behaviour == Behaviour::NoUtMetadata {
        0
    } else {
        OUR_UT
    };
    out.extend(msg::extended_handshake(ut, Some(size)));
    out.extend(msg::message(5, &[0xff; 8])); // bitfield
    out.extend(msg::message(1, &[])); // unchoke
    if behaviour == Behaviour::Garbage {
        out.extend([0xab; 64]);
    }
    s.write_all(&out)?;
    let mut their_ut = 1u8;
    loop {
        let mut len = [0u8; 4];
        s.read_exact(&mut len)?;
        let len = u32::from_be_bytes(len) as usize;
        if len > 1 << 20 {
            return Ok(());
        }
        let mut body = vec![0u8; len];
        s.read_exact(&mut body)?;
        if body.len() < 2 || body[0] != 20 {
            continue;
        }
        let payload = &body[2..];
        let Ok((value, _)) = bencode::decode_prefix(payload, &DecodeLimits::default()) else {
            continue;
        };
        let Some(dict) = value.as_dict() else {
            continue;
        };
        if body[1] == 0 {
            if let Some(id) = dict
                .get(b"m")
                .and_then(|m| m.as_dict())
                .and_then(|m| m.get(b"ut_metadata"))
                .and_then(|v| v.as_int())
            {
                their_ut = id as u8;
            }
            continue;
        }
        if body[1] != OUR_UT {
            continue;
        }
        let piece = dict.get(b"piece").and_then(|v| v.as_int()).unwrap_or(0) as usize;
        let reply = match behaviour {
            Behaviour::Reject => msg::reject(their_ut, piece as u32),
            _ => {
                let start = (piece * PIECE_LEN).min(info.len());
                let end = (start + PIECE_LEN).min(info.len());
                let mut data = info[start..end].to_vec();
                if behaviour == Behaviour::WrongData && !data.is_empty() {
                    data[0] ^= 0xff;
                }
                msg::data(their_ut, piece as u32, info.len(), &data)
            }
        };
        s.write_all(&reply)?;
        if stop.load(Ordering::Relaxed) {
            let _ = s.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

/// An info dictionary of a single-file torrent, padded with piece hashes to about `len` bytes.
pub fn sample_info(name: &str, len: usize) -> Vec<u8> {
    let pieces = (len.saturating_sub(60) / 20).max(1) * 20;
    let mut v = format!(
        "d6:lengthi{}e4:name{}:{name}12:piece lengthi16384e6:pieces{pieces}:",
        pieces / 20 * 16384,
        name.len()
    )
    .into_bytes();
    v.extend((0..pieces).map(|i| (i * 7 % 256) as u8));
    v.push(b'e');
    v
}
