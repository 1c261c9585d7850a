//! The mirror's own client (C2SP tlog-mirror lets a mirror "implement other
//! update processes"; this one goes through the same two calls a pushing
//! client would): fetch the log's checkpoint, `add-checkpoint` it with a
//! consistency proof built from the log's tiles, then `add-entries` in
//! requests of at most 32 packages, each package's entries from the log's
//! entry bundle and its subtree consistency proof from the log's tiles.
//! Nothing fetched is trusted: the mirror authenticates every package.
//!
//! A log whose new checkpoint is inconsistent with the pending one (a fork)
//! is refused by `add-checkpoint`; the mirror keeps serving the history it
//! has, and the refusal is logged and counted.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use vouch::log_client::{FetchError, LogClient};
use vouch_spec::checkpoint::open_checkpoint;
use vouch_spec::hash::Hash;
use vouch_spec::merkle::{range_nodes, NodeId};
use vouch_spec::mirror::{encode_package, packages, UploadHeader, PACKAGES_PER_REQUEST};
use vouch_spec::note::NoteVerifier;
use vouch_spec::tile::{Tile, TileKind};
use vouch_spec::witness::{AddCheckpoint, Rejection};

use super::{Mirror, MirrorError, MirrorLog, Uploaded};

/// Why a round of following did not bring the mirror up to the log.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The log could not be read.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The log's checkpoint is not signed by its key.
    #[error("the log's checkpoint: {0}")]
    Checkpoint(String),
    /// The mirror refused (a fork, a bad package) or failed.
    #[error(transparent)]
    Mirror(#[from] MirrorError),
    /// The mirror stopped advancing.
    #[error("add-entries made no progress at next entry {0}")]
    Stuck(u64),
}

/// Label pairs.
type Labels = Vec<(String, String)>;

/// The follower's metrics.
#[derive(Clone, Default)]
pub struct Metrics {
    size: Family<Labels, Gauge>,
    refused: Family<Labels, Counter>,
    entries: Family<Labels, Counter>,
}

impl Metrics {
    /// Registers them.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "vouch_mirror_size",
            "Size of the mirror checkpoint",
            self.size.clone(),
        );
        r.register(
            "vouch_mirror_refused",
            "Updates from a followed log the mirror refused, by reason (inconsistent: a fork)",
            self.refused.clone(),
        );
        r.register(
            "vouch_mirror_entries",
            "Entries copied from followed logs",
            self.entries.clone(),
        );
    }
}

/// Brings the mirror of `log` up to `upstream`'s current checkpoint.
/// Returns the mirror checkpoint's size afterwards.
pub fn follow_once(
    mirror: &Mirror,
    log: &MirrorLog,
    upstream: &LogClient,
    now: u64,
) -> Result<u64, FollowError> {
    let bytes = upstream.checkpoint()?;
    let keys: Vec<&dyn NoteVerifier> = log.keys.iter().map(|k| k as &dyn NoteVerifier).collect();
    let cp = open_checkpoint(&bytes, &keys)
        .map_err(|e| FollowError::Checkpoint(e.to_string()))?
        .checkpoint;
    if cp.origin != log.origin {
        return Err(FollowError::Checkpoint(format!(
            "origin {:?}, not {:?}",
            cp.origin, log.origin
        )));
    }
    let (pending, _) = log.progress();
    if cp.size >= pending {
        let proof = upstream.consistency_proof(pending, cp.size)?;
        let req = AddCheckpoint {
            old_size: pending,
            proof,
            checkpoint: bytes,
        };
        match mirror.add_checkpoint(&req) {
            Ok(()) => {}
            // Someone else moved the pending checkpoint: upload to it.
            Err(MirrorError::Checkpoint(Rejection::Conflict { .. })) => {}
            Err(e) => return Err(e.into()),
        }
    }
    upload(mirror, log, upstream, now)?;
    Ok(log.size())
}

/// `add-entries` until the mirror checkpoint reaches the newest pending one.
fn upload(
    mirror: &Mirror,
    log: &MirrorLog,
    upstream: &LogClient,
    now: u64,
) -> Result<(), FollowError> {
    loop {
        let (end, next) = log.progress();
        if log.size() >= end {
            return Ok(());
        }
        let start = next.min(end);
        let body = request(log, upstream, start, end)?;
        match mirror.add_entries(&body, now) {
            Ok(Uploaded::Done(_)) => return Ok(()),
            Ok(Uploaded::Partial(info)) if info.next > start => {}
            Ok(Uploaded::Partial(info)) => return Err(FollowError::Stuck(info.next)),
            Err(e) if e.info().is_some_and(|i| i.next > start) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// One `add-entries` body for `[start, end)`: at most 32 packages.
fn request(
    log: &MirrorLog,
    upstream: &LogClient,
    start: u64,
    end: u64,
) -> Result<Vec<u8>, FollowError> {
    let spans: Vec<_> = packages(start, end)
        .take(PACKAGES_PER_REQUEST as usize)
        .collect();
    // Every proof's nodes, from one fetch of the tiles they live in.
    let ranges: Vec<Vec<std::ops::Range<u64>>> = spans
        .iter()
        .map(|s| vouch_spec::subtree::proof_ranges(s.subtree_start, s.end, end))
        .collect::<Result<_, _>>()
        .map_err(|e| FetchError::invalid(upstream.url().base(), e))?;
    let nodes: Vec<NodeId> = ranges
        .iter()
        .flatten()
        .cloned()
        .flat_map(range_nodes)
        .collect();
    let tiles = upstream.tiles(end, &nodes, None)?;
    let mut body = UploadHeader {
        origin: log.origin.clone(),
        start,
        end,
        ticket: Vec::new(),
    }
    .encode();
    for (span, ranges) in spans.iter().zip(&ranges) {
        let t = Tile::in_tree(TileKind::Entries, span.subtree_start / 256, end)
            .ok_or_else(|| FetchError::invalid(upstream.url().base(), "bundle past the tree"))?;
        let url = upstream.url().tile(&t);
        let data = upstream.tile(&t, vouch::tiles::MAX_BUNDLE_BYTES)?;
        let entries = vouch_spec::bundle::decode_width(&data, usize::from(t.width))
            .map_err(|e| FetchError::invalid(&url, e))?;
        let from = (span.start - span.subtree_start) as usize;
        let proof: Vec<Hash> = ranges
            .iter()
            .map(|r| vouch_spec::merkle::range_hash(r.clone(), &tiles.set))
            .collect::<Result<_, _>>()
            .map_err(|e| FetchError::invalid(&url, e))?;
        encode_package(&mut body, &entries[from..], &proof);
    }
    Ok(body)
}

/// Follows every log that has a URL, forever, every `interval`.
pub fn run(
    mirror: Arc<Mirror>,
    http: vouch::http::HttpClient,
    interval: Duration,
    metrics: Metrics,
) {
    let logs: Vec<(Arc<MirrorLog>, LogClient)> = mirror
        .logs()
        .filter_map(|l| {
            l.url
                .clone()
                .map(|u| (l.clone(), LogClient::new(http.clone(), &u)))
        })
        .collect();
    if logs.is_empty() {
        return;
    }
    loop {
        for (log, upstream) in &logs {
            let before = log.progress().1;
            let label = vec![("origin".to_string(), log.origin.clone())];
            match follow_once(&mirror, log, upstream, crate::now()) {
                Ok(size) => tracing::debug!(origin = %log.origin, size, "mirrored"),
                Err(e) => {
                    let reason = match &e {
                        FollowError::Mirror(MirrorError::Checkpoint(Rejection::Inconsistent(
                            _,
                        ))) => {
                            tracing::warn!(origin = %log.origin, error = %e, "possible log misbehaviour: the log's checkpoint is inconsistent with the mirrored history; not mirrored");
                            "inconsistent"
                        }
                        FollowError::Mirror(MirrorError::Unauthenticated { .. }) => {
                            tracing::warn!(origin = %log.origin, error = %e, "the log served entries its checkpoint does not commit to; not mirrored");
                            "unauthenticated"
                        }
                        FollowError::Checkpoint(_) => {
                            tracing::warn!(origin = %log.origin, error = %e, "the log's checkpoint does not verify");
                            "signature"
                        }
                        _ => {
                            tracing::warn!(origin = %log.origin, error = %e, "following failed");
                            "failed"
                        }
                    };
                    metrics
                        .refused
                        .get_or_create(&vec![
                            ("origin".to_string(), log.origin.clone()),
                            ("reason".to_string(), reason.to_string()),
                        ])
                        .inc();
                }
            }
            let after = log.progress().1;
            metrics
                .entries
                .get_or_create(&label)
                .inc_by(after.saturating_sub(before));
            metrics
                .size
                .get_or_create(&label)
                .set(i64::try_from(log.size()).unwrap_or(i64::MAX));
        }
        std::thread::sleep(interval);
    }
}
