//! What the HTTP side reads: the published tree head, and tree nodes read
//! from stored tiles (with a small cache of immutable full tiles).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use vouch_spec::hash::{naive_root, node_hash, Hash};
use vouch_spec::merkle::{NodeId, NodeSource};
use vouch_spec::tile::{decode_hashes, locate, Tile, TileKind, TILE_HEIGHT, TILE_WIDTH};

use crate::store::{interior_offset, Store, StoreError};

/// The tree head the log currently serves.
#[derive(Clone, Debug)]
pub struct Published {
    /// Tree size.
    pub size: u64,
    /// Root hash.
    pub root: Hash,
    /// The signed checkpoint.
    pub checkpoint: Arc<Vec<u8>>,
}

/// State shared by the sequencer, the witnessing thread and the HTTP handlers.
///
/// `signed` is the newest durable checkpoint; `current` is the one served at
/// `/checkpoint`: the same when the log has no witness policy, otherwise the
/// newest whose cosignatures meet the quorum (absent until one does).
pub struct Shared {
    current: RwLock<Published>,
    notify: watch::Sender<u64>,
    signed: RwLock<Published>,
    signed_gen: Mutex<u64>,
    signed_cv: Condvar,
    witnessed: bool,
    cache: Mutex<TileCache>,
    /// The store.
    pub store: Arc<dyn Store>,
}

/// Hash tiles with their interior nodes by (level, index): full tiles above
/// level 0, and the partial tiles at the right edge (replaced as they grow).
type TileCache = HashMap<(u8, u64), Arc<TileTree>>;

const CACHE_TILES: usize = 4096;

impl Shared {
    /// Starts with `signed` durable; serves it at once unless `witnessed`, in
    /// which case `served` (the last witnessed checkpoint, if any) is served.
    pub fn new(
        store: Arc<dyn Store>,
        signed: Published,
        served: Option<Published>,
        witnessed: bool,
    ) -> Shared {
        let current = if witnessed {
            served.unwrap_or(Published {
                size: 0,
                root: Hash::empty_root(),
                checkpoint: Arc::new(Vec::new()),
            })
        } else {
            signed.clone()
        };
        let (notify, _) = watch::channel(current.size);
        Shared {
            current: RwLock::new(current),
            notify,
            signed: RwLock::new(signed),
            signed_gen: Mutex::new(0),
            signed_cv: Condvar::new(),
            witnessed,
            cache: Mutex::new(HashMap::new()),
            store,
        }
    }

    /// The newest durable signed checkpoint.
    pub fn signed(&self) -> Published {
        self.signed
            .read()
            .map(|g| g.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Records a new durable checkpoint (sequencer), serving it directly when
    /// the log has no witness policy.
    pub fn publish_signed(&self, p: Published) {
        if let Ok(mut g) = self.signed.write() {
            if p.size >= g.size {
                *g = p.clone();
            }
        }
        if let Ok(mut g) = self.signed_gen.lock() {
            *g += 1;
            self.signed_cv.notify_all();
        }
        if !self.witnessed {
            self.publish(p);
        }
    }

    /// Waits (up to `timeout`) for a newer signed checkpoint than generation
    /// `seen`; returns the current generation.
    pub fn wait_signed(&self, seen: u64, timeout: Duration) -> u64 {
        let Ok(g) = self.signed_gen.lock() else {
            return seen;
        };
        match self
            .signed_cv
            .wait_timeout_while(g, timeout, |g| *g == seen)
        {
            Ok((g, _)) => *g,
            Err(_) => seen,
        }
    }

    /// The published head.
    pub fn current(&self) -> Published {
        self.current
            .read()
            .map(|g| g.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Serves a new head (never a smaller one).
    pub fn publish(&self, p: Published) {
        let size = p.size;
        if let Ok(mut g) = self.current.write() {
            if p.size >= g.size {
                *g = p;
            }
        }
        self.notify.send_replace(size);
    }

    /// A receiver that sees every new published size.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.notify.subscribe()
    }

    /// The node rows of a hash tile as wide as the tree of `size` has it (or
    /// wider: a tile's hashes only ever grow at the end). Full tiles above
    /// level 0 and the partial tiles at the right edge are cached with all
    /// their interior nodes; full level-0 tiles, read at random by lookups,
    /// are not (see [`StoredNodes`]).
    fn tile_tree(
        &self,
        level: u8,
        index: u64,
        size: u64,
    ) -> Result<Option<Arc<TileTree>>, StoreError> {
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
            if t.rows[0].len() >= width {
                return Ok(Some(t));
            }
        }
        let Some(hashes) = self.read_tile(&tile)? else {
            return Ok(None);
        };
        let tree = Arc::new(TileTree::new(hashes));
        if let Ok(mut c) = self.cache.lock() {
            if c.len() >= CACHE_TILES {
                c.clear();
            }
            c.insert((level, index), tree.clone());
        }
        Ok(Some(tree))
    }

    /// A tile's first `tile.width` hashes from the store.
    fn read_tile(&self, tile: &Tile) -> Result<Option<Vec<Hash>>, StoreError> {
        let TileKind::Hash { level } = tile.kind else {
            return Ok(None);
        };
        let Some(data) = self.store.tile(level, tile.index)? else {
            return Ok(None);
        };
        let Some(prefix) = data.get(..usize::from(tile.width) * 32) else {
            return Ok(None);
        };
        decode_hashes(tile, prefix)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// A node source over the stored tiles for the tree of `size`.
    pub fn nodes(&self, size: u64) -> StoredNodes<'_> {
        StoredNodes {
            shared: self,
            size,
            level0: RefCell::new(None),
        }
    }
}

/// A tile's hashes and every interior node they determine: `rows[r]` holds
/// the nodes `r` levels above the tile's base, as many as are complete.
#[derive(Debug)]
pub struct TileTree {
    rows: Vec<Vec<Hash>>,
}

impl TileTree {
    fn new(hashes: Vec<Hash>) -> TileTree {
        let mut rows = vec![hashes];
        while let Some(last) = rows.last().filter(|r| r.len() >= 2) {
            let next: Vec<Hash> = last
                .chunks_exact(2)
                .map(|p| node_hash(&p[0], &p[1]))
                .collect();
            rows.push(next);
        }
        TileTree { rows }
    }

    fn get(&self, row: u8, pos: usize) -> Option<Hash> {
        self.rows.get(usize::from(row))?.get(pos).copied()
    }
}

/// A full level-0 tile read for one proof: its hashes and, if stored, its
/// interior record.
struct Level0 {
    index: u64,
    hashes: Vec<Hash>,
    interior: Option<Vec<u8>>,
}

/// Tree nodes read from the store's tiles.
///
/// A proof needs about one node per level. Nodes in tiles above level 0 and
/// in partial tiles come from cached [`TileTree`]s. A node in a full level-0
/// tile (a random one per lookup) comes from that tile, read once per
/// source: rows 0–3 are hashed from at most 8 tile hashes, rows 4–7 are read
/// from the interior record stored beside the tile, so no proof hashes more
/// than a handful of nodes.
pub struct StoredNodes<'a> {
    shared: &'a Shared,
    size: u64,
    level0: RefCell<Option<Level0>>,
}

impl StoredNodes<'_> {
    fn level0_node(&self, index: u64, row: u8, first: usize) -> Result<Option<Hash>, StoreError> {
        let mut memo = self.level0.borrow_mut();
        if memo.as_ref().is_none_or(|m| m.index != index) {
            let tile = Tile {
                kind: TileKind::Hash { level: 0 },
                index,
                width: TILE_WIDTH as u16,
            };
            let Some(hashes) = self.shared.read_tile(&tile)? else {
                return Ok(None);
            };
            let interior = self.shared.store.interior(0, index)?;
            *memo = Some(Level0 {
                index,
                hashes,
                interior,
            });
        }
        let Some(m) = memo.as_ref() else {
            return Ok(None);
        };
        let pos = first >> row;
        if let (Some(off), Some(rec)) = (interior_offset(row, pos), &m.interior) {
            if let Some(b) = rec.get(off * 32..off * 32 + 32) {
                let mut h = [0u8; 32];
                h.copy_from_slice(b);
                return Ok(Some(Hash(h)));
            }
        }
        Ok(m.hashes.get(first..first + (1usize << row)).map(naive_root))
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
        let first = loc.positions.start;
        let full = Tile::in_tree(TileKind::Hash { level: 0 }, loc.tile_index, self.size)
            .is_some_and(|t| t.is_full());
        if loc.tile_level == 0 && full {
            return self
                .level0_node(loc.tile_index, row, first)?
                .ok_or_else(missing);
        }
        self.shared
            .tile_tree(loc.tile_level, loc.tile_index, self.size)?
            .and_then(|t| t.get(row, first >> row))
            .ok_or_else(missing)
    }
}
