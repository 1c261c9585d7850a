//! The key transition entry (`spec/PROTOCOL.md` §3.6): a builder key's
//! statement, logged like an attestation, that it signs nothing more from
//! here on (a *retirement*), or that it hands over to a new key (a
//! *handover*, signed by both keys).
//!
//! ```text
//! vouch/transition/v1
//! old cache.example.org-1:WyVc8pDuOA/Cxt5fUWeTy7MW/hf7IIPragHesEPqkYk=
//! new cache.example.org-2:8Yq6bU8o8Q2vC8m7dY0vYp4bS1cQ3kL9wWm5yR0tT0E=
//! old-sig <base64 of 64 bytes>
//! new-sig <base64 of 64 bytes>
//! ```
//!
//! A retirement has neither the `new` nor the `new-sig` line. Both
//! signatures are Ed25519 (strict, §2) over the *statement*: the entry's
//! lines up to and including `new` (or `old`, for a retirement). The
//! statement begins `vouch/transition/v1`, so it can never be a Nix
//! fingerprint (`1;/…`) and a key's transition signature cannot be replayed
//! as a narinfo signature or the other way round.
//!
//! The *cutoff* of a transition is its own index in the log: nobody can
//! backdate it, because the log assigns the index. An honest log appends no
//! attestation and no second transition by the old key at or after its
//! cutoff; clients count an old-key attestation only below it.

use crate::b64;
use crate::hash::{leaf_hash, Hash};
use crate::nix::key::{NixKeyError, NixPublicKey, NixSecretKey, NixSignature};

/// First line of every transition entry.
pub const HEADER: &str = "vouch/transition/v1";

/// Largest transition entry (two keys with names of up to a few hundred
/// bytes and two signatures fit easily).
pub const MAX_TRANSITION_LEN: usize = 4096;

/// A logged key transition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The key that stops signing.
    pub old: NixPublicKey,
    /// For a handover, the key that continues, with its signature over the
    /// statement; `None` for a plain retirement.
    pub new: Option<(NixPublicKey, [u8; 64])>,
    /// The old key's signature over the statement.
    pub old_sig: [u8; 64],
}

/// Why a transition entry was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// Larger than [`MAX_TRANSITION_LEN`].
    #[error("transition is {0} bytes, more than the {MAX_TRANSITION_LEN} allowed")]
    TooLarge(usize),
    /// Not UTF-8 text without control characters ending in a newline.
    #[error("transition is not newline-terminated UTF-8 text without control characters")]
    NotText,
    /// A line is missing, out of order or malformed.
    #[error("transition line {line}: expected {expected}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What was expected there.
        expected: &'static str,
    },
    /// A key is malformed.
    #[error("transition line {line}: {err}")]
    Key {
        /// 1-based line number.
        line: usize,
        /// The error.
        err: NixKeyError,
    },
    /// A handover to the same Ed25519 key.
    #[error("transition hands key {0} over to itself")]
    SameKey(String),
    /// Data after the last signature line.
    #[error("transition has data after its last signature line")]
    Trailing,
    /// A signature does not verify over the statement.
    #[error("the {which} key {key}'s signature does not verify over the transition statement")]
    BadSignature {
        /// `old` or `new`.
        which: &'static str,
        /// The key.
        key: String,
    },
}

impl Transition {
    /// The text both keys sign: the entry's lines up to its last key line.
    pub fn statement(old: &NixPublicKey, new: Option<&NixPublicKey>) -> String {
        let mut s = format!("{HEADER}\nold {old}\n");
        if let Some(n) = new {
            s.push_str(&format!("new {n}\n"));
        }
        s
    }

    /// A retirement of `old`, signed by it.
    pub fn retire(old: &NixSecretKey) -> Transition {
        let pk = old.public();
        let msg = Transition::statement(&pk, None);
        Transition {
            old_sig: old.sign(&msg).sig,
            old: pk,
            new: None,
        }
    }

    /// A handover from `old` to `new`, signed by both.
    pub fn handover(old: &NixSecretKey, new: &NixSecretKey) -> Transition {
        let (po, pn) = (old.public(), new.public());
        let msg = Transition::statement(&po, Some(&pn));
        Transition {
            old_sig: old.sign(&msg).sig,
            new: Some((pn, new.sign(&msg).sig)),
            old: po,
        }
    }

    /// The key that continues, for a handover.
    pub fn successor(&self) -> Option<&NixPublicKey> {
        self.new.as_ref().map(|(k, _)| k)
    }

    /// The canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut s = Transition::statement(&self.old, self.successor());
        s.push_str(&format!("old-sig {}\n", b64::encode(self.old_sig)));
        if let Some((_, sig)) = &self.new {
            s.push_str(&format!("new-sig {}\n", b64::encode(sig)));
        }
        s.into_bytes()
    }

    /// The RFC 6962 leaf hash of the encoded entry.
    pub fn leaf_hash(&self) -> Hash {
        leaf_hash(&self.encode())
    }

    /// Decodes a transition, rejecting anything that does not re-encode to
    /// the identical bytes. Signatures are not checked: see [`Self::verify`].
    pub fn decode(data: &[u8]) -> Result<Transition, TransitionError> {
        if data.len() > MAX_TRANSITION_LEN {
            return Err(TransitionError::TooLarge(data.len()));
        }
        let text = crate::text::line_text(data).ok_or(TransitionError::NotText)?;
        let lines: Vec<&str> = text[..text.len() - 1].split('\n').collect();
        let line = |i: usize, prefix: &str, expected: &'static str| {
            lines
                .get(i)
                .and_then(|l| l.strip_prefix(prefix))
                .ok_or(TransitionError::Line {
                    line: i + 1,
                    expected,
                })
        };
        if lines.first() != Some(&HEADER) {
            return Err(TransitionError::Line {
                line: 1,
                expected: "vouch/transition/v1",
            });
        }
        let key = |i: usize, s: &str| {
            NixPublicKey::parse(s).map_err(|err| TransitionError::Key { line: i + 1, err })
        };
        let sig = |i: usize, s: &str, expected: &'static str| {
            NixSignature::parse(&format!("x:{s}"))
                .map(|s| s.sig)
                .map_err(|_| TransitionError::Line {
                    line: i + 1,
                    expected,
                })
        };
        let old = key(1, line(1, "old ", "old <key name>:<base64>")?)?;
        let mut i = 2;
        let new = match lines.get(i).and_then(|l| l.strip_prefix("new ")) {
            Some(k) => {
                i += 1;
                Some(key(2, k)?)
            }
            None => None,
        };
        let old_sig = sig(
            i,
            line(i, "old-sig ", "old-sig <base64 of 64 bytes>")?,
            "old-sig <base64 of 64 bytes>",
        )?;
        i += 1;
        let new = match new {
            Some(k) => {
                let s = sig(
                    i,
                    line(i, "new-sig ", "new-sig <base64 of 64 bytes>")?,
                    "new-sig <base64 of 64 bytes>",
                )?;
                i += 1;
                Some((k, s))
            }
            None => None,
        };
        if i != lines.len() {
            return Err(TransitionError::Trailing);
        }
        if let Some((n, _)) = &new {
            if n.key() == old.key() {
                return Err(TransitionError::SameKey(old.to_string()));
            }
        }
        let t = Transition { old, new, old_sig };
        if t.encode() != data {
            // Every field re-encodes canonically (keys and base64 are
            // strict), so this is unreachable; kept as the contract.
            return Err(TransitionError::NotText);
        }
        Ok(t)
    }

    /// Checks both signatures (strict Ed25519) over the statement.
    pub fn verify(&self) -> Result<(), TransitionError> {
        let msg = Transition::statement(&self.old, self.successor());
        let check = |k: &NixPublicKey, sig: &[u8; 64], which: &'static str| {
            let s = NixSignature {
                name: k.name().to_string(),
                sig: *sig,
            };
            if k.verify(&msg, &s) {
                Ok(())
            } else {
                Err(TransitionError::BadSignature {
                    which,
                    key: k.to_string(),
                })
            }
        };
        check(&self.old, &self.old_sig, "old")?;
        if let Some((k, s)) = &self.new {
            check(k, s, "new")?;
        }
        Ok(())
    }

    /// A one-line description for reasons and reports.
    pub fn describe(&self, index: u64) -> String {
        match self.successor() {
            Some(n) => format!(
                "{} handed over to {} at index {index}",
                self.old.name(),
                n.name()
            ),
            None => format!("{} retired at index {index}", self.old.name()),
        }
    }
}

/// What kind of entry these bytes claim to be, by their first line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// `vouch/attestation/v1` (§3.2).
    Attestation,
    /// `vouch/transition/v1` (§3.6).
    Transition,
    /// Anything else (not a valid entry).
    Unknown,
}

/// The kind of an entry by its header line (nothing else is checked).
pub fn kind(entry: &[u8]) -> EntryKind {
    let starts = |h: &str| entry.starts_with(h.as_bytes()) && entry.get(h.len()) == Some(&b'\n');
    if starts(crate::attestation::HEADER) {
        EntryKind::Attestation
    } else if starts(HEADER) {
        EntryKind::Transition
    } else {
        EntryKind::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (NixSecretKey, NixSecretKey) {
        (
            NixSecretKey::from_seed("cache.example.org-1", &[1; 32]).unwrap(),
            NixSecretKey::from_seed("cache.example.org-2", &[2; 32]).unwrap(),
        )
    }

    #[test]
    fn handover_round_trips_and_verifies() {
        let (o, n) = keys();
        let t = Transition::handover(&o, &n);
        let b = t.encode();
        assert_eq!(kind(&b), EntryKind::Transition);
        let d = Transition::decode(&b).unwrap();
        assert_eq!(d, t);
        d.verify().unwrap();
        assert_eq!(d.successor(), Some(&n.public()));
    }

    #[test]
    fn retirement_round_trips_and_verifies() {
        let (o, _) = keys();
        let t = Transition::retire(&o);
        let d = Transition::decode(&t.encode()).unwrap();
        d.verify().unwrap();
        assert!(d.successor().is_none());
    }

    #[test]
    fn one_signature_is_not_a_handover() {
        let (o, n) = keys();
        let mut t = Transition::handover(&o, &n);
        // The new key's signature replaced by the old key's: only one key signed.
        let old_sig = t.old_sig;
        if let Some((_, s)) = t.new.as_mut() {
            *s = old_sig;
        }
        assert!(matches!(
            t.verify(),
            Err(TransitionError::BadSignature { which: "new", .. })
        ));
        // A retirement's signature does not stand for a handover's.
        let r = Transition::retire(&o);
        let forged = Transition {
            old_sig: r.old_sig,
            ..Transition::handover(&o, &n)
        };
        assert!(matches!(
            forged.verify(),
            Err(TransitionError::BadSignature { which: "old", .. })
        ));
    }

    #[test]
    fn rejects_non_canonical_input() {
        let (o, n) = keys();
        let good = String::from_utf8(Transition::handover(&o, &n).encode()).unwrap();
        let bad = [
            good.replace("old-sig", "old-sig "),
            good.replace("\nnew ", "\nnew  "),
            format!("{good}extra\n"),
            good.trim_end().to_string(),
            good.replace("vouch/transition/v1", "vouch/transition/v2"),
            // new-sig without new
            String::from_utf8(Transition::retire(&o).encode()).unwrap() + "new-sig AAAA\n",
            // lines out of order
            {
                let l: Vec<&str> = good.lines().collect();
                format!("{}\n{}\n{}\n{}\n{}\n", l[0], l[2], l[1], l[3], l[4])
            },
            "x".repeat(MAX_TRANSITION_LEN + 1),
        ];
        for b in bad {
            assert!(Transition::decode(b.as_bytes()).is_err(), "accepted {b:?}");
        }
        // Handing over to the same Ed25519 key under another name.
        let same = NixSecretKey::from_seed("other-name", &[1; 32]).unwrap();
        let t = Transition::handover(&o, &same);
        assert!(matches!(
            Transition::decode(&t.encode()),
            Err(TransitionError::SameKey(_))
        ));
    }

    proptest::proptest! {
        /// Whatever decodes re-encodes to the same bytes, so one altered
        /// byte is either rejected or a different, canonical entry whose
        /// signatures then fail.
        #[test]
        fn decoding_is_canonical(seed in proptest::prelude::any::<[u8; 32]>(), at in 0usize..400, byte in proptest::prelude::any::<u8>(), retire in proptest::prelude::any::<bool>()) {
            let o = NixSecretKey::from_seed("a.example-1", &seed).unwrap();
            let mut s2 = seed;
            s2[0] ^= 1;
            let n = NixSecretKey::from_seed("b.example-1", &s2).unwrap();
            let t = if retire { Transition::retire(&o) } else { Transition::handover(&o, &n) };
            let mut b = t.encode();
            let i = at % b.len();
            let changed = b[i] != byte;
            b[i] = byte;
            if let Ok(d) = Transition::decode(&b) {
                proptest::prop_assert_eq!(d.encode(), b);
                if changed {
                    proptest::prop_assert!(d.verify().is_err());
                }
            }
        }
    }

    #[test]
    fn statement_is_not_a_fingerprint() {
        let (o, _) = keys();
        assert!(Transition::statement(&o.public(), None).starts_with("vouch/"));
        assert_eq!(
            kind(b"vouch/attestation/v1\npath x\n"),
            EntryKind::Attestation
        );
        assert_eq!(kind(b"vouch/transition/v1x\n"), EntryKind::Unknown);
    }
}
