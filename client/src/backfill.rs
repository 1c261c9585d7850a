//! Backfill: log an existing binary cache's signatures as they are. For each
//! store path in a list, fetch its narinfo, turn every `Sig:` line by a
//! given key into an attestation (verified first), and submit in batches:
//! resumable from a state file, rate-limited, with progress on stderr.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use vouch_spec::attestation::Attestation;
use vouch_spec::nix::{NarInfo, NixPublicKey};

/// Backfill settings.
pub struct Settings<'a> {
    /// The binary cache URL.
    pub cache: &'a str,
    /// The log URL.
    pub log: &'a str,
    /// Keys whose `Sig:` lines to log.
    pub keys: &'a [NixPublicKey],
    /// Narinfo fetches per second (0: unlimited).
    pub rate: f64,
    /// Attestations per submission.
    pub batch: usize,
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// List lines processed in this run.
    pub paths: u64,
    /// Attestations submitted.
    pub attestations: u64,
    /// Paths the cache does not have.
    pub missing: u64,
    /// `Sig:` lines by a given key that did not verify (not submitted).
    pub bad_signatures: u64,
}

/// Why a backfill stopped.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    /// Reading the list or the state file failed.
    #[error("{path}: {err}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        err: std::io::Error,
    },
    /// A list line is not a store path or hash part.
    #[error("{list}, line {line}: {text:?} is not a store path or hash part")]
    BadLine {
        /// The list file.
        list: String,
        /// 1-based line.
        line: usize,
        /// The text.
        text: String,
    },
    /// The log refused a batch for good.
    #[error("log {log} refused a batch ({code}): {reason}")]
    Refused {
        /// The log.
        log: String,
        /// Status.
        code: u16,
        /// Its reason.
        reason: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackfillError + '_ {
    move |err| BackfillError::Io {
        path: path.display().to_string(),
        err,
    }
}

/// Runs the backfill over `list`, resuming after the line count in `state`.
pub fn run(s: &Settings, list: &Path, state: &Path) -> Result<Report, BackfillError> {
    let text = std::fs::read_to_string(list).map_err(io(list))?;
    let lines: Vec<&str> = text.lines().collect();
    let done: usize = std::fs::read_to_string(state)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build();
    let tty = std::io::stderr().is_terminal();
    let start = Instant::now();
    let mut report = Report::default();
    let mut pending: Vec<Attestation> = Vec::new();
    let mut last_progress = Instant::now();
    let mut i = done;
    while i < lines.len() {
        let line = lines[i].trim();
        i += 1;
        if !(line.is_empty() || line.starts_with('#')) {
            let hash: String = line
                .rsplit('/')
                .next()
                .unwrap_or(line)
                .chars()
                .take(32)
                .collect();
            if !vouch_spec::nix::store_path::valid_hash_part(&hash) {
                return Err(BackfillError::BadLine {
                    list: list.display().to_string(),
                    line: i,
                    text: line.to_string(),
                });
            }
            if s.rate > 0.0 {
                let due = start + Duration::from_secs_f64(report.paths as f64 / s.rate);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            let url = format!("{}/{hash}.narinfo", s.cache.trim_end_matches('/'));
            match agent.get(&url).call() {
                Ok(r) => {
                    let mut body = Vec::new();
                    let _ = r.into_reader().take(8 << 20).read_to_end(&mut body);
                    match NarInfo::parse(&body) {
                        Ok(n) => {
                            for k in s.keys {
                                if !n.sigs.iter().any(|g| g.name == k.name()) {
                                    continue;
                                }
                                match Attestation::from_narinfo(&n, k) {
                                    Ok(a) => pending.push(a),
                                    Err(e) => {
                                        tracing::warn!(%url, error = %e, "signature does not verify; not logged");
                                        report.bad_signatures += 1;
                                    }
                                }
                            }
                        }
                        Err(e) => tracing::warn!(%url, error = %e, "bad narinfo; skipped"),
                    }
                }
                Err(ureq::Error::Status(404, _)) => report.missing += 1,
                Err(e) => tracing::warn!(%url, error = %e, "narinfo fetch failed; skipped"),
            }
            report.paths += 1;
        }
        if pending.len() >= s.batch.max(1) || (i == lines.len() && !pending.is_empty()) {
            submit(&agent, s.log, &pending)?;
            report.attestations += pending.len() as u64;
            pending.clear();
            // Durable progress: only lines whose attestations are logged count.
            std::fs::write(state, format!("{i}\n")).map_err(io(state))?;
        } else if pending.is_empty() {
            std::fs::write(state, format!("{i}\n")).map_err(io(state))?;
        }
        if last_progress.elapsed() > Duration::from_millis(if tty { 200 } else { 5000 })
            || i == lines.len()
        {
            let rate = report.paths as f64 / start.elapsed().as_secs_f64().max(1e-3);
            let msg = format!(
                "{i}/{} paths, {} attestations, {} missing, {rate:.0} paths/s",
                lines.len(),
                report.attestations,
                report.missing
            );
            if tty {
                eprint!("\r{msg}   ");
            } else {
                eprintln!("{msg}");
            }
            let _ = std::io::stderr().flush();
            last_progress = Instant::now();
        }
    }
    if tty {
        eprintln!();
    }
    Ok(report)
}

fn submit(agent: &ureq::Agent, log: &str, atts: &[Attestation]) -> Result<(), BackfillError> {
    let body: Vec<u8> = atts.iter().flat_map(|a| a.encode()).collect();
    let url = format!("{}/vouch/v1/submit", log.trim_end_matches('/'));
    let mut backoff = 1u64;
    loop {
        match agent
            .post(&url)
            .set("Content-Type", "text/plain")
            .send_bytes(&body)
        {
            Ok(_) => return Ok(()),
            Err(ureq::Error::Status(code @ (429 | 503), r)) => {
                let wait = r
                    .header("Retry-After")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(backoff);
                tracing::info!(code, wait, "log busy; waiting");
                std::thread::sleep(Duration::from_secs(wait));
            }
            Err(ureq::Error::Status(code, r)) => {
                return Err(BackfillError::Refused {
                    log: log.to_string(),
                    code,
                    reason: r.into_string().unwrap_or_default().trim().to_string(),
                })
            }
            Err(e) => {
                tracing::warn!(error = %e, wait = backoff, "log unreachable; retrying");
                std::thread::sleep(Duration::from_secs(backoff));
            }
        }
        backoff = (backoff * 2).min(60);
    }
}
