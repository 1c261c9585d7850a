//! The client acceptance rule of `spec/PROTOCOL.md` §7, applied to a
//! narinfo: checkpoint signed by the log and fresh-cosigned by a witness
//! quorum, consistent with the last one this client verified (a fork is
//! recorded and the log refused), entries included under it, and enough
//! trusted builders agreeing with none disagreeing.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use vouch_spec::attestation::Entry;
use vouch_spec::checkpoint::Checkpoint;
use vouch_spec::nix::{NarInfo, NixPublicKey};
use vouch_spec::note::Note;
use vouch_spec::policy::{Policy, PolicyCheckpoint};
use vouch_spec::tlog_proof::TlogProof;
use vouch_spec::{consistency, inclusion};

use crate::fetch::{self, FetchError};
use crate::state::{StateDir, StateError};

/// What a client trusts, as TOML.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// The log's tlog-tiles prefix (also serving `/vouch/v1/`).
    pub log_url: String,
    /// A C2SP tlog-policy file: the log's vkey, witnesses, quorum.
    pub policy_file: PathBuf,
    /// Trusted builder keys, Nix `name:base64` form.
    pub trusted_builders: Vec<String>,
    /// How many distinct trusted builders must agree (k).
    #[serde(default = "one")]
    pub required_builders: usize,
    /// Reject when any trusted builder disagrees.
    #[serde(default = "yes")]
    pub reject_disagreement: bool,
    /// Oldest acceptable witness cosignature, seconds.
    #[serde(default = "day")]
    pub max_checkpoint_age_secs: u64,
    /// Where the client keeps its per-log state.
    #[serde(default = "state_dir")]
    pub state_dir: PathBuf,
    /// Ask the log for each entry's tlog-proof in the lookup answer (one
    /// round trip); `false` proves inclusion from the log's tiles instead.
    #[serde(default = "yes")]
    pub lookup_proofs: bool,
}

fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}
fn day() -> u64 {
    86400
}
fn state_dir() -> PathBuf {
    PathBuf::from("vouch-client-state")
}

/// Why a narinfo was not accepted. Each names what was wrong and where.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    /// The log was caught forking earlier; an operator must clear it.
    #[error("log {origin} is refused: it was caught forking (evidence in {evidence}); clear it with `vouch clear-fork` after investigating")]
    Refused {
        /// The origin.
        origin: String,
        /// Where the evidence is.
        evidence: String,
    },
    /// The log could not be read.
    #[error("log unreachable: {0}")]
    Fetch(#[from] FetchError),
    /// The checkpoint is not signed by the log or lacks a witness quorum.
    #[error("checkpoint from {url}: {msg}")]
    Checkpoint {
        /// The log URL.
        url: String,
        /// What was wrong.
        msg: String,
    },
    /// The checkpoint's cosignatures are too old (or from the future).
    #[error("checkpoint of size {size} has no fresh witness quorum (cosignatures must be under {max_age}s old)")]
    Stale {
        /// Its size.
        size: u64,
        /// The configured maximum age.
        max_age: u64,
    },
    /// The log forked: this checkpoint is inconsistent with one seen before.
    #[error("SECURITY: log {origin} forked: checkpoint {new_size} is inconsistent with checkpoint {old_size} seen before ({why}); evidence saved to {evidence}; the log is refused until an operator clears it")]
    Fork {
        /// The origin.
        origin: String,
        /// Size seen before.
        old_size: u64,
        /// Size now.
        new_size: u64,
        /// The failure.
        why: String,
        /// Evidence file.
        evidence: String,
    },
    /// The log served a checkpoint older than one this client already verified.
    #[error("log {origin} served checkpoint size {served}, older than size {seen} this client already verified (rollback or stale cache)")]
    Rollback {
        /// The origin.
        origin: String,
        /// Size seen before.
        seen: u64,
        /// Size served now.
        served: u64,
    },
    /// The log served an entry that does not verify.
    #[error("log served a bad entry at index {index}: {msg}")]
    BadEntry {
        /// Index.
        index: u64,
        /// What was wrong.
        msg: String,
    },
    /// Not enough trusted builders attested this NAR.
    #[error("{path}: {agreeing} trusted builder(s) attest NarHash {nar_hash}, {required} required (agreeing: [{names}])")]
    TooFewBuilders {
        /// Store path.
        path: String,
        /// NAR hash.
        nar_hash: String,
        /// How many agree.
        agreeing: usize,
        /// How many are required.
        required: usize,
        /// Their key names.
        names: String,
    },
    /// A trusted builder attested something else for this path.
    #[error(
        "{path}: trusted builder(s) [{names}] attest a different NAR than the narinfo's {nar_hash}"
    )]
    Disagreement {
        /// Store path.
        path: String,
        /// The narinfo's NAR hash.
        nar_hash: String,
        /// The disagreeing builders.
        names: String,
    },
    /// Local state could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
}

impl Rejection {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Rejection::Refused { .. } => "log_refused",
            Rejection::Fetch(_) => "log_unreachable",
            Rejection::Checkpoint { .. } => "bad_checkpoint",
            Rejection::Stale { .. } => "stale_checkpoint",
            Rejection::Fork { .. } => "log_fork",
            Rejection::Rollback { .. } => "rollback",
            Rejection::BadEntry { .. } => "bad_entry",
            Rejection::TooFewBuilders { .. } => "too_few_builders",
            Rejection::Disagreement { .. } => "disagreement",
            Rejection::State(_) => "state_error",
        }
    }
}

/// An accepted narinfo: who vouched for it, under which checkpoint.
#[derive(Clone, Debug)]
pub struct Acceptance {
    /// The agreeing trusted builders (key names).
    pub builders: Vec<String>,
    /// The checkpoint size it was verified under.
    pub tree_size: u64,
}

/// A configured verifier.
pub struct Verifier {
    cfg: ClientConfig,
    policy: Policy,
    trusted: Vec<NixPublicKey>,
    state: StateDir,
    agent: ureq::Agent,
    /// The checkpoint this process accepted last (bytes and verification),
    /// so the same bytes served again cost no signature check.
    last: std::sync::Mutex<Option<(Vec<u8>, PolicyCheckpoint)>>,
}

#[derive(Deserialize)]
struct LookupEntry {
    index: u64,
    entry: String,
    /// A tlog-proof under the log's served checkpoint (`?proof=1`).
    #[serde(default)]
    proof: Option<String>,
}

#[derive(Deserialize)]
struct Lookup {
    entries: Vec<LookupEntry>,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Verifier {
    /// Builds a verifier, reading the policy file and opening the state directory.
    pub fn new(cfg: ClientConfig) -> anyhow::Result<Verifier> {
        let text = std::fs::read(&cfg.policy_file).map_err(|e| {
            anyhow::anyhow!("reading policy file {}: {e}", cfg.policy_file.display())
        })?;
        let policy = Policy::parse(&text)
            .map_err(|e| anyhow::anyhow!("policy file {}: {e}", cfg.policy_file.display()))?;
        anyhow::ensure!(
            !policy.logs.is_empty(),
            "policy file {} names no log (add a `log <vkey>` line)",
            cfg.policy_file.display()
        );
        let trusted = cfg
            .trusted_builders
            .iter()
            .map(|k| {
                NixPublicKey::parse(k).map_err(|e| anyhow::anyhow!("trusted_builders: {k:?}: {e}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        anyhow::ensure!(
            cfg.required_builders >= 1,
            "required_builders must be at least 1"
        );
        let state = StateDir::open(&cfg.state_dir)?;
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(30))
            .build();
        Ok(Verifier {
            cfg,
            policy,
            trusted,
            state,
            agent,
            last: std::sync::Mutex::new(None),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    /// Fetches and verifies the log's checkpoint (signature, fresh quorum,
    /// consistency with the stored one), advancing the stored one.
    pub fn checkpoint(&self) -> Result<PolicyCheckpoint, Rejection> {
        let url = format!("{}/checkpoint", self.cfg.log_url.trim_end_matches('/'));
        let bytes = fetch::get(&self.agent, &url, 1 << 20)?;
        self.accept_checkpoint(&bytes, &url)
    }

    /// Verifies checkpoint bytes the log served at `url` (signature, fresh
    /// quorum, consistency with the stored one), advancing the stored one.
    /// Bytes equal to the last accepted ones, while they are still the
    /// stored checkpoint, skip the signature and consistency checks (which
    /// would give the same answer) but not freshness or the fork flag.
    fn accept_checkpoint(&self, bytes: &[u8], url: &str) -> Result<PolicyCheckpoint, Rejection> {
        let remembered = self.last.lock().ok().and_then(|l| {
            l.as_ref()
                .filter(|(b, _)| b == bytes)
                .map(|(_, cp)| cp.clone())
        });
        if let Some(cp) = remembered {
            let origin = &cp.checkpoint.origin;
            if self.state.fork(origin)?.is_none()
                && self.state.checkpoint(origin)?.as_deref() == Some(bytes)
            {
                self.check_fresh(&cp)?;
                return Ok(cp);
            }
        }
        let cp = self
            .policy
            .verify_checkpoint(bytes)
            .map_err(|e| Rejection::Checkpoint {
                url: url.to_string(),
                msg: e.to_string(),
            })?;
        let origin = cp.checkpoint.origin.clone();
        if let Some(evidence) = self.state.fork(&origin)? {
            let _ = evidence;
            return Err(Rejection::Refused {
                origin,
                evidence: "the state directory's .fork file".into(),
            });
        }
        self.check_fresh(&cp)?;
        self.check_consistency(&origin, &cp, bytes)?;
        if let Ok(mut l) = self.last.lock() {
            *l = Some((bytes.to_vec(), cp.clone()));
        }
        Ok(cp)
    }

    /// Freshness: the quorum must hold with recent cosignatures only.
    fn check_fresh(&self, cp: &PolicyCheckpoint) -> Result<(), Rejection> {
        if self.policy.quorum != vouch_spec::policy::Rule::None {
            let now = now();
            let fresh: BTreeSet<usize> = cp
                .timestamps
                .iter()
                .filter(|(_, t)| {
                    *t <= now + 600 && now.saturating_sub(*t) <= self.cfg.max_checkpoint_age_secs
                })
                .map(|(w, _)| *w)
                .collect();
            if !self.policy.quorum.satisfied(&fresh) {
                return Err(Rejection::Stale {
                    size: cp.checkpoint.size,
                    max_age: self.cfg.max_checkpoint_age_secs,
                });
            }
        }
        Ok(())
    }

    fn check_consistency(
        &self,
        origin: &str,
        cp: &PolicyCheckpoint,
        bytes: &[u8],
    ) -> Result<(), Rejection> {
        let stored = self.state.checkpoint(origin)?;
        let old = match &stored {
            None => None,
            Some(b) => Note::parse(b)
                .ok()
                .and_then(|n| Checkpoint::parse(&n.text).ok()),
        };
        let new = &cp.checkpoint;
        // Fetch failures are "unreachable", not forks: only a proof that
        // fails to verify (or two roots for one size) is evidence.
        let result = match &old {
            None => Ok(()),
            Some(o) if o.size == new.size => {
                if o.root == new.root {
                    Ok(())
                } else {
                    Err(format!("two roots for size {}", o.size))
                }
            }
            Some(o) if o.size == 0 || new.size == 0 => Ok(()),
            Some(o) if o.size < new.size => {
                let p = fetch::consistency_proof(&self.agent, &self.cfg.log_url, o.size, new.size)?;
                consistency::verify(o.size, new.size, &p, &o.root, &new.root)
                    .map_err(|e| e.to_string())
            }
            Some(o) => {
                let p = fetch::consistency_proof(&self.agent, &self.cfg.log_url, new.size, o.size)?;
                consistency::verify(new.size, o.size, &p, &new.root, &o.root)
                    .map_err(|e| e.to_string())
            }
        };
        if let Err(why) = result {
            let evidence = format!(
                "Checkpoint seen before:\n{}\nCheckpoint now served by {}:\n{}\nFailure: {why}\n",
                String::from_utf8_lossy(stored.as_deref().unwrap_or_default()),
                self.cfg.log_url,
                String::from_utf8_lossy(bytes)
            );
            let path = self.state.set_fork(origin, &evidence)?;
            tracing::error!(%origin, %why, "SECURITY: log fork detected");
            return Err(Rejection::Fork {
                origin: origin.to_string(),
                old_size: old.map_or(0, |o| o.size),
                new_size: new.size,
                why,
                evidence: path.display().to_string(),
            });
        }
        if let Some(o) = old.as_ref().filter(|o| new.size < o.size) {
            // Consistent, but older than what this client has seen: a log (or
            // a cache in front of it) hiding newer entries.
            return Err(Rejection::Rollback {
                origin: origin.to_string(),
                seen: o.size,
                served: new.size,
            });
        }
        if old.as_ref().is_none_or(|o| new.size > o.size) {
            // Compare-and-swap: a concurrent client that moved it further is fine.
            match self
                .state
                .compare_and_swap(origin, stored.as_deref(), bytes)
            {
                Ok(()) | Err(StateError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Applies the acceptance rule to a narinfo.
    ///
    /// One round trip when the log answers lookups with tlog-proofs
    /// (`?proof=1`, `spec/PROTOCOL.md` §5.3): each proof's checkpoint goes
    /// through the same checks as `/checkpoint` (signature, fresh quorum,
    /// consistency with the stored one) and its inclusion proof is verified
    /// against it. An entry without a proof is proven from the log's tiles
    /// instead (full tiles cached on disk once a proof from them verified).
    pub fn check_narinfo(&self, narinfo: &NarInfo) -> Result<Acceptance, Rejection> {
        let url = format!(
            "{}/vouch/v1/lookup/{}{}",
            self.cfg.log_url.trim_end_matches('/'),
            narinfo.store_path.hash_part(),
            if self.cfg.lookup_proofs {
                "?proof=1"
            } else {
                ""
            }
        );
        let body = fetch::get(&self.agent, &url, 64 << 20)?;
        let lookup: Lookup = serde_json::from_slice(&body).map_err(|e| FetchError::Invalid {
            url: url.clone(),
            msg: e.to_string(),
        })?;
        let mut included = Vec::new();
        let mut tiled: Option<PolicyCheckpoint> = None;
        let mut size = 0;
        for le in &lookup.entries {
            let entry = Entry::decode(le.entry.as_bytes()).map_err(|e| Rejection::BadEntry {
                index: le.index,
                msg: e.to_string(),
            })?;
            if !self.trusted.contains(&entry.key) {
                continue;
            }
            if let Some(text) = &le.proof {
                let bad = |msg: String| Rejection::BadEntry {
                    index: le.index,
                    msg: format!("tlog-proof in the lookup answer: {msg}"),
                };
                let p = TlogProof::parse(text.as_bytes()).map_err(|e| bad(e.to_string()))?;
                if p.index != le.index || p.extra.as_deref() != Some(le.entry.as_bytes()) {
                    return Err(bad("it proves a different entry or index".into()));
                }
                let cp = self.accept_checkpoint(&p.checkpoint, &url)?;
                if le.index >= cp.checkpoint.size {
                    return Err(bad(format!(
                        "index beyond its checkpoint of size {}",
                        cp.checkpoint.size
                    )));
                }
                p.verify_inclusion(&entry.leaf_hash(), &cp.checkpoint)
                    .map_err(|e| bad(e.to_string()))?;
                size = size.max(cp.checkpoint.size);
                included.push((le.index, entry));
                continue;
            }
            let cp = match &tiled {
                Some(cp) => cp.clone(),
                None => tiled.insert(self.checkpoint()?).clone(),
            };
            let size_t = cp.checkpoint.size;
            size = size.max(size_t);
            if le.index >= size_t {
                continue;
            }
            // Included under the verified checkpoint.
            let cache = fetch::TileCache::new(self.cfg.state_dir.join("tiles").join(
                vouch_spec::hex::encode(&vouch_spec::hash::sha256(cp.checkpoint.origin.as_bytes())),
            ));
            let (proof, tiles) = fetch::inclusion_proof(
                &self.agent,
                &self.cfg.log_url,
                le.index,
                size_t,
                Some(&cache),
            )?;
            inclusion::verify(
                le.index,
                size_t,
                &entry.leaf_hash(),
                &proof,
                &cp.checkpoint.root,
            )
            .map_err(|e| Rejection::BadEntry {
                index: le.index,
                msg: e.to_string(),
            })?;
            tiles.verified(Some(&cache));
            included.push((le.index, entry));
        }
        if included.is_empty() {
            // Nothing to prove; still require a good checkpoint from the log.
            size = match tiled {
                Some(cp) => cp.checkpoint.size,
                None => self.checkpoint()?.checkpoint.size,
            };
        }
        self.decide(narinfo, included, size)
    }

    /// Applies the rule to a narinfo using tlog-proof bundles alone (no
    /// network): each must carry its entry in `extra`, be included under a
    /// checkpoint signed by the log and cosigned by the witness quorum.
    /// Freshness and consistency with the stored checkpoint cannot be
    /// checked offline (`spec/PROTOCOL.md` §7, step 4).
    pub fn check_narinfo_offline(
        &self,
        narinfo: &NarInfo,
        bundles: &[TlogProof],
    ) -> Result<Acceptance, Rejection> {
        let mut included = Vec::new();
        let mut size = 0;
        for (i, b) in bundles.iter().enumerate() {
            let bad = |msg: String| Rejection::BadEntry {
                index: b.index,
                msg: format!("tlog-proof {i}: {msg}"),
            };
            let extra = b
                .extra
                .as_deref()
                .ok_or_else(|| bad("no entry in the extra line".into()))?;
            let entry = Entry::decode(extra).map_err(|e| bad(e.to_string()))?;
            let cp = b
                .verify(&entry.leaf_hash(), &self.policy)
                .map_err(|e| bad(e.to_string()))?;
            if let Some(_evidence) = self.state.fork(&cp.checkpoint.origin)? {
                return Err(Rejection::Refused {
                    origin: cp.checkpoint.origin,
                    evidence: "the state directory's .fork file".into(),
                });
            }
            size = size.max(cp.checkpoint.size);
            if self.trusted.contains(&entry.key) {
                included.push((b.index, entry));
            }
        }
        self.decide(narinfo, included, size)
    }

    /// Steps 6 and 7 over entries already proven included.
    fn decide(
        &self,
        narinfo: &NarInfo,
        included: Vec<(u64, Entry)>,
        size: u64,
    ) -> Result<Acceptance, Rejection> {
        let mut agreeing: BTreeSet<String> = BTreeSet::new();
        let mut disagreeing: BTreeSet<String> = BTreeSet::new();
        for (index, entry) in included {
            if entry.path != narinfo.store_path {
                return Err(Rejection::BadEntry {
                    index,
                    msg: format!("entry is for {}, not {}", entry.path, narinfo.store_path),
                });
            }
            let matches = entry.matches_narinfo(narinfo).is_ok();
            let refs = if matches {
                Some(narinfo.references.as_slice())
            } else {
                None
            };
            match entry.verify(refs) {
                Ok(()) => {}
                // A digest-form entry that does not match cannot be checked
                // with the narinfo's references; it still disagrees.
                Err(vouch_spec::attestation::AttestationError::DigestForm) => {}
                Err(e) => {
                    return Err(Rejection::BadEntry {
                        index,
                        msg: e.to_string(),
                    })
                }
            }
            if matches {
                agreeing.insert(entry.key.to_string());
            } else {
                disagreeing.insert(entry.key.to_string());
            }
        }
        let nar_hash = vouch_spec::nix::narinfo::format_sha256(&narinfo.nar_hash);
        let path = narinfo.store_path.full();
        let names = |s: &BTreeSet<String>| {
            s.iter()
                .map(|k| k.split(':').next().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if self.cfg.reject_disagreement && !disagreeing.is_empty() {
            return Err(Rejection::Disagreement {
                path,
                nar_hash,
                names: names(&disagreeing),
            });
        }
        if agreeing.len() < self.cfg.required_builders {
            return Err(Rejection::TooFewBuilders {
                path,
                nar_hash,
                agreeing: agreeing.len(),
                required: self.cfg.required_builders,
                names: names(&agreeing),
            });
        }
        Ok(Acceptance {
            builders: agreeing.into_iter().collect(),
            tree_size: size,
        })
    }
}
