//! `dht decode`: one raw KRPC datagram, printed readably or as JSON.
//!
//! The datagram is validated by the codec's typed view ([`Message::decode`]), then every key of
//! it is shown, known or not: ids, tokens and other binary values in hex, compact `nodes`,
//! `nodes6`, `values` and `samples` expanded, integers as numbers. Byte strings under unknown
//! keys are shown as text when they are printable ASCII, in hex otherwise.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::ExitCode;

use dht_proto::wire::bencode::{self, DecodeLimits, Dict, Value};
use dht_proto::wire::compact::{NODE4_LEN, NODE6_LEN, decode_node, decode_peer};
use dht_proto::wire::krpc::{Body, Message};

use crate::json::{Json, hex};
use crate::{Fail, Global};

/// Largest input read: a UDP datagram never exceeds 64 KiB.
const MAX_INPUT: u64 = 65_536;

/// Keys whose byte strings are binary (shown in hex) in every message kind.
const BINARY_KEYS: &[&[u8]] = &[
    b"id",
    b"target",
    b"info_hash",
    b"token",
    b"k",
    b"sig",
    b"salt",
    b"v",
    b"bf_seeds",
    b"bf_peers",
];

pub fn run(g: &Global, file: Option<&Path>) -> Result<ExitCode, Fail> {
    let bytes = read_input(file)?;
    let limits = DecodeLimits::default();
    let msg = Message::decode(&bytes, &limits)
        .map_err(|e| Fail::failed(format_args!("not a KRPC message: {e}")))?;
    let Ok(Value::Dict(root)) = bencode::decode(&bytes, &limits) else {
        return Err(Fail::failed("not a KRPC message: not a dictionary"));
    };
    let warnings = warnings(&msg);
    let mut json = message_json(&msg, root);
    if !warnings.is_empty() {
        json = json.field(
            "warnings",
            Json::Arr(warnings.iter().map(|w| w.as_str().into()).collect()),
        );
    }
    for w in &warnings {
        log::warn!("{w}");
    }
    let mut out = std::io::stdout().lock();
    if g.json {
        writeln!(out, "{json}")?;
    } else {
        writeln!(out, "{msg}")?;
        if let Json::Obj(fields) = &json {
            for (key, value) in fields {
                write_text(&mut out, key, value, 1)?;
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// What is wrong with a message the node still accepts: a `nodes`/`nodes6` string cut
/// mid-entry (the whole entries are used, the tail ignored).
fn warnings(msg: &Message<'_>) -> Vec<String> {
    let mut out = Vec::new();
    if let Body::Response(r) = &msg.body {
        for (name, nodes, unit) in [
            ("nodes", r.nodes, NODE4_LEN),
            ("nodes6", r.nodes6, NODE6_LEN),
        ] {
            let Some(nodes) = nodes else { continue };
            let tail = nodes.malformed_tail();
            if tail != 0 {
                out.push(format!(
                    "`{name}` ends in a partial entry: {tail} bytes after {} whole {unit}-byte \
                     entries are ignored",
                    nodes.len()
                ));
            }
        }
    }
    out
}

/// The whole message: `y`, `t`, `method` (queries), `v`, `ip`, `ro`, then `args`, `response` or
/// `error`.
fn message_json(msg: &Message<'_>, root: Dict<'_>) -> Json {
    let y = match msg.body {
        Body::Query(_) => "q",
        Body::Response(_) => "r",
        Body::Error(_) => "e",
    };
    let mut o = Json::obj()
        .field("y", y)
        .field("t", hex(msg.transaction_id));
    if let Body::Query(q) = &msg.body {
        o = o.field("method", text_or_hex(q.method()));
    }
    if let Some(v) = msg.version {
        o = o.field("v", hex(v));
    }
    if let Some(ip) = msg.ip {
        o = o.field("ip", ip.to_string());
    }
    if msg.read_only {
        o = o.field("ro", true);
    }
    match msg.body {
        Body::Query(_) => {
            if let Some(Value::Dict(a)) = root.get(b"a") {
                o = o.field("args", dict_json(a));
            }
        }
        Body::Response(_) => {
            if let Some(Value::Dict(r)) = root.get(b"r") {
                o = o.field("response", dict_json(r));
            }
        }
        Body::Error(e) => {
            o = o.field(
                "error",
                Json::obj()
                    .field("code", e.code)
                    .field("message", String::from_utf8_lossy(e.message).into_owned()),
            );
        }
    }
    o
}

fn dict_json(d: Dict<'_>) -> Json {
    Json::Obj(
        d.iter()
            .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), value_json(k, v)))
            .collect(),
    )
}

fn value_json(key: &[u8], v: Value<'_>) -> Json {
    match (key, v) {
        (b"nodes", Value::Bytes(b)) => nodes_json(b, NODE4_LEN),
        (b"nodes6", Value::Bytes(b)) => nodes_json(b, NODE6_LEN),
        (b"samples", Value::Bytes(b)) => Json::Arr(b.chunks_exact(20).map(Json::hex).collect()),
        (b"values", Value::List(l)) => Json::Arr(
            l.iter()
                .map(|item| match item {
                    Value::Bytes(b) => {
                        decode_peer(b).map_or_else(|| Json::hex(b), |a| a.to_string().into())
                    }
                    other => value_json(b"", other),
                })
                .collect(),
        ),
        (b"want", Value::List(l)) => Json::Arr(
            l.iter()
                .map(|item| match item {
                    Value::Bytes(b) => text_or_hex(b),
                    other => value_json(b"", other),
                })
                .collect(),
        ),
        (_, Value::Int(n)) => Json::Int(n),
        (k, Value::Bytes(b)) if BINARY_KEYS.contains(&k) => Json::hex(b),
        (_, Value::Bytes(b)) => text_or_hex(b),
        (_, Value::List(l)) => Json::Arr(l.iter().map(|item| value_json(b"", item)).collect()),
        (_, Value::Dict(d)) => dict_json(d),
    }
}

/// Compact node entries; a malformed remainder is shown in hex after them.
fn nodes_json(b: &[u8], len: usize) -> Json {
    let chunks = b.chunks_exact(len);
    let rest = chunks.remainder();
    let mut nodes: Vec<Json> = chunks
        .map(|c| match decode_node(c) {
            Some(n) => Json::obj()
                .field("id", n.id.to_string())
                .field("addr", n.addr.to_string()),
            None => Json::hex(c),
        })
        .collect();
    if !rest.is_empty() {
        nodes.push(Json::obj().field("malformed", hex(rest)));
    }
    Json::Arr(nodes)
}

/// Printable ASCII as text, anything else in hex.
fn text_or_hex(b: &[u8]) -> Json {
    if !b.is_empty() && b.iter().all(|c| (0x20..0x7f).contains(c)) {
        Json::Str(String::from_utf8_lossy(b).into_owned())
    } else {
        Json::hex(b)
    }
}

/// The readable form: `key: value`, nested values indented, one list item per line.
fn write_text(
    out: &mut impl std::io::Write,
    key: &str,
    v: &Json,
    depth: usize,
) -> std::io::Result<()> {
    let pad = "  ".repeat(depth);
    match v {
        Json::Obj(fields) => {
            writeln!(out, "{pad}{key}:")?;
            for (k, v) in fields {
                write_text(out, k, v, depth + 1)?;
            }
        }
        Json::Arr(items) => {
            writeln!(out, "{pad}{key} ({}):", items.len())?;
            for item in items {
                writeln!(out, "{pad}  {}", inline(item))?;
            }
        }
        scalar => writeln!(out, "{pad}{key}: {}", inline(scalar))?,
    }
    Ok(())
}

/// A value on one line: strings bare, objects as their values separated by spaces.
fn inline(v: &Json) -> String {
    match v {
        Json::Str(s) => s.clone(),
        Json::Obj(fields) => fields
            .iter()
            .map(|(_, v)| inline(v))
            .collect::<Vec<_>>()
            .join(" "),
        Json::Arr(items) => items.iter().map(inline).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

fn read_input(file: Option<&Path>) -> Result<Vec<u8>, Fail> {
    let mut bytes = Vec::new();
    let result = match file {
        Some(p) if p != Path::new("-") => std::fs::File::open(p)
            .and_then(|f| f.take(MAX_INPUT + 1).read_to_end(&mut bytes))
            .map_err(|e| Fail::input(format_args!("cannot read {}: {e}", p.display()))),
        _ => std::io::stdin()
            .take(MAX_INPUT + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Fail::input(format_args!("cannot read stdin: {e}"))),
    };
    result?;
    if bytes.len() as u64 > MAX_INPUT {
        return Err(Fail::failed(
            "not a KRPC message: larger than any datagram (64 KiB)",
        ));
    }
    if bytes.is_empty() {
        return Err(Fail::failed("not a KRPC message: the input is empty"));
    }
    Ok(bytes)
}
