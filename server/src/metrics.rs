//! Prometheus metrics, rendered in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use crate::sequencer::Job;

/// Counters and gauges.
#[derive(Default)]
pub struct Metrics {
    /// Entries in the log.
    pub entries: AtomicU64,
    /// Batches committed.
    pub batches: AtomicU64,
    /// Entries (including duplicates) in committed batches.
    pub batch_entries: AtomicU64,
    /// Batches whose commit failed.
    pub commit_failures: AtomicU64,
    /// Sum of queue-to-commit latency of jobs, microseconds.
    pub latency_us_sum: AtomicU64,
    /// Jobs whose latency was recorded.
    pub latency_count: AtomicU64,
    /// Jobs waiting for the sequencer.
    pub queue_depth: AtomicI64,
    /// Latency histogram buckets (seconds upper bounds in `LATENCY_BUCKETS`).
    latency_buckets: [AtomicU64; 8],
    /// HTTP responses by (route, status).
    pub requests: Mutex<BTreeMap<(String, u16), u64>>,
}

const LATENCY_BUCKETS: [f64; 8] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

impl Metrics {
    /// Records a committed batch.
    pub fn record_batch(&self, entries: usize, size: u64, jobs: &[Job]) {
        self.batches.fetch_add(1, Relaxed);
        self.batch_entries.fetch_add(entries as u64, Relaxed);
        self.entries.store(size, Relaxed);
        for j in jobs {
            let secs = j.queued.elapsed().as_secs_f64();
            self.latency_us_sum.fetch_add((secs * 1e6) as u64, Relaxed);
            self.latency_count.fetch_add(1, Relaxed);
            for (b, le) in self.latency_buckets.iter().zip(LATENCY_BUCKETS) {
                if secs <= le {
                    b.fetch_add(1, Relaxed);
                }
            }
        }
    }

    /// Counts one response.
    pub fn record_request(&self, route: &str, status: u16) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((route.to_string(), status)).or_default() += 1;
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# HELP vouch_log_entries Entries in the log.\n# TYPE vouch_log_entries gauge\nvouch_log_entries {}", self.entries.load(Relaxed));
        let _ = writeln!(s, "# HELP vouch_log_batches_total Batches committed.\n# TYPE vouch_log_batches_total counter\nvouch_log_batches_total {}", self.batches.load(Relaxed));
        let _ = writeln!(s, "# HELP vouch_log_batch_entries_total Entries submitted in committed batches (mean batch size = this / batches).\n# TYPE vouch_log_batch_entries_total counter\nvouch_log_batch_entries_total {}", self.batch_entries.load(Relaxed));
        let _ = writeln!(s, "# HELP vouch_log_commit_failures_total Batches refused because storage failed.\n# TYPE vouch_log_commit_failures_total counter\nvouch_log_commit_failures_total {}", self.commit_failures.load(Relaxed));
        let _ = writeln!(s, "# HELP vouch_log_queue_depth Submissions waiting for the sequencer.\n# TYPE vouch_log_queue_depth gauge\nvouch_log_queue_depth {}", self.queue_depth.load(Relaxed));
        let _ = writeln!(s, "# HELP vouch_log_sequencing_seconds Time from queueing a submission to its durable commit.\n# TYPE vouch_log_sequencing_seconds histogram");
        for (b, le) in self.latency_buckets.iter().zip(LATENCY_BUCKETS) {
            let _ = writeln!(
                s,
                "vouch_log_sequencing_seconds_bucket{{le=\"{le}\"}} {}",
                b.load(Relaxed)
            );
        }
        let count = self.latency_count.load(Relaxed);
        let _ = writeln!(
            s,
            "vouch_log_sequencing_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            s,
            "vouch_log_sequencing_seconds_sum {}",
            self.latency_us_sum.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(s, "vouch_log_sequencing_seconds_count {count}");
        let _ = writeln!(s, "# HELP vouch_log_http_requests_total HTTP responses by route and status.\n# TYPE vouch_log_http_requests_total counter");
        if let Ok(m) = self.requests.lock() {
            for ((route, status), n) in m.iter() {
                let _ = writeln!(
                    s,
                    "vouch_log_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        s
    }
}
