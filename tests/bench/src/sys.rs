//! What the kernel says about a process and a directory: CPU seconds, peak
//! resident memory, bytes allocated on disk.

use std::path::Path;

/// The fields of `/proc/<pid>/stat` after the command name (which is in
/// parentheses and may hold spaces): field `k` of the whole line is at
/// index `k - 3` here.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    Some(rest.split(' ').map(str::to_string).collect())
}

/// User + system CPU seconds of process `pid` so far.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let f = stat_fields(pid)?;
    // utime and stime are fields 14 and 15 of the whole line.
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Major page faults of process `pid` so far: reads of its mapped files
/// that had to wait for the disk (`majflt`, field 12 of
/// `/proc/<pid>/stat`). The log reads its table files through a mapping,
/// so a lookup run with many is measuring the disk, not the log
/// (BENCHMARKS.md, thirteenth session).
pub fn major_faults(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(9)?.parse().ok()
}

/// CPU seconds the whole machine spent outside idle and I/O wait so far,
/// all cores together (`/proc/stat`).
pub fn machine_busy_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().next()?.strip_prefix("cpu ")?;
    let f: Vec<f64> = cpu
        .split_whitespace()
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal ...
    let busy: f64 = f
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    Some(busy / 100.0)
}

/// Peak resident set size of process `pid`, bytes (`VmHWM`).
pub fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Bytes allocated on disk under `dir` (blocks, not apparent sizes).
pub fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_bytes(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// The `q` quantile (0..=1) of `v`, which is sorted here; 0 when empty.
pub fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i.min(v.len() - 1)]
}

/// The median of `v`.
pub fn median(mut v: Vec<f64>) -> f64 {
    quantile(&mut v, 0.5)
}

/// A small fast PRNG (xorshift64*) for picking random entries.
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (seed 0 is replaced).
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    /// Uniform-ish in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        assert!(cpu_secs(me).is_some());
        assert!(peak_rss(me).unwrap() > 0);
        let mut v = vec![3.0, 1.0, 2.0, 10.0];
        assert_eq!(quantile(&mut v, 0.5), 3.0);
        assert_eq!(median(vec![1.0, 5.0, 2.0]), 2.0);
    }
}
