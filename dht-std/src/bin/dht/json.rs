//! A small JSON value for the `--json` output (one object per line, no pretty-printing).

use core::fmt::{self, Write as _};

/// A JSON value.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// An empty object, to fill with [`Json::field`].
    pub fn obj() -> Self {
        Self::Obj(Vec::new())
    }

    /// Adds a field to an object (no effect on other values).
    #[must_use]
    pub fn field(mut self, key: &str, value: impl Into<Json>) -> Self {
        if let Self::Obj(fields) = &mut self {
            fields.push((key.to_owned(), value.into()));
        }
        self
    }

    /// Adds a field when `value` is `Some`.
    #[must_use]
    pub fn field_opt(self, key: &str, value: Option<impl Into<Json>>) -> Self {
        match value {
            Some(v) => self.field(key, v),
            None => self,
        }
    }

    /// A string of the hex digits of `bytes`.
    pub fn hex(bytes: &[u8]) -> Self {
        Self::Str(hex(bytes))
    }
}

/// Lowercase hex digits.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

impl From<&str> for Json {
    fn from(s: &str) -> Self {
        Self::Str(s.to_owned())
    }
}
impl From<String> for Json {
    fn from(s: String) -> Self {
        Self::Str(s)
    }
}
impl From<bool> for Json {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}
impl From<i64> for Json {
    fn from(n: i64) -> Self {
        Self::Int(n)
    }
}
impl From<u64> for Json {
    fn from(n: u64) -> Self {
        Self::UInt(n)
    }
}
impl From<u32> for Json {
    fn from(n: u32) -> Self {
        Self::UInt(n.into())
    }
}
impl From<u16> for Json {
    fn from(n: u16) -> Self {
        Self::UInt(n.into())
    }
}
impl From<usize> for Json {
    fn from(n: usize) -> Self {
        Self::UInt(n as u64)
    }
}
impl From<f64> for Json {
    fn from(n: f64) -> Self {
        Self::Float(n)
    }
}
impl From<Vec<Json>> for Json {
    fn from(v: Vec<Json>) -> Self {
        Self::Arr(v)
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bool(b) => write!(f, "{b}"),
            Self::Int(n) => write!(f, "{n}"),
            Self::UInt(n) => write!(f, "{n}"),
            Self::Float(x) if x.is_finite() => write!(f, "{x}"),
            Self::Float(_) => f.write_str("null"),
            Self::Str(s) => write_str(f, s),
            Self::Arr(items) => {
                f.write_char('[')?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    item.fmt(f)?;
                }
                f.write_char(']')
            }
            Self::Obj(fields) => {
                f.write_char('{')?;
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    write_str(f, k)?;
                    f.write_char(':')?;
                    v.fmt(f)?;
                }
                f.write_char('}')
            }
        }
    }
}

fn write_str(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if u32::from(c) < 0x20 || c == '\u{7f}' => write!(f, "\\u{:04x}", u32::from(c))?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_compact_json() {
        let v = Json::obj()
            .field("s", "a\"b\\c\n\u{1}é")
            .field("n", -3i64)
            .field("u", 7u64)
            .field("f", 1.5)
            .field("nan", f64::NAN)
            .field("b", true)
            .field("arr", vec![Json::from(1u64), Json::obj()])
            .field_opt("missing", None::<u64>);
        assert_eq!(
            v.to_string(),
            r#"{"s":"a\"b\\c\n\u0001é","n":-3,"u":7,"f":1.5,"nan":null,"b":true,"arr":[1,{}]}"#
        );
        assert_eq!(Json::hex(&[0, 0xab, 0x10]).to_string(), r#""00ab10""#);
    }
}
