//! What the HTTP side reads: the published tree head, and tree nodes read
//! from stored tiles (with a small cache of immutable full tiles).

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use vouch_spec::hash::{naive_root, Hash};
use vouch_spec::merkle::{NodeId, NodeSource};
use vouch_spec::tile::{decode_hashes, locate, Tile, TileKind, TILE_WIDTH};

use crate::store::{Store, StoreError};

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

/// Full (immutable) hash tiles by (level, index).
type TileCache = HashMap<(u8, u64), Arc<Vec<Hash>>>;

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

    /// Hashes of a hash tile, as wide as the tree of `size` has it.
    pub fn tile_hashes(
        &self,
        level: u8,
        index: u64,
        size: u64,
    ) -> Result<Option<Arc<Vec<Hash>>>, StoreError> {
        let Some(tile) = Tile::in_tree(TileKind::Hash { level }, index, size) else {
            return Ok(None);
        };
        if tile.is_full() {
            if let Some(t) = self
                .cache
                .lock()
                .ok()
                .and_then(|c| c.get(&(level, index)).cloned())
            {
                return Ok(Some(t));
            }
        }
        let Some(data) = self.store.tile(level, index)? else {
            return Ok(None);
        };
        let want = usize::from(tile.width) * 32;
        let Some(prefix) = data.get(..want) else {
            return Ok(None);
        };
        let hashes =
            Arc::new(decode_hashes(&tile, prefix).map_err(|e| StoreError::Corrupt(e.to_string()))?);
        if tile.is_full() {
            if let Ok(mut c) = self.cache.lock() {
                if c.len() >= CACHE_TILES {
                    c.clear();
                }
                c.insert((level, index), hashes.clone());
            }
        }
        Ok(Some(hashes))
    }

    /// A node source over the stored tiles for the tree of `size`.
    pub fn nodes(&self, size: u64) -> StoredNodes<'_> {
        StoredNodes { shared: self, size }
    }

    /// The entry at `index` (which must be below the published size).
    pub fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(data) = self.store.bundle(index / TILE_WIDTH)? else {
            return Ok(None);
        };
        let entries =
            vouch_spec::bundle::decode(&data).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(entries
            .get((index % TILE_WIDTH) as usize)
            .map(|e| e.to_vec()))
    }
}

/// Tree nodes read from the store's tiles.
pub struct StoredNodes<'a> {
    shared: &'a Shared,
    size: u64,
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
        let hashes = self
            .shared
            .tile_hashes(loc.tile_level, loc.tile_index, self.size)?
            .ok_or_else(missing)?;
        let slice = hashes.get(loc.positions.clone()).ok_or_else(missing)?;
        Ok(naive_root(slice))
    }
}
