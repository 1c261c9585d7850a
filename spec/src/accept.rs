//! The client acceptance rule of `spec/PROTOCOL.md` §7, as one function.
//!
//! [`accept`] takes what a client is configured with ([`Rule`]), what it
//! kept from before ([`Kept`]: the stored checkpoint `S` and the fork flag),
//! what it was shown ([`Shown`]: a checkpoint `C`, the consistency proof
//! between `S` and `C`, and the candidate entries with their inclusion
//! proofs), the narinfo and the time, and returns a [`Decision`]: the
//! outcome (the first failing step is the reason, as §7 says), every reason
//! in step order, and what the client must persist ([`Keep`]: advance `S`,
//! or record a fork).
//!
//! It fetches and stores nothing. A client's IO shell fetches `C`, the
//! proof [`crate::tracker::proof_needed`] names, the entries and their
//! proofs; calls this; then persists what [`Keep`] says (by
//! compare-and-swap, since another process may have moved `S` meanwhile).
//! Every input is untrusted: nothing here panics on it.

use std::collections::BTreeSet;

use std::collections::BTreeMap;

use crate::attestation::{AttestationError, Entry};
use crate::checkpoint::Checkpoint;
use crate::hash::Hash;
use crate::inclusion;
use crate::nix::narinfo::format_sha256;
use crate::nix::{NarInfo, NixPublicKey};
use crate::policy::{CheckpointCache, Policy, PolicyCheckpoint, Rule as Quorum};
use crate::tracker::{self, Fork, Inconsistency, Relation};
use crate::transition::{self, EntryKind, Transition};

/// Cosignatures dated more than this far in the client's future are not
/// fresh (§7 step 3).
pub const MAX_CLOCK_SKEW_SECS: u64 = 600;

/// What a client trusts (§7, "A client is configured with").
#[derive(Clone, Debug)]
pub struct Rule {
    /// The tlog-policy: log keys, witnesses, quorum.
    pub policy: Policy,
    /// `B`: the trusted builder keys.
    pub trusted: Vec<NixPublicKey>,
    /// `k ≥ 1`: distinct trusted builders that must agree.
    pub required: usize,
    /// Reject when any trusted builder disagrees.
    pub reject_disagreement: bool,
    /// `max_age`: the oldest acceptable cosignature, in seconds.
    pub max_age_secs: u64,
    /// Whether a logged handover from a key in `B` makes its new key
    /// count as the same builder (§7 step 6).
    pub follow_handovers: bool,
    /// Transitions pinned in the client's configuration, with their
    /// indices: honoured without a proof, so a log cannot hide them.
    pub pinned: Vec<(u64, Transition)>,
}

/// What the client kept for the log, from before this decision.
#[derive(Clone, Debug, Default)]
pub struct Kept {
    /// `S`: the latest checkpoint it verified, as stored (signed note
    /// bytes) and parsed.
    pub checkpoint: Option<(Vec<u8>, Checkpoint)>,
    /// Whether the log was caught forking (set until an operator clears it).
    pub forked: bool,
}

/// The client's clock, or its absence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// Seconds since the Unix epoch: cosignatures must be fresh.
    Now(u64),
    /// Verifying offline from published proofs: freshness is not checked
    /// (§7 step 4's note: the client relies on the witnesses' quorum).
    Offline,
}

/// How a candidate entry is proven to be in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inclusion {
    /// Not proven (the client fetched no proof, say for an untrusted key,
    /// or the entry is beyond `C`): never counted.
    None,
    /// An RFC 6962 inclusion proof under the shown checkpoint `C`.
    InShown(Vec<Hash>),
    /// An inclusion proof under a checkpoint of its own (a published
    /// tlog-proof). With `to_shown`, a consistency proof from that
    /// checkpoint to `C`: then `C`'s checks stand for it. Without, the
    /// bundle's checkpoint must itself satisfy the policy's quorum.
    Bundle {
        /// The signed checkpoint the proof is under.
        checkpoint: Vec<u8>,
        /// The inclusion proof.
        proof: Vec<Hash>,
        /// Consistency proof from the bundle's checkpoint to `C`.
        to_shown: Option<Vec<Hash>>,
    },
}

/// An entry the client was shown for the path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Its index in the log.
    pub index: u64,
    /// Its bytes (§3.2).
    pub entry: Vec<u8>,
    /// Its inclusion proof.
    pub inclusion: Inclusion,
}

/// What the client was shown.
#[derive(Clone, Debug, Default)]
pub struct Shown {
    /// `C`: the log's checkpoint (signed note bytes, with cosignatures).
    /// `None` only when verifying offline from bundles alone.
    pub checkpoint: Option<Vec<u8>>,
    /// The consistency proof between `S` and `C` that
    /// [`crate::tracker::proof_needed`] names (empty when it names none);
    /// `None` when the client could not get one (offline): then `S` is
    /// neither compared nor advanced.
    pub consistency: Option<Vec<Hash>>,
    /// The entries for the path.
    pub entries: Vec<Candidate>,
}

/// One finding, in §7's step order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reason {
    /// The step of §7 (1–7).
    pub step: u8,
    /// Whether it holds.
    pub holds: bool,
    /// What was found.
    pub text: String,
}

/// An accepted narinfo: who vouched for it, under which checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The agreeing trusted builders (full Nix public keys, sorted).
    pub builders: Vec<String>,
    /// The largest checkpoint size the entries were proven under.
    pub tree_size: u64,
}

/// Why a narinfo is not accepted (the first failing step). The messages
/// leave out the store path, which the caller names (`REJECT <path>: …`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Step 1: the log was caught forking before.
    #[error("log {origin} is refused: it was caught forking")]
    Refused {
        /// The origin.
        origin: String,
    },
    /// Step 2: nothing to verify against (online, no checkpoint shown).
    #[error("no checkpoint was shown")]
    NoCheckpoint,
    /// Step 2/3: the checkpoint is not signed by a policy log or lacks the
    /// witness quorum.
    #[error("{0}")]
    Checkpoint(String),
    /// Step 3: the quorum's cosignatures are too old (or from the future).
    #[error("checkpoint of size {size} has no fresh witness quorum (cosignatures must be under {max_age}s old)")]
    Stale {
        /// Its size.
        size: u64,
        /// The configured maximum age.
        max_age: u64,
    },
    /// Step 4: `C` is inconsistent with `S`.
    #[error("log {origin} forked: checkpoint {new_size} is inconsistent with checkpoint {old_size} seen before ({why})")]
    Fork {
        /// The origin.
        origin: String,
        /// `S`'s size.
        old_size: u64,
        /// `C`'s size.
        new_size: u64,
        /// What does not hold.
        why: Inconsistency,
    },
    /// Step 4: `C` is consistent with `S` but older.
    #[error("log {origin} served checkpoint size {served}, older than size {seen} this client already verified (rollback or stale cache)")]
    Rollback {
        /// The origin.
        origin: String,
        /// `S`'s size.
        seen: u64,
        /// `C`'s size.
        served: u64,
    },
    /// Steps 5–6: an entry that does not decode, is for another path, is
    /// not included, or (by a trusted key) does not verify.
    #[error("log served a bad entry at index {index}: {msg}")]
    BadEntry {
        /// Its index.
        index: u64,
        /// What was wrong.
        msg: String,
    },
    /// Step 6: an attestation by a key at or after its logged transition
    /// (which an honest log never appends).
    #[error("log served entry {index} by {key}, at or after its transition ({transition}): a log must not append it")]
    Retired {
        /// The entry's index.
        index: u64,
        /// The retired key's name.
        key: String,
        /// The transition (who, to whom, cutoff).
        transition: String,
    },
    /// Step 7: fewer than `k` trusted builders agree.
    #[error("{agreeing} trusted builder(s) attest NarHash {nar_hash}, {required} required (agreeing: [{names}]){transitions}")]
    TooFewBuilders {
        /// Store path.
        path: String,
        /// The narinfo's NAR hash.
        nar_hash: String,
        /// How many agree.
        agreeing: usize,
        /// `k`.
        required: usize,
        /// Their key names.
        names: String,
        /// The transitions of trusted keys, if any (`; … at index I`).
        transitions: String,
    },
    /// Step 7: a trusted builder attested something else.
    #[error("trusted builder(s) [{names}] attest a different NAR than the narinfo's {nar_hash}")]
    Disagreement {
        /// Store path.
        path: String,
        /// The narinfo's NAR hash.
        nar_hash: String,
        /// The disagreeing builders' key names.
        names: String,
    },
}

/// What the client must persist after the decision, whatever its outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Nothing changes.
    Nothing,
    /// Replace `S` with this checkpoint (signed note bytes), which extends it.
    Advance(Vec<u8>),
    /// Record the fork and refuse the log from now on.
    Fork(Fork),
}

/// The outcome, every reason, and what to persist.
#[derive(Clone, Debug)]
pub struct Decision {
    /// Accepted, or the first failing step.
    pub outcome: Result<Accepted, Rejection>,
    /// Every finding, in step order.
    pub reasons: Vec<Reason>,
    /// What the client must store.
    pub keep: Keep,
}

/// The origin a signed checkpoint names (its first line), if it parses as
/// a note: what a client uses to pick the state to load before [`accept`].
pub fn origin(checkpoint: &[u8]) -> Option<String> {
    let note = crate::note::Note::parse(checkpoint).ok()?;
    Checkpoint::parse(&note.text).ok().map(|c| c.origin)
}

struct Findings {
    reasons: Vec<Reason>,
    first: Option<Rejection>,
}

impl Findings {
    fn ok(&mut self, step: u8, text: String) {
        self.reasons.push(Reason {
            step,
            holds: true,
            text,
        });
    }
    fn fail(&mut self, step: u8, r: Rejection) {
        self.reasons.push(Reason {
            step,
            holds: false,
            text: r.to_string(),
        });
        self.first.get_or_insert(r);
    }
}

/// The outcome of steps 1–4 alone, for a client that follows the log
/// without a narinfo at hand.
#[derive(Clone, Debug)]
pub struct LogDecision {
    /// The verified checkpoint, or the first failing step.
    pub outcome: Result<PolicyCheckpoint, Rejection>,
    /// Every finding, in step order.
    pub reasons: Vec<Reason>,
    /// What the client must store.
    pub keep: Keep,
}

/// Steps 1–4 of §7 on the shown checkpoint (its entries are ignored).
pub fn check_log(
    rule: &Rule,
    kept: &Kept,
    shown: &Shown,
    clock: Clock,
    cache: &mut CheckpointCache,
) -> LogDecision {
    let mut f = Findings {
        reasons: Vec::new(),
        first: None,
    };
    let mut keep = Keep::Nothing;
    let head = log_checks(rule, kept, shown, clock, cache, &mut f, &mut keep);
    let outcome = match (f.first.take(), head) {
        (Some(r), _) => Err(r),
        (None, Some(cp)) => Ok(cp),
        (None, None) => Err(Rejection::NoCheckpoint),
    };
    LogDecision {
        outcome,
        reasons: f.reasons,
        keep,
    }
}

/// Applies §7 to `narinfo`. `cache` remembers checkpoints whose signatures
/// verified under `rule.policy` (use one cache per policy).
pub fn accept(
    rule: &Rule,
    kept: &Kept,
    shown: &Shown,
    narinfo: &NarInfo,
    clock: Clock,
    cache: &mut CheckpointCache,
) -> Decision {
    let mut f = Findings {
        reasons: Vec::new(),
        first: None,
    };
    let mut keep = Keep::Nothing;
    let head = log_checks(rule, kept, shown, clock, cache, &mut f, &mut keep);
    if let Some(r) = f.first.take() {
        return Decision {
            outcome: Err(r),
            reasons: f.reasons,
            keep,
        };
    }
    let accepted = entry_checks(rule, head.as_ref(), shown, narinfo, cache, &mut f);
    Decision {
        outcome: match f.first.take() {
            Some(r) => Err(r),
            None => Ok(accepted),
        },
        reasons: f.reasons,
        keep,
    }
}

/// Steps 1–4 on the shown checkpoint; `None` when there is none (offline).
fn log_checks(
    rule: &Rule,
    kept: &Kept,
    shown: &Shown,
    clock: Clock,
    cache: &mut CheckpointCache,
    f: &mut Findings,
    keep: &mut Keep,
) -> Option<PolicyCheckpoint> {
    let origin = shown
        .checkpoint
        .as_deref()
        .and_then(origin)
        .or_else(|| kept.checkpoint.as_ref().map(|(_, c)| c.origin.clone()))
        .or_else(|| {
            shown.entries.iter().find_map(|c| match &c.inclusion {
                Inclusion::Bundle { checkpoint, .. } => origin(checkpoint),
                _ => None,
            })
        })
        .unwrap_or_default();
    if kept.forked {
        f.fail(1, Rejection::Refused { origin });
        return None;
    }
    f.ok(1, format!("log {origin} has no fork on record"));
    let Some(bytes) = shown.checkpoint.as_deref() else {
        if clock == Clock::Offline {
            f.ok(2, "offline: each proof's own checkpoint is checked".into());
        } else {
            f.fail(2, Rejection::NoCheckpoint);
        }
        return None;
    };
    let cp = match cache.verify(&rule.policy, bytes) {
        Ok(cp) => cp,
        Err(e) => {
            f.fail(2, Rejection::Checkpoint(e.to_string()));
            return None;
        }
    };
    let c = &cp.checkpoint;
    f.ok(
        2,
        format!(
            "checkpoint {} of size {} is signed by the log",
            c.origin, c.size
        ),
    );
    match clock {
        Clock::Now(now) => {
            if !fresh_quorum(rule, &cp, now) {
                f.fail(
                    3,
                    Rejection::Stale {
                        size: c.size,
                        max_age: rule.max_age_secs,
                    },
                );
                return None;
            }
            f.ok(3, quorum_text(rule, &cp));
        }
        Clock::Offline => f.ok(
            3,
            format!("{} (freshness not checked offline)", quorum_text(rule, &cp)),
        ),
    }
    let Some((kept_bytes, s)) = kept
        .checkpoint
        .as_ref()
        .filter(|(_, s)| s.origin == c.origin)
    else {
        f.ok(
            4,
            format!("first checkpoint of {} this client keeps", c.origin),
        );
        *keep = Keep::Advance(bytes.to_vec());
        return Some(cp);
    };
    let Some(proof) = shown.consistency.as_deref() else {
        f.ok(
            4,
            format!(
                "no consistency proof offline: size {} not compared with the kept size {}",
                c.size, s.size
            ),
        );
        return Some(cp);
    };
    match tracker::compare(s, c, proof) {
        Ok(Relation::Same) => f.ok(4, format!("same checkpoint as kept (size {})", c.size)),
        Ok(Relation::Extends) => {
            f.ok(4, format!("consistent with the kept size {}", s.size));
            *keep = Keep::Advance(bytes.to_vec());
        }
        Ok(Relation::Behind) => f.fail(
            4,
            Rejection::Rollback {
                origin: c.origin.clone(),
                seen: s.size,
                served: c.size,
            },
        ),
        Err(why) => {
            f.fail(
                4,
                Rejection::Fork {
                    origin: c.origin.clone(),
                    old_size: s.size,
                    new_size: c.size,
                    why: why.clone(),
                },
            );
            *keep = Keep::Fork(Fork {
                origin: c.origin.clone(),
                old: kept_bytes.clone(),
                old_size: s.size,
                new: bytes.to_vec(),
                new_size: c.size,
                proof: proof.to_vec(),
                why,
            });
        }
    }
    Some(cp)
}

/// Step 3: the witnesses whose cosignatures verified and are fresh
/// satisfy the quorum.
fn fresh_quorum(rule: &Rule, cp: &PolicyCheckpoint, now: u64) -> bool {
    if rule.policy.quorum == Quorum::None {
        return true;
    }
    let fresh: BTreeSet<usize> = cp
        .timestamps
        .iter()
        .filter(|(_, t)| {
            *t <= now.saturating_add(MAX_CLOCK_SKEW_SECS)
                && now.saturating_sub(*t) <= rule.max_age_secs
        })
        .map(|(w, _)| *w)
        .collect();
    rule.policy.quorum.satisfied(&fresh)
}

fn quorum_text(rule: &Rule, cp: &PolicyCheckpoint) -> String {
    if rule.policy.quorum == Quorum::None {
        return "no witness quorum required".into();
    }
    let names: Vec<&str> = cp
        .cosigned
        .iter()
        .filter_map(|i| rule.policy.witnesses.get(*i).map(|w| w.name.as_str()))
        .collect();
    format!("witness quorum met by [{}]", names.join(", "))
}

/// Key names for messages (the part before `:`).
fn names(keys: &BTreeSet<String>) -> String {
    keys.iter()
        .map(|k| k.split(':').next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Transitions in force for a decision: per old key, the first one logged
/// (lowest index) and, through handovers the rule follows, which key in
/// `B` each continuing key stands for.
struct Transitions {
    /// Old key → (cutoff index, transition).
    cutoff: BTreeMap<String, (u64, Transition)>,
    /// Key (trusted, or continuing a trusted one) → the key in `B` it is.
    identity: BTreeMap<String, String>,
}

impl Transitions {
    fn new(rule: &Rule, known: Vec<(u64, Transition)>) -> Transitions {
        let mut cutoff: BTreeMap<String, (u64, Transition)> = BTreeMap::new();
        for (i, t) in rule.pinned.iter().cloned().chain(known) {
            let e = cutoff.entry(t.old.to_string()).or_insert((i, t.clone()));
            if i < e.0 {
                *e = (i, t);
            }
        }
        let mut identity = BTreeMap::new();
        for b in &rule.trusted {
            let root = b.to_string();
            let mut k = root.clone();
            // A chain visits each key once (handovers cannot loop back
            // into it without repeating a key).
            while identity.insert(k.clone(), root.clone()).is_none() {
                match cutoff.get(&k).and_then(|(_, t)| t.successor()) {
                    Some(n) if rule.follow_handovers => k = n.to_string(),
                    _ => break,
                }
            }
        }
        Transitions { cutoff, identity }
    }

    /// `; A handed over to B at index I; …` for the keys that matter.
    fn describe(&self) -> String {
        self.cutoff
            .iter()
            .filter(|(k, _)| self.identity.contains_key(*k))
            .map(|(_, (i, t))| format!("; {}", t.describe(*i)))
            .collect()
    }
}

/// Steps 5–7 on the candidates.
fn entry_checks(
    rule: &Rule,
    head: Option<&PolicyCheckpoint>,
    shown: &Shown,
    narinfo: &NarInfo,
    cache: &mut CheckpointCache,
    f: &mut Findings,
) -> Accepted {
    let mut size = head.map_or(0, |h| h.checkpoint.size);
    // Transitions first: they decide which attestations count.
    let mut known = Vec::new();
    for c in shown
        .entries
        .iter()
        .filter(|c| transition::kind(&c.entry) == EntryKind::Transition)
    {
        let bad = |msg: String| Rejection::BadEntry {
            index: c.index,
            msg,
        };
        let t = match Transition::decode(&c.entry) {
            Ok(t) => t,
            Err(e) => {
                f.fail(5, bad(e.to_string()));
                continue;
            }
        };
        match included(rule, head, c, &t.leaf_hash(), cache) {
            Ok(Some(_)) => {}
            Ok(None) => {
                f.ok(
                    5,
                    format!("transition {} is not proven; not honoured", c.index),
                );
                continue;
            }
            Err(msg) => {
                f.fail(5, bad(msg));
                continue;
            }
        }
        if let Err(e) = t.verify() {
            f.fail(6, bad(e.to_string()));
            continue;
        }
        f.ok(5, format!("logged: {}", t.describe(c.index)));
        known.push((c.index, t));
    }
    let transitions = Transitions::new(rule, known);
    // Root key in `B` → the key that signed, for agreeing and disagreeing.
    let mut agreeing: BTreeMap<String, String> = BTreeMap::new();
    let mut disagreeing: BTreeMap<String, String> = BTreeMap::new();
    for c in shown
        .entries
        .iter()
        .filter(|c| transition::kind(&c.entry) != EntryKind::Transition)
    {
        let bad = |msg: String| Rejection::BadEntry {
            index: c.index,
            msg,
        };
        let entry = match Entry::decode(&c.entry) {
            Ok(e) => e,
            Err(e) => {
                f.fail(5, bad(e.to_string()));
                continue;
            }
        };
        let key = entry.key.to_string();
        let root = transitions.identity.get(&key).cloned();
        let under = match included(rule, head, c, &entry.leaf_hash(), cache) {
            Ok(Some(under)) => under,
            Ok(None) => {
                f.ok(
                    5,
                    format!(
                        "entry {} by {} is not proven; not counted",
                        c.index,
                        entry.key.name()
                    ),
                );
                continue;
            }
            Err(msg) => {
                f.fail(5, bad(msg));
                continue;
            }
        };
        let Some(root) = root else {
            f.ok(
                5,
                format!(
                    "entry {} by {} is included; the key is not trusted, so it is not counted",
                    c.index,
                    entry.key.name()
                ),
            );
            continue;
        };
        if entry.path != narinfo.store_path {
            f.fail(
                5,
                bad(format!(
                    "entry is for {}, not {}",
                    entry.path, narinfo.store_path
                )),
            );
            continue;
        }
        size = size.max(under);
        let matches = entry.matches_narinfo(narinfo).is_ok();
        let refs = matches.then_some(narinfo.references.as_slice());
        match entry.verify(refs) {
            // A digest-form entry that does not match cannot be checked
            // against the narinfo's references; it disagrees all the same.
            Ok(()) | Err(AttestationError::DigestForm) => {}
            Err(e) => {
                f.fail(6, bad(e.to_string()));
                continue;
            }
        }
        if let Some((cut, t)) = transitions.cutoff.get(&key) {
            if c.index >= *cut {
                f.fail(
                    6,
                    Rejection::Retired {
                        index: c.index,
                        key: entry.key.name().to_string(),
                        transition: t.describe(*cut),
                    },
                );
                continue;
            }
        }
        let continuing = if root == key {
            String::new()
        } else {
            format!(
                " (continuing {})",
                root.split(':').next().unwrap_or_default()
            )
        };
        f.ok(
            6,
            format!(
                "entry {} by trusted builder {}{continuing} is included under size {under} and {}",
                c.index,
                entry.key.name(),
                if matches {
                    "matches the narinfo"
                } else {
                    "attests another NAR"
                }
            ),
        );
        if matches {
            agreeing.insert(root, key);
        } else {
            disagreeing.insert(root, key);
        }
    }
    let nar_hash = format_sha256(&narinfo.nar_hash);
    let path = narinfo.store_path.full();
    let disagreeing: BTreeSet<String> = disagreeing.into_values().collect();
    let agreeing: BTreeSet<String> = agreeing.into_values().collect();
    if rule.reject_disagreement && !disagreeing.is_empty() {
        f.fail(
            7,
            Rejection::Disagreement {
                path: path.clone(),
                nar_hash: nar_hash.clone(),
                names: names(&disagreeing),
            },
        );
    }
    if agreeing.len() < rule.required {
        f.fail(
            7,
            Rejection::TooFewBuilders {
                path,
                nar_hash,
                agreeing: agreeing.len(),
                required: rule.required,
                names: names(&agreeing),
                transitions: transitions.describe(),
            },
        );
    } else {
        f.ok(
            7,
            format!(
                "{} of {} required trusted builders agree: [{}]",
                agreeing.len(),
                rule.required,
                names(&agreeing)
            ),
        );
    }
    Accepted {
        builders: agreeing.into_iter().collect(),
        tree_size: size,
    }
}

/// Step 5's inclusion: the size of the tree the entry is proven in, `None`
/// when it is not proven, or what failed.
fn included(
    rule: &Rule,
    head: Option<&PolicyCheckpoint>,
    c: &Candidate,
    leaf: &Hash,
    cache: &mut CheckpointCache,
) -> Result<Option<u64>, String> {
    let leaf = *leaf;
    match &c.inclusion {
        Inclusion::None => Ok(None),
        Inclusion::InShown(proof) => {
            let head = head.ok_or("an inclusion proof under a checkpoint that was not shown")?;
            let cp = &head.checkpoint;
            inclusion::verify(c.index, cp.size, &leaf, proof, &cp.root)
                .map_err(|e| e.to_string())?;
            Ok(Some(cp.size))
        }
        Inclusion::Bundle {
            checkpoint,
            proof,
            to_shown,
        } => {
            let own = match to_shown {
                // Consistent with C: C's signature, quorum and freshness
                // stand for it; its own note need only be the log's.
                Some(_) => bundle_checkpoint(rule, checkpoint)?,
                None => {
                    cache
                        .verify(&rule.policy, checkpoint)
                        .map_err(|e| format!("tlog-proof checkpoint: {e}"))?
                        .checkpoint
                }
            };
            if let Some(h) = head {
                if own.origin != h.checkpoint.origin {
                    return Err(format!(
                        "tlog-proof under log {}, not {}",
                        own.origin, h.checkpoint.origin
                    ));
                }
            }
            inclusion::verify(c.index, own.size, &leaf, proof, &own.root)
                .map_err(|e| format!("tlog-proof: {e}"))?;
            if let Some(to) = to_shown {
                let head = head.ok_or("a consistency proof to a checkpoint that was not shown")?;
                match tracker::compare(&own, &head.checkpoint, to) {
                    Ok(Relation::Same | Relation::Extends) => {}
                    Ok(Relation::Behind) => {
                        return Err(format!(
                        "tlog-proof checkpoint of size {} is newer than the shown one of size {}",
                        own.size, head.checkpoint.size
                    ))
                    }
                    Err(e) => return Err(format!("tlog-proof checkpoint: {e}")),
                }
                return Ok(Some(head.checkpoint.size));
            }
            Ok(Some(own.size))
        }
    }
}

/// A bundle's checkpoint that is proven consistent with `C`: signed by a
/// policy log is enough (no quorum of its own).
fn bundle_checkpoint(rule: &Rule, bytes: &[u8]) -> Result<Checkpoint, String> {
    let note =
        crate::note::Note::parse(bytes).map_err(|e| format!("tlog-proof checkpoint: {e}"))?;
    let cp = Checkpoint::parse(&note.text).map_err(|e| format!("tlog-proof checkpoint: {e}"))?;
    let log = rule
        .policy
        .logs
        .iter()
        .find(|l| crate::note::NoteVerifier::name(&l.verifier) == cp.origin)
        .ok_or_else(|| {
            format!(
                "tlog-proof checkpoint: no trusted log has origin {:?}",
                cp.origin
            )
        })?;
    crate::checkpoint::open_checkpoint(bytes, &[&log.verifier])
        .map_err(|e| format!("tlog-proof checkpoint: {e}"))?;
    Ok(cp)
}
