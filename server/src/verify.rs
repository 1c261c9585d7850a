//! The verify step of a submission (`spec/PROTOCOL.md` §5.2): split the
//! body into attestations, parse each (400 naming it), then check every
//! builder signature at once (403 naming the first bad one), and prepare
//! the entries for the sequencer. Admission (allow-list, rates) runs
//! between parsing and verifying ([`crate::admission`]).
//!
//! Signatures are checked in one batch, as strictly as clients check them
//! one by one (`vouch_spec::batch`, which names the one exception: a
//! builder's own crafted signature), so the log accepts what clients
//! accept.

use vouch_spec::attestation::{LoggedEntry, References, Submitted, HEADER};
use vouch_spec::batch::{first_invalid, Item};
use vouch_spec::refused::Why;

use crate::error::ApiError;
use crate::sequencer::{Indexed, Prepared};
use vouch_spec::transition::Transition;

/// Runs the verify step of submissions on the blocking pool, at most one
/// per permit at a time (one per core in the log). Each takes milliseconds
/// of CPU; handed to the blocking pool all at once, 32 submissions ran as
/// 32 threads time-slicing two cores, each evicting the others' working
/// set and faulting in memory of its own (BENCHMARKS.md, issue 18, twelfth
/// session). The others wait as async tasks, holding no thread.
#[derive(Clone, Debug)]
pub struct Verifiers(std::sync::Arc<tokio::sync::Semaphore>);

impl Verifiers {
    /// At most `permits` (at least one) at a time.
    pub fn new(permits: usize) -> Verifiers {
        Verifiers(std::sync::Arc::new(tokio::sync::Semaphore::new(
            permits.max(1),
        )))
    }

    /// One at a time per core this process may use.
    pub fn per_core() -> Verifiers {
        Verifiers::new(std::thread::available_parallelism().map_or(1, usize::from))
    }

    /// `work`'s result, once a permit was free and `work` ran on the
    /// blocking pool holding it.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        // Nothing closes the semaphore: failing to acquire is the log's
        // own fault.
        let permit = self
            .0
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| ApiError::Internal(format!("the verification queue failed: {e}")))?;
        Ok(tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await?)
    }
}

/// Splits a submission body into attestations at each header line: the
/// body starts with one, and every other line that is exactly the header
/// starts the next attestation.
fn split_attestations(body: &[u8]) -> Result<Vec<&[u8]>, ApiError> {
    let header = format!("{HEADER}\n");
    if !body.starts_with(header.as_bytes()) {
        return Err(ApiError::BadRequest(format!(
            "body must start with the line {HEADER:?}"
        )));
    }
    // A header at a line start is a newline followed by the header line:
    // one SIMD substring search over the body. Looking at every byte for
    // a newline and then comparing cost 3.6 % of the log's CPU under
    // ingest at 1e7 (BENCHMARKS.md, issue 18, twelfth session).
    // Matches overlap when headers follow each other (the newline ending
    // one is the newline before the next): search again from the byte
    // after each match, not after its end.
    let needle = format!("\n{header}");
    let finder = memchr::memmem::Finder::new(needle.as_bytes());
    let (mut starts, mut at) = (vec![0usize], 0);
    while let Some(i) = finder.find(&body[at..]) {
        at += i + 1;
        starts.push(at);
    }
    starts.push(body.len());
    Ok(starts.windows(2).map(|w| &body[w[0]..w[1]]).collect())
}

/// Parses every attestation of a body (at most `max` of them, 413 beyond).
pub fn parse(body: &[u8], max: usize) -> Result<Vec<Submitted<'_>>, ApiError> {
    let parts = split_attestations(body)?;
    if parts.len() > max {
        return Err(ApiError::TooLarge(format!(
            "{} attestations exceed the limit of {max} per request",
            parts.len()
        )));
    }
    parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            Submitted::parse(part).map_err(|e| {
                ApiError::statement(i, Why::Malformed, format!("attestation {i}: {e}"))
            })
        })
        .collect()
}

/// Verifies every builder signature (403 naming the first bad one) and
/// turns the attestations into entries for the sequencer.
pub fn verify(subs: Vec<Submitted>) -> Result<Vec<Prepared>, ApiError> {
    let atts = || subs.iter().map(|s| &s.attestation);
    let fingerprints: Vec<String> = atts().map(|a| a.fingerprint()).collect();
    let items: Vec<Item> = atts()
        .zip(&fingerprints)
        .map(|(a, f)| Item {
            msg: f.as_bytes(),
            sig: a.sig,
            key: *a.key.key(),
        })
        .collect();
    if let Some(i) = first_invalid(&items) {
        return Err(ApiError::statement(
            i,
            Why::Signature,
            format!(
                "attestation {i} ({}): signature by builder key {} does not verify over the fingerprint",
                subs[i].attestation.path, subs[i].attestation.key
            ),
        ));
    }
    Ok(subs
        .into_iter()
        .map(|s| {
            let mut hash_part = [0u8; 32];
            hash_part.copy_from_slice(s.attestation.path.hash_part().as_bytes());
            let LoggedEntry {
                entry,
                bytes,
                digested,
            } = s.into_entry();
            // A digest-form entry's reference list, served by its digest.
            let references = match entry.references {
                References::Inline(_) => None,
                References::Digest(d) => Some((
                    d,
                    digested
                        .iter()
                        .map(|r| format!("{}\n", r.base()))
                        .collect::<String>()
                        .into_bytes(),
                )),
            };
            Prepared {
                leaf: vouch_spec::leaf_hash(&bytes),
                bytes,
                indexed: Indexed::Path(hash_part),
                references,
                signer: entry.key,
            }
        })
        .collect())
}

/// Parses and verifies one transition statement (§3.6, §5.7): 400 if it
/// does not decode canonically, 403 unless every key it names signed it.
pub fn transition(body: &[u8]) -> Result<Prepared, ApiError> {
    let t = Transition::decode(body)
        .map_err(|e| ApiError::statement(0, Why::Malformed, format!("transition: {e}")))?;
    t.verify()
        .map_err(|e| ApiError::statement(0, Why::Signature, format!("transition: {e}")))?;
    let mut keys = vec![t.old.key().to_bytes()];
    keys.extend(t.successor().map(|k| k.key().to_bytes()));
    let bytes = t.encode();
    Ok(Prepared {
        leaf: vouch_spec::leaf_hash(&bytes),
        bytes,
        indexed: Indexed::Transition(keys),
        references: None,
        signer: t.old,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verifiers_run_at_most_their_permits_at_once() {
        let v = Verifiers::new(2);
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (v, now, most) = (v.clone(), now.clone(), most.clone());
                tokio::spawn(async move {
                    v.run(move || {
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(n, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(30));
                        now.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn splits_concatenated_attestations() {
        let a = format!("{HEADER}\npath x\n");
        let body = format!("{a}{a}{a}");
        assert_eq!(split_attestations(body.as_bytes()).unwrap().len(), 3);
        assert!(split_attestations(b"garbage").is_err());
    }

    /// The old definition: a start at 0 and after every newline that the
    /// header line follows.
    fn split_slowly(body: &[u8]) -> Vec<&[u8]> {
        let header = format!("{HEADER}\n");
        let mut starts = vec![0usize];
        starts.extend(
            body.iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1)
                .filter(|&s| body[s..].starts_with(header.as_bytes())),
        );
        starts.push(body.len());
        starts.windows(2).map(|w| &body[w[0]..w[1]]).collect()
    }

    proptest::proptest! {
        /// Any sequence of header lines, other lines and fragments splits
        /// where the byte-by-byte definition splits it.
        #[test]
        fn split_matches_the_definition(parts in proptest::collection::vec(0u8..6, 0..40)) {
            let mut body = format!("{HEADER}\n").into_bytes();
            for p in parts {
                body.extend_from_slice(match p {
                    0 => format!("{HEADER}\n").into_bytes(),
                    1 => HEADER.as_bytes().to_vec(),
                    2 => b"\n".to_vec(),
                    3 => b"path x\n".to_vec(),
                    4 => format!("x{HEADER}\n").into_bytes(),
                    _ => b"\n\n".to_vec(),
                }.as_slice());
            }
            proptest::prop_assert_eq!(split_attestations(&body).unwrap(), split_slowly(&body));
        }
    }
}
