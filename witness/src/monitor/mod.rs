//! The monitor (`spec/PROTOCOL.md` §6.4): follows a Vouch log through its
//! tiles, recomputes the tree from the entries and checks it against every
//! checkpoint, checks each new checkpoint's consistency with the last (the
//! shared checkpoint tracker), verifies every builder signature, and keeps,
//! on disk ([`db`]), every store path's attestations and every builder's
//! record, to report builders that disagree, watched keys that nobody
//! independent confirms, and any entry by a key at or after its logged
//! transition (§3.6), which an honest log never appends.
//!
//! It keeps up with the log at any size: entries are read a chunk of
//! bundles at a time (fetched and verified on `jobs` threads, signatures in
//! batches), and each chunk is applied and committed atomically with the
//! position it reaches, so a SIGKILL loses nothing and counts nothing
//! twice, and memory does not grow with the log. Findings are JSON lines
//! on stdout (each printed at least once: before the commit that records
//! it), and the reports and the web view read the database ([`report`],
//! [`web`]).

pub mod db;
pub mod report;
pub mod web;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::json;
use vouch::log_client::{FetchError, LogClient};
use vouch::tracker::{MemoryStore, Relation, Tracker, TrackerError};
use vouch_spec::attestation::{Entry, References};
use vouch_spec::checkpoint::open_checkpoint;
use vouch_spec::compact::CompactRange;
use vouch_spec::hash::Hash;
use vouch_spec::nix::key::fingerprint;
use vouch_spec::nix::narinfo::format_sha256;
use vouch_spec::nix::{NixPublicKey, StorePath};
use vouch_spec::note::Ed25519Verifier;
use vouch_spec::tile::{Tile, TileKind, TILE_WIDTH};
use vouch_spec::transition::{self, EntryKind, Transition};
use vouch_spec::{bundle, leaf_hash};

use db::{Att, MonitorDb, Position, TransitionRecord, Violation};

/// Entry bundles read, verified and committed together.
const CHUNK_BUNDLES: u64 = 16;

/// Monitor settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The log's tlog-tiles prefix.
    pub url: String,
    /// The log's vkey.
    pub vkey: String,
    /// The database directory.
    pub state: PathBuf,
    /// Keys (Nix `name:base64`) whose attestations need independent confirmation.
    pub watch: Vec<String>,
    /// Seconds a watched key's attestation may stay unconfirmed.
    pub grace_secs: u64,
    /// Threads fetching and verifying entries.
    pub jobs: usize,
}

/// Why a round failed (a round that finds log misbehaviour does not fail:
/// it reports it).
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The log could not be read.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The monitor's database failed.
    #[error(transparent)]
    Db(#[from] db::DbError),
    /// The checkpoint does not verify.
    #[error("the log's checkpoint does not verify: {0}")]
    Checkpoint(String),
    /// An entry bundle is malformed.
    #[error("{tile}: {msg}")]
    Bundle {
        /// Its path.
        tile: String,
        /// What is wrong.
        msg: String,
    },
    /// The tracker's own failure.
    #[error("{0}")]
    Tracker(String),
    /// The settings are unusable.
    #[error("{0}")]
    Settings(String),
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

/// What the web view shows about the monitor's progress.
#[derive(Clone, Debug, Default)]
pub struct Status {
    /// (Unix seconds, entries read) after recent rounds, oldest first.
    pub samples: Vec<(u64, u64)>,
    /// The last checkpoint fully read (signed note).
    pub checkpoint: String,
    /// When the last round ended.
    pub last_round: u64,
    /// The last round's error, if it failed.
    pub last_error: Option<String>,
}

/// A monitor.
pub struct Monitor {
    settings: Settings,
    verifier: Ed25519Verifier,
    origin: String,
    watch: BTreeSet<String>,
    log: LogClient,
    /// The database.
    pub db: Arc<MonitorDb>,
    /// Metrics.
    pub counters: Arc<Counters>,
    /// Progress, for the web view.
    pub status: Arc<Mutex<Status>>,
}

/// Seconds since the epoch.
fn now() -> u64 {
    crate::now()
}

/// A chunk of entries read and checked, ready to apply.
struct Prepared {
    /// The position after it.
    to: u64,
    /// (index, entry bytes).
    entries: Vec<(u64, Vec<u8>)>,
    /// Each entry's check, in order.
    checked: Vec<Checked>,
}

/// One entry, decoded and checked.
enum Checked {
    Valid(Entry),
    /// A transition whose signatures verify.
    Transition(Transition),
    Invalid(String, Option<Entry>),
}

impl Monitor {
    /// A monitor resuming from its database.
    pub fn new(settings: Settings, http: vouch::http::HttpClient) -> Result<Monitor, MonitorError> {
        let verifier = Ed25519Verifier::from_vkey(&settings.vkey)
            .map_err(|e| MonitorError::Settings(format!("log vkey {:?}: {e}", settings.vkey)))?;
        let origin = vouch_spec::note::NoteVerifier::name(&verifier).to_string();
        let watch = settings
            .watch
            .iter()
            .map(|k| {
                NixPublicKey::parse(k)
                    .map(|k| k.to_string())
                    .map_err(|e| MonitorError::Settings(format!("--watch {k:?}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        let db = Arc::new(MonitorDb::open(&settings.state)?);
        let pos = db.position()?;
        let counters = Arc::new(Counters::default());
        counters
            .entries
            .set(i64::try_from(pos.size).unwrap_or(i64::MAX));
        let status = Status {
            checkpoint: pos.checkpoint.clone(),
            samples: vec![(now(), pos.size)],
            ..Status::default()
        };
        Ok(Monitor {
            log: LogClient::new(http, &settings.url),
            settings,
            verifier,
            origin,
            watch,
            db,
            counters,
            status: Arc::new(Mutex::new(status)),
        })
    }

    /// The log's origin.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    fn report(&self, v: serde_json::Value) {
        println!("{v}");
    }

    /// One round: catch up to the log's current checkpoint. Returns the
    /// worst finding.
    pub fn round(&mut self) -> Result<Severity, MonitorError> {
        let r = self.round_inner();
        if let Ok(mut s) = self.status.lock() {
            s.last_round = now();
            s.last_error = r.as_ref().err().map(|e| e.to_string());
        }
        r
    }

    fn round_inner(&mut self) -> Result<Severity, MonitorError> {
        let cp_bytes = self.log.checkpoint()?;
        let cp = open_checkpoint(&cp_bytes, &[&self.verifier])
            .map_err(|e| MonitorError::Checkpoint(e.to_string()))?
            .checkpoint;
        let mut pos = self.db.position()?;
        let kept = if pos.checkpoint.is_empty() {
            MemoryStore::default()
        } else {
            MemoryStore::with(&self.origin, pos.checkpoint.clone().into_bytes())
        };
        // A failed fetch ends the round as an error; only a proof that does
        // not verify (or two roots for a size) is evidence.
        let problem = match Tracker::new(kept).check(&self.origin, &cp_bytes, &cp, &self.log) {
            Ok(c) if c.relation == Relation::Behind => Some(format!(
                "tree shrank from {} to {}",
                c.kept.checkpoint.as_ref().map_or(0, |(_, k)| k.size),
                cp.size
            )),
            // Read past this size towards a larger checkpoint before a crash.
            Ok(_) if cp.size < pos.size => Some(format!(
                "tree shrank from {} (a checkpoint read before) to {}",
                pos.size, cp.size
            )),
            Ok(_) => None,
            Err(TrackerError::Fork(f)) => Some(f.why.to_string()),
            Err(TrackerError::Fetch(e)) => return Err(e.into()),
            Err(e) => return Err(MonitorError::Tracker(e.to_string())),
        };
        if let Some(error) = problem {
            self.counters.misbehaviour.inc();
            self.report(json!({"kind": "log_inconsistent", "error": error, "old_checkpoint": pos.checkpoint, "new_checkpoint": String::from_utf8_lossy(&cp_bytes)}));
            return Ok(Severity(2));
        }
        let mut sev = Severity(0);
        pos.target = String::from_utf8_lossy(&cp_bytes).into_owned();
        let frontier: Vec<Hash> = pos
            .frontier
            .iter()
            .map(|h| Hash::from_base64(h))
            .collect::<Result<_, _>>()
            .map_err(|e| MonitorError::Tracker(format!("stored frontier: {e}")))?;
        let mut cr = CompactRange::from_parts(pos.size, frontier)
            .map_err(|e| MonitorError::Tracker(format!("stored frontier: {e}")))?;
        // Fetching and checking run one chunk ahead of applying, on their
        // own thread: the apply step (one thread, the database) overlaps
        // with the next chunk's fetch and signature checks.
        let size = cp.size;
        let start = pos.size;
        let this: &Monitor = self;
        let applied: Result<(), MonitorError> = std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Prepared, MonitorError>>(1);
            scope.spawn(move || {
                let mut from = start;
                while from < size {
                    let to = ((from / TILE_WIDTH + CHUNK_BUNDLES) * TILE_WIDTH).min(size);
                    let p = this.prepare(from, to, size);
                    let failed = p.is_err();
                    if tx.send(p).is_err() || failed {
                        return;
                    }
                    from = to;
                }
            });
            while pos.size < size {
                let p = rx
                    .recv()
                    .map_err(|_| MonitorError::Tracker("the fetching thread stopped".into()))??;
                sev = sev.max(this.apply(&mut pos, &mut cr, p)?);
            }
            Ok(())
        });
        applied?;
        if cr.root() != cp.root {
            self.counters.misbehaviour.inc();
            self.report(json!({"kind": "log_tree_mismatch", "size": cp.size, "checkpoint": String::from_utf8_lossy(&cp_bytes), "computed_root": cr.root().to_base64()}));
            return Ok(Severity(2));
        }
        pos.checkpoint = pos.target.clone();
        self.db.commit(self.db.step(), &pos)?;
        sev = sev.max(self.settle()?);
        if let Ok(mut s) = self.status.lock() {
            s.checkpoint = pos.checkpoint.clone();
            s.samples.push((now(), pos.size));
            if s.samples.len() > 360 {
                s.samples.remove(0);
            }
        }
        Ok(sev)
    }

    /// Fetches the bundles holding entries `[from, to)`, in order.
    fn fetch(&self, from: u64, to: u64, size: u64) -> Result<Vec<(u64, Vec<u8>)>, MonitorError> {
        let tiles: Vec<Tile> = (from / TILE_WIDTH..=(to - 1) / TILE_WIDTH)
            .filter_map(|b| Tile::in_tree(TileKind::Entries, b, size))
            .collect();
        let jobs = self.settings.jobs.clamp(1, 16);
        let fetched: Vec<Result<Vec<Vec<Vec<u8>>>, MonitorError>> = std::thread::scope(|s| {
            let handles: Vec<_> = tiles
                .chunks(tiles.len().div_ceil(jobs).max(1))
                .map(|chunk| {
                    s.spawn(move || {
                        chunk
                            .iter()
                            .map(|t| {
                                let data = self.log.tile(t, vouch::tiles::MAX_BUNDLE_BYTES)?;
                                bundle::decode_width(&data, usize::from(t.width))
                                    .map(|es| es.into_iter().map(<[u8]>::to_vec).collect())
                                    .map_err(|e| MonitorError::Bundle {
                                        tile: t.path(),
                                        msg: e.to_string(),
                                    })
                            })
                            .collect::<Result<Vec<_>, _>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(MonitorError::Tracker("a fetch thread panicked".into()))
                    })
                })
                .collect()
        });
        let mut out = Vec::new();
        let mut index = tiles.first().map_or(from, |t| t.index * TILE_WIDTH);
        for chunk in fetched {
            for entries in chunk? {
                for e in entries {
                    if index >= from && index < to {
                        out.push((index, e));
                    }
                    index += 1;
                }
            }
        }
        Ok(out)
    }

    /// Decodes and verifies entries on `jobs` threads (signatures in batches).
    fn check(&self, entries: &[(u64, Vec<u8>)]) -> Vec<Checked> {
        let jobs = self.settings.jobs.clamp(1, 16);
        let parts: Vec<Vec<Checked>> = std::thread::scope(|s| {
            let handles: Vec<_> = entries
                .chunks(entries.len().div_ceil(jobs).max(1))
                .map(|chunk| s.spawn(move || self.check_part(chunk)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        });
        parts.into_iter().flatten().collect()
    }

    fn check_part(&self, chunk: &[(u64, Vec<u8>)]) -> Vec<Checked> {
        let mut out: Vec<Option<Checked>> = Vec::with_capacity(chunk.len());
        // (fingerprint, signature, key) of each decoded attestation.
        let mut signed = Vec::new();
        let mut at = Vec::new();
        for (i, (_, bytes)) in chunk.iter().enumerate() {
            if transition::kind(bytes) == EntryKind::Transition {
                out.push(Some(
                    match Transition::decode(bytes).and_then(|t| t.verify().map(|()| t)) {
                        Ok(t) => Checked::Transition(t),
                        Err(err) => Checked::Invalid(err.to_string(), None),
                    },
                ));
                continue;
            }
            let e = match Entry::decode(bytes) {
                Ok(e) => e,
                Err(err) => {
                    out.push(Some(Checked::Invalid(err.to_string(), None)));
                    continue;
                }
            };
            let fp = match &e.references {
                // The common case: the fingerprint straight from the entry.
                References::Inline(refs) => Ok(fingerprint(&e.path, &e.nar_hash, e.nar_size, refs)),
                References::Digest(d) => {
                    let refs = self.log.references(d).ok().flatten().map(|names| {
                        names
                            .iter()
                            .filter_map(|l| StorePath::from_base(e.path.store_dir(), l).ok())
                            .collect::<Vec<_>>()
                    });
                    e.attestation(refs.as_deref()).map(|a| a.fingerprint())
                }
            };
            match fp {
                Ok(fp) => {
                    signed.push((fp, e.sig, *e.key.key()));
                    at.push(i);
                    out.push(Some(Checked::Valid(e)));
                }
                Err(err) => out.push(Some(Checked::Invalid(err.to_string(), Some(e)))),
            }
        }
        let items: Vec<vouch_spec::batch::Item> = signed
            .iter()
            .map(|(f, sig, key)| vouch_spec::batch::Item {
                msg: f.as_bytes(),
                sig: *sig,
                key: *key,
            })
            .collect();
        for bad in vouch_spec::batch::invalid(&items) {
            let i = at[bad];
            if let Some(Checked::Valid(e)) = out[i].take() {
                out[i] = Some(Checked::Invalid(
                    "signature does not verify over the fingerprint".into(),
                    Some(e),
                ));
            }
        }
        out.into_iter().flatten().collect()
    }

    /// Reads and checks entries `[from, to)` of a tree of `size`.
    fn prepare(&self, from: u64, to: u64, size: u64) -> Result<Prepared, MonitorError> {
        let entries = self.fetch(from, to, size)?;
        if entries.len() as u64 != to - from {
            return Err(MonitorError::Bundle {
                tile: format!("entries {from}..{to}"),
                msg: format!("{} entries read", entries.len()),
            });
        }
        let checked = self.check(&entries);
        Ok(Prepared {
            to,
            entries,
            checked,
        })
    }

    /// Applies and commits one prepared chunk (the next after `pos`).
    fn apply(
        &self,
        pos: &mut Position,
        cr: &mut CompactRange,
        p: Prepared,
    ) -> Result<Severity, MonitorError> {
        let Prepared {
            to,
            entries,
            checked,
        } = p;
        let seen = now();
        // Keys' text form, once per chunk rather than once per entry.
        let mut key_names: std::collections::HashMap<NixPublicKey, String> =
            std::collections::HashMap::new();
        let mut step = self.db.step();
        let mut sev = Severity(0);
        let mut lines = Vec::new();
        for ((index, bytes), c) in entries.iter().zip(checked) {
            cr.append(leaf_hash(bytes), |_, _| {});
            match c {
                Checked::Invalid(err, e) => {
                    self.counters.invalid.inc();
                    sev = sev.max(Severity(1));
                    lines.push(match e {
                        Some(e) => json!({"kind": "invalid_entry", "index": index, "path": e.path.full(), "key": e.key.to_string(), "error": err}),
                        None => json!({"kind": "invalid_entry", "index": index, "error": err}),
                    });
                }
                Checked::Transition(t) => {
                    let rec = TransitionRecord {
                        index: *index,
                        old: t.old.to_string(),
                        new: t.successor().map(ToString::to_string),
                        seen,
                    };
                    match step.transition(&t.old.key().to_bytes(), rec)? {
                        Some(v) => {
                            sev = Severity(2);
                            self.counters.misbehaviour.inc();
                            lines.push(violation_line(&v));
                        }
                        None => lines.push(json!({"kind": "transition", "index": index, "old": t.old.to_string(), "new": t.successor().map(ToString::to_string), "text": t.describe(*index)})),
                    }
                }
                Checked::Valid(e) => {
                    let key = match key_names.get(&e.key) {
                        Some(k) => k.clone(),
                        None => {
                            let k = e.key.to_string();
                            key_names.insert(e.key.clone(), k.clone());
                            k
                        }
                    };
                    if let Some(cut) = step.cutoff(&e.key.key().to_bytes())? {
                        if *index >= cut.index {
                            let v = Violation {
                                index: *index,
                                key: key.clone(),
                                cutoff: cut.index,
                                what: "attestation".into(),
                                path: Some(e.path.full()),
                                seen,
                            };
                            step.violation(&v);
                            sev = Severity(2);
                            self.counters.misbehaviour.inc();
                            lines.push(violation_line(&v));
                        }
                    }
                    let watched = self.watch.contains(&key);
                    let applied = step.attest(
                        &e.path.full(),
                        Att {
                            key,
                            nar_hash: format_sha256(&e.nar_hash),
                            nar_size: e.nar_size,
                            index: *index,
                            seen,
                            confirmed: false,
                            disagrees: false,
                            overdue: false,
                        },
                        watched,
                    )?;
                    if let Some(rec) = applied.new_disagreement {
                        sev = sev.max(Severity(1));
                        let mut distinct: Vec<(&str, u64)> = rec
                            .atts
                            .iter()
                            .map(|a| (a.nar_hash.as_str(), a.nar_size))
                            .collect();
                        distinct.sort_unstable();
                        distinct.dedup();
                        let id = format!("disagreement {} {}", rec.path, distinct.len());
                        if !self.db.reported(&id)? {
                            step.mark_reported(id);
                            self.counters.disagreements.inc();
                            let attestations: Vec<_> = rec
                                .atts
                                .iter()
                                .map(|a| json!({"key": a.key, "nar_hash": a.nar_hash, "nar_size": a.nar_size, "index": a.index}))
                                .collect();
                            lines.push(json!({"kind": "disagreement", "path": rec.path, "attestations": attestations}));
                        }
                    }
                }
            }
        }
        pos.size = to;
        pos.frontier = cr.hashes().iter().map(|h| h.to_base64()).collect();
        for l in lines {
            self.report(l);
        }
        self.db.commit(step, pos)?;
        self.counters
            .entries
            .set(i64::try_from(to).unwrap_or(i64::MAX));
        Ok(sev)
    }

    /// Watched attestations whose grace period ended unconfirmed: reported
    /// once and counted as overdue.
    fn settle(&self) -> Result<Severity, MonitorError> {
        let until = now().saturating_sub(self.settings.grace_secs);
        let mut sev = Severity(0);
        loop {
            let due = self.db.awaiting_until(until, 10_000)?;
            if due.is_empty() {
                return Ok(sev);
            }
            let mut step = self.db.step();
            let mut lines = Vec::new();
            for (k, a) in &due {
                let Some(rec) = step.settle(k, a)? else {
                    continue;
                };
                let Some(att) = rec.atts.iter().find(|x| x.index == a.index) else {
                    continue;
                };
                sev = Severity(1);
                let id = format!("unconfirmed {} {} {}", rec.path, att.key, att.nar_hash);
                if !self.db.reported(&id)? {
                    step.mark_reported(id);
                    self.counters.unconfirmed.inc();
                    lines.push(json!({"kind": "unconfirmed", "path": rec.path, "key": att.key, "nar_hash": att.nar_hash, "index": att.index, "age_secs": now().saturating_sub(att.seen)}));
                }
            }
            for l in lines {
                self.report(l);
            }
            let pos = self.db.position()?;
            self.db.commit(step, &pos)?;
        }
    }
}

/// The report line for an entry by a key at or after its cutoff.
fn violation_line(v: &Violation) -> serde_json::Value {
    json!({"kind": "retired_key_used", "index": v.index, "key": v.key, "cutoff": v.cutoff, "what": v.what, "path": v.path,
        "error": format!("log appended {} {} by {} at or after its transition at index {}; an honest log refuses it", v.what, v.index, v.key, v.cutoff)})
}
