//! Pull mode: the witness fetches a log's checkpoint itself, builds the
//! consistency proof from the log's tiles (any C2SP tlog-tiles log), and
//! cosigns through the same checks as a pushed `add-checkpoint`.

use std::time::Duration;

use vouch_spec::checkpoint::Checkpoint;
use vouch_spec::note::Note;
use vouch_spec::witness::AddCheckpoint;

use vouch::fetch::{consistency_proof, get};

use crate::Witness;

/// One poll of one log: returns the size cosigned afterwards.
pub fn poll_once(w: &Witness, agent: &ureq::Agent, origin: &str, url: &str) -> anyhow::Result<u64> {
    let cp_bytes = get(
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
    let proof = consistency_proof(agent, url, old, cp.size)?;
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
