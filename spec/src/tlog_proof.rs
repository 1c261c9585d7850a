//! C2SP tlog-proof (`tlog-proof.md`): an offline-verifiable proof that an
//! entry is in a log, under a checkpoint cosigned by witnesses.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! [extra <base64>]
//! index <N>
//! <inclusion proof hashes, one per line>
//!
//! <checkpoint, verbatim>
//! ```
//!
//! Vouch puts the attestation entry's bytes in `extra` (`spec/PROTOCOL.md` §5).

use crate::b64;
use crate::checkpoint::Checkpoint;
use crate::hash::Hash;
use crate::inclusion::{self, InclusionError};
use crate::policy::{Policy, PolicyCheckError, PolicyCheckpoint};
use crate::tile::parse_decimal;

/// The first line of every proof.
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";
/// The most inclusion proof lines accepted (a tree of 2^64 leaves needs 64).
pub const MAX_PROOF_LINES: usize = 64;

/// A parsed tlog-proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogProof {
    /// Opaque, unauthenticated extra data (non-empty when present).
    pub extra: Option<Vec<u8>>,
    /// Index of the entry.
    pub index: u64,
    /// Inclusion proof, from the leaf's sibling upwards.
    pub proof: Vec<Hash>,
    /// The signed checkpoint, verbatim.
    pub checkpoint: Vec<u8>,
}

/// Why a proof was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlogProofError {
    /// Not UTF-8.
    #[error("tlog-proof is not UTF-8")]
    NotUtf8,
    /// The first line is not the header.
    #[error("tlog-proof must start with {HEADER:?}")]
    Header,
    /// The `extra` line is malformed or empty.
    #[error("tlog-proof extra line is not non-empty canonical base64")]
    Extra,
    /// The `index` line is malformed.
    #[error("tlog-proof index line must be \"index <N>\" without leading zeros")]
    Index,
    /// A proof line is not a base64 hash.
    #[error("tlog-proof inclusion line {0} is not a base64 SHA-256 hash")]
    ProofLine(usize),
    /// Too many proof lines.
    #[error("tlog-proof has more than {MAX_PROOF_LINES} inclusion lines")]
    TooLong,
    /// No empty line before the checkpoint.
    #[error("tlog-proof has no empty line before the checkpoint")]
    NoCheckpoint,
    /// The checkpoint does not satisfy the policy.
    #[error("tlog-proof checkpoint: {0}")]
    Policy(#[from] PolicyCheckError),
    /// The inclusion proof does not verify.
    #[error("tlog-proof inclusion: {0}")]
    Inclusion(#[from] InclusionError),
}

impl TlogProof {
    /// Parses a proof.
    pub fn parse(data: &[u8]) -> Result<TlogProof, TlogProofError> {
        let s = std::str::from_utf8(data).map_err(|_| TlogProofError::NotUtf8)?;
        let mut rest = s
            .strip_prefix(HEADER)
            .and_then(|r| r.strip_prefix('\n'))
            .ok_or(TlogProofError::Header)?;
        let mut next = |err: TlogProofError| -> Result<&str, TlogProofError> {
            let (line, r) = rest.split_once('\n').ok_or(err)?;
            rest = r;
            Ok(line)
        };
        let mut line = next(TlogProofError::Index)?;
        let mut extra = None;
        if let Some(e) = line.strip_prefix("extra ") {
            let bytes = b64::decode(e).map_err(|_| TlogProofError::Extra)?;
            if bytes.is_empty() {
                return Err(TlogProofError::Extra);
            }
            extra = Some(bytes);
            line = next(TlogProofError::Index)?;
        }
        let index = line
            .strip_prefix("index ")
            .and_then(parse_decimal)
            .ok_or(TlogProofError::Index)?;
        let mut proof = Vec::new();
        loop {
            let line = next(TlogProofError::NoCheckpoint)?;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(TlogProofError::TooLong);
            }
            proof.push(
                Hash::from_base64(line).map_err(|_| TlogProofError::ProofLine(proof.len() + 1))?,
            );
        }
        Ok(TlogProof {
            extra,
            index,
            proof,
            checkpoint: rest.as_bytes().to_vec(),
        })
    }

    /// Encodes the proof.
    pub fn encode(&self) -> Vec<u8> {
        encode_parts(
            self.extra.as_deref(),
            self.index,
            &self.proof,
            &self.checkpoint,
        )
    }

    /// Verifies the proof for an entry whose leaf hash the caller computed
    /// (step 1 of the spec), against a policy (steps 2–4).
    pub fn verify(&self, leaf: &Hash, policy: &Policy) -> Result<PolicyCheckpoint, TlogProofError> {
        let cp = policy.verify_checkpoint(&self.checkpoint)?;
        self.verify_inclusion(leaf, &cp.checkpoint)?;
        Ok(cp)
    }

    /// Step 4 alone: the inclusion proof of `leaf` at this proof's index
    /// under `checkpoint`, which the caller has verified (for instance, this
    /// proof's own checkpoint after its signatures and consistency).
    pub fn verify_inclusion(
        &self,
        leaf: &Hash,
        checkpoint: &Checkpoint,
    ) -> Result<(), InclusionError> {
        inclusion::verify(
            self.index,
            checkpoint.size,
            leaf,
            &self.proof,
            &checkpoint.root,
        )
    }

    /// [`TlogProof::verify`] with the checkpoint's signatures checked
    /// through `cache`: the same decision, one signature check per distinct
    /// checkpoint instead of one per proof.
    pub fn verify_cached(
        &self,
        leaf: &Hash,
        policy: &Policy,
        cache: &mut crate::policy::CheckpointCache,
    ) -> Result<PolicyCheckpoint, TlogProofError> {
        let cp = cache.verify(policy, &self.checkpoint)?;
        self.verify_inclusion(leaf, &cp.checkpoint)?;
        Ok(cp)
    }
}

/// Encodes a proof from its parts exactly as [`TlogProof::encode`] does,
/// without first copying them into a [`TlogProof`]: a log serving proofs
/// encodes each from a stored entry and its current checkpoint, and this
/// writes them into one buffer of the final size (`extra` non-empty, as
/// [`TlogProof::parse`] requires, if present).
pub fn encode_parts(
    extra: Option<&[u8]>,
    index: u64,
    proof: &[Hash],
    checkpoint: &[u8],
) -> Vec<u8> {
    use std::fmt::Write as _;
    // "extra " + base64 + "\n"; "index " + at most 20 digits + "\n";
    // 44 base64 characters + "\n" per hash; the empty line.
    let extra_len = extra.map_or(0, |e| 7 + e.len().div_ceil(3) * 4);
    let len = HEADER.len() + 1 + extra_len + 27 + proof.len() * 45 + 1;
    let mut s = String::with_capacity(len + checkpoint.len());
    s.push_str(HEADER);
    s.push('\n');
    if let Some(e) = extra {
        s.push_str("extra ");
        b64::push(e, &mut s);
        s.push('\n');
    }
    // Writing to a String cannot fail.
    let _ = writeln!(s, "index {index}");
    for h in proof {
        b64::push(h.0, &mut s);
        s.push('\n');
    }
    s.push('\n');
    let mut out = s.into_bytes();
    out.extend_from_slice(checkpoint);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Checkpoint;
    use crate::cosignature::CosignatureSigner;
    use crate::hash::leaf_hash;
    use crate::merkle::MemoryTree;
    use crate::note::{Ed25519Signer, Note};
    use proptest::prelude::*;

    #[test]
    fn spec_example_shape_parses() {
        let text = "c2sp.org/tlog-proof@v1\nextra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6\nindex 73894\ngSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=\nB95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=\n\nexample.com/fancylog\n109482\nsFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=\n\n\u{2014} example.com/fancylog AAAAAAAA\n";
        let p = TlogProof::parse(text.as_bytes()).unwrap();
        assert_eq!(p.index, 73894);
        assert_eq!(
            p.extra.as_deref(),
            Some(&b"age-v1.2.1-darwin-arm64.tar.gz"[..])
        );
        assert_eq!(p.encode(), text.as_bytes());
        for bad in [
            "c2sp.org/tlog-proof@v2\nindex 1\n\nx",
            "c2sp.org/tlog-proof@v1\nindex 01\n\nx",
            "c2sp.org/tlog-proof@v1\nextra \nindex 1\n\nx",
            "c2sp.org/tlog-proof@v1\nindex 1\nAAAA\n\nx",
            "c2sp.org/tlog-proof@v1\nindex 1\n",
            "c2sp.org/tlog-proof@v1\nextra YQ==\nextra YQ==\nindex 1\n\nx",
        ] {
            assert!(TlogProof::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn verifies_with_policy() {
        let log = Ed25519Signer::from_seed("example.com/log", &[1; 32]).unwrap();
        let ws: Vec<_> = (2..5u8)
            .map(|i| CosignatureSigner::from_seed(&format!("w{i}"), &[i; 32]).unwrap())
            .collect();
        let policy = Policy::parse(
            format!(
                "log {}\nwitness a {}\nwitness b {}\nwitness c {}\ngroup g 2 a b c\nquorum g\n",
                log.verifier().vkey(),
                ws[0].verifier().vkey(),
                ws[1].verifier().vkey(),
                ws[2].verifier().vkey()
            )
            .as_bytes(),
        )
        .unwrap();
        let tree = MemoryTree::from_leaves((0..11u64).map(|i| leaf_hash(&i.to_be_bytes())));
        let text = Checkpoint::new("example.com/log", 11, tree.root()).to_text();
        let mut note = Note::sign(&text, &[&log]).unwrap();
        note.sigs.push(ws[0].cosign(&text, 1).unwrap());
        note.sigs.push(ws[2].cosign(&text, 2).unwrap());
        let proof = TlogProof {
            extra: None,
            index: 7,
            proof: inclusion::prove(7, 11, &tree).unwrap(),
            checkpoint: note.to_bytes(),
        };
        let parsed = TlogProof::parse(&proof.encode()).unwrap();
        assert!(parsed
            .verify(&leaf_hash(&7u64.to_be_bytes()), &policy)
            .is_ok());
        assert!(parsed
            .verify(&leaf_hash(&6u64.to_be_bytes()), &policy)
            .is_err());
        let mut one = parsed.clone();
        let mut n = Note::parse(&one.checkpoint).unwrap();
        n.sigs.truncate(2);
        one.checkpoint = n.to_bytes();
        assert!(matches!(
            one.verify(&leaf_hash(&7u64.to_be_bytes()), &policy),
            Err(TlogProofError::Policy(PolicyCheckError::NoQuorum { .. }))
        ));

        // The cache gives the same answers, and never remembers a failure.
        let mut cache = crate::policy::CheckpointCache::default();
        for _ in 0..2 {
            let leaf7 = leaf_hash(&7u64.to_be_bytes());
            assert_eq!(
                parsed.verify_cached(&leaf7, &policy, &mut cache),
                parsed.verify(&leaf7, &policy)
            );
            assert!(parsed
                .verify_cached(&leaf_hash(&6u64.to_be_bytes()), &policy, &mut cache)
                .is_err());
            assert!(one.verify_cached(&leaf7, &policy, &mut cache).is_err());
        }
        let mut forged = parsed.clone();
        let last = forged.checkpoint.len() - 3;
        forged.checkpoint[last] ^= 1;
        assert!(forged
            .verify_cached(&leaf_hash(&7u64.to_be_bytes()), &policy, &mut cache)
            .is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(p) = TlogProof::parse(&data) { prop_assert_eq!(p.encode(), data); }
        }
        #[test]
        fn roundtrip(extra in proptest::option::of(proptest::collection::vec(any::<u8>(), 1..40)), index in any::<u64>(), n in 0usize..5) {
            let p = TlogProof { extra, index, proof: vec![Hash::empty_root(); n], checkpoint: b"o\n1\nx\n\n".to_vec() };
            prop_assert_eq!(TlogProof::parse(&p.encode()), Ok(p));
        }
        #[test]
        fn encoding_is_the_specs_text(extra in proptest::option::of(proptest::collection::vec(any::<u8>(), 1..40)), index in any::<u64>(), proof in proptest::collection::vec(any::<[u8; 32]>(), 0..65)) {
            let proof: Vec<Hash> = proof.into_iter().map(Hash).collect();
            let mut want = format!("{HEADER}\n");
            if let Some(e) = &extra {
                want += &format!("extra {}\n", b64::encode(e));
            }
            want += &format!("index {index}\n");
            for h in &proof {
                want += &format!("{}\n", h.to_base64());
            }
            want += "\nlog.example\n1\nx\n\n";
            let got = encode_parts(extra.as_deref(), index, &proof, b"log.example\n1\nx\n\n");
            prop_assert_eq!(String::from_utf8(got), Ok(want));
        }
    }
}
