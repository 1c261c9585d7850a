//! Compact range (RFC 6962 §2.1 tree frontier): the hashes of the maximal
//! complete subtrees covering leaves `[0, size)`, enough to append leaves and
//! compute the root without reading any older leaf.
//!
//! A log keeps one of these in its durable state. Appending reports every
//! complete subtree it closes, which is exactly what a tile store needs to
//! write (the nodes at levels that are multiples of 8, see [`crate::tile`]).

use crate::hash::{node_hash, Hash};
use crate::merkle::{range_nodes, NodeId, NodeSource};

/// The frontier of a tree of `size` leaves.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CompactRange {
    size: u64,
    /// One hash per set bit of `size`, largest subtree first.
    hashes: Vec<Hash>,
}

/// A frontier whose hash count does not match its size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a compact range of size {size} needs {want} hashes, got {got}")]
pub struct CompactRangeError {
    /// The claimed size.
    pub size: u64,
    /// Hashes required (the number of set bits in the size).
    pub want: usize,
    /// Hashes given.
    pub got: usize,
}

impl CompactRange {
    /// The empty tree.
    pub fn new() -> CompactRange {
        CompactRange::default()
    }

    /// Rebuilds a frontier from stored hashes (largest subtree first).
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Result<CompactRange, CompactRangeError> {
        let want = size.count_ones() as usize;
        if hashes.len() != want {
            return Err(CompactRangeError {
                size,
                want,
                got: hashes.len(),
            });
        }
        Ok(CompactRange { size, hashes })
    }

    /// Reads the frontier of the tree of `size` leaves from a node source.
    pub fn from_source<S: NodeSource>(size: u64, src: &S) -> Result<CompactRange, S::Error> {
        let hashes = range_nodes(0..size)
            .into_iter()
            .map(|n| src.node(n))
            .collect::<Result<_, _>>()?;
        Ok(CompactRange { size, hashes })
    }

    /// Number of leaves covered.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The frontier hashes, largest subtree first.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The frontier nodes, largest subtree first.
    pub fn nodes(&self) -> Vec<NodeId> {
        range_nodes(0..self.size)
    }

    /// Appends a leaf hash. `closed` is called, bottom-up, with every complete
    /// subtree that now exists and did not before (starting with the leaf).
    pub fn append(&mut self, leaf: Hash, mut closed: impl FnMut(NodeId, &Hash)) {
        let index = self.size;
        let mut h = leaf;
        closed(NodeId::new(0, index), &h);
        let mut level = 0u8;
        // Each trailing one bit of the old size is a subtree that merges with
        // the new one.
        while (index >> level) & 1 == 1 {
            // The invariant (one hash per set bit) guarantees a hash is here.
            let Some(left) = self.hashes.pop() else { break };
            h = node_hash(&left, &h);
            level += 1;
            closed(NodeId::new(level, index >> level), &h);
        }
        self.hashes.push(h);
        self.size += 1;
    }

    /// The root hash of the tree.
    pub fn root(&self) -> Hash {
        let mut it = self.hashes.iter().rev();
        let Some(first) = it.next() else {
            return Hash::empty_root();
        };
        it.fold(*first, |right, left| node_hash(left, &right))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{leaf_hash, naive_root};
    use crate::merkle::MemoryTree;
    use proptest::prelude::*;

    #[test]
    fn matches_naive_and_reports_closed_nodes() {
        let mut cr = CompactRange::new();
        let mut tree = MemoryTree::new();
        let mut leaves = Vec::new();
        for i in 0..600u64 {
            let l = leaf_hash(&i.to_be_bytes());
            leaves.push(l);
            tree.push(l);
            let mut closed = Vec::new();
            cr.append(l, |n, h| closed.push((n, *h)));
            assert_eq!(cr.root(), naive_root(&leaves));
            // Every closed node is right, and exactly trailing_ones(i)+1 close.
            assert_eq!(closed.len() as u32, i.trailing_ones() + 1);
            for (n, h) in closed {
                assert_eq!(tree.node(n).unwrap(), h);
            }
            assert_eq!(CompactRange::from_source(i + 1, &tree).unwrap(), cr);
        }
    }

    proptest! {
        #[test]
        fn from_parts_checks_count(size in any::<u64>(), extra in 0usize..3) {
            let n = size.count_ones() as usize;
            prop_assert!(CompactRange::from_parts(size, vec![Hash::default(); n]).is_ok());
            prop_assert!(CompactRange::from_parts(size, vec![Hash::default(); n + 1 + extra]).is_err());
        }
    }
}
