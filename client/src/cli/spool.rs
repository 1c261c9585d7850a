//! The build-hook spool: attestations made right after a build are written
//! to a directory (atomically, one file each) so the build never waits for
//! or fails because of the network; `vouch sender` delivers them with
//! retries and backoff.

use std::path::{Path, PathBuf};
use std::time::Duration;

use vouch::http::HttpError;
use vouch::log_client::{FetchError, LogClient};
use vouch_spec::attestation::Attestation;

/// Writes an attestation into the spool, atomically and durably.
pub fn put(spool: &Path, a: &Attestation) -> std::io::Result<PathBuf> {
    let name = format!(
        "{}-{}.attestation",
        a.path.hash_part(),
        a.key.name().replace('/', "_")
    );
    let dest = spool.join(name);
    vouch::atomic::write(&dest, &a.encode())?;
    Ok(dest)
}

/// Spooled attestation files, oldest name first.
pub fn pending(spool: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(spool) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "attestation"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    v.sort();
    Ok(v)
}

/// What one delivery attempt achieved.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Files the log accepted (removed from the spool).
    pub sent: usize,
    /// Files the log refused for good (moved to `rejected/`).
    pub rejected: usize,
    /// Seconds to wait before retrying, if the log asked or was unreachable.
    pub retry_after: Option<u64>,
}

enum Outcome {
    Accepted,
    /// The log refused for good: status, reason, and which attestation if it said.
    Refused(u16, String, Option<usize>),
    /// Try again after this many seconds.
    Retry(u64),
}

fn send(log: &LogClient, files: &[PathBuf]) -> std::io::Result<Outcome> {
    let mut body = Vec::new();
    for f in files {
        body.extend(std::fs::read(f)?);
    }
    Ok(match log.submit(&body, false) {
        Ok(_) => Outcome::Accepted,
        Err(FetchError::Http(HttpError::Status {
            status: code @ (400 | 403 | 413),
            reason,
            refused,
            ..
        })) => {
            // The log's `Vouch-Refused` header names the culprit (§5.1).
            let bad = refused.map(|r| r.position).filter(|i| *i < files.len());
            Outcome::Refused(code, reason, bad)
        }
        Err(e) => {
            let retry = match &e {
                FetchError::Http(h) => h.retry_after().unwrap_or(5),
                FetchError::Invalid { .. } => 5,
            };
            tracing::info!(error = %e, retry, "log busy or unreachable; will retry");
            Outcome::Retry(retry)
        }
    })
}

fn reject(spool: &Path, f: &Path, code: u16, reason: &str) -> std::io::Result<()> {
    let rejected = spool.join("rejected");
    std::fs::create_dir_all(&rejected)?;
    let name = f.file_name().unwrap_or_default();
    std::fs::rename(f, rejected.join(name))?;
    vouch::atomic::write(
        &rejected.join(name).with_extension("reason"),
        format!("HTTP {code}: {reason}").as_bytes(),
    )?;
    tracing::warn!(file = %f.display(), code, reason = %reason.trim(), "log rejected attestation; moved to rejected/");
    Ok(())
}

/// Sends up to `batch` spooled files in one request. Accepted files are
/// removed; files the log refuses for good move to `rejected/` with the reason.
pub fn deliver(log: &LogClient, spool: &Path, batch: usize) -> std::io::Result<Delivery> {
    let files: Vec<PathBuf> = pending(spool)?.into_iter().take(batch.max(1)).collect();
    let mut d = Delivery::default();
    if files.is_empty() {
        return Ok(d);
    }
    match send(log, &files)? {
        Outcome::Accepted => {
            for f in &files {
                std::fs::remove_file(f)?;
            }
            d.sent = files.len();
        }
        Outcome::Refused(code, reason, Some(i)) => {
            reject(spool, &files[i], code, &reason)?;
            d.rejected = 1;
        }
        Outcome::Refused(code, reason, None) if files.len() == 1 => {
            reject(spool, &files[0], code, &reason)?;
            d.rejected = 1;
        }
        Outcome::Refused(..) => {
            // The log did not say which: find out one file at a time.
            for f in &files {
                match send(log, std::slice::from_ref(f))? {
                    Outcome::Accepted => {
                        std::fs::remove_file(f)?;
                        d.sent += 1;
                    }
                    Outcome::Refused(code, reason, _) => {
                        reject(spool, f, code, &reason)?;
                        d.rejected += 1;
                    }
                    Outcome::Retry(s) => {
                        d.retry_after = Some(s);
                        break;
                    }
                }
            }
        }
        Outcome::Retry(s) => d.retry_after = Some(s),
    }
    Ok(d)
}

/// Delivers until the spool is empty (or, with `once`, one pass), backing
/// off exponentially (up to a minute) while the log is busy or unreachable.
pub fn run(log: &LogClient, spool: &Path, batch: usize, once: bool) -> std::io::Result<usize> {
    let mut backoff = 1u64;
    loop {
        let d = deliver(log, spool, batch)?;
        if d.sent > 0 || d.rejected > 0 {
            tracing::info!(sent = d.sent, rejected = d.rejected, "delivered");
            backoff = 1;
        }
        let left = pending(spool)?.len();
        if once && (d.retry_after.is_some() || left == 0) {
            return Ok(left);
        }
        match d.retry_after {
            Some(s) => {
                std::thread::sleep(Duration::from_secs(s.max(backoff)));
                backoff = (backoff * 2).min(60);
            }
            None if left == 0 => std::thread::sleep(Duration::from_secs(2)),
            None => {}
        }
    }
}
