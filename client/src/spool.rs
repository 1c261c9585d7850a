//! The build-hook spool: attestations made right after a build are written
//! to a directory (atomically, one file each) so the build never waits for
//! or fails because of the network; `vouch sender` delivers them with
//! retries and backoff.

use std::path::{Path, PathBuf};
use std::time::Duration;

use vouch_spec::attestation::Attestation;

/// Writes an attestation into the spool (tmp file + rename).
pub fn put(spool: &Path, a: &Attestation) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(spool)?;
    let name = format!(
        "{}-{}.attestation",
        a.path.hash_part(),
        a.key.name().replace('/', "_")
    );
    let tmp = spool.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, a.encode())?;
    let dest = spool.join(name);
    std::fs::rename(&tmp, &dest)?;
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

fn send(agent: &ureq::Agent, url: &str, files: &[PathBuf]) -> std::io::Result<Outcome> {
    let mut body = Vec::new();
    for f in files {
        body.extend(std::fs::read(f)?);
    }
    Ok(
        match agent
            .post(url)
            .set("Content-Type", "text/plain")
            .send_bytes(&body)
        {
            Ok(_) => Outcome::Accepted,
            Err(ureq::Error::Status(code @ (400 | 403 | 413), r)) => {
                let reason = r.into_string().unwrap_or_default();
                // "attestation N: …" names the culprit.
                let bad = reason
                    .strip_prefix("attestation ")
                    .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|i| *i < files.len());
                Outcome::Refused(code, reason, bad)
            }
            Err(ureq::Error::Status(code, r)) => {
                let retry = r
                    .header("Retry-After")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(5);
                tracing::info!(code, retry, "log busy; will retry");
                Outcome::Retry(retry)
            }
            Err(e) => {
                tracing::info!(error = %e, "log unreachable; will retry");
                Outcome::Retry(5)
            }
        },
    )
}

fn reject(spool: &Path, f: &Path, code: u16, reason: &str) -> std::io::Result<()> {
    let rejected = spool.join("rejected");
    std::fs::create_dir_all(&rejected)?;
    let name = f.file_name().unwrap_or_default();
    std::fs::rename(f, rejected.join(name))?;
    std::fs::write(
        rejected.join(name).with_extension("reason"),
        format!("HTTP {code}: {reason}"),
    )?;
    tracing::warn!(file = %f.display(), code, reason = %reason.trim(), "log rejected attestation; moved to rejected/");
    Ok(())
}

/// Sends up to `batch` spooled files in one request. Accepted files are
/// removed; files the log refuses for good move to `rejected/` with the reason.
pub fn deliver(
    agent: &ureq::Agent,
    log: &str,
    spool: &Path,
    batch: usize,
) -> std::io::Result<Delivery> {
    let files: Vec<PathBuf> = pending(spool)?.into_iter().take(batch.max(1)).collect();
    let mut d = Delivery::default();
    if files.is_empty() {
        return Ok(d);
    }
    let url = format!("{}/vouch/v1/submit", log.trim_end_matches('/'));
    match send(agent, &url, &files)? {
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
                match send(agent, &url, std::slice::from_ref(f))? {
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
pub fn run(log: &str, spool: &Path, batch: usize, once: bool) -> std::io::Result<usize> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build();
    let mut backoff = 1u64;
    loop {
        let d = deliver(&agent, log, spool, batch)?;
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
