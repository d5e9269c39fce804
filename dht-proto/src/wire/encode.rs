//! Bencode encoding into a caller's buffer.
//!
//! [`Writer`] writes tokens straight into a `&mut [u8]`. When the buffer is too small it keeps
//! counting, so [`Writer::finish`] can say how many bytes the whole encoding needs
//! ([`InsufficientSize::required`]); it never panics and never allocates.
//!
//! The writer does not check structure: the caller opens and closes containers in pairs and
//! writes dictionary keys in canonical order (sorted as raw bytes, no duplicates). The typed
//! KRPC encoders in [`krpc`](super::krpc) do both.

use core::fmt;

use super::bencode::Value;

/// The buffer given to an encoder is too small.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InsufficientSize {
    /// Bytes the complete encoding needs.
    pub required: usize,
}

impl fmt::Display for InsufficientSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "buffer too small: {} bytes required", self.required)
    }
}

impl core::error::Error for InsufficientSize {}

/// Writes bencode tokens into a borrowed buffer.
///
/// ```
/// use dht_proto::wire::encode::Writer;
///
/// let mut buf = [0u8; 32];
/// let mut w = Writer::new(&mut buf);
/// w.begin_dict();
/// w.bytes(b"a");
/// w.int(-5);
/// w.bytes(b"b");
/// w.begin_list();
/// w.bytes(b"xy");
/// w.end();
/// w.end();
/// let len = w.finish().unwrap();
/// assert_eq!(&buf[..len], b"d1:ai-5e1:bl2:xyee");
///
/// let mut small = [0u8; 4];
/// let mut w = Writer::new(&mut small);
/// w.bytes(b"hello");
/// assert_eq!(w.finish().unwrap_err().required, 7);
/// ```
#[derive(Debug)]
pub struct Writer<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl<'b> Writer<'b> {
    /// A writer that starts at the beginning of `buf`.
    pub fn new(buf: &'b mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// Bytes written so far, or needed so far once the buffer is full.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes an integer, `i<n>e`.
    #[inline]
    pub fn int(&mut self, v: i64) {
        let mut digits = [0u8; 21];
        self.put(b"i");
        self.put(format_i64(v, &mut digits));
        self.put(b"e");
    }

    /// Writes a byte string, `<len>:<bytes>` (also how dictionary keys are written).
    #[inline]
    pub fn bytes(&mut self, v: &[u8]) {
        self.length_prefix(v.len());
        self.put(v);
    }

    /// Writes the `<len>:` prefix of a byte string whose content the caller writes next with
    /// [`Writer::raw`] (for example a compact node list built piece by piece).
    #[inline]
    pub fn length_prefix(&mut self, len: usize) {
        if len < 10 {
            self.put(&[b'0' + len as u8, b':']);
        } else if len < 100 {
            self.put(&[b'0' + (len / 10) as u8, b'0' + (len % 10) as u8, b':']);
        } else {
            let mut digits = [0u8; 21];
            let s = format_u64(len as u64, &mut digits);
            self.put(s);
            self.put(b":");
        }
    }

    /// Opens a list; close it with [`Writer::end`].
    #[inline]
    pub fn begin_list(&mut self) {
        self.put(b"l");
    }

    /// Opens a dictionary; close it with [`Writer::end`]. Keys must follow in canonical order.
    #[inline]
    pub fn begin_dict(&mut self) {
        self.put(b"d");
    }

    /// Closes the innermost open list or dictionary.
    #[inline]
    pub fn end(&mut self) {
        self.put(b"e");
    }

    /// Writes bytes that are already bencoded (or, after [`Writer::length_prefix`], the
    /// content of a byte string) verbatim.
    #[inline]
    pub fn raw(&mut self, pre_encoded: &[u8]) {
        self.put(pre_encoded);
    }

    /// Writes a decoded value: containers verbatim (their exact input bytes), integers and
    /// strings canonically.
    pub fn value(&mut self, v: &Value<'_>) {
        match v {
            Value::Int(i) => self.int(*i),
            Value::Bytes(b) => self.bytes(b),
            Value::List(l) => self.raw(l.raw()),
            Value::Dict(d) => self.raw(d.raw()),
        }
    }

    /// The encoded length.
    ///
    /// # Errors
    ///
    /// [`InsufficientSize`] with the full length when the buffer was too small; the buffer
    /// then holds a truncated encoding that must not be sent.
    pub fn finish(self) -> Result<usize, InsufficientSize> {
        if self.len <= self.buf.len() {
            Ok(self.len)
        } else {
            Err(InsufficientSize { required: self.len })
        }
    }

    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        let end = self.len.saturating_add(bytes.len());
        if let Some(dst) = self.buf.get_mut(self.len..end) {
            dst.copy_from_slice(bytes);
        }
        self.len = end;
    }
}

/// Formats `v` in decimal at the end of `out`, a `-` first when negative; returns the
/// characters (at most 20: 19 digits and the sign).
pub(crate) fn format_i64(v: i64, out: &mut [u8; 21]) -> &[u8] {
    let digits = format_u64(v.unsigned_abs(), out).len();
    let mut start = out.len().saturating_sub(digits);
    if v < 0 {
        start = start.saturating_sub(1);
        if let Some(sign) = out.get_mut(start) {
            *sign = b'-';
        }
    }
    out.get(start..).unwrap_or_default()
}

/// Formats `n` in decimal at the end of `out`; returns the digits.
fn format_u64(mut n: u64, out: &mut [u8; 21]) -> &[u8] {
    let mut start = out.len();
    loop {
        start -= 1;
        if let Some(slot) = out.get_mut(start) {
            *slot = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || start == 0 {
            break;
        }
    }
    out.get(start..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: impl FnOnce(&mut Writer<'_>)) -> alloc::vec::Vec<u8> {
        let mut buf = [0u8; 64];
        let mut w = Writer::new(&mut buf);
        f(&mut w);
        let n = w.finish().unwrap();
        buf[..n].to_vec()
    }

    #[test]
    fn integers() {
        assert_eq!(enc(|w| w.int(0)), b"i0e");
        assert_eq!(enc(|w| w.int(-1)), b"i-1e");
        assert_eq!(enc(|w| w.int(i64::MAX)), b"i9223372036854775807e");
        assert_eq!(enc(|w| w.int(i64::MIN)), b"i-9223372036854775808e");
    }

    #[test]
    fn strings_and_containers() {
        assert_eq!(enc(|w| w.bytes(b"")), b"0:");
        assert_eq!(
            enc(|w| {
                w.begin_list();
                w.bytes(b"spam");
                w.begin_dict();
                w.end();
                w.end();
            }),
            b"l4:spamdee"
        );
    }

    #[test]
    fn too_small_counts_everything_and_never_panics() {
        for size in 0..16 {
            let mut buf = alloc::vec![0u8; size];
            let mut w = Writer::new(&mut buf);
            w.begin_list();
            w.int(12345);
            w.bytes(b"ab");
            w.end();
            // l i12345e 2:ab e = 1 + 7 + 4 + 1
            let r = w.finish();
            if size >= 13 {
                assert_eq!(r, Ok(13));
            } else {
                assert_eq!(r, Err(InsufficientSize { required: 13 }));
            }
        }
    }
}
