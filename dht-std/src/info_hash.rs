//! Reading an info-hash the way users paste it: hex, base32 or a `magnet:` URI.

use core::fmt;

use dht_proto::Id;

/// Why a string is not an info-hash.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseInfoHashError {
    /// Neither 40 hex digits, 32 base32 characters nor a `magnet:` URI.
    Malformed,
    /// A `magnet:` URI without a BitTorrent `xt` (`urn:btih:` or `urn:btmh:1220`) parameter.
    NoInfoHash,
}

impl fmt::Display for ParseInfoHashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed => {
                f.write_str("expected 40 hex digits, 32 base32 characters or a magnet: URI")
            }
            Self::NoInfoHash => {
                f.write_str("the magnet URI has no `xt=urn:btih:` or `xt=urn:btmh:` info-hash")
            }
        }
    }
}

impl core::error::Error for ParseInfoHashError {}

/// Reads an info-hash: 40 hex digits, 32 base32 characters (RFC 4648, as in old magnet links),
/// or a `magnet:?xt=urn:btih:...` URI. A BitTorrent v2 magnet (`xt=urn:btmh:1220` + SHA-256)
/// gives the first 20 bytes of the SHA-256 hash, which is what v2 swarms use in the DHT
/// (BEP 52).
///
/// ```
/// use dht_std::parse_info_hash;
///
/// let hex = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";
/// let magnet = format!("magnet:?xt=urn:btih:{}&dn=example", hex.to_uppercase());
/// assert_eq!(parse_info_hash(&magnet).unwrap(), parse_info_hash(hex).unwrap());
/// assert!(parse_info_hash("not-a-hash").is_err());
/// ```
///
/// # Errors
///
/// [`ParseInfoHashError`] when the string is none of the above.
pub fn parse_info_hash(s: &str) -> Result<Id, ParseInfoHashError> {
    let s = s.trim();
    if let Some(query) = strip_prefix_ignore_case(s, "magnet:") {
        return from_magnet(query);
    }
    bare(s).ok_or(ParseInfoHashError::Malformed)
}

fn from_magnet(rest: &str) -> Result<Id, ParseInfoHashError> {
    let query = rest.strip_prefix('?').unwrap_or(rest);
    let mut v2 = None;
    for pair in query.split('&') {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        // Multiple exact topics are numbered `xt.1`, `xt.2`, ...
        if key != "xt" && !key.starts_with("xt.") {
            continue;
        }
        let value = percent_decode(value).ok_or(ParseInfoHashError::Malformed)?;
        if let Some(hash) = strip_prefix_ignore_case(&value, "urn:btih:") {
            return bare(hash).ok_or(ParseInfoHashError::Malformed);
        }
        if let Some(multihash) = strip_prefix_ignore_case(&value, "urn:btmh:") {
            // Multihash: 0x12 (SHA-256), 0x20 (32 bytes), then the digest.
            let bytes = hex::decode(multihash)
                .ok()
                .ok_or(ParseInfoHashError::Malformed)?;
            match bytes.as_slice() {
                [0x12, 0x20, digest @ ..] if digest.len() == 32 => {
                    v2 = digest.get(..20).and_then(Id::from_slice);
                }
                _ => return Err(ParseInfoHashError::Malformed),
            }
        }
    }
    v2.ok_or(ParseInfoHashError::NoInfoHash)
}

/// 40 hex digits or 32 base32 characters.
fn bare(s: &str) -> Option<Id> {
    match s.len() {
        40 => hex::decode(s).ok().and_then(|b| Id::from_slice(&b)),
        32 => base32(s).and_then(|b| Id::from_slice(&b)),
        _ => None,
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
}

/// RFC 4648 base32 without padding, either case.
fn base32(s: &str) -> Option<Vec<u8>> {
    data_encoding::BASE32_NOPAD
        .decode(s.to_ascii_uppercase().as_bytes())
        .ok()
}

/// `%XX` escapes and `+` as a space, as in URI query strings.
fn percent_decode(s: &str) -> Option<String> {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";

    fn id() -> Id {
        HEX.parse().unwrap()
    }

    #[test]
    fn hex_either_case() {
        assert_eq!(parse_info_hash(HEX), Ok(id()));
        assert_eq!(parse_info_hash(&HEX.to_uppercase()), Ok(id()));
        assert_eq!(parse_info_hash(&format!(" {HEX}\n")), Ok(id()));
    }

    #[test]
    fn base32_matches_hex() {
        // 0xc1 0x2f 0xe1 0xc0 0x6b = 11000 00100 10111 11110 00011 10000 00011 01011
        //                          = Y      E     X     6     D     Q     D     L
        let b = base32("YEX6DQDL").unwrap();
        assert_eq!(b, vec![0xc1, 0x2f, 0xe1, 0xc0, 0x6b]);
        let all_a = "A".repeat(32);
        assert_eq!(parse_info_hash(&all_a), Ok(Id::from([0; 20])));
        let all_7 = "7".repeat(32);
        assert_eq!(parse_info_hash(&all_7), Ok(Id::from([0xff; 20])));
    }

    #[test]
    fn magnets() {
        let plain = format!("magnet:?xt=urn:btih:{HEX}&dn=x&tr=udp%3A%2F%2Ft%3A1");
        assert_eq!(parse_info_hash(&plain), Ok(id()));
        let escaped = format!("MAGNET:?dn=a+b&xt=urn%3Abtih%3A{HEX}");
        assert_eq!(parse_info_hash(&escaped), Ok(id()));
        let numbered = format!("magnet:?xt.1=urn:btih:{HEX}");
        assert_eq!(parse_info_hash(&numbered), Ok(id()));
        let digest = "ab".repeat(32);
        let v2 = format!("magnet:?xt=urn:btmh:1220{digest}");
        assert_eq!(parse_info_hash(&v2), Ok(Id::from([0xab; 20])));
        // A hybrid magnet: the v1 hash wins.
        let hybrid = format!("magnet:?xt=urn:btmh:1220{digest}&xt=urn:btih:{HEX}");
        assert_eq!(parse_info_hash(&hybrid), Ok(id()));
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "xyz",
            &HEX[..39],
            &format!("{HEX}0"),
            &"g".repeat(40),
            &"1".repeat(32),
            "magnet:?xt=urn:btih:1234",
            "magnet:?xt=urn:btmh:1120abcd",
            "magnet:?xt=urn:btih:%zz",
        ] {
            assert_eq!(
                parse_info_hash(bad),
                Err(ParseInfoHashError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_info_hash("magnet:?dn=nothing"),
            Err(ParseInfoHashError::NoInfoHash)
        );
    }
}
