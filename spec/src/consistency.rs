//! Merkle consistency proofs: RFC 6962 §2.1.2 for generation and
//! RFC 9162 §2.1.4.2 for verification.

use std::ops::Range;

use crate::hash::{node_hash, Hash};
use crate::merkle::{range_hash, split_point, NodeSource};

/// Why a consistency proof did not verify or could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsistencyError {
    /// The old size is larger than the new size.
    #[error("old size {old} is larger than new size {new}")]
    OldAfterNew {
        /// Old tree size.
        old: u64,
        /// New tree size.
        new: u64,
    },
    /// A proof from the empty tree carries no information; callers treat an
    /// old size of 0 as trivially consistent before asking for a proof.
    #[error("a consistency proof from the empty tree is meaningless")]
    FromEmpty,
    /// The proof has the wrong number of hashes for these sizes.
    #[error("consistency proof from {old} to {new} has {got} hashes, want {want}")]
    WrongLength {
        /// Old tree size.
        old: u64,
        /// New tree size.
        new: u64,
        /// Hashes supplied.
        got: usize,
        /// Hashes expected.
        want: usize,
    },
    /// Two equal sizes with different roots: a fork.
    #[error("trees of equal size {size} have different roots {old_root} and {new_root}")]
    SameSizeDifferentRoots {
        /// The common size.
        size: u64,
        /// The old root.
        old_root: Hash,
        /// The new root.
        new_root: Hash,
    },
    /// The proof does not connect the two roots.
    #[error("consistency proof from {old} to {new} does not match the {which} root")]
    RootMismatch {
        /// Old tree size.
        old: u64,
        /// New tree size.
        new: u64,
        /// "old" or "new".
        which: &'static str,
    },
}

/// The ranges of leaves whose tree hashes make up the consistency proof from
/// `old` to `new` (RFC 6962 §2.1.2 `PROOF(m, D[n])`), in proof order.
pub fn proof_ranges(old: u64, new: u64) -> Result<Vec<Range<u64>>, ConsistencyError> {
    if old > new {
        return Err(ConsistencyError::OldAfterNew { old, new });
    }
    if old == new {
        return Ok(Vec::new());
    }
    if old == 0 {
        return Err(ConsistencyError::FromEmpty);
    }
    // SUBPROOF(m, D[lo:hi], b), unrolled. Hashes are appended after the
    // recursive part, so collect them innermost-last and reverse.
    let mut rev = Vec::new();
    let (mut lo, mut hi, mut m, mut b) = (0u64, new, old, true);
    while m != hi - lo {
        let k = split_point(hi - lo);
        if m <= k {
            rev.push(lo + k..hi);
            hi = lo + k;
        } else {
            rev.push(lo..lo + k);
            lo += k;
            m -= k;
            b = false;
        }
    }
    if !b {
        rev.push(lo..hi);
    }
    rev.reverse();
    Ok(rev)
}

/// Builds the consistency proof from the tree of `old` leaves to that of `new`.
pub fn prove<S: NodeSource>(
    old: u64,
    new: u64,
    src: &S,
) -> Result<Vec<Hash>, ProveError<S::Error>> {
    proof_ranges(old, new)?
        .into_iter()
        .map(|r| range_hash(r, src).map_err(ProveError::Source))
        .collect()
}

/// Errors from [`prove`]: the request was impossible, or the source failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProveError<E> {
    /// The proof cannot exist.
    #[error(transparent)]
    Invalid(#[from] ConsistencyError),
    /// The node source could not supply a hash.
    #[error("reading tree hashes: {0}")]
    Source(E),
}

/// Verifies that the tree of `old` leaves with `old_root` is a prefix of the
/// tree of `new` leaves with `new_root`.
pub fn verify(
    old: u64,
    new: u64,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), ConsistencyError> {
    if old > new {
        return Err(ConsistencyError::OldAfterNew { old, new });
    }
    if old == new {
        if !proof.is_empty() {
            return Err(ConsistencyError::WrongLength {
                old,
                new,
                got: proof.len(),
                want: 0,
            });
        }
        if old == 0 {
            // The vectors treat any claim about two empty trees as meaningless.
            return Err(ConsistencyError::FromEmpty);
        }
        if old_root != new_root {
            return Err(ConsistencyError::SameSizeDifferentRoots {
                size: old,
                old_root: *old_root,
                new_root: *new_root,
            });
        }
        return Ok(());
    }
    let want = proof_ranges(old, new)?.len();
    if proof.len() != want {
        return Err(ConsistencyError::WrongLength {
            old,
            new,
            got: proof.len(),
            want,
        });
    }
    // RFC 9162 §2.1.4.2.
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (mut f, mut s) = (old - 1, new - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if s == 0 {
            return Err(ConsistencyError::WrongLength {
                old,
                new,
                got: proof.len(),
                want,
            });
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if fr != *old_root {
        return Err(ConsistencyError::RootMismatch {
            old,
            new,
            which: "old",
        });
    }
    if sr != *new_root || s != 0 {
        return Err(ConsistencyError::RootMismatch {
            old,
            new,
            which: "new",
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
    fn every_pair_of_small_sizes() {
        let t = tree(70);
        for new in 1..=70 {
            for old in 1..=new {
                let p = prove(old, new, &t).unwrap();
                verify(
                    old,
                    new,
                    &p,
                    &t.root_at(old).unwrap(),
                    &t.root_at(new).unwrap(),
                )
                .unwrap_or_else(|e| panic!("{old}->{new}: {e}"));
            }
        }
    }

    #[test]
    fn fork_is_detected() {
        let a = tree(10);
        let mut b = tree(5);
        b.push(leaf_hash(b"evil"));
        for i in 6..10u64 {
            b.push(leaf_hash(&i.to_le_bytes()));
        }
        let p = prove(5, 10, &b).unwrap();
        // b's proof connects a's old root to b's new root? Only if they agree on 0..5, which they do.
        assert!(verify(5, 10, &p, &a.root_at(5).unwrap(), &b.root_at(10).unwrap()).is_ok());
        // But a's size-7 head cannot be connected to b's size-10 head.
        let p = prove(7, 10, &b).unwrap();
        assert!(verify(7, 10, &p, &a.root_at(7).unwrap(), &b.root_at(10).unwrap()).is_err());
    }

    proptest! {
        #[test]
        fn proofs_verify_and_reject_tampering(new in 2u64..600, o in any::<u64>(), flip in any::<(usize, u8)>(), delta in 1u64..5) {
            let t = tree(new + 8);
            let old = 1 + o % (new - 1);
            let (r1, r2) = (t.root_at(old).unwrap(), t.root_at(new).unwrap());
            let p = prove(old, new, &t).unwrap();
            prop_assert!(verify(old, new, &p, &r1, &r2).is_ok());
            let mut bad = p.clone();
            let (pos, bit) = flip;
            bad[pos % p.len()].0[(bit as usize / 8) % 32] ^= 1 << (bit % 8);
            prop_assert!(verify(old, new, &bad, &r1, &r2).is_err());
            let mut b1 = r1; b1.0[bit as usize % 32] ^= 2;
            prop_assert!(verify(old, new, &p, &b1, &r2).is_err());
            let mut b2 = r2; b2.0[bit as usize % 32] ^= 2;
            prop_assert!(verify(old, new, &p, &r1, &b2).is_err());
            // Wrong sizes (with the right roots for those sizes) fail.
            let r_new2 = t.root_at(new + delta).unwrap();
            prop_assert!(verify(old, new + delta, &p, &r1, &r_new2).is_err());
            if old + delta < new {
                let r_old2 = t.root_at(old + delta).unwrap();
                prop_assert!(verify(old + delta, new, &p, &r_old2, &r2).is_err());
            }
            let mut longer = p.clone(); longer.push(r1);
            prop_assert!(verify(old, new, &longer, &r1, &r2).is_err());
            prop_assert!(verify(old, new, &p[1..], &r1, &r2).is_err());
        }
    }
}
