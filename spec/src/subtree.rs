//! Subtrees and subtree consistency proofs
//! (draft-ietf-plants-merkle-tree-certs-02, "Subtrees" and "Subtree
//! Consistency Proofs"), which C2SP tlog-mirror's `add-entries` uses to
//! authenticate each package of entries against a checkpoint.
//!
//! A subtree `[start, end)` is valid when `start < end` and `start` is a
//! multiple of `BIT_CEIL(end - start)`; its hash is `MTH(D[start:end])`.
//! A subtree consistency proof shows that a subtree's hash belongs to the
//! tree of size `n >= end` with a given root. It generalises the RFC 9162
//! consistency proof, which is the case `start == 0`.

use std::ops::Range;

use crate::hash::{node_hash, Hash};
use crate::merkle::{range_hash, split_point, NodeSource};

/// The most hashes a subtree consistency proof for a 64-bit tree can hold;
/// C2SP tlog-mirror caps a package's `num_hashes` at the same number.
pub const MAX_PROOF_HASHES: usize = 63;

/// Why a subtree consistency proof could not be made or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubtreeError {
    /// `[start, end)` is not a valid subtree.
    #[error("[{start}, {end}) is not a subtree: it must be non-empty and start at a multiple of its size rounded up to a power of two")]
    Invalid {
        /// Its start.
        start: u64,
        /// Its end.
        end: u64,
    },
    /// The subtree ends past the tree.
    #[error("subtree [{start}, {end}) ends past the tree of size {size}")]
    PastTree {
        /// Its start.
        start: u64,
        /// Its end.
        end: u64,
        /// The tree's size.
        size: u64,
    },
    /// The proof has the wrong number of hashes.
    #[error(
        "subtree consistency proof for [{start}, {end}) in {size} has {got} hashes, want {want}"
    )]
    WrongLength {
        /// Its start.
        start: u64,
        /// Its end.
        end: u64,
        /// The tree's size.
        size: u64,
        /// Hashes supplied.
        got: usize,
        /// Hashes expected.
        want: usize,
    },
    /// The proof does not connect the subtree's hash to the root.
    #[error("subtree consistency proof for [{start}, {end}) does not lead to the root of the tree of size {size}")]
    Mismatch {
        /// Its start.
        start: u64,
        /// Its end.
        end: u64,
        /// The tree's size.
        size: u64,
    },
}

/// Whether `[start, end)` is a valid subtree.
pub fn is_valid(start: u64, end: u64) -> bool {
    start < end
        && (end - start)
            .checked_next_power_of_two()
            .is_some_and(|p| start.is_multiple_of(p))
}

fn check(start: u64, end: u64, size: u64) -> Result<(), SubtreeError> {
    if !is_valid(start, end) {
        return Err(SubtreeError::Invalid { start, end });
    }
    if end > size {
        return Err(SubtreeError::PastTree { start, end, size });
    }
    Ok(())
}

/// One step of the proof's recursion, outermost first: the tree node
/// `[lo, hi)` splits at `lo + k`; `side` says where the subtree lies.
#[derive(Clone, Copy)]
enum Step {
    /// The subtree is in the left half; the proof holds the right half.
    Left,
    /// The subtree is in the right half; the proof holds the left half.
    Right,
    /// The subtree straddles the split (so starts at `lo`): the left half
    /// is part of it, and the proof holds it.
    Straddle,
}

/// The unrolled recursion: its steps, outermost first, and the innermost
/// node when its hash must be in the proof.
type Steps = (Vec<(Step, Range<u64>)>, Option<Range<u64>>);

/// The recursion `SUBTREE_SUBPROOF(start, end, D[0:size], true)`, unrolled:
/// the steps, outermost first, each with the range whose hash the proof
/// carries; then whether the innermost node's hash is already known (it is
/// the subtree itself) or must be in the proof too (as its first hash).
fn steps(start: u64, end: u64, size: u64) -> Steps {
    let (mut lo, mut hi, mut s, e, mut known) = (0u64, size, start, end, true);
    let mut out = Vec::new();
    while !(s == lo && e == hi) {
        let k = split_point(hi - lo);
        let mid = lo + k;
        if e <= mid {
            out.push((Step::Left, mid..hi));
            hi = mid;
        } else if s >= mid {
            out.push((Step::Right, lo..mid));
            lo = mid;
        } else {
            // s < mid < e: a valid subtree can only straddle at its start.
            out.push((Step::Straddle, lo..mid));
            lo = mid;
            s = mid;
            known = false;
        }
    }
    let first = (!known).then_some(lo..hi);
    (out, first)
}

/// The ranges whose hashes make up the subtree consistency proof of
/// `[start, end)` in the tree of `size` leaves, in proof order.
pub fn proof_ranges(start: u64, end: u64, size: u64) -> Result<Vec<Range<u64>>, SubtreeError> {
    check(start, end, size)?;
    let (steps, first) = steps(start, end, size);
    let mut out: Vec<Range<u64>> = first.into_iter().collect();
    out.extend(steps.into_iter().rev().map(|(_, r)| r));
    Ok(out)
}

/// The subtree consistency proof of `[start, end)` in the tree of `size`
/// leaves, from `src`'s nodes.
pub fn prove<S: NodeSource>(
    start: u64,
    end: u64,
    size: u64,
    src: &S,
) -> Result<Result<Vec<Hash>, SubtreeError>, S::Error> {
    let ranges = match proof_ranges(start, end, size) {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    let mut proof = Vec::with_capacity(ranges.len());
    for r in ranges {
        proof.push(range_hash(r, src)?);
    }
    Ok(Ok(proof))
}

/// Checks that `subtree_hash` is the hash of `[start, end)` in the tree of
/// `size` leaves whose root is `root`, given the subtree consistency proof.
pub fn verify(
    start: u64,
    end: u64,
    subtree_hash: &Hash,
    size: u64,
    root: &Hash,
    proof: &[Hash],
) -> Result<(), SubtreeError> {
    check(start, end, size)?;
    let (steps, first) = steps(start, end, size);
    let want = steps.len() + usize::from(first.is_some());
    if proof.len() != want {
        return Err(SubtreeError::WrongLength {
            start,
            end,
            size,
            got: proof.len(),
            want,
        });
    }
    // Innermost node: the subtree itself, or (after a straddle) the part of
    // it in the right half, which the proof supplies.
    let (mut sub, mut node, rest) = match first {
        Some(_) => (proof[0], proof[0], &proof[1..]),
        None => (*subtree_hash, *subtree_hash, proof),
    };
    for ((step, _), h) in steps.iter().rev().zip(rest) {
        match step {
            Step::Left => node = node_hash(&node, h),
            Step::Right => node = node_hash(h, &node),
            Step::Straddle => {
                sub = node_hash(h, &sub);
                node = node_hash(h, &node);
            }
        }
    }
    if sub != *subtree_hash || node != *root {
        return Err(SubtreeError::Mismatch { start, end, size });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{leaf_hash, sha256};
    use crate::merkle::MemoryTree;
    use proptest::prelude::*;

    fn tree(n: u64) -> MemoryTree {
        MemoryTree::from_leaves((0..n).map(|i| leaf_hash(&[i as u8])))
    }

    fn line(prefix: String, proof: &[Hash]) -> String {
        let mut s = prefix;
        for h in proof {
            s.push(' ');
            s.push_str(&h.to_hex());
        }
        s.push('\n');
        s
    }

    /// The draft's accumulated "Subtree Test Vectors" (appendix): every
    /// valid subtree of the trees of up to 130 one-byte leaves 0x00, 0x01,
    /// ... (and the empty ones), each `[start, end) hash` and each `[start, end) n proof...`
    /// line folded into one SHA-256. The same values are checked by the
    /// draft's reference code, so a match is interoperability.
    #[test]
    fn the_drafts_accumulated_vectors() {
        const MAX: u64 = 130;
        let t = tree(MAX);
        let mut hashes = String::new();
        for end in 0..=MAX {
            for start in 0..=end {
                // The draft also counts the empty subtrees, hashed as the
                // empty tree, with empty proofs; packages are never empty.
                if start == end || is_valid(start, end) {
                    let h = range_hash(start..end, &t).unwrap();
                    hashes.push_str(&format!("[{start}, {end}) {}\n", h.to_hex()));
                }
            }
        }
        assert_eq!(
            Hash(sha256(hashes.as_bytes())).to_hex(),
            "b82806ad4265bb151c1119c0f4db437bb4d1a1f887b3a7fba1cd4ebf552e3e81"
        );
        let mut proofs = String::new();
        for n in 0..=MAX {
            for end in 0..=n {
                for start in 0..=end {
                    if start == end {
                        proofs.push_str(&line(format!("[{start}, {end}) {n}"), &[]));
                        continue;
                    }
                    if !is_valid(start, end) {
                        continue;
                    }
                    let proof = prove(start, end, n, &t).unwrap().unwrap();
                    let root = t.root_at(n).unwrap();
                    let sub = range_hash(start..end, &t).unwrap();
                    verify(start, end, &sub, n, &root, &proof).unwrap();
                    proofs.push_str(&line(format!("[{start}, {end}) {n}"), &proof));
                }
            }
        }
        assert_eq!(
            Hash(sha256(proofs.as_bytes())).to_hex(),
            "10fa99b37bf9bf9ffa26b412fbd98bd75363256d0b75d61bc4538b9c9c5a0a74"
        );
    }

    #[test]
    fn validity() {
        assert!(is_valid(0, 1) && is_valid(256, 300) && is_valid(0, 5) && is_valid(8, 12));
        assert!(!is_valid(0, 0) && !is_valid(4, 9) && !is_valid(2, 5) && !is_valid(5, 4));
        assert!(is_valid(u64::MAX - 1, u64::MAX));
        assert!(!is_valid(1, u64::MAX));
    }

    proptest! {
        /// Any change to the proof, the subtree hash, the root or the
        /// sizes makes verification fail.
        #[test]
        fn only_the_right_proof_verifies(n in 1u64..700, a in any::<u64>(), b in any::<u64>(),
                                         flip in any::<prop::sample::Index>(), bit in 0u8..8) {
            let t = tree(n);
            let end = a % n + 1;
            // Pick a valid start for this end.
            let starts: Vec<u64> = (0..end).filter(|s| is_valid(*s, end)).collect();
            let start = starts[(b % starts.len() as u64) as usize];
            let proof = prove(start, end, n, &t).unwrap().unwrap();
            prop_assert!(proof.len() <= MAX_PROOF_HASHES);
            let root = t.root_at(n).unwrap();
            let sub = range_hash(start..end, &t).unwrap();
            prop_assert!(verify(start, end, &sub, n, &root, &proof).is_ok());
            if !proof.is_empty() {
                let mut bad = proof.clone();
                bad[flip.index(proof.len())].0[0] ^= 1 << bit;
                prop_assert!(verify(start, end, &sub, n, &root, &bad).is_err());
                prop_assert!(verify(start, end, &sub, n, &root, &proof[1..]).is_err());
            }
            let mut longer = proof.clone();
            longer.push(root);
            prop_assert!(verify(start, end, &sub, n, &root, &longer).is_err());
            let mut bad_sub = sub;
            bad_sub.0[31] ^= 1 << bit;
            prop_assert!(verify(start, end, &bad_sub, n, &root, &proof).is_err());
            let mut bad_root = root;
            bad_root.0[0] ^= 1 << bit;
            prop_assert!(verify(start, end, &sub, n, &bad_root, &proof).is_err());
            if n < 700 {
                let bigger = tree(n + 1);
                prop_assert!(verify(start, end, &sub, n + 1, &bigger.root(), &proof).is_err());
            }
        }
    }
}
