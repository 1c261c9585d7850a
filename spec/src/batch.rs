//! Verifying many Ed25519 signatures at once, as strictly as one at a
//! time (`spec/PROTOCOL.md` §2): the log checks every submission this
//! way, and the monitor every entry it reads.
//!
//! Batch verification (one multi-scalar multiplication for the batch) is
//! much faster than one check per signature, but it is not the strict RFC
//! 8032 check. So a batch that passes is also held to the rules batching
//! skips: canonical, non-small-order `R`, and a public key not of small
//! order. A batch that fails is re-checked one by one to name the bad
//! signature. The one difference left, a signature its own key's holder
//! crafted with an error of small order, is described at
//! `batch_equation_holds`.

use std::collections::HashMap;

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha512};

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

/// The checks `verify_strict` adds to the batch equation, for each item
/// in turn: the index of the first that fails them. Whether a key is of
/// small order (three doublings and a comparison) is asked once per
/// distinct key; asked per signature, it was 2.4 % of the log's CPU under
/// ingest at 1e7 entries, where a batch of 256 has about 16 keys
/// (BENCHMARKS.md, issue 18, fifteenth session).
fn first_without_strict_extras(items: &[Item]) -> Option<usize> {
    let mut weak: HashMap<[u8; 32], bool> = HashMap::new();
    items.iter().position(|it| {
        let mut r = [0u8; 32];
        r.copy_from_slice(&it.sig[..32]);
        !strict_r(&r)
            || *weak
                .entry(*it.key.as_bytes())
                .or_insert_with(|| it.key.is_weak())
    })
}

/// Whether the batch equation holds for `items`: for random 128-bit `z_i`,
///
/// `[-Σ z_i s_i] B + Σ z_i R_i + Σ_A [Σ_{i: A_i = A} z_i k_i] A = 0`,
///
/// with `k_i = SHA-512(R_i ‖ A_i ‖ M_i)`. This is `ed25519_dalek`'s
/// `verify_batch` (cofactorless, canonical `s`, `R` decompressed, the
/// `z_i` derived from every input so that a batch always gets the same
/// answer) with one change: the terms of each distinct key are summed
/// into one before the multi-scalar multiplication. A log's submissions
/// come from few builders, so the multiplication has about `n` points
/// instead of `2n` (BENCHMARKS.md, issue 18); with `n` distinct keys it is
/// `verify_batch`'s.
///
/// Honest signatures always pass; a batch with a signature whose error
/// is not of small order passes with probability about 2⁻¹²⁸. Like every
/// batch check without the cofactor (`verify_batch` too), a batch whose
/// errors are all of small order may pass for some `z`, and the `z` are a
/// function of the batch: only a key's holder can make such a signature,
/// and what it buys is an attestation of its own that clients, checking
/// one signature at a time, refuse.
fn batch_equation_holds(items: &[Item]) -> bool {
    let n = items.len();
    let mut transcript = Sha512::new();
    transcript.update(b"vouch batch verification v1\n");
    transcript.update((n as u64).to_le_bytes());
    let mut hrams = Vec::with_capacity(n);
    // The R_i, the base point and at most n keys.
    let mut points = Vec::with_capacity(2 * n + 1);
    let mut ss = Vec::with_capacity(n);
    for it in items {
        let (r, s) = it.sig.split_at(32);
        let mut h = Sha512::new();
        h.update(r);
        h.update(it.key.as_bytes());
        h.update(it.msg);
        let hram: [u8; 64] = h.finalize().into();
        transcript.update(hram);
        transcript.update(s);
        hrams.push(Scalar::from_bytes_mod_order_wide(&hram));
        let mut s32 = [0u8; 32];
        s32.copy_from_slice(s);
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s32)) else {
            return false;
        };
        ss.push(s);
        let mut r32 = [0u8; 32];
        r32.copy_from_slice(r);
        let Some(r) = CompressedEdwardsY(r32).decompress() else {
            return false;
        };
        points.push(r);
    }
    let seed: [u8; 64] = transcript.finalize().into();
    // z_i: 128 bits each, four to a SHA-512(seed ‖ block number).
    let mut zs: Vec<Scalar> = Vec::with_capacity(n);
    for block in 0..n.div_ceil(4) as u64 {
        let mut h = Sha512::new();
        h.update(seed);
        h.update(block.to_le_bytes());
        let out: [u8; 64] = h.finalize().into();
        for z in out.chunks_exact(16).take(n - zs.len()) {
            let mut wide = [0u8; 32];
            wide[..16].copy_from_slice(z);
            zs.push(Scalar::from_bytes_mod_order(wide));
        }
    }
    let mut b_coefficient = Scalar::ZERO;
    let mut scalars: Vec<Scalar> = Vec::with_capacity(2 * n + 1);
    // Each distinct key once, with the sum of its z_i k_i.
    let mut key_slot: HashMap<[u8; 32], usize> = HashMap::new();
    let mut key_terms: Vec<(Scalar, EdwardsPoint)> = Vec::new();
    for (((it, z), s), hram) in items.iter().zip(&zs).zip(&ss).zip(&hrams) {
        b_coefficient += z * s;
        scalars.push(*z);
        let zk = z * hram;
        match key_slot.get(it.key.as_bytes()) {
            Some(&slot) => key_terms[slot].0 += zk,
            None => {
                key_slot.insert(*it.key.as_bytes(), key_terms.len());
                key_terms.push((zk, it.key.to_edwards()));
            }
        }
    }
    scalars.push(-b_coefficient);
    points.push(ED25519_BASEPOINT_POINT);
    for (k, a) in key_terms {
        scalars.push(k);
        points.push(a);
    }
    EdwardsPoint::vartime_multiscalar_mul(scalars, points).is_identity()
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
    if batch_equation_holds(items) {
        return first_without_strict_extras(items);
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

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Batches with keys repeated (their terms summed) or distinct,
        /// and damage of every kind (a bit of R or s, the message, the key
        /// swapped): the first signature that fails alone is the one named.
        #[test]
        fn summed_keys_name_the_first_signature_that_fails_alone(
            n in 1usize..24,
            nkeys in 1u8..5,
            damage in proptest::collection::vec((0usize..24, 0u8..4, 0usize..64), 0..3),
        ) {
            let keys: Vec<SigningKey> = (0..nkeys).map(|i| SigningKey::from_bytes(&[i + 1; 32])).collect();
            let mut msgs: Vec<Vec<u8>> = (0..n).map(|i| format!("1;/nix/store/{i}").into_bytes()).collect();
            let mut sigs: Vec<[u8; 64]> = (0..n).map(|i| keys[i % keys.len()].sign(&msgs[i]).to_bytes()).collect();
            let mut vks: Vec<VerifyingKey> = (0..n).map(|i| keys[i % keys.len()].verifying_key()).collect();
            for (at, kind, bit) in damage {
                let i = at % n;
                match kind {
                    0 => sigs[i][bit / 2] ^= 1 << (bit % 8),
                    1 => sigs[i][32 + bit / 2] ^= 1 << (bit % 8),
                    2 => msgs[i].push(b'x'),
                    _ => vks[i] = SigningKey::from_bytes(&[99; 32]).verifying_key(),
                }
            }
            let items: Vec<Item> = (0..n).map(|i| Item { msg: &msgs[i], sig: sigs[i], key: vks[i] }).collect();
            let alone = (0..n).position(|i| vks[i].verify_strict(&msgs[i], &Signature::from_bytes(&sigs[i])).is_err());
            proptest::prop_assert_eq!(first_invalid(&items), alone);
            // A damaged batch that held would be a forgery.
            proptest::prop_assert_eq!(batch_equation_holds(&items), alone.is_none());
        }
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
