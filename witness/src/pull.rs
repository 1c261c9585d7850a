//! Pull mode: the witness fetches a log's checkpoint itself, builds the
//! consistency proof from the log's tiles (any C2SP tlog-tiles log), and
//! cosigns through the same checks as a pushed `add-checkpoint`. The
//! "does it extend what I cosigned" judgment is the shared checkpoint
//! tracker's, over the witness's own state.

use std::time::Duration;

use vouch::log_client::LogClient;
use vouch::tracker::{CheckpointStore, Fork, Relation, Swapped, Tracker, TrackerError};
use vouch_spec::checkpoint::{open_checkpoint, Checkpoint};
use vouch_spec::hash::Hash;
use vouch_spec::note::{Note, NoteVerifier};
use vouch_spec::witness::{AddCheckpoint, Rejection};

use crate::{Witness, WitnessError};

/// The witness's cosigned checkpoints as a tracker store: a swap is an
/// `add-checkpoint`, whose checks (and durable write) are the witness's.
/// A witness records no fork flag: it refuses each inconsistent request
/// and keeps cosigning the history it saw.
struct Cosigned<'a>(&'a Witness);

impl CheckpointStore for Cosigned<'_> {
    type Error = WitnessError;

    fn kept(&self, origin: &str) -> Result<Option<Vec<u8>>, WitnessError> {
        Ok(self.0.cosigned(origin))
    }

    fn compare_and_swap(
        &self,
        _origin: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        proof: &[Hash],
    ) -> Result<Swapped, WitnessError> {
        let old_size = expected
            .and_then(|b| Note::parse(b).ok())
            .and_then(|n| Checkpoint::parse(&n.text).ok())
            .map_or(0, |c| c.size);
        let req = AddCheckpoint {
            old_size,
            proof: proof.to_vec(),
            checkpoint: new.to_vec(),
        };
        match self.0.add_checkpoint(&req, crate::now()) {
            Ok(_) => Ok(Swapped::Done),
            Err(WitnessError::Rejected(Rejection::Conflict { .. })) => Ok(Swapped::Moved),
            Err(e) => Err(e),
        }
    }

    fn fork(&self, _origin: &str) -> Result<Option<String>, WitnessError> {
        Ok(None)
    }

    fn record_fork(&self, fork: &Fork, source: &str) -> Result<String, WitnessError> {
        tracing::warn!(
            origin = %fork.origin,
            error = %fork.why,
            checkpoint = %String::from_utf8_lossy(&fork.new),
            %source,
            "possible log misbehaviour: not cosigned"
        );
        Ok("the witness's log".into())
    }
}

/// Why a poll did not cosign.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// The checkpoint could not be fetched.
    #[error(transparent)]
    Fetch(#[from] vouch::log_client::FetchError),
    /// The log served something that is not its signed checkpoint.
    #[error("{url}: {msg}")]
    Checkpoint {
        /// Where.
        url: String,
        /// What was wrong.
        msg: String,
    },
    /// The tracker refused it (a fork, or the witness's own failure).
    #[error(transparent)]
    Tracker(#[from] TrackerError<WitnessError>),
}

/// One poll of one log: returns the size cosigned afterwards.
pub fn poll_once(w: &Witness, log: &LogClient, origin: &str) -> Result<u64, PollError> {
    let url = log.url().checkpoint();
    let bytes = log.checkpoint()?;
    let entry = w
        .logs()
        .find(|l| l.origin == origin)
        .ok_or_else(|| PollError::Checkpoint {
            url: url.clone(),
            msg: format!("{origin} is not a configured log"),
        })?;
    let keys: Vec<&dyn NoteVerifier> = entry.keys.iter().map(|k| k as &dyn NoteVerifier).collect();
    let cp = open_checkpoint(&bytes, &keys)
        .map_err(|e| PollError::Checkpoint {
            url: url.clone(),
            msg: e.to_string(),
        })?
        .checkpoint;
    if cp.origin != origin {
        return Err(PollError::Checkpoint {
            url,
            msg: format!("serves origin {:?}, not {origin:?}", cp.origin),
        });
    }
    let tracker = Tracker::new(Cosigned(w));
    match tracker.observe(origin, &bytes, &cp, log, log.url().base())? {
        // An older checkpoint is not news; the log may be behind a cache.
        (Relation::Behind | Relation::Same, _) | (_, Swapped::Moved) => {}
        (Relation::Extends, Swapped::Done) => {}
    }
    Ok(w.size(origin).unwrap_or(0))
}

/// Polls every log that has a URL, forever.
pub fn run(w: std::sync::Arc<Witness>, http: vouch::http::HttpClient, interval: Duration) {
    let logs: Vec<(String, LogClient)> = w
        .logs()
        .filter_map(|l| {
            l.url
                .clone()
                .map(|u| (l.origin.clone(), LogClient::new(http.clone(), &u)))
        })
        .collect();
    if logs.is_empty() {
        return;
    }
    loop {
        for (origin, log) in &logs {
            match poll_once(&w, log, origin) {
                Ok(size) => tracing::debug!(%origin, size, "polled"),
                Err(e) => tracing::warn!(%origin, error = %e, "poll failed"),
            }
        }
        std::thread::sleep(interval);
    }
}
