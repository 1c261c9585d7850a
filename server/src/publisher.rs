//! Publishing the read path to object storage (`spec/PROTOCOL.md` §4.3):
//! for every served checkpoint, the entry bundles and hash tiles it covers,
//! then the checkpoint itself; and, beside a binary cache's narinfos, each
//! new attestation's tlog-proof as `<hash part>.vouch/<n>.tlog-proof`.
//!
//! Order and crash safety: a checkpoint is put only after every tile and
//! bundle it needs, so a reader of the bucket never sees a checkpoint it
//! cannot verify. How far each destination got is a durable marker in the
//! log's store, written after the checkpoint's put returned; a crash in
//! between repeats the puts from the marker on restart, which is harmless
//! (puts are idempotent, [`crate::objects`]). The sequencer never waits for
//! the publisher: a slow or failing bucket delays the bucket, not the log.
//!
//! `n` in `<n>.tlog-proof` is the rank of the entry among the path's
//! entries in index order (0 for the first attestation of the path): stable
//! forever, since the log only appends, so a repeated put writes the same
//! proof to the same name.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use vouch_spec::bundle;
use vouch_spec::tile::{Tile, TileKind, TILE_HEIGHT, TILE_WIDTH};
use vouch_spec::transition::{kind, EntryKind};

use crate::nodes::TreeReader;
use crate::objects::{self, Backend, ObjectError};
use crate::published::{Published, Shared};
use crate::store::{Store, StoreError};

/// The durable marker of published tiles.
pub const TILES_MARKER: &str = "tiles";
/// The durable marker of published proofs.
pub const PROOFS_MARKER: &str = "proofs";

/// Threads putting proofs at once. Measured here against a directory on
/// the log's own two cores: 1 thread 3,860 proofs/s, 4 threads 2,825/s
/// (they compete with the sequencer); an S3 round trip per put may want
/// more.
const PUT_THREADS: usize = 1;

/// Proofs published between marker updates in a long backlog.
const PROOFS_PER_MARK: u64 = 16 * TILE_WIDTH;

/// Why a publishing round stopped.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The destination refused an object.
    #[error(transparent)]
    Object(#[from] ObjectError),
    /// The log's store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store lacks something a committed checkpoint covers.
    #[error("{0}")]
    Missing(String),
}

/// What a destination gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Checkpoint, hash tiles and entry bundles (tlog-tiles).
    Tiles,
    /// Tlog-proofs beside a cache's narinfos.
    Proofs,
}

impl Kind {
    fn marker(self) -> &'static str {
        match self {
            Kind::Tiles => TILES_MARKER,
            Kind::Proofs => PROOFS_MARKER,
        }
    }
}

#[derive(Clone)]
struct Metrics {
    size: Gauge,
    objects: Counter,
    failures: Counter,
}

/// Publishes one destination, on its own thread, following the served
/// checkpoint.
pub struct Publisher {
    kind: Kind,
    backend: Arc<dyn Backend>,
    store: Arc<dyn Store>,
    tree: Arc<TreeReader>,
    heads: Arc<Shared>,
    metrics: Metrics,
}

impl Publisher {
    /// A publisher of `kind` to `backend`, registering its metrics.
    pub fn new(
        kind: Kind,
        backend: Arc<dyn Backend>,
        store: Arc<dyn Store>,
        tree: Arc<TreeReader>,
        heads: Arc<Shared>,
        registry: &mut Registry,
    ) -> Publisher {
        let metrics = Metrics {
            size: Gauge::default(),
            objects: Counter::default(),
            failures: Counter::default(),
        };
        let sub = registry
            .sub_registry_with_label(("destination".into(), kind.marker().to_string().into()));
        sub.register(
            "vouch_log_published_size",
            "Tree size published to this destination.",
            metrics.size.clone(),
        );
        sub.register(
            "vouch_log_published_objects",
            "Objects put to this destination.",
            metrics.objects.clone(),
        );
        sub.register(
            "vouch_log_publish_failures",
            "Publishing rounds that failed (retried).",
            metrics.failures.clone(),
        );
        Publisher {
            kind,
            backend,
            store,
            tree,
            heads,
            metrics,
        }
    }

    /// Follows the served checkpoint forever, retrying failures with backoff.
    pub fn run(self) {
        let mut backoff = Duration::from_millis(100);
        let mut generation = 0;
        loop {
            match self.catch_up() {
                Ok(()) => {
                    backoff = Duration::from_millis(100);
                    // The served head moves with the signed one (or when
                    // witnesses cosign); wake on either, or poll.
                    generation = self
                        .heads
                        .wait_signed(generation, Duration::from_millis(200));
                }
                Err(e) => {
                    self.metrics.failures.inc();
                    tracing::warn!(destination = %self.backend.describe(), error = %e, "publishing failed; retrying");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// Publishes up to the served checkpoint, if it is beyond the marker.
    pub fn catch_up(&self) -> Result<(), PublishError> {
        let head = self.heads.current();
        let done = self.store.marker(self.kind.marker())?.unwrap_or(0);
        if head.size <= done || head.checkpoint.is_empty() {
            self.metrics
                .size
                .set(i64::try_from(done).unwrap_or(i64::MAX));
            return Ok(());
        }
        match self.kind {
            Kind::Tiles => self.tiles(done, &head)?,
            Kind::Proofs => self.proofs(done, &head)?,
        }
        self.store.put_marker(self.kind.marker(), head.size)?;
        self.metrics
            .size
            .set(i64::try_from(head.size).unwrap_or(i64::MAX));
        tracing::debug!(destination = %self.backend.describe(), size = head.size, "published");
        Ok(())
    }

    fn put(&self, key: &str, data: &[u8], meta: objects::Meta) -> Result<(), PublishError> {
        self.backend.put(key, data, meta)?;
        self.metrics.objects.inc();
        Ok(())
    }

    /// Bundles and tiles for entries `[done, head.size)`, then the checkpoint.
    fn tiles(&self, done: u64, head: &Published) -> Result<(), PublishError> {
        let reads = self.tree.reads();
        let size = head.size;
        for b in done / TILE_WIDTH..size.div_ceil(TILE_WIDTH) {
            let Some(t) = Tile::in_tree(TileKind::Entries, b, size) else {
                continue;
            };
            let entries = reads.entries(b * TILE_WIDTH, usize::from(t.width))?;
            if entries.len() != usize::from(t.width) {
                return Err(PublishError::Missing(format!(
                    "bundle {}: {} of {} entries stored",
                    t.path(),
                    entries.len(),
                    t.width
                )));
            }
            let data = bundle::encode(&entries)
                .map_err(|e| PublishError::Missing(format!("bundle {}: {e}", t.path())))?;
            self.put(&t.path(), &data, objects::IMMUTABLE)?;
        }
        for level in 0u8.. {
            let shift = u32::from(level) * u32::from(TILE_HEIGHT);
            let (old, new) = (
                done.checked_shr(shift).unwrap_or(0),
                size.checked_shr(shift).unwrap_or(0),
            );
            if new == 0 {
                break;
            }
            for i in old / TILE_WIDTH..new.div_ceil(TILE_WIDTH) {
                let Some(t) = Tile::in_tree(TileKind::Hash { level }, i, size) else {
                    continue;
                };
                let stored = reads.tile(level, i)?.unwrap_or_default();
                // The stored tile may be wider: the log moved on since.
                let data = stored.get(..usize::from(t.width) * 32).ok_or_else(|| {
                    PublishError::Missing(format!(
                        "tile {}: {} bytes stored",
                        t.path(),
                        stored.len()
                    ))
                })?;
                self.put(&t.path(), data, objects::IMMUTABLE)?;
            }
        }
        self.backend.sync()?;
        self.put("checkpoint", &head.checkpoint, objects::CHECKPOINT)?;
        self.backend.sync()?;
        Ok(())
    }

    /// The tlog-proof of each attestation in `[done, head.size)` under the
    /// head, at `<hash part>.vouch/<rank>.tlog-proof`.
    fn proofs(&self, done: u64, head: &Published) -> Result<(), PublishError> {
        let reads = self.tree.reads();
        let mut index = done;
        while index < head.size {
            // Aligned to bundles, so the marker lands on multiples below.
            let n = (head.size - index).min(TILE_WIDTH - index % TILE_WIDTH) as usize;
            let entries = reads.entries(index, n)?;
            if entries.len() != n {
                return Err(PublishError::Missing(format!(
                    "entries {index}..{}: {} stored",
                    index + n as u64,
                    entries.len()
                )));
            }
            let items: Vec<(u64, Vec<u8>)> = (index..).zip(entries).collect();
            // Proofs and puts of one bundle's entries on a few threads: each
            // is a store read, a proof and (for S3) a round trip.
            let per = items.len().div_ceil(PUT_THREADS).max(1);
            std::thread::scope(|scope| {
                let workers: Vec<_> = items
                    .chunks(per)
                    .map(|part| scope.spawn(move || self.proof_objects(part, head)))
                    .collect();
                workers.into_iter().try_for_each(|w| {
                    w.join().unwrap_or_else(|_| {
                        Err(PublishError::Missing("a publishing thread panicked".into()))
                    })
                })
            })?;
            index += n as u64;
            // A long backlog advances its marker as it goes, so a crash
            // repeats at most one stretch.
            if index.is_multiple_of(PROOFS_PER_MARK) && index < head.size {
                self.backend.sync()?;
                self.store.put_marker(PROOFS_MARKER, index)?;
            }
        }
        self.backend.sync()?;
        Ok(())
    }

    /// Puts the tlog-proof of each attestation among `items` (index, bytes).
    fn proof_objects(
        &self,
        items: &[(u64, Vec<u8>)],
        head: &Published,
    ) -> Result<(), PublishError> {
        let reads = self.tree.reads();
        // One node reader for the batch: the entries share their level-0
        // tile, read once instead of once per proof.
        let nodes = self.tree.nodes(head.size);
        for (i, e) in items {
            let i = *i;
            if kind(e) != EntryKind::Attestation {
                continue;
            }
            // `path /nix/store/<hash>-…` is the entry's second line.
            let Some(hash) = std::str::from_utf8(e)
                .ok()
                .and_then(|t| t.lines().nth(1))
                .and_then(|l| l.strip_prefix("path "))
                .and_then(|p| p.rsplit('/').next())
                .and_then(|b| b.get(..32))
                .map(str::to_string)
            else {
                return Err(PublishError::Missing(format!(
                    "entry {i} has no store path line"
                )));
            };
            let mut hp = [0u8; 32];
            hp.copy_from_slice(hash.as_bytes());
            let rank = reads
                .path_indexes(&hp)?
                .iter()
                .position(|x| *x == i)
                .ok_or_else(|| {
                    PublishError::Missing(format!("entry {i} is not in its path's index"))
                })?;
            let proof = self
                .tree
                .inclusion(i, head.size, &nodes)
                .map_err(|e| PublishError::Missing(format!("proof of entry {i}: {e}")))?;
            let text = vouch_spec::tlog_proof::encode_parts(Some(e), i, &proof, &head.checkpoint);
            self.put(
                &format!("{hash}.vouch/{rank}.tlog-proof"),
                &text,
                objects::PROOF,
            )?;
        }
        Ok(())
    }
}
