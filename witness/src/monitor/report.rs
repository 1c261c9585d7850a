//! The monitor's reports (`spec/PROTOCOL.md` §6.4) as data: per builder
//! key (the CT-style record of what a watched key signed), per store path,
//! the disagreements, and an overview of the log. The CLI prints them as
//! JSON; the web view renders them and serves the same JSON.

use serde::Serialize;
use vouch_spec::nix::NixPublicKey;
use vouch_spec::note::Note;

use super::db::{base_name, DbError, KeyStats, MonitorDb, PathRecord, TransitionRecord, Violation};
use super::Status;

/// A builder key's name (the part before `:`).
pub fn key_name(key: &str) -> &str {
    key.split(':').next().unwrap_or(key)
}

/// One attestation, as reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AttestationReport {
    /// The builder key.
    pub key: String,
    /// Its name.
    pub name: String,
    /// The NAR hash.
    pub nar_hash: String,
    /// The NAR size.
    pub nar_size: u64,
    /// The entry's index.
    pub index: u64,
    /// Confirmed by another key.
    pub confirmed: bool,
    /// Another attestation of the path names another NAR.
    pub disagrees: bool,
    /// Watched and unconfirmed past the grace period.
    pub unconfirmed_past_grace: bool,
}

/// Every attestation of a store path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PathReport {
    /// The store path.
    pub path: String,
    /// Whether builders disagree.
    pub disagreement: bool,
    /// Its attestations, in log order.
    pub attestations: Vec<AttestationReport>,
}

impl From<PathRecord> for PathReport {
    fn from(r: PathRecord) -> PathReport {
        PathReport {
            disagreement: r.disagreement(),
            path: r.path,
            attestations: r
                .atts
                .into_iter()
                .map(|a| AttestationReport {
                    name: key_name(&a.key).to_string(),
                    key: a.key,
                    nar_hash: a.nar_hash,
                    nar_size: a.nar_size,
                    index: a.index,
                    confirmed: a.confirmed,
                    disagrees: a.disagrees,
                    unconfirmed_past_grace: a.overdue,
                })
                .collect(),
        }
    }
}

/// A builder key's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BuilderReport {
    /// The key.
    pub key: String,
    /// Its name.
    pub name: String,
    /// Attestations, confirmed, disagreeing, unconfirmed past the grace
    /// period, first and last seen.
    #[serde(flatten)]
    pub stats: KeyStats,
    /// A page of what it attested: (index, path base name).
    pub attested: Vec<(u64, String)>,
    /// The index to ask for the next page from, if there is more.
    pub next: Option<u64>,
    /// The logged transitions naming the key (old or new), in log order;
    /// the first with the key as old is its cutoff.
    pub transitions: Vec<TransitionRecord>,
    /// Its entries at or after its cutoff (evidence against the log).
    pub violations: Vec<Violation>,
}

/// The transitions naming `key`, and its entries past its cutoff: by its
/// Ed25519 key, so the same key used under another name counts too (a
/// transition retires the key, not the name).
fn key_transitions(
    all: &[TransitionRecord],
    violations: &[Violation],
    key: &str,
) -> (Vec<TransitionRecord>, Vec<Violation>) {
    let bytes = |k: &str| NixPublicKey::parse(k).ok().map(|k| k.key().to_bytes());
    let want = bytes(key);
    let same = |k: &str| k == key || (want.is_some() && bytes(k) == want);
    (
        all.iter()
            .filter(|t| same(&t.old) || t.new.as_deref().is_some_and(same))
            .cloned()
            .collect(),
        violations
            .iter()
            .filter(|v| same(&v.key))
            .cloned()
            .collect(),
    )
}

/// A disagreement with every attestation of its path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DisagreementReport {
    /// The path.
    pub path: String,
    /// The entry that made it one.
    pub index: u64,
    /// When it was found (Unix seconds).
    pub found: u64,
    /// Every attestation of the path.
    pub attestations: Vec<AttestationReport>,
}

/// A witness cosignature on the latest checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cosigner {
    /// The witness's name.
    pub name: String,
    /// Seconds since it cosigned, by its timestamp.
    pub age_secs: u64,
}

/// The overview page.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Overview {
    /// The log's origin.
    pub origin: String,
    /// Entries read and checked.
    pub entries: u64,
    /// Entries per second over the last rounds.
    pub ingest_per_sec: f64,
    /// The latest checkpoint read (signed note).
    pub checkpoint: String,
    /// Who cosigned it, and how long ago.
    pub cosigners: Vec<Cosigner>,
    /// Every builder with its counters.
    pub builders: Vec<BuilderReport>,
    /// Disagreements found.
    pub disagreements: usize,
    /// Every key transition read, in log order.
    pub transitions: Vec<TransitionRecord>,
    /// Entries by keys at or after their cutoff (evidence against the log).
    pub violations: Vec<Violation>,
    /// Attestations read per hour: (hour since the epoch, count).
    pub per_hour: Vec<(u64, u64)>,
    /// When the last round ended (Unix seconds) and its error.
    pub last_round: u64,
    /// The last round's error, if it failed.
    pub last_error: Option<String>,
}

/// Everything the monitor concluded (the builders' counters and every
/// disagreement): equal across monitors that read the same log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Conclusions {
    /// Entries read.
    pub entries: u64,
    /// Every builder's counters (no pages).
    pub builders: Vec<BuilderReport>,
    /// Every disagreement.
    pub disagreements: Vec<DisagreementReport>,
    /// Every transition read.
    pub transitions: Vec<TransitionRecord>,
    /// Every entry by a key at or after its cutoff.
    pub violations: Vec<Violation>,
}

/// One builder's record with a page of what it attested from `after`.
pub fn builder(
    db: &MonitorDb,
    key: &str,
    after: u64,
    limit: usize,
) -> Result<Option<BuilderReport>, DbError> {
    let (transitions, violations) = key_transitions(&db.transitions()?, &db.violations()?, key);
    let stats = match db.builder(key)? {
        Some(s) => s,
        // A key that only ever stated a transition.
        None if !transitions.is_empty() => KeyStats::default(),
        None => return Ok(None),
    };
    let mut attested = db.attested_by(key, after, limit + 1)?;
    let next = (attested.len() > limit).then(|| attested[limit].0);
    attested.truncate(limit);
    Ok(Some(BuilderReport {
        name: key_name(key).to_string(),
        key: key.to_string(),
        stats,
        attested,
        next,
        transitions,
        violations,
    }))
}

/// Every builder, without pages.
pub fn builders(db: &MonitorDb) -> Result<Vec<BuilderReport>, DbError> {
    let (all, violations) = (db.transitions()?, db.violations()?);
    Ok(db
        .builders()?
        .into_iter()
        .map(|(key, stats)| {
            let (transitions, violations) = key_transitions(&all, &violations, &key);
            BuilderReport {
                name: key_name(&key).to_string(),
                key,
                stats,
                attested: Vec::new(),
                next: None,
                transitions,
                violations,
            }
        })
        .collect())
}

/// Paths matching `query`: a full store path, a base name, or a hash part
/// (or its beginning, at least 4 characters).
pub fn search(db: &MonitorDb, query: &str, limit: usize) -> Result<Vec<PathReport>, DbError> {
    let q = base_name(query.trim());
    if q.len() < 4
        || !q
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-._?=".contains(&b))
    {
        return Ok(Vec::new());
    }
    if let Some(r) = db.path(q)? {
        return Ok(vec![r.into()]);
    }
    Ok(db
        .paths_with_prefix(q, limit)?
        .into_iter()
        .map(Into::into)
        .collect())
}

/// The disagreements from base name `after` on.
pub fn disagreements(
    db: &MonitorDb,
    after: &str,
    limit: usize,
) -> Result<Vec<DisagreementReport>, DbError> {
    let mut out = Vec::new();
    for d in db.disagreements(after, limit)? {
        let atts = db
            .path(base_name(&d.path))?
            .map(|r| PathReport::from(r).attestations)
            .unwrap_or_default();
        out.push(DisagreementReport {
            path: d.path,
            index: d.index,
            found: d.found,
            attestations: atts,
        });
    }
    Ok(out)
}

/// The disagreement on the path with base name `base`.
pub fn disagreement(db: &MonitorDb, base: &str) -> Result<Option<DisagreementReport>, DbError> {
    let Some(d) = db.disagreement(base)? else {
        return Ok(None);
    };
    let attestations = db
        .path(base)?
        .map(|r| PathReport::from(r).attestations)
        .unwrap_or_default();
    Ok(Some(DisagreementReport {
        path: d.path,
        index: d.index,
        found: d.found,
        attestations,
    }))
}

/// Everything the monitor concluded.
pub fn conclusions(db: &MonitorDb) -> Result<Conclusions, DbError> {
    Ok(Conclusions {
        entries: db.position()?.size,
        builders: builders(db)?,
        disagreements: disagreements(db, "", usize::MAX)?,
        transitions: db.transitions()?,
        violations: db.violations()?,
    })
}

/// The overview.
pub fn overview(
    db: &MonitorDb,
    origin: &str,
    status: &Status,
    now: u64,
) -> Result<Overview, DbError> {
    let pos = db.position()?;
    let ingest_per_sec = match (status.samples.first(), status.samples.last()) {
        (Some((t0, n0)), Some((t1, n1))) if t1 > t0 => (n1 - n0) as f64 / (t1 - t0) as f64,
        _ => 0.0,
    };
    let checkpoint = if status.checkpoint.is_empty() {
        pos.checkpoint.clone()
    } else {
        status.checkpoint.clone()
    };
    let cosigners = Note::parse(checkpoint.as_bytes())
        .map(|n| {
            n.sigs
                .iter()
                .filter(|s| s.name != origin)
                .filter_map(|s| {
                    let (t, _) = vouch_spec::cosignature::split(&s.sig)?;
                    Some(Cosigner {
                        name: s.name.clone(),
                        age_secs: now.saturating_sub(t),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Overview {
        origin: origin.to_string(),
        entries: pos.size,
        ingest_per_sec,
        checkpoint,
        cosigners,
        builders: builders(db)?,
        disagreements: db.disagreements("", usize::MAX)?.len(),
        transitions: db.transitions()?,
        violations: db.violations()?,
        per_hour: db.hours()?,
        last_round: status.last_round,
        last_error: status.last_error.clone(),
    })
}
