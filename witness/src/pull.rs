//! Pull mode: the witness fetches a log's checkpoint itself, builds the
//! consistency proof from the log's tiles (any C2SP tlog-tiles log), and
//! cosigns through the same checks as a pushed `add-checkpoint`.

use std::io::Read;
use std::time::Duration;

use vouch_spec::checkpoint::Checkpoint;
use vouch_spec::consistency;
use vouch_spec::hash::Hash;
use vouch_spec::merkle::{range_nodes, NodeId};
use vouch_spec::note::Note;
use vouch_spec::tile::{Tile, TileSet};
use vouch_spec::witness::AddCheckpoint;

use crate::Witness;

/// Fetches `url` (up to `max` bytes), returning the body of a 200 or an error.
pub fn fetch(agent: &ureq::Agent, url: &str, max: u64) -> anyhow::Result<Vec<u8>> {
    let r = agent
        .get(url)
        .call()
        .map_err(|e| anyhow::anyhow!("GET {url}: {e}"))?;
    let mut body = Vec::new();
    r.into_reader()
        .take(max)
        .read_to_end(&mut body)
        .map_err(|e| anyhow::anyhow!("GET {url}: {e}"))?;
    Ok(body)
}

/// Fetches the tiles needed for `nodes` in the tree of `size` from a
/// tlog-tiles prefix. A partial tile that is gone is replaced by the prefix
/// of the full tile, as tlog-tiles allows.
pub fn fetch_tiles(
    agent: &ureq::Agent,
    prefix: &str,
    size: u64,
    nodes: &[NodeId],
) -> anyhow::Result<TileSet> {
    let mut set = TileSet::new(size);
    for t in TileSet::tiles_for(size, nodes) {
        let url = format!("{}/{}", prefix.trim_end_matches('/'), t.path());
        let data = match fetch(agent, &url, 8192) {
            Ok(d) => d,
            Err(e) if !t.is_full() => {
                let full = Tile { width: 256, ..t };
                let d = fetch(
                    agent,
                    &format!("{}/{}", prefix.trim_end_matches('/'), full.path()),
                    8192,
                )
                .map_err(|_| e)?;
                d.get(..usize::from(t.width) * 32)
                    .map(<[u8]>::to_vec)
                    .unwrap_or(d)
            }
            Err(e) => return Err(e),
        };
        set.insert(&t, &data)
            .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    }
    Ok(set)
}

/// A consistency proof from `old` to `new` computed from the log's tiles.
/// The tiles are not trusted: the proof is verified against signed roots by
/// whoever uses it.
pub fn consistency_from_tiles(
    agent: &ureq::Agent,
    prefix: &str,
    old: u64,
    new: u64,
) -> anyhow::Result<Vec<Hash>> {
    if old == 0 || old == new {
        return Ok(Vec::new());
    }
    let nodes: Vec<NodeId> = consistency::proof_ranges(old, new)?
        .into_iter()
        .flat_map(range_nodes)
        .collect();
    let set = fetch_tiles(agent, prefix, new, &nodes)?;
    consistency::prove(old, new, &set).map_err(|e| anyhow::anyhow!("{e}"))
}

/// One poll of one log: returns the size cosigned afterwards.
pub fn poll_once(w: &Witness, agent: &ureq::Agent, origin: &str, url: &str) -> anyhow::Result<u64> {
    let cp_bytes = fetch(
        agent,
        &format!("{}/checkpoint", url.trim_end_matches('/')),
        1 << 20,
    )?;
    let note = Note::parse(&cp_bytes)?;
    let cp = Checkpoint::parse(&note.text)?;
    anyhow::ensure!(
        cp.origin == origin,
        "{url} serves origin {:?}, not {origin:?}",
        cp.origin
    );
    let old = w.size(origin).unwrap_or(0);
    if cp.size < old {
        // An older checkpoint is not news; the log may be behind a cache.
        return Ok(old);
    }
    let proof = consistency_from_tiles(agent, url, old, cp.size)?;
    let req = AddCheckpoint {
        old_size: old,
        proof,
        checkpoint: cp_bytes,
    };
    w.add_checkpoint(&req, crate::now())
        .map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
    Ok(cp.size)
}

/// Polls every log that has a URL, forever.
pub fn run(w: std::sync::Arc<Witness>, interval: Duration) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let logs: Vec<(String, String)> = w
        .logs()
        .filter_map(|l| l.url.clone().map(|u| (l.origin.clone(), u)))
        .collect();
    if logs.is_empty() {
        return;
    }
    loop {
        for (origin, url) in &logs {
            match poll_once(&w, &agent, origin, url) {
                Ok(size) => tracing::debug!(%origin, size, "polled"),
                Err(e) => tracing::warn!(%origin, error = %e, "poll failed"),
            }
        }
        std::thread::sleep(interval);
    }
}
