//! `vouch-bench ingest`: submits attestations over HTTP from concurrent
//! connections and measures throughput to acknowledgement and to the first
//! checkpoint that covers the last entry, plus acknowledgement latency.

use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use vouch_spec::nix::NixSecretKey;

use crate::gen;
use crate::sys;

/// What to submit and how.
#[derive(Clone, Debug)]
pub struct Opts {
    /// The log's URL prefix.
    pub log: String,
    /// First entry number to submit.
    pub start: u64,
    /// How many entries.
    pub entries: u64,
    /// Concurrent connections.
    pub connections: usize,
    /// Attestations per request.
    pub batch: u64,
    /// Sign everything before the clock starts (else sign while submitting).
    pub presign: bool,
    /// The log's process, for CPU and memory figures.
    pub pid: Option<u32>,
}

/// What one ingest run measured.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct Report {
    /// Entries submitted.
    pub entries: u64,
    /// Entries/s from the first submission to the last acknowledgement.
    pub acked_per_sec: f64,
    /// Entries/s from the first submission to the first served checkpoint
    /// covering every entry.
    pub covered_per_sec: f64,
    /// Seconds from the last acknowledgement to that checkpoint.
    pub cover_lag_secs: f64,
    /// Request round trips (one request = `batch` entries), milliseconds.
    pub ack_p50_ms: f64,
    /// 99th percentile of the same.
    pub ack_p99_ms: f64,
    /// Requests refused with 503/429 and retried.
    pub retries: u64,
    /// Bytes of the log entries submitted (their canonical encoding).
    pub raw_entry_bytes: u64,
    /// The log's CPU seconds per wall second during the run.
    pub server_cpu_cores: f64,
    /// The log's peak RSS so far, bytes.
    pub server_peak_rss: u64,
    /// This load generator's CPU seconds per wall second during the run
    /// (it shares the machine with the log; signing before the clock
    /// starts is not counted).
    #[serde(default)]
    pub client_cpu_cores: f64,
    /// The whole machine's busy CPU seconds per wall second during the
    /// run (at most the number of cores).
    #[serde(default)]
    pub machine_busy_cores: f64,
    /// Seconds spent signing before the clock started.
    pub presign_secs: f64,
}

#[derive(Deserialize)]
struct Submitted {
    entries: Vec<SubmittedEntry>,
}

#[derive(Deserialize)]
struct SubmittedEntry {
    index: u64,
}

/// The size in the log's current checkpoint.
pub fn checkpoint_size(agent: &ureq::Agent, log: &str) -> anyhow::Result<u64> {
    let text = agent
        .get(&format!("{log}/checkpoint"))
        .call()?
        .into_string()?;
    text.lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .context("checkpoint without a size line")
}

fn submit(agent: &ureq::Agent, log: &str, body: &[u8]) -> anyhow::Result<(u64, u64)> {
    let mut retries = 0;
    loop {
        match agent
            .post(&format!("{log}/vouch/v1/submit"))
            .set("Content-Type", "text/plain")
            .send_bytes(body)
        {
            Ok(r) => {
                let s: Submitted = serde_json::from_reader(r.into_reader())?;
                let max = s.entries.iter().map(|e| e.index).max().unwrap_or(0);
                return Ok((max, retries));
            }
            Err(ureq::Error::Status(503 | 429, _)) if retries < 10_000 => {
                retries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(ureq::Error::Status(code, r)) => {
                bail!(
                    "submit: HTTP {code}: {}",
                    r.into_string().unwrap_or_default()
                )
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// How long a served checkpoint may take to cover the last entry.
const COVER_TIMEOUT_SECS: u64 = 300;

/// What one connection saw: latencies (ms), highest index, retries, raw bytes.
type Submitter = (Vec<f64>, u64, u64, u64);

/// Runs one ingest.
pub fn run(keys: &[NixSecretKey], o: &Opts) -> anyhow::Result<Report> {
    let range = o.start..o.start + o.entries;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (tx, rx) = sync_channel::<(Vec<u8>, u64)>(if o.presign {
        (o.entries / o.batch + 1) as usize
    } else {
        4 * o.connections
    });
    let mut presign_secs = 0.0;
    let producer = if o.presign {
        let t = Instant::now();
        gen::produce(keys, range.clone(), o.batch, threads, tx);
        presign_secs = t.elapsed().as_secs_f64();
        None
    } else {
        let keys = keys.to_vec();
        let (r, b) = (range.clone(), o.batch);
        Some(std::thread::spawn(move || {
            gen::produce(&keys, r, b, threads, tx)
        }))
    };
    // Only the submitters hold the receiver: when they all stop (the log
    // died), the producer's next send fails and it stops too.
    let rx = Arc::new(Mutex::new(rx));
    let receivers: Vec<_> = (0..o.connections).map(|_| rx.clone()).collect();
    drop(rx);
    let cpu0 = o.pid.and_then(sys::cpu_secs);
    let (own0, busy0) = (sys::cpu_secs(std::process::id()), sys::machine_busy_secs());
    let start = Instant::now();
    let results: Vec<anyhow::Result<Submitter>> = std::thread::scope(|s| {
        let handles: Vec<_> = receivers
            .into_iter()
            .map(|rx| {
                s.spawn(move || {
                    let agent = ureq::AgentBuilder::new()
                        .timeout(Duration::from_secs(120))
                        .build();
                    let (mut lat, mut max, mut retries, mut raw) = (Vec::new(), 0, 0, 0);
                    loop {
                        let next = rx.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.recv();
                        let Ok((body, bytes)) = next else { break };
                        let t = Instant::now();
                        let (m, r) = submit(&agent, &o.log, &body)?;
                        lat.push(t.elapsed().as_secs_f64() * 1e3);
                        max = max.max(m);
                        retries += r;
                        raw += bytes;
                    }
                    Ok((lat, max, retries, raw))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| bail!("submitter panicked")))
            .collect()
    });
    let acked = start.elapsed().as_secs_f64();
    if let Some(p) = producer {
        let _ = p.join();
    }
    let (mut lat, mut max, mut retries, mut raw) = (Vec::new(), 0, 0, 0);
    for r in results {
        let (l, m, rt, b) = r?;
        lat.extend(l);
        max = max.max(m);
        retries += rt;
        raw += b;
    }
    // Every request has a deadline, and so has the wait for a covering
    // checkpoint: a log that stops answering ends the run with an error.
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    while checkpoint_size(&agent, &o.log)? <= max {
        if start.elapsed() > Duration::from_secs(acked.ceil() as u64 + COVER_TIMEOUT_SECS) {
            bail!("no checkpoint covered entry {max} within {COVER_TIMEOUT_SECS}s of the last acknowledgement");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let covered = start.elapsed().as_secs_f64();
    let per_sec = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => (b - a) / covered,
        _ => 0.0,
    };
    let cpu = per_sec(cpu0, o.pid.and_then(sys::cpu_secs));
    let client = per_sec(own0, sys::cpu_secs(std::process::id()));
    let machine = per_sec(busy0, sys::machine_busy_secs());
    Ok(Report {
        entries: o.entries,
        acked_per_sec: o.entries as f64 / acked,
        covered_per_sec: o.entries as f64 / covered,
        cover_lag_secs: covered - acked,
        ack_p50_ms: sys::quantile(&mut lat, 0.5),
        ack_p99_ms: sys::quantile(&mut lat, 0.99),
        retries,
        raw_entry_bytes: raw,
        server_cpu_cores: cpu,
        server_peak_rss: o.pid.and_then(sys::peak_rss).unwrap_or(0),
        client_cpu_cores: client,
        machine_busy_cores: machine,
        presign_secs,
    })
}
