//! C2SP tlog-witness (`tlog-witness.md`, "add-checkpoint"): request and
//! response bodies, the 409 size body, and the witness's decision procedure
//! as a pure function of its stored state.

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::consistency;
use crate::hash::Hash;
use crate::note::{Note, NoteError, NoteVerifier, Signature};
use crate::tile::parse_decimal;

/// The most consistency proof lines a request may carry.
pub const MAX_PROOF_LINES: usize = 63;
/// `Content-Type` of a 409 response body.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// An `add-checkpoint` request body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The size of the checkpoint the client believes the witness has.
    pub old_size: u64,
    /// Consistency proof from `old_size` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The signed checkpoint, verbatim.
    pub checkpoint: Vec<u8>,
}

/// Why a request or response body was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WitnessBodyError {
    /// The body is not UTF-8.
    #[error("body is not UTF-8")]
    NotUtf8,
    /// The first line is not `old <size>`.
    #[error("first line must be \"old <size>\" with a decimal size without leading zeros")]
    BadOldLine,
    /// A proof line is not a base64 hash.
    #[error("consistency proof line {0} is not a base64 SHA-256 hash")]
    BadProofLine(usize),
    /// More than 63 proof lines.
    #[error("more than {MAX_PROOF_LINES} consistency proof lines")]
    TooManyProofLines,
    /// No empty line before the checkpoint.
    #[error("no empty line between the proof and the checkpoint")]
    NoCheckpoint,
    /// A response line is not a signature line.
    #[error("response: {0}")]
    BadSignature(#[from] NoteError),
    /// A response with no signature line.
    #[error("response holds no cosignature line")]
    EmptyResponse,
    /// A 409 body that is not `<size>\n`.
    #[error("409 body must be a decimal size and a newline")]
    BadSizeBody,
}

impl AddCheckpoint {
    /// Parses a request body.
    pub fn parse(body: &[u8]) -> Result<AddCheckpoint, WitnessBodyError> {
        let s = std::str::from_utf8(body).map_err(|_| WitnessBodyError::NotUtf8)?;
        let (first, mut rest) = s.split_once('\n').ok_or(WitnessBodyError::BadOldLine)?;
        let old_size = first
            .strip_prefix("old ")
            .and_then(parse_decimal)
            .ok_or(WitnessBodyError::BadOldLine)?;
        let mut proof = Vec::new();
        loop {
            let (line, r) = rest
                .split_once('\n')
                .ok_or(WitnessBodyError::NoCheckpoint)?;
            rest = r;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(WitnessBodyError::TooManyProofLines);
            }
            proof.push(
                Hash::from_base64(line)
                    .map_err(|_| WitnessBodyError::BadProofLine(proof.len() + 1))?,
            );
        }
        Ok(AddCheckpoint {
            old_size,
            proof,
            checkpoint: rest.as_bytes().to_vec(),
        })
    }

    /// Encodes a request body.
    pub fn encode(&self) -> Vec<u8> {
        let mut s = format!("old {}\n", self.old_size);
        for h in &self.proof {
            s.push_str(&h.to_base64());
            s.push('\n');
        }
        s.push('\n');
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.checkpoint);
        out
    }
}

/// Parses a 200 response: one or more signature lines.
pub fn parse_response(body: &[u8]) -> Result<Vec<Signature>, WitnessBodyError> {
    let s = std::str::from_utf8(body).map_err(|_| WitnessBodyError::NotUtf8)?;
    let s = s
        .strip_suffix('\n')
        .ok_or(WitnessBodyError::EmptyResponse)?;
    s.split('\n')
        .enumerate()
        .map(|(i, l)| Signature::parse_line(l, i + 1).map_err(WitnessBodyError::from))
        .collect()
}

/// Encodes a 200 response.
pub fn encode_response(sigs: &[Signature]) -> Vec<u8> {
    sigs.iter()
        .map(|s| s.line())
        .collect::<String>()
        .into_bytes()
}

/// Parses a 409 body (`<size>\n`).
pub fn parse_size_body(body: &[u8]) -> Result<u64, WitnessBodyError> {
    std::str::from_utf8(body)
        .ok()
        .and_then(|s| s.strip_suffix('\n'))
        .and_then(parse_decimal)
        .ok_or(WitnessBodyError::BadSizeBody)
}

/// What a witness has stored for one log: its latest cosigned checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessState {
    /// Size of the latest cosigned checkpoint.
    pub size: u64,
    /// Its root hash.
    pub root: Hash,
}

impl WitnessState {
    /// The state of a witness that never cosigned for a log.
    pub fn empty() -> WitnessState {
        WitnessState {
            size: 0,
            root: Hash::empty_root(),
        }
    }
}

/// A witness's answer to an `add-checkpoint`, with the HTTP status it maps to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// 404: the origin is not a configured log.
    #[error("unknown log origin {0:?}")]
    UnknownOrigin(String),
    /// 403: no trusted log signature, or a bad one.
    #[error("checkpoint signature: {0}")]
    Signature(NoteError),
    /// 400: the request is malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 409: the old size is not the witness's current size.
    #[error("old size {old} is not the witness's size {current}")]
    Conflict {
        /// Old size in the request.
        old: u64,
        /// The witness's stored size (the 409 body).
        current: u64,
    },
    /// 422: the proof does not verify, or same size with another root, or a
    /// non-empty checkpoint of size 0.
    #[error("inconsistent: {0}")]
    Inconsistent(String),
}

impl Rejection {
    /// The HTTP status code the spec assigns.
    pub fn status(&self) -> u16 {
        match self {
            Rejection::UnknownOrigin(_) => 404,
            Rejection::Signature(_) => 403,
            Rejection::BadRequest(_) => 400,
            Rejection::Conflict { .. } => 409,
            Rejection::Inconsistent(_) => 422,
        }
    }
}

/// The result of checking a request: the checkpoint to store and cosign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The parsed checkpoint.
    pub checkpoint: Checkpoint,
    /// The note (text to cosign, log signatures to keep).
    pub note: Note,
}

/// Applies the tlog-witness checks, in the spec's order, to a parsed
/// request. `log_keys` returns the verifiers for an origin, or `None` if
/// the origin is unknown; `state` returns the stored state for the origin.
/// The caller must perform this check and the state update atomically.
pub fn check_add_checkpoint<'a>(
    req: &AddCheckpoint,
    log_keys: impl FnOnce(&str) -> Option<Vec<&'a dyn NoteVerifier>>,
    state: impl FnOnce(&str) -> WitnessState,
) -> Result<Accepted, Rejection> {
    let note = Note::parse(&req.checkpoint)
        .map_err(|e| Rejection::BadRequest(format!("checkpoint note: {e}")))?;
    let origin = note.text.split('\n').next().unwrap_or_default().to_string();
    let keys = log_keys(&origin).ok_or_else(|| Rejection::UnknownOrigin(origin.clone()))?;
    let verified = crate::note::verify_sigs(&note, &keys).map_err(Rejection::Signature)?;
    if verified.is_empty() {
        return Err(Rejection::Signature(NoteError::NoKnownSignature(origin)));
    }
    let checkpoint = Checkpoint::parse(&note.text).map_err(|e| match e {
        CheckpointError::BadEmptyRoot(_) => Rejection::Inconsistent(e.to_string()),
        e => Rejection::BadRequest(e.to_string()),
    })?;
    if req.old_size > checkpoint.size {
        return Err(Rejection::BadRequest(format!(
            "old size {} is larger than the checkpoint size {}",
            req.old_size, checkpoint.size
        )));
    }
    let current = state(&origin);
    if req.old_size != current.size {
        return Err(Rejection::Conflict {
            old: req.old_size,
            current: current.size,
        });
    }
    if req.old_size == 0 {
        if !req.proof.is_empty() {
            return Err(Rejection::Inconsistent(
                "a proof from old size 0 must be empty".into(),
            ));
        }
    } else if req.old_size == checkpoint.size {
        if current.root != checkpoint.root || !req.proof.is_empty() {
            return Err(Rejection::Inconsistent(format!(
                "size {} is already cosigned with root {}, not {}",
                current.size, current.root, checkpoint.root
            )));
        }
    } else {
        consistency::verify(
            req.old_size,
            checkpoint.size,
            &req.proof,
            &current.root,
            &checkpoint.root,
        )
        .map_err(|e| Rejection::Inconsistent(e.to_string()))?;
    }
    Ok(Accepted { checkpoint, note })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use crate::merkle::MemoryTree;
    use crate::note::{Ed25519Signer, NoteSigner};
    use proptest::prelude::*;

    #[test]
    fn spec_example_request_parses() {
        let body = "old 20852014\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\njrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n\u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";
        let r = AddCheckpoint::parse(body.as_bytes()).unwrap();
        assert_eq!(r.old_size, 20852014);
        assert_eq!(r.proof.len(), 4);
        assert_eq!(r.encode(), body.as_bytes());
        assert!(Note::parse(&r.checkpoint).is_ok());
        for bad in [
            "old 01\n\nx",
            "old 1\nAAAA\n\nx",
            "old 1\n",
            "new 1\n\nx",
            "old  1\n\nx",
            "old 1",
        ] {
            assert!(AddCheckpoint::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
        let many = format!(
            "old 1\n{}\nx",
            format!("{}\n", Hash::empty_root()).repeat(64)
        );
        assert_eq!(
            AddCheckpoint::parse(many.as_bytes()),
            Err(WitnessBodyError::TooManyProofLines)
        );
        assert_eq!(parse_size_body(b"42\n"), Ok(42));
        assert!(parse_size_body(b"042\n").is_err());
        assert!(parse_response(b"").is_err());
    }

    #[test]
    fn decisions_match_the_spec() {
        let log = Ed25519Signer::from_seed("example.com/log", &[9; 32]).unwrap();
        let v = log.verifier();
        let tree = MemoryTree::from_leaves((0..20u64).map(|i| leaf_hash(&i.to_be_bytes())));
        let cp = |size: u64, signer: &dyn NoteSigner| {
            let text =
                Checkpoint::new("example.com/log", size, tree.root_at(size).unwrap()).to_text();
            Note::sign(&text, &[signer]).unwrap().to_bytes()
        };
        let req = |old: u64, new: u64| AddCheckpoint {
            old_size: old,
            proof: if old == 0 || old >= new {
                vec![]
            } else {
                consistency::prove(old, new, &tree).unwrap()
            },
            checkpoint: cp(new, &log),
        };
        let keys = |o: &str| (o == "example.com/log").then(|| vec![&v as &dyn NoteVerifier]);
        let tree_ref = &tree;
        let at = |size: u64| {
            move |_: &str| WitnessState {
                size,
                root: tree_ref.root_at(size).unwrap(),
            }
        };
        assert!(check_add_checkpoint(&req(0, 5), keys, |_| WitnessState::empty()).is_ok());
        assert!(check_add_checkpoint(&req(5, 9), keys, at(5)).is_ok());
        assert!(check_add_checkpoint(&req(9, 9), keys, at(9)).is_ok());
        assert_eq!(
            check_add_checkpoint(&req(5, 9), keys, at(7))
                .unwrap_err()
                .status(),
            409
        );
        assert_eq!(
            check_add_checkpoint(&req(9, 5), keys, at(9))
                .unwrap_err()
                .status(),
            400
        );
        let mut bad = req(5, 9);
        bad.proof[0].0[0] ^= 1;
        assert_eq!(
            check_add_checkpoint(&bad, keys, at(5))
                .unwrap_err()
                .status(),
            422
        );
        let fork = WitnessState {
            size: 9,
            root: Hash::empty_root(),
        };
        assert_eq!(
            check_add_checkpoint(&req(9, 9), keys, |_| fork.clone())
                .unwrap_err()
                .status(),
            422
        );
        let mut nonempty = req(0, 5);
        nonempty.proof = vec![Hash::empty_root()];
        assert_eq!(
            check_add_checkpoint(&nonempty, keys, |_| WitnessState::empty())
                .unwrap_err()
                .status(),
            422
        );
        let other = Ed25519Signer::from_seed("example.com/log", &[8; 32]).unwrap();
        let mut forged = req(0, 5);
        forged.checkpoint = cp(5, &other);
        assert_eq!(
            check_add_checkpoint(&forged, keys, |_| WitnessState::empty())
                .unwrap_err()
                .status(),
            403
        );
        assert_eq!(
            check_add_checkpoint(&req(0, 5), |_| None, |_| WitnessState::empty())
                .unwrap_err()
                .status(),
            404
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(r) = AddCheckpoint::parse(&data) { prop_assert_eq!(r.encode(), data.clone()); }
            if let Ok(s) = parse_response(&data) { prop_assert_eq!(encode_response(&s), data); }
        }
    }
}
