//! The Vouch attestation entry (`spec/PROTOCOL.md` §3): a builder's signed
//! statement that a store path has a given NAR hash, size and references,
//! in one canonical text encoding that is also the log entry.
//!
//! ```text
//! vouch/attestation/v1
//! path /nix/store/71z0irc81f1wmhlqhcxmb0h9y78nfkns-vouch-hello
//! nar-hash sha256:1yhwyc0l5x5imibnlnzgscrwjsqmkgyxbq3hi9v2y0icby7036hs
//! nar-size 184
//! reference i7imialynm0v8ki0s68lbllxx124zyhs-vouch-dep
//! deriver 4myk779h2pwflpk49k6iljcx8xvk87s1-vouch-hello.drv
//! key builder-1.example.org-1:WyVc8pDuOA/Cxt5fUWeTy7MW/hf7IIPragHesEPqkYk=
//! sig Ot6ThzS0xfO/F753is2QEPuWXYa8Y1iMSTXpUmXnr8aGwGRypyR/q+AbOJDWfoDeSxSCze4UoWbWoWo2M8llDw==
//! ```
//!
//! `sig` is the builder's Ed25519 signature over the Nix fingerprint, so it is
//! byte for byte the signature of a narinfo `Sig:` line. When the inline form
//! would exceed [`MAX_ENTRY_LEN`], the `reference` lines are replaced by one
//! `references-sha256 <hex>` line committing to the fingerprint's reference
//! field; the full list travels with the submission and the narinfo.

use std::fmt::Write;

use crate::b64;
use crate::bundle;
use crate::hash::{leaf_hash, sha256, Hash};
use crate::hex;
pub use crate::nix::key::references_field;
use crate::nix::key::{fingerprint, NixKeyError, NixPublicKey, NixSecretKey, NixSignature};
use crate::nix::narinfo::{parse_sha256, NarInfo, NarInfoError};
use crate::nix::nix32;
use crate::nix::store_path::{StorePath, StorePathError};
use crate::tile::parse_decimal;

/// First line of every attestation.
pub const HEADER: &str = "vouch/attestation/v1";
/// Largest entry in the log: what a C2SP entry bundle can carry.
pub const MAX_ENTRY_LEN: usize = bundle::MAX_ENTRY_LEN;
/// Largest attestation accepted in a submission (inline references).
pub const MAX_ATTESTATION_LEN: usize = 4 << 20;

/// How an entry carries the references.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum References {
    /// Every reference, sorted, as `reference <base>` lines.
    Inline(Vec<StorePath>),
    /// `references-sha256`: SHA-256 of the fingerprint's reference field
    /// (full paths joined by commas), for paths whose inline entry is too big.
    Digest([u8; 32]),
}

/// An attestation with its full reference list: what a builder submits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attestation {
    /// The store path.
    pub path: StorePath,
    /// SHA-256 of the NAR serialization.
    pub nar_hash: [u8; 32],
    /// NAR size in bytes.
    pub nar_size: u64,
    /// References, sorted and unique, in the same store.
    pub references: Vec<StorePath>,
    /// The deriver, if known (informational: not covered by `sig`).
    pub deriver: Option<StorePath>,
    /// The builder's public key.
    pub key: NixPublicKey,
    /// The builder's signature over the fingerprint.
    pub sig: [u8; 64],
}

/// An entry as stored in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The store path.
    pub path: StorePath,
    /// SHA-256 of the NAR serialization.
    pub nar_hash: [u8; 32],
    /// NAR size in bytes.
    pub nar_size: u64,
    /// The references, inline or as a digest.
    pub references: References,
    /// The deriver, if known.
    pub deriver: Option<StorePath>,
    /// The builder's public key.
    pub key: NixPublicKey,
    /// The builder's signature over the fingerprint.
    pub sig: [u8; 64],
}

/// Why an attestation or entry was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestationError {
    /// Larger than allowed.
    #[error("attestation is {len} bytes, more than the {max} allowed")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not UTF-8 text without control characters ending in a newline.
    #[error("attestation is not newline-terminated UTF-8 text without control characters")]
    NotText,
    /// A line is missing, out of order or malformed.
    #[error("attestation line {line}: expected {expected}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What was expected there.
        expected: &'static str,
    },
    /// References are not sorted and unique.
    #[error("attestation line {0}: references must be sorted and unique")]
    ReferenceOrder(usize),
    /// A store path is bad.
    #[error("attestation line {line}: {err}")]
    Path {
        /// 1-based line number.
        line: usize,
        /// The error.
        err: StorePathError,
    },
    /// A reference or deriver is in another store directory.
    #[error("attestation line {0}: path is not in the store directory of the attested path")]
    StoreDir(usize),
    /// The key is bad.
    #[error("attestation line {line}: {err}")]
    Key {
        /// 1-based line number.
        line: usize,
        /// The error.
        err: NixKeyError,
    },
    /// Trailing data after the signature line.
    #[error("attestation has data after the sig line")]
    Trailing,
    /// A digest-form entry given where a full attestation is required.
    #[error("attestation carries a references-sha256 digest; submit the full reference list")]
    DigestForm,
    /// The builder's signature does not verify.
    #[error("signature by builder key {0} does not verify over the fingerprint")]
    BadSignature(String),
    /// The reference list does not match the entry's digest.
    #[error("reference list does not match the entry's references-sha256")]
    ReferencesMismatch,
    /// A narinfo has no signature by this key.
    #[error("narinfo for {path} has no Sig: by key {key}")]
    NoSignature {
        /// The store path.
        path: String,
        /// The key name.
        key: String,
    },
    /// A narinfo is malformed.
    #[error(transparent)]
    NarInfo(#[from] NarInfoError),
    /// The entry and a narinfo disagree.
    #[error("narinfo disagrees with the attestation on {0}")]
    NarInfoMismatch(&'static str),
}

fn sorted_unique(mut refs: Vec<StorePath>) -> Vec<StorePath> {
    refs.sort_by(|a, b| a.base().cmp(b.base()));
    refs.dedup();
    refs
}

/// An attestation with the text it was parsed from: [`Attestation::parse`]
/// accepts only canonical text, so that text is the attestation's
/// encoding, and the entry of one with inline references is that text
/// again, reused rather than written a second time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submitted<'a> {
    /// The parsed attestation.
    pub attestation: Attestation,
    /// `attestation.encode()`, as submitted.
    text: &'a [u8],
}

impl<'a> Submitted<'a> {
    /// Parses one attestation of a submission (see [`Attestation::parse`]).
    pub fn parse(text: &'a [u8]) -> Result<Submitted<'a>, AttestationError> {
        let attestation = Attestation::parse(text)?;
        Ok(Submitted { attestation, text })
    }

    /// [`Attestation::into_entry`], copying the submitted text where the
    /// inline entry fits instead of encoding it again.
    pub fn into_entry(self) -> LoggedEntry {
        if self.text.len() > MAX_ENTRY_LEN {
            return self.attestation.into_entry();
        }
        debug_assert_eq!(self.attestation.encode(), self.text);
        LoggedEntry {
            entry: self.attestation.into_inline_entry(),
            bytes: self.text.to_vec(),
            digested: Vec::new(),
        }
    }
}

/// An attestation made into its log entry by [`Attestation::into_entry`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedEntry {
    /// The entry (§3.2).
    pub entry: Entry,
    /// Its canonical encoding: what the leaf hash covers.
    pub bytes: Vec<u8>,
    /// The references a digest-form entry stands for (the list a reader
    /// fetches by its digest); empty for inline references.
    pub digested: Vec<StorePath>,
}

impl Attestation {
    /// Signs a new attestation with a builder's Nix secret key.
    pub fn sign(
        path: StorePath,
        nar_hash: [u8; 32],
        nar_size: u64,
        references: Vec<StorePath>,
        deriver: Option<StorePath>,
        key: &NixSecretKey,
    ) -> Attestation {
        let references = sorted_unique(references);
        let sig = key
            .sign(&fingerprint(&path, &nar_hash, nar_size, &references))
            .sig;
        Attestation {
            path,
            nar_hash,
            nar_size,
            references,
            deriver,
            key: key.public(),
            sig,
        }
    }

    /// The attestation made by `key`'s `Sig:` line in a narinfo (verified).
    pub fn from_narinfo(
        narinfo: &NarInfo,
        key: &NixPublicKey,
    ) -> Result<Attestation, AttestationError> {
        let a = Attestation::from_narinfo_unverified(narinfo, key)?;
        a.verify()?;
        Ok(a)
    }

    /// [`Attestation::from_narinfo`] without checking the signature, for a
    /// submitter that leaves the check to the log (which checks every
    /// signature anyway, in batches).
    pub fn from_narinfo_unverified(
        narinfo: &NarInfo,
        key: &NixPublicKey,
    ) -> Result<Attestation, AttestationError> {
        let sig = narinfo
            .sigs
            .iter()
            .find(|s| s.name == key.name())
            .ok_or_else(|| AttestationError::NoSignature {
                path: narinfo.store_path.full(),
                key: key.name().to_string(),
            })?;
        Ok(Attestation {
            path: narinfo.store_path.clone(),
            nar_hash: narinfo.nar_hash,
            nar_size: narinfo.nar_size,
            references: sorted_unique(narinfo.references.clone()),
            deriver: narinfo.deriver.clone(),
            key: key.clone(),
            sig: sig.sig,
        })
    }

    /// Nix's fingerprint of the attested path.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.path, &self.nar_hash, self.nar_size, &self.references)
    }

    /// Verifies the builder's signature.
    pub fn verify(&self) -> Result<(), AttestationError> {
        let sig = NixSignature {
            name: self.key.name().to_string(),
            sig: self.sig,
        };
        if !self.key.verify(&self.fingerprint(), &sig) {
            return Err(AttestationError::BadSignature(self.key.to_string()));
        }
        Ok(())
    }

    /// The narinfo `Sig:` value this attestation carries.
    pub fn nix_signature(&self) -> NixSignature {
        NixSignature {
            name: self.key.name().to_string(),
            sig: self.sig,
        }
    }

    /// The log entry: inline references if it fits in [`MAX_ENTRY_LEN`],
    /// otherwise the digest form.
    pub fn to_entry(&self) -> Entry {
        self.clone().into_entry().entry
    }

    /// [`Attestation::to_entry`] without copying, with the entry's
    /// canonical encoding computed once (the log needs both).
    pub fn into_entry(self) -> LoggedEntry {
        let inline = self.into_inline_entry();
        let bytes = inline.encode();
        if bytes.len() <= MAX_ENTRY_LEN {
            return LoggedEntry {
                entry: inline,
                bytes,
                digested: Vec::new(),
            };
        }
        let refs = match inline.references {
            References::Inline(refs) => refs,
            References::Digest(_) => Vec::new(),
        };
        let entry = Entry {
            references: References::Digest(sha256(references_field(&refs).as_bytes())),
            ..inline
        };
        LoggedEntry {
            bytes: entry.encode(),
            entry,
            digested: refs,
        }
    }

    /// The entry with every reference inline, whatever its length.
    fn into_inline_entry(self) -> Entry {
        Entry {
            path: self.path,
            nar_hash: self.nar_hash,
            nar_size: self.nar_size,
            references: References::Inline(self.references),
            deriver: self.deriver,
            key: self.key,
            sig: self.sig,
        }
    }

    /// The submission text: the entry encoding with all references inline.
    pub fn encode(&self) -> Vec<u8> {
        encode_lines(
            &self.path,
            &self.nar_hash,
            self.nar_size,
            &References::Inline(self.references.clone()),
            &self.deriver,
            &self.key,
            &self.sig,
        )
    }

    /// Parses the submission text (inline references only, up to 4 MiB).
    /// Only the canonical text is accepted: `parse(t)?.encode() == t`
    /// (each field is checked for its one spelling, and the whole is
    /// encoded again and compared before it is returned).
    pub fn parse(data: &[u8]) -> Result<Attestation, AttestationError> {
        let e = parse_lines(data, MAX_ATTESTATION_LEN)?;
        let References::Inline(references) = e.references else {
            return Err(AttestationError::DigestForm);
        };
        Ok(Attestation {
            path: e.path,
            nar_hash: e.nar_hash,
            nar_size: e.nar_size,
            references,
            deriver: e.deriver,
            key: e.key,
            sig: e.sig,
        })
    }
}

impl Entry {
    /// The canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        encode_lines(
            &self.path,
            &self.nar_hash,
            self.nar_size,
            &self.references,
            &self.deriver,
            &self.key,
            &self.sig,
        )
    }

    /// Decodes an entry, rejecting anything not in canonical form or larger
    /// than [`MAX_ENTRY_LEN`].
    pub fn decode(data: &[u8]) -> Result<Entry, AttestationError> {
        parse_lines(data, MAX_ENTRY_LEN)
    }

    /// The RFC 6962 leaf hash of the encoded entry.
    pub fn leaf_hash(&self) -> Hash {
        leaf_hash(&self.encode())
    }

    /// The full attestation, given the reference list when the entry only
    /// carries a digest (checked against it).
    pub fn attestation(
        &self,
        references: Option<&[StorePath]>,
    ) -> Result<Attestation, AttestationError> {
        let refs = match (&self.references, references) {
            (References::Inline(r), _) => r.clone(),
            (References::Digest(d), Some(r)) => {
                let r = sorted_unique(r.to_vec());
                if sha256(references_field(&r).as_bytes()) != *d {
                    return Err(AttestationError::ReferencesMismatch);
                }
                r
            }
            (References::Digest(_), None) => return Err(AttestationError::DigestForm),
        };
        Ok(Attestation {
            path: self.path.clone(),
            nar_hash: self.nar_hash,
            nar_size: self.nar_size,
            references: refs,
            deriver: self.deriver.clone(),
            key: self.key.clone(),
            sig: self.sig,
        })
    }

    /// Verifies the builder's signature (digest-form entries need the list).
    pub fn verify(&self, references: Option<&[StorePath]>) -> Result<(), AttestationError> {
        self.attestation(references)?.verify()
    }

    /// Checks that a narinfo describes exactly what this entry attests:
    /// same path, NAR hash, NAR size and references.
    pub fn matches_narinfo(&self, n: &NarInfo) -> Result<(), AttestationError> {
        if n.store_path != self.path {
            return Err(AttestationError::NarInfoMismatch("StorePath"));
        }
        if n.nar_hash != self.nar_hash {
            return Err(AttestationError::NarInfoMismatch("NarHash"));
        }
        if n.nar_size != self.nar_size {
            return Err(AttestationError::NarInfoMismatch("NarSize"));
        }
        self.attestation(Some(&n.references))
            .map_err(|_| AttestationError::NarInfoMismatch("References"))
            .and_then(|a| {
                if a.references == sorted_unique(n.references.clone()) {
                    Ok(())
                } else {
                    Err(AttestationError::NarInfoMismatch("References"))
                }
            })
    }
}

fn encode_lines(
    path: &StorePath,
    nar_hash: &[u8; 32],
    nar_size: u64,
    references: &References,
    deriver: &Option<StorePath>,
    key: &NixPublicKey,
    sig: &[u8; 64],
) -> Vec<u8> {
    // Written into one buffer of the right size: this runs once per
    // submitted attestation (a format! per line cost ~1 µs of the log's
    // ~25 µs per entry, BENCHMARKS.md).
    let refs_len = match references {
        References::Inline(refs) => refs
            .iter()
            .map(|r| "reference \n".len() + r.base().len())
            .sum(),
        References::Digest(_) => "references-sha256 \n".len() + 64,
    };
    let len = HEADER.len()
        + "\npath ".len()
        + path.full_len()
        + "\nnar-hash sha256:".len()
        + 52
        + "\nnar-size \n".len()
        + 20
        + refs_len
        + deriver
            .as_ref()
            .map_or(0, |d| "deriver \n".len() + d.base().len())
        + "key ".len()
        + key.encoded_len()
        + "\nsig \n".len()
        + 88;
    let mut s = String::with_capacity(len);
    s.push_str(HEADER);
    s.push_str("\npath ");
    path.push_full(&mut s);
    s.push_str("\nnar-hash sha256:");
    nix32::push(nar_hash, &mut s);
    // Writing to a String cannot fail.
    let _ = write!(s, "\nnar-size {nar_size}\n");
    match references {
        References::Inline(refs) => {
            for r in refs {
                s.push_str("reference ");
                s.push_str(r.base());
                s.push('\n');
            }
        }
        References::Digest(d) => {
            s.push_str("references-sha256 ");
            s.push_str(&hex::encode(d));
            s.push('\n');
        }
    }
    if let Some(d) = deriver {
        s.push_str("deriver ");
        s.push_str(d.base());
        s.push('\n');
    }
    s.push_str("key ");
    key.push_to(&mut s);
    s.push_str("\nsig ");
    b64::push(sig, &mut s);
    s.push('\n');
    debug_assert!(s.len() <= len, "capacity estimate too small");
    s.into_bytes()
}

/// The lines of an entry, taken in order by their expected prefixes.
struct Lines<'a> {
    rest: std::iter::Peekable<std::str::Split<'a, char>>,
    /// Lines taken so far: the 1-based number of the last one taken.
    taken: usize,
}

impl<'a> Lines<'a> {
    /// The rest of the next line after `prefix`, taking it, if it has
    /// that prefix.
    fn take(&mut self, prefix: &str) -> Option<&'a str> {
        let line: &'a str = self.rest.peek()?;
        let v = line.strip_prefix(prefix)?;
        self.rest.next();
        self.taken += 1;
        Some(v)
    }

    /// [`Lines::take`] for a line that must be there: its number and rest.
    fn field(
        &mut self,
        prefix: &str,
        expected: &'static str,
    ) -> Result<(usize, &'a str), AttestationError> {
        match self.take(prefix) {
            Some(v) => Ok((self.taken, v)),
            None => Err(AttestationError::Line {
                line: self.taken + 1,
                expected,
            }),
        }
    }
}

fn parse_lines(data: &[u8], max: usize) -> Result<Entry, AttestationError> {
    if data.len() > max {
        return Err(AttestationError::TooLarge {
            len: data.len(),
            max,
        });
    }
    let text = crate::text::line_text(data).ok_or(AttestationError::NotText)?;
    let mut lines = Lines {
        rest: text[..text.len() - 1].split('\n').peekable(),
        taken: 0,
    };
    let (n, h) = lines.field("", HEADER)?;
    if h != HEADER {
        return Err(AttestationError::Line {
            line: n,
            expected: HEADER,
        });
    }
    let (n, p) = lines.field("path ", "path <store path>")?;
    let path = StorePath::parse(p).map_err(|err| AttestationError::Path { line: n, err })?;
    let (n, h) = lines.field("nar-hash ", "nar-hash sha256:<nix32>")?;
    let nar_hash = parse_sha256("nar-hash", h).map_err(|_| AttestationError::Line {
        line: n,
        expected: "nar-hash sha256:<nix32>",
    })?;
    let (n, s) = lines.field("nar-size ", "nar-size <decimal>")?;
    let nar_size = parse_decimal(s)
        .filter(|s| *s > 0)
        .ok_or(AttestationError::Line {
            line: n,
            expected: "nar-size <positive decimal without leading zeros>",
        })?;
    let dir = path.store_dir();
    let in_store = |line: usize, base: &str| {
        StorePath::from_base(dir, base).map_err(|err| AttestationError::Path { line, err })
    };
    let references = if let Some(d) = lines.take("references-sha256 ") {
        let raw = hex::decode(d)
            .filter(|r| r.len() == 32)
            .ok_or(AttestationError::Line {
                line: lines.taken,
                expected: "references-sha256 <64 lowercase hex digits>",
            })?;
        let mut h = [0u8; 32];
        h.copy_from_slice(&raw);
        References::Digest(h)
    } else {
        let mut refs: Vec<StorePath> = Vec::new();
        while let Some(b) = lines.take("reference ") {
            let r = in_store(lines.taken, b)?;
            if refs.last().is_some_and(|last| last.base() >= r.base()) {
                return Err(AttestationError::ReferenceOrder(lines.taken));
            }
            refs.push(r);
        }
        References::Inline(refs)
    };
    let deriver = match lines.take("deriver ") {
        Some(b) => Some(in_store(lines.taken, b)?),
        None => None,
    };
    let (n, k) = lines.field("key ", "key <name>:<base64 public key>")?;
    let key = NixPublicKey::parse(k).map_err(|err| AttestationError::Key { line: n, err })?;
    let (n, s) = lines.field("sig ", "sig <base64 Ed25519 signature>")?;
    let sig = b64::decode_array::<64>(s).ok_or(AttestationError::Line {
        line: n,
        expected: "sig <base64 of 64 bytes>",
    })?;
    if lines.rest.peek().is_some() {
        return Err(AttestationError::Trailing);
    }
    let entry = Entry {
        path,
        nar_hash,
        nar_size,
        references,
        deriver,
        key,
        sig,
    };
    // Belt and braces: the canonical encoding must reproduce the input.
    if entry.encode() != data {
        return Err(AttestationError::NotText);
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HELLO: &str = include_str!("../testdata/nix/hello.narinfo");

    fn builder1() -> NixPublicKey {
        NixPublicKey::parse(include_str!("../testdata/nix/builder-1.pub").trim_end()).unwrap()
    }

    #[test]
    fn from_real_narinfo_sig() {
        let n = NarInfo::parse(HELLO.as_bytes()).unwrap();
        let a = Attestation::from_narinfo(&n, &builder1()).unwrap();
        let e = a.to_entry();
        let bytes = e.encode();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            "vouch/attestation/v1\npath /nix/store/71z0irc81f1wmhlqhcxmb0h9y78nfkns-vouch-hello\nnar-hash sha256:1yhwyc0l5x5imibnlnzgscrwjsqmkgyxbq3hi9v2y0icby7036hs\nnar-size 184\nreference i7imialynm0v8ki0s68lbllxx124zyhs-vouch-dep\nderiver 4myk779h2pwflpk49k6iljcx8xvk87s1-vouch-hello.drv\nkey builder-1.example.org-1:WyVc8pDuOA/Cxt5fUWeTy7MW/hf7IIPragHesEPqkYk=\nsig Ot6ThzS0xfO/F753is2QEPuWXYa8Y1iMSTXpUmXnr8aGwGRypyR/q+AbOJDWfoDeSxSCze4UoWbWoWo2M8llDw==\n"
        );
        let d = Entry::decode(&bytes).unwrap();
        assert_eq!(d, e);
        d.verify(None).unwrap();
        d.matches_narinfo(&n).unwrap();
        assert_eq!(Attestation::parse(&a.encode()).unwrap(), a);
        // A key that did not sign it.
        let other = NixSecretKey::from_seed("other-1", &[3; 32])
            .unwrap()
            .public();
        assert!(matches!(
            Attestation::from_narinfo(&n, &other),
            Err(AttestationError::NoSignature { .. })
        ));
    }

    #[test]
    fn rejects_noncanonical_and_bad_sigs() {
        let n = NarInfo::parse(HELLO.as_bytes()).unwrap();
        let good = String::from_utf8(
            Attestation::from_narinfo(&n, &builder1())
                .unwrap()
                .to_entry()
                .encode(),
        )
        .unwrap();
        let cases = [
            good.replace("vouch/attestation/v1", "vouch/attestation/v2"),
            good.replace("nar-size 184", "nar-size 0184"),
            good.replace("nar-size 184", "nar-size 0"),
            good.replace("nar-hash sha256:1", "nar-hash sha256:z"),
            good.replace(
                "\nderiver",
                "\nreference i7imialynm0v8ki0s68lbllxx124zyhs-vouch-dep\nderiver",
            ),
            good.replace("reference i7", "reference  i7"),
            good.replace("path /nix/store/71", "path nix/store/71"),
            good.replace("key builder", "key  builder"),
            good.replace("\n", "\r\n"),
            good.trim_end().to_string(),
            format!("{good}\n"),
            format!("{good}extra 1\n"),
            good.replace("sig Ot6T", "sig Ot6t"),
        ];
        for c in &cases[..12] {
            assert!(Entry::decode(c.as_bytes()).is_err(), "{c}");
        }
        // A flipped signature byte decodes but does not verify.
        let e = Entry::decode(cases[12].as_bytes()).unwrap();
        assert!(matches!(
            e.verify(None),
            Err(AttestationError::BadSignature(_))
        ));
        // A different NAR hash in the narinfo is a mismatch.
        let mut n2 = n.clone();
        n2.nar_hash[0] ^= 1;
        let e = Entry::decode(good.as_bytes()).unwrap();
        assert_eq!(
            e.matches_narinfo(&n2),
            Err(AttestationError::NarInfoMismatch("NarHash"))
        );
    }

    #[test]
    fn huge_reference_lists_use_the_digest_form() {
        let sk = NixSecretKey::from_seed("builder-x", &[4; 32]).unwrap();
        let refs: Vec<StorePath> = (0..400u32)
            .map(|i| {
                let h = crate::nix::nix32::encode(&sha256(&i.to_be_bytes())[..20]);
                StorePath::from_base(
                    "/nix/store",
                    &format!("{h}-{}", "long-package-name-".repeat(10)),
                )
                .unwrap()
            })
            .collect();
        let path = StorePath::parse("/nix/store/71z0irc81f1wmhlqhcxmb0h9y78nfkns-big").unwrap();
        let a = Attestation::sign(path, [7; 32], 1234, refs.clone(), None, &sk);
        assert!(a.encode().len() > MAX_ENTRY_LEN);
        let e = a.to_entry();
        assert!(matches!(e.references, References::Digest(_)));
        let bytes = e.encode();
        assert!(bytes.len() < 1024);
        let d = Entry::decode(&bytes).unwrap();
        assert_eq!(d.verify(None), Err(AttestationError::DigestForm));
        d.verify(Some(&refs)).unwrap();
        assert_eq!(
            d.verify(Some(&refs[1..])),
            Err(AttestationError::ReferencesMismatch)
        );
        assert_eq!(Attestation::parse(&a.encode()).unwrap(), a);
        assert!(Entry::decode(&a.encode()).is_err());
        assert_eq!(
            Attestation::parse(&bytes),
            Err(AttestationError::DigestForm)
        );
        // The log's path: the same entry and bytes, and the list it stands for.
        let logged = a.clone().into_entry();
        assert_eq!((&logged.entry, &logged.bytes), (&e, &bytes));
        assert_eq!(logged.digested, a.references);
        let text = a.encode();
        assert_eq!(Submitted::parse(&text).unwrap().into_entry(), logged);
    }

    /// Errors name the line at fault (1-based) and what was expected there.
    #[test]
    fn errors_name_their_line() {
        let n = NarInfo::parse(HELLO.as_bytes()).unwrap();
        let good = String::from_utf8(Attestation::from_narinfo(&n, &builder1()).unwrap().encode())
            .unwrap();
        let lines: Vec<&str> = good.lines().collect();
        assert_eq!(
            lines.len(),
            8,
            "header path nar-hash nar-size reference deriver key sig"
        );
        let with = |i: usize, line: Option<&str>| {
            let mut l: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
            match line {
                Some(x) => l[i - 1] = x.to_string(),
                None => {
                    l.remove(i - 1);
                }
            }
            Attestation::parse(format!("{}\n", l.join("\n")).as_bytes()).unwrap_err()
        };
        let line_of = |e: AttestationError| match e {
            AttestationError::Line { line, .. }
            | AttestationError::Path { line, .. }
            | AttestationError::Key { line, .. } => Some(line),
            AttestationError::ReferenceOrder(line) => Some(line),
            _ => None,
        };
        assert_eq!(line_of(with(4, None)), Some(4), "nar-size missing");
        assert!(matches!(
            with(4, None),
            AttestationError::Line {
                expected: "nar-size <decimal>",
                ..
            }
        ));
        assert!(matches!(
            with(5, Some("reference xyz")),
            AttestationError::Path { line: 5, .. }
        ));
        assert!(matches!(
            with(6, Some(lines[4])),
            AttestationError::ReferenceOrder(6)
        ));
        assert!(matches!(
            with(6, Some("deriver x")),
            AttestationError::Path { line: 6, .. }
        ));
        assert!(matches!(
            with(7, None),
            AttestationError::Line { line: 7, .. }
        ));
        assert!(matches!(
            with(7, Some("key k:AAAA")),
            AttestationError::Key { line: 7, .. }
        ));
        assert!(matches!(
            with(8, Some("sig AAAA")),
            AttestationError::Line {
                line: 8,
                expected: "sig <base64 of 64 bytes>"
            }
        ));
        let trailing = format!("{good}extra\n");
        assert_eq!(
            Attestation::parse(trailing.as_bytes()),
            Err(AttestationError::Trailing)
        );
    }

    #[test]
    fn into_entry_is_to_entry_with_its_encoding() {
        let sk = NixSecretKey::from_seed("builder-x", &[4; 32]).unwrap();
        let path = StorePath::parse("/nix/store/71z0irc81f1wmhlqhcxmb0h9y78nfkns-small").unwrap();
        let r = StorePath::parse("/nix/store/4myk779h2pwflpk49k6iljcx8xvk87s1-dep").unwrap();
        let a = Attestation::sign(path, [7; 32], 1234, vec![r], None, &sk);
        let logged = a.clone().into_entry();
        assert_eq!(logged.entry, a.to_entry());
        assert_eq!(logged.bytes, a.to_entry().encode());
        assert!(matches!(logged.entry.references, References::Inline(_)));
        assert!(logged.digested.is_empty());
        let text = a.encode();
        assert_eq!(Submitted::parse(&text).unwrap().into_entry(), logged);
    }

    /// §3.2's encoding written the plain way, line by line.
    fn plain_encode(e: &Entry) -> Vec<u8> {
        let mut s = format!(
            "{HEADER}\npath {}\nnar-hash {}\nnar-size {}\n",
            e.path,
            crate::nix::narinfo::format_sha256(&e.nar_hash),
            e.nar_size
        );
        match &e.references {
            References::Inline(refs) => {
                for r in refs {
                    s += &format!("reference {}\n", r.base());
                }
            }
            References::Digest(d) => s += &format!("references-sha256 {}\n", hex::encode(d)),
        }
        if let Some(d) = &e.deriver {
            s += &format!("deriver {}\n", d.base());
        }
        s += &format!("key {}\nsig {}\n", e.key, b64::encode(e.sig));
        s.into_bytes()
    }

    proptest! {
        #[test]
        fn encoding_is_the_plain_definition(
            hashes in proptest::collection::vec("[0-9a-df-np-sv-z]{32}", 1..6),
            name in "[a-zA-Z0-9+_?=-][a-zA-Z0-9+._?=-]{0,30}",
            dir in prop_oneof![Just("/nix/store"), Just("/gnu/store")],
            nar_hash in any::<[u8; 32]>(),
            nar_size in 1..u64::MAX,
            digest in proptest::option::of(any::<[u8; 32]>()),
            deriver in any::<bool>(),
            key_name in "[a-z0-9.-]{1,20}",
            seed in any::<[u8; 32]>(),
            sig in proptest::collection::vec(any::<u8>(), 64),
        ) {
            let at = |h: &str, suffix: &str| {
                StorePath::from_base(dir, &format!("{h}-{name}{suffix}")).unwrap()
            };
            let references = match digest {
                Some(d) => References::Digest(d),
                None => References::Inline(sorted_unique(hashes.iter().map(|h| at(h, "")).collect())),
            };
            let e = Entry {
                path: at(&hashes[0], ""),
                nar_hash,
                nar_size,
                references,
                deriver: deriver.then(|| at(&hashes[0], ".drv")),
                key: NixSecretKey::from_seed(&key_name, &seed).unwrap().public(),
                sig: sig.try_into().unwrap(),
            };
            prop_assert_eq!(e.encode(), plain_encode(&e));
            prop_assert_eq!(Entry::decode(&e.encode()).unwrap(), e);
        }

        #[test]
        fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(e) = Entry::decode(&data) { prop_assert_eq!(e.encode(), data); }
        }
        #[test]
        fn mutated_entries_never_panic(pos in any::<usize>(), byte in any::<u8>()) {
            let n = NarInfo::parse(HELLO.as_bytes()).unwrap();
            let mut bytes = Attestation::from_narinfo(&n, &builder1()).unwrap().to_entry().encode();
            let p = pos % bytes.len();
            bytes[p] = byte;
            if let Ok(e) = Entry::decode(&bytes) { prop_assert_eq!(e.encode(), bytes); }
        }
    }
}
