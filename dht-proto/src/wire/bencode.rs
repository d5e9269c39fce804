//! Bencode decoding into borrowed views.
//!
//! [`decode`] makes one validating pass over the input and returns a [`Value`] whose lists and
//! dictionaries are views into the input slice: nothing is allocated and nothing is copied.
//! Iterating a view re-reads the already validated bytes and cannot fail.
//!
//! The pass is iterative: nesting is tracked on a small fixed-size stack bounded by
//! [`DecodeLimits::max_depth`] (and never more than [`MAX_DEPTH`]), so hostile input can
//! neither grow the call stack nor allocate. A datagram of a million `l` bytes is rejected at
//! the first byte past the depth limit.
//!
//! Tokens are read by small nom parsers (`i…e`, `<len>:…`); the overwhelmingly common shapes
//! (a length of up to four digits, an integer of up to 18 digits) take a one-loop fast path
//! first, and everything else, errors included, goes through the nom parsers, which name the
//! exact fault.
//!
//! # Strictness
//!
//! Grammar is enforced exactly: no leading zeros (`i03e`, `03:abc`), no `-0`, no empty integer,
//! integers must fit in an `i64`, every container must be closed, dictionary keys must be byte
//! strings, and nothing may follow the top-level value. Each error carries a
//! [`DecodeErrorKind`] and the byte offset where the faulty token starts.
//!
//! Dictionary **key order** is not enforced: BitTorrent clients in the wild sometimes send
//! unsorted keys, and rejecting them would break interoperability. (Encoding is always
//! canonical, see [`Writer`](super::encode::Writer).)
//!
//! **Duplicate keys** are rejected with [`DecodeErrorKind::DuplicateKey`] when a key repeats
//! the key before it. In a canonically ordered dictionary every duplicate is adjacent, so this
//! catches all of them at O(1) per key. In a dictionary whose keys are out of order, a repeat
//! that is not adjacent is not detected (checking would cost quadratic time on hostile input);
//! [`Dict::get`] then returns the first occurrence. The KRPC layer additionally rejects any
//! repeat of a key it interprets, in any order.

use core::fmt;

use nom::error::{ErrorKind, ParseError};
use nom::{IResult, Parser as _};

/// Deepest nesting the decoder supports, whatever [`DecodeLimits::max_depth`] says.
pub const MAX_DEPTH: usize = 64;

/// Limits the decoder enforces, so hostile input costs bounded time and no memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DecodeLimits {
    /// Deepest nesting of lists and dictionaries (a top-level dictionary is depth 1). Values
    /// above [`MAX_DEPTH`] act as [`MAX_DEPTH`].
    pub max_depth: usize,
    /// Most elements (list items plus dictionary entries, all levels together).
    pub max_elements: usize,
    /// Longest byte string.
    pub max_string_len: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_depth: 16,
            max_elements: 4096,
            max_string_len: 65_536,
        }
    }
}

impl DecodeLimits {
    /// Limits with the given depth, element count and string length.
    pub const fn new(max_depth: usize, max_elements: usize, max_string_len: usize) -> Self {
        Self {
            max_depth,
            max_elements,
            max_string_len,
        }
    }
}

/// Why an input was rejected, and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DecodeError {
    /// What is wrong.
    pub kind: DecodeErrorKind,
    /// Byte offset in the input where the faulty token starts (the input length when the input
    /// ended too early).
    pub offset: usize,
}

impl DecodeError {
    /// An error of `kind` at `offset`.
    pub const fn new(kind: DecodeErrorKind, offset: usize) -> Self {
        Self { kind, offset }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.kind, self.offset)
    }
}

impl core::error::Error for DecodeError {}

/// The kinds of [`DecodeError`]: bencode grammar, decoder limits, and KRPC message structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The input ended inside a value.
    UnexpectedEnd,
    /// A byte that cannot appear here (for example `x` where a value should start, a missing
    /// `e` after integer digits, or a missing `:` after a length).
    UnexpectedByte,
    /// An integer or a string length with a superfluous leading zero (`i03e`, `03:abc`).
    LeadingZero,
    /// The integer `-0` (`i-0e`).
    NegativeZero,
    /// An integer outside the `i64` range.
    IntegerOverflow,
    /// A byte string longer than [`DecodeLimits::max_string_len`] (or than any memory).
    StringTooLong,
    /// A dictionary key that is not a byte string.
    NonStringKey,
    /// A dictionary key that repeats (see the module docs for what is detected).
    DuplicateKey,
    /// Bytes after the end of the top-level value.
    TrailingBytes,
    /// Nesting deeper than [`DecodeLimits::max_depth`].
    DepthLimit,
    /// More elements than [`DecodeLimits::max_elements`].
    ElementLimit,
    /// A KRPC message lacks a key it requires.
    MissingKey(&'static str),
    /// A KRPC key holds a value of the wrong bencode type.
    WrongType(&'static str),
    /// A KRPC key holds a value of the right type that is not acceptable (wrong length, out of
    /// range, unknown message type).
    InvalidValue(&'static str),
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnexpectedEnd => f.write_str("unexpected end of input"),
            Self::UnexpectedByte => f.write_str("unexpected byte"),
            Self::LeadingZero => f.write_str("number with a leading zero"),
            Self::NegativeZero => f.write_str("negative zero"),
            Self::IntegerOverflow => f.write_str("integer out of 64-bit range"),
            Self::StringTooLong => f.write_str("byte string too long"),
            Self::NonStringKey => f.write_str("dictionary key is not a byte string"),
            Self::DuplicateKey => f.write_str("duplicate dictionary key"),
            Self::TrailingBytes => f.write_str("trailing bytes after the value"),
            Self::DepthLimit => f.write_str("nesting too deep"),
            Self::ElementLimit => f.write_str("too many elements"),
            Self::MissingKey(k) => write!(f, "missing key `{k}`"),
            Self::WrongType(k) => write!(f, "wrong type for `{k}`"),
            Self::InvalidValue(k) => write!(f, "invalid value for `{k}`"),
        }
    }
}

/// A decoded bencode value, borrowing from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Value<'a> {
    /// An integer.
    Int(i64),
    /// A byte string (its content, without the length prefix).
    Bytes(&'a [u8]),
    /// A list.
    List(List<'a>),
    /// A dictionary.
    Dict(Dict<'a>),
}

impl<'a> Value<'a> {
    /// The exact encoded bytes of a list or dictionary, as they appeared in the input; `None`
    /// for an integer or a byte string, whose views do not keep their encoding (use
    /// [`Dict::get_raw`] or [`List::iter_raw`] to get those).
    pub fn raw(&self) -> Option<&'a [u8]> {
        match self {
            Self::List(l) => Some(l.raw()),
            Self::Dict(d) => Some(d.raw()),
            Self::Int(_) | Self::Bytes(_) => None,
        }
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match *self {
            Self::Int(i) => Some(i),
            _ => None,
        }
    }

    /// The byte string, if this is one.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match *self {
            Self::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The list, if this is one.
    pub fn as_list(&self) -> Option<List<'a>> {
        match *self {
            Self::List(l) => Some(l),
            _ => None,
        }
    }

    /// The dictionary, if this is one.
    pub fn as_dict(&self) -> Option<Dict<'a>> {
        match *self {
            Self::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// Length in bytes of the value's encoding (canonical for integers and strings, exact for
    /// containers).
    pub fn encoded_len(&self) -> usize {
        match *self {
            Self::Int(i) => int_len(i) + 2,
            Self::Bytes(b) => bytes_len(b.len()),
            Self::List(l) => l.raw().len(),
            Self::Dict(d) => d.raw().len(),
        }
    }
}

/// A validated list: a view over its encoding `l…e`. Iteration cannot fail.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct List<'a> {
    raw: &'a [u8],
}

impl<'a> List<'a> {
    /// The empty list.
    pub const EMPTY: List<'static> = List { raw: b"le" };

    /// The items, in order.
    pub fn iter(&self) -> ListIter<'a> {
        ListIter {
            rest: self.raw.get(1..).unwrap_or_default(),
        }
    }

    /// The exact encoded bytes of each item, in order.
    pub fn iter_raw(&self) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        let mut rest = self.raw.get(1..).unwrap_or_default();
        core::iter::from_fn(move || {
            let (_, after) = read_value(rest)?;
            let raw = rest.get(..rest.len() - after.len())?;
            rest = after;
            Some(raw)
        })
    }

    /// Number of items (counts them).
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether the list has no items.
    pub fn is_empty(&self) -> bool {
        self.raw.get(1) == Some(&b'e')
    }

    /// The exact encoded bytes of the list, `l` to `e`.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }
}

impl fmt::Debug for List<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for List<'a> {
    type Item = Value<'a>;
    type IntoIter = ListIter<'a>;

    fn into_iter(self) -> ListIter<'a> {
        self.iter()
    }
}

/// Iterator over the items of a [`List`].
#[derive(Clone, Debug)]
pub struct ListIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for ListIter<'a> {
    type Item = Value<'a>;

    fn next(&mut self) -> Option<Value<'a>> {
        let (value, rest) = read_value(self.rest)?;
        self.rest = rest;
        Some(value)
    }
}

/// A validated dictionary: a view over its encoding `d…e`. Iteration cannot fail.
///
/// Entries come in input order, which is not necessarily sorted (see the module docs).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dict<'a> {
    raw: &'a [u8],
}

impl<'a> Dict<'a> {
    /// The empty dictionary.
    pub const EMPTY: Dict<'static> = Dict { raw: b"de" };

    /// The entries `(key, value)`, in input order.
    pub fn iter(&self) -> DictIter<'a> {
        DictIter {
            rest: self.raw.get(1..).unwrap_or_default(),
        }
    }

    /// The value of the first entry whose key is `key`.
    pub fn get(&self, key: &[u8]) -> Option<Value<'a>> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The exact encoded bytes of the value of the first entry whose key is `key`.
    pub fn get_raw(&self, key: &[u8]) -> Option<&'a [u8]> {
        let mut rest = self.raw.get(1..).unwrap_or_default();
        loop {
            let (k, after_key) = read_string(rest)?;
            let (_, after) = read_value(after_key)?;
            if k == key {
                return after_key.get(..after_key.len() - after.len());
            }
            rest = after;
        }
    }

    /// Number of entries (counts them).
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether the dictionary has no entries.
    pub fn is_empty(&self) -> bool {
        self.raw.get(1) == Some(&b'e')
    }

    /// The exact encoded bytes of the dictionary, `d` to `e`.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }
}

impl fmt::Debug for Dict<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(k, v)| (EscapedBytes(k), v)))
            .finish()
    }
}

impl<'a> IntoIterator for Dict<'a> {
    type Item = (&'a [u8], Value<'a>);
    type IntoIter = DictIter<'a>;

    fn into_iter(self) -> DictIter<'a> {
        self.iter()
    }
}

/// Iterator over the entries of a [`Dict`].
#[derive(Clone, Debug)]
pub struct DictIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for DictIter<'a> {
    type Item = (&'a [u8], Value<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let (key, rest) = read_string(self.rest)?;
        let (value, rest) = read_value(rest)?;
        self.rest = rest;
        Some((key, value))
    }
}

/// Decodes one bencode value that spans the whole input.
///
/// ```
/// use dht_proto::wire::bencode::{decode, DecodeLimits, Value};
///
/// let v = decode(b"d3:cow3:moo4:spaml1:a1:bee", &DecodeLimits::default()).unwrap();
/// let dict = v.as_dict().unwrap();
/// assert_eq!(dict.get(b"cow"), Some(Value::Bytes(b"moo")));
/// assert_eq!(dict.get(b"spam").unwrap().as_list().unwrap().len(), 2);
/// ```
///
/// # Errors
///
/// A [`DecodeError`] for malformed bencode, for input beyond `limits`, and for bytes after the
/// value ([`DecodeErrorKind::TrailingBytes`]).
pub fn decode<'a>(input: &'a [u8], limits: &DecodeLimits) -> Result<Value<'a>, DecodeError> {
    let mut p = Parser::new(input, limits);
    let value = p.value(0)?;
    p.finish()?;
    Ok(value)
}

/// Decodes one bencode value at the start of the input and returns it with the bytes that
/// follow it (a BEP 9 `data` message appends raw bytes to its dictionary).
///
/// ```
/// use dht_proto::wire::bencode::{decode_prefix, DecodeLimits};
///
/// let (v, rest) = decode_prefix(b"d1:ai1eexyz", &DecodeLimits::default()).unwrap();
/// assert_eq!(v.as_dict().unwrap().get(b"a").unwrap().as_int(), Some(1));
/// assert_eq!(rest, b"xyz");
/// ```
///
/// # Errors
///
/// A [`DecodeError`] for malformed bencode and for input beyond `limits`.
pub fn decode_prefix<'a>(
    input: &'a [u8],
    limits: &DecodeLimits,
) -> Result<(Value<'a>, &'a [u8]), DecodeError> {
    let mut p = Parser::new(input, limits);
    let value = p.value(0)?;
    Ok((value, p.rest))
}

// ------------------------------------------------------------------------------------------
// Validating parser (crate-internal, shared with the KRPC decoder).
// ------------------------------------------------------------------------------------------

/// A token-level error from the nom parsers: the kind and how many input bytes were left
/// where the faulty token starts.
#[derive(Debug)]
struct TokenError {
    kind: DecodeErrorKind,
    rest_len: usize,
}

impl TokenError {
    fn at(rest: &[u8], kind: DecodeErrorKind) -> nom::Err<Self> {
        nom::Err::Error(Self {
            kind,
            rest_len: rest.len(),
        })
    }
}

impl ParseError<&[u8]> for TokenError {
    fn from_error_kind(input: &[u8], _kind: ErrorKind) -> Self {
        let kind = if input.is_empty() {
            DecodeErrorKind::UnexpectedEnd
        } else {
            DecodeErrorKind::UnexpectedByte
        };
        Self {
            kind,
            rest_len: input.len(),
        }
    }

    fn append(_input: &[u8], _kind: ErrorKind, other: Self) -> Self {
        other
    }
}

type TokenResult<'a, T> = IResult<&'a [u8], T, TokenError>;

#[inline]
fn digits(input: &[u8]) -> TokenResult<'_, &[u8]> {
    nom::bytes::complete::take_while1(|b: u8| b.is_ascii_digit()).parse(input)
}

#[inline]
fn byte<'a>(expected: &'static [u8]) -> impl Fn(&'a [u8]) -> TokenResult<'a, &'a [u8]> {
    nom::bytes::complete::tag(expected)
}

/// `i<digits>e`, starting at the `i`.
#[inline]
fn integer_token(input: &[u8]) -> TokenResult<'_, i64> {
    let (rest, _) = byte(b"i")(input)?;
    let (rest, minus) = nom::combinator::opt(byte(b"-")).parse(rest)?;
    let (rest, ds) = digits(rest)?;
    let (rest, _) = byte(b"e")(rest)?;
    let negative = minus.is_some();
    match ds {
        [b'0'] if negative => return Err(TokenError::at(input, DecodeErrorKind::NegativeZero)),
        [b'0', _, ..] => return Err(TokenError::at(input, DecodeErrorKind::LeadingZero)),
        _ => {}
    }
    // Accumulate negatively so that i64::MIN parses.
    let mut acc: i64 = 0;
    for &d in ds {
        acc = acc
            .checked_mul(10)
            .and_then(|a| a.checked_sub(i64::from(d - b'0')))
            .ok_or_else(|| TokenError::at(input, DecodeErrorKind::IntegerOverflow))?;
    }
    let value = if negative {
        acc
    } else {
        acc.checked_neg()
            .ok_or_else(|| TokenError::at(input, DecodeErrorKind::IntegerOverflow))?
    };
    Ok((rest, value))
}

/// `<len>:<bytes>`, starting at the first length digit.
#[inline]
fn string_token(input: &[u8], max_len: usize) -> TokenResult<'_, &[u8]> {
    let (rest, ds) = digits(input)?;
    if let [b'0', _, ..] = ds {
        return Err(TokenError::at(input, DecodeErrorKind::LeadingZero));
    }
    let mut len: usize = 0;
    for &d in ds {
        len = len
            .checked_mul(10)
            .and_then(|l| l.checked_add(usize::from(d - b'0')))
            .ok_or_else(|| TokenError::at(input, DecodeErrorKind::StringTooLong))?;
    }
    if len > max_len {
        return Err(TokenError::at(input, DecodeErrorKind::StringTooLong));
    }
    let (rest, _) = byte(b":")(rest)?;
    match rest.split_at_checked(len) {
        Some((s, rest)) => Ok((rest, s)),
        None => Err(TokenError::at(&[], DecodeErrorKind::UnexpectedEnd)),
    }
}

/// The common shape of a byte string, `<1 to 4 digits>:<bytes>`, read in one loop; `None`
/// for anything else, which [`string_token`] then reads (or rejects, with the exact error).
#[inline(always)]
fn fast_string(input: &[u8], max_len: usize) -> Option<(&[u8], &[u8])> {
    let (&first, _) = input.split_first()?;
    let mut len = usize::from(first.wrapping_sub(b'0'));
    if len > 9 || (len == 0 && input.get(1) != Some(&b':')) {
        return None;
    }
    let mut i = 1;
    loop {
        let d = input.get(i)?.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        if i == 4 {
            return None;
        }
        len = len * 10 + usize::from(d);
        i += 1;
    }
    if input.get(i) != Some(&b':') || len > max_len {
        return None;
    }
    input.get(i + 1..)?.split_at_checked(len)
}

/// The common shape of an integer, `i<1 to 18 digits>e` with an optional minus and no leading
/// zero, read in one loop; `None` for anything else, which [`integer_token`] then reads.
#[inline(always)]
fn fast_integer(input: &[u8]) -> Option<(i64, &[u8])> {
    let rest = input.get(1..)?;
    let (negative, digits) = match rest.split_first()? {
        (b'-', r) => (true, r),
        _ => (false, rest),
    };
    let mut value: i64 = 0;
    let mut i = 0;
    loop {
        let d = digits.get(i)?.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        if i == 18 {
            return None;
        }
        value = value * 10 + i64::from(d);
        i += 1;
    }
    let leading_zero = digits.first() == Some(&b'0') && (i > 1 || negative);
    if i == 0 || leading_zero || digits.get(i) != Some(&b'e') {
        return None;
    }
    Some((if negative { -value } else { value }, digits.get(i + 1..)?))
}

/// What kind of container a stack frame is, and the previous key of a dictionary.
#[derive(Clone, Copy)]
struct Frame<'a> {
    dict: bool,
    prev_key: Option<&'a [u8]>,
}

/// The validating parser: a cursor over the input plus the budget left.
pub(crate) struct Parser<'a> {
    input: &'a [u8],
    rest: &'a [u8],
    elements_left: usize,
    max_depth: usize,
    max_string_len: usize,
}

impl<'a> Parser<'a> {
    #[inline]
    pub(crate) fn new(input: &'a [u8], limits: &DecodeLimits) -> Self {
        Self {
            input,
            rest: input,
            elements_left: limits.max_elements,
            max_depth: limits.max_depth.min(MAX_DEPTH),
            max_string_len: limits.max_string_len,
        }
    }

    /// Offset of the cursor in the input.
    #[inline]
    pub(crate) fn offset(&self) -> usize {
        self.input.len() - self.rest.len()
    }

    #[inline]
    pub(crate) fn error(&self, kind: DecodeErrorKind) -> DecodeError {
        DecodeError::new(kind, self.offset())
    }

    #[cold]
    fn token_error(&self, e: nom::Err<TokenError>) -> DecodeError {
        match e {
            nom::Err::Error(t) | nom::Err::Failure(t) => {
                DecodeError::new(t.kind, self.input.len().saturating_sub(t.rest_len))
            }
            nom::Err::Incomplete(_) => {
                DecodeError::new(DecodeErrorKind::UnexpectedEnd, self.input.len())
            }
        }
    }

    /// The next byte, not consumed.
    #[inline]
    pub(crate) fn peek(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// Consumes one byte, which the caller has peeked.
    #[inline]
    pub(crate) fn bump(&mut self) {
        self.rest = self.rest.get(1..).unwrap_or_default();
    }

    /// Fails unless the whole input has been consumed.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.error(DecodeErrorKind::TrailingBytes))
        }
    }

    /// The input from `start` to the cursor.
    #[inline]
    pub(crate) fn since(&self, start: usize) -> &'a [u8] {
        self.input.get(start..self.offset()).unwrap_or_default()
    }

    /// Counts one list item or dictionary entry against the budget.
    #[inline]
    pub(crate) fn count_element(&mut self) -> Result<(), DecodeError> {
        match self.elements_left.checked_sub(1) {
            Some(left) => {
                self.elements_left = left;
                Ok(())
            }
            None => Err(self.error(DecodeErrorKind::ElementLimit)),
        }
    }

    /// Opens a container at nesting level `depth` (1 for a top-level container).
    #[inline]
    pub(crate) fn enter(&mut self, depth: usize) -> Result<(), DecodeError> {
        if depth > self.max_depth {
            return Err(self.error(DecodeErrorKind::DepthLimit));
        }
        self.bump();
        Ok(())
    }

    #[inline(always)]
    pub(crate) fn integer(&mut self) -> Result<i64, DecodeError> {
        if let Some((v, rest)) = fast_integer(self.rest) {
            self.rest = rest;
            return Ok(v);
        }
        self.integer_slow()
    }

    #[cold]
    #[inline(never)]
    fn integer_slow(&mut self) -> Result<i64, DecodeError> {
        match integer_token(self.rest) {
            Ok((rest, v)) => {
                self.rest = rest;
                Ok(v)
            }
            Err(e) => Err(self.token_error(e)),
        }
    }

    #[inline(always)]
    pub(crate) fn string(&mut self) -> Result<&'a [u8], DecodeError> {
        if let Some((s, rest)) = fast_string(self.rest, self.max_string_len) {
            self.rest = rest;
            return Ok(s);
        }
        self.string_slow()
    }

    #[cold]
    #[inline(never)]
    fn string_slow(&mut self) -> Result<&'a [u8], DecodeError> {
        match string_token(self.rest, self.max_string_len) {
            Ok((rest, s)) => {
                self.rest = rest;
                Ok(s)
            }
            Err(e) => Err(self.token_error(e)),
        }
    }

    /// At a key position of a dictionary: `None` (and the `e` consumed) at its end, else the
    /// key, checked against the previous one.
    #[inline]
    pub(crate) fn key(
        &mut self,
        prev: &mut Option<&'a [u8]>,
    ) -> Result<Option<&'a [u8]>, DecodeError> {
        match self.peek() {
            Some(b'e') => {
                self.bump();
                Ok(None)
            }
            Some(b'0'..=b'9') => {
                let start = self.offset();
                self.count_element()?;
                let key = self.string()?;
                if *prev == Some(key) {
                    return Err(DecodeError::new(DecodeErrorKind::DuplicateKey, start));
                }
                *prev = Some(key);
                Ok(Some(key))
            }
            Some(_) => Err(self.error(DecodeErrorKind::NonStringKey)),
            None => Err(self.error(DecodeErrorKind::UnexpectedEnd)),
        }
    }

    /// Like [`Parser::key`] without the check against the previous key, for callers that
    /// detect repeats themselves.
    #[inline(always)]
    pub(crate) fn key_unchecked(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        match self.peek() {
            Some(b'e') => {
                self.bump();
                Ok(None)
            }
            Some(b'0'..=b'9') => {
                self.count_element()?;
                self.string().map(Some)
            }
            Some(_) => Err(self.error(DecodeErrorKind::NonStringKey)),
            None => Err(self.error(DecodeErrorKind::UnexpectedEnd)),
        }
    }

    /// Validates one value whose enclosing containers number `depth`.
    #[inline]
    pub(crate) fn value(&mut self, depth: usize) -> Result<Value<'a>, DecodeError> {
        match self.peek() {
            Some(b'i') => Ok(Value::Int(self.integer()?)),
            Some(b'0'..=b'9') => Ok(Value::Bytes(self.string()?)),
            Some(b'l') => {
                let start = self.offset();
                self.container(depth)?;
                Ok(Value::List(List {
                    raw: self.since(start),
                }))
            }
            Some(b'd') => {
                let start = self.offset();
                self.container(depth)?;
                Ok(Value::Dict(Dict {
                    raw: self.since(start),
                }))
            }
            Some(_) => Err(self.error(DecodeErrorKind::UnexpectedByte)),
            None => Err(self.error(DecodeErrorKind::UnexpectedEnd)),
        }
    }

    /// Validates a list or dictionary starting at the cursor, iteratively.
    fn container(&mut self, depth: usize) -> Result<(), DecodeError> {
        let mut stack: heapless::Vec<Frame<'a>, MAX_DEPTH> = heapless::Vec::new();
        self.open(&mut stack, depth)?;
        loop {
            let Some(top) = stack.last_mut() else {
                return Ok(());
            };
            if top.dict {
                let mut prev = top.prev_key;
                let key = self.key(&mut prev)?;
                top.prev_key = prev;
                if key.is_none() {
                    stack.pop();
                    continue;
                }
                // The value of the entry.
                match self.peek() {
                    Some(b'e') => return Err(self.error(DecodeErrorKind::UnexpectedByte)),
                    _ => self.scalar_or_open(&mut stack, depth)?,
                }
            } else {
                match self.peek() {
                    Some(b'e') => {
                        self.bump();
                        stack.pop();
                    }
                    None => return Err(self.error(DecodeErrorKind::UnexpectedEnd)),
                    Some(_) => {
                        self.count_element()?;
                        self.scalar_or_open(&mut stack, depth)?;
                    }
                }
            }
        }
    }

    #[inline]
    fn scalar_or_open(
        &mut self,
        stack: &mut heapless::Vec<Frame<'a>, MAX_DEPTH>,
        base: usize,
    ) -> Result<(), DecodeError> {
        match self.peek() {
            Some(b'i') => self.integer().map(drop),
            Some(b'0'..=b'9') => self.string().map(drop),
            Some(b'l' | b'd') => self.open(stack, base),
            Some(_) => Err(self.error(DecodeErrorKind::UnexpectedByte)),
            None => Err(self.error(DecodeErrorKind::UnexpectedEnd)),
        }
    }

    #[inline]
    fn open(
        &mut self,
        stack: &mut heapless::Vec<Frame<'a>, MAX_DEPTH>,
        base: usize,
    ) -> Result<(), DecodeError> {
        let dict = self.peek() == Some(b'd');
        let depth = base + stack.len() + 1;
        self.enter(depth)?;
        stack
            .push(Frame {
                dict,
                prev_key: None,
            })
            .map_err(|_| self.error(DecodeErrorKind::DepthLimit))
    }
}

// ------------------------------------------------------------------------------------------
// Readers over validated input: no error reporting, `None` only at the end of a container
// (or, impossibly, on malformed bytes).
// ------------------------------------------------------------------------------------------

/// Reads a validated byte string.
#[inline]
pub(crate) fn read_string(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut len: usize = 0;
    let mut rest = input;
    loop {
        let (&b, after) = rest.split_first()?;
        rest = after;
        match b {
            b'0'..=b'9' => len = len.checked_mul(10)?.checked_add(usize::from(b - b'0'))?,
            b':' => break,
            _ => return None,
        }
    }
    let (s, rest) = rest.split_at_checked(len)?;
    Some((s, rest))
}

/// Reads a validated integer (input starts at `i`).
#[inline]
fn read_int(input: &[u8]) -> Option<(i64, &[u8])> {
    let rest = input.get(1..)?;
    let (negative, mut rest) = match rest.split_first() {
        Some((b'-', r)) => (true, r),
        _ => (false, rest),
    };
    let mut acc: i64 = 0;
    loop {
        let (&b, after) = rest.split_first()?;
        rest = after;
        match b {
            b'0'..=b'9' => acc = acc.checked_mul(10)?.checked_sub(i64::from(b - b'0'))?,
            b'e' => break,
            _ => return None,
        }
    }
    let value = if negative { acc } else { acc.checked_neg()? };
    Some((value, rest))
}

/// Skips a validated list or dictionary (input starts at `l` or `d`); returns what follows.
#[inline]
pub(crate) fn skip_container(input: &[u8]) -> Option<&[u8]> {
    let mut depth: usize = 0;
    let mut rest = input;
    loop {
        match *rest.first()? {
            b'l' | b'd' => {
                depth += 1;
                rest = rest.get(1..)?;
            }
            b'e' => {
                rest = rest.get(1..)?;
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(rest);
                }
            }
            b'i' => {
                let end = rest.iter().position(|&b| b == b'e')?;
                rest = rest.get(end + 1..)?;
            }
            _ => rest = read_string(rest)?.1,
        }
    }
}

/// Reads one validated value; `None` at the `e` closing the enclosing container.
#[inline]
pub(crate) fn read_value(input: &[u8]) -> Option<(Value<'_>, &[u8])> {
    match *input.first()? {
        b'i' => read_int(input).map(|(i, rest)| (Value::Int(i), rest)),
        b'l' => {
            let rest = skip_container(input)?;
            let raw = input.get(..input.len() - rest.len())?;
            Some((Value::List(List { raw }), rest))
        }
        b'd' => {
            let rest = skip_container(input)?;
            let raw = input.get(..input.len() - rest.len())?;
            Some((Value::Dict(Dict { raw }), rest))
        }
        b'0'..=b'9' => read_string(input).map(|(s, rest)| (Value::Bytes(s), rest)),
        _ => None,
    }
}

impl<'a> List<'a> {
    /// A view over bytes the caller has validated as one bencoded list.
    pub(crate) fn from_validated(raw: &'a [u8]) -> Self {
        Self { raw }
    }
}

impl<'a> Dict<'a> {
    /// A view over bytes the caller has validated as one bencoded dictionary.
    pub(crate) fn from_validated(raw: &'a [u8]) -> Self {
        Self { raw }
    }
}

/// Decimal digits of `i`, with its sign.
pub(crate) fn int_len(i: i64) -> usize {
    let sign = usize::from(i < 0);
    sign + u64_len(i.unsigned_abs())
}

/// Decimal digits of `n`.
pub(crate) fn u64_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

/// Length of a byte string's encoding with `len` content bytes.
pub(crate) fn bytes_len(len: usize) -> usize {
    u64_len(len as u64) + 1 + len
}

/// Bytes shown as text with non-printable bytes escaped.
pub(crate) struct EscapedBytes<'a>(pub(crate) &'a [u8]);

impl fmt::Debug for EscapedBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("b\"")?;
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                write!(f, "{}", c.escape_debug())?;
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        f.write_str("\"")
    }
}

impl fmt::Display for EscapedBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
