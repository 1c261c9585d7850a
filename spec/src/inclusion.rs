//! Merkle inclusion (audit) proofs: RFC 6962 §2.1.1 for generation and
//! RFC 9162 §2.1.3.2 for verification.

use std::ops::Range;

use crate::hash::{node_hash, Hash};
use crate::merkle::{range_hash, split_point, NodeSource};

/// Why an inclusion proof did not verify or could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InclusionError {
    /// The index is not inside the tree.
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange {
        /// The leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The proof has the wrong number of hashes for this index and size.
    #[error("inclusion proof for index {index} in size {size} has {got} hashes, want {want}")]
    WrongLength {
        /// The leaf index.
        index: u64,
        /// The tree size.
        size: u64,
        /// Hashes supplied.
        got: usize,
        /// Hashes expected.
        want: usize,
    },
    /// The proof leads to a different root.
    #[error(
        "inclusion proof for index {index} in size {size} leads to root {computed}, not {expected}"
    )]
    RootMismatch {
        /// The leaf index.
        index: u64,
        /// The tree size.
        size: u64,
        /// Root computed from the proof.
        computed: Hash,
        /// Root that was expected.
        expected: Hash,
    },
}

/// The ranges of leaves whose tree hashes make up the inclusion proof of
/// `index` in a tree of `size`, from the leaf's sibling up to the root's child.
pub fn proof_ranges(index: u64, size: u64) -> Result<Vec<Range<u64>>, InclusionError> {
    if index >= size {
        return Err(InclusionError::IndexOutOfRange { index, size });
    }
    let mut path = Vec::new();
    let (mut lo, mut hi) = (0u64, size);
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if index < lo + k {
            path.push(lo + k..hi);
            hi = lo + k;
        } else {
            path.push(lo..lo + k);
            lo += k;
        }
    }
    path.reverse();
    Ok(path)
}

/// The number of hashes in an inclusion proof for `index` in `size`.
pub fn proof_len(index: u64, size: u64) -> Result<usize, InclusionError> {
    proof_ranges(index, size).map(|r| r.len())
}

/// Errors from [`prove`]: the request was impossible, or the source failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProveError<E> {
    /// The proof cannot exist.
    #[error(transparent)]
    Invalid(#[from] InclusionError),
    /// The node source could not supply a hash.
    #[error("reading tree hashes: {0}")]
    Source(E),
}

/// Builds the inclusion proof of leaf `index` in the tree of `size` leaves.
pub fn prove<S: NodeSource>(
    index: u64,
    size: u64,
    src: &S,
) -> Result<Vec<Hash>, ProveError<S::Error>> {
    proof_ranges(index, size)?
        .into_iter()
        .map(|r| range_hash(r, src).map_err(ProveError::Source))
        .collect()
}

/// Computes the root implied by `proof` for `leaf` at `index` in `size`
/// (RFC 9162 §2.1.3.2 steps 1–4).
pub fn root_from_proof(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
) -> Result<Hash, InclusionError> {
    if index >= size {
        return Err(InclusionError::IndexOutOfRange { index, size });
    }
    let want = proof_len(index, size)?;
    if proof.len() != want {
        return Err(InclusionError::WrongLength {
            index,
            size,
            got: proof.len(),
            want,
        });
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        // With the length checked above, s never reaches 0 early.
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    debug_assert_eq!(s, 0);
    Ok(r)
}

/// Verifies that `leaf` is at `index` in the tree of `size` with `root`.
pub fn verify(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), InclusionError> {
    let computed = root_from_proof(index, size, leaf, proof)?;
    if computed != *root {
        return Err(InclusionError::RootMismatch {
            index,
            size,
            computed,
            expected: *root,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use crate::merkle::MemoryTree;
    use proptest::prelude::*;

    fn tree(n: u64) -> MemoryTree {
        MemoryTree::from_leaves((0..n).map(|i| leaf_hash(&i.to_le_bytes())))
    }

    #[test]
    fn every_leaf_of_small_trees() {
        let t = tree(70);
        for size in 1..=70 {
            let root = t.root_at(size).unwrap();
            for i in 0..size {
                let p = prove(i, size, &t).unwrap();
                verify(i, size, &leaf_hash(&i.to_le_bytes()), &p, &root).unwrap();
            }
        }
    }

    proptest! {
        #[test]
        fn proofs_verify_and_reject_tampering(size in 1u64..600, idx in any::<u64>(), flip in any::<(usize, u8)>(), delta in 1u64..5) {
            let t = tree(size + 8);
            let i = idx % size;
            let root = t.root_at(size).unwrap();
            let leaf = leaf_hash(&i.to_le_bytes());
            prop_assert_eq!(root, crate::hash::naive_root(&(0..size).map(|j| leaf_hash(&j.to_le_bytes())).collect::<Vec<_>>()));
            let p = prove(i, size, &t).unwrap();
            prop_assert!(verify(i, size, &leaf, &p, &root).is_ok());
            // Any flipped bit in any proof hash fails.
            if !p.is_empty() {
                let mut bad = p.clone();
                let (pos, bit) = flip;
                bad[pos % p.len()].0[(bit as usize / 8) % 32] ^= 1 << (bit % 8);
                prop_assert!(verify(i, size, &leaf, &bad, &root).is_err());
            }
            // A flipped bit in the leaf or root fails.
            let mut bad_leaf = leaf; bad_leaf.0[flip.1 as usize % 32] ^= 1;
            prop_assert!(verify(i, size, &bad_leaf, &p, &root).is_err());
            let mut bad_root = root; bad_root.0[flip.1 as usize % 32] ^= 0x80;
            prop_assert!(verify(i, size, &leaf, &p, &bad_root).is_err());
            // Wrong index fails. A wrong size fails against that size's root
            // (the same root for another size is not a claim a signed
            // checkpoint can make, since it binds the size).
            prop_assert!(verify(i + delta, size, &leaf, &p, &root).is_err());
            if i >= delta { prop_assert!(verify(i - delta, size, &leaf, &p, &root).is_err()); }
            prop_assert!(verify(i, size + delta, &leaf, &p, &t.root_at(size + delta).unwrap()).is_err());
            if size > i + delta { prop_assert!(verify(i, size - delta, &leaf, &p, &t.root_at(size - delta).unwrap()).is_err()); }
            // Extra or missing hashes fail.
            let mut longer = p.clone(); longer.push(root);
            prop_assert!(verify(i, size, &leaf, &longer, &root).is_err());
            if !p.is_empty() {
                prop_assert!(verify(i, size, &leaf, &p[1..], &root).is_err());
            }
        }
    }
}
