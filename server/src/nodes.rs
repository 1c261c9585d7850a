//! Tree nodes read from the stored tiles, for the proofs the log serves.
//!
//! A proof needs about one node per level. Nodes in tiles above level 0 and
//! in the partial tiles at the right edge come from cached [`TileNodes`]
//! (every interior node of the tile, computed once). A node in a full
//! level-0 tile, a random one per lookup, comes from that tile read once
//! per proof: rows 4–7 from the interior record stored beside it, rows 0–3
//! from at most 8 of its hashes ([`tile_node`]), so no proof hashes more
//! than a handful of nodes. Both ways are `vouch_spec::tile`'s.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use vouch_spec::hash::{Hash, HASH_LEN};
use vouch_spec::merkle::{NodeId, NodeSource};
use vouch_spec::tile::{locate, tile_node, Tile, TileKind, TileNodes, TILE_HEIGHT};

use crate::interior::interior_offset;
use crate::store::{read_hashes, Reads, StoreError, FULL_TILE_BYTES};

/// Tiles kept with all their nodes: full tiles above level 0, and the
/// partial tiles at the edge (replaced as they grow).
const CACHE_TILES: usize = 4096;

/// Reads nodes from a store's tiles.
pub struct TreeReader {
    reads: Arc<dyn Reads>,
    cache: Mutex<HashMap<(u8, u64), Arc<TileNodes>>>,
}

impl TreeReader {
    /// A reader over `reads`.
    pub fn new(reads: Arc<dyn Reads>) -> TreeReader {
        TreeReader {
            reads,
            cache: Mutex::new(HashMap::new()),
        }
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

/// A full level-0 tile read for one proof: its bytes as stored (a proof
/// needs at most 8 of its 256 hashes, so they are not all decoded) and, if
/// stored, its interior record.
struct Level0 {
    index: u64,
    tile: Vec<u8>,
    interior: Option<Vec<u8>>,
}

/// Tree nodes of the tree of one size, read from the store's tiles.
pub struct StoredNodes<'a> {
    reader: &'a TreeReader,
    size: u64,
    level0: RefCell<Option<Level0>>,
}

impl StoredNodes<'_> {
    fn level0_node(&self, index: u64, row: u8, pos: usize) -> Result<Option<Hash>, StoreError> {
        let mut memo = self.level0.borrow_mut();
        if memo.as_ref().is_none_or(|m| m.index != index) {
            let Some((tile, interior)) = self.reader.reads.tile_with_interior(0, index)? else {
                return Ok(None);
            };
            if tile.len() != FULL_TILE_BYTES {
                return Err(StoreError::Corrupt(format!(
                    "full tile 0/{index} is {} bytes",
                    tile.len()
                )));
            }
            *memo = Some(Level0 {
                index,
                tile,
                interior,
            });
        }
        let Some(m) = memo.as_ref() else {
            return Ok(None);
        };
        if let (Some(off), Some(rec)) = (interior_offset(row, pos), &m.interior) {
            if let Some(b) = rec.get(off * 32..off * 32 + 32) {
                let mut h = [0u8; 32];
                h.copy_from_slice(b);
                return Ok(Some(Hash(h)));
            }
        }
        // The hashes below the node, decoded alone: `tile_node` over them
        // is the node at position 0 of the same row.
        let span = 1usize << row;
        let Some(bytes) = m
            .tile
            .get(pos * span * HASH_LEN..(pos + 1) * span * HASH_LEN)
        else {
            return Ok(None);
        };
        let below = vouch_spec::hash::split_hashes(bytes).unwrap_or_default();
        Ok(tile_node(&below, row, 0))
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
