//! Read-side figures: lookups with inclusion proofs over HTTP, and offline
//! verification of tlog-proof bundles on one core.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use vouch_spec::attestation::Entry;
use vouch_spec::policy::{CheckpointCache, Policy};
use vouch_spec::tlog_proof::TlogProof;

use crate::gen;
use crate::sys::{self, Rng};

/// Lookup throughput and latency.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct LookupReport {
    /// Lookups (each with its entries' tlog-proofs) per second.
    pub per_sec: f64,
    /// Round trip, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile of the same.
    pub p99_ms: f64,
    /// Concurrent connections used.
    pub connections: usize,
    /// The log's major page faults during the run, where its process was
    /// known: nonzero means some lookups waited for the disk.
    #[serde(default)]
    pub log_major_faults: Option<u64>,
}

/// Whether a lookup answer (the log's JSON, `{"tree_size":…,"entries":
/// [{"index":…,"entry":"…","proof":"…"},…]}`) has at least one entry and
/// a proof with each. The load generator shares the log's cores, so it
/// counts the field names rather than parsing the answer: a quote inside
/// a JSON string is escaped, so neither name can occur inside the entry
/// or proof text. Parsing (serde_json, proofs skipped unread) cost the
/// generator about 9 µs more per lookup than per `/checkpoint`, which
/// counted against the lookup rate (BENCHMARKS.md, issue 18).
fn answer_has_proofs(body: &[u8]) -> bool {
    let count = |field: &[u8]| memchr::memmem::find_iter(body, field).count();
    let entries = count(b"{\"index\":");
    body.starts_with(b"{\"tree_size\":")
        && body.ends_with(b"]}")
        && entries > 0
        && count(b",\"proof\":\"") == entries
}

/// Calls `one` in a loop on `connections` threads (each with its own
/// connection and random generator) for `secs` seconds; returns each call's
/// latency in milliseconds and the wall time in seconds.
fn hammer(
    connections: usize,
    secs: f64,
    one: impl Fn(&ureq::Agent, &mut Rng) -> anyhow::Result<()> + Sync,
) -> anyhow::Result<(Vec<f64>, f64)> {
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(secs);
    let results: Vec<anyhow::Result<Vec<f64>>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..connections)
            .map(|c| {
                let one = &one;
                s.spawn(move || {
                    let agent = ureq::AgentBuilder::new()
                        .timeout(Duration::from_secs(30))
                        .build();
                    let mut rng = Rng::new(0x5eed + c as u64);
                    let mut lat = Vec::new();
                    while Instant::now() < until {
                        let t = Instant::now();
                        one(&agent, &mut rng)?;
                        lat.push(t.elapsed().as_secs_f64() * 1e3);
                    }
                    Ok(lat)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| bail!("client thread panicked")))
            .collect()
    });
    let wall = start.elapsed().as_secs_f64();
    let mut lat = Vec::new();
    for r in results {
        lat.extend(r?);
    }
    Ok((lat, wall))
}

/// The longest lookup answer read (one entry with its proof is ~2 KiB).
const MAX_ANSWER: u64 = 1 << 20;

/// Looks up random paths among entries `0..size` for `secs` seconds from
/// `connections` connections, each answer carrying a tlog-proof per entry;
/// with the log's process `pid`, counts its major page faults meanwhile.
pub fn lookups(
    log: &str,
    size: u64,
    connections: usize,
    secs: f64,
    pid: Option<u32>,
) -> anyhow::Result<LookupReport> {
    thread_local! {
        /// Each connection's URL and answer buffers, reused from lookup to
        /// lookup: the generator shares the log's cores.
        static BUFS: std::cell::RefCell<(String, Vec<u8>)> = Default::default();
    }
    let faults_before = pid.and_then(sys::major_faults);
    let (mut lat, wall) = hammer(connections, secs, |agent, rng| {
        let i = rng.below(size);
        BUFS.with_borrow_mut(|(url, body)| {
            use std::fmt::Write as _;
            use std::io::Read as _;
            url.clear();
            write!(
                url,
                "{log}/vouch/v1/lookup/{}?proof=1",
                gen::store_path_hash_part(i)
            )?;
            body.clear();
            agent
                .get(url)
                .call()?
                .into_reader()
                .take(MAX_ANSWER)
                .read_to_end(body)?;
            if !answer_has_proofs(body) {
                bail!(
                    "lookup {url} (entry {i}): no entry or no proof in {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                );
            }
            Ok(())
        })
    })?;
    Ok(LookupReport {
        per_sec: lat.len() as f64 / wall,
        p50_ms: sys::quantile(&mut lat, 0.5),
        p99_ms: sys::quantile(&mut lat, 0.99),
        connections,
        log_major_faults: faults_before
            .zip(pid.and_then(sys::major_faults))
            .map(|(a, b)| b.saturating_sub(a)),
    })
}

/// GETs of `/checkpoint` (served from memory) per second from
/// `connections` connections for `secs` seconds: what this machine's HTTP
/// stack and this client manage with no work behind the request, the
/// ceiling for any lookup rate.
pub fn http_ceiling(log: &str, connections: usize, secs: f64) -> anyhow::Result<f64> {
    let (lat, wall) = hammer(connections, secs, |agent, _| {
        agent
            .get(&format!("{log}/checkpoint"))
            .call()?
            .into_string()?;
        Ok(())
    })?;
    Ok(lat.len() as f64 / wall)
}

/// Offline verification rates on one core.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct BundleReport {
    /// tlog-proofs verified per second per core: parse, decode the entry,
    /// leaf hash, log signature (and cosignatures) through a cache of
    /// verified checkpoints, inclusion proof.
    pub per_sec: f64,
    /// The same without the checkpoint cache (every signature every time).
    pub uncached_per_sec: f64,
    /// The same as `per_sec` plus the builder's signature over the
    /// fingerprint (the whole offline acceptance of one attestation).
    pub with_builder_sig_per_sec: f64,
    /// Proof hashes per bundle.
    pub proof_len: usize,
}

/// Fetches `n` tlog-proofs for random entries below `size` and verifies them
/// for `secs` seconds per mode on this thread.
pub fn bundles(
    log: &str,
    policy: &Policy,
    size: u64,
    n: usize,
    secs: f64,
) -> anyhow::Result<BundleReport> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let mut rng = Rng::new(42);
    let mut texts = Vec::new();
    for _ in 0..n {
        let i = rng.below(size);
        texts.push(
            agent
                .get(&format!("{log}/vouch/v1/bundle/{i}"))
                .call()?
                .into_string()?
                .into_bytes(),
        );
    }
    let verify_one =
        |t: &[u8], cache: Option<&mut CheckpointCache>, builder: bool| -> anyhow::Result<usize> {
            let p = TlogProof::parse(t)?;
            let entry = Entry::decode(p.extra.as_deref().context("no extra")?)?;
            let leaf = entry.leaf_hash();
            match cache {
                Some(c) => p.verify_cached(&leaf, policy, c)?,
                None => p.verify(&leaf, policy)?,
            };
            if builder {
                entry.verify(None)?;
            }
            Ok(p.proof.len())
        };
    let proof_len = verify_one(&texts[0], None, true)?;
    let run = |cached: bool, builder: bool| -> anyhow::Result<f64> {
        let mut cache = CheckpointCache::default();
        let start = Instant::now();
        let mut k = 0usize;
        while start.elapsed() < Duration::from_secs_f64(secs) {
            for t in texts.iter().cycle().skip(k % texts.len()).take(64) {
                verify_one(t, cached.then_some(&mut cache), builder)?;
            }
            k += 64;
        }
        Ok(k as f64 / start.elapsed().as_secs_f64())
    };
    Ok(BundleReport {
        per_sec: run(true, false)?,
        uncached_per_sec: run(false, false)?,
        with_builder_sig_per_sec: run(true, true)?,
        proof_len,
    })
}

#[cfg(test)]
mod tests {
    use super::answer_has_proofs;

    #[test]
    fn an_answer_needs_a_proof_for_every_entry() {
        let with = r#"{"index":7,"entry":"a \"proof\":\"x\" in text\n","proof":"p\n"}"#;
        let without = r#"{"index":8,"entry":"b\n"}"#;
        let answer =
            |entries: &[&str]| format!(r#"{{"tree_size":9,"entries":[{}]}}"#, entries.join(","));
        assert!(answer_has_proofs(answer(&[with]).as_bytes()));
        assert!(answer_has_proofs(answer(&[with, with]).as_bytes()));
        assert!(!answer_has_proofs(answer(&[with, without]).as_bytes()));
        assert!(!answer_has_proofs(answer(&[without]).as_bytes()));
        assert!(!answer_has_proofs(answer(&[]).as_bytes()));
        assert!(!answer_has_proofs(b"{\"error\":\"no\"}"));
        // Cut short.
        let cut = answer(&[with]);
        assert!(!answer_has_proofs(&cut.as_bytes()[..cut.len() - 1]));
    }
}
