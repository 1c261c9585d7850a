//! Integrating new leaves into the tree's tiles, independent of storage
//! (Tessera's `Integrate` is the model): given the tree's right edge (its
//! compact range), a [`TileReader`] for the hash tiles at that edge, and the
//! new leaf hashes in order, [`integrate`] returns the new edge and every
//! hash tile the leaves touched with its new contents (full, or the widest
//! partial so far). Nothing is written: the caller commits the result (the
//! log into RocksDB, a mirror into its tile files).
//!
//! Tiles follow C2SP tlog-tiles: a hash tile at level `L` holds the level
//! `8·L` nodes.

use crate::compact::CompactRange;
use crate::hash::Hash;
use crate::tile::{TILE_HEIGHT, TILE_WIDTH};

/// Tile levels a tree of up to 2^64 leaves can have.
pub const TILE_LEVELS: u8 = 8;

/// Reads the stored hash tiles at the tree's edge.
pub trait TileReader {
    /// The reader's failures.
    type Error;
    /// The hashes stored for the hash tile at `level`, `index` (as many as
    /// were committed, full or partial), or `None`.
    fn read_hashes(&self, level: u8, index: u64) -> Result<Option<Vec<Hash>>, Self::Error>;
}

/// Why leaves could not be integrated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntegrateError<E> {
    /// The reader failed.
    #[error(transparent)]
    Read(E),
    /// The stored edge does not fit the tree (a missing or short tile).
    #[error("{0}")]
    Edge(String),
}

/// The result of integrating a batch of leaves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Integrated {
    /// The new right edge of the tree.
    pub range: CompactRange,
    /// Every hash tile the new leaves touched: (level, index, its hashes).
    /// A tile holding [`TILE_WIDTH`] hashes became full in this batch.
    pub tiles: Vec<(u8, u64, Vec<Hash>)>,
}

/// The partial tile at the edge of `level` for a tree of `size` leaves:
/// (index, hashes so far).
fn edge_tile<R: TileReader + ?Sized>(
    reader: &R,
    level: u8,
    size: u64,
) -> Result<(u64, Vec<Hash>), IntegrateError<R::Error>> {
    let count = size >> (u32::from(level) * u32::from(TILE_HEIGHT));
    let (index, width) = (count / TILE_WIDTH, (count % TILE_WIDTH) as usize);
    if width == 0 {
        return Ok((index, Vec::new()));
    }
    let mut hashes = reader
        .read_hashes(level, index)
        .map_err(IntegrateError::Read)?
        .ok_or_else(|| IntegrateError::Edge(format!("edge tile {level}/{index} is missing")))?;
    if hashes.len() < width {
        return Err(IntegrateError::Edge(format!(
            "edge tile {level}/{index} holds {} hashes, the tree needs {width}",
            hashes.len()
        )));
    }
    hashes.truncate(width);
    Ok((index, hashes))
}

/// Appends `leaves` to the tree whose right edge is `from`, reading the
/// edge tiles through `reader` (see the module documentation).
pub fn integrate<R: TileReader + ?Sized>(
    reader: &R,
    from: &CompactRange,
    leaves: &[Hash],
) -> Result<Integrated, IntegrateError<R::Error>> {
    let mut range = from.clone();
    let mut out = Integrated::default();
    if leaves.is_empty() {
        out.range = range;
        return Ok(out);
    }
    // Per tile level: the edge tile's index and hashes, whether touched.
    let mut edge: Vec<(u64, Vec<Hash>, bool)> = Vec::with_capacity(usize::from(TILE_LEVELS));
    for level in 0..TILE_LEVELS {
        let (index, hashes) = edge_tile(reader, level, range.size())?;
        edge.push((index, hashes, false));
    }
    let mut full: Vec<(u8, u64, Vec<Hash>)> = Vec::new();
    for leaf in leaves {
        range.append(*leaf, |node, h| {
            if node.level % TILE_HEIGHT != 0 {
                return;
            }
            let level = node.level / TILE_HEIGHT;
            let Some(e) = edge.get_mut(usize::from(level)) else {
                return;
            };
            e.1.push(*h);
            e.2 = true;
            if e.1.len() as u64 == TILE_WIDTH {
                full.push((level, e.0, std::mem::take(&mut e.1)));
                e.0 += 1;
            }
        });
    }
    out.tiles.extend(full);
    for (level, (index, hashes, touched)) in (0u8..).zip(edge) {
        if touched && !hashes.is_empty() {
            out.tiles.push((level, index, hashes));
        }
    }
    out.range = range;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use crate::merkle::{MemoryTree, NodeId, NodeSource};
    use std::collections::HashMap;

    /// Tiles in a map, as a store would hold them.
    #[derive(Default)]
    struct Tiles(HashMap<(u8, u64), Vec<Hash>>);

    impl TileReader for Tiles {
        type Error = std::convert::Infallible;
        fn read_hashes(&self, level: u8, index: u64) -> Result<Option<Vec<Hash>>, Self::Error> {
            Ok(self.0.get(&(level, index)).cloned())
        }
    }

    /// Integrating in batches of any sizes gives the whole tree's root, and
    /// the stored tiles hold exactly the whole tree's level-8L nodes.
    #[test]
    fn batches_of_any_size_build_the_whole_trees_tiles() {
        let leaves: Vec<Hash> = (0..70_000u32)
            .map(|i| leaf_hash(&i.to_be_bytes()))
            .collect();
        let mut tiles = Tiles::default();
        let mut range = CompactRange::new();
        let mut at = 0usize;
        let mut step = 1usize;
        let mut full = 0;
        while at < leaves.len() {
            let n = step.min(leaves.len() - at);
            let out = integrate(&tiles, &range, &leaves[at..at + n]).unwrap();
            full += out.tiles.iter().filter(|t| t.2.len() == 256).count();
            for (l, i, h) in out.tiles {
                tiles.0.insert((l, i), h);
            }
            range = out.range;
            at += n;
            step = (step * 7 + 3) % 5_000 + 1;
        }
        let tree = MemoryTree::from_leaves(leaves.iter().copied());
        assert_eq!(range.root(), tree.root());
        for ((level, index), hashes) in &tiles.0 {
            for (pos, h) in hashes.iter().enumerate() {
                let node = NodeId::new(level * 8, index * 256 + pos as u64);
                assert_eq!(*h, tree.node(node).unwrap(), "{level}/{index}:{pos}");
            }
        }
        // 273 full level-0 tiles and one full level-1 tile.
        assert_eq!(full, 70_000 / 256 + 1);
    }

    #[test]
    fn a_missing_edge_tile_is_corruption_not_a_new_tree() {
        let leaves: Vec<Hash> = (0..10u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let first = integrate(&Tiles::default(), &CompactRange::new(), &leaves).unwrap();
        let e = integrate(&Tiles::default(), &first.range, &leaves).unwrap_err();
        assert!(matches!(e, IntegrateError::Edge(_)), "{e}");
    }
}
