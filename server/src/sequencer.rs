//! The sequencer: one thread that takes verified entries in batches, drops
//! exact duplicates, assigns indices, extends the tree, and commits the whole
//! batch (entries, tiles, interior nodes, indexes, state and the newly signed
//! checkpoint) in one synced write before anyone is told anything.
//!
//! Invariants: nothing is acknowledged before its commit returned; the
//! checkpoint for a size is signed in memory and first leaves the process
//! inside that commit, so a crash before it loses the only copy; after a
//! crash, the log restarts from the last commit, byte for byte.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use vouch_spec::checkpoint::Checkpoint;
use vouch_spec::compact::CompactRange;
use vouch_spec::hash::{naive_root, Hash};
use vouch_spec::note::{Ed25519Signer, Note};
use vouch_spec::tile::{encode_hashes, TILE_HEIGHT, TILE_WIDTH};

use crate::metrics::Metrics;
use crate::state::{Published, Shared};
use crate::store::{
    interior_offset, Commit, DurableState, Store, StoreError, INTERIOR_HASHES, INTERIOR_ROWS,
};

/// An entry ready to sequence: encoded, hashed, signature already verified.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// Canonical entry bytes.
    pub bytes: Vec<u8>,
    /// Its leaf hash.
    pub leaf: Hash,
    /// The store path's hash part.
    pub hash_part: [u8; 32],
    /// For digest-form entries: the digest and the reference list to keep.
    pub references: Option<([u8; 32], Vec<u8>)>,
}

/// Where an entry landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assigned {
    /// Its index.
    pub index: u64,
    /// Its leaf hash.
    pub leaf: Hash,
    /// Whether it was already in the log.
    pub duplicate: bool,
}

/// One submission waiting for the sequencer.
pub struct Job {
    /// The entries, in request order.
    pub entries: Vec<Prepared>,
    /// Where to send the outcome.
    pub reply: oneshot::Sender<Result<Vec<Assigned>, String>>,
    /// When it was queued (for the latency metric).
    pub queued: Instant,
}

/// The right edge of the tree: the frontier and the partial tile at each level.
#[derive(Clone, Debug)]
struct Edge {
    cr: CompactRange,
    /// Per tile level: (tile index, hashes so far), never full.
    tiles: Vec<(u64, Vec<Hash>)>,
    /// Per tile level: the interior nodes of the partial tile completed so far.
    interiors: Vec<[Hash; INTERIOR_HASHES]>,
}

impl Edge {
    fn load(store: &dyn Store, state: &DurableState) -> Result<Edge, StoreError> {
        let cr = CompactRange::from_parts(state.size, state.frontier.clone())
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut tiles = Vec::new();
        let mut interiors = Vec::new();
        for level in 0..8u8 {
            let count = state.size >> (u32::from(level) * u32::from(TILE_HEIGHT));
            let (index, width) = (count / TILE_WIDTH, (count % TILE_WIDTH) as usize);
            let hashes = if width == 0 {
                Vec::new()
            } else {
                let data = store.tile(level, index)?.ok_or_else(|| {
                    StoreError::Corrupt(format!("missing edge tile {level}/{index}"))
                })?;
                let t = vouch_spec::tile::Tile {
                    kind: vouch_spec::tile::TileKind::Hash { level },
                    index,
                    width: width as u16,
                };
                vouch_spec::tile::decode_hashes(&t, &data)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?
            };
            // The partial tile's completed interior nodes, recomputed.
            let mut interior = [Hash::default(); INTERIOR_HASHES];
            for row in INTERIOR_ROWS {
                let span = 1usize << row;
                for (pos, chunk) in hashes.chunks_exact(span).enumerate() {
                    if let Some(off) = interior_offset(row, pos) {
                        interior[off] = naive_root(chunk);
                    }
                }
            }
            interiors.push(interior);
            tiles.push((index, hashes));
        }
        Ok(Edge {
            cr,
            tiles,
            interiors,
        })
    }

    /// Appends one entry, recording it, completed tiles and completed
    /// interior records in `commit`.
    fn append(&mut self, entry: &[u8], leaf: Hash, commit: &mut Commit, touched: &mut [bool; 8]) {
        commit.entries.push((self.cr.size(), entry.to_vec()));
        let (tiles, interiors) = (&mut self.tiles, &mut self.interiors);
        self.cr.append(leaf, |node, h| {
            let l = usize::from(node.level / TILE_HEIGHT);
            let row = node.level % TILE_HEIGHT;
            if l >= interiors.len() {
                return;
            }
            if row != 0 {
                let pos = (node.index % (TILE_WIDTH >> row)) as usize;
                if let Some(off) = interior_offset(row, pos) {
                    interiors[l][off] = *h;
                    // The tile's last interior node: row 7, second node.
                    if row == *INTERIOR_ROWS.end() && pos == 1 {
                        let tile = (node.index << row) / TILE_WIDTH;
                        commit
                            .interiors
                            .push((l as u8, tile, encode_hashes(&interiors[l])));
                    }
                }
                return;
            }
            let t = &mut tiles[l];
            t.0 = node.index / TILE_WIDTH;
            t.1.push(*h);
            touched[l] = true;
            if t.1.len() as u64 == TILE_WIDTH {
                commit.tiles.push((l as u8, t.0, encode_hashes(&t.1)));
                *t = (t.0 + 1, Vec::new());
            }
        });
    }

    /// Adds the (partial) edge tiles touched by this batch to `commit`.
    fn flush(&self, commit: &mut Commit, touched: &[bool; 8]) {
        for (l, (index, hashes)) in self.tiles.iter().enumerate() {
            if touched[l] && !hashes.is_empty() {
                commit.tiles.push((l as u8, *index, encode_hashes(hashes)));
            }
        }
    }
}

/// Signs the checkpoint for the tree `cr` describes.
pub fn sign_checkpoint(signer: &Ed25519Signer, origin: &str, cr: &CompactRange) -> Vec<u8> {
    let text = Checkpoint::new(origin, cr.size(), cr.root()).to_text();
    // The origin was validated as a key name, so the text is a valid note.
    Note::sign(&text, &[signer])
        .map(|n| n.to_bytes())
        .unwrap_or_default()
}

/// Loads (or creates) the durable state and returns it with the published view.
pub fn recover(
    store: &dyn Store,
    signer: &Ed25519Signer,
    origin: &str,
) -> anyhow::Result<DurableState> {
    if let Some(s) = store.state()? {
        let cp = vouch_spec::checkpoint::open_checkpoint(&s.checkpoint, &[&signer.verifier()])
            .map_err(|e| {
                anyhow::anyhow!("stored checkpoint does not verify with the configured key: {e}")
            })?;
        if cp.checkpoint.origin != origin {
            anyhow::bail!(
                "the data directory holds log {:?}, but the configured origin is {origin:?}",
                cp.checkpoint.origin
            );
        }
        let cr = CompactRange::from_parts(s.size, s.frontier.clone())?;
        if cr.root() != cp.checkpoint.root || cp.checkpoint.size != s.size {
            anyhow::bail!("stored state is inconsistent with its checkpoint");
        }
        return Ok(s);
    }
    let cr = CompactRange::new();
    let s = DurableState {
        size: 0,
        frontier: Vec::new(),
        checkpoint: sign_checkpoint(signer, origin, &cr),
    };
    store.commit(Commit {
        state: Some(s.clone()),
        ..Commit::default()
    })?;
    Ok(s)
}

/// Sequencer settings.
pub struct Settings {
    /// Most entries per batch.
    pub max_entries: usize,
    /// Longest wait for a batch to fill.
    pub max_wait: Duration,
    /// The log's origin.
    pub origin: String,
    /// The data directory, whose filesystem's free space is checked.
    pub data_dir: std::path::PathBuf,
    /// Least free space to accept a batch with.
    pub min_free_disk_bytes: u64,
}

/// Bytes available to this process on the filesystem holding `dir`.
fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
}

/// Runs the sequencer until the queue's senders are all gone, finishing
/// every queued job first.
pub fn run(
    store: Arc<dyn Store>,
    signer: Ed25519Signer,
    settings: Settings,
    state: DurableState,
    rx: Receiver<Job>,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
) -> Result<(), StoreError> {
    let mut edge = Edge::load(&*store, &state)?;
    loop {
        let Ok(first) = rx.recv() else { return Ok(()) };
        let deadline = Instant::now() + settings.max_wait;
        let mut n = first.entries.len();
        let mut jobs = vec![first];
        while n < settings.max_entries {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match rx.recv_timeout(deadline - now) {
                Ok(j) => {
                    n += j.entries.len();
                    jobs.push(j);
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        metrics
            .queue_depth
            .fetch_sub(jobs.len() as i64, std::sync::atomic::Ordering::Relaxed);
        let before = edge.clone();
        let mut wrote = false;
        let outcome = match free_bytes(&settings.data_dir) {
            Some(free) if free < settings.min_free_disk_bytes => Err(StoreError::Db(format!(
                "disk nearly full: {free} bytes free under {}, {} required",
                settings.data_dir.display(),
                settings.min_free_disk_bytes
            ))),
            _ => {
                wrote = true;
                integrate(&*store, &signer, &settings, &mut edge, &jobs)
            }
        };
        match outcome {
            Ok((results, published)) => {
                metrics.record_batch(n, published.size, &jobs);
                shared.publish_signed(published);
                for (job, r) in jobs.into_iter().zip(results) {
                    let _ = job.reply.send(Ok(r));
                }
            }
            Err(e) => {
                // Nothing was written: roll the in-memory edge back too.
                tracing::error!(error = %e, "batch commit failed; refusing the batch");
                metrics
                    .commit_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                edge = before;
                // The database may refuse writes from now on (RocksDB's I/O
                // errors are sticky): reopen it, so the next batch can
                // succeed once the disk recovers.
                if wrote {
                    if let Err(e) = store.recover() {
                        tracing::warn!(error = %e, "database not yet writable again");
                    }
                }
                // A write that reported failure may still have landed (say,
                // the WAL was written but its sync failed): follow what is
                // durable, never reuse an index it holds. The refused
                // entries' submitters resubmit and get `duplicate`.
                if let Ok(Some(s)) = store.state() {
                    if s.size != edge.cr.size() {
                        tracing::warn!(
                            size = s.size,
                            "a failed commit is durable; reloading the edge"
                        );
                        edge = Edge::load(&*store, &s)?;
                        if let Ok(cr) = CompactRange::from_parts(s.size, s.frontier.clone()) {
                            shared.publish_signed(Published {
                                size: s.size,
                                root: cr.root(),
                                checkpoint: Arc::new(s.checkpoint.clone()),
                            });
                        }
                    }
                }
                for job in jobs {
                    let _ = job.reply.send(Err(e.to_string()));
                }
            }
        }
    }
}

type BatchResult = (Vec<Vec<Assigned>>, Published);

fn integrate(
    store: &dyn Store,
    signer: &Ed25519Signer,
    settings: &Settings,
    edge: &mut Edge,
    jobs: &[Job],
) -> Result<BatchResult, StoreError> {
    let leaves: Vec<Hash> = jobs
        .iter()
        .flat_map(|j| j.entries.iter().map(|e| e.leaf))
        .collect();
    let existing = store.leaf_indexes(&leaves)?;
    let mut seen: HashMap<Hash, u64> = HashMap::new();
    let mut commit = Commit::default();
    let mut touched = [false; 8];
    let mut results = Vec::with_capacity(jobs.len());
    let mut k = 0;
    for job in jobs {
        let mut r = Vec::with_capacity(job.entries.len());
        for e in &job.entries {
            let known = existing[k].or_else(|| seen.get(&e.leaf).copied());
            k += 1;
            if let Some(index) = known {
                r.push(Assigned {
                    index,
                    leaf: e.leaf,
                    duplicate: true,
                });
                continue;
            }
            let index = edge.cr.size();
            edge.append(&e.bytes, e.leaf, &mut commit, &mut touched);
            seen.insert(e.leaf, index);
            commit.leaves.push((e.leaf, index));
            commit.paths.push((e.hash_part, index));
            if let Some((d, list)) = &e.references {
                commit.references.push((*d, list.clone()));
            }
            r.push(Assigned {
                index,
                leaf: e.leaf,
                duplicate: false,
            });
        }
        results.push(r);
    }
    let checkpoint = sign_checkpoint(signer, &settings.origin, &edge.cr);
    let published = Published {
        size: edge.cr.size(),
        root: edge.cr.root(),
        checkpoint: Arc::new(checkpoint.clone()),
    };
    if !commit.leaves.is_empty() {
        edge.flush(&mut commit, &touched);
        commit.state = Some(DurableState {
            size: edge.cr.size(),
            frontier: edge.cr.hashes().to_vec(),
            checkpoint,
        });
        store.commit(commit)?;
    }
    Ok((results, published))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;
    use vouch_spec::merkle::{MemoryTree, NodeSource};
    use vouch_spec::{consistency, inclusion};

    fn job(range: std::ops::Range<u64>) -> Job {
        let (reply, _) = oneshot::channel();
        Job {
            entries: range
                .map(|i| {
                    let bytes = format!("entry {i}\n").into_bytes();
                    Prepared {
                        leaf: vouch_spec::leaf_hash(&bytes),
                        bytes,
                        hash_part: [b'0'; 32],
                        references: None,
                    }
                })
                .collect(),
            reply,
            queued: Instant::now(),
        }
    }

    /// Proofs from stored tiles and interior records (through every cache
    /// path: random level-0 tiles, cached upper tiles, growing partial
    /// tiles) equal proofs from the whole tree in memory, across batches of
    /// odd sizes and restarts that rebuild the edge from the store.
    #[test]
    fn stored_nodes_prove_like_the_whole_tree() {
        let store: Arc<dyn Store> = Arc::new(MemStore::default());
        let signer = Ed25519Signer::from_seed("test.example/log", &[9; 32]).unwrap();
        let settings = Settings {
            max_entries: 1 << 20,
            max_wait: Duration::ZERO,
            origin: "test.example/log".into(),
            data_dir: std::env::temp_dir(),
            min_free_disk_bytes: 0,
        };
        let state = recover(&*store, &signer, &settings.origin).unwrap();
        let mut edge = Edge::load(&*store, &state).unwrap();
        let shared = Shared::new(
            store.clone(),
            Published {
                size: 0,
                root: Hash::empty_root(),
                checkpoint: Arc::new(Vec::new()),
            },
            None,
            false,
        );
        let leaves: Vec<Hash> = (0..70_000u64)
            .map(|i| vouch_spec::leaf_hash(format!("entry {i}\n").as_bytes()))
            .collect();
        let mut size = 0u64;
        let mut step = 1u64;
        let mut restarts = 0;
        while size < leaves.len() as u64 {
            let n = step.min(leaves.len() as u64 - size);
            integrate(
                &*store,
                &signer,
                &settings,
                &mut edge,
                &[job(size..size + n)],
            )
            .unwrap();
            size += n;
            step = (step * 7 + 3) % 9_000 + 1;
            if size.is_multiple_of(3) {
                let s = store.state().unwrap().unwrap();
                edge = Edge::load(&*store, &s).unwrap();
                restarts += 1;
            }
            let tree = MemoryTree::from_leaves(leaves[..size as usize].iter().copied());
            let nodes = shared.nodes(size);
            for i in [0, size / 3, size / 2, size - 1, size.saturating_sub(300)] {
                assert_eq!(
                    inclusion::prove(i, size, &nodes).unwrap(),
                    inclusion::prove(i, size, &tree).unwrap(),
                    "inclusion of {i} in {size}"
                );
            }
            for old in [1, size / 2, size - 1] {
                if old >= 1 && old <= size {
                    assert_eq!(
                        consistency::prove(old, size, &nodes).unwrap(),
                        consistency::prove(old, size, &tree).unwrap(),
                        "consistency {old} → {size}"
                    );
                }
            }
        }
        assert!(restarts > 3, "the edge was rebuilt from the store");
        // Every full level-0 tile has its interior record, equal to the tree's nodes.
        let tree = MemoryTree::from_leaves(leaves.iter().copied());
        for t in 0..(leaves.len() as u64 / TILE_WIDTH) {
            let rec = store.interior(0, t).unwrap().expect("interior record");
            for row in INTERIOR_ROWS {
                for pos in 0..(TILE_WIDTH as usize >> row) {
                    let off = interior_offset(row, pos).unwrap();
                    let want = tree
                        .node(vouch_spec::merkle::NodeId::new(
                            row,
                            (t << (8 - row)) + pos as u64,
                        ))
                        .unwrap();
                    assert_eq!(&rec[off * 32..off * 32 + 32], &want.0[..]);
                }
            }
        }
        assert_eq!(
            store.entries(65_530, 10).unwrap().len(),
            10,
            "entries are stored one per index"
        );
    }
}
