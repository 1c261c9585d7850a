//! Running the real `nix` for the CLI: path info, derivations, instantiating
//! expressions and realising (building) derivations in a given store,
//! with a time and disk budget per build.
//!
//! Stores are Nix store URIs as `--store` takes them; an absolute path is a
//! chroot store (`/tmp/s` keeps `/nix/store/x` at `/tmp/s/nix/store/x`),
//! whose builds see only the store unless `extra-sandbox-paths` gives them
//! more.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::pathinfo::PathInfo;

/// A Nix store to query and build in.
#[derive(Clone, Debug, Default)]
pub struct Nix {
    /// The store URI (`None`: Nix's default store).
    pub store: Option<String>,
}

/// A derivation's outputs and inputs, from `nix show-derivation`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Derivation {
    /// Output name → store path.
    pub outputs: BTreeMap<String, String>,
    /// The derivations it depends on.
    pub input_drvs: Vec<String>,
}

/// How a build ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Built {
    /// Succeeded.
    Ok,
    /// `--check` found an output that differs from the one in the store
    /// (kept beside it as `<path>.check`).
    Differs,
    /// The builder failed (the end of what Nix printed).
    Failed(String),
    /// Longer than the time budget.
    TimedOut(Duration),
    /// The store's filesystem lost more than the disk budget during it.
    OverDisk(u64),
}

impl Nix {
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        if let Some(s) = &self.store {
            c.args(["--store", s]);
        }
        c
    }

    /// Runs `nix <args>` (nix-command enabled) and returns its stdout.
    pub fn json(&self, args: &[&str]) -> anyhow::Result<Vec<u8>> {
        let out = self
            .command("nix")
            .args(["--extra-experimental-features", "nix-command"])
            .args(args)
            .output()
            .with_context(|| format!("running `nix {}` (is nix on PATH?)", args.join(" ")))?;
        if !out.status.success() {
            bail!(
                "`nix {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(out.stdout)
    }

    /// `nix path-info --json` of one valid path.
    pub fn path_info(&self, path: &str) -> anyhow::Result<PathInfo> {
        let infos = super::pathinfo::parse(&self.json(&["path-info", "--json", path])?)?;
        infos
            .into_iter()
            .next()
            .with_context(|| format!("nix path-info printed nothing for {path}"))
    }

    /// Whether `path` is valid in the store.
    pub fn is_valid(&self, path: &str) -> bool {
        self.command("nix-store")
            .args(["--check-validity", path])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The derivations `drvs` describe, by path (`nix show-derivation` on
    /// Nix 2.8, `nix derivation show` later).
    pub fn derivations(&self, drvs: &[&str]) -> anyhow::Result<BTreeMap<String, Derivation>> {
        let mut args = vec!["show-derivation"];
        args.extend_from_slice(drvs);
        let json = self.json(&args).or_else(|_| {
            let mut args = vec!["derivation", "show"];
            args.extend_from_slice(drvs);
            self.json(&args)
        })?;
        let v: serde_json::Value =
            serde_json::from_slice(&json).context("parsing derivation JSON")?;
        let mut out = BTreeMap::new();
        for (drv, d) in v.as_object().into_iter().flatten() {
            let outputs = d["outputs"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(name, o)| Some((name.clone(), o["path"].as_str()?.to_string())))
                .collect();
            let input_drvs = d["inputDrvs"]
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            out.insert(
                drv.clone(),
                Derivation {
                    outputs,
                    input_drvs,
                },
            );
        }
        Ok(out)
    }

    /// Instantiates a Nix expression file (every derivation at its top
    /// level, and below attribute sets that ask to be recursed into).
    pub fn instantiate(&self, file: &Path) -> anyhow::Result<Vec<String>> {
        let out = self
            .command("nix-instantiate")
            .arg(file)
            .output()
            .with_context(|| format!("running nix-instantiate {}", file.display()))?;
        if !out.status.success() {
            bail!(
                "nix-instantiate {} failed: {}",
                file.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            // `x.drv!out` names one output: the derivation is `x.drv`.
            .map(|l| l.trim().split('!').next().unwrap_or_default().to_string())
            .filter(|l| l.ends_with(".drv"))
            .collect())
    }

    /// Where `path` (a `/nix/store/...` path) lives on this filesystem.
    pub fn physical(&self, path: &str) -> PathBuf {
        match self.store.as_deref().filter(|s| s.starts_with('/')) {
            Some(root) => Path::new(root).join(path.trim_start_matches('/')),
            None => PathBuf::from(path),
        }
    }

    /// Realises `drvs` with `extra` arguments (say, `--check`), killing the
    /// build (its whole process group) past `timeout` or when the store's
    /// filesystem loses more than `disk` bytes while it runs.
    pub fn realise(
        &self,
        drvs: &[&str],
        extra: &[&str],
        timeout: Option<Duration>,
        disk: Option<u64>,
    ) -> anyhow::Result<Built> {
        use std::os::unix::process::CommandExt;
        let log = tempfile_path("nix-store");
        let mut c = self.command("nix-store");
        c.arg("--realise").args(drvs).args(extra);
        if let Some(t) = timeout {
            c.args(["--option", "timeout", &t.as_secs().max(1).to_string()]);
        }
        let mut child = c
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).context("creating a build log file")?)
            .process_group(0)
            .spawn()
            .context("running nix-store --realise (is nix on PATH?)")?;
        let watched = self.physical("/nix/store");
        let free0 = free_bytes(&watched);
        let start = Instant::now();
        let stop = |child: &mut std::process::Child| {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
        };
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break s;
            }
            if let Some(t) = timeout {
                // Nix enforces the budget itself; this is the backstop.
                if start.elapsed() > t + Duration::from_secs(30) {
                    stop(&mut child);
                    let _ = std::fs::remove_file(&log);
                    return Ok(Built::TimedOut(t));
                }
            }
            if let (Some(budget), Some(f0), Some(f)) = (disk, free0, free_bytes(&watched)) {
                if f0.saturating_sub(f) > budget {
                    stop(&mut child);
                    let _ = std::fs::remove_file(&log);
                    return Ok(Built::OverDisk(budget));
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        if status.success() {
            return Ok(Built::Ok);
        }
        if text.contains("may not be deterministic") {
            return Ok(Built::Differs);
        }
        if text.contains("timed out after") {
            return Ok(Built::TimedOut(timeout.unwrap_or_default()));
        }
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        Ok(Built::Failed(
            tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
        ))
    }
}

/// Bytes free on the filesystem holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
}

fn tempfile_path(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "vouch-{tag}-{}-{}.log",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ))
}
