//! `dht`: look up and announce peers, ping and find nodes, serve, decode datagrams, and run a
//! local swarm on the BitTorrent mainline DHT.
//!
//! Exit status: 0 on success; 1 when the operation ran but found nothing (no peer, no answer,
//! a malformed datagram to decode); 2 on bad input (arguments, addresses, files).

mod client;
mod decode;
mod items;
mod json;
mod keep;
mod logger;
mod progress;
mod sample;
mod scrape;
mod serve;
mod swarm;

use core::fmt;
use core::net::SocketAddr;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::io::{self, IsTerminal as _, Write as _};
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use dht_proto::{AddressPolicy, Config, Id};
use dht_std::{DEFAULT_BOOTSTRAP, Dht, State, parse_info_hash};

use crate::progress::Progress;

/// BitTorrent mainline DHT client and node.
#[derive(Debug, Parser)]
#[command(name = "dht", version, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options of every subcommand, accepted before or after it.
#[derive(Debug, Args)]
pub struct Global {
    /// Local UDP address [default: 0.0.0.0:0, or 0.0.0.0:6881 for `node`; an unspecified
    /// address also binds IPv6 on the same port]
    #[arg(long, global = true, value_name = "ADDR:PORT")]
    bind: Option<SocketAddr>,
    /// Contacts to join the DHT through; repeatable, comma-separated lists accepted [default:
    /// the public routers]
    #[arg(
        long,
        global = true,
        value_name = "HOST:PORT[,HOST:PORT...]",
        value_delimiter = ','
    )]
    bootstrap: Vec<String>,
    /// Join through no contact at all (the first node of a swarm, or a --state file alone)
    #[arg(long, global = true, conflicts_with = "bootstrap")]
    no_bootstrap: bool,
    /// Node id (40 hex digits) [default: the one in --state, or random]
    #[arg(long, global = true, value_name = "HEX", value_parser = parse_id)]
    id: Option<Id>,
    /// Load the routing table from FILE at start; save it at exit (and every 5 minutes for
    /// `node`)
    #[arg(long, global = true, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Print JSON (one object per line) instead of text
    #[arg(long, global = true)]
    json: bool,
    /// Give up after SECS seconds [default: 30; `node`: no limit]
    #[arg(long, global = true, value_name = "SECS", value_parser = parse_secs)]
    timeout: Option<Duration>,
    /// Accept loopback and private contacts whatever the bound address (automatic when bound
    /// to such an address)
    #[arg(long, global = true)]
    allow_local: bool,
    /// More log output on stderr (-v info, -vv debug, -vvv every datagram)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Ping a node: print its id and the round-trip time (exit 1 if it does not answer)
    Ping {
        /// The node's address
        #[arg(value_name = "HOST:PORT")]
        addr: String,
    },
    /// Find the nodes closest to an id
    FindNode {
        /// The target id (40 hex digits)
        #[arg(value_name = "TARGET", value_parser = parse_id)]
        target: Id,
    },
    /// Look up peers of a torrent, printing each as it is found (exit 1 if none is)
    GetPeers {
        /// 40 hex digits, 32 base32 characters or a magnet: URI
        #[arg(value_name = "INFOHASH", value_parser = parse_hash)]
        info_hash: Id,
    },
    /// Announce this machine as a peer of a torrent to the closest nodes
    #[command(group(clap::ArgGroup::new("port_mode").required(true).args(["port", "implied_port"])))]
    Announce {
        /// 40 hex digits, 32 base32 characters or a magnet: URI
        #[arg(value_name = "INFOHASH", value_parser = parse_hash)]
        info_hash: Id,
        /// The port peers should connect to
        #[arg(long, value_name = "P", value_parser = clap::value_parser!(u16).range(1..))]
        port: Option<u16>,
        /// Let the receiving nodes use the DHT socket's source port (for NATs)
        #[arg(long)]
        implied_port: bool,
        /// Re-announce every --interval until SIGINT/SIGTERM (or --timeout): nodes forget an
        /// announce after about 30 minutes
        #[arg(long)]
        keep: bool,
        /// Seconds between announces with --keep
        #[arg(long, value_name = "SECS", value_parser = parse_secs, default_value = "900",
              requires = "keep")]
        interval: Duration,
    },
    /// Store a BEP 44 item: immutable (its target is the SHA-1 of the value), or mutable and
    /// signed with --key (its target is the SHA-1 of the public key and salt)
    Put {
        /// The value: text, stored as a bencoded string (`hello` is stored as `5:hello`)
        #[arg(value_name = "VALUE")]
        value: String,
        /// VALUE is already bencoded (`i42e`, `d1:ai1ee`, ...)
        #[arg(long)]
        bencoded: bool,
        /// Mutable item: the key file, one line of 64 hex digits (the Ed25519 secret key;
        /// lines starting with `#` are comments). Created with a new key (mode 0600) if missing
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// Mutable item: the salt (text, at most 64 bytes)
        #[arg(long, value_name = "TEXT", requires = "key")]
        salt: Option<String>,
        /// Mutable item: the sequence number [default: one more than the newest stored, or 1]
        #[arg(long, value_name = "N", requires = "key")]
        seq: Option<i64>,
        /// Mutable item: store only where the stored sequence number is N (compare-and-swap)
        #[arg(long, value_name = "N", requires = "key")]
        cas: Option<i64>,
    },
    /// Look up a BEP 44 item by its target, or a mutable item by its public key or key file,
    /// and print its value (exit 1 if none is found)
    Get {
        /// The target (40 hex digits)
        #[arg(value_name = "TARGET", value_parser = parse_id,
              required_unless_present_any = ["public_key", "key"])]
        target: Option<Id>,
        /// Mutable item: the public key (64 hex digits)
        #[arg(long, value_name = "HEX", conflicts_with_all = ["target", "key"])]
        public_key: Option<String>,
        /// Mutable item: the key file (its public key is used)
        #[arg(long, value_name = "FILE", conflicts_with = "target")]
        key: Option<PathBuf>,
        /// Mutable item: the salt (text)
        #[arg(long, value_name = "TEXT")]
        salt: Option<String>,
    },
    /// Sample info-hashes (BEP 51) from the nodes around TARGET (default: a random id)
    Sample {
        /// Where to sample (40 hex digits)
        #[arg(value_name = "TARGET", value_parser = parse_id)]
        target: Option<Id>,
    },
    /// Estimate a torrent's seeds and downloaders from the closest nodes' BEP 33 bloom filters
    Scrape {
        /// 40 hex digits, 32 base32 characters or a magnet: URI
        #[arg(value_name = "INFOHASH", value_parser = parse_hash)]
        info_hash: Id,
    },
    /// Serve as a DHT node until SIGINT/SIGTERM or --duration
    Node {
        /// Stop after SECS seconds
        #[arg(long, value_name = "SECS", value_parser = parse_secs)]
        duration: Option<Duration>,
        /// Seconds between status lines on stderr
        #[arg(long, value_name = "SECS", value_parser = parse_secs, default_value = "30")]
        status_interval: Duration,
        /// Print every incoming query on stdout (method, sender, id, target, announced port)
        #[arg(long)]
        queries: bool,
    },
    /// Decode one raw KRPC datagram (a file, or stdin for `-` or nothing) and print it
    Decode {
        /// The file holding the datagram
        #[arg(value_name = "FILE|-")]
        file: Option<PathBuf>,
    },
    /// Run N nodes on 127.0.0.1 in this process: one announces, another looks it up
    Swarm {
        /// How many nodes (2 to 500)
        #[arg(long, value_name = "N", default_value_t = 16,
              value_parser = clap::value_parser!(u16).range(2..=500))]
        nodes: u16,
    },
}

fn parse_id(s: &str) -> Result<Id, String> {
    s.trim()
        .parse()
        .map_err(|_| "expected 40 hex digits".to_owned())
}

fn parse_hash(s: &str) -> Result<Id, String> {
    parse_info_hash(s).map_err(|e| e.to_string())
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| "expected a number of seconds".to_owned())?;
    Duration::try_from_secs_f64(secs)
        .map_err(|_| "expected a non-negative number of seconds".into())
}

/// How a run ends badly: the message (one sentence) and the exit status.
#[derive(Debug)]
pub struct Fail {
    message: String,
    code: u8,
}

impl Fail {
    /// Bad input: exit status 2.
    pub fn input(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            code: 2,
        }
    }

    /// The operation failed or found nothing: exit status 1.
    pub fn failed(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            code: 1,
        }
    }
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            // `dht get-peers ... | head -1`: the reader left; that is not an error.
            return Self {
                message: String::new(),
                code: 0,
            };
        }
        Self::failed(format_args!("output error: {e}"))
    }
}

impl Cli {
    /// Parses the arguments. Repeated `--bootstrap` options are all kept, on either side of
    /// the subcommand (clap keeps only the subcommand's side of a global option).
    fn parse_args(args: Vec<std::ffi::OsString>) -> Result<Self, clap::Error> {
        let mut cli = Self::try_parse_from(&args)?;
        let all = option_values(&args, "--bootstrap");
        if !all.is_empty() {
            cli.global.bootstrap = all;
        }
        Ok(cli)
    }
}

/// Every value of a long option (`--name V` or `--name=V`, comma-separated lists split), up to
/// a `--` terminator.
fn option_values(args: &[std::ffi::OsString], name: &str) -> Vec<String> {
    let mut values = Vec::new();
    let mut iter = args.iter().skip(1).map(|a| a.to_string_lossy());
    while let Some(arg) = iter.next() {
        if arg == "--" {
            break;
        }
        let value = if arg == name {
            iter.next().map(|v| v.into_owned())
        } else {
            arg.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='))
                .map(str::to_owned)
        };
        if let Some(v) = value {
            values.extend(v.split(',').map(str::to_owned));
        }
    }
    values
}

fn main() -> ExitCode {
    let cli = match Cli::parse_args(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    logger::init(cli.global.verbose);
    match run(cli) {
        Ok(code) => code,
        Err(Fail { code: 0, .. }) => ExitCode::SUCCESS,
        Err(Fail { message, code }) => {
            let _ = writeln!(io::stderr(), "dht: {message}");
            ExitCode::from(code)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, Fail> {
    let g = &cli.global;
    match cli.command {
        Command::Ping { addr } => client::ping(g, &addr),
        Command::FindNode { target } => client::find_node(g, target),
        Command::GetPeers { info_hash } => client::get_peers(g, info_hash),
        Command::Announce {
            info_hash,
            port,
            keep: true,
            interval,
            ..
        } => keep::run(g, info_hash, port, interval),
        Command::Announce {
            info_hash, port, ..
        } => client::announce(g, info_hash, port),
        Command::Put {
            value,
            bencoded,
            key,
            salt,
            seq,
            cas,
        } => items::put(
            g,
            items::PutArgs {
                value,
                bencoded,
                key,
                salt,
                seq,
                cas,
            },
        ),
        Command::Get {
            target,
            public_key,
            key,
            salt,
        } => items::get(
            g,
            target,
            public_key.as_deref(),
            key.as_deref(),
            salt.as_deref(),
        ),
        Command::Sample { target } => sample::run(g, target),
        Command::Scrape { info_hash } => scrape::run(g, info_hash),
        Command::Node {
            duration,
            status_interval,
            queries,
        } => serve::node(g, duration, status_interval, queries),
        Command::Decode { file } => decode::run(g, file.as_deref()),
        Command::Swarm { nodes } => swarm::run(g, usize::from(nodes)),
    }
}

/// What every networked subcommand shares: the bound node, its state file, the output mode.
#[derive(Debug)]
pub struct Session {
    pub dht: Dht,
    pub state_path: Option<PathBuf>,
    pub json: bool,
    pub progress: Progress,
    pub stop: Arc<AtomicBool>,
    pub deadline: Option<std::time::Instant>,
}

impl Session {
    /// Binds the node (`default_bind` unless --bind), loads --state, installs the signal
    /// handler. A `read_only` node answers no queries and stays out of other nodes' tables.
    pub fn open(
        g: &Global,
        default_bind: SocketAddr,
        default_timeout: Option<Duration>,
        policy: Option<AddressPolicy>,
        read_only: bool,
    ) -> Result<Self, Fail> {
        let state = match &g.state {
            Some(path) => State::load(path).map_err(|e| {
                Fail::input(format_args!(
                    "cannot read the state file {}: {e}",
                    path.display()
                ))
            })?,
            None => None,
        };
        let mut config = Config::new(dht_std::os_seed());
        config.id = g.id.or(state.as_ref().and_then(|s| s.id));
        if g.allow_local {
            config.address_policy = AddressPolicy::ALLOW_ALL;
            config.one_node_per_ip = false;
        }
        if let Some(policy) = policy {
            config.address_policy = policy;
        }
        // One-shot commands are read-only (BEP 43): they will be gone in a moment, so other
        // nodes must not keep them as contacts. Only `node` and `swarm` serve.
        config.read_only = read_only;
        let mut dht = Dht::bind(g.bind.unwrap_or(default_bind), config).map_err(Fail::input)?;
        if let Some(state) = &state {
            let taken = dht.import_nodes(&state.nodes);
            log::info!("loaded {taken} contacts from the state file");
        }
        let stop = Arc::new(AtomicBool::new(false));
        install_signals(&stop, &dht)?;
        let timeout = g.timeout.or(default_timeout);
        Ok(Self {
            dht,
            state_path: g.state.clone(),
            json: g.json,
            progress: Progress::new(!g.json && io::stderr().is_terminal()),
            stop,
            deadline: timeout.map(|t| std::time::Instant::now() + t),
        })
    }

    /// Whether to stop: a signal arrived or the deadline passed.
    pub fn should_stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
            || self
                .deadline
                .is_some_and(|d| std::time::Instant::now() >= d)
    }

    /// One step of the node, waking at least every 100 ms when progress is shown.
    pub fn step(&mut self) -> Result<(), Fail> {
        let mut wait = self
            .deadline
            .map(|d| d.saturating_duration_since(std::time::Instant::now()));
        if self.progress.enabled() {
            wait = Some(wait.map_or(Duration::from_millis(100), |w| {
                w.min(Duration::from_millis(100))
            }));
        }
        self.dht.step(wait).map_err(Fail::failed)
    }

    /// Saves the routing table to --state, if given.
    pub fn save_state(&self) -> Result<(), Fail> {
        if let Some(path) = &self.state_path {
            let state = self.dht.state();
            state.save(path).map_err(|e| {
                Fail::failed(format_args!(
                    "cannot write the state file {}: {e}",
                    path.display()
                ))
            })?;
            log::info!("saved {} contacts to {}", state.nodes.len(), path.display());
        }
        Ok(())
    }

    /// Prints one line on stdout (erasing the progress line first).
    pub fn println(&mut self, line: impl fmt::Display) -> Result<(), Fail> {
        self.progress.clear();
        let mut out = io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
        Ok(())
    }
}

/// SIGINT and SIGTERM set `stop` and wake the node.
fn install_signals(stop: &Arc<AtomicBool>, dht: &Dht) -> Result<(), Fail> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| Fail::failed(format_args!("cannot install signal handlers: {e}")))?;
    let stop = Arc::clone(stop);
    let waker = dht.waker();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for _ in signals.forever() {
                stop.store(true, Ordering::Relaxed);
                let _ = waker.wake();
            }
        })?;
    Ok(())
}

/// The bootstrap contacts: --bootstrap resolved, or the public routers.
pub fn seeds(g: &Global, dht: &Dht) -> Result<Vec<SocketAddr>, Fail> {
    if g.no_bootstrap {
        return Ok(Vec::new());
    }
    if g.bootstrap.is_empty() {
        let seeds = dht_std::resolve_all(DEFAULT_BOOTSTRAP);
        if seeds.is_empty() && dht.node().table_len() == 0 {
            return Err(Fail::failed(
                "cannot resolve any of the public bootstrap routers (is the network up?); \
                 pass --bootstrap HOST:PORT",
            ));
        }
        return Ok(usable(dht, seeds));
    }
    let mut seeds = Vec::new();
    for host in &g.bootstrap {
        let resolved = resolve(host, "bootstrap address")?;
        let policy = dht.node().config().address_policy;
        if let Some(refused) = resolved.iter().find(|a| !policy.allows(a)) {
            return Err(Fail::input(format_args!(
                "the bootstrap address {refused} is loopback or private, which this node \
                 refuses: bind to such an address (--bind) or pass --allow-local"
            )));
        }
        seeds.extend(resolved);
    }
    let usable = usable(dht, seeds);
    if usable.is_empty() {
        return Err(Fail::input(
            "no bootstrap address is of an address family this node has a socket for",
        ));
    }
    Ok(usable)
}

/// Keeps the addresses of the families the node has sockets for.
fn usable(dht: &Dht, mut addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let families: Vec<bool> = dht.local_addrs().iter().map(SocketAddr::is_ipv6).collect();
    addrs.retain(|a| families.contains(&a.is_ipv6()));
    addrs.dedup();
    addrs
}

/// Resolves `HOST:PORT` (a name or a literal address) to its addresses.
pub fn resolve(host: &str, what: &str) -> Result<Vec<SocketAddr>, Fail> {
    let host = host.trim();
    if host.is_empty() {
        return Err(Fail::input(format_args!("an empty {what}")));
    }
    if let Ok(addr) = host.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    if host
        .rsplit_once(':')
        .is_none_or(|(_, port)| port.parse::<u16>().is_err())
    {
        return Err(Fail::input(format_args!(
            "the {what} `{host}` is not HOST:PORT"
        )));
    }
    match host.to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                Err(Fail::input(format_args!(
                    "cannot resolve the {what} `{host}`"
                )))
            } else {
                Ok(addrs)
            }
        }
        Err(e) => Err(Fail::input(format_args!(
            "cannot resolve the {what} `{host}`: {}",
            resolver_reason(&e)
        ))),
    }
}

/// The resolver's reason without std's "failed to lookup address information:" prefix.
fn resolver_reason(e: &io::Error) -> String {
    let text = e.to_string();
    let reason = text
        .rsplit_once(": ")
        .map_or(text.as_str(), |(_, reason)| reason);
    reason.trim_end_matches('.').to_lowercase()
}

/// Milliseconds of a duration, for output.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::parse_args(
            core::iter::once("dht")
                .chain(args.iter().copied())
                .map(Into::into)
                .collect(),
        )
    }

    #[test]
    fn global_options_before_or_after_the_subcommand() {
        let hex = "00".repeat(20);
        let before = parse(&["--json", "--bind", "127.0.0.1:0", "get-peers", &hex]).unwrap();
        let after = parse(&["get-peers", &hex, "--json", "--bind", "127.0.0.1:0"]).unwrap();
        for cli in [before, after] {
            assert!(cli.global.json);
            assert_eq!(cli.global.bind, Some("127.0.0.1:0".parse().unwrap()));
        }
    }

    #[test]
    fn bootstrap_lists_repeat_and_split() {
        let cli = parse(&[
            "--bootstrap",
            "a:1,b:2",
            "ping",
            "c:3",
            "--bootstrap=d:4",
            "--",
        ])
        .unwrap();
        assert_eq!(cli.global.bootstrap, ["a:1", "b:2", "d:4"]);
        let cli = parse(&["ping", "c:3", "--bootstrap", "a:1", "--bootstrap", "b:2"]).unwrap();
        assert_eq!(cli.global.bootstrap, ["a:1", "b:2"]);
    }

    #[test]
    fn announce_needs_exactly_one_port_mode() {
        let hex = "ab".repeat(20);
        assert!(parse(&["announce", &hex]).is_err());
        assert!(parse(&["announce", &hex, "--port", "1", "--implied-port"]).is_err());
        assert!(parse(&["announce", &hex, "--port", "0"]).is_err());
        let cli = parse(&["announce", &hex, "--port", "6881"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Announce {
                port: Some(6881),
                ..
            }
        ));
        assert!(parse(&["announce", &hex, "--implied-port"]).is_ok());
    }

    #[test]
    fn bad_values_are_clap_errors() {
        assert!(parse(&["get-peers", "xyz"]).is_err());
        assert!(parse(&["find-node", "12"]).is_err());
        assert!(parse(&["--timeout", "-1", "ping", "a:1"]).is_err());
        assert!(parse(&["--bind", "nowhere", "ping", "a:1"]).is_err());
        assert!(parse(&["swarm", "--nodes", "1"]).is_err());
        let e = parse(&["get-peers", "xyz"]).unwrap_err().to_string();
        assert!(e.contains("expected 40 hex digits"), "{e}");
    }

    #[test]
    fn resolve_checks_the_form_first() {
        assert_eq!(
            resolve("127.0.0.1:7", "x").unwrap(),
            vec!["127.0.0.1:7".parse().unwrap()]
        );
        assert_eq!(
            resolve("[::1]:7", "x").unwrap(),
            vec!["[::1]:7".parse().unwrap()]
        );
        let e = resolve("localhost", "bootstrap address").unwrap_err();
        assert_eq!(e.code, 2);
        assert_eq!(
            e.message,
            "the bootstrap address `localhost` is not HOST:PORT"
        );
        assert!(resolve(" ", "x").is_err());
    }

    #[test]
    fn secs() {
        assert_eq!(parse_secs("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("inf").is_err());
        assert!(parse_secs("x").is_err());
    }
}
