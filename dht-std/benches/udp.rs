//! Queries answered per second over loopback UDP: `dht node` against a trivial responder that
//! decodes nothing and sends a fixed reply with one `recv_from`/`send_to` per datagram, measured
//! back to back in the same run, with each one's CPU time per reply (read from `/proc`), whose
//! ratio moves less than the rates when other jobs share the machine.
//!
//! `cargo bench -p dht-std --bench udp [-- --rounds N --secs S --window W --sources N --dht PATH]`
//! (`--dht`: another build of the `dht` program to measure, e.g. an older one).
//!
//! Three processes: this one coordinates; the target (`dht node` or the responder, another
//! process of this program) runs pinned to one core and the load generator (another process of
//! this program) to the other, with `taskset`. The load generator keeps `--window` queries in
//! flight (a closed loop), from `--sources` loopback addresses (127.x.y.z, `--per-source`
//! queries per address in turn, 4 by default, so that the node's reflection allowance for
//! strangers answers them all; one `sendmmsg` each), and counts the replies. Its socket is bound to the unspecified
//! address so that the replies to every 127.x.y.z reach it; all traffic stays on loopback.
//! Linux only (`taskset`, `sendmmsg` with a source address per batch).

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("udp bench: Linux only");
}

#[cfg(target_os = "linux")]
fn main() {
    linux::main();
}

#[cfg(target_os = "linux")]
mod linux {
    use core::net::{Ipv4Addr, SocketAddr};
    use core::time::Duration;
    use std::io::{BufRead as _, BufReader, IoSlice, IoSliceMut};
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd as _;
    use std::process::{Child, ChildStdout, Command, Stdio};
    use std::time::Instant;

    use nix::sys::socket::{
        ControlMessage, MsgFlags, MultiHeaders, SockaddrIn, SockaddrStorage, recvmmsg, sendmmsg,
    };

    const BATCH: usize = 32;
    /// Queries sent from one source address in a row (`--per-source`). A node answers a source
    /// it has never completed a round trip with within its reflection allowance (4,096 bytes
    /// per 10 s by default, or 3× what it received): 4 replies of 817 bytes fit, 32 do not, and
    /// a source revisited after 65,536 others is a stranger again (the node tracks 4,096).
    const PER_SOURCE: usize = 4;
    const KINDS: [&str; 4] = ["ping", "find_node", "get_peers", "get_peers_64"];
    /// The info-hash the 64 peers are announced to.
    const STORED: [u8; 20] = [0x5a; 20];

    #[derive(Clone, Copy)]
    struct Opts {
        rounds: u32,
        secs: f64,
        window: usize,
        sources: u32,
        per_source: usize,
        target_core: u32,
        load_core: u32,
    }

    fn arg<T: core::str::FromStr>(args: &[String], name: &str, default: T) -> T {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    pub fn main() {
        let args: Vec<String> = std::env::args().collect();
        match args.get(1).map(String::as_str) {
            Some("responder") => responder(
                arg(&args, "--reply-bytes", 100),
                args.iter().any(|a| a == "--batched"),
            ),
            Some("load") => load(&args),
            _ => coordinate(Opts {
                rounds: arg(&args, "--rounds", 3),
                secs: arg(&args, "--secs", 2.0),
                window: arg(&args, "--window", 128),
                sources: arg(&args, "--sources", 65_536),
                per_source: arg(&args, "--per-source", PER_SOURCE),
                target_core: arg(&args, "--target-core", 1),
                load_core: arg(&args, "--load-core", 0),
            }),
        }
    }

    /// Starts `cmd args` on `core`; returns the child and the first line it prints.
    fn spawn_pinned(core: u32, cmd: &str, args: &[String]) -> (Child, String) {
        let (child, line, _) = spawn_pinned_reader(core, cmd, args);
        (child, line)
    }

    /// As [`spawn_pinned`], and the rest of the child's standard output.
    fn spawn_pinned_reader(
        core: u32,
        cmd: &str,
        args: &[String],
    ) -> (Child, String, BufReader<ChildStdout>) {
        let mut child = Command::new("taskset")
            .arg("-c")
            .arg(core.to_string())
            .arg(cmd)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("taskset (util-linux) runs");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped");
        let mut reader = BufReader::new(stdout);
        reader.read_line(&mut line).expect("first line");
        (child, line, reader)
    }

    /// Stops `dht node` with SIGTERM and reads its last status line: the datagrams per receive
    /// and per send system call over its life.
    fn stop_node(child: Child, out: BufReader<ChildStdout>) -> (f64, f64) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let mut batches = (0.0, 0.0);
        for line in out.lines().map_while(Result::ok) {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if v["type"] == "status" {
                let ratio = |a: &str, b: &str| {
                    v[a].as_f64().unwrap_or(0.0) / v[b].as_f64().unwrap_or(0.0).max(1.0)
                };
                batches = (
                    ratio("recv_datagrams", "recv_calls"),
                    ratio("send_datagrams", "send_calls"),
                );
            }
        }
        stop(child);
        batches
    }

    fn stop(mut child: Child) {
        let _ = child.kill();
        let _ = child.wait();
    }

    /// One load run: queries of `kind` to `target`; returns (answered/s, mean reply bytes,
    /// replies received over the whole run).
    fn run_load(o: Opts, target: SocketAddr, kind: &str, announce: bool) -> (f64, f64, f64) {
        let exe = std::env::current_exe().expect("own path");
        let mut args = vec![
            "load".to_string(),
            "--target".into(),
            target.to_string(),
            "--kind".into(),
            kind.into(),
            "--secs".into(),
            o.secs.to_string(),
            "--window".into(),
            o.window.to_string(),
            "--sources".into(),
            o.sources.to_string(),
            "--per-source".into(),
            o.per_source.to_string(),
        ];
        if announce {
            args.push("--announce".into());
        }
        let (child, line) = spawn_pinned(o.load_core, exe.to_str().expect("utf-8 path"), &args);
        stop(child);
        let mut it = line
            .split_whitespace()
            .map(|v| v.parse::<f64>().unwrap_or(0.0));
        let rate = it.next().unwrap_or(0.0);
        let bytes = it.next().unwrap_or(0.0);
        (rate, bytes, it.next().unwrap_or(0.0))
    }

    /// CPU time used so far by process `pid`: (user, system) in clock ticks from
    /// `/proc/PID/stat`, and the total in nanoseconds from each thread's `schedstat` (finer).
    #[derive(Clone, Copy, Default)]
    struct Cpu {
        user: f64,
        sys: f64,
        ns: f64,
    }

    fn cpu(pid: u32) -> Cpu {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The fields after the command name, which is in parentheses: state is field 3,
        // utime 14, stime 15.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let field = |n: usize| -> f64 {
            rest.split_whitespace()
                .nth(n - 3)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0)
        };
        // Every thread's run time (the node's writer thread too).
        let ns = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|tasks| {
                tasks
                    .filter_map(Result::ok)
                    .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
                    .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
                    .sum()
            })
            .unwrap_or(0.0);
        Cpu {
            user: field(14),
            sys: field(15),
            ns,
        }
    }

    /// CPU microseconds per reply between two readings: (total, user share of it). The
    /// user/system split comes from clock ticks, so it is coarse; the total is exact.
    fn per_reply(before: Cpu, after: Cpu, replies: f64) -> (f64, f64) {
        let total = (after.ns - before.ns) / 1e3 / replies.max(1.0);
        let (u, s) = (after.user - before.user, after.sys - before.sys);
        (total, u / (u + s).max(1.0))
    }

    fn coordinate(o: Opts) {
        let built = env!("CARGO_BIN_EXE_dht").to_string();
        let args: Vec<String> = std::env::args().collect();
        let dht: String = arg(&args, "--dht", built);
        let dht = dht.as_str();
        println!(
            "udp bench: {} rounds of {} s per query kind, {} queries in flight from {} source addresses ({} in a row); target on core {}, load on core {}",
            o.rounds, o.secs, o.window, o.sources, o.per_source, o.target_core, o.load_core
        );
        println!(
            "{:<6} {:<13} {:>12} {:>12} {:>8} {:>11} {:>14} {:>20} {:>10} {:>12} {:>10}",
            "round",
            "query",
            "dht node/s",
            "trivial/s",
            "ratio",
            "reply bytes",
            "batch rx / tx",
            "CPU µs/reply node",
            "trivial",
            "batched/s",
            "batched µs"
        );
        let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); KINDS.len()];
        let mut cpus: Vec<Vec<f64>> = vec![Vec::new(); KINDS.len()];
        let mut bounds: Vec<Vec<f64>> = vec![Vec::new(); KINDS.len()];
        for round in 1..=o.rounds {
            for (k, kind) in KINDS.iter().enumerate() {
                // A fresh node per query kind, so that its counters are this kind's.
                let args: Vec<String> = [
                    "node",
                    "--bind",
                    "127.0.0.1:0",
                    "--no-bootstrap",
                    "--json",
                    "--status-interval",
                    "0",
                ]
                .iter()
                .map(ToString::to_string)
                .collect();
                let (node, line, out) = spawn_pinned_reader(o.target_core, dht, &args);
                let v: serde_json::Value = serde_json::from_str(&line).expect("node JSON line");
                let node_addr: SocketAddr = v["listening"][0]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .expect("listening address");
                let before = cpu(node.id());
                let (node_qps, bytes, replies) =
                    run_load(o, node_addr, kind, *kind == "get_peers_64");
                let (node_us, node_user) = per_reply(before, cpu(node.id()), replies);
                let (rx_batch, tx_batch) = stop_node(node, out);
                let (trivial_qps, trivial_us) = run_responder(o, kind, bytes, false);
                let (batched_qps, batched_us) = run_responder(o, kind, bytes, true);
                if let Some(c) = cpus.get_mut(k) {
                    c.push(trivial_us / node_us.max(1e-9));
                }
                if let Some(c) = bounds.get_mut(k) {
                    c.push(trivial_us / batched_us.max(1e-9));
                }
                let ratio = node_qps / trivial_qps.max(1.0);
                if let Some(r) = ratios.get_mut(k) {
                    r.push(ratio);
                }
                println!(
                    "{round:<6} {kind:<13} {node_qps:>12.0} {trivial_qps:>12.0} {ratio:>7.2}× {bytes:>11.0} {rx_batch:>6.1} / {tx_batch:<5.1} {node_us:>7.2} ({:>3.0} % user) {trivial_us:>10.2} {batched_qps:>12.0} {batched_us:>10.2}",
                    node_user * 100.0
                );
            }
        }
        println!("batch rx / tx: datagrams per recvmmsg / sendmmsg call of the node (at most 32)");
        println!(
            "batched: the trivial responder with recvmmsg / sendmmsg (32 at most), the bound for \
             any responder that batches as the node does"
        );
        println!("dht node / trivial responder (target ≥ 1.2×), range over rounds:");
        print_ranges("ratio", &ratios);
        println!(
            "CPU time per reply, trivial responder / dht node (the same ratio with each process \
             given a whole core; less sensitive to other load on the machine):"
        );
        print_ranges("cpu ratio", &cpus);
        println!(
            "CPU time per reply, trivial responder / batched trivial responder (what batching \
             alone can gain, with no decoding, checks or state):"
        );
        print_ranges("bound", &bounds);
    }

    /// Prints, per query kind, the range over the rounds of `per_kind`'s ratios.
    fn print_ranges(label: &str, per_kind: &[Vec<f64>]) {
        for (kind, r) in KINDS.iter().zip(per_kind) {
            let lo = r.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = r.iter().copied().fold(0.0, f64::max);
            println!("  {label} {kind:<13} {lo:.2}–{hi:.2}×");
        }
    }

    /// One receive slice per datagram buffer, for `recvmmsg`.
    fn rx_slices(rx: &mut [[u8; 1500]]) -> [[IoSliceMut<'_>; 1]; BATCH] {
        let mut chunks = rx.iter_mut();
        core::array::from_fn(|_| {
            [IoSliceMut::new(
                chunks.next().map_or(&mut [][..], |b| &mut b[..]),
            )]
        })
    }

    /// Starts a responder (`batched` or not) with replies of `bytes`, loads it with `kind`;
    /// returns (answered/s, CPU µs per reply).
    fn run_responder(o: Opts, kind: &str, bytes: f64, batched: bool) -> (f64, f64) {
        let exe = std::env::current_exe().expect("own path");
        let mut args = vec![
            "responder".to_string(),
            "--reply-bytes".into(),
            format!("{}", bytes.round().max(40.0)),
        ];
        if batched {
            args.push("--batched".into());
        }
        let (responder, line) = spawn_pinned(o.target_core, exe.to_str().expect("utf-8"), &args);
        let addr: SocketAddr = line.trim().parse().expect("responder address");
        let before = cpu(responder.id());
        let (qps, _, replies) = run_load(o, addr, kind, false);
        let (us, _) = per_reply(before, cpu(responder.id()), replies);
        stop(responder);
        (qps, us)
    }

    /// The trivial responder: a fixed reply of `size` bytes to every datagram, one `recv_from`
    /// and one `send_to` each; or, `batched`, up to [`BATCH`] datagrams per `recvmmsg` (waiting
    /// for the first) and their replies with one `sendmmsg`. The batched one is the bound for
    /// any responder that batches its system calls as `dht node` does: what the kernel costs
    /// with no user-space work at all.
    fn responder(size: usize, batched: bool) {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let mut reply = b"d1:rd2:id20:aaaaaaaaaaaaaaaaaaaa5:nodes".to_vec();
        let tail = b"e1:t2:aa1:y1:re";
        let pad = size.saturating_sub(reply.len() + tail.len() + 6).max(1);
        reply.extend_from_slice(format!("{pad}:").as_bytes());
        reply.resize(reply.len() + pad, b'x');
        reply.extend_from_slice(tail);
        println!("{}", socket.local_addr().expect("address"));
        let mut buf = [0u8; 1500];
        if !batched {
            loop {
                if let Ok((_, from)) = socket.recv_from(&mut buf) {
                    let _ = socket.send_to(&reply, from);
                }
            }
        }
        let fd = socket.as_raw_fd();
        let mut rx_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        let mut tx_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        let mut rx = vec![[0u8; 1500]; BATCH];
        let replies: [[IoSlice<'_>; 1]; BATCH] = core::array::from_fn(|_| [IoSlice::new(&reply)]);
        loop {
            let mut to: [Option<SockaddrStorage>; BATCH] = [None; BATCH];
            let mut n = 0;
            {
                let mut slices = rx_slices(&mut rx);
                if let Ok(msgs) = recvmmsg(
                    fd,
                    &mut rx_headers,
                    slices.iter_mut(),
                    MsgFlags::MSG_WAITFORONE,
                    None,
                ) {
                    for (m, slot) in msgs.zip(to.iter_mut()) {
                        *slot = m.address;
                        n += 1;
                    }
                }
            }
            if n > 0 {
                let _ = sendmmsg(
                    fd,
                    &mut tx_headers,
                    replies.iter().take(n),
                    to,
                    [],
                    MsgFlags::empty(),
                );
            }
        }
    }

    /// A query of `kind` from source `src` with transaction id `t`.
    fn query(out: &mut Vec<u8>, kind: &str, src: u32, t: u16) {
        out.clear();
        let mut id = [0x11u8; 20];
        id[..4].copy_from_slice(&src.to_be_bytes());
        id[4..6].copy_from_slice(&t.to_be_bytes());
        out.extend_from_slice(b"d1:ad2:id20:");
        out.extend_from_slice(&id);
        let method: &[u8] = match kind {
            "ping" => b"4:ping",
            "find_node" => {
                out.extend_from_slice(b"6:target20:");
                let mut target = id;
                target[19] ^= 0x55;
                out.extend_from_slice(&target);
                b"9:find_node"
            }
            "get_peers" => {
                out.extend_from_slice(b"9:info_hash20:");
                let mut h = id;
                h[0] ^= 0xa5;
                out.extend_from_slice(&h);
                b"9:get_peers"
            }
            _ => {
                out.extend_from_slice(b"9:info_hash20:");
                out.extend_from_slice(&STORED);
                b"9:get_peers"
            }
        };
        out.extend_from_slice(b"e1:q");
        out.extend_from_slice(method);
        out.extend_from_slice(b"1:t2:");
        out.extend_from_slice(&t.to_be_bytes());
        out.extend_from_slice(b"1:y1:qe");
    }

    /// Source address number `i`: 127.a.b.c with no zero octet.
    fn source(i: u32) -> Ipv4Addr {
        let a = 10 + (i / (254 * 254)) % 240;
        let b = 1 + (i / 254) % 254;
        let c = 1 + i % 254;
        Ipv4Addr::new(127, a as u8, b as u8, c as u8)
    }

    /// Stores 64 peers for [`STORED`] on the node: from each of 64 addresses (127.250.1.1–64;
    /// a node keeps one peer per address), get_peers for a token, then announce_peer.
    fn announce(target: SocketAddr) {
        let mut buf = [0u8; 1500];
        for i in 1..=64u8 {
            let s = UdpSocket::bind((Ipv4Addr::new(127, 250, 1, i), 0)).expect("bind");
            s.set_read_timeout(Some(Duration::from_secs(2)))
                .expect("timeout");
            let mut q = Vec::new();
            let who = 0xffff_ff00 | u32::from(i);
            query(&mut q, "get_peers_64", who, 1);
            s.send_to(&q, target).expect("send");
            let n = answer(&s, &mut buf);
            let reply = &buf[..n];
            let at = reply
                .windows(7)
                .position(|w| w == b"5:token")
                .map(|p| p + 7)
                .expect("a token");
            let rest = &reply[at..];
            let colon = rest.iter().position(|&b| b == b':').expect("token length");
            let len: usize = core::str::from_utf8(&rest[..colon])
                .ok()
                .and_then(|l| l.parse().ok())
                .expect("token length");
            let token = &rest[colon + 1..colon + 1 + len];
            let mut id = [0x11u8; 20];
            id[..4].copy_from_slice(&who.to_be_bytes());
            let mut a = b"d1:ad2:id20:".to_vec();
            a.extend_from_slice(&id);
            a.extend_from_slice(b"9:info_hash20:");
            a.extend_from_slice(&STORED);
            a.extend_from_slice(
                format!("4:porti{}e5:token{}:", 1000 + u16::from(i), len).as_bytes(),
            );
            a.extend_from_slice(token);
            a.extend_from_slice(b"e1:q13:announce_peer1:t2:aa1:y1:qe");
            s.send_to(&a, target).expect("send");
            answer(&s, &mut buf);
        }
    }

    /// Waits for a response on `s` (the node may ping a new querier first); returns its length.
    fn answer(s: &UdpSocket, buf: &mut [u8]) -> usize {
        loop {
            let (n, _) = s.recv_from(buf).expect("an answer");
            if buf[..n].ends_with(b"1:y1:re") {
                return n;
            }
        }
    }

    /// The load generator: prints `answered/s mean-reply-bytes replies`, the last counting the
    /// warm-up too.
    fn load(args: &[String]) {
        let target: SocketAddr = arg(args, "--target", SocketAddr::from(([127, 0, 0, 1], 0)));
        let kind: String = arg(args, "--kind", "ping".to_string());
        let secs: f64 = arg(args, "--secs", 2.0);
        let window: usize = arg(args, "--window", 128);
        let sources: u32 = arg(args, "--sources", 65_536).max(1);
        let per_source: usize = arg(args, "--per-source", PER_SOURCE).clamp(1, BATCH);
        if args.iter().any(|a| a == "--announce") {
            announce(target);
        }
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )
        .expect("socket");
        let _ = socket.set_recv_buffer_size(4 << 20);
        socket
            .bind(&SocketAddr::from(([0, 0, 0, 0], 0)).into())
            .expect("bind");
        let socket: UdpSocket = socket.into();
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let fd = socket.as_raw_fd();
        let dests = [Some(SockaddrStorage::from(target)); BATCH];
        let mut tx_headers = MultiHeaders::<SockaddrStorage>::preallocate(
            BATCH,
            Some(nix::cmsg_space!(libc::in_pktinfo)),
        );
        let mut rx_headers = MultiHeaders::<SockaddrIn>::preallocate(BATCH, None);
        let mut queries: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(128)).collect();
        let mut rx = vec![[0u8; 1500]; BATCH];
        let mut lens = [0usize; BATCH];
        let (mut in_flight, mut src, mut t) = (0usize, 0u32, 0u16);
        let start = Instant::now();
        let warm = Duration::from_secs_f64(0.5);
        let end = warm + Duration::from_secs_f64(secs);
        let (mut answered, mut bytes, mut all) = (0u64, 0u64, 0u64);
        while start.elapsed() < end {
            let measuring = start.elapsed() >= warm;
            while in_flight < window {
                let n = (window - in_flight).min(per_source);
                for q in queries.iter_mut().take(n) {
                    t = t.wrapping_add(1);
                    query(q, &kind, src % sources, t);
                }
                let info = libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from(source(src % sources)).to_be(),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                src = src.wrapping_add(1);
                let cmsg = [ControlMessage::Ipv4PacketInfo(&info)];
                let slices: [[IoSlice<'_>; 1]; BATCH] =
                    core::array::from_fn(|i| [IoSlice::new(&queries[i])]);
                let sent = sendmmsg(
                    fd,
                    &mut tx_headers,
                    slices.iter().take(n),
                    dests,
                    cmsg,
                    MsgFlags::empty(),
                );
                match sent {
                    Ok(r) => in_flight += r.count(),
                    Err(e) => panic!("sendmmsg: {e}"),
                }
            }
            let mut got = 0;
            {
                let mut slices = rx_slices(&mut rx);
                let r = recvmmsg(
                    fd,
                    &mut rx_headers,
                    slices.iter_mut(),
                    MsgFlags::MSG_WAITFORONE,
                    None,
                );
                match r {
                    Ok(msgs) => {
                        for (m, l) in msgs.zip(lens.iter_mut()) {
                            *l = m.bytes;
                            got += 1;
                        }
                    }
                    // 20 ms without a reply: the window's queries are lost; send a new window.
                    Err(_) => in_flight = 0,
                }
            }
            for (buf, &len) in rx.iter().zip(&lens).take(got) {
                // The node's own queries (table pings of the sources) are not answers.
                if !buf[..len].ends_with(b"1:y1:re") {
                    continue;
                }
                in_flight = in_flight.saturating_sub(1);
                all += 1;
                if measuring {
                    answered += 1;
                    bytes += len as u64;
                }
            }
        }
        let rate = answered as f64 / secs;
        let mean = bytes as f64 / (answered.max(1) as f64);
        println!("{rate:.0} {mean:.1} {all}");
    }
}
