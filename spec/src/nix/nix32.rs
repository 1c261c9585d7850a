//! Nix's base-32 ("nix32"): the alphabet `0123456789abcdfghijklmnpqrsvwxyz`
//! (no e, o, u, t), digits taken from the *end* of the byte string, five bits
//! at a time, least significant bits first (Nix `printHash32`/`parseHash32`,
//! src/libutil/hash.cc).

/// The 32 digits.
pub const ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// Length of the nix32 encoding of `n` bytes.
pub fn encoded_len(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (n * 8 - 1) / 5 + 1
    }
}

/// Encodes bytes as nix32.
pub fn encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(encoded_len(bytes.len()));
    push(bytes, &mut s);
    s
}

/// Appends the nix32 encoding of `bytes` to `out`.
pub fn push(bytes: &[u8], out: &mut String) {
    let len = encoded_len(bytes.len());
    out.reserve(len);
    for n in (0..len).rev() {
        let b = n * 5;
        let (i, j) = (b / 8, b % 8);
        let lo = bytes[i] >> j;
        let hi = if i + 1 < bytes.len() {
            (u16::from(bytes[i + 1]) << (8 - j)) as u8
        } else {
            0
        };
        out.push(ALPHABET[((lo | hi) & 0x1f) as usize] as char);
    }
}

/// Why a nix32 string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Nix32Error {
    /// Wrong number of digits for the expected byte length.
    #[error("nix32 string {text:?} has {got} digits, want {want}")]
    Length {
        /// The input.
        text: String,
        /// Digits found.
        got: usize,
        /// Digits expected.
        want: usize,
    },
    /// A character outside the alphabet.
    #[error("nix32 string {text:?} has invalid digit {digit:?}")]
    Digit {
        /// The input.
        text: String,
        /// The offending character.
        digit: char,
    },
    /// The most significant digit sets bits beyond the byte length.
    #[error("nix32 string {0:?} has non-zero padding bits")]
    Padding(String),
}

/// Digit values by byte (0xff: not a digit).
const VALUES: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        t[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// Whether `c` is one of the 32 digits.
pub fn is_digit(c: u8) -> bool {
    VALUES[usize::from(c)] != 0xff
}

fn digit_value(c: u8) -> Option<u8> {
    let v = VALUES[usize::from(c)];
    (v != 0xff).then_some(v)
}

/// Decodes nix32 into exactly `n` bytes, rejecting wrong lengths, foreign
/// digits and non-zero padding bits (so every value has one spelling).
pub fn decode(text: &str, n: usize) -> Result<Vec<u8>, Nix32Error> {
    let mut out = vec![0u8; n];
    decode_into(text, &mut out)?;
    Ok(out)
}

/// [`decode`] into `out` (its length is `n`), which must be zeroed.
pub fn decode_into(text: &str, out: &mut [u8]) -> Result<(), Nix32Error> {
    let n = out.len();
    let want = encoded_len(n);
    if text.len() != want {
        return Err(Nix32Error::Length {
            text: text.to_string(),
            got: text.len(),
            want,
        });
    }
    for (k, &c) in text.as_bytes().iter().rev().enumerate() {
        let d = digit_value(c).ok_or_else(|| Nix32Error::Digit {
            text: text.to_string(),
            digit: char::from(c),
        })?;
        let b = k * 5;
        let (i, j) = (b / 8, b % 8);
        out[i] |= d << j;
        let carry = if j > 3 { d >> (8 - j) } else { 0 };
        if i + 1 < n {
            out[i + 1] |= carry;
        } else if carry != 0 {
            return Err(Nix32Error::Padding(text.to_string()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        // From Nix's own tests (tests/hash.sh): sha256 of "abc".
        let abc = crate::hash::sha256(b"abc");
        assert_eq!(
            encode(&abc),
            "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s"
        );
        assert_eq!(
            decode("1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s", 32).unwrap(),
            abc
        );
        assert_eq!(encoded_len(20), 32);
        assert_eq!(encoded_len(32), 52);
        // The digit "z" = 31 in the top position sets bits beyond 256.
        let mut over = encode(&abc);
        over.replace_range(0..1, "z");
        assert_eq!(decode(&over, 32), Err(Nix32Error::Padding(over.clone())));
        assert!(matches!(decode("e", 1), Err(Nix32Error::Length { .. })));
        assert!(matches!(
            decode("0e", 1),
            Err(Nix32Error::Digit { digit: 'e', .. })
        ));
    }

    proptest! {
        #[test]
        fn roundtrip(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let s = encode(&bytes);
            prop_assert_eq!(s.len(), encoded_len(bytes.len()));
            prop_assert_eq!(decode(&s, bytes.len()).unwrap(), bytes);
        }
        #[test]
        fn decode_never_panics(s in "\\PC{0,60}", n in 0usize..40) {
            let _ = decode(&s, n);
        }
        #[test]
        fn decode_is_canonical(s in "[0-9a-z]{0,60}", n in 0usize..40) {
            if let Ok(b) = decode(&s, n) { prop_assert_eq!(encode(&b), s); }
        }
    }
}
