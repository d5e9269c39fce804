//! Encoding straight into a [`Writer`], keys in canonical order, and the one-line `Display`.

use core::fmt;
use core::net::SocketAddr;

use super::*;
use crate::id::ID_LEN;
use crate::wire::bencode::{EscapedBytes, read_string, read_value};
use crate::wire::compact::{NODE4_LEN, NODE6_LEN, NodeInfo, PEER6_LEN, as_v4, encode_peer};

fn write_want(w: &mut Writer<'_>, want: Option<Want>) {
    if let Some(want) = want {
        w.bytes(b"want");
        w.begin_list();
        if want.v4 {
            w.bytes(b"n4");
        }
        if want.v6 {
            w.bytes(b"n6");
        }
        w.end();
    }
}

fn write_flag(w: &mut Writer<'_>, key: &[u8], on: bool) {
    if on {
        w.bytes(key);
        w.int(1);
    }
}

fn write_opt_int(w: &mut Writer<'_>, key: &[u8], v: Option<i64>) {
    if let Some(v) = v {
        w.bytes(key);
        w.int(v);
    }
}

fn write_opt_bytes(w: &mut Writer<'_>, key: &[u8], v: Option<&[u8]>) {
    if let Some(v) = v {
        w.bytes(key);
        w.bytes(v);
    }
}

fn write_id(w: &mut Writer<'_>, key: &[u8], id: &Id) {
    w.bytes(key);
    w.bytes(id.as_bytes());
}

pub(super) fn write_args(q: &Query<'_>, w: &mut Writer<'_>) {
    if let Query::Custom(c) = q {
        write_custom_args(c, w);
        return;
    }
    w.begin_dict();
    match q {
        Query::Ping(p) => write_id(w, b"id", &p.id),
        Query::FindNode(f) => {
            write_id(w, b"id", &f.id);
            write_id(w, b"target", &f.target);
            write_want(w, f.want);
        }
        Query::GetPeers(g) => {
            write_id(w, b"id", &g.id);
            write_id(w, b"info_hash", &g.info_hash);
            write_flag(w, b"noseed", g.noseed);
            write_flag(w, b"scrape", g.scrape);
            write_want(w, g.want);
        }
        Query::AnnouncePeer(a) => {
            write_id(w, b"id", &a.id);
            write_flag(w, b"implied_port", a.implied_port);
            write_id(w, b"info_hash", &a.info_hash);
            w.bytes(b"port");
            w.int(i64::from(a.port));
            write_flag(w, b"seed", a.seed);
            w.bytes(b"token");
            w.bytes(a.token);
        }
        Query::Get(g) => {
            write_id(w, b"id", &g.id);
            write_opt_int(w, b"seq", g.seq);
            write_id(w, b"target", &g.target);
            write_want(w, g.want);
        }
        Query::Put(p) => {
            write_opt_int(w, b"cas", p.cas);
            write_id(w, b"id", &p.id);
            write_opt_bytes(w, b"k", p.key.map(|k| k.as_slice()));
            write_opt_bytes(w, b"salt", p.salt);
            write_opt_int(w, b"seq", p.seq);
            write_opt_bytes(w, b"sig", p.signature.map(|s| s.as_slice()));
            w.bytes(b"token");
            w.bytes(p.token);
            w.bytes(b"v");
            w.raw(p.value);
        }
        Query::SampleInfohashes(s) => {
            write_id(w, b"id", &s.id);
            write_id(w, b"target", &s.target);
            write_want(w, s.want);
        }
        Query::Custom(_) => {}
    }
    w.end();
}

/// Writes the entries of `extra` except those `skip` rejects, dropping a key equal to the one
/// before it, and calling `before(key, w)` ahead of each entry written (and once with `None`
/// at the end) so that the caller can merge its own keys in.
fn merge_entries(
    w: &mut Writer<'_>,
    extra: Option<Dict<'_>>,
    skip: impl Fn(&[u8]) -> bool,
    mut before: impl FnMut(Option<&[u8]>, &mut Writer<'_>),
) {
    let raw = extra.map(|d| d.raw()).unwrap_or_default();
    let mut rest = raw.get(1..).unwrap_or_default();
    let mut last: Option<&[u8]> = None;
    while let Some((key, after_key)) = read_string(rest) {
        let Some((_, after)) = read_value(after_key) else {
            break;
        };
        let value = after_key.get(..after_key.len() - after.len());
        rest = after;
        if skip(key) || last == Some(key) {
            continue;
        }
        last = Some(key);
        before(Some(key), w);
        w.bytes(key);
        w.raw(value.unwrap_or_default());
    }
    before(None, w);
}

fn write_custom_args(c: &Custom<'_>, w: &mut Writer<'_>) {
    let Some(id) = c.id else {
        w.raw(c.args.raw());
        return;
    };
    w.begin_dict();
    let mut pending = true;
    merge_entries(
        w,
        Some(c.args),
        |k| k == b"id",
        |key, w| {
            if pending && key.is_none_or(|k| k > b"id".as_slice()) {
                write_id(w, b"id", &id);
                pending = false;
            }
        },
    );
    w.end();
}

/// The keys of [`Response`], in canonical order.
const RESPONSE_KEYS: [&[u8]; 14] = [
    b"BFpe",
    b"BFsd",
    b"id",
    b"interval",
    b"k",
    b"nodes",
    b"nodes6",
    b"num",
    b"samples",
    b"seq",
    b"sig",
    b"token",
    b"v",
    b"values",
];

pub(super) fn write_response(r: &Response<'_>, w: &mut Writer<'_>) {
    w.begin_dict();
    let mut next = 0;
    merge_entries(
        w,
        r.extra,
        |k| RESPONSE_KEYS.contains(&k),
        |key, w| {
            while let Some(k) = RESPONSE_KEYS.get(next) {
                if key.is_some_and(|key| key < *k) {
                    break;
                }
                write_response_field(r, next, w);
                next += 1;
            }
        },
    );
    w.end();
}

fn write_response_field(r: &Response<'_>, index: usize, w: &mut Writer<'_>) {
    match index {
        0 => write_opt_bytes(w, b"BFpe", r.bf_peers.map(|b| b.as_slice())),
        1 => write_opt_bytes(w, b"BFsd", r.bf_seeds.map(|b| b.as_slice())),
        2 => write_id(w, b"id", &r.id),
        3 => write_opt_int(w, b"interval", r.interval),
        4 => write_opt_bytes(w, b"k", r.key.map(|k| k.as_slice())),
        5 => write_nodes(w, b"nodes", r.nodes, false),
        6 => write_nodes(w, b"nodes6", r.nodes6, true),
        7 => write_opt_int(w, b"num", r.num),
        8 => write_samples(w, r.samples),
        9 => write_opt_int(w, b"seq", r.seq),
        10 => write_opt_bytes(w, b"sig", r.signature.map(|s| s.as_slice())),
        11 => write_opt_bytes(w, b"token", r.token),
        12 => {
            if let Some(v) = r.value {
                w.bytes(b"v");
                w.raw(v);
            }
        }
        13 => write_peers(w, r.values),
        _ => {}
    }
}

fn write_nodes(w: &mut Writer<'_>, key: &[u8], nodes: Option<Nodes<'_>>, v6: bool) {
    let Some(nodes) = nodes else {
        return;
    };
    w.bytes(key);
    let size = if v6 { NODE6_LEN } else { NODE4_LEN };
    match (nodes, v6) {
        (Nodes::Compact4(b), false) | (Nodes::Compact6(b), true) => {
            w.bytes(b.get(..b.len() / size * size).unwrap_or_default());
        }
        (Nodes::Slice(slice), _) => {
            let wanted = |n: &&NodeInfo| as_v4(&n.addr).is_some() != v6;
            w.length_prefix(slice.iter().filter(wanted).count().saturating_mul(size));
            for node in slice {
                match (as_v4(&node.addr), v6) {
                    (Some(a), false) => {
                        let mut entry = [0u8; NODE4_LEN];
                        let (id, rest) = entry.split_at_mut(ID_LEN);
                        id.copy_from_slice(node.id.as_bytes());
                        let (ip, port) = rest.split_at_mut(4);
                        ip.copy_from_slice(&a.ip().octets());
                        port.copy_from_slice(&a.port().to_be_bytes());
                        w.raw(&entry);
                    }
                    (None, true) => {
                        let mut entry = [0u8; NODE6_LEN];
                        let (id, rest) = entry.split_at_mut(ID_LEN);
                        id.copy_from_slice(node.id.as_bytes());
                        let (ip, port) = rest.split_at_mut(16);
                        if let core::net::IpAddr::V6(v6) = node.addr.ip() {
                            ip.copy_from_slice(&v6.octets());
                        }
                        port.copy_from_slice(&node.addr.port().to_be_bytes());
                        w.raw(&entry);
                    }
                    _ => {}
                }
            }
        }
        // A compact list of the other family under this key: only entries of this family.
        (Nodes::Compact4(_) | Nodes::Compact6(_), _) => {
            let wanted = |n: &NodeInfo| as_v4(&n.addr).is_some() != v6;
            w.length_prefix(nodes.iter().filter(wanted).count().saturating_mul(size));
            for node in nodes.iter().filter(wanted) {
                w.raw(node.id.as_bytes());
                write_compact_addr(w, &node.addr);
            }
        }
    }
}

/// Writes the compact form of `addr` (no length prefix).
#[inline]
fn write_compact_addr(w: &mut Writer<'_>, addr: &SocketAddr) {
    let mut buf = [0u8; PEER6_LEN];
    let n = encode_peer(addr, &mut buf);
    w.raw(buf.get(..n).unwrap_or_default());
}

fn write_peers(w: &mut Writer<'_>, peers: Option<Peers<'_>>) {
    let Some(peers) = peers else {
        return;
    };
    w.bytes(b"values");
    w.begin_list();
    let mut write = |peer: &SocketAddr| match as_v4(peer) {
        Some(v4) => {
            let [a, b, c, d] = v4.ip().octets();
            let [p0, p1] = v4.port().to_be_bytes();
            w.raw(&[b'6', b':', a, b, c, d, p0, p1]);
        }
        None => {
            w.raw(b"18:");
            write_compact_addr(w, peer);
        }
    };
    match peers {
        Peers::Slice(slice) => slice.iter().for_each(write),
        Peers::Compact(_) => peers.iter().for_each(|p| write(&p)),
    }
    w.end();
}

fn write_samples(w: &mut Writer<'_>, samples: Option<Samples<'_>>) {
    let Some(samples) = samples else {
        return;
    };
    w.bytes(b"samples");
    match samples {
        Samples::Compact(b) => w.bytes(b.get(..b.len() / ID_LEN * ID_LEN).unwrap_or_default()),
        Samples::Slice(ids) => {
            w.length_prefix(ids.len().saturating_mul(ID_LEN));
            for id in ids {
                w.raw(id.as_bytes());
            }
        }
    }
}

// Display

struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Display for Message<'_> {
    /// One line: kind, transaction id in hex, then the interesting fields.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.body {
            Body::Query(_) => 'q',
            Body::Response(_) => 'r',
            Body::Error(_) => 'e',
        };
        write!(f, "{kind} t={}", Hex(self.transaction_id))?;
        match &self.body {
            Body::Query(q) => {
                write!(f, " {}", EscapedBytes(q.method()))?;
                if let Some(id) = q.id() {
                    write!(f, " id={id}")?;
                }
                if let Some(target) = q.target() {
                    write!(f, " target={target}")?;
                }
                if let Some(want) = q.want() {
                    write!(
                        f,
                        " want={}{}",
                        if want.v4 { "4" } else { "" },
                        if want.v6 { "6" } else { "" }
                    )?;
                }
                match q {
                    Query::AnnouncePeer(a) => {
                        write!(f, " port={} token={}", a.port, Hex(a.token))?;
                        if a.implied_port {
                            f.write_str(" implied_port")?;
                        }
                        if a.seed {
                            f.write_str(" seed")?;
                        }
                    }
                    Query::Get(g) => {
                        if let Some(seq) = g.seq {
                            write!(f, " seq={seq}")?;
                        }
                    }
                    Query::Put(p) => {
                        write!(f, " token={} v={}B", Hex(p.token), p.value.len())?;
                        if let Some(seq) = p.seq {
                            write!(f, " seq={seq}")?;
                        }
                        if let Some(k) = p.key {
                            write!(f, " k={}", Hex(k))?;
                        }
                    }
                    Query::GetPeers(g) => {
                        if g.noseed {
                            f.write_str(" noseed")?;
                        }
                        if g.scrape {
                            f.write_str(" scrape")?;
                        }
                    }
                    _ => {}
                }
            }
            Body::Response(r) => {
                write!(f, " id={}", r.id)?;
                if let Some(n) = r.nodes {
                    write!(f, " nodes={}", n.len())?;
                }
                if let Some(n) = r.nodes6 {
                    write!(f, " nodes6={}", n.len())?;
                }
                if let Some(v) = r.values {
                    write!(f, " values={}", v.len())?;
                }
                if let Some(t) = r.token {
                    write!(f, " token={}", Hex(t))?;
                }
                if let Some(s) = r.samples {
                    write!(f, " samples={}", s.len())?;
                }
                if let Some(n) = r.num {
                    write!(f, " num={n}")?;
                }
                if let Some(i) = r.interval {
                    write!(f, " interval={i}")?;
                }
                if let Some(v) = r.value {
                    write!(f, " v={}B", v.len())?;
                }
                if let Some(seq) = r.seq {
                    write!(f, " seq={seq}")?;
                }
                if r.bf_seeds.is_some() || r.bf_peers.is_some() {
                    f.write_str(" bloom")?;
                }
            }
            Body::Error(e) => write!(f, " {} {}", e.code, EscapedBytes(e.message))?,
        }
        if let Some(ip) = self.ip {
            write!(f, " ip={ip}")?;
        }
        if let Some(v) = self.version {
            write!(f, " v={}", EscapedBytes(v))?;
        }
        if self.read_only {
            f.write_str(" ro")?;
        }
        Ok(())
    }
}
