//! The monitor: follows a Vouch log through its tiles, recomputes the tree
//! from the entries and checks it against every checkpoint, checks each new
//! checkpoint's consistency with the last, verifies every builder signature,
//! and keeps store path → builder key → NAR hash to report builders that
//! disagree and watched keys that nobody independent confirms.
//!
//! Reports are JSON lines on stdout; the state (position, frontier, and the
//! path map) is saved as JSON after every round so a restart resumes. Each
//! new checkpoint is judged against the kept one by the shared checkpoint
//! tracker (`vouch::tracker`); the monitor's position moves only once every
//! entry up to it was read and the recomputed root matched.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use serde_json::json;
use vouch::log_client::LogClient;
use vouch::tracker::{MemoryStore, Relation, Tracker, TrackerError};
use vouch_spec::attestation::{Entry, References};
use vouch_spec::checkpoint::open_checkpoint;
use vouch_spec::compact::CompactRange;
use vouch_spec::hash::Hash;
use vouch_spec::nix::{NixPublicKey, StorePath};
use vouch_spec::note::Ed25519Verifier;
use vouch_spec::tile::{Tile, TileKind, TILE_WIDTH};
use vouch_spec::{bundle, leaf_hash};

/// Monitor settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The log's tlog-tiles prefix.
    pub url: String,
    /// The log's vkey.
    pub vkey: String,
    /// Where to keep the state (none: start from 0 every run).
    pub state: Option<PathBuf>,
    /// Keys (Nix `name:base64`) whose attestations need independent confirmation.
    pub watch: Vec<String>,
    /// Seconds a watched key's attestation may stay unconfirmed.
    pub grace_secs: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct Attested {
    nar_hash: String,
    nar_size: u64,
    index: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pending {
    path: String,
    key: String,
    nar_hash: String,
    index: u64,
    seen: u64,
}

/// What the monitor remembers between rounds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MonitorState {
    size: u64,
    frontier: Vec<String>,
    /// The last checkpoint fully read (signed note text).
    checkpoint: String,
    /// store path → builder key → attestations (more than one = equivocation).
    paths: BTreeMap<String, BTreeMap<String, Vec<Attested>>>,
    pending: Vec<Pending>,
    reported: BTreeSet<String>,
}

/// The monitor's metrics.
#[derive(Clone, Default)]
pub struct Counters {
    /// Entries processed.
    pub entries: Gauge,
    /// Disagreements reported.
    pub disagreements: Counter,
    /// Unconfirmed watched attestations reported.
    pub unconfirmed: Counter,
    /// Log misbehaviour reports.
    pub misbehaviour: Counter,
    /// Invalid entries.
    pub invalid: Counter,
}

impl Counters {
    /// Registers them in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "vouch_monitor_entries",
            "Entries read and checked.",
            self.entries.clone(),
        );
        registry.register(
            "vouch_monitor_disagreements",
            "Paths for which builders attested different NARs.",
            self.disagreements.clone(),
        );
        registry.register(
            "vouch_monitor_unconfirmed",
            "Watched keys' attestations no independent builder confirmed within the grace period.",
            self.unconfirmed.clone(),
        );
        registry.register(
            "vouch_monitor_log_misbehaviour",
            "Inconsistent checkpoints or trees that do not match their checkpoint.",
            self.misbehaviour.clone(),
        );
        registry.register(
            "vouch_monitor_invalid_entries",
            "Entries that do not decode or whose signature does not verify.",
            self.invalid.clone(),
        );
    }
}

/// The worst finding of a round, as an exit code: 0 none, 1 builder
/// problems (disagreement, unconfirmed, invalid entry), 2 log misbehaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Severity(pub i32);

/// A monitor.
pub struct Monitor {
    settings: Settings,
    verifier: Ed25519Verifier,
    origin: String,
    watch: Vec<NixPublicKey>,
    log: LogClient,
    state: MonitorState,
    /// Metrics.
    pub counters: Arc<Counters>,
}

fn report(v: serde_json::Value) {
    println!("{v}");
}

impl Monitor {
    /// A monitor resuming from its state file, if any.
    pub fn new(settings: Settings, http: vouch::http::HttpClient) -> anyhow::Result<Monitor> {
        let verifier = Ed25519Verifier::from_vkey(&settings.vkey)
            .with_context(|| format!("log vkey {:?}", settings.vkey))?;
        let origin = vouch_spec::note::NoteVerifier::name(&verifier).to_string();
        let watch = settings
            .watch
            .iter()
            .map(|k| NixPublicKey::parse(k).with_context(|| format!("--watch {k:?}")))
            .collect::<anyhow::Result<_>>()?;
        let state = match &settings.state {
            Some(p) if p.exists() => serde_json::from_slice(
                &std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
            )
            .with_context(|| format!("{} is not a monitor state file", p.display()))?,
            _ => MonitorState::default(),
        };
        Ok(Monitor {
            log: LogClient::new(http, &settings.url),
            settings,
            verifier,
            origin,
            watch,
            state,
            counters: Arc::default(),
        })
    }

    fn save(&self) -> anyhow::Result<()> {
        if let Some(p) = &self.settings.state {
            vouch::atomic::write(p, &serde_json::to_vec(&self.state)?)
                .with_context(|| format!("writing {}", p.display()))?;
        }
        Ok(())
    }

    /// One round: catch up to the log's current checkpoint. Returns the severity.
    pub fn round(&mut self) -> anyhow::Result<Severity> {
        let mut sev = Severity(0);
        let cp_bytes = self.log.checkpoint()?;
        let opened = open_checkpoint(&cp_bytes, &[&self.verifier])
            .context("the log's checkpoint does not verify")?;
        let cp = opened.checkpoint;
        let old = self.state.size;
        let kept = if self.state.checkpoint.is_empty() {
            MemoryStore::default()
        } else {
            MemoryStore::with(&self.origin, self.state.checkpoint.clone().into_bytes())
        };
        let tracker = Tracker::new(kept);
        // A failed fetch ends the round as an error; only a proof that
        // does not verify is evidence of misbehaviour.
        let problem = match tracker.check(&self.origin, &cp_bytes, &cp, &self.log) {
            Ok(c) if c.relation == Relation::Behind => {
                Some(format!("tree shrank from {old} to {}", cp.size))
            }
            Ok(_) => None,
            Err(TrackerError::Fork(f)) => Some(f.why.to_string()),
            Err(e) => return Err(e.into()),
        };
        if let Some(error) = problem {
            self.counters.misbehaviour.inc();
            report(
                json!({"kind": "log_inconsistent", "error": error, "old_checkpoint": self.state.checkpoint, "new_checkpoint": String::from_utf8_lossy(&cp_bytes)}),
            );
            return Ok(Severity(2));
        }
        // Read the new entries, rebuilding the tree.
        let frontier: Vec<Hash> = self
            .state
            .frontier
            .iter()
            .map(|h| Hash::from_base64(h))
            .collect::<Result<_, _>>()?;
        let mut cr = CompactRange::from_parts(old, frontier)?;
        let mut index = old;
        while index < cp.size {
            let b = index / TILE_WIDTH;
            let t =
                Tile::in_tree(TileKind::Entries, b, cp.size).context("bundle beyond the tree")?;
            let data = self.log.tile(&t, vouch::tiles::MAX_BUNDLE_BYTES)?;
            let entries =
                bundle::decode_width(&data, usize::from(t.width)).with_context(|| t.path())?;
            for e in &entries[(index % TILE_WIDTH) as usize..] {
                cr.append(leaf_hash(e), |_, _| {});
                sev = sev.max(self.entry(index, e));
                index += 1;
            }
        }
        self.counters
            .entries
            .set(i64::try_from(cp.size).unwrap_or(i64::MAX));
        if cr.root() != cp.root {
            self.counters.misbehaviour.inc();
            report(
                json!({"kind": "log_tree_mismatch", "size": cp.size, "checkpoint": String::from_utf8_lossy(&cp_bytes), "computed_root": cr.root().to_base64()}),
            );
            return Ok(Severity(2));
        }
        self.state.size = cp.size;
        self.state.frontier = cr.hashes().iter().map(|h| h.to_base64()).collect();
        self.state.checkpoint = String::from_utf8_lossy(&cp_bytes).into_owned();
        sev = sev.max(self.check_pending());
        self.save()?;
        Ok(sev)
    }

    fn entry(&mut self, index: u64, bytes: &[u8]) -> Severity {
        let e = match Entry::decode(bytes) {
            Ok(e) => e,
            Err(err) => {
                self.counters.invalid.inc();
                report(json!({"kind": "invalid_entry", "index": index, "error": err.to_string()}));
                return Severity(1);
            }
        };
        let refs = match &e.references {
            References::Inline(_) => None,
            References::Digest(d) => self.log.references(d).ok().flatten().map(|names| {
                names
                    .iter()
                    .filter_map(|l| StorePath::from_base(e.path.store_dir(), l).ok())
                    .collect::<Vec<_>>()
            }),
        };
        if let Err(err) = e.verify(refs.as_deref()) {
            self.counters.invalid.inc();
            report(
                json!({"kind": "invalid_entry", "index": index, "path": e.path.full(), "key": e.key.to_string(), "error": err.to_string()}),
            );
            return Severity(1);
        }
        let path = e.path.full();
        let key = e.key.to_string();
        let att = Attested {
            nar_hash: vouch_spec::nix::narinfo::format_sha256(&e.nar_hash),
            nar_size: e.nar_size,
            index,
        };
        let by_key = self.state.paths.entry(path.clone()).or_default();
        let list = by_key.entry(key.clone()).or_default();
        if !list
            .iter()
            .any(|a| a.nar_hash == att.nar_hash && a.nar_size == att.nar_size)
        {
            list.push(att.clone());
        }
        if self.watch.contains(&e.key) {
            self.state.pending.push(Pending {
                path: path.clone(),
                key: key.clone(),
                nar_hash: att.nar_hash.clone(),
                index,
                seen: crate::now(),
            });
        }
        let distinct: BTreeSet<(&str, u64)> = by_key
            .values()
            .flatten()
            .map(|a| (a.nar_hash.as_str(), a.nar_size))
            .collect();
        if distinct.len() > 1 {
            let id = format!("disagreement {path} {}", distinct.len());
            let attestations: Vec<_> = by_key
                .iter()
                .flat_map(|(k, v)| v.iter().map(move |a| json!({"key": k, "nar_hash": a.nar_hash, "nar_size": a.nar_size, "index": a.index})))
                .collect();
            if self.state.reported.insert(id) {
                self.counters.disagreements.inc();
                report(json!({"kind": "disagreement", "path": path, "attestations": attestations}));
            }
            return Severity(1);
        }
        Severity(0)
    }

    fn check_pending(&mut self) -> Severity {
        let now = crate::now();
        let mut sev = Severity(0);
        let watched: BTreeSet<String> = self.watch.iter().map(|k| k.to_string()).collect();
        let mut still = Vec::new();
        for p in std::mem::take(&mut self.state.pending) {
            let confirmed = self.state.paths.get(&p.path).is_some_and(|m| {
                m.iter().any(|(k, v)| {
                    !watched.contains(k) && v.iter().any(|a| a.nar_hash == p.nar_hash)
                })
            });
            if confirmed {
                continue;
            }
            if now.saturating_sub(p.seen) >= self.settings.grace_secs {
                let id = format!("unconfirmed {} {} {}", p.path, p.key, p.nar_hash);
                if self.state.reported.insert(id) {
                    self.counters.unconfirmed.inc();
                    report(
                        json!({"kind": "unconfirmed", "path": p.path, "key": p.key, "nar_hash": p.nar_hash, "index": p.index, "age_secs": now.saturating_sub(p.seen)}),
                    );
                }
                sev = Severity(1);
            } else {
                still.push(p);
            }
        }
        self.state.pending = still;
        sev
    }
}
