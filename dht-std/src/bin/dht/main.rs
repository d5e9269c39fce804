//! `dht`: look up and announce peers, ping and find nodes, serve, decode datagrams, run a
//! local swarm on the BitTorrent mainline DHT, crawl it into a database and read that database.
//!
//! Exit status: 0 on success; 1 when the operation ran but found nothing (no peer, no answer,
//! a malformed datagram to decode); 2 on bad input (arguments, addresses, files).

mod client;
mod crawl;
mod db;
mod decode;
mod items;
mod keep;
mod metadata;
mod output;
mod sample;
mod scrape;
mod serve;
mod session;
mod swarm;

use core::fmt;
use core::net::{IpAddr, SocketAddr};
use core::time::Duration;
use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use dht_proto::Id;
use dht_std::parse_info_hash;

/// BitTorrent mainline DHT client and node.
#[derive(Debug, Parser)]
#[command(name = "dht", version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    common: Common,
}

/// Options of every subcommand, accepted before or after it.
#[derive(Debug, Args)]
pub struct Common {
    /// Print JSON: one object per line, each with a `type` field (errors too)
    #[arg(long, global = true)]
    json: bool,
    /// More log output on stderr (-v info, -vv debug, -vvv every datagram decoded)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

/// The node's own socket and identity.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Node options")]
pub struct Local {
    /// Local UDP address [default: 0.0.0.0:0, or 0.0.0.0:6881 for `node`; an unspecified
    /// address also binds IPv6 on the same port]
    #[arg(long, value_name = "ADDR:PORT")]
    bind: Option<SocketAddr>,
    /// Node id (40 hex digits) [default: the one in --state, or random]
    #[arg(long, value_name = "HEX", value_parser = parse_id)]
    id: Option<Id>,
    /// Load the routing table from FILE at start; save it at exit (and every 5 minutes for
    /// `node`). FILE.lock beside it keeps a second process from sharing it
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
}

/// How the node joins the DHT.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Joining options")]
pub struct Join {
    /// Contacts to join the DHT through; repeatable, comma-separated lists accepted; loopback
    /// and private contacts named here are accepted [default: the public routers]
    #[arg(
        long,
        value_name = "HOST:PORT[,HOST:PORT...]",
        value_delimiter = ',',
        action = clap::ArgAction::Append
    )]
    bootstrap: Vec<String>,
    /// Join through no contact at all (the first node of a swarm, or a --state file alone)
    #[arg(long, conflicts_with = "bootstrap")]
    no_bootstrap: bool,
    /// Accept loopback and private contacts learnt from other nodes too (automatic when bound
    /// to such an address)
    #[arg(long)]
    allow_local: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Ping a node: print its id and the round-trip time (exit 1 if it does not answer)
    Ping {
        /// The node's address
        #[arg(value_name = "HOST:PORT")]
        addr: String,
        /// Keep pinging (once a second) for up to SECS seconds
        #[arg(long, value_name = "SECS", value_parser = parse_secs, default_value = "30")]
        timeout: Duration,
        #[command(flatten)]
        local: Local,
    },
    /// Find the nodes closest to an id
    FindNode {
        /// The target id (40 hex digits)
        #[arg(value_name = "TARGET", value_parser = parse_id)]
        target: Id,
        /// Give up after SECS seconds
        #[arg(long, value_name = "SECS", value_parser = parse_secs, default_value = "30")]
        timeout: Duration,
        #[command(flatten)]
        local: Local,
        #[command(flatten)]
        join: Join,
    },
    /// Look up peers of a torrent, printing each as it is found (exit 1 if none is)
    GetPeers {
        /// 40 hex digits, 32 base32 characters or a magnet: URI
        #[arg(value_name = "INFOHASH", value_parser = parse_hash)]
        info_hash: Id,
        /// Give up after SECS seconds
        #[arg(long, value_name = "SECS", value_parser = parse_secs, default_value = "30")]
        timeout: Duration,
        #[command(flatten)]
        local: Local,
        #[command(flatten)]
        join: Join,
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
        /// Give up after SECS seconds [default: 30; with --keep: run until a signal]
        #[arg(long, value_name = "SECS", value_parser = parse_secs)]
        timeout: Option<Duration>,
        #[command(flatten)]
        local: Local,
        #[command(flatten)]
        join: Join,
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
        /// Give up after SECS seconds
        #[arg(long, value_name = "SECS", value_parser = parse_secs, default_value = "30")]
        timeout: Duration,
        #[command(flatten)]
        local: Local,
        #[command(flatten)]
        join: Join,
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
        /// Give up after SECS seconds
        #[arg(long, value_name = "SECS", value_parser = parse_secs, default_value = "30")]
        timeout: Duration,
        #[command(flatten)]
        local: Local,
        #[command(flatten)]
        join: Join,
    },
    /// Sample info-hashes (BEP 51) from the nodes around TARGET (default: a random id)
    Sample {
        /// Where to sample (40 hex digits)
        #[arg(value_name = "TARGET", value_parser = parse_id)]
        target: Option<Id>,
        /// Give up after SECS seconds
        #[arg(long, value_name = "SECS", value_parser = parse_secs, default_value = "30")]
        timeout: Duration,
        #[command(flatten)]
        local: Local,
        #[command(flatten)]
        join: Join,
    },
    /// Estimate a torrent's seeds and downloaders from the closest nodes' BEP 33 bloom filters
    Scrape {
        /// 40 hex digits, 32 base32 characters or a magnet: URI
        #[arg(value_name = "INFOHASH", value_parser = parse_hash)]
        info_hash: Id,
        /// Give up after SECS seconds
        #[arg(long, value_name = "SECS", value_parser = parse_secs, default_value = "30")]
        timeout: Duration,
        #[command(flatten)]
        local: Local,
        #[command(flatten)]
        join: Join,
    },
    /// Serve as a DHT node until SIGINT/SIGTERM or --duration
    Node {
        /// Stop after SECS seconds [default: run until SIGINT or SIGTERM]
        #[arg(long, value_name = "SECS", value_parser = parse_secs)]
        duration: Option<Duration>,
        /// Seconds between status lines (stderr; stdout objects with --json); 0: none
        #[arg(long, value_name = "SECS", value_parser = parse_secs, default_value = "30")]
        status_interval: Duration,
        /// Print every incoming query on stdout (method, sender, id, target or info-hash,
        /// announced port); lines a slow reader cannot take are dropped and counted
        #[arg(long)]
        queries: bool,
        #[command(flatten)]
        local: Local,
        #[command(flatten)]
        join: Join,
    },
    /// Decode one raw KRPC datagram (a file, or stdin for `-` or nothing) and print it
    Decode {
        /// The file holding the datagram
        #[arg(value_name = "FILE|-")]
        file: Option<PathBuf>,
        /// The input is hex digits (whitespace ignored), not raw bytes
        #[arg(long)]
        hex: bool,
    },
    /// Fetch a torrent's metadata from its peers (DHT or --peer) and print its files
    Metadata(Box<metadata::Args>),
    /// Run N nodes on 127.0.0.1 in this process: one announces, another looks it up
    Swarm {
        /// How many nodes (2 to 500)
        #[arg(long, value_name = "N", default_value_t = 16,
              value_parser = clap::value_parser!(u16).range(2..=500))]
        nodes: u16,
        /// The loopback address the nodes bind
        #[arg(long, value_name = "IP", default_value = "127.0.0.1", value_parser = parse_loopback)]
        bind: IpAddr,
        /// Give up after SECS seconds
        #[arg(long, value_name = "SECS", value_parser = parse_secs, default_value = "60")]
        timeout: Duration,
    },
    /// Crawl the DHT: find info-hashes (incoming queries, BEP 51 samples), fetch their
    /// metadata and store both, until SIGINT/SIGTERM or --duration (exit 1 if nothing was found)
    Crawl(Box<crawl::Args>),
    /// Read a crawler database: totals, or a search of torrent names
    Db {
        #[command(subcommand)]
        command: db::DbCommand,
    },
}

fn parse_loopback(s: &str) -> Result<IpAddr, String> {
    match s.trim().parse::<IpAddr>() {
        Ok(ip) if ip.is_loopback() => Ok(ip),
        _ => Err("expected a loopback address (127.x.y.z or ::1)".to_owned()),
    }
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

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            let usage_error =
                !matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
            if usage_error && wants_json() {
                // clap's message up to its usage hint, on one line.
                let detail = e.to_string();
                let message = detail
                    .lines()
                    .take_while(|l| !l.is_empty())
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join(" ");
                let message = message.strip_prefix("error: ").unwrap_or(&message);
                output::report_error(true, message, 2);
                return ExitCode::from(2);
            }
            e.exit()
        }
    };
    output::init_logger(cli.common.verbose);
    let json = cli.common.json;
    match run(cli) {
        Ok(code) => code,
        Err(Fail { code: 0, .. }) => ExitCode::SUCCESS,
        Err(Fail { message, code }) => {
            output::report_error(json, &message, code);
            ExitCode::from(code)
        }
    }
}

/// Whether `--json` was given, from arguments clap could not parse (and so cannot say): the
/// flag takes no value, so it is the word itself, before any `--`.
fn wants_json() -> bool {
    std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

fn run(cli: Cli) -> Result<ExitCode, Fail> {
    let json = cli.common.json;
    match cli.command {
        Command::Ping {
            addr,
            timeout,
            local,
        } => client::ping(&local, json, timeout, &addr),
        Command::FindNode {
            target,
            timeout,
            local,
            join,
        } => client::find_node(&local, &join, json, timeout, target),
        Command::GetPeers {
            info_hash,
            timeout,
            local,
            join,
        } => client::get_peers(&local, &join, json, timeout, info_hash),
        Command::Announce {
            info_hash,
            port,
            keep: true,
            interval,
            timeout,
            local,
            join,
            ..
        } => keep::run(&local, &join, json, timeout, info_hash, port, interval),
        Command::Announce {
            info_hash,
            port,
            timeout,
            local,
            join,
            ..
        } => client::announce(
            &local,
            &join,
            json,
            timeout.unwrap_or(Duration::from_secs(30)),
            info_hash,
            port,
        ),
        Command::Put {
            value,
            bencoded,
            key,
            salt,
            seq,
            cas,
            timeout,
            local,
            join,
        } => items::put(
            &local,
            &join,
            json,
            timeout,
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
            timeout,
            local,
            join,
        } => items::get(
            &local,
            &join,
            json,
            timeout,
            items::GetArgs {
                target,
                public_key,
                key,
                salt,
            },
        ),
        Command::Sample {
            target,
            timeout,
            local,
            join,
        } => sample::run(&local, &join, json, timeout, target),
        Command::Scrape {
            info_hash,
            timeout,
            local,
            join,
        } => scrape::run(&local, &join, json, timeout, info_hash),
        Command::Node {
            duration,
            status_interval,
            queries,
            local,
            join,
        } => serve::node(
            &local,
            &join,
            json,
            serve::Options {
                duration,
                status_interval,
                queries,
            },
        ),
        Command::Decode { file, hex } => decode::run(json, hex, file.as_deref()),
        Command::Metadata(args) => metadata::run(json, *args),
        Command::Swarm {
            nodes,
            bind,
            timeout,
        } => swarm::run(json, usize::from(nodes), bind, timeout),
        Command::Crawl(args) => crawl::run(json, *args),
        Command::Db { command } => db::run(json, command),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(core::iter::once("dht").chain(args.iter().copied()))
    }

    #[test]
    fn common_options_before_or_after_the_subcommand() {
        let hex = "00".repeat(20);
        let before = parse(&["--json", "-v", "get-peers", &hex, "--bind", "127.0.0.1:0"]).unwrap();
        let after = parse(&["get-peers", &hex, "--json", "--bind", "127.0.0.1:0", "-v"]).unwrap();
        for cli in [before, after] {
            assert!(cli.common.json);
            assert_eq!(cli.common.verbose, 1);
            let Command::GetPeers { local, .. } = cli.command else {
                panic!("not get-peers");
            };
            assert_eq!(local.bind, Some("127.0.0.1:0".parse().unwrap()));
        }
    }

    #[test]
    fn bootstrap_lists_repeat_and_split() {
        let cli = parse(&[
            "find-node",
            &"ab".repeat(20),
            "--bootstrap",
            "a:1,b:2",
            "--bootstrap=d:4",
        ])
        .unwrap();
        let Command::FindNode { join, .. } = cli.command else {
            panic!("not find-node");
        };
        assert_eq!(join.bootstrap, ["a:1", "b:2", "d:4"]);
    }

    #[test]
    fn options_apply_only_where_they_mean_something() {
        let hex = "ab".repeat(20);
        assert!(parse(&["decode", "--bootstrap", "a:1"]).is_err());
        assert!(parse(&["ping", "a:1", "--bootstrap", "b:2"]).is_err());
        assert!(parse(&["swarm", "--state", "x"]).is_err());
        assert!(parse(&["node", "--timeout", "3"]).is_err());
        assert!(parse(&["decode", "--hex", "--json"]).is_ok());
        assert!(parse(&["get-peers", &hex, "--no-bootstrap", "--bootstrap", "a:1"]).is_err());
    }

    #[test]
    fn each_help_lists_its_own_options_first() {
        use clap::CommandFactory as _;
        let mut cmd = Cli::command();
        // Global options reach the subcommands when the command is built.
        cmd.build();
        let help = cmd
            .find_subcommand_mut("node")
            .unwrap()
            .render_long_help()
            .to_string();
        let own = help.find("--status-interval").unwrap();
        let bind = help.find("--bind").unwrap();
        let json = help.find("--json").unwrap();
        assert!(own < bind && own < json, "{help}");
        let help = cmd
            .find_subcommand_mut("decode")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(help.contains("--hex") && help.contains("--json"), "{help}");
        for absent in ["--bind", "--bootstrap", "--state", "--timeout"] {
            assert!(!help.contains(absent), "{absent}: {help}");
        }
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
        assert!(parse(&["ping", "a:1", "--timeout", "-1"]).is_err());
        assert!(parse(&["ping", "a:1", "--bind", "nowhere"]).is_err());
        assert!(parse(&["swarm", "--nodes", "1"]).is_err());
        assert!(parse(&["swarm", "--bind", "10.0.0.1"]).is_err());
        let e = parse(&["get-peers", "xyz"]).unwrap_err().to_string();
        assert!(e.contains("expected 40 hex digits"), "{e}");
    }

    #[test]
    fn secs() {
        assert_eq!(parse_secs("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("inf").is_err());
        assert!(parse_secs("x").is_err());
    }
}
