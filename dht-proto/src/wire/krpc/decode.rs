//! Decoding: one validating pass that fills the typed fields.

use super::*;
use crate::id::ID_LEN;
use crate::wire::bencode::{DecodeErrorKind, read_string, read_value};
use crate::wire::compact::{PEER4_LEN, PEER6_LEN, decode_peer};

#[inline]
fn err(kind: DecodeErrorKind, offset: usize) -> DecodeError {
    DecodeError::new(kind, offset)
}

/// Marks key `bit` as seen; a second sighting is a duplicate.
#[inline]
fn mark(seen: &mut u32, bit: u32, key_offset: usize) -> Result<(), DecodeError> {
    if *seen & bit != 0 {
        return Err(err(DecodeErrorKind::DuplicateKey, key_offset));
    }
    *seen |= bit;
    Ok(())
}

/// An unknown key may not repeat the key before it (the bencode rule; known keys are tracked by
/// [`mark`], in any order).
#[inline]
fn unknown_key(prev: &mut Option<&[u8]>, key: &[u8], key_at: usize) -> Result<(), DecodeError> {
    if *prev == Some(key) {
        return Err(err(DecodeErrorKind::DuplicateKey, key_at));
    }
    Ok(())
}

/// Validates a value, then requires it to be a byte string.
#[inline(always)]
fn bytes_at<'a>(
    p: &mut Parser<'a>,
    depth: usize,
    name: &'static str,
) -> Result<&'a [u8], DecodeError> {
    let start = p.offset();
    if matches!(p.peek(), Some(b'0'..=b'9')) {
        return p.string();
    }
    p.value(depth)?;
    Err(err(DecodeErrorKind::WrongType(name), start))
}

/// Validates a value, then requires it to be an integer.
#[inline]
fn int_at(p: &mut Parser<'_>, depth: usize, name: &'static str) -> Result<i64, DecodeError> {
    let start = p.offset();
    if p.peek() == Some(b'i') {
        return p.integer();
    }
    p.value(depth)?;
    Err(err(DecodeErrorKind::WrongType(name), start))
}

/// A byte string of exactly `N` bytes.
#[inline]
fn array_at<'a, const N: usize>(
    p: &mut Parser<'a>,
    depth: usize,
    name: &'static str,
) -> Result<&'a [u8; N], DecodeError> {
    let start = p.offset();
    let b = bytes_at(p, depth, name)?;
    b.try_into()
        .map_err(|_| err(DecodeErrorKind::InvalidValue(name), start))
}

/// A byte string whose length is a multiple of `unit`.
#[inline]
fn chunks_at<'a>(
    p: &mut Parser<'a>,
    depth: usize,
    name: &'static str,
    unit: usize,
) -> Result<&'a [u8], DecodeError> {
    let start = p.offset();
    let b = bytes_at(p, depth, name)?;
    if b.len() % unit != 0 {
        return Err(err(DecodeErrorKind::InvalidValue(name), start));
    }
    Ok(b)
}

/// `values`: a list of 6- or 18-byte strings, validated in one pass.
fn peers_at<'a>(p: &mut Parser<'a>, depth: usize) -> Result<List<'a>, DecodeError> {
    const NAME: &str = "values";
    let start = p.offset();
    if p.peek() != Some(b'l') {
        p.value(depth)?;
        return Err(err(DecodeErrorKind::WrongType(NAME), start));
    }
    p.enter(depth + 1)?;
    loop {
        let item = p.offset();
        match p.peek() {
            Some(b'e') => {
                p.bump();
                return Ok(List::from_validated(p.since(start)));
            }
            Some(b'0'..=b'9') => {
                p.count_element()?;
                let s = p.string()?;
                if s.len() != PEER4_LEN && s.len() != PEER6_LEN {
                    return Err(err(DecodeErrorKind::InvalidValue(NAME), item));
                }
            }
            None => return Err(p.error(DecodeErrorKind::UnexpectedEnd)),
            Some(_) => {
                p.count_element()?;
                p.value(depth + 1)?;
                return Err(err(DecodeErrorKind::WrongType(NAME), item));
            }
        }
    }
}

#[inline]
fn id_at(p: &mut Parser<'_>, depth: usize, name: &'static str) -> Result<Id, DecodeError> {
    array_at::<ID_LEN>(p, depth, name).map(|b| Id::new(*b))
}

/// The `r` dictionary, parsed in the same pass as its validation.
fn response_at<'a>(p: &mut Parser<'a>) -> Result<Response<'a>, DecodeError> {
    const D: usize = 2;
    let start = p.offset();
    if p.peek() != Some(b'd') {
        p.value(1)?;
        return Err(err(DecodeErrorKind::WrongType("r"), start));
    }
    p.enter(D)?;
    let mut r = Response::new(Id::ZERO);
    let (mut seen, mut prev, mut unknown) = (0u32, None, false);
    loop {
        let key_at = p.offset();
        let Some(key) = p.key_unchecked()? else {
            break;
        };
        let bit = match key {
            b"id" => {
                r.id = id_at(p, D, "id")?;
                1
            }
            b"nodes" => {
                // Whole entries are used and a trailing partial one is ignored (some
                // implementations cut `nodes` at the first NUL byte); see
                // `Nodes::malformed_tail`.
                r.nodes = Some(Nodes::Compact4(bytes_at(p, D, "nodes")?));
                1 << 1
            }
            b"nodes6" => {
                r.nodes6 = Some(Nodes::Compact6(bytes_at(p, D, "nodes6")?));
                1 << 2
            }
            b"values" => {
                r.values = Some(Peers::Compact(peers_at(p, D)?));
                1 << 3
            }
            b"token" => {
                r.token = Some(bytes_at(p, D, "token")?);
                1 << 4
            }
            b"samples" => {
                r.samples = Some(Samples::Compact(chunks_at(p, D, "samples", ID_LEN)?));
                1 << 5
            }
            b"num" => {
                r.num = Some(int_at(p, D, "num")?);
                1 << 6
            }
            b"interval" => {
                r.interval = Some(int_at(p, D, "interval")?);
                1 << 7
            }
            b"v" => {
                let v = p.offset();
                p.value(D)?;
                r.value = Some(p.since(v));
                1 << 8
            }
            b"k" => {
                r.key = Some(array_at(p, D, "k")?);
                1 << 9
            }
            b"sig" => {
                r.signature = Some(array_at(p, D, "sig")?);
                1 << 10
            }
            b"seq" => {
                r.seq = Some(int_at(p, D, "seq")?);
                1 << 11
            }
            b"BFsd" => {
                r.bf_seeds = Some(array_at(p, D, "BFsd")?);
                1 << 12
            }
            b"BFpe" => {
                r.bf_peers = Some(array_at(p, D, "BFpe")?);
                1 << 13
            }
            _ => {
                unknown_key(&mut prev, key, key_at)?;
                p.value(D)?;
                unknown = true;
                0
            }
        };
        if bit != 0 {
            mark(&mut seen, bit, key_at)?;
        }
        prev = Some(key);
    }
    if seen & 1 == 0 {
        return Err(err(DecodeErrorKind::MissingKey("id"), start));
    }
    if unknown {
        r.extra = Some(Dict::from_validated(p.since(start)));
    }
    Ok(r)
}

pub(super) fn decode_message<'a>(
    input: &'a [u8],
    limits: &DecodeLimits,
) -> Result<Message<'a>, DecodeError> {
    let mut p = Parser::new(input, limits);
    match p.peek() {
        Some(b'd') => p.enter(1)?,
        Some(_) => {
            p.value(0)?;
            return Err(err(DecodeErrorKind::WrongType("message"), 0));
        }
        None => return Err(p.error(DecodeErrorKind::UnexpectedEnd)),
    }
    let mut t = None;
    let mut y = None;
    let mut q = None;
    let mut a: Option<ParsedArgs<'a>> = None;
    let mut r = None;
    let mut e = None;
    let mut version = None;
    let mut ip = None;
    let mut read_only = false;
    let (mut seen, mut prev) = (0u32, None);
    loop {
        let key_at = p.offset();
        let Some(key) = p.key_unchecked()? else {
            break;
        };
        let at = p.offset();
        let bit = match key {
            b"t" => {
                t = Some((bytes_at(&mut p, 1, "t")?, at));
                1
            }
            b"y" => {
                y = Some((bytes_at(&mut p, 1, "y")?, at));
                1 << 1
            }
            b"q" => {
                q = Some(bytes_at(&mut p, 1, "q")?);
                1 << 2
            }
            b"a" => {
                let slot = a.get_or_insert_with(|| ParsedArgs {
                    dict: Dict::EMPTY,
                    at: 0,
                    args: Args::default(),
                    problems: 0,
                });
                args_at(&mut p, slot)?;
                1 << 3
            }
            b"r" => {
                r = Some(response_at(&mut p)?);
                1 << 4
            }
            b"e" => {
                e = Some(error_at(&mut p)?);
                1 << 5
            }
            b"v" => {
                version = Some(bytes_at(&mut p, 1, "v")?);
                1 << 6
            }
            b"ip" => {
                let b = bytes_at(&mut p, 1, "ip")?;
                ip = Some(decode_peer(b).ok_or(err(DecodeErrorKind::InvalidValue("ip"), at))?);
                1 << 7
            }
            b"ro" => {
                read_only = int_at(&mut p, 1, "ro")? != 0;
                1 << 8
            }
            _ => {
                unknown_key(&mut prev, key, key_at)?;
                p.value(1)?;
                0
            }
        };
        if bit != 0 {
            mark(&mut seen, bit, key_at)?;
        }
        prev = Some(key);
    }
    p.finish()?;

    let (transaction_id, t_at) = t.ok_or(err(DecodeErrorKind::MissingKey("t"), 0))?;
    if !(1..=MAX_TRANSACTION_ID_LEN).contains(&transaction_id.len()) {
        return Err(err(DecodeErrorKind::InvalidValue("t"), t_at));
    }
    let (y, y_at) = y.ok_or(err(DecodeErrorKind::MissingKey("y"), 0))?;
    let body = match y {
        b"q" => {
            let method = q.ok_or(err(DecodeErrorKind::MissingKey("q"), 0))?;
            let a = a.as_ref().ok_or(err(DecodeErrorKind::MissingKey("a"), 0))?;
            Body::Query(query_from_args(method, a)?)
        }
        b"r" => Body::Response(r.ok_or(err(DecodeErrorKind::MissingKey("r"), 0))?),
        b"e" => Body::Error(e.ok_or(err(DecodeErrorKind::MissingKey("e"), 0))??),
        _ => return Err(err(DecodeErrorKind::InvalidValue("y"), y_at)),
    };
    Ok(Message {
        transaction_id,
        version,
        ip,
        read_only,
        body,
    })
}

/// The `e` list, read in the same pass as its validation. Its content only matters for an
/// error message, so a bad content is returned as the inner `Err` for the caller to report
/// then.
fn error_at<'a>(p: &mut Parser<'a>) -> Result<Result<KrpcError<'a>, DecodeError>, DecodeError> {
    const D: usize = 2;
    let at = p.offset();
    if p.peek() != Some(b'l') {
        p.value(1)?;
        return Err(err(DecodeErrorKind::WrongType("e"), at));
    }
    p.enter(D)?;
    let mut code = None;
    let mut message: Option<&[u8]> = None;
    let mut wrong = false;
    for index in 0usize.. {
        match p.peek() {
            Some(b'e') => {
                p.bump();
                break;
            }
            None => return Err(p.error(DecodeErrorKind::UnexpectedEnd)),
            Some(_) => p.count_element()?,
        }
        match index {
            0 => {
                code = opt_int(p, D)?;
                wrong |= code.is_none();
            }
            1 => {
                message = opt_bytes(p, D)?;
                wrong |= message.is_none();
            }
            _ => {
                p.value(D)?;
            }
        }
    }
    Ok(match (code, wrong) {
        (Some(code), false) => Ok(KrpcError {
            code,
            message: message.unwrap_or_default(),
        }),
        (None, false) => Err(err(DecodeErrorKind::InvalidValue("e"), at)),
        (_, true) => Err(err(DecodeErrorKind::WrongType("e"), at)),
    })
}

/// Bits of the query argument keys.
mod arg {
    pub(super) const ID: u32 = 1;
    pub(super) const TARGET: u32 = 1 << 1;
    pub(super) const INFO_HASH: u32 = 1 << 2;
    pub(super) const PORT: u32 = 1 << 3;
    pub(super) const IMPLIED_PORT: u32 = 1 << 4;
    pub(super) const TOKEN: u32 = 1 << 5;
    pub(super) const WANT: u32 = 1 << 6;
    pub(super) const NOSEED: u32 = 1 << 7;
    pub(super) const SCRAPE: u32 = 1 << 8;
    pub(super) const SEED: u32 = 1 << 9;
    pub(super) const SEQ: u32 = 1 << 10;
    pub(super) const CAS: u32 = 1 << 11;
    pub(super) const SALT: u32 = 1 << 12;
    pub(super) const K: u32 = 1 << 13;
    pub(super) const SIG: u32 = 1 << 14;
    pub(super) const V: u32 = 1 << 15;
}

/// The arguments a known method may carry, read from a validated `a` dictionary.
#[derive(Default)]
struct Args<'a> {
    seen: u32,
    id: Option<&'a [u8; ID_LEN]>,
    target: Option<&'a [u8; ID_LEN]>,
    info_hash: Option<&'a [u8; ID_LEN]>,
    port: Option<i64>,
    port_at: usize,
    implied_port: bool,
    token: Option<&'a [u8]>,
    want: Option<Want>,
    noseed: bool,
    scrape: bool,
    seed: bool,
    seq: Option<i64>,
    cas: Option<i64>,
    salt: Option<&'a [u8]>,
    k: Option<&'a [u8; 32]>,
    sig: Option<&'a [u8; 64]>,
    v: Option<&'a [u8]>,
}

fn key_bit(key: &[u8]) -> (u32, &'static str) {
    match key {
        b"id" => (arg::ID, "id"),
        b"target" => (arg::TARGET, "target"),
        b"info_hash" => (arg::INFO_HASH, "info_hash"),
        b"port" => (arg::PORT, "port"),
        b"implied_port" => (arg::IMPLIED_PORT, "implied_port"),
        b"token" => (arg::TOKEN, "token"),
        b"want" => (arg::WANT, "want"),
        b"noseed" => (arg::NOSEED, "noseed"),
        b"scrape" => (arg::SCRAPE, "scrape"),
        b"seed" => (arg::SEED, "seed"),
        b"seq" => (arg::SEQ, "seq"),
        b"cas" => (arg::CAS, "cas"),
        b"salt" => (arg::SALT, "salt"),
        b"k" => (arg::K, "k"),
        b"sig" => (arg::SIG, "sig"),
        b"v" => (arg::V, "v"),
        _ => (0, ""),
    }
}

impl<'a> Args<'a> {
    /// Reads the keys in `mask` from the validated dictionary `args` found at offset `at`.
    fn read(args: Dict<'a>, at: usize, mask: u32) -> Result<Self, DecodeError> {
        let raw = args.raw();
        let mut out = Self::default();
        let mut rest = raw.get(1..).unwrap_or_default();
        while let Some((key, after_key)) = read_string(rest) {
            let Some((value, after)) = read_value(after_key) else {
                break;
            };
            let key_at = at + raw.len() - rest.len();
            let value_at = at + raw.len() - after_key.len();
            let value_raw = after_key.get(..after_key.len() - after.len());
            rest = after;
            let (bit, name) = key_bit(key);
            if bit & mask == 0 {
                continue;
            }
            mark(&mut out.seen, bit, key_at)?;
            let wrong = err(DecodeErrorKind::WrongType(name), value_at);
            let invalid = err(DecodeErrorKind::InvalidValue(name), value_at);
            let id = || {
                let b = value.as_bytes().ok_or(wrong)?;
                <&[u8; ID_LEN]>::try_from(b).map_err(|_| invalid)
            };
            let int = || value.as_int().ok_or(wrong);
            let bytes = || value.as_bytes().ok_or(wrong);
            match bit {
                arg::ID => out.id = Some(id()?),
                arg::TARGET => out.target = Some(id()?),
                arg::INFO_HASH => out.info_hash = Some(id()?),
                arg::PORT => {
                    out.port = Some(int()?);
                    out.port_at = value_at;
                }
                arg::IMPLIED_PORT => out.implied_port = int()? != 0,
                arg::TOKEN => out.token = Some(bytes()?),
                arg::WANT => out.want = Some(Want::from_list(value.as_list().ok_or(wrong)?)),
                arg::NOSEED => out.noseed = int()? != 0,
                arg::SCRAPE => out.scrape = int()? != 0,
                arg::SEED => out.seed = int()? != 0,
                arg::SEQ => out.seq = Some(int()?),
                arg::CAS => out.cas = Some(int()?),
                arg::SALT => out.salt = Some(bytes()?),
                arg::K => out.k = Some(bytes()?.try_into().map_err(|_| invalid)?),
                arg::SIG => out.sig = Some(bytes()?.try_into().map_err(|_| invalid)?),
                arg::V => out.v = value_raw,
                _ => {}
            }
        }
        Ok(out)
    }
}

/// The `a` dictionary, read in the same pass as its validation.
struct ParsedArgs<'a> {
    /// The whole dictionary (for custom methods, and for precise errors).
    dict: Dict<'a>,
    /// Its offset in the input.
    at: usize,
    /// Every known argument that was well-typed and not repeated.
    args: Args<'a>,
    /// Bits of known arguments that were badly typed or repeated; an error only if the method
    /// uses them.
    problems: u32,
}

/// A byte string, or `None` (after validation) for any other value.
#[inline(always)]
fn opt_bytes<'a>(p: &mut Parser<'a>, depth: usize) -> Result<Option<&'a [u8]>, DecodeError> {
    if matches!(p.peek(), Some(b'0'..=b'9')) {
        return p.string().map(Some);
    }
    p.value(depth).map(|_| None)
}

/// An integer, or `None` (after validation) for any other value.
#[inline]
fn opt_int(p: &mut Parser<'_>, depth: usize) -> Result<Option<i64>, DecodeError> {
    if p.peek() == Some(b'i') {
        return p.integer().map(Some);
    }
    p.value(depth).map(|_| None)
}

/// Reads `a` into `out` (filled in place: it is large).
fn args_at<'a>(p: &mut Parser<'a>, out: &mut ParsedArgs<'a>) -> Result<(), DecodeError> {
    const D: usize = 2;
    let start = p.offset();
    if p.peek() != Some(b'd') {
        p.value(1)?;
        return Err(err(DecodeErrorKind::WrongType("a"), start));
    }
    p.enter(D)?;
    let a = &mut out.args;
    let (mut problems, mut prev) = (0u32, None);
    loop {
        let key_at = p.offset();
        let Some(key) = p.key_unchecked()? else {
            break;
        };
        let (bit, _) = key_bit(key);
        if bit == 0 || a.seen & bit != 0 {
            unknown_key(&mut prev, key, key_at)?;
            problems |= bit;
        }
        a.seen |= bit;
        prev = Some(key);
        let value_at = p.offset();
        let ok = match bit {
            arg::ID | arg::TARGET | arg::INFO_HASH => {
                let id = opt_bytes(p, D)?.and_then(|b| b.try_into().ok());
                match bit {
                    arg::ID => a.id = id,
                    arg::TARGET => a.target = id,
                    _ => a.info_hash = id,
                }
                id.is_some()
            }
            arg::TOKEN | arg::SALT => {
                let b = opt_bytes(p, D)?;
                if bit == arg::TOKEN {
                    a.token = b;
                } else {
                    a.salt = b;
                }
                b.is_some()
            }
            arg::K => {
                a.k = opt_bytes(p, D)?.and_then(|b| b.try_into().ok());
                a.k.is_some()
            }
            arg::SIG => {
                a.sig = opt_bytes(p, D)?.and_then(|b| b.try_into().ok());
                a.sig.is_some()
            }
            arg::PORT | arg::SEQ | arg::CAS => {
                let i = opt_int(p, D)?;
                match bit {
                    arg::PORT => {
                        a.port = i;
                        a.port_at = value_at;
                    }
                    arg::SEQ => a.seq = i,
                    _ => a.cas = i,
                }
                i.is_some()
            }
            arg::IMPLIED_PORT | arg::NOSEED | arg::SCRAPE | arg::SEED => {
                let i = opt_int(p, D)?;
                let on = i.is_some_and(|i| i != 0);
                match bit {
                    arg::IMPLIED_PORT => a.implied_port = on,
                    arg::NOSEED => a.noseed = on,
                    arg::SCRAPE => a.scrape = on,
                    _ => a.seed = on,
                }
                i.is_some()
            }
            arg::WANT => {
                a.want = p.value(D)?.as_list().map(Want::from_list);
                a.want.is_some()
            }
            arg::V => {
                p.value(D)?;
                a.v = Some(p.since(value_at));
                true
            }
            _ => {
                p.value(D)?;
                true
            }
        };
        if !ok {
            problems |= bit;
        }
    }
    out.dict = Dict::from_validated(p.since(start));
    out.at = start;
    out.problems = problems;
    Ok(())
}

fn query_from_args<'a>(
    method: &'a [u8],
    parsed: &ParsedArgs<'a>,
) -> Result<Query<'a>, DecodeError> {
    use arg::*;
    let (args, at, problems) = (parsed.dict, parsed.at, parsed.problems);
    // Methods by index: 0 ping, 1 find_node, 2 sample_infohashes, 3 get_peers,
    // 4 announce_peer, 5 get, 6 put.
    let (index, mask) = match method {
        b"ping" => (0, ID),
        b"find_node" => (1, ID | TARGET | WANT),
        b"sample_infohashes" => (2, ID | TARGET | WANT),
        b"get_peers" => (3, ID | INFO_HASH | WANT | NOSEED | SCRAPE),
        b"announce_peer" => (4, ID | INFO_HASH | PORT | IMPLIED_PORT | TOKEN | SEED),
        b"get" => (5, ID | TARGET | SEQ | WANT),
        b"put" => (6, ID | TOKEN | V | K | SIG | SEQ | CAS | SALT),
        _ => {
            let id = args.get(b"id").and_then(|v| Id::from_slice(v.as_bytes()?));
            return Ok(Query::Custom(Custom { method, args, id }));
        }
    };
    if problems & mask == 0 {
        build_query(index, &parsed.args, at)
    } else {
        // Some key this method uses is badly typed or repeated: find the first such problem
        // in input order, with its exact error.
        build_query(index, &Args::read(args, at, mask)?, at)
    }
}

/// The query of method `index` (see [`query_from_args`]) from its arguments.
fn build_query<'a>(index: u8, a: &Args<'a>, at: usize) -> Result<Query<'a>, DecodeError> {
    use arg::*;
    let missing = |name| err(DecodeErrorKind::MissingKey(name), at);
    let ids = |v: Option<&[u8; ID_LEN]>, name| v.map(|b| Id::new(*b)).ok_or(missing(name));
    let id = ids(a.id, "id")?;
    let query = match index {
        0 => Query::Ping(Ping { id }),
        1 => Query::FindNode(FindNode {
            id,
            target: ids(a.target, "target")?,
            want: a.want,
        }),
        2 => Query::SampleInfohashes(SampleInfohashes {
            id,
            target: ids(a.target, "target")?,
            want: a.want,
        }),
        3 => Query::GetPeers(GetPeers {
            id,
            info_hash: ids(a.info_hash, "info_hash")?,
            want: a.want,
            noseed: a.noseed,
            scrape: a.scrape,
        }),
        4 => {
            let info_hash = ids(a.info_hash, "info_hash")?;
            let token = a.token.ok_or(missing("token"))?;
            let port = match a.port {
                Some(p) if (1..=65535).contains(&p) => p as u16,
                Some(p) if a.implied_port => u16::try_from(p).unwrap_or(0),
                None if a.implied_port => 0,
                Some(_) => return Err(err(DecodeErrorKind::InvalidValue("port"), a.port_at)),
                None => return Err(missing("port")),
            };
            Query::AnnouncePeer(AnnouncePeer {
                id,
                info_hash,
                port,
                implied_port: a.implied_port,
                token,
                seed: a.seed,
            })
        }
        5 => Query::Get(Get {
            id,
            target: ids(a.target, "target")?,
            seq: a.seq,
            want: a.want,
        }),
        _ => {
            // put
            let mutable = a.seen & (K | SIG | SEQ);
            if mutable != 0 && mutable != K | SIG | SEQ {
                let absent = if a.k.is_none() {
                    "k"
                } else if a.sig.is_none() {
                    "sig"
                } else {
                    "seq"
                };
                return Err(missing(absent));
            }
            Query::Put(Put {
                id,
                token: a.token.ok_or(missing("token"))?,
                value: a.v.ok_or(missing("v"))?,
                key: a.k,
                signature: a.sig,
                seq: a.seq,
                cas: a.cas,
                salt: a.salt,
            })
        }
    };
    Ok(query)
}

/// The reference for the single-pass argument reader: the query of `method` read from the
/// validated `args` dictionary (found at offset `at`) by the precise two-pass reader.
#[cfg(test)]
pub(crate) fn query_reference<'a>(
    method: &'a [u8],
    args: Dict<'a>,
    at: usize,
) -> Result<Query<'a>, DecodeError> {
    let parsed = ParsedArgs {
        dict: args,
        at,
        args: Args::default(),
        // Every bit set: always take the precise path.
        problems: u32::MAX,
    };
    query_from_args(method, &parsed)
}
