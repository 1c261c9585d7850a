//! Verifying many Ed25519 signatures at once, exactly as strictly as one
//! at a time (`spec/PROTOCOL.md` §2): the log checks every submission this
//! way, and the monitor every entry it reads.
//!
//! Batch verification (one multi-scalar multiplication for the batch) is
//! much faster than one check per signature, but it is not the strict RFC
//! 8032 check. So a batch that passes is also held to the rules batching
//! skips: canonical, non-small-order `R`, and a public key not of small
//! order. A batch that fails is re-checked one by one to name the bad
//! signature.

use curve25519_dalek::edwards::CompressedEdwardsY;
use ed25519_dalek::{Signature, VerifyingKey};

/// One signature to check.
pub struct Item<'a> {
    /// The signed message (the fingerprint).
    pub msg: &'a [u8],
    /// The signature.
    pub sig: [u8; 64],
    /// The key.
    pub key: VerifyingKey,
}

fn strict_extras(it: &Item) -> bool {
    let mut r = [0u8; 32];
    r.copy_from_slice(&it.sig[..32]);
    let Some(point) = CompressedEdwardsY(r).decompress() else {
        return false;
    };
    point.compress().to_bytes() == r && !point.is_small_order() && !it.key.is_weak()
}

/// Indexes of every signature that fails the strict check (one batch when
/// all pass).
pub fn invalid(items: &[Item]) -> Vec<usize> {
    if first_invalid(items).is_none() {
        return Vec::new();
    }
    items
        .iter()
        .enumerate()
        .filter(|(_, it)| {
            it.key
                .verify_strict(it.msg, &Signature::from_bytes(&it.sig))
                .is_err()
        })
        .map(|(i, _)| i)
        .collect()
}

/// Index of the first signature that fails the strict check, if any.
pub fn first_invalid(items: &[Item]) -> Option<usize> {
    if items.is_empty() {
        return None;
    }
    let msgs: Vec<&[u8]> = items.iter().map(|i| i.msg).collect();
    let sigs: Vec<Signature> = items
        .iter()
        .map(|i| Signature::from_bytes(&i.sig))
        .collect();
    let keys: Vec<VerifyingKey> = items.iter().map(|i| i.key).collect();
    if ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok() {
        if let Some(bad) = items.iter().position(|it| !strict_extras(it)) {
            return Some(bad);
        }
        return None;
    }
    items.iter().position(|it| {
        it.key
            .verify_strict(it.msg, &Signature::from_bytes(&it.sig))
            .is_err()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    #[test]
    fn batch_agrees_with_strict_verification() {
        let keys: Vec<SigningKey> = (0..40u8)
            .map(|i| SigningKey::from_bytes(&[i; 32]))
            .collect();
        let msgs: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 10]).collect();
        let mut items: Vec<Item> = keys
            .iter()
            .zip(&msgs)
            .map(|(k, m)| Item {
                msg: m,
                sig: k.sign(m).to_bytes(),
                key: k.verifying_key(),
            })
            .collect();
        assert_eq!(first_invalid(&items), None);
        items[17].sig[40] ^= 1;
        assert_eq!(first_invalid(&items), Some(17));
        assert_eq!(invalid(&items), vec![17]);
        items[17].sig[40] ^= 1;
        // A small-order public key with a signature that batch-verifies
        // trivially is still refused: the identity point as key and R, S = 0.
        let identity = CompressedEdwardsY([1; 32].map(|_| 0)).0;
        let mut id = identity;
        id[0] = 1;
        let weak = VerifyingKey::from_bytes(&id).unwrap();
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&id);
        items.push(Item {
            msg: b"anything",
            sig,
            key: weak,
        });
        assert_eq!(first_invalid(&items), Some(40));
    }
}
