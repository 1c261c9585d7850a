//! Strict standard base64 (RFC 4648 §4) as used by C2SP signed notes and Nix.
//!
//! Decoding rejects missing or extra padding, non-zero trailing bits and any
//! character outside the alphabet, so every value has exactly one encoding.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// Encodes bytes as padded standard base64.
pub fn encode(data: impl AsRef<[u8]>) -> String {
    STANDARD.encode(data)
}

/// Appends the padded standard base64 of `data` to `out` (no new String).
pub fn push(data: impl AsRef<[u8]>, out: &mut String) {
    STANDARD.encode_string(data, out)
}

/// Decodes canonical padded standard base64 of exactly `N` bytes
/// (`N` ≤ 64: signatures, keys, hashes) into an array without allocating;
/// `None` for anything [`decode`] rejects or that has another length.
pub fn decode_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    if N > 64 || text.len() != N.div_ceil(3) * 4 {
        return None;
    }
    // The engine wants room for its estimate: at most 66 bytes for 88
    // characters.
    let mut buf = [0u8; 66];
    let n = STANDARD.decode_slice(text, &mut buf).ok()?;
    let mut out = [0u8; N];
    out.copy_from_slice(buf.get(..n).filter(|b| b.len() == N)?);
    Some(out)
}

/// Decodes canonical padded standard base64.
pub fn decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    // The STANDARD engine requires canonical padding and rejects non-zero
    // trailing bits, so encode(decode(x)) == x for every accepted x.
    STANDARD.decode(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn decode_array_is_decode_of_that_length(bytes in proptest::collection::vec(any::<u8>(), 60..68), cut in 0usize..4, junk in "[A-Za-z0-9+/=]{0,3}") {
            let mut text = encode(&bytes);
            text.truncate(text.len() - cut);
            text.push_str(&junk);
            let want = decode(&text).ok().filter(|v| v.len() == 64);
            prop_assert_eq!(decode_array::<64>(&text).map(|a| a.to_vec()), want);
            let want32 = decode(&text).ok().filter(|v| v.len() == 32);
            prop_assert_eq!(decode_array::<32>(&text).map(|a| a.to_vec()), want32);
        }

        #[test]
        fn decode_array_round_trips(bytes in any::<[u8; 32]>()) {
            prop_assert_eq!(decode_array::<32>(&encode(bytes)), Some(bytes));
        }
    }
}
