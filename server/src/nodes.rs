//! Tree nodes read from the stored tiles, for the proofs the log serves.
//!
//! A proof needs about one node per level. Nodes in tiles above level 0 and
//! in the partial tiles at the right edge come from cached [`TileNodes`]
//! (every interior node of the tile, computed once). A node in a full
//! level-0 tile, a random one per lookup, comes from that tile read once
//! per proof: rows 4–7 from the interior record stored beside it, rows 0–3
//! from at most 8 of its hashes ([`tile_node`]), of which only the leaf's
//! group of 16 is copied out of the store, so no proof hashes more than a
//! handful of nodes. Both ways are `vouch_spec::tile`'s.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use vouch_spec::hash::{Hash, HASH_LEN};
use vouch_spec::inclusion::{self, ProveError};
use vouch_spec::merkle::{subtree_node, NodeId, NodeSource};
use vouch_spec::tile::{locate, tile_node, Tile, TileKind, TileNodes, TILE_HEIGHT};

use crate::interior::interior_offset;
use crate::store::{read_hashes, Reads, StoreError, TilePart, FULL_TILE_BYTES};

/// Tiles kept with all their nodes: full tiles above level 0, and the
/// partial tiles at the edge (replaced as they grow).
const CACHE_TILES: usize = 4096;

/// Hashes of ranges of several complete subtrees kept: the ranges ending
/// at the tree's right edge, about one per level per tree size served.
const EDGE_RANGES: usize = 256;

/// Reads nodes from a store's tiles.
pub struct TreeReader {
    reads: Arc<dyn Reads>,
    cache: Mutex<HashMap<(u8, u64), Arc<TileNodes>>>,
    /// `MTH(D[start..end])` by `(start, end)`, for ranges that are not one
    /// complete subtree. A range's hash depends only on its leaves, which
    /// never change once logged, so an entry holds for every tree size that
    /// contains the range.
    edges: Mutex<HashMap<(u64, u64), Hash>>,
}

impl TreeReader {
    /// A reader over `reads`.
    pub fn new(reads: Arc<dyn Reads>) -> TreeReader {
        TreeReader {
            reads,
            cache: Mutex::new(HashMap::new()),
            edges: Mutex::new(HashMap::new()),
        }
    }

    /// `inclusion::prove` over `nodes` (a source for a tree of at least
    /// `size`), with the right edge's range hashes remembered between
    /// proofs ([`TreeReader::range_hash`]).
    pub fn inclusion(
        &self,
        index: u64,
        size: u64,
        nodes: &StoredNodes<'_>,
    ) -> Result<Vec<Hash>, ProveError<StoreError>> {
        inclusion::proof_ranges(index, size)?
            .into_iter()
            .map(|r| self.range_hash(r, nodes).map_err(ProveError::Source))
            .collect()
    }

    /// `MTH(D[range])` from `nodes`. A complete subtree is one node. A
    /// range of several is hashed from them once and remembered: only a
    /// tree's right edge has such ranges in proofs, and every proof of a
    /// leaf left of the edge's split needs the same one (at 1e7 entries,
    /// half of all proofs share seven nodes' worth of reads and hashes).
    fn range_hash(
        &self,
        range: std::ops::Range<u64>,
        nodes: &StoredNodes<'_>,
    ) -> Result<Hash, StoreError> {
        if let Some(node) = subtree_node(&range) {
            return nodes.node(node);
        }
        let key = (range.start, range.end);
        if let Some(h) = self.edges.lock().ok().and_then(|m| m.get(&key).copied()) {
            return Ok(h);
        }
        let h = vouch_spec::merkle::range_hash(range, nodes)?;
        if let Ok(mut m) = self.edges.lock() {
            if m.len() >= EDGE_RANGES {
                m.clear();
            }
            m.insert(key, h);
        }
        Ok(h)
    }

    /// The store.
    pub fn reads(&self) -> &dyn Reads {
        &*self.reads
    }

    /// The nodes of the hash tile at `level`, `index` as wide as the tree
    /// of `size` has it (or wider: a tile's hashes only grow at the end).
    fn tile_nodes(
        &self,
        level: u8,
        index: u64,
        size: u64,
    ) -> Result<Option<Arc<TileNodes>>, StoreError> {
        let Some(tile) = Tile::in_tree(TileKind::Hash { level }, index, size) else {
            return Ok(None);
        };
        let width = usize::from(tile.width);
        if let Some(t) = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.get(&(level, index)).cloned())
        {
            if t.hashes().len() >= width {
                return Ok(Some(t));
            }
        }
        let Some(mut hashes) = read_hashes(&*self.reads, level, index)? else {
            return Ok(None);
        };
        if hashes.len() < width {
            return Ok(None);
        }
        hashes.truncate(width);
        let nodes = Arc::new(TileNodes::new(hashes));
        if let Ok(mut c) = self.cache.lock() {
            if c.len() >= CACHE_TILES {
                c.clear();
            }
            c.insert((level, index), nodes.clone());
        }
        Ok(Some(nodes))
    }

    /// A node source over the stored tiles for the tree of `size`.
    pub fn nodes(&self, size: u64) -> StoredNodes<'_> {
        StoredNodes {
            reader: self,
            size,
            level0: RefCell::new(None),
        }
    }
}

/// What a proof has read of a full level-0 tile: an aligned run of its
/// hashes (a proof needs at most 8 of the 256, all in the leaf's group of
/// [`GROUP_HASHES`], so the rest are neither copied nor decoded) and, if
/// stored, its interior record.
struct Level0 {
    index: u64,
    part: TilePart,
}

/// The hashes below any node of rows 0–4 of a tile lie in one aligned
/// group of this many, and so do all the row 0–3 nodes of an inclusion
/// proof (the siblings on the leaf's path).
const GROUP_HASHES: usize = 16;

impl Level0 {
    /// The node at `row`, `pos` of this tile, whose hashes below it are
    /// the tile's bytes `below`: from the interior record if it has it,
    /// else from those hashes if this part holds them.
    fn node(&self, row: u8, pos: usize, below: &std::ops::Range<usize>) -> Option<Hash> {
        if let Some(off) = interior_offset(row, pos) {
            let rec = self.part.interior.as_ref();
            if let Some(b) = rec.and_then(|r| r.get(off * HASH_LEN..(off + 1) * HASH_LEN)) {
                return <[u8; HASH_LEN]>::try_from(b).ok().map(Hash);
            }
        }
        let from = below.start.checked_sub(self.part.start)?;
        let to = below.end.checked_sub(self.part.start)?;
        let bytes = self.part.bytes.get(from..to)?;
        // `tile_node` over the hashes below a node is the node at
        // position 0 of the same row.
        tile_node(&vouch_spec::hash::split_hashes(bytes)?, row, 0)
    }
}

/// Tree nodes of the tree of one size, read from the store's tiles.
pub struct StoredNodes<'a> {
    reader: &'a TreeReader,
    size: u64,
    level0: RefCell<Option<Level0>>,
}

impl StoredNodes<'_> {
    fn level0_node(&self, index: u64, row: u8, pos: usize) -> Result<Option<Hash>, StoreError> {
        // The node's hashes below it in the tile, as bytes.
        let span = (1usize << row) * HASH_LEN;
        let below = pos * span..(pos + 1) * span;
        let mut memo = self.level0.borrow_mut();
        let read = memo.as_ref().filter(|m| m.index == index);
        if let Some(h) = read.and_then(|m| m.node(row, pos, &below)) {
            return Ok(Some(h));
        }
        // A tile read before without an interior record (an older store's)
        // is read again whole: rows 4–7 come from its hashes.
        let range = if read.is_some_and(|m| m.part.interior.is_none()) {
            0..FULL_TILE_BYTES
        } else {
            let group = GROUP_HASHES * HASH_LEN;
            below.start / group * group..below.end.div_ceil(group) * group
        };
        let Some(part) = self.reader.reads.tile_part(0, index, range)? else {
            return Ok(None);
        };
        if part.len != FULL_TILE_BYTES {
            return Err(StoreError::Corrupt(format!(
                "full tile 0/{index} is {} bytes",
                part.len
            )));
        }
        let m = memo.insert(Level0 { index, part });
        Ok(m.node(row, pos, &below))
    }
}

impl NodeSource for StoredNodes<'_> {
    type Error = StoreError;
    fn node(&self, node: NodeId) -> Result<Hash, StoreError> {
        let loc = locate(node);
        let missing = || {
            StoreError::Corrupt(format!(
                "tile {}/{} missing for node {node:?}",
                loc.tile_level, loc.tile_index
            ))
        };
        let row = node.level % TILE_HEIGHT;
        let pos = loc.positions.start >> row;
        let full = Tile::in_tree(TileKind::Hash { level: 0 }, loc.tile_index, self.size)
            .is_some_and(|t| t.is_full());
        if loc.tile_level == 0 && full {
            return self
                .level0_node(loc.tile_index, row, pos)?
                .ok_or_else(missing);
        }
        self.reader
            .tile_nodes(loc.tile_level, loc.tile_index, self.size)?
            .and_then(|t| t.node(row, pos))
            .ok_or_else(missing)
    }
}
