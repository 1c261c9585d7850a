//! The checkpoint tracker: the IO half of "is this new checkpoint
//! consistent with the one I kept", shared by the client's verifier, the
//! monitor and the witness's pull mode (the pure half is
//! `vouch_spec::tracker`).
//!
//! A [`CheckpointStore`] keeps one signed checkpoint per origin and replaces
//! it only by compare-and-swap, so two processes (or threads) following one
//! log can never move it backwards or lose each other's progress. A
//! [`ProofSource`] supplies consistency proofs (from the log's tiles). A
//! fork comes back as data ([`Fork`]: both checkpoints and the proof) and is
//! recorded by the store, which then refuses the log until an operator
//! clears it.
//!
//! Contract: every checkpoint handed to the tracker has already been
//! verified as signed by the log; the tracker judges history, not keys.

use vouch_spec::accept::{Keep, Kept};
use vouch_spec::checkpoint::Checkpoint;
use vouch_spec::hash::Hash;
use vouch_spec::note::Note;
pub use vouch_spec::tracker::{Fork, Relation};

use crate::log_client::FetchError;

/// What a compare-and-swap did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Swapped {
    /// The new checkpoint is stored.
    Done,
    /// The kept one had changed meanwhile (another process moved it); the
    /// store is untouched.
    Moved,
}

/// Durable per-origin state: the kept checkpoint and the fork record.
pub trait CheckpointStore {
    /// The store's own failures.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The kept checkpoint (signed note bytes), if any.
    fn kept(&self, origin: &str) -> Result<Option<Vec<u8>>, Self::Error>;

    /// Replaces the kept checkpoint with `new` if it is still `expected`,
    /// durably before returning [`Swapped::Done`]. `proof` is the
    /// consistency proof from `expected` to `new` (stores that re-check it,
    /// such as a witness, use it).
    fn compare_and_swap(
        &self,
        origin: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        proof: &[Hash],
    ) -> Result<Swapped, Self::Error>;

    /// The recorded fork evidence, if the log was caught forking.
    fn fork(&self, origin: &str) -> Result<Option<String>, Self::Error>;

    /// Records a fork (durably); returns where the evidence is.
    fn record_fork(&self, fork: &Fork, source: &str) -> Result<String, Self::Error>;
}

/// Consistency proofs between two sizes of one log.
pub trait ProofSource {
    /// The proof from `old` to `new` (`0 < old < new`).
    fn consistency(&self, old: u64, new: u64) -> Result<Vec<Hash>, FetchError>;
}

/// Why the tracker could not judge or persist.
#[derive(Debug, thiserror::Error)]
pub enum TrackerError<E: std::error::Error + 'static> {
    /// The log was caught forking before; `evidence` says where.
    #[error("log {origin} is refused: it was caught forking (evidence: {evidence})")]
    Refused {
        /// The origin.
        origin: String,
        /// The recorded evidence.
        evidence: String,
    },
    /// The shown checkpoint is inconsistent with the kept one.
    #[error("log {} forked: {}", .0.origin, .0.why)]
    Fork(Box<Fork>),
    /// A proof could not be fetched.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The kept checkpoint does not parse: the store is damaged.
    #[error("the kept checkpoint of {origin} is damaged: {msg}")]
    Corrupt {
        /// The origin.
        origin: String,
        /// What is wrong.
        msg: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(E),
}

/// The tracker over one store.
#[derive(Debug)]
pub struct Tracker<S> {
    store: S,
}

fn parse(origin: &str, bytes: &[u8]) -> Result<Checkpoint, String> {
    let note = Note::parse(bytes).map_err(|e| e.to_string())?;
    let cp = Checkpoint::parse(&note.text).map_err(|e| e.to_string())?;
    if cp.origin != origin {
        return Err(format!("it is for origin {:?}", cp.origin));
    }
    Ok(cp)
}

impl<S: CheckpointStore> Tracker<S> {
    /// A tracker over `store`.
    pub fn new(store: S) -> Tracker<S> {
        Tracker { store }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// What the acceptance rule calls `S` and the fork flag.
    pub fn kept(&self, origin: &str) -> Result<Kept, TrackerError<S::Error>> {
        let forked = self
            .store
            .fork(origin)
            .map_err(TrackerError::Store)?
            .is_some();
        let checkpoint = match self.store.kept(origin).map_err(TrackerError::Store)? {
            None => None,
            Some(bytes) => {
                let cp = parse(origin, &bytes).map_err(|msg| TrackerError::Corrupt {
                    origin: origin.to_string(),
                    msg,
                })?;
                Some((bytes, cp))
            }
        };
        Ok(Kept { checkpoint, forked })
    }

    /// Fetches the consistency proof between the kept checkpoint and
    /// `shown` (empty when none is needed).
    pub fn proof(
        &self,
        kept: &Kept,
        shown: &Checkpoint,
        proofs: &dyn ProofSource,
    ) -> Result<Vec<Hash>, FetchError> {
        match kept
            .checkpoint
            .as_ref()
            .and_then(|(_, s)| vouch_spec::tracker::proof_needed(s, shown))
        {
            Some((old, new)) => proofs.consistency(old, new),
            None => Ok(Vec::new()),
        }
    }

    /// Persists what a decision says to keep. An advance that finds the
    /// kept checkpoint moved by someone else is dropped (they moved it at
    /// least as far, through the same checks); a fork is recorded and its
    /// evidence location returned.
    pub fn persist(
        &self,
        origin: &str,
        kept: &Kept,
        keep: &Keep,
        proof: &[Hash],
        source: &str,
    ) -> Result<Option<String>, TrackerError<S::Error>> {
        match keep {
            Keep::Nothing => Ok(None),
            Keep::Advance(new) => {
                let expected = kept.checkpoint.as_ref().map(|(b, _)| b.as_slice());
                self.store
                    .compare_and_swap(origin, expected, new, proof)
                    .map_err(TrackerError::Store)?;
                Ok(None)
            }
            Keep::Fork(fork) => {
                tracing::error!(%origin, why = %fork.why, "SECURITY: log fork detected");
                self.store
                    .record_fork(fork, source)
                    .map(Some)
                    .map_err(TrackerError::Store)
            }
        }
    }

    /// Judges `shown` (signed note `bytes`, already verified as the log's)
    /// against the kept checkpoint, fetching the proof it needs, without
    /// persisting anything: for parties that store their position with
    /// other state (the monitor). Returns the relation, the kept
    /// checkpoint and the proof.
    pub fn check(
        &self,
        origin: &str,
        bytes: &[u8],
        shown: &Checkpoint,
        proofs: &dyn ProofSource,
    ) -> Result<Checked, TrackerError<S::Error>> {
        let kept = self.kept(origin)?;
        if kept.forked {
            let evidence = self
                .store
                .fork(origin)
                .map_err(TrackerError::Store)?
                .unwrap_or_default();
            return Err(TrackerError::Refused {
                origin: origin.to_string(),
                evidence,
            });
        }
        let Some((kept_bytes, s)) = &kept.checkpoint else {
            return Ok(Checked {
                relation: Relation::Extends,
                kept,
                proof: Vec::new(),
            });
        };
        let proof = self.proof(&kept, shown, proofs)?;
        match vouch_spec::tracker::compare(s, shown, &proof) {
            Ok(relation) => Ok(Checked {
                relation,
                kept,
                proof,
            }),
            Err(why) => Err(TrackerError::Fork(Box::new(Fork {
                origin: origin.to_string(),
                old: kept_bytes.clone(),
                old_size: s.size,
                new: bytes.to_vec(),
                new_size: shown.size,
                proof,
                why,
            }))),
        }
    }

    /// [`Tracker::check`], then: an extension is stored (compare-and-swap),
    /// a fork recorded. For parties whose only state is the checkpoint (the
    /// witness's pull mode).
    pub fn observe(
        &self,
        origin: &str,
        bytes: &[u8],
        shown: &Checkpoint,
        proofs: &dyn ProofSource,
        source: &str,
    ) -> Result<(Relation, Swapped), TrackerError<S::Error>> {
        match self.check(origin, bytes, shown, proofs) {
            Ok(c) if c.relation == Relation::Extends => {
                let expected = c.kept.checkpoint.as_ref().map(|(b, _)| b.as_slice());
                let swapped = self
                    .store
                    .compare_and_swap(origin, expected, bytes, &c.proof)
                    .map_err(TrackerError::Store)?;
                Ok((c.relation, swapped))
            }
            Ok(c) => Ok((c.relation, Swapped::Done)),
            Err(TrackerError::Fork(f)) => {
                self.store
                    .record_fork(&f, source)
                    .map_err(TrackerError::Store)?;
                Err(TrackerError::Fork(f))
            }
            Err(e) => Err(e),
        }
    }
}

/// A judged checkpoint, not yet persisted.
#[derive(Clone, Debug)]
pub struct Checked {
    /// How it relates to the kept one (`Extends` when none is kept).
    pub relation: Relation,
    /// The kept state it was judged against.
    pub kept: Kept,
    /// The consistency proof used.
    pub proof: Vec<Hash>,
}

/// A [`CheckpointStore`] in memory, for parties that persist their
/// position together with other state (the monitor loads it from its own
/// store and saves it with its own commits) and for tests.
#[derive(Debug, Default)]
pub struct MemoryStore {
    kept: std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>,
    forks: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

/// [`MemoryStore`] never fails; its lock is only poisoned by a panic.
#[derive(Debug, thiserror::Error)]
#[error("checkpoint store lock poisoned by a panic")]
pub struct Poisoned;

impl MemoryStore {
    /// A store keeping `checkpoint` for `origin`.
    pub fn with(origin: &str, checkpoint: Vec<u8>) -> MemoryStore {
        let s = MemoryStore::default();
        if let Ok(mut k) = s.kept.lock() {
            k.insert(origin.to_string(), checkpoint);
        }
        s
    }
}

impl CheckpointStore for MemoryStore {
    type Error = Poisoned;

    fn kept(&self, origin: &str) -> Result<Option<Vec<u8>>, Poisoned> {
        Ok(self.kept.lock().map_err(|_| Poisoned)?.get(origin).cloned())
    }

    fn compare_and_swap(
        &self,
        origin: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        _proof: &[Hash],
    ) -> Result<Swapped, Poisoned> {
        let mut k = self.kept.lock().map_err(|_| Poisoned)?;
        if k.get(origin).map(Vec::as_slice) != expected {
            return Ok(Swapped::Moved);
        }
        k.insert(origin.to_string(), new.to_vec());
        Ok(Swapped::Done)
    }

    fn fork(&self, origin: &str) -> Result<Option<String>, Poisoned> {
        Ok(self
            .forks
            .lock()
            .map_err(|_| Poisoned)?
            .get(origin)
            .cloned())
    }

    fn record_fork(&self, fork: &Fork, source: &str) -> Result<String, Poisoned> {
        self.forks
            .lock()
            .map_err(|_| Poisoned)?
            .insert(fork.origin.clone(), fork.evidence(source));
        Ok("memory".into())
    }
}
