//! Compact node info (BEP 5: 26 bytes, BEP 32: 38 bytes) and compact peer info (6 / 18 bytes).
//!
//! A peer is its IP address then its port, both big-endian. A node is its 20-byte id followed by
//! its compact peer info. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are written in the
//! 4-byte IPv4 form; decoding is literal (18 bytes always give an IPv6 address).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use super::bencode::List;
use crate::id::{ID_LEN, Id};

/// Length of an IPv4 compact peer.
pub const PEER4_LEN: usize = 6;
/// Length of an IPv6 compact peer.
pub const PEER6_LEN: usize = 18;
/// Length of an IPv4 compact node (`nodes`).
pub const NODE4_LEN: usize = ID_LEN + PEER4_LEN;
/// Length of an IPv6 compact node (`nodes6`).
pub const NODE6_LEN: usize = ID_LEN + PEER6_LEN;

/// A DHT node: its id and UDP address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodeInfo {
    /// The node's id.
    pub id: Id,
    /// The node's UDP address.
    pub addr: SocketAddr,
}

impl NodeInfo {
    /// A node from its id and address.
    pub const fn new(id: Id, addr: SocketAddr) -> Self {
        Self { id, addr }
    }
}

/// The address as IPv4 if it is one or an IPv4-mapped IPv6 address.
#[inline]
pub(crate) fn as_v4(addr: &SocketAddr) -> Option<SocketAddrV4> {
    match addr {
        SocketAddr::V4(a) => Some(*a),
        SocketAddr::V6(a) => a
            .ip()
            .to_ipv4_mapped()
            .map(|ip| SocketAddrV4::new(ip, a.port())),
    }
}

/// Writes the compact form of `addr` into `out`; returns its length (6 or 18).
///
/// ```
/// use dht_proto::wire::compact::{decode_peer, encode_peer};
///
/// let addr = "1.2.3.4:6881".parse().unwrap();
/// let mut out = [0u8; 18];
/// let n = encode_peer(&addr, &mut out);
/// assert_eq!(&out[..n], &[1, 2, 3, 4, 0x1a, 0xe1]);
/// assert_eq!(decode_peer(&out[..n]), Some(addr));
/// ```
pub fn encode_peer(addr: &SocketAddr, out: &mut [u8; PEER6_LEN]) -> usize {
    if let Some(v4) = as_v4(addr) {
        let [a, b, c, d] = v4.ip().octets();
        let [p0, p1] = v4.port().to_be_bytes();
        let [o0, o1, o2, o3, o4, o5, ..] = out;
        (*o0, *o1, *o2, *o3, *o4, *o5) = (a, b, c, d, p0, p1);
        return PEER4_LEN;
    }
    let ip = match addr.ip() {
        IpAddr::V6(ip) => ip.octets(),
        IpAddr::V4(ip) => ip.to_ipv6_mapped().octets(),
    };
    let (ip_out, port_out) = out.split_at_mut(16);
    ip_out.copy_from_slice(&ip);
    port_out.copy_from_slice(&addr.port().to_be_bytes());
    PEER6_LEN
}

/// Reads a compact peer of exactly 6 or 18 bytes.
pub fn decode_peer(b: &[u8]) -> Option<SocketAddr> {
    match b.len() {
        PEER4_LEN => {
            let (ip, port) = b.split_first_chunk::<4>()?;
            let port = u16::from_be_bytes(port.try_into().ok()?);
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(*ip), port)))
        }
        PEER6_LEN => {
            let (ip, port) = b.split_first_chunk::<16>()?;
            let port = u16::from_be_bytes(port.try_into().ok()?);
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(*ip),
                port,
                0,
                0,
            )))
        }
        _ => None,
    }
}

/// Writes the compact form of `node` into `out`; returns its length (26 or 38).
pub fn encode_node(node: &NodeInfo, out: &mut [u8; NODE6_LEN]) -> usize {
    let (id, rest) = out.split_at_mut(ID_LEN);
    id.copy_from_slice(node.id.as_bytes());
    let mut peer = [0u8; PEER6_LEN];
    let n = encode_peer(&node.addr, &mut peer);
    if let (Some(dst), Some(src)) = (rest.get_mut(..n), peer.get(..n)) {
        dst.copy_from_slice(src);
    }
    ID_LEN + n
}

/// Reads a compact node of exactly 26 or 38 bytes.
pub fn decode_node(b: &[u8]) -> Option<NodeInfo> {
    let (id, peer) = b.split_at_checked(ID_LEN)?;
    Some(NodeInfo {
        id: Id::from_slice(id)?,
        addr: decode_peer(peer)?,
    })
}

/// A `nodes` or `nodes6` value: compact bytes from a decoded message, or a slice to encode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nodes<'a> {
    /// Concatenated 26-byte IPv4 entries (a trailing partial entry is ignored).
    Compact4(&'a [u8]),
    /// Concatenated 38-byte IPv6 entries (a trailing partial entry is ignored).
    Compact6(&'a [u8]),
    /// Nodes to encode. Under `nodes` only the IPv4 ones are written (IPv4-mapped included),
    /// under `nodes6` only the other IPv6 ones.
    Slice(&'a [NodeInfo]),
}

impl<'a> Nodes<'a> {
    /// The nodes, in order.
    pub fn iter(&self) -> impl Iterator<Item = NodeInfo> + use<'a> {
        let (bytes, size, slice): (&'a [u8], usize, &'a [NodeInfo]) = match *self {
            Self::Compact4(b) => (b, NODE4_LEN, &[]),
            Self::Compact6(b) => (b, NODE6_LEN, &[]),
            Self::Slice(s) => (&[], NODE4_LEN, s),
        };
        bytes
            .chunks_exact(size)
            .filter_map(decode_node)
            .chain(slice.iter().copied())
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        match self {
            Self::Compact4(b) => b.len() / NODE4_LEN,
            Self::Compact6(b) => b.len() / NODE6_LEN,
            Self::Slice(s) => s.len(),
        }
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes after the last whole entry (a truncated entry the decoder ignored): 0 for a
    /// well-formed value.
    ///
    /// ```
    /// use dht_proto::wire::compact::Nodes;
    ///
    /// let bytes = [7u8; 26 + 9];
    /// let nodes = Nodes::Compact4(&bytes);
    /// assert_eq!((nodes.len(), nodes.malformed_tail()), (1, 9));
    /// ```
    pub fn malformed_tail(&self) -> usize {
        match self {
            Self::Compact4(b) => b.len() % NODE4_LEN,
            Self::Compact6(b) => b.len() % NODE6_LEN,
            Self::Slice(_) => 0,
        }
    }
}

/// A `values` list (peers of an info-hash): a validated list of 6- or 18-byte strings from a
/// decoded message, or a slice to encode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peers<'a> {
    /// A decoded `values` list; every item is a 6- or 18-byte string.
    Compact(List<'a>),
    /// Addresses to encode, in order (IPv4-mapped IPv6 addresses as 6 bytes).
    Slice(&'a [SocketAddr]),
}

impl<'a> Peers<'a> {
    /// The peers, in order.
    pub fn iter(&self) -> impl Iterator<Item = SocketAddr> + use<'a> {
        let (list, slice): (Option<List<'a>>, &'a [SocketAddr]) = match *self {
            Self::Compact(l) => (Some(l), &[]),
            Self::Slice(s) => (None, s),
        };
        list.into_iter()
            .flat_map(|l| l.iter())
            .filter_map(|v| v.as_bytes().and_then(decode_peer))
            .chain(slice.iter().copied())
    }

    /// Number of peers.
    pub fn len(&self) -> usize {
        match self {
            Self::Compact(l) => l.len(),
            Self::Slice(s) => s.len(),
        }
    }

    /// Whether there are no peers.
    pub fn is_empty(&self) -> bool {
        match self {
            Self::Compact(l) => l.is_empty(),
            Self::Slice(s) => s.is_empty(),
        }
    }
}

/// A BEP 51 `samples` value: concatenated 20-byte info-hashes, or a slice to encode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Samples<'a> {
    /// Concatenated 20-byte ids (a trailing partial id is ignored).
    Compact(&'a [u8]),
    /// Ids to encode.
    Slice(&'a [Id]),
}

impl<'a> Samples<'a> {
    /// The info-hashes, in order.
    pub fn iter(&self) -> impl Iterator<Item = Id> + use<'a> {
        let (bytes, slice): (&'a [u8], &'a [Id]) = match *self {
            Self::Compact(b) => (b, &[]),
            Self::Slice(s) => (&[], s),
        };
        bytes
            .chunks_exact(ID_LEN)
            .filter_map(Id::from_slice)
            .chain(slice.iter().copied())
    }

    /// Number of info-hashes.
    pub fn len(&self) -> usize {
        match self {
            Self::Compact(b) => b.len() / ID_LEN,
            Self::Slice(s) => s.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
