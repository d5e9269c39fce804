//! A short byte string stored inline (tokens, remote transaction ids), so that descriptors and
//! candidates need no allocation.

/// Longest [`SmallBytes`].
pub(crate) const MAX_SMALL: usize = 32;

/// Up to [`MAX_SMALL`] bytes, inline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SmallBytes {
    len: u8,
    bytes: [u8; MAX_SMALL],
}

impl SmallBytes {
    /// No bytes.
    pub(crate) const EMPTY: Self = Self {
        len: 0,
        bytes: [0; MAX_SMALL],
    };

    /// A copy of `data`, or `None` if it is longer than [`MAX_SMALL`].
    pub(crate) fn new(data: &[u8]) -> Option<Self> {
        let mut bytes = [0u8; MAX_SMALL];
        bytes.get_mut(..data.len())?.copy_from_slice(data);
        Some(Self {
            len: u8::try_from(data.len()).ok()?,
            bytes,
        })
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }
}
