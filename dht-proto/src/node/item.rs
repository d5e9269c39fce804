//! BEP 44 items as the application hands them to [`Node::put_item`](crate::Node::put_item).

use alloc::vec::Vec;

use crate::bep44::{MAX_SALT_LEN, MAX_VALUE_LEN, immutable_target, mutable_target};
use crate::id::Id;
use crate::wire::bencode::{self, DecodeLimits};

/// A BEP 44 item to store in the DHT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutItem {
    /// An immutable item: its bencoded value. Its target is the SHA-1 of these bytes.
    Immutable(Vec<u8>),
    /// A mutable item, signed by the application (the core holds no private keys).
    Mutable(MutableItem),
}

/// A signed mutable item (BEP 44). The signature covers
/// [`signing_message`](crate::bep44::signing_message)`(salt, seq, value)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MutableItem {
    /// The ed25519 public key.
    pub key: [u8; 32],
    /// The salt (empty for none), at most 64 bytes.
    pub salt: Vec<u8>,
    /// The sequence number.
    pub seq: i64,
    /// The ed25519 signature.
    pub signature: [u8; 64],
    /// The bencoded value.
    pub value: Vec<u8>,
    /// Compare-and-swap: store only if the stored sequence number is this one.
    pub cas: Option<i64>,
}

impl PutItem {
    /// The item's target: SHA-1 of the value (immutable) or of the key and salt (mutable).
    pub fn target(&self) -> Id {
        match self {
            Self::Immutable(v) => immutable_target(v),
            Self::Mutable(m) => mutable_target(&m.key, &m.salt),
        }
    }

    /// The bencoded value.
    pub fn value(&self) -> &[u8] {
        match self {
            Self::Immutable(v) => v,
            Self::Mutable(m) => &m.value,
        }
    }

    /// Whether the value is one well-formed bencoded value of at most 1000 bytes and the salt
    /// at most 64 bytes, as BEP 44 requires.
    pub fn is_valid(&self) -> bool {
        let value = self.value();
        let salt_ok = match self {
            Self::Immutable(_) => true,
            Self::Mutable(m) => m.salt.len() <= MAX_SALT_LEN,
        };
        salt_ok
            && value.len() <= MAX_VALUE_LEN
            && bencode::decode(value, &DecodeLimits::default()).is_ok()
    }
}
