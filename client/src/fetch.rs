//! Reading a C2SP tlog-tiles log over HTTP: checkpoints, tiles (with the
//! full-tile fallback tlog-tiles allows for vanished partial tiles), and
//! proofs computed from tiles. Tiles are untrusted input: every proof built
//! from them is verified against a signed root by the caller.

use std::io::Read;
use std::path::PathBuf;

use vouch_spec::consistency;
use vouch_spec::hash::Hash;
use vouch_spec::inclusion;
use vouch_spec::merkle::{range_nodes, NodeId};
use vouch_spec::tile::{Tile, TileSet};

/// Why something could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The request failed or answered an error status.
    #[error("GET {url}: {msg}")]
    Http {
        /// The URL.
        url: String,
        /// What went wrong.
        msg: String,
    },
    /// The response was not what the protocol says.
    #[error("{url}: {msg}")]
    Invalid {
        /// The URL.
        url: String,
        /// What was wrong with it.
        msg: String,
    },
}

/// GETs `url`, returning the body of a 2xx (at most `max` bytes).
pub fn get(agent: &ureq::Agent, url: &str, max: u64) -> Result<Vec<u8>, FetchError> {
    let r = agent.get(url).call().map_err(|e| FetchError::Http {
        url: url.to_string(),
        msg: e.to_string(),
    })?;
    let mut body = Vec::new();
    r.into_reader()
        .take(max)
        .read_to_end(&mut body)
        .map_err(|e| FetchError::Http {
            url: url.to_string(),
            msg: e.to_string(),
        })?;
    Ok(body)
}

/// Full tiles kept on disk. Only tiles that took part in a proof that
/// verified against a signed root are stored (see [`Fetched::verified`]),
/// so a lying log cannot plant tiles here.
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
        let p = self.dir.join(t.path());
        let tmp = p.with_extension("tmp");
        if let Some(parent) = p.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        if std::fs::write(&tmp, data).is_ok() {
            let _ = std::fs::rename(&tmp, &p);
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

/// Fetches the tiles (as they exist at `size`) that hold `nodes`, reading
/// full tiles from `cache` when it has them.
pub fn tiles_cached(
    agent: &ureq::Agent,
    prefix: &str,
    size: u64,
    nodes: &[NodeId],
    cache: Option<&TileCache>,
) -> Result<Fetched, FetchError> {
    let prefix = prefix.trim_end_matches('/');
    let mut set = TileSet::new(size);
    let mut fresh = Vec::new();
    for t in TileSet::tiles_for(size, nodes) {
        let url = format!("{prefix}/{}", t.path());
        if let Some(d) = cache.filter(|_| t.is_full()).and_then(|c| c.get(&t)) {
            set.insert(&t, &d).map_err(|e| FetchError::Invalid {
                url: url.clone(),
                msg: e.to_string(),
            })?;
            continue;
        }
        let data = match get(agent, &url, 8192) {
            Ok(d) => d,
            Err(e) if !t.is_full() => {
                let full = Tile { width: 256, ..t };
                let d = get(agent, &format!("{prefix}/{}", full.path()), 8192).map_err(|_| e)?;
                d.get(..usize::from(t.width) * 32)
                    .map(<[u8]>::to_vec)
                    .unwrap_or(d)
            }
            Err(e) => return Err(e),
        };
        set.insert(&t, &data).map_err(|e| FetchError::Invalid {
            url,
            msg: e.to_string(),
        })?;
        if t.is_full() {
            fresh.push((t, data));
        }
    }
    Ok(Fetched { set, fresh })
}

/// Fetches the tiles (as they exist at `size`) that hold `nodes`.
pub fn tiles(
    agent: &ureq::Agent,
    prefix: &str,
    size: u64,
    nodes: &[NodeId],
) -> Result<TileSet, FetchError> {
    tiles_cached(agent, prefix, size, nodes, None).map(|f| f.set)
}

/// A consistency proof from `old` to `new`, computed from the log's tiles.
pub fn consistency_proof(
    agent: &ureq::Agent,
    prefix: &str,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, FetchError> {
    if old == 0 || old == new {
        return Ok(Vec::new());
    }
    let invalid = |msg: String| FetchError::Invalid {
        url: prefix.to_string(),
        msg,
    };
    let ranges = consistency::proof_ranges(old, new).map_err(|e| invalid(e.to_string()))?;
    let nodes: Vec<NodeId> = ranges.into_iter().flat_map(range_nodes).collect();
    let set = tiles(agent, prefix, new, &nodes)?;
    consistency::prove(old, new, &set).map_err(|e| invalid(e.to_string()))
}

/// An inclusion proof for `index` in the tree of `size`, from the log's
/// tiles; call [`Fetched::verified`] on the second value once it verified.
pub fn inclusion_proof(
    agent: &ureq::Agent,
    prefix: &str,
    index: u64,
    size: u64,
    cache: Option<&TileCache>,
) -> Result<(Vec<Hash>, Fetched), FetchError> {
    let invalid = |msg: String| FetchError::Invalid {
        url: prefix.to_string(),
        msg,
    };
    let ranges = inclusion::proof_ranges(index, size).map_err(|e| invalid(e.to_string()))?;
    let nodes: Vec<NodeId> = ranges.into_iter().flat_map(range_nodes).collect();
    let fetched = tiles_cached(agent, prefix, size, &nodes, cache)?;
    let proof = inclusion::prove(index, size, &fetched.set).map_err(|e| invalid(e.to_string()))?;
    Ok((proof, fetched))
}
