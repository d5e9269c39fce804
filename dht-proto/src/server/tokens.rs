//! Write tokens: what a node hands out in `get_peers` (and BEP 44 `get`) replies and requires
//! back in `announce_peer` (and `put`).
//!
//! A token proves that the announcing address received a reply from us recently, so nobody can
//! announce on behalf of an address whose traffic they cannot see. A token is
//! `SipHash-2-4(secret, family ‖ ip)` (8 bytes, little-endian), with a 16-byte random secret. Two secrets are kept, the
//! current one and the previous one, and the node rotates them every
//! [`token_rotation`](crate::Config::token_rotation) (5 minutes by default), so a token stays
//! valid for one to two rotation periods.
//!
//! The construction is a keyed pseudo-random function, not a checksum: tokens of other
//! addresses, however many, tell nothing about the token of a new address. (CRC-based tokens
//! are affine in their input, so one token seen for one's own address gives away every other
//! address's token.) SipHash-2-4 is a MAC built for short inputs with a 64-bit output, as
//! strong for an 8-byte token as truncated keyed SHA-1 and about a tenth of its cost (a node
//! computes one token per `get_peers` and two per `announce_peer`).
//!
//! ```
//! use core::net::{IpAddr, Ipv4Addr};
//! use dht_proto::internals::tokens::Tokens;
//! # let mut rng = dht_proto::internals::TestRng(1);
//!
//! let mut tokens = Tokens::new(&mut rng);
//! let ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
//! let token = tokens.issue(ip);
//! assert!(tokens.verify(ip, token.as_bytes()));
//! tokens.rotate(&mut rng);
//! assert!(tokens.verify(ip, token.as_bytes()));
//! tokens.rotate(&mut rng);
//! assert!(!tokens.verify(ip, token.as_bytes()));
//! ```

use core::fmt;
use core::net::IpAddr;

use rand_core::RngCore;

use crate::rng::SipHasher;

/// Length of a [`Token`] in bytes.
pub const TOKEN_LEN: usize = 8;

/// Length of a secret in bytes.
const SECRET_LEN: usize = 16;

/// A write token: 8 opaque bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token([u8; TOKEN_LEN]);

impl Token {
    /// The token's bytes, as they go on the wire.
    pub const fn as_bytes(&self) -> &[u8; TOKEN_LEN] {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(")?;
        crate::id::write_hex(f, &self.0)?;
        f.write_str(")")
    }
}

/// The two token secrets of a node: issues and checks [`Token`]s.
///
/// The node calls [`Tokens::rotate`] every `token_rotation` from its own timer.
#[derive(Clone)]
pub struct Tokens {
    current: [u8; SECRET_LEN],
    previous: [u8; SECRET_LEN],
}

impl Tokens {
    /// Two fresh random secrets (the previous one too, so no token is valid before the first
    /// [`Tokens::issue`]).
    pub fn new(rng: &mut impl RngCore) -> Self {
        let mut current = [0u8; SECRET_LEN];
        let mut previous = [0u8; SECRET_LEN];
        rng.fill_bytes(&mut current);
        rng.fill_bytes(&mut previous);
        Self { current, previous }
    }

    /// The token for `ip` under the current secret.
    ///
    /// IPv4-mapped IPv6 addresses get the token of the IPv4 address.
    pub fn issue(&self, ip: IpAddr) -> Token {
        token(&self.current, ip)
    }

    /// Whether `token` is the token of `ip` under the current or the previous secret.
    ///
    /// The comparison takes the same time whatever the bytes (only the length is checked
    /// first), so timing does not reveal how much of a guess was right.
    pub fn verify(&self, ip: IpAddr, token_bytes: &[u8]) -> bool {
        let Ok(given) = <[u8; TOKEN_LEN]>::try_from(token_bytes) else {
            return false;
        };
        // The current secret first: a token issued since the last rotation (most of those
        // that come back) costs one hash. That a token was current rather than previous is no
        // secret (both are accepted), so the early answer gives nothing away.
        constant_time_eq(&token(&self.current, ip).0, &given)
            || constant_time_eq(&token(&self.previous, ip).0, &given)
    }

    /// Makes the current secret the previous one and draws a new current secret.
    ///
    /// Tokens issued before the previous rotation stop being valid.
    pub fn rotate(&mut self, rng: &mut impl RngCore) {
        self.previous = self.current;
        rng.fill_bytes(&mut self.current);
    }
}

impl fmt::Debug for Tokens {
    /// Never shows the secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens").finish_non_exhaustive()
    }
}

/// `SipHash-2-4(secret, family ‖ ip)`, little-endian.
fn token(secret: &[u8; SECRET_LEN], ip: IpAddr) -> Token {
    let (k0, k1) = secret.split_at(8);
    let word = |s: &[u8]| u64::from_le_bytes(s.try_into().unwrap_or([0; 8]));
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    };
    // `family ‖ ip`: 5 or 17 bytes.
    let hash = match ip {
        IpAddr::V4(v4) => {
            // The 5 bytes as one little-endian word, without a slice.
            let [a, b, c, d] = v4.octets();
            let message = u64::from_le_bytes([4, a, b, c, d, 0, 0, 0]);
            SipHasher::<2, 4>::hash_short(word(k0), word(k1), message, 5)
        }
        IpAddr::V6(v6) => {
            let mut message = [6u8; 17];
            let (_family, rest) = message.split_at_mut(1);
            rest.copy_from_slice(&v6.octets());
            SipHasher::<2, 4>::hash(word(k0), word(k1), &message)
        }
    };
    Token(hash.to_le_bytes())
}

fn constant_time_eq(a: &[u8; TOKEN_LEN], b: &[u8; TOKEN_LEN]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    core::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests;
