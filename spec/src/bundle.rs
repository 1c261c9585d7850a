//! C2SP tlog-tiles entry bundles (`tlog-tiles.md`, "Log entries"): a
//! sequence of big-endian uint16 length-prefixed entries.

/// The largest entry a bundle can carry.
pub const MAX_ENTRY_LEN: usize = u16::MAX as usize;

/// Why an entry bundle was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// The bundle ends inside a length prefix or an entry.
    #[error("entry bundle is truncated in entry {index} at byte {offset}")]
    Truncated {
        /// Index of the entry within the bundle.
        index: usize,
        /// Byte offset where it starts.
        offset: usize,
    },
    /// The bundle holds a different number of entries than its width.
    #[error("entry bundle holds {got} entries, want {want}")]
    Count {
        /// Entries found.
        got: usize,
        /// Entries expected.
        want: usize,
    },
    /// An entry is longer than 65,535 bytes and cannot be bundled.
    #[error("entry {index} is {len} bytes, more than the 65535 a bundle can carry")]
    TooLong {
        /// Index of the entry.
        index: usize,
        /// Its length.
        len: usize,
    },
}

/// Splits a bundle into its entries.
pub fn decode(data: &[u8]) -> Result<Vec<&[u8]>, BundleError> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while off < data.len() {
        let index = out.len();
        let len_bytes = data
            .get(off..off + 2)
            .ok_or(BundleError::Truncated { index, offset: off })?;
        let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        let entry = data
            .get(off + 2..off + 2 + len)
            .ok_or(BundleError::Truncated { index, offset: off })?;
        out.push(entry);
        off += 2 + len;
    }
    Ok(out)
}

/// Splits a bundle and checks it holds exactly `width` entries.
pub fn decode_width(data: &[u8], width: usize) -> Result<Vec<&[u8]>, BundleError> {
    let entries = decode(data)?;
    if entries.len() != width {
        return Err(BundleError::Count {
            got: entries.len(),
            want: width,
        });
    }
    Ok(entries)
}

/// Appends one length-prefixed entry to a bundle under construction.
pub fn push(bundle: &mut Vec<u8>, entry: &[u8]) -> Result<(), BundleError> {
    let len = u16::try_from(entry.len()).map_err(|_| BundleError::TooLong {
        index: 0,
        len: entry.len(),
    })?;
    bundle.extend_from_slice(&len.to_be_bytes());
    bundle.extend_from_slice(entry);
    Ok(())
}

/// Encodes entries as a bundle.
pub fn encode<E: AsRef<[u8]>>(entries: &[E]) -> Result<Vec<u8>, BundleError> {
    let mut out = Vec::new();
    for (index, e) in entries.iter().enumerate() {
        push(&mut out, e.as_ref()).map_err(|_| BundleError::TooLong {
            index,
            len: e.as_ref().len(),
        })?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_truncation() {
        assert!(matches!(
            decode(&[0]),
            Err(BundleError::Truncated {
                index: 0,
                offset: 0
            })
        ));
        assert!(matches!(
            decode(&[0, 3, b'a', b'b']),
            Err(BundleError::Truncated { .. })
        ));
        assert_eq!(decode(&[0, 0]).unwrap(), vec![&[] as &[u8]]);
        assert!(encode(&[vec![0u8; 65536]]).is_err());
        assert!(matches!(
            decode_width(&[0, 1, b'a'], 2),
            Err(BundleError::Count { got: 1, want: 2 })
        ));
    }

    proptest! {
        #[test]
        fn roundtrip(entries in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20)) {
            let b = encode(&entries).unwrap();
            let d = decode(&b).unwrap();
            prop_assert_eq!(d.len(), entries.len());
            for (a, b) in d.iter().zip(entries.iter()) { prop_assert_eq!(*a, b.as_slice()); }
        }
        #[test]
        fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(d) = decode(&data) { prop_assert_eq!(encode(&d).unwrap(), data); }
        }
    }
}
