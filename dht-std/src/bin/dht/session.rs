//! What every networked subcommand shares: the bound node, its state file, the contacts to
//! join through, the output, and when to stop.

use core::net::SocketAddr;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::fs::File;
use std::io;
use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use dht_proto::{AddressPolicy, Config};
use dht_std::{DEFAULT_BOOTSTRAP, Dht, State};

use crate::output::{Out, count};
use crate::{Fail, Join, Local};

/// The bound node and everything around it.
#[derive(Debug)]
pub struct Session {
    pub dht: Dht,
    pub out: Out,
    pub stop: Arc<AtomicBool>,
    pub deadline: Option<Instant>,
    state_path: Option<PathBuf>,
    /// Held while the session runs: no second process uses the same state file.
    _state_lock: Option<File>,
}

/// What opening a session needs beyond the options.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// The address bound without `--bind`.
    pub default_bind: SocketAddr,
    /// When to give up (`None`: never).
    pub timeout: Option<Duration>,
    /// Answer no queries and stay out of other nodes' tables (BEP 43).
    pub read_only: bool,
    /// Accept any contact (a ping goes to the one address named).
    pub allow_all: bool,
    /// Show the progress line (on a terminal, without `--json`).
    pub progress: bool,
    /// Bootstrap hosts that do not resolve are retried later rather than fatal (`node`).
    pub lenient_join: bool,
}

/// Contacts to join through, as far as they resolved.
#[derive(Debug, Default)]
pub struct Contacts {
    /// Resolved addresses (of families the node has a socket for, once filtered).
    pub addrs: Vec<SocketAddr>,
    /// Hosts that did not resolve (yet).
    pub unresolved: Vec<String>,
    /// Whether these are the public routers (no `--bootstrap`).
    pub default_routers: bool,
}

impl Session {
    /// Reads and locks --state, resolves the contacts, binds the node. Contacts the user names
    /// (`--bootstrap`, the saved table) that are loopback or private widen the address policy:
    /// whoever names them wants a local swarm.
    pub fn open(
        local: &Local,
        join: Option<&Join>,
        json: bool,
        setup: Setup,
    ) -> Result<(Self, Contacts), Fail> {
        let lock = local.state.as_deref().map(lock_state).transpose()?;
        let state = match &local.state {
            Some(path) => load_state(path)?,
            None => None,
        };
        let mut contacts = match join {
            Some(join) => contacts(join, setup.lenient_join)?,
            None => Contacts::default(),
        };
        let mut config = Config::new(dht_std::os_seed());
        config.id = local.id.or(state.as_ref().and_then(|s| s.id));
        if setup.allow_all || join.is_some_and(|j| j.allow_local) {
            config.address_policy = AddressPolicy::ALLOW_ALL;
            config.one_node_per_ip = false;
        }
        if !contacts.default_routers {
            for addr in &contacts.addrs {
                widen(&mut config, addr);
            }
        }
        if let Some(state) = &state {
            for node in &state.nodes {
                widen(&mut config, &node.addr);
            }
        }
        // One-shot commands are read-only (BEP 43): they will be gone in a moment, so other
        // nodes must not keep them as contacts. Only `node` and `swarm` serve.
        config.read_only = setup.read_only;
        let bind = local.bind.unwrap_or(setup.default_bind);
        let mut dht = Dht::bind(bind, config).map_err(Fail::input)?;
        if let Some(state) = &state {
            let taken = dht.import_nodes(&state.nodes);
            if taken < state.nodes.len() {
                log::warn!(
                    "loaded {} of the {} saved contacts (the others are of an address family \
                     or kind this node does not use)",
                    taken,
                    state.nodes.len()
                );
            } else {
                log::info!("loaded {} from the state file", count(taken, "contact"));
            }
        }
        let families: Vec<bool> = dht.local_addrs().iter().map(SocketAddr::is_ipv6).collect();
        let before = contacts.addrs.len();
        contacts.addrs.retain(|a| families.contains(&a.is_ipv6()));
        if before > 0 && contacts.addrs.is_empty() && contacts.unresolved.is_empty() {
            return Err(Fail::input(
                "no bootstrap address is of an address family this node has a socket for",
            ));
        }
        let stop = Arc::new(AtomicBool::new(false));
        install_signals(&stop, &dht)?;
        let session = Self {
            dht,
            out: Out::new(json, setup.progress),
            stop,
            deadline: setup.timeout.map(|t| Instant::now() + t),
            state_path: local.state.clone(),
            _state_lock: lock,
        };
        Ok((session, contacts))
    }

    /// Saves the routing table to --state, if given.
    pub fn save_state(&self) {
        save_state(&self.dht, self.state_path.as_deref());
    }

    /// Joins through `contacts` (when the saved table gave none, waiting for the bootstrap to
    /// end). For the one-shot commands.
    pub fn join(&mut self, contacts: &Contacts) -> Result<(), Fail> {
        let had_contacts = self.dht.node().table_len() > 0;
        if contacts.addrs.is_empty() && !had_contacts {
            return Err(
                if contacts.default_routers && !contacts.unresolved.is_empty() {
                    Fail::failed(
                        "cannot resolve any of the public bootstrap routers (is the network up?); \
                     pass --bootstrap HOST:PORT",
                    )
                } else {
                    Fail::input(
                        "no contact to join the DHT through: pass --bootstrap, or --state with a \
                     saved table",
                    )
                },
            );
        }
        match self.dht.bootstrap(contacts.addrs.iter().copied()) {
            Ok(q) if !had_contacts => {
                let outcome = crate::client::drive(self, q, "joining", |_, _| Ok(()))?;
                if self.dht.node().table_len() == 0 {
                    return Err(Fail::failed(match outcome.status {
                        dht_proto::QueryStatus::Cancelled => "could not join the DHT in time",
                        _ => "could not join the DHT: no bootstrap contact answered",
                    }));
                }
                log::info!("joined: {}", count(self.dht.node().table_len(), "contact"));
            }
            Ok(_) => {}
            Err(e) if had_contacts => log::warn!("bootstrap: {e}"),
            Err(e) => return Err(Fail::failed(format_args!("cannot join the DHT: {e}"))),
        }
        Ok(())
    }
}

/// Saves the routing table to `path`, if given. A failure is a warning: the table is a cache,
/// and the file was found writable at the start.
pub fn save_state(dht: &Dht, path: Option<&Path>) {
    let Some(path) = path else { return };
    let state = dht.state();
    match state.save(path) {
        Ok(()) => log::info!(
            "saved {} to {}",
            count(state.nodes.len(), "contact"),
            path.display()
        ),
        Err(e) => log::warn!("cannot write the state file {}: {e}", path.display()),
    }
}

/// Widens the address policy so that a contact the user named is accepted.
fn widen(config: &mut Config, addr: &SocketAddr) {
    if config.address_policy.allows(addr) || !AddressPolicy::ALLOW_ALL.allows(addr) {
        return;
    }
    if addr.ip().is_loopback() {
        config.address_policy.allow_loopback = true;
        // Every node of a loopback swarm has the same IP address.
        config.one_node_per_ip = false;
    } else {
        config.address_policy.allow_private = true;
    }
}

/// Locks `FILE.lock` beside the state file for the life of the process. Creating it also shows
/// at once that the directory is writable, rather than at the first save.
fn lock_state(path: &Path) -> Result<File, Fail> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| {
            Fail::input(format_args!(
                "cannot write the state file {}: {}",
                path.display(),
                io_reason(&e)
            ))
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Fail::input(format_args!(
            "the state file {} is in use by another dht process (each node needs its own)",
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(Fail::input(format_args!(
            "cannot lock the state file {}: {}",
            path.display(),
            io_reason(&e)
        ))),
    }
}

/// Reads the state file. A corrupt file is a warning (it is a cache): start fresh.
fn load_state(path: &Path) -> Result<Option<State>, Fail> {
    match State::load(path) {
        Ok(state) => Ok(state),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            log::warn!(
                "ignoring the state file {} ({e}): starting with an empty table",
                path.display()
            );
            Ok(None)
        }
        Err(e) => Err(Fail::input(format_args!(
            "cannot read the state file {}: {}",
            path.display(),
            io_reason(&e)
        ))),
    }
}

/// std's message without its " (os error N)" suffix.
fn io_reason(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text.get(..i).unwrap_or(&text).to_lowercase(),
        None => text,
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

/// The contacts of `--bootstrap` (or the public routers). A malformed entry is bad input; an
/// entry that does not resolve is skipped with a warning, as long as another one does (or
/// `lenient`: the caller retries later).
pub fn contacts(join: &Join, lenient: bool) -> Result<Contacts, Fail> {
    if join.no_bootstrap {
        return Ok(Contacts::default());
    }
    let default_routers = join.bootstrap.is_empty();
    let hosts: Vec<String> = if default_routers {
        DEFAULT_BOOTSTRAP.iter().map(|h| (*h).to_owned()).collect()
    } else {
        join.bootstrap.clone()
    };
    for host in &hosts {
        check_form(host, "bootstrap address")?;
    }
    let mut out = Contacts {
        default_routers,
        ..Contacts::default()
    };
    let mut errors = Vec::new();
    for host in hosts {
        match resolve(&host, "bootstrap address") {
            Ok(addrs) => out.addrs.extend(addrs),
            Err(e) => {
                errors.push(e);
                out.unresolved.push(host);
            }
        }
    }
    out.addrs.dedup();
    if out.addrs.is_empty() && !default_routers && !lenient {
        if let Some(e) = errors.into_iter().next() {
            return Err(e);
        }
    } else if !default_routers && !out.addrs.is_empty() {
        for e in errors {
            log::warn!("{}; using the other bootstrap addresses", e.message);
        }
    }
    Ok(out)
}

/// Checks that `host` is `HOST:PORT` with a port other than 0.
pub fn check_form(host: &str, what: &str) -> Result<(), Fail> {
    let host = host.trim();
    if host.is_empty() {
        return Err(Fail::input(format_args!("an empty {what}")));
    }
    let port = match host.parse::<SocketAddr>() {
        Ok(addr) => addr.port(),
        Err(_) => match host.rsplit_once(':').map(|(_, p)| p.parse::<u16>()) {
            Some(Ok(port)) => port,
            _ => {
                return Err(Fail::input(format_args!(
                    "the {what} `{host}` is not HOST:PORT"
                )));
            }
        },
    };
    if port == 0 {
        return Err(Fail::input(format_args!("the {what} `{host}` has port 0")));
    }
    Ok(())
}

/// Resolves `HOST:PORT` (a name or a literal address) to its addresses.
pub fn resolve(host: &str, what: &str) -> Result<Vec<SocketAddr>, Fail> {
    check_form(host, what)?;
    let host = host.trim();
    if let Ok(addr) = host.parse::<SocketAddr>() {
        return Ok(vec![addr]);
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn port_zero_is_named_as_such() {
        let e = resolve("127.0.0.1:0", "bootstrap address").unwrap_err();
        assert_eq!(e.code, 2);
        assert_eq!(e.message, "the bootstrap address `127.0.0.1:0` has port 0");
        let e = check_form("example.com:0", "address").unwrap_err();
        assert_eq!(e.message, "the address `example.com:0` has port 0");
    }

    #[test]
    fn named_local_contacts_widen_the_policy() {
        let mut c = Config::new([0; 32]);
        widen(&mut c, &"127.0.0.1:7000".parse().unwrap());
        assert!(c.address_policy.allow_loopback && !c.one_node_per_ip);
        assert!(!c.address_policy.allow_private);
        widen(&mut c, &"192.168.1.2:7000".parse().unwrap());
        assert!(c.address_policy.allow_private);
        let mut c = Config::new([0; 32]);
        widen(&mut c, &"203.0.113.1:7000".parse().unwrap());
        widen(&mut c, &"0.0.0.0:7000".parse().unwrap());
        assert_eq!(c.address_policy, Config::new([0; 32]).address_policy);
    }
}
