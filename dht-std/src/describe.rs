//! [`describe_datagram`]: one readable line for a KRPC datagram, for logs.

use core::fmt::Write as _;

use dht_proto::wire::bencode::DecodeLimits;
use dht_proto::wire::krpc::{Body, Message, Query};

/// One line describing a KRPC datagram: its kind, method, transaction id and the fields that
/// matter, with ids in hex and lists counted. A datagram that does not decode is described as
/// `malformed: ` and the reason.
///
/// ```
/// let ping = b"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping1:t2:xy1:y1:qe";
/// assert_eq!(
///     dht_std::describe_datagram(ping),
///     "query ping, t 7879, id 6161616161616161616161616161616161616161"
/// );
/// assert!(dht_std::describe_datagram(b"hello").starts_with("malformed: "));
/// ```
pub fn describe_datagram(bytes: &[u8]) -> String {
    let msg = match Message::decode(bytes, &DecodeLimits::default()) {
        Ok(msg) => msg,
        Err(e) => return format!("malformed: {e}"),
    };
    let mut s = String::new();
    let t = hex::encode(msg.transaction_id);
    match &msg.body {
        Body::Query(q) => {
            let _ = write!(
                s,
                "query {}, t {t}",
                String::from_utf8_lossy(q.method()).escape_debug()
            );
            if let Some(id) = q.id() {
                let _ = write!(s, ", id {id}");
            }
            query_fields(&mut s, q);
        }
        Body::Response(r) => {
            let _ = write!(s, "response, t {t}, id {}", r.id);
            let counts = [
                ("node", r.nodes.map(|n| n.len())),
                ("IPv6 node", r.nodes6.map(|n| n.len())),
                ("value", r.values.map(|v| v.len())),
                ("sample", r.samples.map(|v| v.len())),
            ];
            for (noun, n) in counts {
                if let Some(n) = n {
                    let _ = write!(s, ", {n} {noun}{}", if n == 1 { "" } else { "s" });
                }
            }
            if let Some(token) = r.token {
                let _ = write!(s, ", token {}", hex::encode(token));
            }
            if let Some(v) = r.value {
                let _ = write!(
                    s,
                    ", value of {} byte{}",
                    v.len(),
                    if v.len() == 1 { "" } else { "s" }
                );
            }
            if let Some(seq) = r.seq {
                let _ = write!(s, ", seq {seq}");
            }
            if r.bf_seeds.is_some() || r.bf_peers.is_some() {
                s.push_str(", bloom filters");
            }
        }
        Body::Error(e) => {
            let _ = write!(
                s,
                "error {} \"{}\", t {t}",
                e.code,
                String::from_utf8_lossy(e.message).escape_debug()
            );
        }
    }
    if let Some(ip) = msg.ip {
        let _ = write!(s, ", ip {ip}");
    }
    if msg.read_only {
        s.push_str(", read-only");
    }
    if let Some(v) = msg.version {
        let _ = write!(s, ", v {}", hex::encode(v));
    }
    s
}

fn query_fields(s: &mut String, q: &Query<'_>) {
    match q {
        Query::GetPeers(g) => {
            let _ = write!(s, ", info_hash {}", g.info_hash);
            if g.scrape {
                s.push_str(", scrape");
            }
        }
        Query::AnnouncePeer(a) => {
            let _ = write!(s, ", info_hash {}", a.info_hash);
            if a.implied_port {
                s.push_str(", implied port");
            } else {
                let _ = write!(s, ", port {}", a.port);
            }
            let _ = write!(s, ", token {}", hex::encode(a.token));
        }
        Query::Put(p) => {
            let n = p.value.len();
            let _ = write!(s, ", value of {n} byte{}", if n == 1 { "" } else { "s" });
            if let Some(seq) = p.seq {
                let _ = write!(s, ", seq {seq}");
            }
        }
        other => {
            if let Some(target) = other.target() {
                let _ = write!(s, ", target {target}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_kind() {
        let find = b"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaa6:target20:bbbbbbbbbbbbbbbbbbbbe1:q9:find_node1:t1:z1:y1:qe";
        let line = describe_datagram(find);
        assert_eq!(
            line,
            format!(
                "query find_node, t 7a, id {}, target {}",
                "61".repeat(20),
                "62".repeat(20)
            )
        );
        let err = b"d1:eli201e9:A Probleme1:t2:ee1:y1:ee";
        assert_eq!(describe_datagram(err), "error 201 \"A Problem\", t 6565");
        let nodes = [
            b"d1:rd2:id20:aaaaaaaaaaaaaaaaaaaa5:nodes26:".as_slice(),
            &[7; 26],
            b"e1:t1:z1:y1:re",
        ]
        .concat();
        assert_eq!(
            describe_datagram(&nodes),
            format!("response, t 7a, id {}, 1 node", "61".repeat(20))
        );
        for line in [describe_datagram(find), describe_datagram(&nodes)] {
            assert!(!line.contains('\n') && !line.contains("b\""), "{line}");
        }
    }
}
