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
        // Transaction ids are mostly 2 or 4 bytes: copies of a known length are a move, not a
        // call to `memcpy`.
        match *data {
            [a, b] => {
                let [x, y, ..] = &mut bytes;
                (*x, *y) = (a, b);
            }
            [a, b, c, d] => {
                let [w, x, y, z, ..] = &mut bytes;
                (*w, *x, *y, *z) = (a, b, c, d);
            }
            _ => bytes.get_mut(..data.len())?.copy_from_slice(data),
        }
        Some(Self {
            len: u8::try_from(data.len()).ok()?,
            bytes,
        })
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_length_round_trips_and_longer_is_refused() {
        let data: [u8; MAX_SMALL + 1] = core::array::from_fn(|i| i as u8 + 1);
        for n in 0..=MAX_SMALL {
            let small = SmallBytes::new(&data[..n]).unwrap();
            assert_eq!(small.as_slice(), &data[..n], "length {n}");
            // The bytes past the length are zero, so equal strings compare equal.
            assert_eq!(small, SmallBytes::new(&data[..n]).unwrap());
            assert!(small.bytes[n..].iter().all(|&b| b == 0), "length {n}");
        }
        assert!(SmallBytes::new(&data).is_none());
    }
}
