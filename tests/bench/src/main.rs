//! `vouch-bench`: measures Vouch against the limits of the machine.
//!
//! `scale` is the whole benchmark (a fresh log grown through several sizes,
//! every figure at each); the other commands measure one thing against a
//! log that is already running.
#![forbid(unsafe_code)]

mod backfill;
mod ceilings;
mod gen;
mod ingest;
mod plot;
mod reads;
mod scale;
mod subst;
mod sys;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "Benchmarks for the Vouch transparency log", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// This machine's ceilings on one core: Ed25519 verification (single and
    /// batched) and SHA-256.
    Ceilings {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 2.0)]
        secs: f64,
    },
    /// Fill a running log with valid attestations and report throughput,
    /// acknowledgement latency and (with --pid) the log's CPU and memory.
    Ingest {
        /// The log's URL (its tlog-tiles prefix).
        #[arg(long)]
        log: String,
        /// How many attestations.
        #[arg(long)]
        entries: u64,
        /// Number of the first entry (entries are deterministic; a second
        /// run with the same numbers only submits duplicates).
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// Builder keys signing the entries, round robin.
        #[arg(long, default_value_t = 16)]
        keys: usize,
        /// Concurrent connections. The log commits one batch at a time with
        /// a sync, so too few requests in flight leave its cores idle: 8
        /// measured 44.8 k/s with the log at 1.15 cores, 32 measured 61–67
        /// k/s at 1.7 cores (BENCHMARKS.md, 2026-12-05).
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Attestations per request.
        #[arg(long, default_value_t = 256)]
        batch: u64,
        /// Sign while submitting instead of before the clock starts (for
        /// bulk fills too large to hold in memory).
        #[arg(long)]
        stream: bool,
        /// The log's process id, for its CPU and peak memory.
        #[arg(long)]
        pid: Option<u32>,
    },
    /// Lookups with tlog-proofs for random paths among entries 0..size.
    Lookups {
        /// The log's URL.
        #[arg(long)]
        log: String,
        /// How many entries `ingest` put in the log (from 0).
        #[arg(long)]
        size: u64,
        /// Concurrent connections.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// Seconds to run.
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
        /// Runs (lookups, then the HTTP ceiling with the same client, each
        /// time): the medians and the ratio of medians.
        #[arg(long, default_value_t = 1)]
        reps: usize,
        /// The log's process id, for the CPU it uses during lookups.
        #[arg(long)]
        pid: Option<u32>,
    },
    /// Grow a fresh log (started here from the `vouch-log` next to this
    /// binary) through each size and measure everything at each; write one
    /// JSON line per size and an SVG plot.
    Scale {
        /// Sizes to measure at, comma separated.
        #[arg(long, value_delimiter = ',', default_value = "100000,1000000,10000000")]
        sizes: Vec<u64>,
        /// Entries per measured ingest window.
        #[arg(long, default_value_t = 100_000)]
        window: u64,
        /// Repetitions (ingest windows and lookup runs) per size; medians are reported.
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// Submitting connections (see `ingest --connections`).
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Attestations per request.
        #[arg(long, default_value_t = 256)]
        batch: u64,
        /// Builder keys.
        #[arg(long, default_value_t = 16)]
        keys: usize,
        /// Seconds per lookup run.
        #[arg(long, default_value_t = 3.0)]
        lookup_secs: f64,
        /// Connections for lookups.
        #[arg(long, default_value_t = 4)]
        lookup_connections: usize,
        /// Narinfos fetched per substituter pass.
        #[arg(long, default_value_t = 2000)]
        narinfos: usize,
        /// Working directory (deleted first).
        #[arg(long, default_value = "target/vouch-bench")]
        dir: PathBuf,
        /// Results, one JSON object per size.
        #[arg(long, default_value = "bench-results.jsonl")]
        out: PathBuf,
        /// The plot.
        #[arg(long, default_value = "bench-plot.svg")]
        plot: PathBuf,
    },
    /// `vouch backfill` from a directory holding a copy of a binary cache
    /// (N narinfos signed by one key, written once and kept) into a fresh
    /// log: paths/s end to end.
    Backfill {
        /// Narinfos in the cache copy.
        #[arg(long, default_value_t = 1_000_000)]
        paths: u64,
        /// Working directory (the cache copy is kept between runs).
        #[arg(long, default_value = "target/vouch-bench-backfill")]
        dir: PathBuf,
        /// `vouch backfill --jobs`.
        #[arg(long, default_value_t = 4)]
        jobs: usize,
        /// `vouch backfill --connections`.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// `vouch backfill --batch`.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
    },
    /// Redraw the plot from a results file.
    Plot {
        /// Results written by `scale`.
        #[arg(long = "in")]
        input: PathBuf,
        /// The SVG to write.
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Ceilings { secs } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&ceilings::measure(secs))?
            );
        }
        Cmd::Backfill {
            paths,
            dir,
            jobs,
            connections,
            batch,
        } => {
            let r = backfill::run(&dir, paths, jobs, connections, batch)?;
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
        Cmd::Ingest {
            log,
            entries,
            start,
            keys,
            connections,
            batch,
            stream,
            pid,
        } => {
            let keys = gen::builders(keys);
            let r = ingest::run(
                &keys,
                &ingest::Opts {
                    log: log.trim_end_matches('/').to_string(),
                    start,
                    entries,
                    connections,
                    batch: batch.max(1),
                    presign: !stream,
                    pid,
                },
            )?;
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
        Cmd::Lookups {
            log,
            size,
            connections,
            secs,
            reps,
            pid,
        } => {
            let log = log.trim_end_matches('/');
            let (mut rates, mut ceilings, mut p99) = (Vec::new(), Vec::new(), Vec::new());
            let (mut client, mut server) = (Vec::new(), Vec::new());
            let (mut ceiling_client, mut ceiling_server) = (Vec::new(), Vec::new());
            let mut faults = Vec::new();
            let me = std::process::id();
            for _ in 0..reps.max(1) {
                let (c0, s0, t0) = (
                    sys::cpu_secs(me),
                    pid.and_then(sys::cpu_secs),
                    std::time::Instant::now(),
                );
                let r = reads::lookups(log, size.max(1), connections, secs, pid)?;
                let wall = t0.elapsed().as_secs_f64();
                faults.extend(r.log_major_faults);
                if let (Some(a), Some(b)) = (c0, sys::cpu_secs(me)) {
                    client.push((b - a) / wall);
                }
                if let (Some(a), Some(b)) = (s0, pid.and_then(sys::cpu_secs)) {
                    server.push((b - a) / wall);
                }
                rates.push(r.per_sec);
                p99.push(r.p99_ms);
                let (c1, s1, t1) = (
                    sys::cpu_secs(me),
                    pid.and_then(sys::cpu_secs),
                    std::time::Instant::now(),
                );
                ceilings.push(reads::http_ceiling(log, connections, secs)?);
                let wall = t1.elapsed().as_secs_f64();
                if let (Some(a), Some(b)) = (c1, sys::cpu_secs(me)) {
                    ceiling_client.push((b - a) / wall);
                }
                if let (Some(a), Some(b)) = (s1, pid.and_then(sys::cpu_secs)) {
                    ceiling_server.push((b - a) / wall);
                }
            }
            let lookups = sys::quantile(&mut rates.clone(), 0.5);
            let ceiling = sys::quantile(&mut ceilings.clone(), 0.5);
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "size": size,
                    "connections": connections,
                    "lookups_per_sec": rates,
                    "ceiling_per_sec": ceilings,
                    "p99_ms": p99,
                    "lookups_median": lookups,
                    "ceiling_median": ceiling,
                    "ratio": lookups / ceiling,
                    "client_cpu_cores": client,
                    "log_cpu_cores": server,
                    "ceiling_log_cpu_cores": ceiling_server,
                    "ceiling_client_cpu_cores": ceiling_client,
                    "log_major_faults": faults,
                }))?
            );
        }
        Cmd::Scale {
            sizes,
            window,
            reps,
            connections,
            batch,
            keys,
            lookup_secs,
            lookup_connections,
            narinfos,
            dir,
            out,
            plot,
        } => {
            eprintln!("measuring this machine's ceilings");
            let ceil = ceilings::measure(2.0);
            eprintln!("{}", serde_json::to_string(&ceil)?);
            let mut sizes = sizes;
            sizes.sort_unstable();
            let points = scale::run(
                &scale::ScaleOpts {
                    sizes,
                    window: window.max(1),
                    reps: reps.max(1),
                    connections,
                    batch: batch.max(1),
                    keys: keys.max(1),
                    lookup_secs,
                    lookup_connections,
                    dir,
                    out: out.clone(),
                    narinfos: narinfos.max(1),
                },
                &ceil,
            )?;
            std::fs::write(
                out.with_extension("ceilings.json"),
                serde_json::to_string_pretty(&ceil)?,
            )?;
            plot::draw(&points, &plot)?;
            println!("{}", serde_json::to_string_pretty(&points)?);
        }
        Cmd::Plot { input, out } => {
            let text = std::fs::read_to_string(&input)
                .with_context(|| format!("reading {}", input.display()))?;
            let points = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(serde_json::from_str)
                .collect::<Result<Vec<scale::Point>, _>>()?;
            plot::draw(&points, &out)?;
        }
    }
    Ok(())
}
