//! The witness's durable state: per log, the latest cosigned checkpoint,
//! in a file named by the hex SHA-256 of its origin and replaced through
//! `vouch::atomic` (write, fsync, rename, fsync the directory).

use std::path::{Path, PathBuf};

use vouch_spec::checkpoint::Checkpoint;
use vouch_spec::note::Note;
use vouch_spec::witness::WitnessState;

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A file could not be read or written.
    #[error("{path}: {err}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        err: std::io::Error,
    },
    /// A state file does not hold a checkpoint of its log.
    #[error("{path}: {msg}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
}

/// File name for a log's state: the hex SHA-256 of its origin.
pub fn origin_hash(origin: &str) -> String {
    vouch_spec::hex::encode(&vouch_spec::hash::sha256(origin.as_bytes()))
}

/// The state file for `origin` under `dir`.
pub fn path(dir: &Path, origin: &str) -> PathBuf {
    dir.join(format!("{}.checkpoint", origin_hash(origin)))
}

/// Creates the state directory.
pub fn create_dir(dir: &Path) -> Result<(), StateError> {
    std::fs::create_dir_all(dir).map_err(|err| StateError::Io {
        path: dir.to_path_buf(),
        err,
    })
}

/// Reads the stored checkpoint note for `origin`, if any.
pub fn load(dir: &Path, origin: &str) -> Result<Option<(WitnessState, Vec<u8>)>, StateError> {
    let p = path(dir, origin);
    let data = match std::fs::read(&p) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(StateError::Io { path: p, err }),
    };
    let damaged = |msg: String| StateError::Damaged {
        path: p.clone(),
        msg,
    };
    let note = Note::parse(&data).map_err(|e| damaged(format!("not a signed note: {e}")))?;
    let cp =
        Checkpoint::parse(&note.text).map_err(|e| damaged(format!("not a checkpoint: {e}")))?;
    if cp.origin != origin {
        return Err(damaged(format!(
            "holds origin {:?}, not {origin:?}",
            cp.origin
        )));
    }
    Ok(Some((
        WitnessState {
            size: cp.size,
            root: cp.root,
        },
        data,
    )))
}

/// Replaces the stored checkpoint atomically and durably.
pub fn save(dir: &Path, origin: &str, note: &[u8]) -> Result<(), StateError> {
    let p = path(dir, origin);
    vouch::atomic::write(&p, note).map_err(|err| StateError::Io { path: p, err })
}
