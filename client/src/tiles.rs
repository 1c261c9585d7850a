//! Reading a C2SP tlog-tiles log (`spec/PROTOCOL.md` §4.2): hash tiles
//! (with the full-tile fallback tlog-tiles allows for vanished partial
//! tiles), entry bundles, and proofs computed from tiles. Tiles are
//! untrusted input: every proof built from them is verified against a
//! signed root by the caller, and only tiles that took part in a proof that
//! verified are cached ([`Fetched::verified`]).

use std::path::PathBuf;

use vouch_spec::consistency;
use vouch_spec::hash::Hash;
use vouch_spec::inclusion;
use vouch_spec::merkle::{range_nodes, NodeId};
use vouch_spec::tile::{Tile, TileSet};

use crate::log_client::{FetchError, LogClient};

/// Largest hash tile (256 hashes).
const MAX_TILE_BYTES: u64 = 256 * 32;

/// Largest entry bundle accepted (256 entries of at most 64 KiB each).
pub const MAX_BUNDLE_BYTES: u64 = 256 * (65_535 + 2);

/// Full tiles kept on disk, once a proof built from them verified against
/// a signed root, so a lying log cannot plant tiles here.
#[derive(Clone, Debug)]
pub struct TileCache {
    dir: PathBuf,
}

impl TileCache {
    /// A cache under `dir`.
    pub fn new(dir: PathBuf) -> TileCache {
        TileCache { dir }
    }

    fn get(&self, t: &Tile) -> Option<Vec<u8>> {
        let d = std::fs::read(self.dir.join(t.path())).ok()?;
        (d.len() == usize::from(t.width) * 32).then_some(d)
    }

    fn put(&self, t: &Tile, data: &[u8]) {
        // A cache: failing to write only costs a fetch later.
        if let Err(e) = crate::atomic::write(&self.dir.join(t.path()), data) {
            tracing::debug!(tile = %t.path(), error = %e, "tile not cached");
        }
    }
}

/// Tiles for a proof, and the full ones fetched from the network.
pub struct Fetched {
    /// The tiles.
    pub set: TileSet,
    fresh: Vec<(Tile, Vec<u8>)>,
}

impl Fetched {
    /// Call once a proof built from these tiles verified: caches the full ones.
    pub fn verified(self, cache: Option<&TileCache>) {
        if let Some(c) = cache {
            for (t, d) in &self.fresh {
                c.put(t, d);
            }
        }
    }
}

impl LogClient {
    /// One hash tile or entry bundle, as published (unverified).
    pub fn tile(&self, t: &Tile, max: u64) -> Result<Vec<u8>, FetchError> {
        Ok(self.http().get(&self.url().tile(t), max)?)
    }

    /// The hash tiles (as they exist at `size`) that hold `nodes`, full
    /// ones from `cache` when it has them.
    pub fn tiles(
        &self,
        size: u64,
        nodes: &[NodeId],
        cache: Option<&TileCache>,
    ) -> Result<Fetched, FetchError> {
        let mut set = TileSet::new(size);
        let mut fresh = Vec::new();
        for t in TileSet::tiles_for(size, nodes) {
            let url = self.url().tile(&t);
            if let Some(d) = cache.filter(|_| t.is_full()).and_then(|c| c.get(&t)) {
                set.insert(&t, &d)
                    .map_err(|e| FetchError::invalid(&url, e))?;
                continue;
            }
            let data = match self.tile(&t, MAX_TILE_BYTES) {
                Ok(d) => d,
                // A partial tile may be gone once the full one exists.
                Err(e) if !t.is_full() => {
                    let full = Tile { width: 256, ..t };
                    let d = self.tile(&full, MAX_TILE_BYTES).map_err(|_| e)?;
                    d.get(..usize::from(t.width) * 32)
                        .map(<[u8]>::to_vec)
                        .unwrap_or(d)
                }
                Err(e) => return Err(e),
            };
            set.insert(&t, &data)
                .map_err(|e| FetchError::invalid(&url, e))?;
            if t.is_full() {
                fresh.push((t, data));
            }
        }
        Ok(Fetched { set, fresh })
    }

    /// A consistency proof from `old` to `new`, computed from the log's
    /// tiles (empty when `old` is 0 or equals `new`).
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, FetchError> {
        Ok(self.consistency_proof_cached(old, new, None)?.0)
    }

    /// [`LogClient::consistency_proof`] taking full tiles from `cache` when
    /// it has them; call [`Fetched::verified`] on the second value once
    /// the proof verified.
    pub fn consistency_proof_cached(
        &self,
        old: u64,
        new: u64,
        cache: Option<&TileCache>,
    ) -> Result<(Vec<Hash>, Fetched), FetchError> {
        if old == 0 || old == new {
            return Ok((
                Vec::new(),
                Fetched {
                    set: TileSet::new(new),
                    fresh: Vec::new(),
                },
            ));
        }
        let base = self.url().base();
        let ranges =
            consistency::proof_ranges(old, new).map_err(|e| FetchError::invalid(base, e))?;
        let nodes: Vec<NodeId> = ranges.into_iter().flat_map(range_nodes).collect();
        let fetched = self.tiles(new, &nodes, cache)?;
        let proof =
            consistency::prove(old, new, &fetched.set).map_err(|e| FetchError::invalid(base, e))?;
        Ok((proof, fetched))
    }

    /// An inclusion proof for `index` in the tree of `size`, from the log's
    /// tiles; call [`Fetched::verified`] on the second value once it verified.
    pub fn inclusion_proof(
        &self,
        index: u64,
        size: u64,
        cache: Option<&TileCache>,
    ) -> Result<(Vec<Hash>, Fetched), FetchError> {
        let base = self.url().base();
        let ranges =
            inclusion::proof_ranges(index, size).map_err(|e| FetchError::invalid(base, e))?;
        let nodes: Vec<NodeId> = ranges.into_iter().flat_map(range_nodes).collect();
        let fetched = self.tiles(size, &nodes, cache)?;
        let proof = inclusion::prove(index, size, &fetched.set)
            .map_err(|e| FetchError::invalid(base, e))?;
        Ok((proof, fetched))
    }
}

impl crate::tracker::ProofSource for LogClient {
    fn consistency(&self, old: u64, new: u64) -> Result<Vec<Hash>, FetchError> {
        self.consistency_proof(old, new)
    }
}
