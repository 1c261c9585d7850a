//! C2SP tlog-policy (`tlog-policy.md`): which logs and witnesses are
//! trusted and the quorum rule, and checking a checkpoint against it.
//!
//! Implementation limits: names and URLs must be UTF-8 (comments may hold
//! any octets), and a policy holds at most 256 logs, witnesses and groups each.

use std::collections::{BTreeSet, HashMap};

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::cosignature::CosignatureVerifier;
use crate::note::{Ed25519Verifier, Note, NoteError, NoteVerifier};
use crate::tile::parse_decimal;

/// Items of each kind a policy may hold.
pub const MAX_ITEMS: usize = 256;

/// A trusted log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyLog {
    /// The log's key; its name is the origin.
    pub verifier: Ed25519Verifier,
    /// Optional URL (the tlog-tiles prefix, for Vouch).
    pub url: Option<String>,
}

/// A trusted witness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyWitness {
    /// The policy-local name.
    pub name: String,
    /// The cosigner key.
    pub verifier: CosignatureVerifier,
    /// Optional URL (the witness's submission prefix).
    pub url: Option<String>,
}

/// A quorum rule node: a witness, or k of n members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// No cosignature needed (`quorum none`).
    None,
    /// The witness at this index in [`Policy::witnesses`].
    Witness(usize),
    /// At least `k` of these members.
    Group {
        /// Threshold.
        k: usize,
        /// Members.
        members: Vec<Rule>,
    },
}

impl Rule {
    /// Whether the witnesses whose indexes are in `cosigned` satisfy the rule.
    pub fn satisfied(&self, cosigned: &BTreeSet<usize>) -> bool {
        match self {
            Rule::None => true,
            Rule::Witness(i) => cosigned.contains(i),
            Rule::Group { k, members } => {
                members.iter().filter(|m| m.satisfied(cosigned)).count() >= *k
            }
        }
    }
}

/// A parsed policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Trusted logs.
    pub logs: Vec<PolicyLog>,
    /// Known witnesses.
    pub witnesses: Vec<PolicyWitness>,
    /// The quorum rule.
    pub quorum: Rule,
}

/// Why a policy file was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A byte outside tab, newline, 0x20–0x7E and 0x80–0xFF.
    #[error("policy line {0}: control character not allowed")]
    BadCharacter(usize),
    /// A name or URL is not UTF-8.
    #[error("policy line {0}: names and URLs must be UTF-8")]
    NotUtf8(usize),
    /// A line is not one of the defined forms.
    #[error("policy line {line}: {why}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// No quorum line, or more than one.
    #[error("policy must have exactly one quorum line")]
    Quorum,
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

impl Policy {
    /// Parses a policy file.
    pub fn parse(data: &[u8]) -> Result<Policy, PolicyError> {
        let mut p = Policy {
            logs: Vec::new(),
            witnesses: Vec::new(),
            quorum: Rule::None,
        };
        let mut names: HashMap<String, Rule> = HashMap::new();
        let mut groups = 0usize;
        let mut quorum_seen = false;
        for (i, raw) in data.split(|b| *b == b'\n').enumerate() {
            let line = i + 1;
            if raw.iter().any(|b| *b != b'\t' && (*b < 0x20 || *b == 0x7f)) {
                return Err(PolicyError::BadCharacter(line));
            }
            let tokens: Vec<&[u8]> = raw.split(|b| is_ws(*b)).filter(|t| !t.is_empty()).collect();
            if tokens.is_empty() || tokens[0].starts_with(b"#") {
                continue;
            }
            let tokens: Vec<&str> = tokens
                .iter()
                .map(|t| std::str::from_utf8(t))
                .collect::<Result<_, _>>()
                .map_err(|_| PolicyError::NotUtf8(line))?;
            let syntax = |why: &str| PolicyError::Syntax {
                line,
                why: why.to_string(),
            };
            let key_err = |e: NoteError| PolicyError::Syntax {
                line,
                why: e.to_string(),
            };
            match tokens[0] {
                "log" => {
                    if !(2..=3).contains(&tokens.len()) {
                        return Err(syntax("want: log <vkey> [<url>]"));
                    }
                    let verifier = Ed25519Verifier::from_vkey(tokens[1]).map_err(key_err)?;
                    if p.logs
                        .iter()
                        .any(|l| l.verifier.public_key() == verifier.public_key())
                    {
                        return Err(syntax("duplicate log key"));
                    }
                    if p.logs.len() == MAX_ITEMS {
                        return Err(syntax("too many logs"));
                    }
                    p.logs.push(PolicyLog {
                        verifier,
                        url: tokens.get(2).map(|s| s.to_string()),
                    });
                }
                "witness" => {
                    if !(3..=4).contains(&tokens.len()) {
                        return Err(syntax("want: witness <name> <vkey> [<url>]"));
                    }
                    let name = tokens[1];
                    if name == "none" || names.contains_key(name) {
                        return Err(syntax("witness name is already defined"));
                    }
                    let verifier = CosignatureVerifier::from_vkey(tokens[2]).map_err(key_err)?;
                    if p.witnesses
                        .iter()
                        .any(|w| w.verifier.public_key() == verifier.public_key())
                    {
                        return Err(syntax("duplicate witness key"));
                    }
                    if p.witnesses.len() == MAX_ITEMS {
                        return Err(syntax("too many witnesses"));
                    }
                    names.insert(name.to_string(), Rule::Witness(p.witnesses.len()));
                    p.witnesses.push(PolicyWitness {
                        name: name.to_string(),
                        verifier,
                        url: tokens.get(3).map(|s| s.to_string()),
                    });
                }
                "group" => {
                    if tokens.len() < 4 {
                        return Err(syntax("want: group <name> all|any|<k> <member>..."));
                    }
                    let name = tokens[1];
                    if name == "none" || names.contains_key(name) {
                        return Err(syntax("group name is already defined"));
                    }
                    let member_names = &tokens[3..];
                    let mut members = Vec::new();
                    let mut seen = BTreeSet::new();
                    for m in member_names {
                        if !seen.insert(*m) {
                            return Err(syntax("a member is listed twice"));
                        }
                        members.push(
                            names.get(*m).cloned().ok_or_else(|| {
                                syntax("member is not defined on an earlier line")
                            })?,
                        );
                    }
                    let n = members.len();
                    let k = match tokens[2] {
                        "all" => n,
                        "any" => 1,
                        t => parse_decimal(t)
                            .map(|k| k as usize)
                            .filter(|k| (1..=n).contains(k))
                            .ok_or_else(|| syntax("threshold must be all, any or 1..=n"))?,
                    };
                    groups += 1;
                    if groups > MAX_ITEMS {
                        return Err(syntax("too many groups"));
                    }
                    names.insert(name.to_string(), Rule::Group { k, members });
                }
                "quorum" => {
                    if tokens.len() != 2 {
                        return Err(syntax("want: quorum <name>"));
                    }
                    if quorum_seen {
                        return Err(PolicyError::Quorum);
                    }
                    quorum_seen = true;
                    p.quorum = if tokens[1] == "none" {
                        Rule::None
                    } else {
                        names
                            .get(tokens[1])
                            .cloned()
                            .ok_or_else(|| syntax("quorum names nothing defined earlier"))?
                    };
                }
                _ => {
                    return Err(syntax(
                        "unknown keyword (want log, witness, group or quorum)",
                    ))
                }
            }
        }
        if !quorum_seen {
            return Err(PolicyError::Quorum);
        }
        Ok(p)
    }

    /// Checks a signed checkpoint: signed by a policy log whose key name is
    /// the origin, and cosigned by witnesses satisfying the quorum.
    pub fn verify_checkpoint(&self, data: &[u8]) -> Result<PolicyCheckpoint, PolicyCheckError> {
        let note = Note::parse(data).map_err(CheckpointError::Note)?;
        let checkpoint = Checkpoint::parse(&note.text)?;
        let log = self
            .logs
            .iter()
            .position(|l| l.verifier.name() == checkpoint.origin)
            .ok_or_else(|| PolicyCheckError::UnknownLog(checkpoint.origin.clone()))?;
        let mut verifiers: Vec<&dyn NoteVerifier> = vec![&self.logs[log].verifier];
        verifiers.extend(
            self.witnesses
                .iter()
                .map(|w| &w.verifier as &dyn NoteVerifier),
        );
        let verified =
            crate::note::verify_sigs(&note, &verifiers).map_err(CheckpointError::Note)?;
        if !verified.iter().any(|(v, _)| *v == 0) {
            return Err(PolicyCheckError::NoLogSignature(checkpoint.origin.clone()));
        }
        let cosigned: BTreeSet<usize> = verified
            .iter()
            .filter(|(v, _)| *v > 0)
            .map(|(v, _)| v - 1)
            .collect();
        let timestamps = verified
            .iter()
            .filter(|(v, _)| *v > 0)
            .filter_map(|(v, s)| {
                let t = crate::cosignature::split(&note.sigs[*s].sig)?.0;
                Some((v - 1, t))
            })
            .collect();
        if !self.quorum.satisfied(&cosigned) {
            let names: Vec<&str> = cosigned
                .iter()
                .map(|i| self.witnesses[*i].name.as_str())
                .collect();
            return Err(PolicyCheckError::NoQuorum {
                cosigned_by: names.join(", "),
            });
        }
        Ok(PolicyCheckpoint {
            checkpoint,
            log,
            cosigned,
            timestamps,
            note,
        })
    }
}

/// Checkpoints already verified against one policy, keyed by the SHA-256 of
/// their exact note bytes.
///
/// A client checking many tlog-proofs published with the same checkpoint
/// verifies its signatures once: identical bytes verify identically under
/// the same policy, so a hit is as good as a fresh check. Only successes are
/// kept, and at most [`CheckpointCache::CAPACITY`] of them (the oldest half
/// is dropped when full). Use one cache per policy.
#[derive(Debug, Default)]
pub struct CheckpointCache {
    verified: std::collections::HashMap<[u8; 32], (u64, PolicyCheckpoint)>,
    clock: u64,
}

impl CheckpointCache {
    /// Most checkpoints kept.
    pub const CAPACITY: usize = 64;

    /// [`Policy::verify_checkpoint`], answered from the cache when these
    /// exact bytes verified before.
    pub fn verify(
        &mut self,
        policy: &Policy,
        data: &[u8],
    ) -> Result<PolicyCheckpoint, PolicyCheckError> {
        let key = crate::hash::sha256(data);
        self.clock += 1;
        if let Some((used, cp)) = self.verified.get_mut(&key) {
            *used = self.clock;
            return Ok(cp.clone());
        }
        let cp = policy.verify_checkpoint(data)?;
        if self.verified.len() >= Self::CAPACITY {
            let mut ages: Vec<u64> = self.verified.values().map(|(u, _)| *u).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            self.verified.retain(|_, (u, _)| *u > cut);
        }
        self.verified.insert(key, (self.clock, cp.clone()));
        Ok(cp)
    }
}

/// A checkpoint that satisfies a policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyCheckpoint {
    /// The checkpoint body.
    pub checkpoint: Checkpoint,
    /// Index of the log in [`Policy::logs`].
    pub log: usize,
    /// Indexes of witnesses whose cosignatures verified.
    pub cosigned: BTreeSet<usize>,
    /// (witness index, cosignature timestamp) for each of them.
    pub timestamps: Vec<(usize, u64)>,
    /// The note.
    pub note: Note,
}

/// Why a checkpoint does not satisfy a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyCheckError {
    /// The note or body is malformed, or a known key's signature is bad.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// No policy log has this origin.
    #[error("no trusted log has origin {0:?}")]
    UnknownLog(String),
    /// The log's signature is missing.
    #[error("checkpoint is not signed by the trusted key of log {0:?}")]
    NoLogSignature(String),
    /// Not enough witnesses cosigned.
    #[error("witness quorum not met (valid cosignatures from: [{cosigned_by}])")]
    NoQuorum {
        /// Witnesses that did cosign.
        cosigned_by: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cosignature::CosignatureSigner;
    use crate::hash::Hash;
    use crate::note::Ed25519Signer;

    fn w(i: u8) -> CosignatureSigner {
        CosignatureSigner::from_seed(&format!("w{i}.example"), &[i; 32]).unwrap()
    }

    #[test]
    fn parse_and_quorum() {
        let log = Ed25519Signer::from_seed("example.com/log", &[100; 32]).unwrap();
        let text = format!(
            "# comment \u{ff}\n  log {} https://log.example/\nwitness X1 {}\nwitness X2 {}\n\twitness X3 {} https://w3/\ngroup X 2 X1 X2 X3\nwitness Y1 {}\ngroup Y any Y1\ngroup XY all X Y\nquorum XY\n",
            log.verifier().vkey(), w(1).verifier().vkey(), w(2).verifier().vkey(), w(3).verifier().vkey(), w(4).verifier().vkey()
        );
        let mut bytes = text.into_bytes();
        // The \xff in the comment is an opaque octet.
        let pos = bytes.windows(2).position(|x| x == "ÿ".as_bytes()).unwrap();
        bytes.splice(pos..pos + 2, [0xff]);
        let p = Policy::parse(&bytes).unwrap();
        assert_eq!(p.witnesses.len(), 4);
        let set = |v: &[usize]| v.iter().copied().collect::<BTreeSet<_>>();
        assert!(p.quorum.satisfied(&set(&[0, 1, 3])));
        assert!(!p.quorum.satisfied(&set(&[0, 1])));
        assert!(!p.quorum.satisfied(&set(&[0, 3])));

        let cp = Checkpoint::new("example.com/log", 1, Hash::default()).to_text();
        let mut note = Note::sign(&cp, &[&log]).unwrap();
        assert!(matches!(
            p.verify_checkpoint(&note.to_bytes()),
            Err(PolicyCheckError::NoQuorum { .. })
        ));
        for i in [1, 2, 4] {
            note.sigs
                .push(w(i).cosign(&cp, 1700000000 + u64::from(i)).unwrap());
        }
        let ok = p.verify_checkpoint(&note.to_bytes()).unwrap();
        assert_eq!(ok.cosigned, set(&[0, 1, 3]));
        assert_eq!(ok.timestamps.len(), 3);
        // A forged cosignature from a known witness rejects the note.
        let mut forged = note.clone();
        forged.sigs[2].sig[20] ^= 1;
        assert!(p.verify_checkpoint(&forged.to_bytes()).is_err());
        // Without the log's signature: rejected even with quorum.
        let mut nolog = note.clone();
        nolog.sigs.remove(0);
        assert!(matches!(
            p.verify_checkpoint(&nolog.to_bytes()),
            Err(PolicyCheckError::NoLogSignature(_))
        ));
    }

    #[test]
    fn rejects_bad_policies() {
        let vk = w(1).verifier().vkey();
        let vk2 = w(2).verifier().vkey();
        for bad in [
            String::new(),
            "quorum none\nquorum none\n".to_string(),
            "quorum X\n".to_string(),
            format!("group G 1 A\nwitness A {vk}\nquorum G\n"),
            format!("witness A {vk}\nwitness B {vk}\nquorum A\n"),
            format!("witness A {vk}\nwitness A {vk2}\nquorum A\n"),
            format!("witness A {vk}\ngroup G 2 A\nquorum G\n"),
            format!("witness A {vk}\ngroup G 0 A\nquorum G\n"),
            format!("witness A {vk}\ngroup G 1 A A\nquorum G\n"),
            format!("witness none {vk}\nquorum none\n"),
            format!("witness A {vk}\r\nquorum A\n"),
            "frobnicate\nquorum none\n".to_string(),
            format!("log {vk}\nquorum none\n"),
        ] {
            assert!(Policy::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(Policy::parse(b"quorum none").is_ok());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(lines in proptest::collection::vec("(log|witness|group|quorum|#|none| |[a-z0-9]{1,4}|2|any|all)( [a-z0-9+/=]{0,8}){0,4}", 0..8)) {
            let _ = Policy::parse(lines.join("\n").as_bytes());
        }
    }
}
