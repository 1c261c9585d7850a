//! Backfill at a real cache's scale: `vouch backfill` from a directory
//! holding a copy of a binary cache (`N` narinfos signed by one cache key,
//! as cache.nixos.org's are) into a fresh log on the same machine, end to
//! end: read, parse, submit in batches, the log verifying every signature
//! and committing durably before it acknowledges.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::{gen, scale, sys};

/// What a backfill run measured.
#[derive(Debug, Serialize)]
pub struct BackfillReport {
    /// Narinfos in the cache copy (one path each).
    pub paths: u64,
    /// Wall seconds of `vouch backfill`, start to exit.
    pub secs: f64,
    /// Paths per second end to end.
    pub paths_per_sec: f64,
    /// Seconds spent writing the cache copy (not measured above).
    pub generate_secs: f64,
    /// CPU cores the backfill process used on average.
    pub backfill_cpu_cores: f64,
    /// CPU cores the log used on average.
    pub log_cpu_cores: f64,
    /// Entries the log holds afterwards.
    pub log_size: u64,
    /// Settings.
    pub jobs: usize,
    /// Submissions in flight.
    pub connections: usize,
    /// Attestations per submission.
    pub batch: usize,
}

/// Writes the cache copy (once: kept between runs) and the path list.
fn generate(dir: &Path, n: u64) -> anyhow::Result<f64> {
    let done = dir.join("generated");
    if std::fs::read_to_string(&done).ok().as_deref() == Some(&n.to_string()) {
        return Ok(0.0);
    }
    let t = Instant::now();
    let cache = dir.join("cache");
    std::fs::create_dir_all(&cache)?;
    let keys = gen::builders(1);
    std::thread::scope(|s| -> anyhow::Result<()> {
        let workers: Vec<_> = (0..2u64)
            .map(|w| {
                let (cache, keys) = (&cache, &keys);
                s.spawn(move || -> anyhow::Result<()> {
                    let mut i = w;
                    while i < n {
                        let p = gen::store_path(i);
                        std::fs::write(
                            cache.join(format!("{}.narinfo", p.hash_part())),
                            gen::narinfo(keys, i),
                        )?;
                        i += 2;
                    }
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            w.join()
                .map_err(|_| anyhow::anyhow!("a writer panicked"))??;
        }
        Ok(())
    })?;
    let mut list = std::io::BufWriter::new(std::fs::File::create(dir.join("paths"))?);
    for i in 0..n {
        writeln!(list, "{}", gen::store_path(i))?;
    }
    list.flush()?;
    std::fs::write(&done, n.to_string())?;
    Ok(t.elapsed().as_secs_f64())
}

/// Generates (or reuses) a cache copy of `n` narinfos in `dir`, starts a
/// fresh log, and times `vouch backfill` over all of it.
pub fn run(
    dir: &Path,
    n: u64,
    jobs: usize,
    connections: usize,
    batch: usize,
) -> anyhow::Result<BackfillReport> {
    std::fs::create_dir_all(dir)?;
    eprintln!("writing {n} narinfos under {}", dir.display());
    let generate_secs = generate(dir, n)?;
    let logdir = dir.join("log");
    if logdir.exists() {
        std::fs::remove_dir_all(&logdir)?;
    }
    let log = scale::start_log(&logdir)?;
    let key = gen::builders(1)[0].public().to_string();
    let state = dir.join("backfill.state");
    let _ = std::fs::remove_file(&state);
    let log_cpu0 = sys::cpu_secs(log.pid()).unwrap_or(0.0);
    eprintln!("backfilling {n} paths");
    let t = Instant::now();
    let child = Command::new(scale::sibling("vouch")?)
        .args(["backfill", "--cache"])
        .arg(format!("file://{}", dir.join("cache").display()))
        .args(["--log", &log.url, "--key", &key, "--paths"])
        .arg(dir.join("paths"))
        .arg("--state")
        .arg(&state)
        .args([
            "--jobs",
            &jobs.to_string(),
            "--connections",
            &connections.to_string(),
            "--batch",
            &batch.to_string(),
        ])
        .env("VOUCH_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting vouch backfill")?;
    let pid = child.id();
    // Sample its CPU time until it exits (the proc entry goes with it).
    let mut backfill_cpu = 0.0;
    let out = std::thread::scope(|s| {
        let h = s.spawn(|| child.wait_with_output());
        while !h.is_finished() {
            if let Some(c) = sys::cpu_secs(pid) {
                backfill_cpu = c;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        h.join()
    })
    .map_err(|_| anyhow::anyhow!("waiting for vouch backfill panicked"))??;
    let secs = t.elapsed().as_secs_f64();
    let log_cpu = sys::cpu_secs(log.pid()).unwrap_or(0.0) - log_cpu0;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !text.contains(&format!("backfilled {n} paths: {n} attestations")) {
        bail!("vouch backfill failed ({}): {text}", out.status);
    }
    let cp = ureq::get(&format!("{}/checkpoint", log.url))
        .call()?
        .into_string()?;
    let log_size = cp.lines().nth(1).and_then(|l| l.parse().ok()).unwrap_or(0);
    Ok(BackfillReport {
        paths: n,
        secs,
        paths_per_sec: n as f64 / secs,
        generate_secs,
        backfill_cpu_cores: backfill_cpu / secs,
        log_cpu_cores: log_cpu / secs,
        log_size,
        jobs,
        connections,
        batch,
    })
}
