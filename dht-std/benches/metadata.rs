//! Metadata fetches per second on loopback, and CPU time per fetch, against a baseline measured
//! in the same run: a plain TCP connect + 1 KiB echo round trip + close, driven the same way
//! (one mio thread, N at once) against echo servers built like the seeders (a thread per
//! connection).
//!
//! Run with `cargo bench -p dht-std --bench metadata`. Prints one table. `process CPU` counts
//! every thread (the seeders' too); `client CPU` only the thread running the fetches.

#[path = "../tests/support/seeder.rs"]
#[allow(dead_code)]
mod seeder;

use core::net::SocketAddr;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use dht_std::metadata::{FetchOptions, Fetcher, FetcherEvent};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use seeder::{Behaviour, Seeder, info_hash, sample_info};

const SEEDERS: usize = 4;

/// CPU seconds of this process and of the calling thread (Linux `/proc`; zero elsewhere).
fn cpu() -> (f64, f64) {
    fn ticks(path: &str) -> f64 {
        let Ok(stat) = std::fs::read_to_string(path) else {
            return 0.0;
        };
        // Fields after the command name (which may hold spaces): utime is the 14th field
        // overall, stime the 15th.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let n = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (n(11) + n(12)) / 100.0
    }
    (ticks("/proc/self/stat"), ticks("/proc/thread-self/stat"))
}

struct Row {
    what: String,
    concurrency: usize,
    done: usize,
    secs: f64,
    process_cpu: f64,
    client_cpu: f64,
}

impl Row {
    fn print(&self, baseline: Option<&Row>) {
        let rate = self.done as f64 / self.secs;
        let per = |cpu: f64| cpu / self.done as f64 * 1e6;
        let ratio = baseline
            .map(|b| format!("{:.2}x", b.done as f64 / b.secs / rate))
            .unwrap_or_else(|| "-".into());
        println!(
            "| {:<34} | {:>3} | {:>9.0} | {:>13.0} | {:>13.0} | {:>10} |",
            self.what,
            self.concurrency,
            rate,
            per(self.process_cpu),
            per(self.client_cpu),
            ratio
        );
    }
}

fn measure(what: String, concurrency: usize, f: impl FnOnce() -> usize) -> Row {
    let (p0, t0) = cpu();
    let start = Instant::now();
    let done = f();
    let secs = start.elapsed().as_secs_f64();
    let (p1, t1) = cpu();
    Row {
        what,
        concurrency,
        done,
        secs,
        process_cpu: p1 - p0,
        client_cpu: t1 - t0,
    }
}

/// `total` fetches, `concurrency` at once, round-robin over the seeders.
fn fetches(seeders: &[Seeder], info: &[u8], concurrency: usize, total: usize) -> usize {
    let ih = info_hash(info);
    let mut options = FetchOptions::default();
    options.max_connections = concurrency;
    let mut fetcher = Fetcher::new(options).unwrap();
    let (mut started, mut ok, mut failed) = (0, 0, 0);
    while ok + failed < total {
        while started < total && fetcher.fetches() < concurrency {
            fetcher.start(ih, [seeders[started % seeders.len()].addr]);
            started += 1;
        }
        fetcher.step(None).unwrap();
        while let Some(e) = fetcher.poll_event() {
            if let FetcherEvent::Finished { result, .. } = e {
                match result {
                    Ok(m) => {
                        assert_eq!(m.info.len(), info.len());
                        ok += 1;
                    }
                    Err(e) => {
                        eprintln!("fetch failed: {e} {:?}", e.failures);
                        failed += 1;
                    }
                }
            }
        }
    }
    assert_eq!(failed, 0, "fetches failed");
    ok
}

struct EchoServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl EchoServer {
    fn spawn() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        std::thread::spawn(move || {
                            let _ = s.set_nonblocking(false);
                            let _ = s.set_nodelay(true);
                            let mut buf = [0u8; 1024];
                            if s.read_exact(&mut buf).is_ok() {
                                let _ = s.write_all(&buf);
                            }
                            let _ = s.read(&mut buf);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        Self { addr, stop }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// `total` connect + 1 KiB echo + close, `concurrency` at once, on one mio thread.
fn echoes(servers: &[EchoServer], concurrency: usize, total: usize) -> usize {
    struct Conn {
        stream: TcpStream,
        written: usize,
        read: usize,
    }
    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(256);
    let mut conns: HashMap<Token, Conn> = HashMap::new();
    let payload = [0x5au8; 1024];
    let mut buf = [0u8; 2048];
    let (mut started, mut done, mut next) = (0, 0, 0usize);
    while done < total {
        while started < total && conns.len() < concurrency {
            let mut stream = TcpStream::connect(servers[started % servers.len()].addr).unwrap();
            let token = Token(next);
            next += 1;
            poll.registry()
                .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                .unwrap();
            conns.insert(
                token,
                Conn {
                    stream,
                    written: 0,
                    read: 0,
                },
            );
            started += 1;
        }
        poll.poll(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        for e in &events {
            let token = e.token();
            let Some(c) = conns.get_mut(&token) else {
                continue;
            };
            let mut finished = false;
            while c.written < payload.len() {
                match c.stream.write(&payload[c.written..]) {
                    Ok(n) => c.written += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::NotConnected => break,
                    Err(e) => panic!("echo write: {e}"),
                }
            }
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        c.read += n;
                        if c.read >= payload.len() {
                            finished = true;
                            break;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::NotConnected => break,
                    Err(e) => panic!("echo read: {e}"),
                }
            }
            if finished {
                let mut c = conns.remove(&token).unwrap();
                poll.registry().deregister(&mut c.stream).unwrap();
                done += 1;
            }
        }
    }
    done
}

fn main() {
    let total: usize = std::env::var("METADATA_BENCH_FETCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let sizes = [("1 piece (5 KiB)", 5_000), ("4 pieces (60 KiB)", 60_000)];
    let echo: Vec<EchoServer> = (0..SEEDERS).map(|_| EchoServer::spawn()).collect();
    println!(
        "Metadata fetches on loopback: {total} per row, {SEEDERS} local seeders (a thread per \
         connection); one client thread."
    );
    println!();
    println!(
        "| {:<34} | {:>3} | {:>9} | {:>13} | {:>13} | {:>10} |",
        "what", "N", "per s", "process µs/op", "client µs/op", "echo/fetch"
    );
    println!(
        "|{:-<36}|{:-<5}|{:-<11}|{:-<15}|{:-<15}|{:-<12}|",
        "", "", "", "", "", ""
    );
    for concurrency in [1, 8, 32] {
        let base = measure("baseline: connect + 1 KiB echo".into(), concurrency, || {
            echoes(&echo, concurrency, total)
        });
        base.print(None);
        for (label, size) in sizes {
            let info = sample_info("bench.bin", size);
            let seeders: Vec<Seeder> = (0..SEEDERS)
                .map(|_| Seeder::spawn("127.0.0.1", info.clone(), Behaviour::Honest))
                .collect();
            let row = measure(format!("fetch, {label}"), concurrency, || {
                fetches(&seeders, &info, concurrency, total)
            });
            row.print(Some(&base));
        }
    }
}
