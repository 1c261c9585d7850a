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

/// Decodes canonical padded standard base64.
pub fn decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    // The STANDARD engine requires canonical padding and rejects non-zero
    // trailing bits, so encode(decode(x)) == x for every accepted x.
    STANDARD.decode(text)
}
