//! `vouch rebuild`: the second builder. It picks work from the log (paths
//! that watched keys attested and no other key confirmed yet: the
//! monitor's notion) or from a list of store paths and `.drv` files, finds
//! each output's derivation, rebuilds it here with the real Nix (never
//! substituting the output itself), and attests what this machine got with
//! its own key, agreeing or not: a disagreement is the most valuable thing
//! a rebuilder finds.
//!
//! - **Which derivation**: the entry's `deriver` if it is in the store, or
//!   one produced by instantiating the operator's expression (`--expr`,
//!   say the release file the paths came from). The deriver is not covered
//!   by the builder's signature, so a derivation is used only if its
//!   outputs include the entry's store path.
//! - **Building here**: if the outputs are already in the store (perhaps
//!   substituted), `nix-store --realise --check --keep-failed` rebuilds
//!   them and keeps a differing result beside them (`<path>.check`);
//!   otherwise the inputs are realised (substitutes allowed) and then the
//!   derivation with substitution off.
//! - **Budgets**: a time budget per build (Nix's `timeout`, with a wall
//!   clock behind it) and a disk budget (the build is stopped when the
//!   store's filesystem loses more than it).
//! - **State** (`--state DIR`): every derivation's outcome is recorded
//!   (`done/<drv>.json`, atomically) after its attestations are
//!   acknowledged by the log or it ended without one (no derivation, build
//!   failed, timed out, over the disk budget), so a restart never rebuilds a
//!   finished derivation; the scan position and the pending work are kept
//!   too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde::{Deserialize, Serialize};
use vouch::log_client::LogClient;
use vouch_spec::attestation::{Attestation, Entry};
use vouch_spec::nix::narinfo::format_sha256;
use vouch_spec::nix::{NixPublicKey, NixSecretKey, StorePath};
use vouch_spec::note::Ed25519Verifier;
use vouch_spec::tile::{Tile, TileKind, TILE_WIDTH};

use super::nixcmd::{Built, Nix};
use super::progress::Progress;

/// What to rebuild and how.
pub struct Settings {
    /// The log (to read work from and to attest to).
    pub log: LogClient,
    /// The log's key, to check the checkpoints read work under.
    pub log_vkey: Option<Ed25519Verifier>,
    /// This rebuilder's key.
    pub key: NixSecretKey,
    /// Keys whose unconfirmed attestations are work.
    pub watch: Vec<NixPublicKey>,
    /// The store to build in.
    pub nix: Nix,
    /// An expression whose derivations map outputs to derivations.
    pub expr: Option<PathBuf>,
    /// Where state is kept.
    pub state: PathBuf,
    /// Builds at once.
    pub jobs: usize,
    /// Time budget per build.
    pub timeout: Option<Duration>,
    /// Disk budget per build (bytes).
    pub disk: Option<u64>,
}

/// One thing to rebuild.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Work {
    /// A store path (from the log or a list), or empty for a `.drv`.
    pub path: String,
    /// The derivation, when known (a listed `.drv`, or the entry's deriver).
    pub drv: Option<String>,
    /// The NAR hash a watched key attested (to compare with), nix32.
    pub watched: Option<String>,
}

/// How one derivation (or one path without one) ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Rebuilt and attested; per output: path, our NAR hash, and whether it
    /// agrees with the watched attestation (None: nothing to compare).
    Rebuilt {
        /// The derivation.
        drv: String,
        /// (path, NAR hash, agrees).
        outputs: Vec<(String, String, Option<bool>)>,
    },
    /// No derivation whose outputs include the path.
    NoDerivation {
        /// The path.
        path: String,
        /// Why not.
        reason: String,
    },
    /// The build failed.
    Failed {
        /// The derivation.
        drv: String,
        /// What Nix said.
        reason: String,
    },
    /// The build took longer than its budget.
    TimedOut {
        /// The derivation.
        drv: String,
        /// The budget.
        secs: u64,
    },
    /// The build used more disk than its budget.
    OverDisk {
        /// The derivation.
        drv: String,
        /// The budget.
        bytes: u64,
    },
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Outcome::Rebuilt { outputs, .. } => {
                if outputs.iter().any(|o| o.2 == Some(false)) {
                    "disagreed"
                } else if outputs.iter().any(|o| o.2 == Some(true)) {
                    "agreed"
                } else {
                    "rebuilt"
                }
            }
            Outcome::NoDerivation { .. } => "no_derivation",
            Outcome::Failed { .. } => "build_failed",
            Outcome::TimedOut { .. } => "timed_out",
            Outcome::OverDisk { .. } => "over_disk_budget",
        }
    }
}

/// What the log scan keeps between runs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Scan {
    /// Entries read.
    position: u64,
    /// Watched attestations not confirmed yet: path → work.
    pending: BTreeMap<String, Work>,
}

/// The rebuilder's metrics.
#[derive(Clone, Default)]
pub struct Metrics {
    outcomes: Family<Vec<(String, String)>, Counter>,
    building: Gauge,
    pending: Gauge,
}

impl Metrics {
    /// Registers them.
    pub fn register(&self, r: &mut vouch::metrics::Registry) {
        r.register(
            "vouch_rebuild_outcomes",
            "Derivations rebuilt (agreed, disagreed) or skipped, by outcome.",
            self.outcomes.clone(),
        );
        r.register(
            "vouch_rebuild_building",
            "Builds running now.",
            self.building.clone(),
        );
        r.register(
            "vouch_rebuild_pending",
            "Work not done yet.",
            self.pending.clone(),
        );
    }
}

/// The rebuilder.
pub struct Rebuilder {
    s: Settings,
    /// Metrics.
    pub metrics: Metrics,
    /// Output path → derivation, from `--expr` (read once, when needed).
    by_output: Mutex<Option<BTreeMap<String, String>>>,
}

/// A summary of a run.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Outcome label → count.
    pub counts: BTreeMap<&'static str, u64>,
    /// Disagreements: (path, our hash, the watched hash).
    pub disagreements: Vec<(String, String, String)>,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = |k| self.counts.get(k).copied().unwrap_or(0);
        write!(
            f,
            "rebuilt {}: {} agreed, {} disagreed, {} with nothing to compare; skipped: {} no derivation, {} build failed, {} timed out, {} over the disk budget",
            n("agreed") + n("disagreed") + n("rebuilt"),
            n("agreed"),
            n("disagreed"),
            n("rebuilt"),
            n("no_derivation"),
            n("build_failed"),
            n("timed_out"),
            n("over_disk_budget"),
        )?;
        for (p, ours, theirs) in &self.disagreements {
            write!(f, "\nDISAGREES {p}: built {ours} here, attested {theirs}")?;
        }
        Ok(())
    }
}

/// One output built here: path, NAR hash, NAR size, references.
type BuiltOutput = (String, [u8; 32], u64, Vec<StorePath>);

fn base(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

impl Rebuilder {
    /// A rebuilder with these settings.
    pub fn new(s: Settings) -> anyhow::Result<Rebuilder> {
        std::fs::create_dir_all(s.state.join("done"))
            .with_context(|| format!("creating {}", s.state.display()))?;
        Ok(Rebuilder {
            s,
            metrics: Metrics::default(),
            by_output: Mutex::new(None),
        })
    }

    fn done_file(&self, key: &str) -> PathBuf {
        self.s.state.join("done").join(format!("{key}.json"))
    }

    /// The recorded outcome for a derivation (or path) key.
    fn done(&self, key: &str) -> Option<Outcome> {
        serde_json::from_slice(&std::fs::read(self.done_file(key)).ok()?).ok()
    }

    fn record(&self, key: &str, o: &Outcome) -> anyhow::Result<()> {
        let f = self.done_file(key);
        vouch::atomic::write(&f, &serde_json::to_vec_pretty(o)?)
            .with_context(|| format!("recording {}", f.display()))
    }

    fn load_scan(&self) -> anyhow::Result<Scan> {
        let p = self.s.state.join("scan.json");
        match std::fs::read(&p) {
            Ok(b) => {
                serde_json::from_slice(&b).with_context(|| format!("{} is damaged", p.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Scan::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
        }
    }

    fn save_scan(&self, scan: &Scan) -> anyhow::Result<()> {
        vouch::atomic::write(&self.s.state.join("scan.json"), &serde_json::to_vec(scan)?)
            .context("saving the scan position")
    }

    /// Reads the log's new entries: watched attestations become work,
    /// attestations by any other key of the same NAR confirm them.
    pub fn scan(&self) -> anyhow::Result<Vec<Work>> {
        let mut scan = self.load_scan()?;
        let cp = self.s.log.checkpoint()?;
        let size = match &self.s.log_vkey {
            Some(v) => {
                vouch_spec::checkpoint::open_checkpoint(&cp, &[v])
                    .context("the log's checkpoint does not verify")?
                    .checkpoint
                    .size
            }
            None => {
                let n = vouch_spec::note::Note::parse(&cp)?;
                vouch_spec::checkpoint::Checkpoint::parse(&n.text)?.size
            }
        };
        let watched: BTreeSet<String> = self.s.watch.iter().map(|k| k.to_string()).collect();
        let mut confirmed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut index = scan.position;
        while index < size {
            let t = Tile::in_tree(TileKind::Entries, index / TILE_WIDTH, size)
                .context("entry bundle beyond the tree")?;
            let data = self.s.log.tile(&t, vouch::tiles::MAX_BUNDLE_BYTES)?;
            let entries = vouch_spec::bundle::decode_width(&data, usize::from(t.width))
                .with_context(|| t.path())?;
            for e in &entries[(index % TILE_WIDTH) as usize..] {
                index += 1;
                let Ok(e) = Entry::decode(e) else { continue };
                let path = e.path.full();
                let hash = format_sha256(&e.nar_hash);
                if watched.contains(&e.key.to_string()) {
                    scan.pending.entry(path.clone()).or_insert(Work {
                        path,
                        drv: e.deriver.as_ref().map(|d| d.full()),
                        watched: Some(hash),
                    });
                } else {
                    confirmed.entry(path).or_default().insert(hash);
                }
            }
        }
        scan.pending.retain(|p, w| {
            !confirmed
                .get(p)
                .is_some_and(|hs| w.watched.as_ref().is_some_and(|h| hs.contains(h)))
        });
        scan.position = index;
        self.save_scan(&scan)?;
        self.metrics
            .pending
            .set(i64::try_from(scan.pending.len()).unwrap_or(i64::MAX));
        Ok(scan.pending.into_values().collect())
    }

    /// Forgets pending work that is done (after a round).
    fn prune_scan(&self) -> anyhow::Result<()> {
        let mut scan = self.load_scan()?;
        let before = scan.pending.len();
        scan.pending.retain(|p, w| {
            let key = w.drv.as_deref().map(base).map(str::to_string);
            key.as_deref().and_then(|k| self.done(k)).is_none()
                && self.done(&format!("path-{}", base(p))).is_none()
        });
        if scan.pending.len() != before {
            self.save_scan(&scan)?;
        }
        Ok(())
    }

    /// The derivation in the store whose outputs include `path`.
    fn derivation_for(&self, w: &Work) -> Result<String, String> {
        // A listed path that is in the store names its own deriver.
        let from_store = (w.drv.is_none() && !w.path.is_empty() && self.s.nix.is_valid(&w.path))
            .then(|| {
                self.s
                    .nix
                    .path_info(&w.path)
                    .ok()?
                    .deriver
                    .map(|d| d.full())
            })
            .flatten();
        if let Some(d) = w
            .drv
            .as_deref()
            .or(from_store.as_deref())
            .filter(|d| d.ends_with(".drv"))
        {
            if w.path.is_empty() {
                return Ok(d.to_string());
            }
            if self.s.nix.is_valid(d) {
                match self.s.nix.derivations(&[d]) {
                    Ok(m) if m.values().any(|x| x.outputs.values().any(|o| *o == w.path)) => {
                        return Ok(d.to_string())
                    }
                    Ok(_) => {
                        tracing::warn!(path = %w.path, deriver = d, "the entry's deriver does not build this path; not used");
                    }
                    Err(e) => tracing::warn!(error = %e, "reading the deriver"),
                }
            }
        }
        let Some(expr) = &self.s.expr else {
            return Err(format!(
                "the entry's deriver {} is not in the store (or does not build the path), and no --expr maps outputs to derivations",
                w.drv.as_deref().unwrap_or("(none)")
            ));
        };
        let mut g = self
            .by_output
            .lock()
            .map_err(|_| "lock poisoned".to_string())?;
        if g.is_none() {
            let drvs = self.s.nix.instantiate(expr).map_err(|e| e.to_string())?;
            let refs: Vec<&str> = drvs.iter().map(String::as_str).collect();
            let m = self.s.nix.derivations(&refs).map_err(|e| e.to_string())?;
            let mut by = BTreeMap::new();
            for (drv, d) in m {
                for o in d.outputs.values() {
                    by.insert(o.clone(), drv.clone());
                }
            }
            *g = Some(by);
        }
        g.as_ref()
            .and_then(|m| m.get(&w.path).cloned())
            .ok_or_else(|| {
                format!(
                    "no derivation of {} (nor the entry's deriver) has output {}",
                    expr.display(),
                    w.path
                )
            })
    }

    /// Builds `drv` here and returns (output path → (NAR hash, size, refs)).
    fn build(&self, drv: &str) -> anyhow::Result<Result<Vec<BuiltOutput>, Outcome>> {
        let nix = &self.s.nix;
        let d = nix
            .derivations(&[drv])?
            .into_values()
            .next()
            .with_context(|| format!("{drv} shows no derivation"))?;
        let outputs: Vec<String> = d.outputs.values().cloned().collect();
        let (t, disk) = (self.s.timeout, self.s.disk);
        let check = outputs.iter().all(|o| nix.is_valid(o));
        let built = if check {
            // Already here (perhaps substituted): rebuild and compare.
            nix.realise(&[drv], &["--check", "--keep-failed"], t, disk)?
        } else {
            if !d.input_drvs.is_empty() {
                let inputs: Vec<&str> = d.input_drvs.iter().map(String::as_str).collect();
                match nix.realise(&inputs, &[], t, disk)? {
                    Built::Ok => {}
                    Built::Failed(r) => {
                        return Ok(Err(Outcome::Failed {
                            drv: drv.to_string(),
                            reason: format!("its inputs: {r}"),
                        }))
                    }
                    other => return Ok(Err(self.unbuilt(drv, other))),
                }
            }
            // The output itself is built here, never substituted.
            nix.realise(&[drv], &["--option", "substitute", "false"], t, disk)?
        };
        match built {
            Built::Ok => {}
            Built::Differs => {}
            other => return Ok(Err(self.unbuilt(drv, other))),
        }
        let mut out = Vec::new();
        for o in outputs {
            let info = nix.path_info(&o)?;
            let check_copy = nix.physical(&format!("{o}.check"));
            if built == Built::Differs && check_copy.exists() {
                let p = StorePath::parse(&o)?;
                let nar = super::nar::summarize(&check_copy, p.store_dir())
                    .with_context(|| format!("hashing {}", check_copy.display()))?;
                let refs = info
                    .references
                    .into_iter()
                    .filter(|r| nar.hash_parts.contains(r.hash_part()) || *r == p)
                    .collect();
                out.push((o, nar.hash, nar.size, refs));
                let _ = std::fs::remove_dir_all(&check_copy)
                    .or_else(|_| std::fs::remove_file(&check_copy));
            } else {
                out.push((o, info.nar_hash, info.nar_size, info.references));
            }
        }
        Ok(Ok(out))
    }

    fn unbuilt(&self, drv: &str, b: Built) -> Outcome {
        let drv = drv.to_string();
        match b {
            Built::TimedOut(t) => Outcome::TimedOut {
                drv,
                secs: t.as_secs(),
            },
            Built::OverDisk(bytes) => Outcome::OverDisk { drv, bytes },
            Built::Failed(reason) => Outcome::Failed { drv, reason },
            Built::Ok | Built::Differs => Outcome::Failed {
                drv,
                reason: "unexpected".into(),
            },
        }
    }

    /// Submits until the log acknowledges (waiting while it is busy or
    /// unreachable; a refusal for good is an error).
    fn submit(&self, atts: &[Attestation]) -> anyhow::Result<()> {
        let body: Vec<u8> = atts.iter().flat_map(|a| a.encode()).collect();
        let mut wait = 1u64;
        loop {
            match self.s.log.submit(&body, false) {
                Ok(_) => return Ok(()),
                Err(e) if e.is_transient() => {
                    tracing::info!(error = %e, wait, "log busy or unreachable; retrying");
                    std::thread::sleep(Duration::from_secs(wait));
                    wait = (wait * 2).min(60);
                }
                Err(e) => return Err(e).context("the log refused the attestations"),
            }
        }
    }

    /// Rebuilds one piece of work (a no-op if its derivation is done).
    fn one(&self, w: &Work, watched: &BTreeMap<String, String>) -> anyhow::Result<Option<Outcome>> {
        let drv = match self.derivation_for(w) {
            Ok(d) => d,
            Err(reason) => {
                let key = format!("path-{}", base(&w.path));
                if self.done(&key).is_some() {
                    return Ok(None);
                }
                let o = Outcome::NoDerivation {
                    path: w.path.clone(),
                    reason,
                };
                self.record(&key, &o)?;
                return Ok(Some(o));
            }
        };
        if self.done(base(&drv)).is_some() {
            return Ok(None);
        }
        // Attested by this rebuilder already (a run killed after the log
        // acknowledged but before recording): finished, not rebuilt.
        if let Some(o) = self.already_attested(&drv, watched) {
            self.record(base(&drv), &o)?;
            return Ok(Some(o));
        }
        tracing::info!(%drv, "rebuilding");
        self.metrics.building.inc();
        let r = self.build(&drv);
        self.metrics.building.dec();
        let o = match r? {
            Err(o) => o,
            Ok(outputs) => {
                let deriver = StorePath::parse(&drv).ok();
                let atts: Vec<Attestation> = outputs
                    .iter()
                    .map(|(p, h, n, refs)| -> anyhow::Result<Attestation> {
                        Ok(Attestation::sign(
                            StorePath::parse(p)?,
                            *h,
                            *n,
                            refs.clone(),
                            deriver.clone(),
                            &self.s.key,
                        ))
                    })
                    .collect::<anyhow::Result<_>>()?;
                self.submit(&atts)?;
                Outcome::Rebuilt {
                    drv: drv.clone(),
                    outputs: outputs
                        .iter()
                        .map(|(p, h, _, _)| {
                            let ours = format_sha256(h);
                            let theirs = watched.get(p).cloned().or_else(|| self.watched_in_log(p));
                            let agrees = theirs.map(|t| t == ours);
                            (p.clone(), ours, agrees)
                        })
                        .collect(),
                }
            }
        };
        self.record(base(&drv), &o)?;
        Ok(Some(o))
    }

    /// The outcome of `drv` if this rebuilder's key attested every output.
    fn already_attested(&self, drv: &str, watched: &BTreeMap<String, String>) -> Option<Outcome> {
        let d = self.s.nix.derivations(&[drv]).ok()?.into_values().next()?;
        let me = self.s.key.public();
        let mut outputs = Vec::new();
        for o in d.outputs.values() {
            let hash = StorePath::parse(o).ok()?.hash_part().to_string();
            let l = self.s.log.lookup(&hash, false).ok()?;
            let ours = l.entries.iter().find_map(|le| {
                let e = Entry::decode(le.entry.as_bytes()).ok()?;
                (e.path.full() == *o && e.key == me).then(|| format_sha256(&e.nar_hash))
            })?;
            let theirs = watched.get(o).cloned().or_else(|| self.watched_in_log(o));
            outputs.push((o.clone(), ours.clone(), theirs.map(|t| t == ours)));
        }
        tracing::info!(%drv, "already attested by this rebuilder; recorded, not rebuilt");
        Some(Outcome::Rebuilt {
            drv: drv.to_string(),
            outputs,
        })
    }

    /// The NAR hash a watched key attested for `path` in the log, if any.
    fn watched_in_log(&self, path: &str) -> Option<String> {
        let hash = StorePath::parse(path).ok()?.hash_part().to_string();
        let l = self.s.log.lookup(&hash, false).ok()?;
        l.entries.iter().find_map(|le| {
            let e = Entry::decode(le.entry.as_bytes()).ok()?;
            (e.path.full() == path && self.s.watch.contains(&e.key))
                .then(|| format_sha256(&e.nar_hash))
        })
    }

    /// Rebuilds `work`, `jobs` at a time; returns what happened this run.
    pub fn run(&self, work: Vec<Work>) -> anyhow::Result<Summary> {
        let watched: BTreeMap<String, String> = work
            .iter()
            .filter_map(|w| Some((w.path.clone(), w.watched.clone()?)))
            .collect();
        let progress = Progress::new(work.len() as u64, "derivations");
        let queue = Mutex::new(work.into_iter());
        let summary = Arc::new(Mutex::new(Summary::default()));
        let done = std::sync::atomic::AtomicU64::new(0);
        let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..self.s.jobs.max(1) {
                s.spawn(|| loop {
                    let next = queue.lock().ok().and_then(|mut q| q.next());
                    let Some(w) = next else { return };
                    match self.one(&w, &watched) {
                        Ok(Some(o)) => {
                            let label = o.label();
                            self.metrics
                                .outcomes
                                .get_or_create(&vec![("outcome".into(), label.into())])
                                .inc();
                            tracing::info!(outcome = label, details = ?o, "done");
                            if let Ok(mut sm) = summary.lock() {
                                *sm.counts.entry(label).or_default() += 1;
                                if let Outcome::Rebuilt { outputs, .. } = &o {
                                    for (p, ours, agrees) in outputs {
                                        if *agrees == Some(false) {
                                            let theirs =
                                                watched.get(p).cloned().unwrap_or_default();
                                            sm.disagreements.push((
                                                p.clone(),
                                                ours.clone(),
                                                theirs,
                                            ));
                                        }
                                    }
                                }
                            }
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::error!(path = %w.path, error = %e, "rebuild stopped");
                            if let Ok(mut f) = first_error.lock() {
                                f.get_or_insert(e);
                            }
                            return;
                        }
                    }
                    let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    progress.set(n);
                });
            }
        });
        progress.finish();
        self.prune_scan()?;
        if let Some(e) = first_error.into_inner().ok().flatten() {
            return Err(e);
        }
        let s = summary.lock().map(|s| s.clone()).unwrap_or_default();
        Ok(s)
    }
}

/// Work from a list file: one store path or `.drv` per line (`#` comments).
pub fn work_from_list(file: &Path) -> anyhow::Result<Vec<Work>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        StorePath::parse(l).with_context(|| {
            format!(
                "{}, line {}: {l:?} is not a store path",
                file.display(),
                i + 1
            )
        })?;
        if l.ends_with(".drv") {
            out.push(Work {
                path: String::new(),
                drv: Some(l.to_string()),
                watched: None,
            });
        } else {
            out.push(Work {
                path: l.to_string(),
                drv: None,
                watched: None,
            });
        }
    }
    Ok(out)
}
