//! `dht put` and `dht get` (BEP 44 items), and the way the BEP 44/51/33 commands run: the
//! joined node moves to a [`DhtHandle`], the operation runs there, the main thread waits for it
//! or for the deadline or a signal.

use core::net::SocketAddr;
use core::time::Duration;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;

use dht_proto::bep44::immutable_target;
use dht_proto::wire::bencode::{self, DecodeLimits, Value};
use dht_proto::{Id, PutItem, QueryOutcome};
use dht_std::{DhtHandle, Keypair};
use serde::Serialize;

use crate::client::joined;
use crate::session::save_state;
use crate::{Fail, Lookup, parse_id};

/// Prints one record: JSON (with its `type`) or its text form.
pub fn emit<R: Serialize>(
    json: bool,
    record: &R,
    text: impl FnOnce() -> String,
) -> Result<(), Fail> {
    let line = if json {
        serde_json::to_string(record).map_err(|e| Fail::failed(format_args!("output: {e}")))?
    } else {
        text()
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// Joins the DHT, runs `op` on the node's thread, waits for it (or the deadline or a signal),
/// stops the node and saves --state.
pub fn run_on_handle<T: Send + 'static>(
    lookup: &Lookup,
    json: bool,
    op: impl FnOnce(&DhtHandle) -> Result<T, dht_std::Error> + Send + 'static,
) -> Result<T, Fail> {
    let s = joined(lookup, json)?;
    let stop = s.stop.clone();
    let deadline = s.deadline;
    // The rest of the session (the --state lock) lives until this function returns.
    let handle = DhtHandle::spawn(s.dht).map_err(Fail::failed)?;
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("command".into())
        .spawn(move || {
            let result = op(&handle);
            let _ = tx.send((result, handle));
        })?;
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((result, handle)) => {
                let value = result.map_err(Fail::failed)?;
                if let Ok(dht) = handle.shutdown() {
                    save_state(&dht, lookup.local.state.as_deref());
                }
                return Ok(value);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Fail::failed("the node stopped"));
            }
        }
        let late = deadline.is_some_and(|d| std::time::Instant::now() >= d);
        if late || stop.load(core::sync::atomic::Ordering::Relaxed) {
            return Err(Fail::failed("stopped before the operation ended"));
        }
    }
}

/// `dht put`'s result.
#[derive(Serialize)]
struct PutRecord {
    #[serde(rename = "type")]
    kind: &'static str,
    target: String,
    mutable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    public_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    salt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<i64>,
    stored: usize,
    closest: usize,
}

/// What `dht put` stores.
#[derive(Debug, clap::Args)]
pub struct PutArgs {
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
}

/// The bencoded value of `text`: itself with `--bencoded` (checked), else as a byte string.
fn bencoded_value(text: &str, raw: bool) -> Result<Vec<u8>, Fail> {
    let v = if raw {
        text.as_bytes().to_vec()
    } else {
        let mut v = format!("{}:", text.len()).into_bytes();
        v.extend_from_slice(text.as_bytes());
        v
    };
    if bencode::decode(&v, &DecodeLimits::default()).is_err() {
        return Err(Fail::input(
            "the value is not one well-formed bencoded value",
        ));
    }
    if v.len() > 1000 {
        return Err(Fail::input(format_args!(
            "the value is {} bytes bencoded; BEP 44 allows at most 1000",
            v.len()
        )));
    }
    Ok(v)
}

fn load_key(path: &Path) -> Result<Keypair, Fail> {
    let (key, created) = Keypair::load_or_create(path).map_err(|e| {
        Fail::input(format_args!(
            "cannot use the key file {}: {e}",
            path.display()
        ))
    })?;
    if created {
        log::warn!(
            "created the key file {} (public key {})",
            path.display(),
            hex(&key.public_key())
        );
    }
    Ok(key)
}

pub fn put(lookup: &Lookup, json: bool, a: PutArgs) -> Result<ExitCode, Fail> {
    let value = bencoded_value(&a.value, a.bencoded)?;
    let salt = a.salt.clone().unwrap_or_default().into_bytes();
    if salt.len() > 64 {
        return Err(Fail::input("the salt is longer than 64 bytes"));
    }
    let key = a.key.as_deref().map(load_key).transpose()?;
    let target = match &key {
        Some(k) => k.target(&salt),
        None => immutable_target(&value),
    };
    let (seq, outcome): (Option<i64>, QueryOutcome) = {
        let (key, salt, value, explicit_seq, cas) = (key.clone(), salt, value, a.seq, a.cas);
        run_on_handle(lookup, json, move |h| {
            let Some(key) = key else {
                return h.put_item(PutItem::Immutable(value)).map(|o| (None, o));
            };
            let seq = match explicit_seq {
                Some(s) => s,
                // The next version: one more than the newest stored.
                None => h
                    .get_item(target, &salt)?
                    .best()
                    .and_then(|i| i.seq)
                    .map_or(1, |s| s.saturating_add(1)),
            };
            let item = key.sign(value, &salt, seq, cas);
            h.put_item(item).map(|o| (Some(seq), o))
        })?
    };
    let record = PutRecord {
        kind: "put",
        target: target.to_string(),
        mutable: key.is_some(),
        public_key: key.as_ref().map(|k| hex(&k.public_key())),
        salt: a.salt.filter(|s| !s.is_empty()),
        seq,
        stored: outcome.announced,
        closest: outcome.closest.len(),
    };
    emit(json, &record, || {
        let what = match seq {
            Some(s) => format!("mutable item (seq {s})"),
            None => "immutable item".to_owned(),
        };
        format!(
            "stored the {what} on {} of the {} closest nodes: target {target}",
            outcome.announced,
            outcome.closest.len()
        )
    })?;
    if outcome.announced == 0 {
        return Err(Fail::failed("no node stored the item"));
    }
    Ok(ExitCode::SUCCESS)
}

/// `dht get`'s result.
#[derive(Serialize)]
struct ItemRecord {
    #[serde(rename = "type")]
    kind: &'static str,
    target: String,
    /// The value when it is a bencoded UTF-8 string, else absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    /// The bencoded value, in hex.
    v: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    public_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signature: Option<String>,
    from: SocketAddr,
    verified: bool,
    /// Nodes that returned it.
    copies: usize,
}

/// Which item `dht get` looks up.
#[derive(Debug, clap::Args)]
pub struct GetArgs {
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
}

pub fn get(lookup: &Lookup, json: bool, a: GetArgs) -> Result<ExitCode, Fail> {
    let salt = a.salt.unwrap_or_default().into_bytes();
    let target = match (a.target, a.public_key.as_deref(), a.key.as_deref()) {
        (Some(t), None, None) => t,
        (None, Some(hexkey), None) => {
            let k = dht_std::items::parse_hex32(hexkey)
                .ok_or_else(|| Fail::input("the public key must be 64 hex digits"))?;
            dht_proto::bep44::mutable_target(&k, &salt)
        }
        (None, None, Some(path)) => Keypair::load(path)
            .map_err(|e| {
                Fail::input(format_args!(
                    "cannot use the key file {}: {e}",
                    path.display()
                ))
            })?
            .target(&salt),
        _ => {
            return Err(Fail::input(
                "name the item by one of TARGET, --public-key or --key",
            ));
        }
    };
    let lookup = run_on_handle(lookup, json, move |h| h.get_item(target, &salt))?;
    let Some(best) = lookup.best() else {
        if !json {
            log::warn!("no item found");
        }
        return Ok(ExitCode::FAILURE);
    };
    let copies = lookup
        .items
        .iter()
        .filter(|i| i.verified && i.value == best.value && i.seq == best.seq)
        .count();
    let text = match bencode::decode(&best.value, &DecodeLimits::default()) {
        Ok(Value::Bytes(b)) => String::from_utf8(b.to_vec()).ok(),
        _ => None,
    };
    let record = ItemRecord {
        kind: "item",
        target: target.to_string(),
        value: text.clone(),
        v: hex(&best.value),
        seq: best.seq,
        public_key: best.key.map(|k| hex(&k)),
        signature: best.signature.map(|s| hex(&s)),
        from: best.from,
        verified: best.verified,
        copies,
    };
    emit(json, &record, || {
        let shown = text.unwrap_or_else(|| String::from_utf8_lossy(&best.value).into_owned());
        match best.seq {
            Some(seq) => format!("{shown}\t(seq {seq}, from {copies} nodes)"),
            None => format!("{shown}\t(from {copies} nodes)"),
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    use core::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}
