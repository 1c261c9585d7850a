//! The client acceptance rule of `spec/PROTOCOL.md` §7 as an IO shell
//! around the pure `vouch_spec::accept`: fetch (the checkpoint, the
//! consistency proof from the kept one, the entries and their inclusion
//! proofs), decide, then persist (advance the kept checkpoint by
//! compare-and-swap, or record a fork) through the [`Tracker`].

use std::path::PathBuf;
use std::sync::Mutex;

use serde::Deserialize;
use vouch_spec::accept::{self, Candidate, Clock, Inclusion, Kept, Reason, Rule, Shown};
use vouch_spec::attestation::Entry;
use vouch_spec::checkpoint::Checkpoint;
use vouch_spec::nix::{NarInfo, NixPublicKey};
use vouch_spec::policy::{CheckpointCache, Policy, PolicyCheckpoint};
use vouch_spec::tlog_proof::TlogProof;
use vouch_spec::transition::Transition;

use crate::http::HttpClient;
use crate::log_client::{FetchError, LogClient};
use crate::state::{StateDir, StateError};
use crate::tiles::{Fetched, TileCache};
use crate::tracker::{Tracker, TrackerError};

/// What a client trusts, as TOML (the README's "Client configuration").
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
    /// Count a key that a trusted key handed over to (a logged
    /// transition, `spec/PROTOCOL.md` §3.6) as that trusted builder.
    #[serde(default = "yes")]
    pub follow_handovers: bool,
    /// Transitions to honour even if the log does not show them: each the
    /// entry text `vouch key handover`/`retire` printed, with its index.
    #[serde(default)]
    pub pinned_transitions: Vec<PinnedTransition>,
}

/// A transition pinned in the configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinnedTransition {
    /// Its index in the log (the cutoff).
    pub index: u64,
    /// The entry (§3.6 encoding).
    pub entry: String,
}

/// Most keys a client follows through handovers from one trusted key.
const MAX_TRANSITION_KEYS: usize = 16;

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

/// Why a narinfo was not accepted: the acceptance rule's reason (§7),
/// told with this client's context, or the IO that kept the client from
/// deciding. Each names what was wrong and where.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    /// The rule refused: `vouch_spec::accept`'s reason, the one list of
    /// them. The message adds where the checkpoint came from (a bad or
    /// missing one) and where a fork's evidence is kept (a fork, a log
    /// refused for one) with what the operator must do.
    #[error("{}", rule_message(.why, .checkpoint_url, .evidence.as_deref()))]
    Rule {
        /// The rule's reason (boxed: it carries a few strings, and a
        /// `Result` carrying this error should stay small).
        why: Box<accept::Rejection>,
        /// The log's checkpoint URL.
        checkpoint_url: String,
        /// Where the fork's evidence was saved, if it was.
        evidence: Option<String>,
    },
    /// The log could not be read.
    #[error("log unreachable: {0}")]
    Fetch(#[from] FetchError),
    /// Local state could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// The kept checkpoint is damaged.
    #[error("client state: {0}")]
    Corrupt(String),
}

/// A rule's reason with the client's context (see [`Rejection::Rule`]).
fn rule_message(why: &accept::Rejection, url: &str, evidence: Option<&str>) -> String {
    use accept::Rejection as R;
    match why {
        R::Refused { .. } => format!(
            "{why} (evidence in {}); clear it with `vouch clear-fork` after investigating",
            evidence.unwrap_or("the state directory's .fork file")
        ),
        R::NoCheckpoint | R::Checkpoint(_) => format!("checkpoint from {url}: {why}"),
        R::Fork { .. } => format!(
            "SECURITY: {why}; evidence saved to {}; the log is refused until an operator clears it",
            evidence.unwrap_or("(not recorded)")
        ),
        _ => why.to_string(),
    }
}

impl Rejection {
    /// The rule's reason, if the rule refused.
    pub fn rule(&self) -> Option<&accept::Rejection> {
        match self {
            Rejection::Rule { why, .. } => Some(why.as_ref()),
            _ => None,
        }
    }

    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        use accept::Rejection as R;
        match self {
            Rejection::Rule { why, .. } => match why.as_ref() {
                R::Refused { .. } => "log_refused",
                R::NoCheckpoint | R::Checkpoint(_) => "bad_checkpoint",
                R::Stale { .. } => "stale_checkpoint",
                R::Fork { .. } => "log_fork",
                R::Rollback { .. } => "rollback",
                R::BadEntry { .. } => "bad_entry",
                R::Retired { .. } => "retired_key",
                R::TooFewBuilders { .. } => "too_few_builders",
                R::Disagreement { .. } => "disagreement",
            },
            Rejection::Fetch(_) => "log_unreachable",
            Rejection::State(_) | Rejection::Corrupt(_) => "state_error",
        }
    }

    /// Whether the decision could not be made because the log (or its
    /// proofs) could not be read, as opposed to a verdict on the path.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Rejection::Fetch(_))
    }

    /// Whether the client's own state failed.
    pub fn is_local(&self) -> bool {
        matches!(self, Rejection::State(_) | Rejection::Corrupt(_))
    }
}

/// An accepted narinfo: who vouched for it, under which checkpoint.
#[derive(Clone, Debug)]
pub struct Acceptance {
    /// The agreeing trusted builders (Nix public keys).
    pub builders: Vec<String>,
    /// The checkpoint size it was verified under.
    pub tree_size: u64,
}

/// A decision with every reason the rule gave (empty when IO failed before
/// the rule could run).
#[derive(Debug)]
pub struct Verdict {
    /// Accepted, or why not.
    pub outcome: Result<Acceptance, Rejection>,
    /// Every finding, in §7's step order.
    pub reasons: Vec<Reason>,
}

impl Verdict {
    fn failed(e: Rejection) -> Verdict {
        Verdict {
            outcome: Err(e),
            reasons: Vec::new(),
        }
    }
}

/// Why a verifier could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The policy file could not be read.
    #[error("reading policy file {path}: {err}")]
    PolicyFile {
        /// The file.
        path: PathBuf,
        /// The error.
        err: std::io::Error,
    },
    /// The policy file does not parse.
    #[error("policy file {path}: {err}")]
    Policy {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        err: vouch_spec::policy::PolicyError,
    },
    /// The policy names no log.
    #[error("policy file {0} names no log (add a `log <vkey>` line; `vouch policy` writes one)")]
    NoLog(PathBuf),
    /// A trusted builder key does not parse.
    #[error("trusted_builders: {key:?}: {err}")]
    Key {
        /// The key as written.
        key: String,
        /// What is wrong.
        err: vouch_spec::nix::key::NixKeyError,
    },
    /// A pinned transition does not decode or verify.
    #[error("pinned_transitions at index {index}: {err}")]
    Transition {
        /// Its index.
        index: u64,
        /// What is wrong.
        err: vouch_spec::transition::TransitionError,
    },
    /// `required_builders` is 0.
    #[error("required_builders must be at least 1")]
    Required,
    /// The state directory cannot be used.
    #[error(transparent)]
    State(#[from] StateError),
    /// The HTTP client cannot be built (trust roots).
    #[error(transparent)]
    Http(#[from] crate::http::HttpError),
}

/// A configured verifier.
pub struct Verifier {
    cfg: ClientConfig,
    rule: Rule,
    tracker: Tracker<StateDir>,
    log: LogClient,
    /// Checkpoints whose signatures verified under the policy.
    cache: Mutex<CheckpointCache>,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Verifier {
    /// Builds a verifier with the process's HTTP client (trust roots and
    /// proxies from the environment).
    pub fn new(cfg: ClientConfig) -> Result<Verifier, ConfigError> {
        Verifier::with_http(cfg, HttpClient::from_env()?)
    }

    /// Builds a verifier, reading the policy file and opening the state directory.
    pub fn with_http(cfg: ClientConfig, http: HttpClient) -> Result<Verifier, ConfigError> {
        let path = cfg.policy_file.clone();
        let text = std::fs::read(&path).map_err(|err| ConfigError::PolicyFile {
            path: path.clone(),
            err,
        })?;
        let policy = Policy::parse(&text).map_err(|err| ConfigError::Policy {
            path: path.clone(),
            err,
        })?;
        if policy.logs.is_empty() {
            return Err(ConfigError::NoLog(path));
        }
        let trusted = cfg
            .trusted_builders
            .iter()
            .map(|k| {
                NixPublicKey::parse(k).map_err(|err| ConfigError::Key {
                    key: k.clone(),
                    err,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if cfg.required_builders < 1 {
            return Err(ConfigError::Required);
        }
        let pinned = cfg
            .pinned_transitions
            .iter()
            .map(|p| {
                let t = Transition::decode(p.entry.as_bytes())
                    .and_then(|t| t.verify().map(|()| t))
                    .map_err(|err| ConfigError::Transition {
                        index: p.index,
                        err,
                    })?;
                Ok((p.index, t))
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let state = StateDir::open(&cfg.state_dir)?;
        Ok(Verifier {
            rule: Rule {
                policy,
                trusted,
                required: cfg.required_builders,
                reject_disagreement: cfg.reject_disagreement,
                max_age_secs: cfg.max_checkpoint_age_secs,
                follow_handovers: cfg.follow_handovers,
                pinned,
            },
            tracker: Tracker::new(state),
            log: LogClient::new(http, &cfg.log_url),
            cache: Mutex::new(CheckpointCache::default()),
            cfg,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    /// The log client.
    pub fn log(&self) -> &LogClient {
        &self.log
    }

    fn kept(&self, origin: &str) -> Result<Kept, Rejection> {
        self.tracker.kept(origin).map_err(|e| self.tracker_error(e))
    }

    /// Steps 1–4 on checkpoint bytes shown by the log: signature, quorum,
    /// freshness, consistency with the kept one (fetching the proof), then
    /// persisting what they say.
    fn shown_checkpoint(&self, bytes: Vec<u8>) -> Result<(Kept, Shown), Rejection> {
        // Verify the signatures before fetching anything the checkpoint
        // asks for (the proof's sizes come from it).
        let cp = self
            .cache
            .lock()
            .map_err(|_| Rejection::Corrupt("checkpoint cache lock poisoned".into()))?
            .verify(&self.rule.policy, &bytes)
            .map_err(|e| self.rejection(accept::Rejection::Checkpoint(e.to_string()), None))?;
        let kept = self.kept(&cp.checkpoint.origin)?;
        let proof = if kept.forked {
            Vec::new()
        } else {
            self.tracker.proof(&kept, &cp.checkpoint, &self.log)?
        };
        Ok((
            kept,
            Shown {
                checkpoint: Some(bytes),
                consistency: Some(proof),
                entries: Vec::new(),
            },
        ))
    }

    /// Runs the rule and persists what it says to keep.
    fn decide(
        &self,
        kept: &Kept,
        shown: &Shown,
        narinfo: Option<&NarInfo>,
        clock: Clock,
    ) -> Verdict {
        let mut cache = match self.cache.lock() {
            Ok(c) => c,
            Err(_) => {
                return Verdict::failed(Rejection::Corrupt("checkpoint cache lock poisoned".into()))
            }
        };
        let (outcome, reasons, keep, origin) = match narinfo {
            Some(n) => {
                let d = accept::accept(&self.rule, kept, shown, n, clock, &mut cache);
                let origin = origin_of(kept, shown);
                (
                    d.outcome.map(|a| (Some(a), None)),
                    d.reasons,
                    d.keep,
                    origin,
                )
            }
            None => {
                let d = accept::check_log(&self.rule, kept, shown, clock, &mut cache);
                let origin = origin_of(kept, shown);
                (
                    d.outcome.map(|cp| (None, Some(cp))),
                    d.reasons,
                    d.keep,
                    origin,
                )
            }
        };
        drop(cache);
        let proof = shown.consistency.as_deref().unwrap_or_default();
        let evidence =
            match self
                .tracker
                .persist(&origin, kept, &keep, proof, self.log.url().base())
            {
                Ok(e) => e,
                Err(e) => return Verdict::failed(self.tracker_error(e)),
            };
        let outcome = match outcome {
            Ok((Some(a), _)) => Ok(Acceptance {
                builders: a.builders,
                tree_size: a.tree_size,
            }),
            Ok((None, Some(cp))) => Ok(Acceptance {
                builders: Vec::new(),
                tree_size: cp.checkpoint.size,
            }),
            Ok((None, None)) => Err(Rejection::Corrupt("no outcome".into())),
            Err(r) => Err(self.rejection(r, evidence)),
        };
        Verdict { outcome, reasons }
    }

    /// The rule's reason `why` as this client's rejection.
    fn rejection(&self, why: accept::Rejection, evidence: Option<String>) -> Rejection {
        Rejection::Rule {
            why: Box::new(why),
            checkpoint_url: self.log.url().checkpoint(),
            evidence,
        }
    }

    /// What the tracker's failure means for the decision.
    fn tracker_error(&self, e: TrackerError<StateError>) -> Rejection {
        match e {
            TrackerError::Store(s) => Rejection::State(s),
            TrackerError::Fetch(f) => Rejection::Fetch(f),
            TrackerError::Refused { origin, evidence } => {
                self.rejection(accept::Rejection::Refused { origin }, Some(evidence))
            }
            TrackerError::Corrupt { origin, msg } => {
                Rejection::Corrupt(format!("kept checkpoint of {origin}: {msg}"))
            }
            TrackerError::Fork(f) => self.rejection(
                accept::Rejection::Fork {
                    origin: f.origin.clone(),
                    old_size: f.old_size,
                    new_size: f.new_size,
                    why: f.why.clone(),
                },
                None,
            ),
        }
    }

    /// The entry a published tlog-proof (the `i`th given) carries in its
    /// `extra` line: a proof without one proves nothing here.
    fn bundle_entry<'b>(&self, i: usize, b: &'b TlogProof) -> Result<&'b Vec<u8>, Rejection> {
        b.extra.as_ref().ok_or_else(|| {
            self.rejection(
                accept::Rejection::BadEntry {
                    index: b.index,
                    msg: format!("tlog-proof {i}: no entry in the extra line"),
                },
                None,
            )
        })
    }

    /// Fetches and verifies the log's checkpoint (signature, fresh quorum,
    /// consistency with the kept one), advancing the kept one.
    pub fn checkpoint(&self) -> Result<PolicyCheckpoint, Rejection> {
        let bytes = self.log.checkpoint()?;
        let (kept, shown) = self.shown_checkpoint(bytes.clone())?;
        self.decide(&kept, &shown, None, Clock::Now(now()))
            .outcome?;
        self.cache
            .lock()
            .map_err(|_| Rejection::Corrupt("checkpoint cache lock poisoned".into()))?
            .verify(&self.rule.policy, &bytes)
            .map_err(|e| self.rejection(accept::Rejection::Checkpoint(e.to_string()), None))
    }

    /// Applies the acceptance rule to a narinfo.
    pub fn check_narinfo(&self, narinfo: &NarInfo) -> Result<Acceptance, Rejection> {
        self.verdict(narinfo).outcome
    }

    /// [`Verifier::check_narinfo`] with every reason.
    ///
    /// One round trip when the log answers lookups with tlog-proofs
    /// (`?proof=1`, `spec/PROTOCOL.md` §5.3): their checkpoint is the one
    /// shown. Otherwise the served `/checkpoint` is, and each trusted
    /// entry's inclusion is proven from the log's tiles (full tiles cached
    /// on disk once a proof from them verified).
    pub fn verdict(&self, narinfo: &NarInfo) -> Verdict {
        match self.gather(narinfo) {
            Ok((kept, shown, fetched)) => {
                let v = self.decide(&kept, &shown, Some(narinfo), Clock::Now(now()));
                // Every inclusion proof held unless an entry was bad.
                if !matches!(
                    v.outcome.as_ref().map_err(Rejection::rule),
                    Err(Some(accept::Rejection::BadEntry { .. }))
                ) {
                    let cache = self.tile_cache(&kept, &shown);
                    for f in fetched {
                        f.verified(cache.as_ref());
                    }
                }
                v
            }
            Err(e) => Verdict::failed(e),
        }
    }

    fn tile_cache(&self, kept: &Kept, shown: &Shown) -> Option<TileCache> {
        let origin = origin_of(kept, shown);
        (!origin.is_empty()).then(|| {
            TileCache::new(
                self.cfg
                    .state_dir
                    .join("tiles")
                    .join(vouch_spec::hex::encode(&vouch_spec::hash::sha256(
                        origin.as_bytes(),
                    ))),
            )
        })
    }

    /// Fetches what the rule needs for `narinfo`.
    fn gather(&self, narinfo: &NarInfo) -> Result<(Kept, Shown, Vec<Fetched>), Rejection> {
        let hash = narinfo.store_path.hash_part();
        let lookup = self.log.lookup(hash, self.cfg.lookup_proofs)?;
        let lookup_url = self.log.url().lookup(hash, self.cfg.lookup_proofs);
        let mut proofs = Vec::new();
        for le in &lookup.entries {
            let proof = match &le.proof {
                Some(text) => Some(TlogProof::parse(text.as_bytes()).map_err(|e| {
                    self.rejection(
                        accept::Rejection::BadEntry {
                            index: le.index,
                            msg: format!("tlog-proof in the lookup answer: {e}"),
                        },
                        None,
                    )
                })?),
                None => None,
            };
            proofs.push(proof);
        }
        // The checkpoint shown: the lookup proofs' (an honest log answers
        // under one), else the served one.
        let shown_bytes = match proofs.iter().flatten().next() {
            Some(p) => p.checkpoint.clone(),
            None => self.log.checkpoint()?,
        };
        let (kept, mut shown) = self.shown_checkpoint(shown_bytes.clone())?;
        let size = Checkpoint::parse(
            &vouch_spec::note::Note::parse(&shown_bytes)
                .map_err(|e| FetchError::invalid(&lookup_url, e))?
                .text,
        )
        .map_err(|e| FetchError::invalid(&lookup_url, e))?
        .size;
        let tiles = self.tile_cache(&kept, &shown);
        let mut fetched = Vec::new();
        for (le, proof) in lookup.entries.iter().zip(proofs) {
            let trusted = Entry::decode(le.entry.as_bytes())
                .map(|e| self.rule.trusted.contains(&e.key))
                .unwrap_or(true);
            let inclusion = match proof {
                Some(p) if p.checkpoint == shown_bytes => Inclusion::InShown(p.proof),
                Some(p) => Inclusion::Bundle {
                    checkpoint: p.checkpoint,
                    proof: p.proof,
                    to_shown: None,
                },
                // Only trusted entries count: prove only those.
                None if !trusted || le.index >= size => Inclusion::None,
                None => {
                    let (proof, f) = self.log.inclusion_proof(le.index, size, tiles.as_ref())?;
                    fetched.push(f);
                    Inclusion::InShown(proof)
                }
            };
            shown.entries.push(Candidate {
                index: le.index,
                entry: le.entry.clone().into_bytes(),
                inclusion,
            });
        }
        shown.entries.extend(self.transitions(&shown_bytes)?);
        Ok((kept, shown, fetched))
    }

    /// The logged transitions of the trusted keys and, through handovers
    /// the rule follows, of the keys they continue in (§5.7), each with its
    /// tlog-proof: the rule decides which of them hold.
    fn transitions(&self, shown_bytes: &[u8]) -> Result<Vec<Candidate>, Rejection> {
        let mut out = Vec::new();
        let mut queue: Vec<[u8; 32]> = self
            .rule
            .trusted
            .iter()
            .map(|k| k.key().to_bytes())
            .collect();
        let mut asked = std::collections::BTreeSet::new();
        let mut seen = std::collections::BTreeSet::new();
        while let Some(key) = queue.pop() {
            if !asked.insert(key) || asked.len() > MAX_TRANSITION_KEYS * self.rule.trusted.len() {
                continue;
            }
            let answer = self.log.transitions(&key, true)?;
            for le in answer.entries {
                if !seen.insert(le.index) {
                    continue;
                }
                let bad = |msg: String| {
                    self.rejection(
                        accept::Rejection::BadEntry {
                            index: le.index,
                            msg,
                        },
                        None,
                    )
                };
                let text = le
                    .proof
                    .as_deref()
                    .ok_or_else(|| bad("transition answered without its tlog-proof".into()))?;
                let p = TlogProof::parse(text.as_bytes())
                    .map_err(|e| bad(format!("tlog-proof in the transitions answer: {e}")))?;
                if self.rule.follow_handovers {
                    if let Ok(t) = Transition::decode(le.entry.as_bytes()) {
                        if t.old.key().to_bytes() == key {
                            queue.extend(t.successor().map(|n| n.key().to_bytes()));
                        }
                    }
                }
                let inclusion = if p.checkpoint == shown_bytes {
                    Inclusion::InShown(p.proof)
                } else {
                    Inclusion::Bundle {
                        checkpoint: p.checkpoint,
                        proof: p.proof,
                        to_shown: None,
                    }
                };
                out.push(Candidate {
                    index: le.index,
                    entry: le.entry.into_bytes(),
                    inclusion,
                });
            }
        }
        Ok(out)
    }

    /// Applies the rule to a narinfo using tlog-proof bundles alone (no
    /// network): each must carry its entry in `extra` and be included under
    /// a checkpoint signed by the log and cosigned by the witness quorum.
    /// Freshness and consistency with the kept checkpoint cannot be checked
    /// offline (`spec/PROTOCOL.md` §7, step 4).
    pub fn check_narinfo_offline(
        &self,
        narinfo: &NarInfo,
        bundles: &[TlogProof],
    ) -> Result<Acceptance, Rejection> {
        self.verdict_offline(narinfo, bundles).outcome
    }

    /// [`Verifier::check_narinfo_offline`] with every reason.
    pub fn verdict_offline(&self, narinfo: &NarInfo, bundles: &[TlogProof]) -> Verdict {
        let mut shown = Shown::default();
        for (i, b) in bundles.iter().enumerate() {
            let extra = match self.bundle_entry(i, b) {
                Ok(e) => e,
                Err(e) => return Verdict::failed(e),
            };
            shown.entries.push(Candidate {
                index: b.index,
                entry: extra.clone(),
                inclusion: Inclusion::Bundle {
                    checkpoint: b.checkpoint.clone(),
                    proof: b.proof.clone(),
                    to_shown: None,
                },
            });
        }
        let origin = bundles
            .iter()
            .find_map(|b| accept::origin(&b.checkpoint))
            .unwrap_or_default();
        let kept = if origin.is_empty() {
            Kept::default()
        } else {
            match self.kept(&origin) {
                Ok(k) => k,
                Err(e) => return Verdict::failed(e),
            }
        };
        // Offline nothing is advanced: only the fork flag is read.
        let kept = Kept {
            checkpoint: None,
            ..kept
        };
        let mut v = self.decide(&kept, &shown, Some(narinfo), Clock::Offline);
        if let Err(Rejection::Rule { why, .. }) = &mut v.outcome {
            if let accept::Rejection::Refused { origin: o } = why.as_mut() {
                if o.is_empty() {
                    o.clone_from(&origin);
                }
            }
        }
        v
    }

    /// Applies the rule to a narinfo using tlog-proofs published beside it,
    /// with freshness supplied by the log's read path (`spec/PROTOCOL.md`
    /// §7, "Published proofs"): the checkpoint `C` served at `log_url`
    /// (which may be a CDN or bucket serving only tlog-tiles) must have a
    /// fresh witness quorum and extend the kept one, and each proof's own
    /// checkpoint must be consistent with `C` (proofs computed from the
    /// tiles there). A proof under a checkpoint newer than `C` (a stale
    /// CDN) needs its own quorum. If `log_url` cannot be read at all, the
    /// decision is the offline one ([`Verifier::verdict_offline`]), with a
    /// reason saying so. Transitions come from the configuration's pins
    /// and from transition tlog-proofs among `bundles`.
    pub fn verdict_published(&self, narinfo: &NarInfo, bundles: &[TlogProof]) -> Verdict {
        let bytes = match self.log.checkpoint() {
            Ok(b) => b,
            Err(e) if e.is_transient() => {
                let mut v = self.verdict_offline(narinfo, bundles);
                v.reasons.insert(
                    0,
                    Reason {
                        step: 3,
                        holds: true,
                        text: format!("log read path unreachable ({e}): decided offline, freshness not checked"),
                    },
                );
                return v;
            }
            Err(e) => return Verdict::failed(e.into()),
        };
        let (kept, mut shown) = match self.shown_checkpoint(bytes) {
            Ok(x) => x,
            Err(e) => return Verdict::failed(e),
        };
        let Some(size) = shown
            .checkpoint
            .as_deref()
            .and_then(|b| vouch_spec::note::Note::parse(b).ok())
            .and_then(|n| Checkpoint::parse(&n.text).ok())
            .map(|c| c.size)
        else {
            return Verdict::failed(self.rejection(
                accept::Rejection::Checkpoint("checkpoint does not parse".into()),
                None,
            ));
        };
        // Full tiles come from the on-disk cache once a proof from them
        // verified: a client re-proves old proofs from a handful of edge
        // tiles.
        let tiles = self.tile_cache(&kept, &shown);
        let mut fetched = Vec::new();
        for (i, b) in bundles.iter().enumerate() {
            let extra = match self.bundle_entry(i, b) {
                Ok(e) => e,
                Err(e) => return Verdict::failed(e),
            };
            let own = vouch_spec::note::Note::parse(&b.checkpoint)
                .ok()
                .and_then(|n| Checkpoint::parse(&n.text).ok())
                .map(|c| c.size);
            let to_shown = match own {
                Some(s) if s <= size => {
                    match self.log.consistency_proof_cached(s, size, tiles.as_ref()) {
                        Ok((p, f)) => {
                            fetched.push(f);
                            Some(p)
                        }
                        Err(e) => return Verdict::failed(e.into()),
                    }
                }
                _ => None,
            };
            shown.entries.push(Candidate {
                index: b.index,
                entry: extra.clone(),
                inclusion: Inclusion::Bundle {
                    checkpoint: b.checkpoint.clone(),
                    proof: b.proof.clone(),
                    to_shown,
                },
            });
        }
        let v = self.decide(&kept, &shown, Some(narinfo), Clock::Now(now()));
        // The consistency proofs were checked (step 5) and held.
        let held = match &v.outcome {
            Ok(_) => true,
            Err(e) => matches!(
                e.rule(),
                Some(
                    accept::Rejection::TooFewBuilders { .. }
                        | accept::Rejection::Disagreement { .. }
                        | accept::Rejection::Retired { .. }
                )
            ),
        };
        if held {
            for f in fetched {
                f.verified(tiles.as_ref());
            }
        }
        v
    }

    /// Clears the fork record of every log in the policy; returns the
    /// origins that had one.
    pub fn clear_forks(&self) -> Result<Vec<String>, StateError> {
        let mut cleared = Vec::new();
        for l in &self.rule.policy.logs {
            let origin = vouch_spec::note::NoteVerifier::name(&l.verifier).to_string();
            if self.tracker.store().clear_fork(&origin)? {
                cleared.push(origin);
            }
        }
        Ok(cleared)
    }

    /// The origins of the policy's logs.
    pub fn origins(&self) -> Vec<String> {
        self.rule
            .policy
            .logs
            .iter()
            .map(|l| vouch_spec::note::NoteVerifier::name(&l.verifier).to_string())
            .collect()
    }
}

fn origin_of(kept: &Kept, shown: &Shown) -> String {
    shown
        .checkpoint
        .as_deref()
        .and_then(accept::origin)
        .or_else(|| kept.checkpoint.as_ref().map(|(_, c)| c.origin.clone()))
        .or_else(|| {
            shown.entries.iter().find_map(|c| match &c.inclusion {
                Inclusion::Bundle { checkpoint, .. } => accept::origin(checkpoint),
                _ => None,
            })
        })
        .unwrap_or_default()
}
