//! RFC 6962 §2.1 Merkle tree structure shared by proofs, tiles and the
//! compact range: complete subtrees ("nodes"), how a tree of any size splits
//! into them, and how tree heads are computed from them.
//!
//! Everything here is computation over node hashes supplied by the caller
//! through [`NodeSource`], so the same code serves an in-memory tree, a log
//! reading its tile store, and a client that fetched tiles over HTTP.

use std::ops::Range;

use crate::hash::{node_hash, Hash};

/// A complete (perfect) subtree: leaves `[index << level, (index + 1) << level)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height above the leaves; level 0 nodes are leaf hashes.
    pub level: u8,
    /// Position among the nodes of that level, from the left.
    pub index: u64,
}

impl NodeId {
    /// The node at `level` and `index`.
    pub fn new(level: u8, index: u64) -> NodeId {
        NodeId { level, index }
    }

    /// The leaves this node covers.
    pub fn leaves(&self) -> Range<u64> {
        let start = self.index << self.level;
        start..start + (1u64 << self.level)
    }
}

/// Something that can supply the hash of any complete subtree of a tree.
pub trait NodeSource {
    /// Why a node could not be supplied.
    type Error;
    /// The hash of `node`. Only nodes inside the tree being proven are asked for.
    fn node(&self, node: NodeId) -> Result<Hash, Self::Error>;
}

/// The largest power of two strictly smaller than `n` (`n >= 2`): the `k` of
/// RFC 6962 §2.1 at which `MTH(D[n])` splits.
pub fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Splits `range` into the complete subtrees whose hashes, folded from the
/// right with [`node_hash`], give `MTH(D[range])`.
///
/// `range.start` must be a multiple of the largest power of two not above
/// `range.len()` (true of every range that occurs in RFC 6962 proofs and tree
/// heads). The nodes are returned left to right, largest first.
pub fn range_nodes(range: Range<u64>) -> Vec<NodeId> {
    let mut out = Vec::new();
    let mut start = range.start;
    let mut len = range.end.saturating_sub(range.start);
    while len > 0 {
        let level = 63 - len.leading_zeros();
        let size = 1u64 << level;
        out.push(NodeId::new(level as u8, start >> level));
        start += size;
        len -= size;
    }
    out
}

/// The one node whose leaves are exactly `range`, if `range` is a complete
/// subtree (a power-of-two length at a multiple of it); then
/// [`range_nodes`] is that node alone.
pub fn subtree_node(range: &Range<u64>) -> Option<NodeId> {
    let len = range.end.checked_sub(range.start)?;
    (len.is_power_of_two() && range.start.is_multiple_of(len)).then(|| {
        let level = len.trailing_zeros() as u8;
        NodeId::new(level, range.start >> level)
    })
}

/// `MTH(D[range])` from the hashes of its complete subtrees (see [`range_nodes`]).
pub fn range_hash<S: NodeSource>(range: Range<u64>, src: &S) -> Result<Hash, S::Error> {
    let nodes = range_nodes(range);
    let mut acc: Option<Hash> = None;
    for node in nodes.iter().rev() {
        let h = src.node(*node)?;
        acc = Some(match acc {
            None => h,
            Some(right) => node_hash(&h, &right),
        });
    }
    Ok(acc.unwrap_or_else(Hash::empty_root))
}

/// The root hash of the tree of `size` leaves.
pub fn tree_root<S: NodeSource>(size: u64, src: &S) -> Result<Hash, S::Error> {
    range_hash(0..size, src)
}

/// A whole tree held in memory, level by level. Used by tests and tools; a log
/// uses tiles instead.
#[derive(Clone, Debug, Default)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    /// An empty tree.
    pub fn new() -> MemoryTree {
        MemoryTree::default()
    }

    /// A tree with these leaf hashes.
    pub fn from_leaves(leaves: impl IntoIterator<Item = Hash>) -> MemoryTree {
        let mut t = MemoryTree::new();
        for l in leaves {
            t.push(l);
        }
        t
    }

    /// Appends one leaf hash, completing any nodes it closes.
    pub fn push(&mut self, leaf: Hash) {
        let mut h = leaf;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            self.levels[level].push(h);
            let n = self.levels[level].len();
            if n % 2 == 1 {
                break;
            }
            h = node_hash(&self.levels[level][n - 2], &self.levels[level][n - 1]);
            level += 1;
        }
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// The root of the first `size` leaves (any size up to the current one).
    pub fn root_at(&self, size: u64) -> Option<Hash> {
        if size > self.size() {
            return None;
        }
        tree_root(size, self).ok()
    }

    /// The root of the whole tree.
    pub fn root(&self) -> Hash {
        self.root_at(self.size()).unwrap_or_else(Hash::empty_root)
    }
}

/// A node that a [`MemoryTree`] does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("node at level {} index {} is not in the tree", .0.level, .0.index)]
pub struct MissingNode(pub NodeId);

impl NodeSource for MemoryTree {
    type Error = MissingNode;
    fn node(&self, node: NodeId) -> Result<Hash, MissingNode> {
        self.levels
            .get(node.level as usize)
            .and_then(|l| l.get(node.index as usize))
            .copied()
            .ok_or(MissingNode(node))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{leaf_hash, naive_root};

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn split_points() {
        assert_eq!(split_point(2), 1);
        assert_eq!(split_point(3), 2);
        assert_eq!(split_point(4), 2);
        assert_eq!(split_point(5), 4);
        assert_eq!(split_point(1 << 40), 1 << 39);
        assert_eq!(split_point(u64::MAX), 1 << 63);
    }

    #[test]
    fn roots_match_naive_mth_for_every_size_to_1000() {
        let all = leaves(1000);
        let tree = MemoryTree::from_leaves(all.iter().copied());
        for n in 0..=1000u64 {
            assert_eq!(
                tree.root_at(n).unwrap(),
                naive_root(&all[..n as usize]),
                "size {n}"
            );
        }
    }

    #[test]
    fn range_nodes_decompose() {
        assert_eq!(range_nodes(0..0), vec![]);
        assert_eq!(
            range_nodes(0..7),
            vec![NodeId::new(2, 0), NodeId::new(1, 2), NodeId::new(0, 6)]
        );
        assert_eq!(range_nodes(8..12), vec![NodeId::new(2, 2)]);
    }

    #[test]
    fn subtree_nodes() {
        assert_eq!(subtree_node(&(8..12)), Some(NodeId::new(2, 2)));
        assert_eq!(subtree_node(&(7..8)), Some(NodeId::new(0, 7)));
        assert_eq!(
            subtree_node(&(4..12)),
            None,
            "eight leaves not at a multiple of 8"
        );
        assert_eq!(subtree_node(&(0..7)), None);
        assert_eq!(subtree_node(&(5..5)), None);
    }

    proptest::proptest! {
        /// A range is one node exactly when it decomposes into one.
        #[test]
        fn subtree_node_is_a_one_node_decomposition(level in 0u32..40, index in 0u64..1 << 20, extra in 0u64..5) {
            // `range_nodes`' precondition: the start is a multiple of the
            // largest power of two not above the length.
            let len = (1u64 << level) + extra;
            let start = index << (63 - len.leading_zeros());
            let range = start..start + len;
            let nodes = range_nodes(range.clone());
            let want = (nodes.len() == 1).then(|| nodes[0]);
            proptest::prop_assert_eq!(subtree_node(&range), want);
        }
    }
}
