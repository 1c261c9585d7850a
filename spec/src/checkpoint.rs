//! C2SP tlog-checkpoint (`tlog-checkpoint.md`): the note text of a signed
//! tree head — origin, tree size, root hash, optional extension lines.

use crate::hash::Hash;
use crate::note::{open, NoteError, NoteVerifier, OpenedNote};
use crate::tile::parse_decimal;

/// A checkpoint body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line.
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// RFC 6962 root hash at that size.
    pub root: Hash,
    /// Extension lines (each non-empty), usually none.
    pub extensions: Vec<String>,
}

/// Why a checkpoint was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The signed note around it is bad.
    #[error("checkpoint note: {0}")]
    Note(#[from] NoteError),
    /// Fewer than three lines, or no final newline.
    #[error("checkpoint text must be at least three newline-terminated lines")]
    TooShort,
    /// The origin line is empty.
    #[error("checkpoint origin line is empty")]
    EmptyOrigin,
    /// The size line is not a canonical decimal.
    #[error("checkpoint size {0:?} is not a decimal without leading zeros")]
    BadSize(String),
    /// The root line is not a canonical base64 SHA-256 hash.
    #[error("checkpoint root {0:?} is not a base64 SHA-256 hash")]
    BadRoot(String),
    /// An extension line is empty.
    #[error("checkpoint extension line {0} is empty")]
    EmptyExtension(usize),
    /// The checkpoint is not from the expected log.
    #[error("checkpoint origin is {got:?}, want {want:?}")]
    WrongOrigin {
        /// Origin found.
        got: String,
        /// Origin wanted.
        want: String,
    },
    /// A size-0 checkpoint whose root is not the empty tree's.
    #[error("checkpoint of size 0 has root {0}, not the empty tree hash")]
    BadEmptyRoot(Hash),
}

impl Checkpoint {
    /// A checkpoint without extension lines.
    pub fn new(origin: &str, size: u64, root: Hash) -> Checkpoint {
        Checkpoint {
            origin: origin.to_string(),
            size,
            root,
            extensions: Vec::new(),
        }
    }

    /// Parses checkpoint note text (ending in a newline).
    pub fn parse(text: &str) -> Result<Checkpoint, CheckpointError> {
        let body = text.strip_suffix('\n').ok_or(CheckpointError::TooShort)?;
        let lines: Vec<&str> = body.split('\n').collect();
        if lines.len() < 3 {
            return Err(CheckpointError::TooShort);
        }
        if lines[0].is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        let size = parse_decimal(lines[1])
            .ok_or_else(|| CheckpointError::BadSize(lines[1].to_string()))?;
        let root = Hash::from_base64(lines[2])
            .map_err(|_| CheckpointError::BadRoot(lines[2].to_string()))?;
        let mut extensions = Vec::new();
        for (i, l) in lines[3..].iter().enumerate() {
            if l.is_empty() {
                return Err(CheckpointError::EmptyExtension(i + 1));
            }
            extensions.push(l.to_string());
        }
        if size == 0 && root != Hash::empty_root() {
            return Err(CheckpointError::BadEmptyRoot(root));
        }
        Ok(Checkpoint {
            origin: lines[0].to_string(),
            size,
            root,
            extensions,
        })
    }

    /// The note text.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            self.root.to_base64()
        );
        for e in &self.extensions {
            s.push_str(e);
            s.push('\n');
        }
        s
    }
}

/// A checkpoint whose note has been opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenedCheckpoint {
    /// The parsed body.
    pub checkpoint: Checkpoint,
    /// The note with its verification results.
    pub note: OpenedNote,
}

/// Opens a signed checkpoint with the given verifiers (log keys and any
/// witness keys) and parses its body. At least one verifier must have signed.
pub fn open_checkpoint(
    data: &[u8],
    verifiers: &[&dyn NoteVerifier],
) -> Result<OpenedCheckpoint, CheckpointError> {
    let note = open(data, verifiers)?;
    let checkpoint = Checkpoint::parse(&note.note.text)?;
    Ok(OpenedCheckpoint { checkpoint, note })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spec_example_parses() {
        let text =
            "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        let c = Checkpoint::parse(text).unwrap();
        assert_eq!(c.origin, "example.com/behind-the-sofa");
        assert_eq!(c.size, 20852163);
        assert_eq!(c.to_text(), text);
    }

    #[test]
    fn rejects_noncanonical() {
        let root = Hash::empty_root().to_base64();
        for bad in [
            format!("o\n01\n{root}\n"),
            format!("o\n+1\n{root}\n"),
            format!("o\n1\n{root}"),
            format!("\n1\n{root}\n"),
            format!("o\n1\n{root}\n\n"),
            format!("o\n1\n{root} \n"),
            "o\n1\nAAAA\n".to_string(),
            format!("o\n18446744073709551616\n{root}\n"),
            "o\n0\nbjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=\n".to_string(),
            "o\n1\n".to_string(),
        ] {
            assert!(Checkpoint::parse(&bad).is_err(), "{bad:?}");
        }
        let ext = Checkpoint::parse(&format!("o\n1\n{root}\next 1\n")).unwrap();
        assert_eq!(ext.extensions, vec!["ext 1"]);
    }

    proptest! {
        #[test]
        fn roundtrip(origin in "[a-z./]{1,20}", size in 1u64.., root in any::<[u8; 32]>(), ext in proptest::collection::vec("[a-z0-9 ]{1,10}", 0..3)) {
            let c = Checkpoint { origin, size, root: Hash(root), extensions: ext };
            prop_assert_eq!(Checkpoint::parse(&c.to_text()), Ok(c));
        }
        #[test]
        fn parse_never_panics(s in "\\PC{0,120}") {
            if let Ok(c) = Checkpoint::parse(&s) { prop_assert_eq!(c.to_text(), s); }
        }
    }
}
