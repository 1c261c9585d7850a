//! Reading a C2SP tlog-tiles log over HTTP: checkpoints, tiles (with the
//! full-tile fallback tlog-tiles allows for vanished partial tiles), and
//! proofs computed from tiles. Tiles are untrusted input: every proof built
//! from them is verified against a signed root by the caller.

use std::io::Read;

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

/// Fetches the tiles (as they exist at `size`) that hold `nodes`.
pub fn tiles(
    agent: &ureq::Agent,
    prefix: &str,
    size: u64,
    nodes: &[NodeId],
) -> Result<TileSet, FetchError> {
    let prefix = prefix.trim_end_matches('/');
    let mut set = TileSet::new(size);
    for t in TileSet::tiles_for(size, nodes) {
        let url = format!("{prefix}/{}", t.path());
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
    }
    Ok(set)
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

/// An inclusion proof for `index` in the tree of `size`, from the log's tiles.
pub fn inclusion_proof(
    agent: &ureq::Agent,
    prefix: &str,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, FetchError> {
    let invalid = |msg: String| FetchError::Invalid {
        url: prefix.to_string(),
        msg,
    };
    let ranges = inclusion::proof_ranges(index, size).map_err(|e| invalid(e.to_string()))?;
    let nodes: Vec<NodeId> = ranges.into_iter().flat_map(range_nodes).collect();
    let set = tiles(agent, prefix, size, &nodes)?;
    inclusion::prove(index, size, &set).map_err(|e| invalid(e.to_string()))
}
