//! Lowercase hexadecimal, as used for key IDs and origin hashes
//! (`spec/PROTOCOL.md` §1: hex is lowercase), on the `hex` crate.

/// Encodes bytes as lowercase hex.
pub fn encode(data: &[u8]) -> String {
    hex::encode(data)
}

/// Decodes lowercase hex; uppercase digits are rejected as non-canonical
/// (the `hex` crate alone would accept them).
pub fn decode(text: &str) -> Option<Vec<u8>> {
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    hex::decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lowercase_is_canonical() {
        assert_eq!(encode(&[0xab, 0x01]), "ab01");
        assert_eq!(decode("ab01"), Some(vec![0xab, 0x01]));
        for bad in ["AB01", "aB01", "ab0", "zz", "ab 01"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn roundtrip(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            proptest::prop_assert_eq!(decode(&encode(&data)), Some(data));
        }
    }
}
