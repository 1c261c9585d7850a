//! `vouch-bench scale`: starts a fresh `vouch-log`, grows it through each
//! size, and at each one measures ingest (repeated windows of pre-signed
//! entries ending at that size), lookups with proofs, offline proof
//! verification, the substituter's added latency, disk per entry and the
//! log's CPU and memory. One JSON object per size goes to `--out`.
//!
//! Ingest is measured right after the fill, with whatever background work
//! the fill left (a log taking submissions is never idle). Every size has
//! a fill, the first one too: at least a tenth of the way from the previous
//! size goes in unmeasured, so no window includes the log's start-up (its first
//! connections, threads and memory), which at 1e5 was the whole first
//! window of a 0.7-second measurement. Lookups are
//! measured once right after, and then, for the median, once the log is idle
//! ([`settle`]), as a log serving reads between bursts of submissions
//! mostly is. The first run reads through caches cold for what the fill
//! wrote (a log restarted on an idle store shows the same first run), so
//! it is reported apart.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use crate::ceilings::Ceilings;
use crate::ingest::{self, Opts};
use crate::reads::{self, BundleReport, LookupReport};
use crate::subst::{self, SubstReport};
use crate::{gen, sys};

/// Everything measured at one log size.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct Point {
    /// Log size when the measurements ran.
    pub size: u64,
    /// Each measured ingest window.
    pub ingest: Vec<ingest::Report>,
    /// Median of the windows' acknowledged rates.
    pub ingest_median_per_sec: f64,
    /// Median of the windows' covered rates.
    pub covered_median_per_sec: f64,
    /// Median p99 acknowledgement latency, ms.
    pub ack_p99_median_ms: f64,
    /// Median ingest as a fraction of the machine's batch-verification
    /// ceiling (all cores) measured at the start of the run.
    pub ingest_over_verify_ceiling: f64,
    /// The same ceiling (all cores) measured again at this size, once the
    /// log is idle after the windows: within a minute or two of them, where
    /// the one at the start of the run is up to a quarter of an hour away
    /// (this guest's speed drifts by ±15 % over that).
    #[serde(default)]
    pub verify_ceiling_here_per_sec: f64,
    /// Median ingest over [`Point::verify_ceiling_here_per_sec`].
    #[serde(default)]
    pub ingest_over_verify_ceiling_here: f64,
    /// Seconds waited after the ingest windows for the log to go idle
    /// (its compactions done) before the lookups.
    #[serde(default)]
    pub settle_secs: f64,
    /// Lookups per second in one run right after the ingest windows, before
    /// [`settle`]: reads through caches still cold for the fill.
    #[serde(default)]
    pub lookups_first_per_sec: f64,
    /// The log's major page faults during that first run.
    #[serde(default)]
    pub lookups_first_major_faults: Option<u64>,
    /// Each lookup run.
    pub lookups: Vec<LookupReport>,
    /// Median lookups-with-proof per second.
    pub lookups_median_per_sec: f64,
    /// GET /checkpoint per second with the same client and connections:
    /// the HTTP ceiling for lookups on this machine.
    #[serde(default)]
    pub http_ceiling_per_sec: f64,
    /// Offline verification on one core.
    pub bundles: BundleReport,
    /// Substituter latency.
    pub substituter: SubstReport,
    /// Bytes on disk (after a flush) per entry.
    pub disk_bytes_per_entry: f64,
    /// Canonical entry bytes per entry.
    pub raw_bytes_per_entry: f64,
    /// Their ratio.
    pub disk_over_raw: f64,
    /// The log's peak RSS, bytes.
    pub server_peak_rss: u64,
    /// Seconds the fill up to this point's windows took (not a measurement).
    pub fill_secs: f64,
    /// A monitor catching up from the previous size to this one.
    #[serde(default)]
    pub monitor: MonitorReport,
    /// Monitor entries/s over the median ingest rate (goal: ≥ 1).
    #[serde(default)]
    pub monitor_over_ingest: f64,
}

/// A `vouch-witness monitor --once` run reading the entries added since
/// its last run: fetching every bundle, verifying every signature,
/// recomputing the tree and committing its database.
#[derive(Debug, Default, Serialize, serde::Deserialize)]
pub struct MonitorReport {
    /// Entries it read.
    pub entries: u64,
    /// Wall-clock seconds.
    pub secs: f64,
    /// Entries per second.
    pub per_sec: f64,
    /// Its peak RSS, bytes.
    pub peak_rss: u64,
    /// Its database's bytes on disk per entry read so far.
    pub disk_bytes_per_entry: f64,
}

/// Runs the monitor once over the log (its database in `state`, kept
/// between sizes so that each run reads only what is new).
fn monitor_catch_up(
    state: &Path,
    url: &str,
    vkey: &str,
    entries: u64,
    size: u64,
) -> anyhow::Result<MonitorReport> {
    let t = Instant::now();
    let mut child = Command::new(sibling("vouch-witness")?)
        .args(["monitor", "--once", "--log", url, "--vkey", vkey, "--state"])
        .arg(state)
        .env("VOUCH_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .context("starting vouch-witness monitor")?;
    let pid = child.id();
    let mut peak_rss = 0;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        // VmHWM only grows: the last sample before exit is the peak.
        peak_rss = peak_rss.max(sys::peak_rss(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(20));
    };
    let secs = t.elapsed().as_secs_f64();
    if !matches!(status.code(), Some(0 | 1)) {
        bail!("the monitor failed or found the log misbehaving: {status}");
    }
    Ok(MonitorReport {
        entries,
        secs,
        per_sec: entries as f64 / secs,
        peak_rss,
        disk_bytes_per_entry: sys::disk_bytes(state) as f64 / size as f64,
    })
}

/// Waits until process `pid` uses less than a tenth of a core over 5 s
/// (RocksDB's flushes and compactions after a fill are done), at most 15
/// minutes; returns the seconds waited.
fn settle(pid: u32) -> f64 {
    const SAMPLE: Duration = Duration::from_secs(5);
    let t = Instant::now();
    let mut before = sys::cpu_secs(pid).unwrap_or(0.0);
    while t.elapsed() < Duration::from_secs(900) {
        std::thread::sleep(SAMPLE);
        let now = sys::cpu_secs(pid).unwrap_or(0.0);
        if now - before < 0.1 * SAMPLE.as_secs_f64() {
            break;
        }
        before = now;
    }
    t.elapsed().as_secs_f64()
}

/// Settings for a scale run.
pub struct ScaleOpts {
    /// Sizes to stop at, ascending.
    pub sizes: Vec<u64>,
    /// Entries per measured ingest window.
    pub window: u64,
    /// Measured windows (and lookup runs) per size.
    pub reps: usize,
    /// Submitting connections.
    pub connections: usize,
    /// Attestations per request.
    pub batch: u64,
    /// Builder keys.
    pub keys: usize,
    /// Seconds per lookup run.
    pub lookup_secs: f64,
    /// Connections for lookups.
    pub lookup_connections: usize,
    /// Working directory (the log's data lives here).
    pub dir: PathBuf,
    /// Where results go (JSON lines).
    pub out: PathBuf,
    /// Narinfos for the substituter measurement.
    pub narinfos: usize,
}

pub struct Log {
    child: Child,
    /// Its URL.
    pub url: String,
    vkey: String,
}

impl Log {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let p = me.with_file_name(name);
    if !p.exists() {
        bail!(
            "{} not found next to vouch-bench (build the workspace with --release)",
            p.display()
        );
    }
    Ok(p)
}

pub fn start_log(dir: &Path) -> anyhow::Result<Log> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = Command::new(sibling("vouch-log")?)
        .args(["serve", "--data-dir"])
        .arg(dir)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--origin",
            "bench.vouch.localhost/log",
        ])
        .env("VOUCH_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .context("starting vouch-log")?;
    let mut vkey = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut vkey)?;
    let url = format!("http://127.0.0.1:{port}");
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let t = Instant::now();
    while agent.get(&format!("{url}/checkpoint")).call().is_err() {
        if t.elapsed() > Duration::from_secs(30) {
            bail!("vouch-log did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Log {
        child,
        url,
        vkey: vkey.trim().to_string(),
    })
}

/// Runs the whole scale benchmark.
pub fn run(o: &ScaleOpts, ceil: &Ceilings) -> anyhow::Result<Vec<Point>> {
    let keys = gen::builders(o.keys);
    if o.dir.exists() {
        std::fs::remove_dir_all(&o.dir)?;
    }
    let data = o.dir.join("log");
    let log = start_log(&data)?;
    let pid = log.child.id();
    let policy =
        vouch_spec::policy::Policy::parse(format!("log {}\nquorum none\n", log.vkey).as_bytes())?;
    let mut out = std::fs::File::create(&o.out)?;
    let mut points = Vec::new();
    let mut size = 0u64;
    let mut raw_total = 0u64;
    let mut monitored = 0u64;
    let verify_ceiling = ceil.ed25519_batch256 * ceil.cores as f64;
    for &target in &o.sizes {
        // A tenth of the way from the previous size (rounded down) is
        // always filled unmeasured, which also starts the log up at the
        // first size.
        let step = target - size;
        let measured = (o.window * o.reps as u64).min(step - step / 10);
        let fill_to = target - measured;
        let t = Instant::now();
        if fill_to > size {
            eprintln!("filling {size} → {fill_to}");
            let r = ingest::run(
                &keys,
                &Opts {
                    log: log.url.clone(),
                    start: size,
                    entries: fill_to - size,
                    connections: o.connections,
                    batch: o.batch,
                    presign: false,
                    pid: None,
                },
            )?;
            raw_total += r.raw_entry_bytes;
            size = fill_to;
        }
        let fill_secs = t.elapsed().as_secs_f64();
        let mut windows = Vec::new();
        let per = measured / o.reps as u64;
        for k in 0..o.reps {
            let n = if k + 1 == o.reps { target - size } else { per };
            eprintln!("measuring ingest {size} → {}", size + n);
            let r = ingest::run(
                &keys,
                &Opts {
                    log: log.url.clone(),
                    start: size,
                    entries: n,
                    connections: o.connections,
                    batch: o.batch,
                    presign: true,
                    pid: Some(pid),
                },
            )?;
            eprintln!(
                "  {:.0}/s acked, p99 {:.1} ms",
                r.acked_per_sec, r.ack_p99_ms
            );
            raw_total += r.raw_entry_bytes;
            size += n;
            windows.push(r);
        }
        let lookups_run = || {
            reads::lookups(
                &log.url,
                size,
                o.lookup_connections,
                o.lookup_secs,
                Some(pid),
            )
        };
        let first = lookups_run()?;
        eprintln!(
            "  first lookups {:.0}/s, {} major faults",
            first.per_sec,
            first.log_major_faults.unwrap_or(0)
        );
        let settle_secs = settle(pid);
        eprintln!("  log idle after {settle_secs:.0} s");
        let verify_here = crate::ceilings::batch256(2.0) * ceil.cores as f64;
        eprintln!("  verify ceiling here {verify_here:.0}/s");
        let mut lookups = Vec::new();
        for _ in 0..o.reps {
            let l = lookups_run()?;
            eprintln!(
                "  lookups {:.0}/s, {} major faults",
                l.per_sec,
                l.log_major_faults.unwrap_or(0)
            );
            lookups.push(l);
        }
        let http_ceiling = reads::http_ceiling(&log.url, o.lookup_connections, o.lookup_secs)?;
        eprintln!("  GET /checkpoint {http_ceiling:.0}/s");
        let bundles = reads::bundles(&log.url, &policy, size, 256, 1.0)?;
        eprintln!("  bundles {:.0}/s/core", bundles.per_sec);
        let substituter = subst::measure(
            &sibling("vouch")?,
            &o.dir.join(format!("subst-{size}")),
            &log.url,
            &log.vkey,
            &keys,
            size,
            o.narinfos,
        )?;
        eprintln!("  substituter adds {:.3} ms p99", substituter.added_p99_ms);
        eprintln!("  monitor catching up {monitored} → {size}");
        let monitor = monitor_catch_up(
            &o.dir.join("monitor"),
            &log.url,
            &log.vkey,
            size - monitored,
            size,
        )?;
        monitored = size;
        eprintln!(
            "  monitor {:.0}/s, peak RSS {} MiB",
            monitor.per_sec,
            monitor.peak_rss >> 20
        );
        let disk = sys::disk_bytes(&data);
        let ingest_median = sys::median(windows.iter().map(|w| w.acked_per_sec).collect());
        let p = Point {
            size,
            ingest_median_per_sec: ingest_median,
            covered_median_per_sec: sys::median(
                windows.iter().map(|w| w.covered_per_sec).collect(),
            ),
            ack_p99_median_ms: sys::median(windows.iter().map(|w| w.ack_p99_ms).collect()),
            ingest_over_verify_ceiling: ingest_median / verify_ceiling,
            verify_ceiling_here_per_sec: verify_here,
            ingest_over_verify_ceiling_here: ingest_median / verify_here,
            settle_secs,
            lookups_first_per_sec: first.per_sec,
            lookups_first_major_faults: first.log_major_faults,
            lookups_median_per_sec: sys::median(lookups.iter().map(|l| l.per_sec).collect()),
            http_ceiling_per_sec: http_ceiling,
            ingest: windows,
            lookups,
            bundles,
            substituter,
            disk_bytes_per_entry: disk as f64 / size as f64,
            raw_bytes_per_entry: raw_total as f64 / size as f64,
            disk_over_raw: disk as f64 / raw_total as f64,
            server_peak_rss: sys::peak_rss(pid).unwrap_or(0),
            fill_secs,
            monitor_over_ingest: monitor.per_sec / ingest_median,
            monitor,
        };
        writeln!(out, "{}", serde_json::to_string(&p)?)?;
        out.flush()?;
        points.push(p);
    }
    Ok(points)
}
