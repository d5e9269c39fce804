//! `dht decode`: one raw KRPC datagram, printed readably or as JSON.
//!
//! The datagram is validated by the codec's typed view ([`Message::decode`]), then every key of
//! it is shown, known or not: ids, tokens and other binary values in hex, compact `nodes`,
//! `nodes6`, `values` and `samples` expanded, integers as numbers. Byte strings under unknown
//! keys are shown as text when they are printable ASCII, in hex otherwise.

use std::io::Read as _;
use std::path::Path;
use std::process::ExitCode;

use dht_proto::wire::bencode::{self, DecodeLimits, Dict, Value};
use dht_proto::wire::compact::{NODE4_LEN, NODE6_LEN, decode_node, decode_peer};
use dht_proto::wire::krpc::{Body, Message};
use serde::Serialize;
use serde_json::{Map, Value as Json, json};

use crate::Fail;
use crate::output::{Out, Record};

/// Largest input read: a UDP datagram never exceeds 64 KiB (twice that in hex, plus spacing).
const MAX_INPUT: u64 = 4 * 65_536;
/// Largest datagram.
const MAX_DATAGRAM: usize = 65_536;

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

/// A decoded message: every key, in order.
#[derive(Debug, Serialize)]
struct Decoded {
    #[serde(flatten)]
    fields: Map<String, Json>,
    /// The one-line summary heading the text form.
    #[serde(skip)]
    summary: String,
}

impl Record for Decoded {
    const TYPE: &'static str = "message";
    fn text(&self) -> Option<String> {
        let mut out = self.summary.clone();
        for (key, value) in &self.fields {
            write_text(&mut out, key, value, 1);
        }
        Some(out)
    }
}

pub fn run(json: bool, hex_input: bool, file: Option<&Path>) -> Result<ExitCode, Fail> {
    let mut bytes = read_input(file)?;
    if hex_input {
        let digits: String = String::from_utf8_lossy(&bytes)
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        bytes = hex::decode(&digits)
            .map_err(|e| Fail::input(format_args!("the input is not hex: {e}")))?;
    } else {
        // A bencoded message ends with `e`: a trailing newline (`echo`, an editor) is not
        // part of it.
        while bytes.last().is_some_and(|b| matches!(b, b'\n' | b'\r')) {
            bytes.pop();
        }
    }
    if bytes.is_empty() {
        return Err(Fail::failed("not a KRPC message: the input is empty"));
    }
    if bytes.len() > MAX_DATAGRAM {
        return Err(Fail::failed(
            "not a KRPC message: larger than any datagram (64 KiB)",
        ));
    }
    let limits = DecodeLimits::default();
    let msg = Message::decode(&bytes, &limits)
        .map_err(|e| Fail::failed(format_args!("not a KRPC message: {e}")))?;
    let Ok(Value::Dict(root)) = bencode::decode(&bytes, &limits) else {
        return Err(Fail::failed("not a KRPC message: not a dictionary"));
    };
    let mut fields = message_json(&msg, root);
    let warnings = warnings(&msg);
    for w in &warnings {
        log::warn!("{w}");
    }
    if !warnings.is_empty() {
        fields.insert(
            "warnings".into(),
            Json::Array(warnings.into_iter().map(Json::String).collect()),
        );
    }
    let decoded = Decoded {
        fields,
        summary: dht_std::describe_datagram(&bytes),
    };
    Out::new(json, false).emit(&decoded)?;
    Ok(ExitCode::SUCCESS)
}

/// What is wrong with a message the node still accepts: a `nodes`/`nodes6` string cut
/// mid-entry (the whole entries are used, the tail ignored).
fn warnings(msg: &Message<'_>) -> Vec<String> {
    let mut out = Vec::new();
    if let Body::Response(r) = &msg.body {
        for (name, nodes, unit) in [("nodes", r.nodes, 26), ("nodes6", r.nodes6, 38)] {
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
fn message_json(msg: &Message<'_>, root: Dict<'_>) -> Map<String, Json> {
    let y = match msg.body {
        Body::Query(_) => "q",
        Body::Response(_) => "r",
        Body::Error(_) => "e",
    };
    let mut o = Map::new();
    o.insert("y".into(), y.into());
    o.insert("t".into(), hex::encode(msg.transaction_id).into());
    if let Body::Query(q) = &msg.body {
        o.insert("method".into(), text_or_hex(q.method()));
    }
    if let Some(v) = msg.version {
        o.insert("v".into(), hex::encode(v).into());
    }
    if let Some(ip) = msg.ip {
        o.insert("ip".into(), ip.to_string().into());
    }
    if msg.read_only {
        o.insert("ro".into(), true.into());
    }
    match msg.body {
        Body::Query(_) => {
            if let Some(Value::Dict(a)) = root.get(b"a") {
                o.insert("args".into(), dict_json(a));
            }
        }
        Body::Response(_) => {
            if let Some(Value::Dict(r)) = root.get(b"r") {
                o.insert("response".into(), dict_json(r));
            }
        }
        Body::Error(e) => {
            o.insert(
                "error".into(),
                json!({
                    "code": e.code,
                    "message": String::from_utf8_lossy(e.message),
                }),
            );
        }
    }
    o
}

fn dict_json(d: Dict<'_>) -> Json {
    Json::Object(
        d.iter()
            .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), value_json(k, v)))
            .collect(),
    )
}

fn value_json(key: &[u8], v: Value<'_>) -> Json {
    match (key, v) {
        (b"nodes", Value::Bytes(b)) => nodes_json(b, NODE4_LEN),
        (b"nodes6", Value::Bytes(b)) => nodes_json(b, NODE6_LEN),
        (b"samples", Value::Bytes(b)) => {
            Json::Array(b.chunks_exact(20).map(|c| hex::encode(c).into()).collect())
        }
        (b"values", Value::List(l)) => Json::Array(
            l.iter()
                .map(|item| match item {
                    Value::Bytes(b) => decode_peer(b)
                        .map_or_else(|| hex::encode(b).into(), |a| a.to_string().into()),
                    other => value_json(b"", other),
                })
                .collect(),
        ),
        (b"want", Value::List(l)) => Json::Array(
            l.iter()
                .map(|item| match item {
                    Value::Bytes(b) => text_or_hex(b),
                    other => value_json(b"", other),
                })
                .collect(),
        ),
        (_, Value::Int(n)) => n.into(),
        (k, Value::Bytes(b)) if BINARY_KEYS.contains(&k) => hex::encode(b).into(),
        (_, Value::Bytes(b)) => text_or_hex(b),
        (_, Value::List(l)) => Json::Array(l.iter().map(|item| value_json(b"", item)).collect()),
        (_, Value::Dict(d)) => dict_json(d),
    }
}

/// Compact node entries; a malformed remainder is shown in hex after them.
fn nodes_json(b: &[u8], len: usize) -> Json {
    let chunks = b.chunks_exact(len);
    let rest = chunks.remainder();
    let mut nodes: Vec<Json> = chunks
        .map(|c| match decode_node(c) {
            Some(n) => json!({"id": n.id.to_string(), "addr": n.addr.to_string()}),
            None => hex::encode(c).into(),
        })
        .collect();
    if !rest.is_empty() {
        nodes.push(json!({"malformed": hex::encode(rest)}));
    }
    Json::Array(nodes)
}

/// Printable ASCII as text, anything else in hex.
fn text_or_hex(b: &[u8]) -> Json {
    if !b.is_empty() && b.iter().all(|c| (0x20..0x7f).contains(c)) {
        String::from_utf8_lossy(b).into_owned().into()
    } else {
        hex::encode(b).into()
    }
}

/// The readable form: `key: value`, nested values indented, one list item per line.
fn write_text(out: &mut String, key: &str, v: &Json, depth: usize) {
    let pad = "  ".repeat(depth);
    match v {
        Json::Object(fields) => {
            out.push_str(&format!("\n{pad}{key}:"));
            for (k, v) in fields {
                write_text(out, k, v, depth + 1);
            }
        }
        Json::Array(items) => {
            out.push_str(&format!("\n{pad}{key} ({}):", items.len()));
            for item in items {
                out.push_str(&format!("\n{pad}  {}", inline(item)));
            }
        }
        scalar => out.push_str(&format!("\n{pad}{key}: {}", inline(scalar))),
    }
}

/// A value on one line: strings bare, objects as their values separated by spaces.
fn inline(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Object(fields) => fields.values().map(inline).collect::<Vec<_>>().join(" "),
        Json::Array(items) => items.iter().map(inline).collect::<Vec<_>>().join(", "),
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
    Ok(bytes)
}
