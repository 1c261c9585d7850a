//! `rs_merkle` as one more oracle for the Merkle math: with RFC 6962's
//! domain-separated node hash plugged in (and an odd last node promoted,
//! which is what RFC 6962's split at the largest power of two amounts to),
//! its roots equal ours, our inclusion proofs verify under it, and its
//! proofs are ours hash for hash.

use proptest::prelude::*;
use rs_merkle::{Hasher, MerkleProof, MerkleTree};
use vouch_spec::hash::{leaf_hash, node_hash, Hash};
use vouch_spec::inclusion;
use vouch_spec::merkle::MemoryTree;

#[derive(Clone)]
struct Rfc6962;

impl Hasher for Rfc6962 {
    type Hash = [u8; 32];

    fn hash(data: &[u8]) -> [u8; 32] {
        leaf_hash(data).0
    }

    fn concat_and_hash(left: &[u8; 32], right: Option<&[u8; 32]>) -> [u8; 32] {
        match right {
            Some(r) => node_hash(&Hash(*left), &Hash(*r)).0,
            None => *left,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn roots_and_inclusion_proofs_agree_with_rs_merkle(n in 1u64..600, pick in any::<prop::sample::Index>(), salt in any::<u8>()) {
        let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&[salt, i as u8, (i >> 8) as u8])).collect();
        let ours = MemoryTree::from_leaves(leaves.iter().copied());
        let theirs = MerkleTree::<Rfc6962>::from_leaves(&leaves.iter().map(|h| h.0).collect::<Vec<_>>());
        prop_assert_eq!(theirs.root(), Some(ours.root().0));
        let i = pick.index(n as usize);
        let proof = inclusion::prove(i as u64, n, &ours).unwrap();
        let as_theirs = MerkleProof::<Rfc6962>::new(proof.iter().map(|h| h.0).collect());
        prop_assert!(as_theirs.verify(ours.root().0, &[i], &[leaves[i].0], n as usize));
        prop_assert_eq!(theirs.proof(&[i]).proof_hashes().to_vec(), proof.iter().map(|h| h.0).collect::<Vec<_>>());
    }
}
