//! Backfill: log an existing binary cache's signatures as they are. For each
//! store path in a list, fetch its narinfo (over HTTPS, HTTP or from a
//! `file://` cache or a directory holding a copy of one), turn every `Sig:`
//! line by a given key into an attestation, and submit in batches.
//!
//! At a real cache's scale (hundreds of millions of paths) it is a
//! pipeline: `jobs` fetchers (keep-alive connections, at most `rate` per
//! second over all of them) fill one chunk while the previous chunk's
//! batches are submitted on `connections` connections at once. Signatures
//! are not checked here: the log checks every one anyway (in batches, far
//! faster than one by one), and a batch it refuses with 403 names the bad
//! attestation, which is dropped and counted before the rest is resent.
//!
//! Contract: progress (the number of list lines done) is written only for
//! lines whose attestations the log has acknowledged (or refused for good:
//! a bad signature, a retired key), or that the cache answered 404 for
//! ("missing"). Any other failure to fetch a narinfo is retried with
//! backoff; if it persists, the run stops there, records nothing from that
//! line on, and reports how many paths are left, so a rerun retries them.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use vouch::http::{HttpClient, HttpError};
use vouch::log_client::{FetchError, LogClient};
use vouch_spec::attestation::Attestation;
use vouch_spec::nix::{NarInfo, NixPublicKey};
use vouch_spec::refused::Why;

use super::progress::Progress;

/// Backfill settings.
pub struct Settings<'a> {
    /// The binary cache URL (`https://`, `http://` or `file://`).
    pub cache: &'a str,
    /// The log.
    pub log: &'a LogClient,
    /// The HTTP client for the cache.
    pub http: &'a HttpClient,
    /// Keys whose `Sig:` lines to log.
    pub keys: &'a [NixPublicKey],
    /// Narinfo fetches per second over all workers (0: unlimited).
    pub rate: f64,
    /// Attestations per submission.
    pub batch: usize,
    /// Narinfo fetches in flight.
    pub jobs: usize,
    /// Submissions in flight.
    pub connections: usize,
    /// Attempts per narinfo before the run stops (at least 1).
    pub attempts: u32,
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// List lines done in this run (paths, not comments).
    pub paths: u64,
    /// Attestations submitted.
    pub attestations: u64,
    /// Paths the cache does not have.
    pub missing: u64,
    /// `Sig:` lines by a given key that the log refused as not verifying.
    pub bad_signatures: u64,
    /// Attestations the log refused because their key is retired (§3.6).
    pub retired: u64,
    /// Paths left undone because a fetch kept failing (0 when complete).
    pub left: u64,
    /// The failure that stopped the run, if any.
    pub stopped_by: Option<String>,
}

/// Why a backfill could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    /// Reading the list or writing the progress file failed.
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
    #[error("the log refused a batch: {0}")]
    Refused(FetchError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackfillError + '_ {
    move |err| BackfillError::Io {
        path: path.display().to_string(),
        err,
    }
}

/// What fetching one line gave.
enum Fetched {
    /// A comment or blank line.
    Skip,
    /// The cache has no such narinfo.
    Missing,
    /// The narinfo's attestations (unverified: the log checks them).
    Found(Vec<Attestation>),
    /// The fetch kept failing.
    Failed(HttpError),
}

/// Spaces requests `1/rate` seconds apart across threads.
struct Pace {
    interval: Option<Duration>,
    next: Mutex<Instant>,
}

impl Pace {
    fn new(rate: f64) -> Pace {
        Pace {
            interval: (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate)),
            next: Mutex::new(Instant::now()),
        }
    }

    fn wait(&self) {
        let Some(step) = self.interval else { return };
        let slot = match self.next.lock() {
            Ok(mut n) => {
                let slot = (*n).max(Instant::now());
                *n = slot + step;
                slot
            }
            Err(_) => return,
        };
        if let Some(d) = slot.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    }
}

/// The hash part a list line names, or an error for a malformed line.
fn hash_part(line: &str) -> Option<String> {
    let hash: String = line
        .rsplit('/')
        .next()
        .unwrap_or(line)
        .chars()
        .take(32)
        .collect();
    vouch_spec::nix::store_path::valid_hash_part(&hash).then_some(hash)
}

fn fetch_one(s: &Settings, pace: &Pace, hash: &str) -> Fetched {
    let url = format!("{}/{hash}.narinfo", s.cache.trim_end_matches('/'));
    let mut delay = Duration::from_millis(500);
    let mut attempt = 1;
    let body = loop {
        pace.wait();
        match s.http.get(&url, 8 << 20) {
            Ok(b) => break b,
            Err(e) if e.is_not_found() => return Fetched::Missing,
            Err(e) if e.is_transient() && attempt < s.attempts.max(1) => {
                let wait = e
                    .retry_after()
                    .map(Duration::from_secs)
                    .unwrap_or(delay)
                    .min(Duration::from_secs(60));
                tracing::info!(error = %e, attempt, wait_secs = wait.as_secs_f64(), "narinfo fetch failed; retrying");
                std::thread::sleep(wait);
                delay = (delay * 2).min(Duration::from_secs(30));
                attempt += 1;
            }
            Err(e) => return Fetched::Failed(e),
        }
    };
    let n = match NarInfo::parse(&body) {
        Ok(n) => n,
        Err(e) => {
            // A narinfo the cache serves but that does not parse cannot be
            // logged by any rerun either: it counts as done, loudly.
            tracing::warn!(%url, error = %e, "not a valid narinfo; skipped");
            return Fetched::Found(Vec::new());
        }
    };
    // Unverified: the log verifies (and names any bad one).
    let atts = s
        .keys
        .iter()
        .filter_map(|k| Attestation::from_narinfo_unverified(&n, k).ok())
        .collect();
    Fetched::Found(atts)
}

/// Fetches lines `[from, to)` with `s.jobs` workers, in order.
fn fetch_chunk(s: &Settings, pace: &Pace, hashes: &[Option<String>]) -> Vec<Fetched> {
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Option<Fetched>>> =
        Mutex::new((0..hashes.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..s.jobs.clamp(1, 256) {
            scope.spawn(|| loop {
                let i = match next.lock() {
                    Ok(mut n) if *n < hashes.len() => {
                        *n += 1;
                        *n - 1
                    }
                    _ => return,
                };
                let f = match &hashes[i] {
                    None => Fetched::Skip,
                    Some(h) => fetch_one(s, pace, h),
                };
                if let Ok(mut r) = results.lock() {
                    r[i] = Some(f);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .map(|f| f.unwrap_or(Fetched::Skip))
        .collect()
}

/// What submitting a chunk's batches refused for good.
#[derive(Default)]
struct Refusals {
    bad_signatures: u64,
    retired: u64,
}

/// Submits one batch, waiting out 429/503 and unreachable logs, dropping
/// attestations the log refuses for good (a bad signature, a retired key).
fn submit_batch(s: &Settings, batch: &[Attestation]) -> Result<Refusals, BackfillError> {
    let mut batch: Vec<&Attestation> = batch.iter().collect();
    let mut refused = Refusals::default();
    let mut backoff = 1u64;
    while !batch.is_empty() {
        let body: Vec<u8> = batch.iter().flat_map(|a| a.encode()).collect();
        match s.log.submit(&body, false) {
            Ok(_) => break,
            Err(e) if e.is_transient() => {
                let wait = match &e {
                    FetchError::Http(h) => h.retry_after().unwrap_or(backoff),
                    _ => backoff,
                };
                tracing::info!(error = %e, wait, "log busy or unreachable; waiting");
                std::thread::sleep(Duration::from_secs(wait));
                backoff = (backoff * 2).min(60);
            }
            // The log names the attestation it refused for good in its
            // `Vouch-Refused` header (§5.1): drop it, send the rest again.
            Err(FetchError::Http(h))
                if h.refused().is_some_and(|r| {
                    r.position < batch.len() && matches!(r.why, Why::Signature | Why::Retired)
                }) =>
            {
                let Some(r) = h.refused() else { continue };
                tracing::warn!(path = %batch[r.position].path, reason = %h, "refused by the log; not logged");
                if r.why == Why::Retired {
                    refused.retired += 1;
                } else {
                    refused.bad_signatures += 1;
                }
                batch.remove(r.position);
            }
            Err(e) => return Err(BackfillError::Refused(e)),
        }
    }
    Ok(refused)
}

/// Submits `atts` in batches on `s.connections` connections at once.
fn submit(s: &Settings, atts: &[Attestation]) -> Result<Refusals, BackfillError> {
    let batches: Vec<&[Attestation]> = atts.chunks(s.batch.max(1)).collect();
    let next = Mutex::new(0usize);
    let total = Mutex::new(Ok(Refusals::default()));
    std::thread::scope(|scope| {
        for _ in 0..s.connections.clamp(1, 64).min(batches.len().max(1)) {
            scope.spawn(|| loop {
                let i = match next.lock() {
                    Ok(mut n) if *n < batches.len() => {
                        *n += 1;
                        *n - 1
                    }
                    _ => return,
                };
                let r = submit_batch(s, batches[i]);
                if let Ok(mut t) = total.lock() {
                    match (&mut *t, r) {
                        (Ok(t), Ok(r)) => {
                            t.bad_signatures += r.bad_signatures;
                            t.retired += r.retired;
                        }
                        (t @ Ok(_), Err(e)) => *t = Err(e),
                        (Err(_), _) => {}
                    }
                }
            });
        }
    });
    total.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// One chunk of the list, fetched: where it ends, what to submit, what was
/// counted, and the failure that cut it short.
struct Chunk {
    upto: usize,
    end: usize,
    atts: Vec<Attestation>,
    paths: u64,
    missing: u64,
    stopped_by: Option<String>,
}

/// Runs the backfill over `list`, resuming after the line count in `state`.
pub fn run(s: &Settings, list: &Path, state: &Path) -> Result<Report, BackfillError> {
    let text = std::fs::read_to_string(list).map_err(io(list))?;
    let lines: Vec<&str> = text.lines().collect();
    let done: usize = std::fs::read_to_string(state)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
        .min(lines.len());
    let pace = Pace::new(s.rate);
    let progress = Progress::new(lines.len() as u64, "paths");
    progress.set(done as u64);
    let chunk_len = (s.jobs.max(1) * 64).max(s.batch.max(1) * s.connections.max(1));
    // Fetching (this thread) runs one chunk ahead of submitting (the
    // scoped thread), which alone writes progress, in order.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk>(1);
    let submitted = std::thread::scope(|scope| {
        let submitter = scope.spawn(|| -> Result<Report, BackfillError> {
            let mut report = Report::default();
            for c in rx {
                let refused = submit(s, &c.atts)?;
                report.paths += c.paths;
                report.missing += c.missing;
                report.attestations +=
                    c.atts.len() as u64 - refused.bad_signatures - refused.retired;
                report.bad_signatures += refused.bad_signatures;
                report.retired += refused.retired;
                vouch::atomic::write(state, format!("{}\n", c.upto).as_bytes())
                    .map_err(io(state))?;
                progress.set(c.upto as u64);
                progress.message(&format!(
                    "{} attestations, {} missing",
                    report.attestations, report.missing
                ));
                if c.upto < c.end {
                    report.stopped_by = c.stopped_by;
                    report.left = lines[c.upto..]
                        .iter()
                        .filter(|l| {
                            let l = l.trim();
                            !l.is_empty() && !l.starts_with('#')
                        })
                        .count() as u64;
                    break;
                }
            }
            Ok(report)
        });
        let mut i = done;
        let fetched: Result<(), BackfillError> = (|| {
            while i < lines.len() {
                let end = (i + chunk_len).min(lines.len());
                let mut hashes = Vec::with_capacity(end - i);
                for (k, line) in lines[i..end].iter().enumerate() {
                    let line = line.trim();
                    if line.is_empty() || line.starts_with('#') {
                        hashes.push(None);
                        continue;
                    }
                    hashes.push(Some(hash_part(line).ok_or_else(|| {
                        BackfillError::BadLine {
                            list: list.display().to_string(),
                            line: i + k + 1,
                            text: line.to_string(),
                        }
                    })?));
                }
                let mut c = Chunk {
                    upto: end,
                    end,
                    atts: Vec::new(),
                    paths: 0,
                    missing: 0,
                    stopped_by: None,
                };
                for (k, f) in fetch_chunk(s, &pace, &hashes).into_iter().enumerate() {
                    match f {
                        Fetched::Skip => continue,
                        Fetched::Missing => c.missing += 1,
                        Fetched::Found(a) => c.atts.extend(a),
                        Fetched::Failed(e) => {
                            c.upto = i + k;
                            c.stopped_by = Some(e.to_string());
                            break;
                        }
                    }
                    c.paths += 1;
                }
                let stop = c.upto < c.end;
                // A closed channel: the submitter stopped with an error.
                if tx.send(c).is_err() || stop {
                    break;
                }
                i = end;
            }
            Ok(())
        })();
        drop(tx);
        let report = submitter.join().unwrap_or_else(|_| {
            Err(BackfillError::Io {
                path: state.display().to_string(),
                err: std::io::Error::other("the submitting thread panicked"),
            })
        });
        fetched.and(report)
    });
    progress.finish();
    submitted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_lines_name_hash_parts() {
        assert_eq!(
            hash_part("/nix/store/71z0irc81f1wmhlqhcxmb0h9y78nfkns-vouch-hello").as_deref(),
            Some("71z0irc81f1wmhlqhcxmb0h9y78nfkns")
        );
        assert_eq!(
            hash_part("71z0irc81f1wmhlqhcxmb0h9y78nfkns").as_deref(),
            Some("71z0irc81f1wmhlqhcxmb0h9y78nfkns")
        );
        assert_eq!(hash_part("hello"), None);
    }

    #[test]
    fn pace_spaces_requests_over_threads() {
        let p = Pace::new(100.0);
        let t = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..5 {
                        p.wait();
                    }
                });
            }
        });
        // 20 slots 10 ms apart: the last is at least 190 ms after the first.
        assert!(
            t.elapsed() >= Duration::from_millis(180),
            "{:?}",
            t.elapsed()
        );
    }
}
