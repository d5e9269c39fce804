//! Bencode decoding into borrowed views.

/// Limits the decoder enforces, so hostile input costs bounded time and no memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DecodeLimits {
    /// Deepest nesting of lists and dictionaries.
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
