//! RFC 6962 §2.1 / RFC 9162 §2.1.1 Merkle Tree Hash primitives.
//!
//! Leaves are hashed as `SHA-256(0x00 || entry)`, interior nodes as
//! `SHA-256(0x01 || left || right)`, and the empty tree's root is
//! `SHA-256("")`.

use sha2::{Digest, Sha256};
use std::fmt;

use crate::b64;

/// Length in bytes of every hash in the protocol (SHA-256).
pub const HASH_LEN: usize = 32;

/// A SHA-256 value: a leaf hash, an interior node hash or a tree root.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; HASH_LEN]);

/// Errors decoding a hash from its text form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// The text is not canonical standard base64 (RFC 4648 §4).
    #[error("hash {0:?} is not canonical base64")]
    Base64(String),
    /// The decoded value is not 32 bytes long.
    #[error("hash {text:?} decodes to {len} bytes, want 32")]
    Length {
        /// The text that was decoded.
        text: String,
        /// The decoded length.
        len: usize,
    },
}

impl Hash {
    /// The root of the empty tree: `SHA-256("")`.
    pub fn empty_root() -> Hash {
        Hash(Sha256::digest(b"").into())
    }

    /// Decodes a hash from canonical standard base64 (44 characters).
    pub fn from_base64(text: &str) -> Result<Hash, HashError> {
        let bytes = b64::decode(text).map_err(|_| HashError::Base64(text.to_string()))?;
        let arr: [u8; HASH_LEN] = bytes.as_slice().try_into().map_err(|_| HashError::Length {
            text: text.to_string(),
            len: bytes.len(),
        })?;
        Ok(Hash(arr))
    }

    /// Encodes the hash as standard base64 with padding.
    pub fn to_base64(&self) -> String {
        b64::encode(self.0)
    }

    /// Lowercase hex encoding.
    pub fn to_hex(&self) -> String {
        crate::hex::encode(&self.0)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_base64())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

/// Splits concatenated hashes (a hash tile, a stored frontier); `None`
/// unless the length is a multiple of [`HASH_LEN`].
pub fn split_hashes(data: &[u8]) -> Option<Vec<Hash>> {
    if !data.len().is_multiple_of(HASH_LEN) {
        return None;
    }
    Some(
        data.chunks_exact(HASH_LEN)
            .map(|c| {
                let mut h = [0u8; HASH_LEN];
                h.copy_from_slice(c);
                Hash(h)
            })
            .collect(),
    )
}

/// `SHA-256(0x00 || entry)`: the hash of a log entry (RFC 6962 §2.1).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    Hash(h.finalize().into())
}

/// `SHA-256(0x01 || left || right)`: the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left.0);
    h.update(right.0);
    Hash(h.finalize().into())
}

/// Plain `SHA-256(data)`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// The Merkle Tree Hash of a list of leaf hashes, computed directly from the
/// recursive definition of RFC 6962 §2.1. Quadratic-free but allocation-heavy;
/// meant as the reference the fast code is tested against.
pub fn naive_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Hash::empty_root(),
        1 => leaves[0],
        n => {
            let k = crate::merkle::split_point(n as u64) as usize;
            node_hash(&naive_root(&leaves[..k]), &naive_root(&leaves[k..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(
            Hash::empty_root().to_base64(),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    #[test]
    fn base64_roundtrip_and_rejects() {
        let h = leaf_hash(b"");
        assert_eq!(
            h.to_base64(),
            "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0="
        );
        assert_eq!(Hash::from_base64(&h.to_base64()), Ok(h));
        assert!(matches!(
            Hash::from_base64("ZG9uJ3QgY2FyZSAx"),
            Err(HashError::Length { .. })
        ));
        // Non-canonical trailing bits.
        assert!(Hash::from_base64("bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB1=").is_err());
        assert!(Hash::from_base64(" bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=").is_err());
    }
}
