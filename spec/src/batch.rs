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

/// The canonical encodings of the eight points of small order (the
/// identity, the point of order 2, two of order 4 and four of order 8);
/// `tests::small_order_encodings_are_the_eight_torsion_points` checks them.
const SMALL_ORDER: [[u8; 32]; 8] = [
    hex32("0100000000000000000000000000000000000000000000000000000000000000"),
    hex32("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    hex32("0000000000000000000000000000000000000000000000000000000000000000"),
    hex32("0000000000000000000000000000000000000000000000000000000000000080"),
    hex32("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
    hex32("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"),
    hex32("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
    hex32("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85"),
];

const fn hex32(s: &str) -> [u8; 32] {
    let b = s.as_bytes();
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        let hi = (b[2 * i] as char).to_digit(16);
        let lo = (b[2 * i + 1] as char).to_digit(16);
        out[i] = match (hi, lo) {
            (Some(h), Some(l)) => (h * 16 + l) as u8,
            _ => panic!("not hex"),
        };
        i += 1;
    }
    out
}

/// Whether `r`, the encoding of a point on the curve (batch verification
/// decompressed it), is canonical and not of small order: the checks
/// `verify_strict` adds for `R`, without a second decompression (a square
/// root). Canonical means `y < p`, and a sign bit of 0 where `x = 0`
/// (`y = ±1`, both of small order anyway).
fn strict_r(r: &[u8; 32]) -> bool {
    let mut y = *r;
    y[31] &= 0x7f;
    // y ≥ p = 2^255 - 19: 0x7fff…ff with a low byte of 0xed or more.
    if y[31] == 0x7f && y[1..31].iter().all(|b| *b == 0xff) && y[0] >= 0xed {
        return false;
    }
    if r[31] & 0x80 != 0 && (y == SMALL_ORDER[0] || y == SMALL_ORDER[1]) {
        return false;
    }
    !SMALL_ORDER.contains(r)
}

fn strict_extras(it: &Item) -> bool {
    let mut r = [0u8; 32];
    r.copy_from_slice(&it.sig[..32]);
    strict_r(&r) && !it.key.is_weak()
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
    use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
    use curve25519_dalek::scalar::Scalar;
    use ed25519_dalek::{Signer, SigningKey};

    /// The slow check `strict_r` replaces: decompress, re-compress, order.
    fn slow(r: &[u8; 32]) -> Option<bool> {
        let p = CompressedEdwardsY(*r).decompress()?;
        Some(p.compress().to_bytes() == *r && !p.is_small_order())
    }

    #[test]
    fn small_order_encodings_are_the_eight_torsion_points() {
        let mut points: Vec<EdwardsPoint> = Vec::new();
        for e in SMALL_ORDER {
            let p = CompressedEdwardsY(e).decompress().expect("on the curve");
            assert!(p.is_small_order());
            assert_eq!(p.compress().to_bytes(), e, "canonical");
            assert!(!points.contains(&p));
            points.push(p);
        }
    }

    proptest::proptest! {
        /// On every point encoding batch verification could have accepted
        /// (anything that decompresses), the fast check is the slow one.
        #[test]
        fn strict_r_agrees_with_decompression(bytes in proptest::prelude::any::<[u8; 32]>(), s in proptest::prelude::any::<[u8; 32]>(), t in 0usize..8) {
            // Random bytes (mostly off the curve), random points, and
            // random points plus a torsion component.
            let base = EdwardsPoint::mul_base(&Scalar::from_bytes_mod_order(s));
            let torsion = CompressedEdwardsY(SMALL_ORDER[t]).decompress().unwrap();
            for r in [bytes, base.compress().to_bytes(), (base + torsion).compress().to_bytes()] {
                if let Some(want) = slow(&r) {
                    proptest::prop_assert_eq!(strict_r(&r), want, "{:?}", r);
                }
            }
        }
    }

    #[test]
    fn strict_r_refuses_non_canonical_and_small_order_encodings() {
        let mut cases: Vec<[u8; 32]> = Vec::new();
        for e in SMALL_ORDER {
            cases.push(e);
            let mut flipped = e;
            flipped[31] ^= 0x80;
            cases.push(flipped);
        }
        // y = p + k for k < 19, both signs.
        for k in 0u8..19 {
            let mut y = [0xffu8; 32];
            y[31] = 0x7f;
            y[0] = 0xed + k;
            cases.push(y);
            y[31] = 0xff;
            cases.push(y);
        }
        let mut on_curve = 0;
        for r in cases {
            if let Some(want) = slow(&r) {
                on_curve += 1;
                assert_eq!(strict_r(&r), want, "{r:?}");
            }
            assert!(!strict_r(&r) || slow(&r) == Some(true), "{r:?}");
        }
        assert!(on_curve >= 16, "{on_curve}");
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
