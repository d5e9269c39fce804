//! BEP 44 items: Ed25519 keys and key files, signing mutable items, and the signature check
//! [`Dht::bind`](crate::Dht::bind) installs in every node.
//!
//! # Key files
//!
//! A key file is text: one line of 64 hex digits, the 32-byte Ed25519 secret key (the seed
//! RFC 8032 calls the private key). Empty lines and lines starting with `#` are ignored, and
//! [`Keypair::save`] writes a comment with the public key above the secret. The file is
//! created readable by its owner only (mode 0600 on Unix).

use core::fmt;
use std::io::Write as _;
use std::path::Path;

use dht_proto::bep44::{mutable_target, signing_message};
use dht_proto::{Ed25519Verifier, Id, MutableItem, PutItem};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

/// Verifies BEP 44 signatures with `ed25519-dalek` (strict verification: no malleable or
/// small-order signatures).
#[derive(Clone, Copy, Debug, Default)]
pub struct DalekVerifier;

impl Ed25519Verifier for DalekVerifier {
    fn verify(&self, public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(public_key) else {
            return false;
        };
        let signature = ed25519_dalek::Signature::from_bytes(signature);
        key.verify_strict(message, &signature).is_ok()
    }
}

/// Why a key file could not be used.
#[derive(Debug)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Reading or writing failed.
    Io(std::io::Error),
    /// The file holds no line of exactly 64 hex digits.
    Malformed,
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => e.fmt(f),
            Self::Malformed => f.write_str("expected one line of 64 hex digits (the secret key)"),
        }
    }
}

impl core::error::Error for KeyFileError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::Malformed => None,
        }
    }
}

impl From<std::io::Error> for KeyFileError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// An Ed25519 key pair that signs BEP 44 mutable items. Its `Debug` form shows the public key
/// only.
#[derive(Clone)]
pub struct Keypair(SigningKey);

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({})", hex(&self.public_key()))
    }
}

impl Keypair {
    /// A new key from the operating system's randomness.
    pub fn generate() -> Self {
        Self::from_secret(&crate::os_seed())
    }

    /// The key pair of a 32-byte secret key.
    pub fn from_secret(secret: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(secret))
    }

    /// The 32-byte secret key.
    pub fn secret(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The 32-byte public key (BEP 44 `k`).
    pub fn public_key(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    /// The target of this key's item under `salt` (SHA-1 of the key and salt).
    pub fn target(&self, salt: &[u8]) -> Id {
        mutable_target(&self.public_key(), salt)
    }

    /// Signs `value` (one bencoded value) as version `seq` under `salt`. With `cas`, storing
    /// nodes accept it only while their stored version is `cas` (compare-and-swap).
    pub fn sign(&self, value: Vec<u8>, salt: &[u8], seq: i64, cas: Option<i64>) -> PutItem {
        let signature = self.0.sign(&signing_message(salt, seq, &value)).to_bytes();
        PutItem::Mutable(MutableItem {
            key: self.public_key(),
            salt: salt.to_vec(),
            seq,
            signature,
            value,
            cas,
        })
    }

    /// Reads a key file (see the [module](self) docs).
    ///
    /// # Errors
    ///
    /// [`KeyFileError::Io`] when it cannot be read; [`KeyFileError::Malformed`].
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let text = std::fs::read_to_string(path)?;
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .ok_or(KeyFileError::Malformed)?;
        let secret = parse_hex32(line).ok_or(KeyFileError::Malformed)?;
        Ok(Self::from_secret(&secret))
    }

    /// Writes a new key file; fails if `path` exists (a key is never overwritten).
    ///
    /// # Errors
    ///
    /// [`KeyFileError::Io`] (`AlreadyExists` when the file exists).
    pub fn save(&self, path: &Path) -> Result<(), KeyFileError> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path)?;
        writeln!(
            file,
            "# BEP 44 Ed25519 secret key; public key {}",
            hex(&self.public_key())
        )?;
        writeln!(file, "{}", hex(&self.secret()))?;
        file.sync_all()?;
        Ok(())
    }

    /// Reads `path`, or creates it with a new key when it does not exist. The flag tells
    /// whether it was created.
    ///
    /// # Errors
    ///
    /// As [`Keypair::load`] and [`Keypair::save`].
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), KeyFileError> {
        match Self::load(path) {
            Ok(k) => Ok((k, false)),
            Err(KeyFileError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                let k = Self::generate();
                k.save(path)?;
                Ok((k, true))
            }
            Err(e) => Err(e),
        }
    }
}

/// Lowercase hex digits.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Exactly 64 hex digits.
pub fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        let pair = core::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BEP 44's test vector 1 (mutable, no salt; its private key is in expanded form, so only
    /// the public key and signature are used): the signature verifies, a flipped bit does not.
    #[test]
    fn bep44_vector_verifies() {
        let key = parse_hex32("77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548")
            .unwrap();
        let sig_hex = "305ac8aeb6c9c151fa120f120ea2cfb923564e11552d06a5d856091e5e853cff\
                       1260d3f39e4999684aa92eb73ffd136e6f4f3ecbfda0ce53a1608ecd7ae21f01";
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&parse_hex32(&sig_hex[..64]).unwrap());
        sig[32..].copy_from_slice(&parse_hex32(&sig_hex[64..]).unwrap());
        let msg = signing_message(b"", 1, b"12:Hello World!");
        assert!(DalekVerifier.verify(&key, &msg, &sig));
        assert_eq!(
            mutable_target(&key, b"").to_string(),
            "4a533d47ec9c7d95b1ad75f576cffc641853b750"
        );
        let mut bad = sig;
        bad[0] ^= 1;
        assert!(!DalekVerifier.verify(&key, &msg, &bad));
        assert!(!DalekVerifier.verify(&[0xff; 32], &msg, &sig));
    }

    /// What `sign` produces verifies under its salt and sequence number only.
    #[test]
    fn sign_then_verify() {
        let k = Keypair::from_secret(&[9; 32]);
        let PutItem::Mutable(item) = k.sign(b"3:abc".to_vec(), b"salt", 7, Some(6)) else {
            panic!()
        };
        assert_eq!((item.seq, item.cas, item.key), (7, Some(6), k.public_key()));
        assert_eq!(k.target(b"salt"), mutable_target(&item.key, b"salt"));
        let msg = signing_message(b"salt", 7, b"3:abc");
        assert!(DalekVerifier.verify(&item.key, &msg, &item.signature));
        let other_seq = signing_message(b"salt", 8, b"3:abc");
        assert!(!DalekVerifier.verify(&item.key, &other_seq, &item.signature));
        assert!(!format!("{k:?}").contains(&hex(&k.secret())));
    }

    #[test]
    fn key_file_round_trip() {
        let dir = std::env::temp_dir().join(format!("dht-key-test-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("key");
        let _ = std::fs::remove_file(&path);
        let (k, created) = Keypair::load_or_create(&path).unwrap();
        assert!(created);
        let (again, created) = Keypair::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(k.secret(), again.secret());
        assert!(
            k.save(&path).is_err(),
            "an existing key is never overwritten"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "# comment\n\nnot hex\n").unwrap();
        assert!(matches!(Keypair::load(&path), Err(KeyFileError::Malformed)));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
