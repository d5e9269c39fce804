//! BEP 44 items for applications: targets, the bytes a mutable item's signature covers, and
//! the [`Ed25519Verifier`] a node checks signatures with.
//!
//! The core carries no cryptography: signing is the application's, and verifying goes through
//! the verifier it gives [`Node::with_ed25519_verifier`](crate::Node::with_ed25519_verifier).

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::id::Id;
use crate::wire::encode::Writer;

/// Largest bencoded value a node stores (BEP 44: 1000 bytes).
pub const MAX_VALUE_LEN: usize = 1000;

/// Longest salt (BEP 44: 64 bytes).
pub const MAX_SALT_LEN: usize = 64;

/// Checks Ed25519 signatures for mutable items.
///
/// `dht-proto` does not implement Ed25519; the application plugs in a library (for example
/// `ed25519-dalek`'s `VerifyingKey::verify_strict`). The node owns its verifier as a type
/// parameter, so nothing more than this trait is asked of it: a verifier that is not `Send`
/// makes a node that is not `Send`, which is what a single-threaded `no_std` program wants.
/// References and boxes of verifiers are verifiers too (`Box<dyn Ed25519Verifier + Send>`
/// picks one at run time).
pub trait Ed25519Verifier {
    /// Whether `signature` is a valid signature of `message` by `public_key`.
    fn verify(&self, public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool;
}

impl<T: Ed25519Verifier + ?Sized> Ed25519Verifier for &T {
    fn verify(&self, public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
        (**self).verify(public_key, message, signature)
    }
}

impl<T: Ed25519Verifier + ?Sized> Ed25519Verifier for Box<T> {
    fn verify(&self, public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
        (**self).verify(public_key, message, signature)
    }
}

/// The verifier of a node that has none ([`Node::new`](crate::Node::new)): there is no value
/// of this type, so such a node refuses to store mutable items (error 202) and reports the
/// mutable items it finds unverified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoVerifier {}

impl Ed25519Verifier for NoVerifier {
    fn verify(&self, _: &[u8; 32], _: &[u8], _: &[u8; 64]) -> bool {
        match *self {}
    }
}

/// The target of an immutable item: SHA-1 of its bencoded value.
///
/// ```
/// use dht_proto::bep44::immutable_target;
///
/// let target = immutable_target(b"12:Hello World!");
/// assert_eq!(target.to_string(), "e5f96f6f38320f0f33959cb4d3d656452117aadb");
/// ```
pub fn immutable_target(v: &[u8]) -> Id {
    Id::new(sha1_smol::Sha1::from(v).digest().bytes())
}

/// The target of a mutable item: SHA-1 of the public key followed by the salt (empty when
/// there is none).
pub fn mutable_target(k: &[u8; 32], salt: &[u8]) -> Id {
    let mut h = sha1_smol::Sha1::new();
    h.update(k);
    h.update(salt);
    Id::new(h.digest().bytes())
}

/// The bytes a mutable item's signature covers: `4:salt<len>:<salt>` (only when the salt is
/// non-empty), then `3:seqi<seq>e1:v`, then the bencoded value: the entries of the item's
/// dictionary without its `d`/`e`, written by the codec's [`Writer`].
///
/// ```
/// use dht_proto::bep44::signing_message;
///
/// assert_eq!(signing_message(b"", 1, b"12:Hello World!"), b"3:seqi1e1:v12:Hello World!");
/// assert_eq!(
///     signing_message(b"foobar", 1, b"12:Hello World!"),
///     b"4:salt6:foobar3:seqi1e1:v12:Hello World!"
/// );
/// ```
pub fn signing_message(salt: &[u8], seq: i64, v: &[u8]) -> Vec<u8> {
    let write = |w: &mut Writer<'_>| {
        if !salt.is_empty() {
            w.bytes(b"salt");
            w.bytes(salt);
        }
        w.bytes(b"seq");
        w.int(seq);
        w.bytes(b"v");
        w.raw(v);
    };
    let mut probe = Writer::new(&mut []);
    write(&mut probe);
    let mut out = alloc::vec![0u8; probe.len()];
    let mut w = Writer::new(&mut out);
    write(&mut w);
    // The buffer has exactly the length the probe measured.
    let len = w.finish().unwrap_or(0);
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_message_extremes() {
        assert_eq!(signing_message(b"", 0, b"i1e"), b"3:seqi0e1:vi1e");
        assert_eq!(
            signing_message(b"s", i64::MIN, b"0:"),
            b"4:salt1:s3:seqi-9223372036854775808e1:v0:"
        );
        assert_eq!(
            signing_message(b"", i64::MAX, b"0:"),
            b"3:seqi9223372036854775807e1:v0:"
        );
    }

    struct Always;
    impl Ed25519Verifier for Always {
        fn verify(&self, _: &[u8; 32], _: &[u8], _: &[u8; 64]) -> bool {
            true
        }
    }

    #[test]
    fn boxes_and_references_verify_through() {
        let boxed: Box<dyn Ed25519Verifier> = Box::new(Always);
        assert!(boxed.verify(&[0; 32], b"", &[0; 64]));
        let by_ref: &dyn Ed25519Verifier = &&Always;
        assert!(by_ref.verify(&[0; 32], b"", &[0; 64]));
    }

    /// A verifier that is neither `Send` nor `Sync`, as a single-threaded program may have.
    struct Local(core::marker::PhantomData<alloc::rc::Rc<()>>);
    impl Ed25519Verifier for Local {
        fn verify(&self, _: &[u8; 32], _: &[u8], _: &[u8; 64]) -> bool {
            false
        }
    }

    fn send_and_sync<T: Send + Sync>() {}

    #[test]
    fn verifiers_need_not_be_send() {
        let config = crate::Config::local_testing([1; 32]);
        let node = crate::Node::with_ed25519_verifier(
            config,
            crate::Instant::ZERO,
            Local(core::marker::PhantomData),
        );
        assert!(node.is_ok());
        // Without a verifier, or with a thread-safe one, a node can move between threads.
        send_and_sync::<crate::Node>();
        send_and_sync::<crate::Node<Box<dyn Ed25519Verifier + Send + Sync>>>();
    }
}
