//! Whether a checkpoint a party is shown extends the one it kept: the check
//! behind a client's stored checkpoint (`spec/PROTOCOL.md` §7 step 4), a
//! monitor's position in a log (§6.4) and a witness's cosigned size (C2SP
//! tlog-witness), written once.
//!
//! The caller asks [`proof_needed`] which consistency proof to fetch (from
//! the log's tiles or its proof API), fetches it, and passes it to
//! [`compare`]. Failing to fetch a proof is the caller's to report as "log
//! unreachable": only a proof that does not verify, or two roots for one
//! size, is an [`Inconsistency`], and a caller that kept a checkpoint turns
//! it into a [`Fork`]: evidence as data (both signed checkpoints and the
//! proof), which any third party can re-check.

use crate::checkpoint::Checkpoint;
use crate::consistency::{self, ConsistencyError};
use crate::hash::Hash;

/// How a shown checkpoint relates to the kept one, once proven consistent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relation {
    /// Same size, same root.
    Same,
    /// Larger, and the kept tree is a prefix of it: the kept checkpoint may
    /// be replaced by the shown one.
    Extends,
    /// Smaller, and a prefix of the kept tree: consistent, but older than
    /// what the party already saw (a rollback, or a stale cache).
    Behind,
}

/// Why two checkpoints of one log cannot both be honest.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Inconsistency {
    /// Two different roots for the same size.
    #[error("two roots for size {0}")]
    TwoRoots(u64),
    /// The consistency proof between the two sizes does not verify.
    #[error("consistency proof from size {old} to {new} does not verify: {err}")]
    Proof {
        /// The smaller size.
        old: u64,
        /// The larger size.
        new: u64,
        /// What failed.
        err: ConsistencyError,
    },
}

/// The consistency proof that [`compare`] needs, as `(smaller size, larger
/// size)`; `None` when the sizes are equal or either tree is empty (the
/// empty tree is a prefix of every tree).
pub fn proof_needed(kept: &Checkpoint, shown: &Checkpoint) -> Option<(u64, u64)> {
    let (a, b) = if kept.size <= shown.size {
        (kept.size, shown.size)
    } else {
        (shown.size, kept.size)
    };
    (a != 0 && a != b).then_some((a, b))
}

/// Compares `shown` with `kept` (both of one origin, both already
/// verified as signed by the log), given the proof [`proof_needed`] names
/// (ignored when it names none).
pub fn compare(
    kept: &Checkpoint,
    shown: &Checkpoint,
    proof: &[Hash],
) -> Result<Relation, Inconsistency> {
    if kept.size == shown.size {
        return if kept.root == shown.root {
            Ok(Relation::Same)
        } else {
            Err(Inconsistency::TwoRoots(kept.size))
        };
    }
    let (small, big, relation) = if kept.size < shown.size {
        (kept, shown, Relation::Extends)
    } else {
        (shown, kept, Relation::Behind)
    };
    if small.size == 0 {
        return Ok(relation);
    }
    consistency::verify(small.size, big.size, proof, &small.root, &big.root).map_err(|err| {
        Inconsistency::Proof {
            old: small.size,
            new: big.size,
            err,
        }
    })?;
    Ok(relation)
}

/// Evidence that a log signed two inconsistent checkpoints: both signed
/// notes exactly as received, the proof that failed, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fork {
    /// The log's origin.
    pub origin: String,
    /// The checkpoint kept before (signed note bytes).
    pub old: Vec<u8>,
    /// Its size.
    pub old_size: u64,
    /// The checkpoint shown now (signed note bytes).
    pub new: Vec<u8>,
    /// Its size.
    pub new_size: u64,
    /// The consistency proof between them, as served.
    pub proof: Vec<Hash>,
    /// What does not hold.
    pub why: Inconsistency,
}

impl Fork {
    /// The evidence as text for an operator (and for a file): both
    /// checkpoints in full, the proof and the failure. `source` names where
    /// the new checkpoint came from.
    pub fn evidence(&self, source: &str) -> String {
        let proof: String = self
            .proof
            .iter()
            .map(|h| format!("{}\n", h.to_base64()))
            .collect();
        format!(
            "Checkpoint seen before:\n{}\nCheckpoint now served by {source}:\n{}\nConsistency proof ({} hashes):\n{proof}Failure: {}\n",
            String::from_utf8_lossy(&self.old),
            String::from_utf8_lossy(&self.new),
            self.proof.len(),
            self.why
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use crate::merkle::MemoryTree;
    use proptest::prelude::*;

    fn cp(tree: &MemoryTree, size: u64) -> Checkpoint {
        Checkpoint::new("o.example/log", size, tree.root_at(size).unwrap())
    }

    fn tree(n: u64, salt: u8) -> MemoryTree {
        MemoryTree::from_leaves((0..n).map(|i| leaf_hash(&[salt, i as u8, (i >> 8) as u8])))
    }

    proptest! {
        /// Two checkpoints of one tree compare as their sizes do; with the
        /// proof `proof_needed` names, never an inconsistency.
        #[test]
        fn one_history_is_consistent(n in 1u64..300, a in 0u64..300, b in 0u64..300) {
            let t = tree(n, 0);
            let (a, b) = (a % (n + 1), b % (n + 1));
            let (ka, kb) = (cp(&t, a), cp(&t, b));
            let proof = match proof_needed(&ka, &kb) {
                Some((x, y)) => consistency::prove(x, y, &t).unwrap(),
                None => Vec::new(),
            };
            let want = match a.cmp(&b) {
                std::cmp::Ordering::Equal => Relation::Same,
                std::cmp::Ordering::Less => Relation::Extends,
                std::cmp::Ordering::Greater => Relation::Behind,
            };
            prop_assert_eq!(compare(&ka, &kb, &proof), Ok(want));
        }

        /// Two trees that differ below both sizes are always told apart,
        /// whatever proof is offered from either of them.
        #[test]
        fn two_histories_are_a_fork(n in 2u64..300, a in 1u64..300, b in 1u64..300, from_second: bool) {
            let (t1, t2) = (tree(n, 1), tree(n, 2));
            let (a, b) = (1 + a % n, 1 + b % n);
            let (ka, kb) = (cp(&t1, a), cp(&t2, b));
            let proof = match proof_needed(&ka, &kb) {
                Some((x, y)) => consistency::prove(x, y, if from_second { &t2 } else { &t1 }).unwrap(),
                None => Vec::new(),
            };
            prop_assert!(compare(&ka, &kb, &proof).is_err());
        }
    }

    #[test]
    fn the_empty_tree_needs_no_proof_and_evidence_names_both() {
        let t = tree(5, 0);
        assert_eq!(proof_needed(&cp(&t, 0), &cp(&t, 5)), None);
        assert_eq!(compare(&cp(&t, 0), &cp(&t, 5), &[]), Ok(Relation::Extends));
        assert_eq!(compare(&cp(&t, 5), &cp(&t, 0), &[]), Ok(Relation::Behind));
        let other = tree(5, 9);
        let why = compare(&cp(&t, 5), &cp(&other, 5), &[]).unwrap_err();
        assert_eq!(why, Inconsistency::TwoRoots(5));
        let f = Fork {
            origin: "o.example/log".into(),
            old: b"old note\n".to_vec(),
            old_size: 5,
            new: b"new note\n".to_vec(),
            new_size: 5,
            proof: vec![Hash::empty_root()],
            why,
        };
        let e = f.evidence("https://log.example");
        assert!(e.contains("Checkpoint seen before:\nold note"), "{e}");
        assert!(
            e.contains("served by https://log.example:\nnew note"),
            "{e}"
        );
        assert!(e.contains("Failure: two roots for size 5"), "{e}");
    }
}
