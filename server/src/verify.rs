//! The verify step of a submission (`spec/PROTOCOL.md` §5.2): split the
//! body into attestations, parse each (400 naming it), then check every
//! builder signature at once (403 naming the first bad one), and prepare
//! the entries for the sequencer. Admission (allow-list, rates) runs
//! between parsing and verifying ([`crate::admission`]).
//!
//! Ed25519 batch verification (one multi-scalar multiplication for the
//! batch) is much faster than one check per signature, but it is not the
//! strict RFC 8032 check every Vouch client applies (`spec/PROTOCOL.md` §2).
//! So a batch that passes is also held to the strict rules that batching
//! skips: canonical, non-small-order `R`, and a public key not of small
//! order. Then the log accepts exactly what clients accept. A batch that
//! fails is re-checked one by one to name the bad signature.

use curve25519_dalek::edwards::CompressedEdwardsY;
use ed25519_dalek::{Signature, VerifyingKey};
use vouch_spec::attestation::{Attestation, References, HEADER};

use crate::error::ApiError;
use crate::sequencer::Prepared;

/// Splits a submission body into attestations at each header line.
fn split_attestations(body: &[u8]) -> Result<Vec<&[u8]>, ApiError> {
    let header = format!("{HEADER}\n");
    if !body.starts_with(header.as_bytes()) {
        return Err(ApiError::BadRequest(format!(
            "body must start with the line {HEADER:?}"
        )));
    }
    let mut starts = vec![0usize];
    let needle = format!("\n{HEADER}\n");
    let mut from = 0;
    while let Some(p) = find(&body[from..], needle.as_bytes()) {
        starts.push(from + p + 1);
        from += p + 1;
    }
    starts.push(body.len());
    Ok(starts.windows(2).map(|w| &body[w[0]..w[1]]).collect())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses every attestation of a body (at most `max` of them, 413 beyond).
pub fn parse(body: &[u8], max: usize) -> Result<Vec<Attestation>, ApiError> {
    let parts = split_attestations(body)?;
    if parts.len() > max {
        return Err(ApiError::TooLarge(format!(
            "{} attestations exceed the limit of {max} per request",
            parts.len()
        )));
    }
    parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            Attestation::parse(part)
                .map_err(|e| ApiError::BadRequest(format!("attestation {i}: {e}")))
        })
        .collect()
}

/// Verifies every builder signature (403 naming the first bad one) and
/// turns the attestations into entries for the sequencer.
pub fn verify(atts: Vec<Attestation>) -> Result<Vec<Prepared>, ApiError> {
    let fingerprints: Vec<String> = atts.iter().map(|a| a.fingerprint()).collect();
    let items: Vec<Item> = atts
        .iter()
        .zip(&fingerprints)
        .map(|(a, f)| Item {
            msg: f.as_bytes(),
            sig: a.sig,
            key: *a.key.key(),
        })
        .collect();
    if let Some(i) = first_invalid(&items) {
        return Err(ApiError::Forbidden(format!(
            "attestation {i} ({}): signature by builder key {} does not verify over the fingerprint",
            atts[i].path, atts[i].key
        )));
    }
    Ok(atts
        .into_iter()
        .map(|a| {
            let entry = a.to_entry();
            let references = match &entry.references {
                References::Inline(_) => None,
                References::Digest(d) => Some((
                    *d,
                    a.references
                        .iter()
                        .map(|r| format!("{}\n", r.base()))
                        .collect::<String>()
                        .into_bytes(),
                )),
            };
            let mut hash_part = [0u8; 32];
            hash_part.copy_from_slice(a.path.hash_part().as_bytes());
            let bytes = entry.encode();
            Prepared {
                leaf: vouch_spec::leaf_hash(&bytes),
                bytes,
                hash_part,
                references,
            }
        })
        .collect())
}

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
    fn splits_concatenated_attestations() {
        let a = format!("{HEADER}\npath x\n");
        let body = format!("{a}{a}{a}");
        assert_eq!(split_attestations(body.as_bytes()).unwrap().len(), 3);
        assert!(split_attestations(b"garbage").is_err());
    }

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
