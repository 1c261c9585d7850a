//! The sequencer: one thread that takes verified entries in batches, drops
//! exact duplicates, assigns indices, integrates them into the tiles
//! (`vouch_spec::integrate`), and commits the whole batch (entries, tiles,
//! interior nodes, indexes, state and the newly signed checkpoint) in one
//! synced write before anyone is told anything.
//!
//! Invariants: nothing is acknowledged before its commit returned; the
//! checkpoint for a size is signed in memory and first leaves the process
//! inside that commit, so a crash before it loses the only copy; after a
//! crash, the log restarts from the last commit, byte for byte; after a
//! failed commit the sequencer follows what is durable, so an index that a
//! write reporting failure did store is never given out again.
//!
//! Submitters reach the thread through a [`SequencerHandle`], which owns
//! the queue and its depth gauge.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::sync::oneshot;
use vouch_spec::checkpoint::Checkpoint;
use vouch_spec::compact::CompactRange;
use vouch_spec::hash::Hash;
use vouch_spec::integrate::integrate;
use vouch_spec::nix::NixPublicKey;
use vouch_spec::note::{Ed25519Signer, Note};
use vouch_spec::tile::{TileNodes, TILE_WIDTH};

use crate::interior::interior_record;
use crate::published::{Published, Shared};
use crate::store::{Commit, DurableState, Store, StoreError, TileReads};

/// An entry ready to sequence: encoded, hashed, signature already verified.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// Canonical entry bytes.
    pub bytes: Vec<u8>,
    /// Its leaf hash.
    pub leaf: Hash,
    /// How lookups find it.
    pub indexed: Indexed,
    /// For digest-form entries: the digest and the reference list to keep.
    pub references: Option<([u8; 32], Vec<u8>)>,
    /// The key whose statement it is (an attestation's builder key, a
    /// transition's old key): refused once that key is retired (§3.6).
    pub signer: NixPublicKey,
}

/// How lookups find an entry.
#[derive(Clone, Debug)]
pub enum Indexed {
    /// An attestation, by its store path's hash part.
    Path([u8; 32]),
    /// A transition, by the Ed25519 keys it names; it retires its signer
    /// from its own index on.
    Transition(Vec<[u8; 32]>),
}

/// Why the sequencer did not log a submission.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Storage failed; nothing of the batch was logged.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An entry is by a key retired at or before this point in the log
    /// (§3.6); nothing of the submission was logged.
    #[error("entry {position} ({what}): builder key {key} was retired by its transition at index {cutoff}; the log appends nothing it signs from there on")]
    Retired {
        /// Its position in the submission.
        position: usize,
        /// What it is (`attestation` or `transition`).
        what: &'static str,
        /// The key.
        key: String,
        /// Its cutoff.
        cutoff: u64,
    },
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

/// The outcome a submitter waits for.
pub type Outcome = Result<Vec<Assigned>, Refusal>;

/// One submission waiting for the sequencer.
pub struct Job {
    entries: Vec<Prepared>,
    reply: oneshot::Sender<Outcome>,
    queued: Instant,
}

/// Why a submission did not reach the sequencer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// As many submissions wait as the queue holds.
    #[error("the sequencer queue is full")]
    Full,
    /// The sequencer has stopped (the log is shutting down).
    #[error("the log is shutting down")]
    Closed,
}

/// The way into the sequencer: its queue and the queue's depth gauge.
#[derive(Clone)]
pub struct SequencerHandle {
    tx: SyncSender<Job>,
    depth: Gauge,
}

impl SequencerHandle {
    /// Queues `entries` (in request order); the receiver gets where they
    /// landed once they are durable, or why they were not logged.
    pub fn submit(&self, entries: Vec<Prepared>) -> Result<oneshot::Receiver<Outcome>, QueueError> {
        let (reply, rx) = oneshot::channel();
        self.depth.inc();
        let job = Job {
            entries,
            reply,
            queued: Instant::now(),
        };
        match self.tx.try_send(job) {
            Ok(()) => Ok(rx),
            Err(e) => {
                self.depth.dec();
                Err(match e {
                    TrySendError::Full(_) => QueueError::Full,
                    TrySendError::Disconnected(_) => QueueError::Closed,
                })
            }
        }
    }
}

/// The sequencer's own metrics.
#[derive(Clone)]
struct Metrics {
    entries: Gauge,
    batches: Counter,
    batch_entries: Counter,
    commit_failures: Counter,
    latency: Histogram,
}

impl Metrics {
    fn register(registry: &mut Registry, depth: &Gauge) -> Metrics {
        let m = Metrics {
            entries: Gauge::default(),
            batches: Counter::default(),
            batch_entries: Counter::default(),
            commit_failures: Counter::default(),
            latency: Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0]),
        };
        registry.register(
            "vouch_log_entries",
            "Entries in the log.",
            m.entries.clone(),
        );
        registry.register("vouch_log_batches", "Batches committed.", m.batches.clone());
        registry.register(
            "vouch_log_batch_entries",
            "Entries submitted in committed batches (mean batch size = this / batches).",
            m.batch_entries.clone(),
        );
        registry.register(
            "vouch_log_commit_failures",
            "Batches refused because storage failed.",
            m.commit_failures.clone(),
        );
        registry.register(
            "vouch_log_queue_depth",
            "Submissions waiting for the sequencer.",
            depth.clone(),
        );
        registry.register(
            "vouch_log_sequencing_seconds",
            "Time from queueing a submission to its durable commit.",
            m.latency.clone(),
        );
        m
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

/// Why the log cannot start from its data directory.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored checkpoint was signed by another key.
    #[error("the stored checkpoint does not verify with the configured key: {0}")]
    WrongKey(String),
    /// The data directory belongs to another log.
    #[error("the data directory holds log {held:?}, but the configured origin is {configured:?}")]
    WrongOrigin {
        /// The origin in the data directory.
        held: String,
        /// The configured one.
        configured: String,
    },
    /// The stored frontier does not give the stored checkpoint's root.
    #[error("stored state is inconsistent with its checkpoint")]
    Inconsistent,
}

/// Loads (or creates) the durable state.
pub fn recover(
    store: &dyn Store,
    signer: &Ed25519Signer,
    origin: &str,
) -> Result<DurableState, RecoverError> {
    if let Some(s) = store.state()? {
        let cp = vouch_spec::checkpoint::open_checkpoint(&s.checkpoint, &[&signer.verifier()])
            .map_err(|e| RecoverError::WrongKey(e.to_string()))?;
        if cp.checkpoint.origin != origin {
            return Err(RecoverError::WrongOrigin {
                held: cp.checkpoint.origin,
                configured: origin.to_string(),
            });
        }
        let cr = CompactRange::from_parts(s.size, s.frontier.clone())
            .map_err(|_| RecoverError::Inconsistent)?;
        if cr.root() != cp.checkpoint.root || cp.checkpoint.size != s.size {
            return Err(RecoverError::Inconsistent);
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
    /// Submissions that may wait.
    pub queue_capacity: usize,
}

/// Bytes available to this process on the filesystem holding `dir`.
fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
}

/// Starts the sequencer thread from `state`, registering its metrics; it
/// runs until every handle is dropped, finishing queued jobs first.
pub fn start(
    store: Arc<dyn Store>,
    signer: Ed25519Signer,
    settings: Settings,
    state: DurableState,
    shared: Arc<Shared>,
    registry: &mut Registry,
) -> std::io::Result<(
    SequencerHandle,
    std::thread::JoinHandle<Result<(), StoreError>>,
)> {
    let (tx, rx) = std::sync::mpsc::sync_channel(settings.queue_capacity);
    let depth = Gauge::default();
    let metrics = Metrics::register(registry, &depth);
    metrics
        .entries
        .set(i64::try_from(state.size).unwrap_or(i64::MAX));
    let handle = SequencerHandle {
        tx,
        depth: depth.clone(),
    };
    let thread = std::thread::Builder::new()
        .name("sequencer".into())
        .spawn(move || run(store, signer, settings, state, rx, shared, metrics, depth))?;
    Ok((handle, thread))
}

fn range_of(s: &DurableState) -> Result<CompactRange, StoreError> {
    CompactRange::from_parts(s.size, s.frontier.clone())
        .map_err(|e| StoreError::Corrupt(format!("sequencer state: {e}")))
}

#[allow(clippy::too_many_arguments)]
fn run(
    store: Arc<dyn Store>,
    signer: Ed25519Signer,
    settings: Settings,
    state: DurableState,
    rx: Receiver<Job>,
    shared: Arc<Shared>,
    metrics: Metrics,
    depth: Gauge,
) -> Result<(), StoreError> {
    let mut range = range_of(&state)?;
    // Retired keys and their cutoffs: few, so all of them in memory.
    let mut retired: HashMap<[u8; 32], u64> = store.retirements()?.into_iter().collect();
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
        depth.dec_by(jobs.len() as i64);
        let mut wrote = false;
        let outcome = match free_bytes(&settings.data_dir) {
            Some(free) if free < settings.min_free_disk_bytes => {
                Err(StoreError::DiskFull(format!(
                    "disk nearly full: {free} bytes free under {}, {} required to accept entries",
                    settings.data_dir.display(),
                    settings.min_free_disk_bytes
                )))
            }
            _ => {
                wrote = true;
                sequence(&*store, &signer, &settings, &range, &retired, &mut jobs)
            }
        };
        match outcome {
            Ok((results, published, next, retirements)) => {
                range = next;
                retired.extend(retirements);
                metrics.batches.inc();
                metrics.batch_entries.inc_by(n as u64);
                metrics
                    .entries
                    .set(i64::try_from(published.size).unwrap_or(i64::MAX));
                shared.publish_signed(published);
                for (job, r) in jobs.into_iter().zip(results) {
                    metrics.latency.observe(job.queued.elapsed().as_secs_f64());
                    let _ = job.reply.send(r);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "batch commit failed; refusing the batch");
                metrics.commit_failures.inc();
                // The database may refuse writes from now on (RocksDB's I/O
                // errors are sticky): reopen it, so the next batch can
                // succeed once the disk recovers.
                if wrote {
                    if let Err(e) = store.reopen() {
                        tracing::warn!(error = %e, "database not yet writable again");
                    }
                }
                // A write that reported failure may still have landed (say,
                // the WAL was written but its sync failed): follow what is
                // durable, never reuse an index it holds. The refused
                // entries' submitters resubmit and get `duplicate`.
                if let Ok(Some(s)) = store.state() {
                    if s.size != range.size() {
                        tracing::warn!(size = s.size, "a failed commit is durable; following it");
                        range = range_of(&s)?;
                        shared.publish_signed(Published {
                            size: s.size,
                            root: range.root(),
                            checkpoint: Arc::new(s.checkpoint.clone()),
                        });
                    }
                }
                for job in jobs {
                    let _ = job.reply.send(Err(Refusal::Store(e.clone())));
                }
            }
        }
    }
}

type BatchResult = (
    Vec<Result<Vec<Assigned>, Refusal>>,
    Published,
    CompactRange,
    Vec<([u8; 32], u64)>,
);

/// Assigns indices to the batch's new entries, integrates them and commits.
///
/// A job with a new entry by a key retired before it (by an earlier batch,
/// an earlier job of this batch or an earlier entry of the same job) is
/// refused whole and takes no index. Duplicates are answered with their
/// index whatever their key: they were logged before any cutoff.
///
/// Each new entry's bytes move out of its job into the commit; the jobs
/// are only answered afterwards.
fn sequence(
    store: &dyn Store,
    signer: &Ed25519Signer,
    settings: &Settings,
    range: &CompactRange,
    retired: &HashMap<[u8; 32], u64>,
    jobs: &mut [Job],
) -> Result<BatchResult, StoreError> {
    let probes: Vec<(Hash, Option<[u8; 32]>)> = jobs
        .iter()
        .flat_map(|j| {
            j.entries.iter().map(|e| match &e.indexed {
                Indexed::Path(hash_part) => (e.leaf, Some(*hash_part)),
                Indexed::Transition(_) => (e.leaf, None),
            })
        })
        .collect();
    let existing = store.leaf_indexes(&probes)?;
    let mut seen: HashMap<Hash, u64> = HashMap::new();
    let mut commit = Commit::default();
    let mut new_leaves = Vec::new();
    let mut results = Vec::with_capacity(jobs.len());
    let mut next = range.size();
    let mut k = 0;
    let mut retiring: HashMap<[u8; 32], u64> = HashMap::new();
    for job in jobs.iter_mut() {
        let first = k;
        k += job.entries.len();
        if let Some(refusal) = refuse_retired(job, &existing[first..k], &seen, next, |key| {
            retired.get(key).or_else(|| retiring.get(key)).copied()
        }) {
            results.push(Err(refusal));
            continue;
        }
        let mut r = Vec::with_capacity(job.entries.len());
        for (e, known) in job.entries.iter_mut().zip(&existing[first..k]) {
            let known = known.or_else(|| seen.get(&e.leaf).copied());
            if let Some(index) = known {
                r.push(Assigned {
                    index,
                    leaf: e.leaf,
                    duplicate: true,
                });
                continue;
            }
            let index = next;
            next += 1;
            seen.insert(e.leaf, index);
            new_leaves.push(e.leaf);
            // Moved, not copied: nothing reads a job's bytes after this.
            commit.entries.push((index, std::mem::take(&mut e.bytes)));
            commit.leaves.push((e.leaf, index));
            match &e.indexed {
                Indexed::Path(hash_part) => commit.paths.push((*hash_part, index)),
                Indexed::Transition(keys) => {
                    commit.keys.extend(keys.iter().map(|key| (*key, index)));
                    let old = e.signer.key().to_bytes();
                    retiring.insert(old, index);
                    commit.retirements.push((old, index));
                }
            }
            if let Some((d, list)) = &e.references {
                commit.references.push((*d, list.clone()));
            }
            r.push(Assigned {
                index,
                leaf: e.leaf,
                duplicate: false,
            });
        }
        results.push(Ok(r));
    }
    let commit_retirements = commit.retirements.clone();
    let integrated = integrate(&TileReads(store), range, &new_leaves)?;
    let checkpoint = sign_checkpoint(signer, &settings.origin, &integrated.range);
    let published = Published {
        size: integrated.range.size(),
        root: integrated.range.root(),
        checkpoint: Arc::new(checkpoint.clone()),
    };
    if !new_leaves.is_empty() {
        // Each tile this batch filled gets its interior record.
        commit.interiors = integrated
            .tiles
            .iter()
            .filter(|(_, _, h)| h.len() as u64 == TILE_WIDTH)
            .map(|(l, i, h)| (*l, *i, interior_record(&TileNodes::new(h.clone()))))
            .collect();
        commit.tiles = integrated.tiles;
        commit.state = Some(DurableState {
            size: integrated.range.size(),
            frontier: integrated.range.hashes().to_vec(),
            checkpoint,
        });
        store.commit(commit)?;
    }
    Ok((results, published, integrated.range, commit_retirements))
}

/// The refusal of `job` if one of its new entries is by a retired key:
/// `cutoff` gives a key's cutoff so far; `next` is the index the job's
/// first new entry would take.
fn refuse_retired(
    job: &Job,
    existing: &[Option<u64>],
    seen: &HashMap<Hash, u64>,
    next: u64,
    cutoff: impl Fn(&[u8; 32]) -> Option<u64>,
) -> Option<Refusal> {
    let mut own: HashMap<[u8; 32], u64> = HashMap::new();
    let mut index = next;
    for (position, (e, known)) in job.entries.iter().zip(existing).enumerate() {
        if known.is_some() || seen.contains_key(&e.leaf) {
            continue;
        }
        let key = e.signer.key().to_bytes();
        if let Some(cut) = cutoff(&key).or_else(|| own.get(&key).copied()) {
            return Some(Refusal::Retired {
                position,
                what: match e.indexed {
                    Indexed::Path(_) => "attestation",
                    Indexed::Transition(_) => "transition",
                },
                key: e.signer.to_string(),
                cutoff: cut,
            });
        }
        if matches!(e.indexed, Indexed::Transition(_)) {
            own.insert(key, index);
        }
        index += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interior::{interior_offset, INTERIOR_ROWS};
    use crate::nodes::TreeReader;
    use crate::store::{MemStore, Reads};
    use vouch_spec::merkle::{MemoryTree, NodeSource};
    use vouch_spec::tile::TILE_WIDTH;
    use vouch_spec::{consistency, inclusion};

    /// Batches of any size, committed at once, for `test.example/log`.
    fn test_settings() -> Settings {
        Settings {
            max_entries: 1 << 20,
            max_wait: Duration::ZERO,
            origin: "test.example/log".into(),
            data_dir: std::env::temp_dir(),
            min_free_disk_bytes: 0,
            queue_capacity: 1,
        }
    }

    fn test_key() -> NixPublicKey {
        vouch_spec::nix::NixSecretKey::from_seed("b", &[3; 32])
            .unwrap()
            .public()
    }

    fn job(range: std::ops::Range<u64>) -> Job {
        let (reply, _) = oneshot::channel();
        Job {
            entries: range
                .map(|i| {
                    let bytes = format!("entry {i}\n").into_bytes();
                    Prepared {
                        leaf: vouch_spec::leaf_hash(&bytes),
                        bytes,
                        indexed: Indexed::Path([b'0'; 32]),
                        references: None,
                        signer: test_key(),
                    }
                })
                .collect(),
            reply,
            queued: Instant::now(),
        }
    }

    fn prepared(bytes: &[u8], signer: &NixPublicKey, transition: bool) -> Prepared {
        Prepared {
            leaf: vouch_spec::leaf_hash(bytes),
            bytes: bytes.to_vec(),
            indexed: if transition {
                Indexed::Transition(vec![signer.key().to_bytes()])
            } else {
                Indexed::Path([b'0'; 32])
            },
            references: None,
            signer: signer.clone(),
        }
    }

    fn job_of(entries: Vec<Prepared>) -> Job {
        let (reply, _) = oneshot::channel();
        Job {
            entries,
            reply,
            queued: Instant::now(),
        }
    }

    /// A retirement takes effect at its own index: within its job, its
    /// batch and every later batch, a new entry by the key is refused with
    /// its whole job (which takes no index), while a duplicate is answered.
    #[test]
    fn a_retired_key_is_refused_from_its_cutoff_on() {
        let store: Arc<dyn Store> = Arc::new(MemStore::default());
        let signer = Ed25519Signer::from_seed("test.example/log", &[9; 32]).unwrap();
        let settings = test_settings();
        let range = range_of(&recover(&*store, &signer, &settings.origin).unwrap()).unwrap();
        let (k, other) = (test_key(), {
            vouch_spec::nix::NixSecretKey::from_seed("c", &[4; 32])
                .unwrap()
                .public()
        });
        let early = prepared(b"early\n", &k, false);
        let mut jobs = [
            job_of(vec![early.clone()]),
            // Retires k at index 1, then an entry by k in the same job.
            job_of(vec![
                prepared(b"retire\n", &k, true),
                prepared(b"late\n", &k, false),
            ]),
            job_of(vec![prepared(b"retire\n", &k, true)]),
            job_of(vec![prepared(b"late 2\n", &k, false)]),
            job_of(vec![prepared(b"other\n", &other, false)]),
        ];
        let (results, _, range, retired) = sequence(
            &*store,
            &signer,
            &settings,
            &range,
            &HashMap::new(),
            &mut jobs,
        )
        .unwrap();
        assert!(results[0].is_ok());
        assert!(
            matches!(
                &results[1],
                Err(Refusal::Retired {
                    position: 1,
                    cutoff: 1,
                    ..
                })
            ),
            "{:?}",
            results[1]
        );
        assert_eq!(results[2].as_ref().unwrap()[0].index, 1);
        assert!(matches!(
            &results[3],
            Err(Refusal::Retired { cutoff: 1, .. })
        ));
        assert_eq!(results[4].as_ref().unwrap()[0].index, 2);
        assert_eq!(retired, vec![(k.key().to_bytes(), 1)]);
        assert_eq!(store.retirements().unwrap(), retired);
        // A later batch: a duplicate of the early entry is answered, a new
        // entry refused.
        let map: HashMap<[u8; 32], u64> = retired.into_iter().collect();
        let mut jobs = [
            job_of(vec![early]),
            job_of(vec![prepared(b"late 3\n", &k, false)]),
        ];
        let (results, ..) = sequence(&*store, &signer, &settings, &range, &map, &mut jobs).unwrap();
        assert!(results[0].as_ref().unwrap()[0].duplicate);
        assert!(matches!(&results[1], Err(Refusal::Retired { .. })));
    }

    /// Proofs from stored tiles and interior records (through every cache
    /// path: random level-0 tiles, cached upper tiles, growing partial
    /// tiles) equal proofs from the whole tree in memory, across batches of
    /// odd sizes and restarts that reload the state from the store.
    #[test]
    fn stored_nodes_prove_like_the_whole_tree() {
        let mem = Arc::new(MemStore::default());
        let store: Arc<dyn Store> = mem.clone();
        let signer = Ed25519Signer::from_seed("test.example/log", &[9; 32]).unwrap();
        let settings = test_settings();
        let state = recover(&*store, &signer, &settings.origin).unwrap();
        let mut range = range_of(&state).unwrap();
        let reader = TreeReader::new(mem.clone());
        let leaves: Vec<Hash> = (0..70_000u64)
            .map(|i| vouch_spec::leaf_hash(format!("entry {i}\n").as_bytes()))
            .collect();
        let mut size = 0u64;
        let mut step = 1u64;
        let mut restarts = 0;
        while size < leaves.len() as u64 {
            let n = step.min(leaves.len() as u64 - size);
            range = sequence(
                &*store,
                &signer,
                &settings,
                &range,
                &HashMap::new(),
                &mut [job(size..size + n)],
            )
            .unwrap()
            .2;
            size += n;
            step = (step * 7 + 3) % 9_000 + 1;
            if size.is_multiple_of(3) {
                range = range_of(&store.state().unwrap().unwrap()).unwrap();
                restarts += 1;
            }
            let tree = MemoryTree::from_leaves(leaves[..size as usize].iter().copied());
            let nodes = reader.nodes(size);
            for i in [0, size / 3, size / 2, size - 1, size.saturating_sub(300)] {
                let want = inclusion::prove(i, size, &tree).unwrap();
                assert_eq!(
                    inclusion::prove(i, size, &nodes).unwrap(),
                    want,
                    "inclusion of {i} in {size}"
                );
                // Twice: the second reads the right edge's ranges from the
                // reader's memo, which holds ranges from smaller trees too.
                for _ in 0..2 {
                    assert_eq!(
                        crate::proofs::inclusion(&reader, i, size).unwrap(),
                        want,
                        "inclusion of {i} in {size} through the range memo"
                    );
                }
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
        assert!(restarts > 3, "the state was reloaded from the store");
        // Every full level-0 tile has its interior record, equal to the tree's nodes.
        let tree = MemoryTree::from_leaves(leaves.iter().copied());
        for t in 0..(leaves.len() as u64 / TILE_WIDTH) {
            let part = mem.tile_part(0, t, 0..0).unwrap().expect("tile");
            let rec = part.interior.expect("interior record");
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
            mem.entries(65_530, 10).unwrap().len(),
            10,
            "entries are stored one per index"
        );
        // A store without interior records (written before them) proves
        // the same from the tiles' hashes alone, through one reader.
        mem.forget_interiors();
        let size = leaves.len() as u64;
        let nodes = TreeReader::new(mem.clone());
        let nodes = nodes.nodes(size);
        for i in [0, 1, 255, 256, 4_097, 33_333, 65_535, size - 1] {
            assert_eq!(
                inclusion::prove(i, size, &nodes).unwrap(),
                inclusion::prove(i, size, &tree).unwrap(),
                "inclusion of {i} in {size} without interior records"
            );
        }
    }
}
